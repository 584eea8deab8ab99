"""Expected counts of a layered noisy-OR network given hard evidence: what an EM step needs, per case.

For every evidence row (a case) the unobserved roots are summed out here:
the row is taken in each completion of its unobserved roots (a *cell*: the
roots all known, so P(root configuration k, cause c present, e) is the
cell's probability times its P(c present | k, e)), and the cells of a row are
summed, weighted by their probabilities, before anything is returned. A cell
is answered by one of two exact methods:

``"enumeration"``
    Networks whose middle configurations the compiled network enumerates
    (its layered plan, up to a few thousand configurations): the joint
    posterior of the middle nodes per cell, from which every count below is
    read (``2**n`` numbers per cell, held only for a block of cells).
``"factorised"``
    Any size (the factorised sums of :mod:`._noisy_or`: Quickscore over the
    positive findings, never the ``2**n`` configurations): the cause
    marginals of the cell; for each noisy-OR leaf ``f`` observed yes, the
    expected activations of its hidden "fired" indicators (Diez 1993;
    Vomlel): P(link ``i`` fired, e) = ``link_fi`` P(i present, e without f)
    and P(leak fired, e) = ``leak_f`` P(e without f), one more factorised
    query per positive leaf with that leaf unobserved (nothing fires where
    ``f`` is observed no); for an observed mixture leaf with value ``s``,
    P(parent ``j`` set it, e) = ``d_j(s) E[[j present] / k; e without the leaf]``
    (``k`` the present parents), the probability of the evidence when only
    ``j``'s distribution is kept: one parameter set per parent (and one for
    the leak) of one factorised query.

The two methods agree to rounding (tested); ``"auto"`` takes enumeration
when the network has a layered plan. Cases are taken as many at a time as
the network's memory budget allows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from ..errors import NetworkError
from .arguments import check_budget
from .compiled import CompiledNetwork, _Factors
from .encoding import EncodedEvidence
from .structured import Mixture, NoisyOr

__all__ = ["Expectations", "expected_counts"]

_FLOAT = 8
#: Working arrays of the factorised sums per row and root configuration, relative to one root posterior (a generous allowance).
_WORK = 8


@dataclass(frozen=True, eq=False)
class Expectations:
    """Per-row posteriors and expected counts of :func:`expected_counts` (``B`` rows).

    Attributes
    ----------
    log_evidence : array, shape (B,)
        log P(evidence of the row); -inf where it is impossible (and every
        other array of the row is zero).
    roots : mapping of str to array, shape (B, n_states)
        Posterior marginal of every root.
    families : mapping of str to (array, array), each shape (B, J)
        Per middle node: P(parents in configuration j | e) and P(parents in
        configuration j, node present | e), ``j`` the row-major index over
        the parents' states in the order of ``network.tables.parents``.
    causes : array, shape (B, n)
        P(middle node present | e), in the order of ``network.layers["middle"]``.
    fired : mapping of str to (float, array of shape (n_parents,))
        Per observed noisy-OR leaf, summed over the rows: expected activations
        of its leak and of each parent's link (parents in the order of
        ``network.tables.parents``).
    shares : mapping of str to array, shape (n_parents + 1, n_states)
        Per observed mixture leaf, summed over the rows: the expected number
        of rows in which parent j (the leak last) set its value to each state.
    """

    log_evidence: np.ndarray
    roots: Mapping[str, np.ndarray]
    families: Mapping[str, tuple[np.ndarray, np.ndarray]]
    causes: np.ndarray
    fired: Mapping[str, tuple[float, np.ndarray]]
    shares: Mapping[str, np.ndarray]


def _ratio(log_numerator: np.ndarray, log_denominator: np.ndarray) -> np.ndarray:
    """exp(log_numerator - log_denominator), 0 where the numerator is impossible."""
    with np.errstate(invalid="ignore", over="ignore"):
        out = np.exp(log_numerator - log_denominator)
    return np.where(np.isfinite(log_numerator), out, 0.0)


def expected_counts(network: CompiledNetwork, codes: Mapping[str, np.ndarray], n_rows: int, *, method: str = "auto") -> Expectations:
    """Return the expected counts of every family of a layered noisy-OR network, for each row of hard evidence.

    Parameters
    ----------
    network : CompiledNetwork
        Layered (roots -> binary middle nodes -> leaves), every leaf a
        noisy-OR or a mixture.
    codes : mapping of str to int array, shape (n_rows,)
        Hard evidence: the state index per row, -1 where unobserved.
    n_rows : int
        Number of rows.
    method : {"auto", "enumeration", "factorised"}
        See the module docstring; "enumeration" needs the network's layered plan.

    Returns
    -------
    Expectations

    Raises
    ------
    NetworkError
        When the network is not layered with binary middle nodes and
        noisy-OR or mixture leaves, or more than one mixture leaf is
        observed, or enumeration is asked of a network without a plan.
    MemoryBudgetError
        When one case does not fit the network's memory budget.

    Examples
    --------
    One root, two causes, one noisy-OR finding seen yes, the root unobserved
    (the answers are checked by brute force in the tests):

    >>> from postfusion_bayes.engine import NetworkTables
    >>> from postfusion_bayes.engine.structured import NoisyOr
    >>> t = NetworkTables({"r": ("a", "b"), "c1": ("absent", "present"), "c2": ("absent", "present"), "f": ("no", "yes")},
    ...                   {"r": (), "c1": ("r",), "c2": ("r",), "f": ("c1", "c2")},
    ...                   {"r": np.array([0.5, 0.5]), "c1": np.array([[0.9, 0.1], [0.6, 0.4]]),
    ...                    "c2": np.array([[0.8, 0.2], [0.8, 0.2]]), "f": NoisyOr(0.05, [0.9, 0.5])})
    >>> e = expected_counts(CompiledNetwork(t), {"f": np.array([1])}, 1)
    >>> e.roots["r"].round(4), e.fired["f"][1].round(4)
    (array([[0.3289, 0.6711]]), array([0.6669, 0.2964]))
    """
    structured = network._structured
    if not structured:
        raise NetworkError("expected counts need a layered network whose middle nodes are binary and whose leaves are noisy-OR or mixtures")
    if method not in ("auto", "enumeration", "factorised"):
        raise NetworkError(f"unknown method {method!r}; allowed: auto, enumeration, factorised")
    plan = network._plan
    if method == "enumeration" and plan is None:
        raise NetworkError("enumeration needs a network whose middle configurations the compiled network enumerates (it has no layered plan)")
    enumerate_ = plan is not None and method != "factorised"
    tables = network.tables
    _, roots, middle, _ = network._layers
    n = len(middle)
    codes = {v: np.asarray(c) for v, c in codes.items()}
    cards = [tables.cardinality(r) for r in roots]
    missing = np.stack([codes[r] < 0 if r in codes else np.ones(n_rows, bool) for r in roots], axis=1) if roots else np.zeros((n_rows, 0), bool)
    completions = np.prod(np.where(missing, np.array(cards, dtype=np.int64)[None, :], 1), axis=1) if roots else np.ones(n_rows, np.int64)
    per_cell = _FLOAT * _WORK * ((plan.J if plan is not None and enumerate_ else 0) + n * (n + 4) + 16)
    most = int(completions.max()) if n_rows else 1
    check_budget(per_cell * most, network.memory_budget, f"the expected counts of one case over its {most:,} completions of the roots")
    limit = max(1, network.memory_budget // per_cell)
    ends = np.cumsum(completions)
    parts = []
    start = 0
    while start < n_rows:
        stop = max(start + 1, int(np.searchsorted(ends, (ends[start - 1] if start else 0) + limit, side="right")))
        sub = {v: c[start:stop] for v, c in codes.items()}
        parts.append(_rows(network, sub, stop - start, missing[start:stop], enumerate_))
        start = stop
    if not parts:
        parts = [_rows(network, {v: c[:0] for v, c in codes.items()}, 0, missing[:0], enumerate_)]
    if len(parts) == 1:
        return parts[0]

    def cat(arrays):
        return np.concatenate(list(arrays), axis=0)

    first = parts[0]
    return Expectations(
        cat(p.log_evidence for p in parts),
        MappingProxyType({r: cat(p.roots[r] for p in parts) for r in first.roots}),
        MappingProxyType({m: (cat(p.families[m][0] for p in parts), cat(p.families[m][1] for p in parts)) for m in first.families}),
        cat(p.causes for p in parts),
        MappingProxyType({f: (math.fsum(p.fired[f][0] for p in parts), np.sum([p.fired[f][1] for p in parts], axis=0)) for f in first.fired}),
        MappingProxyType({f: np.sum([p.shares[f] for p in parts], axis=0) for f in first.shares}),
    )


def _cells(roots, cards, codes, missing) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every completion of each row's unobserved roots: the row of each cell and the cells' root codes."""
    patterns, which = np.unique(missing, axis=0, return_inverse=True)
    which = which.reshape(-1)
    owners: list[np.ndarray] = []
    filled: dict[str, list[np.ndarray]] = {r: [] for r in roots}
    for k, pattern in enumerate(patterns):
        rows = np.flatnonzero(which == k)
        free = [i for i, m in enumerate(pattern) if m]
        combos = np.stack(np.unravel_index(np.arange(int(np.prod([cards[i] for i in free], dtype=np.int64))), [cards[i] for i in free]), axis=1) if free else np.zeros((1, 0), np.intp)
        m = len(combos)
        owners.append(np.repeat(rows, m))
        for i, r in enumerate(roots):
            filled[r].append(np.tile(combos[:, free.index(i)], rows.size) if pattern[i] else np.repeat(codes[r][rows], m))
    if not owners:
        return np.zeros(0, np.intp), {r: np.zeros(0, np.intp) for r in roots}
    owner = np.concatenate(owners)
    order = np.argsort(owner, kind="stable")
    return owner[order], {r: np.concatenate(v)[order] for r, v in filled.items()}


