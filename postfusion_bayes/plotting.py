"""Matplotlib figures drawn from result tables (plotting never computes probabilities).

Every function takes a table from :mod:`postfusion_bayes.sensitivity` or a
:class:`~postfusion_bayes.diagnosis.Diagnosis` (or, for :func:`network_plot`,
the model whose structure it draws) and an optional ``ax``, and
returns the :class:`matplotlib.axes.Axes` it drew on. Colours, fonts and short
labels come from :mod:`postfusion_bayes.style` (one colour per concept, safe for
colour-blind readers); a new figure uses constrained layout, so a plain
``fig.savefig`` keeps every label. Given ``model=``, labels come from the
model's description. matplotlib (and, for :func:`network_plot`, networkx) is
imported only when a function is called (``pip install "postfusion-bayes[plot]"``;
without it a function raises ``ModuleNotFoundError`` with that command).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ._optional import require
from .engine.arguments import check_count
from .errors import ArgumentError
from .style import (
    COLOURS,
    FONT_SIZE,
    LN_LR_LIMIT,
    SERIES,
    _label_column,
    diverging_map,
    evidence_label,
    kind_colours,
    new_axes,
    parameter_label,
    state_label,
    variable_label,
    wrap,
)

__all__ = [
    "tornado_plot",
    "parameter_notes",
    "one_way_plot",
    "interval_plot",
    "trajectory_plot",
    "diagnosis_plot",
    "explanation_plot",
    "network_plot",
]


def _chars(ax, fraction: float = 1.0, size: float = FONT_SIZE) -> int:
    """About how many characters of ``size`` points fit in ``fraction`` of the axes' width (a safe guess, before layout)."""
    width = ax.get_position().width * ax.figure.get_figwidth() * 72 * fraction
    return max(int(width / (0.62 * size)), 20)


def _legend_outside(ax) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=FONT_SIZE, frameon=False)


def _number(value: float) -> str:
    """Three significant figures, never "-0"."""
    text = f"{value:.3g}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _parameter_labels(names: list[str], model, parameters: pd.DataFrame | None = None) -> list[str]:
    """:func:`~postfusion_bayes.style.parameter_label` of each name, reading ``model.parameters`` once (not once a name)."""
    if model is None:
        return [parameter_label(n) for n in names]
    parameters = model.parameters if parameters is None else parameters
    return [_label_column(parameters, n) or parameter_label(n) for n in names]


def parameter_notes(names, model) -> pd.DataFrame:
    """Short label, source and judgment of each hand-set number, for footnotes and tooltips.

    Parameters
    ----------
    names : iterable of str
        Parameter names (for example the index of a tornado table).
    model : Model
        Whose ``parameters`` table gives the source and judgment of each number.

    Returns
    -------
    pandas.DataFrame
        Indexed by parameter, columns ``label``, ``source``, ``judgment`` and
        ``note`` (the source, else "judgment: ..." when no source is given).

    Raises
    ------
    ArgumentError
        A name the model does not have (with a close match).

    Examples
    --------
    >>> from postfusion_bayes import load_model
    >>> notes = parameter_notes(["findings.radicular_pain.leak"], load_model())
    >>> notes.loc["findings.radicular_pain.leak", "label"]
    'radicular pain: leak'
    """
    from .errors import suggest

    params = model.parameters.set_index("name")
    names = [str(n) for n in names]
    for name in names:
        if name not in params.index:
            raise ArgumentError(f"parameter_notes: unknown parameter {name!r}{suggest(name, params.index)}; see model.parameters['name']")
    rows = params.loc[names]
    source = rows["source"].fillna("").astype(str)
    judgment = rows["judgment"].fillna("").astype(str) if "judgment" in rows.columns else pd.Series("", index=rows.index)
    note = [s if s else (f"judgment: {j}" if j else "no source given") for s, j in zip(source, judgment, strict=True)]
    return pd.DataFrame(
        {"label": _parameter_labels(names, model, params.reset_index()), "source": source.to_numpy(), "judgment": judgment.to_numpy(), "note": note},
        index=pd.Index(names, name="parameter"),
    )


