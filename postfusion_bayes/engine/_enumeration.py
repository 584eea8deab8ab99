"""Exact joint posterior of a layered network's middle layer, by enumeration computed from the structure.

:mod:`._layered` precomputes products over all (root configuration, middle
configuration) pairs, which pays for small middle layers and is the fast path
for them. Here nothing of size ``K x J`` is kept: for each row the prior of
every middle configuration is summed over the row's possible root
configurations in chunks, and each observed leaf's likelihood is computed from
its structured numbers (noisy-OR: one matrix product over the configurations;
mixture: one matrix product and a count) or gathered from its dense table. All
in log space, so nothing underflows. Memory per row is about ``J`` times a few
dozen bytes, plus ``J x chunk`` for the root sum, chunked to the budget.

This is what the joint quantities need when the middle layer is large (the
information a test gives about every combination of causes, the most probable
explanations, learning's expected counts): 2**16 configurations of 16 causes
take a few milliseconds and a few MB per row.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import MemoryBudgetError
from ._noisy_or import _noisy_or_table
from .encoding import EncodedEvidence
from .structured import Mixture, NoisyOr
from .tables import NetworkTables

__all__ = ["enumerate_joint", "enumeration_bytes"]

_BYTES_PER_CONFIGURATION = 8 * 8  # float64 working arrays alive at once per configuration


def enumeration_bytes(n_configurations: int, n_middle: int) -> int:
    """Peak bytes of :func:`enumerate_joint` for one row (one root configuration at a time)."""
    return int(n_configurations) * (_BYTES_PER_CONFIGURATION + 8 * n_middle)


@functools.lru_cache(maxsize=8)
def _binary_configurations(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every configuration of ``n`` binary variables (last fastest), as states ``(2**n, n)`` and as floats.

    A pure memo (a function of ``n`` alone, read-only arrays): the joint queries of one network all use
    the same table, which costs more to build than most of the query. Room for a few sizes: a query
    also asks for its two halves (:func:`_split_prior`), and learning for its completions.
    """
    J = 2**n
    big_endian = np.arange(J, dtype=">u4").view(np.uint8).reshape(J, 4)
    configurations = np.unpackbits(big_endian, axis=1)[:, 32 - n :].astype(np.intp)
    present = configurations.astype(float)
    configurations.setflags(write=False)
    present.setflags(write=False)
    return configurations, present


def _log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(x)


