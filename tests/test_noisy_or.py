"""Exact inference for layered noisy-OR networks (engine._noisy_or) against brute-force enumeration.

The oracles here enumerate every cause configuration and root configuration
with the dense tables: in float64 log space (no cancellation, no underflow),
with exact rationals (fractions.Fraction) for tiny networks, and in
np.longdouble log space for the stress cases. None of them shares code with
the module under test.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from postfusion_bayes.engine._noisy_or import METHODS, FactorisedResult, Mixture, factorised_query
from postfusion_bayes.errors import MemoryBudgetError

TOLERANCE = 1e-9

# ----------------------------------------------------------------------------------------------- oracles


def _logsumexp(x, axis=None):
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0)
    with np.errstate(divide="ignore"):
        return np.squeeze(np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True)) + top, axis=axis)


def _safe_log(x):
    x = np.asarray(x)
    with np.errstate(divide="ignore"):
        return np.log(x)


def brute_force(root_weight, cause_given_root, cause_likelihood, leak, links, finding_likelihood, mixtures=(), predict=(), dtype=np.float64):
    """Posteriors of ONE parameter set and ONE row by enumerating all 2**n x K configurations in log space.

    Arguments are unbatched: root_weight (K,), cause_given_root (K, n), cause_likelihood (n, 2), leak (F,),
    links (F, n), finding_likelihood (F, 2); mixtures a list of (parents, distributions (n_parents, S),
    leak (S,), likelihood (S,)). Returns a dict like FactorisedResult's fields (without the P and B axes).
    """
    with np.errstate(divide="ignore", invalid="ignore", under="ignore", over="ignore"):
        rw, cg, cl = (np.asarray(x, dtype) for x in (root_weight, cause_given_root, cause_likelihood))
        leak, links = np.asarray(leak, dtype), np.asarray(links, dtype)
        fl = np.array(finding_likelihood, dtype)
        fl[list(predict)] = 1.0
        K, n = cg.shape
        present = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(bool)  # (J, n)
        # log P(finding no | C) and log P(yes | C), without cancellation
        log_keep = np.where(present[:, None, :], np.log1p(-links)[None], 0).sum(axis=-1) + np.log1p(-leak)[None]  # (J, F)
        log_yes = np.log(-np.expm1(log_keep))
        # the likelihood of each observed vector is taken in log space piecewise: no underflow of tiny values
        log_lik = np.logaddexp(_safe_log(fl[:, 1])[None] + log_yes, _safe_log(fl[:, 0])[None] + log_keep).sum(axis=1)
        for parents, dist, mleak, lam in mixtures:
            parents = np.asarray(parents, dtype=int)
            lam = np.asarray(lam, dtype)
            scale = lam.max()
            on = present[:, parents]
            count = on.sum(axis=1)
            value = np.where(count > 0, (on * (np.asarray(dist, dtype) @ (lam / scale))).sum(axis=1) / np.maximum(count, 1), np.asarray(mleak, dtype) @ (lam / scale))
            log_lik = log_lik + _safe_log(value) + np.log(scale)
        log_prior = np.where(present[None], _safe_log(cg)[:, None, :] + _safe_log(cl[:, 1]), np.log1p(-cg)[:, None, :] + _safe_log(cl[:, 0])).sum(axis=-1)  # (K, J)
        log_full = _safe_log(rw)[:, None] + log_prior + log_lik[None]
        total = _logsumexp(log_full)
        possible = np.isfinite(total)
        nan = np.full(n, np.nan)
        return {
            "log_evidence": float(total) if possible else -np.inf,
            "cause_posterior": np.array([np.exp(_logsumexp(log_full[:, present[:, i]]) - total) for i in range(n)], dtype=float) if possible else nan,
            "root_posterior": np.exp(_logsumexp(log_full, axis=1) - total).astype(float) if possible else np.full(K, np.nan),
            "finding_posterior": np.array([np.exp(_logsumexp(log_full + log_yes[None, :, f]) - total) if possible else np.nan for f in predict], dtype=float),
        }


def exact_rational(root_weight, cause_given_root, cause_likelihood, leak, links, finding_likelihood, mixtures=(), predict=()):
    """Compute the same with exact rational arithmetic (tiny networks only): Fractions, and the log evidence as a float."""
    fr = np.vectorize(Fraction, otypes=[object])
    rw, cg, cl, leak, links, fl = (fr(np.asarray(x, float)) for x in (root_weight, cause_given_root, cause_likelihood, leak, links, finding_likelihood))
    fl = fl.copy()
    for f in predict:
        fl[f] = [Fraction(1), Fraction(1)]
    K, n = cg.shape
    F = leak.shape[0]
    total, causes, roots, preds = Fraction(0), [Fraction(0)] * n, [Fraction(0)] * K, [Fraction(0)] * len(predict)
    for k in range(K):
        for config in itertools.product((0, 1), repeat=n):
            weight = rw[k]
            for i, c in enumerate(config):
                weight *= cg[k, i] * cl[i, 1] if c else (1 - cg[k, i]) * cl[i, 0]
            yes = []
            for f in range(F):
                keep = 1 - leak[f]
                for i, c in enumerate(config):
                    if c:
                        keep *= 1 - links[f, i]
                yes.append(1 - keep)
                weight *= fl[f, 1] * (1 - keep) + fl[f, 0] * keep
            for parents, dist, mleak, lam in mixtures:
                lam = [Fraction(float(x)) for x in lam]
                on = [j for j, p in enumerate(parents) if config[p]]
                if on:
                    weight *= sum(sum(Fraction(float(dist[j][s])) * lam[s] for s in range(len(lam))) for j in on) / len(on)
                else:
                    weight *= sum(Fraction(float(mleak[s])) * lam[s] for s in range(len(lam)))
            total += weight
            roots[k] += weight
            for i, c in enumerate(config):
                if c:
                    causes[i] += weight
            for j, f in enumerate(predict):
                preds[j] += weight * yes[f]
    return {
        "log_evidence": math.log(total),
        "cause_posterior": [c / total for c in causes],
        "root_posterior": [r / total for r in roots],
        "finding_posterior": [p / total for p in preds],
    }


# ----------------------------------------------------------------------------------------------- helpers


def assert_relative(actual, expected, rtol=TOLERANCE, what=""):
    """Equal NaN patterns; exact zeros where expected is zero; relative error at most rtol elsewhere."""
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape, what
    assert (np.isnan(actual) == np.isnan(expected)).all(), f"{what}: NaN pattern {actual} vs {expected}"
    seen = ~np.isnan(expected)
    a, e = actual[seen], expected[seen]
    assert (a[e == 0] == 0).all(), f"{what}: {a} vs {e}"
    error = np.abs(a - e) / np.where(e == 0, 1.0, np.abs(e))
    assert (error <= rtol).all(), f"{what}: relative error {error.max():.3g}: {a} vs {e}"


def assert_log_evidence(actual, expected, tol=TOLERANCE):
    if not np.isfinite(expected):
        assert actual == -np.inf
    else:
        assert abs(actual - expected) <= tol * max(1.0, abs(expected)), (actual, expected)


def unbatched(args: dict, p: int, b: int) -> dict:
    """One parameter set and one row of factorised_query's arguments, for the oracles."""

    def row(x, i):
        return x[i if x.shape[0] > 1 else 0]

    return dict(
        root_weight=args["root_weight"][p if args["root_weight"].shape[0] > 1 else 0, b if args["root_weight"].shape[1] > 1 else 0],
        cause_given_root=row(args["cause_given_root"], p),
        cause_likelihood=row(args["cause_likelihood"], b),
        leak=row(args["leak"], p),
        links=row(args["links"], p),
        finding_likelihood=row(args["finding_likelihood"], b),
        mixtures=[(m.parents, row(m.distributions, p), row(m.leak, p), row(m.likelihood, b)) for m in args.get("mixtures", ())],
        predict=list(args.get("predict", ())),
    )


