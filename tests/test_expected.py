"""Expected counts of the engine (engine/expected.py): both methods against enumeration of the full joint."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import random_documents
from oracles import full_joint

import postfusion_bayes as pfb
from postfusion_bayes.engine import expected as expected_module
from postfusion_bayes.engine.expected import expected_counts
from postfusion_bayes.engine.structured import Mixture, NoisyOr
from postfusion_bayes.errors import NetworkError
from postfusion_bayes.evidence import frame_codes
from postfusion_bayes.spec import spec_from_documents


def small_model(seed: int, categorical: int = 0) -> pfb.Model:
    docs = random_documents(np.random.default_rng(seed), n_causes=3, n_findings=4, n_times=2, n_factors=2, onset_states=3, categorical=categorical)
    first = next(iter(docs["findings.yaml"]["findings"].values()))
    for cause in docs["causes.yaml"]["causes"]:  # every cause needs a finding (a layered network)
        first["links"].setdefault(cause, {"value": 0.5, "range": [0.2, 0.8], "judgment": "test"})
    return pfb.Model(spec_from_documents(docs))


def cases_codes(model: pfb.Model, n: int, seed: int, missing: float) -> dict[str, np.ndarray]:
    frame = model.simulate(n, seed=seed).astype(object)
    rng = np.random.default_rng(seed + 1)
    frame = frame.mask(rng.random(frame.shape) < missing)
    return {v: c for v, c in frame_codes(model.spec, frame).items() if (c >= 0).any()}


def by_enumeration(network, codes, n_rows):
    """Every expectation by summing the full joint (every variable's axis), row by row."""
    tables = network.tables
    joint = full_joint(tables)
    names = list(tables.variables)
    _, roots, middle, leaves = network._layers
    out = {"log_evidence": np.zeros(n_rows), "roots": {r: np.zeros((n_rows, tables.cardinality(r))) for r in roots}, "causes": np.zeros((n_rows, len(middle)))}
    out["families"] = {m: [np.zeros((n_rows, int(np.prod([tables.cardinality(p) for p in tables.parents[m]])))) for _ in range(2)] for m in middle}
    out["fired"] = {}
    out["shares"] = {}
    for row in range(n_rows):
        w = joint.copy()
        for v, c in codes.items():
            if c[row] >= 0:
                w = np.take(w, [c[row]], axis=names.index(v))
        total = w.sum()
        out["log_evidence"][row] = np.log(total)
        post = w / total

        def marginal(vs, post=post):
            keep = [names.index(v) for v in vs]
            summed = post.sum(axis=tuple(i for i in range(post.ndim) if i not in keep))
            return np.moveaxis(summed, list(np.argsort(np.argsort(keep))), list(range(len(keep)))) if len(keep) > 1 else summed

        for r in roots:
            out["roots"][r][row] = marginal([r]) if codes.get(r, np.full(n_rows, -1))[row] < 0 else np.eye(tables.cardinality(r))[codes[r][row]]
        causes = marginal(list(middle))  # (2,) * n: the joint of the middle nodes given e
        for i, m in enumerate(middle):
            out["causes"][row, i] = marginal([m])[1] if codes.get(m, np.full(n_rows, -1))[row] < 0 else float(codes[m][row] == 1)
            fam = marginal([*tables.parents[m], m]) if codes.get(m, np.full(n_rows, -1))[row] < 0 else None
            parents = tables.parents[m]
            pj = marginal(list(parents)) if parents else np.ones(())
            # observed axes collapsed to size 1 by np.take: the family over the full parent states, from the pieces
            full = np.zeros([tables.cardinality(p) for p in parents] + [2])
            idx = tuple(slice(None) if codes.get(p, np.full(n_rows, -1))[row] < 0 else slice(codes[p][row], codes[p][row] + 1) for p in parents)
            if fam is None:
                s = codes[m][row]
                full[idx + (slice(s, s + 1),)] = pj.reshape(full[idx + (slice(s, s + 1),)].shape)
            else:
                full[idx] = fam.reshape(full[idx].shape)
            out["families"][m][0][row] = full.sum(axis=-1).ravel()
            out["families"][m][1][row] = full[..., 1].ravel()
        configs = np.stack(np.unravel_index(np.arange(2 ** len(middle)), [2] * len(middle)), axis=1)
        shape = [2 if codes.get(m, np.full(n_rows, -1))[row] < 0 else 1 for m in middle]
        p_c = np.zeros([2] * len(middle))
        p_c[tuple(slice(None) if s == 2 else slice(codes[m][row], codes[m][row] + 1) for s, m in zip(shape, middle, strict=True))] = causes.reshape(shape)
        p_c = p_c.ravel()
        for f in leaves:
            cpd = tables.cpd(f)
            if f not in codes:
                continue
            parents = [list(middle).index(p) for p in tables.parents[f]]
            on = configs[:, parents]
            if isinstance(cpd, NoisyOr):
                a, b = out["fired"].setdefault(f, [0.0, np.zeros(len(parents))])
                if codes[f][row] == 1:  # P(fired | C, f yes) = link [C] / P(f yes | C)
                    p_yes = 1 - (1 - cpd.leak) * np.prod(np.where(on == 1, 1 - np.asarray(cpd.links), 1.0), axis=1)
                    out["fired"][f][0] = a + float(p_c @ (cpd.leak / p_yes))
                    out["fired"][f][1] = b + (p_c / p_yes) @ (on * np.asarray(cpd.links))
            elif isinstance(cpd, Mixture) and codes[f][row] >= 0:
                s = codes[f][row]
                acc = out["shares"].setdefault(f, np.zeros((len(parents) + 1, len(cpd.leak))))
                d = np.asarray(cpd.distributions)[:, s]
                mix = on @ d
                acc[:-1, s] += (p_c * np.divide(1.0, mix, out=np.zeros_like(mix), where=mix > 0)) @ (on * d)
                acc[-1, s] += p_c[on.sum(axis=1) == 0].sum()
    return out


def assert_equal(e, ref, tol=1e-9):
    np.testing.assert_allclose(e.log_evidence, ref["log_evidence"], rtol=tol, atol=0)
    np.testing.assert_allclose(e.causes, ref["causes"], rtol=0, atol=tol)
    for r, x in ref["roots"].items():
        np.testing.assert_allclose(e.roots[r], x, rtol=0, atol=tol)
    for m, (a, b) in ref["families"].items():
        np.testing.assert_allclose(e.families[m][0], a, rtol=0, atol=tol)
        np.testing.assert_allclose(e.families[m][1], b, rtol=0, atol=tol)
    assert set(e.fired) == set(ref["fired"])
    for f, (a, b) in ref["fired"].items():
        assert e.fired[f][0] == pytest.approx(a, rel=tol, abs=tol)
        np.testing.assert_allclose(e.fired[f][1], b, rtol=tol, atol=tol)
    assert set(e.shares) == set(ref["shares"])
    for f, x in ref["shares"].items():
        np.testing.assert_allclose(e.shares[f], x, rtol=tol, atol=tol)


@pytest.mark.parametrize(("seed", "categorical"), [(1, 0), (2, 3), (3, 0)])
@pytest.mark.parametrize("method", ["enumeration", "factorised", "factorised sums only"])
def test_expected_counts_equal_the_full_joint(seed, categorical, method, monkeypatch):
    if method == "factorised sums only":  # no cell answered by its completions: every incomplete one by the factorised sums
        monkeypatch.setattr(expected_module, "_EXPAND_FREE", -1)
        method = "factorised"
    model = small_model(seed, categorical)
    codes = cases_codes(model, 25, seed, missing=0.4)
    e = expected_counts(model.network, codes, 25, method=method)
    assert_equal(e, by_enumeration(model.network, codes, 25))
    # the fired leak and links of a yes finding, and the shares of an observed onset, are expected counts: each row's sum to 1
    onset = model.spec.onset.variable
    assert e.shares[onset].sum() == pytest.approx((codes[onset] >= 0).sum(), rel=1e-12)


def test_both_methods_agree_on_the_first_edition_causes_with_context_missing():
    from large_models import trimmed_spec

    model = pfb.Model(trimmed_spec(8))  # the shipped priors cut to eight causes: the enumeration's joint fits
    codes = cases_codes(model, 120, 7, missing=0.35)
    a = expected_counts(model.network, codes, 120, method="enumeration")
    b = expected_counts(model.network, codes, 120, method="factorised")
    np.testing.assert_allclose(a.log_evidence, b.log_evidence, rtol=1e-9)
    np.testing.assert_allclose(a.causes, b.causes, atol=1e-9)
    for m in a.families:
        np.testing.assert_allclose(a.families[m][1], b.families[m][1], atol=1e-9)
    for f in a.fired:
        assert a.fired[f][0] == pytest.approx(b.fired[f][0], rel=1e-9)
        np.testing.assert_allclose(a.fired[f][1], b.fired[f][1], rtol=1e-9)
    np.testing.assert_allclose(a.shares["onset"], b.shares["onset"], rtol=1e-9)


def test_rows_split_to_fit_the_memory_budget_give_the_same_counts():
    model = small_model(4, 3)
    codes = cases_codes(model, 40, 4, missing=0.5)
    whole = expected_counts(model.network, codes, 40)
    small = expected_counts(model.network.with_memory_budget(200_000), codes, 40)
    np.testing.assert_allclose(small.log_evidence, whole.log_evidence, rtol=1e-12)
    for f in whole.fired:
        np.testing.assert_allclose(small.fired[f][1], whole.fired[f][1], rtol=1e-12)
    with pytest.raises(pfb.MemoryBudgetError, match="completions"):
        expected_counts(model.network.with_memory_budget(1000), codes, 40)


def test_bad_arguments():
    model = small_model(5)
    codes = cases_codes(model, 6, 5, missing=0.0)
    with pytest.raises(NetworkError, match="unknown method 'quick'"):
        expected_counts(model.network, codes, 6, method="quick")
    from postfusion_bayes.engine import NetworkTables, compile_network

    t = NetworkTables({"a": ("no", "yes"), "b": ("no", "yes")}, {"a": (), "b": ("a",)}, {"a": np.array([0.5, 0.5]), "b": np.array([[0.9, 0.1], [0.2, 0.8]])})
    with pytest.raises(NetworkError, match="layered network"):
        expected_counts(compile_network(t), {"b": np.array([1])}, 1)


# ----------------------------------------------------------------------------------------------- the fast factorised E-step


def assert_same(a, b, tol=1e-9):
    """Two Expectations agree (posteriors to ``tol`` absolute, log-evidence and counts relatively)."""
    np.testing.assert_allclose(a.log_evidence, b.log_evidence, rtol=tol, atol=0)
    np.testing.assert_allclose(a.causes, b.causes, rtol=0, atol=tol)
    for r in b.roots:
        np.testing.assert_allclose(a.roots[r], b.roots[r], rtol=0, atol=tol)
    for m in b.families:
        np.testing.assert_allclose(a.families[m][0], b.families[m][0], rtol=0, atol=tol)
        np.testing.assert_allclose(a.families[m][1], b.families[m][1], rtol=0, atol=tol)
    assert set(a.fired) == set(b.fired)
    for f in b.fired:
        assert a.fired[f][0] == pytest.approx(b.fired[f][0], rel=tol, abs=tol)
        np.testing.assert_allclose(a.fired[f][1], b.fired[f][1], rtol=tol, atol=tol)
    assert set(a.shares) == set(b.shares)
    for f in b.shares:
        np.testing.assert_allclose(a.shares[f], b.shares[f], rtol=tol, atol=tol)


def one_query_per_finding(monkeypatch):
    """Make the factorised sums never bring the activations along: the former path, one query per positive finding."""
    from postfusion_bayes.engine import _noisy_or

    monkeypatch.setattr(_noisy_or, "_enumeration_activation_bytes", lambda n, m: 2**62)


def no_closed_form(monkeypatch):
    """Send the cells whose causes are all observed to the factorised sums too."""
    from postfusion_bayes.engine import expected

    monkeypatch.setattr(expected, "_complete", lambda cause_lik: np.zeros(cause_lik.shape[0], dtype=bool))


def count_queries(monkeypatch) -> list:
    from postfusion_bayes.engine import _noisy_or

    calls: list = []
    original = _noisy_or.factorised_query

    def counted(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append(result.method)
        return result

    monkeypatch.setattr(_noisy_or, "factorised_query", counted)
    return calls


def many_positives(model: pfb.Model, n: int, seed: int, positives: int, hide_causes: bool) -> dict[str, np.ndarray]:
    """Simulate cases with ``positives`` findings yes and the others no, smoker unrecorded in some rows, red flags unrecorded."""
    frame = model.simulate(n, seed=seed).astype(object)
    roles = model.variables.set_index("name")["role"]
    onset = model.spec.onset.variable
    findings = [v for v, r in roles.items() if r == "finding" and v != onset]
    rng = np.random.default_rng(seed)
    for v, r in roles.items():
        if r == "red_flag" or (hide_causes and r == "cause"):
            frame[v] = None
    for i in range(n):
        yes = set(rng.choice(findings, size=positives, replace=False))
        for f in findings:
            frame.iloc[i, frame.columns.get_loc(f)] = "yes" if f in yes else "no"
    frame["smoker"] = frame["smoker"].mask(rng.random(n) < 0.5)
    return {v: c for v, c in frame_codes(model.spec, frame).items() if (c >= 0).any()}


@pytest.fixture(scope="module")
def sixteen_causes() -> pfb.Model:
    model = pfb.load_model()  # the second edition ships 16 causes
    assert (model.variables["role"] == "cause").sum() == 16
    return model


def test_activations_in_one_pass_equal_one_query_per_finding_at_16_causes(sixteen_causes, monkeypatch):
    network = sixteen_causes.network
    codes = many_positives(sixteen_causes, 4, seed=11, positives=12, hide_causes=True)
    calls = count_queries(monkeypatch)
    fast = expected_counts(network, codes, 4, method="factorised")
    assert calls == ["enumeration"]  # the cause marginals, every activation and the onset's owners in one query
    with monkeypatch.context() as patch:
        one_query_per_finding(patch)
        slow = expected_counts(network, codes, 4, method="factorised")
    assert len(calls) > 3  # (the former path: one more query per positive finding, and the onset's)
    assert_same(fast, slow)
    assert sum(a for a, _ in fast.fired.values()) > 0 and fast.shares["onset"].sum() == pytest.approx(4, rel=1e-12)


def test_cases_with_every_cause_recorded_take_the_closed_form_at_16_causes(sixteen_causes, monkeypatch):
    network = sixteen_causes.network
    codes = many_positives(sixteen_causes, 6, seed=12, positives=12, hide_causes=False)
    calls = count_queries(monkeypatch)
    closed = expected_counts(network, codes, 6, method="factorised")
    assert calls == []
    with monkeypatch.context() as patch:
        no_closed_form(patch)
        enumerated = expected_counts(network, codes, 6, method="factorised")
        one_query_per_finding(patch)
        former = expected_counts(network, codes, 6, method="factorised")
    assert_same(closed, enumerated)
    assert_same(closed, former)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("path", ["one query per finding", "no closed form", "neither"])
def test_every_factorised_path_equals_the_full_joint(seed, path, monkeypatch):
    if path in ("one query per finding", "neither"):
        one_query_per_finding(monkeypatch)
    if path in ("no closed form", "neither"):
        no_closed_form(monkeypatch)
    model = small_model(seed, categorical=3 if seed == 2 else 0)
    codes = cases_codes(model, 25, seed, missing=0.4)
    assert_equal(expected_counts(model.network, codes, 25, method="factorised"), by_enumeration(model.network, codes, 25))
