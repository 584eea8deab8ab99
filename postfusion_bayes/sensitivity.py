"""Sensitivity analysis of the hand-set priors.

How much does a conclusion depend on each hand-set number, and would a
plausible change of the priors change the diagnosis? Every function here
evaluates the model exactly, for many parameter values in one batch (the
compiled engine's parameter-set axis), and returns labelled pandas objects.

One pipeline shape for every method (as in SALib): the parameters of
interest, values for them, one batched evaluation, a table.

Parameters that belong to a distribution (the onset distributions and the
time-window distribution) are changed with *proportional co-variation*: when
one entry becomes ``x``, the other entries of its distribution are scaled by
``(1 - x) / (1 - x0)`` so that it still sums to 1 (:func:`covaried`). A
boolean prevalence, a noisy-OR leak or link, a baseline of a cause without
odds ratios and a distribution entry each enter every table entry they touch
linearly, so P(target | evidence) is exactly a ratio of two linear functions
of them (Coupe and van der Gaag; Castillo, Gutierrez and Hadi). A baseline of
a cause with odds ratios, and an odds ratio, enter through the odds and give
no such form: :func:`one_way` evaluates those exactly on a grid and says so.

Random functions take ``seed``: an int or a :class:`numpy.random.Generator`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import ranges
from ._optional import require
from .cpts import changed_tables, table_parameters
from .engine.arguments import check_budget, check_count, check_generator, check_names, check_probability, check_real, count_text, type_text
from .engine.encoding import EncodedEvidence
from .errors import ArgumentError, ArgumentTypeError, EvidenceError, ParameterError, SpecError, shown, suggest
from .evidence import parse_evidence
from .ranges import RANGE_Z, range_distributions
from .spec import CAUSE_STATES

__all__ = [
    "OneWayResult",
    "covaried",
    "has_exact_form",
    "distribution_of",
    "evaluate",
    "one_way",
    "tornado",
    "rank_robustness",
    "monte_carlo",
    "sobol",
    "fit_distributions",
    "cohort_summary",
]

#: Odds ratios have no upper bound; searches over their domain stop at this factor either side of the value.
ODDS_RATIO_SEARCH_FACTOR = 100.0


# --------------------------------------------------------------------------- parameters


def _groups(model) -> dict[str, list[str]]:
    """Parameter name -> the names of its distribution (itself alone when it is no distribution entry)."""
    spec = model.spec
    groups: dict[str, list[str]] = {}
    for dist in spec.context_priors.values():
        if list(dist) != ["yes"]:
            members = list(dist.values())
            for name in members:
                groups[name] = members
    if spec.onset is not None:
        for dist in spec.onset.distributions.values():
            members = list(dist.values())
            for name in members:
                groups[name] = members
    return groups


def distribution_of(model, parameter: str) -> list[str]:
    """Return the parameters that co-vary with ``parameter`` (its distribution), itself included."""
    _check_parameter(model, parameter)
    return _groups(model).get(parameter, [parameter])


def _check_parameter(model, parameter: str) -> None:
    if not isinstance(parameter, str):
        raise ArgumentTypeError(f"parameter must be a parameter name (a string), got {shown(parameter)}{type_text(parameter)}; see model.parameters")
    if parameter not in model.spec.parameters:
        raise SpecError([f"parameter {parameter!r} does not exist{suggest(parameter, model.spec.parameters)}; see model.parameters"])


def _parameter_names(model, parameters) -> list[str]:
    """Return the ``parameters`` argument as a list of names: every parameter for None; known names only, or an error naming the argument."""
    if parameters is None:
        return list(model.spec.parameters)
    names = check_names("parameters", parameters, what="parameter")
    for name in names:
        _check_parameter(model, name)
    return names


def covaried(model, parameter: str, value: float) -> dict[str, float]:
    """Values of ``parameter`` and of its co-varying distribution entries when it becomes ``value``.

    The other entries of its distribution keep their proportions
    (proportional co-variation); when the parameter is 1 and they are all 0,
    they share what is left equally.

    Raises
    ------
    ArgumentError
        A ``value`` outside the parameter's domain ([0, 1] for a probability,
        a finite number > 0 for an odds ratio) or NaN, naming the parameter
        and the value (:class:`~postfusion_bayes.errors.ArgumentTypeError`
        when it is not a number at all).
    SpecError
        An unknown parameter (with a close match).

    Examples
    --------
    >>> from postfusion_bayes import load_model
    >>> model = load_model()
    >>> new = covaried(model, "onset.distributions.leak.immediate", 0.65)
    >>> round(sum(new.values()), 12)
    1.0
    """
    _check_parameter(model, parameter)
    return {k: float(v[0]) for k, v in _covaried_arrays(model, parameter, np.array([_domain_value(model, parameter, value)], dtype=float)).items()}


def _domain_value(model, parameter: str, value: object) -> float:
    """Return ``value`` as a float the parameter can take (a probability in [0, 1], an odds ratio a finite number > 0), or refuse it."""
    where = f"the value of {parameter!r}"
    if model.spec.parameters[parameter].kind == "odds_ratio":
        return check_real(where, value, positive=True)
    return check_probability(where, value)


def _covaried_arrays(model, parameter: str, values: np.ndarray) -> dict[str, np.ndarray]:
    _check_parameter(model, parameter)
    spec = model.spec
    members = _groups(model).get(parameter, [parameter])
    out = {parameter: values}
    if len(members) > 1:
        x0 = spec.value(parameter)
        others = [m for m in members if m != parameter]
        if x0 >= 1.0:  # the others are all 0: no proportions to keep, so they share what is left equally
            for other in others:
                out[other] = (1.0 - values) / len(others)
            return out
        scale = (1.0 - values) / (1.0 - x0)
        for other in others:
            out[other] = spec.value(other) * scale
    return out


def has_exact_form(model, parameter: str) -> bool:
    """Whether P(cause | evidence) is exactly (a x + b) / (c x + d) in this parameter.

    True when every table entry the parameter touches is affine in it (see
    the module docstring): prevalences, leaks, links, distribution entries
    and baselines of causes without odds ratios.

    Examples
    --------
    >>> from postfusion_bayes import load_model
    >>> model = load_model()
    >>> has_exact_form(model, "findings.radicular_pain.leak"), has_exact_form(model, "causes.pseudarthrosis.odds_ratios.smoker")
    (True, False)
    """
    _check_parameter(model, parameter)
    spec = model.spec
    p = spec.parameters[parameter]
    if p.kind == "odds_ratio":
        return False
    if parameter.startswith("causes.") and ".baseline." in parameter:
        cause = parameter.split(".")[1]
        return not spec.cause_priors[cause].odds_ratios
    return True


def _domain(model, parameter: str) -> tuple[float, float]:
    p = model.spec.parameters[parameter]
    if p.kind == "odds_ratio":
        return p.value / ODDS_RATIO_SEARCH_FACTOR, p.value * ODDS_RATIO_SEARCH_FACTOR
    return 0.0, 1.0


# --------------------------------------------------------------------------- evaluation


def _encode(model, evidence) -> tuple[EncodedEvidence, pd.Index]:
    """Likelihood arrays for one patient (mapping) or many (DataFrame, one per row)."""
    if isinstance(evidence, pd.DataFrame):
        _patients(evidence)  # refuses a frame without rows
        # column labels of any type: parse_evidence names any label that is not a variable, and drops unobserved cells
        rows: list[Any] = [dict(row.items()) for _, row in evidence.iterrows()]
        index = evidence.index
    else:
        rows = [evidence]  # parse_evidence refuses what is not a mapping
        index = pd.Index([0])
    parsed = [parse_evidence(model.spec, r) for r in rows]
    return model._encode(parsed), index


def evaluate(model, evidence, values: Mapping[str, np.ndarray], *, targets: Sequence[str] | None = None, impossible: str = "raise") -> tuple[np.ndarray, np.ndarray]:
    """Posteriors for many parameter sets at once.

    Parameters
    ----------
    model : Model
        The model whose parameters are varied.
    evidence : mapping or DataFrame
        One patient, or one patient per row (values as in
        :mod:`postfusion_bayes.evidence`; soft evidence allowed in cells).
    values : mapping of str to array, shape (n_sets,)
        Parameter values; parameters not named keep their value.
    targets : sequence of str, optional
        Causes (default all).
    impossible : {"raise", "nan"}
        What to do where the evidence is impossible under a parameter set
        (e.g. a leak set to 0): raise, or give NaN for that set and row.

    Returns
    -------
    present : array, shape (n_sets, n_rows, n_targets)
        P(target present | evidence) for each set and row.
    log_evidence : array, shape (n_sets, n_rows)

    Raises
    ------
    SpecError
        An unknown parameter, a value outside its parameter's domain, or
        distribution entries that no longer sum to 1 (use :func:`covaried`).
    ParameterError
        Values that are not numbers, not one-dimensional, empty, or of
        unequal numbers of sets.
    EvidenceError
        Evidence impossible for some parameter set (with ``impossible="raise"``).
    ArgumentError
        ``impossible`` is neither "raise" nor "nan".
    """
    if impossible not in ("raise", "nan"):
        raise ArgumentError(f"impossible must be 'raise' or 'nan', got {shown(impossible)}")
    targets = model.causes if targets is None else check_names("targets", targets, model.causes, what="cause")
    values = _value_arrays(values)
    _check_values(model, values)
    lam, index = _encode(model, evidence)
    return _posteriors(model, lam, index, _needed_tables(model, lam, targets)(values), targets, impossible)


def _needed_tables(model, lam: EncodedEvidence, targets: Sequence[str]) -> Callable[[Mapping[str, np.ndarray]], dict[str, Any]]:
    """Return the function that builds, from checked parameter values, the batched tables a query with this evidence needs.

    Only the tables the values change (the network keeps its own for the
    rest), and of those not the tables of findings nobody observed: such a
    leaf sums out to 1, so the engine never reads its table (when all of them
    are such leaves' tables they are kept, so that the answer still has one
    row per set); the causes' tables only at the context the evidence fixes,
    repeated at the states no row allows (:func:`~postfusion_bayes.cpts.changed_tables`).
    """
    barren, owners, fixed = _barren(model, lam, targets), table_parameters(model.spec), _fixed_context(model, lam)

    def build(values: Mapping[str, np.ndarray]) -> dict[str, Any]:
        needed = {k: v for k, v in values.items() if owners[k] not in barren}
        return changed_tables(model.spec, needed or values, fixed=fixed)

    return build


def _posteriors(model, lam: EncodedEvidence, index: pd.Index, batched: Mapping[str, Any], targets: Sequence[str], impossible: str) -> tuple[np.ndarray, np.ndarray]:
    """evaluate() on tables already built: P(target present | evidence) per set, row and target, and log P(evidence)."""
    result = model.network.query(lam, targets, parameters=batched or None, validate=False)
    marginals, log_evidence = result.marginals, result.log_evidence
    bad = ~np.isfinite(log_evidence)
    if bad.any() and impossible == "raise":
        sets, rows = np.nonzero(bad)
        raise EvidenceError(f"the evidence is impossible under the model for parameter set {int(sets[0])} (row {index[rows[0]]!r})")
    present = np.stack([marginals[t][..., -1] for t in targets], axis=-1)
    return present, log_evidence


def _barren(model, lam: EncodedEvidence, targets: Sequence[str]) -> set[str]:
    """Variables without children, not asked for and unobserved in every row: their tables cannot change a posterior."""
    parents = model.network.tables.parents
    with_children = {p for ps in parents.values() for p in ps}
    return {v for v in parents if v not in with_children and v not in targets and v not in lam.names}


def _relevant(model, lam: EncodedEvidence, targets: Sequence[str]) -> set[str]:
    """Return the parameters that can change P(target | evidence) in some row: no other one can, whatever its value.

    A parameter is left out when every table entry it enters is one the
    posteriors never read or one that cancels out of them:

    * the tables of barren variables (:func:`_barren`: unobserved findings without children);
    * the prior of a context variable that the evidence fixes to one state in
      every row: in each row it multiplies every term of P(target, evidence)
      and of P(evidence) by the same number, which cancels in their ratio;
    * a cause's baseline for a time window, or odds ratio for a factor's
      state, that no row allows (likelihood 0): its entries are multiplied by 0;
    * a link of a finding, or a cause's onset distribution, for a cause that
      no row allows to be present.

    Entries of one distribution (context, onset) are all kept or all left
    out together. The rule is conservative: a parameter kept may still have
    no effect (for example a cause's whole table when the cause and all its
    parents are observed).
    """
    spec = model.spec
    network = model.network
    dense = lam.dense({v: len(network.states[v]) for v in lam.names})
    allowed = _allowed(dense)
    fixed = {v for v, d in dense.items() if ((d > 0).sum(axis=1) == 1).all()}  # one state allowed in every row

    def can(variable: str, state: str) -> bool:
        return variable not in allowed or bool(allowed[variable][network.states[variable].index(state)])

    barren = _barren(model, lam, targets)
    present = CAUSE_STATES[1]
    out: set[str] = set()
    for name, dist in spec.context_priors.items():
        if name not in fixed:
            out.update(dist.values())
    for cause, prior in spec.cause_priors.items():
        if cause in barren:
            continue
        out.update(p for t, p in prior.baseline.items() if can(spec.time_variable, t))
        for factor, by_state in prior.odds_ratios.items():
            out.update(p for s, p in by_state.items() if can(factor, s))
    for name, finding in spec.findings.items():
        if name in barren:
            continue
        out.add(finding.leak)
        out.update(p for cause, p in finding.links.items() if can(cause, present))
    if spec.onset is not None and spec.onset.variable not in barren:
        for owner, dist in spec.onset.distributions.items():
            if owner == "leak" or can(owner, present):
                out.update(dist.values())
    return out


def _allowed(dense: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per observed variable, the states some row allows (likelihood > 0), from the evidence's dense likelihoods."""
    return {v: np.asarray((d > 0).any(axis=0)) for v, d in dense.items()}


