"""Expand a :class:`~postfusion_bayes.spec.ModelSpec` into conditional probability tables.

Three canonical models turn a few hand-set numbers into full tables:

Causes (odds-ratio model)
    ``odds(P(cause | t, x)) = odds(baseline[t]) * prod_k OR_k[x_k]`` for the
    time window ``t`` and risk factors ``x``, where ``OR_k[s]`` is 1 at the
    factor's reference state ("no" for a boolean factor) and at any state
    without an odds ratio; written without division by zero as
    ``p * R / (1 - p + p * R)`` with ``R = prod_k OR_k[x_k]``. A categorical
    factor is one parent with all its states.
Binary findings (leaky noisy-OR, links exclude the leak)
    ``P(absent | S) = (1 - leak) * prod_{i in S} (1 - link_i)``, where
    ``link_i`` is P(finding | only cause i, the leak switched off) and ``leak``
    P(finding | no modelled cause). So P(finding | only cause i) is
    ``1 - (1 - leak)(1 - link_i)``. Leak and links vary independently over [0, 1].
Onset (equal-weight mixture)
    ``P(onset | S)`` is the mean of the present causes' distributions, or the
    leak distribution when no modelled cause is present.

Every function here is pure numpy; :func:`build_tables` can evaluate a whole
batch of parameter sets at once (a leading axis), and :func:`changed_tables`
builds only the tables that some parameters enter, which sensitivity analysis
uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .engine.structured import Mixture, NoisyOr
from .engine.tables import NetworkTables
from .errors import ParameterError
from .spec import BOOLEAN_STATES, CAUSE_STATES, ModelSpec

__all__ = [
    "build_tables",
    "changed_tables",
    "noisy_or_table",
    "odds_ratio_table",
    "odds_ratio_table_by_state",
    "onset_table",
    "parent_order",
    "table_parameters",
]


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
    """P(present | time, risk factors) from baselines and the odds ratios of boolean risk factors.

    The boolean case of :func:`odds_ratio_table_by_state`: factor ``k`` has
    the odds ratios ``[1, odds_ratios[..., k]]`` for its states ("no", "yes").

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
    odds_ratios = np.asarray(odds_ratios, dtype=float)
    by_state = [np.stack(np.broadcast_arrays(1.0, odds_ratios[..., i]), axis=-1) for i in range(odds_ratios.shape[-1])]
    batch = np.broadcast_shapes(np.shape(baseline)[:-1], odds_ratios.shape[:-1])
    return odds_ratio_table_by_state(np.broadcast_to(baseline, batch + np.shape(baseline)[-1:]), by_state)


def odds_ratio_table_by_state(baseline: np.ndarray, odds_ratios: Sequence[np.ndarray]) -> np.ndarray:
    """P(present | time, risk factors) from baselines and one odds ratio per state of each factor.

    ``odds(P) = odds(baseline[t]) * prod_k odds_ratios[k][x_k]``: a boolean
    factor has the odds ratios ``[1, OR]``, a categorical one with states
    ``s_1 ... s_m`` an odds ratio per state, 1 at its reference state.

    Parameters
    ----------
    baseline : array, shape (..., n_time)
        Probability for the reference patient in each time window.
    odds_ratios : sequence of arrays, shapes (..., k_i)
        Per factor, the odds ratio of each of its ``k_i`` states.

    Returns
    -------
    array, shape (..., n_time, k_1, ..., k_m, 2)
        The table with axes (time, factor_1, ..., factor_m, cause state).

    Examples
    --------
    A factor with three states (reference first) and a boolean one:

    >>> t = odds_ratio_table_by_state(np.array([0.1, 0.5]), [np.array([1.0, 9.0, 0.5]), np.array([1.0, 3.0])])
    >>> t.shape
    (2, 3, 2, 2)
    >>> t[0, 1, 0, 1].round(4), t[0, 1, 1, 1].round(4)   # odds 1/9 * 9 = 1 -> 0.5; times 3 -> 0.75
    (np.float64(0.5), np.float64(0.75))
    """
    baseline = np.asarray(baseline, dtype=float)
    factors = [np.asarray(o, dtype=float) for o in odds_ratios]
    batch = np.broadcast_shapes(baseline.shape[:-1], *(f.shape[:-1] for f in factors))
    cards = tuple(f.shape[-1] for f in factors)
    k = len(cards)
    n_time = baseline.shape[-1]
    # computed with the batch axes last (long contiguous rows); the factors multiply in their order, and a
    # multiplication by 1 (a reference state) changes no bit of the product
    ratio = np.ones(cards + batch)
    for i, f in enumerate(factors):
        per_state = _batch_last(np.broadcast_to(f, batch + (cards[i],)), batch)  # (k_i, *batch)
        ratio *= per_state.reshape((1,) * i + (cards[i],) + (1,) * (k - i - 1) + batch)
    p = _batch_last(np.broadcast_to(baseline, batch + (n_time,)), batch).reshape((n_time,) + (1,) * k + batch)
    present = p * ratio / (1.0 - p + p * ratio)  # (n_time, k_1, ..., k_m, *batch)
    return _two_states(present, batch, first=False)


