"""Reliability of the priors, and one model shared by threads (issue 11).

Ids that export and read back, YAML that is not what it looks like, numbers at the ends of their
ranges, fuzzed priors files, and eight threads on one model. Every bad priors file must give a
:class:`~postfusion_bayes.SpecError` naming the file (and the key or the line), short enough to
read; never another exception, never a model that answers NaN.
"""

from __future__ import annotations

import copy
import functools
import math
import shutil
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import assert_same_tables, entry
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import postfusion_bayes as pfb
from postfusion_bayes import sensitivity
from postfusion_bayes.cli import EXAMPLE_PATIENT, main
from postfusion_bayes.engine.files import read_bif, read_uai, tables_from_pgmpy
from postfusion_bayes.spec import MAX_NUMBER, PRIOR_FILES, STATE_ID, VARIABLE_ID, default_priors_path, spec_from_documents

PRIORS = default_priors_path()


@functools.cache
def shipped_model() -> pfb.Model:
    return pfb.load_model()


@functools.cache
def shipped_documents() -> dict:
    return {name: yaml.safe_load((PRIORS / name).read_text(encoding="utf-8")) for name in PRIOR_FILES}


def copy_priors(folder: Path) -> Path:
    shutil.copytree(PRIORS, folder, ignore=shutil.ignore_patterns("*.md", "__pycache__", "*.py"))
    return folder


@pytest.fixture
def priors_copy(tmp_path) -> Path:
    return copy_priors(tmp_path / "priors")


def edit(folder: Path, filename: str, change, *raw: str) -> str:
    """Change one priors file through its YAML structure (whatever its numbers and notes say); return the text written.

    ``change(doc)`` edits the document. Where it puts ``RAW0``, ``RAW1``, ... (as a key or a value),
    the file gets ``raw[0]``, ``raw[1]``, ... as they are, so that YAML reads exactly that text.
    """
    path = folder / filename
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(doc)
    text = yaml.safe_dump(doc, sort_keys=False, width=1_000_000, allow_unicode=True)
    for i, text_i in enumerate(raw):
        assert text.count(f"RAW{i}") == 1, f"RAW{i}"
        text = text.replace(f"RAW{i}", text_i)
    path.write_text(text, encoding="utf-8")
    return text


def rename_key(mapping: dict, old: str, new: str) -> None:
    """Rename a key of a mapping in place, keeping its place in the order."""
    items = list(mapping.items())
    mapping.clear()
    mapping.update((new if k == old else k, v) for k, v in items)


def spec_problems(folder: Path) -> list[str]:
    """Return the problems of a priors folder, checking that each names a file of the folder on one short line."""
    with pytest.raises(pfb.SpecError) as info:
        pfb.load_model(folder)
    problems = info.value.problems
    assert problems
    for problem in problems:
        assert str(folder) in problem, problem
        assert "\n" not in problem and len(problem) < 600, problem[:1000]
    assert len(str(info.value)) < 600 * len(problems) + 100
    return problems


# ----------------------------------------------------------------- ids that export and read back

#: The keywords of the BIF format (a variable or state named so must still read back).
BIF_WORDS = ["network", "variable", "probability", "table", "type", "discrete", "property", "default"]