def check_against_brute_force(args: dict, result: FactorisedResult, rtol=TOLERANCE) -> None:
    P, B = result.log_evidence.shape
    for p, b in itertools.product(range(P), range(B)):
        expected = brute_force(**unbatched(args, p, b))
        where = f"set {p} row {b}"
        assert_log_evidence(result.log_evidence[p, b], expected["log_evidence"])
        for field in ("cause_posterior", "root_posterior", "finding_posterior"):
            assert_relative(getattr(result, field)[p, b], expected[field], rtol, f"{field} ({where}, {result.method})")


def random_network(rng, n, F, K=1, P=1, S=3, n_parents=None, links_per_finding=None, prior=(0.02, 0.6)):
    """Tables of a random layered network (one mixture finding over n_parents causes, or none when 0)."""
    cg = rng.uniform(*prior, size=(P, K, n))
    leak = rng.uniform(0.001, 0.2, size=(P, F))
    if links_per_finding is None:
        mask = rng.random((1, F, n)) < 0.5
    else:
        mask = np.zeros((1, F, n), dtype=bool)
        for f in range(F):
            mask[0, f, rng.choice(n, links_per_finding, replace=False)] = True
    links = np.where(mask, rng.uniform(0.05, 0.95, size=(P, F, n)), 0.0)
    n_parents = n if n_parents is None else n_parents
    parents = np.sort(rng.choice(n, size=n_parents, replace=False))
    dist = rng.dirichlet(np.ones(S), size=(P, n_parents))
    mleak = rng.dirichlet(np.ones(S), size=P)
    return dict(cause_given_root=cg, leak=leak, links=links, parents=parents, dist=dist, mleak=mleak, S=S)


def query_args(net, root_weight, cause_likelihood, finding_likelihood, mixture_likelihood=None, predict=()):
    mixtures = () if mixture_likelihood is None else [Mixture(net["parents"], net["dist"], net["mleak"], mixture_likelihood)]
    return dict(
        root_weight=root_weight,
        cause_given_root=net["cause_given_root"],
        cause_likelihood=cause_likelihood,
        leak=net["leak"],
        links=net["links"],
        finding_likelihood=finding_likelihood,
        mixtures=mixtures,
        predict=predict,
    )


# ----------------------------------------------------------------------------------------------- fixed examples


