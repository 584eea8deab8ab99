"""Optional dependencies: imported only by the features that need them, with the pip command when missing.

``pip install postfusion-bayes`` installs what diagnosis, reasoning, learning
and most of the sensitivity analysis need. Plotting needs the ``plot`` extra
(matplotlib, networkx), Sobol indices the ``sensitivity`` extra (SALib), and
registry scale (:mod:`postfusion_bayes.distributed`, Parquet files and Dask in
``batch``) the ``dask`` extra (dask[dataframe], distributed, pyarrow).
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "require"]

#: For each optional dependency (by the name it is imported as): its distribution and the extra that installs it.
EXTRAS = {
    "matplotlib": ("matplotlib", "plot"),
    "networkx": ("networkx", "plot"),
    "SALib": ("SALib", "sensitivity"),
    "dask": ("dask", "dask"),
    "distributed": ("distributed", "dask"),
    "pyarrow": ("pyarrow", "dask"),
}


def require(module: str, feature: str) -> ModuleType:
    """Import an optional dependency, or say which extra installs it.

    Parameters
    ----------
    module : str
        The module to import, e.g. ``"matplotlib.pyplot"``; its top-level
        package must be one of :data:`EXTRAS`.
    feature : str
        What needs it, for the message (e.g. ``"plotting"``).

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    ModuleNotFoundError
        When the optional package is not installed: "<feature> needs
        <package>: pip install "postfusion-bayes[<extra>]"". A module missing
        inside an installed package is not ours to explain and propagates as is.

    Examples
    --------
    >>> require("matplotlib.colors", "plotting").to_hex("red")
    '#ff0000'
    """
    top = module.partition(".")[0]
    package, extra = EXTRAS[top]
    try:
        importlib.import_module(top)
    except ModuleNotFoundError as exc:
        if exc.name != top:  # the package is there, but a dependency of it is missing: not ours to explain
            raise
        raise ModuleNotFoundError(f'{feature} needs {package}: pip install "postfusion-bayes[{extra}]"', name=top) from exc
    return importlib.import_module(module)