def small_documents(names: list[str], time_states: list[str], onset_states: list[str], extra: dict[str, list[str]] | None = None) -> dict:
    """Documents of a small model with the ids given: time, risk factor, two causes, finding, red flag, onset.

    ``extra`` adds categorical context variables (id -> states), parents of nothing.
    """
    time, risk, cause_a, cause_b, finding, flag, onset = names

    def uniform(states):
        return {s: entry(1 / len(states)) for s in states}

    context = {
        time: {"description": "time window", "states": time_states, "distribution": uniform(time_states)},
        risk: {"description": "a risk factor", "prevalence": entry(0.3)},
    }
    context.update({name: {"description": "more context", "states": states, "distribution": uniform(states)} for name, states in (extra or {}).items()})
    return {
        "context.yaml": {"context": context},
        "causes.yaml": {
            "time_variable": time,
            "reference_patient": "no risk factor",
            "causes": {
                c: {"description": "a cause", "baseline": {s: entry(0.1 + 0.2 * i) for i, s in enumerate(time_states)}, "odds_ratios": {risk: entry(2.5, 0.5, 4.0)}}
                for c in (cause_a, cause_b)
            },
        },
        "findings.yaml": {"findings": {finding: {"description": "a finding", "leak": entry(0.1), "links": {cause_a: entry(0.7), cause_b: entry(0.4)}}}},
        "red_flags.yaml": {"red_flags": {flag: {"description": "a red flag", "advice": "act now", "leak": entry(0.01), "links": {cause_b: entry(0.2)}}}},
        "onset.yaml": {"onset": {"variable": onset, "description": "onset", "states": onset_states, "distributions": {"leak": uniform(onset_states), cause_a: uniform(onset_states)}}},
    }


variable_ids = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
state_ids = st.from_regex(r"[a-z0-9][a-z0-9_]{0,11}", fullmatch=True)
state_lists = st.lists(state_ids, min_size=2, max_size=4, unique=True)


# Each example parses a BIF file in pgmpy, which spends about 1.5 s building its grammar whatever the
# file's size: so few examples, each a network with many ids (up to 20 variables, 2 to 4 states each).
@settings(max_examples=5, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(variable_ids, min_size=7, max_size=20, unique=True), states=st.lists(state_lists, min_size=15, max_size=15))
@example(
    names=BIF_WORDS[:7] + ["inf", "nan", "e1", "true", "no"],
    states=[["0", "1", "10"], ["table", "default", "6_to_24_months"], ["inf", "nan"], ["yes", "no", "1e5"], ["network", "probability"], ["type", "discrete"], ["0x1f", "1_000"]] + [["a", "b"]] * 8,
)
def test_every_id_the_validator_accepts_exports_and_reads_back(tmp_path_factory, names, states):
    extra = dict(zip(names[7:], states[2:], strict=False))
    spec = spec_from_documents(small_documents(names[:7], states[0], states[1], extra))
    assert all(VARIABLE_ID.fullmatch(v) for v in spec.variables) and len(spec.variables) == len(names)
    model = pfb.Model(spec)
    tables = model.tables
    folder = tmp_path_factory.mktemp("export")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pgmpy's reader warns about some names it still reads
        from pgmpy.readwrite import XMLBIFReader

        assert_same_tables(read_bif(model.write(folder / "m.bif")), tables)
        assert_same_tables(tables_from_pgmpy(XMLBIFReader(str(model.write(folder / "m.xmlbif"))).get_model()), tables)
    assert_same_tables(read_uai(model.write(folder / "m.uai"), tables.variables, tables.states), tables)


@pytest.mark.parametrize(
    "bad, allowed",
    [("''", None), ("'radicular pain 2'", "radicular_pain_2"), ("radicular.pain", "radicular_pain"), ("Radicular_Pain", "radicular_pain"), ("2nd_pain", None), ("'_pain'", None)],
)
def test_a_finding_id_that_would_not_export_is_refused(priors_copy, bad, allowed):
    # '' and 'radicular pain 2' used to pass validation and write a BIF (and for '', an XMLBIF) that cannot be read back
    edit(priors_copy, "findings.yaml", lambda d: rename_key(d["findings"], "deep_aching_pain", "RAW0"), bad)
    problems = spec_problems(priors_copy)
    name = yaml.safe_load(f"x: {bad}")["x"]
    [problem] = [p for p in problems if f"id {name!r} is not allowed" in p]
    assert "findings.yaml: findings." in problem and "allowed: lower-case letters, digits and underscores, starting with a letter" in problem
    assert (f"did you mean {allowed!r}" in problem) == (allowed is not None)


