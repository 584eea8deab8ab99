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

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from ..errors import NetworkError

__all__ = ["NetworkTables", "COLUMN_SUM_TOLERANCE"]

#: Largest deviation from 1 accepted for a column of a conditional table.
COLUMN_SUM_TOLERANCE = 1e-9


@dataclass(frozen=True)
class NetworkTables:
    """A discrete Bayesian network as arrays.

    Parameters
    ----------
    states : mapping of str to tuple of str
        State names of every variable, in topological order.
    parents : mapping of str to tuple of str
        Parents of every variable, in the order of the table axes.
    cpts : mapping of str to numpy.ndarray
        Table of every variable, shape ``(*parent_cards, card)``.

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
        unknown = sorted(set(self.parents) - set(states)) + sorted(set(self.cpts) - set(states))
        if unknown:
            raise NetworkError(f"tables name variables without states: {unknown}")
        cpts = {}
        for name in states:
            if name not in self.cpts:
                raise NetworkError(f"no table for variable {name!r}")
            for p in parents[name]:
                if p not in states:
                    raise NetworkError(f"parent {p!r} of {name!r} has no states")
            table = np.array(self.cpts[name], dtype=float)
            table.setflags(write=False)
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
        object.__setattr__(self, "cpts", MappingProxyType({k: cpts[k] for k in order}))

    @property
    def variables(self) -> tuple[str, ...]:
        """Variable names in topological order."""
        return tuple(self.states)

    def cardinality(self, name: str) -> int:
        """Return the number of states of ``name``."""
        return len(self.states[name])

    def children(self, name: str) -> tuple[str, ...]:
        """Variables that have ``name`` as a parent."""
        return tuple(v for v, ps in self.parents.items() if name in ps)

    def column_sum_errors(self, tolerance: float = COLUMN_SUM_TOLERANCE) -> list[str]:
        """Describe every table whose columns do not sum to 1 or hold values outside [0, 1]."""
        problems = []
        for name, table in self.cpts.items():
            if not np.all(np.isfinite(table)) or table.min() < 0 or table.max() > 1:
                problems.append(f"table of {name!r} has entries outside [0, 1]")
                continue
            worst = float(np.max(np.abs(table.sum(axis=-1) - 1.0)))
            if worst > tolerance:
                problems.append(f"columns of {name!r} sum to 1 only within {worst:.3g} (tolerance {tolerance:g})")
        return problems

    def replace(self, cpts: Mapping[str, np.ndarray]) -> NetworkTables:
        """Return new tables with some tables replaced (this object is unchanged)."""
        unknown = sorted(set(cpts) - set(self.states))
        if unknown:
            raise NetworkError(f"cannot replace tables of unknown variables {unknown}")
        merged = dict(self.cpts)
        merged.update(cpts)
        return NetworkTables(states=self.states, parents=self.parents, cpts=merged)


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
