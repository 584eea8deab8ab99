#!/usr/bin/env python3
"""Check validation/published_cases.yaml against the model's vocabulary.

Standalone: needs PyYAML only and never imports postfusion_bayes (the protocol forbids
running the model while the set is built). The vocabulary below is copied from
priors/context.yaml, causes.yaml, findings.yaml, red_flags.yaml, onset.yaml and from the
tables of issue 12 (second edition of the model).

Usage: python validation/check_cases.py [path/to/published_cases.yaml]
Exit status 0 when every check passes, 1 otherwise (every problem is listed).
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

TIME_STATES = ["under_6_weeks", "6_weeks_to_6_months", "6_to_24_months", "over_2_years"]

# context.yaml (existing) + issue 12 (surgical_approach, rhbmp2_used, age_over_65).
# rhbmp2_used and age_over_65 have states no/yes in issue 12; they are written as YAML
# booleans false/true here (PyYAML reads an unquoted yes/no as a boolean anyway).
CONTEXT = {
    "time_since_surgery": TIME_STATES,
    "smoker": [True, False],
    "diabetes": [True, False],
    "osteoporosis": [True, False],
    "multilevel_fusion": [True, False],
    "fusion_to_sacrum": [True, False],
    "surgical_approach": ["posterior", "lateral", "anterior", "anterior_posterior"],
    "rhbmp2_used": [True, False],
    "age_over_65": [True, False],
}

CAUSES_OLD = [
    "nerve_injury", "pseudarthrosis", "epidural_fibrosis", "adjacent_segment_disease",
    "recurrent_herniation", "si_joint_strain", "piriformis_syndrome", "foraminal_stenosis",
]
CAUSES_NEW = [
    "postoperative_haematoma", "surgical_site_infection", "vascular_insufficiency",
    "hip_disease", "meralgia_paresthetica", "lumbar_plexopathy",
    "sacral_insufficiency_fracture", "other_cause",
]
CAUSES = CAUSES_OLD + CAUSES_NEW

# Findings by test kind. History and examination findings may appear at presentation;
# the others (imaging, laboratory, electrodiagnosis, injections, blocks) only in the workup.
FINDINGS_PRESENTATION = [
    # findings.yaml, test history / examination
    "radicular_pain", "deep_aching_pain", "back_pain", "buttock_pain", "bilateral_leg_symptoms",
    "numbness_tingling", "leg_weakness", "worse_sitting", "relief_sitting_or_bending_forward",
    "neurogenic_claudication", "mechanical_pain", "straight_leg_raise", "si_provocation_cluster",
    "piriformis_signs", "sciatic_notch_tenderness",
    # issue 12, history / examination
    "symptoms_contralateral_to_approach", "radicular_pain_adjacent_level",
    "anterior_thigh_symptoms", "anterolateral_thigh_numbness",
    "hip_flexor_or_quadriceps_weakness", "groin_pain_on_hip_motion", "absent_distal_pulses",
    "abdominal_or_flank_pain",
]
FINDINGS_WORKUP_ONLY = [
    # findings.yaml: gadolinium MRI, CT, radiographs, electrodiagnosis, blocks, injections
    "mri_recurrent_disc", "mri_enhancing_scar", "mri_adjacent_level_stenosis",
    "mri_foraminal_stenosis", "ct_nonunion", "xray_screw_halo", "flexion_extension_motion",
    "ct_screw_breach", "emg_radiculopathy", "si_block_relief", "piriformis_injection_relief",
    # issue 12: laboratory, imaging, injections
    "raised_inflammatory_markers", "imaging_fluid_collection", "imaging_implant_migration",
    "imaging_sacral_fracture", "selective_root_block_relief", "hip_injection_relief",
    # vocabulary amendment (PROTOCOL.md, 2026-11-28): vascular imaging of the leg's arteries
    "imaging_arterial_occlusion",
]
RED_FLAGS = ["saddle_anesthesia", "bladder_bowel_dysfunction", "progressive_weakness",
             "fever", "wound_drainage"]
ONSET_STATES = ["immediate", "gradual_after_relief", "sudden_after_relief",
                "late_after_good_result", "unchanged_from_before_surgery"]

PRESENTATION_VOCAB: dict[str, list] = dict(CONTEXT)
PRESENTATION_VOCAB.update({f: [True, False] for f in FINDINGS_PRESENTATION + RED_FLAGS})
PRESENTATION_VOCAB["onset"] = ONSET_STATES
WORKUP_VOCAB: dict[str, list] = dict(PRESENTATION_VOCAB)
WORKUP_VOCAB.update({f: [True, False] for f in FINDINGS_WORKUP_ONLY})

REQUIRED = ["id", "citation", "url", "population_note", "final_diagnosis", "cause",
            "outside_model", "presentation", "workup", "support"]
OPTIONAL = ["note"]


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b


def check(path: Path) -> list[str]:
    """Return every problem found in the cases file (empty when it is valid)."""
    problems: list[str] = []
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        return [f"{path}: expected a mapping with a 'cases' list"]
    seen: set[str] = set()
    for n, case in enumerate(data["cases"]):
        where = f"case #{n + 1}"
        if not isinstance(case, dict):
            problems.append(f"{where}: not a mapping")
            continue
        cid = case.get("id")
        if cid is not None:
            where = f"case {cid!r}"
        for key in REQUIRED:
            if key not in case or case[key] in (None, "", {}):
                problems.append(f"{where}: missing or empty '{key}'")
        for key in case:
            if key not in REQUIRED and key not in OPTIONAL:
                problems.append(f"{where}: unknown key '{key}'")
        if cid in seen:
            problems.append(f"{where}: id used twice")
        seen.add(cid)
        cause = case.get("cause")
        if cause not in CAUSES:
            problems.append(f"{where}: unknown cause {cause!r}")
        outside = case.get("outside_model")
        if not isinstance(outside, bool):
            problems.append(f"{where}: outside_model must be true or false")
        elif outside != (cause == "other_cause"):
            problems.append(f"{where}: outside_model must be true exactly when cause is other_cause")
        for part, vocab in (("presentation", PRESENTATION_VOCAB), ("workup", WORKUP_VOCAB)):
            block = case.get(part) or {}
            if not isinstance(block, dict):
                problems.append(f"{where}: {part} must be a mapping")
                continue
            for var, val in block.items():
                if var not in vocab:
                    extra = " (a workup-only finding)" if var in WORKUP_VOCAB else ""
                    problems.append(f"{where}: {part}: unknown variable {var!r}{extra}")
                elif not any(_same(val, s) for s in vocab[var]):
                    problems.append(f"{where}: {part}: {var}={val!r} not in {vocab[var]}")
            if "time_since_surgery" not in block:
                problems.append(f"{where}: {part}: time_since_surgery is required")
        pres = case.get("presentation") or {}
        work = case.get("workup") or {}
        if isinstance(pres, dict) and isinstance(work, dict):
            for var, val in pres.items():
                if var not in work:
                    problems.append(f"{where}: workup lacks presentation variable {var!r}")
                elif not _same(work[var], val):
                    problems.append(f"{where}: workup {var}={work[var]!r} differs from presentation {val!r}")
            findings = [v for v in work if v not in CONTEXT]
            if len(findings) < 2:
                problems.append(f"{where}: fewer than two findings encoded (inclusion rule)")
            support = case.get("support") or {}
            if isinstance(support, dict):
                for var in work:
                    if var not in support:
                        problems.append(f"{where}: support has no note for {var!r}")
                for var in support:
                    if var not in work:
                        problems.append(f"{where}: support note for {var!r}, which is not encoded")
            else:
                problems.append(f"{where}: support must be a mapping variable -> note")
    return problems


def main(argv: list[str]) -> int:
    """Check the cases file given as the first argument (default: the one beside this script); exit status 1 on problems."""
    path = Path(argv[1]) if len(argv) > 1 else Path(__file__).with_name("published_cases.yaml")
    problems = check(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    cases = data.get("cases", []) if isinstance(data, dict) else []
    if problems:
        print(f"{path}: {len(problems)} problem(s)")
        for p in problems:
            print("  -", p)
        return 1
    counts: dict[str, int] = {}
    for c in cases:
        counts[c["cause"]] = counts.get(c["cause"], 0) + 1
    print(f"{path}: {len(cases)} cases, all checks passed")
    for cause in CAUSES:
        print(f"  {cause:32s} {counts.get(cause, 0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