def test_a_cause_id_with_a_dot_is_refused(priors_copy):
    # it used to pass validation and then break sensitivity.one_way with a KeyError (parameter names are dotted key paths)
    edit(priors_copy, "causes.yaml", lambda d: d["causes"].update({"pseud.x": {"description": "a cause with a dot", "baseline": {}}}))
    problems = spec_problems(priors_copy)
    assert any("causes.yaml: causes.pseud.x: id 'pseud.x' is not allowed (did you mean 'pseud_x'?)" in p for p in problems), problems


def test_state_names_may_start_with_a_digit_but_not_hold_a_space(priors_copy):
    edit(priors_copy, "onset.yaml", lambda d: d["onset"]["states"].__setitem__(0, "at once"))
    problems = spec_problems(priors_copy)
    assert any("onset.yaml: onset.states: state 'at once' is not allowed (did you mean 'at_once'?)" in p and "starting with a letter or a digit" in p for p in problems)
    assert STATE_ID.fullmatch("6_weeks_to_6_months") and not VARIABLE_ID.fullmatch("6_weeks_to_6_months")
    assert all(STATE_ID.fullmatch(s) for v in shipped_model().spec.variables.values() for s in v.states)


# ----------------------------------------------------------------- YAML that is not what it looks like


@pytest.mark.parametrize("key, kind", [("123", "a number"), ("yes", "a boolean"), ("~", "null"), ("null", "null"), ("1.5", "a number"), ("2024-01-01", "a date")])
def test_a_key_yaml_reads_as_a_number_boolean_or_null_is_named_as_written(priors_copy, key, kind):
    text = edit(priors_copy, "findings.yaml", lambda d: rename_key(d["findings"], "deep_aching_pain", "RAW0"), key)
    [problem] = spec_problems(priors_copy)
    line = 1 + text.splitlines().index(f"  {key}:")
    assert f"findings.yaml: the key {key!r} is read by YAML as {kind}" in problem
    assert f"(line {line}, column 3)" in problem


def test_a_non_text_key_in_documents_in_memory_is_a_spec_error():
    documents = copy.deepcopy(shipped_documents())
    documents["findings.yaml"]["findings"][True] = documents["findings.yaml"]["findings"].pop("back_pain")
    with pytest.raises(pfb.SpecError, match=r"findings.yaml: findings: the key True is a bool, not a name"):
        spec_from_documents(documents)


HUGE = 10**400 - 1  # 400 nines


@pytest.mark.parametrize(
    "filename, change, key",
    [
        ("findings.yaml", lambda d: d["findings"]["radicular_pain"]["leak"].update(value=HUGE), "findings.radicular_pain.leak: value 999"),
        ("findings.yaml", lambda d: d["findings"]["radicular_pain"]["leak"]["range"].__setitem__(1, HUGE), "findings.radicular_pain.leak: range ["),
        ("causes.yaml", lambda d: d["causes"]["pseudarthrosis"]["odds_ratios"]["smoker"].update(value=-HUGE), "causes.pseudarthrosis.odds_ratios.smoker: value -999"),
        ("findings.yaml", lambda d: d["test_kinds"]["ct"].update(cost=HUGE), "test_kinds.ct.cost: expected a finite number >= 0 (relative cost), got 999"),
    ],
)
def test_a_400_digit_integer_is_a_spec_error_naming_file_and_key(priors_copy, filename, change, key):
    edit(priors_copy, filename, change)
    problems = spec_problems(priors_copy)
    assert any(f"{filename}: {key}" in p and " characters)" in p and "is too large (numbers in the priors are at most 1e+15 in size)" in p for p in problems), problems


def test_an_integer_too_long_for_python_to_read_is_a_spec_error(priors_copy):
    edit(priors_copy, "findings.yaml", lambda d: d["findings"]["radicular_pain"]["leak"].update(value="RAW0"), "9" * 5000)
    [problem] = spec_problems(priors_copy)
    assert "findings.yaml: the integer '999" in problem and "(5002 characters) is too long to read (line" in problem  # its text, quoted


