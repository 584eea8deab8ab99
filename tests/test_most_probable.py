"""The k most probable configurations of the causes (engine._most_probable, CompiledNetwork.most_probable).

The branch and bound is checked against an enumeration of every configuration written here in
log space from the formulas (no code shared with the module), on random small layered networks;
through ``CompiledNetwork.most_probable`` against the engine's own enumeration on the shipped model
(forced by a small memory budget); and on the benchmark's 20-cause network against its long-double
oracle.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import postfusion_bayes as pfb
from postfusion_bayes.engine import _most_probable
from postfusion_bayes.engine._most_probable import search_bytes, top_configurations
from postfusion_bayes.engine._noisy_or import Mixture
from postfusion_bayes.engine.encoding import EncodedEvidence
from postfusion_bayes.errors import EvidenceError, MemoryBudgetError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_networks  # noqa: E402
import bench_oracle  # noqa: E402

TOLERANCE = 1e-9
MODEL = pfb.load_model()
CAUSES = tuple(MODEL.causes)
#: Enough for the shipped model's factorised sums (6.8 MB with the context unobserved), too little to enumerate its 2^16 configurations (12.6 MB).
SMALL_BUDGET = 10 * 2**20


# ----------------------------------------------------------------------------------------------- the oracle


def log_weights(root_weight, cause_given_root, cause_likelihood, leak, links, finding_likelihood, mixtures=()) -> tuple[np.ndarray, np.ndarray]:
    """Log P(C, e) of every configuration C, first cause most significant, and the configurations (J, n) bool.

    Every term in log space: a finding's P(yes | C) as log(-expm1(log P(no | C))), so nothing cancels.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        rw, cg, cl = np.asarray(root_weight, float), np.asarray(cause_given_root, float), np.asarray(cause_likelihood, float)
        K, n = cg.shape
        present = np.array(list(itertools.product((False, True), repeat=n)), dtype=bool).reshape(-1, n)
        log_cause = np.where(present[None], np.log(cg)[:, None, :] + np.log(cl[:, 1]), np.log1p(-cg)[:, None, :] + np.log(cl[:, 0]))  # (K, J, n)
        per_root = np.log(rw)[:, None] + log_cause.sum(axis=2)
        top = per_root.max(axis=0)
        safe = np.where(np.isfinite(top), top, 0.0)
        total = np.log(np.exp(per_root - safe).sum(axis=0)) + safe
        fl = np.asarray(finding_likelihood, float)
        if fl.size:
            log_no = np.where(present[:, None, :], np.log1p(-np.asarray(links, float))[None], 0.0).sum(axis=2) + np.log1p(-np.asarray(leak, float))  # (J, F)
            log_yes = np.log(-np.expm1(log_no))
            total = total + np.logaddexp(np.log(fl[:, 0]) + log_no, np.log(fl[:, 1]) + log_yes).sum(axis=1)
        for m in mixtures:
            lam = np.asarray(m.likelihood, float).reshape(-1)
            v = np.asarray(m.distributions, float).reshape(len(m.parents), lam.size) @ lam
            owned = present[:, m.parents]
            count = owned.sum(axis=1)
            mean = (owned @ v) / np.maximum(count, 1)
            total = total + np.log(np.where(count > 0, mean, float(np.asarray(m.leak, float).reshape(-1) @ lam)))
    return total, present


def check_against_enumeration(args: dict, k: int, result) -> None:
    """Check that the configurations are a top k of the enumeration, with their probabilities, in its order up to ties."""
    logw, present = log_weights(**args)
    finite = logw > -np.inf
    if not finite.any():
        assert result.present.shape[0] == 0 and result.log_evidence == -math.inf
        return
    log_z = float(np.logaddexp.reduce(logw[finite]))
    assert result.log_evidence == pytest.approx(log_z, rel=0, abs=TOLERANCE)
    posterior = np.exp(logw - log_z)
    expected = np.sort(posterior[finite])[::-1][:k]
    assert result.present.shape == (min(k, int(finite.sum())), present.shape[1])
    number = result.present.astype(np.int64) @ (1 << np.arange(present.shape[1])[::-1])  # the enumeration's row
    np.testing.assert_allclose(posterior[number], expected, rtol=TOLERANCE, atol=1e-300)  # a top k, in order
    np.testing.assert_allclose(result.posterior, posterior[number], rtol=TOLERANCE, atol=1e-300)
    assert len(set(number.tolist())) == len(number)
    ties = np.abs(np.diff(logw[number])) <= 1e-12
    assert (np.diff(number)[ties] > 0).all()  # exact ties in configuration order
    assert result.posterior.sum() <= 1 + TOLERANCE


