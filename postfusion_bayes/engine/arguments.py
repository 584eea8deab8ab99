"""Checks of the plain arguments a call takes: counts, seeds, probabilities, non-negative numbers, lists of names, paths, memory.

One function per kind of argument, shared by every public function that
takes one (the engine's sampling and file writing, and the clinical modules:
sensitivity, reasoning, learning, the model, the diagnosis report, plotting),
so that the same kind of argument is refused the same way everywhere, before
any work is done:

* :func:`check_count` (``n``, ``points``, ``k``, ``max_iterations``, ``top``),
  :func:`check_generator` (``seed``), :func:`check_probability` (a parameter
  value), :func:`check_real` (costs, strengths, ``tolerance``, an odds ratio),
  :func:`check_names` (``parameters``, ``targets``), :func:`check_path` (a file
  or folder) and :func:`check_budget` (work refused before it allocates more
  than the engine's memory budget);
* the wrong type raises :class:`~postfusion_bayes.errors.ArgumentTypeError`
  (also a ``TypeError``), a value outside what is allowed
  :class:`~postfusion_bayes.errors.ArgumentError`;
* the message names the argument, quotes what was given (cut to a length, see
  :func:`~postfusion_bayes.errors.shown`) and says what is allowed;
* ``True`` and ``False`` are not numbers here (``n=True`` is a mistake, not 1),
  and an integer too large for a float is refused by name, never an
  ``OverflowError``.

Domain-free (it knows no variable or parameter), so the engine may use it.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, MemoryBudgetError, shown, suggest

__all__ = ["check_count", "check_generator", "check_probability", "check_real", "check_names", "check_path", "check_budget", "as_float", "count_text", "type_text"]


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def type_text(value: object) -> str:
    """Return " (a str)", " (an int)": the type of a value refused, for a message.

    Examples
    --------
    >>> type_text(5), type_text(True)
    (' (an int)', ' (a bool)')
    """
    name = "bool" if isinstance(value, bool | np.bool_) else type(value).__name__
    return f" ({'an' if name[:1] in 'aeiou' else 'a'} {name})"


def as_float(value: object) -> float | None:
    """Return a real number as a float, or None when it is not a real number or too large for a float.

    Examples
    --------
    >>> as_float(3), as_float(True), as_float("3"), as_float(10**400)
    (3.0, None, None, None)
    """
    if not _is_real(value):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:  # an int (or Fraction) beyond the largest float
        return None


def check_count(argument: str, value: object, *, minimum: int = 1) -> int:
    """Return a whole-number argument (a count, a grid size, ``k``) as an int, or refuse it.

    Parameters
    ----------
    argument : str
        The argument's name, for the message.
    value : object
        What was given: a Python or numpy integer (not a bool, not a float).
    minimum : int
        The smallest value allowed.

    Raises
    ------
    ArgumentTypeError
        Not an integer (a bool, a float such as 2.5 or 2.0, a string).
    ArgumentError
        Below ``minimum``.

    Examples
    --------
    >>> check_count("points", 21, minimum=2)
    21
    >>> check_count("n", True)
    Traceback (most recent call last):
    ...
    postfusion_bayes.errors.ArgumentTypeError: n must be a whole number >= 1, got True (a bool)
    """
    if not _is_integer(value):
        raise ArgumentTypeError(f"{argument} must be a whole number >= {minimum}, got {shown(value)}{type_text(value)}")
    number = int(value)  # type: ignore[call-overload]
    if number < minimum:
        raise ArgumentError(f"{argument} must be a whole number >= {minimum}, got {shown(value)}")
    return number


def check_generator(value: object, argument: str = "seed") -> np.random.Generator:
    """Return the random generator a ``seed`` argument stands for, or refuse it.

    ``None`` (fresh entropy), a whole number >= 0 (a new generator seeded
    with it), or a ``numpy.random.Generator`` (used as it is).

    Raises
    ------
    ArgumentTypeError
        Anything else (a bool, a float, a string).
    ArgumentError
        A negative integer.

    Examples
    --------
    >>> check_generator(1).integers(10) == check_generator(1).integers(10)
    np.True_
    >>> check_generator(-1)
    Traceback (most recent call last):
    ...
    postfusion_bayes.errors.ArgumentError: seed must be a whole number >= 0 (or None, or a numpy.random.Generator), got -1
    """
    if isinstance(value, np.random.Generator):
        return value
    if value is None:
        return np.random.default_rng()
    if not _is_integer(value):
        raise ArgumentTypeError(f"{argument} must be an int or a numpy.random.Generator, got {type(value).__name__} {shown(value)}")
    if int(value) < 0:  # type: ignore[call-overload]
        raise ArgumentError(f"{argument} must be a whole number >= 0 (or None, or a numpy.random.Generator), got {shown(value)}")
    return np.random.default_rng(int(value))  # type: ignore[call-overload]


def check_probability(argument: str, value: object, *, low: float = 0.0, high: float = 1.0) -> float:
    """Return a probability argument as a float, or refuse it: a real number in ``[low, high]`` (by default [0, 1]).

    Raises
    ------
    ArgumentTypeError
        Not a real number (a bool, a string, None).
    ArgumentError
        NaN, too large for a float, or outside ``[low, high]``.

    Examples
    --------
    >>> check_probability("value", 0.25)
    0.25
    >>> check_probability("value", 1.5)
    Traceback (most recent call last):
    ...
    postfusion_bayes.errors.ArgumentError: value must be a probability in [0, 1], got 1.5
    """
    allowed = f"{argument} must be a probability in [{low:g}, {high:g}], got {shown(value)}"
    if not _is_real(value):
        raise ArgumentTypeError(f"{allowed}{type_text(value)}")
    number = as_float(value)
    if number is None or not low <= number <= high:  # NaN fails both comparisons
        raise ArgumentError(allowed)
    return number


def check_real(argument: str, value: object, *, positive: bool = False, finite: bool = True) -> float:
    """Return a non-negative real argument (a cost, a strength, a tolerance) as a float, or refuse it.

    Parameters
    ----------
    argument : str
        The argument's name, for the message.
    value : object
        What was given.
    positive : bool
        Refuse 0 too.
    finite : bool
        Refuse infinity (NaN is always refused).

    Raises
    ------
    ArgumentTypeError
        Not a real number (a bool, a string, None).
    ArgumentError
        NaN, negative (or 0 with ``positive``), infinite (with ``finite``), or
        an integer too large for a float.

    Examples
    --------
    >>> check_real("cost", 2)
    2.0
    >>> check_real("cost", 10**400)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    postfusion_bayes.errors.ArgumentError: cost must be a finite number >= 0, got 1000...(401 characters), too large for a float
    """
    allowed = f"{argument} must be a {'finite ' if finite else ''}number {'>' if positive else '>='} 0, got {shown(value)}"
    if not _is_real(value):
        raise ArgumentTypeError(f"{allowed}{type_text(value)}")
    number = as_float(value)
    if number is None:
        raise ArgumentError(f"{allowed}, too large for a float")
    if math.isnan(number) or number < 0 or (positive and number == 0) or (finite and math.isinf(number)):
        raise ArgumentError(allowed)
    return number


def check_names(argument: str, value: object, allowed: Iterable[str] | None = None, *, what: str = "name") -> list[str]:
    """Return a list-of-names argument (``parameters=[...]``) as a list, or refuse it.

    A single string is refused rather than read as one name (iterating over it
    would give its letters): write ``["name"]``.

    Parameters
    ----------
    argument : str
        The argument's name, for the message.
    value : object
        What was given: a list, tuple or other iterable of strings.
    allowed : iterable of str, optional
        The names allowed; when given, an unknown name is refused with a
        close match.
    what : str
        What one name is, for the message ("parameter").

    Raises
    ------
    ArgumentTypeError
        A string, something that is not an iterable, or an entry that is not a string.
    ArgumentError
        No names, a name given twice, or an unknown name.

    Examples
    --------
    >>> check_names("parameters", ("a", "b"))
    ['a', 'b']
    >>> check_names("parameters", "a", what="parameter")
    Traceback (most recent call last):
    ...
    postfusion_bayes.errors.ArgumentTypeError: parameters must be a list of parameter names, got the string 'a'; for one name write ['a']
    """
    kind = f"{what} names" if what != "name" else "names"
    if isinstance(value, str | bytes):
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        raise ArgumentTypeError(f"{argument} must be a list of {kind}, got the string {shown(value)}; for one name write [{shown(text)}]")
    if not isinstance(value, Iterable) or isinstance(value, dict):
        raise ArgumentTypeError(f"{argument} must be a list of {kind}, got {shown(value)}{type_text(value)}")
    names = list(value)
    if not names:
        raise ArgumentError(f"{argument} is empty; give at least one {what}, or leave it out (None) for all of them")
    seen: set[str] = set()
    known: Sequence[str] | None = list(allowed) if allowed is not None else None
    lookup = set(known) if known is not None else None
    for name in names:
        if not isinstance(name, str):
            raise ArgumentTypeError(f"{argument}: every entry must be a {what} name (a string), got {shown(name)}{type_text(name)}")
        if name in seen:
            raise ArgumentError(f"{argument}: {what} {shown(name)} is given twice")
        seen.add(name)
        if lookup is not None and name not in lookup:
            raise ArgumentError(f"{argument}: unknown {what} {shown(name)}{suggest(name, known or ())}")
    return names


def check_path(argument: str, value: object) -> Path:
    r"""Return a file or folder argument as a ``Path``, or refuse it: a non-empty string or path-like without a NUL byte.

    Raises
    ------
    ArgumentTypeError
        Neither a string nor path-like (None, a number, bytes).
    ArgumentError
        An empty string, or a NUL byte (no file system allows one in a name).

    Examples
    --------
    >>> check_path("path", "model.uai").name
    'model.uai'
    >>> check_path("path", "a\x00b")
    Traceback (most recent call last):
    ...
    postfusion_bayes.errors.ArgumentError: path must not contain a NUL byte, got 'a\x00b'
    """
    if not isinstance(value, str | os.PathLike) or isinstance(value, bytes):
        raise ArgumentTypeError(f"{argument} must be a file name (a string or a path), got {shown(value)}{type_text(value)}")
    text = os.fspath(value)
    if not isinstance(text, str):  # a path-like that gives bytes
        raise ArgumentTypeError(f"{argument} must be a file name (a string or a path), got {shown(value)} (bytes)")
    if "\x00" in text:
        raise ArgumentError(f"{argument} must not contain a NUL byte, got {shown(text)}")
    if not text:
        raise ArgumentError(f"{argument} is an empty string; give a file name")
    return Path(text)


def count_text(n: int) -> str:
    """Return a count for a message: with thousands separators, or cut (as :func:`~postfusion_bayes.errors.shown` does) when it is absurdly long.

    Examples
    --------
    >>> count_text(2**40)
    '1,099,511,627,776'
    >>> count_text(10**100)
    '10000000000000000000000000000000000000000000000000000000000000000000000000000000... (101 characters)'
    """
    return f"{n:,}" if n < 10**18 else shown(n)


def check_budget(needed: int, budget: int, what: str) -> None:
    """Refuse, before allocating, work whose arrays would take more than ``budget`` bytes.

    Raises
    ------
    MemoryBudgetError
        Saying what would need how much, and the budget.

    Examples
    --------
    >>> check_budget(10, 100, "a small table")
    >>> check_budget(8 * 10**12, 2**28, "10^12 draws")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    postfusion_bayes.errors.MemoryBudgetError: 10^12 draws would need about 7450.6 GB of memory, more than the engine's budget of 256.0 MB; ...
    """
    if needed > budget:
        raise MemoryBudgetError(needed, budget, what)