def test_an_odds_ratio_of_1e308_inside_its_own_range_is_a_spec_error(priors_copy):
    # it used to overflow in the odds arithmetic and fail in the engine, hinting at compile_network(normalize=True)
    edit(priors_copy, "causes.yaml", lambda d: d["causes"]["pseudarthrosis"]["odds_ratios"]["smoker"].update(value=1e308, range=[1.5, 1e308]))
    problems = spec_problems(priors_copy)
    assert any("causes.yaml: causes.pseudarthrosis.odds_ratios.smoker: value 1e+308 is too large (numbers in the priors are at most 1e+15 in size)" in p for p in problems)
    assert any("causes.yaml: causes.pseudarthrosis.odds_ratios.smoker: range [1.5, 1e+308]: high 1e+308 is too large" in p for p in problems)
    assert not any("normalize" in p for p in problems)
    with pytest.raises(pfb.SpecError, match=r"causes.pseudarthrosis.odds_ratios.smoker: value 1e\+308 is too large"):
        shipped_model().with_parameters({"causes.pseudarthrosis.odds_ratios.smoker": 1e308})
    with pytest.raises(pfb.SpecError, match=r"odds_ratios.smoker: value 1000000000000000000000.* is too large"):
        shipped_model().with_parameters({"causes.pseudarthrosis.odds_ratios.smoker": 10**400})


def test_the_size_limit_leaves_room_for_every_odds_ratio_learning_gives():
    from postfusion_bayes.learning import LOGIT_BOUND

    assert math.exp(LOGIT_BOUND) < MAX_NUMBER
    documents = small_documents(["time", "risk", "cause_a", "cause_b", "finding", "flag", "onset"], ["early", "late"], ["sudden", "slow"])
    odds_ratio = documents["causes.yaml"]["causes"]["cause_a"]["odds_ratios"]["risk"]
    odds_ratio.update(value=math.exp(LOGIT_BOUND), range=[1.0, MAX_NUMBER])
    model = pfb.Model(spec_from_documents(documents))
    assert_sound(model.diagnose({"risk": True}))
    assert_sound(model.with_parameters({"causes.cause_a.odds_ratios.risk": MAX_NUMBER, "causes.cause_a.baseline.late": 1.0}).diagnose({"risk": True, "finding": False}))


def test_odds_ratios_that_multiply_beyond_a_float_are_a_spec_error():
    # each odds ratio within its own bounds, their product for a patient with every risk factor is not
    risks = [f"risk{i}" for i in range(60)]
    documents = small_documents(["time", "risk", "cause_a", "cause_b", "finding", "flag", "onset"], ["early", "late"], ["sudden", "slow"])
    context = documents["context.yaml"]["context"]
    for r in risks:
        context[r] = {"description": "a risk factor", "prevalence": entry(0.3)}
    documents["causes.yaml"]["causes"]["cause_a"]["odds_ratios"] = {r: entry(1e6, 1.0, 1e6) for r in risks}
    documents["causes.yaml"]["causes"]["cause_b"]["odds_ratios"] = {r: entry(1e-6, 1e-6, 1.0) for r in risks}
    with pytest.raises(pfb.SpecError) as info:
        spec_from_documents(documents)
    assert any("causes.yaml: causes.cause_a.odds_ratios: the odds ratios that raise the odds multiply to about 1e+360" in p for p in info.value.problems)
    assert any("causes.yaml: causes.cause_b.odds_ratios: the odds ratios that lower the odds multiply to about 1e-360" in p for p in info.value.problems)
    assert all("allowed: products within [1e-300, 1e+300]" in p for p in info.value.problems)