@st.composite
def problems(draw, max_n=7):
    """Small layered networks with random hard, soft, negative, tiny and impossible evidence, one row."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, max_n))
    F = draw(st.integers(0, 5))
    K = draw(st.integers(1, 3))
    cg = rng.uniform(0.02, 0.7, size=(K, n))
    leak = rng.uniform(0.001, 0.2, size=F)
    links = np.where(rng.random((F, n)) < 0.5, rng.uniform(0.05, 0.95, size=(F, n)), 0.0)
    if draw(st.booleans()):  # extreme numbers: certain and impossible causes, certain links and leaks
        cg[rng.random(cg.shape) < 0.15] = draw(st.sampled_from([0.0, 1.0, 1e-200, 1 - 1e-12]))
        links[(links > 0) & (rng.random(links.shape) < 0.2)] = draw(st.sampled_from([1.0, 1e-200, 1 - 1e-15]))
        leak[rng.random(F) < 0.2] = draw(st.sampled_from([0.0, 1e-250, 1.0]))
    kinds = {"unobserved": (1.0, 1.0), "no": (1.0, 0.0), "yes": (0.0, 1.0), "soft yes": (0.3, 1.0), "soft no": (1.0, 0.2), "tiny": (1e-300, 2e-300)}
    fl = np.array([kinds[draw(st.sampled_from(sorted(kinds)))] for _ in range(F)]).reshape(F, 2)
    cl = np.ones((n, 2))
    for i in range(n):
        if draw(st.integers(0, 3)) == 0:
            cl[i] = draw(st.sampled_from([(1.0, 0.0), (0.0, 1.0), (0.4, 1.0), (1e-300, 1.0), (2.0, 0.5)]))
    rw = rng.uniform(0.1, 1.0, size=K)
    if draw(st.booleans()):  # the context observed: one root configuration
        rw = rw * (np.arange(K) == rng.integers(K))
    mixtures = []
    observed = draw(st.integers(-1, 1))  # which mixture is observed (at most one can be: the factorised sums' limit)
    for j in range(draw(st.integers(0, 2))):
        S = draw(st.integers(2, 4))
        parents = np.sort(rng.choice(n, size=draw(st.integers(0, n)), replace=False))
        lam = draw(st.sampled_from(["hard", "soft"])) if j == observed else "unobserved"
        likelihood = np.ones(S) if lam == "unobserved" else (np.eye(S)[rng.integers(S)] if lam == "hard" else rng.uniform(0.05, 2.0, S))
        mixtures.append(Mixture(parents, rng.dirichlet(np.ones(S), size=parents.size), rng.dirichlet(np.ones(S)), likelihood))
    if draw(st.booleans()):  # ties: two causes with the same numbers everywhere
        if n >= 2:
            cg[:, 1], cl[1], links[:, 1] = cg[:, 0], cl[0], links[:, 0]
            mixtures = [m for m in mixtures if (0 in m.parents) == (1 in m.parents)]
    return dict(root_weight=rw, cause_given_root=cg, cause_likelihood=cl, leak=leak, links=links, finding_likelihood=fl, mixtures=mixtures)


# ----------------------------------------------------------------------------------------------- the search alone


@given(problems(), st.integers(1, 12))
def test_random_networks_give_the_enumerations_top_k(args, k):
    check_against_enumeration(args, k, top_configurations(**args, k=k))


@given(problems(max_n=6), st.integers(1, 5))
def test_a_small_budget_expands_fewer_nodes_at_once_and_changes_nothing(args, k):
    wide = top_configurations(**args, k=k)
    # (P(e) given: the factorised sums' own working arrays need more than the search's one node at a time)
    narrow = top_configurations(**args, k=k, log_evidence=wide.log_evidence, max_bytes=search_bytes(len(args["cause_likelihood"]), 3, 5, 2, k, 1))
    np.testing.assert_array_equal(narrow.present, wide.present)
    np.testing.assert_allclose(narrow.posterior, wide.posterior, rtol=1e-12)


def test_the_stopping_rule_ends_the_search_once_the_rest_of_the_probability_cannot_compete():
    # twelve independent causes, each present with probability 0.01: "none" has 0.886 of the probability
    n = 12
    args = dict(root_weight=np.ones(1), cause_given_root=np.full((1, n), 0.01), cause_likelihood=np.ones((n, 2)), leak=np.zeros(0), links=np.zeros((0, n)), finding_likelihood=np.zeros((0, 2)))
    top = top_configurations(**args, k=1)
    assert top.stop == "mass" and not top.present.any()
    assert top.posterior[0] == pytest.approx(0.99**n, rel=1e-14)
    assert top.expanded < 2 * n * 16  # one narrow dive, not the 4,095 nodes of the whole tree
    check_against_enumeration(args, 3, top_configurations(**args, k=3))


def test_impossible_evidence_gives_no_configuration():
    # no cause can be present and the leak is 0: the finding observed "yes" is impossible
    args = dict(root_weight=np.ones(1), cause_given_root=np.zeros((1, 2)), cause_likelihood=np.ones((2, 2)), leak=np.zeros(1), links=np.full((1, 2), 0.5), finding_likelihood=np.array([[0.0, 1.0]]))
    top = top_configurations(**args, k=3)
    assert top.present.shape == (0, 2) and top.posterior.size == 0 and top.log_evidence == -math.inf


def test_a_budget_too_small_for_one_node_says_so():
    args = dict(root_weight=np.ones(1), cause_given_root=np.full((1, 3), 0.1), cause_likelihood=np.ones((3, 2)), leak=np.zeros(0), links=np.zeros((0, 3)), finding_likelihood=np.zeros((0, 2)))
    with pytest.raises(MemoryBudgetError, match="branch and bound over 3 causes"):
        top_configurations(**args, k=2, log_evidence=0.0, max_bytes=100)


# ----------------------------------------------------------------------------------------------- through the compiled network

PATIENTS = {
    "context and onset observed": ({"time_since_surgery": "6_weeks_to_6_months", "smoker": "yes", "diabetes": "no", "osteoporosis": "no", "multilevel_fusion": "yes",
                                     "fusion_to_sacrum": "no", "surgical_approach": "posterior", "rhbmp2_used": "no", "age_over_65": "no", "onset": "gradual_after_relief",
                                     "radicular_pain": "yes", "back_pain": "yes", "mri_recurrent_disc": "yes", "leg_weakness": "no"}, {}),
    "context unobserved": ({"radicular_pain": "yes", "fever": "no", "buttock_pain": "yes"}, {}),
    "onset only": ({"onset": "immediate"}, {}),
    "soft evidence on findings, onset and a cause": (
        {"time_since_surgery": "under_6_weeks", "radicular_pain": "yes"},
        {"leg_weakness": [0.3, 1.0], "onset": None, "pseudarthrosis": [1.0, 0.4]},
    ),
    "a cause observed present, another absent": ({"time_since_surgery": "over_2_years", "pseudarthrosis": "present", "nerve_injury": "absent", "back_pain": "yes"}, {}),
}


def encoded(net, hard: dict, soft: dict) -> EncodedEvidence:
    states = net.states
    soft = {name: (np.linspace(1.0, 0.2, len(states[name])) if value is None else value) for name, value in soft.items()}
    return EncodedEvidence.from_rows(states, [hard], [soft])


@pytest.mark.parametrize("name", PATIENTS)
def test_the_search_equals_the_enumeration_on_the_shipped_model(name):
    hard, soft = PATIENTS[name]
    net = MODEL.network
    small = net.with_memory_budget(SMALL_BUDGET)
    evidence = encoded(net, hard, soft)
    free = [c for c in CAUSES if c not in hard]
    enumerated = net.most_probable(evidence, free, 6)
    searched = small.most_probable(evidence, free, 6)
    assert (enumerated.method, searched.method) == ("enumeration", "branch and bound")
    np.testing.assert_allclose(searched.posterior, enumerated.posterior, rtol=TOLERANCE, atol=0)
    np.testing.assert_array_equal(searched.configurations, enumerated.configurations)  # (no ties here)
    assert searched.log_evidence == pytest.approx(enumerated.log_evidence, abs=TOLERANCE)
    assert searched.names == enumerated.names == tuple(free)


def test_causes_outside_the_variables_must_be_fixed_for_the_search():
    """Ranking some causes with others unobserved sums those out: that is the enumeration's, which does not fit."""
    small = MODEL.network.with_memory_budget(SMALL_BUDGET)
    evidence = encoded(small, {"radicular_pain": "yes"}, {})
    with pytest.raises(MemoryBudgetError, match="joint"):
        small.most_probable(evidence, CAUSES[:3], 2)
    fixed = encoded(small, {"radicular_pain": "yes", **{c: "absent" for c in CAUSES[3:]}}, {})
    assert small.most_probable(fixed, CAUSES[:3], 2).method == "branch and bound"


