"""Matplotlib figures drawn from result tables (plotting never computes probabilities).

Every function takes a table from :mod:`postfusion_bayes.sensitivity` or a
:class:`~postfusion_bayes.diagnosis.Diagnosis` (or, for :func:`network_plot`,
the model whose structure it draws) and an optional ``ax``, and
returns the :class:`matplotlib.axes.Axes` it drew on. matplotlib (and, for
:func:`network_plot`, networkx) is imported only when a function is called
(``pip install "postfusion-bayes[plot]"``; without it a function raises
``ModuleNotFoundError`` with that command).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._optional import require
from .engine.arguments import check_count
from .errors import ArgumentError

__all__ = ["tornado_plot", "one_way_plot", "interval_plot", "diagnosis_plot", "explanation_plot", "network_plot"]


def _axes(ax, figsize: tuple[float, float] = (8, 5)):
    plt = require("matplotlib.pyplot", "plotting")
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
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
    top = check_count("top", top)
    ax = _axes(ax)
    rows = table.head(top).iloc[::-1]
    base = table.attrs.get("posterior")
    ends = rows[["posterior_at_low", "posterior_at_high"]].to_numpy(dtype=float, na_value=np.nan)  # no bar where an end is impossible
    centre = base if base is not None and base == base else float(np.nanmean(ends))
    labels = [str(name) for name in rows.index]
    low, high = ends[:, 0], ends[:, 1]
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
    """Draw the sensitivity function of a :class:`~postfusion_bayes.sensitivity.OneWayResult` over its range."""
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


def explanation_plot(table: pd.DataFrame, ax=None, title: str | None = None):
    """Heatmap of findings (rows) against causes (columns): weights of evidence, red for, blue against.

    Takes :meth:`Diagnosis.explain` (its cause columns) or any table of numbers
    with findings as rows and causes as columns, e.g. the log of
    :meth:`Model.likelihood_ratios`. The colour scale is symmetric around 0;
    each cell is labelled with its value; infinite weights are drawn at the
    end of the scale and labelled "inf".

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from postfusion_bayes import load_model
    >>> dx = load_model().diagnose({"time_since_surgery": "over_2_years", "neurogenic_claudication": True,
    ...                             "back_pain": True, "radicular_pain": False})
    >>> ax = explanation_plot(dx.explain())
    >>> len(ax.get_yticklabels())
    3
    """
    import numpy as np

    columns = list(table.attrs["causes"]) if "causes" in table.attrs else [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    if not columns or not len(table):
        raise ArgumentError(f"nothing to plot: the table has {len(table)} findings and {len(columns)} cause columns")
    ax = _axes(ax)
    values = table[columns].to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    scale = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
    shown = np.clip(np.nan_to_num(values, nan=0.0, posinf=scale, neginf=-scale), -scale, scale)
    image = ax.imshow(shown, cmap="RdBu_r", vmin=-scale, vmax=scale, aspect="auto")
    ax.set_xticks(range(len(columns)), [str(c) for c in columns], rotation=45, ha="right", fontsize=8)
    if "observed" in table.columns:
        labels = [f"{name} = {seen}" for name, seen in zip(table.index, table["observed"], strict=True)]
    else:
        labels = [str(i) if not isinstance(i, tuple) else " = ".join(map(str, i)) for i in table.index]
    ax.set_yticks(range(len(table.index)), labels, fontsize=8)
    for (i, j), v in np.ndenumerate(values):
        label = "inf" if np.isposinf(v) else "-inf" if np.isneginf(v) else f"{v:.1f}"
        ax.text(j, i, label, ha="center", va="center", fontsize=7, color="white" if abs(shown[i, j]) > 0.6 * scale else "black")
    ax.figure.colorbar(image, ax=ax, label=table.attrs.get("unit", "weight of evidence (natural log)"), shrink=0.8)
    ax.set_title(title or (f"What each finding does to each cause (top: {table.attrs['top_cause']})" if "top_cause" in table.attrs else "What each finding does to each cause"))
    return ax


_ROLE_LAYER = {"context": 0, "cause": 1, "finding": 2, "red_flag": 2}
_ROLE_COLOUR = {"context": "#8c8c8c", "cause": "#4c72b0", "finding": "#55a868", "red_flag": "#c44e52"}


def network_plot(model, ax=None):
    """Draw the network in layers: context on top, the hidden causes, then findings and red flags.

    Parameters
    ----------
    model : Model
        Its variables (roles) and the parents of each table are drawn; nothing
        is computed. Needs networkx (in the ``plot`` extra).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new 16 x 7 inch figure when None.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from postfusion_bayes import load_model
    >>> ax = network_plot(load_model())
    >>> ax.get_title()
    'The network: 9 context, 16 causes, 41 findings, 5 red flags'
    """
    nx = require("networkx", "network_plot")
    ax = _axes(ax, figsize=(16, 7))
    variables = model.variables
    role = dict(zip(variables["name"], variables["role"], strict=True))
    graph = nx.DiGraph()
    graph.add_nodes_from(role)
    graph.add_edges_from((parent, child) for child, parents in model.tables.parents.items() for parent in parents)
    layers: dict[int, list[str]] = {}
    for name in variables["name"]:
        layers.setdefault(_ROLE_LAYER[role[name]], []).append(name)
    widest = max(len(names) for names in layers.values())
    pos = {}
    for layer, names in layers.items():
        step = widest / len(names)
        for i, name in enumerate(names):
            pos[name] = ((i + 0.5) * step, -layer)
    nx.draw_networkx_edges(graph, pos, ax=ax, edge_color="#cccccc", width=0.5, arrows=True, arrowsize=5, node_size=60)
    for r, colour in _ROLE_COLOUR.items():
        names = [n for n in graph if role[n] == r]
        ax.scatter([pos[n][0] for n in names], [pos[n][1] for n in names], s=60, color=colour, label=r.replace("_", " "), zorder=3)
    for name, (x, y) in pos.items():
        layer = -y
        ax.text(x, y + (0.08 if layer < 2 else -0.08), name, fontsize=7, rotation=0 if layer == 1 else 90,
                ha="center", va="bottom" if layer < 2 else "top", zorder=4)
    counts = {r: sum(1 for v in role.values() if v == r) for r in _ROLE_COLOUR}
    ax.set_title(f"The network: {counts['context']} context, {counts['cause']} causes, {counts['finding']} findings, {counts['red_flag']} red flags")
    ax.set_ylim(-3.6, 0.9)
    ax.axis("off")
    ax.legend(loc="upper right", fontsize=8)
    return ax
