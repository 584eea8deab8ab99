"""The generic inference engine: discrete Bayesian networks as arrays, compiled for exact queries.

Nothing here knows about causes, priors or red flags; the only module of the
package it imports is :mod:`postfusion_bayes.errors` (a test checks this).

Modules
-------
tables
    :class:`NetworkTables`: states, parents and read-only conditional tables.
compiled
    :func:`compile_network` and :class:`CompiledNetwork`, the exact batched queries.
files
    BIF, XMLBIF and UAI in and out, and the bridge to pgmpy (imported lazily).
formats
    XMLBIF with properties, GeNIe XDSL and Hugin NET writers (words as plain :class:`~postfusion_bayes.engine.formats.NodeNotes`).
sampling
    Forward sampling of cases from tables.
atomic
    :func:`atomic_write`, through which every file of the package is written
    (a temporary file renamed over the target: never half a file).

Examples
--------
>>> import numpy as np, pandas as pd
>>> from postfusion_bayes.engine import NetworkTables, compile_network
>>> t = NetworkTables(
...     states={"rain": ("no", "yes"), "wet": ("no", "yes")},
...     parents={"rain": (), "wet": ("rain",)},
...     cpts={"rain": np.array([0.8, 0.2]), "wet": np.array([[0.9, 0.1], [0.2, 0.8]])})
>>> compile_network(t).posteriors(pd.DataFrame({"wet": ["yes"]}), ["rain"])["rain"].round(3)
rain     no    yes
0     0.333  0.667
"""

from __future__ import annotations

from .atomic import atomic_write
from .compiled import CompiledNetwork, compile_network, one_hot
from .tables import COLUMN_SUM_TOLERANCE, NetworkTables

__all__ = ["COLUMN_SUM_TOLERANCE", "CompiledNetwork", "NetworkTables", "atomic_write", "compile_network", "one_hot"]
