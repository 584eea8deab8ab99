"""Exact batched variable elimination against pgmpy and brute-force enumeration."""

from __future__ import annotations

import math
import warnings
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracles import brute_force, forward_sample, unlikely_chain, variable_elimination

from postfusion_bayes.engine._elimination import compile_plan, eliminate
from postfusion_bayes.engine.tables import NetworkTables
from postfusion_bayes.errors import EvidenceError, ParameterError

TOLERANCE = 1e-9
LARGE_NETWORKS = {"child", "insurance", "alarm"}
BRUTE_FORCE_NETWORKS = {"asia", "cancer", "earthquake", "survey", "sachs"}


# ----------------------------------------------------------------------------------------------- helpers


def one_hot_evidence(tables, samples, observed_rows, n_rows) -> dict[str, np.ndarray]:
    """Likelihood arrays: one-hot where a row observes a variable, ones elsewhere."""
    likelihoods = {}
    for row, observed in enumerate(observed_rows):
        for name in observed:
            if name not in likelihoods:
                likelihoods[name] = np.ones((n_rows, tables.cardinality(name)))
            likelihoods[name][row] = 0.0
            likelihoods[name][row, samples[name][row]] = 1.0
    return likelihoods


def random_evidence_rows(tables, n_rows, rng, max_observed):
    """Per row: a random subset of observed variables and random targets among the others."""
    variables = list(tables.variables)
    observed_rows, target_rows = [], []
    for _ in range(n_rows):
        k = int(rng.integers(1, min(max_observed, len(variables) - 1) + 1))
        observed = [variables[i] for i in rng.choice(len(variables), size=k, replace=False)]
        hidden = [v for v in variables if v not in observed]
        targets = [hidden[i] for i in rng.choice(len(hidden), size=min(3, len(hidden)), replace=False)]
        observed_rows.append(observed)
        target_rows.append(targets)
    return observed_rows, target_rows


def pgmpy_marginal(inference, tables, target, **query):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        factor = inference.query([target], show_progress=False, **query)
    return np.array([factor.get_value(**{target: s}) for s in tables.states[target]])