def small_case(seed=0, n=5, F=6, K=3, P=1, B=1, mixture=True, predict=(1, 4)):
    rng = np.random.default_rng(seed)
    net = random_network(rng, n, F, K=K, P=P, n_parents=min(4, n))
    fl = np.ones((B, F, 2))
    kinds = [[0.0, 1.0], None, [1.0, 0.0], [0.3, 1.0], None, [1.0, 0.2]]  # positive, -, negative, soft yes, -, soft no
    for f, kind in enumerate(kinds[:F]):
        if kind is not None:
            fl[:, f] = kind
    cl = np.ones((B, n, 2))
    cl[:, 1] = [0.5, 1.0]
    lam = np.array([[0.2, 1.0, 0.6]] * B) if mixture else None
    return query_args(net, rng.uniform(0.2, 1.0, size=(P, B, K)), cl, fl, lam, predict)


@pytest.mark.parametrize(
    "methods",
    [
        METHODS,
        ("quickscore", "enumeration-log"),
        ("quickscore-telescoped", "enumeration-log"),
        ("quickscore-longdouble", "enumeration-log"),
        ("subset-dp", "enumeration-log"),
        ("enumeration", "enumeration-log"),
        ("enumeration-log",),
    ],
    ids=["auto", "quickscore", "quickscore-telescoped", "quickscore-longdouble", "subset-dp", "enumeration", "enumeration-log"],
)
@pytest.mark.parametrize("mixture", [True, False], ids=["mixture", "no-mixture"])
def test_every_method_matches_the_brute_force(methods, mixture):
    args = small_case(mixture=mixture, predict=() if "quickscore-telescoped" in methods[:1] else (1, 4))  # (telescoped: no predictions)
    result = factorised_query(**args, methods=methods)
    assert result.method in methods
    check_against_brute_force(args, result)


def test_a_tiny_network_matches_exact_rational_arithmetic():
    args = small_case(seed=3, n=3, F=4, K=2, predict=(1,))
    args["finding_likelihood"][0, 3] = [1.0, 1.0]
    exact = exact_rational(**unbatched(args, 0, 0))
    for methods in (METHODS, ("enumeration",), ("quickscore-longdouble",), ("subset-dp",)):
        result = factorised_query(**args, methods=methods)
        assert_log_evidence(result.log_evidence[0, 0], exact["log_evidence"])
        for field in ("cause_posterior", "root_posterior", "finding_posterior"):
            assert_relative(getattr(result, field)[0, 0], [float(x) for x in exact[field]], TOLERANCE, field)


def test_the_docstring_example_by_hand():
    # P(C) for C = {}, {1}, {2}, {1, 2}: 0.72, 0.08, 0.18, 0.02; P(yes | C): 0.01, 0.901, 0.505, 0.9505
    joint = np.array([0.72 * 0.01, 0.08 * 0.901, 0.18 * 0.505, 0.02 * 0.9505])
    for methods in ((name,) for name in METHODS):
        r = factorised_query(np.ones((1, 1, 1)), np.array([[[0.1, 0.2]]]), np.ones((1, 2, 2)), np.array([[0.01]]), np.array([[[0.9, 0.5]]]), np.array([[[0.0, 1.0]]]), methods=methods)
        assert r.method == methods[0]
        check_one_by_hand(r, joint)


def check_one_by_hand(r, joint):
    assert_relative(r.cause_posterior[0, 0], [(joint[1] + joint[3]) / joint.sum(), (joint[2] + joint[3]) / joint.sum()], 1e-12)
    assert_log_evidence(r.log_evidence[0, 0], math.log(joint.sum()), 1e-12)
    assert r.root_posterior[0, 0, 0] == pytest.approx(1.0, abs=1e-15)


# ----------------------------------------------------------------------------------------------- random networks (hypothesis)

EVIDENCE_KINDS = {
    "unobserved": (1.0, 1.0),
    "negative": (1.0, 0.0),
    "positive": (0.0, 1.0),
    "soft yes": (0.3, 1.0),
    "soft no": (1.0, 0.15),
    "nearly yes": (1e-300, 1.0),
    "nearly no": (1.0, 1e-300),
}
SCALES = (1.0, 1e-300, 1e300, 1e-200)