def tornado_plot(table: pd.DataFrame, top: int = 15, ax=None, *, model=None, evidence: Mapping | None = None, sources: bool = False):
    """Tornado diagram of :func:`~postfusion_bayes.sensitivity.tornado`: one bar per parameter, low to high.

    Each number is moved to the two ends of its plausible range; a bar runs
    from the posterior at the hand-set values to the posterior at that end,
    orange where it raises the probability and purple where it lowers it,
    with the number's value at that end written at the tip.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`~postfusion_bayes.sensitivity.tornado` (columns ``low``,
        ``high``, ``posterior_at_low``, ``posterior_at_high``).
    top : int
        How many parameters, largest swing first.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure with constrained layout when None.
    model : Model, optional
        For the labels (and needed by ``sources``).
    evidence : dict, optional
        The patient, written under the title.
    sources : bool
        Number each bar and print the source (or judgment) of each number in a
        footnote under the axes; needs ``model``. :func:`parameter_notes` gives
        the same as a table.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from postfusion_bayes import load_model, sensitivity
    >>> model = load_model()
    >>> patient = {"time_since_surgery": "over_2_years"}
    >>> table = sensitivity.tornado(model, patient, "pseudarthrosis")
    >>> ax = tornado_plot(table, top=5, model=model, evidence=patient, sources=True)
    >>> len(ax.patches)
    10
    """
    top = check_count("top", top)
    if sources and model is None:
        raise ArgumentError("tornado_plot: sources=True needs the model whose numbers they are: tornado_plot(table, model=model, sources=True)")
    rows = table.head(top)
    ax = new_axes(ax, figsize=(9, 1.6 + 0.32 * len(rows) + (0.16 * len(rows) if sources else 0)))
    rows = rows.iloc[::-1]
    base = table.attrs.get("posterior")
    ends = rows[["posterior_at_low", "posterior_at_high"]].to_numpy(dtype=float, na_value=np.nan)  # no bar where an end is impossible
    centre = base if base is not None and base == base else float(np.nanmean(ends))
    names = [str(name) for name in rows.index]
    labels = _parameter_labels(names, model)
    if sources:
        labels = [f"[{len(names) - i}] {label}" for i, label in enumerate(labels)]
    y = np.arange(len(rows))
    for column, end in (("low", 0), ("high", 1)):
        width = ends[:, end] - centre
        colour = [COLOURS["increase"] if w > 0 else COLOURS["decrease"] for w in np.nan_to_num(width)]
        ax.barh(y, width, left=centre, color=colour, height=0.7, edgecolor="white", linewidth=0.5)
        values = rows[column].to_numpy(dtype=float) if column in rows.columns else np.full(len(rows), np.nan)
        for yi, w, v in zip(y, width, values, strict=True):
            if np.isnan(w) or np.isnan(v):
                continue
            right = w > 1e-9 or (abs(w) <= 1e-9 and column == "high")  # no effect: low end written left, high end right
            ax.text(centre + w, yi, f" {_number(v)} ", ha="left" if right else "right", va="center", fontsize=FONT_SIZE, color=COLOURS["text"])
    ax.axvline(centre, color=COLOURS["text"], linewidth=0.9, label=f"at the hand-set values ({centre:.2f})")
    ax.set_yticks(list(y), labels, fontsize=FONT_SIZE + 1)
    finite = ends[np.isfinite(ends)]
    lo, hi = (min(finite.min(), centre), max(finite.max(), centre)) if finite.size else (0.0, 1.0)
    pad = 0.18 * max(hi - lo, 0.05)
    ax.set_xlim(max(lo - pad, -0.02), min(hi + pad, 1.02))
    target = variable_label(str(table.attrs.get("target", "the cause")), model)
    ax.set_xlabel(f"P({target} | evidence) with one number at an end of its range")
    title = f"What moves P({target})?\nEach hand-set number at the two ends of its plausible range"
    if evidence is not None:
        title += "\n" + wrap("patient: " + evidence_label(evidence, model, width=400), _chars(ax, 0.65, FONT_SIZE + 1))
    ax.set_title(title, fontsize=FONT_SIZE + 2, loc="left")
    patches = require("matplotlib.patches", "plotting")
    handles = [patches.Patch(color=COLOURS["increase"], label="raises it"), patches.Patch(color=COLOURS["decrease"], label="lowers it")]
    handles += ax.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=FONT_SIZE, frameon=False)
    if sources:
        notes = parameter_notes(names[::-1], model)
        width = _chars(ax, 1.2)
        lines = [textwrap.shorten(f"[{i}] {label}: {note}", width=width, placeholder=" ...")
                 for i, (label, note) in enumerate(zip(notes["label"], notes["note"], strict=True), start=1)]
        ax.annotate("Sources (parameter_notes gives them in full):\n" + "\n".join(lines), xy=(0.01, 0), xycoords=("figure fraction", ax.xaxis.label), xytext=(0, -6),
                    textcoords="offset points",
                    ha="left", va="top", fontsize=FONT_SIZE, color=COLOURS["text"], annotation_clip=False)
    return ax


