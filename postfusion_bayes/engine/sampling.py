"""Simulated cases: forward sampling from a network's tables.

Used to try out learning from cases (:meth:`~postfusion_bayes.model.Model.update_with_cases`)
on data whose true parameters are known.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ArgumentError, ArgumentTypeError
from .tables import NetworkTables

__all__ = ["sample_cases", "as_generator"]


def as_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """Return a numpy Generator from an int seed, a Generator (used as is) or None (fresh entropy).

    Examples
    --------
    >>> as_generator(1).integers(10) == as_generator(1).integers(10)
    np.True_
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, int | np.integer) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise ArgumentTypeError(f"seed must be an int or a numpy.random.Generator, got {type(seed).__name__}")


def sample_cases(tables: NetworkTables, n: int, seed: int | np.random.Generator | None = None) -> pd.DataFrame:
    """Draw ``n`` complete cases from the joint distribution, parents first.

    Parameters
    ----------
    tables : NetworkTables
        Unbatched tables.
    n : int
        Number of cases (>= 0).
    seed : int or numpy.random.Generator, optional
        Seed of a new generator, or a generator to draw from; fresh entropy when None.

    Returns
    -------
    DataFrame
        One row per case, one column per variable (in topological order),
        cells are state names.

    Examples
    --------
    >>> import numpy as np
    >>> t = NetworkTables({"rain": ("no", "yes")}, {"rain": ()}, {"rain": np.array([0.0, 1.0])})
    >>> sample_cases(t, 2, seed=0)["rain"].tolist()
    ['yes', 'yes']
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ArgumentError(f"n must be a whole number >= 0, got {n!r}")
    rng = as_generator(seed)
    codes: dict[str, np.ndarray] = {}
    for name in tables.variables:
        table = tables.cpts[name]
        index = tuple(codes[p] for p in tables.parents[name])
        probabilities = table[index] if index else np.broadcast_to(table, (n, tables.cardinality(name)))
        cumulative = np.cumsum(probabilities, axis=-1)
        draws = rng.uniform(size=(n, 1)) * cumulative[:, -1:]
        codes[name] = np.minimum((draws >= cumulative).sum(axis=-1), tables.cardinality(name) - 1)
    return pd.DataFrame({name: np.asarray(tables.states[name], dtype=object)[c] for name, c in codes.items()})
