"""The adequacy check: its percentile against the exact distribution of the statistic, and its promises."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import postfusion_bayes as pfb
from postfusion_bayes.adequacy import DEFAULT_THRESHOLD, check_adequacy
from postfusion_bayes.errors import ArgumentError, ArgumentTypeError, EvidenceError

MODEL = pfb.load_model()
CONTEXT = {"time_since_surgery": "over_2_years", "smoker": False}
OBSERVED = ["radicular_pain", "neurogenic_claudication", "buttock_pain", "mri_adjacent_level_stenosis"]


def _exact_percentile(evidence: dict) -> float:
    """P(log P(E) <= log P(e) | context), by enumerating every pattern of the observed findings."""
    log_p = {}
    for values in itertools.product([False, True], repeat=len(OBSERVED)):
        pattern = dict(zip(OBSERVED, values, strict=True))
        log_p[values] = float(MODEL.network.query(_encode({**CONTEXT, **pattern}), ()).log_evidence[0, 0])
    context_log = float(MODEL.network.query(_encode(CONTEXT), ()).log_evidence[0, 0])
    mine = log_p[tuple(evidence[name] for name in OBSERVED)]
    return sum(math.exp(lp - context_log) for lp in log_p.values() if lp <= mine + 1e-12 * abs(mine))


def _encode(evidence: dict):
    from postfusion_bayes.engine.encoding import EncodedEvidence
    from postfusion_bayes.evidence import parse_evidence

    ev = parse_evidence(MODEL.spec, evidence)
    return EncodedEvidence.one(MODEL.network.state_index, ev.hard, ev.soft)


@pytest.mark.parametrize("values", [(True, True, False, True), (True, False, True, False), (False, True, True, True), (True, True, True, True)])
def test_the_percentile_estimates_the_exact_tail_probability(values):
    evidence = {**CONTEXT, **dict(zip(OBSERVED, values, strict=True))}
    exact = _exact_percentile(evidence)
    result = check_adequacy(MODEL, evidence, n=4000)
    standard_error = math.sqrt(max(exact * (1 - exact), 1e-4) / 4000)
    assert result.percentile == pytest.approx(exact, abs=5 * standard_error)
    assert result.compared == tuple(OBSERVED)


def test_the_patients_the_model_generates_set_it_off_about_as_often_as_the_threshold():
    """The exact rate at which the check fires on patients drawn from the model, over every pattern."""
    context_log = float(MODEL.network.query(_encode(CONTEXT), ()).log_evidence[0, 0])
    rate = 0.0
    for values in itertools.product([False, True], repeat=len(OBSERVED)):
        evidence = {**CONTEXT, **dict(zip(OBSERVED, values, strict=True))}
        p = math.exp(float(MODEL.network.query(_encode(evidence), ()).log_evidence[0, 0]) - context_log)
        if _exact_percentile(evidence) < DEFAULT_THRESHOLD:
            rate += p
    assert rate <= DEFAULT_THRESHOLD + 1e-9  # a conservative p-value never fires more often than its level


#: Ten positive findings of unrelated causes in the first weeks (hip, arterial, sacral, SI joint, piriformis, infection,
#: non-union, the adjacent level): no cause explains more than two. (Every finding positive fires too, but its Quickscore
#: over 40 positive findings takes seconds per patient.)
ABSURD = {
    "time_since_surgery": "under_6_weeks",
    **dict.fromkeys(
        ["groin_pain_on_hip_motion", "absent_distal_pulses", "anterolateral_thigh_numbness", "imaging_sacral_fracture", "piriformis_signs",
         "raised_inflammatory_markers", "hip_injection_relief", "ct_nonunion", "mri_adjacent_level_stenosis", "si_provocation_cluster"],
        True,
    ),
}  # fmt: skip


def test_a_typical_patient_passes_and_an_absurd_one_fires():
    typical = {"time_since_surgery": "over_2_years", "neurogenic_claudication": True, "relief_sitting_or_bending_forward": True, "back_pain": True}
    assert not check_adequacy(MODEL, typical).fires
    result = check_adequacy(MODEL, ABSURD)
    assert result.fires and result.percentile < 0.01 and "fit the model poorly" in str(result)


def test_the_answer_is_reproducible_and_the_seed_matters_only_within_monte_carlo_error():
    evidence = {**CONTEXT, "radicular_pain": True, "buttock_pain": True}
    assert check_adequacy(MODEL, evidence) == check_adequacy(MODEL, evidence)
    a, b = check_adequacy(MODEL, evidence, seed=1), check_adequacy(MODEL, evidence, seed=2)
    assert abs(a.percentile - b.percentile) < 0.1


def test_context_alone_is_never_surprising_and_soft_evidence_is_left_out():
    assert check_adequacy(MODEL, CONTEXT).percentile == 1.0
    result = check_adequacy(MODEL, {**CONTEXT, "radicular_pain": {"yes": 0.9, "no": 0.1}})
    assert result.compared == () and not result.fires


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"n": 0}, ArgumentError),
        ({"n": True}, ArgumentTypeError),
        ({"n": 2.5}, ArgumentTypeError),
        ({"seed": -1}, ArgumentError),
        ({"threshold": 1.5}, ArgumentError),
        ({"threshold": float("nan")}, ArgumentError),
    ],
)
def test_bad_arguments_are_refused_naming_them(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        check_adequacy(MODEL, CONTEXT, **kwargs)


def test_bad_evidence_is_refused():
    with pytest.raises(EvidenceError, match="radicular_pian"):
        check_adequacy(MODEL, {"radicular_pian": True})


def test_no_nan_even_for_evidence_the_model_finds_nearly_impossible():
    findings = MODEL.variables.query("role == 'finding'")["name"]
    result = check_adequacy(MODEL, {"time_since_surgery": "under_6_weeks", **{f: True for f in findings if f != "onset"}}, n=50)
    assert np.isfinite(result.log_evidence) and 0 <= result.percentile <= 1


def test_the_diagnosis_and_its_report_show_the_check_only_when_it_fires(capsys):
    import json

    from postfusion_bayes.cli import main

    absurd = ABSURD
    dx = MODEL.diagnose(absurd)
    assert dx.adequacy == check_adequacy(MODEL, absurd)
    assert "Adequacy check: the findings fit the model poorly" in dx.summary()
    assert "Adequacy check" in dx._repr_html_()
    typical = {"time_since_surgery": "over_2_years", "neurogenic_claudication": True}
    assert "Adequacy check" not in MODEL.diagnose(typical).summary()
    assert main(["diagnose", *(f"{k}={'yes' if v is True else v}" for k, v in absurd.items()), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["adequacy"]["fires"] is True and data["adequacy"]["percentile"] == dx.adequacy.percentile


@pytest.mark.parametrize(
    ("evidence", "threshold"),
    [
        ({**CONTEXT, "radicular_pain": True, "neurogenic_claudication": True, "buttock_pain": False, "mri_adjacent_level_stenosis": True}, DEFAULT_THRESHOLD),
        ({**CONTEXT, "radicular_pain": True, "neurogenic_claudication": True, "buttock_pain": False, "mri_adjacent_level_stenosis": True}, 0.9),
        ({**CONTEXT, "radicular_pain": False, "neurogenic_claudication": True, "buttock_pain": True, "mri_adjacent_level_stenosis": False}, 0.5),
        (ABSURD, DEFAULT_THRESHOLD),
    ],
)
def test_the_check_run_until_decided_gives_the_whole_checks_answer(evidence, threshold):
    """misfit_of (what the reports use) stops once the check cannot fire: None exactly when the whole check does not fire."""
    from postfusion_bayes.adequacy import adequacy_of, misfit_of
    from postfusion_bayes.evidence import parse_evidence

    ev = parse_evidence(MODEL.spec, evidence)
    whole = adequacy_of(MODEL.spec, MODEL.network, ev, n=400, threshold=threshold)
    decided = misfit_of(MODEL.spec, MODEL.network, ev, n=400, threshold=threshold)
    assert (decided is None) == (not whole.fires)
    if decided is not None:
        assert decided == whole  # when it fires, every pattern was queried: the same percentile


def test_a_report_of_a_patient_who_fits_costs_a_fraction_of_the_whole_check(monkeypatch):
    """The text report asks only whether the check fires: for a patient well inside the model it queries a few patterns, not all."""
    from postfusion_bayes.engine.compiled import CompiledNetwork

    rows = []
    query = CompiledNetwork.query

    def counting(self, evidence, *args, **kwargs):
        rows.append(evidence.n_rows)
        return query(self, evidence, *args, **kwargs)

    typical = {"time_since_surgery": "over_2_years", "radicular_pain": True, "neurogenic_claudication": True, "buttock_pain": False, "back_pain": True,
               "mri_adjacent_level_stenosis": True, "relief_sitting_or_bending_forward": True, "numbness_tingling": True}  # fmt: skip
    dx = MODEL.diagnose(typical)
    monkeypatch.setattr(CompiledNetwork, "query", counting)
    assert dx._report_adequacy is None
    decided = sum(rows)
    rows.clear()
    assert not dx.adequacy.fires
    assert decided < sum(rows) / 2
