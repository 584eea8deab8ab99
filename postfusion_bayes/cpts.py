"""Expand a :class:`~postfusion_bayes.spec.ModelSpec` into conditional probability tables.

Three canonical models turn a few hand-set numbers into full tables:

Causes (odds-ratio model)
    ``odds(P(cause | t, x)) = odds(baseline[t]) * prod_k OR_k ** x_k`` for the
    time window ``t`` and boolean risk factors ``x``; written without division
    by zero as ``p * R / (1 - p + p * R)`` with ``R = prod_k OR_k ** x_k``.
Binary findings (leaky noisy-OR, links exclude the leak)
    ``P(absent | S) = (1 - leak) * prod_{i in S} (1 - link_i)``, where
    ``link_i`` is P(finding | only cause i, the leak switched off) and ``leak``
    P(finding | no modelled cause). So P(finding | only cause i) is
    ``1 - (1 - leak)(1 - link_i)``. Leak and links vary independently over [0, 1].
Onset (equal-weight mixture)
    ``P(onset | S)`` is the mean of the present causes' distributions, or the
    leak distribution when no modelled cause is present.

Every function here is pure numpy; :func:`build_tables` can evaluate a whole
batch of parameter sets at once (a leading axis), which sensitivity analysis uses.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np

from .spec import BOOLEAN_STATES, CAUSE_STATES, ModelSpec
from .engine.structured import Mixture, NoisyOr
from .engine.tables import NetworkTables

__all__ = ["build_tables", "noisy_or_table", "odds_ratio_table", "onset_table", "parent_order"]


def parent_order(spec: ModelSpec) -> dict[str, tuple[str, ...]]:
    """Parents of every variable, in the order of the table axes."""
    parents: dict[str, tuple[str, ...]] = {}
    for name in spec.names("context"):
        parents[name] = ()
    for cause, prior in spec.cause_priors.items():
        parents[cause] = (spec.time_variable, *prior.odds_ratios)
    for name, finding in spec.findings.items():
        parents[name] = tuple(finding.links)
    if spec.onset is not None:
        parents[spec.onset.variable] = tuple(c for c in spec.names("cause") if c in spec.onset.distributions)
    return parents


def odds_ratio_table(baseline: np.ndarray, odds_ratios: np.ndarray) -> np.ndarray:
    """P(present | time, risk factors) from baselines and odds ratios.

    Parameters
    ----------
    baseline : array, shape (..., n_time)
        Probability for the reference patient in each time window.
    odds_ratios : array, shape (..., n_factors)
        One odds ratio per boolean risk factor, applied when it is "yes".

    Returns
    -------
    array, shape (..., n_time, 2, ..., 2, 2)
        The table with axes (time, factor_1, ..., factor_k, cause state).

    Examples
    --------
    >>> t = odds_ratio_table(np.array([0.1, 0.5]), np.array([3.0]))
    >>> t[0, 1, 1].round(4)   # odds 1/9 * 3 = 1/3 -> p = 0.25
    np.float64(0.25)
    """
    baseline = np.asarray(baseline, dtype=float)
    odds_ratios = np.asarray(odds_ratios, dtype=float)
    k = odds_ratios.shape[-1]
    batch = np.broadcast_shapes(baseline.shape[:-1], odds_ratios.shape[:-1])
    baseline = np.broadcast_to(baseline, batch + baseline.shape[-1:])
    odds_ratios = np.broadcast_to(odds_ratios, batch + (k,))
    ratio = np.ones(batch + (2,) * k)
    for i in range(k):
        shape = batch + tuple(2 if j == i else 1 for j in range(k))
        factor = np.stack([np.ones(batch), odds_ratios[..., i]], axis=-1).reshape(shape)
        ratio = ratio * factor
    p = baseline.reshape(batch + (baseline.shape[-1],) + (1,) * k)
    r = ratio.reshape(batch + (1,) + (2,) * k)
    present = p * r / (1.0 - p + p * r)
    return np.stack([1.0 - present, present], axis=-1)


def noisy_or_table(leak: np.ndarray, links: np.ndarray) -> np.ndarray:
    """Leaky noisy-OR table; links exclude the leak (Diez's convention).

    Parameters
    ----------
    leak : array, shape (...)
        P(finding | no modelled cause).
    links : array, shape (..., n_parents)
        P(finding | only this parent present, leak switched off).

    Returns
    -------
    array, shape (..., 2, ..., 2, 2)
        Axes (parent_1, ..., parent_k, finding state ["no", "yes"]).

    Examples
    --------
    >>> t = noisy_or_table(np.array(0.1), np.array([0.5, 0.8]))
    >>> t[0, 0, 1].round(3), t[1, 0, 1].round(3), t[1, 1, 1].round(3)
    (np.float64(0.1), np.float64(0.55), np.float64(0.91))
    """
    leak = np.asarray(leak, dtype=float)
    links = np.asarray(links, dtype=float)
    k = links.shape[-1]
    batch = np.broadcast_shapes(leak.shape, links.shape[:-1])
    leak = np.broadcast_to(leak, batch)
    links = np.broadcast_to(links, batch + (k,))
    inhibit = 1.0 - links
    absent = np.broadcast_to((1.0 - leak).reshape(batch + (1,) * k), batch + (2,) * k).copy()
    for i in range(k):
        shape = batch + tuple(2 if j == i else 1 for j in range(k))
        factor = np.stack([np.ones(batch), inhibit[..., i]], axis=-1).reshape(shape)
        absent = absent * factor
    return np.stack([absent, 1.0 - absent], axis=-1)


def onset_table(distributions: np.ndarray, leak: np.ndarray) -> np.ndarray:
    """Equal-weight mixture of the present causes' onset distributions.

    Parameters
    ----------
    distributions : array, shape (..., n_parents, n_states)
    leak : array, shape (..., n_states)

    Returns
    -------
    array, shape (..., 2, ..., 2, n_states)

    Examples
    --------
    >>> d = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> onset_table(d, np.array([0.5, 0.5]))[1, 1]
    array([0.5, 0.5])
    """
    distributions = np.asarray(distributions, dtype=float)
    leak = np.asarray(leak, dtype=float)
    k, n = distributions.shape[-2:]
    batch = np.broadcast_shapes(distributions.shape[:-2], leak.shape[:-1])
    distributions = np.broadcast_to(distributions, batch + (k, n))
    leak = np.broadcast_to(leak, batch + (n,))
    out = np.empty(batch + (2,) * k + (n,))
    for config in itertools.product((0, 1), repeat=k):
        active = [i for i, c in enumerate(config) if c]
        index = (Ellipsis,) + config + (slice(None),)
        out[index] = distributions[..., active, :].mean(axis=-2) if active else leak
    return out


def build_tables(spec: ModelSpec, values: Mapping[str, np.ndarray] | None = None) -> NetworkTables:
    """Expand the spec into one table per variable.

    Parameters
    ----------
    spec : ModelSpec
    values : mapping of str to array, optional
        Parameter values overriding the spec's, each an array of shape
        ``(n_sets,)`` (all the same ``n_sets``): then every table that depends
        on an overridden parameter gets a leading axis of ``n_sets``.

    Returns
    -------
    NetworkTables
    """
    values = dict(values or {})
    n_sets = {np.shape(v)[0] for v in values.values()}
    if len(n_sets) > 1:
        raise ValueError(f"parameter arrays have different lengths {sorted(n_sets)}")
    unknown = sorted(set(values) - set(spec.parameters))
    if unknown:
        raise ValueError(f"unknown parameters {unknown}")

    def get(names: list[str]) -> np.ndarray:
        """Values of some parameters, shape (n,) or (n_sets, n) when any is overridden."""
        if any(n in values for n in names):
            (size,) = n_sets
            cols = [np.broadcast_to(np.asarray(values.get(n, spec.value(n)), dtype=float), (size,)) for n in names]
            return np.stack(cols, axis=-1) if cols else np.empty((size, 0))
        return np.array([spec.value(n) for n in names], dtype=float)

    parents = parent_order(spec)
    states: dict[str, tuple[str, ...]] = {}
    cpts: dict[str, np.ndarray] = {}
    for name in spec.names("context"):
        var = spec.variables[name]
        states[name] = var.states
        dist = spec.context_priors[name]
        if var.states == BOOLEAN_STATES and list(dist) == ["yes"]:
            p = get([dist["yes"]])[..., 0]
            cpts[name] = np.stack([1.0 - p, p], axis=-1)
        else:
            cpts[name] = get([dist[s] for s in var.states])
    time_states = spec.variables[spec.time_variable].states
    for cause, prior in spec.cause_priors.items():
        states[cause] = CAUSE_STATES
        cpts[cause] = odds_ratio_table(get([prior.baseline[t] for t in time_states]), get(list(prior.odds_ratios.values())))
    for name, finding in spec.findings.items():
        states[name] = BOOLEAN_STATES
        leak, links = get([finding.leak])[..., 0], get(list(finding.links.values()))
        batch = np.broadcast_shapes(leak.shape, links.shape[:-1])
        cpts[name] = NoisyOr(np.broadcast_to(leak, batch), np.broadcast_to(links, batch + links.shape[-1:]))
    if spec.onset is not None:
        onset = spec.onset
        var = spec.variables[onset.variable]
        states[onset.variable] = var.states
        owners = parents[onset.variable]
        dists = np.stack(np.broadcast_arrays(*[get([onset.distributions[c][s] for s in var.states]) for c in owners]), axis=-2) if owners else None
        leak = get([onset.distributions["leak"][s] for s in var.states])
        if dists is None:
            cpts[onset.variable] = leak
        else:
            batch = np.broadcast_shapes(dists.shape[:-2], leak.shape[:-1])
            cpts[onset.variable] = Mixture(np.broadcast_to(dists, batch + dists.shape[-2:]), np.broadcast_to(leak, batch + leak.shape[-1:]))
    return NetworkTables(states=states, parents=parents, cpts=cpts)
