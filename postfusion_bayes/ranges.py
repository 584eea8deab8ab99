"""From a plausible range to a distribution: the one convention of the package.

Every hand-set number has a plausible range ``[low, high]``, read as a
central 90% interval: the number is taken to follow the distribution whose 5%
and 95% quantiles are ``low`` and ``high``,

* a probability: the Beta(a, b) with those quantiles (a bound at 0 or 1 is
  moved in by :data:`BOUND_MARGIN`, since a Beta quantile is never 0 or 1);
* an odds ratio: the log-normal with those quantiles,
  ``mu = (log low + log high) / 2`` and ``sigma = (log high - log low) / (2 z)``
  with ``z`` the 95% quantile of the standard normal (:data:`RANGE_Z`);
* a number whose range is a single value: fixed.

Sensitivity analysis draws the numbers from it
(:func:`postfusion_bayes.sensitivity.fit_distributions`) and learning from
cases weighs the hand-set value by it (:mod:`postfusion_bayes.learning`: a
Beta's ``a + b`` is the prior's worth in cases). :func:`range_distribution`
is the only place where a range becomes a distribution.

The Beta is found without scipy (a continued fraction for the incomplete beta
function and Newton's method), so that reading ``Model.parameters`` does not
import scipy; scipy's least squares is the fallback, imported only if Newton
fails.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .errors import SpecError
from .spec import Parameter

__all__ = ["BOUND_MARGIN", "RANGE_Z", "beta_cdf", "fit_beta", "range_distribution", "range_distributions"]

#: The 95% quantile of the standard normal: a range's half-width is this many standard deviations (on the log scale for an odds ratio).
RANGE_Z = 1.6448536269514722
#: A range touching 0 or 1 is fitted as if it stopped this far from the bound (a Beta quantile cannot be 0 or 1).
BOUND_MARGIN = 1e-4
#: Quantile levels that the range ends are fitted to.
LEVELS = (0.05, 0.95)

_lgamma = np.frompyfunc(math.lgamma, 1, 1)
_TINY = 1e-300


def range_distribution(parameter: Parameter) -> tuple[str, float, float]:
    """Return the distribution a hand-set number's range stands for.

    Parameters
    ----------
    parameter : Parameter
        A parameter of a spec (``kind``, ``value``, ``low``, ``high``, ``file`` and ``name`` are read).

    Returns
    -------
    tuple of (str, float, float)
        ``("beta", a, b)``, ``("lognormal", mu, sigma)`` (of the log) or
        ``("fixed", value, 0.0)``.

    Raises
    ------
    SpecError
        No Beta has the range as its 5% and 95% quantiles (not seen for any
        range inside (0, 1)).

    Examples
    --------
    >>> from postfusion_bayes.spec import load_spec
    >>> p = load_spec().parameters["context.smoker.prevalence"]   # 0.20 in [0.10, 0.35]
    >>> family, a, b = range_distribution(p)
    >>> family, round(a, 2), round(b, 2)
    ('beta', 5.89, 21.77)
    """
    return range_distributions([parameter])[parameter.name]


def range_distributions(parameters: Iterable[Parameter]) -> dict[str, tuple[str, float, float]]:
    """Return :func:`range_distribution` of several parameters (their Betas fitted together), by name.

    Parameters
    ----------
    parameters : iterable of Parameter
        Parameters of a spec.

    Returns
    -------
    dict of str to (str, float, float)
        By parameter name, as :func:`range_distribution` gives it.

    Raises
    ------
    SpecError
        No Beta has a range as its 5% and 95% quantiles (naming every such parameter).
    """
    parameters = list(parameters)
    ends: dict[str, tuple[float, float]] = {}
    for p in parameters:
        if p.high - p.low > 1e-12 and p.kind != "odds_ratio":
            low = min(max(p.low, BOUND_MARGIN), 1 - 2 * BOUND_MARGIN)
            ends[p.name] = (low, max(min(p.high, 1 - BOUND_MARGIN), low + BOUND_MARGIN))
    missing = sorted({e for e in ends.values() if e not in _BETAS})
    if missing:
        lows, highs = np.array(missing).T
        fitted_a, fitted_b = _newton(lows, highs)
        for (low, high), ai, bi in zip(missing, fitted_a, fitted_b, strict=True):
            _BETAS[low, high] = (float(ai), float(bi)) if math.isfinite(ai) else _least_squares(low, high, _moment_start(low, high))
    out: dict[str, tuple[str, float, float]] = {}
    problems = []
    for p in parameters:
        if p.high - p.low <= 1e-12:
            out[p.name] = ("fixed", float(p.value), 0.0)
        elif p.kind == "odds_ratio":
            mu = 0.5 * (math.log(p.low) + math.log(p.high))
            sigma = (math.log(p.high) - math.log(p.low)) / (2 * RANGE_Z)
            out[p.name] = ("lognormal", mu, sigma)
        else:
            a, b = _BETAS[ends[p.name]]
            if not math.isfinite(a):
                problems.append(f"{p.file}: {p.name}: no Beta has 5% and 95% quantiles {ends[p.name][0]:g} and {ends[p.name][1]:g}")
            out[p.name] = ("beta", a, b)
    if problems:
        raise SpecError(problems)
    return out


#: Fitted Betas by (low, high): each range is fitted once per process.
_BETAS: dict[tuple[float, float], tuple[float, float]] = {}


def fit_beta(low: float, high: float) -> tuple[float, float]:
    """Return alpha and beta of the Beta whose 5% and 95% quantiles are ``low`` and ``high``.

    Parameters
    ----------
    low, high : float
        ``0 < low < high < 1``.

    Returns
    -------
    tuple of float
        ``(a, b)``; NaN when no Beta is found.

    Examples
    --------
    >>> a, b = fit_beta(0.1, 0.35)
    >>> [round(float(q), 9) for q in beta_cdf(np.array([0.1, 0.35]), a, b)]
    [0.05, 0.95]
    """
    key = (float(low), float(high))
    if key not in _BETAS:
        a, b = _newton(np.array([key[0]]), np.array([key[1]]))
        _BETAS[key] = (float(a[0]), float(b[0])) if math.isfinite(a[0]) else _least_squares(*key, _moment_start(*key))
    return _BETAS[key]


def beta_cdf(x: np.ndarray, a, b) -> np.ndarray:
    """Return the Beta(a, b) distribution function at ``x``, elementwise (the regularized incomplete beta function).

    A continued fraction (Lentz's method) on the side of ``x`` where it
    converges fast, to about 1e-15; ``x`` in (0, 1).

    Examples
    --------
    >>> float(beta_cdf(np.array(0.5), 2.0, 2.0))
    0.5
    """
    x, a, b = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    swap = x > (a + 1.0) / (a + b + 2.0)
    p, q, y = np.where(swap, b, a), np.where(swap, a, b), np.where(swap, 1.0 - x, x)
    log_beta = np.asarray(_lgamma(p) + _lgamma(q) - _lgamma(p + q), dtype=float)
    front = np.exp(p * np.log(y) + q * np.log1p(-y) - log_beta) / p
    value = front * _continued_fraction(p, q, y)
    return np.where(swap, 1.0 - value, value)


def _continued_fraction(a: np.ndarray, b: np.ndarray, x: np.ndarray, max_terms: int = 100_000) -> np.ndarray:
    """Return the continued fraction of the incomplete beta function (Numerical Recipes' betacf), elementwise."""

    def guard(v):
        return np.where(np.abs(v) < _TINY, _TINY, v)

    c = np.ones_like(x)
    d = 1.0 / guard(1.0 - (a + b) * x / (a + 1.0))
    h = d.copy()
    done = np.zeros(x.shape, dtype=bool)
    for m in range(1, max_terms + 1):
        m2 = 2 * m
        term = m * (b - m) * x / ((a - 1.0 + m2) * (a + m2))
        d = 1.0 / guard(1.0 + term * d)
        c = guard(1.0 + term / c)
        h = np.where(done, h, h * d * c)
        term = -(a + m) * (a + b + m) * x / ((a + m2) * (a + 1.0 + m2))
        d = 1.0 / guard(1.0 + term * d)
        c = guard(1.0 + term / c)
        delta = d * c
        h = np.where(done, h, h * delta)
        done |= np.abs(delta - 1.0) <= 1e-16
        if done.all():
            break
    return h


def _moment_start(low, high):
    """Log a and log b of the Beta with the range's midpoint as mean and its half-width as RANGE_Z standard deviations."""
    mean = 0.5 * (low + high)
    sd = (high - low) / (2 * RANGE_Z)
    common = np.maximum(mean * (1 - mean) / sd**2 - 1, 1e-3)
    return np.log(mean * common), np.log((1 - mean) * common)


def _newton(lows: np.ndarray, highs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Newton's method on (log a, log b) for F(low) = 0.05 and F(high) = 0.95, for many ranges at once.

    Returns a and b, NaN for a range where it did not converge.
    """
    x = np.stack([lows, highs], axis=-1)  # (P, 2)
    target = np.array(LEVELS)
    theta = np.stack(_moment_start(lows, highs), axis=-1)  # (P, 2)
    done = np.zeros(len(lows), dtype=bool)
    h = 1e-6
    with np.errstate(all="ignore"):
        for _ in range(100):
            # F at both ends for theta and for theta moved along each axis (the Jacobian by forward differences), in one call
            thetas = np.stack([theta, theta + [h, 0.0], theta + [0.0, h]])  # (3, P, 2)
            f = beta_cdf(x[None], np.exp(thetas[..., :1]), np.exp(thetas[..., 1:])) - target
            residual = f[0]
            done |= np.max(np.abs(residual), axis=-1) <= 1e-13
            if done.all():
                break
            j = np.stack([(f[1] - f[0]) / h, (f[2] - f[0]) / h], axis=-1)  # (P, 2 equations, 2 unknowns)
            det = j[:, 0, 0] * j[:, 1, 1] - j[:, 0, 1] * j[:, 1, 0]
            step = np.stack([j[:, 1, 1] * residual[:, 0] - j[:, 0, 1] * residual[:, 1], j[:, 0, 0] * residual[:, 1] - j[:, 1, 0] * residual[:, 0]], axis=-1) / -det[:, None]
            step = np.clip(np.nan_to_num(step, nan=0.0), -1.0, 1.0)  # at most a factor e per iteration
            theta = np.where(done[:, None], theta, theta + step)
        a, b = np.exp(theta[:, 0]), np.exp(theta[:, 1])
        error = np.max(np.abs(beta_cdf(x, a[:, None], b[:, None]) - target), axis=-1)
    ok = error <= 1e-9  # also false where anything went NaN
    return np.where(ok, a, np.nan), np.where(ok, b, np.nan)


def _least_squares(low: float, high: float, start: tuple[float, float]) -> tuple[float, float]:
    """Fit the Beta by scipy's least squares on the log quantiles, the fallback (NaN when that fails too)."""
    from scipy import optimize, stats

    def residual(log_ab):
        a, b = np.exp(log_ab)
        q = stats.beta.ppf(LEVELS, a, b)
        return np.log(np.maximum(q, 1e-300)) - np.log([low, high])

    mean = 0.5 * (low + high)
    for guess in (np.array(start, dtype=float), np.log([1.0, (1 - mean) / mean]), np.log([0.5, 0.5 * (1 - mean) / mean])):
        solution = optimize.least_squares(residual, guess, xtol=1e-15, ftol=1e-15, gtol=1e-15)
        if np.max(np.abs(residual(solution.x))) <= 1e-6:
            a, b = np.exp(solution.x)
            return float(a), float(b)
    return math.nan, math.nan
