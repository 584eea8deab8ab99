"""The engine's one query against independent oracles: partial and joint answers, read-only results, memory, scale.

Oracles: variable elimination on the dense tables (another algorithm, the general-DAG path, itself checked
against pgmpy in ``test_engine``), brute-force enumeration of the full joint at small sizes, and
extended-precision (``np.longdouble``) enumeration in log space over every cause configuration.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import postfusion_bayes as pfb
from postfusion_bayes.engine import NetworkTables, compile_network
from postfusion_bayes.engine.compiled import ENUMERATION_LIMIT
from postfusion_bayes.engine.encoding import EncodedEvidence
from postfusion_bayes.engine.structured import Mixture, NoisyOr

MODEL = pfb.load_model()
TOLERANCE = 1e-9


def structured_network(seed: int, n_causes: int, n_findings: int = 24, links_per_finding: int = 5, onset_states: int = 4) -> NetworkTables:
    """Build a layered network of our shape: two context roots, binary causes, noisy-OR findings, one mixture over all causes."""
    rng = np.random.default_rng(seed)
    states = {"time": ("t0", "t1", "t2"), "risk": ("no", "yes")}
    parents: dict[str, tuple[str, ...]] = {"time": (), "risk": ()}
    cpts: dict[str, object] = {"time": rng.dirichlet(np.ones(3)), "risk": np.array([0.7, 0.3])}
    causes = [f"c{i}" for i in range(n_causes)]
    for c in causes:
        states[c] = ("absent", "present")
        parents[c] = ("time", "risk")
        p = rng.uniform(0.02, 0.4, size=(3, 2))
        cpts[c] = np.stack([1 - p, p], axis=-1)
    for j in range(n_findings):
        name = f"f{j}"
        chosen = tuple(sorted(rng.choice(n_causes, size=min(links_per_finding, n_causes), replace=False)))
        states[name] = ("no", "yes")
        parents[name] = tuple(causes[i] for i in chosen)
        cpts[name] = NoisyOr(rng.uniform(0.01, 0.2), rng.uniform(0.3, 0.8, size=len(chosen)))
    onset_names = tuple(f"o{s}" for s in range(onset_states))
    states["onset"] = onset_names
    parents["onset"] = tuple(causes)
    cpts["onset"] = Mixture(rng.dirichlet(np.ones(onset_states), size=n_causes), rng.dirichlet(np.ones(onset_states)))
    return NetworkTables(states, parents, cpts)


def patient(tables: NetworkTables, seed: int, n_observed: int = 10, context: bool = True, soft: int = 0) -> tuple[dict, dict]:
    """Hard and soft evidence for one row drawn from the network (so it is possible)."""
    rng = np.random.default_rng(seed)
    from postfusion_bayes.engine.sampling import sample_cases

    case = sample_cases(tables, 1, rng).iloc[0]
    findings = [v for v in tables.variables if v.startswith("f")]
    hard = {v: case[v] for v in rng.choice(findings, size=n_observed, replace=False)}
    hard["onset"] = case["onset"]
    if context:
        hard.update({"time": case["time"], "risk": case["risk"]})
    softs = {}
    for v in rng.choice([f for f in findings if f not in hard], size=soft, replace=False):
        softs[str(v)] = rng.uniform(0.05, 1.0, size=2)
    return hard, softs


def by_elimination(tables: NetworkTables, hard: dict, soft: dict, targets):
    net = compile_network(tables.dense(), strategy="elimination")
    result = net.query(EncodedEvidence.from_rows(net.states, [hard], [soft] if soft else None), targets)
    return result


def assert_agrees_with_elimination(result, tables: NetworkTables, hard: dict, soft: dict, targets, atol: float) -> None:
    """Check a query's marginals and log evidence against variable elimination on the dense tables."""
    oracle = by_elimination(tables, hard, soft, targets)
    for t in targets:
        np.testing.assert_allclose(result.marginals[t], oracle.marginals[t], rtol=TOLERANCE, atol=atol, err_msg=t)
    assert result.log_evidence[0, 0] == pytest.approx(oracle.log_evidence[0, 0], rel=TOLERANCE)