@st.composite
def problems(draw, max_n=6):
    """Small random networks with random (hard, soft, zero, extreme) evidence in 1-2 sets and 1-3 rows."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, max_n))
    F = draw(st.integers(1, 7))
    K = draw(st.integers(1, 3))
    P = draw(st.integers(1, 2))
    B = draw(st.integers(1, 3))
    n_parents = draw(st.integers(0, n))
    net = random_network(rng, n, F, K=K, P=P, n_parents=n_parents, S=draw(st.integers(2, 4)))
    if draw(st.booleans()):  # extreme parameters: certain and impossible causes, certain links and leaks
        cg = net["cause_given_root"]
        cg[rng.random(cg.shape) < 0.15] = draw(st.sampled_from([0.0, 1.0, 1e-200, 1 - 1e-12]))
        links = net["links"]
        links[(links > 0) & (rng.random(links.shape) < 0.15)] = draw(st.sampled_from([1.0, 1e-200, 1 - 1e-15]))
        net["leak"][rng.random(net["leak"].shape) < 0.2] = draw(st.sampled_from([0.0, 1e-250, 1.0]))
        net["dist"][rng.random(net["dist"].shape) < 0.2] = 0.0
        net["dist"][..., 0] += 1e-3
        net["dist"] /= net["dist"].sum(axis=-1, keepdims=True)
    fl = np.ones((B, F, 2))
    for b, f in itertools.product(range(B), range(F)):
        fl[b, f] = np.array(EVIDENCE_KINDS[draw(st.sampled_from(sorted(EVIDENCE_KINDS)))]) * draw(st.sampled_from(SCALES))
    cl = np.ones((B, n, 2))
    for b, i in itertools.product(range(B), range(n)):
        if draw(st.integers(0, 3)) == 0:
            cl[b, i] = draw(st.sampled_from([(1.0, 0.0), (0.0, 1.0), (0.4, 1.0), (1e-300, 1.0), (2.0, 0.5)]))
    rw = rng.uniform(0.1, 1.0, size=(P, B, K))
    if draw(st.booleans()):  # the context observed: one root configuration per row
        rw = rw * (np.arange(K) == rng.integers(0, K, size=(1, B, 1)))
    lam = None
    if draw(st.booleans()):
        lam = np.ones((B, net["S"]))
        for b in range(B):
            kind = draw(st.sampled_from(["unobserved", "hard", "soft", "tiny"]))
            if kind == "hard":
                lam[b] = np.eye(net["S"])[rng.integers(net["S"])]
            elif kind == "soft":
                lam[b] = rng.uniform(0.05, 2.0, net["S"])
            elif kind == "tiny":
                lam[b] = np.eye(net["S"])[0] * 1e-300
    predict = [f for f in range(F) if draw(st.booleans())]
    return query_args(net, rw, cl, fl, lam, predict)


@given(problems())
def test_random_networks_match_the_brute_force(args):
    check_against_brute_force(args, factorised_query(**args))


@given(
    problems(),
    st.sampled_from([("quickscore", "enumeration-log"), ("quickscore", "quickscore-longdouble", "enumeration-log"), ("subset-dp", "enumeration-log"), ("enumeration", "enumeration-log")]),
)
def test_random_networks_match_the_brute_force_whichever_method_runs_first(args, methods):
    check_against_brute_force(args, factorised_query(**args, methods=methods))


@given(problems(), st.sampled_from([(0.0, 1.0), (0.3, 1.0), (1e-300, 1.0), (0.0, 1e-300)]))
def test_random_networks_match_the_brute_force_with_one_finding_telescoped(args, positive):
    # the telescoped form needs no predictions and a finding leaning positive in every row
    args = dict(args, predict=[])
    args["finding_likelihood"] = args["finding_likelihood"].copy()
    args["finding_likelihood"][:, 0] = positive
    result = factorised_query(**args, methods=("quickscore-telescoped", "enumeration-log"))
    check_against_brute_force(args, result)


@given(problems(max_n=5), st.data())
def test_scaling_a_likelihood_vector_changes_only_the_log_evidence(args, data):
    before = factorised_query(**args)
    exponent = data.draw(st.integers(-300, 300))
    factor = 10.0**exponent
    which = data.draw(st.sampled_from(["cause", "finding", "root"] + (["mixture"] if args["mixtures"] else [])))
    b = data.draw(st.integers(0, before.log_evidence.shape[1] - 1))
    scaled = dict(args)
    if which == "cause":
        scaled["cause_likelihood"] = args["cause_likelihood"].copy()
        i = data.draw(st.integers(0, scaled["cause_likelihood"].shape[1] - 1))
        vector = scaled["cause_likelihood"][b, i]
    elif which == "finding":
        scaled["finding_likelihood"] = args["finding_likelihood"].copy()
        f = data.draw(st.integers(0, scaled["finding_likelihood"].shape[1] - 1))
        if f in args["predict"]:
            return  # ignored anyway
        vector = scaled["finding_likelihood"][b, f]
    elif which == "root":
        scaled["root_weight"] = args["root_weight"].copy()
        vector = scaled["root_weight"][:, b]
    else:
        mx = args["mixtures"][0]
        scaled["mixtures"] = [Mixture(mx.parents, mx.distributions, mx.leak, mx.likelihood.copy())]
        vector = scaled["mixtures"][0].likelihood[b]
    # keep the ratios exact: skip vectors whose scaled entries would leave the normal range
    nonzero = vector[vector > 0]
    if nonzero.size and not (np.abs(np.log10(nonzero)) + abs(exponent) < 300).all():
        return
    original = vector.copy()
    vector *= factor
    after = factorised_query(**scaled)
    for field in ("cause_posterior", "root_posterior", "finding_posterior"):
        assert_relative(getattr(after, field), getattr(before, field), 1e-12, field)
    with np.errstate(divide="ignore"):
        shift = np.log(np.max(vector)) - np.log(np.max(original)) if original.max() > 0 else 0.0
    expected = before.log_evidence.copy()
    expected[:, b] += shift
    finite = np.isfinite(expected)
    assert (np.isfinite(after.log_evidence) == finite).all()
    np.testing.assert_allclose(after.log_evidence[finite], expected[finite], rtol=1e-12, atol=1e-9)


# ----------------------------------------------------------------------------------------------- evidence at the edges


def test_tiny_scales_are_ratios_only():
    args = small_case(seed=1, predict=())
    base = factorised_query(**args)
    same = dict(args, finding_likelihood=args["finding_likelihood"].copy())
    same["finding_likelihood"][0, 1] = [1e-200, 1e-200]  # soft evidence that says nothing: unobserved
    r = factorised_query(**same)
    assert_relative(r.cause_posterior, base.cause_posterior, 1e-14)
    assert r.log_evidence[0, 0] == pytest.approx(base.log_evidence[0, 0] + math.log(1e-200), abs=1e-10)
    one = dict(args, finding_likelihood=args["finding_likelihood"].copy(), predict=())
    two = dict(args, finding_likelihood=args["finding_likelihood"].copy(), predict=())
    one["finding_likelihood"][0, 4] = [1e-323, 5e-324]  # (no, yes): subnormal, ratio exactly 2
    two["finding_likelihood"][0, 4] = [2.0, 1.0]
    r1, r2 = factorised_query(**one), factorised_query(**two)
    assert_relative(r1.cause_posterior, r2.cause_posterior, 1e-14)
    assert_relative(r1.root_posterior, r2.root_posterior, 1e-14)
    assert r1.log_evidence[0, 0] - r2.log_evidence[0, 0] == pytest.approx(math.log(1e-323) - math.log(2.0), abs=1e-12)


def test_a_predicted_findings_own_likelihood_is_ignored():
    args = small_case(seed=2)
    base = factorised_query(**args)
    other = dict(args, finding_likelihood=args["finding_likelihood"].copy())
    other["finding_likelihood"][0, 1] = [0.0, 1.0]  # finding 1 is predicted: this must not count
    other["finding_likelihood"][0, 4] = [0.7, 0.1]
    r = factorised_query(**other)
    assert_relative(r.cause_posterior, base.cause_posterior, 1e-14)
    assert_relative(r.finding_posterior, base.finding_posterior, 1e-14)
    np.testing.assert_allclose(r.log_evidence, base.log_evidence, rtol=0, atol=1e-13)
    check_against_brute_force(other, r)


def test_a_tiny_prediction_keeps_its_relative_precision():
    args = small_case(seed=4, predict=(1,))
    args["leak"][0, 1] = 1e-250
    args["links"][0, 1] = 0.0
    args["links"][0, 1, 0] = 1e-12
    r = factorised_query(**args)
    check_against_brute_force(args, r)
    assert 1e-250 < r.finding_posterior[0, 0, 0] < 1e-11


@pytest.mark.parametrize(
    "make_impossible",
    [
        "positive finding without a possible parent",
        "no root configuration",
        "mixture state of probability zero",
        "cause likelihood all zero",
        "negative finding with a certain leak",
    ],
)
def test_impossible_evidence_gives_nan_and_minus_infinity(make_impossible):
    args = small_case(seed=5, B=2)
    args["finding_likelihood"] = args["finding_likelihood"].copy()
    row = 1  # row 0 stays possible
    if make_impossible == "positive finding without a possible parent":
        parents = np.flatnonzero(args["links"][0, 0])
        args["leak"][0, 0] = 0.0
        args["cause_likelihood"][row, parents] = [1.0, 0.0]
    elif make_impossible == "no root configuration":
        args["root_weight"][:, row] = 0.0
    elif make_impossible == "mixture state of probability zero":
        mx = args["mixtures"][0]
        dist = mx.distributions.copy()
        dist[..., 2] = 0.0
        dist /= dist.sum(axis=-1, keepdims=True)
        mleak = mx.leak.copy()
        mleak[..., 2] = 0.0
        mleak /= mleak.sum(axis=-1, keepdims=True)
        lam = mx.likelihood.copy()
        lam[row] = [0.0, 0.0, 1.0]
        args["mixtures"] = [Mixture(mx.parents, dist, mleak, lam)]
    elif make_impossible == "cause likelihood all zero":
        args["cause_likelihood"][row, 2] = [0.0, 0.0]
    else:
        args["leak"][0, 2] = 1.0
        args["finding_likelihood"][0, 2] = [1.0, 1.0]
        args["finding_likelihood"][row, 2] = [1.0, 0.0]
    for methods in (METHODS, ("enumeration",), ("quickscore", "enumeration-log"), ("subset-dp",)):
        r = factorised_query(**args, methods=methods)
        assert r.log_evidence[0, row] == -np.inf
        assert np.isnan(r.cause_posterior[0, row]).all() and np.isnan(r.root_posterior[0, row]).all() and np.isnan(r.finding_posterior[0, row]).all()
        assert np.isfinite(r.log_evidence[0, 0]) and not np.isnan(r.cause_posterior[0, 0]).any()
        check_against_brute_force(args, r)


def test_every_row_impossible():
    args = small_case(seed=5)
    args["root_weight"] = np.zeros_like(args["root_weight"])
    r = factorised_query(**args)
    assert r.method == "none"
    assert (r.log_evidence == -np.inf).all() and np.isnan(r.cause_posterior).all()


def test_a_mixture_with_no_parent_present_uses_its_leak():
    args = small_case(seed=6)
    parents = args["mixtures"][0].parents
    args["cause_likelihood"][0, parents] = [1.0, 0.0]  # every mixture parent observed absent
    for methods in (METHODS, ("quickscore", "enumeration-log"), ("subset-dp",), ("enumeration",)):
        r = factorised_query(**args, methods=methods)
        check_against_brute_force(args, r)
        assert (r.cause_posterior[0, 0, parents] == 0).all()


def test_observed_causes():
    args = small_case(seed=7)
    args["cause_likelihood"][0, 0] = [0.0, 1.0]  # observed present
    args["cause_likelihood"][0, 3] = [1.0, 0.0]  # observed absent
    for methods in (METHODS, ("quickscore", "enumeration-log"), ("subset-dp",), ("enumeration",)):
        r = factorised_query(**args, methods=methods)
        check_against_brute_force(args, r)
        assert r.cause_posterior[0, 0, 0] == pytest.approx(1.0, abs=1e-15)
        assert r.cause_posterior[0, 0, 3] == 0.0


def test_a_cause_that_is_certain_given_one_root_configuration():
    args = small_case(seed=8, K=3)
    args["cause_given_root"][0, 1, 2] = 1.0
    args["cause_given_root"][0, 2, 2] = 0.0
    check_against_brute_force(args, factorised_query(**args))


def test_context_observed_one_root_configuration_per_row():
    args = small_case(seed=9, K=4, B=3)
    args["root_weight"] = args["root_weight"] * np.eye(4)[[2, 0, 3]][None]
    r = factorised_query(**args)
    check_against_brute_force(args, r)
    assert (r.root_posterior[0, np.arange(3), [2, 0, 3]] == 1).all()


# ----------------------------------------------------------------------------------------------- batching and memory


def test_parameter_sets_and_rows_equal_each_one_alone():
    args = small_case(seed=10, P=3, B=4)
    args["finding_likelihood"][1, 0] = [1.0, 0.0]
    args["finding_likelihood"][2, 3] = [1.0, 1.0]
    args["finding_likelihood"][3, 1] = [0.0, 1.0]  # rows with different numbers of expanded findings
    r = factorised_query(**args)
    for p, b in itertools.product(range(3), range(4)):
        one = dict(args)
        one["root_weight"] = args["root_weight"][p : p + 1, b : b + 1]
        for key in ("cause_given_root", "leak", "links"):
            one[key] = args[key][p : p + 1]
        for key in ("cause_likelihood", "finding_likelihood"):
            one[key] = args[key][b : b + 1]
        mx = args["mixtures"][0]
        one["mixtures"] = [Mixture(mx.parents, mx.distributions[p : p + 1], mx.leak[p : p + 1], mx.likelihood[b : b + 1])]
        alone = factorised_query(**one)
        for field in ("cause_posterior", "root_posterior", "finding_posterior"):
            assert_relative(getattr(r, field)[p, b], getattr(alone, field)[0, 0], 1e-12, field)
        assert r.log_evidence[p, b] == pytest.approx(alone.log_evidence[0, 0], rel=1e-13, abs=1e-13)
    check_against_brute_force(args, r)


def test_shared_evidence_broadcasts_over_parameter_sets():
    args = small_case(seed=11, P=3, B=1)
    r = factorised_query(**args)
    assert r.cause_posterior.shape == (3, 1, 5) and r.root_posterior.shape == (3, 1, 3) and r.finding_posterior.shape == (3, 1, 2)
    check_against_brute_force(args, r)


@pytest.mark.parametrize(
    "methods, budget",
    [(METHODS, 40_000), (("quickscore",), 100_000), (("subset-dp",), 40_000), (("enumeration",), 40_000)],
    ids=["auto", "quickscore", "subset-dp", "enumeration"],
)
def test_a_small_budget_processes_rows_in_chunks_with_the_same_results(methods, budget):
    # (24 cells; these budgets hold one to four of them at a time)
    args = small_case(seed=12, B=12, P=2)
    roomy = factorised_query(**args, methods=methods)
    tight = factorised_query(**args, methods=methods, max_bytes=budget)
    assert tight.method == roomy.method
    for field in ("cause_posterior", "root_posterior", "finding_posterior", "log_evidence"):
        np.testing.assert_allclose(getattr(tight, field), getattr(roomy, field), rtol=1e-13, atol=0)


def test_a_budget_below_one_row_raises():
    args = small_case(seed=12)
    with pytest.raises(MemoryBudgetError, match=r"one row of the factorised sums .* would need about [0-9.]+ kB of memory, more than the engine's budget of 1000 bytes") as info:
        factorised_query(**args, max_bytes=1000)
    assert isinstance(info.value, ValueError)


# ----------------------------------------------------------------------------------------------- cancellation


def stress_case(seed, n=16, n_positive=12, n_negative=2, soft=1):
    """Forty findings with six parents each, one mixture over all causes; many positive findings."""
    rng = np.random.default_rng(seed)
    net = random_network(rng, n, 40, links_per_finding=6, prior=(0.01, 0.3), S=5)
    net["leak"][:] = rng.uniform(0.005, 0.1, size=net["leak"].shape)
    net["links"][net["links"] > 0] = rng.uniform(0.2, 0.9, size=(net["links"] > 0).sum())
    while True:  # findings that are jointly plausible: sample causes with raised priors
        causes = rng.random(n) < np.minimum(3 * net["cause_given_root"][0, 0], 0.9)
        yes = rng.random(40) > (1 - net["leak"][0]) * np.prod(np.where(causes, 1 - net["links"][0], 1), axis=1)
        if yes.sum() >= n_positive and (~yes).sum() >= n_negative + 2:
            break
    positive = rng.choice(np.flatnonzero(yes), n_positive, replace=False)
    negative = rng.choice(np.flatnonzero(~yes), n_negative + 2, replace=False)
    fl = np.ones((1, 40, 2))
    fl[0, positive] = [0.0, 1.0]
    fl[0, positive[:soft]] = [0.2, 1.0]
    fl[0, negative[:n_negative]] = [1.0, 0.0]
    lam = np.eye(5)[[rng.integers(5)]]
    return query_args(net, np.ones((1, 1, 1)), np.ones((1, n, 2)), fl, lam, predict=list(negative[n_negative:]))


@pytest.mark.parametrize("seed, n_positive", [(0, 12), (1, 14)])
def test_many_positive_findings_are_exact_without_cancellation(seed, n_positive):
    args = stress_case(seed, n_positive=n_positive)
    expected = brute_force(**unbatched(args, 0, 0), dtype=np.longdouble)
    for methods, name in ((METHODS, "enumeration"), (("subset-dp",), "subset-dp")):
        result = factorised_query(**args, methods=methods)
        assert result.method == name  # cancellation-free
        assert_log_evidence(result.log_evidence[0, 0], expected["log_evidence"])
        for field in ("cause_posterior", "root_posterior", "finding_posterior"):
            assert_relative(getattr(result, field)[0, 0], expected[field], TOLERANCE, field)
    # plain float64 Quickscore cannot certify these numbers: it must refuse rather than return them
    with pytest.raises(MemoryBudgetError, match="cannot be computed to the tolerance|quickscore"):
        factorised_query(**args, methods=("quickscore",))


def test_one_finding_telescoped_certifies_what_float64_quickscore_cannot():
    # sixteen causes, eight positive findings (one soft): plain Quickscore's bound fails, one finding summed
    # without cancellation passes, and the answer agrees with long-double enumeration
    args = dict(stress_case(3, n_positive=8), predict=[])
    with pytest.raises(MemoryBudgetError):
        factorised_query(**args, methods=("quickscore",))
    result = factorised_query(**args, methods=("quickscore", "quickscore-telescoped"))
    assert result.method == "quickscore-telescoped"
    expected = brute_force(**unbatched(args, 0, 0), dtype=np.longdouble)
    assert_log_evidence(result.log_evidence[0, 0], expected["log_evidence"])
    for field in ("cause_posterior", "root_posterior"):
        assert_relative(getattr(result, field)[0, 0], expected[field], TOLERANCE, field)
    assert factorised_query(**args).method == "quickscore-telescoped"  # what the cost model picks by itself


def test_the_telescoped_finding_is_always_one_leaning_positive():
    # finding 0 leans negative (soft), finding 1 is positive and certain given a cause observed present with a
    # link of 1: the rough estimate of its P(no) is 0, and it must still be the one telescoped
    rng = np.random.default_rng(21)
    net = random_network(rng, 4, 3, n_parents=4)
    net["links"][0, 1] = [1.0, 0.0, 0.5, 0.0]
    fl = np.ones((1, 3, 2))
    fl[0, 0] = [1.0, 0.3]
    fl[0, 1] = [0.0, 1.0]
    cl = np.ones((1, 4, 2))
    cl[0, 0] = [0.0, 1.0]
    args = query_args(net, np.ones((1, 1, 1)), cl, fl, np.array([[1.0, 0.5, 0.2]]))
    result = factorised_query(**args, methods=("quickscore-telescoped", "enumeration-log"))
    assert result.method == "quickscore-telescoped"
    check_against_brute_force(args, result)


def test_many_positive_findings_with_too_many_causes_to_enumerate():
    args = stress_case(2, n=24, n_positive=12)
    result = factorised_query(**args)
    assert result.method == "subset-dp"  # enumerating 2**24 configurations does not fit the default budget
    assert np.isfinite(result.log_evidence).all()
    assert ((result.cause_posterior >= 0) & (result.cause_posterior <= 1)).all()
    # the positive findings' parents explain them: marginally, a present parent for each positive finding
    positive = np.flatnonzero(args["finding_likelihood"][0, :, 0] < 1)
    for f in positive:
        assert result.cause_posterior[0, 0, args["links"][0, f] > 0].max() > 0.05
    # the same answer with the causes in another order (another order of the programme's sums)
    order = np.random.default_rng(0).permutation(24)
    permuted = dict(args, cause_given_root=args["cause_given_root"][..., order], cause_likelihood=args["cause_likelihood"][:, order], links=args["links"][..., order])
    mx = args["mixtures"][0]
    inverse = np.argsort(order)
    permuted["mixtures"] = [Mixture(inverse[mx.parents], mx.distributions, mx.leak, mx.likelihood)]
    again = factorised_query(**permuted)
    assert_relative(again.cause_posterior[0, 0], result.cause_posterior[0, 0, order], TOLERANCE)
    assert_relative(again.finding_posterior, result.finding_posterior, TOLERANCE)
    assert_log_evidence(again.log_evidence[0, 0], result.log_evidence[0, 0])


def test_quickscore_in_longdouble_when_float64_cannot_certify():
    rng = np.random.default_rng(13)
    net = random_network(rng, 8, 10, n_parents=8, prior=(0.01, 0.05))
    fl = np.ones((1, 10, 2))
    fl[0, :6] = [0.0, 1.0]  # six unlikely positive findings
    args = query_args(net, np.ones((1, 1, 1)), np.ones((1, 8, 2)), fl, np.array([[1.0, 0.3, 0.1]]), predict=[8])
    with pytest.raises(MemoryBudgetError):
        factorised_query(**args, methods=("quickscore",))
    r = factorised_query(**args, methods=("quickscore", "quickscore-longdouble"))
    assert r.method == "quickscore-longdouble"
    check_against_brute_force(args, r)


def test_underflowing_numbers_go_to_log_space():
    args = small_case(seed=14, predict=(1,))
    # the positive finding 0 can only come from cause 0, which is present with probability 1e-300 ...
    args["leak"][0, 0] = 0.0
    args["links"][0, 0] = 0.0
    args["links"][0, 0, 0] = 0.5
    args["cause_given_root"][0, :, 0] = 1e-300
    # ... and the predicted finding 1 has a leak of 1e-250 and no parent
    args["leak"][0, 1] = 1e-250
    args["links"][0, 1] = 0.0
    r = factorised_query(**args)
    assert "enumeration-log" in r.method
    check_against_brute_force(args, r)


# ----------------------------------------------------------------------------------------------- input checks


def test_more_than_one_observed_mixture_is_refused():
    args = small_case(seed=15)
    mx = args["mixtures"][0]
    args["mixtures"] = [mx, Mixture(mx.parents[:2], mx.distributions[:, :2], mx.leak, mx.likelihood)]
    with pytest.raises(ValueError, match="at most one mixture"):
        factorised_query(**args)
    # an unobserved second mixture is a constant factor
    args["mixtures"][1] = Mixture(mx.parents[:2], mx.distributions[:, :2], mx.leak, np.ones_like(mx.likelihood))
    check_against_brute_force(args, factorised_query(**args))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.update(links=a["links"][:, :, :2]), "shapes disagree"),
        (lambda a: a.update(leak=-a["leak"]), "leak must be probabilities"),
        (lambda a: a.update(finding_likelihood=a["finding_likelihood"] * np.nan), "non-negative"),
        (lambda a: a.update(mixtures=[Mixture(a["mixtures"][0].parents, a["mixtures"][0].distributions * 0.5, a["mixtures"][0].leak, a["mixtures"][0].likelihood)]), "sum to 1"),
        (lambda a: a.update(predict=[99]), "predict indices"),
        (lambda a: a.update(cause_given_root=np.concatenate([a["cause_given_root"]] * 2), leak=np.concatenate([a["leak"]] * 3)), "inconsistent parameter-set"),
    ],
)
def test_inconsistent_inputs_are_refused(change, message):
    args = small_case(seed=16)
    change(args)
    with pytest.raises(ValueError, match=message):
        factorised_query(**args)


def test_unknown_methods_are_refused():
    with pytest.raises(ValueError, match="unknown methods"):
        factorised_query(**small_case(), methods=("magic",))


@pytest.mark.parametrize("seed", [5, 15])
def test_quickscore_bound_by_subset_size_certifies_what_the_bound_for_m_rejected(seed):
    # twelve causes, seven positive findings (one soft): the rounding bound counted with every term's own number
    # of expanded findings passes where the bound counted with all m of them (kept for predictions) does not;
    # the answer agrees with long-double enumeration
    from postfusion_bayes.engine import _noisy_or as module

    args = dict(stress_case(seed, n=12, n_positive=7), predict=[])
    with np.errstate(all="ignore"):
        problem = module._prepare(*(args[k] for k in ("root_weight", "cause_given_root", "cause_likelihood", "leak", "links", "finding_likelihood", "mixtures", "predict")))
        cell = np.zeros(1, np.intp)
        m = int(problem.m_row[0])
        block = module._make_block(problem, cell, cell, m)
        sums = module._quickscore(block, np.float64)
    nodes = 1 + module._nodes(int(block.mix.member.sum()))[0].size
    for_m = module._quickscore_gamma_columns(12, m, nodes, 1, 0, np.float64) * sums.mag
    assert ((for_m > 5e-10 * np.abs(sums.values)).any(axis=1)).all()  # rejected by the bound for m
    assert (sums.err <= for_m + block.input_error[:, None] * np.abs(sums.values) + 1e-300).all()  # never above it
    result = factorised_query(**args, methods=("quickscore",))
    assert result.method == "quickscore"
    expected = brute_force(**unbatched(args, 0, 0), dtype=np.longdouble)
    assert_log_evidence(result.log_evidence[0, 0], expected["log_evidence"])
    for field in ("cause_posterior", "root_posterior"):
        assert_relative(getattr(result, field)[0, 0], expected[field], TOLERANCE, field)


@given(problems())
def test_one_cells_group_key_is_the_general_one(args):
    from postfusion_bayes.engine import _noisy_or as module

    with np.errstate(all="ignore"):
        problem = module._prepare(*(args[k] for k in ("root_weight", "cause_given_root", "cause_likelihood", "leak", "links", "finding_likelihood", "mixtures", "predict")))
    for p, b in itertools.product(range(problem.P), range(problem.B)):
        cp, cb = np.array([p]), np.array([b])
        m_cell = problem.m_row[cb if problem.m_row.shape[0] > 1 else np.zeros(1, np.intp)]
        labels, groups = module._row_keys(problem, cp, cb, m_cell)
        general_labels, general_groups = module._row_keys_general(problem, cp, cb, m_cell)
        np.testing.assert_array_equal(labels, general_labels)
        np.testing.assert_array_equal(groups, general_groups)