def perturbed(table: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Perturb a table at random and renormalise it, keeping its zeros."""
    values = table * rng.uniform(0.2, 5.0, size=table.shape)
    return values / values.sum(axis=-1, keepdims=True)


# ------------------------------------------------------------------------------ reference networks vs pgmpy


def test_hard_evidence_matches_pgmpy(reference_network_name, load_reference_network):
    name = reference_network_name
    tables, bn = load_reference_network(name)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    n_rows = 5 if name in LARGE_NETWORKS else 12
    samples = forward_sample(tables, n_rows, rng)
    observed_rows, target_rows = random_evidence_rows(tables, n_rows, rng, max_observed=8)
    likelihoods = one_hot_evidence(tables, samples, observed_rows, n_rows)
    targets = sorted({t for ts in target_rows for t in ts})

    marginals, log_evidence = eliminate(tables, likelihoods, targets)

    assert log_evidence.shape == (1, n_rows)
    assert np.all(np.isfinite(log_evidence))
    inference = variable_elimination(bn)
    for row, (observed, row_targets) in enumerate(zip(observed_rows, target_rows, strict=True)):
        evidence = {v: tables.states[v][samples[v][row]] for v in observed}
        for t in row_targets:
            assert marginals[t].shape == (1, n_rows, tables.cardinality(t))
            expected = pgmpy_marginal(inference, tables, t, evidence=evidence)
            np.testing.assert_allclose(marginals[t][0, row], expected, rtol=0, atol=TOLERANCE, err_msg=f"{t}, row {row}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            joint = inference.query(list(evidence), joint=True, show_progress=False)
        p_evidence = joint.get_value(**evidence)
        assert math.isclose(log_evidence[0, row], math.log(p_evidence), rel_tol=0, abs_tol=TOLERANCE)

    if name in BRUTE_FORCE_NETWORKS:
        expected_marginals, expected_evidence = brute_force(tables, likelihoods, targets, n_rows)
        np.testing.assert_allclose(np.exp(log_evidence[0]), expected_evidence, rtol=TOLERANCE)
        for t in targets:
            observed_here = [t in observed for observed in observed_rows]
            np.testing.assert_allclose(marginals[t][0], expected_marginals[t], atol=TOLERANCE, err_msg=f"{t} {observed_here}")


@pytest.mark.parametrize("name", ["asia", "survey", "sachs", "child"])
def test_soft_evidence_matches_pgmpy_virtual_evidence(name, load_reference_network):
    from pgmpy.factors.discrete import TabularCPD

    tables, bn = load_reference_network(name)
    rng = np.random.default_rng(zlib.crc32(b"soft " + name.encode()))
    n_rows = 4
    samples = forward_sample(tables, n_rows, rng)
    variables = list(tables.variables)
    likelihoods = {v: np.ones((n_rows, tables.cardinality(v))) for v in variables}
    soft_rows, hard_rows, target_rows = [], [], []
    for row in range(n_rows):
        order = [variables[i] for i in rng.permutation(len(variables))]
        soft, hard, rest = order[:2], order[2:4], order[4:]
        for v in soft:
            likelihoods[v][row] = rng.uniform(0.05, 1.0, size=tables.cardinality(v))
        for v in hard:
            likelihoods[v][row] = np.eye(tables.cardinality(v))[samples[v][row]]
        soft_rows.append(soft)
        hard_rows.append(hard)
        target_rows.append(rest[:2] + soft[:1])  # a variable with soft evidence is a valid target too
    targets = sorted({t for ts in target_rows for t in ts})

    marginals, log_evidence = eliminate(tables, likelihoods, targets)

    for row in range(n_rows):
        evidence = {v: tables.states[v][samples[v][row]] for v in hard_rows[row]}
        for t in target_rows[row]:
            virtual = [
                TabularCPD(v, tables.cardinality(v), likelihoods[v][row][:, None], state_names={v: list(tables.states[v])})
                for v in soft_rows[row]
            ]
            # pgmpy rewrites the model of the inference object for virtual evidence: a fresh one per query.
            expected = pgmpy_marginal(variable_elimination(bn), tables, t, evidence=evidence, virtual_evidence=virtual)
            np.testing.assert_allclose(marginals[t][0, row], expected, rtol=0, atol=TOLERANCE, err_msg=f"{t}, row {row}")
    if name in BRUTE_FORCE_NETWORKS:
        expected_marginals, expected_evidence = brute_force(tables, likelihoods, targets, n_rows)
        np.testing.assert_allclose(np.exp(log_evidence[0]), expected_evidence, rtol=TOLERANCE)
        for t in targets:
            np.testing.assert_allclose(marginals[t][0], expected_marginals[t], atol=TOLERANCE)


@pytest.mark.parametrize("name", ["asia", "child", "alarm"])
def test_parameter_sets_equal_separate_calls(name, load_reference_network):
    tables, _ = load_reference_network(name)
    rng = np.random.default_rng(zlib.crc32(b"sets " + name.encode()))
    n_sets, n_rows = 3, 6
    samples = forward_sample(tables, n_rows, rng)
    observed_rows, target_rows = random_evidence_rows(tables, n_rows, rng, max_observed=6)
    likelihoods = one_hot_evidence(tables, samples, observed_rows, n_rows)
    targets = sorted({t for ts in target_rows for t in ts})
    chosen = [tables.variables[i] for i in rng.choice(len(tables.variables), size=4, replace=False)]
    versions = {v: np.stack([perturbed(tables.cpts[v], rng) for _ in range(n_sets)]) for v in chosen}

    marginals, log_evidence = eliminate(tables.replace(versions), likelihoods, targets)

    assert log_evidence.shape == (n_sets, n_rows)
    for s in range(n_sets):
        single = tables.replace({v: versions[v][s] for v in chosen})
        expected_marginals, expected_log_evidence = eliminate(single, likelihoods, targets)
        np.testing.assert_allclose(log_evidence[s], expected_log_evidence[0], rtol=1e-12, atol=1e-12)
        for t in targets:
            assert marginals[t].shape == (n_sets, n_rows, tables.cardinality(t))
            np.testing.assert_allclose(marginals[t][s], expected_marginals[t][0], rtol=0, atol=1e-12)


def test_unbatched_tables_give_one_parameter_set_and_no_evidence_gives_priors(load_reference_network):
    tables, _ = load_reference_network("asia")
    marginals, log_evidence = eliminate(tables, {}, ["dysp", "asia"])
    assert log_evidence.shape == (1, 1) and log_evidence[0, 0] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(marginals["asia"][0, 0], tables.cpts["asia"], atol=1e-12)
    expected, _ = brute_force(tables, {}, ["dysp"], 1)
    np.testing.assert_allclose(marginals["dysp"][0], expected["dysp"], atol=TOLERANCE)


def test_mismatched_parameter_set_counts_are_rejected(load_reference_network):
    tables, _ = load_reference_network("asia")
    rng = np.random.default_rng(0)
    bad = tables.replace(
        {
            "asia": np.stack([perturbed(tables.cpts["asia"], rng) for _ in range(2)]),
            "smoke": np.stack([perturbed(tables.cpts["smoke"], rng) for _ in range(3)]),
        }
    )
    with pytest.raises(ParameterError, match="parameter sets"):
        eliminate(bad, {}, ["dysp"])


# ------------------------------------------------------------------------------ random networks (hypothesis)


@st.composite
def small_networks(draw):
    """Random DAGs of 2-6 nodes with 2-3 states and Dirichlet tables."""
    n = draw(st.integers(2, 6))
    names = [f"v{i}" for i in range(n)]
    cards = [draw(st.integers(2, 3)) for _ in range(n)]
    parents = {}
    for i, name in enumerate(names):
        chosen = draw(st.lists(st.sampled_from(names[:i]), unique=True, max_size=min(i, 3))) if i else []
        parents[name] = tuple(chosen)  # drawn order, not sorted: tests arbitrary axis orders
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    alpha = draw(st.sampled_from([0.3, 1.0, 5.0]))
    cpts = {}
    for name, card in zip(names, cards, strict=True):
        parent_cards = tuple(cards[names.index(p)] for p in parents[name])
        cpts[name] = rng.dirichlet(np.full(card, alpha), size=parent_cards)
    states = {name: tuple(f"s{k}" for k in range(card)) for name, card in zip(names, cards, strict=True)}
    return NetworkTables(states=states, parents=parents, cpts=cpts)


@st.composite
def networks_with_evidence(draw):
    tables = draw(small_networks())
    n_rows = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    samples = forward_sample(tables, n_rows, rng)
    likelihoods = {}
    for name in tables.variables:
        kind_per_row = [draw(st.sampled_from(["none", "hard", "soft"])) for _ in range(n_rows)]
        if draw(st.booleans()) and "none" in kind_per_row and len(set(kind_per_row)) == 1:
            continue  # absent from the mapping
        card = tables.cardinality(name)
        values = np.ones((n_rows, card))
        for row, kind in enumerate(kind_per_row):
            if kind == "hard":
                values[row] = np.eye(card)[samples[name][row]]
            elif kind == "soft":
                values[row] = rng.uniform(0.01, 3.0, size=card)
        likelihoods[name] = values
    targets = draw(st.lists(st.sampled_from(tables.variables), unique=True, min_size=1))
    if not likelihoods:
        n_rows = 1  # with no likelihood array there is one row
    return tables, likelihoods, targets, n_rows


@given(networks_with_evidence())
def test_random_networks_match_brute_force(case):
    tables, likelihoods, targets, n_rows = case
    marginals, log_evidence = eliminate(tables, likelihoods, targets)
    expected_marginals, expected_evidence = brute_force(tables, likelihoods, targets, n_rows)
    np.testing.assert_allclose(log_evidence[0], np.log(expected_evidence), rtol=0, atol=TOLERANCE)
    for t in targets:
        np.testing.assert_allclose(marginals[t][0], expected_marginals[t], rtol=0, atol=TOLERANCE)


@given(networks_with_evidence())
def test_rows_batched_equal_rows_one_by_one(case):
    tables, likelihoods, targets, n_rows = case
    marginals, log_evidence = eliminate(tables, likelihoods, targets)
    for row in range(n_rows):
        one_row = {v: a[row : row + 1] for v, a in likelihoods.items()}
        row_marginals, row_log_evidence = eliminate(tables, one_row, targets)
        np.testing.assert_allclose(log_evidence[:, row], row_log_evidence[:, 0], rtol=1e-12, atol=1e-12)
        for t in targets:
            np.testing.assert_allclose(marginals[t][:, row], row_marginals[t][:, 0], rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------ impossible evidence, numerics


def _chain_with_zeros() -> NetworkTables:
    """Build a -> b -> c where a is always "0" and b is always "0" when a is "0"."""
    return NetworkTables(
        states={"a": ("0", "1"), "b": ("0", "1"), "c": ("0", "1")},
        parents={"b": ("a",), "c": ("b",)},
        cpts={"a": [1.0, 0.0], "b": [[1.0, 0.0], [0.5, 0.5]], "c": [[0.7, 0.3], [0.1, 0.9]]},
    )


def test_impossible_row_gets_minus_infinity_and_nan_only_there():
    tables = _chain_with_zeros()
    b = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])  # impossible, b=0, unobserved, zero likelihood
    marginals, log_evidence = eliminate(tables, {"b": b}, ["a", "c"])

    assert log_evidence[0, 0] == -np.inf and log_evidence[0, 3] == -np.inf
    assert log_evidence[0, 1] == pytest.approx(0.0, abs=1e-12) and log_evidence[0, 2] == pytest.approx(0.0, abs=1e-12)
    for t in ("a", "c"):
        assert np.all(np.isnan(marginals[t][0, [0, 3]]))
        assert not np.any(np.isnan(marginals[t][0, [1, 2]]))
    np.testing.assert_allclose(marginals["c"][0, 1], [0.7, 0.3])
    np.testing.assert_allclose(marginals["a"][0, 2], [1.0, 0.0])


def test_impossible_evidence_in_one_parameter_set_only():
    tables = _chain_with_zeros()
    versions = np.stack([tables.cpts["a"], [0.5, 0.5]])  # set 1 makes b = 1 possible
    b = np.array([[0.0, 1.0], [1.0, 0.0]])
    marginals, log_evidence = eliminate(tables.replace({"a": versions}), {"b": b}, ["a"])

    assert log_evidence[0, 0] == -np.inf
    assert np.all(np.isfinite(log_evidence[[0, 1, 1], [1, 0, 1]]))
    assert np.all(np.isnan(marginals["a"][0, 0]))
    np.testing.assert_allclose(marginals["a"][1, 0], [0.0, 1.0])  # only a = 1 can give b = 1
    assert log_evidence[1, 0] == pytest.approx(math.log(0.25))


def test_long_chain_of_unlikely_observations_does_not_underflow():
    n, rare = 400, 1e-3
    tables = unlikely_chain(n, rare, ("0", "1"))
    names = list(tables.variables)
    state_one = np.array([[0.0, 1.0]])

    _, log_evidence = eliminate(tables, {name: state_one for name in names}, [])
    assert np.isfinite(log_evidence[0, 0])
    assert log_evidence[0, 0] == pytest.approx(n * math.log(rare), rel=1e-12)

    hidden = names[200]
    marginals, log_evidence = eliminate(tables, {name: state_one for name in names if name != hidden}, [hidden])
    p_one, p_zero = rare * rare, (1 - rare) * 0.5
    assert log_evidence[0, 0] == pytest.approx((n - 2) * math.log(rare) + math.log(p_one + p_zero), rel=1e-12)
    np.testing.assert_allclose(marginals[hidden][0, 0], [p_zero, p_one] / np.float64(p_one + p_zero), rtol=1e-12)


# ------------------------------------------------------------------------------ plans, pruning, validation


def test_barren_variables_are_pruned_and_plans_are_cached(load_reference_network):
    tables, _ = load_reference_network("asia")
    plan = compile_plan(tables, observed=["tub"], targets=["smoke"])
    assert sorted(plan.order) == ["asia", "smoke", "tub"]
    assert compile_plan(tables, observed=["tub"], targets=["smoke"]) is plan


def test_all_ones_likelihood_equals_missing_variable(load_reference_network):
    tables, _ = load_reference_network("asia")
    xray = np.array([[0.0, 1.0], [1.0, 0.0]])
    with_ones, log_with_ones = eliminate(tables, {"xray": xray, "dysp": np.ones((2, 2))}, ["lung"])
    without, log_without = eliminate(tables, {"xray": xray}, ["lung"])
    np.testing.assert_array_equal(log_with_ones, log_without)
    np.testing.assert_array_equal(with_ones["lung"], without["lung"])


@pytest.mark.parametrize(
    ("likelihoods", "targets", "error", "message"),
    [
        ({}, ["lugn"], ValueError, "did you mean 'lung'"),
        ({"xrya": np.ones((1, 2))}, ["lung"], EvidenceError, "did you mean 'xray'"),
        ({"xray": np.ones((1, 3))}, ["lung"], EvidenceError, "shape"),
        ({"xray": np.ones(2)}, ["lung"], EvidenceError, "shape"),
        ({"xray": np.array([[1.0, -0.5]])}, ["lung"], EvidenceError, "negative"),
        ({"xray": np.array([[1.0, np.nan]])}, ["lung"], EvidenceError, "non-finite"),
        ({"xray": np.ones((2, 2)) * 0.5, "dysp": np.ones((3, 2))}, ["lung"], EvidenceError, "rows"),
    ],
)
def test_invalid_input_is_rejected(likelihoods, targets, error, message, load_reference_network):
    tables, _ = load_reference_network("asia")
    with pytest.raises(error, match=message):
        eliminate(tables, likelihoods, targets)


# ------------------------------------------------------------------------------ one row, pairwise steps


def test_one_row_at_a_time_matches_pgmpy_and_the_same_row_in_a_batch(load_reference_network):
    # insurance has clusters of 28,800 entries: its big contractions run as pairwise steps and matrix products
    tables, bn = load_reference_network("insurance")
    rng = np.random.default_rng(zlib.crc32(b"one row"))
    n_rows = 3
    samples = forward_sample(tables, n_rows, rng)
    observed_rows, target_rows = random_evidence_rows(tables, n_rows, rng, max_observed=8)
    likelihoods = one_hot_evidence(tables, samples, observed_rows, n_rows)
    targets = sorted({t for ts in target_rows for t in ts})
    batch_marginals, batch_log_evidence = eliminate(tables, likelihoods, targets)
    inference = variable_elimination(bn)
    for row, (observed, row_targets) in enumerate(zip(observed_rows, target_rows, strict=True)):
        one_row = {v: a[row : row + 1] for v, a in likelihoods.items()}
        marginals, log_evidence = eliminate(tables, one_row, targets)
        assert log_evidence.shape == (1, 1)
        np.testing.assert_allclose(log_evidence[0, 0], batch_log_evidence[0, row], rtol=1e-12)
        evidence = {v: tables.states[v][samples[v][row]] for v in observed}
        for t in targets:
            assert marginals[t].shape == (1, 1, tables.cardinality(t))
            np.testing.assert_allclose(marginals[t][0, 0], batch_marginals[t][0, row], rtol=0, atol=1e-12)
        for t in row_targets:
            np.testing.assert_allclose(marginals[t][0, 0], pgmpy_marginal(inference, tables, t, evidence=evidence), rtol=0, atol=TOLERANCE)


def test_one_impossible_row_alone_gets_minus_infinity_and_nan():
    tables = _chain_with_zeros()
    marginals, log_evidence = eliminate(tables, {"b": np.array([[0.0, 1.0]])}, ["a", "c"])
    assert log_evidence[0, 0] == -np.inf
    assert np.all(np.isnan(marginals["a"])) and np.all(np.isnan(marginals["c"]))
    marginals, log_evidence = eliminate(tables, {"b": np.array([[1.0, 0.0]])}, ["a", "c"])
    assert log_evidence[0, 0] == pytest.approx(0.0, abs=1e-15)
    np.testing.assert_allclose(marginals["c"][0, 0], [0.7, 0.3], rtol=1e-15)


def test_one_row_of_a_long_unlikely_chain_does_not_underflow():
    n, rare = 400, 1e-3
    tables = unlikely_chain(n, rare, ("0", "1"))
    _, log_evidence = eliminate(tables, {name: np.array([[0.0, 1.0]]) for name in tables.variables}, [])
    assert log_evidence[0, 0] == pytest.approx(n * math.log(rare), rel=1e-12)


@st.composite
def pairwise_contractions(draw):
    """Draw a random many-operand einsum over small axes, with batch axes "a" and "b" on some operands."""
    letters = "cdefgh"
    sizes = {c: draw(st.integers(1, 5)) for c in letters} | {"a": draw(st.integers(1, 3)), "b": draw(st.integers(1, 3))}
    terms = []
    for _ in range(draw(st.integers(2, 5))):
        batch = draw(st.sampled_from(["", "a", "b", "ab"]))
        term = draw(st.lists(st.sampled_from(letters), min_size=1, max_size=4, unique=True))
        terms.append(batch + "".join(term))
    used = "".join(dict.fromkeys("".join(terms)))
    kept = [c for c in used if c not in "ab" and draw(st.booleans())]
    output = "".join(c for c in "ab" if c in used) + "".join(draw(st.permutations(kept)))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    operands = [rng.uniform(0.1, 1.0, size=tuple(sizes[c] for c in t)) for t in terms]
    return ",".join(terms) + "->" + output, operands


@given(pairwise_contractions())
def test_pairwise_steps_and_matrix_products_equal_one_einsum(case):
    from postfusion_bayes.engine import _elimination

    subscripts, operands = case
    expected = np.einsum(subscripts, *operands)
    steps = _elimination._pairwise_steps(subscripts, operands)
    arrays = list(operands)
    for step, picks, _ in steps:  # as plain einsums
        arrays.append(np.einsum(step, *[arrays[i] for i in picks]))
    np.testing.assert_allclose(arrays[-1], expected, rtol=1e-12)
    arrays = list(operands)
    for step, picks, _ in steps:  # every pair that sums something out as a matrix product
        inputs = [arrays[i] for i in picks]
        product = _elimination._Matmul.of(step, *(a.shape for a in inputs), batch_letters="ab") if len(inputs) == 2 else None
        arrays.append(np.einsum(step, *inputs) if product is None else product(*inputs))
    assert arrays[-1].shape == expected.shape
    np.testing.assert_allclose(arrays[-1], expected, rtol=1e-12)
