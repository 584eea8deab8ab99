"""One look for every figure: a colour per concept, short labels, layouts that keep every label.

Every figure of :mod:`postfusion_bayes.plotting` takes its colours, fonts and
labels from here, so that a colour means one thing across figures.

The palette is Okabe and Ito's (*Color Universal Design*, 2008), chosen to
stay distinct for readers with the common colour-vision deficiencies:

==================  ===========  ==============================================
concept             colour       used for
==================  ===========  ==============================================
``context``         grey         the context variables (time, risk factors)
``cause``           blue         the hidden causes; the posterior
``prior``           light grey   the prior (context only), drawn as a ghost
``posterior``       blue         the posterior (the same blue as a cause)
``red_flag``        vermillion   red flags, their banner and edges
``increase``        orange       what raises a probability (ln LR > 0)
``decrease``        purple       what lowers a probability (ln LR < 0)
``finding``         green        findings; one shade per test kind, darker for
                                 a dearer kind (:func:`kind_colours`)
==================  ===========  ==============================================

The heatmap of weights of evidence uses :func:`diverging_map`, purple (against)
through white to orange (for), on the fixed scale :data:`LN_LR_LIMIT`.
Lines that only tell several causes apart in one figure take :data:`SERIES`,
each labelled by name where it ends.

Labels: :func:`variable_label` turns a variable's name into words
(``mri_enhancing_scar`` -> "MRI enhancing scar"); :func:`parameter_label`
shortens a parameter's dotted path into words
(``findings.radicular_pain.links.nerve_injury`` -> "radicular pain <- nerve injury").
Both read the model's description when one is given: a ``label`` column of
``model.variables`` or ``model.parameters``, when the priors provide one, wins.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping

import pandas as pd

from ._optional import require

__all__ = [
    "COLOURS",
    "SERIES",
    "LN_LR_LIMIT",
    "FONT_SIZE",
    "new_axes",
    "diverging_map",
    "kind_colours",
    "variable_label",
    "parameter_label",
    "state_label",
    "evidence_label",
    "wrap",
    "tint",
]

#: One colour per concept (Okabe-Ito palette, safe for colour-blind readers); see the module docstring.
COLOURS: Mapping[str, str] = {
    "context": "#7f7f7f",
    "cause": "#0072b2",
    "prior": "#c8c8c8",
    "posterior": "#0072b2",
    "red_flag": "#d55e00",
    "increase": "#e69f00",
    "decrease": "#7d5ba6",
    "finding": "#009e73",
    "text": "#222222",
    "edge": "#6f6f6f",
}

#: Colours that only tell several lines apart within one figure (Okabe-Ito order), each line labelled by name.
SERIES: tuple[str, ...] = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000", "#f0e442")

#: The fixed end of the colour scale of weights of evidence: ln LR clipped to [-3, 3] (a ratio of about 20).
LN_LR_LIMIT = 3.0

#: The smallest font of any text in a figure, in points.
FONT_SIZE = 8.0

_ACRONYMS = {"mri": "MRI", "ct": "CT", "emg": "EMG", "si": "SI", "xray": "X-ray", "crp": "CRP", "esr": "ESR", "dxa": "DXA", "l1": "L1"}


def new_axes(ax=None, figsize: tuple[float, float] = (8, 5)):
    """Return ``ax``, or the axes of a new figure with constrained layout (``savefig`` then keeps every label).

    Parameters
    ----------
    ax : matplotlib.axes.Axes, optional
        Returned unchanged when given (the caller owns its figure and layout).
    figsize : tuple of float
        Width and height in inches of a new figure.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> new_axes().figure.get_layout_engine().__class__.__name__
    'ConstrainedLayoutEngine'
    """
    if ax is not None:
        return ax
    plt = require("matplotlib.pyplot", "plotting")
    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def diverging_map():
    """Return the colour map of weights of evidence: purple (lowers) through white to orange (raises).

    Examples
    --------
    >>> cmap = diverging_map()
    >>> cmap.name
    'postfusion_decrease_increase'
    """
    colors = require("matplotlib.colors", "plotting")
    return colors.LinearSegmentedColormap.from_list("postfusion_decrease_increase", [COLOURS["decrease"], "#ffffff", COLOURS["increase"]])


def tint(colour: str, amount: float = 0.85) -> str:
    """Return ``colour`` mixed with white (``amount`` 0: the colour, 1: white), e.g. for a banner's background.

    Examples
    --------
    >>> tint("#000000", 0.5)
    '#808080'
    """
    colors = require("matplotlib.colors", "plotting")
    rgb = colors.to_rgb(colour)
    return colors.to_hex(tuple(c + (1 - c) * amount for c in rgb))


def kind_colours(model) -> dict[str, str]:
    """One shade of the finding green per kind of test, from light (cheapest) to dark (dearest).

    Parameters
    ----------
    model : Model
        Its test kinds (``model.spec.test_kinds``) and their costs; a model
        without test kinds gets one kind, ``"finding"``.

    Returns
    -------
    dict of str to str
        Test kind -> hex colour, cheapest kind first (ties in file order).

    Examples
    --------
    >>> from postfusion_bayes import load_model
    >>> shades = kind_colours(load_model())
    >>> list(shades)[0]
    'history'
    """
    colors = require("matplotlib.colors", "plotting")
    kinds = sorted(model.spec.test_kinds.values(), key=lambda k: k.cost)  # stable: ties stay in file order
    if not kinds:
        return {"finding": COLOURS["finding"]}
    light = colors.to_rgb(tint(COLOURS["finding"], 0.3))
    dark = (0.0, 0.27, 0.18)
    shades = {}
    for i, kind in enumerate(kinds):
        f = i / max(len(kinds) - 1, 1)
        shades[kind.name] = colors.to_hex(tuple(a + (b - a) * f for a, b in zip(light, dark, strict=True)))
    return shades


def _words(name: str) -> str:
    return " ".join(_ACRONYMS.get(part, part) for part in str(name).split("_"))


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def _label_column(frame: pd.DataFrame, name: str) -> str | None:
    if "label" not in frame.columns or "name" not in frame.columns:
        return None
    hit = frame.loc[frame["name"] == name, "label"]
    return str(hit.iloc[0]) if len(hit) and isinstance(hit.iloc[0], str) and hit.iloc[0] else None


def variable_label(name: str, model=None) -> str:
    """Short readable label of a variable: its ``label`` in the model's description, else its name in words.

    Parameters
    ----------
    name : str
        The variable's name.
    model : Model, optional
        When its ``variables`` table has a ``label`` column, that label is used.

    Returns
    -------
    str

    Examples
    --------
    >>> variable_label("mri_enhancing_scar")
    'MRI enhancing scar'
    >>> variable_label("si_joint_strain")
    'SI joint strain'
    """
    if model is not None:
        given = _label_column(model.variables, name)
        if given:
            return given
    return _words(name)


def state_label(state) -> str:
    """Return a state in words: booleans and yes/no as "yes"/"no", others with spaces.

    Examples
    --------
    >>> state_label(True), state_label("late_after_good_result")
    ('yes', 'late after good result')
    """
    if isinstance(state, bool):
        return "yes" if state else "no"
    return _words(state) if isinstance(state, str) else str(state)


def evidence_label(evidence: Mapping | None, model=None, width: int = 100) -> str:
    """Return the evidence in one short line for a title: ``"time since surgery: over 2 years; radicular pain: yes"``.

    Soft evidence (a mapping of likelihoods, or ``"soft [...]"`` as
    :attr:`Diagnosis.evidence` keeps it) is written as ``uncertain``;
    the line is cut to ``width`` characters with an ellipsis.

    Examples
    --------
    >>> evidence_label({"time_since_surgery": "over_2_years", "radicular_pain": True})
    'time since surgery: over 2 years; radicular pain: yes'
    >>> evidence_label({"numbness_tingling": {"yes": 0.7, "no": 0.3}})
    'numbness tingling: uncertain'
    >>> evidence_label({})
    'no evidence'
    """
    if not evidence:
        return "no evidence"
    parts = []
    for name, value in evidence.items():
        soft = isinstance(value, Mapping) or (isinstance(value, str) and value.startswith("soft"))  # as given, or as a Diagnosis keeps it
        shown = "uncertain" if soft else state_label(value)
        parts.append(f"{variable_label(str(name), model)}: {shown}")
    return textwrap.shorten("; ".join(parts), width=width, placeholder=" ...")


def parameter_label(name: str, model=None) -> str:
    """Short readable label of a hand-set number, from its dotted path (or its ``label`` in the model).

    Parameters
    ----------
    name : str
        The parameter's dotted path, as in ``model.parameters["name"]``.
    model : Model, optional
        When its ``parameters`` table has a ``label`` column, that label is used.

    Returns
    -------
    str
        For example "P(finding | only cause)" written as ``"radicular pain <- nerve injury"``,
        a leak as ``"radicular pain: leak"``, an odds ratio as
        ``"nerve injury: OR smoker"``; a path of another shape in words.

    Examples
    --------
    >>> parameter_label("onset.distributions.adjacent_segment_disease.late_after_good_result")
    'onset late after good result <- adjacent segment disease'
    >>> parameter_label("causes.nerve_injury.baseline.under_6_weeks")
    'nerve injury: baseline, under 6 weeks'
    >>> parameter_label("context.smoker.prevalence")
    'smoker: prevalence'
    """
    if model is not None:
        given = _label_column(model.parameters, name)
        if given:
            return given
    parts = str(name).split(".")
    w = [_words(p) for p in parts]
    patterns: list[tuple[str, str]] = [
        (r"^(findings|red_flags)\.[^.]+\.leak$", f"{w[1]}: leak" if len(w) > 1 else ""),
        (r"^(findings|red_flags)\.[^.]+\.links\.[^.]+$", f"{w[1]} <- {w[-1]}"),
        (r"^onset\.distributions\.leak\.[^.]+$", f"{w[0]} {w[-1]}: leak"),
        (r"^onset\.distributions\.[^.]+\.[^.]+$", f"{w[0]} {w[-1]} <- {w[2]}" if len(w) > 2 else ""),
        (r"^causes\.[^.]+\.baseline\.[^.]+$", f"{w[1]}: baseline, {w[-1]}" if len(w) > 1 else ""),
        (r"^causes\.[^.]+\.odds_ratios\.[^.]+$", f"{w[1]}: OR {w[-1]}" if len(w) > 1 else ""),
        (r"^causes\.[^.]+\.odds_ratios\.[^.]+\.[^.]+$", f"{w[1]}: OR {w[3]} {w[-1]}" if len(w) > 3 else ""),
        (r"^context\.[^.]+\.prevalence$", f"{w[1]}: prevalence" if len(w) > 1 else ""),
        (r"^context\.[^.]+\.distribution\.[^.]+$", f"{w[1]}: {w[-1]}" if len(w) > 1 else ""),
    ]
    for pattern, label in patterns:
        if re.match(pattern, name) and label:
            return label
    return " ".join(w[1:]) if len(w) > 1 else w[0]


def wrap(text: str, width: int) -> str:
    """Wrap ``text`` to lines of at most ``width`` characters (at least 20).

    Examples
    --------
    >>> wrap("a b c", 20)
    'a b c'
    """
    return "\n".join(textwrap.wrap(str(text), width=max(int(width), 20))) or str(text)