def enumerate_joint(
    tables: NetworkTables,
    roots: Sequence[str],
    middle: Sequence[str],
    leaves: Sequence[str],
    evidence: EncodedEvidence,
    budget: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joint posterior of the middle layer's configurations, row by row.

    Parameters
    ----------
    tables : NetworkTables
        Unbatched tables of a layered network (roots -> middle -> leaves).
    roots, middle, leaves : sequence of str
        The layers (isolated variables must be handled by the caller).
    evidence : EncodedEvidence
        The rows.
    budget : int
        Bytes a row may use at its peak.

    Returns
    -------
    configurations : int array, shape (J, n_middle)
        The middle variables' states in each configuration (last variable fastest).
    posterior : array, shape (n_rows, J)
        P(configuration | row); NaN in impossible rows.
    log_evidence : array, shape (n_rows,)
        log P(row), -inf where impossible (soft evidence as encoded: scaled).

    Raises
    ------
    MemoryBudgetError
        When one row cannot fit in the budget even one root configuration at a time.
    """
    cards = [tables.cardinality(m) for m in middle]
    J = int(np.prod(cards, dtype=np.int64))
    needed = enumeration_bytes(J, len(middle))
    if needed > budget:
        raise MemoryBudgetError(needed, budget, f"enumerating the {J:,} joint configurations of {len(middle)} variables")
    binary_table = None
    if middle and all(c == 2 for c in cards) and len(middle) <= 32:  # the bits of the configuration number, last variable fastest
        binary_table = _binary_configurations(len(middle))
        configurations = binary_table[0]
    else:
        configurations = np.stack(np.unravel_index(np.arange(J), cards), axis=1) if middle else np.zeros((1, 0), dtype=np.intp)
    mid_pos = {m: i for i, m in enumerate(middle)}
    root_cards = [tables.cardinality(r) for r in roots]
    K = int(np.prod(root_cards, dtype=np.int64)) if roots else 1
    root_states = np.stack(np.unravel_index(np.arange(K), root_cards), axis=1) if roots else np.zeros((1, 0), dtype=np.intp)
    dense_ev = evidence.dense({v: tables.cardinality(v) for v in evidence.names})
    B = evidence.n_rows

    # root prior of every root configuration (K,), and the evidence-free log P(middle state | k) gathers
    log_root_prior = np.zeros(K)
    for i, r in enumerate(roots):
        log_root_prior = log_root_prior + _log(np.asarray(tables.cpts[r])[root_states[:, i]])
    middle_tables = {m: np.asarray(tables.cpts[m]) for m in middle}

    # leaves: evidence-independent pieces
    binary = all(c == 2 for c in cards)
    present = binary_table[1] if binary_table is not None else None  # (J, n)
    noisy = [leaf for leaf in leaves if isinstance(tables.cpd(leaf), NoisyOr)] if binary else []
    if noisy:  # every noisy-OR leaf at once: log P(no | configuration) = log(1 - leak) + present @ log(1 - links)
        log_inhibit = np.zeros((len(middle), len(noisy)))
        noisy_links = np.zeros((len(noisy), len(middle)))  # the links and leaks themselves, for tables over the configurations
        noisy_leaks = np.zeros(len(noisy))
        certain = np.zeros((len(middle), len(noisy)))
        log_open = np.empty(len(noisy))
        for k, leaf in enumerate(noisy):
            cpd = tables.cpd(leaf)
            assert isinstance(cpd, NoisyOr)
            rows = [mid_pos[p] for p in tables.parents[leaf]]
            links = np.asarray(cpd.links, dtype=float)
            with np.errstate(divide="ignore"):
                log_inhibit[rows, k] = np.where(links < 1, np.log1p(-np.minimum(links, 1.0)), 0.0)
            certain[rows, k] = links >= 1
            noisy_links[k, rows] = links
            noisy_leaks[k] = float(cpd.leak)
            with np.errstate(divide="ignore"):
                log_open[k] = np.log1p(-float(cpd.leak))
    noisy_index = {leaf: k for k, leaf in enumerate(noisy)}
    noisy_arrays: tuple[Any, Any, Any] = (log_inhibit, certain, log_open) if noisy else (None, None, None)
    raw = (noisy_links, noisy_leaks) if noisy else None

    posterior = np.empty((B, J))
    log_evidence = np.empty(B)
    for b in range(B):
        # 1. prior of each middle configuration, summed over the root configurations this row allows
        weight = log_root_prior.copy()
        for i, r in enumerate(roots):
            if r in dense_ev:
                weight = weight + _log(dense_ev[r][b, root_states[:, i]])
        active = np.flatnonzero(weight > -np.inf)
        if active.size == 0:
            posterior[b] = np.nan
            log_evidence[b] = -np.inf
            continue
        shift_k = weight[active].max()
        if present is not None and active.size == 1:
            log_prior = _additive_row(tables, roots, middle, mid_pos, root_states[active[0]], dense_ev, b, present, noisy, noisy_index, *noisy_arrays)
            handled = {leaf for leaf in noisy if leaf in dense_ev and dense_ev[leaf][b][1] == 0.0}
            log_prior = log_prior + weight[active[0]]
            log_prior = _remaining_leaves(tables, leaves, mid_pos, configurations, dense_ev, b, present, noisy, noisy_index, *noisy_arrays, log_prior, handled, raw)
            _normalise_row(log_prior, posterior, log_evidence, b)
            continue
        log_prior = np.full(J, -np.inf)
        chunk = max(1, int(budget // (J * 8 * 4)))  # (k, J) working arrays
        for start in range(0, active.size, chunk):
            ks = active[start : start + chunk]
            if present is not None:  # binary middle: one matrix product per chunk of root configurations
                p = np.empty((ks.size, len(middle)))
                for m, i in mid_pos.items():
                    table = middle_tables[m]
                    idx = tuple(root_states[ks, roots.index(q)] for q in tables.parents[m])
                    p[:, i] = table[idx][:, 1] if idx else table[1]
                split = _split_prior(p, weight[ks] - shift_k)
                if split is not None:
                    log_prior = np.logaddexp(log_prior, split)
                    continue
                with np.errstate(divide="ignore", invalid="ignore"):
                    log_on, log_off = np.log(p), np.log1p(-p)
                    # present @ log p + (1 - present) @ log(1 - p), with 0 * log 0 counted as 0
                    term = np.where(np.isfinite(log_on), log_on, 0.0) @ present.T + np.where(np.isfinite(log_off), log_off, 0.0) @ (1.0 - present).T
                    impossible = (~np.isfinite(log_on)).astype(float) @ present.T + (~np.isfinite(log_off)).astype(float) @ (1.0 - present).T
                term = np.where(impossible > 0, -np.inf, term) + (weight[ks] - shift_k)[:, None]
            else:
                term = np.repeat((weight[ks] - shift_k)[:, None], J, axis=1)  # (k, J)
                for m, i in mid_pos.items():
                    table = middle_tables[m]
                    idx = tuple(root_states[ks, roots.index(q)] for q in tables.parents[m])
                    probs = table[idx] if idx else np.broadcast_to(table, (ks.size, cards[i]))  # (k, card)
                    term += _log(probs)[:, configurations[:, i]]
            top = term.max(axis=0)
            finite = top > -np.inf
            summed = np.full(J, -np.inf)
            summed[finite] = top[finite] + np.log(np.exp(term[:, finite] - top[finite]).sum(axis=0))
            log_prior = np.logaddexp(log_prior, summed)
        log_prior += shift_k
        # 2. evidence on the middle layer
        for m, i in mid_pos.items():
            if m in dense_ev:
                log_prior = log_prior + _log(dense_ev[m][b, configurations[:, i]])
        # 3. leaves: the noisy-OR ones together, the others one by one
        log_prior = _remaining_leaves(tables, leaves, mid_pos, configurations, dense_ev, b, present, noisy, noisy_index, *noisy_arrays, log_prior, set(), raw)
        _normalise_row(log_prior, posterior, log_evidence, b)
    return configurations, posterior, log_evidence


#: Largest spread, in nats, of the terms that :func:`_split_prior` sums in linear space: below it none underflows.
_SPLIT_RANGE = 600.0


def _split_prior(p: np.ndarray, log_weight: np.ndarray) -> np.ndarray | None:
    """Log prior of every configuration of ``n`` binary middle variables, summed over root configurations, by halves.

    P(a, b) = sum_k w_k P_k(a) P_k(b), with ``a`` the first ``n // 2`` variables and ``b`` the others (each
    independent given the root configuration ``k``): one matrix product of ``(2**(n/2), k)`` by ``(k, 2**(n/2))``
    instead of ``k x 2**n`` logarithms and exponentials. Done in linear space, each term scaled by its
    maxima; None (the caller takes the log-space path) when the terms span more than :data:`_SPLIT_RANGE`
    nats, where the smallest could underflow.

    Parameters
    ----------
    p : array, shape (k, n)
        P(variable present | root configuration), in [0, 1].
    log_weight : array, shape (k,)
        Log weight of each root configuration (finite).
    """
    n = p.shape[1]
    if n < 4:
        return None
    with np.errstate(divide="ignore"):
        log_on, log_off = np.log(p), np.log1p(-p)

    def half(columns: slice, size: int) -> tuple[np.ndarray, np.ndarray, float]:
        bits = _binary_configurations(size)[0].astype(bool)  # (2**size, size), last fastest
        logs = np.where(bits[None, :, :], log_on[:, None, columns], log_off[:, None, columns]).sum(axis=2)  # (k, 2**size)
        top = logs.max(axis=1)
        finite = np.isfinite(logs)
        low = np.where(finite, logs, np.inf).min(axis=1)
        return np.exp(logs - top[:, None]), top, float((top - low).max())

    first = n // 2
    a, top_a, spread_a = half(slice(0, first), first)
    b, top_b, spread_b = half(slice(first, n), n - first)
    scale = log_weight + top_a + top_b
    peak = scale.max()
    if not np.isfinite(peak) or (peak - scale.min()) + spread_a + spread_b > _SPLIT_RANGE:
        return None
    joint = (a * np.exp(scale - peak)[:, None]).T @ b  # (2**first, 2**(n - first)); row-major is last fastest
    with np.errstate(divide="ignore"):
        return np.log(joint).reshape(-1) + peak


def _normalise_row(log_prior: np.ndarray, posterior: np.ndarray, log_evidence: np.ndarray, b: int) -> None:
    """Write row ``b``'s posterior over the configurations and its log P(evidence) (NaN and -inf when impossible)."""
    top = log_prior.max()
    if not top > -np.inf:
        posterior[b] = np.nan
        log_evidence[b] = -np.inf
        return
    w = np.exp(log_prior - top)
    total = w.sum()
    posterior[b] = w / total
    log_evidence[b] = top + np.log(total)


