"""Structured conditional distributions: leaky noisy-OR and equal-weight mixtures.

A diagnostic network's findings often have many parents: a dense table over
``k`` binary parents has ``2**k`` columns (``onset``, whose parents are all the
causes, has 16 million at 24 causes). These classes keep the few numbers that
define such a table and give it in dense form only on request (export, the
oracles at small ``k``); the engine's factorised path works on the numbers.

Both accept a leading axis of parameter sets (sensitivity analysis): ``leak``
of shape ``(n_sets,)`` and ``links`` of shape ``(n_sets, k)``, and so on.

Leaky noisy-OR (binary variable, states ``(no, yes)``; links exclude the leak)
    ``P(no | S) = (1 - leak) * prod_{i in S} (1 - link_i)`` for the set ``S``
    of parents in their last state ("present").
Equal-weight mixture (categorical variable over binary parents)
    ``P(x | S)`` is the mean of the present parents' distributions, or the
    leak distribution when no parent is present.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import NetworkError

__all__ = ["Mixture", "NoisyOr", "StructuredCPD"]


def _read_only(values: object) -> np.ndarray:
    array = np.array(values, dtype=float)  # always a copy: no caller keeps a way to change it
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class NoisyOr:
    """A leaky noisy-OR table over binary parents, kept as its numbers.

    Parameters
    ----------
    leak : array, shape () or (n_sets,)
        P(yes | no parent present).
    links : array, shape (k,) or (n_sets, k)
        P(yes | only parent i present, leak switched off), one per parent in
        the order of the variable's parents.

    Examples
    --------
    >>> cpd = NoisyOr(leak=0.1, links=[0.5, 0.8])
    >>> cpd.dense()[1, 1].round(3)   # both parents present: states (no, yes)
    array([0.09, 0.91])
    >>> cpd.given(np.array([[1, 0]])).round(3)
    array([[0.45, 0.55]])
    """

    leak: np.ndarray
    links: np.ndarray

    def __post_init__(self) -> None:
        """Check the shapes and make the numbers read-only."""
        leak, links = _read_only(self.leak), _read_only(self.links)
        if links.ndim not in (1, 2) or leak.ndim != links.ndim - 1 or leak.shape != links.shape[:-1]:
            raise NetworkError(f"noisy-OR: leak of shape {leak.shape} and links of shape {links.shape} do not match (expected () and (k,), or (n_sets,) and (n_sets, k))")
        object.__setattr__(self, "leak", leak)
        object.__setattr__(self, "links", links)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle through the constructor, so that the numbers come back checked and read-only."""
        return (NoisyOr, (np.array(self.leak), np.array(self.links)))

    @property
    def n_parents(self) -> int:
        """Number of parents."""
        return int(self.links.shape[-1])

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """``()`` for one parameter set, ``(n_sets,)`` for many."""
        return tuple(self.leak.shape)

    def problems(self) -> list[str]:
        """Numbers outside [0, 1] or not finite, described."""
        bad = [what for what, a in (("leak", self.leak), ("links", self.links)) if not (np.all(np.isfinite(a)) and a.min(initial=0.0) >= 0 and a.max(initial=0.0) <= 1)]
        return [f"noisy-OR {what} outside [0, 1]" for what in bad]

    def dense(self) -> np.ndarray:
        """Expand to the full table, shape ``(*batch, 2, ..., 2, 2)``: parents' axes, then (no, yes)."""
        k = self.n_parents
        batch = self.batch_shape
        absent = np.broadcast_to((1.0 - self.leak).reshape(batch + (1,) * k), batch + (2,) * k).copy()
        for i in range(k):
            shape = batch + tuple(2 if j == i else 1 for j in range(k))
            factor = np.stack([np.ones(batch), 1.0 - self.links[..., i]], axis=-1).reshape(shape)
            absent = absent * factor
        return np.stack([absent, 1.0 - absent], axis=-1)

    @functools.cached_property
    def configuration_table(self) -> np.ndarray:
        """P(variable | parents) for every parent configuration, shape ``(2**k, 2)``, read-only (unbatched only).

        Rows as :meth:`dense` flattened: the first parent is the most significant bit. A pure memo of
        the (immutable) numbers, so that reasoning over many patients builds it once.

        Examples
        --------
        >>> NoisyOr(leak=0.1, links=[0.5, 0.8]).configuration_table.round(3)
        array([[0.9 , 0.1 ],
               [0.18, 0.82],
               [0.45, 0.55],
               [0.09, 0.91]])
        """
        if self.batch_shape:
            raise NetworkError("configuration_table needs unbatched numbers (one parameter set)")
        table = self.dense().reshape(-1, 2)
        table.setflags(write=False)
        return table

    @functools.cached_property
    def entropy_bits(self) -> np.ndarray:
        """H(variable | parents) in bits for every parent configuration, rows as :attr:`configuration_table` (a pure memo).

        Examples
        --------
        >>> NoisyOr(leak=0.5, links=[1.0]).entropy_bits
        array([1., 0.])
        """
        table = self.configuration_table
        with np.errstate(divide="ignore", invalid="ignore"):
            bits = 0.0 - np.where(table > 0, table * np.log2(np.where(table > 0, table, 1.0)), 0.0).sum(axis=-1)  # (0.0 - : no -0.0)
        bits.setflags(write=False)
        return bits

    def given(self, parent_states: np.ndarray) -> np.ndarray:
        """P(variable | parents) for rows of parent state indices, shape ``(n, 2)`` (unbatched only)."""
        if self.batch_shape:
            raise NetworkError("given() needs unbatched numbers (one parameter set)")
        present = np.asarray(parent_states) == 1
        absent = (1.0 - self.leak) * np.prod(np.where(present, 1.0 - self.links, 1.0), axis=-1)
        return np.stack([absent, 1.0 - absent], axis=-1)