def by_longdouble_enumeration(tables: NetworkTables, hard: dict, soft: dict, causes):
    """P(cause present | e) and log P(e) by enumerating every cause configuration and root state in np.longdouble."""
    n = len(causes)
    grid = np.array(np.unravel_index(np.arange(2**n), [2] * n)).T.astype(np.intp)
    lam = EncodedEvidence.from_rows(tables.states, [hard], [soft] if soft else None)
    dense = lam.dense({v: tables.cardinality(v) for v in lam.names})
    roots = [v for v in tables.variables if not tables.parents[v]]
    total = np.zeros(2**n, dtype=np.longdouble)
    for t in range(3):
        for r in range(2):
            w = np.longdouble(tables.cpts["time"][t]) * np.longdouble(tables.cpts["risk"][r])
            w *= np.longdouble(dense["time"][0, t] if "time" in dense else 1.0) * np.longdouble(dense["risk"][0, r] if "risk" in dense else 1.0)
            log_prior = np.zeros(2**n, dtype=np.longdouble)
            for i, c in enumerate(causes):
                p = np.asarray(tables.cpts[c], dtype=np.longdouble)[t, r]
                log_prior += np.log(p[grid[:, i]])
            total += w * np.exp(log_prior)
    log_like = np.zeros(2**n, dtype=np.longdouble)
    for v, values in dense.items():
        if v in roots:
            continue
        cpd = tables.cpd(v)
        idx = [causes.index(p) for p in tables.parents[v]]
        present = grid[:, idx]
        if isinstance(cpd, NoisyOr):
            no = np.longdouble(1 - float(cpd.leak)) * np.prod(np.where(present == 1, np.asarray(1 - cpd.links, dtype=np.longdouble), np.longdouble(1)), axis=1)
            f = values[0, 1] + (values[0, 0] - values[0, 1]) * no
        else:
            count = present.sum(axis=1)
            mixed = (present.astype(np.longdouble) @ np.asarray(cpd.distributions, dtype=np.longdouble)) / np.maximum(count, 1)[:, None]
            dist = np.where(count[:, None] > 0, mixed, np.asarray(cpd.leak, dtype=np.longdouble)[None])
            f = dist @ np.asarray(values[0], dtype=np.longdouble)
        with np.errstate(divide="ignore"):
            log_like += np.log(f)
    weights = total * np.exp(log_like - log_like.max())
    z = weights.sum()
    post = (weights[:, None] * grid).sum(axis=0) / z
    return post.astype(float), float(np.log(z) + log_like.max()) + float(lam.log_scale[0])  # the soft rows' scale, as the engine reports it


# ------------------------------------------------------------------ every method agrees


@pytest.mark.parametrize("seed", range(3))
def test_enumeration_and_elimination_agree_on_a_small_structured_network(seed):
    tables = structured_network(seed, n_causes=6)
    hard, soft = patient(tables, seed, soft=1)
    net = compile_network(tables)
    causes = [f"c{i}" for i in range(6)]
    result = net.query(EncodedEvidence.from_rows(net.states, [hard], [soft]), causes)
    assert result.method == "enumeration"
    assert_agrees_with_elimination(result, tables, hard, soft, causes, atol=1e-15)


@pytest.mark.parametrize(("n_causes", "seed"), [(13, 0), (13, 1), (14, 2)])
def test_large_networks_are_factorised_and_agree_with_elimination_on_the_dense_tables(n_causes, seed):
    tables = structured_network(seed, n_causes=n_causes)
    assert 2**n_causes > ENUMERATION_LIMIT
    hard, soft = patient(tables, seed, n_observed=12, soft=1)
    net = compile_network(tables)
    causes = [f"c{i}" for i in range(n_causes)]
    targets = causes + ["time", "f23" if "f23" not in hard else "f22"]
    targets = [t for t in targets if t not in hard]
    result = net.query(EncodedEvidence.from_rows(net.states, [hard], [soft]), targets)
    assert result.method == "factorised"
    assert_agrees_with_elimination(result, tables, hard, soft, targets, atol=1e-14)


def test_sixteen_causes_with_many_positive_findings_stay_exact_against_extended_precision():
    """The stress profile: 16 causes, context and onset observed, 12 positive findings and one soft."""
    n = 16
    tables = structured_network(7, n_causes=n, n_findings=40, links_per_finding=6)
    findings = [v for v in tables.variables if v.startswith("f")]
    rng = np.random.default_rng(3)
    hard = {f: "yes" for f in rng.choice(findings, size=12, replace=False)}
    hard.update({"time": "t1", "risk": "yes", "onset": "o2"})
    soft = {next(f for f in findings if f not in hard): np.array([0.3, 0.9])}
    net = compile_network(tables)
    causes = [f"c{i}" for i in range(n)]
    result = net.query(EncodedEvidence.from_rows(net.states, [hard], [soft]), causes)
    expected, log_p = by_longdouble_enumeration(tables, hard, soft, causes)
    got = np.array([result.marginals[c][0, 0, 1] for c in causes])
    np.testing.assert_allclose(got, expected, rtol=TOLERANCE, atol=0)
    assert result.log_evidence[0, 0] == pytest.approx(log_p, rel=TOLERANCE)


