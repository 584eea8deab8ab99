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

from collections.abc import Sequence

import numpy as np

from ..errors import MemoryBudgetError
from .encoding import EncodedEvidence
from .structured import Mixture, NoisyOr
from .tables import NetworkTables

__all__ = ["enumerate_joint", "enumeration_bytes"]

_BYTES_PER_CONFIGURATION = 8 * 8  # float64 working arrays alive at once per configuration


def enumeration_bytes(n_configurations: int, n_middle: int) -> int:
    """Peak bytes of :func:`enumerate_joint` for one row (one root configuration at a time)."""
    return int(n_configurations) * (_BYTES_PER_CONFIGURATION + 8 * n_middle)


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
    binary_present = (configurations == 1).astype(float) if all(c == 2 for c in cards) else None

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
        log_prior = np.full(J, -np.inf)
        chunk = max(1, int(budget // (J * 8 * 4)))  # (k, J) working arrays
        for start in range(0, active.size, chunk):
            ks = active[start : start + chunk]
            term = np.repeat((weight[ks] - shift_k)[:, None], J, axis=1)  # (k, J)
            for m, i in mid_pos.items():
                table = middle_tables[m]
                idx = tuple(root_states[ks, roots.index(p)] for p in tables.parents[m])
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
        # 3. leaves
        for leaf in leaves:
            if leaf not in dense_ev:
                continue
            lam = dense_ev[leaf][b]
            if np.all(lam == lam[0]):
                log_prior = log_prior + _log(lam[:1])
                continue
            parents_pos = [mid_pos[p] for p in tables.parents[leaf]]
            cpd = tables.cpd(leaf)
            if isinstance(cpd, NoisyOr) and binary_present is not None:
                with np.errstate(divide="ignore"):
                    log_inhibit = np.log1p(-np.asarray(cpd.links))
                log_no = np.log1p(-float(cpd.leak)) + binary_present[:, parents_pos] @ np.where(np.isfinite(log_inhibit), log_inhibit, 0.0)
                p_no = np.exp(log_no)
                if not np.all(np.isfinite(log_inhibit)):  # a link of 1: the finding is certain when that parent is present
                    certain = (binary_present[:, parents_pos][:, ~np.isfinite(log_inhibit)] > 0).any(axis=1)
                    p_no = np.where(certain, 0.0, p_no)
                factor = lam[1] + (lam[0] - lam[1]) * p_no
            elif isinstance(cpd, Mixture) and binary_present is not None:
                present = binary_present[:, parents_pos]
                count = present.sum(axis=1)
                dist_lam = np.asarray(cpd.distributions) @ lam
                mixed = present @ dist_lam / np.where(count > 0, count, 1.0)
                factor = np.where(count > 0, mixed, float(np.asarray(cpd.leak) @ lam))
            else:
                table = np.asarray(tables.cpts[leaf])
                idx = tuple(configurations[:, p] for p in parents_pos)
                factor = table[idx] @ lam
            log_prior = log_prior + _log(np.maximum(factor, 0.0))
        top = log_prior.max()
        if not top > -np.inf:
            posterior[b] = np.nan
            log_evidence[b] = -np.inf
            continue
        w = np.exp(log_prior - top)
        total = w.sum()
        posterior[b] = w / total
        log_evidence[b] = top + np.log(total)
    return configurations, posterior, log_evidence
