"""Models past the reach of enumeration: every public path works at 13, 16 and 24 causes, exactly.

The oracle is variable elimination on the dense tables (the general-DAG path, checked against pgmpy
in ``test_engine``), which is slow but independent of the factorised sums under test.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from large_models import extended_spec, write_priors

import postfusion_bayes as pfb
from postfusion_bayes.cli import main
from postfusion_bayes.engine import compile_network
from postfusion_bayes.engine.encoding import EncodedEvidence

PATIENT = {
    "time_since_surgery": "6_weeks_to_6_months", "smoker": True, "diabetes": False, "osteoporosis": False,
    "multilevel_fusion": True, "fusion_to_sacrum": False, "onset": "gradual_after_relief",
    "radicular_pain": True, "straight_leg_raise": "yes", "back_pain": True, "deep_aching_pain": False,
    "neurogenic_claudication": False, "numbness_tingling": {"yes": 0.7, "no": 0.3},
}


@functools.cache
def model(n_extra: int) -> pfb.Model:
    return pfb.Model(extended_spec(n_extra))


def dense_posteriors(m: pfb.Model, evidence: dict) -> np.ndarray:
    from postfusion_bayes.evidence import encode_rows, parse_evidence

    net = compile_network(m.tables.dense(), strategy="elimination")
    result = net.query(encode_rows(net.states, [parse_evidence(m.spec, evidence)]), m.causes)
    return np.array([result.marginals[c][0, 0, 1] for c in m.causes])


@pytest.mark.parametrize("n_extra", [5, 8])
def test_diagnosis_past_enumeration_equals_elimination_on_the_dense_tables(n_extra):
    m = model(n_extra)
    dx = m.diagnose(PATIENT)
    got = dx.posterior.reindex(m.causes).to_numpy()
    np.testing.assert_allclose(got, dense_posteriors(m, PATIENT), rtol=1e-9, atol=1e-15)
    context = {k: v for k, v in PATIENT.items() if k in m.spec.names("context")}
    np.testing.assert_allclose(dx.prior.reindex(m.causes).to_numpy(), m.diagnose(context).posterior.reindex(m.causes).to_numpy(), rtol=1e-9)


def test_thirteen_causes_parameters_learning_and_validation_work(tmp_path):
    m = model(5)
    assert len(m.causes) == 13
    parameters = m.parameters
    assert len(parameters) == len(m.spec.parameters) and parameters["strength"].notna().all()
    cases = m.simulate(40, seed=3)[[*m.spec.names("context"), "radicular_pain", "onset", "nerve_injury"]]
    learned = m.update_with_cases(cases, max_iterations=2)
    assert learned.learning_report.iterations <= 2
    folder = write_priors(tmp_path / "priors13", 5)
    assert main(["validate", str(folder)]) == 0


def test_sixteen_causes_report_next_tests_and_explanations_within_the_budget(tmp_path, capsys):
    m = model(8)
    assert len(m.causes) == 16
    dx = m.diagnose(PATIENT)
    report = dx.summary()
    assert "Next best tests" in report or "next" in report.lower()
    tests = dx.next_tests()
    assert len(tests) and (tests["information_gain"] >= 0).all()
    mpe = dx.most_probable_explanation(k=3)
    assert len(mpe) == 3 and (np.diff(mpe["probability"].to_numpy()) <= 0).all()
    folder = write_priors(tmp_path / "priors16", 8)
    assert main(["diagnose", "--priors", str(folder), "time_since_surgery=over_2_years", "neurogenic_claudication=yes"]) == 0
    assert "Causes, most probable first" in capsys.readouterr().out


def test_sixteen_causes_next_tests_agree_with_a_brute_force_information_gain():
    """I(configuration; test) from the joint over the causes by elimination on the dense tables, for one test."""
    m = model(8)
    evidence = {k: v for k, v in PATIENT.items() if not isinstance(v, dict)}
    dx = m.diagnose(evidence)
    test = "ct_nonunion"
    gain = float(dx.next_tests().loc[test, "information_gain"])
    net = compile_network(m.tables.dense(), strategy="elimination")
    from postfusion_bayes.evidence import encode_rows, parse_evidence

    base = parse_evidence(m.spec, evidence)
    rows = [base]
    for state in ("no", "yes"):
        rows.append(parse_evidence(m.spec, {**evidence, test: state}))
    result = net.query(encode_rows(net.states, rows), (), joint=m.causes)
    p_e = np.exp(result.log_evidence[0])
    p_result = p_e[1:] / p_e[0]
    joint = result.joint.posterior[0]
    h_causes = -np.sum(np.where(joint[0] > 0, joint[0] * np.log2(joint[0]), 0.0))
    h_after = sum(p_result[i] * -np.sum(np.where(joint[i + 1] > 0, joint[i + 1] * np.log2(joint[i + 1]), 0.0)) for i in range(2))
    assert gain == pytest.approx(h_causes - h_after, rel=1e-7, abs=1e-10)


def test_twenty_four_causes_diagnose_and_diagnose_many_work_and_agree():
    m = model(16)
    assert len(m.causes) == 24
    hard = {k: v for k, v in PATIENT.items() if not isinstance(v, dict)}
    dx = m.diagnose(hard)
    assert dx.posterior.between(0, 1).all()
    frame = pd.DataFrame([hard, {**hard, "back_pain": False}])
    many = m.diagnose_many(frame)
    np.testing.assert_allclose(many.iloc[0][m.causes].to_numpy(dtype=float), dx.posterior.reindex(m.causes).to_numpy(), rtol=1e-9)
    with pytest.raises(pfb.MemoryBudgetError):
        dx.most_probable_explanation()
    assert "leaves out" in dx.summary() or "budget" in dx.summary()


def test_a_model_past_enumeration_never_builds_a_dense_onset_table():
    m = model(16)
    m.diagnose(PATIENT)
    assert "onset" not in m.tables.cpts._dense  # the 2^24-column table is never made  # noqa: SLF001
    encoded = EncodedEvidence.from_rows(m.network.states, [{"onset": "immediate"}])
    assert m.network.query(encoded, m.causes[:2]).method == "factorised"
