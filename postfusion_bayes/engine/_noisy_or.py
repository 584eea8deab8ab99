"""Exact inference for large layered noisy-OR networks, without enumerating the causes.

The networks are layered: root configurations ``k`` (context, observed or not)
-> ``n`` binary causes (each with a dense table over the roots) -> leaves that
are either leaky noisy-OR binary findings or "mixture" categorical findings
(the distribution of such a leaf is the mean of the distributions of its
present parents, or a leak distribution when none is present). Enumerating the
``2**n`` cause configurations, as :mod:`._layered` does, is hopeless beyond
about sixteen causes; the methods here cost what the *positive* evidence costs.

Notation (one row, one parameter set, one root configuration): ``p_i`` is
P(cause i | k), ``lambda_i0, lambda_i1`` the evidence likelihood of cause i
absent or present; for a binary finding ``f``, ``q_f(C) = (1 - leak_f)
prod_{i in C} (1 - link_fi)`` is P(f = no | present causes C).

Quickscore (Heckerman 1989)
    Every likelihood vector is first divided by its maximum (the logs of the
    scales are added back to log P(e), so only ratios matter). The factor of a
    finding with likelihood ``(a_no, a_yes)`` is ``a_yes + (a_no - a_yes) q_f``:
    constant when unobserved, ``q_f`` (which factorises over the causes) when
    negative; the other findings, the set ``E`` of ``m`` *expanded* ones, are
    multiplied out: ``prod_{f in E} (a_f + b_f q_f) = sum_{S subset E} alpha_S
    prod_{f in S} q_f``. Each of the ``2**m`` terms factorises over causes:
    ``sum_C ... = prod_i u_i`` with ``u_i = A_i + B_i g_Si``, ``A_i = (1 - p_i)
    lambda_i0``, ``B_i = p_i lambda_i1 prod_{f negative} (1 - link_fi)`` and
    ``g_Si = prod_{f in S} (1 - link_fi)``. P(cause c present, e) replaces
    ``u_c`` by its present part: ``B_c g_Sc prod_{j != c} u_j``, the product
    over the other causes taken from prefix and suffix cumulative products (no
    division). Findings leaning positive (``a_yes > a_no``) give negative
    ``b_f``: the terms alternate in sign and cancel.

Mixture leaf
    With ``v_i = d_i . lam`` (the parent's distribution dotted with the leaf's
    likelihood) and ``L = leak . lam``, its factor is ``L`` when no parent is
    present and ``(1/k) sum_{i in C_M} v_i`` for ``k`` present parents. As
    ``1/k = int_0^1 t**(k - 1) dt``, the second part is the integral over ``t``
    of a sum in which every present parent carries ``t`` except one, "chosen",
    that carries ``v_i``. For fixed ``t`` this is the first-order part of the
    product of dual numbers ``z_i = u_i(t) + eps w_i`` with ``u_i(t) = A_i +
    B_i g_Si t`` and ``w_i = v_i B_i g_Si``: ``D(t) = prod_i u_i(t) * R(t)``,
    ``R = sum_i w_i / u_i`` (``u_i = 0`` forces ``w_i = 0``; such terms are
    dropped), a polynomial of degree ``|M| - 1`` in ``t``, so Gauss-Legendre
    quadrature with ``ceil(|M| / 2)`` nodes on [0, 1] (positive weights) is
    exact. The empty-parent part is the same product at ``t = 0`` times ``L``.
    The marginal numerator of cause ``c`` at a node is ``B_c g_Sc prod_{j != c}
    u_j * (tau_c R + v_c A_c / u_c)`` (``tau_c = t`` for a mixture parent, 1
    otherwise), derived so that nothing is subtracted. At most one mixture may
    be observed (unobserved ones are constant factors).

Predictions
    For an unobserved binary finding ``f`` to predict (its own likelihood is
    ignored), P(e, f = yes) is computed *directly*, not as P(e) - P(e, f = no):
    per term, ``sum_C w(C) (1 - prod_{i in C} x_i)`` with ``x_i = 1 - link_fi``
    telescopes to ``sum_i B_i link_fi pre'_i suf_i`` (``pre'`` the prefix
    products of ``u'_i = A_i + B_i x_i``, ``suf`` the suffix products of
    ``u``), and the same with dual numbers for the mixture. Every quantity is
    a sum of non-negative numbers, so a tiny P(f = yes | e) keeps its
    relative precision.

Cancellation and the choice of method
    Along with every signed sum over the terms ``S`` the sum of their absolute
    values is computed (only ``alpha_S`` carries a sign); the relative error
    of an output is then at most ``gamma * sum|terms| / |sum|`` plus an
    underflow allowance, ``gamma = eps * (operations along a term)``. Every
    output (P(e), the root totals, every marginal numerator, every
    prediction) must pass ``tolerance`` (1e-11 by default, a hundredfold
    margin under 1e-9). The methods, named in ``FactorisedResult.method``:

    ``quickscore``
        the above in float64; cost about ``K * 2**m * (nodes) * n``.
    ``quickscore-longdouble``
        the same in ``np.longdouble`` (64-bit mantissa on x86) for the rows
        whose float64 bound fails but whose longdouble bound, predicted from
        the same sums, would pass.
    ``enumeration``
        cancellation-free: all ``2**n`` cause configurations, built as an
        outer product of two halves (``2**(n/2)`` each) so that every
        configuration costs a few multiply-adds per expanded finding;
        P(f = yes | C) is built as ``1 - q`` without subtracting
        (``r(C + i) = r(C) + q(C) link_i``). Every number is a sum of
        non-negative terms: relative error about ``(n + m) eps`` unless it
        underflows, which is checked.
    ``enumeration-log``
        the same in log space, for the rare rows whose numbers underflow.

    The first method tried for a row is the cheaper of ``quickscore`` and
    ``enumeration`` (with many positive findings and few causes enumeration is
    cheaper outright); rows whose bound fails move on to the cheaper of the
    longdouble rerun (when predicted to pass) and enumeration, then to the
    log-space enumeration. A method is available only if one row (one
    parameter set) of it fits ``max_bytes``; rows are processed in chunks
    that fit. If no allowed method can meet the tolerance within the budget,
    :class:`MemoryBudgetError` says so: a number is never returned silently
    inaccurate.

    Outputs that are exactly zero (an impossible root configuration, cause
    state or prediction; impossible evidence) are recognised exactly, from
    the zero pattern of the inputs, not from rounded sums.

Only numpy is used; nothing here knows what the variables mean.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["METHODS", "FactorisedResult", "MemoryBudgetError", "Mixture", "factorised_query"]

#: The methods, in the order in which they are normally tried.
METHODS = ("quickscore", "quickscore-longdouble", "enumeration", "enumeration-log")

#: Stands for log(0) inside matrix products (0 * it is 0, never NaN); sums below half of it are log(0).
_LOG_ZERO = -1e300
#: The smallest subnormal double: a bound on the absolute error of any rounding that underflows.
_UNDERFLOW_ULP = 2.0**-1074
_LONGDOUBLE_USEFUL = bool(np.finfo(np.longdouble).eps < 1e-18)


class MemoryBudgetError(ValueError):
    """Exact evaluation of a row would need more memory than ``max_bytes`` allows.

    Also raised when none of the allowed methods can meet the tolerance for a
    row within the budget. The message names the size needed and the budget.
    """


@dataclass(frozen=True)
class Mixture:
    """A categorical finding whose distribution is the mean of its present parents' distributions.

    P(leaf = s | causes C) is the mean of ``distributions[:, j, s]`` over the
    present parents ``parents[j]`` in C, or ``leak[:, s]`` when none is present.

    Attributes
    ----------
    parents : int array, shape (n_parents,)
        Indices of the parent causes (distinct).
    distributions : array, shape (P, n_parents, S)
        Distribution of the leaf for each parent.
    leak : array, shape (P, S)
        Distribution of the leaf when no parent is present.
    likelihood : array, shape (B, S)
        Evidence likelihood of each state (ones when unobserved).
    """

    parents: np.ndarray
    distributions: np.ndarray
    leak: np.ndarray
    likelihood: np.ndarray


@dataclass(frozen=True)
class FactorisedResult:
    """Posteriors and evidence of :func:`factorised_query`.

    Attributes
    ----------
    cause_posterior : array, shape (P, B, n)
        P(cause i present | evidence); NaN in impossible rows.
    root_posterior : array, shape (P, B, K)
        P(root configuration k | evidence); NaN in impossible rows.
    log_evidence : array, shape (P, B)
        Natural log of P(evidence); -inf in impossible rows.
    finding_posterior : array, shape (P, B, len(predict))
        P(finding = yes | evidence) for each predicted finding (its own
        likelihood ignored); NaN in impossible rows.
    method : str
        The methods that produced the rows, joined by ``+`` in the order of
        :data:`METHODS` (e.g. ``"quickscore"`` or ``"quickscore+enumeration"``).
    """

    cause_posterior: np.ndarray
    root_posterior: np.ndarray
    log_evidence: np.ndarray
    finding_posterior: np.ndarray
    method: str


# ----------------------------------------------------------------------------------------------- helpers


def _log(x: np.ndarray) -> np.ndarray:
    """Natural log with log(0) = -inf and no warning."""
    with np.errstate(divide="ignore"):
        return np.log(x)


def _log1m(x: np.ndarray) -> np.ndarray:
    """log(1 - x) with log(0) = -inf and no warning."""
    with np.errstate(divide="ignore"):
        return np.log1p(-x)


def _sentinel(logs: np.ndarray) -> np.ndarray:
    """Replace -inf in logs by a finite stand-in, for matrix products."""
    return np.where(logs > _LOG_ZERO, logs, _LOG_ZERO)


def _unsentinel(logs: np.ndarray) -> np.ndarray:
    return np.where(logs > _LOG_ZERO / 2, logs, -np.inf)


def _sel(lead: int, index: np.ndarray) -> np.ndarray:
    """Index into an array whose leading axis is 1 (broadcast) or full."""
    return index if lead > 1 else np.zeros_like(index)


@functools.cache
def _bits(k: int) -> np.ndarray:
    """(2**k, k) float matrix: bit j of configuration c."""
    c = np.arange(2**k)
    return ((c[:, None] >> np.arange(k)) & 1).astype(float)


@functools.cache
def _nodes(n_parents: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1], exact for polynomials of degree < n_parents."""
    x, w = np.polynomial.legendre.leggauss(max(1, math.ceil(n_parents / 2)))
    return (x + 1) / 2, w / 2