def _rows(network: CompiledNetwork, codes: Mapping[str, np.ndarray], B: int, missing: np.ndarray, enumerate_: bool) -> Expectations:
    """Answer the cells of some rows, then sum them per row."""
    tables = network.tables
    _, roots, middle, _ = network._layers
    cards = [tables.cardinality(r) for r in roots]
    owner, filled = _cells(roots, cards, codes, missing)
    cell_codes = {v: c[owner] for v, c in codes.items() if v not in filled}
    cell_codes.update(filled)
    cell = (_enumerated if enumerate_ else _factorised)(network, cell_codes, owner.size)
    # the weight of each cell within its row: P(cell, e) / P(row's e); the cells of a row are contiguous
    log_ev = cell["log_evidence"]
    starts = np.searchsorted(owner, np.arange(B))
    peak = np.maximum.reduceat(log_ev, starts) if B else np.zeros(0)
    alive_row = np.isfinite(peak)
    with np.errstate(invalid="ignore"):
        scaled = np.where(np.isfinite(log_ev), np.exp(log_ev - peak[owner]), 0.0)
    total = np.add.reduceat(scaled, starts) if B else np.zeros(0)
    with np.errstate(divide="ignore"):
        row_log = np.where(alive_row, np.log(np.where(alive_row, total, 1.0)) + np.where(alive_row, peak, 0.0), -np.inf)
    weight = np.divide(scaled, total[owner], out=np.zeros_like(scaled), where=total[owner] > 0)
    single = owner.size == B  # every root observed in every row: the cells are the rows

    def per_row(x: np.ndarray) -> np.ndarray:
        """Sum the cells' values (cells, ...) into their rows, weighted."""
        x = x * weight.reshape((-1,) + (1,) * (x.ndim - 1))
        if single or not B:
            return x if B else np.zeros((0,) + x.shape[1:])
        return np.add.reduceat(x, starts, axis=0)

    causes_cell = cell["causes"]
    root_marginals = {r: per_row(filled[r][:, None] == np.arange(tables.cardinality(r))[None, :]) for r in roots}
    families = {}
    for i, m in enumerate(middle):
        parents = tables.parents[m]
        pc = [tables.cardinality(p) for p in parents]
        size = int(np.prod(pc, dtype=np.int64))
        config = np.ravel_multi_index([filled[p] for p in parents], pc) if parents else np.zeros(owner.size, np.intp)
        onehot = config[:, None] == np.arange(size)[None, :]
        families[m] = (per_row(onehot), per_row(onehot * causes_cell[:, i : i + 1]))
    fired, shares = cell["sums"](weight)
    return Expectations(
        row_log,
        MappingProxyType(root_marginals),
        MappingProxyType(families),
        per_row(causes_cell),
        MappingProxyType(fired),
        MappingProxyType(shares),
    )


