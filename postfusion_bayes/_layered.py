"""Deprecated alias of :mod:`postfusion_bayes.engine._layered` (moved in 0.2; removed in 0.3).

Every name is still reachable here, with a :class:`DeprecationWarning` naming its new home.
"""

from __future__ import annotations

import warnings as _warnings

from .engine import _layered as _new


def __getattr__(name: str) -> object:
    if name.startswith("__"):
        raise AttributeError(name)
    value = getattr(_new, name)
    _warnings.warn(
        f"postfusion_bayes._layered.{name} is deprecated; import it from postfusion_bayes.engine._layered "
        "(the old path goes in 0.3)",
        DeprecationWarning,
        stacklevel=2,
    )
    return value


def __dir__() -> list[str]:
    return sorted(set(dir(_new)) | set(globals()))
