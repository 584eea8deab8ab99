"""Numbers and observations as people read them: one set of rules for the report and the command line.

Probabilities are percentages (whole percents, with one decimal near 0 and
100 %); likelihood ratios are rounded for humans (2 significant figures,
at least one decimal below 10, "> 100" and "< 0.01" beyond); weights of
evidence have two decimals and a sign, never "-0.00"; soft evidence is shown
with its states and likelihoods. Pure functions of numbers and strings: this
module imports nothing from the package.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["ARROW", "bits", "cost", "likelihood_ratio", "likelihoods", "observation", "percent", "result_effect", "weight"]

#: The arrow from before to after ("62% -> 81%"); plain ASCII so that every terminal shows it.
ARROW = "->"

#: Likelihood ratios above this are shown as "> 100" (more digits would claim a precision the hand-set numbers do not have).
LR_CEILING = 100.0

#: Likelihood ratios below this (and above 0) are shown as "< 0.01".
LR_FLOOR = 0.01


def percent(p: float) -> str:
    """Return a probability as a percentage: whole percents, one decimal between 0 and 1 % and between 99 and 100 %.

    Exactly 0 and 1 are "0%" and "100%"; what would round to them without
    being them is "<0.1%" or ">99.9%", so a possible cause never reads as
    impossible.

    Examples
    --------
    >>> [percent(p) for p in (0.0, 0.0004, 0.004, 0.0149, 0.62, 0.995, 0.9996, 1.0)]
    ['0%', '<0.1%', '0.4%', '1%', '62%', '99.5%', '>99.9%', '100%']
    """
    p = float(p)
    if not math.isfinite(p):
        return str(p)
    if p <= 0 or p >= 1:
        return "0%" if p <= 0 else "100%"
    if p < 0.0005:
        return "<0.1%"
    if p > 0.9995:
        return ">99.9%"
    if p < 0.0095 or p > 0.9905:
        return f"{100 * p:.1f}%"
    return f"{100 * p:.0f}%"


def likelihood_ratio(x: float) -> str:
    """Return a likelihood ratio rounded for humans.

    Examples
    --------
    >>> [likelihood_ratio(x) for x in (0, 0.004, 0.0456, 0.5, 1, 1.7, 12.4, 99.6, 1359.448, float("inf"))]
    ['0', '< 0.01', '0.046', '0.50', '1.0', '1.7', '12', '100', '> 100', 'infinite']
    """
    x = float(x)
    if math.isnan(x):
        return "nan"
    if x == math.inf:
        return "infinite"
    if x <= 0:
        return "0"
    if x < LR_FLOOR:
        return f"< {LR_FLOOR:g}"
    if x > LR_CEILING:
        return f"> {LR_CEILING:g}"
    if x >= 9.95:
        return f"{x:.0f}"
    if x >= 0.995:
        return f"{x:.1f}"
    if x >= 0.0995:
        return f"{x:.2f}"
    return f"{x:.3f}"


def weight(w: float) -> str:
    """Return a weight of evidence (natural log) with a sign and two decimals; "0.00" rather than "-0.00".

    Examples
    --------
    >>> [weight(w) for w in (0.876, -0.004, 0.0, -1.5, float("inf"))]
    ['+0.88', '0.00', '0.00', '-1.50', '+inf']
    """
    w = float(w)
    if math.isinf(w):
        return "+inf" if w > 0 else "-inf"
    if abs(w) < 0.005:
        return "0.00"
    return f"{w:+.2f}"


def bits(x: float) -> str:
    """Return an information gain in bits, two decimals.

    Examples
    --------
    >>> bits(0.2468)
    '0.25 bits'
    """
    return f"{float(x):.2f} bits"


def cost(x: float) -> str:
    """Return a relative cost without trailing zeros.

    Examples
    --------
    >>> cost(4.0), cost(0.5)
    ('4', '0.5')
    """
    return f"{float(x):g}"


def likelihoods(states: Sequence[str], values: Sequence[float]) -> str:
    """Return soft evidence as its states with their likelihoods (3 significant figures).

    Examples
    --------
    >>> likelihoods(("no", "yes"), [0.3, 0.7])
    'no 0.3, yes 0.7'
    """
    return ", ".join(f"{state} {float(v):.3g}" for state, v in zip(states, values, strict=True))


def observation(value: object, states: Sequence[str] | None = None) -> str:
    """Return one observation: the state seen, or soft evidence as "soft: state likelihood, ...".

    ``value`` is a state name, or a sequence of likelihoods (one per state of ``states``).

    Examples
    --------
    >>> observation("yes"), observation([0.3, 0.7], ("no", "yes"))
    ('yes', 'soft: no 0.3, yes 0.7')
    """
    if isinstance(value, str) or states is None:
        return str(value)
    return f"soft: {likelihoods(states, list(value))}"  # type: ignore[call-overload]


def result_effect(result: str, probability: float, cause: str, before: float, after: float) -> str:
    """Say what one result would do to a cause: "if yes (34%): X 52% -> 44%".

    Examples
    --------
    >>> result_effect("yes", 0.337, "epidural_fibrosis", 0.5187, 0.4358)
    'if yes (34%): epidural_fibrosis 52% -> 44%'
    """
    return f"if {result} ({percent(probability)}): {cause} {percent(before)} {ARROW} {percent(after)}"
