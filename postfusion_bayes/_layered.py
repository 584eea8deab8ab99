"""Exact inference by enumeration for layered networks (roots -> middle -> leaves).

Many diagnostic networks, ours among them, have three layers: observed context
variables (roots), a few hidden causes whose parents are all roots (the middle
layer), and many findings whose parents are all causes (leaves). For such a
network the joint state of the middle layer has ``J = prod |middle|`` states
(256 for eight binary causes) and exact inference is a handful of dense array
operations over those ``J`` configurations:

1. ``W[p, b, k]``: prior times likelihood of each root configuration ``k``;
2. ``T[p, k, j]``: P(middle configuration ``j`` | root configuration ``k``),
   computed only for the root configurations some row can be in;
3. ``L[p, b, j]``: log-likelihood of the leaf evidence, one matrix product
   ``onehot[b, s] @ log C[p, s, j]`` for all hard findings at once (zeros are
   counted separately so ``0 * log 0`` never makes a NaN), plus an explicit
   product for soft findings;
4. ``w = (W @ T) * exp(L - max L)``; normalising ``w`` gives the posterior of
   every middle configuration, and marginals are sums over it. ``log P(e)`` is
   ``log sum w + max L``, so tiny likelihoods never underflow.

Isolated variables (no parents, no children) are independent of everything and
handled on their own. Leaves asked for as targets are kept out of step 3 and
multiplied in separately, so their own evidence is not counted twice.

Tables may carry a leading parameter-set axis (``P``); arrays here always have
one (size 1 when a table is shared).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .tables import NetworkTables

__all__ = ["LayeredPlan", "is_layered"]

MAX_CONFIGURATIONS = 4096


def _layers(tables: NetworkTables) -> tuple[list[str], list[str], list[str], list[str]]:
    children = {v: tables.children(v) for v in tables.variables}
    isolated = [v for v in tables.variables if not tables.parents[v] and not children[v]]
    roots = [v for v in tables.variables if not tables.parents[v] and children[v]]
    middle = [v for v in tables.variables if tables.parents[v] and children[v]]
    leaves = [v for v in tables.variables if tables.parents[v] and not children[v]]
    return isolated, roots, middle, leaves


def is_layered(tables: NetworkTables) -> bool:
    """Whether the enumeration plan applies (and pays) for this network."""
    isolated, roots, middle, leaves = _layers(tables)
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
    """Index arrays of a layered network, computed once.

    Parameters
    ----------
    tables : NetworkTables
        Unbatched tables of a network for which :func:`is_layered` is true.
    """

    def __init__(self, tables: NetworkTables):
        if not is_layered(tables):
            raise ValueError("the network is not layered (roots -> middle -> leaves)")
        self.tables = tables
        self.isolated, self.roots, self.middle, self.leaves = _layers(tables)
        card = tables.cardinality
        self.root_cards = [card(r) for r in self.roots]
        self.mid_cards = [card(m) for m in self.middle]
        self.K = int(np.prod(self.root_cards)) if self.roots else 1
        self.J = int(np.prod(self.mid_cards))
        self.root_states = np.stack(np.unravel_index(np.arange(self.K), self.root_cards), axis=1) if self.roots else np.zeros((1, 0), int)
        self.mid_states = np.stack(np.unravel_index(np.arange(self.J), self.mid_cards), axis=1)
        self.root_pos = {r: i for i, r in enumerate(self.roots)}
        self.mid_pos = {m: i for i, m in enumerate(self.middle)}
        # indicator matrices: configuration -> state of one variable
        self.mid_indicator = {m: np.eye(card(m))[self.mid_states[:, i]] for m, i in self.mid_pos.items()}
        # per-leaf gather index of its parents' states in each middle configuration
        self.leaf_index = {leaf: tuple(self.mid_states[:, self.mid_pos[p]] for p in tables.parents[leaf]) for leaf in self.leaves}
        self._shared_leaf = {leaf: self._leaf_matrix(tables.cpts[leaf], leaf) for leaf in self.leaves}

    # ---------------------------------------------------------------- tables per call
    def _leaf_matrix(self, cpt: np.ndarray, leaf: str) -> np.ndarray:
        """C[p, j, s] = P(leaf = s | middle configuration j)."""
        table = _lead(cpt, len(self.tables.parents[leaf]))
        return table[(slice(None),) + self.leaf_index[leaf]]

    def _leaf(self, cpts: Mapping[str, np.ndarray], leaf: str) -> np.ndarray:
        """Leaf matrix for these tables, reusing the compiled one when the table is unchanged."""
        table = cpts[leaf]
        return self._shared_leaf[leaf] if table is self.tables.cpts[leaf] else self._leaf_matrix(table, leaf)

    def _transition(self, cpts: Mapping[str, np.ndarray], active: np.ndarray) -> np.ndarray:
        """T[p, a, j] = P(middle configuration j | active root configuration a)."""
        out = None
        for m, i in self.mid_pos.items():
            table = _lead(cpts[m], len(self.tables.parents[m]))
            idx = tuple(self.root_states[active, self.root_pos[r]] for r in self.tables.parents[m])
            probs = table[(slice(None),) + idx]  # (P, A, card_m)
            factor = probs[:, :, self.mid_states[:, i]]  # (P, A, J)
            out = factor if out is None else out * factor
        return out

    # ---------------------------------------------------------------- inference
    def run(
        self,
        cpts: Mapping[str, np.ndarray],
        likelihoods: Mapping[str, np.ndarray],
        targets: Sequence[str],
        n_rows: int,
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Posterior marginals and log P(evidence); see :func:`postfusion_bayes._elimination.eliminate`."""
        B = n_rows
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # 1. root configurations
            W = np.ones((1, B, self.K))
            for r, i in self.root_pos.items():
                prior = _lead(cpts[r], 0)[:, self.root_states[:, i]]  # (P, K)
                W = W * prior[:, None, :]
                if r in likelihoods:
                    W = W * likelihoods[r][:, self.root_states[:, i]][None]
            active = np.flatnonzero(W.reshape(-1, self.K).any(axis=0))
            W = W[:, :, active]
            T = self._transition(cpts, active)  # (P, A, J)
            single = (np.count_nonzero(W, axis=2) == 1).all()
            if single:
                pick = W.argmax(axis=2)[..., None]  # (P, B, 1)
                prior_j = np.take_along_axis(T, pick, axis=1) * np.take_along_axis(W, pick, axis=2)
            else:
                prior_j = np.einsum("pbk,pkj->pbj", W, T)

            # 2. evidence on middle variables
            loglik = np.zeros((1, B, self.J))
            for m in self.middle:
                if m in likelihoods:
                    loglik = loglik + np.log(likelihoods[m][:, self.mid_states[:, self.mid_pos[m]]])[None]

            # 3. leaves
            target_set = set(targets)
            hard_cols, hard_rows, hard_leaves, soft = [], [], [], []
            for leaf in self.leaves:
                lam = likelihoods.get(leaf)
                if lam is None or leaf in target_set:
                    continue
                nonzero = lam != 0
                n_nonzero = nonzero.sum(axis=1)
                ones = (lam == 1).all(axis=1)
                single_rows = (n_nonzero == 1) & ~ones
                other_rows = ~single_rows & ~ones
                if single_rows.any():
                    hard_leaves.append((leaf, single_rows, lam.argmax(axis=1), lam.max(axis=1)))
                if other_rows.any():
                    soft.append((leaf, other_rows, lam))
            if hard_leaves:
                loglik = loglik + self._hard_loglik(cpts, hard_leaves, B)
            for leaf, rows, lam in soft:
                C = self._leaf(cpts, leaf)
                f = np.einsum("bs,pjs->pbj", lam, C)
                f[:, ~rows, :] = 1.0
                loglik = loglik + np.log(f)
            target_factor = {}
            for t in targets:
                if t in self.leaf_index:
                    C = self._leaf(cpts, t)
                    lam = likelihoods.get(t)
                    target_factor[t] = (C, lam)

            # 4. combine
            shift = loglik.max(axis=2, keepdims=True)
            shift = np.where(np.isfinite(shift), shift, 0.0)
            lik = np.exp(loglik - shift)  # (P', B, J)
            w = prior_j * lik
            lik_full = lik
            for t, (C, lam) in target_factor.items():
                if lam is not None:
                    lik_full = lik_full * np.einsum("bs,pjs->pbj", lam, C)
            full = prior_j * lik_full
            total = full.sum(axis=2)  # (P, B)
            log_evidence = np.log(total) + shift[..., 0]
            # isolated variables
            iso_post = {}
            for v in self.isolated:
                prior = _lead(cpts[v], 0)[:, None, :]  # (P, 1, S)
                q = prior * likelihoods[v][None] if v in likelihoods else np.broadcast_to(prior, prior.shape)
                z = q.sum(axis=2)
                log_evidence = log_evidence + np.log(z)
                iso_post[v] = q / z[..., None]
            impossible = ~(total > 0) | ~np.isfinite(log_evidence)
            log_evidence = np.where(impossible, -np.inf, log_evidence)

            post = full / total[..., None]
            out: dict[str, np.ndarray] = {}
            for t in targets:
                if t in self.mid_pos:
                    out[t] = post @ self.mid_indicator[t]
                elif t in self.root_pos:
                    # P(k | e) propto W[k] * sum_j T[k, j] * lik_j * (target leaf factors)
                    score = np.einsum("pbk,pkj,pbj->pbk", W, T, lik_full)
                    ind = np.eye(self.tables.cardinality(t))[self.root_states[active, self.root_pos[t]]]
                    s = score @ ind
                    out[t] = s / s.sum(axis=2, keepdims=True)
                elif t in target_factor:
                    C, lam = target_factor[t]
                    rest = w
                    for t2, (C2, lam2) in target_factor.items():
                        if t2 != t and lam2 is not None:
                            rest = rest * np.einsum("bs,pjs->pbj", lam2, C2)
                    q = np.einsum("pbj,pjs->pbs", rest, C)
                    if lam is not None:
                        q = q * lam[None]
                    out[t] = q / q.sum(axis=2, keepdims=True)
                else:
                    out[t] = iso_post[t]
            P = log_evidence.shape[0]
            for t in out:
                out[t] = np.broadcast_to(out[t], (P,) + out[t].shape[1:]).copy()
                out[t][impossible] = np.nan
        return out, log_evidence

    def _hard_loglik(self, cpts, hard_leaves, B) -> np.ndarray:
        """Sum of log P(observed state | j) over hard-observed leaves, as one product."""
        cols_log, cols_zero, onehot_cols = [], [], []
        scale = np.zeros(B)
        for leaf, rows, state, value in hard_leaves:
            C = self._leaf(cpts, leaf)
            observed_states = np.unique(state[rows])
            for s in observed_states:
                col = C[:, :, s]  # (P, J)
                cols_zero.append(col == 0)
                cols_log.append(np.log(np.where(col > 0, col, 1.0)))
                onehot_cols.append(rows & (state == s))
            scale += np.where(rows, np.log(np.where(rows, value, 1.0)), 0.0)
        P = max(c.shape[0] for c in cols_log)
        logC = np.stack([np.broadcast_to(c, (P, self.J)) for c in cols_log], axis=1)  # (P, S, J)
        zeroC = np.stack([np.broadcast_to(c, (P, self.J)) for c in cols_zero], axis=1).astype(float)
        H = np.stack(onehot_cols, axis=1).astype(float)  # (B, S)
        if P == 1:
            ll = (H @ logC[0])[None]
            zeros = (H @ zeroC[0])[None]
        else:
            ll = np.einsum("bs,psj->pbj", H, logC)
            zeros = np.einsum("bs,psj->pbj", H, zeroC)
        ll = np.where(zeros > 0, -np.inf, ll)
        return ll + scale[None, :, None]
