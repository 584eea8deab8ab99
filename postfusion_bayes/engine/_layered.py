"""Exact inference by enumeration for layered networks (roots -> middle -> leaves).

Many diagnostic networks, ours among them, have three layers: observed context
variables (roots), a few hidden causes whose parents are all roots (the middle
layer), and many findings whose parents are all causes (leaves). For such a
network the joint state of the middle layer has ``J = prod |middle|`` states
(256 for eight binary causes) and exact inference is a handful of dense array
operations over those ``J`` configurations:

1. ``W[p, b, k]``: prior times likelihood of each root configuration ``k``;
2. ``T[p, k, j]``: P(middle configuration ``j`` | root configuration ``k``),
   only for the root configurations some row can be in;
3. ``L[p, b, j]``: log-likelihood of the leaf evidence: one matrix product
   ``H[b, s] @ log C[p, s, j]`` for every hard-observed leaf state at once, where
   ``C[s, j] = P(leaf state s | j)`` (zeros are counted by a second product so
   ``0 * log 0`` never makes a NaN), plus an explicit product for soft findings;
4. ``w = (W @ T) * exp(L - max L)``: normalising ``w`` gives the posterior of
   every middle configuration, and marginals are sums over it;
   ``log P(e) = log sum w + max L``, so tiny likelihoods never underflow.

Isolated variables (no parents, no children) are independent of everything and
handled on their own. Leaves asked for as targets are kept out of step 3 and
multiplied in separately, so their own evidence is not counted twice.

Evidence arrives as one dense matrix ``lam[b, s]`` over the states of every
variable (a block of columns per variable; a row of ones is unobserved).
Tables may carry a leading parameter-set axis ``P``; internal arrays always
have one (size 1 when shared). With the compiled tables everything that does
not depend on the evidence is precomputed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import NetworkError
from .tables import NetworkTables

__all__ = ["LayeredPlan", "is_layered", "layers"]

MAX_CONFIGURATIONS = 4096
#: Stands for log(0) in sums of logs: finite, so 0 * it is 0 in a matrix product (never NaN),
#: and far below any real log-likelihood (a double's smallest log is about -745 per factor).
IMPOSSIBLE_LOG = -1e300


def layers(tables: NetworkTables) -> tuple[list[str], list[str], list[str], list[str]]:
    """Split the variables by layer: isolated (no parents, no children), roots, middle (parents and children), leaves."""
    children = {v: tables.children(v) for v in tables.variables}
    isolated = [v for v in tables.variables if not tables.parents[v] and not children[v]]
    roots = [v for v in tables.variables if not tables.parents[v] and children[v]]
    middle = [v for v in tables.variables if tables.parents[v] and children[v]]
    leaves = [v for v in tables.variables if tables.parents[v] and not children[v]]
    return isolated, roots, middle, leaves


def is_layered(tables: NetworkTables) -> bool:
    """Whether the enumeration plan applies (and pays) for this network.

    Examples
    --------
    >>> import numpy as np
    >>> t = NetworkTables({"a": ("0", "1"), "b": ("0", "1")}, {"b": ("a",)},
    ...                   {"a": np.array([0.5, 0.5]), "b": np.eye(2)})
    >>> is_layered(t)   # no middle layer
    False
    """
    isolated, roots, middle, leaves = layers(tables)
    if not middle or not leaves:
        return False
    if any(not set(tables.parents[m]) <= set(roots) for m in middle):
        return False
    if any(not set(tables.parents[leaf]) <= set(middle) for leaf in leaves):
        return False
    j = int(np.prod([tables.cardinality(m) for m in middle]))
    k = int(np.prod([tables.cardinality(r) for r in roots])) if roots else 1
    return j <= MAX_CONFIGURATIONS and k <= MAX_CONFIGURATIONS


def _lead(table: np.ndarray, n_parents: int) -> np.ndarray:
    """Give a table a leading parameter-set axis if it has none."""
    return table if table.ndim == n_parents + 2 else table[None]


class LayeredPlan:
    """Index arrays and evidence-free products of a layered network, computed once.

    Parameters
    ----------
    tables : NetworkTables
        Unbatched tables of a network for which :func:`is_layered` is true.
    """

    def __init__(self, tables: NetworkTables):
        if not is_layered(tables):
            raise NetworkError("the network is not layered (roots -> middle -> leaves)")
        self.tables = tables
        self.isolated, self.roots, self.middle, self.leaves = layers(tables)
        card = tables.cardinality
        # dense evidence layout: one block of columns per variable
        self.offset: dict[str, int] = {}
        width = 0
        for v in tables.variables:
            self.offset[v] = width
            width += card(v)
        self.width = width
        self.var_starts = np.array([self.offset[v] for v in tables.variables])
        self.var_cards = np.array([card(v) for v in tables.variables])
        self.var_number = {v: i for i, v in enumerate(tables.variables)}
        self.K = int(np.prod([card(r) for r in self.roots])) if self.roots else 1
        self.J = int(np.prod([card(m) for m in self.middle]))
        self.root_states = np.stack(np.unravel_index(np.arange(self.K), [card(r) for r in self.roots]), axis=1) if self.roots else np.zeros((1, 0), int)
        self.mid_states = np.stack(np.unravel_index(np.arange(self.J), [card(m) for m in self.middle]), axis=1)
        self.root_pos = {r: i for i, r in enumerate(self.roots)}
        self.mid_pos = {m: i for i, m in enumerate(self.middle)}
        self.mid_indicator = {m: np.eye(card(m))[self.mid_states[:, i]] for m, i in self.mid_pos.items()}
        self.mid_indicator_all = np.concatenate([self.mid_indicator[m] for m in self.middle], axis=1)  # (J, sum cards)
        ends = np.cumsum([card(m) for m in self.middle])
        self.mid_slices = {m: slice(int(e - card(m)), int(e)) for m, e in zip(self.middle, ends, strict=True)}
        # columns of the dense evidence that belong to each root, gathered per root configuration
        self.root_columns = {r: self.offset[r] + self.root_states[:, i] for r, i in self.root_pos.items()}
        self.mid_columns = {m: self.offset[m] + self.mid_states[:, i] for m, i in self.mid_pos.items()}
        # leaf blocks: all leaf columns side by side
        self.leaf_cols = np.concatenate([self.offset[leaf] + np.arange(card(leaf)) for leaf in self.leaves])
        self.leaf_starts = np.cumsum([0] + [card(leaf) for leaf in self.leaves[:-1]])
        self.leaf_cards = np.array([card(leaf) for leaf in self.leaves])
        self.leaf_block = np.repeat(np.arange(len(self.leaves)), self.leaf_cards)
        self.leaf_number = {leaf: i for i, leaf in enumerate(self.leaves)}
        self.leaf_col_of = {leaf: int(start) for leaf, start in zip(self.leaves, self.leaf_starts, strict=True)}
        root_cards = [card(r) for r in self.roots]
        self.root_strides = [int(np.prod(root_cards[i + 1 :])) for i in range(len(root_cards))]
        self.leaf_index = {leaf: tuple(self.mid_states[:, self.mid_pos[p]] for p in tables.parents[leaf]) for leaf in self.leaves}
        # evidence-free products of the compiled tables
        self.shared_leaf = {leaf: self._leaf_matrix(tables.cpts[leaf], leaf) for leaf in self.leaves}
        stacked = np.concatenate([self.shared_leaf[leaf][0].T for leaf in self.leaves], axis=0)  # (SL, J)
        with np.errstate(divide="ignore"):
            self.shared_log_sentinel = np.where(stacked > 0, np.log(stacked), IMPOSSIBLE_LOG)  # (SL, J)
        self.shared_root_prior = self._root_prior(tables.cpts)  # (1, K)
        self.shared_transition = self._transition(tables.cpts, np.arange(self.K))  # (1, K, J)
        # one row of hard evidence: P(root configuration k, middle configuration j), and the
        # middle marginals given k alone, both precomputed for every k
        self.joint_root_middle = self.shared_transition[0] * self.shared_root_prior[0][:, None]  # (K, J)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.root_given = (self.joint_root_middle @ self.mid_indicator_all) / self.joint_root_middle.sum(axis=1, keepdims=True)
            self.isolated_log = {v: np.log(tables.cpts[v]) for v in self.isolated}
        for value in list(vars(self).values()) + list(self.shared_leaf.values()) + list(self.mid_indicator.values()):
            if isinstance(value, np.ndarray):
                value.setflags(write=False)  # nothing a query returns can write into the plan

    # ---------------------------------------------------------------- one row of hard evidence
    def query_hard(self, observed: Mapping[str, int], soft_leaves: Mapping[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        """Middle-layer marginals for one row of hard evidence (compiled tables).

        Parameters
        ----------
        observed : mapping of str to int
            Variable to the index of its observed state.
        soft_leaves : mapping of str to array, optional
            Soft evidence on leaves only: one likelihood per state (each
            multiplies in as ``P(leaf | configuration) @ likelihood``).

        Returns
        -------
        posterior : array, shape (sum of middle cardinalities,)
            The middle variables' posteriors side by side (see ``mid_slices``);
            NaN when the evidence is impossible.
        root_only : array, same shape
            The same given only the evidence on the roots (the "prior" of a
            diagnosis given its context).
        log_evidence : float
            log P(evidence); -inf when impossible.
        """
        root_pos, leaf_col_of, mid_pos = self.root_pos, self.leaf_col_of, self.mid_pos
        roots, leaf_cols, mids, isolated = [], [], [], []
        for v, s in observed.items():
            if v in leaf_col_of:
                leaf_cols.append(leaf_col_of[v] + s)
            elif v in root_pos:
                roots.append((root_pos[v], s))
            elif v in mid_pos:
                mids.append((mid_pos[v], s))
            else:
                isolated.append((v, s))
        if len(roots) == len(self.roots):
            k = int(sum(s * self.root_strides[pos] for pos, s in roots))
            prior_j = self.joint_root_middle[k]
            if not self.shared_root_prior[0, k] > 0:
                nan = np.full(self.mid_indicator_all.shape[1], np.nan)
                return nan, nan, -np.inf
            root_only = self.root_given[k].copy()
        else:
            weight = self.shared_root_prior[0]
            for pos, s in roots:
                weight = weight * (self.root_states[:, pos] == s)
            prior_j = weight @ self.shared_transition[0]
            root_total = prior_j.sum()
            if not root_total > 0:
                nan = np.full(self.mid_indicator_all.shape[1], np.nan)
                return nan, nan, -np.inf
            root_only = (prior_j @ self.mid_indicator_all) / root_total
        for pos, s in mids:
            prior_j = prior_j * (self.mid_states[:, pos] == s)
        log_shift = 0.0
        if leaf_cols:
            ll = self.shared_log_sentinel[leaf_cols].sum(axis=0)
            log_shift = float(ll.max())
            if log_shift < IMPOSSIBLE_LOG / 2:
                nan = np.full(root_only.shape, np.nan)
                return nan, root_only, -np.inf
            ll -= log_shift
            prior_j = prior_j * np.exp(ll, out=ll)
        for leaf, lam in (soft_leaves or {}).items():
            prior_j = prior_j * (self.shared_leaf[leaf][0] @ lam)
        total = prior_j.sum()
        log_evidence = float(np.log(total) + log_shift) if total > 0 else -np.inf
        for v, s in isolated:
            log_evidence = log_evidence + float(self.isolated_log[v][s])
        if not log_evidence > -np.inf:
            return np.full(root_only.shape, np.nan), root_only, -np.inf
        return (prior_j @ self.mid_indicator_all) / total, root_only, log_evidence

    def query_codes(self, codes: Mapping[str, np.ndarray], n_rows: int, want_joint: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Middle-layer marginals for many rows of hard evidence given as state indices.

        Parameters
        ----------
        codes : mapping of str to int array, shape (n_rows,)
            Observed state index per row, -1 where unobserved.
        n_rows : int
            Number of rows.
        want_joint : bool, default False
            Also return the joint posterior of the middle configurations.

        Returns
        -------
        marginals : array, shape (n_rows, sum of middle cardinalities)
            NaN in rows whose evidence is impossible.
        log_evidence : array, shape (n_rows,)
        joint : array, shape (n_rows, J), or None
            With ``want_joint``: P(middle configuration | row).
        """
        posterior, log_evidence = self.configuration_codes(codes, n_rows)
        return posterior @ self.mid_indicator_all, log_evidence, (posterior if want_joint else None)  # NaN rows stay NaN

    def configuration_codes(self, codes: Mapping[str, np.ndarray], n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Joint posterior of the middle layer's configurations for many rows of hard evidence.

        Parameters
        ----------
        codes : mapping of str to int array, shape (n_rows,)
            Observed state index per row, -1 where unobserved.
        n_rows : int
            Number of rows.

        Returns
        -------
        posterior : array, shape (n_rows, J)
            P(middle configuration j | row), configurations as in ``mid_states``;
            NaN in rows whose evidence is impossible.
        log_evidence : array, shape (n_rows,)
        """
        weights, total, log_evidence = self._weights_codes(codes, n_rows)
        with np.errstate(divide="ignore", invalid="ignore"):
            posterior = weights / total[:, None]
        impossible = ~np.isfinite(log_evidence)
        if impossible.any():
            posterior[impossible] = np.nan
        return posterior, log_evidence

    def _weights_codes(self, codes: Mapping[str, np.ndarray], n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unnormalised posterior weights (n_rows, J) of the middle configurations, their sums and log P(evidence)."""
        B = n_rows
        rows = np.arange(B)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if all(r in codes and (codes[r] >= 0).all() for r in self.roots):
                k = np.zeros(B, dtype=np.intp)
                for r, i in self.root_pos.items():
                    k += codes[r] * self.root_strides[i]
                prior_j = self.shared_transition[0][k] * self.shared_root_prior[0][k][:, None]
            else:
                W = np.broadcast_to(self.shared_root_prior[0], (B, self.K)).copy()
                for r, i in self.root_pos.items():
                    if r in codes:
                        c = codes[r]
                        W *= (c[:, None] < 0) | (self.root_states[None, :, i] == c[:, None])
                prior_j = W @ self.shared_transition[0]
            for m, i in self.mid_pos.items():
                if m in codes:
                    c = codes[m]
                    prior_j *= (c[:, None] < 0) | (self.mid_states[None, :, i] == c[:, None])
            H = np.zeros((B, self.shared_log_sentinel.shape[0]))
            for leaf, start in self.leaf_col_of.items():
                if leaf in codes:
                    c = codes[leaf]
                    seen = c >= 0
                    H[rows[seen], start + c[seen]] = 1.0
            loglik = H @ self.shared_log_sentinel
            shift = loglik.max(axis=1, keepdims=True)
            dead = shift[:, 0] < IMPOSSIBLE_LOG / 2
            shift[dead] = 0.0
            np.subtract(loglik, shift, out=loglik)
            np.exp(loglik, out=loglik)
            np.multiply(prior_j, loglik, out=prior_j)
            total = prior_j.sum(axis=1)
            total[dead] = 0.0
            log_evidence = np.log(total) + shift[:, 0]
            for v in self.isolated:
                if v in codes:
                    c = codes[v]
                    p = np.where(c >= 0, self.tables.cpts[v][np.maximum(c, 0)], 1.0)
                    log_evidence = log_evidence + np.log(p)
            impossible = ~np.isfinite(log_evidence)
            if impossible.any():
                log_evidence[impossible] = -np.inf
        return prior_j, total, log_evidence

    # ---------------------------------------------------------------- encoding
    def dense(self, likelihoods: Mapping[str, np.ndarray], n_rows: int) -> np.ndarray:
        """One matrix (n_rows, width) from per-variable likelihood arrays."""
        lam = np.ones((n_rows, self.width))
        for v, arr in likelihoods.items():
            lam[:, self.offset[v] : self.offset[v] + arr.shape[1]] = arr
        return lam

    # ---------------------------------------------------------------- tables per call
    def _leaf_matrix(self, cpt: np.ndarray, leaf: str) -> np.ndarray:
        """C[p, j, s] = P(leaf = s | middle configuration j)."""
        table = _lead(cpt, len(self.tables.parents[leaf]))
        return table[(slice(None),) + self.leaf_index[leaf]]

    def _leaf(self, cpts: Mapping[str, np.ndarray], leaf: str) -> np.ndarray:
        table = cpts[leaf]
        return self.shared_leaf[leaf] if table is self.tables.cpts[leaf] else self._leaf_matrix(table, leaf)

    def _root_prior(self, cpts: Mapping[str, np.ndarray]) -> np.ndarray:
        out = np.ones((1, self.K))
        for r, i in self.root_pos.items():
            out = out * _lead(cpts[r], 0)[:, self.root_states[:, i]]
        return out

    def _transition(self, cpts: Mapping[str, np.ndarray], active: np.ndarray) -> np.ndarray:
        """T[p, a, j] = P(middle configuration j | root configuration active[a])."""
        out = None
        for m, i in self.mid_pos.items():
            table = _lead(cpts[m], len(self.tables.parents[m]))
            idx = tuple(self.root_states[active, self.root_pos[r]] for r in self.tables.parents[m])
            probs = table[(slice(None),) + idx]  # (P, A, card_m)
            factor = probs[:, :, self.mid_states[:, i]]  # (P, A, J)
            out = factor if out is None else out * factor
        assert out is not None, "a layered network has a middle layer"
        return out

    # ---------------------------------------------------------------- inference
    def run(
        self,
        cpts: Mapping[str, np.ndarray] | None,
        likelihoods: Mapping[str, np.ndarray],
        targets: Sequence[str],
        n_rows: int,
        want_joint: bool = False,
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray | None]:
        """Posterior marginals ``(P, B, card)``, log P(evidence) ``(P, B)`` and, on request, the joint ``(P, B, J)``.

        ``cpts=None`` uses the compiled tables and everything precomputed from them.
        """
        return self._run_dense(cpts, self.dense(likelihoods, n_rows), targets, want_joint)

    def _run_dense(self, cpts: Mapping[str, np.ndarray] | None, lam: np.ndarray, targets: Sequence[str], want_joint: bool) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray | None]:
        """As :meth:`run`, with the evidence already as one dense matrix (``cpts=None``: the compiled tables)."""
        shared = cpts is None
        if cpts is None:
            cpts = self.tables.cpts
        B = lam.shape[0]
        target_leaves = [t for t in targets if t in self.leaf_number]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # 1. root configurations and their transition to the middle layer
            observed = np.add.reduceat((lam == 1).all(axis=0), self.var_starts) != self.var_cards
            fast_roots = shared and not any(t in self.root_pos for t in targets) and all(observed[self.var_number[r]] for r in self.roots)
            if fast_roots:
                k = np.zeros(B, dtype=np.intp)
                value = np.ones(B)
                for r, i in self.root_pos.items():
                    block = lam[:, self.offset[r] : self.offset[r] + self.tables.cardinality(r)]
                    if not ((block != 0).sum(axis=1) == 1).all():
                        fast_roots = False
                        break
                    code = block.argmax(axis=1)
                    k += code * self.root_strides[i]
                    value *= block[np.arange(B), code]
            if fast_roots:
                prior_j = (self.shared_transition[0][k] * (self.shared_root_prior[0][k] * value)[:, None])[None]
            else:
                W = (self.shared_root_prior if shared else self._root_prior(cpts))[:, None, :]
                seen = [r for r in self.roots if observed[self.var_number[r]]]
                if seen:
                    W = W * lam[:, np.stack([self.root_columns[r] for r in seen])].prod(axis=1)[None]
                if shared:
                    active = np.flatnonzero(W[0].any(axis=0)) if B > 1 else np.flatnonzero(W[0, 0])
                    T = self.shared_transition[:, active]
                else:
                    active = np.flatnonzero(W.reshape(-1, self.K).any(axis=0))
                    T = self._transition(cpts, active)
                W = W[:, :, active]
                if W.shape[2] == 1:
                    prior_j = T * W  # (P, 1, J) * (P, B, 1)
                elif (np.count_nonzero(W, axis=2) == 1).all():
                    pick = W.argmax(axis=2)[..., None]
                    prior_j = np.take_along_axis(T, pick, axis=1) * np.take_along_axis(W, pick, axis=2)
                else:
                    prior_j = np.matmul(W, T)

            # 2. evidence on the middle layer
            loglik = None  # (P or 1, B, J) once some evidence below the roots is seen

            def add(term: np.ndarray) -> None:
                nonlocal loglik
                loglik = term if loglik is None else (np.add(loglik, term, out=loglik) if loglik.shape == np.broadcast_shapes(loglik.shape, term.shape) else loglik + term)

            for m, cols in self.mid_columns.items():
                if observed[self.var_number[m]]:
                    values = lam[:, cols]
                    add(np.where(values > 0, np.log(values), IMPOSSIBLE_LOG)[None])

            # 3. leaves: hard rows by one matrix product, soft rows one by one
            L = lam[:, self.leaf_cols]
            nonzero = L != 0
            count = np.add.reduceat(nonzero, self.leaf_starts, axis=1)
            ones = np.add.reduceat(L == 1, self.leaf_starts, axis=1) == self.leaf_cards
            hard = (count == 1) & ~ones
            soft = ~hard & ~ones
            for t in target_leaves:
                hard[:, self.leaf_number[t]] = False
                soft[:, self.leaf_number[t]] = False
            if hard.any():
                H = nonzero & hard[:, self.leaf_block]
                scale = np.log(np.where(H, L, 1.0)).sum(axis=1)
                if shared:
                    ll = (H.astype(float) @ self.shared_log_sentinel)[None]
                else:
                    ll = self._hard_batched(cpts, H)
                ll += scale[None, :, None]
                add(ll)
            for column in np.flatnonzero(soft.any(axis=0)) if soft.any() else ():
                i = int(column)
                leaf = self.leaves[i]
                rows = soft[:, i]
                C = self._leaf(cpts, leaf)
                block = lam[:, self.offset[leaf] : self.offset[leaf] + self.leaf_cards[i]]
                f = np.einsum("bs,pjs->pbj", np.where(rows[:, None], block, 1.0), C)
                add(np.where(f > 0, np.log(f), IMPOSSIBLE_LOG))

            # 4. combine
            if loglik is None:
                loglik = np.zeros((1, B, self.J))
            shift = loglik.max(axis=2, keepdims=True)
            dead = shift < IMPOSSIBLE_LOG / 2  # every configuration impossible
            shift[dead] = 0.0
            lik = np.subtract(loglik, shift, out=loglik)
            np.exp(lik, out=lik)
            target_factor = {}
            lik_full = lik
            for t in target_leaves:
                C = self._leaf(cpts, t)
                block = lam[:, self.offset[t] : self.offset[t] + self.tables.cardinality(t)]
                target_factor[t] = (C, block)
                lik_full = lik_full * np.einsum("bs,pjs->pbj", block, C)
            in_place = prior_j.shape == np.broadcast_shapes(prior_j.shape, lik_full.shape) and prior_j.flags.writeable
            in_place = in_place and not target_factor and not any(t in self.root_pos or t in self.leaf_number for t in targets)
            full = np.multiply(prior_j, lik_full, out=prior_j) if in_place else prior_j * lik_full
            total = full.sum(axis=2)
            total[np.broadcast_to(dead[..., 0], total.shape)] = 0.0
            log_evidence = np.log(total) + shift[..., 0]
            iso_post = {}
            for v in self.isolated:
                if not observed[self.var_number[v]] and cpts[v] is self.tables.cpts[v]:
                    iso_post[v] = cpts[v][None, None, :]
                    continue
                prior = _lead(cpts[v], 0)[:, None, :]
                q = prior * lam[None, :, self.offset[v] : self.offset[v] + prior.shape[-1]]
                z = q.sum(axis=2)
                log_evidence = log_evidence + np.log(z)
                iso_post[v] = q / z[..., None]
            impossible = ~(total > 0) | ~np.isfinite(log_evidence)
            log_evidence = np.where(impossible, -np.inf, log_evidence)

            out: dict[str, np.ndarray] = {}
            if any(t in self.mid_pos for t in targets):
                marginals = (full @ self.mid_indicator_all) / total[..., None]
                mids = {m: marginals[:, :, sl] for m, sl in self.mid_slices.items()}
            for t in targets:
                if t in self.mid_pos:
                    out[t] = mids[t]
                elif t in self.root_pos:
                    score = np.einsum("pbk,pkj,pbj->pbk", W, T, lik_full)
                    ind = np.eye(self.tables.cardinality(t))[self.root_states[active, self.root_pos[t]]]
                    s = score @ ind
                    out[t] = s / s.sum(axis=2, keepdims=True)
                elif t in target_factor:
                    C, block = target_factor[t]
                    rest = prior_j * lik
                    for t2, (C2, block2) in target_factor.items():
                        if t2 != t:
                            rest = rest * np.einsum("bs,pjs->pbj", block2, C2)
                    q = np.einsum("pbj,pjs->pbs", rest, C) * block[None]
                    out[t] = q / q.sum(axis=2, keepdims=True)
                else:
                    out[t] = iso_post[t]
            n_sets = log_evidence.shape[0]
            any_impossible = impossible.any()
            for t in out:
                value = out[t]
                if tuple(value.shape[:2]) != (n_sets, B):
                    value = np.broadcast_to(value, (n_sets, B) + value.shape[2:]).copy()
                if any_impossible:
                    value = np.array(value)
                    value[impossible] = np.nan
                out[t] = value
            joint = None
            if want_joint:
                joint = full / total[..., None]
                if impossible.any():
                    joint = np.broadcast_to(joint, impossible.shape + joint.shape[-1:]).copy()
                    joint[impossible] = np.nan
        return out, log_evidence, joint

    def _hard_batched(self, cpts: Mapping[str, np.ndarray], H: np.ndarray) -> np.ndarray:
        """Hard-evidence log-likelihood ``(P, B, J)`` when some leaf tables are batched.

        Logs are taken on each observed column of the small table before it is
        spread over the middle configurations, and accumulated in place.
        """
        B = H.shape[0]
        shared_rows, out = [], None
        for c in np.flatnonzero(H.any(axis=0)):
            leaf = self.leaves[self.leaf_block[c]]
            table = cpts[leaf]
            if table is self.tables.cpts[leaf]:
                shared_rows.append(c)
                continue
            state = c - self.leaf_starts[self.leaf_block[c]]
            column = _lead(table, len(self.tables.parents[leaf]))[..., state]  # (P, *parent cards)
            with np.errstate(divide="ignore"):
                logs = np.where(column > 0, np.log(column), IMPOSSIBLE_LOG)
            spread = logs[(slice(None),) + self.leaf_index[leaf]]  # (P, J)
            rows = H[:, c]
            if B == 1:
                term = spread[:, None, :]
            else:
                term = spread[:, None, :] * rows[None, :, None]
            out = term if out is None else np.add(out, term, out=out if out.shape == np.broadcast_shapes(out.shape, term.shape) else None)
        if shared_rows:
            term = (H[:, shared_rows].astype(float) @ self.shared_log_sentinel[shared_rows])[None]
            out = term if out is None else out + term
        assert out is not None, "called with some hard evidence"
        return out