def test_the_joint_posterior_by_the_plan_by_structured_enumeration_and_by_clamping_agree():
    small = structured_network(4, n_causes=5)
    hard, soft = patient(small, 4, soft=1)
    causes = [f"c{i}" for i in range(5)]
    layered = compile_network(small)
    eliminating = compile_network(small.dense(), strategy="elimination")
    encoded = EncodedEvidence.from_rows(small.states, [hard], [soft])
    a = layered.query(encoded, causes, joint=causes)
    b = eliminating.query(encoded, (), joint=causes)
    assert a.joint.names == b.joint.names == tuple(causes)
    np.testing.assert_array_equal(a.joint.configurations, b.joint.configurations)
    np.testing.assert_allclose(a.joint.posterior, b.joint.posterior, rtol=TOLERANCE, atol=1e-15)
    for i, c in enumerate(causes):  # the marginals are sums of the joint
        np.testing.assert_allclose(a.marginals[c][0, 0, 1], a.joint.posterior[0, 0][a.joint.configurations[:, i] == 1].sum(), rtol=1e-12)
    sub = layered.query(encoded, (), joint=["c3", "c1"])
    np.testing.assert_allclose(sub.joint.posterior.sum(), 1.0, rtol=1e-12)
    both = a.joint.posterior[0, 0][(a.joint.configurations[:, 3] == 1) & (a.joint.configurations[:, 1] == 0)].sum()
    assert sub.joint.posterior[0, 0][(sub.joint.configurations[:, 0] == 1) & (sub.joint.configurations[:, 1] == 0)].sum() == pytest.approx(both, rel=1e-12)


def _assert_structured_joint_agrees_with_extended_precision(tables, hard, soft, n):
    """Check that the joint of all n causes is enumerated from the structure and its marginals and P(e) match long-double enumeration."""
    causes = [f"c{i}" for i in range(n)]
    net = compile_network(tables)
    result = net.query(EncodedEvidence.from_rows(net.states, [hard], [soft]), causes, joint=causes)
    assert result.method == "structured enumeration"
    expected, log_p = by_longdouble_enumeration(tables, hard, soft, causes)
    got = np.array([result.marginals[c][0, 0, 1] for c in causes])
    np.testing.assert_allclose(got, expected, rtol=TOLERANCE)
    assert result.log_evidence[0, 0] == pytest.approx(log_p, rel=TOLERANCE)


def test_a_large_joint_is_enumerated_from_the_structure_and_agrees_with_extended_precision():
    n = 13
    tables = structured_network(5, n_causes=n)
    hard, soft = patient(tables, 5, n_observed=10, soft=1)
    _assert_structured_joint_agrees_with_extended_precision(tables, hard, soft, n)


@pytest.mark.parametrize("tiny", [1e-3, 1e-200], ids=["soft", "tiny-soft"])
def test_a_large_joint_with_soft_findings_by_noisy_or_tables_agrees_with_extended_precision(tiny):
    # the context observed: one root configuration, the noisy-OR findings as tables over the configurations;
    # likelihoods of 1e-200 for "no" on findings without a leak make the product over findings underflow
    # where no parent is present, and the sum of logarithms takes over there
    n = 13
    tables = structured_network(6, n_causes=n)
    hard, _ = patient(tables, 6, n_observed=8)
    free = [f for f in tables.variables if f.startswith("f") and f not in hard][:3]
    cpts = {v: tables.cpd(v) for v in tables.variables}
    for f in free:
        cpts[f] = NoisyOr(0.0, np.asarray(cpts[f].links))  # type: ignore[union-attr]
    tables = NetworkTables(tables.states, tables.parents, cpts)
    soft = {f: [tiny, 1.0] for f in free}
    _assert_structured_joint_agrees_with_extended_precision(tables, hard, soft, n)


