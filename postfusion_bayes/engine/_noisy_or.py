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
    over the other causes taken as ``prod_j u_j * (1 / u_c)`` with ``1 / u_c``
    read as 0 where ``u_c`` is zero or subnormal (then ``B_c g_Sc <= u_c`` and
    what is dropped is within the underflow allowance below); nothing is
    subtracted. Findings leaning positive (``a_yes > a_no``) give negative
    ``b_f``: the terms alternate in sign and cancel. Arrays are laid out
    cause-major, ``(causes, nodes, cells, root columns, terms)``, so that the
    long axes are innermost.

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
    telescopes to ``sum_i B_i link_fi prod_{j < i} u'_j prod_{j > i} u_j``
    with ``u'_j = A_j + B_j x_j <= u_j`` (computed as ``prod_j u_j / u_i``
    times the prefix products of the ratios ``u'_j / u_j <= 1``), and the
    same with dual numbers for the mixture. Every quantity is a sum of
    non-negative numbers, so a tiny P(f = yes | e) keeps its relative
    precision.

Cancellation and the choice of method
    Along with every signed sum over the terms ``S`` the sum of their absolute
    values is computed (only ``alpha_S`` carries a sign). A forward error
    analysis in the standard model of floating-point arithmetic (each
    operation exact up to a factor ``1 + d``, ``|d| <= u``, the unit roundoff)
    bounds the absolute error of every computed probability by
    ``sum_S gamma_k(S) |term_S|``, ``gamma_k = k u / (1 - k u)`` with ``k(S)``
    the roundings along term ``S`` plus those of the signed sum (counted in
    :func:`_quickscore_gammas`: about ``n (2m + 6) + 2**m`` for the largest
    ``S``, ``2n`` fewer per finding missing from ``S``:
    :func:`_quickscore_bound_columns`), plus an allowance
    for underflow and a small relative error from the roundings of the
    quantities all terms share (which perturb a positive multilinear
    function, so the cancellation does not amplify them). Every computed
    probability (P(e), the root totals, every P(cause present, e), every
    P(e, finding yes)) must be within ``tolerance`` (relative; 5e-10 by
    default), so every returned posterior, a ratio of two of them, is within
    ``2 * tolerance`` = 1e-9 and log P(e) within 5e-10. The bound is a worst
    case: measured errors are a few hundred times smaller. The methods,
    named in ``FactorisedResult.method``:

    ``quickscore``
        the above in float64; cost about ``K 2**m (nodes) n`` per row.
    ``quickscore-telescoped``
        the above with one finding leaning positive (per row, the one the
        causes make least likely: its factor cancels most) taken out of the
        expansion and summed without cancellation, by the first present cause
        that switches it on, as for a prediction; the numerators split that
        sum before, at and after their cause (:func:`_quickscore_telescoped`).
        Half the terms, none of that finding's cancellation, about three
        times Quickscore's work per term: the rerun for rows whose float64
        bound fails by a small factor (about one in ten typical rows at
        sixteen causes), before longdouble or the cancellation-free methods.
        Rows with predictions do not use it.
    ``quickscore-longdouble``
        the same in ``np.longdouble`` (64-bit mantissa on x86) for the rows
        whose float64 bound fails but whose longdouble bound, predicted from
        the same sums, would pass (three to fifteen times slower, by size).
    ``subset-dp``
        cancellation-free: a dynamic programme over the causes whose state is
        the set of expanded findings already switched on (by their leaks or
        an earlier present cause), times the quadrature nodes and the dual
        part; a backward pass gives the marginals, one extra state bit per
        predicted finding its prediction. Cost about ``n m 2**m (nodes)``
        per row: the method for many positive findings among many causes.
    ``enumeration``
        cancellation-free: all ``2**n`` cause configurations, built as an
        outer product of two halves (``2**(n/2)`` each) so that every
        configuration costs a few multiply-adds per expanded finding;
        P(f = yes | C) is built as ``1 - q`` without subtracting
        (``r(C + i) = r(C) + q(C) link_i``). The method for many positive
        findings among up to about twenty causes. With ``activations`` (for
        an EM step) it also sums ``P(C, e) / factor_f(C)`` per expanded
        finding (the hidden "fired" indicators' expectations) and the
        mixture owners' shares in the same pass, instead of one query per
        finding; it is then taken when it fits and is cheaper than those
        queries.
    ``enumeration-log``
        the same in log space, for the rare rows whose numbers underflow.

    The cancellation-free methods sum non-negative numbers only: their error
    bound is relative, ``gamma_k`` with ``k`` the roundings along a path (about
    ``n (3m + 12)``) and the final sums, unless a number underflows, which is
    checked. Rows are grouped by the number of expanded findings; for each
    group a rough cost model (numpy calls and array work) picks the first
    method: Quickscore, or directly a cancellation-free method when it is
    cheaper or Quickscore would likely fail (many expanded findings). Rows
    whose bound fails move on to the telescoped form when it is the
    cheapest, then to the cheapest of the longdouble rerun (when predicted
    to pass), the dynamic programme and the enumeration, and rows whose
    numbers underflow to the log-space enumeration. A method is
    available only if one row (one parameter set) of it fits ``max_bytes``;
    rows are processed in chunks that fit (and that keep the working arrays
    cache-sized). If no allowed method can meet the tolerance within the
    budget, :class:`MemoryBudgetError` says so: a number is never returned
    silently inaccurate.

    Outputs that are exactly zero (an impossible root configuration, cause
    state or prediction; impossible evidence) are recognised exactly, from
    the zero pattern of the inputs, not from rounded sums.

Only numpy is used; nothing here knows what the variables mean.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ArgumentError, MemoryBudgetError, NetworkError

__all__ = ["METHODS", "FactorisedResult", "MemoryBudgetError", "Mixture", "factorised_query"]

#: The methods, in the order in which they are normally tried.
METHODS = ("quickscore", "quickscore-telescoped", "quickscore-longdouble", "subset-dp", "enumeration", "enumeration-log")

#: Stands for log(0) inside matrix products (0 * it is 0, never NaN); sums below half of it are log(0).
_LOG_ZERO = -1e300
#: The smallest subnormal double: a bound on the absolute error of any rounding that underflows.
_UNDERFLOW_ULP = 2.0**-1074
_LONGDOUBLE_USEFUL = bool(np.finfo(np.longdouble).eps < 1e-18)
#: Unit roundoff of float64.
_U64 = float(np.finfo(np.float64).eps) / 2
#: The index of the one cell of a one-cell query (read-only).
_ZERO_INDEX = np.zeros(1, dtype=np.intp)
_ZERO_INDEX.setflags(write=False)
#: The smallest normal float64.
_TINY64 = float(np.finfo(np.float64).tiny)
#: Rows are processed in chunks whose largest working array stays about this size (cache-sized).
_CACHE_BYTES = 2**20
#: Cost of Quickscore's array work in np.longdouble relative to float64, for the cost model (measured on
#: x86-64: 2.5-5 times for the arrays of one row with a few expanded findings, up to 15 times for large ones).
_LONGDOUBLE_WORK = 10
#: Array work of telescoped Quickscore per term relative to Quickscore's (measured on x86-64).
_TELESCOPED_WORK = 2.5


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
        Distribution of the leaf for each parent (rows sum to 1).
    leak : array, shape (P, S)
        Distribution of the leaf when no parent is present (sums to 1).
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
        :data:`METHODS` (e.g. ``"quickscore"`` or ``"quickscore+enumeration"``);
        ``"none"`` when every row is impossible.
    activated : array of bool, shape (P, B), or None
        With ``activations=True``: the rows whose activations below were
        computed (by the enumeration, in the same pass); the caller computes
        the others another way. None otherwise.
    fired : array, shape (P, B, F, 1 + n), or None
        Per binary finding, E[its leak fired | e] then E[cause i's link fired
        | e] (Diez 1993), in activated rows; 0 for findings not expanded
        (unobserved or observed "no": nothing fires, or nothing to count) and
        in other rows.
    owners : array, shape (P, B, n + 1), or None
        P(cause i set the observed mixture's value | e) (0 for non-parents),
        then the leak's, in activated rows with a mixture observed; else 0.
    """

    cause_posterior: np.ndarray
    root_posterior: np.ndarray
    log_evidence: np.ndarray
    finding_posterior: np.ndarray
    method: str
    activated: np.ndarray | None = None
    fired: np.ndarray | None = None
    owners: np.ndarray | None = None


# ----------------------------------------------------------------------------------------------- helpers
# Everything below runs under np.errstate(all="ignore") (set once in factorised_query): log(0) = -inf,
# 0 / 0 and the like are intended and masked.


def _lead(arr: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Rows ``index`` of an array whose leading axis is full, or its single row (kept, to broadcast)."""
    return arr[index] if arr.shape[0] > 1 else arr[:1]


def _full(arr: np.ndarray, C: int) -> np.ndarray:
    """Repeat a leading axis of size 1 to ``C`` (no copy when it is already ``C``)."""
    return arr if arr.shape[0] == C else np.repeat(arr, C, axis=0)


def _memo(array: np.ndarray) -> np.ndarray:
    """Make an array kept by a module-level memo read-only, so that no caller can change a later answer.

    The memos below (bit tables, quadrature nodes, error-bound constants, method plans) are pure:
    keyed by small integers and dtypes, computed from nothing else, and never written to.
    """
    array.setflags(write=False)
    return array


@functools.cache
def _bits(k: int) -> np.ndarray:
    """(2**k, k) float matrix: bit j of configuration c."""
    c = np.arange(2**k)
    return _memo(((c[:, None] >> np.arange(k)) & 1).astype(float))


@functools.cache
def _nodes(n_parents: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1], exact for polynomials of degree < n_parents."""
    x, w = np.polynomial.legendre.leggauss(max(1, math.ceil(n_parents / 2)))
    return _memo((x + 1) / 2), _memo(w / 2)


@functools.cache
def _node_tables(member: bytes, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Node weights ``omega (Q1,)`` (0 at the extra node t = 0) and ``tau (Q1, n)`` (t for mixture parents, else 1)."""
    parent = np.frombuffer(member, dtype=bool)
    t, w = _nodes(int(parent.sum()))
    t = np.concatenate([[0.0], t])
    omega = np.concatenate([[0.0], w]).astype(dtype)
    tau = np.where(parent[None, :], t[:, None], 1.0).astype(dtype)
    return _memo(omega), _memo(tau)


def _config_table(absent: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Products over causes ``(..., k) -> (..., 2**k)``; bit j of the index is cause j present."""
    out = np.ones(absent.shape[:-1] + (1,), dtype=absent.dtype)
    for j in range(absent.shape[-1]):
        out = np.concatenate([out * absent[..., j : j + 1], out * present[..., j : j + 1]], axis=-1)
    return out


def _subset_products(keep: np.ndarray) -> np.ndarray:
    """Products over every subset ``(..., m) -> (..., 2**m)``: entry S is the product of ``keep[..., j]`` for j in S.

    For small arrays two numpy calls (the members of S, 1.0 elsewhere, multiplied along the last axis),
    for large ones :func:`_config_table` (finding by finding). Either way the products of the members of S
    only, as multiplying by 1.0 is exact: at most ``|S| - 1`` roundings, in any order.

    >>> _subset_products(np.array([0.5, 0.25]))
    array([1.   , 0.5  , 0.25 , 0.125])
    """
    m = keep.shape[-1]
    if keep.size > 256:  # (large blocks: the table built finding by finding moves less memory; the same products)
        return _config_table(np.ones_like(keep), keep)
    return np.multiply.reduce(np.where(_subsets(m), keep[..., None, :], keep.dtype.type(1)), axis=-1)


def _noisy_or_table(link: np.ndarray, q0: np.ndarray, r0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """q(C) = q0 prod_{i in C} (1 - link_i) and r(C) = 1 - q(C) computed without subtraction.

    ``link`` has shape (..., k); ``q0``, ``r0 = 1 - q0`` shape (...); returns two (..., 2**k).
    """
    q, r = q0[..., None], r0[..., None]
    for j in range(link.shape[-1]):
        lj = link[..., j : j + 1]
        q, r = np.concatenate([q, q * (1 - lj)], axis=-1), np.concatenate([r, r + q * lj], axis=-1)
    return q, r


def _exclusive(op, x: np.ndarray, out: np.ndarray, first: float, reverse: bool = False) -> np.ndarray:
    """Exclusive running ``op`` (np.add or np.multiply) along axis 0: ``out[i] = op(x[:i])`` (``x[i + 1:]`` reversed).

    The same sequential accumulation as ``np.cumsum`` / ``np.cumprod`` (the same roundings), written as a
    loop over the first axis when its slices are large: numpy's accumulation along the first axis walks
    it element by element, the loop adds whole contiguous slices.
    """
    n = x.shape[0]
    if x[0].size < 512:
        if reverse:
            out[-1] = first
            if n > 1:
                op.accumulate(x[:0:-1], axis=0, out=out[-2::-1])
        else:
            out[0] = first
            if n > 1:
                op.accumulate(x[:-1], axis=0, out=out[1:])
        return out
    if reverse:
        out[n - 1] = first
        for i in range(n - 2, -1, -1):
            op(out[i + 1], x[i + 1], out=out[i])
    else:
        out[0] = first
        for i in range(1, n):
            op(out[i - 1], x[i - 1], out=out[i])
    return out


def _logsumexp(x: np.ndarray, axis) -> np.ndarray:
    """Compute log sum exp over ``axis``; -inf when every entry is -inf (no NaN)."""
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    out = np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True)) + top
    return np.squeeze(out, axis=axis)


# ----------------------------------------------------------------------------------------------- the problem


@dataclass
class _MixtureSpec:
    """An observed mixture finding: its parents (indices and mask), tables and normalised likelihood."""

    parents: np.ndarray  # (n_parents,)
    member: np.ndarray  # (n,) bool
    dist: np.ndarray  # (Pm, n_parents, S)
    leak: np.ndarray  # (Pm, S)
    lam: np.ndarray  # (Bm, S) normalised


@dataclass
class _Problem:
    """Validated inputs, with the row-wise classification of the evidence.

    Arrays keep their own leading size (1 or full) on the parameter-set or row axis.
    """

    P: int
    B: int
    K: int
    n: int
    F: int
    root_weight: np.ndarray  # (Pw, Bw, K)
    cause_given_root: np.ndarray  # (Pc, K, n) P(present | k); its logs are taken where a block needs them (_log_pq)
    log_lam: np.ndarray  # (Bl, n, 2) log of the normalised cause likelihoods
    a: np.ndarray  # (Bf, F, 2) normalised finding likelihoods (no, yes)
    negative: np.ndarray  # (Bf, F) float 0/1
    expanded: np.ndarray  # (Bf, F) bool
    m_row: np.ndarray  # (Bf,) number of expanded findings
    links: np.ndarray  # (Pk, F, n)
    leak: np.ndarray  # (Pl, F)
    log1m_links: np.ndarray  # (Pk, F, n) log(1 - link), _LOG_ZERO for log 0
    log1m_leak: np.ndarray  # (Pl, F)
    row_log_scale: np.ndarray  # (B,)
    row_dead: np.ndarray  # (B,) a likelihood vector is all zeros
    predict: np.ndarray  # (npr,)
    mixture: _MixtureSpec | None  # the observed mixture, if any
    const_mix: list  # [(leak (Pm, S), lam (Bm, S))]: observed mixtures without parents, constant factors
    all_log_pq: list  # empty, or [the logs of every entry of cause_given_root], taken once if a block needs most of them


def _lead_sizes(name: str, sizes: Sequence[int]) -> int:
    full = {s for s in sizes if s != 1}
    if len(full) > 1:
        raise NetworkError(f"inconsistent {name} sizes {sorted(full)} (each must be 1 or the same)")
    return full.pop() if full else 1


def _check(name: str, arr: np.ndarray, upper: float | None) -> None:
    if arr.size and not (np.minimum.reduce(arr, axis=None) >= 0 and (upper is None or np.maximum.reduce(arr, axis=None) <= upper)):
        what = "probabilities in [0, 1]" if upper is not None else "non-negative (and not NaN)"
        raise NetworkError(f"{name} must be {what}")


def _prepare(root_weight, cause_given_root, cause_likelihood, leak, links, finding_likelihood, mixtures, predict, checked: bool = False) -> _Problem:
    rw = np.asarray(root_weight, dtype=float)
    cg = np.asarray(cause_given_root, dtype=float)
    cl = np.asarray(cause_likelihood, dtype=float)
    lk = np.asarray(leak, dtype=float)
    ln = np.asarray(links, dtype=float)
    fl = np.asarray(finding_likelihood, dtype=float)
    if rw.ndim != 3 or cg.ndim != 3 or cl.ndim != 3 or lk.ndim != 2 or ln.ndim != 3 or fl.ndim != 3:
        raise NetworkError("expected root_weight (P, B, K), cause_given_root (P, K, n), cause_likelihood (B, n, 2), leak (P, F), links (P, F, n), finding_likelihood (B, F, 2)")
    K, n = cg.shape[1], cg.shape[2]
    F = ln.shape[1]
    if rw.shape[2] != K or K < 1 or n < 1:
        raise NetworkError(f"root_weight has {rw.shape[2]} root configurations, cause_given_root {K} (and n = {n} causes); both need at least one")
    if cl.shape[1:] != (n, 2) or ln.shape[2] != n or lk.shape[1] != F or fl.shape[1:] != (F, 2):
        raise NetworkError(f"shapes disagree on n = {n} causes or F = {F} findings: cause_likelihood {cl.shape}, links {ln.shape}, leak {lk.shape}, finding_likelihood {fl.shape}")
    mixtures = list(mixtures)
    P = _lead_sizes("parameter-set (P)", [rw.shape[0], cg.shape[0], lk.shape[0], ln.shape[0]] + [np.shape(mx.distributions)[0] for mx in mixtures] + [np.shape(mx.leak)[0] for mx in mixtures])
    B = _lead_sizes("row (B)", [rw.shape[1], cl.shape[0], fl.shape[0]] + [np.shape(mx.likelihood)[0] for mx in mixtures])
    _check("root_weight", rw, None)
    _check("cause_likelihood", cl, None)
    _check("finding_likelihood", fl, None)
    if not checked:
        _check("cause_given_root", cg, 1.0)
        _check("leak", lk, 1.0)
        _check("links", ln, 1.0)
    predict = np.asarray(predict, dtype=np.intp).reshape(-1)
    if predict.size:
        if predict.min() < 0 or predict.max() >= F:
            raise NetworkError(f"predict indices must be in [0, {F})")
        fl = fl.copy()
        fl[:, predict, :] = 1.0  # a predicted finding's own likelihood is ignored

    row_log_scale = np.zeros(B)
    row_dead = np.zeros(B, dtype=bool)

    def normalise(lam: np.ndarray) -> np.ndarray:
        """Divide likelihood vectors (last axis) by their maxima; add the log scales per row."""
        top = lam.max(axis=-1, keepdims=True)
        if (top == 1.0).all():  # already scaled (as an encoded evidence's): nothing to divide, log scales 0
            return lam
        if not top.all():
            dead = top[..., 0] == 0
            row_dead[...] |= dead.reshape(lam.shape[0], -1).any(axis=1)
            top = np.where(top > 0, top, 1.0)
        row_log_scale[...] += np.log(top).reshape(lam.shape[0], -1).sum(axis=1)  # broadcasts from one row
        return lam / top

    lam = normalise(cl)
    a = normalise(fl)
    unobserved = a[..., 0] == a[..., 1]
    negative = a[..., 1] == 0  # (never both zero after normalising)
    expanded = ~(unobserved | negative)
    spec: _MixtureSpec | None = None
    const_mix = []
    for index, mx in enumerate(mixtures):
        parents = np.asarray(mx.parents, dtype=np.intp).reshape(-1)
        dist = np.asarray(mx.distributions, dtype=float)
        mleak = np.asarray(mx.leak, dtype=float)
        mlam = np.asarray(mx.likelihood, dtype=float)
        if dist.ndim != 3 or dist.shape[1] != parents.size or mleak.ndim != 2 or mlam.ndim != 2 or not (dist.shape[2] == mleak.shape[1] == mlam.shape[1]):
            raise NetworkError(f"mixture {index}: expected distributions (P, {parents.size}, S), leak (P, S), likelihood (B, S)")
        _check(f"mixture {index} likelihood", mlam, None)
        if not checked:
            if parents.size and (parents.min() < 0 or parents.max() >= n or np.bincount(parents).max() > 1):
                raise NetworkError(f"mixture {index}: parents must be distinct cause indices in [0, {n})")
            _check(f"mixture {index} distributions", dist, 1.0)
            _check(f"mixture {index} leak", mleak, 1.0)
            sums = np.concatenate([dist.sum(axis=-1).ravel(), mleak.sum(axis=-1).ravel()])
            if sums.size and not (np.minimum.reduce(sums) > 1 - 1e-6 and np.maximum.reduce(sums) < 1 + 1e-6):
                raise NetworkError(f"mixture {index}: distributions and leak must sum to 1 over the states")
        mlam = normalise(mlam)
        if (mlam == 1).all():
            continue  # unobserved: a constant factor (1 after normalising)
        if parents.size == 0:
            const_mix.append((mleak, mlam))
            continue
        if spec is not None:
            raise NetworkError("at most one mixture finding may be observed (the others must have constant likelihoods)")
        member = np.zeros(n, dtype=bool)
        member[parents] = True
        spec = _MixtureSpec(parents, member, dist, mleak, mlam)
    return _Problem(
        P=P,
        B=B,
        K=K,
        n=n,
        F=F,
        root_weight=rw,
        cause_given_root=cg,
        all_log_pq=[],
        log_lam=np.log(lam),
        a=a,
        negative=negative.astype(float),
        expanded=expanded,
        m_row=expanded.sum(axis=1),
        links=ln,
        leak=lk,
        log1m_links=np.maximum(np.log1p(-ln), _LOG_ZERO),
        log1m_leak=np.maximum(np.log1p(-lk), _LOG_ZERO),
        row_log_scale=row_log_scale,
        row_dead=row_dead,
        predict=predict,
        mixture=spec,
        const_mix=const_mix,
    )


# ----------------------------------------------------------------------------------------------- blocks of cells


@dataclass
class _MixtureCells:
    """The observed mixture finding, per cell.

    ``v (C, n)``: each parent's distribution dotted with the likelihood (0 for
    non-parents); ``L (C,)``: the leak's; both scaled to a maximum of 1.
    ``member (n,)``: its parents.
    """

    v: np.ndarray
    L: np.ndarray
    member: np.ndarray


@dataclass
class _Block:
    """A chunk of cells (parameter set p, row b) with everything gathered per cell.

    ``m`` expanded findings per cell (the same number for every cell), ``K`` the
    root configurations kept (``kcol`` maps them back).
    """

    logW: np.ndarray  # (C, K) log root weight
    logAB: np.ndarray  # (C, K, n, 2) log weight of cause absent, present (negative findings included)
    kcol: np.ndarray  # (C, K) original root configuration of each column
    LE: np.ndarray  # (C, m, n) links of the expanded findings
    leakE: np.ndarray  # (C, m)
    aN: np.ndarray  # (C, m) normalised likelihood of "no"
    aY: np.ndarray  # (C, m) normalised likelihood of "yes"
    LP: np.ndarray  # (C, npr, n) links of the predicted findings
    leakP: np.ndarray  # (C, npr)
    mix: _MixtureCells | None  # the observed mixture, if any
    log_const: np.ndarray  # (C,) log of the constant factors (negative findings' leaks, scales)
    input_error: np.ndarray  # (C,) relative error of the result from the roundings of the shared inputs

    @property
    def logA(self) -> np.ndarray:
        return self.logAB[..., 0]

    @property
    def logB(self) -> np.ndarray:
        return self.logAB[..., 1]


def _root_columns(prob: _Problem, pi: np.ndarray, bi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gather the root weights ``(C, K')`` to keep and their columns ``kcol (C, K')``.

    One column per cell when each cell has at most one positive weight (context
    observed), else the union of the positive ones.
    """
    rw = prob.root_weight
    if rw.shape[0] == 1 and rw.shape[1] == 1:
        w = rw[0] if pi.size == 1 else np.repeat(rw[0], pi.size, axis=0)
    else:
        w = rw[pi if rw.shape[0] > 1 else 0, bi if rw.shape[1] > 1 else 0]
    if prob.K == 1:
        return w, np.zeros((pi.size, 1), dtype=np.intp)
    positive = w > 0
    if (positive.sum(axis=1) <= 1).all():
        kcol = positive.argmax(axis=1)[:, None]
        return w[np.arange(pi.size), kcol[:, 0]][:, None], kcol
    keep = np.flatnonzero(positive.any(axis=0))
    return w[:, keep], np.broadcast_to(keep, (pi.size, keep.size))


def _log_pq(prob: _Problem, pi: np.ndarray, kcol: np.ndarray) -> np.ndarray:
    """Log P(cause absent | k) and log P(cause present | k) for the cells' kept root columns, ``(1 or C, K', n, 2)``.

    The logs of the gathered entries only, unless the block needs about as many as there are (then all of
    them, once per problem).
    """
    cg = prob.cause_given_root
    whole = cg.shape[0] == 1 and (kcol.shape[1] == prob.K or prob.K == 1) and (kcol == np.arange(kcol.shape[1])).all()
    if whole or kcol.size >= cg.shape[0] * prob.K:
        if not prob.all_log_pq:
            both = np.empty(cg.shape + (2,))
            np.log1p(-cg, out=both[..., 0])
            np.log(cg, out=both[..., 1])
            prob.all_log_pq.append(both)
        both = prob.all_log_pq[0]
        return both if whole else both[(pi if cg.shape[0] > 1 else np.zeros(pi.size, np.intp))[:, None], kcol]
    chosen = cg[(pi if cg.shape[0] > 1 else np.zeros(pi.size, np.intp))[:, None], kcol]  # (C, K', n)
    both = np.empty(chosen.shape + (2,))
    np.log1p(-chosen, out=both[..., 0])
    np.log(chosen, out=both[..., 1])
    return both


def _make_block(prob: _Problem, pi: np.ndarray, bi: np.ndarray, m: int, roots: tuple[np.ndarray, np.ndarray] | None = None) -> _Block:
    C, n = pi.size, prob.n
    rw, kcol = roots if roots is not None else _root_columns(prob, pi, bi)
    logW = np.log(rw)
    # log weights of each cause absent / present given each kept root configuration
    lpq = _log_pq(prob, pi, kcol)  # (1 or C, K', n, 2)
    lam = _lead(prob.log_lam, bi)  # (Cb, n, 2)
    neg = _lead(prob.negative, bi)  # (Cb, F)
    if prob.links.shape[0] == 1:
        log_gneg = neg @ prob.log1m_links[0]  # (Cb, n)
    else:
        log_gneg = np.einsum("cf,cfn->cn", np.broadcast_to(neg, (C, prob.F)), prob.log1m_links[pi])
    if prob.leak.shape[0] == 1:
        log_const = neg @ prob.log1m_leak[0]
    else:
        log_const = np.einsum("cf,cf->c", np.broadcast_to(neg, (C, prob.F)), prob.log1m_leak[pi])
    log_gneg[log_gneg < _LOG_ZERO / 2] = -np.inf
    log_const = _full(log_const, C)
    log_const[log_const < _LOG_ZERO / 2] = -np.inf
    logAB = _full(lpq + lam[:, None], C)  # (C, K, n, 2)
    logAB[..., 1] += log_gneg[:, None, :]
    # the expanded findings of each cell (the same number in every cell of a block)
    fb = bi if prob.a.shape[0] > 1 else np.zeros(C, np.intp)
    eidx = np.nonzero(prob.expanded[fb])[1].reshape(C, m)
    pk = pi if prob.links.shape[0] > 1 else np.zeros(C, np.intp)
    pl = pi if prob.leak.shape[0] > 1 else np.zeros(C, np.intp)
    LE = prob.links[pk[:, None], eidx]  # (C, m, n)
    leakE = prob.leak[pl[:, None], eidx]
    aE = prob.a[fb[:, None], eidx]  # (C, m, 2)
    if prob.predict.size:
        LP = prob.links[pk[:, None], prob.predict[None, :]]
        leakP = prob.leak[pl[:, None], prob.predict[None, :]]
    else:
        LP, leakP = np.zeros((C, 0, n)), np.zeros((C, 0))
    for mleak, mlam in prob.const_mix:
        const = (_lead(mleak, pi) * _lead(mlam, bi)).sum(axis=-1)
        log_const = log_const + np.log(const)
    mix = None
    spec = prob.mixture
    if spec is not None:
        mlam = _lead(spec.lam, bi)  # (Cb, S)
        vp = _full(np.matmul(_lead(spec.dist, pi), mlam[:, :, None])[..., 0], C)  # (C, n_parents)
        L = _full((_lead(spec.leak, pi) * mlam).sum(axis=-1), C)
        top = np.maximum(vp.max(axis=1), L)
        top = np.where(top > 0, top, 1.0)
        log_const = log_const + np.log(top)
        v = np.zeros((C, n))
        v[:, spec.parents] = vp / top[:, None]
        mix = _MixtureCells(v, L / top, spec.member)
    # Roundings in quantities every term shares (the weights of the causes and roots, through logs and exp;
    # the mixture's v and L; the quadrature nodes) perturb the result as a positive multilinear function of
    # them: relatively, by at most their sum, without amplification by the cancellation.
    # (the logs are all <= 0, as every likelihood is at most 1 after normalising)
    size = -np.where(logAB > -np.inf, logAB, 0.0).sum(axis=(-2, -1)).max(axis=-1)  # (C,)
    input_error = _U64 * ((prob.F + 4) * (size + 4 * n) + np.abs(np.where(logW > -np.inf, logW, 0.0)).max(axis=-1) + 2 * m + 8)
    if spec is not None:
        input_error += 1e-14 * (n + 2) + _U64 * (spec.lam.shape[1] + 4)
    return _Block(
        logW=logW,
        logAB=logAB,
        kcol=kcol,
        LE=LE,
        leakE=leakE,
        aN=aE[..., 0],
        aY=aE[..., 1],
        LP=LP,
        leakP=leakP,
        mix=mix,
        log_const=log_const,
        input_error=input_error,
    )


def _subblock(d: _Block, rows: np.ndarray) -> _Block:
    """Select the cells ``rows`` of a block."""
    return _Block(
        logW=d.logW[rows],
        logAB=d.logAB[rows],
        kcol=d.kcol[rows],
        LE=d.LE[rows],
        leakE=d.leakE[rows],
        aN=d.aN[rows],
        aY=d.aY[rows],
        LP=d.LP[rows],
        leakP=d.leakP[rows],
        mix=None if d.mix is None else _MixtureCells(d.mix.v[rows], d.mix.L[rows], d.mix.member),
        log_const=d.log_const[rows],
        input_error=d.input_error[rows],
    )


def _scaled(d: _Block, dtype=np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Linear weights scaled so that every cause's larger weight is 1 and the largest root weight is 1.

    Returns ``W (C, K)``, ``A (C, K, n)``, ``B (C, K, n)`` (in ``dtype``) and the log scale ``sigma (C,)``.
    """
    # (a cause with both weights 0, or a cell with every root weight 0, gets a finite stand-in scale:
    # such cells are impossible, which _judge establishes exactly)
    s = np.maximum(d.logAB.max(axis=-1, keepdims=True), _LOG_ZERO)
    AB = np.exp(d.logAB - s if dtype is np.float64 else (d.logAB - s).astype(dtype))
    logW = d.logW + s[..., 0].sum(axis=-1)
    sigma = np.maximum(logW.max(axis=1), _LOG_ZERO)
    W = np.exp(logW - sigma[:, None] if dtype is np.float64 else (logW - sigma[:, None]).astype(dtype))
    return W, AB[..., 0], AB[..., 1], sigma


# ----------------------------------------------------------------------------------------------- results of a method


@dataclass
class _Sums:
    """Unnormalised outputs of a method for a block, relative to ``exp(sigma)``.

    The columns of ``values (C, X)`` are P(e), W_k P(e | k) for each kept root
    column, P(cause present, e) for each cause and P(e, finding yes) for each
    prediction (``X = 1 + K + n + npr``). ``err`` bounds their absolute
    errors; for Quickscore ``mag`` holds the sums of absolute values of the
    terms and ``gamma_ld`` the longdouble rounding bounds per column.
    """

    values: np.ndarray
    err: np.ndarray
    sigma: np.ndarray
    mag: np.ndarray | None = None
    gamma_ld: np.ndarray | None = None
    #: (C, m (1 + n) + n + 1), when asked of the enumeration: the activations of each expanded finding (its
    #: leak, then each cause's link) and the mixture's owners (each cause, then the leak), with their errors
    extra: np.ndarray | None = None
    extra_err: np.ndarray | None = None


# ----------------------------------------------------------------------------------------------- Quickscore


def _gamma(k: float, dtype) -> float:
    """Bound the relative error of ``k`` roundings: ``k u / (1 - k u)``, ``u`` the unit roundoff."""
    u = float(np.finfo(dtype).eps) / 2
    return k * u / (1 - k * u)


def _quickscore_gammas(n: int, m: int, nodes: int, K: int, dtype) -> tuple[float, float, float]:
    """Bounds on the rounding error per unit of the sum of absolute values of the terms: P(e), numerators, predictions.

    Counted along the computation of one term (relative error of a product of
    roundings): ``g_Si`` has ``2m`` (``1 - link`` and the product), ``u_i`` a
    further 3, the product over causes ``n (2m + 3) + n - 1``, the dual part
    ``R`` about ``4m + n + 6``, the nodes ``nodes - 1``, ``alpha_S`` ``4m``
    (``a_no - a_yes``, ``1 - leak`` and the products); then the signed sum of
    ``2**m K`` terms in any order. Predictions have a second product over the
    causes. The counts are rounded up.
    """
    T = 2**m
    k_total = n * (2 * m + 6) + 10 * m + nodes + T + K + 20
    k_num = k_total + 2 * m + 4
    k_pred = n * (4 * m + 12) + 12 * m + nodes + T + K + 40
    return _gamma(k_total, dtype), _gamma(k_num, dtype), _gamma(k_pred, dtype)


@functools.cache
def _quickscore_gamma_columns(n: int, m: int, nodes: int, K: int, npr: int, dtype) -> np.ndarray:
    """Spread the bounds of :func:`_quickscore_gammas` over the output columns (P(e), roots, numerators, predictions)."""
    g_total, g_num, g_pred = _quickscore_gammas(n, m, nodes, K, dtype)
    return _memo(np.array([g_total] * (1 + K) + [g_num] * n + [g_pred] * npr))


@functools.cache
def _quickscore_bound_columns(n: int, m: int, nodes: int, K: int, npr: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients ``(base, slope)`` of Quickscore's rounding bound per output column, by subset size.

    The bound of a column is ``base * sum_S |t_S| + slope * sum_S |S| |t_S|``
    (``t_S`` the terms, ``|S|`` the number of expanded findings in ``S``).

    Proof. The counts of :func:`_quickscore_gammas` hold ``2m`` roundings for
    ``g_Si`` in each of the ``n`` factors ``u_i`` of the product over the
    causes (``n * 2m`` in all). ``g_Si`` is built by :func:`_subset_products`
    as the product of ``x_f`` over the findings ``f in S`` only (the findings
    outside ``S`` multiply by exactly 1.0), with ``x = 1 - link`` rounded once:
    at most ``2|S|`` roundings. So the computed term ``t_S`` carries at most
    ``k_S = k - 2n (m - |S|)`` roundings (``k`` the count of
    :func:`_quickscore_gammas`; every other count is kept at its value for
    ``m``), and ``|error of t_S| <= gamma(k_S) |t_S|``; summing the signed
    terms in any order adds at most the ``2**m K`` of the summation already in
    ``k_S``. As ``gamma(k_S) = k_S u / (1 - k_S u) <= k_S u / (1 - k u)``, the
    error is at most ``u / (1 - k u) * ((k - 2nm) sum|t_S| + 2n sum |S| |t_S|)``,
    never more than ``gamma(k) sum|t_S|`` (as ``|S| <= m``). The terms of small
    ``S`` are the large ones (``g_Si <= 1`` shrinks the present weights), so
    this is typically about half the bound for ``m``. Predictions keep the
    bound for ``m`` (``slope`` 0).
    """
    T = 2**m
    u = float(np.finfo(dtype).eps) / 2
    k_total = n * (2 * m + 6) + 10 * m + nodes + T + K + 20
    k_num = k_total + 2 * m + 4
    g_pred = _quickscore_gammas(n, m, nodes, K, dtype)[2]
    rate_total, rate_num = u / (1 - k_total * u), u / (1 - k_num * u)
    base = np.array([rate_total * (k_total - 2 * n * m)] * (1 + K) + [rate_num * (k_num - 2 * n * m)] * n + [g_pred] * npr)
    slope = np.array([rate_total * 2 * n] * (1 + K) + [rate_num * 2 * n] * n + [0.0] * npr)
    return _memo(base), _memo(slope)


@functools.cache
def _subset_sizes(m: int, dtype) -> np.ndarray:
    """(2**m,) the number of expanded findings in each subset S, in ``dtype``."""
    return _memo(_subsets(m).sum(axis=1).astype(dtype))


def _quickscore_bytes(n: int, m: int, K: int, nodes: int, npr: int, dtype) -> int:
    item = np.dtype(dtype).itemsize
    return item * K * 2**m * nodes * n * (10 + 9 * npr) + item * 2**m * (m + 4) * n * 2 + 4096


@functools.cache
def _subsets(m: int) -> np.ndarray:
    """(2**m, m) bool: whether expanded finding j is in subset S (bit j of S)."""
    return _memo(((np.arange(2**m)[:, None] >> np.arange(m)) & 1).astype(bool))


class _Workspace:
    """Working arrays reused by the chunks of one run: no fresh large allocation (and page faults) per chunk."""

    def __init__(self) -> None:
        self.arrays: dict[tuple, np.ndarray] = {}

    def get(self, slot: int, shape: tuple[int, ...], dtype) -> np.ndarray:
        key = (slot, shape, np.dtype(dtype))
        array = self.arrays.get(key)
        if array is None:
            array = self.arrays[key] = np.empty(shape, dtype)
        return array


def _quickscore(d: _Block, dtype, workspace: _Workspace | None = None) -> _Sums:
    """Quickscore over the expanded findings, with the mixture by quadrature, in precision ``dtype``.

    Arrays are laid out cause-major, ``(n, nodes, C, K, T)``: the long axes
    (cells, root columns, terms) are innermost and contiguous, reductions
    over the causes are over the outermost axis. The largest ones come from
    ``workspace`` when given.
    """
    W, A, B0, sigma = _scaled(d, dtype)  # (C, K), (C, K, n), (C, K, n)
    C, K, n = A.shape
    m = d.LE.shape[1]
    npr = d.LP.shape[1]
    T = 2**m
    one = dtype(1)
    tiny = _TINY64 if dtype is np.float64 else np.finfo(dtype).tiny
    if dtype is np.float64:
        aY, aN, leakE, LE = d.aY, d.aN, d.leakE, d.LE
    else:
        aY, aN, leakE, LE = (x.astype(dtype) for x in (d.aY, d.aN, d.leakE, d.LE))
    subsets = _subsets(m)  # (T, m)
    # alpha_S prod_{f in S} (1 - leak_f) and the same with |b_f|: (C, 2, T); b_f in the working precision,
    # as its rounding is amplified by the cancellation
    bk = ((aN - aY) * (one - leakE))[:, None, :]
    # (and |alpha_S| |S|, for the rounding bound by subset size: _quickscore_bound_columns)
    cm = np.empty((C, 3, T), dtype)
    np.multiply.reduce(np.where(subsets, bk, aY[:, None, :]), axis=-1, out=cm[:, 0])
    np.multiply.reduce(np.where(subsets, np.abs(bk), aY[:, None, :]), axis=-1, out=cm[:, 1])
    np.multiply(cm[:, 1], _subset_sizes(m, dtype), out=cm[:, 2])
    # g_S for every cause: (n, C, T)
    keep = (one - LE).transpose(2, 0, 1)  # (n, C, m)
    G = _subset_products(keep)  # (n, C, T): g_Si
    A = A.transpose(2, 0, 1)[:, None, :, :, None]  # (n, 1, C, K, 1)
    Bk = B0.transpose(2, 0, 1)[..., None] * G[:, :, None, :]  # (n, C, K, T)
    mix = d.mix
    mixture = mix is not None
    nodes = 1
    if mix is not None:
        omega, tau = _node_tables(mix.member.tobytes(), dtype)  # (Q1,), (Q1, n)
        tau = tau.T[:, :, None, None, None]  # (n, Q1, 1, 1, 1)
        nodes = omega.size
    big = (n, nodes, C, K, T)

    def buffer(slot: int) -> np.ndarray:
        return workspace.get(slot, big, dtype) if workspace is not None else np.empty(big, dtype)

    u = buffer(0)
    if mix is not None:
        np.multiply(Bk[:, None], tau, out=u)  # the present weight B_i g_Si, times t for the mixture's parents
    else:
        u[:, 0] = Bk
    Bt = u.copy() if npr else u  # (kept for the predictions)
    u += A
    prod = np.multiply.reduce(u, axis=0)  # (Q1, C, K, T)
    # 1 / u, and 0 where u is 0 or subnormal: such a cause's present weight is at most u / t, so what is dropped
    # is within the underflow allowance. prod * invu is then the product over the other causes.
    invu = buffer(1)
    invu.fill(0)
    np.divide(one, u, out=invu, where=u > tiny)
    others = np.multiply(invu, prod, out=buffer(2))  # (n, Q1, C, K, T)
    if mix is not None:
        v = (mix.v if dtype is np.float64 else mix.v.astype(dtype)).T[:, None, :, None, None]  # (n, 1, C, 1, 1)
        L = mix.L if dtype is np.float64 else mix.L.astype(dtype)
        w = Bk[:, None] * v  # (n, 1, C, K, T): the "chosen" weight v_i B_i g_Si
        r = np.multiply(w, invu[:, 1:], out=buffer(3)[:, 1:])  # (n, Q, C, K, T), at most v / t (node 0, t = 0, has no chosen parent)
        h = np.empty_like(prod)  # plain weight L at node 0, omega_q R_q at the others
        h[0] = L[:, None, None]
        np.multiply(r.sum(axis=0), omega[1:, None, None, None], out=h[1:])
        tot = (prod * h).sum(axis=0)  # (C, K, T)
        # numerator: B_c prod_{j != c} u_j (tau_c h + omega v_c A_c / u_c), summed over the nodes
        y = np.multiply(A, invu[:, 1:], out=buffer(4)[:, 1:])  # A_c / u_c <= 1
        y *= others[:, 1:]
        y *= omega[1:, None, None, None]
        spread = np.multiply(others, tau, out=u)  # (u is no longer needed)
        spread *= h
        nums = spread.sum(axis=1) + v[:, 0] * y.sum(axis=1)
        nums *= Bk
    else:
        tot = prod[0]
        nums = Bk * others[:, 0]
    cmW = (cm[:, :, None, :] * W[:, None, :, None]).reshape(C, 3, K * T)
    roots = np.matmul(tot, cm.transpose(0, 2, 1)) * W[:, :, None]  # (C, K, 3)
    num = np.matmul(cmW, nums.reshape(n, C, K * T).transpose(1, 2, 0))  # (C, 3, n)
    if npr:
        # P(e, f yes) per term = leak_f tot + (1 - leak_f) sum_C w(C) (1 - prod_{i in C} x_i), telescoped:
        # sum_i B_i link_i prod_{j < i} u'_j prod_{j > i} u_j [bracket], with u'_j = A_j + B_j t x_j <= u_j
        lp = (d.LP if dtype is np.float64 else d.LP.astype(dtype)).transpose(2, 1, 0)[:, :, None, :, None, None]  # (n, npr, 1, C, 1, 1)
        leakp = (d.leakP if dtype is np.float64 else d.leakP.astype(dtype)).T[:, :, None, None]  # (npr, C, 1, 1)
        xp = one - lp
        up = A[:, None] + Bt[:, None] * xp  # (n, npr, Q1, C, K, T)
        ratio = up * invu[:, None]  # u'_j / u_j (0 where u_j is dropped)
        lower = _exclusive(np.multiply, ratio, np.empty_like(ratio), one)  # prod_{j < i} u'_j / u_j
        core = lower * others[:, None]
        core *= Bk[:, None, None] * lp
        if mix is not None:
            # bracket = tau (rho + omega (R'_{<i} + R_{>i})) + omega v, R' = sum_{j<i} w_j x_j / u'_j, R = sum_{j>i} w_j / u_j
            invup = np.zeros_like(up[:, :, 1:])
            np.divide(one, up[:, :, 1:], out=invup, where=up[:, :, 1:] > tiny)
            rp = w[:, None] * xp * invup  # (n, npr, Q, C, K, T)
            acc = _exclusive(np.add, rp, np.empty_like(rp), 0.0)
            after = _exclusive(np.add, r, np.empty_like(r), 0.0, reverse=True)
            acc += after[:, None]
            acc *= omega[1:, None, None, None]
            acc *= tau[:, None, 1:]
            acc += v[:, None] * omega[1:, None, None, None]
            X = (core[:, :, 1:] * acc).sum(axis=(0, 2)) + L[:, None, None] * (core[:, :, 0] * tau[:, None, 0]).sum(axis=0)
        else:
            X = core[:, :, 0].sum(axis=0)  # (npr, C, K, T)
        Pt = leakp * tot + (one - leakp) * X  # (npr, C, K, T)
        pred = np.matmul(Pt.reshape(npr, C, K * T).transpose(1, 0, 2), cmW.transpose(0, 2, 1))  # (C, npr, 3)
    else:
        pred = np.zeros((C, 0, 3), dtype)
    # columns: P(e), the root totals, the numerators, the predictions; then (signed, absolute, absolute times |S|)
    out = np.concatenate([roots.sum(axis=1, keepdims=True), roots, num.transpose(0, 2, 1), pred], axis=1)
    if dtype is not np.float64:
        out = out.astype(float)
    values, mag, sized = out[..., 0], out[..., 1], out[..., 2]
    # underflow: every rounding below the normal range errs by at most _UNDERFLOW_ULP, magnified at most by the
    # later factors (each below 2, and 1 / t_min for R); dropped causes (u subnormal) lose no more; this also
    # covers inputs (v, L) that were subnormal doubles
    nodes = u.shape[1]
    t_min = float(_nodes(2 * nodes - 2)[0][0]) if mixture else 1.0
    delta = T * nodes * K * (n + m + 10) * (n + 2) * 2.0**n / t_min * _UNDERFLOW_ULP
    base, slope = _quickscore_bound_columns(n, m, nodes, K, npr, dtype)
    err = base * mag + slope * sized + d.input_error[:, None] * np.abs(values) + delta
    gamma_ld = _quickscore_gamma_columns(n, m, nodes, K, npr, np.longdouble) if _LONGDOUBLE_USEFUL else None
    return _Sums(values, err, sigma, mag, gamma_ld)


# ----------------------------------------------------------------------------------------------- Quickscore, one finding telescoped


def _telescoped_gammas(n: int, m: int, nodes: int, K: int) -> tuple[float, float]:
    """Bounds, per unit of the sum of absolute values of the terms, on the rounding error of :func:`_quickscore_telescoped`.

    ``m`` is the number of findings expanded as Quickscore terms (the telescoped one excluded). Counted
    along the computation of one term, as in :func:`_quickscore_gammas`: ``g_Si`` ``2m``, ``u`` and ``u'``
    about ``2m + 6``, the prefix products of ``u' / u`` ``n (4m + 11)``, the product over the other causes
    ``n (2m + 4)``, the firing weight and the mixture's sums a further ``n + 8m + 30``, the prefix and
    suffix sums over the firing cause ``n``, the numerators' brackets, the likelihood coefficients and
    the nodes about ``20 + nodes``, ``alpha_S`` ``4m``; then the signed sum of ``2**m K`` terms. Every
    quantity before that sum is a sum of products of non-negative numbers, so the counts add along the
    longest path. Rounded up.
    """
    k = n * (6 * m + 17) + 16 * m + nodes + 2**m + K + 60
    return _gamma(k, np.float64), _gamma(k + 2 * m + 20, np.float64)


@functools.cache
def _telescoped_bound_columns(n: int, m: int, nodes: int, K: int) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients ``(base, slope)`` of the telescoped bound per output column, by subset size.

    As for :func:`_quickscore_bound_columns`: of the counts of
    :func:`_telescoped_gammas`, ``n * 6m`` come from the ``2m`` roundings of
    ``g_Si`` in each of ``u``, ``u'`` (through the prefix products of ``u' /
    u``: ``4m`` per cause) and the product over the other causes (``2m`` per
    cause), and ``g_Si`` has at most ``2|S|`` (:func:`_subset_products`
    multiplies by exactly 1.0 for the findings outside ``S``). So term ``t_S`` carries at
    most ``k - 6n (m - |S|)`` roundings and the error is at most ``u / (1 - k
    u) * ((k - 6nm) sum|t_S| + 6n sum |S| |t_S|)``, never more than
    ``gamma(k) sum|t_S|``.
    """
    u = _U64
    k_total = n * (6 * m + 17) + 16 * m + nodes + 2**m + K + 60
    k_num = k_total + 2 * m + 20
    rate_total, rate_num = u / (1 - k_total * u), u / (1 - k_num * u)
    base = np.array([rate_total * (k_total - 6 * n * m)] * (1 + K) + [rate_num * (k_num - 6 * n * m)] * n)
    slope = np.array([rate_total * 6 * n] * (1 + K) + [rate_num * 6 * n] * n)
    return _memo(base), _memo(slope)


def _telescoped_bytes(n: int, m: int, K: int, nodes: int) -> int:
    """Working memory of :func:`_quickscore_telescoped` per cell (``m`` counts every expanded finding)."""
    T = 2 ** max(m - 1, 0)
    return 8 * K * T * nodes * n * 18 + 8 * T * (m + 4) * n * 2 + 4096


#: the number of cells the cost model assumes when it chooses a method: a constant, so that the choice for a row never
#: depends on how many other rows are in its batch
_CHOICE_CELLS = 256


def _row_keys(prob: _Problem, cp: np.ndarray, cb: np.ndarray, m_cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group the cells by what their method and their numbers depend on, and say what each group is.

    A group shares m (expanded findings), the exact set of root configurations of positive weight when a cell has
    several (a block sums over the union of its cells' sets, and Quickscore's cancellation would amplify the
    rounding of a different sum; a cell with one is read from its own column, so such cells share a group), the
    causes its findings link to (in tenths per cause, for m > 6) and whether it can be telescoped.

    Returns
    -------
    labels : int array, shape (cells,)
        The group of each cell.
    groups : int array, shape (n_groups, 3)
        Per group: m, its number of root configurations, the tenths.
    """
    if cb.size == 1:  # one cell (one patient): the same key, without the arrays
        m = int(m_cell[0])
        rw = prob.root_weight
        count = 1 if prob.K == 1 else int(np.count_nonzero(rw[int(cp[0]) if rw.shape[0] > 1 else 0, int(cb[0]) if rw.shape[1] > 1 else 0] > 0))
        if count > 1:
            return _row_keys_general(prob, cp, cb, m_cell)
        tenths = 0
        if m > 6:
            linked = float(prob.expanded[0 if prob.expanded.shape[0] == 1 else int(cb[0])].astype(float) @ (prob.links[0] > 0).sum(axis=1).astype(float))
            tenths = int(np.rint(np.round(linked / prob.n, 1) * 10))
        return np.zeros(1, np.intp), np.array([[m, 1, tenths]], dtype=np.int64)
    return _row_keys_general(prob, cp, cb, m_cell)


def _row_keys_general(prob: _Problem, cp: np.ndarray, cb: np.ndarray, m_cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fb = cb if prob.expanded.shape[0] > 1 else np.zeros_like(cb)
    rw = prob.root_weight
    if prob.K == 1:
        positive = np.ones((cb.size, 1), dtype=bool)
    elif rw.shape[0] == 1 and rw.shape[1] == cb.size == prob.B:  # one parameter set, the cells in row order: no gather
        positive = rw[0] > 0
    else:
        positive = rw[cp if rw.shape[0] > 1 else 0, cb if rw.shape[1] > 1 else 0] > 0
        if positive.ndim == 1:
            positive = np.broadcast_to(positive, (cb.size, positive.size))
    per_finding = (prob.links[0] > 0).sum(axis=1).astype(float)  # (F,) the causes each finding links to
    linked = prob.expanded.astype(float) @ per_finding  # (B or 1,)
    tenths = np.rint(np.round(linked[fb] / prob.n, 1) * 10).astype(np.int64)
    tenths = np.where(m_cell > 6, tenths, 0)
    lean = np.asarray((prob.expanded & (prob.a[..., 1] > prob.a[..., 0])).any(axis=1))  # (B or 1,)
    tele = lean[fb].astype(np.int64)
    # a cell with at most one root configuration of positive weight (its context observed) is read from its own
    # column whatever the block (_root_columns): such cells share a group whatever their configuration
    count = positive.sum(axis=1)
    single = count <= 1
    table = np.stack([m_cell.astype(np.int64), tenths, tele, single.astype(np.int64)], axis=1)
    if not single.all():  # the other cells' sets of configurations, as bytes (0 for the single ones)
        packed = np.zeros((cb.size, (positive.shape[1] + 7) // 8), dtype=np.int64)
        packed[~single] = np.packbits(positive[~single], axis=1)
        table = np.concatenate([table, packed], axis=1)
    if table.shape[0] == 1:  # one cell (one patient): one group, without np.unique's cost
        rows, first, labels = table, np.zeros(1, np.intp), np.zeros(1, np.intp)
    else:  # the rows as opaque byte strings: the same groups as np.unique(axis=0), about five times faster
        table = np.ascontiguousarray(table)
        _, first, labels = np.unique(table.view(np.dtype((np.void, table.dtype.itemsize * table.shape[1]))).ravel(), return_index=True, return_inverse=True)
        rows = table[first]
    k = count[first].astype(np.int64)
    return labels.reshape(-1), np.stack([rows[:, 0], np.maximum(k, 1), rows[:, 1]], axis=1)


def _telescopable(prob: _Problem, rows: np.ndarray) -> bool:
    """Whether every one of these rows has an expanded finding leaning positive (the telescoped form needs one)."""
    fb = rows if prob.a.shape[0] > 1 else np.zeros(1, np.intp)
    return bool((prob.expanded[fb] & (prob.a[fb, :, 1] > prob.a[fb, :, 0])).any(axis=1).all())


def _telescoped_finding(d: _Block) -> np.ndarray | None:
    """Choose per cell the expanded finding to telescope, or None when some cell has no candidate.

    Candidates lean positive (likelihood of yes above no): their Quickscore factors are the ones that
    alternate in sign. The one least likely under the causes' weights (negative findings included,
    other findings and the mixture ignored) is chosen: its factor cancels most.
    """
    lean = d.aY > d.aN  # (C, m)
    if d.LE.shape[1] == 0 or d.LP.shape[1] or not lean.any(axis=1).all():
        return None
    logA, logB = d.logA[:, 0], d.logB[:, 0]  # (C, n): the first kept root column
    top = np.maximum(logA, logB)
    present = np.exp(logB - top) / (np.exp(logA - top) + np.exp(logB - top))  # P(cause present), roughly
    present = np.where(np.isfinite(present), present, 0.0)
    log_no = np.log1p(-d.leakE) + np.log1p(-present[:, None, :] * d.LE).sum(axis=-1)  # log P(finding no), roughly
    # (a candidate whose estimate is log 0 still beats every finding that is not one)
    return np.where(lean, np.maximum(log_no, -1e300), -np.inf).argmax(axis=1)


def _quickscore_telescoped(d: _Block, star: np.ndarray, workspace: _Workspace | None = None) -> _Sums:
    """Quickscore with one positive-leaning finding per cell summed without cancellation (telescoped).

    The finding ``f* = star`` (per cell) is taken out of the expanded findings. With likelihoods ``(a_no,
    a_yes)``, ``a_yes > a_no``, its factor is ``c0 + c1 (1 - q0 prod_{i in C} x_i) / (1 - q0)`` read as
    ``(a_no + (a_yes - a_no) leak) + (a_yes - a_no)(1 - leak) [some present cause fires it]``, and
    "some present cause fires it" is split by the first cause ``i`` (in index order) that does:
    ``b_i l_i prod_{j < i} u'_j prod_{j > i} u_j`` with ``u'_j = A_j + B_j g_Sj x_j`` (``x = 1 -
    link``), as for a prediction in :func:`_quickscore`. The numerator of cause ``c`` (present) splits
    into the firing cause before ``c`` (``c`` then weighs ``b_c / u_c`` times the prefix sum), at ``c``,
    and after ``c`` (``b_c x_c / u'_c`` times the suffix sum); with the mixture, the dual parts follow the
    same pattern, written so that nothing is subtracted (``tau_c R_{-c} + v_c = tau_c R + v_c A_c /
    u_c``, and the same with ``u'``). Every term is then non-negative: only the other expanded findings'
    ``alpha_S`` carry signs, over half as many terms, and the telescoped finding's cancellation is gone.
    For float64 only; the cells must have no predictions.
    """
    W, A, B0, sigma = _scaled(d)  # (C, K), (C, K, n), (C, K, n)
    C, K, n = A.shape
    m_all = d.LE.shape[1]
    rows = np.arange(C)
    keep = np.ones((C, m_all), dtype=bool)
    keep[rows, star] = False
    m = m_all - 1
    LE = d.LE[keep].reshape(C, m, n)
    leakE, aN, aY = d.leakE[keep].reshape(C, m), d.aN[keep].reshape(C, m), d.aY[keep].reshape(C, m)
    link = d.LE[rows, star]  # (C, n): the telescoped finding's links
    leak_s, aN_s, aY_s = d.leakE[rows, star], d.aN[rows, star], d.aY[rows, star]
    delta = aY_s - aN_s  # > 0
    c0 = aN_s + delta * leak_s  # weight of "no cause needed" (its leak, or its likelihood of no)
    c1 = delta * (1.0 - leak_s)  # weight of "a present cause fires it"
    T = 2**m
    subsets = _subsets(m)  # (T, m)
    bk = ((aN - aY) * (1.0 - leakE))[:, None, :]
    cm = np.empty((C, 3, T))  # alpha_S, |alpha_S| and |alpha_S| |S| (for the bound by subset size)
    np.multiply.reduce(np.where(subsets, bk, aY[:, None, :]), axis=-1, out=cm[:, 0])
    np.multiply.reduce(np.where(subsets, np.abs(bk), aY[:, None, :]), axis=-1, out=cm[:, 1])
    np.multiply(cm[:, 1], _subset_sizes(m, np.float64), out=cm[:, 2])
    x_all = (1.0 - LE).transpose(2, 0, 1)  # (n, C, m)
    G = _subset_products(x_all)  # (n, C, T)
    A = A.transpose(2, 0, 1)[:, None, :, :, None]  # (n, 1, C, K, 1)
    Bk = B0.transpose(2, 0, 1)[..., None] * G[:, :, None, :]  # (n, C, K, T)
    Bk = Bk[:, None]  # (n, 1, C, K, T)
    x = (1.0 - link).T[:, None, :, None, None]  # (n, 1, C, 1, 1)
    lnk = link.T[:, None, :, None, None]
    mix = d.mix
    if mix is not None:
        omega, tau = _node_tables(mix.member.tobytes(), np.float64)  # (Q1,), (Q1, n)
        tau = tau.T[:, :, None, None, None]  # (n, Q1, 1, 1, 1)
    else:
        omega, tau = np.ones(1), np.ones((n, 1, 1, 1, 1))
    Q1 = tau.shape[1]
    big = (n, Q1, C, K, T)

    def buffer(slot: int) -> np.ndarray:
        return workspace.get(slot, big, np.float64) if workspace is not None else np.empty(big)

    Bt = np.multiply(Bk, tau, out=buffer(0))  # present weight, times t for the mixture's parents
    u = np.add(Bt, A, out=buffer(1))
    up = np.multiply(Bt, x, out=buffer(2))
    up += A  # u' = A + B g t x <= u
    prod = np.multiply.reduce(u, axis=0)  # (Q1, C, K, T)
    invu = buffer(3)
    invu.fill(0)
    np.divide(1.0, u, out=invu, where=u > _TINY64)
    invup = buffer(4)
    invup.fill(0)
    np.divide(1.0, up, out=invup, where=up > _TINY64)
    others = np.multiply(invu, prod, out=buffer(5))  # prod_{j != i} u_j
    # core_i = B_i g_Si l_i prod_{j < i} u'_j prod_{j > i} u_j, by prefix products of u'_j / u_j <= 1
    ratio = np.multiply(up, invu, out=buffer(6))
    lower = _exclusive(np.multiply, ratio, buffer(7), 1.0)
    core = np.multiply(lower, others, out=buffer(6))
    core *= Bk
    core *= lnk
    real_fire = np.multiply(core, tau, out=buffer(7))  # the firing cause's plain weight
    # plain (leak) parts, as in _quickscore: real B_c t prod_{j != c} u_j; dual B_c prod_{j != c} u_j (t R + v A / u)
    plain_real = np.multiply(Bt, others, out=buffer(8))
    if mix is not None:
        v = mix.v.T[:, None, :, None, None]  # (n, 1, C, 1, 1)
        w = Bk * v  # (n, 1, C, K, T)
        r = np.multiply(w, invu, out=buffer(9))  # w_j / u_j
        R = r.sum(axis=0)  # (Q1, C, K, T)
        rp = np.multiply(w, x, out=buffer(10))
        rp *= invup  # w_j x_j / u'_j
        # R'_{<i} + R_{>i}, by exclusive prefix and suffix sums
        acc = _exclusive(np.add, rp, buffer(11), 0.0)
        after = _exclusive(np.add, r, buffer(15), 0.0, reverse=True)
        acc += after
        acc *= tau
        acc += v
        dual_fire = np.multiply(core, acc, out=buffer(11))
        aiu = np.multiply(A, invu, out=buffer(9))  # A_c / u_c <= 1 (r no longer needed)
        plain_dual = np.multiply(tau, R, out=buffer(10))
        plain_dual += v * aiu
        plain_dual *= Bk
        plain_dual *= others
    # sums over the firing cause before and after each cause (exclusive), then the numerators
    before_real = _exclusive(np.add, real_fire, buffer(12), 0.0)
    after_real = _exclusive(np.add, real_fire, buffer(13), 0.0, reverse=True)
    bu = np.multiply(Bk, invu, out=buffer(3))  # B_c / u_c (invu is no longer needed)
    bup = np.multiply(Bk, x, out=buffer(14))
    bup *= invup  # B_c x_c / u'_c
    fire_real = np.multiply(bu, before_real, out=buffer(0))  # (Bt no longer needed)
    fire_real += bup * after_real
    fire_real *= tau
    fire_real += real_fire
    if mix is not None:
        before_dual = _exclusive(np.add, dual_fire, buffer(1), 0.0)  # (u no longer needed)
        after_dual = _exclusive(np.add, dual_fire, buffer(2), 0.0, reverse=True)  # (up no longer needed)
        # B_c / u_c (t_c before_dual + v_c A_c / u_c before_real) + B_c x_c / u'_c (t_c after_dual + v_c A_c / u'_c after_real)
        before_dual *= tau
        before_dual += (v * aiu) * before_real
        before_dual *= bu
        after_dual *= tau
        after_dual += (v * A * invup) * after_real
        after_dual *= bup
        fire_dual = np.add(before_dual, after_dual, out=buffer(1))
        fire_dual += dual_fire
        # nodes: the plain part at t = 0 (no parent chosen) weighs L, the dual parts at the others omega
        L = mix.L[None, :, None, None]
        weights = omega[1:, None, None, None]
        tot_plain = prod[0] * L[0] + (prod[1:] * R[1:] * weights).sum(axis=0)  # (C, K, T)
        tot_fire = real_fire[:, 0].sum(axis=0) * L[0] + (dual_fire[:, 1:].sum(axis=0) * weights).sum(axis=0)
        num_plain = plain_real[:, 0] * L[0] + (plain_dual[:, 1:] * weights).sum(axis=1)  # (n, C, K, T)
        num_fire = fire_real[:, 0] * L[0] + (fire_dual[:, 1:] * weights).sum(axis=1)
    else:
        tot_plain = prod[0]
        tot_fire = real_fire[:, 0].sum(axis=0)
        num_plain = plain_real[:, 0]
        num_fire = fire_real[:, 0]
    c0k, c1k = c0[:, None, None], c1[:, None, None]
    tot = c0k * tot_plain + c1k * tot_fire  # (C, K, T)
    nums = c0k * num_plain + c1k * num_fire  # (n, C, K, T)
    cmW = (cm[:, :, None, :] * W[:, None, :, None]).reshape(C, 3, K * T)
    roots = np.matmul(tot, cm.transpose(0, 2, 1)) * W[:, :, None]  # (C, K, 3)
    num = np.matmul(cmW, nums.reshape(n, C, K * T).transpose(1, 2, 0))  # (C, 3, n)
    out = np.concatenate([roots.sum(axis=1, keepdims=True), roots, num.transpose(0, 2, 1)], axis=1)
    values, mag, sized = out[..., 0], out[..., 1], out[..., 2]
    t_min = float(_nodes(2 * Q1 - 2)[0][0]) if mix is not None else 1.0
    floor = T * Q1 * K * (n + m + 12) * (n + 2) ** 2 * 2.0**n / t_min * _UNDERFLOW_ULP
    base, slope = _telescoped_bound_columns(n, m, Q1, K)
    err = base * mag + slope * sized + d.input_error[:, None] * np.abs(values) + floor
    return _Sums(values, err, sigma, mag)


# ----------------------------------------------------------------------------------------------- subset dynamic programme


def _activate(X: np.ndarray, j: int, m: int, link: np.ndarray, keep: np.ndarray, transpose: bool) -> None:
    """Apply in place the activation of expanded finding ``j`` by one present cause.

    ``X`` has the subsets of the ``m`` expanded findings on its first axis (bit
    ``j`` of the index: finding ``j`` switched on); ``link`` and ``keep = 1 -
    link`` broadcast against its trailing axes. Forward, mass moves from "off"
    to "on" with probability ``link``; transposed (for the backward pass),
    ``g(off) <- keep g(off) + link g(on)``. Only products and sums of
    non-negative numbers.
    """
    V = X.reshape((2 ** (m - 1 - j), 2, 2**j) + X.shape[1:])
    off, on = V[:, 0], V[:, 1]
    if transpose:
        off *= keep
        off += on * link
    else:
        on += off * link
        off *= keep


def _subset_dp_bytes(n: int, m: int, K: int, nodes: int, npr: int, mixture: bool) -> int:
    parts = 2 if mixture else 1
    state = 8 * 2**m * nodes * K * parts
    return state * (n + 8 + 8 * npr) + 4096


def _subset_dp(d: _Block) -> _Sums:
    """Run a cancellation-free dynamic programme over the causes, for many positive findings.

    The state is the set of expanded findings already switched on (by their
    leaks or by an earlier present cause): ``2**m`` states, times the mixture's
    quadrature nodes and its dual part (no parent chosen yet / chosen). Each
    present cause switches each of its findings on with its link probability;
    the findings' likelihoods weight the final states. A backward pass gives
    the marginals of the causes; an extra state bit per predicted finding
    gives P(e, finding yes). Every number is a sum of products of non-negative
    numbers: cost ``O(n m 2**m)`` per row and root column, no cancellation.
    """
    W, A, B0, sigma = _scaled(d)
    C, K, n = A.shape
    m = d.LE.shape[1]
    npr = d.LP.shape[1]
    S = 2**m
    mix = d.mix
    if mix is not None:
        omega, tau = _node_tables(mix.member.tobytes(), np.float64)
        rho = np.zeros((tau.shape[0], C))
        rho[0] = mix.L
    else:
        omega, tau, rho = np.zeros(1), np.ones((1, n)), np.ones((1, C))
    Q1 = tau.shape[0]
    parts = 2 if mix is not None else 1  # plain part, and the dual part (a mixture parent chosen)
    keep = 1.0 - d.LE  # (C, m, n)
    start = _config_table(1.0 - d.leakE, d.leakE).T  # (S, C): the findings switched on by their leaks
    phi = _config_table(d.aN, d.aY).T  # (S, C): likelihood of each state of the findings
    # forward states (S, E, F, parts, Q1, C, K): E = 2 with predictions (one extra finding each, off / on), F = npr
    E, F = (2, npr) if npr else (1, 1)
    X = np.zeros((S, E, F, parts, Q1, C, K))
    X[:, :, :, 0] = start[:, None, None, None, :, None]
    if npr:
        X[:, 0, :, 0] *= (1.0 - d.leakP).T[None, :, None, :, None]
        X[:, 1, :, 0] *= d.leakP.T[None, :, None, :, None]
    a_all = A.transpose(2, 0, 1)  # (n, C, K)
    b_all = B0.transpose(2, 0, 1)
    bt_all = b_all[:, None] * tau.T[:, :, None, None]  # (n, Q1, C, K)
    w_all = b_all * mix.v.T[:, :, None] if mix is not None else None  # (n, C, K)
    active = [[j for j in range(m) if d.LE[:, j, i].any()] for i in range(n)]
    saved: list[np.ndarray] = []
    for i in range(n):
        TX = X.copy()
        for j in active[i]:
            _activate(TX, j, m, d.LE[:, j, i, None], keep[:, j, i, None], False)
        if npr:
            link = d.LP[:, :, i].T[:, None, None, :, None]  # (npr, 1, 1, C, 1)
            TX[:, 1] += TX[:, 0] * link
            TX[:, 0] *= 1.0 - link
        X *= a_all[i]
        X += bt_all[i] * TX
        if w_all is not None:
            X[:, :, :, 1] += w_all[i] * TX[:, :, :, 0]
        # the marginals need the states without the extra findings (summed out: their transitions are stochastic)
        saved.append(TX[:, :, 0].sum(axis=1) if npr else TX[:, 0, 0])
    # final weights (S, parts, Q1, C, K): the findings' likelihoods times the node weights (rho plain, omega dual)
    G = np.empty((S, parts, Q1, C, K))
    G[:, 0] = (phi[:, None, :] * rho[None])[..., None]
    if parts == 2:
        G[:, 1] = (phi[:, None, :] * omega[None, :, None])[..., None]
    X0 = X[:, :, 0].sum(axis=1) if npr else X[:, 0, 0]
    roots = (X0 * G).sum(axis=(0, 1, 2))  # (C, K)
    pred_k = np.einsum("sfpqck,spqck->fck", X[:, 1], G) if npr else None
    num = np.empty((C, K, n))
    for i in reversed(range(n)):
        TX = saved[i]
        num[:, :, i] = (bt_all[i] * (TX * G).sum(axis=(0, 1))).sum(axis=0)
        if w_all is not None:
            num[:, :, i] += w_all[i] * (TX[:, 0] * G[:, 1]).sum(axis=(0, 1))
        if i == 0:
            break
        TG = G.copy()
        for j in active[i]:
            _activate(TG, j, m, d.LE[:, j, i, None], keep[:, j, i, None], True)
        G *= a_all[i]
        G += bt_all[i] * TG
        if w_all is not None:
            G[:, 0] += w_all[i] * TG[:, 1]
    roots = roots * W
    values = np.concatenate([roots.sum(axis=1, keepdims=True), roots, np.einsum("ck,ckn->cn", W, num)], axis=1)
    if pred_k is not None:
        values = np.concatenate([values, np.einsum("ck,fck->cf", W, pred_k)], axis=1)
    # all sums of non-negative terms: a relative error from the roundings along a path through the causes
    # (each activation two, each cause a few) and the final sums; values are at most 2**n (times 2**n for
    # the marginals), so underflow loses at most this much
    relative = _gamma(n * (3 * m + 12) + S * Q1 + K + 40, np.float64) + d.input_error
    floor = float(S * Q1 * K * n * (3 * m + 12)) * 4.0**n * _UNDERFLOW_ULP
    return _Sums(values, floor + values * relative[:, None], sigma)


# ----------------------------------------------------------------------------------------------- enumeration


def _enumeration_bytes(n: int, m: int, K: int, npr: int) -> int:
    half = 2 ** ((n + 1) // 2)
    return 8 * (3 * 2**n + half * (4 * K + 6 * (m + npr) + K * (1 + npr) * 3 + 8)) + 4096


def _enumeration_activation_bytes(n: int, m: int) -> int:
    """Extra working memory per cell of :func:`_enumerate` with the activations."""
    half = 2 ** ((n + 1) // 2)
    return 8 * (3 * 2**n + half * 8 + m * (n + 1)) + 1024


def _enumerate(d: _Block, activations: bool = False) -> _Sums:
    """Sum over all ``2**n`` cause configurations, as the outer product of two halves.

    With ``activations``, also the expected activations of the hidden "fired" indicators (Diez 1993) of
    every expanded finding ``f`` (likelihood ``(a_no, a_yes)``, ``phi_f(C)`` its factor):
    P(leak fired, e) = ``a_yes leak_f sum_C P(C, e) / phi_f(C)`` and P(link i fired, e) = ``a_yes
    link_fi sum_{C with i} P(C, e) / phi_f(C)`` (``P(C, e) / phi_f(C)`` is P(C, e without f); where
    ``phi_f(C) = 0`` nothing can fire: ``a_yes link_fi <= phi_f(C)``), and the share of each owner of
    the mixture: P(parent j set its value, e) = ``sum_{C with j} P(C, e) v_j / s(C)``, ``s(C)`` the sum
    of ``v`` over the present parents, and the leak's ``sum_{C without parents} P(C, e)``. Only
    divisions and sums of non-negative numbers: the same relative error as the other outputs, no
    query per finding.
    """
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
    if d.mix is not None:
        member = d.mix.member
        s_lo = _sum_table(d.mix.v[:, lo])
        s_hi = _sum_table(d.mix.v[:, hi])
        count = _bits(nlo) @ member[lo].astype(float)
        count = count[:, None] + (_bits(n - nlo) @ member[hi].astype(float))[None, :]
        inverse = np.divide(1.0, count, out=np.zeros_like(count), where=count > 0)
        np.add(s_lo[:, :, None], s_hi[:, None, :], out=tmp)
        tmp *= inverse
        empty_lo = np.flatnonzero(_bits(nlo) @ member[lo].astype(float) == 0)
        empty_hi = np.flatnonzero(_bits(n - nlo) @ member[hi].astype(float) == 0)
        tmp[:, empty_lo[:, None], empty_hi[None, :]] = d.mix.L[:, None, None]
        lik *= tmp
        if activations:
            mix_factor, mix_inverse, mix_empty = tmp.copy(), inverse, (empty_lo, empty_hi)
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
    # every summand is at most 1; roundings that underflow lose at most this much in all; otherwise the error is
    # relative: the roundings along a configuration's product and those of the sums over the two halves
    floor = 2.0**n * K * (n + m + npr + 10) * (m + 2) * _UNDERFLOW_ULP
    relative = _gamma((m + 2) * (2 * n + 8) + Lo + Hi + K + 30, np.float64) + d.input_error
    values = np.concatenate([total[:, None], roots, num, pred], axis=1)
    if not activations:
        return _Sums(values, floor + values * relative[:, None], sigma)

    def spread(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """sum_C P-weights X(C) over all configurations (C,) and over those with each cause present (C, n)."""
        lo_w = np.einsum("ckl,clk->cl", Wlo, np.matmul(X, w_hi.transpose(0, 2, 1)))
        hi_w = (np.matmul(Wlo, X) * w_hi).sum(axis=1)
        return lo_w.sum(axis=1), np.concatenate([lo_w @ _bits(nlo), hi_w @ _bits(n - nlo)], axis=1)

    extra = np.zeros((C, m * (1 + n) + n + 1))
    ratio = np.empty_like(lik)
    for j in range(m):
        # finding j's factor (as in the product above), and P(C, e) / factor where it is positive
        np.multiply(q_lo[:, j, :, None], beta[:, j, None, :], out=tmp)
        tmp += alpha[:, j, :, None]
        ratio.fill(0.0)
        np.divide(lik, tmp, out=ratio, where=tmp > 0)
        whole, present = spread(ratio)
        extra[:, j * (1 + n)] = d.aY[:, j] * d.leakE[:, j] * whole
        extra[:, j * (1 + n) + 1 : (j + 1) * (1 + n)] = d.aY[:, j, None] * d.LE[:, j] * present
    if d.mix is not None:
        # P(C, e) / s(C) = P(C, e) / (factor * count); the leak owns the configurations without parents
        ratio.fill(0.0)
        np.divide(lik, mix_factor, out=ratio, where=mix_factor > 0)
        ratio *= mix_inverse
        _, present = spread(ratio)
        extra[:, m * (1 + n) : m * (1 + n) + n] = d.mix.v * present
        empty_lo, empty_hi = mix_empty
        extra[:, -1] = np.einsum("ckl,clk->c", Wlo[:, :, empty_lo], np.matmul(lik[:, empty_lo][:, :, empty_hi], w_hi[:, :, empty_hi].transpose(0, 2, 1)))
    # each value is a sum over the configurations of the products above times at most four more roundings (the
    # factor, the division, the likelihood and link or v); a configuration's underflow error is not magnified, as
    # a_yes link <= the factor and v_j <= s(C)
    extra_relative = _gamma((m + 2) * (2 * n + 8) + Lo + Hi + K + 40, np.float64) + d.input_error
    return _Sums(values, floor + values * relative[:, None], sigma, extra=extra, extra_err=4 * floor + extra * extra_relative[:, None])


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
    logq = np.log1p(-leak)[..., None]
    log_x = np.log1p(-link)  # (C, m + npr, n)
    for j in range(n):
        logq = np.concatenate([logq, logq + log_x[..., j : j + 1]], axis=-1)
    logr = np.log(-np.expm1(logq))
    loglik = np.zeros((C, N))
    for j in range(m):
        loglik += np.logaddexp(np.log(d.aY[:, j, None]) + logr[:, j], np.log(d.aN[:, j, None]) + logq[:, j])
    if d.mix is not None:
        member = d.mix.member
        logs = np.full((C, 1), -np.inf)
        logv = np.log(d.mix.v)
        count = _bits(n) @ member.astype(float)
        for j in range(n):
            logs = np.concatenate([logs, np.logaddexp(logs, logv[:, j : j + 1]) if member[j] else logs], axis=-1)
        logmix = np.where(count > 0, logs - np.log(np.maximum(count, 1)), np.log(d.mix.L)[:, None])
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

    values = np.concatenate([rel(logtotal)[:, None], rel(logroots), rel(lognum), rel(logpred)], axis=1)
    return _Sums(values, np.zeros_like(values), shift)


# ----------------------------------------------------------------------------------------------- exact zeros


def _feasible(d: _Block) -> np.ndarray:
    """Which outputs are exactly non-zero, from the zero pattern of the inputs alone.

    Returns ``(C, 1 + K + n + npr)``: whether P(e), W_k P(e | k), P(cause
    present, e) and P(e, finding yes) are positive (the columns of :class:`_Sums`). Feasibility is monotone in the present causes (positive findings
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
    if d.mix is None:
        feasible = each & satisfied(present)
    else:
        vpos = (d.mix.v > 0) & d.mix.member[None, :]
        case1 = satisfied(present) & (present & vpos[:, None, None, :]).any(axis=-1)
        present2 = allowB & ~d.mix.member
        absent_ok = (allowA | ~d.mix.member).all(axis=-1)
        case2 = satisfied(present2) & absent_ok & (d.mix.L > 0)[:, None, None]
        feasible = each & (case1 | case2)
    feasible &= posW[:, :, None]
    roots = feasible[:, :, 0]
    return np.concatenate([roots.any(axis=1, keepdims=True), roots, feasible[:, :, 1:].any(axis=1)], axis=1)


# ----------------------------------------------------------------------------------------------- driver


def _judge(d: _Block, s: _Sums, tol: float, ld: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Accept or reject each cell's outputs; replace exact zeros.

    Returns ``ok (C,)``, ``impossible (C,)``, ``ld_hope (C,)`` (a longdouble
    rerun is predicted to pass) and the values ``(C, X)``.
    """
    values = s.values
    ok = s.err <= tol * np.abs(values)
    good = ok.all(axis=1)
    impossible = np.zeros(good.shape, dtype=bool)
    if good.all():
        return good, impossible, impossible, values
    values = values.copy()
    K, n = d.logW.shape[1], d.logAB.shape[2]
    # structural zeros: a root configuration of weight 0; a cause that cannot be present
    zero = np.zeros(values.shape, dtype=bool)
    zero[:, 1 : 1 + K] = ~np.isfinite(d.logW)
    zero[:, 1 + K : 1 + K + n] = (~np.isfinite(d.logB) | zero[:, 1 : 1 + K, None]).all(axis=1)
    values[zero] = 0.0
    ok |= zero
    bad = ~ok.all(axis=1)
    # a failure may be an exact zero, unless the value is certainly not zero (|value| > its error bound):
    # decide those from the zero pattern of the inputs
    maybe_zero = bad & ((np.abs(values) <= s.err) & ~ok).any(axis=1)
    if maybe_zero.any():
        rows = np.flatnonzero(maybe_zero)
        feasible = _feasible(_subblock(d, rows))
        impossible[rows] = ~feasible[:, 0]
        zero = ~feasible & ~ok[rows]
        values[rows] = np.where(zero, 0.0, values[rows])
        ok[rows] |= zero
        bad = ~ok.all(axis=1) & ~impossible
    ld_hope = np.zeros(bad.shape, dtype=bool)
    if ld and s.gamma_ld is not None and bad.any():
        # the longdouble bound, predicted: gamma_ld * magnitude + input error <= tol * (a lower bound on the true value)
        lower = np.abs(values) - s.err
        hope = (s.gamma_ld * s.mag + 2 * d.input_error[:, None] * lower <= tol * lower) & (lower > 0)
        ld_hope = bad & (hope | ok).all(axis=1)
    return ~bad, impossible, ld_hope, values


@dataclass
class _Plan:
    """Per-cell memory, working-array size and estimated time of each method, for one group of cells."""

    need: dict[str, int]  # bytes per cell (working memory)
    array: dict[str, int]  # bytes per cell of the largest working array (for cache-sized chunks)
    calls: dict[str, float]  # numpy calls per chunk
    work: dict[str, float]  # array element operations per cell, in float64-multiply equivalents
    #: a pure memo of :meth:`seconds` (the plans themselves are memoised by :func:`_plan`)
    known: dict[tuple[str, int], float] = field(default_factory=dict, repr=False)

    def seconds(self, method: str, cells: int) -> float:
        """Estimated time per cell when ``cells`` cells go to ``method`` (call overhead shared by a chunk)."""
        value = self.known.get((method, cells))
        if value is None:
            chunk = max(1, min(cells, _CACHE_BYTES // self.array[method]))
            value = self.known[(method, cells)] = self.calls[method] * 1.5e-6 / chunk + self.work[method] * 0.5e-9
        return value


@functools.lru_cache(maxsize=256)
def _plan(n: int, m: int, K: int, nodes: int, npr: int, mixture: bool, active: float) -> _Plan:
    """Estimate the memory and time of each method (rough constants, measured on x86-64, only to choose).

    ``active`` is the mean number of expanded findings a cause links to (the
    dynamic programme's work per cause).
    """
    S, parts = 2**m, 2 if mixture else 1
    qs_work = K * 2.0**m * nodes * n * (16 + 16 * npr)
    qs_array = K * 2**m * nodes * n * (1 + npr)
    return _Plan(
        need={
            "quickscore": _quickscore_bytes(n, m, K, nodes, npr, np.float64),
            "quickscore-telescoped": _telescoped_bytes(n, m, K, nodes),
            "quickscore-longdouble": _quickscore_bytes(n, m, K, nodes, npr, np.longdouble),
            "subset-dp": _subset_dp_bytes(n, m, K, nodes, npr, mixture),
            "enumeration": _enumeration_bytes(n, m, K, npr),
            "enumeration-log": _enumeration_log_bytes(n, m, K, npr),
        },
        array={
            "quickscore": 8 * qs_array,
            "quickscore-telescoped": 8 * K * 2 ** max(m - 1, 0) * nodes * n,
            "quickscore-longdouble": np.dtype(np.longdouble).itemsize * qs_array,
            "subset-dp": 8 * S * nodes * K * parts * (1 + 2 * npr),
            "enumeration": 8 * 2**n,
            "enumeration-log": 8 * 2**n * K,
        },
        calls={
            "quickscore": 70 + 25 * (npr > 0),
            "quickscore-telescoped": 110,
            "quickscore-longdouble": 80 + 25 * (npr > 0),
            "subset-dp": 2 * n * (6 * active * parts + 14) + 40,
            "enumeration": 3 * m + 60,
            "enumeration-log": 2 * n + 8 * m + 60,
        },
        work={
            "quickscore": qs_work,
            "quickscore-telescoped": _TELESCOPED_WORK * K * 2.0 ** max(m - 1, 0) * nodes * n * 16,
            "quickscore-longdouble": _LONGDOUBLE_WORK * qs_work,
            "subset-dp": 2 * n * (3 * active + 10) * S * nodes * K * parts * (1 + npr),
            "enumeration": 2.0**n * (3 * m + 8 + 3 * K * (1 + npr)) + 2.0 ** ((n + 1) // 2) * 40 * (m + npr + K),
            "enumeration-log": 2.0**n * 10 * (K + m + npr + n),
        },
    )


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
    tolerance=5e-10,
    methods=METHODS,
    checked=False,
    activations=False,
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
        computed probability (P(e), P(cause present, e), ...); posteriors,
        ratios of two of them, are then within ``2 * tolerance``.
    methods : sequence of str
        Methods allowed (see :data:`METHODS`); for testing and diagnosis.
    checked : bool, default False
        True when the network's numbers (``cause_given_root``, ``leak``,
        ``links``, the mixtures' parents, distributions and leaks) come from
        tables already checked (a compiled network's): their checks are
        skipped. The evidence is checked either way.
    activations : bool, default False
        Also the expected activations of the findings' hidden "fired"
        indicators and the mixture owners' shares (what an EM step needs),
        where the enumeration is used and cheaper than one query per
        expanded finding (see ``FactorisedResult.activated``); only without
        ``predict``.

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
    >>> r.method  # one positive finding: Quickscore sums two terms
    'quickscore'
    >>> factorised_query(np.ones((1, 1, 1)), np.array([[[0.1, 0.2]]]), np.ones((1, 2, 2)), np.array([[0.01]]),
    ...                  np.array([[[0.9, 0.5]]]), np.array([[[0.0, 1.0]]]), methods=("quickscore",)).cause_posterior.round(4)
    array([[[0.4815, 0.581 ]]])
    """
    unknown = set(methods) - set(METHODS)
    if unknown or not methods:
        raise ArgumentError(f"unknown methods {sorted(unknown)}; choose among {METHODS}")
    if np.shape(cause_likelihood)[0] == 0:  # no rows: empty answers of the right shapes (the per-row scales cannot be reshaped)
        P = max(np.shape(root_weight)[0], np.shape(cause_given_root)[0], np.shape(leak)[0])
        K, n, npr = np.shape(root_weight)[-1], np.shape(cause_likelihood)[1], int(np.size(predict))
        return FactorisedResult(np.empty((P, 0, n)), np.empty((P, 0, K)), np.empty((P, 0)), np.empty((P, 0, npr)), "none")
    with np.errstate(all="ignore"):
        problem = _prepare(root_weight, cause_given_root, cause_likelihood, leak, links, finding_likelihood, mixtures, predict, checked)
        if activations and problem.predict.size:
            raise ArgumentError("activations are computed only without predictions (predict must be empty)")
        return _query(problem, max_bytes, tolerance, methods, bool(activations))


def _query(prob: _Problem, max_bytes: int, tolerance: float, methods: Sequence[str], activations: bool = False) -> FactorisedResult:
    P, B, K, n = prob.P, prob.B, prob.K, prob.n
    npr = prob.predict.size
    activated = np.zeros((P, B), dtype=bool) if activations else None
    fired = np.zeros((P, B, prob.F, 1 + n)) if activations else None
    owners = np.zeros((P, B, n + 1)) if activations else None
    cause_post = np.empty((P, B, n))
    root_post = np.empty((P, B, K))
    log_ev = np.empty((P, B))
    pred_post = np.empty((P, B, npr))
    cause_post.fill(np.nan)
    root_post.fill(np.nan)
    log_ev.fill(-np.inf)
    pred_post.fill(np.nan)
    used: set[str] = set()
    if P * B == 1:
        cp = cb = _ZERO_INDEX
    else:
        cp, cb = np.divmod(np.arange(P * B), B)
    alive = ~prob.row_dead[cb]
    m_cell = prob.m_row[cb] if prob.m_row.shape[0] > 1 else prob.m_row[np.zeros(cb.size, np.intp)]
    every = alive.all()
    # Rows are grouped, and each group's method chosen, by what the row itself is (its number of expanded findings m,
    # the causes those findings link to, its root configurations, whether it can be telescoped), never by how many
    # other rows share it: a row gets the same method, hence the same answer, in any batch (diagnose_many's chunks
    # equal one query). The methods agree only to the tolerance, so a choice made per batch moved answers by ~1e-13.
    key_cell, described = _row_keys(prob, cp, cb, m_cell)
    groups = [int(key_cell[0])] if every and (key_cell == key_cell[0]).all() else np.unique(key_cell[alive])
    nodes = 1 + (_nodes(int(prob.mixture.member.sum()))[0].size if prob.mixture is not None else 0)
    ld_allowed = _LONGDOUBLE_USEFUL and "quickscore-longdouble" in methods

    def store(index: np.ndarray, block: _Block, values: np.ndarray, impossible: np.ndarray, sigma: np.ndarray, method: str) -> None:
        # (one cell: plain indexing, which is much cheaper than gathering and scattering)
        p, b = (slice(0, 1), 0) if P * B == 1 else (cp[index], cb[index])
        k = block.kcol.shape[1]
        total = values[:, 0]
        post = values[:, 1:] / values[:, :1]
        evidence = np.log(total) + (sigma + block.log_const + prob.row_log_scale[b])
        dead = impossible | ~(evidence > -np.inf)  # (NaN when the total is not positive)
        if dead.any():
            post[dead] = np.nan
            evidence[dead] = -np.inf
        if K == 1:
            root_post[p, b] = post[:, 0:1]
        else:
            rp = np.zeros((index.size, K))
            if k == 1:
                rp[np.arange(index.size), block.kcol[:, 0]] = post[:, 0]
            else:
                np.put_along_axis(rp, block.kcol, post[:, :k], axis=1)
            rp[dead] = np.nan
            root_post[p, b] = rp
        cause_post[p, b] = post[:, k : k + n]
        pred_post[p, b] = post[:, k + n :]
        log_ev[p, b] = evidence
        if not dead.all():
            used.add(method)

    def store_activations(index: np.ndarray, block: _Block, sums: _Sums, values: np.ndarray, impossible: np.ndarray, ok: np.ndarray) -> None:
        """Keep the activations of the accepted, possible rows whose activations meet the tolerance (relative to P(e))."""
        assert activated is not None and fired is not None and owners is not None and sums.extra is not None and sums.extra_err is not None
        good = ok & ~impossible & (sums.extra_err <= tolerance * np.abs(values[:, :1])).all(axis=1) & (values[:, 0] > 0)
        if not good.any():
            return
        rows = np.flatnonzero(good)
        p, b = (np.zeros(rows.size, np.intp), np.zeros(rows.size, np.intp)) if P * B == 1 else (cp[index[rows]], cb[index[rows]])
        post = sums.extra[rows] / values[rows, :1]
        m = block.LE.shape[1]
        if m:
            fb = b if prob.expanded.shape[0] > 1 else np.zeros(rows.size, np.intp)
            eidx = np.nonzero(prob.expanded[fb])[1].reshape(rows.size, m)
            fired[p[:, None], b[:, None], eidx] = post[:, : m * (1 + n)].reshape(rows.size, m, 1 + n)
        if block.mix is not None:
            owners[p, b] = post[:, m * (1 + n) :]
        activated[p, b] = True

    for key in groups:
        key = int(key)
        group = cp if P * B == 1 else np.arange(P * B) if len(groups) == 1 and every else np.flatnonzero(alive & (key_cell == key))
        m, row_k, tenths = (int(x) for x in described[key])
        roots = _root_columns(prob, cp[group], cb[group])
        # the dynamic programme's work depends on how many of the expanded findings each cause links to
        # (with few expanded findings it is never the cheapest: the key holds m then)
        active = tenths / 10 if m > 6 else float(m)
        plan = _plan(n, m, row_k, nodes, npr, prob.mixture is not None, active)
        need = plan.need
        fits = {name: name in methods and need[name] <= max_bytes for name in METHODS}
        fits["quickscore-longdouble"] &= ld_allowed
        # the telescoped form needs no predictions and, in every cell, an expanded finding leaning positive (checked
        # when first needed: with Quickscore allowed, only after it fails)
        fits["quickscore-telescoped"] &= not npr and not fits["quickscore"]
        if fits["quickscore-telescoped"]:
            fits["quickscore-telescoped"] = _telescopable(prob, cb[group])

        def cheapest(candidates: Sequence[str], cells: int, plan: _Plan = plan, fits: dict[str, bool] = fits) -> str | None:
            usable = [name for name in candidates if fits[name]]
            return min(usable, key=lambda name: plan.seconds(name, _CHOICE_CELLS)) if usable else None

        # Quickscore's bound fails more often the more findings are expanded (a rough guess, used only to choose):
        # count the fallback it would then need
        exact = cheapest(("subset-dp", "enumeration"), group.size)
        risk = min(1.0, max(0.0, (m - 4) / 6)) * (plan.seconds(exact, _CHOICE_CELLS) if exact is not None else 0.0)
        first = exact if fits["quickscore"] and exact is not None and plan.seconds("quickscore", _CHOICE_CELLS) + risk > plan.seconds(exact, _CHOICE_CELLS) else None
        first = first or cheapest(("quickscore", "quickscore-telescoped", "subset-dp", "enumeration"), group.size) or cheapest(("quickscore-longdouble", "enumeration-log"), group.size)
        # the activations come with the enumeration; otherwise the caller makes one more query per expanded finding
        # (and one with a parameter set per mixture owner): take the enumeration when that is cheaper
        with_activations = False
        if activations and "enumeration" in methods and need["enumeration"] + _enumeration_activation_bytes(n, m) <= max_bytes:
            owners_sets = int(prob.mixture.member.sum()) + 1 if prob.mixture is not None else 0
            enumerating = plan.seconds("enumeration", _CHOICE_CELLS) * (2 + 0.8 * m + (0.8 if prob.mixture is not None else 0))
            querying = plan.seconds(first, _CHOICE_CELLS) * (1 + m) + plan.seconds(first, _CHOICE_CELLS) * owners_sets if first is not None else math.inf
            with_activations = first == "enumeration" or enumerating < querying
            if with_activations:
                first = "enumeration"
        if first is None:
            smallest = min((name for name in METHODS if name in methods), key=lambda name: need[name])
            raise MemoryBudgetError(need[smallest], max_bytes, f"one row of the factorised sums ({smallest}, n = {n} causes, m = {m} expanded findings)")
        # (method, rows, whether a longdouble rerun of Quickscore is predicted to pass for each row, if known)
        queue: list[tuple[str | None, np.ndarray, np.ndarray | None]] = [(first, group, None)]
        # the last block built, with its cells: a rerun of the same cells by another method (one patient whose
        # Quickscore bound failed) reads the same block (blocks are never written to)
        last: tuple[np.ndarray, _Block] | None = None
        while queue:
            method, todo, known_hope = queue.pop(0)
            if method is None:
                allowed = [x for x in METHODS if x in methods and x != "quickscore"]
                sizes = ", ".join(f"{x} {need[x]} bytes" for x in allowed) or "none allowed"
                raise MemoryBudgetError(
                    min((need[x] for x in allowed), default=0),
                    max_bytes,
                    f"{todo.size} row(s) that cannot be computed to the tolerance {tolerance:g} by quickscore "
                    f"(n = {n} causes, m = {m} expanded findings; the cancellation-free methods need per row: {sizes})",
                )
            # chunks within the budget, and small enough for the working arrays to stay in cache
            extra_need = _enumeration_activation_bytes(n, m) if with_activations and method == "enumeration" else 0
            chunk = max(1, min(max_bytes // (need[method] + extra_need), _CACHE_BYTES // plan.array[method]))
            failed_parts: list[np.ndarray] = []
            hope_parts: list[np.ndarray] = []
            workspace = _Workspace()
            for start in range(0, todo.size, chunk):
                index = todo[start : start + chunk]
                whole = index.size == group.size
                if last is not None and last[0].size == index.size and np.array_equal(last[0], index):
                    block = last[1]
                else:
                    block = _make_block(prob, cp[index], cb[index], m, roots if whole else None)
                    last = (index, block)
                star = _telescoped_finding(block) if method == "quickscore-telescoped" else None
                if method == "quickscore":
                    sums = _quickscore(block, np.float64, workspace)
                elif method == "quickscore-telescoped":
                    if star is None:  # (not expected: checked for the group) every row moves on
                        failed_parts.append(index)
                        hope_parts.append(np.zeros(index.size, dtype=bool))
                        continue
                    sums = _quickscore_telescoped(block, star, workspace)
                elif method == "quickscore-longdouble":
                    sums = _quickscore(block, np.longdouble, workspace)
                elif method == "subset-dp":
                    sums = _subset_dp(block)
                elif method == "enumeration":
                    sums = _enumerate(block, activations=with_activations)
                else:
                    sums = _enumerate_log(block)
                ok, impossible, ld_hope, values = _judge(block, sums, tolerance, ld_allowed)
                if sums.extra is not None:
                    store_activations(index, block, sums, values, impossible, ok)
                if ok.all():
                    store(index, block, values, impossible, sums.sigma, method)
                    continue
                if ok.any():
                    keep = np.flatnonzero(ok)
                    store(index[keep], _subblock(block, keep), values[keep], impossible[keep], sums.sigma[keep], method)
                failed_parts.append(index[~ok])
                hope_parts.append(ld_hope[~ok])
            if not failed_parts:
                continue
            failed = np.concatenate(failed_parts)
            hope = np.concatenate(hope_parts)
            if known_hope is not None:  # (the telescoped sums predict nothing about longdouble: Quickscore's prediction holds)
                hope = known_hope[np.searchsorted(todo, failed)] if todo.size != failed.size else known_hope
            # where the rows that failed go next: Quickscore's to its telescoped form when it is the cheapest, then
            # to cancellation-free methods (or a longdouble rerun predicted to pass); log space for those whose
            # numbers underflow
            exact = cheapest(("subset-dp", "enumeration"), failed.size)
            if method == "quickscore" and "quickscore-telescoped" in methods and not npr and need["quickscore-telescoped"] <= max_bytes:
                fits["quickscore-telescoped"] = _telescopable(prob, cb[failed])
            if method == "quickscore" and fits["quickscore-telescoped"] and plan.seconds("quickscore-telescoped", _CHOICE_CELLS) < min(
                plan.seconds(exact, _CHOICE_CELLS) if exact is not None else math.inf,
                plan.seconds("quickscore-longdouble", _CHOICE_CELLS) if fits["quickscore-longdouble"] else math.inf,
            ):
                # (per row: the rows Quickscore in long double would not rescue go the telescoped way; the others too
                # when that is cheaper, whatever their neighbours)
                queue.append(("quickscore-telescoped", failed, hope))
            elif method in ("quickscore", "quickscore-telescoped"):
                to_ld = hope & fits["quickscore-longdouble"]
                if exact is not None:
                    to_ld &= plan.seconds("quickscore-longdouble", _CHOICE_CELLS) < plan.seconds(exact, _CHOICE_CELLS)
                queue += [("quickscore-longdouble", failed[to_ld], None), (exact or cheapest(("enumeration-log",), failed.size), failed[~to_ld], None)]
            elif method == "quickscore-longdouble":
                queue.append((exact or cheapest(("enumeration-log",), failed.size), failed, None))
            elif method != "enumeration-log":
                queue.append((cheapest(("enumeration-log",), failed.size), failed, None))
            else:
                queue.append((None, failed, None))
            queue = [(name, rows, h) for name, rows, h in queue if rows.size]
    method = "+".join(name for name in METHODS if name in used) or "none"
    return FactorisedResult(cause_post, root_post, log_ev, pred_post, method, activated, fired, owners)