def _fixed_context(model, lam: EncodedEvidence) -> dict[str, int]:
    """Context variables to which the evidence allows one state only, the same in every row, with its index (see :func:`~postfusion_bayes.cpts.changed_tables`)."""
    context = [v for v in model.spec.names("context") if v in lam.names]
    allowed = _allowed(lam.dense({v: len(model.network.states[v]) for v in context}))
    return {v: int(np.flatnonzero(a)[0]) for v, a in allowed.items() if a.sum() == 1}


def _value_arrays(values: object) -> dict[str, np.ndarray]:
    """Return the ``values`` argument of :func:`evaluate` as 1-D float arrays of one length, or refuse it (names are checked by :func:`_check_values`)."""
    if not isinstance(values, Mapping):
        raise ArgumentTypeError(f"values must be a mapping of parameter name to an array of values (one per parameter set), got {shown(values)}{type_text(values)}")
    out: dict[str, np.ndarray] = {}
    for name, given in values.items():
        try:
            array = np.asarray(given, dtype=float)
        except (TypeError, ValueError, OverflowError):  # strings, None, integers too large for a float, ragged lists
            raise ParameterError(f"values of {shown(name)}: expected numbers, got {shown(given)}") from None
        if array.ndim != 1 or array.size == 0:
            raise ParameterError(f"values of {shown(name)}: expected a 1-D array with one value per parameter set, got shape {array.shape}")
        out[name] = array
    sizes = {name: a.size for name, a in out.items()}
    if len(set(sizes.values())) > 1:
        raise ParameterError(f"values: every parameter needs the same number of parameter sets, got {sizes}")
    return out


def _check_values(model, values: Mapping[str, np.ndarray]) -> None:
    problems = []
    for name, v in values.items():
        if name not in model.spec.parameters:
            problems.append(f"parameter {shown(name)} does not exist{suggest(name, model.spec.parameters)}")
            continue
        arr = np.asarray(v, dtype=float)
        p = model.spec.parameters[name]
        if p.kind == "probability" and not ((arr >= 0) & (arr <= 1)).all():
            problems.append(f"{name}: values outside [0, 1] (e.g. {arr[(arr < 0) | (arr > 1) | np.isnan(arr)][:3].tolist()})")
        if p.kind == "odds_ratio" and not (np.isfinite(arr) & (arr > 0)).all():
            problems.append(f"{name}: odds ratios must be finite and positive (e.g. {arr[~(np.isfinite(arr) & (arr > 0))][:3].tolist()})")
    groups = _groups(model)
    checked: set[str] = set()
    for name in values:
        members = groups.get(name)
        if not members or name in checked:
            continue
        checked.update(members)
        arrays = [np.asarray(values.get(m, model.spec.value(m)), dtype=float) for m in members]
        total = np.sum(np.broadcast_arrays(*arrays), axis=0)
        if not np.all(np.abs(total - 1) <= 1e-9):
            problems.append(f"{name}: its distribution ({', '.join(members)}) no longer sums to 1 (e.g. {float(np.max(np.abs(total - 1))) + 1:.6g}); change it with covaried()")
    if problems:
        raise SpecError(problems)