def _batch_last(array: np.ndarray, batch: tuple[int, ...]) -> np.ndarray:
    """Return a view of ``array`` with its leading batch axes moved to the end."""
    nb = len(batch)
    return np.moveaxis(array, tuple(range(nb)), tuple(range(-nb, 0))) if nb else array


def _two_states(x: np.ndarray, batch: tuple[int, ...], *, first: bool) -> np.ndarray:
    """Return the table (*batch, ..., 2) with states (x, 1 - x) if ``first`` else (1 - x, x), from x with its batch axes last."""
    nb = len(batch)
    x = np.moveaxis(x, tuple(range(x.ndim - nb, x.ndim)), tuple(range(nb))) if nb else x
    out = np.empty(x.shape + (2,))
    out[..., 0 if first else 1] = x
    np.subtract(1.0, x, out=out[..., 1 if first else 0])
    return out


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
    # computed with the batch axes last (long contiguous rows); multiplying by 1 where a parent is absent is
    # left out, which changes no bit of the product
    inhibit = 1.0 - _batch_last(np.broadcast_to(links, batch + (k,)), batch)  # (k, *batch)
    absent = np.empty((2,) * k + batch)
    absent[...] = 1.0 - np.broadcast_to(leak, batch)
    for i in range(k):
        absent[(slice(None),) * i + (1,)] *= inhibit[i]
    return _two_states(absent, batch, first=True)


