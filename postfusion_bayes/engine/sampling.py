"""Simulated cases: forward sampling from a network's tables.

Used to try out learning from cases (:meth:`~postfusion_bayes.model.Model.update_with_cases`)
on data whose true parameters are known.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ArgumentError
from .arguments import check_budget, check_count, check_generator, count_text
from .compiled import DEFAULT_MEMORY_BUDGET
from .tables import NetworkTables

__all__ = ["sample_cases", "sample_codes", "cases_frame", "as_generator"]


def as_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """Return a numpy Generator from an int seed >= 0, a Generator (used as is) or None (fresh entropy).

    :func:`~postfusion_bayes.engine.arguments.check_generator`, which refuses
    anything else naming ``seed``.

    Examples
    --------
    >>> as_generator(1).integers(10) == as_generator(1).integers(10)
    np.True_
    """
    return check_generator(seed)


def sample_codes(
    tables: NetworkTables,
    n: int,
    seed: int | np.random.Generator | None = None,
    given: dict[str, int] | None = None,
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> dict[str, np.ndarray]:
    """Draw ``n`` complete cases as state indices, parents first; some root variables may be fixed.

    Parameters
    ----------
    tables : NetworkTables
        Unbatched tables.
    n : int
        Number of cases (>= 0).
    seed : int or numpy.random.Generator, optional
        Seed of a new generator, or a generator to draw from; fresh entropy when None.
    given : mapping of str to int, optional
        State indices of variables *without parents*, the same in every case:
        the cases are then drawn from the distribution conditional on them
        (exact, because nothing upstream of a root is drawn).
    memory_budget : int, optional
        Bytes the draws may take; more is refused before anything is allocated.

    Returns
    -------
    dict of str to int array
        Per variable (in topological order), the state index of each case.

    Raises
    ------
    ArgumentError
        For a bad ``n`` or ``seed``, or a ``given`` variable that is unknown,
        has parents, or has no state of that index.
    MemoryBudgetError
        Cases that would not fit ``memory_budget``.

    Examples
    --------
    >>> import numpy as np
    >>> t = NetworkTables({"a": ("no", "yes"), "b": ("no", "yes")}, {"a": (), "b": ("a",)},
    ...                   {"a": np.array([0.5, 0.5]), "b": np.array([[1.0, 0.0], [0.0, 1.0]])})
    >>> sample_codes(t, 3, seed=0, given={"a": 1})["b"].tolist()
    [1, 1, 1]
    """
    n = check_count("n", n, minimum=0)
    rng = check_generator(seed)
    # per case and variable: its code, and while it is drawn its row of probabilities and their sums
    widest = max((tables.cardinality(v) for v in tables.variables), default=1)
    check_budget(8 * n * (2 * len(tables.variables) + 2 * widest + 2), memory_budget, f"simulating {count_text(n)} cases of {len(tables.variables)} variables")
    given = dict(given or {})
    for name, code in given.items():
        if name not in tables.parents:
            raise ArgumentError(f"given: unknown variable {name!r}")
        if tables.parents[name]:
            raise ArgumentError(f"given: {name!r} has parents {list(tables.parents[name])}; only variables without parents can be fixed")
        if isinstance(code, bool) or not isinstance(code, int | np.integer) or not 0 <= code < tables.cardinality(name):
            raise ArgumentError(f"given: {name!r} has states 0..{tables.cardinality(name) - 1}, got {code!r}")
    codes: dict[str, np.ndarray] = {}
    for name in tables.variables:
        if name in given:
            codes[name] = np.full(n, given[name], dtype=np.intp)
            continue
        table = tables.cpd(name)
        if isinstance(table, np.ndarray):
            index = tuple(codes[p] for p in tables.parents[name])
            probabilities = table[index] if index else np.broadcast_to(table, (n, tables.cardinality(name)))
        else:  # noisy-OR or onset mixture: from its numbers, never its dense table (2^k columns past a few causes)
            parents = tables.parents[name]
            probabilities = table.given(np.stack([codes[p] for p in parents], axis=-1) if parents else np.zeros((n, 0), dtype=np.intp))
        cumulative = np.cumsum(probabilities, axis=-1)
        draws = rng.uniform(size=(n, 1)) * cumulative[:, -1:]
        codes[name] = np.minimum((draws >= cumulative).sum(axis=-1), tables.cardinality(name) - 1)
    return codes


def sample_cases(tables: NetworkTables, n: int, seed: int | np.random.Generator | None = None, *, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> pd.DataFrame:
    """Draw ``n`` complete cases from the joint distribution, parents first.

    Parameters
    ----------
    tables : NetworkTables
        Unbatched tables.
    n : int
        Number of cases (>= 0).
    seed : int or numpy.random.Generator, optional
        Seed of a new generator, or a generator to draw from; fresh entropy when None.
    memory_budget : int
        Bytes the cases may take (the engine's default budget, 256 MB): more
        cases are refused before any is drawn.

    Returns
    -------
    DataFrame
        One row per case, one column per variable (in topological order),
        cells are state names.

    Raises
    ------
    ArgumentError
        ``n`` not a whole number >= 0, or a negative ``seed``
        (:class:`~postfusion_bayes.errors.ArgumentTypeError` for the wrong type).
    MemoryBudgetError
        Cases that would not fit ``memory_budget``.

    Examples
    --------
    >>> import numpy as np
    >>> t = NetworkTables({"rain": ("no", "yes")}, {"rain": ()}, {"rain": np.array([0.0, 1.0])})
    >>> sample_cases(t, 2, seed=0)["rain"].tolist()
    ['yes', 'yes']
    """
    return cases_frame(tables, sample_codes(tables, n, seed, memory_budget=memory_budget))


def cases_frame(tables: NetworkTables, codes: dict[str, np.ndarray]) -> pd.DataFrame:
    """Return drawn cases (state indices by variable) as a frame of state names, one column per variable.

    Examples
    --------
    >>> import numpy as np
    >>> t = NetworkTables({"rain": ("no", "yes")}, {"rain": ()}, {"rain": np.array([0.5, 0.5])})
    >>> cases_frame(t, {"rain": np.array([1, 0])})["rain"].tolist()
    ['yes', 'no']
    """
    return pd.DataFrame({name: np.asarray(tables.states[name], dtype=object)[c] for name, c in codes.items()})