def _one_patient(evidence) -> None:
    if isinstance(evidence, pd.DataFrame):
        raise EvidenceError("this analysis is for one patient: give the evidence as a mapping (monte_carlo and evaluate also take a DataFrame of patients)")


def _patients(evidence) -> int:
    """Return the number of patients in ``evidence``: 1 for a mapping; the rows of a DataFrame, which must have some."""
    if not isinstance(evidence, pd.DataFrame):
        return 1
    if len(evidence) == 0:
        raise ArgumentError("evidence: the DataFrame has no rows; give one patient per row (or one patient as a mapping)")
    return len(evidence)


def _target_index(model, target: str) -> int:
    if target not in model.causes:
        raise EvidenceError(f"unknown target {target!r}{suggest(target, model.causes)}; targets are the causes: {', '.join(model.causes)}")
    return model.causes.index(target)


def _check_grid(model, names: Sequence[str], points: int, what: str) -> None:
    """Refuse a grid of ``points`` values per parameter whose batched tables would exceed the engine's memory budget.

    The grids of the parameters of one table are evaluated in one batch
    (:func:`_searched_intervals`): each set holds a copy of that table and the
    posteriors, a few times over while it is built; the largest batch counts.
    """
    owners = table_parameters(model.spec)
    per_table: dict[str, int] = {}
    for name in names:
        per_table[owners[name]] = per_table.get(owners[name], 0) + _batched_size(model, owners[name]) + 2 * len(model.causes)
    check_budget(_FLOAT * 4 * points * max(per_table.values()), model.network.memory_budget, f"{what} with a grid of {count_text(points)} points")


def _batched_size(model, owner: str) -> int:
    """Entries of one parameter set's copy of ``owner``'s table as the batch holds it.

    A structured table (noisy-OR, onset mixture) is batched as its numbers, not as its dense
    2^k-column form (:func:`~postfusion_bayes.cpts.changed_tables`), so only those count: with 16
    causes the dense onset table alone would have 327,680 entries.
    """
    cpd = model.tables.cpd(owner)
    if isinstance(cpd, np.ndarray):
        return int(cpd.size)
    return sum(int(np.size(getattr(cpd, f.name))) for f in dataclasses.fields(cpd))


#: Bytes of one float.
_FLOAT = 8


# --------------------------------------------------------------------------- one-way


@dataclass(frozen=True)
class OneWayResult:
    """The sensitivity function of P(target present | evidence) in one parameter.

    Attributes
    ----------
    parameter, target : str
    value : float
        The parameter's current value.
    exact_form : bool
        True when the function is ``(a x + b) / (c x + d)``; then
        ``coefficients`` holds a, b, c, d (a, b from P(target, evidence) and c, d
        from P(evidence), both linear in x, each divided by P(evidence) at the
        current value, so that ``c * value + d == 1``: only ratios of
        P(evidence) are defined, since soft evidence may carry any scale). False when the parameter feeds
        the tables through the odds (a baseline with odds ratios, an odds
        ratio): ``table`` holds exact evaluations on a grid, and calling the
        result evaluates the model exactly at any x.
    coefficients : Series or None
        ``a``, ``b``, ``c``, ``d`` of the exact form.
    derivative : float
        d P / dx at the current value (analytic for the exact form, central
        difference of two exact evaluations otherwise).
    table : DataFrame
        ``value`` and ``posterior`` over the parameter's plausible range.
    note : str
    """

    parameter: str
    target: str
    value: float
    exact_form: bool
    coefficients: pd.Series | None
    derivative: float
    table: pd.DataFrame
    note: str
    function: Callable[[Any], np.ndarray] = field(repr=False, compare=False)

    def __call__(self, x):
        """P(target present | evidence) at parameter value(s) ``x``."""
        return self.function(x)


def _posterior_at(model, evidence, parameter: str, target_index: int, xs: np.ndarray, impossible: str = "raise") -> tuple[np.ndarray, np.ndarray]:
    """Exact posterior and P(evidence) at parameter values xs (co-varied), one patient; P(evidence) relative to its largest value (see :func:`_relative`)."""
    xs = np.atleast_1d(np.asarray(xs, dtype=float))
    present, log_evidence = evaluate(model, evidence, _covaried_arrays(model, parameter, xs), impossible=impossible)
    return present[:, 0, target_index], _relative(log_evidence[:, 0])


def _relative(log_evidence: np.ndarray) -> np.ndarray:
    """P(evidence) of each parameter set divided by the largest of them, from the logs.

    P(evidence) is known only up to the scale of the soft likelihoods (and is
    tiny for much evidence): ``exp(log P)`` can underflow to 0 where the
    ratios are well defined. The sensitivity functions need only ratios of
    P(evidence) between parameter sets, so they work with these.
    """
    finite = log_evidence[np.isfinite(log_evidence)]
    reference = float(finite.max()) if finite.size else 0.0
    return np.exp(log_evidence - reference)


def one_way(model, evidence: Mapping[str, Any] | None, target: str, parameter: str, *, points: int = 21) -> OneWayResult:
    """Return the exact one-way sensitivity function of P(target present | evidence) in one parameter.

    Parameters
    ----------
    model : Model
        The model whose parameter is varied.
    evidence : mapping
        One patient, as for :meth:`Model.diagnose` (values as in :mod:`postfusion_bayes.evidence`).
    target : str
        A cause.
    parameter : str
        A parameter name (see ``model.parameters``).
    points : int
        Grid size of the returned table over the parameter's plausible range (a whole number >= 2).

    Returns
    -------
    OneWayResult

    Raises
    ------
    ArgumentError
        ``points`` not a whole number >= 2 (:class:`~postfusion_bayes.errors.ArgumentTypeError`
        when not an integer at all).
    MemoryBudgetError
        A grid whose tables would exceed the engine's memory budget.

    Examples
    --------
    >>> from postfusion_bayes import load_model
    >>> model = load_model()
    >>> f = one_way(model, {"time_since_surgery": "over_2_years", "neurogenic_claudication": True},
    ...             "adjacent_segment_disease", "findings.neurogenic_claudication.leak")
    >>> f.exact_form, bool(f.derivative < 0)
    (True, True)
    """
    points = check_count("points", points, minimum=2)
    _one_patient(evidence)
    ti = _target_index(model, target)
    _check_parameter(model, parameter)
    _check_grid(model, [parameter], points, "one_way")
    p = model.spec.parameters[parameter]
    grid = np.linspace(p.low, p.high, points)
    exact = has_exact_form(model, parameter)
    if exact:
        # two exact evaluations fix both linear functions; a third checks them
        lo, hi = _domain(model, parameter)
        probes = np.array([lo + 0.25 * (hi - lo), lo + 0.75 * (hi - lo), p.value])
        posterior, evidence_p = _posterior_at(model, evidence, parameter, ti, probes)
        evidence_p = evidence_p / evidence_p[2]  # P(evidence) relative to its value at the current value: free of the likelihoods' scale
        joint = posterior * evidence_p
        c = (evidence_p[1] - evidence_p[0]) / (probes[1] - probes[0])
        d = evidence_p[0] - c * probes[0]
        a = (joint[1] - joint[0]) / (probes[1] - probes[0])
        b = joint[0] - a * probes[0]
        check = (a * probes[2] + b) / (c * probes[2] + d)
        if not abs(check - posterior[2]) <= 1e-9 * max(1.0, abs(posterior[2])):
            raise AssertionError(f"{parameter}: sensitivity function is not linear-fractional ({check} vs {posterior[2]})")
        coefficients = pd.Series({"a": a, "b": b, "c": c, "d": d}, name=f"{target} in {parameter}")

        scale = max(abs(d), abs(c + d))

        def function(x):
            x = np.asarray(x, dtype=float)
            _check_values(model, _covaried_arrays(model, parameter, np.atleast_1d(x)))  # the parameter's domain, as evaluate() checks it
            evidence_probability = c * x + d
            with np.errstate(divide="ignore", invalid="ignore"):
                value = np.where(np.abs(evidence_probability) > 1e-12 * scale, (a * x + b) / evidence_probability, np.nan)
            return float(value) if value.ndim == 0 else value

        derivative = float((a * d - b * c) / (c * p.value + d) ** 2)
        values = function(grid)
        note = "exact: P(target | evidence) = (a x + b) / (c x + d)" + (" with proportional co-variation of its distribution" if len(distribution_of(model, parameter)) > 1 else "")
    else:
        coefficients = None

        def function(x):
            result = _posterior_at(model, evidence, parameter, ti, np.asarray(x, dtype=float), impossible="nan")[0]
            return float(result[0]) if np.ndim(x) == 0 else result

        values = function(grid)
        h = 1e-6 * max(1.0, abs(p.value))
        lo, hi = _domain(model, parameter)
        lo_x, hi_x = max(p.value - h, lo, 1e-12), min(p.value + h, hi)  # both inside the domain
        below, above = function(np.array([lo_x, hi_x]))
        derivative = float((above - below) / (hi_x - lo_x))
        note = "not of the form (a x + b) / (c x + d): the parameter enters through the odds of its cause; evaluated exactly on the grid, derivative by central difference"
    table = pd.DataFrame({"value": grid, "posterior": _missing_where_nan(values)})
    table.attrs.update(parameter=parameter, target=target)
    return OneWayResult(parameter, target, p.value, exact, coefficients, derivative, table, note, _refusing_impossible(function, parameter))