def one_way_plot(result, ax=None):
    """Draw the sensitivity function of a :class:`~postfusion_bayes.sensitivity.OneWayResult` over its range."""
    ax = new_axes(ax)
    table = result.table
    ax.plot(table["value"], table["posterior"], marker="." if not result.exact_form else None, color=COLOURS["posterior"])
    ax.axvline(result.value, color=COLOURS["text"], linestyle="--", linewidth=0.8, label="hand-set value")
    ax.set_xlabel(result.parameter)
    ax.set_ylabel(f"P({variable_label(result.target)} | evidence)")
    ax.set_title("exact (a x + b) / (c x + d)" if result.exact_form else "exact evaluations on a grid", fontsize=FONT_SIZE + 2)
    _legend_outside(ax)
    return ax


def interval_plot(table: pd.DataFrame, ax=None, *, model=None, evidence: Mapping | None = None):
    """Monte Carlo intervals of :func:`~postfusion_bayes.sensitivity.monte_carlo` (one patient).

    Per cause: the 5-95% interval and the median of its posterior when every
    hand-set number is drawn from its range, the posterior at the hand-set
    values, and (on the right) ``probability_first``, the share of draws in
    which the cause comes first, on a second y axis kept as ``ax.right``.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`~postfusion_bayes.sensitivity.monte_carlo` for one patient
        (columns ``q05``, ``median``, ``q95``, ``posterior`` and, when present, ``probability_first``).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure with constrained layout when None.
    model : Model, optional
        For the cause labels.
    evidence : dict, optional
        The patient, written under the title.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from postfusion_bayes import load_model, sensitivity
    >>> table = sensitivity.monte_carlo(load_model(), {"time_since_surgery": "over_2_years"}, n=20, seed=0)
    >>> ax = interval_plot(table)
    >>> ax.right.get_ylabel()
    'first in % of draws'
    """
    ax = new_axes(ax, figsize=(9, 1.4 + 0.34 * len(table)))
    rows = table.iloc[::-1]
    y = list(range(len(rows)))
    ax.hlines(y, rows["q05"], rows["q95"], color=COLOURS["posterior"], linewidth=4, alpha=0.55, label="5% to 95% of draws")
    ax.plot(rows["median"], y, "|", color=COLOURS["posterior"], markersize=12, markeredgewidth=2, label="median")
    ax.plot(rows["posterior"], y, "o", color=COLOURS["text"], markersize=4, label="at the hand-set values")
    ax.set_yticks(y, [variable_label(str(c), model) for c in rows.index], fontsize=FONT_SIZE + 1)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("P(cause present | evidence) over the plausible ranges of every number")
    n = table.attrs.get("n")
    title = "How sure is each probability?" + (f" ({n} draws of every hand-set number)" if n else "")
    if evidence is not None:
        title += "\n" + wrap("patient: " + evidence_label(evidence, model, width=400), _chars(ax, 0.8, FONT_SIZE + 1))
    ax.set_title(title, fontsize=FONT_SIZE + 2, loc="left")
    if "probability_first" in rows.columns:
        right = ax.twinx()
        right.set_ylim(ax.get_ylim())
        right.set_yticks(y, [f"{p:.0%}" for p in rows["probability_first"]], fontsize=FONT_SIZE + 1)
        right.set_ylabel("first in % of draws")
        ax.right = right
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize=FONT_SIZE, frameon=False)
    return ax


