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
    Any size, never the joint of the middle nodes. A cell whose middle nodes
    are all observed (a confirmed case) is a product, read in closed form:
    P(leak of ``f`` fired, e) / P(e) = ``leak_f / P(f yes | C)``, P(link ``i``
    fired, e) / P(e) = ``link_fi / P(f yes | C)`` for ``i`` present (Diez 1993;
    Vomlel), and the mixture's value set by present parent ``j`` with
    probability ``d_j(s) / sum of d_i(s) over the present parents`` (by the
    leak when none is present). A cell with at most :data:`_EXPAND_FREE`
    unobserved causes is the sum of its ``2**k`` completions (each cause
    set to each state), each such a product, weighted by its probability.
    The other cells go to the factorised sums of
    :mod:`._noisy_or`: the cause marginals and, where those enumerate the
    causes (up to about twenty, when that is cheaper than what follows), the
    activations and the mixture owners in the same pass, each a sum of
    ``P(C, e) / factor_f(C)``, as P(C, e without f) is P(C, e) divided by
    ``f``'s factor. Otherwise (Quickscore, the dynamic programme; or more
    causes than the budget enumerates): for each noisy-OR leaf ``f``
    observed yes, P(link ``i`` fired, e) = ``link_fi`` P(i present, e without
    f) and P(leak fired, e) = ``leak_f`` P(e without f), one more factorised
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
from ._enumeration import _binary_configurations
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
    _, roots, middle, leaves = network._layers
    n = len(middle)
    codes = {v: np.asarray(c) for v, c in codes.items()}
    cards = [tables.cardinality(r) for r in roots]
    missing = np.stack([codes[r] < 0 if r in codes else np.ones(n_rows, bool) for r in roots], axis=1) if roots else np.zeros((n_rows, 0), bool)
    completions = np.prod(np.where(missing, np.array(cards, dtype=np.int64)[None, :], 1), axis=1) if roots else np.ones(n_rows, np.int64)
    # (the factorised path also holds each leaf's activations per cell: (leaves, 1 + n))
    per_cell = _FLOAT * _WORK * ((plan.J if plan is not None and enumerate_ else len(leaves) * (n + 1)) + n * (n + 4) + 16)
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
    _, roots, middle, _ = network._layers
    n = len(middle)
    cause_lik = np.ones((C, n, 2))
    for i, m in enumerate(middle):
        if m in lam:
            cause_lik[:, i] = lam[m]
    # cells with every cause observed are products (closed form); the others go to the factorised sums, which
    # bring the activations along where they enumerate the causes
    complete = _complete(cause_lik)
    # cells with a few unobserved causes: every completion of those causes is a complete cell (closed form), and the
    # completions are summed, weighted by their probabilities; the others go to the factorised sums
    free = ~(cause_lik == 0).any(axis=2)  # (C, n)
    expand = ~complete & (free.sum(axis=1) <= _EXPAND_FREE)
    rest = np.flatnonzero(~complete & ~expand)
    cpds = {v: tables.cpd(v) for v in tables.variables}
    factors = network._factors or _Factors.build(tables, network._layers, cpds)  # (every root configuration, in row-major order)
    # A cell's roots are all observed, so its causes are independent a priori with P(cause i present | its roots) = p_i:
    # the factorised sums take each cell as one root configuration of weight w (its roots' prior times their
    # evidence), causes 1/2 a priori and p_i carried in the cause likelihood as (2(1 - p_i), 2 p_i) (exact: 1/2 and 2
    # are powers of two). All cells then share K = 1 and are grouped only by their findings: many root
    # configurations as K would split the cells into one group, hence one Python-level block, per configuration.
    if rest.size:
        w_rest, p_rest = _cell_roots(tables, network._layers, factors, {v: x[rest] for v, x in lam.items()}, rest.size)
        weight = w_rest[None, :, None]  # (1, rest, 1)
        cause_lik[rest] *= np.stack([2.0 * (1.0 - p_rest), 2.0 * p_rest], axis=-1)
    else:
        weight = None
    cgr = np.full((1, 1, n), 0.5)
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

    def query(rows, f_lik, mix, activations=False):
        """Answer some cells of ``rest`` by the factorised sums."""
        assert weight is not None
        return factorised_query(weight[:, np.searchsorted(rest, rows)], cgr, cause_lik[rows], leak, links, f_lik, mix, max_bytes=budget, checked=True, activations=activations)

    F = len(noisy)
    log_ev = np.full(C, -np.inf)
    causes = np.zeros((C, n))
    activations = np.zeros((C, F, 1 + n))
    owned = np.zeros((C, n + 1))
    done = np.zeros(C, dtype=bool)
    if complete.any():
        cells = np.flatnonzero(complete)
        mix = [MixtureTerm(m.parents, m.distributions, m.leak, m.likelihood[cells]) for m in mixtures]
        w, p = _cell_roots(tables, network._layers, factors, {v: x[cells] for v, x in lam.items()}, cells.size)
        log_ev[cells], causes[cells], activations[cells], owned[cells] = _complete_cells(w, p, cause_lik[cells], leak[0], links[0], finding_lik[cells], mix)
        done[cells] = True
    if expand.any():
        cells = np.flatnonzero(expand)
        w, p = _cell_roots(tables, network._layers, factors, {v: x[cells] for v, x in lam.items()}, cells.size)
        counts = free[cells].sum(axis=1)
        for k in np.unique(counts):
            mine = np.flatnonzero(counts == k)
            size = 2 ** int(k)
            for start in range(0, mine.size, max(1, _EXPANDED_CELLS // size)):
                part = mine[start : start + max(1, _EXPANDED_CELLS // size)]
                _expanded_cells(part, cells[part], int(k), w, p, free, cause_lik, finding_lik, mixtures, leak[0], links[0], (log_ev, causes, activations, owned))
        done[cells] = True
    if rest.size:
        base = query(rest, finding_lik[rest], [MixtureTerm(m.parents, m.distributions, m.leak, m.likelihood[rest]) for m in mixtures], activations=True)
        assert base.activated is not None and base.fired is not None and base.owners is not None
        log_ev[rest] = base.log_evidence[0]
        causes[rest] = base.cause_posterior[0]
        activations[rest] = base.fired[0]
        owned[rest] = base.owners[0]
        done[rest] = base.activated[0]
    alive = np.isfinite(log_ev)
    causes = np.where(alive[:, None], causes, 0.0)
    # the cells whose activations are not known yet: one more query per positive leaf, with that leaf unobserved
    positive = np.argwhere(alive[:, None] & ~done[:, None] & (finding_lik[:, :, 0] == 0) & (finding_lik[:, :, 1] > 0))  # (pairs, [cell, leaf])
    if positive.size:
        rows, which = positive[:, 0], positive[:, 1]
        f_lik = finding_lik[rows].copy()
        f_lik[np.arange(rows.size), which] = 1.0  # the leaf unobserved
        without = query(rows, f_lik, [MixtureTerm(m.parents, m.distributions, m.leak, m.likelihood[rows]) for m in mixtures])
        scale = _ratio(without.log_evidence[0], log_ev[rows])  # P(e without f) / P(e)
        present = np.nan_to_num(without.cause_posterior[0]) * scale[:, None]
    direct = np.flatnonzero(alive & done)
    split = {}
    for f, term in zip(seen_mixtures, mixtures, strict=True):
        parent_index, dists, mleak = factors.mixtures[f]
        k = len(parent_index)
        out = np.zeros((C, k + 1))
        observed = alive & (codes[f] >= 0)
        got = np.flatnonzero(observed & done)
        out[got, :k] = owned[got][:, parent_index]
        out[got, k] = owned[got, -1]
        seen = np.flatnonzero(observed & ~done)
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
            if direct.size:
                w = weight[direct] * (finding_lik[direct, j, 0] == 0)  # (hard evidence: every expanded leaf is a positive one)
                a = float(w @ activations[direct, j, 0])
                b = w @ activations[direct, j, 1:][:, parents]
            if positive.size:
                here = which == j
                w = weight[rows[here]]
                a += float(leak[0, j] * (w @ scale[here]))
                b = b + links[0, j, parents] * (w @ present[here][:, parents])
            fired[f] = (a, b)
        shares = {f: (out * weight[:, None]).T @ (codes[f][:, None] == np.arange(S)[None, :]) for f, (out, S) in split.items()}
        return fired, shares

    log_total = network._add_isolated(log_ev[None], evidence)[0]
    return {"log_evidence": log_total, "causes": causes, "sums": sums}


#: Cells with at most this many unobserved causes are answered by their completions, each in closed form.
_EXPAND_FREE = 10
#: Completions answered at once (each holds a few numbers per finding and per cause).
_EXPANDED_CELLS = 16384


def _expanded_cells(local, cells, k, w, p, free, cause_lik, finding_lik, mixtures, leak, links, out) -> None:
    """Answer cells with ``k`` unobserved causes by summing their ``2**k`` completions, each a complete cell.

    ``local`` indexes ``w`` and ``p`` (the cells' root weights and cause probabilities), ``cells`` the
    other arrays; ``out`` is (log P(e), cause marginals, activations, mixture owners), written in place.
    """
    from ._noisy_or import Mixture as MixtureTerm

    size = 2**k
    D = cells.size
    owner = np.repeat(cells, size)
    bits = np.tile(_binary_configurations(k)[0], (D, 1))  # (k >= 1: a cell with none unobserved is complete)
    where = np.nonzero(free[cells])[1].reshape(D, k)  # the unobserved causes of each cell
    lik = cause_lik[owner].copy()
    rows = np.repeat(np.arange(D * size), k)
    lik[rows, np.repeat(where, size, axis=0).reshape(-1), 1 - bits.reshape(-1)] = 0.0  # each completion: one state per cause
    mix = [MixtureTerm(m.parents, m.distributions, m.leak, m.likelihood[owner]) for m in mixtures]
    log_e, causes_e, share_e, owned_e = _complete_parts(np.repeat(w[local], size), np.repeat(p[local], size, axis=0), lik, leak, links, finding_lik[owner], mix)
    log_e = log_e.reshape(D, size)
    peak = log_e.max(axis=1)
    alive = np.isfinite(peak)
    with np.errstate(invalid="ignore"):
        scaled = np.where(np.isfinite(log_e), np.exp(log_e - np.where(alive, peak, 0.0)[:, None]), 0.0)
    total = scaled.sum(axis=1)
    weight = np.divide(scaled, total[:, None], out=np.zeros_like(scaled), where=total[:, None] > 0)  # P(completion | e)
    log_ev, causes, activations, owned = out
    with np.errstate(divide="ignore"):
        log_ev[cells] = np.where(alive, peak + np.log(np.where(alive, total, 1.0)), -np.inf)
    causes[cells] = np.einsum("ds,dsn->dn", weight, causes_e.reshape(D, size, -1))
    weighted = weight[:, :, None] * share_e.reshape(D, size, -1)  # (D, size, F): P(completion | e) a_yes / phi_f
    activations[cells, :, 0] = weighted.sum(axis=1) * leak[None, :]
    activations[cells, :, 1:] = np.einsum("dsf,dsn->dfn", weighted, causes_e.reshape(D, size, -1)) * links[None]
    owned[cells] = np.einsum("ds,dsn->dn", weight, owned_e.reshape(D, size, -1))


def _complete(cause_lik: np.ndarray) -> np.ndarray:
    """Which cells have every cause observed (a likelihood zero in one state): those take the closed form."""
    return (cause_lik == 0).any(axis=2).all(axis=1)


def _cell_roots(tables, layers, factors: _Factors, lam, D: int) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's root weight (prior times evidence of its roots, all observed) and P(cause present | its roots), ``(D,)`` and ``(D, n)``."""
    roots = layers[1]
    if roots:
        cards = [tables.cardinality(r) for r in roots]
        state = [lam[r].argmax(axis=1) if r in lam else np.zeros(D, np.intp) for r in roots]
        k = np.ravel_multi_index(state, cards)
    else:
        k = np.zeros(D, np.intp)
    w = factors.root_prior[0, k].copy()
    for r, s in zip(roots, state if roots else [], strict=True):
        if r in lam:
            w *= lam[r][np.arange(D), s]
    return w, factors.cause_given_root[0, k]


def _complete_cells(w, p, cause_lik, leak, links, finding_lik, mixtures):
    """Return log P(e), cause marginals, activations and mixture owners of cells whose causes are all observed.

    Every cause's state is known (``cause_lik`` zero in the other), so P(e) is a product and each
    expectation a ratio: E[leak of f fired | e] = ``a_yes leak_f / phi_f(C)``, E[link i fired | e] = ``a_yes
    link_fi / phi_f(C)`` for i present, with ``phi_f = a_no q_f + a_yes (1 - q_f)`` the finding's factor
    (``1 - q_f`` as ``-expm1(log q_f)``, no cancellation), and the mixture's value set by present parent
    ``j`` with probability ``v_j / sum of v over the present parents`` (by the leak when none is
    present). Arrays: per cell ``w (D,)`` the root weight, ``p (D, n)`` P(cause present | roots),
    ``cause_lik (D, n, 2)`` and ``finding_lik (D, F, 2)``; ``leak (F,)``, ``links (F, n)``.
    """
    log_ev, present, share, owners = _complete_parts(w, p, cause_lik, leak, links, finding_lik, mixtures)
    D, n = present.shape
    fired = np.empty((D, leak.size, 1 + n))
    fired[:, :, 0] = share * leak[None, :]
    fired[:, :, 1:] = share[:, :, None] * links[None] * present[:, None, :]
    return log_ev, present, fired, owners


def _complete_parts(w, p, cause_lik, leak, links, finding_lik, mixtures):
    """:func:`_complete_cells` without the activations' product: log P(e), the causes present (0/1), ``a_yes / phi_f(C)`` and the owners.

    The activations are ``share * leak`` (the leak) and ``share * links * present`` (the links); every
    array is zero in impossible cells.
    """
    D, n = cause_lik.shape[0], cause_lik.shape[1]
    present = cause_lik[:, :, 0] == 0  # (a cause whose likelihood is zero in both states makes the cell impossible below)
    on = present.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ev = np.log(w)
        log_ev = log_ev + np.where(present, np.log(p), np.log1p(-p)).sum(axis=1)
        log_ev = log_ev + np.log(np.where(present, cause_lik[:, :, 1], cause_lik[:, :, 0])).sum(axis=1)
        log1m = np.log1p(-links)  # (F, n); -inf where a link is 1
        if np.isfinite(log1m).all():
            log_q = np.log1p(-leak)[None, :] + on @ log1m.T  # (D, F)
        else:  # (0 * -inf would be NaN in a product)
            log_q = np.log1p(-leak)[None, :] + np.where(present[:, None, :], log1m[None], 0.0).sum(axis=2)
        q, r = np.exp(log_q), -np.expm1(log_q)
        factor = finding_lik[:, :, 0] * q + finding_lik[:, :, 1] * r
        log_ev = log_ev + np.log(factor).sum(axis=1)
        share = finding_lik[:, :, 1] / factor  # (D, F): a_yes / phi_f(C)
    share = np.where(factor > 0, share, 0.0)
    owners = np.zeros((D, n + 1))
    for term in mixtures:
        parents = np.asarray(term.parents)
        v = term.likelihood @ term.distributions[0].T  # (D, k): each parent's distribution dotted with the likelihood
        L = term.likelihood @ term.leak[0]  # (D,)
        par = present[:, parents]
        count = par.sum(axis=1)
        total = (v * par).sum(axis=1)
        mix_factor = np.where(count > 0, total / np.maximum(count, 1), L)
        with np.errstate(divide="ignore"):
            log_ev = log_ev + np.log(mix_factor)
        owners[:, parents] = np.divide(v * par, total[:, None], out=np.zeros_like(v), where=total[:, None] > 0)
        owners[:, n] = (count == 0) & (L > 0)
    alive = np.isfinite(log_ev) & ~(cause_lik == 0).all(axis=2).any(axis=1)
    log_ev = np.where(alive, log_ev, -np.inf)
    live = alive[:, None]
    return log_ev, np.where(live, on, 0.0), np.where(live, share, 0.0), np.where(live, owners, 0.0)
