"""The public inference API (:mod:`postfusion_bayes.engine`) against pgmpy and brute-force enumeration.

Everything here goes through ``compile_network`` and the ``CompiledNetwork`` methods: labelled
evidence frames, soft evidence through ``likelihood=``, parameter sets through ``parameters=``.
The private engines have their own tests in ``test_elimination.py``.
"""

from __future__ import annotations

import itertools
import math
import warnings
import zlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracles import brute_force, forward_sample, unlikely_chain, variable_elimination

import postfusion_bayes as pfb
from postfusion_bayes.engine import CompiledNetwork, compile_network, one_hot
from postfusion_bayes.engine.encoding import EncodedEvidence
from postfusion_bayes.engine.files import tables_from_pgmpy, to_pgmpy
from postfusion_bayes.engine.structured import Mixture, NoisyOr
from postfusion_bayes.engine.tables import NetworkTables
from postfusion_bayes.errors import EvidenceError

TOLERANCE = 1e-9
SAME = 1e-12
#: Reference BIF files whose columns sum to 1 only within ~1e-7.
ROUNDED_NETWORKS = {"sachs", "insurance", "alarm"}
LARGE_NETWORKS = {"child", "insurance", "alarm"}


# ----------------------------------------------------------------------------------------------- helpers


def pgmpy_query(inference, variables, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return inference.query(list(variables), show_progress=False, **kwargs)


def pgmpy_marginal(inference, states, target, **kwargs) -> np.ndarray:
    factor = pgmpy_query(inference, [target], **kwargs)
    return np.array([factor.get_value(**{target: s}) for s in states[target]])


def pgmpy_evidence_probability(inference, hard: dict[str, str], soft: dict[str, np.ndarray] | None = None, states=None) -> float:
    """P(hard evidence) from a joint query with no evidence; with soft evidence, sum_x P(hard, x) * prod lambda(x)."""
    soft = soft or {}
    joint = pgmpy_query(inference, [*hard, *soft], joint=True)
    if not soft:
        return float(joint.get_value(**hard))
    total = 0.0
    names = list(soft)
    for config in itertools.product(*[range(len(states[v])) for v in names]):
        weight = math.prod(soft[v][k] for v, k in zip(names, config, strict=True))
        total += weight * joint.get_value(**hard, **{v: states[v][k] for v, k in zip(names, config, strict=True)})
    return total


def evidence_frame(tables, samples, observed_rows, index=None, extra_empty: str | None = None) -> pd.DataFrame:
    """One row per entry of ``observed_rows``: the sampled state name where observed, None elsewhere."""
    columns = [v for v in tables.variables if any(v in obs for obs in observed_rows)]
    if extra_empty is not None and extra_empty not in columns:
        columns.append(extra_empty)  # a column that no row observes
    data = {
        v: [tables.states[v][samples[v][row]] if v in obs else None for row, obs in enumerate(observed_rows)]
        for v in columns
    }
    return pd.DataFrame(data, index=index, columns=columns, dtype=object)


def perturbed(table: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Perturb a table at random and renormalise it (same zeros)."""
    values = table * rng.uniform(0.2, 5.0, size=table.shape)
    return values / values.sum(axis=-1, keepdims=True)


def perturbed_version(tables: NetworkTables, name: str, rng: np.random.Generator):
    """One perturbed table of ``name`` in the form the network keeps it: dense, or noisy-OR / mixture numbers."""
    cpd = tables.cpd(name)
    if isinstance(cpd, NoisyOr):
        return NoisyOr(leak=np.clip(cpd.leak * rng.uniform(0.5, 2.0), 0.0, 0.9), links=np.clip(cpd.links * rng.uniform(0.5, 2.0, size=cpd.links.shape), 0.0, 0.99))
    if isinstance(cpd, Mixture):
        return Mixture(distributions=perturbed(cpd.distributions, rng), leak=perturbed(cpd.leak, rng))
    return perturbed(tables.cpts[name], rng)


def stacked(versions: list):
    """Parameter sets from tables of one form (dense arrays, or noisy-OR / mixture numbers)."""
    if isinstance(versions[0], NoisyOr):
        return NoisyOr(leak=np.stack([v.leak for v in versions]), links=np.stack([v.links for v in versions]))
    if isinstance(versions[0], Mixture):
        return Mixture(distributions=np.stack([v.distributions for v in versions]), leak=np.stack([v.leak for v in versions]))
    return np.stack(versions)


def one_set(table, s: int):
    """Parameter set ``s`` of a table made by :func:`stacked`."""
    if isinstance(table, NoisyOr):
        return NoisyOr(leak=table.leak[s], links=table.links[s])
    if isinstance(table, Mixture):
        return Mixture(distributions=table.distributions[s], leak=table.leak[s])
    return table[s]


def layers(tables: NetworkTables):
    """(roots with children, middle, leaves, isolated) of a network."""
    roots = [v for v in tables.variables if not tables.parents[v] and tables.children(v)]
    middle = [v for v in tables.variables if tables.parents[v] and tables.children(v)]
    leaves = [v for v in tables.variables if tables.parents[v] and not tables.children(v)]
    isolated = [v for v in tables.variables if not tables.parents[v] and not tables.children(v)]
    return roots, middle, leaves, isolated


def assert_posteriors_equal(actual: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame], atol: float) -> None:
    assert list(actual) == list(expected)
    for t in expected:
        pd.testing.assert_index_equal(actual[t].index, expected[t].index)
        pd.testing.assert_index_equal(actual[t].columns, expected[t].columns)
        np.testing.assert_allclose(actual[t].to_numpy(), expected[t].to_numpy(), rtol=0, atol=atol, err_msg=t)


@pytest.fixture(scope="module")
def ours():
    """Our post-fusion network: its tables, and the pgmpy model built from them.

    Since the second edition every variable of the shipped model has a parent or a child; the red
    flag ``fever`` is unlinked here (a leak only, as in the first edition) so that the network keeps
    an isolated node for the engine to handle.
    """
    import yaml

    from postfusion_bayes.spec import PRIOR_FILES, default_priors_path, spec_from_documents

    folder = default_priors_path()
    documents = {name: yaml.safe_load((folder / name).read_text(encoding="utf-8")) for name in PRIOR_FILES}
    del documents["red_flags.yaml"]["red_flags"]["fever"]["links"]
    tables = pfb.Model(spec_from_documents(documents, source="<shipped priors, fever unlinked>")).tables
    assert layers(tables)[3] == ["fever"]
    return tables, to_pgmpy(tables)


def compiled_reference(name, load_reference_model):
    """Compile a reference network from its pgmpy model; return it with the pgmpy model to compare against."""
    bn = load_reference_model(name)
    if name in ROUNDED_NETWORKS:
        compiled = compile_network(bn, normalize=True)
        return compiled, to_pgmpy(compiled.tables)
    return compile_network(bn), bn


# ------------------------------------------------------------------------ 1. hard evidence vs pgmpy


def check_against_pgmpy(compiled: CompiledNetwork, bn, rng: np.random.Generator, n_rows: int, max_observed: int, n_targets: int):
    """Random evidence rows (different observed variables per row) and targets; compare every row with pgmpy."""
    tables = compiled.tables
    variables = list(tables.variables)
    samples = forward_sample(tables, n_rows, rng)
    observed_rows = []
    for _ in range(n_rows):
        k = int(rng.integers(1, min(max_observed, len(variables) - 1) + 1))
        observed_rows.append({variables[i] for i in rng.choice(len(variables), size=k, replace=False)})
    targets = [variables[i] for i in rng.choice(len(variables), size=min(n_targets, len(variables)), replace=False)]
    never = next((v for v in variables if not any(v in obs for obs in observed_rows)), None)
    index = pd.Index([f"case{row}" for row in range(n_rows)], name="case")
    evidence = evidence_frame(tables, samples, observed_rows, index=index, extra_empty=never)
    assert evidence.isna().to_numpy().any(axis=0).all(), "every column should have missing cells"

    posteriors = compiled.posteriors(evidence, targets)
    p_evidence = compiled.evidence_probability(evidence)
    log_p_evidence = compiled.evidence_probability(evidence, log=True)

    assert list(posteriors) == targets
    assert p_evidence.name == "evidence_probability" and log_p_evidence.name == "log_evidence_probability"
    pd.testing.assert_index_equal(p_evidence.index, index)
    inference = variable_elimination(bn)
    for row, observed in enumerate(observed_rows):
        label = index[row]
        hard = {v: tables.states[v][samples[v][row]] for v in sorted(observed)}
        for t in targets:
            frame = posteriors[t]
            pd.testing.assert_index_equal(frame.index, index)
            assert list(frame.columns) == list(tables.states[t]) and frame.columns.name == t
            if t in observed:  # observed in this row: certain
                expected = np.eye(tables.cardinality(t))[samples[t][row]]
            else:
                expected = pgmpy_marginal(inference, tables.states, t, evidence=hard)
            np.testing.assert_allclose(frame.loc[label].to_numpy(), expected, rtol=0, atol=TOLERANCE, err_msg=f"{t}, {label}")
        expected_p = pgmpy_evidence_probability(inference, hard)
        assert math.isclose(p_evidence[label], expected_p, rel_tol=TOLERANCE), (label, p_evidence[label], expected_p)
        assert math.isclose(log_p_evidence[label], math.log(expected_p), rel_tol=0, abs_tol=TOLERANCE)
    return evidence, posteriors


def test_reference_network_posteriors_match_pgmpy(reference_network_name, load_reference_model):
    name = reference_network_name
    compiled, bn = compiled_reference(name, load_reference_model)
    rng = np.random.default_rng(zlib.crc32(b"engine " + name.encode()))
    large = name in LARGE_NETWORKS
    evidence, posteriors = check_against_pgmpy(compiled, bn, rng, n_rows=4 if large else 8, max_observed=8, n_targets=4 if large else 5)
    if compiled.strategy == "layered":  # cancer is layered (Pollution, Smoker -> Cancer -> Xray, Dyspnoea)
        elimination = compile_network(compiled.tables, strategy="elimination")
        assert_posteriors_equal(posteriors, elimination.posteriors(evidence, list(posteriors)), atol=SAME)


def test_our_network_posteriors_match_pgmpy_and_both_strategies_agree(ours):
    tables, bn = ours
    layered = compile_network(tables)
    elimination = compile_network(tables, strategy="elimination")
    assert layered.strategy == "layered" and elimination.strategy == "elimination"
    assert pfb.load_model().network.strategy == "layered"
    rng = np.random.default_rng(20240611)
    evidence, posteriors = check_against_pgmpy(layered, bn, rng, n_rows=5, max_observed=12, n_targets=8)

    everything = list(tables.variables)
    np.testing.assert_allclose(
        layered.evidence_probability(evidence, log=True), elimination.evidence_probability(evidence, log=True), rtol=0, atol=SAME
    )
    assert_posteriors_equal(layered.posteriors(evidence, everything), elimination.posteriors(evidence, everything), atol=SAME)


def test_our_network_realistic_rows_match_pgmpy_and_strategies_agree(ours):
    """Rows as a clinician fills them: all the context, then many findings (and a cause, once)."""
    tables, bn = ours
    layered = compile_network(tables)
    elimination = compile_network(tables, strategy="elimination")
    roots, middle, leaves, isolated = layers(tables)
    rng = np.random.default_rng(7)
    n_rows = 4
    samples = forward_sample(tables, n_rows, rng)
    observed_rows = [
        set(roots) | set(isolated) | {leaves[i] for i in rng.choice(len(leaves), size=6, replace=False)},
        set(roots[:2]) | {leaves[i] for i in rng.choice(len(leaves), size=4, replace=False)},
        {leaves[i] for i in rng.choice(len(leaves), size=5, replace=False)} | {middle[0]},
        set(roots) | {middle[1], isolated[0]},
    ]
    evidence = evidence_frame(tables, samples, observed_rows)
    targets = middle + [roots[0], leaves[0], leaves[-1], isolated[-1]]
    posteriors = layered.posteriors(evidence, targets)
    p_evidence = layered.evidence_probability(evidence)
    inference = variable_elimination(bn)
    for row, observed in enumerate(observed_rows):
        hard = {v: tables.states[v][samples[v][row]] for v in observed}
        for t in targets:
            if t in observed:
                expected = np.eye(tables.cardinality(t))[samples[t][row]]
            else:
                expected = pgmpy_marginal(inference, tables.states, t, evidence=hard)
            np.testing.assert_allclose(posteriors[t].iloc[row].to_numpy(), expected, rtol=0, atol=TOLERANCE, err_msg=f"{t}, row {row}")
        # P(e) by the chain rule over single-variable pgmpy queries (too many variables for one joint query)
        expected_p, given_so_far = 1.0, {}
        for v in sorted(observed):
            expected_p *= pgmpy_marginal(inference, tables.states, v, evidence=dict(given_so_far))[samples[v][row]]
            given_so_far[v] = hard[v]
        assert math.isclose(p_evidence.iloc[row], expected_p, rel_tol=TOLERANCE)
    assert_posteriors_equal(posteriors, elimination.posteriors(evidence, targets), atol=SAME)
    np.testing.assert_allclose(p_evidence, elimination.evidence_probability(evidence), rtol=SAME, atol=0)


def test_default_targets_are_the_variables_without_hard_evidence(load_reference_model):
    compiled = compile_network(load_reference_model("asia"))
    evidence = pd.DataFrame({"xray": ["yes", None], "smoke": [None, None]})
    posteriors = compiled.posteriors(evidence)
    assert list(posteriors) == [v for v in compiled.variables if v != "xray"]
    no_evidence = compiled.posteriors(pd.DataFrame(index=pd.RangeIndex(2)), ["lung"])["lung"]
    prior = compiled.posteriors(pd.DataFrame({"xray": [None, None]}), ["lung"])["lung"]
    assert no_evidence.shape == (2, 2)
    pd.testing.assert_frame_equal(no_evidence, prior)
    np.testing.assert_allclose(posteriors["lung"].iloc[1], no_evidence.iloc[0], atol=SAME)
    np.testing.assert_allclose(compiled.evidence_probability(evidence), [compiled.posteriors(pd.DataFrame(index=[0]), ["xray"])["xray"].loc[0, "yes"], 1.0], rtol=SAME)


def test_encode_one_hot_and_posterior_arrays_agree_with_posteriors(ours):
    tables, _ = ours
    compiled = compile_network(tables)
    np.testing.assert_array_equal(one_hot(np.array([2, -1, 0]), 3), [[0, 0, 1], [1, 1, 1], [1, 0, 0]])
    evidence = pd.DataFrame(
        {"time_since_surgery": ["over_2_years", None, "under_6_weeks"], "radicular_pain": ["yes", "no", None], "fever": [None, None, None]},
        index=["a", "b", "c"],
    )
    soft = np.array([[0.2, 0.9], [np.nan, np.nan], [1.0, 0.5]])
    encoded = compiled.encode(evidence, {"back_pain": soft})
    assert encoded.names == {"time_since_surgery", "radicular_pain", "back_pain"}  # the all-missing column is dropped
    lam = encoded.dense({v: tables.cardinality(v) for v in encoded.names})
    np.testing.assert_array_equal(lam["time_since_surgery"], one_hot(np.array([3, -1, 0]), 4))
    np.testing.assert_array_equal(lam["radicular_pain"], one_hot(np.array([1, 0, -1]), 2))
    np.testing.assert_allclose(lam["back_pain"], [[0.2 / 0.9, 1.0], [1.0, 1.0], [1.0, 0.5]], rtol=1e-15)  # each soft row scaled to a largest entry of 1
    np.testing.assert_allclose(encoded.log_scale, [np.log(0.9), 0.0, 0.0], rtol=1e-15)
    targets = ["pseudarthrosis", "onset", "smoker", "fever"]
    result = compiled.query(encoded, targets)
    marginals, log_evidence = result.marginals, result.log_evidence
    assert log_evidence.shape == (1, 3)
    posteriors = compiled.posteriors(evidence, targets, likelihood={"back_pain": soft})
    for t in targets:
        assert marginals[t].shape == (1, 3, tables.cardinality(t))
        np.testing.assert_allclose(marginals[t][0], posteriors[t].to_numpy(), rtol=0, atol=SAME)
    np.testing.assert_allclose(log_evidence[0], compiled.evidence_probability(evidence, likelihood={"back_pain": soft}, log=True), atol=SAME)


# ------------------------------------------------------------------------ 2. soft evidence vs pgmpy


def virtual_cpds(tables, soft: dict[str, np.ndarray]):
    from pgmpy.factors.discrete import TabularCPD

    return [TabularCPD(v, tables.cardinality(v), values[:, None], state_names={v: list(tables.states[v])}) for v, values in soft.items()]


def soft_rows_for(tables, rng, n_rows, name):
    """Per row: (hard variables, soft variables, targets); for ours one soft root, cause and finding per row."""
    variables = list(tables.variables)
    rows = []
    for _ in range(n_rows):
        if name == "ours":
            roots, middle, leaves, _ = layers(tables)
            soft = [roots[rng.integers(len(roots))], middle[rng.integers(len(middle))], leaves[rng.integers(len(leaves))]]
            rest = [v for v in rng.permutation(variables) if v not in soft]
            hard, free = rest[:4], rest[4:]
            targets = [m for m in middle if m not in hard][:3] + free[:2] + soft[:2]
        else:
            order = list(rng.permutation(variables))
            soft, hard, free = order[:2], order[2:4], order[4:]
            targets = free[:3] + soft[:1]  # a variable with soft evidence is a valid target
        rows.append((hard, soft, list(dict.fromkeys(targets))))
    return rows


@pytest.mark.parametrize("name", ["asia", "child", "ours"])
def test_soft_evidence_matches_pgmpy_virtual_evidence(name, load_reference_model, ours):
    if name == "ours":
        tables, bn = ours
    else:
        bn = load_reference_model(name)
        tables = tables_from_pgmpy(bn)
    compiled = compile_network(tables)
    rng = np.random.default_rng(zlib.crc32(b"soft " + name.encode()))
    n_rows = 4
    samples = forward_sample(tables, n_rows, rng)
    rows = soft_rows_for(tables, rng, n_rows, name)
    index = pd.Index([10, 20, 30, 40], name="visit")
    evidence = evidence_frame(tables, samples, [set(hard) for hard, _, _ in rows], index=index)
    soft_variables = list(dict.fromkeys(v for _, soft, _ in rows for v in soft))
    arrays = {v: np.full((n_rows, tables.cardinality(v)), np.nan) for v in soft_variables}
    for row, (_, soft, _) in enumerate(rows):
        for v in soft:
            arrays[v][row] = rng.uniform(0.05, 1.0, size=tables.cardinality(v))
    # half the variables as DataFrames (columns in a shuffled order), the others as arrays
    likelihood = {}
    for i, v in enumerate(soft_variables):
        if i % 2:
            likelihood[v] = arrays[v]
        else:
            columns = list(rng.permutation(list(tables.states[v])))
            frame = pd.DataFrame(arrays[v], index=index, columns=list(tables.states[v]))
            likelihood[v] = frame[columns]
    targets = list(dict.fromkeys(t for _, _, ts in rows for t in ts))

    posteriors = compiled.posteriors(evidence, targets, likelihood=likelihood)
    p_evidence = compiled.evidence_probability(evidence, likelihood=likelihood)

    for row, (hard, soft, row_targets) in enumerate(rows):
        hard_states = {v: tables.states[v][samples[v][row]] for v in hard}
        soft_values = {v: arrays[v][row] for v in soft}
        for t in row_targets:
            # pgmpy rewrites the model of the inference object for virtual evidence: a fresh one per query
            expected = pgmpy_marginal(variable_elimination(bn), tables.states, t, evidence=hard_states, virtual_evidence=virtual_cpds(tables, soft_values))
            np.testing.assert_allclose(posteriors[t].iloc[row].to_numpy(), expected, rtol=0, atol=TOLERANCE, err_msg=f"{t}, row {row}")
        expected_p = pgmpy_evidence_probability(variable_elimination(bn), hard_states, soft_values, tables.states)
        assert math.isclose(p_evidence.iloc[row], expected_p, rel_tol=TOLERANCE)
    if name == "ours":
        elimination = compile_network(tables, strategy="elimination")
        assert_posteriors_equal(posteriors, elimination.posteriors(evidence, targets, likelihood=likelihood), atol=SAME)
        np.testing.assert_allclose(p_evidence, elimination.evidence_probability(evidence, likelihood=likelihood), rtol=SAME, atol=0)


@pytest.mark.parametrize("strategy", ["layered", "elimination"])
def test_soft_evidence_forms_and_hard_with_soft_in_one_row(strategy, ours):
    tables, _ = ours
    compiled = compile_network(tables, strategy=strategy)
    index = pd.Index(["p1", "p2", "p3"])
    evidence = pd.DataFrame({"back_pain": ["yes", None, "no"]}, index=index)
    values = np.array([[0.3, 0.6], [0.3, 0.6], [np.nan, np.nan]])
    as_frame = pd.DataFrame(values[:, ::-1], index=index, columns=["yes", "no"])
    targets = ["pseudarthrosis", "back_pain", "time_since_surgery"]
    by_array = compiled.posteriors(evidence, targets, likelihood={"back_pain": values})
    by_frame = compiled.posteriors(evidence, targets, likelihood={"back_pain": as_frame})
    assert_posteriors_equal(by_array, by_frame, atol=0)
    # row 0: hard "yes" times soft (0.3, 0.6) is hard "yes"; row 1: soft only; row 2: no soft evidence (NaN row)
    hard_only = compiled.posteriors(evidence, targets)
    np.testing.assert_allclose(by_array["pseudarthrosis"].loc[["p1", "p3"]], hard_only["pseudarthrosis"].loc[["p1", "p3"]], atol=SAME)
    scaled = compiled.posteriors(evidence.iloc[[1]], targets, likelihood={"back_pain": values[[1]] * 7.0})
    np.testing.assert_allclose(by_array["pseudarthrosis"].loc[["p2"]], scaled["pseudarthrosis"], atol=SAME)  # scale-free
    p = compiled.evidence_probability(evidence, likelihood={"back_pain": values})
    p_hard = compiled.evidence_probability(evidence)
    assert p["p1"] == pytest.approx(0.6 * p_hard["p1"], rel=SAME)
    assert p["p3"] == pytest.approx(p_hard["p3"], rel=SAME)
    prior_back = compiled.posteriors(pd.DataFrame(index=[0]), ["back_pain"])["back_pain"].loc[0]
    assert p["p2"] == pytest.approx(0.3 * prior_back["no"] + 0.6 * prior_back["yes"], rel=SAME)


# ------------------------------------------------------------------------ 3. parameter sets


def check_parameter_sets(compiled: CompiledNetwork, chosen, rng, n_sets, evidence, targets, likelihood=None, dense=False):
    """Parameter sets of the tables ``chosen`` (in the network's own form, or all dense) against separate compiles."""
    tables = compiled.tables
    make = (lambda v: perturbed(tables.cpts[v], rng)) if dense else (lambda v: perturbed_version(tables, v, rng))
    versions = {v: stacked([make(v) for _ in range(n_sets)]) for v in chosen}
    posteriors = compiled.posteriors(evidence, targets, likelihood=likelihood, parameters=versions)
    p_evidence = compiled.evidence_probability(evidence, likelihood=likelihood, parameters=versions)
    log_p_evidence = compiled.evidence_probability(evidence, likelihood=likelihood, parameters=versions, log=True)
    expected_index = pd.MultiIndex.from_product([range(n_sets), evidence.index], names=["parameter_set", evidence.index.name])
    pd.testing.assert_index_equal(p_evidence.index, expected_index)
    for t in targets:
        pd.testing.assert_index_equal(posteriors[t].index, expected_index)
    for s in range(n_sets):
        single = compile_network(tables.replace({v: one_set(versions[v], s) for v in chosen}), strategy=compiled.strategy)
        expected = single.posteriors(evidence, targets, likelihood=likelihood)
        for t in targets:
            got = posteriors[t].xs(s, level="parameter_set")
            pd.testing.assert_index_equal(got.index, evidence.index)
            np.testing.assert_allclose(got.to_numpy(), expected[t].to_numpy(), rtol=0, atol=SAME, err_msg=f"{t}, set {s}")
        np.testing.assert_allclose(p_evidence.xs(s, level="parameter_set"), single.evidence_probability(evidence, likelihood=likelihood), rtol=SAME, atol=0)
        np.testing.assert_allclose(log_p_evidence.xs(s, level="parameter_set"), single.evidence_probability(evidence, likelihood=likelihood, log=True), rtol=0, atol=SAME)
    return posteriors


@pytest.mark.parametrize("strategy", ["layered", "elimination"])
def test_parameter_sets_on_our_network_equal_separate_compiles(strategy, ours):
    tables, _ = ours
    compiled = compile_network(tables, strategy=strategy)
    roots, middle, leaves, isolated = layers(tables)
    rng = np.random.default_rng(99)
    n_rows = 5
    samples = forward_sample(tables, n_rows, rng)
    chosen = ["radicular_pain", "onset", "pseudarthrosis", "si_joint_strain", "time_since_surgery", "smoker", isolated[0]]
    observed_rows = [
        {"radicular_pain", "onset", "time_since_surgery", isolated[0], "back_pain"},
        {"radicular_pain", "smoker"},
        {"onset", "ct_nonunion", "pseudarthrosis"},
        set(),
        set(roots) | {"buttock_pain", "si_block_relief", "radicular_pain"},
    ]
    evidence = evidence_frame(tables, samples, observed_rows, index=pd.Index(list("vwxyz"), name="patient"))
    likelihood = {"deep_aching_pain": np.array([[0.2, 0.7], [np.nan, np.nan], [0.5, 0.5], [0.9, 0.1], [np.nan, np.nan]])}
    targets = middle + ["time_since_surgery", "diabetes", isolated[0], "onset", "radicular_pain"]
    check_parameter_sets(compiled, chosen, rng, 3, evidence, targets, likelihood)
    check_parameter_sets(compiled, ["radicular_pain"], rng, 1, evidence, ["nerve_injury"])  # a single set


def test_dense_parameter_tables_of_noisy_or_and_mixture_leaves_equal_separate_compiles(ours):
    """A dense replacement of a noisy-OR or mixture leaf (any table, not one of that form) is answered, not refused.

    The factorised sums cannot read it: the query goes to structured enumeration, as does a compiled
    network whose leaf is dense (which used to be refused at 16 causes: 65,536 configurations).
    """
    tables, _ = ours
    compiled = compile_network(tables)
    assert compiled.strategy == "layered"
    rng = np.random.default_rng(12)
    roots = set(layers(tables)[0])
    samples = forward_sample(tables, 3, rng)
    # the context observed (one root configuration per row: enumeration is fast), and one row without it
    observed_rows = [roots | {"radicular_pain", "onset", "back_pain"}, roots | {"radicular_pain", "fever"}, {"onset", "time_since_surgery"}]
    evidence = evidence_frame(tables, samples, observed_rows, index=pd.Index(list("abc"), name="patient"))
    targets = ["nerve_injury", "other_cause", "fever", "radicular_pain"]
    check_parameter_sets(compiled, ["radicular_pain", "onset"], rng, 2, evidence, targets, dense=True)


def test_parameter_sets_on_alarm_with_a_middle_node(load_reference_model):
    compiled = compile_network(load_reference_model("alarm"), normalize=True)
    tables = compiled.tables
    rng = np.random.default_rng(31)
    middle = [v for v in tables.variables if tables.parents[v] and tables.children(v)]
    chosen = ["LVFAILURE", "HYPOVOLEMIA", "CO"]  # root, root, middle (HR, STROKEVOLUME -> CO -> BP)
    assert "CO" in middle and not tables.parents["LVFAILURE"]
    n_rows = 4
    samples = forward_sample(tables, n_rows, rng)
    observed_rows = [{"BP", "HRBP", "CVP"}, {"CO", "LVEDVOLUME"}, {"BP"}, {"HISTORY", "PCWP", "BP", "HREKG"}]
    evidence = evidence_frame(tables, samples, observed_rows)
    check_parameter_sets(compiled, chosen, rng, 3, evidence, ["LVFAILURE", "CO", "STROKEVOLUME", "HR"])


def test_many_parameter_sets_are_split_into_chunks_without_changing_results(ours):
    """Enough rows times sets for the memory budget that the engine evaluates them in several chunks.

    (At 16 causes every row costs the factorised sums: 400 rows under a 64 MB budget rather than 4,000 under the default.)
    """
    tables, _ = ours
    compiled = compile_network(tables, memory_budget=64 * 2**20)
    rng = np.random.default_rng(5)
    n_rows, n_sets = 400, 5
    samples = forward_sample(tables, n_rows, rng)
    names = ["time_since_surgery", "smoker", "radicular_pain", "back_pain", "onset", "mri_recurrent_disc"]
    keep = rng.random((n_rows, len(names))) < 0.6
    evidence = pd.DataFrame({v: np.where(keep[:, i], np.array(tables.states[v], dtype=object)[samples[v]], None) for i, v in enumerate(names)})
    for v in (r for r in layers(tables)[0] if r not in names):  # the rest of the context observed: a few root configurations per row
        evidence[v] = np.array(tables.states[v], dtype=object)[samples[v]]
    versions = {v: stacked([perturbed_version(tables, v, rng) for _ in range(n_sets)]) for v in ["recurrent_herniation", "radicular_pain"]}
    posteriors = compiled.posteriors(evidence, ["recurrent_herniation", "smoker"], parameters=versions)
    p_evidence = compiled.evidence_probability(evidence, parameters=versions, log=True)
    for s in [0, n_sets - 1]:
        single = compile_network(tables.replace({v: one_set(versions[v], s) for v in versions}), memory_budget=64 * 2**20)
        expected = single.posteriors(evidence, ["recurrent_herniation", "smoker"])
        for t in expected:
            np.testing.assert_allclose(posteriors[t].xs(s, level="parameter_set").to_numpy(), expected[t].to_numpy(), rtol=0, atol=SAME)
        np.testing.assert_allclose(p_evidence.xs(s, level="parameter_set").to_numpy(), single.evidence_probability(evidence, log=True).to_numpy(), rtol=0, atol=SAME)


# ------------------------------------------------------------------------ 4. random layered networks (hypothesis)


@st.composite
def layered_networks(draw):
    """2-3 roots -> 1-3 middle -> 1-4 leaves (and maybe one isolated variable), 2-3 states, Dirichlet tables."""
    roots = [f"r{i}" for i in range(draw(st.integers(2, 3)))]
    middle = [f"m{i}" for i in range(draw(st.integers(1, 3)))]
    leaves = [f"l{i}" for i in range(draw(st.integers(1, 4)))]
    isolated = ["iso"] if draw(st.booleans()) else []
    parents: dict[str, list[str]] = {}
    for m in middle:
        parents[m] = draw(st.lists(st.sampled_from(roots), unique=True, min_size=1))  # drawn order: any axis order
    for leaf in leaves:
        parents[leaf] = draw(st.lists(st.sampled_from(middle), unique=True, min_size=1))
    for i, r in enumerate(roots):  # every root needs a child and every middle variable a child
        if not any(r in parents[m] for m in middle):
            parents[middle[i % len(middle)]].append(r)
    for i, m in enumerate(middle):
        if not any(m in parents[leaf] for leaf in leaves):
            parents[leaves[i % len(leaves)]].append(m)
    names = roots + middle + leaves + isolated
    cards = {v: draw(st.integers(2, 3)) for v in names}
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    alpha = draw(st.sampled_from([0.5, 1.0, 5.0]))
    order = draw(st.permutations(names))  # declaration order should not matter
    cpts = {v: rng.dirichlet(np.full(cards[v], alpha), size=tuple(cards[p] for p in parents.get(v, ()))) for v in order}
    states = {v: tuple(f"{v}_s{k}" for k in range(cards[v])) for v in order}
    return NetworkTables(states=states, parents={v: tuple(parents.get(v, ())) for v in order}, cpts=cpts)


@st.composite
def layered_cases(draw):
    """Draw a layered network, labelled evidence (hard, soft, both or none per variable and row) and targets."""
    tables = draw(layered_networks())
    n_rows = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    samples = forward_sample(tables, n_rows, rng)
    index = pd.Index([f"row{i}" for i in range(n_rows)])
    hard: dict[str, list] = {}
    soft: dict[str, np.ndarray] = {}
    lam: dict[str, np.ndarray] = {}
    roots = [v for v in tables.variables if not tables.parents[v] and tables.children(v)]
    context_known = draw(st.booleans())  # every root observed in every row, as the context of a diagnosis
    for v in tables.variables:
        card = tables.cardinality(v)
        if context_known and v in roots:
            kinds = ["hard"] * n_rows
        else:
            kinds = draw(st.lists(st.sampled_from(["none", "hard", "soft", "both"]), min_size=n_rows, max_size=n_rows))
        cells = [tables.states[v][samples[v][row]] if kind in ("hard", "both") else None for row, kind in enumerate(kinds)]
        values = np.full((n_rows, card), np.nan)
        weights = np.ones((n_rows, card))
        for row, kind in enumerate(kinds):
            if kind in ("hard", "both"):
                weights[row] = np.eye(card)[samples[v][row]]
            if kind in ("soft", "both"):
                values[row] = rng.uniform(0.01, 3.0, size=card)
                weights[row] = weights[row] * values[row]
        if any(c is not None for c in cells) or draw(st.booleans()):
            hard[v] = cells
        if not np.isnan(values).all():
            soft[v] = pd.DataFrame(values, index=index, columns=list(tables.states[v])) if draw(st.booleans()) else values
        lam[v] = weights
    evidence = pd.DataFrame(hard, index=index, dtype=object)
    targets = draw(st.lists(st.sampled_from(tables.variables), unique=True, min_size=1))
    return tables, evidence, soft, lam, targets


@given(layered_cases())
def test_random_layered_networks_match_brute_force_with_both_strategies(case):
    tables, evidence, soft, lam, targets = case
    n_rows = len(evidence)
    expected_marginals, expected_evidence = brute_force(tables, lam, targets, n_rows)
    layered = compile_network(tables)
    assert layered.strategy == "layered"
    for compiled in (layered, compile_network(tables, strategy="elimination")):
        posteriors = compiled.posteriors(evidence, targets, likelihood=soft)
        for t in targets:
            pd.testing.assert_index_equal(posteriors[t].index, evidence.index)
            np.testing.assert_allclose(posteriors[t].to_numpy(), expected_marginals[t], rtol=0, atol=TOLERANCE, err_msg=f"{compiled.strategy}: {t}")
        p_evidence = compiled.evidence_probability(evidence, likelihood=soft)
        np.testing.assert_allclose(p_evidence.to_numpy(), expected_evidence, rtol=TOLERANCE, atol=0, err_msg=compiled.strategy)
        log_p = compiled.evidence_probability(evidence, likelihood=soft, log=True)
        np.testing.assert_allclose(log_p.to_numpy(), np.log(expected_evidence), rtol=0, atol=TOLERANCE)


@given(layered_cases())
def test_random_layered_networks_rows_batched_equal_rows_one_by_one(case):
    tables, evidence, soft, _, targets = case
    for compiled in (compile_network(tables), compile_network(tables, strategy="elimination")):
        batched = compiled.posteriors(evidence, targets, likelihood=soft)
        log_p = compiled.evidence_probability(evidence, likelihood=soft, log=True)
        for row in range(len(evidence)):
            one_soft = {v: (s.iloc[[row]] if isinstance(s, pd.DataFrame) else s[row : row + 1]) for v, s in soft.items()}
            single = compiled.posteriors(evidence.iloc[[row]], targets, likelihood=one_soft)
            for t in targets:
                np.testing.assert_allclose(batched[t].iloc[row].to_numpy(), single[t].iloc[0].to_numpy(), rtol=0, atol=SAME, err_msg=f"{compiled.strategy}: {t}")
            single_log_p = compiled.evidence_probability(evidence.iloc[[row]], likelihood=one_soft, log=True)
            assert log_p.iloc[row] == pytest.approx(single_log_p.iloc[0], rel=SAME, abs=SAME)


@given(layered_cases(), st.integers(1, 3), st.data())
def test_random_layered_networks_parameter_sets_equal_separate_compiles(case, n_sets, data):
    tables, evidence, soft, _, targets = case
    chosen = data.draw(st.lists(st.sampled_from(tables.variables), unique=True, min_size=1))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    for strategy in ("layered", "elimination"):
        check_parameter_sets(compile_network(tables, strategy=strategy), chosen, rng, n_sets, evidence, targets, soft)


@given(layered_cases(), st.data())
def test_random_layered_networks_posterior_one_equals_two_row_posteriors(case, data):
    """posterior_one(states, middle targets, condition_only_on=all roots) on the first row's hard evidence."""
    tables, evidence, _, _, _ = case
    roots, middle, _, _ = layers(tables)
    states = {v: s for v, s in evidence.iloc[0].items() if s is not None and not pd.isna(s)}
    targets = data.draw(st.lists(st.sampled_from(middle), unique=True, min_size=1))
    for strategy in ("layered", "elimination"):
        compiled = compile_network(tables, strategy=strategy)
        full, partial, log_p = posterior_one(compiled, states, targets, roots)
        frame = pd.DataFrame([states, {v: s for v, s in states.items() if v in roots}], columns=list(tables.variables), dtype=object)
        expected = compiled.posteriors(frame, targets)
        for t in targets:
            np.testing.assert_allclose(full[t], expected[t].iloc[0].to_numpy(), rtol=0, atol=SAME, err_msg=f"{strategy}: {t}")
            np.testing.assert_allclose(partial[t], expected[t].iloc[1].to_numpy(), rtol=0, atol=SAME, err_msg=f"{strategy}: {t}")
        assert log_p == pytest.approx(compiled.evidence_probability(frame, log=True).iloc[0], rel=SAME, abs=SAME)


# ------------------------------------------------------------------------ one row with partial evidence on our network


def posterior_one(compiled, states, targets, condition_only_on):
    """One row of hard evidence through query(partial=...): full and partial marginals, log P(evidence)."""
    encoded = EncodedEvidence.from_rows(compiled.states, [states])
    result = compiled.query(encoded, targets, partial=condition_only_on)
    return {t: m[0, 0] for t, m in result.marginals.items()}, {t: m[0, 0] for t, m in result.partial.items()}, float(result.log_evidence[0, 0])


def our_states(tables, rng, observed):
    samples = forward_sample(tables, 1, rng)
    return {v: tables.states[v][samples[v][0]] for v in observed}


@pytest.mark.parametrize(
    "case",
    ["all roots observed", "some roots observed", "with a cause observed", "no root observed", "context with isolated variables"],
)
def test_posterior_one_on_our_network_equals_two_row_posteriors(case, ours):
    tables, _ = ours
    compiled = compile_network(tables)
    roots, middle, leaves, isolated = layers(tables)
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    findings = [leaves[i] for i in rng.choice(len(leaves), size=8, replace=False)]
    condition_only_on = roots
    observed = {
        "all roots observed": roots + findings,
        "some roots observed": roots[:2] + findings,
        "with a cause observed": roots + [middle[2]] + findings,
        "no root observed": findings,
        "context with isolated variables": roots + isolated + findings,
    }[case]
    if case == "context with isolated variables":
        condition_only_on = roots + isolated  # the model's context: not only roots of the layered plan
    states = our_states(tables, rng, observed)
    targets = [m for m in middle if m not in states]
    full, partial, log_p = posterior_one(compiled, states, targets, condition_only_on)
    frame = pd.DataFrame([states, {v: s for v, s in states.items() if v in condition_only_on}], dtype=object)
    expected = compiled.posteriors(frame, targets)
    for t in targets:
        np.testing.assert_allclose(full[t], expected[t].iloc[0].to_numpy(), rtol=0, atol=SAME, err_msg=t)
        np.testing.assert_allclose(partial[t], expected[t].iloc[1].to_numpy(), rtol=0, atol=SAME, err_msg=t)
    assert log_p == pytest.approx(compiled.evidence_probability(frame, log=True).iloc[0], rel=SAME, abs=SAME)


def test_posterior_one_conditions_the_second_result_only_on_the_variables_asked_for(ours):
    """condition_only_on may be some of the roots: the second result must ignore the other observed roots.

    BUG: on the layered strategy the second result is conditioned on *every* observed root
    (LayeredPlan.query_hard never sees condition_only_on), while the elimination strategy is right.
    """
    tables, _ = ours
    states = {"time_since_surgery": "over_2_years", "smoker": "yes", "diabetes": "yes", "radicular_pain": "yes"}
    targets = ["pseudarthrosis", "adjacent_segment_disease"]
    frame = pd.DataFrame([states, {"time_since_surgery": "over_2_years"}])
    for strategy in ("elimination", "layered"):
        compiled = compile_network(tables, strategy=strategy)
        _, partial, _ = posterior_one(compiled, states, targets, ["time_since_surgery"])
        expected = compiled.posteriors(frame, targets)
        for t in targets:
            np.testing.assert_allclose(partial[t], expected[t].iloc[1].to_numpy(), rtol=0, atol=SAME, err_msg=f"{strategy}: {t}")


# ------------------------------------------------------------------------ 5. errors


@pytest.fixture(scope="module")
def asia(load_reference_model):
    return compile_network(load_reference_model("asia"))


def impossible_tables() -> NetworkTables:
    """Build r -> m -> leaf (layered) with zeros: m is "0" whenever r is "0", and leaf is "0" whenever m is "0"."""
    return NetworkTables(
        states={"r": ("0", "1"), "m": ("0", "1"), "leaf": ("0", "1")},
        parents={"m": ("r",), "leaf": ("m",)},
        cpts={"r": [0.4, 0.6], "m": [[1.0, 0.0], [0.3, 0.7]], "leaf": [[1.0, 0.0], [0.2, 0.8]]},
    )


def test_unknown_variable_in_the_evidence_columns_is_named_with_a_suggestion(asia):
    with pytest.raises(EvidenceError, match=r"unknown variable 'xrya'.*did you mean 'xray'"):
        asia.posteriors(pd.DataFrame({"xrya": ["yes"]}), ["lung"])
    with pytest.raises(EvidenceError, match=r"'xrya'.*did you mean 'xray'"):
        asia.evidence_probability(pd.DataFrame({"xrya": ["yes"]}))
    with pytest.raises(EvidenceError, match=r"unknown variable 'lugn'.*did you mean 'lung'"):
        asia.posteriors(pd.DataFrame({"xray": ["yes"]}), ["lugn"])


def test_unknown_state_is_named_with_its_variable_rows_and_allowed_states(asia):
    evidence = pd.DataFrame({"xray": ["yes", "maybe", None, "maybe"], "smoke": ["no", "yes", "no", "no"]}, index=["a", "b", "c", "d"])
    with pytest.raises(EvidenceError) as info:
        asia.posteriors(evidence, ["lung"])
    message = str(info.value)
    for part in ("'xray'", "'maybe'", "['b', 'd']", "allowed states: yes, no"):
        assert part in message, message
    with pytest.raises(EvidenceError, match=r"'smoke'.*'Yes'.*did you mean 'yes'.*allowed states: yes, no"):
        asia.posteriors(pd.DataFrame({"smoke": ["Yes"]}), ["lung"])
    with pytest.raises(EvidenceError, match=r"'smoke'.*allowed states"):
        asia.posteriors(pd.DataFrame({"smoke": [True]}), ["lung"])  # not a state name


@pytest.mark.parametrize(
    ("likelihood", "message"),
    [
        ({"xray": np.ones((2, 3))}, r"likelihood of 'xray'.*shape \(2, 3\).*\(2, 2\)"),
        ({"xray": np.ones((3, 2))}, r"likelihood of 'xray'.*shape"),
        ({"xray": np.ones(2)}, r"likelihood of 'xray'.*shape"),
        ({"xray": np.array([[0.5, -0.1], [1.0, 1.0]])}, r"likelihood of 'xray'.*non-negative"),
        ({"xray": np.array([[0.5, np.inf], [1.0, 1.0]])}, r"likelihood of 'xray'.*finite"),
        ({"xray": np.array([[0.5, np.nan], [1.0, 1.0]])}, r"likelihood of 'xray'.*finite"),
        ({"xray": np.array([[1.0, 1.0], [0.0, 0.0]])}, r"'xray'.*zero for every state in rows \['q'\]"),
        ({"xray": pd.DataFrame({"yes": [0.2, 0.3], "maybe": [0.1, 0.1]}, index=["p", "q"])}, r"likelihood of 'xray'.*unknown state 'maybe'.*allowed states: yes, no"),
        ({"xray": pd.DataFrame({"yes": [0.2, 0.3], "noo": [0.1, 0.1]}, index=["p", "q"])}, r"unknown state 'noo'.*did you mean 'no'"),
        ({"xray": pd.DataFrame({"yes": [0.2, 0.3], "no": [0.1, 0.1]}, index=["p", "x"])}, r"likelihood of 'xray'.*index"),
        ({"xrya": np.ones((2, 2))}, r"unknown variable 'xrya'.*did you mean 'xray'"),
    ],
)
def test_invalid_likelihoods_are_rejected(likelihood, message, asia):
    evidence = pd.DataFrame({"smoke": ["yes", None]}, index=["p", "q"])
    with pytest.raises(EvidenceError, match=message):
        asia.posteriors(evidence, ["lung"], likelihood=likelihood)
    with pytest.raises(EvidenceError, match=message):
        asia.evidence_probability(evidence, likelihood=likelihood)


def test_hard_and_soft_evidence_that_exclude_each_other_are_rejected(asia):
    evidence = pd.DataFrame({"xray": ["yes", "no"]}, index=["p", "q"])
    with pytest.raises(EvidenceError, match=r"'xray'.*rows \['q'\]"):
        asia.posteriors(evidence, ["lung"], likelihood={"xray": np.array([[1.0, 0.0], [1.0, 0.0]])})


@pytest.mark.parametrize("strategy", ["layered", "elimination"])
def test_impossible_evidence_names_its_row(strategy):
    compiled = compile_network(impossible_tables(), strategy=strategy)
    evidence = pd.DataFrame({"r": ["1", "0", "0", None], "leaf": ["1", "0", "1", "1"]}, index=["ok", "fine", "patient-7", "also ok"])
    with pytest.raises(EvidenceError, match=r"impossible.*row 'patient-7'") as info:
        compiled.posteriors(evidence, ["m"])
    assert "'ok'" not in str(info.value) and "'fine'" not in str(info.value)
    # evidence_probability reports 0 instead of raising
    p = compiled.evidence_probability(evidence)
    assert p["patient-7"] == 0.0 and (p.drop("patient-7") > 0).all()
    assert compiled.evidence_probability(evidence, log=True)["patient-7"] == -np.inf
    assert p["ok"] == pytest.approx(0.6 * 0.7 * 0.8, rel=SAME)
    # soft evidence can be impossible too, and a parameter set can make a row impossible
    with pytest.raises(EvidenceError, match=r"row 'only'"):
        compiled.posteriors(pd.DataFrame({"r": ["0"]}, index=["only"]), ["m"], likelihood={"m": np.array([[0.0, 1.0]])})
    versions = {"r": np.array([[0.4, 0.6], [1.0, 0.0]])}
    with pytest.raises(EvidenceError, match=r"row 'ok' \(parameter set 1\)"):
        compiled.posteriors(evidence.loc[["ok"]], ["m"], parameters=versions)


def test_evidence_must_be_a_dataframe(asia):
    for bad in ({"xray": "yes"}, pd.Series({"xray": "yes"}), [["yes"]]):
        with pytest.raises(EvidenceError, match="DataFrame"):
            asia.posteriors(bad, ["lung"])
        with pytest.raises(EvidenceError, match="DataFrame"):
            asia.evidence_probability(bad)


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"xray": np.full((2, 2), 0.5)}, r"'xray'.*shape \(2, 2\)"),  # missing the parameter-set axis
        ({"xray": np.full((2, 3, 2), 0.5)}, r"'xray'.*shape \(2, 3, 2\)"),
        ({"smoke": np.full((2, 3), 1 / 3)}, r"'smoke'.*shape"),
        ({"xray": np.full((2, 2, 2), 0.6)}, r"'xray'.*sum to 1"),
        ({"xray": np.full((2, 2, 2), 0.5) + [0.0, 1e-6]}, r"'xray'.*sum to 1"),
        ({"smoke": np.array([[1.5, -0.5]])}, r"'smoke'.*(negative|outside)"),
        ({"smoke": np.array([[np.nan, 0.5]])}, r"'smoke'.*(NaN|outside)"),
        ({"smoke": np.array([[np.inf, 0.5]])}, r"'smoke'"),
        ({"smoek": np.array([[0.5, 0.5]])}, r"unknown variable 'smoek'.*did you mean 'smoke'"),
        ({"smoke": np.full((2, 2), 0.5), "asia": np.full((3, 2), 0.5)}, r"different numbers of sets"),
    ],
)
def test_invalid_parameters_are_rejected(parameters, message, asia):
    evidence = pd.DataFrame({"xray": ["yes"]})
    with pytest.raises(ValueError, match=message):
        asia.posteriors(evidence, ["lung"], parameters=parameters)
    with pytest.raises(ValueError, match=message):
        asia.evidence_probability(evidence, parameters=parameters)