def _spread(values: np.ndarray, gap: float) -> np.ndarray:
    """Return label positions near ``values`` (sorted high to low), at least ``gap`` apart and none below 0."""
    at = np.array(values, dtype=float)
    for i in range(1, len(at)):
        at[i] = min(at[i], at[i - 1] - gap)
    if len(at) and at[-1] < 0:  # pushed below the axis: push the bottom of the stack back up, only as far as needed
        at[-1] = 0.0
        for i in range(len(at) - 2, -1, -1):
            at[i] = max(at[i], at[i + 1] + gap)
    return at


def trajectory_plot(posteriors: pd.DataFrame, ax=None, *, model=None, highlight: int = 3, title: str | None = None):
    """Draw the probability of each cause as test results come in, one column of the x axis per test.

    Parameters
    ----------
    posteriors : pandas.DataFrame
        One row per step, labelled by what was added (for example
        ``"start"``, ``"+ gadolinium MRI"``), one column per cause.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure with constrained layout when None.
    model : Model, optional
        For the cause labels.
    highlight : int
        How many causes (most probable at the last step) get a colour of their
        own; the others are drawn in light grey. Every line is labelled where it ends.
    title : str, optional
        Above the plot; a plain default when None.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pandas as pd
    >>> steps = pd.DataFrame({"a": [0.2, 0.6], "b": [0.3, 0.1]}, index=["start", "+ MRI"])
    >>> ax = trajectory_plot(steps)
    >>> [t.get_text() for t in ax.get_xticklabels()]
    ['start', '+ MRI']
    """
    highlight = check_count("highlight", highlight, minimum=0)
    if not len(posteriors) or not len(posteriors.columns):
        raise ArgumentError(f"trajectory_plot: nothing to plot: {len(posteriors)} steps and {len(posteriors.columns)} causes")
    ax = new_axes(ax, figsize=(9, 4.5))
    x = np.arange(len(posteriors))
    last = posteriors.iloc[-1].sort_values(ascending=False)
    coloured = {c: SERIES[i % len(SERIES)] for i, c in enumerate(last.index[:highlight])}
    label_at = _spread(last.to_numpy(dtype=float), gap=1.3 * FONT_SIZE / 72 / (0.7 * ax.figure.get_figheight()))
    for cause, at in zip(last.index[::-1], label_at[::-1], strict=True):
        colour = coloured.get(cause, COLOURS["prior"])
        values = posteriors[cause].to_numpy(dtype=float)
        ax.plot(x, values, marker="o", markersize=3.5, color=colour, linewidth=2.2 if cause in coloured else 1.0, zorder=3 if cause in coloured else 2)
        ax.annotate(variable_label(str(cause), model), xy=(x[-1], values[-1]), xytext=(x[-1] + 0.08, at), textcoords="data", va="center",
                    fontsize=FONT_SIZE, color=colour if cause in coloured else COLOURS["context"], annotation_clip=False,
                    arrowprops={"arrowstyle": "-", "color": "#dddddd", "linewidth": 0.6, "shrinkA": 0, "shrinkB": 2})
    ax.set_xticks(list(x), [str(i) for i in posteriors.index], rotation=30, ha="right", fontsize=FONT_SIZE + 1)
    ax.set_ylim(0, 1)
    ax.set_xlim(-0.2, len(x) - 0.8)
    ax.set_ylabel("P(cause present | evidence so far)")
    ax.set_title(title or "Each cause's probability as the results come in", fontsize=FONT_SIZE + 2, loc="left")
    ax.grid(axis="y", color="#e6e6e6", linewidth=0.6)
    return ax