def _additive_row(tables, roots, middle, mid_pos, root_state, dense_ev, b, present, noisy, noisy_index, log_inhibit, certain, log_open) -> np.ndarray:
    """Log prior of every configuration for one root configuration, with the causes' evidence and the negative findings.

    Every one of these terms is a sum over causes, so the whole is one matrix-vector product:
    ``present @ per_cause + constant``, with impossible states (a probability or likelihood of 0) excluded.
    """
    n = len(middle)
    on = np.zeros(n)  # log weight of "present" minus "absent"
    const = 0.0
    forbid_on = np.zeros(n, dtype=bool)
    forbid_off = np.zeros(n, dtype=bool)
    for m, i in mid_pos.items():
        table = np.asarray(tables.cpts[m])
        idx = tuple(root_state[roots.index(q)] for q in tables.parents[m])
        p = np.array(table[idx] if idx else table, dtype=float)
        if m in dense_ev:
            p = p * dense_ev[m][b]
        forbid_off[i], forbid_on[i] = p[0] <= 0, p[1] <= 0
        if forbid_off[i] and forbid_on[i]:
            return np.full(present.shape[0], -np.inf)
        log_off = np.log(p[0]) if p[0] > 0 else 0.0
        log_on = np.log(p[1]) if p[1] > 0 else 0.0
        on[i] = log_on - log_off
        const += log_off
    negative = [leaf for leaf in noisy if leaf in dense_ev and dense_ev[leaf][b][1] == 0.0]
    if negative:  # P(no | configuration) = (1 - leak) prod (1 - link): additive in logs
        cols = [noisy_index[leaf] for leaf in negative]
        on = on + log_inhibit[:, cols].sum(axis=1)
        const += float(log_open[cols].sum()) + float(sum(np.log(dense_ev[leaf][b][0]) for leaf in negative))
        blocked = certain[:, cols].any(axis=1)
        forbid_on |= blocked
    log_prior = present @ on + const
    if forbid_on.any():
        log_prior[(present[:, forbid_on] > 0).any(axis=1)] = -np.inf
    if forbid_off.any():
        log_prior[(present[:, forbid_off] == 0).any(axis=1)] = -np.inf
    return log_prior