def _missing_where_nan(values) -> pd.api.extensions.ExtensionArray:
    """Posteriors as a nullable float array: pd.NA (explicitly missing, never NaN) where the evidence is impossible."""
    return pd.array(np.asarray(values, dtype=float), dtype="Float64")  # pandas reads NaN as NA here


def _refusing_impossible(function: Callable[[Any], Any], parameter: str) -> Callable[[Any], Any]:
    """Wrap a sensitivity function so that a value making the evidence impossible is refused, never answered with NaN."""

    def posterior(x):
        value = function(x)
        undefined = np.isnan(value)
        if np.any(undefined):
            at = np.atleast_1d(np.asarray(x, dtype=float))[np.atleast_1d(undefined)][:5].tolist()
            raise EvidenceError(f"the evidence is impossible under the model with {parameter} = {at[0] if len(at) == 1 else at}: P(target | evidence) is undefined there")
        return value

    return posterior


# --------------------------------------------------------------------------- tornado


def tornado(model, evidence: Mapping[str, Any] | None, target: str, parameters: Sequence[str] | None = None) -> pd.DataFrame:
    """Posterior of ``target`` with each parameter at the low and the high end of its range.

    All parameters are evaluated in one batch; distribution entries co-vary
    proportionally (:func:`covaried`). The ranges are the hand-set ones, also
    for a model learned from cases (whose values may then lie outside them);
    :func:`monte_carlo` draws learned numbers from what the cases say instead.

    Returns
    -------
    DataFrame
        Index ``parameter``; columns ``value``, ``low``, ``high``,
        ``posterior_at_low``, ``posterior_at_high``, ``swing`` (absolute
        difference), sorted by swing, largest first. ``attrs`` hold the target
        and the posterior at the current values. Where the evidence is
        impossible at one end of a range (e.g. a leak of 0 for an observed
        finding) that posterior and the swing are missing (``pd.NA`` in
        nullable ``Float64`` columns, never NaN), sorted last.

    Raises
    ------
    ArgumentError
        ``parameters`` empty or naming a parameter twice
        (:class:`~postfusion_bayes.errors.ArgumentTypeError` for a single
        string, which is refused rather than read as one name: write ``[name]``).
    SpecError
        An unknown parameter (with a close match).
    """
    _one_patient(evidence)
    ti = _target_index(model, target)
    names = _parameter_names(model, parameters)
    values, n = _stacked_settings(model, [(name, which) for name in names for which in ("low", "high")])
    present, _ = evaluate(model, evidence, values, impossible="nan")
    at = present[:, 0, ti]
    base = float(model.diagnose(evidence).posterior[target])
    params = model.spec.parameters
    frame = pd.DataFrame(
        {
            "value": [params[nm].value for nm in names],
            "low": [params[nm].low for nm in names],
            "high": [params[nm].high for nm in names],
            "posterior_at_low": at[0::2],
            "posterior_at_high": at[1::2],
        },
        index=pd.Index(names, name="parameter"),
    )
    for column in ("posterior_at_low", "posterior_at_high"):  # pd.NA, never NaN, at an end where the evidence is impossible
        frame[column] = _missing_where_nan(frame[column])
    frame["swing"] = (frame["posterior_at_high"] - frame["posterior_at_low"]).abs()
    frame = frame.sort_values("swing", ascending=False, kind="stable", na_position="last")
    frame.attrs.update(target=target, posterior=base)
    return frame


def _stacked_settings(model, settings: Sequence[tuple[str, str | float]]) -> tuple[dict[str, np.ndarray], int]:
    """One parameter set per (name, value or 'low'/'high'), all others at their values."""
    n = len(settings)
    spec = model.spec
    at: dict[str, tuple[list[int], list[float]]] = {}
    for i, (name, which) in enumerate(settings):
        rows, xs = at.setdefault(name, ([], []))
        rows.append(i)
        xs.append(getattr(spec.parameters[name], which) if isinstance(which, str) else float(which))
    values: dict[str, np.ndarray] = {}
    for name, (rows, xs) in at.items():  # every setting of one parameter co-varied at once, as covaried() does one
        for k, v in _covaried_arrays(model, name, np.array(xs, dtype=float)).items():
            if k not in values:
                values[k] = np.full(n, spec.value(k))
            values[k][rows] = v
    return values, n


# --------------------------------------------------------------------------- rank robustness


def _leader(present: np.ndarray) -> np.ndarray:
    return np.argmax(present, axis=-1)


