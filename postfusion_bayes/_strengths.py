"""The prior strength of every parameter: its worth in cases in an update from cases.

The one home of the rule that :mod:`postfusion_bayes.learning` documents ("The
prior of each parameter"): a probability's range stands for the Beta whose 5%
and 95% quantiles are its ends (:func:`postfusion_bayes.ranges.range_distributions`,
the package's one reading of a range) and its strength is that Beta's
``a + b``; a distribution takes the smallest strength of its entries; an odds
ratio's range stands for a log-normal, whose precision ``1 / sigma**2`` on the
log scale, divided by the information one case carries on the log odds ratio,
is its strength in cases.

The EM (:func:`postfusion_bayes.learning.update_spec`) and
:attr:`postfusion_bayes.Model.parameters` both call this module, which imports
neither scipy (the ranges' Betas are fitted without it) nor the EM: reading the
table of parameters stays light. ``learning.prior_strengths`` is
:func:`prior_strengths`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from .cpts import build_tables
from .engine import CompiledNetwork
from .engine.arguments import check_real
from .engine.encoding import EncodedEvidence
from .errors import ArgumentError, SpecError, suggest
from .ranges import range_distributions
from .spec import BOOLEAN_STATES, ModelSpec

__all__ = ["prior_strengths"]


@dataclass(frozen=True)
class _Families:
    """The parameter names of a spec, grouped as the update treats them."""

    context: tuple[tuple[str, tuple[str, ...]], ...]  # (variable, parameter names per state; "" for "no" of a boolean)
    distributions: tuple[tuple[str, ...], ...]  # parameter names of each distribution (Dirichlet groups)
    # cause, baseline names, factors, OR names, and per OR name its column: (index of its factor, index of its state)
    causes: tuple[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[tuple[int, int], ...]], ...]
    noisy_or: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...]  # finding, leak name, link causes, link names
    onset_owners: tuple[str, ...]  # causes with an onset distribution (leak last, as "leak")


def _families(spec: ModelSpec) -> _Families:
    context: list[tuple[str, tuple[str, ...]]] = []
    groups: list[tuple[str, ...]] = []
    for var, dist in spec.context_priors.items():
        states = spec.variables[var].states
        if states == BOOLEAN_STATES and list(dist) == ["yes"]:
            context.append((var, ("", dist["yes"])))
        else:
            names = tuple(dist[s] for s in states)
            context.append((var, names))
            groups.append(names)
    times = spec.variables[spec.time_variable].states
    causes = tuple(
        (
            c,
            tuple(p.baseline[t] for t in times),
            tuple(p.odds_ratios),
            p.odds_ratio_names,
            tuple((k, spec.variables[f].states.index(s)) for k, (f, by_state) in enumerate(p.odds_ratios.items()) for s in by_state),
        )
        for c, p in spec.cause_priors.items()
    )
    noisy = tuple((f, m.leak, tuple(m.links), tuple(m.links.values())) for f, m in spec.findings.items())
    owners: tuple[str, ...] = ()
    if spec.onset is not None:
        states = spec.variables[spec.onset.variable].states
        owners = tuple(c for c in spec.names("cause") if c in spec.onset.distributions) + ("leak",)
        groups += [tuple(spec.onset.distributions[o][s] for s in states) for o in owners]
    return _Families(tuple(context), tuple(groups), causes, noisy, owners)


def _information_per_case(spec: ModelSpec, network: CompiledNetwork) -> dict[str, float]:
    """Compute the information on log OR that one case carries, per odds-ratio parameter.

    ``p (1 - p) f_s f_r / (f_s + f_r)`` for the odds ratio of state ``s`` of a
    factor against its reference state ``r`` (``f`` their prior probabilities,
    ``p`` the cause's): one over the variance ``(1/f_s + 1/f_r) / (p (1 - p))``
    of a log odds ratio between two groups of a 2x2 table per case. For a
    boolean factor (``f_s = f``, ``f_r = 1 - f``) it is ``f (1 - f) p (1 - p)``.
    """
    names = network.layers["middle"]
    result = network.query(EncodedEvidence.from_codes(network.states, {}, 1), names)
    p_cause = {c: float(result.marginals[c][0, 0, 1]) for c in names}
    out = {}
    for cause, prior in spec.cause_priors.items():
        p = float(p_cause[cause])
        for factor, by_state in prior.odds_ratios.items():
            dist = spec.context_priors[factor]
            if list(dist) == ["yes"]:  # boolean: f (1 - f), f the prevalence
                f = spec.value(dist["yes"])
                out[by_state["yes"]] = f * (1 - f) * p * (1 - p)
                continue
            f_ref = spec.value(dist[spec.variables[factor].reference])
            for state, name in by_state.items():
                f = spec.value(dist[state])
                out[name] = f * f_ref / (f + f_ref) * p * (1 - p) if f + f_ref > 0 else 0.0
    return out


def _default_strengths(spec: ModelSpec, info: Mapping[str, float]) -> dict[str, float]:
    """Return the strength of every parameter by the rule: from the distribution its range stands for."""
    fitted = range_distributions(p for p in spec.parameters.values() if p.strength is None)
    out = {}
    for name, p in spec.parameters.items():
        if p.strength is not None:  # a learned model: its recorded strength plus its cases
            out[name] = p.strength + p.cases
            continue
        family, first, second = fitted[name]
        if family == "fixed":
            out[name] = math.inf
        elif family == "lognormal":  # the precision 1 / sigma**2 of log OR, in cases
            out[name] = math.inf if info[name] <= 0 else 1.0 / (second**2 * info[name])
        else:  # a + b of the Beta: its worth in cases
            out[name] = first + second
    return out


def prior_strengths(spec: ModelSpec, strength: float | Mapping[str, float] | None = None, *, network: CompiledNetwork | None = None) -> pd.Series:
    """Return the prior strength (equivalent number of cases) of every parameter in an update.

    Parameters
    ----------
    spec : ModelSpec
        The model specification; a learned one counts its recorded strength plus cases.
    strength : float or mapping, optional
        The override an update would get (see :mod:`postfusion_bayes.learning`).
    network : CompiledNetwork, optional
        The spec's compiled network, when at hand (saves compiling it).

    Returns
    -------
    Series
        Index ``parameter``; entries of one distribution share its Dirichlet's strength.

    Examples
    --------
    >>> from postfusion_bayes.spec import load_spec
    >>> s = prior_strengths(load_spec())
    >>> round(float(s["context.smoker.prevalence"]), 1)   # 0.20 with range [0.10, 0.35]: a + b of Beta(5.89, 21.77)
    27.7
    """
    network = network if network is not None else CompiledNetwork(build_tables(spec))
    resolved = _resolve_strengths(spec, strength, _families(spec), _information_per_case(spec, network))
    return pd.Series(resolved, name="strength").rename_axis("parameter")


def _resolve_strengths(spec: ModelSpec, strength: float | Mapping[str, float] | None, families: _Families, info: Mapping[str, float]) -> dict[str, float]:
    """Strength per parameter: the override where given, else the rule; one strength per distribution."""
    defaults = _default_strengths(spec, info)
    given: dict[str, float] = {}
    group_keys = {name.rsplit(".", 1)[0]: group for group in families.distributions for name in group[:1]}
    if strength is None:
        pass
    elif isinstance(strength, Mapping):
        problems = []
        for key, value in strength.items():
            targets = group_keys.get(key) or ((key,) if key in spec.parameters else None)
            if targets is None:
                problems.append(f"strength: parameter {key!r} does not exist{suggest(key, list(spec.parameters) + list(group_keys))}; see model.parameters")
                continue
            problem = _strength_problem(f"strength of {key!r}", value)
            if problem:
                problems.append(problem)
                continue
            for t in targets:
                if t in given and given[t] != float(value):
                    problems.append(f"strength: {t!r} is given {given[t]:g} and {float(value):g}")
                given[t] = float(value)
        for group in families.distributions:
            values = {given[n] for n in group if n in given}
            if len(values) > 1:
                problems.append(f"strength: the entries of the distribution {group[0].rsplit('.', 1)[0]!r} share one Dirichlet strength; got {sorted(values)}")
            elif values:
                given.update(dict.fromkeys(group, values.pop()))
        if problems:
            raise SpecError(problems)
    else:
        problem = _strength_problem("strength", strength)
        if problem:
            raise SpecError([problem])
        given = dict.fromkeys(spec.parameters, float(strength))
    out = {}
    for name in spec.parameters:
        out[name] = given.get(name, defaults[name])
    for group in families.distributions:
        if not any(n in given for n in group):
            out.update(dict.fromkeys(group, min(defaults[n] for n in group)))
    return out


def _strength_problem(where: str, value: object) -> str:
    """Return what is wrong with a strength (a number of cases: a finite number >= 0), or an empty string."""
    try:
        check_real(where, value)
    except ArgumentError as exc:
        return f"{exc}; a strength is a number of cases, or (for the whole argument) a mapping of parameter name to one"
    return ""
