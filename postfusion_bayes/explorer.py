"""The interactive explorer: click a patient's findings and watch every cause move (an ipywidgets widget).

:func:`explore` returns a widget for Jupyter or for a web page served by
``postfusion-bayes explore`` (voila). It is built from the model's public
description alone (roles, states, descriptions and test kinds of the
variables, red-flag advice, the parameters with their plausible ranges and
sources), so it follows the priors without change:

* **red flags** at the top, each an unknown/no/yes toggle; raising one shows a
  sticky banner with the priors' advice and dims the differential below a
  "for teaching only, after the emergency is handled" line, with no next tests;
* **context** as dropdowns ("unknown" or a state);
* **findings** as unknown/no/yes toggles (a dropdown for a categorical one),
  grouped by the test kind that observes them, cheapest first, with its cost;
* the **posterior** of every cause as a bar over a ghost bar of its prior (the
  context alone), most probable first;
* the **next three tests** of :meth:`~postfusion_bayes.diagnosis.Diagnosis.next_tests`
  with what each result of a single finding would do to the top cause, and the
  **adequacy** line (:attr:`~postfusion_bayes.diagnosis.Diagnosis.adequacy`);
* a **parameter panel**: pick any hand-set number, move it within its
  plausible range (its source or judgment shown), and the posterior follows
  (:meth:`~postfusion_bayes.model.Model.with_parameters`, a distribution entry
  co-varying its distribution as :func:`~postfusion_bayes.sensitivity.covaried`
  does); the tornado for the top cause and a Monte Carlo band of every
  posterior are computed on demand, by a button.

An update (a click, a moved number) finds the red flags and runs one
diagnosis before it returns: about a millisecond on the shipped model; the
next tests (with two or more diagnoses per test shown) and the adequacy check
(1,000 simulated patients), tens to hundreds of milliseconds, follow from a
background thread, the latest update only (``benchmarks/run_benchmarks.py
--only explorer`` measures both, the first against 150 ms). The widgets carry stable CSS classes (the ``*_CLASS`` constants
below, and ``pfb-var-<variable>`` on each variable's control) so that a
browser test, or a stylesheet, can find them.

Needs the ``explore`` extra: ``pip install "postfusion-bayes[explore]"``
(ipywidgets; voila to serve it as a web page).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from html import escape
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import pandas as pd

from ._optional import require
from .errors import ArgumentError, PostfusionError
from .evidence import parse_evidence

if TYPE_CHECKING:
    from .diagnosis import Diagnosis
    from .model import Model

__all__ = ["Explorer", "explore", "variable_class"]

#: CSS class of the whole explorer.
ROOT_CLASS = "pfb-explorer"
#: The red-flag banner (shown only while a red flag is raised; it then also has :data:`RAISED_CLASS`).
BANNER_CLASS = "pfb-banner"
RAISED_CLASS = "pfb-raised"
#: The differential (posterior, next tests, adequacy); it has :data:`DIMMED_CLASS` while a red flag is raised.
DIFFERENTIAL_CLASS = "pfb-differential"
DIMMED_CLASS = "pfb-dimmed"
#: The posterior bars: one ``div.pfb-row`` per cause with ``data-cause``, ``data-posterior`` and ``data-prior`` (every digit).
POSTERIOR_CLASS = "pfb-posterior"
#: The next three tests (a table, ``data-test`` on each row).
NEXT_TESTS_CLASS = "pfb-next-tests"
#: The adequacy line (also :data:`WARNING_CLASS` when the check fires).
ADEQUACY_CLASS = "pfb-adequacy"
WARNING_CLASS = "pfb-warning"
#: What went wrong with the evidence or a number (e.g. evidence impossible under the model); empty when nothing did.
ERROR_CLASS = "pfb-error"
#: Controls of the variables by role (each also has :func:`variable_class` of its variable).
RED_FLAG_CLASS, CONTEXT_CLASS, FINDING_CLASS = "pfb-red-flag", "pfb-context", "pfb-finding"
#: The parameter panel: the choice of parameter, its slider, its source, the list of changed numbers, the reset button.
PARAMETERS_CLASS = "pfb-parameters"
PARAMETER_CHOICE_CLASS, PARAMETER_SLIDER_CLASS, PARAMETER_SOURCE_CLASS = "pfb-parameter-choice", "pfb-parameter-slider", "pfb-parameter-source"
CHANGED_CLASS, RESET_CLASS = "pfb-changed", "pfb-reset"
#: The on-demand analyses: their buttons and their outputs.
TORNADO_BUTTON_CLASS, TORNADO_CLASS = "pfb-tornado-button", "pfb-tornado"
MONTE_CARLO_BUTTON_CLASS, MONTE_CARLO_CLASS = "pfb-monte-carlo-button", "pfb-monte-carlo"

#: The value of a control that observes nothing (no state is an empty string).
UNKNOWN = ""
#: Draws of the on-demand Monte Carlo band, and its seed (the same band for the same patient and numbers).
MONTE_CARLO_DRAWS, MONTE_CARLO_SEED = 1000, 0
#: Rows of the on-demand tornado.
TORNADO_ROWS = 10
#: Steps of a parameter's slider across its plausible range.
SLIDER_STEPS = 200

_STYLE = """<style>
.pfb-explorer {font-family: system-ui, sans-serif; max-width: 1400px}
.pfb-banner {position: sticky; top: 0; z-index: 20; background: #b00020; color: #fff; padding: 8px 12px; border-radius: 4px}
.pfb-banner p {margin: 2px 0}
.pfb-dimmed {opacity: 0.35}
.pfb-teaching {color: #b00020; font-weight: bold; border-top: 2px dashed #b00020; padding-top: 4px}
.pfb-row {display: flex; align-items: center; gap: 8px; margin: 2px 0}
.pfb-name {flex: 0 0 14em; text-align: right; font-size: 90%}
.pfb-track {position: relative; flex: 0 0 280px; height: 14px; background: rgba(128,128,128,0.12)}
.pfb-ghost {position: absolute; left: 0; top: 0; height: 14px; border: 1px dashed #888; box-sizing: border-box}
.pfb-bar {position: absolute; left: 0; top: 3px; height: 8px; background: #1f5fa8}
.pfb-band {position: absolute; top: 1px; height: 12px; background: rgba(31,95,168,0.30)}
.pfb-number {font-variant-numeric: tabular-nums; font-size: 90%; white-space: nowrap}
.pfb-next-tests table, .pfb-tornado table {border-collapse: collapse; font-size: 90%}
.pfb-next-tests td, .pfb-next-tests th, .pfb-tornado td, .pfb-tornado th {padding: 2px 8px; text-align: left}
.pfb-warning {color: #b06000; font-weight: bold}
.pfb-error {color: #b00020; font-weight: bold}
</style>"""


def variable_class(name: str) -> str:
    """Return the CSS class of a variable's control: ``pfb-var-<name>``.

    Examples
    --------
    >>> variable_class("radicular_pain")
    'pfb-var-radicular_pain'
    """
    return f"pfb-var-{name}"


def _label(name: str) -> str:
    return name.replace("_", " ")


def _percent(p: float) -> str:
    return f"{100 * p:.1f}%"


def explore(model: Model, evidence: Mapping[str, Any] | None = None, *, background: bool = True):
    """Return the interactive explorer of ``model`` for one patient: an ipywidgets widget.

    Parameters
    ----------
    model : Model
        The model to explore (it is not changed: moved numbers make new models).
    evidence : mapping, optional
        The patient to start from: hard observations by the rules of
        :mod:`postfusion_bayes.evidence` (``True``/``"yes"``, a state name).
    background : bool
        Compute the next tests and the adequacy check of each update in a
        background thread (the default), so that a click shows the red flags
        and the posterior at once; False computes them before the update returns.

    Returns
    -------
    ipywidgets.VBox
        Display it in Jupyter, or serve it with ``postfusion-bayes explore``.
        Its :class:`Explorer` is ``widget.explorer``.

    Raises
    ------
    ModuleNotFoundError
        Without ipywidgets, naming the extra: ``pip install "postfusion-bayes[explore]"``.
    EvidenceError
        For evidence the model does not accept.
    ArgumentError
        For soft evidence (the toggles show hard observations only), or a
        cause given as evidence (it has no control).

    Examples
    --------
    >>> from postfusion_bayes import load_model
    >>> widget = explore(load_model(), {"time_since_surgery": "over_2_years", "neurogenic_claudication": True})
    >>> widget.explorer.diagnosis.top
    'adjacent_segment_disease'
    """
    return Explorer(model, evidence, background=background).widget


class Explorer:
    """The state behind :func:`explore`: the model, the evidence, the moved numbers, and the widgets.

    Setting a control's ``value`` (as a click does), :meth:`set` and
    :meth:`move` update the red-flag banner and the posterior before they
    return; the next tests and the adequacy line follow from a background
    thread (one at a time, the latest update only; :meth:`wait` waits for
    them), unless ``background`` is False.

    Parameters
    ----------
    model : Model
        The model as loaded; moved numbers apply to it.
    evidence : mapping, optional
        The patient to start from (hard observations).
    background : bool
        Compute the next tests and the adequacy line in the background (default).

    Attributes
    ----------
    widget : ipywidgets.VBox
        The explorer.
    base_model : Model
        The model given.
    model : Model
        The model with the moved numbers (``base_model.with_parameters(changed)``).
    changed : dict
        Parameter name to its moved value (a distribution entry brings its co-varied entries).
    diagnosis : Diagnosis or None
        The current diagnosis; None while the evidence is impossible under the model.
    controls : dict
        Variable name to its control (a ToggleButtons or Dropdown widget).
    last_update_ms : float
        Python-side time of the last update before it returned (red flags, posterior), in milliseconds.
    last_panels_ms : float
        Time of the last next tests and adequacy line (in the background), in milliseconds.
    background_error : BaseException or None
        What the background computation raised, until :meth:`wait` raises it.
    """

    def __init__(self, model: Model, evidence: Mapping[str, Any] | None = None, *, background: bool = True):
        self._w = require("ipywidgets", "the interactive explorer")
        parsed = parse_evidence(model.spec, evidence, implications=False)
        if parsed.soft:
            raise ArgumentError(f"explore takes hard evidence only; soft evidence given for {', '.join(sorted(parsed.soft))} (its toggles show unknown, no or a state)")
        causes = sorted(set(parsed.hard) & set(model.causes))
        if causes:
            raise ArgumentError(f"explore shows context, findings and red flags; a cause given as evidence has no control: {', '.join(causes)}")
        model.diagnose(dict(parsed.hard))  # refuses evidence impossible under the model up front
        self.base_model = model
        self.model = model
        self.changed: dict[str, float] = {}
        self.evidence: dict[str, str] = dict(parsed.hard)
        self.diagnosis: Diagnosis | None = None
        self.last_update_ms = 0.0
        self.last_panels_ms = 0.0
        self.background_error: BaseException | None = None
        self._background = background
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._generation = self._done = 0
        self._job: tuple | None = None
        self._worker: threading.Thread | None = None
        self._syncing = False
        self.controls: dict[str, Any] = {}
        self.widget = self._build()
        self.widget.explorer = self  # the state stays reachable from the widget explore() returns
        self._refresh()

    # ------------------------------------------------------------------ building
    def _html(self, css: str, value: str = "") -> Any:
        widget = self._w.HTML(value)
        widget.add_class(css)
        return widget

    def _control(self, name: str, role: str) -> Any:
        w = self._w
        var = self.model.spec.variables[name]
        options = [("unknown", UNKNOWN)] + [(s, s) for s in var.states]
        value = self.evidence.get(name, UNKNOWN)
        style = {"description_width": "15em"}
        if role == "context" or len(var.states) > 2:
            control = w.Dropdown(options=options, value=value, description=_label(name), tooltip=var.description, style=style, layout=w.Layout(width="33em"))
        else:
            control = w.ToggleButtons(options=options, value=value, description=_label(name), tooltip=var.description, style={**style, "button_width": "6.5em"})
        control.add_class({"red_flag": RED_FLAG_CLASS, "context": CONTEXT_CLASS}.get(role, FINDING_CLASS))
        control.add_class(variable_class(name))
        control.observe(lambda change, name=name: self._observed(name, change["new"]), names="value")
        self.controls[name] = control
        return control

    def _build(self) -> Any:
        w = self._w
        spec = self.model.spec
        self._banner = self._html(BANNER_CLASS)
        self._error = self._html(ERROR_CLASS)
        red_flags = [self._control(n, "red_flag") for n in spec.names("red_flag")]
        context = [self._control(n, "context") for n in spec.names("context")]
        findings = spec.names("finding")
        groups = []
        kinds = sorted(spec.test_kinds.values(), key=lambda k: k.cost)  # cheapest first (stable: the priors' order among equals)
        for kind in kinds:
            members = [n for n in findings if spec.variables[n].test == kind.name]
            if members:
                head = f"<b>{escape(_label(kind.name))}</b>: {escape(kind.description)} (cost {kind.cost:g}{', invasive' if kind.invasive else ''})"
                groups.append(w.VBox([w.HTML(head)] + [self._control(n, "finding") for n in members]))
        other = [n for n in findings if spec.variables[n].test not in spec.test_kinds]
        if other:
            groups.append(w.VBox([w.HTML("<b>other findings</b>")] + [self._control(n, "finding") for n in other]))
        self._posterior = self._html(POSTERIOR_CLASS)
        self._teaching = self._html("pfb-teaching-line")
        self._tests = self._html(NEXT_TESTS_CLASS)
        self._adequacy = self._html(ADEQUACY_CLASS)
        self._differential = w.VBox([self._teaching, w.HTML("<h4>Causes: posterior (bar) over the prior from the context alone (dashed)</h4>"), self._posterior, self._tests, self._adequacy])
        self._differential.add_class(DIFFERENTIAL_CLASS)
        observations = w.VBox(
            [w.HTML("<h4>Red flags</h4>"), *red_flags, w.HTML("<h4>Context</h4>"), *context, w.HTML("<h4>Findings, by test</h4>"), *groups],
            layout=w.Layout(flex="0 0 auto", width="36em"),
        )
        root = w.VBox([w.HTML(_STYLE), self._banner, self._error, w.HBox([observations, w.VBox([self._differential, self._parameter_panel()])])])
        root.add_class(ROOT_CLASS)
        return root

    def _parameter_panel(self) -> Any:
        w = self._w
        params = self.model.spec.parameters
        self._choice = w.Dropdown(options=list(params), description="number", style={"description_width": "5em"}, layout=w.Layout(width="38em"))
        self._choice.add_class(PARAMETER_CHOICE_CLASS)
        self._slider = w.FloatSlider(description="value", continuous_update=False, readout_format=".4g", style={"description_width": "5em"}, layout=w.Layout(width="38em"))
        self._slider.add_class(PARAMETER_SLIDER_CLASS)
        self._source = self._html(PARAMETER_SOURCE_CLASS)
        self._changed_line = self._html(CHANGED_CLASS)
        self._reset = w.Button(description="reset every number", layout=w.Layout(width="auto"))
        self._reset.add_class(RESET_CLASS)
        tornado = w.Button(description="tornado for the top cause", layout=w.Layout(width="auto"))
        tornado.add_class(TORNADO_BUTTON_CLASS)
        monte = w.Button(description=f"Monte Carlo band ({MONTE_CARLO_DRAWS:,} draws)", layout=w.Layout(width="auto"))
        monte.add_class(MONTE_CARLO_BUTTON_CLASS)
        self._tornado = self._html(TORNADO_CLASS)
        self._monte_carlo = self._html(MONTE_CARLO_CLASS)
        self._choice.observe(lambda change: self._show_parameter(change["new"]), names="value")
        self._slider.observe(lambda change: self._moved(self._choice.value, change["new"]), names="value")
        self._reset.on_click(lambda _: self.reset())
        tornado.on_click(lambda _: self.show_tornado())
        monte.on_click(lambda _: self.show_monte_carlo())
        self._show_parameter(self._choice.value)
        panel = w.VBox(
            [w.HTML("<h4>Hand-set numbers: move one within its plausible range</h4>"), self._choice, self._slider, self._source, self._changed_line,
             w.HBox([self._reset, tornado, monte]), self._tornado, self._monte_carlo]
        )  # fmt: skip
        panel.add_class(PARAMETERS_CLASS)
        return panel

    def find(self, css: str) -> Any:
        """Return the one widget of the explorer with the CSS class ``css`` (one of the ``*_CLASS`` constants, or :func:`variable_class`).

        Raises
        ------
        ArgumentError
            When no widget, or more than one, has that class.

        Examples
        --------
        >>> from postfusion_bayes import load_model
        >>> explorer = Explorer(load_model(), {"saddle_anesthesia": True})
        >>> DIMMED_CLASS in explorer.find(DIFFERENTIAL_CLASS)._dom_classes
        True
        """
        found, stack = [], [self.widget]
        while stack:
            widget = stack.pop()
            if css in widget._dom_classes:
                found.append(widget)
            stack.extend(getattr(widget, "children", ()))
        if len(found) != 1:
            raise ArgumentError(f"css: {len(found)} widgets of the explorer have the class {css!r}; one is needed (see the *_CLASS constants of postfusion_bayes.explorer)")
        return found[0]

    # ------------------------------------------------------------------ changes
    def set(self, name: str, state: str | None) -> None:
        """Observe ``name`` in ``state`` (None: unknown), as clicking its control does.

        Raises
        ------
        ArgumentError
            An unknown variable or state, naming it, with the choices.
        """
        from .errors import suggest

        if name not in self.controls:
            raise ArgumentError(f"name: {name!r} is no variable of the explorer{suggest(name, self.controls)}")
        states = self.model.spec.variables[name].states
        if state is not None and state not in states:
            raise ArgumentError(f"state of {name}: {state!r}{suggest(str(state), states)} is not allowed; allowed: None (unknown), {', '.join(states)}")
        self.controls[name].value = UNKNOWN if state is None else state

    def _observed(self, name: str, value: str) -> None:
        if value == UNKNOWN:
            self.evidence.pop(name, None)
        else:
            self.evidence[name] = value
        self._refresh()

    def _show_parameter(self, name: str) -> None:
        p = self.model.spec.parameters[name]
        low, high = min(p.low, p.value), max(p.high, p.value)  # a learned value may lie outside the hand-set range
        s = self._slider
        self._syncing = True
        try:
            with s.hold_trait_notifications():
                s.max = max(s.max, high)
                s.min = min(s.min, low)
                s.value = p.value
                s.min, s.max = low, high
                s.step = (high - low) / SLIDER_STEPS if high > low else 0.0
            s.disabled = high <= low
        finally:
            self._syncing = False
        where = escape(p.source) if p.source else f"judgment: {escape(p.judgment)}"
        note = f"<br><i>{escape(p.note)}</i>" if p.note else ""
        what = f"{escape(p.kind.replace('_', ' '))} {p.value:.4g}, plausible {p.low:.4g} to {p.high:.4g} ({escape(PurePath(p.file).name)})"
        self._source.value = f"<span title='{escape(p.name)}'>{what}</span><br>{where}{note}"

    def move(self, name: str, value: float) -> None:
        """Move one hand-set number, as its slider does (a distribution entry co-varies its distribution).

        Raises
        ------
        SpecError
            An unknown parameter (with a close match).
        ArgumentError
            A value outside the parameter's domain.
        """
        from .sensitivity import covaried

        values = covaried(self.model, name, value)  # checks the name and the value before anything changes
        changed = {**self.changed, **values}
        model = self.base_model.with_parameters(changed)
        self.changed, self.model = changed, model
        if self._choice.value != name:
            self._choice.value = name
        else:
            self._show_parameter(name)
        self._refresh()

    def _moved(self, name: str, value: float) -> None:
        if self._syncing:
            return
        try:
            self.move(name, value)
        except PostfusionError as exc:  # the number keeps its value, and the slider shows it again
            self._show_parameter(name)
            self._error.value = escape(str(exc))

    def reset(self) -> None:
        """Put every moved number back to the model's value."""
        self.changed, self.model = {}, self.base_model
        self._show_parameter(self._choice.value)
        self._refresh()

    # ------------------------------------------------------------------ display
    def _refresh(self) -> None:
        """Show the red flags, banner and posterior now; hand the next tests and adequacy to the background worker."""
        start = time.perf_counter()
        with self._lock:
            self._generation += 1
            self._tornado.value = ""
            self._monte_carlo.value = ""
            self._error.value = ""
            flags = self.model.check_red_flags(self.evidence)
            self._banner.value = "".join(f"<p><b>RED FLAG {escape(_label(f.name))}</b>: {escape(f.advice)}</p>" for f in flags)
            self._banner.layout.display = None if flags else "none"
            for widget, css in ((self._banner, RAISED_CLASS), (self._differential, DIMMED_CLASS)):
                if flags:
                    widget.add_class(css)
                else:
                    widget.remove_class(css)
            self._teaching.value = "For teaching only, after the emergency is handled:" if flags else ""
            self._changed_line.value = (
                "Moved: " + ", ".join(f"{escape(k)} {self.base_model.spec.value(k):.4g} &rarr; {v:.4g}" for k, v in self.changed.items()) if self.changed else "No number moved."
            )
            try:
                dx = self.model.diagnose(self.evidence)
            except PostfusionError as exc:
                self.diagnosis = None
                self._error.value = escape(str(exc))
                self._posterior.value = "<p>No posterior: see the error above.</p>"
                self._tests.value = self._adequacy.value = ""
                self._done = self._generation
                self.last_update_ms = 1000 * (time.perf_counter() - start)
                return
            self.diagnosis = dx
            self._posterior.value = self._bars(dx)
            if self._background:
                self._tests.value = "<p><i>Ranking the next tests...</i></p>"
                self._adequacy.value = "<i>Checking adequacy...</i>"
                self._job = (self._generation, self.model, dict(self.evidence), dx, bool(flags))
                if self._worker is None or not self._worker.is_alive():
                    self._worker = threading.Thread(target=self._work, name="postfusion-explorer", daemon=True)
                    self._worker.start()
        self.last_update_ms = 1000 * (time.perf_counter() - start)
        if not self._background:
            self._panels(self._generation, self.model, dict(self.evidence), dx, bool(flags))

    def _work(self) -> None:
        """Compute the slow panels of the latest update (older ones are dropped), then stop when none is waiting: the background worker."""
        while True:
            with self._lock:
                job, self._job = self._job, None
                if job is None:
                    self._worker = None
                    self._idle.notify_all()
                    return
            try:
                self._panels(*job)
            except BaseException as exc:  # shown and kept for wait(), never lost in the thread
                with self._lock:
                    self.background_error = exc
                    self._error.value = escape(f"the next tests or the adequacy check failed: {type(exc).__name__}: {exc}")
                    self._done = job[0]

    def _panels(self, generation: int, model: Model, evidence: dict[str, str], dx: Diagnosis, raised: bool) -> None:
        """Compute the next three tests and the adequacy line of one update; show them only if no later update came meanwhile."""
        start = time.perf_counter()
        tests = "<p>No next tests while a red flag is raised: act on it first.</p>" if raised else self._next_tests(dx)
        try:
            adequacy = dx.adequacy
        except PostfusionError as exc:
            line, fires = f"No adequacy check: {escape(str(exc))}", False
        else:
            line, fires = f"Adequacy check: {escape(str(adequacy))}.", adequacy.fires
        if dx.conflict_warning:
            line += f"<br><span class='{WARNING_CLASS}'>{escape(dx.conflict_warning)}</span>"
        with self._lock:
            if generation != self._generation:  # a later update is on its way
                return
            self._tests.value = tests
            self._adequacy.value = line
            if fires:
                self._adequacy.add_class(WARNING_CLASS)
            else:
                self._adequacy.remove_class(WARNING_CLASS)
            self._done = generation
            self.last_panels_ms = 1000 * (time.perf_counter() - start)

    def wait(self, timeout: float | None = 60.0) -> None:
        """Wait until the next tests and the adequacy line show the current evidence (they are computed in the background).

        Raises
        ------
        TimeoutError
            When they are not done within ``timeout`` seconds.
        BaseException
            What the background computation raised, if it failed.
        """
        with self._lock:
            if not self._idle.wait_for(lambda: self._worker is None or self._done == self._generation, timeout):
                raise TimeoutError(f"the explorer's next tests and adequacy check were not done within {timeout} s")
            error, self.background_error = self.background_error, None
        if error is not None:
            raise error

    def _bars(self, dx: Diagnosis, band: Any = None) -> str:
        spec = self.model.spec
        rows = []
        for cause, post_value, prior_value in zip(dx.posterior.index, dx.posterior.to_numpy(), dx.prior.to_numpy(), strict=True):
            post, prior = float(post_value), float(prior_value)
            extra = ""
            if band is not None:
                q05, q95 = float(band.loc[cause, "q05"]), float(band.loc[cause, "q95"])
                extra = f"<div class='pfb-band' style='left:{100 * q05:.2f}%;width:{100 * (q95 - q05):.2f}%'></div>"
                text = f"{_percent(float(post))} (90% of draws {_percent(q05)} to {_percent(q95)}; first in {_percent(float(band.loc[cause, 'probability_first']))})"
            else:
                text = f"{_percent(float(post))} <span style='opacity:0.7'>(prior {_percent(prior)})</span>"
            rows.append(
                f"<div class='pfb-row' data-cause='{escape(str(cause))}' data-posterior='{float(post)!r}' data-prior='{prior!r}'>"
                f"<span class='pfb-name' title='{escape(spec.variables[str(cause)].description)}'>{escape(_label(str(cause)))}</span>"
                f"<div class='pfb-track'>{extra}<div class='pfb-ghost' style='width:{100 * prior:.2f}%'></div><div class='pfb-bar' style='width:{100 * float(post):.2f}%'></div></div>"
                f"<span class='pfb-number'>{text}</span></div>"
            )
        return "".join(rows)

    def _next_tests(self, dx: Diagnosis) -> str:
        try:
            tests = dx.next_tests().head(3)
        except PostfusionError as exc:
            return f"<p>No next tests: {escape(str(exc))}</p>"
        if tests.empty:
            return "<p>No test left to suggest.</p>"
        top = dx.top
        effects = dx.result_effects()
        rows = []
        for test, row in tests.iterrows():
            rows.append(
                f"<tr data-test='{escape(str(test))}'><td>{escape(_label(str(test)))}</td><td>{escape(_label(str(row['test_kind'])))}, cost {float(row['cost']):g}</td>"
                f"<td>{float(row['information_gain']):.2f} bits</td><td>{_what_results_do(effects, row['findings'])}</td></tr>"
            )
        head = f"<tr><th>next test</th><th>kind</th><th>information</th><th>what each result would do to {escape(_label(top))} (now {_percent(float(dx.posterior[top]))})</th></tr>"
        return f"<h4>Next three tests</h4><table>{head}{''.join(rows)}</table>"

    # ------------------------------------------------------------------ on demand
    def show_tornado(self) -> None:
        """Compute the tornado of the top cause over every hand-set number (:func:`~postfusion_bayes.sensitivity.tornado`) and show its largest rows."""
        from .sensitivity import tornado

        dx = self.diagnosis
        if dx is None:
            self._tornado.value = "<p>No tornado: the evidence is impossible under the model.</p>"
            return
        try:
            table = tornado(self.model, self.evidence, dx.top)
        except PostfusionError as exc:
            self._tornado.value = f"<p class='{ERROR_CLASS}'>{escape(str(exc))}</p>"
            return
        params = self.model.spec.parameters
        rows = []
        for name, row in table.head(TORNADO_ROWS).iterrows():
            p = params[str(name)]
            tip = escape(p.source or f"judgment: {p.judgment}")
            ends = [row["posterior_at_low"], row["posterior_at_high"]]
            shown = ["impossible" if pd.isna(v) else _percent(float(v)) for v in ends]
            rows.append(
                f"<tr data-parameter='{escape(str(name))}' title='{tip}'><td>{escape(str(name))}</td>"
                f"<td>{p.low:.4g} &rarr; {shown[0]}</td><td>{p.high:.4g} &rarr; {shown[1]}</td></tr>"
            )
        head = "<tr><th>number (hover: source)</th><th>at its low end</th><th>at its high end</th></tr>"
        self._tornado.value = f"<h4>Tornado: {escape(_label(dx.top))} now {_percent(float(dx.posterior[dx.top]))}</h4><table>{head}{''.join(rows)}</table>"

    def show_monte_carlo(self) -> None:
        """Draw every hand-set number from its plausible range (:func:`~postfusion_bayes.sensitivity.monte_carlo`) and show the band of each posterior."""
        from .sensitivity import monte_carlo

        dx = self.diagnosis
        if dx is None:
            self._monte_carlo.value = "<p>No Monte Carlo band: the evidence is impossible under the model.</p>"
            return
        try:
            band = monte_carlo(self.model, self.evidence, n=MONTE_CARLO_DRAWS, seed=MONTE_CARLO_SEED, progress=False)
        except PostfusionError as exc:
            self._monte_carlo.value = f"<p class='{ERROR_CLASS}'>{escape(str(exc))}</p>"
            return
        self._monte_carlo.value = f"<h4>Monte Carlo: the 90% band of each posterior over {MONTE_CARLO_DRAWS:,} draws of the numbers</h4>" + self._bars(dx, band)


def _what_results_do(effects: pd.DataFrame, findings: Any) -> str:
    """For each finding of a test: the top cause's posterior after each result, from :meth:`Diagnosis.result_effects`."""
    names = [findings] if isinstance(findings, str) else list(findings)
    parts = []
    for finding in names:
        rows = effects.loc[finding]
        results = [
            f"if {escape(str(state))}: impossible" if row["probability"] == 0 else f"if {escape(str(state))}: {_percent(float(row['top_after']))}"
            for state, row in rows.iterrows()
        ]
        prefix = f"{escape(_label(finding))}: " if len(names) > 1 else ""
        parts.append(prefix + "; ".join(results))
    return "<br>".join(parts)


# ---------------------------------------------------------------------- serving (postfusion-bayes explore)

#: The only address the served page binds to: never 0.0.0.0 (a teaching page, not a service).
HOST = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 now (the system's choice).

    Examples
    --------
    >>> 1024 <= free_port() <= 65535
    True
    """
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def page_notebook(priors: str | None = None) -> dict:
    """Return the notebook (nbformat 4, as a dictionary) that voila serves: one cell showing :func:`explore`.

    Parameters
    ----------
    priors : str, optional
        The priors folder (default: the shipped priors), written into the cell as a quoted absolute path.

    Examples
    --------
    >>> page_notebook()["cells"][0]["source"].splitlines()[-1]
    'explore(load_model(None))'
    """
    import os

    folder = None if priors is None else os.path.abspath(priors)
    source = "from postfusion_bayes import load_model\nfrom postfusion_bayes.explorer import explore\n\n" f"explore(load_model({folder!r}))"
    return {
        "cells": [{"cell_type": "code", "execution_count": None, "id": "explorer", "metadata": {}, "outputs": [], "source": source}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}, "language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def voila_command(notebook: str, port: int) -> list[str]:
    """Return the command that serves ``notebook`` with voila on 127.0.0.1:``port`` (that port or none: no retries, no browser opened).

    Examples
    --------
    >>> voila_command("page.ipynb", 8866)[-4:]
    ['--port=8866', '--Voila.ip=127.0.0.1', '--Voila.port_retries=0', '--no-browser']
    """
    import sys

    return [sys.executable, "-m", "voila", notebook, f"--port={port}", f"--Voila.ip={HOST}", "--Voila.port_retries=0", "--no-browser"]


def wait_for_port(port: int, alive: Any, timeout: float = 60.0) -> bool:
    """Wait until something accepts connections on 127.0.0.1:``port``; False when ``alive()`` turns False or ``timeout`` seconds pass."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False
