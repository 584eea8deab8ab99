"""Module-level ``__getattr__`` and ``__dir__`` for the old import paths of modules moved in 0.2.

Each old module (``postfusion_bayes.tables``, ``.network``, ...) is a two-line alias built here:
every name still resolves, with a :class:`DeprecationWarning` naming its new home.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable


def moved(old: str, new: str) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Return ``__getattr__`` and ``__dir__`` for module ``old``, whose names now live in module ``new``.

    Parameters
    ----------
    old : str
        The deprecated module's name (its ``__name__``).
    new : str
        The module that holds the names now.

    Returns
    -------
    tuple of callables
        ``(__getattr__, __dir__)`` to assign at the old module's top level.
    """

    def __getattr__(name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        value = getattr(importlib.import_module(new), name)
        warnings.warn(f"{old}.{name} is deprecated; import it from {new} (the old path goes in 0.3)", DeprecationWarning, stacklevel=2)
        return value

    def __dir__() -> list[str]:
        return sorted(dir(importlib.import_module(new)))

    return __getattr__, __dir__