def _leaf_numbers(network: CompiledNetwork):
    """Return the noisy-OR leaves' leaks and links (over the middle nodes) and the mixtures' parents, distributions and leaks."""
    tables = network.tables
    _, _, middle, leaves = network._layers
    mid = {m: i for i, m in enumerate(middle)}
    noisy, mixtures = {}, {}
    for f in leaves:
        cpd = tables.cpd(f)
        parents = [mid[p] for p in tables.parents[f]]
        if isinstance(cpd, NoisyOr):
            noisy[f] = (float(cpd.leak), np.asarray(cpd.links, dtype=float), parents)
        elif isinstance(cpd, Mixture):
            mixtures[f] = (np.asarray(cpd.distributions, dtype=float), np.asarray(cpd.leak, dtype=float), parents)
    return noisy, mixtures


def _enumerated(network: CompiledNetwork, codes: Mapping[str, np.ndarray], C: int) -> dict:
    """Per cell (roots all observed): log P(e), cause marginals, activations and shares, from the joint of the middle nodes."""
    plan = network._plan
    assert plan is not None
    _, _, middle, _ = network._layers
    on = plan.mid_states[:, [plan.mid_pos[m] for m in middle]].astype(float) if C else np.zeros((plan.J, len(middle)))  # (J, n)
    posterior, log_ev = plan.configuration_codes(codes, C) if C else (np.zeros((0, plan.J)), np.zeros(0))
    alive = np.isfinite(log_ev)
    posterior = np.where(alive[:, None], posterior, 0.0)
    noisy, mixtures = _leaf_numbers(network)

    def sums(weight: np.ndarray):
        """Sum the activations and shares over the cells, weighted: the cells' joints summed first, then read per configuration."""
        seen = [f for f in noisy if f in codes]
        yes = np.stack([(codes[f] == 1) * weight for f in seen], axis=1) if seen else np.zeros((C, 0))
        q = posterior.T @ yes  # (J, leaves): expected cases in each configuration with the leaf yes
        fired = {}
        for j, f in enumerate(seen):
            leak, links, parents = noisy[f]
            p_yes = 1.0 - (1.0 - leak) * np.prod(np.where(on[:, parents] == 1, 1.0 - links[None, :], 1.0), axis=1)  # (J,)
            ratio = np.divide(q[:, j], p_yes, out=np.zeros(plan.J), where=p_yes > 0)  # (expected cases / P(f yes | configuration))
            fired[f] = (float(leak * ratio.sum()), links * (ratio @ on[:, parents]))
        shares = {}
        for f, (dists, _, parents) in mixtures.items():
            if f not in codes:
                continue
            S = dists.shape[-1]
            c = codes[f]
            q = posterior.T @ ((c[:, None] == np.arange(S)[None, :]) * weight[:, None])  # (J, S)
            par = on[:, parents]  # (J, k)
            mix = par @ dists  # (J, S): the sum of the present parents' distributions
            ratio = np.divide(q, mix, out=np.zeros_like(q), where=mix > 0)
            empty = par.sum(axis=1) == 0
            shares[f] = np.concatenate([dists * (par.T @ ratio), q[empty].sum(axis=0)[None, :]])
        return fired, shares

    return {"log_evidence": log_ev, "causes": posterior @ on, "sums": sums}