def _remaining_leaves(tables, leaves, mid_pos, configurations, dense_ev, b, present, noisy, noisy_index, log_inhibit, certain, log_open, log_prior, handled, raw=None) -> np.ndarray:
    """Add the log-likelihood of the observed leaves not in ``handled``: noisy-OR ones together, the others one by one.

    With ``raw`` (the noisy-OR leaves' links ``(F, n)`` and leaks) and every middle configuration in
    ``configurations`` (last variable fastest), the noisy-OR leaves' P(no | configuration) and P(yes |
    configuration) are built as tables over the configurations, without exponentials or subtraction.
    """
    seen = [leaf for leaf in noisy if leaf in dense_ev and leaf not in handled and not np.all(dense_ev[leaf][b] == dense_ev[leaf][b][0])]
    if seen:
        cols = [noisy_index[leaf] for leaf in seen]
        lam = np.stack([dense_ev[leaf][b] for leaf in seen])  # (F', 2): (no, yes)
        if raw is not None and configurations.shape[0] == 2 ** configurations.shape[1]:
            links, leaks = raw[0][cols], raw[1][cols]
            # (the last variable fastest: the table's first bit is the last variable)
            p_no, p_yes = _noisy_or_table(links[:, ::-1], 1.0 - leaks, leaks)  # (F', J) each
            factor = lam[:, 1:] * p_yes + lam[:, :1] * p_no
            product = np.multiply.reduce(factor, axis=0)
            if product.min() > 1e-250:  # no product underflowed: one logarithm per configuration
                log_prior = log_prior + np.log(product)
            else:
                log_prior = log_prior + _log(factor).sum(axis=0)
        else:
            p_no = np.exp(log_open[cols] + present @ log_inhibit[:, cols])
            if certain[:, cols].any():  # a link of 1: the finding is certain when that parent is present
                p_no = np.where(present @ certain[:, cols] > 0, 0.0, p_no)
            factor = lam[:, 1] + (lam[:, 0] - lam[:, 1]) * p_no
            log_prior = log_prior + _log(np.maximum(factor, 0.0)).sum(axis=1)
    for leaf in leaves:
        if leaf not in dense_ev or leaf in handled or leaf in seen:
            continue
        lam_leaf = dense_ev[leaf][b]
        if np.all(lam_leaf == lam_leaf[0]):
            log_prior = log_prior + _log(lam_leaf[:1])
            continue
        parents_pos = [mid_pos[p] for p in tables.parents[leaf]]
        cpd = tables.cpd(leaf)
        if isinstance(cpd, Mixture) and present is not None:
            # matrix-vector products over every middle variable (0 for the non-parents), no gathered copy of present
            member = np.zeros(present.shape[1])
            member[parents_pos] = 1.0
            dist_lam = np.zeros(present.shape[1])
            dist_lam[parents_pos] = np.asarray(cpd.distributions) @ lam_leaf
            count = present @ member
            mixed = present @ dist_lam / np.where(count > 0, count, 1.0)
            factor = np.where(count > 0, mixed, float(np.asarray(cpd.leak) @ lam_leaf))
        else:
            table = np.asarray(tables.cpts[leaf])
            idx = tuple(configurations[:, p] for p in parents_pos)
            factor = table[idx] @ lam_leaf
        log_prior = log_prior + _log(np.maximum(factor, 0.0))
    return log_prior
