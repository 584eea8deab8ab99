"""Matplotlib figures drawn from result tables (plotting never computes probabilities).

Every function takes a table from :mod:`postfusion_bayes.sensitivity` (or a
:class:`~postfusion_bayes.diagnosis.Diagnosis`) and an optional ``ax``, and
returns the :class:`matplotlib.axes.Axes` it drew on. matplotlib is imported
only when a function is called (``pip install "postfusion-bayes[plot]"``).
"""

from __future__ import annotations

import pandas as pd

__all__ = ["tornado_plot", "one_way_plot", "interval_plot", "diagnosis_plot"]


def _axes(ax):
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError('plotting needs matplotlib: pip install "postfusion-bayes[plot]"') from exc
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 5))
    return ax


def tornado_plot(table: pd.DataFrame, top: int = 15, ax=None):
    """Tornado diagram of :func:`~postfusion_bayes.sensitivity.tornado`: one bar per parameter, low to high.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from postfusion_bayes import load_model, sensitivity
    >>> model = load_model()
    >>> table = sensitivity.tornado(model, {"time_since_surgery": "over_2_years"}, "pseudarthrosis")
    >>> ax = tornado_plot(table, top=5)
    >>> len(ax.patches)
    10
    """
    ax = _axes(ax)
    rows = table.head(top).iloc[::-1]
    base = table.attrs.get("posterior")
    centre = base if base is not None and base == base else float(rows[["posterior_at_low", "posterior_at_high"]].mean().mean())
    labels = [str(name) for name in rows.index]
    low = rows["posterior_at_low"].to_numpy()
    high = rows["posterior_at_high"].to_numpy()
    y = range(len(rows))
    ax.barh(y, low - centre, left=centre, color="#4c72b0", label="parameter at low end")
    ax.barh(y, high - centre, left=centre, color="#dd8452", label="parameter at high end")
    ax.axvline(centre, color="black", linewidth=0.8)
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.set_xlabel(f"P({table.attrs.get('target', 'target')} present | evidence)")
    ax.set_title("Tornado: posterior over each parameter's plausible range")
    ax.legend(loc="lower right", fontsize=8)
    return ax


def one_way_plot(result, ax=None):
    """The sensitivity function of a :class:`~postfusion_bayes.sensitivity.OneWayResult` over its range."""
    ax = _axes(ax)
    table = result.table
    ax.plot(table["value"], table["posterior"], marker="." if not result.exact_form else None)
    ax.axvline(result.value, color="grey", linestyle="--", linewidth=0.8, label="current value")
    ax.set_xlabel(result.parameter)
    ax.set_ylabel(f"P({result.target} present | evidence)")
    ax.set_title("exact (a x + b) / (c x + d)" if result.exact_form else "exact evaluations on a grid")
    ax.legend(fontsize=8)
    return ax


def interval_plot(table: pd.DataFrame, ax=None):
    """Monte Carlo intervals of :func:`~postfusion_bayes.sensitivity.monte_carlo` (one patient): 5-95% and median per cause."""
    ax = _axes(ax)
    rows = table.iloc[::-1]
    y = range(len(rows))
    ax.hlines(list(y), rows["q05"], rows["q95"], color="#4c72b0", linewidth=3, label="5% to 95%")
    ax.plot(rows["median"], list(y), "o", color="black", label="median")
    ax.plot(rows["posterior"], list(y), "x", color="#dd8452", label="at the hand-set values")
    ax.set_yticks(list(y), [str(c) for c in rows.index])
    ax.set_xlim(0, 1)
    ax.set_xlabel("P(cause present | evidence)")
    ax.legend(fontsize=8, loc="lower right")
    return ax


def diagnosis_plot(diagnosis, ax=None):
    """Prior and posterior of every cause of a :class:`~postfusion_bayes.diagnosis.Diagnosis`."""
    ax = _axes(ax)
    frame = diagnosis.to_frame().iloc[::-1]
    y = range(len(frame))
    ax.barh([v + 0.2 for v in y], frame["prior"], height=0.4, color="#bbbbbb", label="prior (context only)")
    ax.barh([v - 0.2 for v in y], frame["posterior"], height=0.4, color="#4c72b0", label="posterior")
    ax.set_yticks(list(y), [str(c) for c in frame.index])
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability the cause is present")
    if diagnosis.red_flags:
        ax.set_title("RED FLAG: " + "; ".join(f.name for f in diagnosis.red_flags), color="#b00020")
    ax.legend(fontsize=8, loc="lower right")
    return ax