@pytest.mark.parametrize("field, raw", [("description", "[" * 20_000 + " Sharp"), ("leak", "[" * 20_000)])
def test_20000_nested_brackets_give_a_short_spec_error(priors_copy, field, raw):
    edit(priors_copy, "findings.yaml", lambda d: d["findings"]["radicular_pain"].update({field: "RAW0"}), raw)
    [problem] = spec_problems(priors_copy)
    assert "findings.yaml: lists or mappings are nested too deeply to be read" in problem


def test_a_description_nested_as_deep_as_the_reader_allows_is_quoted_short(priors_copy):
    edit(priors_copy, "findings.yaml", lambda d: d["findings"]["radicular_pain"].update(description="RAW0"), "[" * 90 + "a" + "]" * 90)
    problems = spec_problems(priors_copy)
    assert any("findings.radicular_pain.description: expected a non-empty text, got [[[[" in p for p in problems), problems


def test_a_description_nested_past_100_levels_is_refused_naming_the_file(priors_copy):
    edit(priors_copy, "findings.yaml", lambda d: d["findings"]["radicular_pain"].update(description="RAW0"), "[" * 900 + "a" + "]" * 900)
    [problem] = spec_problems(priors_copy)
    assert problem.endswith("findings.yaml: lists or mappings are nested too deeply to be read (more than 100 levels)"), problem


#: Under 400 bytes of YAML that unfold into 9**8 (about 43 million) strings.
ALIAS_BOMB = "{a0: &a0 [" + ",".join(["lol"] * 9) + "], " + ", ".join(f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 8)) + "}"


def test_a_300_byte_alias_bomb_in_a_description_gives_a_short_spec_error(priors_copy):
    assert len(ALIAS_BOMB) < 400
    edit(priors_copy, "findings.yaml", lambda d: d["findings"]["radicular_pain"].update(description="RAW0"), ALIAS_BOMB)
    [problem] = spec_problems(priors_copy)
    assert "findings.yaml: aliases (*name) repeat more than 100000 entries (an alias bomb?)" in problem


def _two_leaks(raw_first: str, raw_second: str):
    """Edit findings.yaml: the leak of radicular_pain, then that of deep_aching_pain (later in the file), as raw YAML."""

    def change(d):
        d["findings"]["radicular_pain"]["leak"] = "RAW0"
        d["findings"]["deep_aching_pain"]["leak"] = "RAW1"

    return change, raw_first, raw_second


def test_aliases_that_unfold_to_little_are_read(priors_copy):
    # what yaml.safe_dump writes for an entry used twice; the shipped priors use none
    edit(priors_copy, "findings.yaml", *_two_leaks("&shared {value: 0.125, range: [0.05, 0.3], judgment: shared}", "*shared"))
    spec = pfb.load_model(priors_copy).spec
    assert spec.parameters["findings.deep_aching_pain.leak"].value == spec.parameters["findings.radicular_pain.leak"].value == 0.125


def test_an_alias_inside_its_own_anchor_is_a_spec_error(priors_copy):
    edit(priors_copy, "findings.yaml", lambda d: d["findings"]["radicular_pain"].update(description="RAW0"), "&loop [*loop]")
    [problem] = spec_problems(priors_copy)
    assert "findings.yaml: an alias (*name) refers to an entry that holds the alias itself" in problem


def test_merge_keys_are_refused_with_a_clear_spec_error(priors_copy):
    # decided: refused, not supported. A merge lets explicit fields silently override merged ones (the
    # duplicate-key rule broken by another name) and puts a number's value or source away from its key.
    edit(priors_copy, "findings.yaml", *_two_leaks("&base {value: 0.125, range: [0.05, 0.3], judgment: shared}", "{<<: *base, value: 0.25}"))
    [problem] = spec_problems(priors_copy)
    assert "findings.yaml: a merge key (<<) is not allowed in priors: write each entry out in full (line" in problem


