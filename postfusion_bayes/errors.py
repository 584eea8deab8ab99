"""Exceptions raised by postfusion-bayes.

Every error the library raises on bad input is one of these, so a caller can
catch :class:`PostfusionError` for all of them, or ``ValueError`` for any of them
but the base class. Which one says what was wrong:

* :class:`SpecError`: the priors (files, or values given to ``with_parameters``);
* :class:`EvidenceError`: the evidence of a query, or the variables it asks about;
* :class:`ParameterError`: parameter sets given to a query or to the tables;
* :class:`NetworkError`: a network given to the engine (tables, a pgmpy model, a UAI file);
* :class:`ArgumentError`: any other argument of a call (``k``, ``by``, ``costs``, ``n``,
  ...); :class:`ArgumentTypeError`, also a ``TypeError``, when it has the wrong type;
* :class:`ExportError`: a model that cannot be written to a file.

A missing optional dependency is not bad input: it raises ``ModuleNotFoundError``
naming the extra that installs it.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable

__all__ = [
    "PostfusionError",
    "SpecError",
    "EvidenceError",
    "ParameterError",
    "NetworkError",
    "ArgumentError",
    "ArgumentTypeError",
    "ExportError",
    "MemoryBudgetError",
    "ConvergenceWarning",
    "suggest",
    "shown",
]


class PostfusionError(Exception):
    """Base class of every error raised by postfusion-bayes."""


class SpecError(PostfusionError, ValueError):
    """The priors (the model specification) are invalid.

    Parameters
    ----------
    problems : list of str
        Every problem found, each naming its file and key.
    """

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the model specification:"
        super().__init__("\n  - ".join([head, *self.problems]))


class EvidenceError(PostfusionError, ValueError):
    """Evidence given to a query is invalid or impossible under the model."""


class ParameterError(PostfusionError, ValueError):
    """Parameter sets given to a query or to the tables are invalid: unknown names, wrong shapes or values, or unequal numbers of sets."""


class NetworkError(PostfusionError, ValueError):
    """A network given to the engine is invalid or unsupported.

    Tables that do not match their states and parents, a cycle, a pgmpy model
    or a UAI file that cannot be read, or a query the network's shape does not
    allow.
    """


class ArgumentError(PostfusionError, ValueError):
    """An argument of a call is invalid: a value outside what the argument allows (a count, a choice, costs)."""


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of a call has the wrong type; also a ``TypeError``."""


class ExportError(PostfusionError, ValueError):
    """A model cannot be written to a file: an unknown format, or a path that cannot be written.

    When the path cannot be written, the ``OSError`` is the ``__cause__``.
    """


class MemoryBudgetError(PostfusionError, ValueError):
    """A query would need more memory than the engine's budget allows.

    The message says how much it would need and what the budget is; raise the
    budget (``compile_network(..., memory_budget=...)`` or
    ``CompiledNetwork.with_memory_budget``) or ask a smaller question.

    Parameters
    ----------
    needed : int
        Bytes the query would allocate at its peak.
    budget : int
        The budget in bytes.
    what : str
        The query that would exceed it.
    """

    def __init__(self, needed: int, budget: int, what: str):
        self.needed = int(needed)
        self.budget = int(budget)
        super().__init__(
            f"{what} would need about {_size(self.needed)} of memory, more than the engine's budget of {_size(self.budget)}; "
            "raise the budget (Model.with_memory_budget(...), or memory_budget=... for a compiled network) or ask a smaller question"
        )


def _size(n: int) -> str:
    if n >= 2**30 * 10**15:  # beyond any memory (and, for a count of thousands of digits, beyond a float): its order of magnitude
        return f"about 10^{len(str(n // 2**30)) - 1} GB"
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


class ConvergenceWarning(UserWarning):
    """An iterative fit (learning from cases by EM) stopped at its iteration limit before converging.

    The result is returned all the same; its report says how far it was from
    the tolerance.
    """


def suggest(given: object, allowed: Iterable[object]) -> str:
    """Return a 'did you mean' phrase for a mistyped name, or an empty string.

    The match ignores case (``SMOKER`` suggests ``'smoker'``), though names
    themselves stay case-sensitive: the suggestion is spelled as allowed.

    Examples
    --------
    >>> suggest("radicular_pian", ["radicular_pain", "back_pain"])
    " (did you mean 'radicular_pain'?)"
    >>> suggest("late", ["immediate", "late_after_good_result"])
    " (did you mean 'late_after_good_result'?)"
    >>> suggest("SMOKER", ["smoker", "diabetes"])
    " (did you mean 'smoker'?)"
    >>> suggest("zzz", ["radicular_pain"])
    ''
    """
    try:
        text = str(given).lower()
    except Exception:  # a value that cannot even be turned into text (an int too long for str): nothing to suggest
        return ""
    if len(text) > _SUGGEST_LIMIT:  # no name is that long; difflib would take quadratic time on it
        return ""
    folded: dict[str, str] = {}
    for name in allowed:
        folded.setdefault(str(name).lower(), str(name))
    close = difflib.get_close_matches(text, list(folded), n=1, cutoff=0.6)
    if not close and len(text) >= 3:
        close = [n for n in folded if n.startswith(text)][:1]
    return f" (did you mean {folded[close[0]]!r}?)" if close else ""


#: Given names longer than this get no suggestion.
_SUGGEST_LIMIT = 200


def shown(value: object, limit: int = 80) -> str:
    """Return ``repr(value)`` cut to ``limit`` characters, for quoting a given value in an error message.

    An error names what it was given, but a value can be huge (a 400-digit
    integer, a YAML alias bomb, a whole file); the message keeps its start and
    says how long the rest was. Containers are shown to a bounded depth and
    length, never expanded whole (a 300-byte YAML alias bomb stands for
    billions of items).

    Examples
    --------
    >>> shown("maybe")
    "'maybe'"
    >>> shown(10**100, limit=20)
    '10000000000000000000... (101 characters)'
    >>> shown([[["lol"] * 9] * 9] * 9, limit=40)
    "[[['lol', 'lol', 'lol', 'lol', 'lol', 'l... (a list of 9 items)"
    """
    if isinstance(value, list | tuple | set | frozenset | dict):
        text = _BOUNDED.repr(value)  # never the whole of a huge container
        if len(text) <= limit and "..." not in text:  # nothing was left out: it is the repr
            return text
        n = len(value)
        return f"{text[:limit]}... (a {type(value).__name__} of {n} item{'s' if n != 1 else ''})"
    try:
        text = repr(value)
    except Exception:  # a value whose repr itself fails (too deep, too large to convert)
        return f"<{type(value).__name__} that cannot be shown>"
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


#: A bounded repr for containers: a few levels, a few items each.
_BOUNDED = reprlib.Repr()
_BOUNDED.maxlevel = 4
_BOUNDED.maxstring = _BOUNDED.maxother = _BOUNDED.maxlong = 120
for _attr in ("maxlist", "maxtuple", "maxdict", "maxset", "maxfrozenset"):
    setattr(_BOUNDED, _attr, 12)