def test_layered_strategy_on_a_network_that_is_not_layered(load_reference_model, ours):
    with pytest.raises(ValueError, match="not layered"):
        compile_network(load_reference_model("asia"), strategy="layered")
    with pytest.raises(ValueError, match="unknown strategy 'fast'"):
        compile_network(ours[0], strategy="fast")
    with pytest.raises(pfb.PostfusionError, match="NetworkTables or a pgmpy"):
        compile_network({"a": [0.5, 0.5]})


def test_compiled_network_is_immutable(asia, ours):
    layered = compile_network(ours[0])
    for compiled in (asia, layered):
        for name in ("strategy", "tables", "variables", "anything_new"):
            with pytest.raises(AttributeError):
                setattr(compiled, name, "elimination")
        assert compiled.strategy in ("layered", "elimination")
        with pytest.raises(ValueError):  # the tables it answers from are read-only too
            compiled.tables.cpts[compiled.variables[0]][0] = 0.5
    assert repr(layered) == "<CompiledNetwork: 72 variables, strategy='layered', memory budget 256 MB>"


def test_compile_checks_column_sums_and_normalize_repairs_rounding():
    base = impossible_tables()
    off = base.replace({"m": np.array([[1.0, 1e-6], [0.3, 0.7]])})
    with pytest.raises(ValueError, match=r"'m'.*sum to 1 only within 1e-06.*normalize=True"):
        compile_network(off)
    compiled = compile_network(off, normalize=True)
    np.testing.assert_allclose(compiled.tables.cpts["m"].sum(axis=-1), 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(compiled.tables.cpts["m"][0], [1 / (1 + 1e-6), 1e-6 / (1 + 1e-6)], rtol=1e-15)
    assert compiled.strategy == "layered"
    p = compiled.evidence_probability(pd.DataFrame({"r": ["0"], "m": ["1"]}))
    assert p.iloc[0] == pytest.approx(0.4 * 1e-6 / (1 + 1e-6), rel=SAME)
    too_far = base.replace({"m": np.array([[1.0, 1e-3], [0.3, 0.7]])})
    with pytest.raises(ValueError, match="cannot normalize.*'m'"):
        compile_network(too_far, normalize=True)


def test_reference_files_rounded_to_1e7_need_normalize(load_reference_model):
    with pytest.raises(ValueError, match="normalize=True"):
        compile_network(load_reference_model("alarm"))
    assert compile_network(load_reference_model("alarm"), normalize=True).strategy == "elimination"


# ------------------------------------------------------------------------ 6. numerical safety


def test_long_chain_of_unlikely_observations_stays_finite():
    n, rare = 300, 1e-3
    tables = unlikely_chain(n, rare)
    names = list(tables.variables)
    compiled = compile_network(tables)
    assert compiled.strategy == "elimination"
    everything = pd.DataFrame({name: ["rare", "rare"] for name in names}, index=["all", "again"])
    log_p = compiled.evidence_probability(everything, log=True)
    assert np.isfinite(log_p).all()
    np.testing.assert_allclose(log_p, n * math.log(rare), rtol=1e-12)
    assert (compiled.evidence_probability(everything) == 0.0).all()  # 1e-900 underflows; the log does not

    hidden = names[150]
    partial = everything.drop(columns=[hidden])
    partial.iloc[1, :10] = None  # the second row leaves the start of the chain unobserved
    posteriors = compiled.posteriors(partial, [hidden, names[0]])
    assert not any(frame.isna().to_numpy().any() for frame in posteriors.values())
    p_one, p_zero = rare * rare, (1 - rare) * 0.5
    np.testing.assert_allclose(posteriors[hidden].loc["all"], [p_zero / (p_one + p_zero), p_one / (p_one + p_zero)], rtol=1e-12)
    log_p = compiled.evidence_probability(partial, log=True)
    assert log_p["all"] == pytest.approx((n - 2) * math.log(rare) + math.log(p_one + p_zero), rel=1e-12)
    assert np.isfinite(log_p["again"])


def many_findings_tables(n: int, rare_given=(1e-3, 3e-3), with_root: bool = True) -> NetworkTables:
    """(root ->) cause -> n findings; P(finding = "rare" | cause absent, present) = rare_given."""
    leaves = [f"f{i}" for i in range(n)]
    rare_given = np.asarray(rare_given)
    findings = {f: np.stack([1 - rare_given, rare_given], axis=1) for f in leaves}
    if not with_root:  # a naive Bayes classifier
        return NetworkTables(
            states={"cause": ("absent", "present"), **{f: ("common", "rare") for f in leaves}},
            parents={f: ("cause",) for f in leaves},
            cpts={"cause": [0.9, 0.1], **findings},
        )
    return NetworkTables(
        states={"root": ("a", "b"), "cause": ("absent", "present"), **{f: ("common", "rare") for f in leaves}},
        parents={"cause": ("root",), **{f: ("cause",) for f in leaves}},
        cpts={"root": [0.3, 0.7], "cause": [[0.99, 0.01], [0.9, 0.1]], **findings},
    )


def test_layered_network_with_hundreds_of_unlikely_findings_stays_finite():
    """Query root -> cause -> 300 findings, all observed in their rare state: P(e) is about 1e-900."""
    n = 300
    rare_given = np.array([1e-3, 3e-3])
    compiled = compile_network(many_findings_tables(n, rare_given))
    assert compiled.strategy == "layered"
    leaves = [f"f{i}" for i in range(n)]
    evidence = pd.DataFrame({"root": ["b", None], **{f: ["rare", "rare"] for f in leaves}}, index=["with root", "without"])
    prior_cause = {"with root": np.array([0.9, 0.1]), "without": 0.3 * np.array([0.99, 0.01]) + 0.7 * np.array([0.9, 0.1])}
    root_weight = {"with root": 0.7, "without": 1.0}
    log_p = compiled.evidence_probability(evidence, log=True)
    posteriors = compiled.posteriors(evidence, ["cause", "root", "f0"])
    assert not any(frame.isna().to_numpy().any() for frame in posteriors.values())
    for label in evidence.index:
        terms = np.log(prior_cause[label]) + n * np.log(rare_given)
        expected = math.log(root_weight[label]) + np.logaddexp(terms[0], terms[1])
        assert np.isfinite(log_p[label])
        assert log_p[label] == pytest.approx(expected, rel=1e-12)
        np.testing.assert_allclose(posteriors["cause"].loc[label], np.exp(terms - np.logaddexp(terms[0], terms[1])), rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(posteriors["f0"].to_numpy(), [[0.0, 1.0], [0.0, 1.0]])
    full, partial, log_one = posterior_one(compiled, {"root": "b", **{f: "rare" for f in leaves}}, ["cause"], ["root"])
    np.testing.assert_allclose(full["cause"], posteriors["cause"].loc["with root"], rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(partial["cause"], [0.9, 0.1], rtol=1e-12)
    assert log_one == pytest.approx(log_p["with root"], rel=1e-12)


@pytest.mark.parametrize(
    ("network", "n_rows"), [("naive Bayes", 1), ("naive Bayes", 5), ("naive Bayes", 1100), ("layered, strategy='elimination'", 3)]
)
def test_a_variable_with_many_observed_children(network, n_rows):
    """100 findings of one cause, all observed: fine in the layered engine, and must be fine by elimination.

    BUG: elimination runs the bucket of "cause" as ONE np.einsum over its table and one message per
    observed child; with 63 or more observed children and few rows (the einsum is then run without
    an optimised path) numpy raises "ValueError: too many operands". With more than ~1000 rows the
    greedy path splits the contraction and the same query works.
    """
    n = 100
    rare_given = np.array([0.1, 0.4])
    naive = network == "naive Bayes"
    tables = many_findings_tables(n, rare_given, with_root=not naive)
    compiled = compile_network(tables, strategy="elimination") if not naive else compile_network(tables)
    assert compiled.strategy == "elimination"
    evidence = pd.DataFrame({f"f{i}": ["rare"] * n_rows for i in range(n)})
    prior = np.array([0.9, 0.1]) if naive else 0.3 * np.array([0.99, 0.01]) + 0.7 * np.array([0.9, 0.1])
    terms = np.log(prior) + n * np.log(rare_given)
    log_p = compiled.evidence_probability(evidence, log=True)
    np.testing.assert_allclose(log_p, np.logaddexp(terms[0], terms[1]), rtol=1e-12)
    posteriors = compiled.posteriors(evidence, ["cause"])
    np.testing.assert_allclose(posteriors["cause"].to_numpy()[0], np.exp(terms - np.logaddexp(terms[0], terms[1])), rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("strategy", ["layered", "elimination"])
def test_tiny_but_possible_evidence_is_not_reported_impossible(strategy):
    """Query r -> m -> 40 findings; r = "0" rules out m = "present", which the findings favour by 1e-9 to 0.5 each.

    P(e) = 0.5 * 1e-360 is below the double range, but log P(e) = log 0.5 + 40 log 1e-9 is finite,
    m = "absent" is certain, and the evidence is possible.

    BUG: both engines rescale the leaf likelihoods by their maximum over the middle configurations
    *before* weighting them by the prior (layered: ``shift = loglik.max(...)`` in
    ``LayeredPlan.run_dense`` and ``query_hard``; elimination: one bucket multiplies all the
    messages before rescaling). When the configuration the findings favour has prior 0 given the
    roots, every possible configuration underflows to 0: ``posteriors`` raises "the evidence is
    impossible ... in row 0" and ``evidence_probability(log=True)`` gives -inf.
    """
    n, rare = 40, 1e-9
    leaves = [f"f{i}" for i in range(n)]
    tables = NetworkTables(
        states={"r": ("0", "1"), "m": ("absent", "present"), **{f: ("common", "rare") for f in leaves}},
        parents={"m": ("r",), **{f: ("m",) for f in leaves}},
        cpts={"r": [0.5, 0.5], "m": [[1.0, 0.0], [0.5, 0.5]], **{f: [[1 - rare, rare], [0.5, 0.5]] for f in leaves}},
    )
    compiled = compile_network(tables, strategy=strategy)
    evidence = pd.DataFrame({"r": ["0"], **{f: ["rare"] for f in leaves}})
    log_p = compiled.evidence_probability(evidence, log=True)
    assert log_p.iloc[0] == pytest.approx(math.log(0.5) + n * math.log(rare), rel=1e-12)
    np.testing.assert_allclose(compiled.posteriors(evidence, ["m"])["m"].to_numpy(), [[1.0, 0.0]], atol=SAME)


# ------------------------------------------------------------------------ odds and ends of the public API


@pytest.mark.parametrize("strategy", ["layered", "elimination"])
def test_evidence_columns_of_any_dtype_and_zero_rows(strategy, ours):
    tables, _ = ours
    compiled = compile_network(tables, strategy=strategy)
    targets = ["pseudarthrosis", "smoker", "radicular_pain"]
    reference = compiled.posteriors(pd.DataFrame({"smoker": ["yes", None, "no"]}, dtype=object), targets)
    for column in (pd.array(["yes", None, "no"], dtype="string"), pd.Categorical(["yes", None, "no"]), pd.Series(["yes", np.nan, "no"])):
        assert_posteriors_equal(compiled.posteriors(pd.DataFrame({"smoker": column}), targets), reference, atol=0)
    np.testing.assert_array_equal(reference["smoker"].to_numpy()[[0, 2]], [[0.0, 1.0], [1.0, 0.0]])
    empty = compiled.posteriors(pd.DataFrame({"smoker": pd.Series([], dtype=object)}), targets)
    assert all(frame.shape == (0, tables.cardinality(t)) for t, frame in empty.items())
    assert len(compiled.evidence_probability(pd.DataFrame({"smoker": pd.Series([], dtype=object)}))) == 0


def test_many_parameter_sets_by_elimination_are_split_into_chunks(load_reference_model):
    compiled = compile_network(load_reference_model("asia"))
    tables = compiled.tables
    rng = np.random.default_rng(11)
    n_rows, n_sets = 20_000, 4  # 20,000 rows x 64 entries per set: 3 sets per chunk
    samples = forward_sample(tables, n_rows, rng)
    keep = rng.random((n_rows, 2)) < 0.7
    evidence = pd.DataFrame({v: np.where(keep[:, i], np.array(tables.states[v], dtype=object)[samples[v]], None) for i, v in enumerate(["xray", "dysp"])})
    versions = {"smoke": np.stack([perturbed(tables.cpts["smoke"], rng) for _ in range(n_sets)]), "lung": np.stack([perturbed(tables.cpts["lung"], rng) for _ in range(n_sets)])}
    posteriors = compiled.posteriors(evidence, ["lung", "asia"], parameters=versions)
    log_p = compiled.evidence_probability(evidence, parameters=versions, log=True)
    for s in (0, n_sets - 1):
        single = compile_network(tables.replace({v: versions[v][s] for v in versions}))
        expected = single.posteriors(evidence, ["lung", "asia"])
        for t in expected:
            np.testing.assert_allclose(posteriors[t].xs(s, level="parameter_set").to_numpy(), expected[t].to_numpy(), rtol=0, atol=SAME)
        np.testing.assert_allclose(log_p.xs(s, level="parameter_set").to_numpy(), single.evidence_probability(evidence, log=True).to_numpy(), rtol=0, atol=SAME)


@pytest.mark.parametrize("strategy", ["layered", "elimination"])
def test_posterior_codes_equal_posteriors(strategy, ours):
    tables, _ = ours
    compiled = compile_network(tables, strategy=strategy)
    roots, middle, leaves, isolated = layers(tables)
    rng = np.random.default_rng(3)
    n_rows = 6
    samples = forward_sample(tables, n_rows, rng)
    observed = [roots + leaves[:5], roots[:3] + [isolated[0]] + leaves[5:9], leaves[::3], [], roots, [middle[0]] + leaves[:2]]
    codes = {v: np.array([samples[v][row] if v in observed[row] else -1 for row in range(n_rows)]) for v in tables.variables}
    evidence = evidence_frame(tables, samples, [set(o) for o in observed])
    for targets in (middle, middle[:2] + [roots[0], leaves[0], isolated[-1]]):  # (the second edition has one isolated node)
        result = compiled.query(EncodedEvidence.from_codes(tables.states, codes, n_rows), targets)
        marginals, log_p = {t: m[0] for t, m in result.marginals.items()}, result.log_evidence[0]
        expected = compiled.posteriors(evidence, targets)
        for t in targets:
            np.testing.assert_allclose(marginals[t], expected[t].to_numpy(), rtol=0, atol=SAME, err_msg=t)
        np.testing.assert_allclose(log_p, compiled.evidence_probability(evidence, log=True).to_numpy(), rtol=0, atol=SAME)


# ------------------------------------------------------------------------------ one row of evidence


def test_one_row_of_evidence_encodes_as_that_row_of_a_longer_frame(ours):
    tables, _ = ours
    compiled = compile_network(tables, strategy="elimination")
    second = {"time_since_surgery": "under_6_weeks", "radicular_pain": "no", "fever": "yes", "smoker": "no"}
    rows = [
        {"time_since_surgery": "over_2_years", "radicular_pain": "yes", "fever": None, "smoker": np.nan},
        {"time_since_surgery": "over_2_years", "radicular_pain": pd.NA, "fever": None, "smoker": "yes"},
        {"fever": None},
    ]
    for row in rows:
        for dtype in (object, "string", "str"):
            both = pd.DataFrame([row, second], index=["p1", "p2"]).astype(dtype)
            one = both.iloc[:1]
            expected = compiled.encode(both).rows([0])
            encoded = compiled.encode(one)
            observed = {k: int(v[0]) for k, v in expected.codes.items() if v[0] >= 0}
            assert encoded.names == set(observed), (row, dtype)
            assert {k: v.tolist() for k, v in encoded.codes.items()} == {k: [c] for k, c in observed.items()}
            targets = ["pseudarthrosis", "smoker", "fever"]
            one_posteriors = compiled.posteriors(one, targets)
            both_posteriors = compiled.posteriors(both, targets)
            for t in targets:
                assert list(one_posteriors[t].index) == ["p1"] and list(one_posteriors[t].columns) == list(tables.states[t])
                np.testing.assert_allclose(one_posteriors[t].to_numpy(), both_posteriors[t].to_numpy()[:1], rtol=0, atol=SAME)
            default = compiled.posteriors(one)  # every variable without hard evidence
            assert set(default) == set(tables.variables) - {k for k, v in row.items() if isinstance(v, str)}


def test_one_row_of_evidence_with_an_unknown_state_or_variable_is_named(ours):
    tables, _ = ours
    compiled = compile_network(tables, strategy="elimination")
    with pytest.raises(EvidenceError, match=r"'radicular_pain': state 'yess'.*did you mean 'yes'.*rows \['p7'\]"):
        compiled.encode(pd.DataFrame([{"smoker": "no", "radicular_pain": "yess"}], index=["p7"]))
    with pytest.raises(EvidenceError, match=r"'radicular_pain': state 1 .*rows \['p7'\]"):
        compiled.posteriors(pd.DataFrame([{"radicular_pain": 1}], index=["p7"]))
    with pytest.raises(EvidenceError, match=r"unknown variable 'smokr'.*did you mean 'smoker'"):
        compiled.encode(pd.DataFrame([{"smokr": "no"}]))


def test_one_row_with_a_repeated_column_keeps_the_general_rule(ours):
    tables, _ = ours
    compiled = compile_network(tables, strategy="elimination")
    frame = pd.DataFrame([["yes", None], ["yes", "no"]], columns=["smoker", "smoker"])
    assert compiled.encode(frame.iloc[:1]).names == compiled.encode(frame).rows([0]).names - {"smoker"}  # the last column wins


def test_posteriors_are_the_same_frames_as_built_from_the_query(ours):
    tables, _ = ours
    compiled = compile_network(tables, strategy="elimination")
    evidence = pd.DataFrame([{"smoker": "yes"}, {"radicular_pain": "no"}], index=pd.Index(["a", "b"], name="patient"))
    targets = ["pseudarthrosis", "onset"]
    root = next(v for v in tables.variables if not tables.parents[v] and tables.cardinality(v) > 1)
    sets = {root: np.stack([tables.cpts[root], tables.cpts[root][::-1]])}
    for parameters in (None, sets):
        frames = compiled.posteriors(evidence, targets, parameters=parameters)
        raw = compiled.query(compiled.encode(evidence), targets, parameters=parameters)
        index = evidence.index if parameters is None else pd.MultiIndex.from_product([range(2), evidence.index], names=["parameter_set", "patient"])
        for t in targets:
            columns = pd.Index(list(tables.states[t]), name=t, dtype=object)
            expected = pd.DataFrame(raw.marginals[t].reshape(-1, tables.cardinality(t)), index=index, columns=columns)
            pd.testing.assert_frame_equal(frames[t], expected, check_exact=True)
            np.testing.assert_allclose(frames[t].sum(axis=1), 1.0, rtol=1e-12)
            assert frames[t].loc[index[-1], tables.states[t][0]] == expected.iloc[-1, 0]