def test_a_key_given_twice_is_still_refused(priors_copy):
    edit(priors_copy, "findings.yaml", lambda d: d["findings"]["radicular_pain"].update(leak="RAW0"), "{value: 0.2, 'value': 0.3, range: [0.0, 1.0], judgment: twice}")
    [problem] = spec_problems(priors_copy)
    assert "not valid YAML" in problem and "found the key 'value' twice" in problem


def test_the_checks_hold_without_libyaml(priors_copy, monkeypatch):
    from postfusion_bayes import spec as spec_module

    monkeypatch.setattr(spec_module, "_FastUniqueKeyLoader", None)
    edit(priors_copy, "findings.yaml", lambda d: rename_key(d["findings"], "deep_aching_pain", "RAW0"), "yes")
    [problem] = spec_problems(priors_copy)
    assert "the key 'yes' is read by YAML as a boolean" in problem
    edit(priors_copy, "findings.yaml", lambda d: d["findings"]["radicular_pain"].update(description="RAW0"), "[" * 20_000)
    [problem] = spec_problems(priors_copy)
    assert problem.endswith("findings.yaml: lists or mappings are nested too deeply to be read (more than 100 levels)")  # Python's stack overflowed


# ----------------------------------------------------------------- numbers at the ends of their ranges

PARAMETERS = sorted(shipped_model().spec.parameters)
EVERY_FINDING_ABSENT = {n: False for n in shipped_model().spec.names("finding") + shipped_model().spec.names("red_flag") if n != "onset"}


def assert_sound(diagnosis):
    for values in (diagnosis.posterior_values, diagnosis.prior_values):
        assert np.all(np.isfinite(values)) and np.all((values >= 0) & (values <= 1)), values


@pytest.mark.parametrize("name", PARAMETERS)
def test_every_parameter_at_either_end_of_its_range_gives_finite_posteriors(name):
    model = shipped_model()
    p = model.spec.parameters[name]
    for end in (p.low, p.high):
        values = sensitivity.covaried(model, name, end)  # the rest of its distribution, if any, keeps its proportions
        assert math.fsum(values.values()) == pytest.approx(1.0, abs=1e-12) or len(values) == 1
        changed = model.with_parameters(values)
        for patient in (EXAMPLE_PATIENT, EVERY_FINDING_ABSENT):
            try:
                diagnosis = changed.diagnose(patient)
            except pfb.EvidenceError as exc:  # allowed only when the evidence has become impossible, and said so
                assert "impossible" in str(exc)
                _, log_evidence = sensitivity.evaluate(model, patient, {k: np.array([v]) for k, v in values.items()}, impossible="nan")
                assert np.isneginf(log_evidence).all() or np.isnan(log_evidence).all()
                continue
            assert_sound(diagnosis)
            # a second path: the batched tables of the sensitivity module, from the unchanged model
            present, _ = sensitivity.evaluate(model, patient, {k: np.array([v]) for k, v in values.items()})
            np.testing.assert_allclose(present[0, 0], diagnosis.posterior_values, rtol=0, atol=1e-12)


@pytest.mark.parametrize("end", ["low", "high"])
def test_a_priors_folder_with_every_number_at_one_end_of_its_range_validates_and_diagnoses(priors_copy, end, capsys):
    """Every number outside a distribution set to its low (or high) end, in the files themselves."""
    model = shipped_model()
    single = {n: p for n, p in model.spec.parameters.items() if len(sensitivity.distribution_of(model, n)) == 1}

    def to_end(filename):
        def change(doc):
            for name, p in single.items():
                if Path(p.file).name == filename:
                    node = doc
                    for part in name.split("."):
                        node = node[part]
                    node["value"] = p.low if end == "low" else p.high

        return change

    for filename in PRIOR_FILES:
        edit(priors_copy, filename, to_end(filename))
    assert main(["validate", str(priors_copy)]) == 0
    assert capsys.readouterr().out.startswith("ok: ")
    changed = pfb.load_model(priors_copy)
    assert all(changed.spec.value(n) == (p.low if end == "low" else p.high) for n, p in single.items())
    try:
        diagnosis = changed.diagnose(EXAMPLE_PATIENT)
    except pfb.EvidenceError as exc:
        assert "impossible" in str(exc)
    else:
        assert_sound(diagnosis)


