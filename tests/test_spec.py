"""Loading and validation of priors folders, and the contract every shipped priors file meets."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import pytest
import yaml

import postfusion_bayes as pfb
from postfusion_bayes.spec import PRIOR_FILES, default_priors_path, load_spec

PRIORS = default_priors_path()

CAUSES = [
    "nerve_injury", "pseudarthrosis", "epidural_fibrosis", "adjacent_segment_disease",
    "recurrent_herniation", "si_joint_strain", "piriformis_syndrome", "foraminal_stenosis",
    # second edition (issue 12)
    "postoperative_haematoma", "surgical_site_infection", "vascular_insufficiency", "hip_disease",
    "meralgia_paresthetica", "lumbar_plexopathy", "sacral_insufficiency_fracture", "other_cause",
]
CONTEXT = {
    "time_since_surgery": ("under_6_weeks", "6_weeks_to_6_months", "6_to_24_months", "over_2_years"),
    "smoker": ("no", "yes"), "diabetes": ("no", "yes"), "osteoporosis": ("no", "yes"),
    "multilevel_fusion": ("no", "yes"), "fusion_to_sacrum": ("no", "yes"),
    "surgical_approach": ("posterior", "lateral", "anterior", "anterior_posterior"),
    "rhbmp2_used": ("no", "yes"), "age_over_65": ("no", "yes"),
}
FINDINGS = [
    "radicular_pain", "deep_aching_pain", "back_pain", "buttock_pain", "bilateral_leg_symptoms",
    "numbness_tingling", "leg_weakness", "worse_sitting", "relief_sitting_or_bending_forward",
    "neurogenic_claudication", "mechanical_pain", "straight_leg_raise", "si_provocation_cluster",
    "piriformis_signs", "sciatic_notch_tenderness", "mri_recurrent_disc", "mri_enhancing_scar",
    "mri_adjacent_level_stenosis", "mri_foraminal_stenosis", "ct_nonunion", "xray_screw_halo",
    "flexion_extension_motion", "ct_screw_breach", "emg_radiculopathy", "si_block_relief",
    "piriformis_injection_relief",
    "symptoms_contralateral_to_approach", "radicular_pain_adjacent_level", "anterior_thigh_symptoms",
    "anterolateral_thigh_numbness", "hip_flexor_or_quadriceps_weakness", "groin_pain_on_hip_motion",
    "absent_distal_pulses", "abdominal_or_flank_pain", "raised_inflammatory_markers", "imaging_fluid_collection",
    "imaging_implant_migration", "imaging_sacral_fracture", "selective_root_block_relief", "hip_injection_relief",
    "imaging_arterial_occlusion",
]
RED_FLAGS = ["saddle_anesthesia", "bladder_bowel_dysfunction", "progressive_weakness", "fever", "wound_drainage"]
ONSET = ("immediate", "gradual_after_relief", "sudden_after_relief", "late_after_good_result", "unchanged_from_before_surgery")

# A citation names an author (capitalised surname or a known identifier) and a year.
CITATION = re.compile(r"((?:1[89]|20)\d\d)|PMC\d+|PMID \d+|NCT\d+|year not stated in the evidence brief")


# ----------------------------------------------------------------- contract over every priors file


def _entries(node, path=()):
    """Every number entry (a mapping with a 'value') in a YAML document, with its key path."""
    if isinstance(node, dict):
        if "value" in node:
            yield ".".join(path), node
        else:
            for key, sub in node.items():
                yield from _entries(sub, path + (str(key),))


@pytest.mark.parametrize("filename", sorted(PRIOR_FILES))
def test_every_number_in_every_priors_file_has_value_range_and_source(filename):
    doc = yaml.safe_load((PRIORS / filename).read_text(encoding="utf-8"))
    entries = list(_entries(doc))
    assert entries, f"{filename} holds no numbers"
    for key, entry in entries:
        low, high = entry["range"]
        assert low <= entry["value"] <= high, f"{filename}: {key}"
        source, judgment = entry.get("source", ""), entry.get("judgment", "")
        assert source.strip() or judgment.strip(), f"{filename}: {key} has neither source nor judgment"
        if source.strip():
            assert CITATION.search(source), f"{filename}: {key}: source {source!r} names no year or identifier"
            # a source from another population or another quantity says how it was carried over
            assert judgment.strip() or entry.get("population") == "post_fusion_leg_pain", (
                f"{filename}: {key}: a sourced number needs a judgment note on how the source's population and "
                "quantity were carried over to leg pain after fusion, or population: post_fusion_leg_pain"
            )


def test_every_priors_file_is_loaded_and_every_number_becomes_a_parameter():
    spec = load_spec(PRIORS)
    counted = sum(len(list(_entries(yaml.safe_load((PRIORS / f).read_text())))) for f in PRIOR_FILES)
    assert len(spec.parameters) == counted
    for p in spec.parameters.values():
        assert p.low <= p.value <= p.high
        assert p.source or p.judgment
        assert Path(p.file).name in PRIOR_FILES


def test_shipped_priors_declare_exactly_the_required_ids():
    model = pfb.load_model()
    v = model.variables.set_index("name")
    assert model.causes == CAUSES
    for name, states in CONTEXT.items():
        assert v.loc[name, "role"] == "context" and tuple(v.loc[name, "states"]) == states
    for name in FINDINGS:
        assert v.loc[name, "role"] == "finding" and tuple(v.loc[name, "states"]) == ("no", "yes")
    assert v.loc["onset", "role"] == "finding" and tuple(v.loc["onset", "states"]) == ONSET
    for name in RED_FLAGS:
        assert v.loc[name, "role"] == "red_flag"
    assert set(model.red_flags) == set(RED_FLAGS)
    assert all(v["description"].str.len() > 10)


def test_parameters_table_has_one_row_per_number_with_word_columns():
    params = pfb.load_model().parameters
    assert list(params.columns[:5]) == ["name", "value", "low", "high", "source"]
    assert params["name"].is_unique
    assert ((params["kind"] == "probability") | (params["kind"] == "odds_ratio")).all()
    probabilities = params[params["kind"] == "probability"]
    assert probabilities["value"].between(0, 1).all()


def test_the_leading_base_rate_says_it_is_judgment_anchored_on_an_unverified_study():
    spec = load_spec()
    p = spec.parameters["causes.foraminal_stenosis.baseline.over_2_years"]
    assert p.value == 0.279  # for the reference patient (no rhBMP-2): the population average stays at the 0.29 anchor
    assert "Waguespack" in p.judgment and "could not be found to verify" in p.judgment
    assert "Waguespack" not in p.source


def test_no_shipped_number_claims_a_post_fusion_leg_pain_source():
    # none of today's sources studied patients presenting with leg pain after fusion (priors/README.md)
    assert {p.population for p in load_spec().parameters.values()} == {""}


# ----------------------------------------------------------------- bad priors: one error listing everything


@pytest.fixture
def priors_copy(tmp_path):
    folder = tmp_path / "priors"
    shutil.copytree(PRIORS, folder, ignore=shutil.ignore_patterns("*.md", "__pycache__", "*.py"))
    return folder


def _edit(folder: Path, filename: str, edit):
    path = folder / filename
    doc = yaml.safe_load(path.read_text())
    edit(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _problems(folder) -> list[str]:
    with pytest.raises(pfb.SpecError) as info:
        load_spec(folder)
    assert isinstance(info.value, ValueError)
    return info.value.problems


def test_a_copy_of_the_shipped_priors_loads(priors_copy):
    assert load_spec(priors_copy).names("cause") == CAUSES


def test_a_priors_folder_read_again_unchanged_gives_the_same_spec_and_a_changed_file_is_read_anew(priors_copy):
    first = load_spec(priors_copy)
    assert load_spec(priors_copy) is first  # the memo: same folder, same text
    before = first.parameters["findings.back_pain.leak"].value
    _edit(priors_copy, "findings.yaml", lambda d: d["findings"]["back_pain"]["leak"].update(value=0.31))
    changed = load_spec(priors_copy)
    assert changed is not first
    assert changed.parameters["findings.back_pain.leak"].value == 0.31 != before
    (priors_copy / "finding.yaml").write_text("x: 1\n")  # an extra file is a problem even when the five files are unchanged
    assert any("unexpected file" in p for p in _problems(priors_copy))


@pytest.mark.parametrize(
    "filename, edit, expected",
    [
        ("findings.yaml", lambda d: d["findings"]["radicular_pain"]["links"].update(nerve_injry={"value": 0.5, "range": [0.4, 0.6], "judgment": "x"}),
         r"findings.yaml: findings.radicular_pain.links.nerve_injry: unknown cause 'nerve_injry' \(did you mean 'nerve_injury'\?\)"),
        ("findings.yaml", lambda d: d["findings"]["radicular_pain"]["leak"].pop("source", None) or d["findings"]["radicular_pain"]["leak"].pop("judgment"),
         r"findings.yaml: findings.radicular_pain.leak: missing source"),
        ("findings.yaml", lambda d: d["findings"]["back_pain"]["leak"].pop("range"),
         r"findings.yaml: findings.back_pain.leak: missing range"),
        ("findings.yaml", lambda d: d["findings"]["back_pain"]["leak"].update(value=1.4, range=[0.2, 1.5]),
         r"findings.back_pain.leak: value 1.4 is outside \[0, 1\]"),
        ("findings.yaml", lambda d: d["findings"]["back_pain"]["leak"].update(value=0.9),
         r"findings.back_pain.leak: value 0.9 is outside its own range \[0.25, 0.6\]"),
        ("findings.yaml", lambda d: d["findings"]["back_pain"]["leak"].update(range=[0.6, 0.25]),
         r"findings.back_pain.leak: range low 0.6 is above high 0.25"),
        ("onset.yaml", lambda d: d["onset"]["distributions"]["nerve_injury"]["immediate"].update(value=0.8),
         r"onset.yaml: onset.distributions.nerve_injury: values sum to 0.95, not 1"),
        ("onset.yaml", lambda d: d["onset"]["distributions"]["leak"].update(late=d["onset"]["distributions"]["leak"].pop("late_after_good_result")),
         r"onset.distributions.leak.late: unknown state 'late' \(did you mean 'late_after_good_result'\?\); allowed: immediate"),
        ("causes.yaml", lambda d: d["causes"]["pseudarthrosis"]["baseline"].update(over_2_yrs=d["causes"]["pseudarthrosis"]["baseline"].pop("over_2_years")),
         r"causes.pseudarthrosis.baseline.over_2_yrs: unknown state 'over_2_yrs' \(did you mean 'over_2_years'\?\)"),
        ("causes.yaml", lambda d: d["causes"]["pseudarthrosis"]["odds_ratios"].update(smoking=d["causes"]["pseudarthrosis"]["odds_ratios"].pop("smoker")),
         r"causes.pseudarthrosis.odds_ratios.smoking: unknown risk factor 'smoking' \(did you mean 'smoker'\?\)"),
        ("causes.yaml", lambda d: d["causes"]["pseudarthrosis"]["odds_ratios"]["smoker"].update(value=-1.0, range=[-2, 3]),
         r"odds_ratios.smoker: odds ratio -1 must be positive"),
        ("causes.yaml", lambda d: d["causes"]["pseudarthrosis"]["odds_ratios"]["smoker"].update(valu=2.0),
         r"odds_ratios.smoker.valu: unknown field \(did you mean 'value'\?\)"),
        ("context.yaml", lambda d: d["context"]["time_since_surgery"]["distribution"]["under_6_weeks"].update(value="a quarter"),
         r"context.time_since_surgery.distribution.under_6_weeks: value 'a quarter' is not a finite number"),
        ("red_flags.yaml", lambda d: d["red_flags"]["fever"].pop("advice"),
         r"red_flags.fever.advice: expected a non-empty text"),
        ("findings.yaml", lambda d: d["findings"].update(smoker=d["findings"]["back_pain"]),
         r"findings.smoker: id 'smoker' is already declared as a context"),
        ("findings.yaml", lambda d: d["findings"]["mri_enhancing_scar"].update(test="gadolinium_mr"),
         r"findings.mri_enhancing_scar.test: unknown test kind 'gadolinium_mr' \(did you mean 'gadolinium_mri'\?\); allowed: history"),
        ("findings.yaml", lambda d: d["findings"]["back_pain"].pop("test"),
         r"findings.back_pain: missing test \(the kind of test that observes it\); allowed: history, examination"),
        ("findings.yaml", lambda d: d["test_kinds"]["ct"].update(cost=-2),
         r"test_kinds.ct.cost: expected a finite number >= 0 \(relative cost\), got -2"),
        ("findings.yaml", lambda d: d["test_kinds"]["ct"].update(invasive="no"),
         r"test_kinds.ct.invasive: expected true or false, got 'no'"),
        ("findings.yaml", lambda d: d["test_kinds"]["ct"].update(costs=3),
         r"test_kinds.ct.costs: unknown key \(did you mean 'cost'\?\)"),
        ("onset.yaml", lambda d: d["onset"].update(test="histroy"),
         r"onset.yaml: onset.test: unknown test kind 'histroy' \(did you mean 'history'\?\)"),
        ("red_flags.yaml", lambda d: d["red_flags"]["fever"].update(test="history"),
         r"red_flags.fever.test: unknown key"),
        ("findings.yaml", lambda d: d["findings"]["ct_nonunion"]["leak"].update(population="post_fusion"),
         r"findings.ct_nonunion.leak.population: unknown population 'post_fusion' \(did you mean 'post_fusion_leg_pain'\?\); allowed: post_fusion_leg_pain"),
        ("findings.yaml", lambda d: d["findings"]["radicular_pain"]["leak"].update(population="post_fusion_leg_pain"),
         r"findings.radicular_pain.leak.population: a population marker describes a source"),
    ],
)
def test_each_bad_priors_file_gets_a_spec_error_naming_file_and_key(priors_copy, filename, edit, expected):
    _edit(priors_copy, filename, edit)
    problems = _problems(priors_copy)
    assert any(re.search(expected, p) for p in problems), problems
    assert all(str(priors_copy) in p for p in problems)


def test_every_problem_is_reported_at_once(priors_copy):
    def edit(d):
        d["findings"]["back_pain"]["leak"]["value"] = 2.0
        d["findings"]["radicular_pain"]["links"]["nerve_injury"].pop("range")
        d["findings"]["buttock_pain"]["links"]["si_joint_strain"].update(value=0.99)
    _edit(priors_copy, "findings.yaml", edit)
    problems = _problems(priors_copy)
    keys = {re.search(r"(findings\.[a-z_]+\.[a-z_.]+):", p).group(1) for p in problems}
    assert keys == {"findings.back_pain.leak", "findings.radicular_pain.links.nerve_injury", "findings.buttock_pain.links.si_joint_strain"}
    assert any("back_pain.leak" in p for p in problems)
    assert any("radicular_pain.links.nerve_injury" in p for p in problems)
    assert any("buttock_pain.links.si_joint_strain" in p for p in problems)


def test_a_number_is_never_repaired(priors_copy):
    _edit(priors_copy, "onset.yaml", lambda d: d["onset"]["distributions"]["leak"]["immediate"].update(value=0.26))
    problems = _problems(priors_copy)
    assert any("values sum to 1.01" in p and "not rescaled" in p for p in problems)


def test_missing_file_unexpected_file_and_bad_yaml(priors_copy):
    (priors_copy / "onset.yaml").unlink()
    (priors_copy / "finding.yaml").write_text("x: 1\n")
    (priors_copy / "context.yaml").write_text("context: [unclosed\n")
    problems = _problems(priors_copy)
    assert any("onset.yaml: file is missing" in p for p in problems)
    assert any("finding.yaml: unexpected file (did you mean 'findings.yaml'?)" in p for p in problems)
    assert any("context.yaml: not valid YAML" in p for p in problems)


def test_a_folder_that_does_not_exist(tmp_path):
    with pytest.raises(pfb.SpecError, match="priors folder does not exist"):
        load_spec(tmp_path / "nowhere")


def test_a_cycle_is_reported(priors_copy):
    # a finding that is also declared as a cause would make the graph cyclic; ids are unique per role
    loop = {"value": 0.5, "range": [0.4, 0.6], "judgment": "x"}
    _edit(priors_copy, "findings.yaml", lambda d: d["findings"].update(nerve_injury={"description": "loop", "leak": d["findings"]["back_pain"]["leak"], "links": {"nerve_injury": loop}}))
    problems = _problems(priors_copy)
    assert any("'nerve_injury' is already declared as a cause" in p for p in problems)


def test_with_values_checks_domain_but_not_plausible_range():
    spec = load_spec()
    changed = spec.with_values({"findings.back_pain.leak": 0.7})  # outside its range [0.25, 0.6]: allowed
    assert changed.value("findings.back_pain.leak") == 0.7
    assert spec.value("findings.back_pain.leak") == 0.37
    with pytest.raises(pfb.SpecError, match=r"outside \[0, 1\]"):
        spec.with_values({"findings.back_pain.leak": 1.5})
    with pytest.raises(pfb.SpecError, match=r"'findings.back_pain.lek' does not exist \(did you mean 'findings.back_pain.leak'\?\)"):
        spec.with_values({"findings.back_pain.lek": 0.3})
    with pytest.raises(pfb.SpecError, match="values sum to 0.9, not 1"):
        spec.with_values({"onset.distributions.leak.immediate": 0.15})
    with pytest.raises(pfb.SpecError, match="value 'high' is not a finite number"):
        spec.with_values({"findings.back_pain.leak": "high"})


def test_parameter_domain():
    spec = load_spec()
    assert spec.parameters["findings.back_pain.leak"].domain == (0.0, 1.0)
    assert spec.parameters["causes.pseudarthrosis.odds_ratios.smoker"].domain == (0.0, math.inf)


def test_a_key_given_twice_is_refused_not_overwritten(priors_copy):
    path = priors_copy / "findings.yaml"
    text = path.read_text()
    text = text.replace("  radicular_pain:\n", "  radicular_pain:\n    leak: {value: 0.99, range: [0.9, 1.0], judgment: duplicate}\n", 1)
    path.write_text(text)
    problems = _problems(priors_copy)
    assert any("findings.yaml: not valid YAML" in p and "found the key 'leak' twice" in p for p in problems)


def test_an_empty_distribution_is_reported(priors_copy):
    _edit(priors_copy, "onset.yaml", lambda d: d["onset"]["distributions"].update(leak={}))
    problems = _problems(priors_copy)
    assert any("onset.distributions.leak: missing states ['immediate'" in p for p in problems)


def test_a_two_state_categorical_context_distribution_must_sum_to_one(priors_copy):
    def edit(d):
        d["context"]["approach"] = {
            "description": "surgical approach", "states": ["open", "minimally_invasive"],
            "distribution": {"open": {"value": 0.5, "range": [0.2, 0.8], "judgment": "x"}, "minimally_invasive": {"value": 0.7, "range": [0.2, 0.8], "judgment": "x"}},
        }
    _edit(priors_copy, "context.yaml", edit)
    problems = _problems(priors_copy)
    assert any("context.approach.distribution: values sum to 1.2, not 1" in p for p in problems)


def test_test_kinds_are_optional_but_then_no_finding_may_name_one(priors_copy):
    def drop_kinds(d):
        d.pop("test_kinds")
        for node in d["findings"].values():
            node.pop("test")
    _edit(priors_copy, "findings.yaml", drop_kinds)
    _edit(priors_copy, "onset.yaml", lambda d: d["onset"].pop("test"))
    spec = load_spec(priors_copy)
    assert dict(spec.test_kinds) == {}
    assert all(v.test == "" for v in spec.variables.values())
    _edit(priors_copy, "onset.yaml", lambda d: d["onset"].update(test="history"))
    assert any("declares no test_kinds" in p for p in _problems(priors_copy))


def test_shipped_test_kinds_cover_every_finding_and_no_red_flag():
    spec = load_spec()
    for name in spec.names("finding"):
        assert spec.variables[name].test in spec.test_kinds, name
    assert all(spec.variables[name].test == "" for name in spec.names("red_flag"))
    kinds = spec.test_kinds
    assert kinds["history"].cost == 0 and not kinds["history"].invasive
    assert kinds["si_joint_block"].invasive and kinds["si_joint_block"].cost == max(k.cost for k in kinds.values())


def test_an_empty_or_invalid_test_kind_is_reported_once(priors_copy):
    def edit(d):
        d["test_kinds"]["ct"] = {}
        d["test_kinds"]["radiographs"]["cost"] = -1
    _edit(priors_copy, "findings.yaml", edit)
    problems = _problems(priors_copy)
    assert any("test_kinds.ct: empty test kind" in p for p in problems)
    assert any("test_kinds.radiographs.cost: expected a finite number >= 0" in p for p in problems)
    assert not any("unknown test kind" in p for p in problems), problems


def test_an_unreadable_file_or_a_file_for_a_folder_is_a_spec_error(priors_copy):
    (priors_copy / "onset.yaml").write_bytes(b"\xff\xfe")
    (priors_copy / "context.yaml").write_text("a: [1, 2\n")
    problems = _problems(priors_copy)
    assert any(p.endswith("onset.yaml: cannot be read as UTF-8 text (byte 0)") for p in problems)
    yaml_problem = [p for p in problems if "context.yaml: not valid YAML" in p]
    assert len(yaml_problem) == 1 and "\n" not in yaml_problem[0] and "(line 2, column 1)" in yaml_problem[0]
    with pytest.raises(pfb.SpecError, match="is a file, not a priors folder"):
        load_spec(priors_copy / "causes.yaml")


def test_libyaml_reads_the_priors_as_the_pure_python_loader_does():
    from postfusion_bayes import spec as spec_module

    if spec_module._FastUniqueKeyLoader is None:
        pytest.skip("PyYAML without libyaml")
    for filename in PRIOR_FILES:
        text = (PRIORS / filename).read_text(encoding="utf-8")
        assert yaml.load(text, Loader=spec_module._FastUniqueKeyLoader) == yaml.load(text, Loader=spec_module._UniqueKeyLoader)
    with pytest.raises(yaml.constructor.ConstructorError, match="found the key 'a' twice"):
        yaml.load("a: 1\na: 2\n", Loader=spec_module._FastUniqueKeyLoader)


def test_a_post_fusion_leg_pain_source_needs_no_judgment_note(priors_copy):
    def edit(d):
        entry = d["findings"]["ct_nonunion"]["leak"]
        entry.pop("judgment")
        entry["population"] = "post_fusion_leg_pain"
    _edit(priors_copy, "findings.yaml", edit)
    p = load_spec(priors_copy).parameters["findings.ct_nonunion.leak"]
    assert p.population == "post_fusion_leg_pain" and p.judgment == "" and p.source