def _factorised(network: CompiledNetwork, codes: Mapping[str, np.ndarray], C: int) -> dict:
    """Per cell (roots all observed): the same by the factorised sums, never the joint of the middle nodes."""
    from ._noisy_or import Mixture as MixtureTerm
    from ._noisy_or import factorised_query

    tables = network.tables
    budget = network.memory_budget
    evidence = EncodedEvidence.from_codes(network.states, codes, C)
    lam = evidence.dense({v: tables.cardinality(v) for v in evidence.names})
    factors = _Factors.build(tables, network._layers, {v: tables.cpd(v) for v in tables.variables}, lam)
    n = len(factors.mid_index)
    weight = factors.root_weight(lam, C)  # (1, C, K): one positive column per cell
    cgr = factors.cause_given_root
    cause_lik = np.ones((C, n, 2))
    for m, i in factors.mid_index.items():
        if m in lam:
            cause_lik[:, i] = lam[m]
    noisy = [f for f in factors.noisy if f in lam]
    columns = [factors.noisy_index[f] for f in noisy]
    leak, links = factors.leak[:, columns], factors.links[:, columns, :]
    finding_lik = np.ones((C, len(noisy), 2))
    for j, f in enumerate(noisy):
        finding_lik[:, j] = lam[f]
    seen_mixtures = [f for f in factors.mixtures if f in lam]
    if len(seen_mixtures) > 1:
        raise NetworkError(f"expected counts: at most one mixture leaf may be observed, got {seen_mixtures}")
    mixtures = [MixtureTerm(factors.mixtures[f][0], factors.mixtures[f][1], factors.mixtures[f][2], lam[f]) for f in seen_mixtures]

    def query(rows, f_lik, mix):
        return factorised_query(weight[:, rows], cgr, cause_lik[rows], leak, links, f_lik, mix, max_bytes=budget, checked=True)

    everything = np.arange(C)
    base = query(everything, finding_lik, mixtures)
    log_ev = base.log_evidence[0]
    alive = np.isfinite(log_ev)
    causes = np.where(alive[:, None], base.cause_posterior[0], 0.0)
    positive = np.argwhere(alive[:, None] & (finding_lik[:, :, 0] == 0) & (finding_lik[:, :, 1] > 0))  # (pairs, [cell, leaf])
    if positive.size:
        rows, which = positive[:, 0], positive[:, 1]
        f_lik = finding_lik[rows].copy()
        f_lik[np.arange(rows.size), which] = 1.0  # the leaf unobserved
        without = query(rows, f_lik, [MixtureTerm(m.parents, m.distributions, m.leak, m.likelihood[rows]) for m in mixtures])
        scale = _ratio(without.log_evidence[0], log_ev[rows])  # P(e without f) / P(e)
        present = np.nan_to_num(without.cause_posterior[0]) * scale[:, None]
    split = {}
    for f, term in zip(seen_mixtures, mixtures, strict=True):
        parent_index, dists, mleak = factors.mixtures[f]
        k = len(parent_index)
        out = np.zeros((C, k + 1))
        seen = np.flatnonzero(alive & (codes[f] >= 0))
        if seen.size:
            alone = np.zeros((k + 1, k, dists.shape[2]))  # parameter set j: only parent j's distribution; the last: only the leak
            alone[np.arange(k), np.arange(k)] = dists[0]
            leak_only = np.zeros((k + 1, dists.shape[2]))
            leak_only[k] = mleak[0]
            answer = query(seen, finding_lik[seen], [MixtureTerm(parent_index, alone, leak_only, term.likelihood[seen])])
            out[seen] = _ratio(answer.log_evidence, log_ev[seen][None, :]).T
        split[f] = (out, dists.shape[2])

    def sums(weight: np.ndarray):
        fired = {}
        for j, f in enumerate(noisy):
            parents = [factors.mid_index[p] for p in tables.parents[f]]
            a, b = 0.0, np.zeros(len(parents))
            if positive.size:
                here = which == j
                w = weight[rows[here]]
                a = float(leak[0, j] * (w @ scale[here]))
                b = links[0, j, parents] * (w @ present[here][:, parents])
            fired[f] = (a, b)
        shares = {f: (out * weight[:, None]).T @ (codes[f][:, None] == np.arange(S)[None, :]) for f, (out, S) in split.items()}
        return fired, shares

    log_total = network._add_isolated(log_ev[None], evidence)[0]
    return {"log_evidence": log_total, "causes": causes, "sums": sums}