def rank_robustness(model, evidence: Mapping[str, Any] | None, parameters: Sequence[str] | None = None, *, points: int = 101) -> pd.DataFrame:
    """For each parameter, the values over which the top-ranked cause stays on top.

    The admissible deviation of van der Gaag and Renooij: the interval of
    values (within the parameter's domain, [0, 1] for a probability and
    ``[value / 100, value * 100]`` for an odds ratio) around the current value
    in which the top cause keeps the highest posterior, and which cause takes
    over beyond each end.

    For the linear-fractional parameters the ends are exact: every cause's
    P(cause, evidence) is linear in the parameter with the same denominator
    P(evidence), so each rival overtakes at the root of a linear function. A
    baseline of a cause with odds ratios, or an odds ratio, is not of that
    form; but when the evidence fixes every context variable the cause
    depends on, the patient's posteriors read one entry ``q`` of the cause's
    table, they are linear-fractional in ``q``, and ``q`` is monotone in the
    parameter (its log-odds move with the parameter's log, or log-odds): the
    ends are then exact too, found in ``q`` and mapped back. For the others
    they are found on a grid of exact evaluations and refined by bisection
    to 1e-10. A parameter that cannot change any posterior of this patient
    (a link of a finding not observed, the prior of an observed context
    variable, a baseline of another time window, ...) is not evaluated: its
    interval is its whole domain.

    Returns
    -------
    DataFrame
        Index ``parameter``; columns ``value``, ``domain_low``, ``domain_high``,
        ``lower``, ``upper``, ``cause_below`` and ``cause_above`` (the cause on
        top just outside the interval, or None when the interval reaches the
        end of the domain: object columns, never NaN), ``method`` ("exact",
        "exact through the table entry", "grid and bisection", or "no effect"
        for a parameter no posterior of this patient depends on).
        ``attrs["top"]`` is the top cause.

    Raises
    ------
    ArgumentError
        ``points`` not a whole number >= 2, ``parameters`` empty or naming
        a parameter twice (:class:`~postfusion_bayes.errors.ArgumentTypeError`
        for the wrong type, e.g. a single string).
    SpecError
        An unknown parameter (with a close match).
    MemoryBudgetError
        A grid whose tables would exceed the engine's memory budget.
    """
    points = check_count("points", points, minimum=2)
    _one_patient(evidence)
    names = _parameter_names(model, parameters)
    _check_grid(model, names, points, "rank_robustness")
    causes = model.causes
    top = model.diagnose(evidence).top
    ti = causes.index(top)
    lam, _ = _encode(model, evidence)
    relevant = _relevant(model, lam, causes)
    entries = _table_entries(model, lam)
    rows: dict[str, dict] = {}
    for name in names:
        if name not in relevant:
            lo, hi = _domain(model, name)
            rows[name] = _row(model, name, lo, hi, None, None, "no effect")
    exact = [n for n in names if n in relevant and has_exact_form(model, n)]
    through = [n for n in names if n in relevant and n not in exact and n in entries]
    # every linear-fractional parameter (in itself, or in the one table entry it moves): two evaluations each, all in one batch
    settings = []
    for name in exact:
        lo, hi = _domain(model, name)
        settings += [(name, lo + 0.25 * (hi - lo)), (name, lo + 0.75 * (hi - lo))]
    for name in through:
        settings += [(name, _entry_to_parameter(model, name, entries[name], q)) for q in (0.25, 0.75)]
    if settings:
        values, _ = _stacked_settings(model, settings)
        present, log_evidence = evaluate(model, evidence, values)
        evidence_p = _relative(log_evidence[:, 0])  # only ratios matter: every line below is scaled alike
        joint = present[:, 0, :] * evidence_p[:, None]
        for i, name in enumerate(exact + through):
            x0, x1 = (settings[2 * i][1], settings[2 * i + 1][1]) if name in exact else (0.25, 0.75)
            slope = (joint[2 * i + 1] - joint[2 * i]) / (x1 - x0)
            intercept = joint[2 * i] - slope * x0
            c = (evidence_p[2 * i + 1] - evidence_p[2 * i]) / (x1 - x0)
            d = evidence_p[2 * i] - c * x0
            if name in exact:
                lo, hi = _domain(model, name)
                ends = _exact_interval(causes, ti, model.spec.value(name), lo, hi, slope, intercept, (c, d))
                rows[name] = _row(model, name, *ends, "exact")
            else:
                rows[name] = _through_entry(model, name, entries[name], ti, slope, intercept, (c, d))
    searched = [n for n in names if n not in rows]
    rows.update(_searched_intervals(model, evidence, searched, ti, points))
    frame = pd.DataFrame([rows[n] for n in names]).set_index("parameter")
    for column in ("cause_below", "cause_above"):  # None where no cause takes over (a string column would make it NaN)
        frame[column] = pd.Series([None if pd.isna(v) else v for v in frame[column]], index=frame.index, dtype=object)
    frame.attrs["top"] = top
    return frame


def _row(model, name: str, lower: float, upper: float, below: str | None, above: str | None, method: str) -> dict:
    """One row of :func:`rank_robustness`'s table."""
    lo, hi = _domain(model, name)
    return {"parameter": name, "value": model.spec.value(name), "domain_low": lo, "domain_high": hi, "lower": lower, "upper": upper, "cause_below": below, "cause_above": above, "method": method}


def _exact_interval(
    causes: Sequence[str], ti: int, value: float, lo: float, hi: float, slope: np.ndarray, intercept: np.ndarray, evidence_line: tuple[float, float]
) -> tuple[float, float, str | None, str | None]:
    """Return the ends of the interval of ``x`` in [lo, hi] around ``value`` where cause ``ti`` leads, and the causes beyond them.

    Every cause's P(cause, evidence) is ``slope * x + intercept`` (up to a
    common scale) and P(evidence) is ``c * x + d``.
    """
    lower, upper, below, above = lo, hi, None, None
    c, d = evidence_line  # P(evidence) = c x + d, the common denominator
    evidence_scale = max(abs(c * lo + d), abs(c * hi + d))
    slope_scale = float(np.max(np.abs(slope))) + float(np.max(np.abs(intercept)))
    for j in range(len(causes)):
        if j == ti:
            continue
        ds, di = slope[ti] - slope[j], intercept[ti] - intercept[j]  # top minus rival, linear in x
        if abs(ds) <= 1e-12 * slope_scale:
            continue
        root = -di / ds
        if abs(c * root + d) <= 1e-9 * evidence_scale:
            continue  # the lines meet where the evidence is impossible: no posterior changes there
        if ds > 0 and root > lower:  # rival ahead below the root
            lower, below = min(root, value), causes[j]
        elif ds < 0 and root < upper:
            upper, above = max(root, value), causes[j]
    if below is not None and lower <= lo:
        lower, below = lo, None
    if above is not None and upper >= hi:
        upper, above = hi, None
    return lower, upper, below, above


def _table_entries(model, lam: EncodedEvidence) -> dict[str, float]:
    """Parameters that move exactly one table entry a one-patient query reads, with that entry's current value.

    A baseline of a cause with odds ratios, or an odds ratio, of a cause all
    of whose parents (the context) the evidence fixes: the query reads its
    table only at that context, P(cause present | context) = q, and the
    parameter moves q monotonically (the log-odds of q move with the log of
    an odds ratio, and with the log-odds of a baseline). Left out where q,
    or a baseline, is 0 or 1 (no log-odds to move).
    """
    fixed = _fixed_context(model, lam)
    spec = model.spec
    tables = model.network.tables
    out: dict[str, float] = {}
    for cause, prior in spec.cause_priors.items():
        parents = tables.parents[cause]
        if not prior.odds_ratios or not all(p in fixed for p in parents):
            continue
        q = float(np.asarray(tables.cpd(cause))[(*(fixed[p] for p in parents), 1)])
        if not 0.0 < q < 1.0:
            continue
        for name in (*prior.baseline.values(), *prior.odds_ratio_names):
            if spec.parameters[name].kind == "odds_ratio" or 0.0 < spec.value(name) < 1.0:
                out[name] = q
    return out


def _log_odds(p: float) -> float:
    with np.errstate(divide="ignore"):
        return float(np.log(p) - np.log1p(-p))


def _entry_to_parameter(model, name: str, q0: float, q: float) -> float:
    """Return the value of ``name`` at which the table entry it moves (now ``q0``) becomes ``q`` (see :func:`_table_entries`)."""
    shift = _log_odds(q) - _log_odds(q0)
    x0 = model.spec.value(name)
    if model.spec.parameters[name].kind == "odds_ratio":
        return float(x0 * np.exp(shift))
    with np.errstate(over="ignore"):
        return float(1.0 / (1.0 + np.exp(-(_log_odds(x0) + shift))))


def _parameter_to_entry(model, name: str, q0: float, x: float) -> float:
    """Return the table entry (now ``q0``) at parameter value ``x``: the inverse of :func:`_entry_to_parameter`."""
    x0 = model.spec.value(name)
    if model.spec.parameters[name].kind == "odds_ratio":
        shift = float(np.log(x) - np.log(x0))
    else:
        shift = _log_odds(x) - _log_odds(x0)
    with np.errstate(over="ignore"):
        return float(1.0 / (1.0 + np.exp(-(_log_odds(q0) + shift))))


def _through_entry(model, name: str, q0: float, ti: int, slope: np.ndarray, intercept: np.ndarray, evidence_line: tuple[float, float]) -> dict:
    """Return the row of a parameter that moves one table entry: its exact interval, found in the entry (lines in q) and mapped back."""
    lo, hi = _domain(model, name)
    q_lo, q_hi = _parameter_to_entry(model, name, q0, lo), _parameter_to_entry(model, name, q0, hi)
    lower, upper, below, above = _exact_interval(model.causes, ti, q0, q_lo, q_hi, slope, intercept, evidence_line)
    value = model.spec.value(name)
    # the ends mapped back (monotone increasing), clipped to the domain and around the value against rounding
    lower = lo if below is None else min(max(_entry_to_parameter(model, name, q0, lower), lo), value)
    upper = hi if above is None else max(min(_entry_to_parameter(model, name, q0, upper), hi), value)
    return _row(model, name, lower, upper, below, above, "exact through the table entry")


