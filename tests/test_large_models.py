"""Models past the reach of enumeration: every public path works at 16 and 24 causes, exactly.

Since the second edition (issue 12) the shipped model itself has 16 causes (``model(0)``); the
24-cause network is the shipped model with 8 synthetic causes (13 causes can no longer be built by
adding causes, so the 13-cause checks run on the 16-cause shipped model).

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


@pytest.mark.parametrize("n_extra", [0])
def test_diagnosis_past_enumeration_equals_elimination_on_the_dense_tables(n_extra):
    m = model(n_extra)
    dx = m.diagnose(PATIENT)
    got = dx.posterior.reindex(m.causes).to_numpy()
    np.testing.assert_allclose(got, dense_posteriors(m, PATIENT), rtol=1e-9, atol=1e-15)
    context = {k: v for k, v in PATIENT.items() if k in m.spec.names("context")}
    np.testing.assert_allclose(dx.prior.reindex(m.causes).to_numpy(), m.diagnose(context).posterior.reindex(m.causes).to_numpy(), rtol=1e-9)


def test_sixteen_causes_parameters_learning_and_validation_work(tmp_path):
    m = model(0)
    assert len(m.causes) == 16
    parameters = m.parameters
    assert len(parameters) == len(m.spec.parameters) and parameters["strength"].notna().all()
    cases = m.simulate(40, seed=3)[[*m.spec.names("context"), "radicular_pain", "onset", "nerve_injury"]]
    with pytest.warns(pfb.ConvergenceWarning):  # two EM iterations are not enough to converge, and say so
        learned = m.update_with_cases(cases, max_iterations=2)
    assert learned.learning_report.iterations <= 2
    folder = write_priors(tmp_path / "priors16", 0)
    assert main(["validate", str(folder)]) == 0


def test_sixteen_causes_report_next_tests_and_explanations_within_the_budget(tmp_path, capsys):
    m = model(0)
    assert len(m.causes) == 16
    dx = m.diagnose(PATIENT)
    report = dx.summary()
    assert "Next best tests" in report or "next" in report.lower()
    tests = dx.next_tests()
    assert len(tests) and (tests["information_gain"] >= 0).all()
    mpe = dx.most_probable_explanation(k=3)
    assert len(mpe) == 3 and (np.diff(mpe["probability"].to_numpy()) <= 0).all()
    folder = write_priors(tmp_path / "priors16", 0)
    assert main(["diagnose", "--priors", str(folder), "time_since_surgery=over_2_years", "neurogenic_claudication=yes"]) == 0
    assert "Causes, most probable first" in capsys.readouterr().out


def test_sixteen_causes_next_tests_agree_with_an_information_gain_by_elimination():
    """I(causes; test | e) = I(the test's parents; test | e): a joint over a few parents by elimination on dense tables.

    Onset is left unobserved so that the dense oracle stays small (it is barren and pruned).
    """
    m = model(0)
    evidence = {k: v for k, v in PATIENT.items() if not isinstance(v, dict) and k != "onset"}
    dx = m.diagnose(evidence)
    net = compile_network(m.tables.dense(), strategy="elimination")
    from postfusion_bayes.evidence import encode_rows, parse_evidence

    for test in ("ct_nonunion", "mri_enhancing_scar"):
        gain = float(dx.next_tests().loc[test, "information_gain"])
        parents = list(m.tables.parents[test])
        base = encode_rows(net.states, [parse_evidence(m.spec, evidence)])
        joint = net.query(base, (), joint=parents).joint
        configurations, weight = joint.configurations, joint.posterior[0, 0]
        table = m.tables.cpts[test]
        p_yes = np.array([table[tuple(c)][1] for c in configurations])
        h = lambda p: -np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0) - np.where(p < 1, (1 - p) * np.log2(np.where(p < 1, 1 - p, 1.0)), 0.0)  # noqa: E731
        expected = h(np.array(weight @ p_yes)) - weight @ h(p_yes)
        assert gain == pytest.approx(float(expected), rel=1e-7, abs=1e-10), test


def test_twenty_four_causes_diagnose_and_diagnose_many_work_and_agree():
    m = model(8)
    assert len(m.causes) == 24
    hard = {k: v for k, v in PATIENT.items() if not isinstance(v, dict)}
    dx = m.diagnose(hard)
    assert dx.posterior.between(0, 1).all()
    frame = pd.DataFrame([hard, {**hard, "back_pain": False}])
    many = m.diagnose_many(frame)
    np.testing.assert_allclose(many.iloc[0][m.causes].to_numpy(dtype=float), dx.posterior.reindex(m.causes).to_numpy(), rtol=1e-9)
    mpe = dx.most_probable_explanation()  # past the enumeration's budget: the branch and bound, exact
    assert mpe.attrs["method"] == "branch and bound" and len(mpe) == 3
    assert (np.diff(mpe["probability"].to_numpy()) <= 0).all() and mpe["probability"].sum() <= 1 + 1e-9
    with pytest.raises(pfb.MemoryBudgetError, match="2\\^24 joint configurations"):
        dx.next_tests()
    assert "leaves out" in dx.summary() or "budget" in dx.summary()


def test_a_model_past_enumeration_never_builds_a_dense_onset_table():
    m = model(8)
    m.diagnose(PATIENT)
    assert "onset" not in m.tables.cpts._dense  # the 2^24-column table is never made  # noqa: SLF001
    encoded = EncodedEvidence.from_rows(m.network.states, [{"onset": "immediate"}])
    assert m.network.query(encoded, m.causes[:2]).method == "factorised"


def test_the_adequacy_check_and_simulation_at_24_causes_never_build_a_dense_onset_table():
    m = model(8)
    assert 0 <= m.diagnose(PATIENT).adequacy.percentile <= 1
    m.simulate(50, seed=1)
    assert "onset" not in m.tables.cpts._dense  # noqa: SLF001