@given(st.integers(0, 2**16), st.booleans())
def test_partial_evidence_equals_a_second_row_with_that_evidence_alone(seed, all_context):
    tables = structured_network(seed % 7, n_causes=4)
    hard, _ = patient(tables, seed, n_observed=5, context=True)
    if not all_context:
        hard.pop("risk")
    net = compile_network(tables)
    causes = [f"c{i}" for i in range(4)]
    result = net.query(EncodedEvidence.one(net.state_index, hard), causes, partial=["time", "risk"])
    context = {k: v for k, v in hard.items() if k in ("time", "risk")}
    two = net.query(EncodedEvidence.from_rows(net.states, [hard, context]), causes)
    for c in causes:
        np.testing.assert_allclose(result.marginals[c][0, 0], two.marginals[c][0, 0], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(result.partial[c][0, 0], two.marginals[c][0, 1], rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ nothing writable, nothing lost to scale


def test_no_query_result_is_a_writable_view_into_the_compiled_model():
    """With every context variable observed, the partial (prior) answer once was a view into the plan."""
    ctx = {"time_since_surgery": "over_2_years", "smoker": "no", "diabetes": "no", "osteoporosis": "no", "multilevel_fusion": "yes", "fusion_to_sacrum": "no"}
    net = MODEL.network
    before = MODEL.diagnose(ctx).prior["nerve_injury"]
    result = net.query(EncodedEvidence.one(net.state_index, ctx), ["nerve_injury"], partial=list(ctx))
    for array in (result.marginals["nerve_injury"], result.partial["nerve_injury"], result.log_evidence):
        with pytest.raises(ValueError, match="read-only"):
            array[...] = 0.0
    assert MODEL.diagnose(ctx).prior["nerve_injury"] == before


@pytest.mark.parametrize("scale", [1e-200, 1e-300, 1e200])
def test_only_ratios_of_soft_likelihoods_matter_at_any_scale(scale):
    ev = {"time_since_surgery": "over_2_years", "neurogenic_claudication": True}
    tiny = {**ev, "radicular_pain": {"yes": scale, "no": scale}, "back_pain": {"yes": 2 * scale, "no": scale}}
    plain = {**ev, "back_pain": {"yes": 2.0, "no": 1.0}}
    np.testing.assert_allclose(MODEL.diagnose(tiny).posterior.to_numpy(), MODEL.diagnose(plain).posterior.to_numpy(), rtol=1e-12)


def test_subnormal_soft_likelihoods_in_ratio_one_to_two_equal_one_and_two():
    ev = {"time_since_surgery": "over_2_years", "neurogenic_claudication": True}
    a = MODEL.diagnose({**ev, "back_pain": {"yes": 5e-324, "no": 1e-323}}).posterior
    b = MODEL.diagnose({**ev, "back_pain": {"yes": 1.0, "no": 2.0}}).posterior
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-12)


# ------------------------------------------------------------------ the memory budget


def test_a_query_beyond_the_memory_budget_says_so_clearly():
    tables = structured_network(1, n_causes=14)
    net = compile_network(tables, memory_budget=2**20)  # 1 MB: 2^14 configurations need more for a joint
    hard, _ = patient(tables, 1)
    with pytest.raises(pfb.MemoryBudgetError, match=r"MB.*budget of 1\.0 MB") as info:
        net.query(EncodedEvidence.from_rows(net.states, [hard]), (), joint=[f"c{i}" for i in range(14)])
    assert info.value.needed > info.value.budget == 2**20
    assert isinstance(info.value, pfb.PostfusionError)


def test_memory_budget_must_be_a_positive_number_of_bytes():
    for bad in (0, -5, 2.5, True, "1GB"):
        with pytest.raises(pfb.PostfusionError, match="memory_budget"):
            compile_network(MODEL.tables, memory_budget=bad)
    assert MODEL.network.with_memory_budget(2**30).memory_budget == 2**30


def test_a_sixteen_cause_joint_query_stays_within_the_default_budget():
    """Measured as the engine promises: the peak traced allocation of the query, its input excluded."""
    tables = structured_network(2, n_causes=16, n_findings=40, links_per_finding=6)
    net = compile_network(tables)
    hard, _ = patient(tables, 2, n_observed=10, context=False)
    encoded = EncodedEvidence.from_rows(net.states, [hard])
    causes = [f"c{i}" for i in range(16)]
    tracemalloc.start()
    try:
        result = net.query(encoded, causes, joint=causes)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.joint.posterior.shape == (1, 1, 2**16)
    assert peak <= net.memory_budget, f"peak {peak / 2**20:.0f} MB"


def test_an_observed_isolated_variable_on_a_factorised_network_multiplies_the_evidence_only():
    """A variable with neither parents nor children (a context variable no cause depends on) next to 13 causes."""
    base = structured_network(3, n_causes=13)
    states = {**base.states, "unused": ("no", "yes")}
    parents = {**base.parents, "unused": ()}
    cpts = {v: base.cpd(v) for v in base.variables}
    cpts["unused"] = np.array([0.3, 0.7])
    tables = NetworkTables(states, parents, cpts)
    hard, soft = patient(base, 3, soft=1)
    hard["unused"] = "yes"
    net = compile_network(tables)
    causes = [f"c{i}" for i in range(13)]
    result = net.query(EncodedEvidence.from_rows(net.states, [hard], [soft]), causes)
    assert result.method == "factorised"
    assert_agrees_with_elimination(result, tables, hard, soft, causes, atol=1e-14)
    without = net.query(EncodedEvidence.from_rows(net.states, [{k: v for k, v in hard.items() if k != "unused"}], [soft]), causes)
    assert result.log_evidence[0, 0] == pytest.approx(without.log_evidence[0, 0] + np.log(0.7), rel=1e-12)


# ------------------------------------------------------------------ found in review (each failed before its fix)


def _thirteen():
    """Return the shipped model (16 causes since the second edition; 13 = 8 + 5 synthetic before): past enumeration, small enough for the dense oracle."""
    from large_models import extended_spec

    from postfusion_bayes.cpts import build_tables

    spec = extended_spec(0)
    tables = build_tables(spec)
    return spec, tables, compile_network(tables), compile_network(tables.dense(), strategy="elimination")


def test_an_observed_finding_asked_for_as_a_target_keeps_its_evidence_on_a_factorised_network():
    _, tables, net, oracle = _thirteen()
    for soft in (None, [{"radicular_pain": [0.2, 0.9]}]):
        hard = [{"smoker": "yes", "onset": "immediate"} if soft else {"smoker": "yes", "radicular_pain": "yes", "onset": "immediate"}]
        ev = EncodedEvidence.from_rows(tables.states, hard, soft)
        targets = ["nerve_injury", "radicular_pain", "onset" if soft else "back_pain"]
        got, expected = net.query(ev, targets), oracle.query(ev, targets)
        assert got.method == "factorised"
        for t in targets:
            np.testing.assert_allclose(got.marginals[t], expected.marginals[t], rtol=1e-9, atol=1e-14, err_msg=t)
        assert got.log_evidence[0, 0] == pytest.approx(expected.log_evidence[0, 0], rel=1e-9)


def test_parameter_sets_reach_isolated_variables_on_a_factorised_network():
    from large_models import extended_documents

    from postfusion_bayes.sensitivity import evaluate
    from postfusion_bayes.spec import spec_from_documents

    documents = extended_documents(0)
    del documents["red_flags.yaml"]["red_flags"]["fever"]["links"]  # isolated again, as in the first edition (a leak only)
    model = pfb.Model(spec_from_documents(documents, source="<shipped priors, fever unlinked>"))
    leaks = np.array([0.01, 0.2, 0.5])
    present, log_evidence = evaluate(model, {"fever": True}, {"red_flags.fever.leak": leaks})
    assert present.shape == (3, 1, len(model.causes)) and log_evidence.shape == (3, 1)
    np.testing.assert_allclose(np.diff(log_evidence[:, 0]), np.diff(np.log(leaks)), rtol=1e-12)  # fever has no cause: P(e) scales with its leak


def test_a_dense_parameter_table_for_a_structured_finding_is_answered_by_structured_enumeration():
    _, tables, net, _ = _thirteen()
    ev = EncodedEvidence.from_rows(tables.states, [{"radicular_pain": "yes"}])
    dense = net.query(ev, ["nerve_injury"], parameters={"radicular_pain": np.stack([tables.cpts["radicular_pain"]] * 2)})
    plain = net.query(ev, ["nerve_injury"])
    assert dense.method == "structured enumeration" and plain.method != dense.method
    np.testing.assert_allclose(dense.marginals["nerve_injury"], np.broadcast_to(plain.marginals["nerve_injury"], dense.marginals["nerve_injury"].shape), rtol=1e-9)
    np.testing.assert_allclose(dense.log_evidence, np.broadcast_to(plain.log_evidence, dense.log_evidence.shape), rtol=1e-12)


def test_impossible_evidence_gives_no_answer_for_any_target_on_a_factorised_network():
    spec, _, _, _ = _thirteen()
    from postfusion_bayes.cpts import build_tables

    impossible = spec.with_values({"findings.ct_screw_breach.leak": 0.0, "causes.nerve_injury.baseline.over_2_years": 0.0})
    tables = build_tables(impossible)
    net = compile_network(tables)
    ev = EncodedEvidence.from_rows(tables.states, [{"time_since_surgery": "over_2_years", "ct_screw_breach": "yes", "other_cause": "absent"}])
    result = net.query(ev, ["fever", "pseudarthrosis"])
    assert result.log_evidence[0, 0] == -np.inf
    assert np.isnan(result.marginals["fever"]).all() and np.isnan(result.marginals["pseudarthrosis"]).all()


def test_unpickled_structured_tables_evidence_and_results_stay_read_only():
    import pickle

    _, tables, net, _ = _thirteen()
    again = pickle.loads(pickle.dumps(net))
    with pytest.raises(ValueError, match="read-only"):
        again.tables.cpd("radicular_pain").links[:] = 0.0
    ev = pickle.loads(pickle.dumps(EncodedEvidence.from_rows(tables.states, [{"smoker": "yes"}], [{"back_pain": [0.3, 0.6]}])))
    for array in (ev.codes["smoker"], ev.likelihoods["back_pain"]):
        with pytest.raises(ValueError, match="read-only"):
            array[...] = 0
    result = pickle.loads(pickle.dumps(net.query(ev, ["nerve_injury"], joint=["nerve_injury"])))
    assert not result.marginals["nerve_injury"].flags.writeable and not result.joint.posterior.flags.writeable


def test_a_read_only_view_of_a_writable_array_is_copied_into_the_tables():
    base = np.array([0.8, 0.2])
    view = base.view()
    view.setflags(write=False)
    tables = NetworkTables({"rain": ("no", "yes"), "wet": ("no", "yes")}, {"wet": ("rain",)}, {"rain": view, "wet": [[0.9, 0.1], [0.2, 0.8]]})
    base[:] = [5.0, -4.0]
    np.testing.assert_array_equal(tables.cpts["rain"], [0.8, 0.2])


def test_elimination_processes_rows_in_chunks_within_the_budget_with_the_same_answers():
    _, tables, _, oracle = _thirteen()
    rows = [{"onset": s, "radicular_pain": r} for s in tables.states["onset"] for r in ("yes", "no")] * 10
    ev = EncodedEvidence.from_rows(tables.states, rows)
    full = oracle.query(ev, ["nerve_injury"])
    small = oracle.with_memory_budget(32 * 2**20).query(ev, ["nerve_injury"])
    np.testing.assert_array_equal(small.marginals["nerve_injury"], full.marginals["nerve_injury"])
    with pytest.raises(pfb.MemoryBudgetError, match="one row of this query would need"):
        oracle.with_memory_budget(2**16).query(ev, ["nerve_injury"])


def test_a_joint_over_many_rows_past_the_budget_is_refused_before_allocating():
    _, tables, net, _ = _thirteen()
    ev = EncodedEvidence.from_rows(tables.states, [{"radicular_pain": "yes"}] * 3000)
    with pytest.raises(pfb.MemoryBudgetError, match="joint posterior of 65,536 configurations for 3,000 rows"):
        net.with_memory_budget(2**26).query(ev, (), joint=["nerve_injury", "pseudarthrosis"])


def test_a_joint_by_clamping_keeps_the_soft_likelihood_of_a_hard_observed_joint_variable():
    net = MODEL.network
    ev = EncodedEvidence.from_codes(net.states, {"smoker": np.array([1]), "radicular_pain": np.array([1])}, 1, {"smoker": np.array([[0.5, 0.25]])})
    plain = net.query(ev, ())
    eliminating = compile_network(MODEL.tables.dense(), strategy="elimination")
    clamped = eliminating.query(ev, (), joint=["smoker", "time_since_surgery"])
    assert clamped.log_evidence[0, 0] == pytest.approx(plain.log_evidence[0, 0], rel=1e-12)


@pytest.mark.parametrize("context", [{"time_since_surgery": "over_2_years"}, {"time_since_surgery": "over_2_years", "smoker": "yes", "diabetes": "no"}, {}])
def test_parameter_sets_on_a_factorised_network_equal_each_set_compiled_alone(context):
    """Only the root configurations the evidence allows are gathered for the sets; each set must still be exact."""
    from postfusion_bayes.cpts import build_tables

    spec, tables, net, _ = _thirteen()
    values = {"causes.pseudarthrosis.baseline.over_2_years": np.array([0.05, 0.1, 0.3]), "findings.radicular_pain.links.nerve_injury": np.array([0.6, 0.8, 0.9])}
    batched_tables = build_tables(spec, values)
    batched = {v: batched_tables.cpd(v) for v in batched_tables.variables if batched_tables.batch_size(v) is not None}
    ev = EncodedEvidence.from_rows(tables.states, [{**context, "radicular_pain": "yes", "onset": "gradual_after_relief"}])
    result = net.query(ev, ["pseudarthrosis", "nerve_injury"], parameters=batched)
    assert result.method == "factorised" and result.log_evidence.shape == (3, 1)
    for k in range(3):
        alone = compile_network(build_tables(spec.with_values({name: float(v[k]) for name, v in values.items()})))
        expected = alone.query(ev, ["pseudarthrosis", "nerve_injury"])
        for t in ("pseudarthrosis", "nerve_injury"):
            np.testing.assert_allclose(result.marginals[t][k], expected.marginals[t][0], rtol=1e-9, atol=1e-14)
        assert result.log_evidence[k, 0] == pytest.approx(expected.log_evidence[0, 0], rel=1e-9)


@given(st.integers(0, 2**16), st.sampled_from([("time", "risk"), ("time",), ()]), st.floats(0.01, 100.0))
def test_one_row_with_soft_evidence_and_partial_evidence_equals_two_rows(seed, context, ratio):
    """The soft single-row path reads the prior from the plan; it must equal a second row with the context alone."""
    tables = structured_network(seed % 7, n_causes=4)
    hard, _ = patient(tables, seed, n_observed=4, context=True)
    hard = {k: v for k, v in hard.items() if k not in ("time", "risk") or k in context}
    soft = {"f0": [1.0, ratio]} if "f0" not in hard else {"f1": [ratio, 1.0]}
    net = compile_network(tables)
    causes = [f"c{i}" for i in range(4)]
    one = net.query(EncodedEvidence.one(net.state_index, hard, soft), causes, partial=["time", "risk"])
    two = net.query(EncodedEvidence.from_rows(net.states, [hard, {k: v for k, v in hard.items() if k in ("time", "risk")}], [soft, {}]), causes)
    for c in causes:
        np.testing.assert_allclose(one.marginals[c][0, 0], two.marginals[c][0, 0], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(one.partial[c][0, 0], two.marginals[c][0, 1], rtol=1e-12, atol=1e-15)
    assert one.log_evidence[0, 0] == pytest.approx(two.log_evidence[0, 0], rel=1e-12)


@pytest.mark.parametrize("rows", [2, 40])  # the per-cell path (16 rows or fewer) and the factorised one
@pytest.mark.parametrize("cell, shown", [(["yes"], r"\['yes'\]"), (("yes", ["no"]), r"\('yes', \['no'\]\)")])
def test_encode_refuses_an_unhashable_cell_naming_the_variable(rows, cell, shown):
    import pandas as pd

    import postfusion_bayes as pfb

    network = pfb.load_model().network
    column = pd.Series([cell] + ["no"] * (rows - 1), dtype=object)
    with pytest.raises(pfb.EvidenceError, match=rf"variable 'smoker': state {shown} is not allowed"):
        network.encode(pd.DataFrame({"smoker": column}))


# ------------------------------------------------------------------ one patient on a factorised network


def _shipped_patient(seed: int, soft: bool, cause: bool, context: str = "all"):
    """Draw a possible patient of the shipped model: its context ("all", "some" or "none"), ten findings, onset."""
    from postfusion_bayes.engine.sampling import sample_cases

    net = MODEL.network
    layers = net.layers
    rng = np.random.default_rng(seed)
    case = sample_cases(net.tables, 1, rng).iloc[0]
    roots = list(layers["roots"] if "roots" in layers else [v for v in net.variables if not net.tables.parents[v]])
    findings = [v for v in net.variables if net.tables.parents[v] and v not in MODEL.causes and v != "onset"]
    kept = roots if context == "all" else roots[:3] if context == "some" else []
    hard = {v: case[v] for v in kept}
    hard.update({v: case[v] for v in rng.choice(findings, size=10, replace=False)})
    hard["onset"] = case["onset"]
    if cause:
        hard[MODEL.causes[int(rng.integers(len(MODEL.causes)))]] = case[MODEL.causes[0]]
    likelihood = {}
    if soft:
        free = [f for f in findings if f not in hard]
        likelihood[str(rng.choice(free))] = list(rng.uniform(0.05, 1.0, size=2))
    return hard, likelihood


ONE_PATIENT_CASES = [(0, False, False, "all"), (1, True, False, "all"), (2, False, True, "all"), (3, True, True, "all"), (4, False, False, "some"), (5, True, False, "none")]


@pytest.mark.parametrize("seed, soft, cause, context", ONE_PATIENT_CASES)
def test_one_patient_equals_the_same_evidence_as_rows_of_a_batch(seed, soft, cause, context, monkeypatch):
    """The one-row path (one root configuration, the row's arrays built directly) gives the general path's answers."""
    from postfusion_bayes.engine.compiled import CompiledNetwork

    net = MODEL.network
    hard, likelihood = _shipped_patient(seed, soft, cause, context)
    roots = [v for v in net.variables if not net.tables.parents[v]]
    causes = list(MODEL.causes)
    taken = []
    original = CompiledNetwork._factorised_one

    def spy(self, *args, **kwargs):
        answer = original(self, *args, **kwargs)
        taken.append(answer is not None)
        return answer

    monkeypatch.setattr(CompiledNetwork, "_factorised_one", spy)
    one = net.query(EncodedEvidence.one(net.state_index, hard, likelihood), causes, partial=roots)
    assert taken == [context == "all"]  # the one-row path answers exactly when every root is observed hard
    context_only = {k: v for k, v in hard.items() if k in roots}
    rows = EncodedEvidence.from_rows(net.states, [hard, context_only], [likelihood, {}] if likelihood else None)
    two = net.query(rows, causes)
    assert len(taken) == 1  # (two rows: the general path)
    for i, c in enumerate(causes):
        np.testing.assert_allclose(one.marginals[c][0, 0], two.marginals[c][0, 0], rtol=1e-12, atol=1e-15, err_msg=c)
        np.testing.assert_allclose(one.partial[c][0, 0], two.marginals[c][0, 1], rtol=1e-12, atol=1e-15, err_msg=c)
        assert one.last_state(causes)[0, 0, i] == one.marginals[c][0, 0, 1]
        assert one.last_state(causes, partial=True)[0, 0, i] == one.partial[c][0, 0, 1]
    assert one.log_evidence[0, 0] == pytest.approx(two.log_evidence[0, 0], rel=1e-12)
    assert not one.log_evidence.flags.writeable and not one.marginals[causes[0]].flags.writeable


def test_one_patient_with_impossible_evidence_gets_no_numbers():
    spec, _, _, _ = _thirteen()
    from postfusion_bayes.cpts import build_tables

    net = compile_network(build_tables(spec.with_values({"causes.nerve_injury.baseline.over_2_years": 0.0})))
    roots = [v for v in net.variables if not net.tables.parents[v]]
    hard, _ = _shipped_patient(7, False, False)
    hard.update({"time_since_surgery": "over_2_years", "nerve_injury": "present"})  # a cause the context rules out
    result = net.query(EncodedEvidence.one(net.state_index, hard), ["nerve_injury", "surgical_site_infection"], partial=roots)
    assert result.log_evidence[0, 0] == -np.inf
    assert np.isnan(result.marginals["nerve_injury"]).all() and np.isnan(result.marginals["surgical_site_infection"]).all()
    assert result.partial["nerve_injury"][0, 0, 1] == 0.0  # the context alone rules it out


def test_rows_with_every_root_observed_hard_equal_the_general_path():
    """Rows whose roots are all hard pass on only their root configurations; a root target takes the general path."""
    net = MODEL.network
    roots = [v for v in net.variables if not net.tables.parents[v]]
    causes = list(MODEL.causes)
    patients = [_shipped_patient(seed, False, seed == 2)[0] for seed in range(6)]
    patients.append(dict(patients[0]))  # two rows of the same context
    rows = EncodedEvidence.from_rows(net.states, patients)
    reduced = net.query(rows, causes, partial=roots)
    general = net.query(rows, [*causes, roots[0]], partial=roots)
    for c in causes:
        np.testing.assert_allclose(reduced.marginals[c], general.marginals[c], rtol=1e-12, atol=1e-15, err_msg=c)
        np.testing.assert_allclose(reduced.partial[c], general.partial[c], rtol=1e-12, atol=1e-15, err_msg=c)
    np.testing.assert_allclose(reduced.log_evidence, general.log_evidence, rtol=1e-12)
    for i, hard in enumerate(patients):  # each row as one patient
        one = net.query(EncodedEvidence.one(net.state_index, hard), causes, partial=roots)
        for c in causes:
            np.testing.assert_allclose(one.marginals[c][0, 0], reduced.marginals[c][0, i], rtol=1e-12, atol=1e-15, err_msg=c)