@dataclass(frozen=True, eq=False)
class Mixture:
    """An equal-weight mixture of the present parents' distributions, kept as its numbers.

    Parameters
    ----------
    distributions : array, shape (k, n_states) or (n_sets, k, n_states)
        The distribution each parent gives the variable, in parent order.
    leak : array, shape (n_states,) or (n_sets, n_states)
        The distribution when no parent is present.

    Examples
    --------
    >>> cpd = Mixture(distributions=[[1.0, 0.0], [0.0, 1.0]], leak=[0.5, 0.5])
    >>> cpd.dense()[1, 1]
    array([0.5, 0.5])
    >>> cpd.given(np.array([[0, 0], [0, 1]]))
    array([[0.5, 0.5],
           [0. , 1. ]])
    """

    distributions: np.ndarray
    leak: np.ndarray

    def __post_init__(self) -> None:
        """Check the shapes and make the numbers read-only."""
        dists, leak = _read_only(self.distributions), _read_only(self.leak)
        if dists.ndim not in (2, 3) or leak.ndim != dists.ndim - 1 or leak.shape[:-1] != dists.shape[:-2] or leak.shape[-1] != dists.shape[-1]:
            raise NetworkError(f"mixture: distributions of shape {dists.shape} and leak of shape {leak.shape} do not match (expected (k, n_states) and (n_states,), or with a leading n_sets axis)")
        object.__setattr__(self, "distributions", dists)
        object.__setattr__(self, "leak", leak)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle through the constructor, so that the numbers come back checked and read-only."""
        return (Mixture, (np.array(self.distributions), np.array(self.leak)))

    @property
    def n_parents(self) -> int:
        """Number of parents."""
        return int(self.distributions.shape[-2])

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """``()`` for one parameter set, ``(n_sets,)`` for many."""
        return tuple(self.leak.shape[:-1])

    def problems(self, tolerance: float) -> list[str]:
        """Entries outside [0, 1] or distributions not summing to 1 within ``tolerance``, described."""
        out = []
        for what, a in (("distributions", self.distributions), ("leak", self.leak)):
            if not (np.all(np.isfinite(a)) and a.min(initial=0.0) >= 0 and a.max(initial=0.0) <= 1):
                out.append(f"mixture {what} outside [0, 1]")
                continue
            worst = float(np.max(np.abs(a.sum(axis=-1) - 1.0), initial=0.0))
            if worst > tolerance:
                out.append(f"mixture {what} sum to 1 only within {worst:.3g} (tolerance {tolerance:g})")
        return out

    def dense(self) -> np.ndarray:
        """Expand to the full table, shape ``(*batch, 2, ..., 2, n_states)``.

        Built without a loop over the ``2**k`` parent configurations: the sum
        of the present parents' distributions and their count are sums of
        one-parent terms broadcast along each parent's axis.
        """
        k, n = self.distributions.shape[-2:]
        batch = self.batch_shape
        total = np.zeros(batch + (2,) * k + (n,))
        count = np.zeros((2,) * k + (1,))
        for i in range(k):
            shape = (1,) * i + (2,) + (1,) * (k - i - 1)
            on = np.array([0.0, 1.0]).reshape(shape + (1,))
            total = total + on * self.distributions[..., i, :].reshape(batch + (1,) * k + (n,))
            count = count + on
        leak = self.leak.reshape(batch + (1,) * k + (n,))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / np.where(count > 0, count, 1.0)
        return np.where(count > 0, mean, leak)

    def given(self, parent_states: np.ndarray) -> np.ndarray:
        """P(variable | parents) for rows of parent state indices, shape ``(n, n_states)`` (unbatched only)."""
        if self.batch_shape:
            raise NetworkError("given() needs unbatched numbers (one parameter set)")
        present = (np.asarray(parent_states) == 1).astype(float)
        count = present.sum(axis=-1, keepdims=True)
        mean = (present @ self.distributions) / np.where(count > 0, count, 1.0)
        return np.where(count > 0, mean, self.leak)


StructuredCPD = NoisyOr | Mixture