def diagnosis_plot(diagnosis, ax=None, *, model=None, evidence: bool = True):
    """Prior (grey ghost) and posterior (blue) of every cause of a :class:`~postfusion_bayes.diagnosis.Diagnosis`.

    When a red flag is raised, a banner above the plot states each red flag
    and its advice, and the differential is dimmed and marked "for teaching
    only, after the emergency is handled".

    Parameters
    ----------
    diagnosis : Diagnosis
        From :meth:`Model.diagnose`: its prior, posterior, red flags and evidence are drawn.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure with constrained layout when None.
    model : Model, optional
        For the labels.
    evidence : bool
        Write the patient's evidence under the title.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from postfusion_bayes import load_model
    >>> ax = diagnosis_plot(load_model().diagnose({"time_since_surgery": "over_2_years", "fever": True}))
    >>> ax.get_title(loc="left").startswith("RED FLAG")
    True
    """
    ax = new_axes(ax, figsize=(8, 1.8 + 0.34 * len(diagnosis.posterior)))
    frame = diagnosis.to_frame().iloc[::-1]
    y = np.arange(len(frame))
    dim = 0.3 if diagnosis.red_flags else 1.0
    ax.barh(y, frame["prior"], height=0.8, color=COLOURS["prior"], alpha=dim, label="prior (context only)")
    ax.barh(y, frame["posterior"], height=0.42, color=COLOURS["posterior"], alpha=dim, label="posterior (with the findings)")
    for yi, p in zip(y, frame["posterior"], strict=True):
        ax.text(min(p, 1.0) + 0.01, yi, f"{p:.0%}", va="center", fontsize=FONT_SIZE, color=COLOURS["text"], alpha=max(dim, 0.6))
    ax.set_yticks(list(y), [variable_label(str(c), model) for c in frame.index], fontsize=FONT_SIZE + 1)
    ax.set_xlim(0, 1.08)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"])
    ax.set_xlabel("probability the cause is present")
    seen = getattr(diagnosis, "evidence", None)
    patient = "\n" + wrap("patient: " + evidence_label(seen, model, width=400), _chars(ax, 0.8, FONT_SIZE + 1)) if evidence and seen is not None else ""
    if diagnosis.red_flags:
        width = _chars(ax, 0.8, FONT_SIZE + 1)
        lines = [wrap(f"RED FLAG {variable_label(f.name, model)}: {f.advice}", width) for f in diagnosis.red_flags]
        banner = ax.set_title("\n".join(lines), loc="left", fontsize=FONT_SIZE + 1, color="white", fontweight="bold",
                              bbox={"boxstyle": "square,pad=0.5", "facecolor": COLOURS["red_flag"], "edgecolor": COLOURS["red_flag"]})
        banner.set_gid("red-flag-banner")
        ax.text(0.5, 0.5, "for teaching only,\nafter the emergency is handled", transform=ax.transAxes, ha="center", va="center",
                fontsize=FONT_SIZE + 3, color=COLOURS["red_flag"], fontweight="bold", zorder=5,
                bbox={"boxstyle": "round,pad=0.4", "facecolor": "white", "edgecolor": COLOURS["red_flag"], "alpha": 0.9})
        if patient:
            ax.set_xlabel(ax.get_xlabel() + patient)
    else:
        ax.set_title("Each cause before and after the findings" + patient, loc="left", fontsize=FONT_SIZE + 2)
    _legend_outside(ax)
    return ax


def _cell_text(v: float) -> str:
    if np.isposinf(v):
        return "inf"
    if np.isneginf(v):
        return "-inf"
    text = f"{v:.1f}"
    return "0.0" if text == "-0.0" else text


