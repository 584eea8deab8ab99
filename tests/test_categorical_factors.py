"""Categorical risk factors with a reference state and odds ratios per non-reference state (issue 12).

A priors folder is built in tmp_path from the shipped one with a four-state context variable,
``surgical_approach`` (reference ``posterior``), and odds ratios on two causes: ``nerve_injury``
(beside its boolean ``multilevel_fusion``) and ``epidural_fibrosis`` (none before). The tables are
checked against a hand computation, posteriors against brute-force enumeration (from the formulas,
and over the dense tables) and pgmpy, and the rest of the package (export, learning, sensitivity,
validation) against what the format promises.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import assert_same_tables, brute_force, random_documents
from oracles import brute_force as dense_brute_force

import postfusion_bayes as pfb
from postfusion_bayes import sensitivity
from postfusion_bayes.cpts import build_tables, odds_ratio_table, odds_ratio_table_by_state
from postfusion_bayes.engine.files import read_uai, tables_from_pgmpy
from postfusion_bayes.spec import load_spec, spec_from_documents

PRIORS = Path(__file__).resolve().parents[1] / "priors"
APPROACHES = ("posterior", "lateral", "anterior", "anterior_posterior")
APPROACH_SHARE = {"posterior": 0.55, "lateral": 0.25, "anterior": 0.08, "anterior_posterior": 0.12}
#: The odds ratios added (the states left out have 1, as the reference).
ODDS = {
    "nerve_injury": {"lateral": 4.0, "anterior": 0.5},
    "epidural_fibrosis": {"anterior": 0.2, "anterior_posterior": 1.5},
}
LATERAL = "causes.nerve_injury.odds_ratios.surgical_approach.lateral"


def _entry(value, low, high, note="test"):
    return {"value": value, "range": [low, high], "judgment": note}


def add_approach(documents: dict) -> dict:
    """Add surgical_approach (reference posterior) to context.yaml and its odds ratios to causes.yaml, in place."""
    documents["context.yaml"]["context"]["surgical_approach"] = {
        "description": "How the fusion was reached.",
        "states": list(APPROACHES),
        "reference": "posterior",
        "distribution": {s: _entry(p, 0.0, 1.0) for s, p in APPROACH_SHARE.items()},
    }
    for cause, by_state in ODDS.items():
        documents["causes.yaml"]["causes"][cause].setdefault("odds_ratios", {})["surgical_approach"] = {
            s: _entry(v, v / 4, v * 4) for s, v in by_state.items()
        }
    return documents


def shipped_documents() -> dict:
    return {name: yaml.safe_load((PRIORS / name).read_text(encoding="utf-8")) for name in ("context.yaml", "causes.yaml", "findings.yaml", "red_flags.yaml", "onset.yaml")}


def write_folder(folder: Path, documents: dict) -> Path:
    shutil.copytree(PRIORS, folder, ignore=shutil.ignore_patterns("*.md", "__pycache__", "*.py"))
    for name, doc in documents.items():
        (folder / name).write_text(yaml.safe_dump(doc, sort_keys=False, width=1_000_000, allow_unicode=True), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("categorical") / "priors", add_approach(shipped_documents()))


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> pfb.Model:
    """Return the same on the first edition's eight causes: the oracles (brute force, pgmpy's exact inference) grow as 2**causes."""
    from large_models import trimmed_documents

    return pfb.load_model(write_folder(tmp_path_factory.mktemp("categorical_small") / "priors", add_approach(trimmed_documents(8))))


@pytest.fixture(scope="module")
def model(folder) -> pfb.Model:
    return pfb.load_model(folder)


# ------------------------------------------------------------------ the tables


def test_the_factor_is_one_parent_with_its_four_states_and_the_parameters_are_named_by_state(model):
    tables = model.tables
    assert tables.states["surgical_approach"] == APPROACHES
    # since the second edition nerve_injury also depends on rhbmp2_used
    assert tables.parents["nerve_injury"] == ("time_since_surgery", "multilevel_fusion", "rhbmp2_used", "surgical_approach")
    assert tables.parents["epidural_fibrosis"] == ("time_since_surgery", "surgical_approach")
    assert tables.cpts["nerve_injury"].shape == (4, 2, 2, 4, 2)
    names = set(model.parameters["name"])
    assert {LATERAL, "causes.nerve_injury.odds_ratios.surgical_approach.anterior", "causes.epidural_fibrosis.odds_ratios.surgical_approach.anterior_posterior"} <= names
    assert not any("surgical_approach.posterior" in n or n.endswith("surgical_approach.anterior_posterior") and "nerve_injury" in n for n in names)
    assert model.spec.variables["surgical_approach"].reference == "posterior"
    assert model.spec.variables["smoker"].reference == "no"
    assert model.spec.cause_priors["nerve_injury"].odds_ratios["surgical_approach"] == {
        "lateral": LATERAL,
        "anterior": "causes.nerve_injury.odds_ratios.surgical_approach.anterior",
    }


def test_cause_tables_equal_the_hand_computation(model):
    spec = model.spec
    times = spec.variables["time_since_surgery"].states
    table = model.tables.cpts["nerve_injury"]
    for t, time in enumerate(times):
        p = spec.value(f"causes.nerve_injury.baseline.{time}")
        for m, multilevel in enumerate((1.0, 1.5)):
            for a, approach in enumerate(APPROACHES):
                odds = p / (1 - p) * multilevel * ODDS["nerve_injury"].get(approach, 1.0)
                # (axis 2 is rhbmp2_used, a parent since the second edition: "no", the reference, odds ratio 1)
                assert table[t, m, 0, a, 1] == pytest.approx(odds / (1 + odds), rel=1e-13)
                assert table[t, m, 0, a, 0] + table[t, m, 0, a, 1] == pytest.approx(1.0, abs=1e-15)
    # one entry by hand: under 6 weeks (0.35), single level, lateral (x4): 0.35 * 4 / (0.65 + 0.35 * 4) = 1.4 / 2.05
    assert table[0, 0, 0, 1, 1] == pytest.approx(1.4 / 2.05, rel=1e-13)
    # the reference state and a state left out give the baseline itself
    assert table[0, 0, 0, 0, 1] == pytest.approx(0.35, rel=1e-13) and table[0, 0, 0, 3, 1] == pytest.approx(0.35, rel=1e-13)
    fibrosis = model.tables.cpts["epidural_fibrosis"]
    p = spec.value("causes.epidural_fibrosis.baseline.6_weeks_to_6_months")  # 0.15
    assert fibrosis[1, 2, 1] == pytest.approx(0.15 * 0.2 / (0.85 + 0.15 * 0.2), rel=1e-13)
    assert fibrosis[1, 3, 1] == pytest.approx(0.15 * 1.5 / (0.85 + 0.15 * 1.5), rel=1e-13)


def test_the_boolean_table_is_the_categorical_one_with_odds_ratios_one_and_or():
    baseline = np.array([[0.1, 0.4, 0.7], [0.2, 0.5, 0.9]])  # a batch of two parameter sets
    ors = np.array([[3.0, 0.5], [2.0, 1.5]])
    by_state = [np.stack([np.ones(2), ors[:, k]], axis=-1) for k in range(2)]
    np.testing.assert_array_equal(odds_ratio_table(baseline, ors), odds_ratio_table_by_state(baseline, by_state))


def test_the_shipped_priors_give_the_same_tables_as_before_the_format_changed():
    # boolean factors keep their form: a cause whose factors are all boolean has the odds-ratio formula over (no, yes);
    # since the second edition most causes also have the categorical surgical_approach: the formula per state
    model = pfb.load_model()
    spec = model.spec
    boolean_only = 0
    for cause, prior in spec.cause_priors.items():
        times = spec.variables[spec.time_variable].states
        baseline = np.array([spec.value(prior.baseline[t]) for t in times])
        by_state = [np.array([spec.value(names[s]) if s in names else 1.0 for s in spec.variables[f].states]) for f, names in prior.odds_ratios.items()]
        np.testing.assert_array_equal(model.tables.cpts[cause], odds_ratio_table_by_state(baseline, by_state))
        if all(set(names) == {"yes"} for names in prior.odds_ratios.values()):
            boolean_only += 1
            ors = np.array([spec.value(names["yes"]) for names in prior.odds_ratios.values()])
            np.testing.assert_array_equal(model.tables.cpts[cause], odds_ratio_table(baseline, ors))
    assert boolean_only > 0


# ------------------------------------------------------------------ posteriors against the oracles

PATIENTS = [
    {"time_since_surgery": "under_6_weeks", "surgical_approach": "lateral", "radicular_pain": True},
    {"time_since_surgery": "6_weeks_to_6_months", "surgical_approach": "anterior", "multilevel_fusion": True, "onset": "gradual_after_relief", "straight_leg_raise": True},
    # the approach unobserved: averaged over its distribution
    {
        "time_since_surgery": "under_6_weeks",
        "smoker": False,
        "diabetes": False,
        "osteoporosis": False,
        "multilevel_fusion": False,
        "fusion_to_sacrum": False,
        "radicular_pain": True,
        "ct_screw_breach": False,
    },
]


@pytest.mark.parametrize("patient", PATIENTS)
def test_posteriors_equal_brute_force_enumeration_of_the_formulas(small_model, patient):
    dx = small_model.diagnose(patient)
    expected, _ = brute_force(small_model.spec, dict(dx.evidence), observed_only=True)
    for cause, value in expected.items():
        assert dx.posterior[cause] == pytest.approx(value, abs=1e-12, rel=1e-9), cause


def test_posteriors_equal_pgmpy_variable_elimination(small_model):
    model = small_model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from pgmpy.inference import VariableElimination

        ve = VariableElimination(model.to_pgmpy())
    for patient in PATIENTS:
        dx = model.diagnose(patient)
        result = ve.query(model.causes, evidence=dict(dx.evidence), joint=False, show_progress=False)
        for cause in model.causes:
            assert dx.posterior[cause] == pytest.approx(float(result[cause].get_value(**{cause: "present"})), abs=1e-9), (patient, cause)


@pytest.mark.parametrize("seed", range(4))
def test_small_random_networks_with_a_categorical_factor_agree_with_brute_force_over_the_dense_tables(seed):
    spec = spec_from_documents(random_documents(np.random.default_rng(seed), n_causes=3, n_findings=3, n_factors=1, categorical=4))
    assert any("approach" in p.odds_ratios for p in spec.cause_priors.values())
    model = pfb.Model(spec)
    tables = build_tables(spec)
    rng = np.random.default_rng(50 + seed)
    for _ in range(4):
        evidence = {n: v.states[rng.integers(len(v.states))] for n, v in spec.variables.items() if v.role != "cause" and rng.random() < 0.5}
        expected, _ = brute_force(spec, evidence)
        got = model.diagnose(evidence).posterior
        likelihoods = {n: (np.arange(len(spec.variables[n].states)) == spec.variables[n].states.index(s)).astype(float)[None, :] for n, s in evidence.items()}
        marginals, _ = dense_brute_force(tables, likelihoods, spec.names("cause"), 1)
        for cause, value in expected.items():
            assert got[cause] == pytest.approx(value, abs=1e-12, rel=1e-9)
            assert marginals[cause][0, 1] == pytest.approx(value, abs=1e-12, rel=1e-9)


def test_the_approach_moves_its_causes_as_the_odds_ratios_say(model):
    base = {"time_since_surgery": "under_6_weeks", "multilevel_fusion": False, "rhbmp2_used": False}  # (rhBMP-2: second edition)
    prior = {a: model.diagnose({**base, "surgical_approach": a}).posterior for a in APPROACHES}
    p = 0.35
    for a in APPROACHES:
        odds = p / (1 - p) * ODDS["nerve_injury"].get(a, 1.0)
        assert prior[a]["nerve_injury"] == pytest.approx(odds / (1 + odds), rel=1e-12)
    # unobserved: the average over the approach's distribution
    mixed = model.diagnose(base).posterior["nerve_injury"]
    assert mixed == pytest.approx(sum(APPROACH_SHARE[a] * prior[a]["nerve_injury"] for a in APPROACHES), rel=1e-12)


# ------------------------------------------------------------------ export and back


@pytest.mark.parametrize("suffix", [".bif", ".xmlbif", ".uai"])
def test_export_and_read_back(small_model, tmp_path, suffix):
    model = small_model  # eight causes: pgmpy's writers and readers, and EM, on 2**16-column tables take minutes
    path = model.write(tmp_path / f"net{suffix}")
    if suffix == ".uai":
        read = read_uai(path, model.tables.variables, model.tables.states)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            from pgmpy.readwrite import BIFReader, XMLBIFReader

            read = tables_from_pgmpy((BIFReader if suffix == ".bif" else XMLBIFReader)(str(path)).get_model())
    assert_same_tables(read, model.tables)
    assert read.states["surgical_approach"] == APPROACHES


# ------------------------------------------------------------------ learning


def test_learning_recovers_a_categorical_odds_ratio_from_simulated_cases(small_model):
    model = small_model  # eight causes: pgmpy's writers and readers, and EM, on 2**16-column tables take minutes
    true_value = 10.0  # the priors say 4 [1, 16]
    truth = model.with_parameters({LATERAL: true_value})
    cases = truth.simulate(5000, seed=21)
    assert set(cases["surgical_approach"]) == set(APPROACHES)
    learned = model.update_with_cases(cases)
    before = abs(math.log(model.spec.value(LATERAL) / true_value))
    after = abs(math.log(learned.spec.value(LATERAL) / true_value))
    assert after < min(0.15, before / 3), (learned.spec.value(LATERAL), before, after)
    # an odds ratio no case speaks against moves little: anterior stays near 0.5 (truth 0.5 too)
    assert abs(math.log(learned.spec.value("causes.nerve_injury.odds_ratios.surgical_approach.anterior") / 0.5)) < 0.3
    p = learned.spec.parameters[LATERAL]
    assert p.cases == 5000 and p.hand_set_value == 4.0 and math.isfinite(p.strength) and p.strength > 0


def test_learning_with_the_approach_partly_unrecorded_still_recovers_it(small_model):
    model = small_model  # eight causes: pgmpy's writers and readers, and EM, on 2**16-column tables take minutes
    truth = model.with_parameters({LATERAL: 10.0})
    cases = truth.simulate(3000, seed=22)
    cases.loc[np.random.default_rng(3).random(len(cases)) < 0.2, "surgical_approach"] = None
    learned = model.update_with_cases(cases)
    assert learned.learning_report.converged
    assert abs(math.log(learned.spec.value(LATERAL) / 10.0)) < 0.25
    shares = [learned.spec.value(f"context.surgical_approach.distribution.{a}") for a in APPROACHES]
    assert math.fsum(shares) == pytest.approx(1.0, abs=1e-12)


def test_the_prior_strength_of_a_categorical_odds_ratio_follows_its_states_shares(model):
    # information per case on log OR(lateral vs posterior): f_s f_r / (f_s + f_r) p (1 - p), p the cause's prior
    spec = model.spec
    p_cause = model.diagnose({}).posterior["nerve_injury"]
    f_s, f_r = APPROACH_SHARE["lateral"], APPROACH_SHARE["posterior"]
    sigma = (math.log(16.0) - math.log(1.0)) / (2 * 1.6448536269514722)
    expected = 1.0 / (sigma**2 * f_s * f_r / (f_s + f_r) * p_cause * (1 - p_cause))
    strengths = pfb.learning.prior_strengths(spec)
    assert strengths[LATERAL] == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------------ sensitivity


def test_the_new_parameters_take_part_in_tornado_monte_carlo_and_sobol(model):
    patient = PATIENTS[0]
    table = sensitivity.tornado(model, patient, "nerve_injury")
    assert LATERAL in table.index
    row = table.loc[LATERAL]
    for end in ("low", "high"):
        changed = model.with_parameters({LATERAL: row[end]}).diagnose(patient).posterior["nerve_injury"]
        assert row[f"posterior_at_{end}"] == pytest.approx(changed, rel=1e-9)
    # the anterior odds ratio does not touch a lateral patient
    assert table.loc["causes.nerve_injury.odds_ratios.surgical_approach.anterior", "swing"] == pytest.approx(0.0, abs=1e-12)
    draws = sensitivity.monte_carlo(model, patient, n=40, seed=1, parameters=[LATERAL], progress=False)
    assert draws.loc["nerve_injury", "q05"] < draws.loc["nerve_injury", "posterior"] < draws.loc["nerve_injury", "q95"]
    anterior = "causes.nerve_injury.odds_ratios.surgical_approach.anterior"
    sobol = sensitivity.sobol(model, patient, "nerve_injury", n=64, seed=1, parameters=[LATERAL, anterior], progress=False)
    assert set(sobol.index) == {LATERAL, anterior}
    assert sobol.loc[LATERAL, "total"] > 0.9 and abs(sobol.loc[anterior, "total"]) < 1e-9  # a lateral patient: only the lateral odds ratio matters


def test_one_way_in_a_categorical_odds_ratio_is_evaluated_exactly(model):
    result = sensitivity.one_way(model, PATIENTS[0], "nerve_injury", LATERAL, points=5)
    assert not result.exact_form
    for x, y in zip(result.table["value"], result.table["posterior"], strict=True):
        assert y == pytest.approx(model.with_parameters({LATERAL: x}).diagnose(PATIENTS[0]).posterior["nerve_injury"], rel=1e-9)


# ------------------------------------------------------------------ validation


def problems_of(documents: dict) -> list[str]:
    with pytest.raises(pfb.SpecError) as info:
        spec_from_documents(documents)
    return info.value.problems


def _approach_ors(d: dict, cause: str = "nerve_injury") -> dict:
    return d["causes.yaml"]["causes"][cause]["odds_ratios"]["surgical_approach"]


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda d: _approach_ors(d).update(laterall=_approach_ors(d).pop("lateral")),
         r"causes.yaml: causes.nerve_injury.odds_ratios.surgical_approach.laterall: unknown state 'laterall' of 'surgical_approach' \(did you mean 'lateral'\?\); "
         r"allowed: lateral, anterior, anterior_posterior"),
        (lambda d: _approach_ors(d).update(posterior=_entry(2.0, 1.0, 3.0)),
         r"causes.nerve_injury.odds_ratios.surgical_approach.posterior: 'posterior' is the reference state of 'surgical_approach': its odds ratio is 1 by definition; "
         r"allowed: lateral, anterior, anterior_posterior"),
        (lambda d: d["causes.yaml"]["causes"]["nerve_injury"]["odds_ratios"].update(surgical_aproach=d["causes.yaml"]["causes"]["nerve_injury"]["odds_ratios"].pop("surgical_approach")),
         r"causes.nerve_injury.odds_ratios.surgical_aproach: unknown risk factor 'surgical_aproach' \(did you mean 'surgical_approach'\?\); allowed: context variables smoker, .*surgical_approach"),
        (lambda d: d["causes.yaml"]["causes"]["nerve_injury"]["odds_ratios"].update(radicular_pain=_entry(2.0, 1.0, 3.0)),
         r"causes.nerve_injury.odds_ratios.radicular_pain: unknown risk factor 'radicular_pain'.*allowed: context variables"),
        (lambda d: d["context.yaml"]["context"]["surgical_approach"].pop("reference"),
         r"causes.yaml: causes.nerve_injury.odds_ratios.surgical_approach: 'surgical_approach' is categorical \(posterior, lateral, anterior, anterior_posterior\) "
         r"and context.yaml declares no reference state for it \(context.surgical_approach.reference\)"),
        (lambda d: d["context.yaml"]["context"]["surgical_approach"].update(reference="posterio"),
         r"context.yaml: context.surgical_approach.reference: unknown reference state 'posterio' \(did you mean 'posterior'\?\); allowed: posterior, lateral"),
        (lambda d: d["context.yaml"]["context"]["smoker"].update(reference="no"),
         r"context.yaml: context.smoker.reference: a boolean context variable's reference is always 'no'"),
        (lambda d: d["causes.yaml"]["causes"]["nerve_injury"]["odds_ratios"].update(surgical_approach=_entry(2.0, 1.0, 3.0)),
         r"causes.nerve_injury.odds_ratios.surgical_approach: 'surgical_approach' is categorical: give one odds ratio per non-reference state"),
        (lambda d: d["causes.yaml"]["causes"]["nerve_injury"]["odds_ratios"].update(surgical_approach={}),
         r"causes.nerve_injury.odds_ratios.surgical_approach: no odds ratio given; allowed: one per non-reference state \(lateral, anterior, anterior_posterior\), or leave the factor out"),
        (lambda d: d["causes.yaml"]["causes"]["pseudarthrosis"]["odds_ratios"].update(smoker={"yes": _entry(2.0, 1.0, 3.0)}),
         r"causes.pseudarthrosis.odds_ratios.smoker: a boolean risk factor takes one odds ratio, for 'yes'"),
        (lambda d: d["causes.yaml"]["causes"]["pseudarthrosis"]["odds_ratios"].update(time_since_surgery={"over_2_years": _entry(2.0, 1.0, 3.0)}),
         r"causes.pseudarthrosis.odds_ratios.time_since_surgery: 'time_since_surgery' is the time variable: its states have their own baselines"),
        (lambda d: _approach_ors(d)["lateral"].update(value=-4.0, range=[-5.0, 5.0]),
         r"causes.nerve_injury.odds_ratios.surgical_approach.lateral: odds ratio -4 must be positive"),
        (lambda d: _approach_ors(d)["lateral"].update(value=40.0),
         r"causes.nerve_injury.odds_ratios.surgical_approach.lateral: value 40 is outside its own range \[1, 16\]"),
    ],
)  # fmt: skip
def test_each_bad_categorical_form_gets_a_spec_error_naming_file_and_key(change, expected):
    documents = add_approach(shipped_documents())
    change(documents)
    problems = problems_of(documents)
    assert any(re.search(expected, p) for p in problems), problems


def test_the_odds_product_check_takes_one_state_of_a_factor_at_a_time():
    # 21 states with odds ratio 1e15 each: no patient has two of them, so the largest product is 1e15 (summed over
    # the states it would be 1e315); 20 boolean factors of 1e15 beside it reach 1e315 for one patient: refused
    documents = random_documents(np.random.default_rng(0), n_causes=1, n_findings=1, n_factors=20, categorical=22)
    states = [f"a{i}" for i in range(1, 22)]
    ors = documents["causes.yaml"]["causes"]["cause0"]["odds_ratios"] = {"approach": {s: _entry(1e15, 1.0, 1e15) for s in states}}
    spec_from_documents(documents)
    ors.update({f"risk{i}": _entry(1e15, 1.0, 1e15) for i in range(20)})
    problems = problems_of(documents)
    assert any("causes.yaml: causes.cause0.odds_ratios: the odds ratios that raise the odds multiply to about 1e+315" in p for p in problems), problems


def test_a_categorical_factor_reads_from_yaml_files_and_pickles(folder, model):
    import pickle

    spec = load_spec(folder)
    again = pickle.loads(pickle.dumps(spec))
    assert again == spec and again.cause_priors["nerve_injury"].odds_ratios["surgical_approach"]["lateral"] == LATERAL
    with pytest.raises(TypeError):
        again.cause_priors["nerve_injury"].odds_ratios["surgical_approach"]["lateral"] = "x"  # read-only


# ------------------------------------------------------------------ the rest of the package with a four-state context variable


def test_diagnose_many_and_the_encoded_evidence_take_the_approach(model):
    frame = pd.DataFrame({"surgical_approach": APPROACHES, "time_since_surgery": ["under_6_weeks"] * 4})
    many = model.diagnose_many(frame)
    for i, a in enumerate(APPROACHES):
        assert many.iloc[i]["nerve_injury"] == pytest.approx(model.diagnose({"surgical_approach": a, "time_since_surgery": "under_6_weeks"}).posterior["nerve_injury"], rel=1e-12)
    with pytest.raises(pfb.EvidenceError, match=r"surgical_approach.*'laterl'.*lateral"):
        model.diagnose({"surgical_approach": "laterl"})


# ------------------------------------------------------------------ no fixed number of onset states, no fixed list of test kinds

FIFTH = "unchanged_from_before_surgery"


def second_edition_shape(documents: dict) -> dict:
    """Add the approach, a fifth onset state and a new test kind with a finding that names it, in place."""
    add_approach(documents)
    onset = documents["onset.yaml"]["onset"]
    if FIFTH not in onset["states"]:  # (the second edition's priors have it already)
        onset["states"].append(FIFTH)
        for dist in onset["distributions"].values():
            for entry in dist.values():
                entry.update(value=entry["value"] * 0.8, range=[0.0, 1.0])
            dist[FIFTH] = _entry(1.0 - math.fsum(e["value"] for e in dist.values()), 0.0, 1.0)
    findings = documents["findings.yaml"]
    findings["test_kinds"]["laboratory"] = {"description": "a blood test", "cost": 2, "invasive": False, "judgment": "test"}
    findings["findings"]["raised_inflammatory_markers"] = {
        "description": "CRP or ESR raised",
        "test": "laboratory",
        "leak": _entry(0.05, 0.0, 1.0),
        "links": {"pseudarthrosis": _entry(0.3, 0.0, 1.0)},
    }
    return documents


@pytest.fixture(scope="module")
def second(tmp_path_factory) -> tuple[Path, pfb.Model]:
    from large_models import trimmed_documents

    # the first edition's eight causes (the brute-force oracle grows as 2**causes), in the shape set here
    folder = write_folder(tmp_path_factory.mktemp("second") / "priors", second_edition_shape(trimmed_documents(8)))
    return folder, pfb.load_model(folder)


def test_a_fifth_onset_state_and_a_new_test_kind_need_no_new_code(second):
    _, model = second
    assert len(model.spec.variables["onset"].states) == 5
    patient = {"time_since_surgery": "6_to_24_months", "surgical_approach": "lateral", "onset": FIFTH, "radicular_pain": True}
    dx = model.diagnose(patient)
    expected, _ = brute_force(model.spec, dict(dx.evidence), observed_only=True)
    for cause, value in expected.items():
        assert dx.posterior[cause] == pytest.approx(value, abs=1e-12, rel=1e-9)
    tests = dx.next_tests()
    assert tests.loc["raised_inflammatory_markers", "test_kind"] == "laboratory" and tests.loc["raised_inflammatory_markers", "cost"] == 2
    assert "surgical_approach" not in tests.index  # context is no test
    by_procedure = dx.next_tests(by="procedure")
    assert "laboratory" in set(by_procedure["test_kind"])
    table = dx.explain()
    assert set(table.index) == {"onset", "radicular_pain"} and table.loc["onset", "observed"] == FIFTH
    accuracy = model.implied_accuracy("onset", "si_joint_strain", state=FIFTH, surgical_approach="anterior")
    assert 0 < accuracy["sensitivity"] < 1
    assert ("onset", FIFTH) in model.likelihood_ratios(surgical_approach="lateral").index


def test_plots_take_the_four_state_context_and_the_fifth_onset_state(second):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from postfusion_bayes import plotting

    _, model = second
    dx = model.diagnose({"surgical_approach": "anterior_posterior", "onset": FIFTH, "raised_inflammatory_markers": True})
    try:
        assert plotting.diagnosis_plot(dx) is not None
        assert plotting.explanation_plot(dx.explain()) is not None
        assert plotting.network_plot(model) is not None
    finally:
        plt.close("all")


def test_the_command_line_takes_the_approach_and_the_new_states(second, capsys):
    from postfusion_bayes.cli import main

    folder, model = second
    code = main(["diagnose", "surgical_approach=lateral", "time_since_surgery=under_6_weeks", f"onset={FIFTH}", "--priors", str(folder), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    answer = json.loads(out)
    expected = model.diagnose({"surgical_approach": "lateral", "time_since_surgery": "under_6_weeks", "onset": FIFTH}).posterior
    got = {row["cause"]: row["posterior"] for row in answer["causes"]}
    for cause, value in expected.items():
        assert got[cause] == pytest.approx(value, abs=1e-6)
    assert main(["diagnose", "surgical_approach=laterl", "--priors", str(folder)]) == 3
    assert "did you mean 'lateral'" in capsys.readouterr().err
