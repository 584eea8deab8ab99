"""Conditional probability tables as plain numpy arrays.

:class:`NetworkTables` is the engine-neutral form of a discrete Bayesian
network: variable names, state names, parents and one array per variable. The
spec builds it, :mod:`postfusion_bayes.engine.files` turns it into a pgmpy model and
back, and :mod:`postfusion_bayes.engine` compiles it for inference.

Array convention: the table of ``X`` with parents ``(A, B)`` has shape
``(|A|, |B|, |X|)``; the last axis is the variable itself and sums to 1.
A table may carry leading batch axes for many parameter sets; they come first:
``(n_sets, |A|, |B|, |X|)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from ..errors import NetworkError
from .structured import Mixture, NoisyOr

__all__ = ["NetworkTables", "COLUMN_SUM_TOLERANCE"]

#: Largest deviation from 1 accepted for a column of a conditional table.
COLUMN_SUM_TOLERANCE = 1e-9


class _Tables(Mapping):
    """Variable -> dense table, read-only; structured tables are expanded on first access.

    The expansion is a pure memo: it is computed from the immutable numbers
    and cannot change an answer.
    """

    __slots__ = ("_given", "_dense")

    def __init__(self, given: dict[str, Any]):
        self._given = given
        self._dense: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        value = self._given[name]
        if isinstance(value, np.ndarray):
            return value
        dense = self._dense.get(name)
        if dense is None:
            dense = value.dense()
            dense.setflags(write=False)
            self._dense[name] = dense
        return dense

    def __iter__(self) -> Iterator[str]:
        return iter(self._given)

    def __len__(self) -> int:
        return len(self._given)

    def __repr__(self) -> str:
        return f"<tables of {', '.join(self._given)}>"


def _as_table(values: object) -> np.ndarray:
    """Return a read-only float array, copied only when the caller could still change it."""
    if isinstance(values, np.ndarray) and values.dtype == float and not values.flags.writeable and values.flags.owndata:
        return values  # read-only and owning its data: nobody can change it any more
    table = np.array(values, dtype=float)
    table.setflags(write=False)
    return table


@dataclass(frozen=True, eq=False)
class NetworkTables:
    """A discrete Bayesian network as arrays.

    Parameters
    ----------
    states : mapping of str to tuple of str
        State names of every variable, in topological order.
    parents : mapping of str to tuple of str
        Parents of every variable, in the order of the table axes.
    cpts : mapping of str to numpy.ndarray or structured table
        Table of every variable: a dense array of shape
        ``(*parent_cards, card)``, or a structured table
        (:class:`~postfusion_bayes.engine.structured.NoisyOr`,
        :class:`~postfusion_bayes.engine.structured.Mixture`) kept as its
        numbers. Reading ``cpts[name]`` always gives the dense array (a
        structured one is expanded on first access); :attr:`structure` gives
        the structured ones as such.

    Examples
    --------
    >>> import numpy as np
    >>> t = NetworkTables(
    ...     states={"rain": ("no", "yes"), "wet": ("no", "yes")},
    ...     parents={"rain": (), "wet": ("rain",)},
    ...     cpts={"rain": np.array([0.8, 0.2]),
    ...           "wet": np.array([[0.9, 0.1], [0.2, 0.8]])},
    ... )
    >>> t.variables
    ('rain', 'wet')
    >>> t.cardinality("wet")
    2
    """

    states: Mapping[str, tuple[str, ...]]
    parents: Mapping[str, tuple[str, ...]]
    cpts: Mapping[str, np.ndarray] = field(repr=False)

    def __post_init__(self) -> None:
        """Check the tables against the states and parents, make them read-only and order all three topologically."""
        states = {str(k): tuple(str(s) for s in v) for k, v in self.states.items()}
        parents = {str(k): tuple(str(p) for p in self.parents.get(k, ())) for k in states}
        given_cpts = self.cpts._given if isinstance(self.cpts, _Tables) else self.cpts
        unknown = sorted(set(self.parents) - set(states)) + sorted(set(given_cpts) - set(states))
        if unknown:
            raise NetworkError(f"tables name variables without states: {unknown}")
        cpts: dict[str, Any] = {}
        for name in states:
            if name not in given_cpts:
                raise NetworkError(f"no table for variable {name!r}")
            for p in parents[name]:
                if p not in states:
                    raise NetworkError(f"parent {p!r} of {name!r} has no states")
            value = given_cpts[name]
            if isinstance(value, NoisyOr | Mixture):
                cpts[name] = _check_structured(name, value, states, parents[name])
                continue
            table = _as_table(value)
            expected = tuple(len(states[p]) for p in parents[name]) + (len(states[name]),)
            if table.shape[-len(expected):] != expected or table.ndim not in (len(expected), len(expected) + 1):
                raise NetworkError(
                    f"table of {name!r} has shape {table.shape}, expected {expected} "
                    f"(parents {parents[name]}) with at most one leading batch axis"
                )
            cpts[name] = table
        order = _topological_order(parents)
        object.__setattr__(self, "states", MappingProxyType({k: states[k] for k in order}))
        object.__setattr__(self, "parents", MappingProxyType({k: parents[k] for k in order}))
        object.__setattr__(self, "cpts", _Tables({k: cpts[k] for k in order}))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle as the constructor's arguments (the read-only views do not pickle themselves)."""
        return (NetworkTables, (dict(self.states), dict(self.parents), dict(self.cpts._given)))  # type: ignore[attr-defined]

    @property
    def variables(self) -> tuple[str, ...]:
        """Variable names in topological order."""
        return tuple(self.states)

    @property
    def structure(self) -> Mapping[str, NoisyOr | Mixture]:
        """The tables kept in structured form (noisy-OR, mixture), by variable."""
        given = self.cpts._given  # type: ignore[attr-defined]
        return MappingProxyType({k: v for k, v in given.items() if not isinstance(v, np.ndarray)})

    def cpd(self, name: str) -> np.ndarray | NoisyOr | Mixture:
        """Return the table of ``name`` as given: a dense array or a structured table."""
        return self.cpts._given[name]  # type: ignore[attr-defined]

    def batch_size(self, name: str) -> int | None:
        """Return the number of parameter sets of the table of ``name``, or None when it is unbatched."""
        value = self.cpd(name)
        if isinstance(value, np.ndarray):
            return int(value.shape[0]) if value.ndim == len(self.parents[name]) + 2 else None
        return value.batch_shape[0] if value.batch_shape else None

    def cardinality(self, name: str) -> int:
        """Return the number of states of ``name``."""
        return len(self.states[name])

    def children(self, name: str) -> tuple[str, ...]:
        """Variables that have ``name`` as a parent."""
        return tuple(v for v, ps in self.parents.items() if name in ps)

    def column_sum_errors(self, tolerance: float = COLUMN_SUM_TOLERANCE) -> list[str]:
        """Describe every table whose columns do not sum to 1 or hold values outside [0, 1]."""
        problems: list[str] = []
        for name in self.states:
            value = self.cpd(name)
            if isinstance(value, NoisyOr):
                problems.extend(f"table of {name!r}: {p}" for p in value.problems())
                continue
            if isinstance(value, Mixture):
                problems.extend(f"table of {name!r}: {p}" for p in value.problems(tolerance))
                continue
            table = value
            if not np.all(np.isfinite(table)) or table.min() < 0 or table.max() > 1:
                problems.append(f"table of {name!r} has entries outside [0, 1]")
                continue
            worst = float(np.max(np.abs(table.sum(axis=-1) - 1.0)))
            if worst > tolerance:
                problems.append(f"columns of {name!r} sum to 1 only within {worst:.3g} (tolerance {tolerance:g})")
        return problems

    def replace(self, cpts: Mapping[str, Any]) -> NetworkTables:
        """Return new tables with some tables replaced (this object is unchanged)."""
        unknown = sorted(set(cpts) - set(self.states))
        if unknown:
            raise NetworkError(f"cannot replace tables of unknown variables {unknown}")
        merged = dict(self.cpts._given)  # type: ignore[attr-defined]
        merged.update(cpts)
        return NetworkTables(states=self.states, parents=self.parents, cpts=merged)

    def dense(self) -> NetworkTables:
        """Return the same network with every table dense (for exporters and oracles; ``2**k`` columns per structured table)."""
        return NetworkTables(states=self.states, parents=self.parents, cpts={v: self.cpts[v] for v in self.states})