def explanation_plot(table: pd.DataFrame, ax=None, title: str | None = None, *, limit: float = LN_LR_LIMIT, model=None):
    """Heatmap of findings (rows) against causes (columns): weights of evidence, orange for, purple against.

    Takes :meth:`Diagnosis.explain` (its cause columns) or any table of numbers
    with findings as rows and causes as columns, e.g. the log of
    :meth:`Model.likelihood_ratios`. The colour scale is fixed, the same in
    every figure: values are clipped to ``[-limit, limit]`` (3 by default, a
    likelihood ratio of about 20 either way), as the colour bar says; each cell
    is labelled with its own value (beyond the scale too), infinite weights
    are drawn at the end of the scale and labelled "inf", and a zero is never
    written "-0.0".

    Parameters
    ----------
    table : pandas.DataFrame
        Findings as rows, causes as columns (``attrs["causes"]`` names them when present).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure with constrained layout when None.
    title : str, optional
        Above the plot; by default it names the top cause when the table says which.
    limit : float
        The end of the colour scale (default :data:`postfusion_bayes.style.LN_LR_LIMIT`).
    model : Model, optional
        For the labels.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from postfusion_bayes import load_model
    >>> dx = load_model().diagnose({"time_since_surgery": "over_2_years", "neurogenic_claudication": True,
    ...                             "back_pain": True, "radicular_pain": False})
    >>> ax = explanation_plot(dx.explain())
    >>> len(ax.get_yticklabels()), ax.get_images()[0].get_clim()
    (3, (-3.0, 3.0))
    """
    if not (isinstance(limit, int | float) and np.isfinite(limit) and limit > 0):
        raise ArgumentError(f"explanation_plot: limit must be a finite number > 0, got {limit!r}")
    columns = list(table.attrs["causes"]) if "causes" in table.attrs else [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    if not columns or not len(table):
        raise ArgumentError(f"nothing to plot: the table has {len(table)} findings and {len(columns)} cause columns")
    ax = new_axes(ax, figsize=(min(3.3 + 0.7 * len(columns), 10.0), 1.8 + 0.36 * len(table)))  # notebook width
    limit = float(limit)
    values = table[columns].to_numpy(dtype=float)
    shown = np.clip(np.nan_to_num(values, nan=0.0, posinf=limit, neginf=-limit), -limit, limit)
    image = ax.imshow(shown, cmap=diverging_map(), vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(columns)), [variable_label(str(c), model) for c in columns], rotation=40, ha="right", fontsize=FONT_SIZE + 1)
    if "observed" in table.columns:
        labels = [f"{variable_label(str(name), model)}: {state_label(seen)}" for name, seen in zip(table.index, table["observed"], strict=True)]
    else:
        labels = [variable_label(str(i), model) if not isinstance(i, tuple) else f"{variable_label(str(i[0]), model)}: {state_label(i[1])}" for i in table.index]
    ax.set_yticks(range(len(table.index)), labels, fontsize=FONT_SIZE + 1)
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, _cell_text(v), ha="center", va="center", fontsize=FONT_SIZE, color="white" if shown[i, j] < -0.6 * limit else COLOURS["text"])  # dark text reads on every orange
    unit = table.attrs.get("unit", "weight of evidence (natural log of the likelihood ratio)")
    bar = ax.figure.colorbar(image, ax=ax, shrink=0.8, ticks=np.linspace(-limit, limit, 7))
    bar.set_label(wrap(unit, 30) + "\n" + wrap(f"colours clipped to [{-limit:g}, {limit:g}] (a ratio of 1/{np.exp(limit):.0f} to {np.exp(limit):.0f})", 30), fontsize=FONT_SIZE)
    bar.ax.tick_params(labelsize=FONT_SIZE)
    top = table.attrs.get("top_cause")
    default = f"What each finding does to each cause (top: {variable_label(str(top), model)})" if top else "What each finding does to each cause"
    ax.set_title(title or default, fontsize=FONT_SIZE + 2, loc="left")
    return ax


def _advice_headline(advice: str) -> str:
    """Return the first clause of a red flag's advice ("Suspected cauda equina syndrome"), in lower case."""
    head = advice.split(":")[0].split(";")[0].split("(")[0].strip().rstrip(".")
    return (head[:1].lower() + head[1:]) if head else ""


