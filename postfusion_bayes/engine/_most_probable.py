"""The ``k`` most probable configurations of a layered noisy-OR network's causes, by branch and bound.

The network is the one :mod:`._noisy_or` answers: root configurations ``k``
-> ``n`` binary causes -> leaky noisy-OR findings and equal-weight mixture
findings. Enumerating the ``2**n`` configurations of the causes (as
:mod:`._enumeration` does) needs ``2**n`` rows; here only the configurations
that can still be among the ``k`` best are visited.

Weight of a configuration
    For a complete configuration ``C`` (cause ``i`` absent or present), with
    the notation of :mod:`._noisy_or`::

        w(C) = P(C, e) = c * sum_k W_k prod_i AB_ki(C_i) * prod_{f expanded} (a_f0 q_f(C) + a_f1 r_f(C)) * prod_M M(C)

    ``AB_ki(0) = (1 - p_ki) lambda_i0`` and ``AB_ki(1) = p_ki lambda_i1 prod_{f
    negative} (1 - link_fi)`` (the hard negative findings factor into the
    causes), each pair scaled so that its larger entry is 1 (the scales go into
    ``W_k``); ``q_f(C) = (1 - leak_f) prod_{i in C} (1 - link_fi)`` and ``r_f =
    1 - q_f``, computed as ``-expm1(log q_f)`` (no cancellation); ``M(C)`` is an
    observed mixture's likelihood, the mean of ``v_i = d_i . lambda`` over its
    present parents, or ``L = leak . lambda`` when none is present. Every term
    is non-negative: ``w(C)`` is computed to a few units in the last place per
    factor, and its logarithm is what the search compares.
Bound of a partial configuration
    The causes are assigned one at a time in a fixed order (causes that the
    evidence fixes first, then those the expanded findings and the mixture
    depend on, the strongest links first, then the rest). For a node with the
    first ``d`` causes assigned, every factor is bounded over its completions:
    ``AB_ki`` of an unassigned cause by 1 (its larger entry), per root
    configuration, so the root sum stays a sum over ``k``; a finding's factor,
    linear in ``q_f``, at whichever end of its range is larger (every
    unassigned parent absent, or every one present); the mixture by the larger
    of the mean of its present parents (or ``L`` when there are none) and the
    largest ``v_i`` of its unassigned parents (the mean of a union is at most
    the larger of the two parts' means). At ``d = n`` the bound is the weight.
Search
    Depth first over arrays of nodes (vectorised: no Python loop per node).
    The open nodes are kept by depth; the deepest are expanded next, all of
    that depth together, one cause at a time: at most ``chunk`` of them (the
    best bounds first, the rest wait at their depth; a narrow first dive of
    :data:`_DIVE` until ``k`` complete configurations are known), so that
    each depth holds at most two chunks and the memory is bounded
    (:func:`search_bytes`, checked against the budget). A child is kept only
    if its bound is at least the ``k``-th best complete weight found so far,
    less :data:`MARGIN` in log units, so that rounding never prunes a
    configuration tied with it. The search ends when no node is left, or
    earlier, when the ``k``-th best found is larger than all the probability
    not yet found (``P(e)``, known within 1e-9 from the factorised sums of
    :mod:`._noisy_or`, less the weights of every complete configuration
    met): then no configuration not yet found can beat it.

Sets whose weights agree within :data:`TIE` (relative) come in the order of
their configuration numbers (first cause most significant), the order in which
a stable sort of the enumeration breaks exact ties.

Only numpy is used; nothing here knows what the variables mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import MemoryBudgetError
from ._noisy_or import Mixture, factorised_query

__all__ = ["MARGIN", "TIE", "TopConfigurations", "search_bytes", "top_configurations"]

#: Nodes whose log bound is within this of the k-th best log weight are kept (rounding never prunes a tie).
MARGIN = 1e-10
#: Weights that agree within this (relative) are ties, ordered by configuration number.
TIE = 1e-12
#: Posterior mass allowed for the roundings of P(e) (known within 1e-9) and of the sums of the weights met.
_MASS_MARGIN = 2e-9
#: Nodes expanded at once, at most (the working arrays of a chunk stay cache-sized for one root configuration).
_CHUNK = 4096
#: Nodes expanded at once until a threshold is known (at least 2 k).
_DIVE = 16
_FLOAT = 8


@dataclass(frozen=True, eq=False)
class TopConfigurations:
    """What :func:`top_configurations` returns.

    Attributes
    ----------
    present : bool array, shape (k', n)
        The configurations, most probable first (``k' <= k``: fewer when fewer are possible).
    posterior : array, shape (k',)
        P(configuration | e).
    log_weight : array, shape (k',)
        log P(configuration, e), in the scale of the inputs.
    log_evidence : float
        log P(e) in the scale of the inputs (-inf when the evidence is impossible).
    expanded : int
        Nodes of the search expanded.
    stop : str
        "exhausted" (no node left that could beat the k-th) or "mass" (the
        probability not yet found is smaller than the k-th).
    """

    present: np.ndarray
    posterior: np.ndarray
    log_weight: np.ndarray
    log_evidence: float
    expanded: int
    stop: str


def search_bytes(n: int, K: int, m: int, n_mixtures: int, k: int, chunk: int = 1) -> int:
    """Peak bytes of the search for the ``k`` best with ``chunk`` nodes expanded at once.

    ``n`` causes, ``K`` root configurations, ``m`` expanded findings, ``n_mixtures`` observed mixtures. Each
    depth holds at most two chunks of nodes, an expansion makes two chunks of children and a few arrays of
    their size, and the complete configurations kept (the ``k`` best, their ties, and one expansion's) are
    copied once when new ones join them.
    """
    node = _FLOAT * (K + 1 + m + 2 * n_mixtures + n)
    kept = _FLOAT * (n + 1) * (k + 2 * chunk)
    return node * chunk * 2 * (n + 6) + 2 * kept


@dataclass(frozen=True)
class _Search:
    """The prepared numbers, in the order in which the causes are assigned."""

    order: np.ndarray  # (n,) cause assigned at each depth
    A: np.ndarray  # (n, K) scaled weight of each cause absent, per root configuration (depth order)
    B: np.ndarray  # (n, K) present
    W: np.ndarray  # (K,) scaled root weights (largest 1)
    const: float  # log of everything constant (scales, unobserved and negative findings' constants)
    E: np.ndarray  # (n, m) log(1 - link) of each cause for each expanded finding (depth order)
    Lq0: np.ndarray  # (m,) log(1 - leak)
    aN: np.ndarray  # (m,)
    aY: np.ndarray  # (m,)
    reach: np.ndarray  # (n + 1, m) what the unassigned causes can add to log q at the end where the factor is largest
    v: np.ndarray  # (n, X) each mixture's v (0 for non-parents), depth order
    member: np.ndarray  # (n, X) float 0/1
    L: np.ndarray  # (X,)
    vmax: np.ndarray  # (n + 1, X) largest v of the parents assigned at depths d and later (0 when none)


def _prepare(root_weight, cause_given_root, cause_likelihood, leak, links, finding_likelihood, mixtures) -> _Search | None:
    """Gather and scale the numbers; None when the evidence is impossible in every root configuration."""
    rw = np.asarray(root_weight, dtype=float).reshape(-1)
    cg = np.asarray(cause_given_root, dtype=float).reshape(rw.size, -1)
    n = cg.shape[1]
    cl = np.asarray(cause_likelihood, dtype=float).reshape(n, 2)
    lk = np.asarray(leak, dtype=float).reshape(-1)
    F = lk.size
    ln = np.asarray(links, dtype=float).reshape(F, n)
    fl = np.asarray(finding_likelihood, dtype=float).reshape(F, 2)
    keep = rw > 0
    if not keep.any():
        return None
    rw, cg = rw[keep], cg[keep]
    log1m_links = np.log1p(-ln)  # -inf for a link of 1
    const = 0.0
    unobserved = fl[:, 0] == fl[:, 1]
    negative = ~unobserved & (fl[:, 1] == 0)
    expanded = ~(unobserved | negative)
    const += float(np.log(fl[unobserved, 0]).sum()) + float((np.log(fl[negative, 0]) + np.log1p(-lk[negative])).sum())
    log_negative = log1m_links[negative].sum(axis=0)  # (n,)
    logA = np.log1p(-cg) + np.log(cl[:, 0])  # (K, n)
    logB = np.log(cg) + np.log(cl[:, 1]) + log_negative
    s = np.maximum(logA, logB)
    finite = np.isfinite(s)
    s0 = np.where(finite, s, 0.0)
    A = np.where(finite, np.exp(logA - s0), 0.0)
    B = np.where(finite, np.exp(logB - s0), 0.0)
    logW = np.log(rw) + np.where(finite, s, -np.inf).sum(axis=1)
    alive = logW > -np.inf
    if not alive.any() or not math.isfinite(const):
        return None
    A, B, logW = A[alive], B[alive], logW[alive]
    sigma = float(logW.max())
    W = np.exp(logW - sigma)
    const += sigma
    # the expanded findings, each factor a_no q + a_yes r scaled to a largest likelihood of 1
    aE = fl[expanded]
    top = aE.max(axis=1)
    const += float(np.log(top).sum())
    aN, aY = aE[:, 0] / top, aE[:, 1] / top
    E = log1m_links[expanded].T  # (n, m)
    Lq0 = np.log1p(-lk[expanded])
    # observed mixtures: v_i = d_i . lambda and L = leak . lambda, scaled to a largest of 1
    vs, members, Ls = [], [], []
    for mixture in mixtures:
        lam = np.asarray(mixture.likelihood, dtype=float).reshape(-1)
        if (lam == lam[0]).all():
            const += float(np.log(lam[0]))
            continue
        parents = np.asarray(mixture.parents, dtype=np.intp).reshape(-1)
        dist = np.asarray(mixture.distributions, dtype=float).reshape(parents.size, lam.size)
        mleak = np.asarray(mixture.leak, dtype=float).reshape(lam.size)
        v = np.zeros(n)
        v[parents] = dist @ lam
        L = float(mleak @ lam)
        scale = max(float(v.max(initial=0.0)), L)
        if scale <= 0:
            return None
        const += math.log(scale)
        member = np.zeros(n)
        member[parents] = 1.0
        vs.append(v / scale)
        members.append(member)
        Ls.append(L / scale)
    if not math.isfinite(const):
        return None
    X = len(vs)
    v_all = np.stack(vs, axis=1) if X else np.zeros((n, 0))
    member_all = np.stack(members, axis=1) if X else np.zeros((n, 0))
    order = _order(A, B, E, member_all)
    A, B, E, v_all, member_all = A[:, order].T.copy(), B[:, order].T.copy(), E[order], v_all[order], member_all[order]
    suffix = np.zeros((n + 1, E.shape[1]))
    suffix[:n] = np.cumsum(E[::-1], axis=0)[::-1]
    vmax = np.zeros((n + 1, X))
    if X:
        vmax[:n] = np.maximum.accumulate((v_all * member_all)[::-1], axis=0)[::-1]
    # a factor a_no q + a_yes (1 - q), linear in q, is largest with every unassigned parent present when a_yes >= a_no
    reach = np.where(aY >= aN, suffix, 0.0)
    return _Search(order, A, B, W, const, E, Lq0, aN, aY, reach, v_all, member_all, np.array(Ls), vmax)


def _order(A: np.ndarray, B: np.ndarray, E: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Return the order in which the causes are assigned.

    First the causes the evidence fixes (one state impossible in every root configuration: they do not
    branch), then those the expanded findings or the mixtures depend on, the strongest first (the sum of
    their ``-log(1 - link)``, capped, plus one per mixture), whose bounds are loose until they are assigned,
    then the rest (with one root configuration their bounds are exact).
    """
    fixed = ~(A > 0).any(axis=0) | ~(B > 0).any(axis=0)
    strength = np.minimum(-E, 50.0).sum(axis=1) + member.sum(axis=1)
    group = np.where(fixed, 0, np.where(strength > 0, 1, 2))
    return np.lexsort((-strength, group))


def _bounds(s: _Search, d: int, Z: np.ndarray) -> np.ndarray:
    """Log upper bound of the weight of every completion of nodes (rows of ``Z``) with the causes of depths below ``d`` assigned."""
    K, m, X = s.W.size, s.aN.size, s.L.size  # (run under np.errstate(all="ignore"): log 0 is -inf, a bound of 0)
    total = Z[:, K] + np.log(Z[:, :K] @ s.W) + s.const
    if m:
        x = Z[:, K + 1 : K + 1 + m] + s.reach[d]
        factor = s.aN * np.exp(x) - s.aY * np.expm1(x)
        total += np.log(factor).sum(axis=1)
    if X:
        S, c = Z[:, K + 1 + m : K + 1 + m + X], Z[:, K + 1 + m + X : K + 1 + m + 2 * X]
        best = np.maximum(np.where(c > 0, S / np.where(c > 0, c, 1.0), s.L), s.vmax[d])
        total += np.log(best).sum(axis=1)
    return total


def top_configurations(
    root_weight,
    cause_given_root,
    cause_likelihood,
    leak,
    links,
    finding_likelihood,
    mixtures: Sequence[Mixture] = (),
    *,
    k: int,
    log_evidence: float | None = None,
    max_bytes: int = 256 * 2**20,
) -> TopConfigurations:
    """Find the ``k`` most probable configurations of the causes given the evidence of one row, exactly.

    Parameters
    ----------
    root_weight, cause_given_root, cause_likelihood, leak, links, finding_likelihood, mixtures
        As for :func:`._noisy_or.factorised_query`, for one parameter set and one row (leading axes of
        size 1 or none): ``root_weight (K,)``, ``cause_given_root (K, n)``, ``cause_likelihood (n, 2)``,
        ``leak (F,)``, ``links (F, n)``, ``finding_likelihood (F, 2)``; every mixture's likelihood one row.
    k : int
        How many configurations.
    log_evidence : float, optional
        log P(e) for these inputs, when the caller has it; else computed by the factorised sums.
    max_bytes : int
        Memory budget of the search.

    Returns
    -------
    TopConfigurations

    Raises
    ------
    MemoryBudgetError
        When even a search expanding one node at a time does not fit ``max_bytes``.

    Examples
    --------
    Two causes, one finding observed "yes": the four configurations weigh 0.72 x 0.01 (none), 0.08 x 0.9901
    (the first), 0.18 x 0.901 (the second) and 0.02 x 0.99901 (both), 0.2685682 in all: the second alone has
    0.16218 / 0.2685682 = 0.6039, the first alone 0.2949.

    >>> import numpy as np
    >>> top = top_configurations(np.ones(1), np.array([[0.1, 0.2]]), np.ones((2, 2)), np.array([0.01]),
    ...                          np.array([[0.99, 0.9]]), np.array([[0.0, 1.0]]), k=2)
    >>> top.present.tolist(), top.posterior.round(4).tolist()
    ([[False, True], [True, False]], [0.6039, 0.2949])
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = _prepare(root_weight, cause_given_root, cause_likelihood, leak, links, finding_likelihood, mixtures)
    n = np.asarray(cause_given_root).shape[-1]
    if log_evidence is None:
        rw = np.asarray(root_weight, dtype=float).reshape(1, 1, -1)
        K = rw.shape[-1]
        F = np.asarray(leak).size
        lifted = [
            Mixture(
                np.asarray(m.parents),
                np.asarray(m.distributions, dtype=float).reshape((1, np.size(m.parents), np.size(m.likelihood))),
                np.asarray(m.leak, dtype=float).reshape(1, -1),
                np.asarray(m.likelihood, dtype=float).reshape(1, -1),
            )
            for m in mixtures
        ]
        result = factorised_query(rw, np.asarray(cause_given_root, dtype=float).reshape(1, K, n), np.asarray(cause_likelihood, dtype=float).reshape(1, n, 2),
                                  np.asarray(leak, dtype=float).reshape(1, F), np.asarray(links, dtype=float).reshape(1, F, n), np.asarray(finding_likelihood, dtype=float).reshape(1, F, 2),
                                  lifted, max_bytes=max_bytes)
        log_evidence = float(result.log_evidence[0, 0])
    if s is None or not log_evidence > -np.inf:
        return TopConfigurations(np.zeros((0, n), dtype=bool), np.zeros(0), np.zeros(0), -math.inf, 0, "exhausted")
    K, m, X = s.W.size, s.aN.size, s.L.size
    chunk = _CHUNK
    while chunk > 1 and search_bytes(n, K, m, X, k, chunk) > max_bytes:
        chunk //= 2
    needed = search_bytes(n, K, m, X, k, chunk)
    if needed > max_bytes:
        raise MemoryBudgetError(needed, max_bytes, f"the branch and bound over {n} causes with {K:,} root configurations")
    with np.errstate(all="ignore"):
        return _search(s, n, k, float(log_evidence), chunk)


def _search(s: _Search, n: int, k: int, log_z: float, chunk: int) -> TopConfigurations:
    K, m, X = s.W.size, s.aN.size, s.L.size
    # a node is a row: root products (scaled, row maximum 1), their log scale, the expanded findings' log q over the
    # present causes, the mixtures' sums of v and counts of present parents, and the states assigned so far (0/1)
    lq, mix, count, bit = K + 1, K + 1 + m, K + 1 + m + X, K + 1 + m + 2 * X
    root = np.zeros((1, bit + n))
    root[0, :K] = 1.0
    root[0, lq:mix] = s.Lq0
    # the open nodes by depth; the deepest are expanded first, all of one depth together (up to a chunk)
    levels: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(n)]
    levels[0].append((root, _bounds(s, 0, root)))
    deepest = 0
    best_log = np.zeros(0)  # complete configurations that may be in the top k
    best_bits = np.zeros((0, n))
    found = 0.0  # P(configuration | e) of every complete configuration met
    threshold = -np.inf  # the k-th best log weight met
    expanded = 0
    stop = "exhausted"
    while deepest >= 0:
        d = deepest
        parts = levels[d]
        levels[d] = []
        nodes, bound = parts[0] if len(parts) == 1 else (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        keep = bound >= threshold - MARGIN
        if not keep.all():
            nodes, bound = nodes[keep], bound[keep]
        if bound.size == 0:
            deepest = _deepest(levels, d)
            continue
        # the best nodes now, the rest later: few until k complete configurations give a threshold (a narrow first dive)
        width = chunk if threshold > -np.inf else min(chunk, max(_DIVE, 2 * k))
        if bound.size > width:
            part = np.argpartition(-bound, width - 1)
            later, now = part[width:], part[:width]
            levels[d].append((nodes[later], bound[later]))
            nodes, bound = nodes[now], bound[now]
        N = bound.size
        expanded += N
        children = np.concatenate([nodes, nodes])
        children[:N, :K] *= s.A[d]
        children[N:, :K] *= s.B[d]
        children[N:, lq:mix] += s.E[d]
        if X:
            children[N:, mix:count] += s.v[d]
            children[N:, count:bit] += s.member[d]
        children[N:, bit + d] = 1.0
        top = children[:, :K].max(axis=1)
        alive = top > 0
        top[~alive] = 1.0
        children[:, :K] /= top[:, None]
        children[:, K] += np.log(top)
        child_bound = _bounds(s, d + 1, children)
        child_bound[~alive] = -np.inf
        if d + 1 < n:
            keep = (child_bound > -np.inf) & (child_bound >= threshold - MARGIN)
            if keep.any():
                levels[d + 1].append((children[keep], child_bound[keep]))
                deepest = d + 1
            else:
                deepest = _deepest(levels, d)
            continue
        # complete configurations: the bound is the weight
        possible = child_bound > -np.inf
        found += float(np.exp(child_bound[possible] - log_z).sum())
        best_log = np.concatenate([best_log, child_bound[possible]])
        best_bits = np.concatenate([best_bits, children[possible, bit:]])
        if best_log.size >= k:
            threshold = float(np.partition(best_log, best_log.size - k)[best_log.size - k])
            keep = best_log >= threshold - MARGIN
            best_log, best_bits = best_log[keep], best_bits[keep]
            if math.exp(threshold - log_z) >= (1.0 - found) + _MASS_MARGIN:
                stop = "mass"
                break
        deepest = _deepest(levels, d)
    present = np.zeros((best_bits.shape[0], n), dtype=bool)
    present[:, s.order] = best_bits > 0
    ranked = _ranked(best_log, present)[:k]
    log_weight = best_log[ranked]
    return TopConfigurations(present[ranked], np.exp(log_weight - log_z), log_weight, log_z, expanded, stop)


def _deepest(levels: list[list], d: int) -> int:
    """Return the deepest depth at most ``d`` with open nodes, or -1."""
    while d >= 0 and not levels[d]:
        d -= 1
    return d


def _ranked(log_weight: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Order by weight, largest first; weights within :data:`TIE` (relative) by configuration number (first cause most significant)."""
    by_number = np.lexsort(present.T[::-1]) if present.shape[1] else np.arange(present.shape[0])
    order = by_number[np.argsort(-log_weight[by_number], kind="stable")]
    out: list[int] = []
    i = 0
    while i < order.size:  # runs of ties, each in configuration order
        j = i + 1
        while j < order.size and log_weight[order[i]] - log_weight[order[j]] <= TIE:
            j += 1
        run = order[i:j]
        out.extend(run[np.lexsort(present[run].T[::-1])] if j - i > 1 else run)
        i = j
    return np.asarray(out, dtype=np.intp)