def onset_table(distributions: np.ndarray, leak: np.ndarray) -> np.ndarray:
    """Equal-weight mixture of the present causes' onset distributions.

    Parameters
    ----------
    distributions : array, shape (..., n_parents, n_states)
        The onset distribution of each parent cause.
    leak : array, shape (..., n_states)
        The onset distribution when no modelled cause is present.

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
    # one array pass per parent instead of one per configuration: add each present cause's distribution
    # into the half of the table where it is present, in parent order (the order, and so the rounding,
    # of the mean over the present causes), then divide by how many are present; the batch axes are
    # moved last while doing so, so that every addition runs over long contiguous rows
    nb = len(batch)
    to_end = (tuple(range(nb)), tuple(range(-nb, 0)))
    d = np.moveaxis(distributions, *to_end)  # (k, n, *batch)
    total = np.zeros((2,) * k + (n,) + batch)
    counts = np.zeros((2,) * k)
    for i in range(k):
        total[(slice(None),) * i + (1,)] += d[i]
        counts[(slice(None),) * i + (1,)] += 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        total /= counts.reshape(counts.shape + (1,) * (1 + nb))
    total[(0,) * k] = np.moveaxis(leak, *to_end)  # no modelled cause present: the leak distribution
    return np.moveaxis(total, tuple(range(k + 1, k + 1 + nb)), tuple(range(nb)))  # a view: batch axes first again


def table_parameters(spec: ModelSpec) -> dict[str, str]:
    """Return the variable whose table each parameter enters (every parameter enters exactly one table).

    Examples
    --------
    >>> from postfusion_bayes.spec import load_spec
    >>> owners = table_parameters(load_spec())
    >>> owners["findings.radicular_pain.leak"], owners["causes.pseudarthrosis.odds_ratios.smoker"]
    ('radicular_pain', 'pseudarthrosis')
    """
    owners: dict[str, str] = {}
    for name in spec.names("context"):
        for parameter in spec.context_priors[name].values():
            owners[parameter] = name
    for cause, prior in spec.cause_priors.items():
        for parameter in (*prior.baseline.values(), *prior.odds_ratio_names):
            owners[parameter] = cause
    for name, finding in spec.findings.items():
        for parameter in (finding.leak, *finding.links.values()):
            owners[parameter] = name
    if spec.onset is not None:
        for dist in spec.onset.distributions.values():
            for parameter in dist.values():
                owners[parameter] = spec.onset.variable
    return owners


def _check_values(spec: ModelSpec, values: Mapping[str, np.ndarray]) -> int | None:
    """Return the common number of parameter sets of ``values`` (None when there are none)."""
    n_sets = {np.shape(v)[0] for v in values.values()}
    if len(n_sets) > 1:
        raise ParameterError(f"parameter arrays have different lengths {sorted(n_sets)}")
    unknown = sorted(set(values) - set(spec.parameters))
    if unknown:
        raise ParameterError(f"unknown parameters {unknown}")
    return n_sets.pop() if n_sets else None


def _variable_table(
    spec: ModelSpec, name: str, parents: tuple[str, ...], values: Mapping[str, np.ndarray], n_sets: int | None, fixed: Mapping[str, int] | None = None
) -> np.ndarray | NoisyOr | Mixture:
    """Build the table of one variable, with a leading axis of ``n_sets`` when any of its parameters is in ``values``.

    Findings are kept as their noisy-OR numbers and onset as its mixture
    (:mod:`postfusion_bayes.engine.structured`): never as ``2**k``-column tables.
    A cause's table is computed only at the ``fixed`` states of its parents
    and broadcast along their axes (see :func:`changed_tables`).
    """

    def get(names: list[str]) -> np.ndarray:
        """Values of some parameters, shape (n,) or (n_sets, n) when any is overridden."""
        if n_sets is not None and any(n in values for n in names):  # n_sets is None only when values is empty
            cols = [np.broadcast_to(np.asarray(values.get(n, spec.value(n)), dtype=float), (n_sets,)) for n in names]
            return np.stack(cols, axis=-1) if cols else np.empty((n_sets, 0))
        return np.array([spec.value(n) for n in names], dtype=float)

    role = spec.variables[name].role
    if role == "context":
        var = spec.variables[name]
        dist = spec.context_priors[name]
        if var.states == BOOLEAN_STATES and list(dist) == ["yes"]:
            p = get([dist["yes"]])[..., 0]
            return np.stack([1.0 - p, p], axis=-1)
        return get([dist[s] for s in var.states])
    if name in spec.cause_priors:
        prior = spec.cause_priors[name]
        fixed = fixed or {}

        def at_fixed(array: np.ndarray, variable: str) -> np.ndarray:
            """Cut the last axis (the states of ``variable``) to its fixed state, when it has one."""
            return array[..., fixed[variable] : fixed[variable] + 1] if variable in fixed else array

        time_states = spec.variables[spec.time_variable].states
        by_state = []
        cards = [len(time_states)]
        for factor, names in prior.odds_ratios.items():
            states = spec.variables[factor].states
            given = get(list(names.values()))  # (n,) or (n_sets, n)
            full = np.ones(given.shape[:-1] + (len(states),))
            full[..., [states.index(s) for s in names]] = given
            by_state.append(at_fixed(full, factor))
            cards.append(len(states))
        table = odds_ratio_table_by_state(at_fixed(get([prior.baseline[t] for t in time_states]), spec.time_variable), by_state)
        if any(p in fixed for p in parents):  # the same numbers at every state of a fixed parent: a read-only view
            table = np.broadcast_to(table, table.shape[: table.ndim - len(cards) - 1] + (*cards, 2))
        return table
    if name in spec.findings:
        finding = spec.findings[name]
        leak, links = get([finding.leak])[..., 0], get(list(finding.links.values()))
        batch = np.broadcast_shapes(leak.shape, links.shape[:-1])
        return NoisyOr(np.broadcast_to(leak, batch), np.broadcast_to(links, batch + links.shape[-1:]))
    onset = spec.onset
    assert onset is not None
    states = spec.variables[onset.variable].states
    leak = get([onset.distributions["leak"][s] for s in states])
    if not parents:
        return leak
    dists = np.stack(np.broadcast_arrays(*[get([onset.distributions[c][s] for s in states]) for c in parents]), axis=-2)
    batch = np.broadcast_shapes(dists.shape[:-2], leak.shape[:-1])
    return Mixture(np.broadcast_to(dists, batch + dists.shape[-2:]), np.broadcast_to(leak, batch + leak.shape[-1:]))


def _states(spec: ModelSpec) -> dict[str, tuple[str, ...]]:
    states = {name: spec.variables[name].states for name in spec.names("context")}
    states.update(dict.fromkeys(spec.cause_priors, CAUSE_STATES))
    states.update(dict.fromkeys(spec.findings, BOOLEAN_STATES))
    if spec.onset is not None:
        states[spec.onset.variable] = spec.variables[spec.onset.variable].states
    return states


def build_tables(spec: ModelSpec, values: Mapping[str, np.ndarray] | None = None) -> NetworkTables:
    """Expand the spec into one table per variable.

    Parameters
    ----------
    spec : ModelSpec
        The model specification.
    values : mapping of str to array, optional
        Parameter values overriding the spec's, each an array of shape
        ``(n_sets,)`` (all the same ``n_sets``): then every table that depends
        on an overridden parameter gets a leading axis of ``n_sets``.

    Returns
    -------
    NetworkTables

    See Also
    --------
    changed_tables : only the tables that ``values`` change (what a batched query needs).
    """
    values = dict(values or {})
    n_sets = _check_values(spec, values)
    parents = parent_order(spec)
    states = _states(spec)
    cpts = {name: _variable_table(spec, name, parents[name], values, n_sets) for name in states}
    # NetworkTables.cpts is annotated with what reading it gives (dense arrays); as its docstring says, it takes NoisyOr and Mixture too
    return NetworkTables(states=states, parents=parents, cpts=cpts)  # type: ignore[arg-type]


def changed_tables(spec: ModelSpec, values: Mapping[str, np.ndarray], *, fixed: Mapping[str, int] | None = None) -> dict[str, np.ndarray | NoisyOr | Mixture]:
    """Only the tables that depend on the parameters in ``values``, each with a leading axis of parameter sets.

    The same arrays, bit for bit, as the batched tables of
    ``build_tables(spec, values)``, without building (and copying) the tables
    of the other variables: a compiled network keeps its own for those
    (:meth:`~postfusion_bayes.engine.CompiledNetwork.query` takes
    replacement tables for some variables only).

    Parameters
    ----------
    spec : ModelSpec
        The model specification.
    values : mapping of str to array, shape (n_sets,)
        Parameter values overriding the spec's (all the same ``n_sets``).
    fixed : mapping of str to int, optional
        Context variables that the evidence of a query fixes, with the index
        of their state. A cause's table is then computed only at those states
        of its parents (the same bits as the full table there) and is a
        read-only view that repeats them at every other state of those
        parents: numbers a query whose every row has these states multiplies
        by 0 or never reads. For that query only; with many parameter sets
        it saves most of the work of the causes' tables.

    Returns
    -------
    dict of str to array or structured table
        Dense tables of shape ``(n_sets, *parent_cards, card)``, or batched
        noisy-OR and mixture numbers; empty when ``values`` is empty.

    Examples
    --------
    >>> from postfusion_bayes.spec import load_spec
    >>> spec = load_spec()
    >>> tables = changed_tables(spec, {"findings.back_pain.leak": np.array([0.1, 0.2, 0.3])})
    >>> list(tables), tables["back_pain"].batch_shape
    (['back_pain'], (3,))
    """
    values = dict(values)
    n_sets = _check_values(spec, values)
    if n_sets is None:
        return {}
    owners = table_parameters(spec)
    variables = {owners[name] for name in values}
    parents = parent_order(spec)
    return {name: _variable_table(spec, name, parents[name], values, n_sets, fixed) for name in _states(spec) if name in variables}