def test_a_leak_at_the_end_of_its_range_loads_and_impossible_evidence_is_an_evidence_error(priors_copy):
    # a leak of 1 (the high end of its range here; a leak of 0 on a finding without links is the same):
    # the finding absent is impossible under the model, whatever the causes
    def change(doc):
        leak = doc["findings"]["back_pain"]["leak"]
        leak.update(value=1.0, range=[leak["range"][0], 1.0])

    edit(priors_copy, "findings.yaml", change)
    model = pfb.load_model(priors_copy)
    assert model.spec.value("findings.back_pain.leak") == 1.0
    assert_sound(model.diagnose({**EXAMPLE_PATIENT, "back_pain": True}))
    with pytest.raises(pfb.EvidenceError, match="impossible"):
        model.diagnose({**EXAMPLE_PATIENT, "back_pain": False})


# ----------------------------------------------------------------- fuzzing: one value or key of the priors turned to junk


def _paths(node, path=()):
    """Every place in a document: (path to the parent, key or index)."""
    if isinstance(node, dict):
        for key, sub in node.items():
            yield path, key
            yield from _paths(sub, path + (key,))
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            yield path, i
            yield from _paths(sub, path + (i,))


PLACES = [(filename, parent, key) for filename in PRIOR_FILES for parent, key in _paths(shipped_documents()[filename])]
JUNK = st.one_of(
    st.sampled_from(["junk", "", "  ", "0.5", "yes", "1e308", "radicular pain", "a.b"]),
    st.sampled_from([None, True, False, -1, -0.5, 0, 1, 2, 1.5, 1e308, -1e308, math.inf, -math.inf, math.nan, 10**400, -(10**400), 5e-324]),
    st.sampled_from([[], [0.1], [0.1, 0.2, 0.3], [0.9, 0.1], ["a", "b"], {}, {"value": 0.5}, {"x": 1}]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
NEW_KEYS = st.one_of(st.sampled_from(["", "x y", "a.b", "Radicular", "2nd", "value", "range", "leak", "links", "yes", 123, True, None, 1.5]), st.text(max_size=12))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(place=st.sampled_from(PLACES), rename=st.booleans(), junk=JUNK, new_key=NEW_KEYS)
def test_a_priors_folder_with_one_value_or_key_turned_to_junk_loads_or_gives_a_spec_error(tmp_path_factory, place, rename, junk, new_key):
    filename, parent_path, key = place
    doc = copy.deepcopy(shipped_documents()[filename])
    parent = doc
    for part in parent_path:
        parent = parent[part]
    if rename and isinstance(parent, dict):
        if new_key in parent:
            return
        parent[new_key] = parent.pop(key)
    else:
        parent[key] = junk
    folder = copy_priors(tmp_path_factory.mktemp("fuzz") / "priors")
    (folder / filename).write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    try:
        model = pfb.load_model(folder)
    except pfb.SpecError as exc:
        assert exc.problems and all(str(folder) in p and len(p) < 2000 for p in exc.problems), exc.problems
        return
    try:
        diagnosis = model.diagnose(EXAMPLE_PATIENT)
    except pfb.EvidenceError:  # e.g. a renamed variable the demo patient names
        return
    assert_sound(diagnosis)


# ----------------------------------------------------------------- one model, eight threads


def _patients(seed: int, n: int) -> list[dict]:
    """Patients drawn from the model: their context, onset and a random half of the other findings."""
    model = shipped_model()
    rng = np.random.default_rng(seed)
    cases = model.simulate(n, seed=seed)
    observable = [c for c in cases.columns if c not in model.causes]
    context = set(model.spec.names("context"))
    return [{k: row[k] for k in observable if k in context or k == "onset" or rng.random() < 0.5} for _, row in cases.iterrows()]


def _arrays(result) -> list[np.ndarray]:
    """Return the numbers and labels of a result as arrays (compared bit for bit with np.array_equal)."""
    if isinstance(result, pd.DataFrame):
        numeric = result.select_dtypes("number")
        return [np.asarray(result.index.astype(str)), np.asarray(result.columns.astype(str)), numeric.to_numpy(), result.drop(columns=numeric.columns).astype(str).to_numpy()]
    if isinstance(result, sensitivity.OneWayResult):
        return [*_arrays(result.table), result.coefficients.to_numpy(), np.array([result.value, result.derivative])]
    return [np.asarray(result)]


def _work(patients: list[dict], barrier: Barrier | None = None) -> list[list[np.ndarray]]:
    model = shipped_model()
    if barrier is not None:
        barrier.wait()  # all threads start together
    out = []
    for i, patient in enumerate(patients):
        diagnosis = model.diagnose(patient)
        results = [diagnosis.posterior_values, diagnosis.prior_values, diagnosis.next_tests(), diagnosis.explain()]
        results.append(sensitivity.one_way(model, patient, diagnosis.top, "findings.neurogenic_claudication.leak", points=7))
        if i == 0:
            results.append(sensitivity.tornado(model, patient, diagnosis.top))
        out.append([a for r in results for a in _arrays(r)])
    return out


def test_eight_threads_on_one_model_give_bit_for_bit_the_serial_answers():
    lists = [_patients(seed, 6) for seed in range(8)]
    serial = [_work(patients) for patients in lists]
    barrier = Barrier(8)
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(lambda patients: _work(patients, barrier), lists))
    assert len(threaded) == len(serial) == 8
    for got, expected in zip(threaded, serial, strict=True):
        for got_patient, expected_patient in zip(got, expected, strict=True):
            assert len(got_patient) == len(expected_patient)
            for a, b in zip(got_patient, expected_patient, strict=True):
                assert np.array_equal(a, b), (a, b)


# ----------------------------------------------------------------- the same priors from the command line

BAD_PRIORS = {
    "key read as a number": ("findings.yaml", lambda d: rename_key(d["findings"], "deep_aching_pain", "RAW0"), "123"),
    "key read as a boolean": ("findings.yaml", lambda d: rename_key(d["findings"], "deep_aching_pain", "RAW0"), "yes"),
    "key read as null": ("findings.yaml", lambda d: rename_key(d["findings"], "deep_aching_pain", "RAW0"), "~"),
    "400-digit integer": ("findings.yaml", lambda d: d["findings"]["radicular_pain"]["leak"].update(value=HUGE)),
    "odds ratio 1e308": ("causes.yaml", lambda d: d["causes"]["pseudarthrosis"]["odds_ratios"]["smoker"].update(value=1e308, range=[1.5, 1e308])),
    "20,000 nested brackets": ("findings.yaml", lambda d: d["findings"]["radicular_pain"].update(description="RAW0"), "[" * 20_000),
    "alias bomb": ("findings.yaml", lambda d: d["findings"]["radicular_pain"].update(description="RAW0"), ALIAS_BOMB),
    "finding id with a space": ("findings.yaml", lambda d: rename_key(d["findings"], "deep_aching_pain", "radicular pain 2")),
}


@pytest.mark.parametrize("case", sorted(BAD_PRIORS))
def test_bad_priors_from_the_command_line_exit_3_without_a_traceback(priors_copy, capsys, case):
    filename, change, *raw = BAD_PRIORS[case]
    edit(priors_copy, filename, change, *raw)
    for argv in (["validate", str(priors_copy)], ["diagnose", "--priors", str(priors_copy), "smoker=yes"]):
        assert main(argv) == 3, argv
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        assert str(priors_copy / filename) in out + err
        assert len(out + err) < 2000