def _config_table(absent: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Products over causes ``(..., k) -> (..., 2**k)``; bit j of the index is cause j present."""
    out = np.ones(absent.shape[:-1] + (1,), dtype=absent.dtype)
    for j in range(absent.shape[-1]):
        out = np.concatenate([out * absent[..., j : j + 1], out * present[..., j : j + 1]], axis=-1)
    return out


def _noisy_or_table(link: np.ndarray, q0: np.ndarray, r0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """q(C) = q0 prod_{i in C} (1 - link_i) and r(C) = 1 - q(C) computed without subtraction.

    ``link`` has shape (..., k); ``q0``, ``r0 = 1 - q0`` shape (...); returns two (..., 2**k).
    """
    q, r = q0[..., None], r0[..., None]
    for j in range(link.shape[-1]):
        lj = link[..., j : j + 1]
        q, r = np.concatenate([q, q * (1 - lj)], axis=-1), np.concatenate([r, r + q * lj], axis=-1)
    return q, r


def _logsumexp(x: np.ndarray, axis) -> np.ndarray:
    """Compute log sum exp over ``axis``; -inf when every entry is -inf (no NaN, no warning)."""
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True)) + top
    return np.squeeze(out, axis=axis)


# ----------------------------------------------------------------------------------------------- the problem


@dataclass
class _Problem:
    """Validated inputs, with the row-wise classification of the evidence."""

    P: int
    B: int
    K: int
    n: int
    F: int
    root_weight: np.ndarray  # (Pw, Bw, K)
    log_p: np.ndarray  # (Pc, K, n) log P(present | k)
    log_q: np.ndarray  # (Pc, K, n) log P(absent | k)
    log_lam: np.ndarray  # (Bl, n, 2) log of the normalised cause likelihoods
    a: np.ndarray  # (Bf, F, 2) normalised finding likelihoods (no, yes)
    negative: np.ndarray  # (Bf, F) bool
    expanded: np.ndarray  # (Bf, F) bool
    m_row: np.ndarray  # (Bf,) number of expanded findings
    links: np.ndarray  # (Pk, F, n)
    leak: np.ndarray  # (Pl, F)
    log1m_links: np.ndarray  # (Pk, F, n) log(1 - link), sentinel for log 0
    log1m_leak: np.ndarray  # (Pl, F)
    row_log_scale: np.ndarray  # (B,)
    row_dead: np.ndarray  # (B,) a likelihood vector is all zeros
    predict: np.ndarray  # (npr,)
    # the observed mixture, if any
    member: np.ndarray | None  # (n,) bool
    mix_parents: np.ndarray | None
    mix_dist: np.ndarray | None  # (Pm, n_parents, S)
    mix_leak: np.ndarray | None  # (Pm, S)
    mix_lam: np.ndarray | None  # (Bm, S) normalised
    const_mix: list  # [(leak (Pm, S), lam (Bm, S))] mixtures with no parents: constant factors


def _lead_sizes(name: str, sizes: Sequence[int]) -> int:
    full = {s for s in sizes if s != 1}
    if len(full) > 1:
        raise ValueError(f"inconsistent {name} sizes {sorted(full)} (each must be 1 or the same)")
    return full.pop() if full else 1


def _prepare(root_weight, cause_given_root, cause_likelihood, leak, links, finding_likelihood, mixtures, predict) -> _Problem:
    rw = np.asarray(root_weight, dtype=float)
    cg = np.asarray(cause_given_root, dtype=float)
    cl = np.asarray(cause_likelihood, dtype=float)
    lk = np.asarray(leak, dtype=float)
    ln = np.asarray(links, dtype=float)
    fl = np.array(finding_likelihood, dtype=float)
    if rw.ndim != 3 or cg.ndim != 3 or cl.ndim != 3 or lk.ndim != 2 or ln.ndim != 3 or fl.ndim != 3:
        raise ValueError("expected root_weight (P, B, K), cause_given_root (P, K, n), cause_likelihood (B, n, 2), leak (P, F), links (P, F, n), finding_likelihood (B, F, 2)")
    K, n = cg.shape[1], cg.shape[2]
    F = ln.shape[1]
    if rw.shape[2] != K or K < 1:
        raise ValueError(f"root_weight has {rw.shape[2]} root configurations, cause_given_root {K}")
    if cl.shape[1:] != (n, 2) or ln.shape[2] != n or lk.shape[1] != F or fl.shape[1:] != (F, 2):
        raise ValueError(f"shapes disagree on n = {n} causes or F = {F} findings: cause_likelihood {cl.shape}, links {ln.shape}, leak {lk.shape}, finding_likelihood {fl.shape}")
    mixtures = list(mixtures)
    P = _lead_sizes("parameter-set (P)", [rw.shape[0], cg.shape[0], lk.shape[0], ln.shape[0]] + [np.shape(mx.distributions)[0] for mx in mixtures] + [np.shape(mx.leak)[0] for mx in mixtures])
    B = _lead_sizes("row (B)", [rw.shape[1], cl.shape[0], fl.shape[0]] + [np.shape(mx.likelihood)[0] for mx in mixtures])
    for name, arr in (("root_weight", rw), ("cause_likelihood", cl), ("finding_likelihood", fl)):
        if not (arr >= 0).all():
            raise ValueError(f"{name} must be non-negative (and not NaN)")
    for name, arr in (("cause_given_root", cg), ("leak", lk), ("links", ln)):
        if not ((arr >= 0) & (arr <= 1)).all():
            raise ValueError(f"{name} must be probabilities in [0, 1]")
    predict = np.asarray(predict, dtype=np.intp).reshape(-1)
    if predict.size and (predict.min() < 0 or predict.max() >= F):
        raise ValueError(f"predict indices must be in [0, {F})")
    # a predicted finding's own likelihood is ignored
    fl[:, predict, :] = 1.0

    row_log_scale = np.zeros(B)
    row_dead = np.zeros(B, dtype=bool)

    def normalise(lam: np.ndarray) -> np.ndarray:
        """Divide likelihood vectors (last axis) by their maxima; add the log scales per row."""
        top = lam.max(axis=-1, keepdims=True)
        dead = top[..., 0] == 0
        safe = np.where(dead[..., None], 1.0, top)
        scale = np.log(safe[..., 0]).reshape(lam.shape[0], -1).sum(axis=1)
        row_log_scale[...] += scale  # broadcasts when the array has one row
        row_dead[...] |= dead.reshape(lam.shape[0], -1).any(axis=1)
        return lam / safe

    lam = normalise(cl)
    a = normalise(fl)
    unobserved = a[..., 0] == a[..., 1]
    negative = (a[..., 1] == 0) & ~unobserved
    expanded = ~unobserved & ~negative
    member = mix_parents = mix_dist = mix_leak = mix_lam = None
    const_mix = []
    for index, mx in enumerate(mixtures):
        parents = np.asarray(mx.parents, dtype=np.intp).reshape(-1)
        dist = np.asarray(mx.distributions, dtype=float)
        mleak = np.asarray(mx.leak, dtype=float)
        mlam = np.asarray(mx.likelihood, dtype=float)
        if dist.ndim != 3 or dist.shape[1] != parents.size or mleak.ndim != 2 or mlam.ndim != 2 or not (dist.shape[2] == mleak.shape[1] == mlam.shape[1]):
            raise ValueError(f"mixture {index}: expected distributions (P, {parents.size}, S), leak (P, S), likelihood (B, S)")
        if parents.size and (parents.min() < 0 or parents.max() >= n or np.unique(parents).size != parents.size):
            raise ValueError(f"mixture {index}: parents must be distinct cause indices in [0, {n})")
        if not (mlam >= 0).all() or not ((dist >= 0).all() and (mleak >= 0).all()):
            raise ValueError(f"mixture {index}: probabilities and likelihoods must be non-negative")
        mlam = normalise(mlam)
        if (mlam == 1).all():
            continue  # unobserved: a constant factor (1 after normalising)
        if parents.size == 0:
            const_mix.append((mleak, mlam))
            continue
        if member is not None:
            raise ValueError("at most one mixture finding may be observed (the others must have constant likelihoods)")
        member = np.zeros(n, dtype=bool)
        member[parents] = True
        mix_parents, mix_dist, mix_leak, mix_lam = parents, dist, mleak, mlam
    with np.errstate(divide="ignore"):
        log_lam = np.log(lam)
    return _Problem(
        P=P,
        B=B,
        K=K,
        n=n,
        F=F,
        root_weight=rw,
        log_p=_log(cg),
        log_q=_log1m(cg),
        log_lam=log_lam,
        a=a,
        negative=negative,
        expanded=expanded,
        m_row=expanded.sum(axis=1),
        links=ln,
        leak=lk,
        log1m_links=_sentinel(_log1m(ln)),
        log1m_leak=_sentinel(_log1m(lk)),
        row_log_scale=row_log_scale,
        row_dead=row_dead,
        predict=predict,
        member=member,
        mix_parents=mix_parents,
        mix_dist=mix_dist,
        mix_leak=mix_leak,
        mix_lam=mix_lam,
        const_mix=const_mix,
    )


# ----------------------------------------------------------------------------------------------- blocks of cells


@dataclass
class _Block:
    """A chunk of cells (parameter set p, row b) with everything gathered per cell.

    ``m`` expanded findings per cell (the same number for every cell), ``K`` the
    root configurations kept (``kcol`` maps them back).
    """

    logW: np.ndarray  # (C, K) log root weight
    logA: np.ndarray  # (C, K, n) log weight of cause absent
    logB: np.ndarray  # (C, K, n) log weight of cause present (negative findings included)
    kcol: np.ndarray  # (C, K) original root configuration of each column
    LE: np.ndarray  # (C, m, n) links of the expanded findings
    leakE: np.ndarray  # (C, m)
    aN: np.ndarray  # (C, m) normalised likelihood of "no"
    aY: np.ndarray  # (C, m) normalised likelihood of "yes"
    LP: np.ndarray  # (C, npr, n) links of the predicted findings
    leakP: np.ndarray  # (C, npr)
    v: np.ndarray | None  # (C, n) mixture: parent distribution . likelihood (0 for non-parents), scaled
    L: np.ndarray | None  # (C,) mixture: leak . likelihood, scaled
    member: np.ndarray | None  # (n,) bool
    log_const: np.ndarray  # (C,) log of the constant factors (negative findings' leaks, scales)


def _active_roots(prob: _Problem, pi: np.ndarray, bi: np.ndarray) -> np.ndarray:
    """(C, K) whether each root configuration has positive weight in each cell."""
    return prob.root_weight[_sel(prob.root_weight.shape[0], pi), _sel(prob.root_weight.shape[1], bi)] > 0


def _root_columns(active: np.ndarray) -> np.ndarray:
    """(C, K') root configurations to keep: one per cell when each cell has at most one, else the union."""
    if (active.sum(axis=1) <= 1).all():
        return active.argmax(axis=1)[:, None]
    keep = np.flatnonzero(active.any(axis=0))
    if keep.size == 0:
        keep = np.array([0])
    return np.broadcast_to(keep, (active.shape[0], keep.size))


def _make_block(prob: _Problem, pi: np.ndarray, bi: np.ndarray, m: int) -> _Block:
    C, n = pi.size, prob.n
    kcol = _root_columns(_active_roots(prob, pi, bi))
    rw = prob.root_weight[_sel(prob.root_weight.shape[0], pi)[:, None], _sel(prob.root_weight.shape[1], bi)[:, None], kcol]
    pc = _sel(prob.log_p.shape[0], pi)[:, None]
    log_p = prob.log_p[pc, kcol]  # (C, K, n)
    log_q = prob.log_q[pc, kcol]
    lam = prob.log_lam[_sel(prob.log_lam.shape[0], bi)]  # (C, n, 2)
    fb = _sel(prob.a.shape[0], bi)
    neg = prob.negative[fb].astype(float)  # (C, F)
    pk = _sel(prob.links.shape[0], pi)
    pl = _sel(prob.leak.shape[0], pi)
    if prob.links.shape[0] == 1:
        log_gneg = neg @ prob.log1m_links[0]
    else:
        log_gneg = np.einsum("cf,cfn->cn", neg, prob.log1m_links[pk])
    if prob.leak.shape[0] == 1:
        log_const = neg @ prob.log1m_leak[0]
    else:
        log_const = np.einsum("cf,cf->c", neg, prob.log1m_leak[pl])
    log_gneg = _unsentinel(log_gneg)
    log_const = _unsentinel(log_const)
    logA = log_q + lam[:, None, :, 0]
    logB = log_p + lam[:, None, :, 1] + log_gneg[:, None, :]
    if m:
        eidx = np.nonzero(prob.expanded[fb])[1].reshape(C, m)
    else:
        eidx = np.zeros((C, 0), dtype=np.intp)
    LE = prob.links[pk[:, None], eidx]  # (C, m, n)
    leakE = prob.leak[pl[:, None], eidx]
    aE = prob.a[fb[:, None], eidx]  # (C, m, 2)
    LP = prob.links[pk][:, prob.predict] if prob.predict.size else np.zeros((C, 0, n))
    leakP = prob.leak[pl][:, prob.predict] if prob.predict.size else np.zeros((C, 0))
    v = L = None
    for mleak, mlam in prob.const_mix:
        const = np.einsum("cs,cs->c", mleak[_sel(mleak.shape[0], pi)], mlam[_sel(mlam.shape[0], bi)])
        log_const = log_const + _log(const)
    if prob.member is not None:
        dist = prob.mix_dist[_sel(prob.mix_dist.shape[0], pi)]  # (C, n_parents, S)
        mlam = prob.mix_lam[_sel(prob.mix_lam.shape[0], bi)]  # (C, S)
        vp = np.einsum("cjs,cs->cj", dist, mlam)
        L = np.einsum("cs,cs->c", prob.mix_leak[_sel(prob.mix_leak.shape[0], pi)], mlam)
        top = np.maximum(vp.max(axis=1), L)
        top = np.where(top > 0, top, 1.0)
        log_const = log_const + np.log(top)
        v = np.zeros((C, n))
        v[:, prob.mix_parents] = vp / top[:, None]
        L = L / top
    return _Block(
        logW=_log(rw),
        logA=logA,
        logB=logB,
        kcol=kcol,
        LE=LE,
        leakE=leakE,
        aN=aE[..., 0],
        aY=aE[..., 1],
        LP=LP,
        leakP=leakP,
        v=v,
        L=L,
        member=prob.member,
        log_const=log_const,
    )


def _scaled(d: _Block, dtype=np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Linear weights scaled so that every cause's larger weight is 1 and the largest root weight is 1.

    Returns ``W (C, K)``, ``A (C, K, n)``, ``B (C, K, n)`` (in ``dtype``) and the log scale ``sigma (C,)``.
    """
    s = np.maximum(d.logA, d.logB)
    s = np.where(np.isfinite(s), s, 0.0)
    with np.errstate(invalid="ignore"):
        A = np.exp((d.logA - s).astype(dtype))
        B = np.exp((d.logB - s).astype(dtype))
        logW = d.logW + s.sum(axis=-1)
    sigma = logW.max(axis=1)
    sigma = np.where(np.isfinite(sigma), sigma, 0.0)
    W = np.exp((logW - sigma[:, None]).astype(dtype))
    return W, A, B, sigma


# ----------------------------------------------------------------------------------------------- results of a method


@dataclass
class _Sums:
    """Unnormalised outputs of a method for a block, relative to ``exp(sigma)``.

    ``total`` P(e); ``roots`` W_k P(e | k)-like totals per kept root column;
    ``num`` P(cause present, e); ``pred`` P(e, finding yes). ``err_*`` bound
    their absolute errors; for Quickscore ``mag_*`` are the sums of absolute
    values of the terms (so ``err = gamma * mag + delta``).
    """

    total: np.ndarray
    roots: np.ndarray
    num: np.ndarray
    pred: np.ndarray
    sigma: np.ndarray
    err_total: np.ndarray
    err_roots: np.ndarray
    err_num: np.ndarray
    err_pred: np.ndarray
    mag_total: np.ndarray | None = None
    mag_roots: np.ndarray | None = None
    mag_num: np.ndarray | None = None
    mag_pred: np.ndarray | None = None


# ----------------------------------------------------------------------------------------------- Quickscore


def _quickscore_gamma(n: int, m: int, terms: int, dtype) -> float:
    """Relative rounding error allowed per unit of the sum of absolute values of the terms."""
    return float(np.finfo(dtype).eps) * (3 * n + 3 * m + 2 * math.log2(max(terms, 2)) + 40)


def _quickscore_bytes(n: int, m: int, K: int, nodes: int, npr: int, dtype) -> int:
    item = np.dtype(dtype).itemsize
    return item * K * 2**m * nodes * n * (10 + 9 * npr) + item * 2**m * n * 4 + 4096


def _quickscore(d: _Block, dtype) -> _Sums:
    W, A, B0, sigma = _scaled(d, dtype)
    C, K, n = A.shape
    m = d.LE.shape[1]
    npr = d.LP.shape[1]
    T = 2**m
    one = dtype(1)
    aY = d.aY.astype(dtype)
    b = d.aN.astype(dtype) - aY  # in the working precision: its rounding is amplified by the cancellation
    keep = one - d.leakE.astype(dtype)
    x = one - d.LE.astype(dtype)
    # coefficients alpha_S prod_{f in S} (1 - leak_f) and their absolute values; g_S
    coef = np.ones((C, 1), dtype)
    mag = np.ones((C, 1), dtype)
    G = np.ones((C, 1, n), dtype)
    for j in range(m):
        bj = (b[:, j] * keep[:, j])[:, None]
        yj = aY[:, j : j + 1]
        coef = np.concatenate([coef * yj, coef * bj], axis=1)
        mag = np.concatenate([mag * yj, mag * np.abs(bj)], axis=1)
        G = np.concatenate([G, G * x[:, j : j + 1, :]], axis=1)
    Bk = B0[:, :, None, :] * G[:, None, :, :]  # (C, K, T, n)
    mixture = d.member is not None
    if mixture:
        t, omega_t = _nodes(int(d.member.sum()))
        tnodes = np.concatenate([[0.0], t]).astype(dtype)
        omega = np.concatenate([[0.0], omega_t]).astype(dtype)  # (Q1,)
        tau = np.where(d.member[None, :], tnodes[:, None], one).astype(dtype)  # (Q1, n)
        Bt = Bk[:, :, :, None, :] * tau  # (C, K, T, Q1, n)
    else:
        Bt = Bk[:, :, :, None, :]
    u = Bt + A[:, :, None, None, :]
    pre = np.empty_like(u)
    pre[..., 0] = one
    np.cumprod(u[..., :-1], axis=-1, out=pre[..., 1:])
    suf = np.empty_like(u)
    suf[..., -1] = one
    np.cumprod(u[..., :0:-1], axis=-1, out=suf[..., -2::-1])
    prod = pre[..., -1] * u[..., -1]  # (C, K, T, Q1)
    presuf = pre * suf
    if mixture:
        v = d.v.astype(dtype)
        L = d.L.astype(dtype)
        positive = u > 0
        w = Bk * v[:, None, None, :]  # (C, K, T, n)
        r = np.zeros_like(u)  # node 0 (t = 0: no parent present) has no chosen parent, so r = 0 there
        np.divide(w[:, :, :, None, :], u[:, :, :, 1:], out=r[:, :, :, 1:], where=positive[:, :, :, 1:])
        R = r.sum(axis=-1)  # (C, K, T, Q1)
        h = R * omega
        h[..., 0] += L[:, None, None]
        node = prod * h
        y = np.zeros_like(u)
        np.divide((A * v[:, None, :])[:, :, None, None, :], u, out=y, where=positive)
        y *= omega[:, None]
        y += tau * h[..., None]
        y *= presuf
        nums = y.sum(axis=3) * Bk  # (C, K, T, n)
    else:
        node = prod
        nums = presuf[..., 0, :] * Bk
    tot = node.sum(axis=-1)  # (C, K, T)
    cm = np.stack([coef, mag], axis=1)  # (C, 2, T)
    roots = np.matmul(tot, cm.transpose(0, 2, 1)) * W[:, :, None]  # (C, K, 2)
    total = roots.sum(axis=1)  # (C, 2)
    cmW = (cm[:, :, None, :] * W[:, None, :, None]).reshape(C, 2, K * T)
    num = np.matmul(cmW, nums.reshape(C, K * T, n))  # (C, 2, n)
    if npr:
        lp = d.LP.astype(dtype)  # (C, npr, n)
        xp = one - lp
        leakp = d.leakP.astype(dtype)
        up = A[:, :, None, None, None, :] + Bt[:, :, None] * xp[:, None, :, None, None, :]  # (C, K, npr, T, Q1, n)
        prep = np.empty_like(up)
        prep[..., 0] = one
        np.cumprod(up[..., :-1], axis=-1, out=prep[..., 1:])
        core = prep * suf[:, :, None]
        core *= (Bk[:, :, None, :, None, :] * lp[:, None, :, None, None, :])
        if mixture:
            # bracket = tau (rho + omega (R'_{<i} + R_{>i})) + omega v
            rp = np.zeros_like(up)
            np.divide((w[:, :, None] * xp[:, None, :, None, :])[:, :, :, :, None, :], up[..., 1:, :], out=rp[..., 1:, :], where=up[..., 1:, :] > 0)
            lt = np.empty_like(rp)
            lt[..., 0] = 0
            np.cumsum(rp[..., :-1], axis=-1, out=lt[..., 1:])
            gt = np.empty_like(r)
            gt[..., -1] = 0
            np.cumsum(r[..., :0:-1], axis=-1, out=gt[..., -2::-1])
            lt += gt[:, :, None]
            lt *= omega[:, None]
            rho = np.zeros((C, tnodes.size), dtype)
            rho[:, 0] = L
            lt += rho[:, None, None, None, :, None]
            lt *= tau
            lt += omega[:, None] * v[:, None, None, None, None, :]
            core *= lt
        X = core.sum(axis=(-2, -1))  # (C, K, npr, T)
        Pt = leakp[:, None, :, None] * tot[:, :, None, :] + (one - leakp)[:, None, :, None] * X
        Pt = Pt.transpose(0, 2, 1, 3).reshape(C, npr, K * T)
        pred = np.matmul(Pt, cmW.transpose(0, 2, 1))  # (C, npr, 2)
        pred = pred.transpose(0, 2, 1)  # (C, 2, npr)
    else:
        pred = np.zeros((C, 2, 0), dtype)
    nodes_count = u.shape[3]
    gamma = _quickscore_gamma(n, m, T * nodes_count * K, dtype)
    # underflow: every rounding below the normal range errs by at most _UNDERFLOW_ULP, magnified at most by the
    # later factors (each below 2, and 1 / t_min for R); also covers inputs (v, L) that were subnormal doubles
    t_min = float(_nodes(int(d.member.sum()))[0][0]) if mixture else 1.0
    delta = T * nodes_count * K * (n + m + 10) * (n + 2) * 2.0**n / t_min * _UNDERFLOW_ULP

    def split(pair):
        signed = pair[:, 0].astype(float)
        magnitude = pair[:, 1].astype(float)
        return signed, magnitude, gamma * magnitude + delta

    total_s, total_m, total_e = split(total)
    roots_s, roots_m, roots_e = roots[..., 0].astype(float), roots[..., 1].astype(float), gamma * roots[..., 1].astype(float) + delta
    num_s, num_m, num_e = split(num)
    pred_s, pred_m, pred_e = split(pred)
    return _Sums(total_s, roots_s, num_s, pred_s, sigma, total_e, roots_e, num_e, pred_e, total_m, roots_m, num_m, pred_m)


# ----------------------------------------------------------------------------------------------- enumeration


def _enumeration_bytes(n: int, m: int, K: int, npr: int) -> int:
    half = 2 ** ((n + 1) // 2)
    return 8 * (3 * 2**n + half * (4 * K + 6 * (m + npr) + K * (1 + npr) * 3 + 8)) + 4096


def _enumerate(d: _Block) -> _Sums:
    W, A, B, sigma = _scaled(d)
    C, K, n = A.shape
    m = d.LE.shape[1]
    npr = d.LP.shape[1]
    nlo = (n + 1) // 2
    lo, hi = slice(0, nlo), slice(nlo, n)
    w_lo = _config_table(A[..., lo], B[..., lo])  # (C, K, Lo)
    w_hi = _config_table(A[..., hi], B[..., hi])  # (C, K, Hi)
    link = np.concatenate([d.LE, d.LP], axis=1)  # (C, m + npr, n)
    leak = np.concatenate([d.leakE, d.leakP], axis=1)
    q_lo, r_lo = _noisy_or_table(link[..., lo], 1 - leak, leak)  # (C, m + npr, Lo)
    q_hi, r_hi = _noisy_or_table(link[..., hi], np.ones_like(leak), np.zeros_like(leak))
    Lo, Hi = w_lo.shape[-1], w_hi.shape[-1]
    lik = np.ones((C, Lo, Hi))
    tmp = np.empty_like(lik)
    if m:
        alpha = d.aY[..., None] * r_lo[:, :m]  # (C, m, Lo)
        beta = d.aY[..., None] * r_hi[:, :m] + d.aN[..., None] * q_hi[:, :m]  # (C, m, Hi)
        for j in range(m):
            np.multiply(q_lo[:, j, :, None], beta[:, j, None, :], out=tmp)
            tmp += alpha[:, j, :, None]
            lik *= tmp
    if d.member is not None:
        s_lo = _sum_table(d.v[:, lo])
        s_hi = _sum_table(d.v[:, hi])
        count = _bits(nlo) @ d.member[lo].astype(float)
        count = count[:, None] + (_bits(n - nlo) @ d.member[hi].astype(float))[None, :]
        inverse = np.divide(1.0, count, out=np.zeros_like(count), where=count > 0)
        np.add(s_lo[:, :, None], s_hi[:, None, :], out=tmp)
        tmp *= inverse
        empty_lo = np.flatnonzero(_bits(nlo) @ d.member[lo].astype(float) == 0)
        empty_hi = np.flatnonzero(_bits(n - nlo) @ d.member[hi].astype(float) == 0)
        tmp[:, empty_lo[:, None], empty_hi[None, :]] = d.L[:, None, None]
        lik *= tmp
    # sums: Y[c, lo, k] = sum_hi lik w_hi_k ; V[c, lo, k, f] = sum_hi lik w_hi_k r_hi_f
    cols = [w_hi]
    if npr:
        cols.append((w_hi[:, :, None, :] * r_hi[:, None, m:, :]).reshape(C, K * npr, Hi))
    Y = np.matmul(lik, np.concatenate(cols, axis=1).transpose(0, 2, 1))  # (C, Lo, K (1 + npr))
    Yk = Y[..., :K]
    Wlo = W[:, :, None] * w_lo  # (C, K, Lo)
    roots = np.einsum("ckl,clk->ck", Wlo, Yk)
    total = roots.sum(axis=1)
    lo_weight = np.einsum("ckl,clk->cl", Wlo, Yk)
    Z = np.matmul(Wlo, lik)  # (C, K, Hi)
    hi_weight = (Z * w_hi).sum(axis=1)
    num = np.concatenate([lo_weight @ _bits(nlo), hi_weight @ _bits(n - nlo)], axis=1)
    if npr:
        V = Y[..., K:].reshape(C, Lo, K, npr)
        pred = np.einsum("ckl,cfl,clk->cf", Wlo, r_lo[:, m:], Yk) + np.einsum("ckl,cfl,clkf->cf", Wlo, q_lo[:, m:], V)
    else:
        pred = np.zeros((C, 0))
    # every summand is at most 1; roundings that underflow lose at most this much in all
    floor = 2.0**n * K * (n + m + npr + 10) * _UNDERFLOW_ULP

    def err(x):
        return np.full(x.shape, floor) + x * (n + m + 20) * np.finfo(float).eps

    return _Sums(total, roots, num, pred, sigma, err(total), err(roots), err(num), err(pred))


def _sum_table(v: np.ndarray) -> np.ndarray:
    """(C, k) -> (C, 2**k): sum of v over the present causes of each configuration."""
    out = np.zeros(v.shape[:-1] + (1,))
    for j in range(v.shape[-1]):
        out = np.concatenate([out, out + v[..., j : j + 1]], axis=-1)
    return out


def _enumeration_log_bytes(n: int, m: int, K: int, npr: int) -> int:
    return 8 * 2**n * (3 * K + 3 * (m + npr) + 8) + 4096


def _enumerate_log(d: _Block) -> _Sums:
    C, K, n = d.logA.shape
    m = d.LE.shape[1]
    npr = d.LP.shape[1]
    N = 2**n
    logw = np.zeros((C, K, 1))
    for j in range(n):
        logw = np.concatenate([logw + d.logA[..., j : j + 1], logw + d.logB[..., j : j + 1]], axis=-1)
    link = np.concatenate([d.LE, d.LP], axis=1)
    leak = np.concatenate([d.leakE, d.leakP], axis=1)
    logq = _log1m(leak)[..., None]
    log_x = _log1m(link)  # (C, m + npr, n)
    for j in range(n):
        logq = np.concatenate([logq, logq + log_x[..., j : j + 1]], axis=-1)
    with np.errstate(divide="ignore"):
        logr = np.log(-np.expm1(logq))
    loglik = np.zeros((C, N))
    for j in range(m):
        loglik += np.logaddexp(_log(d.aY[:, j, None]) + logr[:, j], _log(d.aN[:, j, None]) + logq[:, j])
    if d.member is not None:
        logs = np.full((C, 1), -np.inf)
        logv = _log(d.v)
        count = _bits(n) @ d.member.astype(float)
        for j in range(n):
            logs = np.concatenate([logs, np.logaddexp(logs, logv[:, j : j + 1]) if d.member[j] else logs], axis=-1)
        with np.errstate(divide="ignore"):
            logmix = np.where(count > 0, logs - np.log(np.maximum(count, 1)), _log(d.L)[:, None])
        loglik += logmix
    logfull = d.logW[..., None] + logw + loglik[:, None, :]  # (C, K, N)
    logroots = _logsumexp(logfull, axis=-1)
    logtotal = _logsumexp(logroots, axis=-1)
    lognum = np.empty((C, n))
    for i in range(n):
        view = logfull.reshape(C, K, 2 ** (n - 1 - i), 2, 2**i)[:, :, :, 1, :]
        lognum[:, i] = _logsumexp(view.reshape(C, -1), axis=-1)
    logpred = np.empty((C, npr))
    for f in range(npr):
        logpred[:, f] = _logsumexp((logfull + logr[:, None, m + f, :]).reshape(C, -1), axis=-1)
    shift = np.where(np.isfinite(logtotal), logtotal, 0.0)

    def rel(x):
        return np.exp(x - shift.reshape((C,) + (1,) * (x.ndim - 1)))

    zero = np.zeros
    return _Sums(rel(logtotal), rel(logroots), rel(lognum), rel(logpred), shift, zero(C), zero((C, K)), zero((C, n)), zero((C, npr)))


# ----------------------------------------------------------------------------------------------- exact zeros


def _feasible(d: _Block) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Which outputs are exactly non-zero, from the zero pattern of the inputs alone.

    Returns ``total (C,)``, ``roots (C, K)``, ``num (C, n)``, ``pred (C, npr)``:
    whether P(e), W_k P(e | k), P(cause present, e) and P(e, finding yes) are
    positive. Feasibility is monotone in the present causes (positive findings
    need one present parent with a positive link, or a positive leak), so
    setting every cause that may be present present decides it; the mixture
    adds the alternative "no parent present" (which needs a positive leak).
    """
    C, K, n = d.logA.shape
    npr = d.LP.shape[1]
    canA = np.isfinite(d.logA)  # (C, K, n)
    canB = np.isfinite(d.logB)
    posW = np.isfinite(d.logW) & np.isfinite(d.log_const)[:, None]  # (C, K)
    pure = d.aN == 0  # (C, m) findings observed "yes" with certainty
    # clamps: 0 = none, 1..n = cause c present, n+1.. = predicted finding yes
    X = 1 + n + npr
    allowA = np.broadcast_to(canA[:, :, None, :], (C, K, X, n)).copy()
    allowA[:, :, 1 : 1 + n, :] &= ~np.eye(n, dtype=bool)
    allowB = np.broadcast_to(canB[:, :, None, :], (C, K, X, n))
    each = (allowA | allowB).all(axis=-1)  # (C, K, X)

    def satisfied(present: np.ndarray) -> np.ndarray:
        """(C, K, X) every pure-positive finding (and the clamped prediction) can be on."""
        pres = present.astype(float)
        ok = np.ones(present.shape[:-1], dtype=bool)
        if pure.any():
            reach = np.einsum("ckxn,cfn->ckxf", pres, (d.LE > 0).astype(float)) > 0
            need = pure[:, None, None, :] & ~(d.leakE > 0)[:, None, None, :]
            ok &= ~(need & ~reach).any(axis=-1)
        if npr:
            reach = np.einsum("ckfn,cfn->ckf", pres[:, :, 1 + n :, :], (d.LP > 0).astype(float)) > 0
            ok[:, :, 1 + n :] &= reach | (d.leakP > 0)[:, None, :]
        return ok

    present = allowB
    if d.member is None:
        feasible = each & satisfied(present)
    else:
        vpos = (d.v > 0) & d.member[None, :]
        case1 = satisfied(present) & (present & vpos[:, None, None, :]).any(axis=-1)
        present2 = allowB & ~d.member
        absent_ok = (allowA | ~d.member).all(axis=-1)
        case2 = satisfied(present2) & absent_ok & (d.L > 0)[:, None, None]
        feasible = each & (case1 | case2)
    feasible &= posW[:, :, None]
    roots = feasible[:, :, 0]
    return roots.any(axis=1), roots, feasible[:, :, 1 : 1 + n].any(axis=1), feasible[:, :, 1 + n :].any(axis=1)


# ----------------------------------------------------------------------------------------------- driver


def _judge(d: _Block, s: _Sums, tol: float, ld_gamma_ratio: float | None):
    """Accept or reject each cell's outputs; replace exact zeros; return values for the accepted cells."""
    total, roots, num, pred = s.total.copy(), s.roots.copy(), s.num.copy(), s.pred.copy()
    with np.errstate(invalid="ignore"):
        ok_total = s.err_total <= tol * np.abs(total)
        ok_roots = s.err_roots <= tol * np.abs(roots)
        ok_num = s.err_num <= tol * np.abs(num)
        ok_pred = s.err_pred <= tol * np.abs(pred)
    # structural zeros: a root configuration of weight 0; a cause that cannot be present
    zero_root = ~np.isfinite(d.logW)
    zero_num = (~np.isfinite(d.logB) | zero_root[:, :, None]).all(axis=1)
    roots[zero_root] = 0.0
    ok_roots |= zero_root
    num[zero_num] = 0.0
    ok_num |= zero_num
    bad = ~(ok_total & ok_roots.all(axis=1) & ok_num.all(axis=1) & ok_pred.all(axis=1))
    impossible = np.zeros(total.shape, dtype=bool)
    if bad.any():
        rows = np.flatnonzero(bad)
        sub = _subblock(d, rows)
        f_total, f_roots, f_num, f_pred = _feasible(sub)
        impossible[rows] = ~f_total
        r_roots = ~f_roots & ~ok_roots[rows]
        r_num = ~f_num & ~ok_num[rows]
        r_pred = ~f_pred & ~ok_pred[rows]
        roots[rows] = np.where(r_roots, 0.0, roots[rows])
        num[rows] = np.where(r_num, 0.0, num[rows])
        pred[rows] = np.where(r_pred, 0.0, pred[rows])
        ok_roots[rows] |= r_roots
        ok_num[rows] |= r_num
        ok_pred[rows] |= r_pred
        ok_total[rows] |= ~f_total
        bad = ~(ok_total & ok_roots.all(axis=1) & ok_num.all(axis=1) & ok_pred.all(axis=1)) & ~impossible
    ld_hope = np.zeros(bad.shape, dtype=bool)
    if ld_gamma_ratio is not None and bad.any():
        # the longdouble bound, predicted: gamma_ld * magnitude <= tol * (a lower bound on the true value)
        def hopeful(x, err, mag, ok):
            lower = np.abs(x) - err
            with np.errstate(invalid="ignore"):
                good = (ld_gamma_ratio * mag <= tol * lower) & (lower > 0)
            return (good | ok).reshape(x.shape[0], -1).all(axis=1)

        ld_hope = bad & hopeful(total, s.err_total, s.mag_total, ok_total) & hopeful(roots, s.err_roots, s.mag_roots, ok_roots)
        ld_hope &= hopeful(num, s.err_num, s.mag_num, ok_num) & hopeful(pred, s.err_pred, s.mag_pred, ok_pred)
    return ~bad, impossible, ld_hope, (total, roots, num, pred)


def _subblock(d: _Block, rows: np.ndarray) -> _Block:
    fields = {}
    for name in d.__dataclass_fields__:
        value = getattr(d, name)
        fields[name] = value if name == "member" or value is None else value[rows]
    return _Block(**fields)


def factorised_query(
    root_weight,
    cause_given_root,
    cause_likelihood,
    leak,
    links,
    finding_likelihood,
    mixtures=(),
    predict=(),
    *,
    max_bytes=256 * 2**20,
    tolerance=1e-11,
    methods=METHODS,
) -> FactorisedResult:
    """Exact posteriors of a layered noisy-OR network at a cost that grows with the positive findings.

    Parameters
    ----------
    root_weight : array, shape (P, B, K)
        Prior of each root configuration times the likelihood of the root
        evidence (non-negative; K >= 1).
    cause_given_root : array, shape (P, K, n)
        P(cause i present | root configuration k).
    cause_likelihood : array, shape (B, n, 2)
        Evidence likelihood of each cause (absent, present); ones when unobserved.
    leak : array, shape (P, F)
        P(finding yes | no parent present).
    links : array, shape (P, F, n)
        Link probability of cause i for finding f; 0 where i is not a parent.
    finding_likelihood : array, shape (B, F, 2)
        Likelihood of (no, yes) for every binary finding; ones when unobserved.
    mixtures : sequence of Mixture
        Categorical findings whose distribution is the mean of their present
        parents' (at most one observed; unobserved ones are ignored).
    predict : sequence of int
        Binary findings whose P(yes | evidence) is wanted; their own
        likelihoods in ``finding_likelihood`` are ignored.
    max_bytes : int
        Memory budget of the working arrays; rows and parameter sets are
        processed in chunks that fit.
    tolerance : float
        Largest accepted bound on the relative rounding error of every
        computed probability (the bound is pessimistic; the errors are
        typically far smaller).
    methods : sequence of str
        Methods allowed (see :data:`METHODS`); for testing and diagnosis.

    Returns
    -------
    FactorisedResult
        Posteriors, log P(evidence) and the methods used. A leading size of
        1 in P or B broadcasts. Rows whose evidence is impossible have NaN
        posteriors and log P(evidence) -inf.

    Raises
    ------
    MemoryBudgetError
        If some row cannot be computed to the tolerance within ``max_bytes``
        by any allowed method.
    ValueError
        If the arrays are inconsistent, or more than one mixture is observed.

    Examples
    --------
    Two causes, one root configuration, one finding observed "yes":

    >>> import numpy as np
    >>> r = factorised_query(
    ...     root_weight=np.ones((1, 1, 1)), cause_given_root=np.array([[[0.1, 0.2]]]),
    ...     cause_likelihood=np.ones((1, 2, 2)), leak=np.array([[0.01]]),
    ...     links=np.array([[[0.9, 0.5]]]), finding_likelihood=np.array([[[0.0, 1.0]]]))
    >>> r.cause_posterior.round(4)
    array([[[0.4815, 0.581 ]]])
    >>> r.method
    'quickscore'
    """
    unknown = set(methods) - set(METHODS)
    if unknown or not methods:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose among {METHODS}")
    prob = _prepare(root_weight, cause_given_root, cause_likelihood, leak, links, finding_likelihood, mixtures, predict)
    P, B, K, n = prob.P, prob.B, prob.K, prob.n
    npr = prob.predict.size
    cause_post = np.full((P, B, n), np.nan)
    root_post = np.full((P, B, K), np.nan)
    log_ev = np.full((P, B), -np.inf)
    pred_post = np.full((P, B, npr), np.nan)
    used: set[str] = set()
    cells = np.arange(P * B)
    cp, cb = np.divmod(cells, B)
    alive = ~prob.row_dead[cb]
    m_cell = prob.m_row[_sel(prob.m_row.shape[0], cb)]
    n_mix = int(prob.member.sum()) if prob.member is not None else 0
    nodes = 1 + (_nodes(n_mix)[0].size if n_mix else 0)
    ld_allowed = _LONGDOUBLE_USEFUL and "quickscore-longdouble" in methods

    def store(index: np.ndarray, block: _Block, values, impossible: np.ndarray, sigma: np.ndarray, method: str) -> None:
        total, roots, num, pred = values
        p, b = cp[index], cb[index]
        with np.errstate(invalid="ignore", divide="ignore"):
            cause_post[p, b] = num / total[:, None]
            rp = np.zeros((index.size, K))
            np.put_along_axis(rp, block.kcol, roots / total[:, None], axis=1)
            root_post[p, b] = rp
            pred_post[p, b] = pred / total[:, None]
            log_ev[p, b] = np.log(total) + sigma + block.log_const + prob.row_log_scale[b]
        dead = impossible | ~(total > 0) | ~np.isfinite(log_ev[p, b])
        cause_post[p[dead], b[dead]] = np.nan
        root_post[p[dead], b[dead]] = np.nan
        pred_post[p[dead], b[dead]] = np.nan
        log_ev[p[dead], b[dead]] = -np.inf
        if (~dead).any():
            used.add(method)

    for m in np.unique(m_cell[alive]):
        group = np.flatnonzero(alive & (m_cell == m))
        active = _active_roots(prob, cp[group], cb[group])
        k_eff = 1 if (active.sum(axis=1) <= 1).all() else int(active.any(axis=0).sum())
        need = {
            "quickscore": _quickscore_bytes(n, m, k_eff, nodes, npr, np.float64),
            "quickscore-longdouble": _quickscore_bytes(n, m, k_eff, nodes, npr, np.longdouble),
            "enumeration": _enumeration_bytes(n, m, k_eff, npr),
            "enumeration-log": _enumeration_log_bytes(n, m, k_eff, npr),
        }
        cost = {
            "quickscore": k_eff * 2.0**m * nodes * n * (14 + 12 * npr),
            "quickscore-longdouble": 8 * k_eff * 2.0**m * nodes * n * (14 + 12 * npr),
            "enumeration": 2.0**n * (3 * m + 8 + 3 * k_eff * (1 + npr)) + 2.0 ** ((n + 1) // 2) * 40 * (m + npr + k_eff),
            "enumeration-log": 2.0**n * 20 * (k_eff + m + npr + n),
        }
        fits = {name: name in methods and need[name] <= max_bytes for name in METHODS}
        if not ld_allowed:
            fits["quickscore-longdouble"] = False
        first = [name for name in ("quickscore", "enumeration") if fits[name]]
        if not first:
            first = [name for name in ("quickscore-longdouble", "enumeration-log") if fits[name]]
        if not first:
            smallest = min((name for name in METHODS if name in methods), key=lambda name: need[name])
            raise MemoryBudgetError(f"one row needs {need[smallest]} bytes ({smallest} with n = {n} causes, m = {m} expanded findings), over the budget max_bytes = {max_bytes}")
        queue = [(min(first, key=lambda name: cost[name]), group)]
        while queue:
            method, todo = queue.pop(0)
            per_cell = need[method]
            chunk = max(1, max_bytes // per_cell)
            failed, hope = [], []
            for start in range(0, todo.size, chunk):
                index = todo[start : start + chunk]
                block = _make_block(prob, cp[index], cb[index], int(m))
                if method == "quickscore":
                    sums = _quickscore(block, np.float64)
                    ratio = _quickscore_gamma(n, m, 2**m * nodes * block.logW.shape[1], np.longdouble) if ld_allowed else None
                elif method == "quickscore-longdouble":
                    sums, ratio = _quickscore(block, np.longdouble), None
                elif method == "enumeration":
                    sums, ratio = _enumerate(block), None
                else:
                    sums, ratio = _enumerate_log(block), None
                ok, impossible, ld_hope, values = _judge(block, sums, tolerance, ratio)
                if ok.any():
                    keep = np.flatnonzero(ok)
                    store(index[keep], _subblock(block, keep), tuple(v[keep] for v in values), impossible[keep], sums.sigma[keep], method)
                failed.append(index[~ok])
                hope.append(ld_hope[~ok])
            failed = np.concatenate(failed)
            hope = np.concatenate(hope)
            if not failed.size:
                continue
            if method == "quickscore":
                to_ld = hope & fits["quickscore-longdouble"]
                if fits["enumeration"]:
                    to_ld &= cost["quickscore-longdouble"] < cost["enumeration"]
                    rest = [("enumeration", failed[~to_ld])]
                else:
                    rest = [("enumeration-log", failed[~to_ld])] if fits["enumeration-log"] else [(None, failed[~to_ld])]
                queue.extend([("quickscore-longdouble", failed[to_ld])] + rest)
            elif method in ("quickscore-longdouble", "enumeration"):
                nxt = "enumeration" if method == "quickscore-longdouble" and fits["enumeration"] else "enumeration-log" if fits["enumeration-log"] else None
                queue.append((nxt, failed))
            else:
                queue.append((None, failed))
            queue = [(name, cells_) for name, cells_ in queue if cells_.size]
            for name, cells_ in queue:
                if name is None:
                    allowed = [x for x in METHODS if x in methods and x != "quickscore"]
                    sizes = ", ".join(f"{x} {need[x]} bytes" for x in allowed) or "none allowed"
                    raise MemoryBudgetError(
                        f"{cells_.size} row(s) cannot be computed to the tolerance {tolerance:g} within max_bytes = {max_bytes} "
                        f"(n = {n} causes, m = {m} expanded findings; the cancellation-free methods need per row: {sizes})"
                    )
    method = "+".join(name for name in METHODS if name in used) or "none"
    return FactorisedResult(cause_post, root_post, log_ev, pred_post, method)