def network_plot(model, ax=None):
    """Draw the network in columns: context, the hidden causes, then findings grouped by test kind and red flags.

    Edges run left to right (context -> cause -> finding). Findings are grouped
    under their kind of test (cheapest first, a darker green for a dearer
    kind, as ``model.spec.test_kinds`` says); red flags come last in
    vermillion, each with what it points to (the first clause of its advice),
    and a red flag with no modelled cause says so.

    Parameters
    ----------
    model : Model
        Its variables (roles, test kinds, advice) and the parents of each
        table are drawn; nothing is computed. Needs networkx (in the ``plot`` extra).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure with constrained layout when None.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from postfusion_bayes import load_model
    >>> ax = network_plot(load_model())
    >>> ax.get_title(loc="left")
    'The network: 9 context, 16 causes, 42 findings, 5 red flags'
    """
    nx = require("networkx", "network_plot")
    variables = model.spec.variables
    role = {name: v.role for name, v in variables.items()}
    graph = nx.DiGraph()
    graph.add_nodes_from(role)
    graph.add_edges_from((parent, child) for child, parents in model.tables.parents.items() for parent in parents)
    shades = kind_colours(model)
    kinds = list(shades)
    kind_of = {name: (v.test if v.test in shades else kinds[0]) for name, v in variables.items() if v.role == "finding"}
    # the right-hand column: findings by test kind, then red flags, each group under a header
    column: list[tuple[str, str | None]] = []  # (text or variable, kind); kind None for a variable row
    for kind in kinds:
        members = [n for n in kind_of if kind_of[n] == kind]
        if members:
            described = model.spec.test_kinds.get(kind)
            cost = f" (cost {described.cost:g})" if described is not None else ""
            column.append((f"{variable_label(kind)}{cost}", kind))
            column += [(n, None) for n in members]
    flags = [n for n, r in role.items() if r == "red_flag"]
    if flags:
        column.append(("red flags: act first, whatever the probabilities", "red_flag"))
        column += [(n, None) for n in flags]
    rows = len(column)
    ax = new_axes(ax, figsize=(9.5, max(5.0, 0.19 * rows + 1.2)))
    pos: dict[str, tuple[float, float]] = {}
    for i, (item, group) in enumerate(column):
        row = float(rows - 1 - i)
        if group is None:
            pos[item] = (2.0, row)
        else:
            ax.text(1.97, row, item, ha="left", va="center", fontsize=FONT_SIZE + 1, fontweight="bold", zorder=4,
                    color=COLOURS["red_flag"] if group == "red_flag" else shades[group],
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"})
    for layer, x in (("context", 0.0), ("cause", 1.0)):
        names = [n for n, r in role.items() if r == layer]
        for i, name in enumerate(names):
            pos[name] = (x, (rows - 1) * (1 - (i + 0.5) / len(names)))
    segments = [(pos[a], pos[b]) for a, b in graph.edges if a in pos and b in pos]
    edge_colours = [COLOURS["red_flag"] if role[b] == "red_flag" else COLOURS["context"] if role[a] == "context" else COLOURS["cause"] for a, b in graph.edges if a in pos and b in pos]
    collections = require("matplotlib.collections", "plotting")
    ax.add_collection(collections.LineCollection(segments, colors=edge_colours, linewidths=0.8, alpha=0.45, zorder=1))
    isolated = set(nx.isolates(graph))
    longest = 0
    for name, (x, yi) in pos.items():
        r = role[name]
        colour = COLOURS["red_flag"] if r == "red_flag" else shades[kind_of[name]] if r == "finding" else COLOURS[r]
        ax.plot([x], [yi], "o", color=colour, markersize=5 if r in ("finding", "red_flag") else 7, zorder=3)
        label = variable_label(name, model)
        if r == "red_flag":
            headline = _advice_headline(variables[name].advice)
            label += (f" -> {headline}" if headline else "") + (" (no modelled cause)" if not list(graph.predecessors(name)) else "")
        elif name in isolated:
            label += " (not linked)"
        if r == "context":
            ax.text(x - 0.04, yi, label, ha="right", va="center", fontsize=FONT_SIZE + 1, color=COLOURS["text"], zorder=4)
        elif r == "cause":
            ax.text(x, yi + 0.55, label, ha="center", va="bottom", fontsize=FONT_SIZE + 1, color=COLOURS["cause"], fontweight="bold", zorder=4,
                    bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})
        else:
            longest = max(longest, len(label))
            ax.text(x + 0.04, yi, label, ha="left", va="center", fontsize=FONT_SIZE, color=COLOURS["red_flag"] if r == "red_flag" else COLOURS["text"], zorder=4)
    counts = {r: sum(1 for v in role.values() if v == r) for r in ("context", "cause", "finding", "red_flag")}
    ax.set_title(f"The network: {counts['context']} context, {counts['cause']} causes, {counts['finding']} findings, {counts['red_flag']} red flags",
                 fontsize=FONT_SIZE + 2, loc="left")
    for x, text in ((0.0, "context"), (1.0, "causes (hidden)"), (2.0, "findings, by kind of test")):
        ax.text(x, rows + 0.6, text, ha="center" if x < 2 else "left", va="bottom", fontsize=FONT_SIZE + 1, fontweight="bold", color=COLOURS["text"])
    # room on the right for the longest finding label: its width in inches over the axes' width (about 70% of the figure)
    text_inches = max(longest, 30) * 0.6 * FONT_SIZE / 72
    axes_inches = max(ax.figure.get_figwidth() * 0.7, 2 * text_inches)
    ax.set_xlim(-0.05, 2.1 + 2.15 * text_inches / (axes_inches - text_inches))
    ax.set_ylim(-1, rows + 1.6)
    ax.axis("off")
    return ax