def test_most_probable_takes_one_row_and_known_variables():
    net = MODEL.network
    two = EncodedEvidence.from_rows(net.states, [{}, {}])
    with pytest.raises(EvidenceError, match="one row"):
        net.most_probable(two, CAUSES, 1)
    with pytest.raises(EvidenceError, match="unknown variable 'pseudoarthrosis'.*pseudarthrosis"):
        net.most_probable(EncodedEvidence.from_rows(net.states, [{}]), ["pseudoarthrosis"], 1)


def test_twenty_causes_agree_with_the_long_double_oracle():
    """The benchmark's 20-cause network (4 synthetic causes), typical patients, against extended-precision enumeration."""
    spec = bench_networks.network_spec(4)
    model = pfb.Model(spec).with_memory_budget(SMALL_BUDGET)
    num = bench_networks.numbers(spec)
    for patient in bench_networks.patients(spec, "typical", 2, seed=20):
        mpe = model.diagnose(patient.evidence).most_probable_explanation(k=3)
        assert mpe.attrs["method"] == "branch and bound"
        expected = bench_oracle.most_probable(num, patient.hard, patient.soft, 3)
        assert list(mpe["present_causes"]) == [" + ".join(s) or "none of the modelled causes" for s, _ in expected]
        np.testing.assert_allclose(mpe["probability"], [p for _, p in expected], rtol=TOLERANCE, atol=0)


