"""Deprecated alias of :mod:`postfusion_bayes.engine._layered` (moved in 0.2; removed in 0.3).

Every name is still reachable here, with a :class:`DeprecationWarning` naming its new home.
"""

from ._moved import moved

__getattr__, __dir__ = moved(__name__, "postfusion_bayes.engine._layered")