def _check_structured(name: str, value: NoisyOr | Mixture, states: Mapping[str, tuple[str, ...]], parents: tuple[str, ...]) -> NoisyOr | Mixture:
    """Check that a structured table fits its variable and parents (binary parents; noisy-OR: a binary variable)."""
    if value.n_parents != len(parents):
        raise NetworkError(f"table of {name!r} has {value.n_parents} parents' numbers, expected {len(parents)} (parents {parents})")
    if any(len(states[p]) != 2 for p in parents):
        raise NetworkError(f"structured table of {name!r} needs binary parents; {[p for p in parents if len(states[p]) != 2]} are not")
    if isinstance(value, NoisyOr) and len(states[name]) != 2:
        raise NetworkError(f"noisy-OR table of {name!r} needs a binary variable, it has states {states[name]}")
    if isinstance(value, Mixture) and value.distributions.shape[-1] != len(states[name]):
        raise NetworkError(f"mixture table of {name!r} has {value.distributions.shape[-1]} states, expected {len(states[name])}")
    return value


def _topological_order(parents: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Kahn's algorithm, stable in the given order; raises on a cycle."""
    remaining = {k: set(v) for k, v in parents.items()}
    order: list[str] = []
    done: set[str] = set()
    while remaining:
        ready = [k for k, ps in remaining.items() if ps <= done]
        if not ready:
            raise NetworkError(f"the graph has a cycle among {sorted(remaining)}")
        for k in ready:
            order.append(k)
            done.add(k)
            del remaining[k]
    return order