def test_twenty_four_causes_take_seconds_at_most_and_leave_the_rest_of_the_probability():
    spec = bench_networks.network_spec(8)
    model = pfb.Model(spec)
    patient = bench_networks.patients(spec, "typical", 1, seed=524)[0]
    dx = model.diagnose(patient.evidence)
    start = time.perf_counter()
    mpe = dx.most_probable_explanation(k=5)
    assert time.perf_counter() - start < 5.0
    assert mpe.attrs["method"] == "branch and bound" and len(mpe) == 5
    assert (np.diff(mpe["probability"]) <= 0).all() and 0 < mpe["probability"].sum() <= 1 + TOLERANCE
    # the top set's probability is at most each of its causes' posterior, and at least the product rule allows
    top = mpe["present_causes"].iloc[0].split(" + ")
    assert all(mpe["probability"].iloc[0] <= dx.posterior[c] + TOLERANCE for c in top if c in dx.posterior.index)


def test_the_search_is_the_method_named_when_the_joint_does_not_fit(monkeypatch):
    calls = []
    original = _most_probable._search
    monkeypatch.setattr(_most_probable, "_search", lambda *a, **kw: calls.append(1) or original(*a, **kw))
    evidence = encoded(MODEL.network, *PATIENTS["onset only"])
    assert MODEL.network.most_probable(evidence, CAUSES, 2).method == "enumeration" and not calls
    assert MODEL.network.with_memory_budget(SMALL_BUDGET).most_probable(evidence, CAUSES, 2).method == "branch and bound" and calls


def test_the_search_stays_within_a_small_budget_at_twenty_four_causes():
    """Measured as the engine promises: the peak traced allocation of the query (P(e) and the search), its input excluded."""
    import tracemalloc

    spec = bench_networks.network_spec(8)
    budget = 2 * 2**20
    net = pfb.Model(spec).network.with_memory_budget(budget)
    patient = bench_networks.patients(spec, "typical", 1, seed=524)[0]
    evidence = EncodedEvidence.from_rows(net.states, [patient.hard], [patient.soft])
    causes = net.layers["middle"]
    net.most_probable(evidence, causes, 3)  # (module-level memos made outside the measure)
    tracemalloc.start()
    try:
        top = net.most_probable(evidence, causes, 3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert top.method == "branch and bound" and len(top.posterior) == 3
    assert peak <= budget, f"peak {peak / 2**20:.1f} MB"