def _searched_intervals(model, evidence, names: Sequence[str], ti: int, points: int) -> dict[str, dict]:
    """Grid and bisection for every parameter without the exact form, all of them in step.

    The grids of the parameters of one table are evaluated in one batch of
    parameter sets, and then each bisection step of every end still open in
    one batch; each end follows its own grid and midpoints, as it would
    searched alone.
    """
    causes = model.causes
    spec = model.spec
    ends = []  # (name, towards_low, points from the value outwards, kind)
    for name in names:
        value = spec.value(name)
        lo, hi = _domain(model, name)
        kind = spec.parameters[name].kind
        if kind == "odds_ratio":
            left = np.geomspace(lo, value, points // 2 + 1)
            right = np.geomspace(value, hi, points // 2 + 1)
        else:
            left = np.linspace(lo, value, points // 2 + 1)
            right = np.linspace(value, hi, points // 2 + 1)
        ends += [(name, True, left[::-1], kind), (name, False, right, kind)]

    def leaders(settings: list[tuple[str, float]]) -> np.ndarray:
        values, _ = _stacked_settings(model, settings)
        present, _ = evaluate(model, evidence, values, impossible="nan")
        lead = _leader(np.nan_to_num(present[:, 0, :], nan=-1.0))
        lead[np.isnan(present[:, 0, 0])] = ti  # no posterior where the evidence is impossible: nothing takes over
        return lead

    found: dict[tuple[str, bool], tuple[float, str | None]] = {}
    open_ends: dict[int, list] = {}  # end -> [inside, outside, rival]
    # the grids, one batch per table: a batch that changes one table is evaluated several times faster than one that changes many
    owners = table_parameters(spec)
    by_table: dict[str, list[int]] = {}
    for e, (name, *_) in enumerate(ends):
        by_table.setdefault(owners[name], []).append(e)
    grid_leads: dict[int, np.ndarray] = {}
    for group in by_table.values():
        lead = leaders([(ends[e][0], float(x)) for e in group for x in ends[e][2]])
        start = 0
        for e in group:
            grid_leads[e] = lead[start : start + len(ends[e][2])]
            start += len(ends[e][2])
    for e, (name, towards_low, order, _) in enumerate(ends):
        here = grid_leads[e]
        changed = np.flatnonzero(here != ti)
        if changed.size == 0:
            lo, hi = _domain(model, name)
            found[name, towards_low] = ((lo if towards_low else hi), None)
        else:
            k = changed[0]
            open_ends[e] = [order[k - 1], order[k], int(here[k])]
    for _ in range(200):
        if not open_ends:
            break
        mids = {}
        for e, (inside, outside, _) in open_ends.items():
            mids[e] = math.sqrt(inside * outside) if ends[e][3] == "odds_ratio" else 0.5 * (inside + outside)
        lead = leaders([(ends[e][0], mid) for e, mid in mids.items()])
        for (e, mid), lead_mid in zip(mids.items(), lead, strict=True):
            state = open_ends[e]
            if lead_mid == ti:
                state[0] = mid
            else:
                state[1], state[2] = mid, int(lead_mid)
            inside, outside, rival = state
            if abs(outside - inside) <= 1e-10 * max(1.0, abs(inside)):
                found[ends[e][0], ends[e][1]] = (inside, causes[rival])
                del open_ends[e]
    for e, (inside, _, rival) in open_ends.items():  # 200 steps without reaching the tolerance
        found[ends[e][0], ends[e][1]] = (inside, causes[rival])

    rows = {}
    for name in names:
        lo, hi = _domain(model, name)
        (lower, below), (upper, above) = found[name, True], found[name, False]
        rows[name] = {
            "parameter": name,
            "value": spec.value(name),
            "domain_low": lo,
            "domain_high": hi,
            "lower": lower,
            "upper": upper,
            "cause_below": below,
            "cause_above": above,
            "method": "grid and bisection",
        }
    return rows


# --------------------------------------------------------------------------- uncertainty distributions

#: A range touching 0 or 1 is fitted as if it stopped this far from the bound (see :mod:`postfusion_bayes.ranges`).
BOUND_MARGIN = ranges.BOUND_MARGIN


def fit_distributions(model, parameters: Sequence[str] | None = None) -> pd.DataFrame:
    """Return the distribution each parameter is drawn from in :func:`monte_carlo` and :func:`sobol`.

    A hand-set probability gets a Beta whose 5% and 95% quantiles are its
    ``low`` and ``high`` (a bound at 0 or 1 is moved in by 1e-4); an odds
    ratio a log-normal with those quantiles; a parameter whose range is a
    single value stays fixed. This is the package's one reading of a range
    (:func:`postfusion_bayes.ranges.range_distribution`), the same that gives
    a number its prior strength when learning from cases. A number learned
    from cases (:meth:`Model.update_with_cases`) is drawn from what the update
    says of it instead (:func:`postfusion_bayes.learning.learned_distributions`:
    centred on the learned value, narrower the more cases informed it); its
    ``low`` and ``high`` here are that distribution's 5% and 95% quantiles.
    Entries of one distribution (onset, time window) are drawn independently
    and then divided by their sum, so each draw is a distribution again.

    Returns
    -------
    DataFrame
        Index ``parameter``; columns ``family`` ("beta", "lognormal",
        "fixed"), ``shape_1``, ``shape_2`` (alpha and beta, or mu and sigma
        of the log), ``low``, ``high``, ``mean``, ``basis`` ("hand-set range"
        or "learned from cases").
    """
    from .learning import learned_distributions

    names = _parameter_names(model, parameters)
    learned = learned_distributions(model.spec, network=model.network)
    hand_set = range_distributions(model.spec.parameters[name] for name in names if name not in learned)
    rows = []
    for name in names:
        p = model.spec.parameters[name]
        if name in learned:
            family, one, two = learned[name]
            if family == "beta":
                from scipy import stats

                low, high = stats.beta.ppf([0.05, 0.95], one, two)
                mean = one / (one + two)
            elif family == "lognormal":
                low, high = math.exp(one - RANGE_Z * two), math.exp(one + RANGE_Z * two)
                mean = math.exp(one + two**2 / 2)
            else:
                low = high = mean = one
            rows.append({"parameter": name, "family": family, "shape_1": one, "shape_2": two, "low": float(low), "high": float(high), "mean": float(mean), "basis": "learned from cases"})
            continue
        family, one, two = hand_set[name]
        if family == "beta":
            mean = one / (one + two)
        elif family == "lognormal":
            mean = math.exp(one + two**2 / 2)
        else:
            mean = one
        rows.append({"parameter": name, "family": family, "shape_1": one, "shape_2": two, "low": p.low, "high": p.high, "mean": mean, "basis": "hand-set range"})
    return pd.DataFrame(rows).set_index("parameter")


def _transform(model, fitted: pd.DataFrame, u: np.ndarray) -> dict[str, np.ndarray]:
    """Parameter values from uniforms u (n, n_params) through each fitted inverse CDF; groups renormalised."""
    return _renormalised(model, _inverse_cdf(fitted, u))


def _inverse_cdf(fitted: pd.DataFrame, u: np.ndarray) -> dict[str, np.ndarray]:
    """Parameter values from uniforms u (n, n_params) through each fitted inverse CDF (distributions not yet renormalised)."""
    from scipy import stats

    values: dict[str, np.ndarray] = {}
    for k, (name, family, one, two) in enumerate(zip(fitted.index, fitted["family"], fitted["shape_1"], fitted["shape_2"], strict=True)):
        if family == "beta":
            values[name] = stats.beta.ppf(u[:, k], one, two)
        elif family == "lognormal":
            values[name] = np.exp(one + two * stats.norm.ppf(u[:, k]))
        else:
            values[name] = np.full(u.shape[0], float(one))
    return values


def _draw(model, fitted: pd.DataFrame, rng: np.random.Generator, n: int, positions: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """``n`` draws of every fitted parameter, straight from numpy's samplers, column after column; groups renormalised.

    ``Generator.beta`` and ``Generator.lognormal`` draw from the fitted
    distributions directly (about 30 times faster than the inverse CDF of
    uniforms, which :func:`sobol` needs for its design). Each parameter has
    its own stream, seeded by one number drawn from ``rng`` and the
    parameter's position among those considered (``positions``, by default
    its row in ``fitted``): its draws do not depend on which other
    parameters are drawn, nor on their ranges, so that drawing only the
    parameters that can change a posterior (:func:`monte_carlo`) gives them
    the numbers that drawing them all (``distributed.monte_carlo``) gives.
    """
    key = int(rng.integers(2**63 - 1))
    values: dict[str, np.ndarray] = {}
    rows = zip(range(len(fitted)) if positions is None else positions, fitted.index, fitted["family"], fitted["shape_1"], fitted["shape_2"], strict=True)
    for position, name, family, one, two in rows:
        if family == "beta":
            values[name] = np.random.default_rng([key, int(position)]).beta(one, two, n)
        elif family == "lognormal":
            values[name] = np.random.default_rng([key, int(position)]).lognormal(one, two, n)
        else:
            values[name] = np.full(n, float(one))
    return _renormalised(model, values)


def _renormalised(model, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Make the drawn entries of every distribution a distribution again (in place; returned)."""
    groups = _groups(model)
    done: set[str] = set()
    for name in list(values):
        members = groups.get(name)
        if not members or name in done:
            continue
        done.update(members)
        drawn = [m for m in members if m in values]
        kept = [m for m in members if m not in values]
        drawn_total = np.sum([values[m] for m in drawn], axis=0)
        kept_total = sum(model.spec.value(m) for m in kept)
        if kept and kept_total > 0:
            # the drawn entries keep their values; the others share what is left, in proportion
            room = np.clip(1.0 - drawn_total, 0.0, None)
            for m in kept:
                values[m] = model.spec.value(m) * room / kept_total
            over = drawn_total > 1.0  # drawn entries alone exceed 1: scale them down to fill it
            for m in drawn:
                values[m] = np.where(over, values[m] / np.where(over, drawn_total, 1.0), values[m])
        else:
            for m in drawn:
                values[m] = values[m] / drawn_total
    return values


def _progress_bar() -> type:
    """Return tqdm's class for a progress bar: the notebook widget only when ipywidgets is importable.

    ``tqdm.auto`` in Jupyter without ipywidgets shows a red "TqdmWarning:
    IProgress not found" box; the plain bar then stays quiet in a notebook
    (its stderr is not a terminal) unless ``progress=True`` asks for it.
    """
    import importlib.util

    import tqdm
    import tqdm.auto

    return tqdm.auto.tqdm if importlib.util.find_spec("ipywidgets") is not None else tqdm.tqdm


def _batched_evaluate(model, evidence, values: Mapping[str, np.ndarray], progress: bool | None, chunk: int = 2048) -> np.ndarray:
    """evaluate() in chunks of parameter sets, with an optional tqdm progress bar."""
    values = _value_arrays(values)
    _check_values(model, values)  # once for every chunk; the evidence is encoded once too
    lam, index = _encode(model, evidence)
    tables = _needed_tables(model, lam, model.causes)
    n = len(next(iter(values.values())))
    starts: Iterable[int] = range(0, n, chunk)
    if progress is not False and n > chunk:
        tqdm = _progress_bar()
        starts = tqdm(starts, total=math.ceil(n / chunk), unit="chunk", disable=None if progress is None else not progress, desc="parameter sets")
    parts = [_posteriors(model, lam, index, tables({k: v[s : s + chunk] for k, v in values.items()}), model.causes, "raise")[0] for s in starts]
    return np.concatenate(parts, axis=0)


def monte_carlo(model, evidence, n: int = 2000, seed: int | np.random.Generator | None = None, *, parameters: Sequence[str] | None = None, progress: bool | None = None) -> pd.DataFrame:
    """Posterior uncertainty from the uncertainty of the priors.

    Every parameter (or those named) that can change these patients'
    posteriors is drawn ``n`` times from its fitted distribution
    (:func:`fit_distributions`) with numpy's ``Generator.beta`` and
    ``Generator.lognormal`` (``n`` draws each, every parameter from its own
    stream of the seed); all draws are evaluated in batches. The parameters
    that cannot change a posterior (the links and leak of a finding nobody
    observed, the prior of a context variable every patient has observed, a
    baseline for a time window no patient is in, ...) keep their values: the
    posteriors, and so every number returned, have the same distribution as
    with every parameter drawn, at a fraction of the cost; and since each
    parameter has its own stream, the numbers are those of drawing them all
    (as ``distributed.monte_carlo`` does), up to rounding.

    Parameters
    ----------
    model : Model
        The model whose parameters are drawn.
    evidence : mapping or DataFrame
        One patient, or one patient per row (values as in
        :mod:`postfusion_bayes.evidence`; soft evidence allowed in cells).
    n : int
        Number of draws (parameter sets).
    seed : int or numpy.random.Generator
        Reproducible with the same seed.
    parameters : sequence of str, optional
        The parameters to draw (default all); the others keep their values.
    progress : bool, optional
        Show a tqdm progress bar; by default only when interactive.

    Returns
    -------
    DataFrame
        Per cause (index ``cause``; with several patients a MultiIndex
        ``patient``, ``cause``): ``posterior`` at the current values, ``mean``,
        ``median``, ``q05``, ``q95`` and ``probability_first`` (share of draws
        in which the cause ranks first). ``attrs`` hold ``n``, ``parameters``
        (how many were considered) and ``drawn`` (how many of them could
        change a posterior, and were drawn).

    Raises
    ------
    ArgumentError
        ``n`` not a whole number >= 1, a negative ``seed``, ``parameters``
        empty or naming one twice, a DataFrame without rows
        (:class:`~postfusion_bayes.errors.ArgumentTypeError` for the wrong
        type: ``n=True``, ``n=2.5``, a single string for ``parameters``).
    SpecError
        An unknown parameter (with a close match).
    MemoryBudgetError
        Draws and posteriors that would not fit the engine's memory budget
        (refused before drawing).
    """
    n = check_count("n", n)
    rng = check_generator(seed)
    rows = _patients(evidence)
    names = _parameter_names(model, parameters)
    # the draws (n per parameter) and the posteriors (n per patient and cause) are held at once
    check_budget(_FLOAT * n * (len(names) + 2 * rows * len(model.causes)), model.network.memory_budget, f"monte_carlo with n={count_text(n)} draws of {len(names)} parameters")
    # only the parameters that can change a posterior of these patients are drawn (exact in distribution: the
    # posteriors, all that is returned, do not depend on the others' values); the others keep their values
    relevant = _relevant(model, _encode(model, evidence)[0], model.causes)
    chosen = [name for name in names if name in relevant]
    current, _ = evaluate(model, evidence, {})
    if not chosen:
        present = np.broadcast_to(current, (n, *current.shape[1:]))
    else:
        position = {name: i for i, name in enumerate(names)}  # each parameter's stream, as when all are drawn
        drawn = fit_distributions(model, chosen)
        present = _batched_evaluate(model, evidence, _draw(model, drawn, rng, n, [position[name] for name in drawn.index]), progress)  # (n, rows, causes)
    if isinstance(evidence, pd.DataFrame):
        out = cohort_summary(model, present, current[0], evidence.index)
    else:
        out = cohort_summary(model, present, current[0], pd.Index([0])).droplevel("patient").sort_values("mean", ascending=False)
    out.attrs.update(n=n, parameters=len(names), drawn=len(chosen))
    return out


def cohort_summary(model, present: np.ndarray, current: np.ndarray, patients: pd.Index) -> pd.DataFrame:
    """Summarise Monte Carlo posteriors per patient and cause (the table :func:`monte_carlo` returns).

    Parameters
    ----------
    model : Model
        Gives the causes.
    present : array, shape (n_draws, n_patients, n_causes)
        P(cause present | patient) under each draw.
    current : array, shape (n_patients, n_causes)
        The posteriors at the model's own values.
    patients : Index
        The patients' labels.

    Returns
    -------
    DataFrame
        MultiIndex (``patient``, ``cause``), patient after patient; columns
        ``posterior``, ``mean``, ``median``, ``q05``, ``q95``,
        ``probability_first``. Each patient's numbers depend only on that
        patient's column of ``present``, so a cohort summarised in parts
        gives the numbers of the whole.
    """
    causes = model.causes
    n_draws, n_rows, n_causes = present.shape
    first = np.argmax(present, axis=2)  # (draws, rows)
    counts = np.stack([(first == k).mean(axis=0) for k in range(n_causes)], axis=-1) if n_draws else np.full((n_rows, n_causes), np.nan)
    columns = {
        "posterior": current,
        "mean": present.mean(axis=0),
        "median": np.median(present, axis=0),
        "q05": np.quantile(present, 0.05, axis=0),
        "q95": np.quantile(present, 0.95, axis=0),
        "probability_first": counts,
    }
    index = pd.MultiIndex.from_product([patients, pd.Index(causes, name="cause")], names=["patient", "cause"])
    return pd.DataFrame({k: np.asarray(v, dtype=float).reshape(-1) for k, v in columns.items()}, index=index)


# --------------------------------------------------------------------------- Sobol


def sobol(
    model,
    evidence: Mapping[str, Any] | None,
    target: str,
    n: int = 512,
    seed: int | np.random.Generator | None = None,
    *,
    parameters: Sequence[str] | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Compute the first-order and total Sobol indices of P(target present | evidence) per parameter.

    SALib's Sobol (Saltelli) design and analyzer, over the same distributions
    as :func:`monte_carlo`: the design's uniforms on [0, 1] are mapped through
    each parameter's inverse CDF, which leaves the indices unchanged. The
    design is built with numpy from its two base matrices (the same numbers
    as ``SALib.sample.sobol.sample(problem, n, calc_second_order=False)``
    with the same seed), the inverse CDFs applied to the base matrices only.
    Costs ``n * (d + 2)`` exact evaluations for ``d`` parameters, in batches
    of ``n``; each cross-sampled batch rebuilds only the table its parameter
    enters, and one whose parameter cannot change the patient's posteriors
    (the table of a finding not observed, the prior of an observed context
    variable, ...: see :func:`monte_carlo`) is not evaluated (its outputs
    are the base sample's, and its indices 0).

    Needs SALib, the ``sensitivity`` extra: ``pip install "postfusion-bayes[sensitivity]"``.

    Parameters
    ----------
    model : Model
        The model whose parameters are varied.
    evidence : mapping
        One patient, as for :meth:`Model.diagnose` (values as in :mod:`postfusion_bayes.evidence`).
    target : str
        A cause.
    n : int
        Base sample size; a power of 2.
    seed : int or numpy.random.Generator
        Reproducible with the same seed.
    parameters : sequence of str, optional
        The parameters to vary (default all with a range); the others keep their values.
    progress : bool, optional
        Show a tqdm progress bar; by default only when interactive.

    Returns
    -------
    DataFrame
        Index ``parameter``; columns ``first_order``, ``first_order_conf``,
        ``total``, ``total_conf`` (95% bootstrap half-widths), sorted by total.

    Raises
    ------
    ModuleNotFoundError
        SALib is not installed (the message gives the pip command).
    ArgumentError
        ``n`` is not a power of 2 (:class:`~postfusion_bayes.errors.ArgumentTypeError`
        when it is not an integer at all), a negative ``seed``, ``parameters``
        empty or naming one twice.
    ParameterError
        None of the parameters has a range to vary.
    MemoryBudgetError
        A design that would not fit the engine's memory budget (refused before building it).
    """
    sobol_analyze = require("SALib.analyze.sobol", "sensitivity.sobol")
    n = check_count("n", n, minimum=2)
    if n & (n - 1):
        raise ArgumentError(f"n must be a power of 2 (Sobol sequences), got {n!r}")
    _one_patient(evidence)
    ti = _target_index(model, target)
    rng = check_generator(seed)
    names = _parameter_names(model, parameters)
    # the design's base matrices and their transforms (about 8 arrays of n x d) and the n (d + 2) outputs are held at once
    check_budget(_FLOAT * n * (9 * len(names) + 2), model.network.memory_budget, f"sobol with n={count_text(n)} base samples of {len(names)} parameters")
    fitted = fit_distributions(model, names)
    varying = fitted[fitted["family"] != "fixed"]
    if varying.empty:
        raise ParameterError("no parameter with a range to vary")
    names = list(varying.index)
    problem = {"num_vars": len(names), "names": names, "bounds": [[0.0, 1.0]] * len(names)}
    a, b = _saltelli_base(len(names), int(n), int(rng.integers(2**31 - 1)))
    a, b = np.clip(a, 1e-12, 1 - 1e-12), np.clip(b, 1e-12, 1 - 1e-12)
    chunk = 4096  # base rows per batch (their tables are held in memory at once)
    y = np.concatenate([_saltelli_outputs(model, evidence, varying, a[s : s + chunk], b[s : s + chunk], ti, progress) for s in range(0, int(n), chunk)])
    result = sobol_analyze.analyze(problem, y, calc_second_order=False, print_to_console=False, seed=int(rng.integers(2**31 - 1)))
    frame = pd.DataFrame(
        {"first_order": result["S1"], "first_order_conf": result["S1_conf"], "total": result["ST"], "total_conf": result["ST_conf"]},
        index=pd.Index(names, name="parameter"),
    ).sort_values("total", ascending=False)
    frame.attrs.update(target=target, n=n, evaluations=len(y))
    return frame


def _saltelli_base(d: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the base matrices A and B, shape (n, d), of SALib's Saltelli design: the halves of a scrambled Sobol sequence in 2 d dimensions."""
    from scipy.stats import qmc

    base = qmc.Sobol(d=2 * d, scramble=True, seed=seed).random(n)
    return base[:, :d], base[:, d:]


def _saltelli_design(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the Saltelli design (first and total order) of base matrices A and B, in SALib's row order.

    For each base row j: A_j, then AB_1j, ..., AB_dj (A_j with column i taken
    from B_j), then B_j; ``n * (d + 2)`` rows in all.
    """
    n, d = a.shape
    design = np.repeat(a[:, None, :], d + 2, axis=1)
    columns = np.arange(d)
    design[:, 1 + columns, columns] = b
    design[:, d + 1] = b
    return design.reshape(n * (d + 2), d)


def _saltelli_outputs(model, evidence, fitted: pd.DataFrame, a: np.ndarray, b: np.ndarray, ti: int, progress: bool | None) -> np.ndarray:
    """P(target | evidence) at every row of the Saltelli design of A and B, in SALib's row order.

    The parameters of AB_i are A's except for parameter i, drawn from B, and
    its distribution's other entries (renormalised): all in the one table
    that parameter i enters. So A's tables are built once and each AB_i
    batch rebuilds that one table; where no posterior depends on parameter i
    (:func:`_relevant`: an unobserved finding's table, an observed context
    variable's prior, ...), AB_i's outputs are A's.
    """
    n, d = a.shape
    names = list(fitted.index)
    spec = model.spec
    raw_a, raw_b = _inverse_cdf(fitted, a), _inverse_cdf(fitted, b)
    values_a, values_b = _renormalised(model, dict(raw_a)), _renormalised(model, dict(raw_b))
    lam, index = _encode(model, evidence)
    targets = model.causes
    barren, owners = _barren(model, lam, targets), table_parameters(spec)
    relevant = _relevant(model, lam, targets)
    groups = _groups(model)
    by_table: dict[str, list[str]] = {}
    for name in spec.parameters:
        by_table.setdefault(owners[name], []).append(name)

    fixed = _fixed_context(model, lam)
    tables_of = _needed_tables(model, lam, targets)

    tables_a = tables_of(values_a)
    y = np.empty((n, d + 2))
    y[:, 0] = _posteriors(model, lam, index, tables_a, targets, "raise")[0][:, 0, ti]
    y[:, d + 1] = _posteriors(model, lam, index, tables_of(values_b), targets, "raise")[0][:, 0, ti]
    steps: Iterable[int] = range(d)
    if progress is not False:
        tqdm = _progress_bar()
        steps = tqdm(steps, total=d, unit="parameter", disable=None if progress is None else not progress, desc="parameters")
    for i in steps:
        name = names[i]
        table = owners[name]
        if table in barren or table not in tables_a or name not in relevant:  # no posterior depends on it: AB_i's outputs are A's
            y[:, 1 + i] = y[:, 0]
            continue
        group = {m: (raw_b[m] if m == name else raw_a[m]) for m in groups.get(name, [name]) if m in raw_a}
        crossed = {**{m: values_a[m] for m in by_table[table] if m in values_a}, **_renormalised(model, group)}
        tables = {**tables_a, **changed_tables(spec, crossed, fixed=fixed)}
        y[:, 1 + i] = _posteriors(model, lam, index, tables, targets, "raise")[0][:, 0, ti]
    return y.reshape(-1)
