"""Learning the parameters from a clinic's confirmed cases (Bayesian update, MAP by EM).

The hand-set priors act as pseudo-counts and the cases as counts; the learned
value of every parameter is its posterior mode (MAP) given the cases. Cases are
one row per patient with any model variables as columns, in the vocabulary of
``Model.diagnose_many`` (the rules of :mod:`postfusion_bayes.evidence`:
True/False, 1/0, "yes"/"no", state names; a confirmed cause as True/False,
"present"/"absent"); a missing cell (NaN, None, ``pd.NA``) is allowed anywhere,
causes included.

The prior of each parameter
---------------------------
Every probability ``v`` with range ``[low, high]`` gets a strength ``n``, its
worth in cases, from the distribution its range stands for: the range is read
as a central 90% interval, and ``n`` is the ``a + b`` of the Beta(a, b) whose
5% and 95% quantiles are ``low`` and ``high`` (a bound at 0 or 1 moved in by
1e-4), the very Beta that :func:`postfusion_bayes.sensitivity.fit_distributions`
draws the number from (one function, :func:`postfusion_bayes.ranges.range_distribution`,
fits it for both); infinite, a fixed parameter, when ``low == high``. With ``N1`` of
``N`` cases counting for the parameter (expected counts under EM), the learned
value is

    (n v + N1) / (n + N)

the mode of the posterior Beta(1 + n v + N1, 1 + n (1 - v) + N - N1); the
prior Beta(1 + n v, 1 + n (1 - v)) has its mode at ``v``, so ``n`` pseudo-cases
at the hand-set frequency sit next to the real ones, and with no cases nothing
moves. (It is also the posterior *mean* under Beta(n v, n (1 - v)), the
"equivalent sample size" update of GeNIe, Netica and bnlearn's ``bayes``.)

* A distribution (time window, onset per cause, onset leak) gets a Dirichlet
  with mean at the hand-set values and one strength: the smallest of its
  entries' Beta strengths, so that no entry is held tighter than its own range
  says.
* An odds ratio gets a normal prior on ``log OR`` centred on the log of its
  value with ``sd = (log high - log low) / (2 * 1.645)``, the sigma of the
  log-normal whose 5% and 95% quantiles are the range's ends (the same
  :func:`~postfusion_bayes.ranges.range_distribution`). Its strength in cases
  is the number of cases whose 2x2 table would give that standard error:
  ``n = 1 / (sd**2 f (1 - f) p (1 - p))`` with ``f`` the prevalence of the risk
  factor and ``p`` the cause's probability, both from the model; a strength
  given in cases converts back the same way. For the odds ratio of a state
  ``s`` of a categorical factor against its reference state ``r``,
  ``f (1 - f)`` becomes ``f_s f_r / (f_s + f_r)`` (the two states' prior
  probabilities), which is ``f (1 - f)`` again for a boolean factor.
* Baselines are probabilities like the others (Beta pseudo-counts of
  reference patients in that window).

``strength`` overrides the rule: a number (every parameter), or a mapping from
parameter name (or a distribution's key, e.g. ``onset.distributions.leak``) to
a number; parameters not named keep the rule. A model that was itself learned
from cases starts from its learned values, with strength = its recorded
strength + its recorded cases. Updating twice then equals updating once with
all the cases exactly only where the update is conjugate (context
distributions and prevalences, baselines of causes without odds ratios, with
those variables recorded); for noisy-OR links and leaks, onset mixtures and
the logistic fits it is an approximation (a few per cent apart with 1500 +
1500 simulated cases), because their likelihood is not a product of Beta
kernels even when every cause is recorded.

Why MAP: with hidden causes and missing cells the posterior has no closed
form; EM finds its mode exactly, while a posterior mean would need sampling.
With the prior written as above the mode keeps the meaning of the
equivalent-sample-size update.

The algorithm (EM)
------------------
E-step: per case, what the M-step needs and nothing more, from
:func:`postfusion_bayes.engine.expected.expected_counts`: the posterior of each
unrecorded context variable, of each cause's family (its time window and risk
factors, with the cause present or not), each cause's marginal, the expected
activations of the noisy-OR links and leaks, and the expected shares of the
onset mixture's owners. The missing context is summed out there, per case
(each completion of the case's unrecorded context weighted by its
probability); on networks the compiled engine enumerates (the shipped 8
causes) the counts are read from the joint of the causes of each completion,
on larger ones from the factorised engine (never a ``2**n`` table per case):
a case with every cause recorded has a closed form (a product, no query); else
one factorised query gives the causes' marginals and, where the engine
enumerates the causes within the memory budget, the activations and the onset
owners' shares in the same pass (P(e without finding f) is the sum of P(C, e)
divided by f's factor); where it does not (Quickscore, about 22 causes or
more), one more query per positive finding with that finding unrecorded
(P(link fired, e) = link P(cause present, e without the finding)) and one per
onset owner. Memory per case grows with the causes and their completions,
and cases are chunked to the network's memory budget. The counts are sums over the
cases: a Dask partition computes its own and they are added
(:func:`postfusion_bayes.distributed.update_with_cases`). M-step, per
family, with the expected counts:

* context distributions and prevalences, onset distributions: Dirichlet/Beta
  counts as above; onset is an equal-weight mixture, so each onset is shared
  among the present causes in proportion to their distributions' probability
  of it (the hidden "which cause set the onset" of the mixture);
* noisy-OR leaks and links: the EM of Diez and Vomlel with hidden indicators
  "this cause fired": in a case with the finding present and causes ``S``,
  cause ``i`` in ``S`` fired with probability ``link_i / P(finding | S)``, the
  leak with ``leak / P(finding | S)``; absent, none fired. A link counts the
  cases where its cause was present, the leak every case with the finding
  recorded. (Until this release these indicators were iterated to their own
  fixed point inside each M-step over the joint of the causes; the activations
  are now expected counts of the E-step like any other hidden variable, so
  complete data, whose only hidden variables they are, takes several EM maps
  where it took one: 27 with SQUAREM on the tests' 5,000 complete cases.)
* a cause's baselines (per time window) and odds ratios: a penalised logistic
  fit (``logit P = logit baseline[t] + sum log OR_j x_j``, one indicator
  ``x_j`` per odds ratio: a boolean factor's "yes", or a categorical factor's
  non-reference state), with the Beta pseudo-counts on the baselines and the
  normal priors on the log odds ratios, solved by Newton's method from the
  previous values (``scipy.optimize.minimize``'s L-BFGS-B, bounded, then
  Newton, where Newton's steps are too long); without odds ratios it is the closed form above. Log odds are
  kept within +-30.

Acceleration (SQUAREM)
----------------------
Plain EM converges linearly, slowly where much is missing. By default the EM
map ``F`` is accelerated by SQUAREM (Varadhan and Roland 2008, Scand J Stat
35:335-353): from ``x0``, ``x1 = F(x0)``, ``x2 = F(x1)``, ``r = x1 - x0``,
``v = x2 - x1 - r``, the S3 step ``alpha = -|r| / |v|`` (at most -1) and the
point ``x0 - 2 alpha r + alpha**2 v``, with odds ratios on the log scale; a
probability that leaves (0, 1) is put back 1e-9 inside, and every distribution
rescaled onto the simplex. One EM map from that point follows; if the log
posterior there is below that at ``x1``, or some case is impossible there, the
point is dropped and EM goes on from ``x2`` (the monotone fallback to plain EM), so the log posterior never
decreases. ``max_iterations`` counts EM maps (three per SQUAREM cycle);
``acceleration=None`` is plain EM. On the shipped model, ``model.simulate(2000,
seed=0)`` with ``smoker`` and ``diabetes`` each unrecorded in 40% of the rows
(``rng = np.random.default_rng(1)``, one ``rng.random(2000) < 0.4`` per column,
in that order) converges with the defaults in 14 EM maps, 3-4 s on the
2-core development machine under load (plain EM: 26 maps).

A case in which neither a variable nor any of its descendants was recorded
carries no information on that variable's table (it is a barren node there)
and is left out of that family's M-step, which is exact. EM stops when no
parameter moves by more than ``tolerance`` in one EM map
(probabilities on their own scale, odds ratios on the log scale), and warns
with :class:`~postfusion_bayes.errors.ConvergenceWarning` when
``max_iterations`` are used up. The log posterior (log likelihood of the cases
plus log prior, up to a constant) never decreases; the report records it.

``cases`` of a parameter: the expected number of cases that counted for it in
the last M-step (the ``N`` above: the cases in which it applies and which
carried information on it: for a link, the cases with the finding recorded,
weighted by the probability that the cause was present). Whole numbers for
a context variable or a cause with its column recorded; fractional under EM
and for onset distributions (each onset is shared among the causes present).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np
import pandas as pd

from . import ranges
from ._strengths import _Families, _families, _information_per_case, _resolve_strengths, prior_strengths
from .cpts import build_tables
from .engine import CompiledNetwork
from .engine.arguments import check_count, check_real
from .engine.encoding import EncodedEvidence
from .engine.expected import expected_counts
from .errors import ArgumentError, ConvergenceWarning, EvidenceError, suggest
from .evidence import frame_codes
from .spec import ModelSpec

__all__ = ["LearningReport", "update_spec", "prior_strengths", "learned_distributions", "DEFAULT_TOLERANCE", "DEFAULT_MAX_ITERATIONS"]

#: EM stops when no parameter moves by more than this in one EM map.
DEFAULT_TOLERANCE = 1e-6
#: EM warns and stops after this many EM maps.
DEFAULT_MAX_ITERATIONS = 500
#: The range is read as a central 90% interval: its half-width is this many standard deviations (see :mod:`postfusion_bayes.ranges`).
RANGE_Z = ranges.RANGE_Z
#: Log odds (baselines and odds ratios) are kept within +-LOGIT_BOUND.
LOGIT_BOUND = 30.0
#: Newton steps of the logistic fit of a cause's baselines and odds ratios, at most (then L-BFGS-B).
_NEWTON_STEPS = 25
#: An extrapolated probability that leaves (0, 1) is put back this far inside.
_EDGE = 1e-9
#: The choices of ``acceleration``.
ACCELERATIONS = ("squarem", None)
_TINY = np.finfo(float).tiny
_EPSILON = np.finfo(float).eps / 2


@dataclass(frozen=True)
class LearningReport:
    """How an update from cases went.

    Attributes
    ----------
    n_cases : int
        Rows of the table of cases.
    iterations : int
        EM maps done (an E-step and an M-step each; a SQUAREM cycle is three,
        the last from the extrapolated point).
    converged : bool
        Whether the largest change fell to ``tolerance`` or below.
    largest_change : float
        Largest change of a parameter in the last iteration (odds ratios on the log scale).
    tolerance : float
    max_iterations : int
    log_posterior : tuple of float
        Log likelihood of the cases plus log prior (up to a constant) at each
        point EM went on from (the start of each EM map, but for an
        extrapolated SQUAREM point that was worse than the EM iterate before
        it and was dropped); never decreasing.
    acceleration : str or None
        ``"squarem"`` or None (plain EM).
    """

    n_cases: int
    iterations: int
    converged: bool
    largest_change: float
    tolerance: float
    max_iterations: int
    log_posterior: tuple[float, ...]
    acceleration: str | None = "squarem"

    def __repr__(self) -> str:
        """Return the report in one readable line, numbers rounded (the attributes keep full precision).

        Examples
        --------
        >>> LearningReport(1500, 12, True, 3.2e-07, 1e-06, 200, (-20875.123456789, -20431.987654321))
        LearningReport(1500 cases, 12 EM iterations, converged: largest change 3.2e-07 <= tolerance 1e-06; log posterior -20875.1 -> -20432.0)
        """
        state = "converged" if self.converged else f"not converged after {self.max_iterations} iterations"
        sign = "<=" if self.largest_change <= self.tolerance else ">"
        path = f"; log posterior {self.log_posterior[0]:.1f} -> {self.log_posterior[-1]:.1f}" if self.log_posterior else ""
        return f"LearningReport({self.n_cases} cases, {self.iterations} EM iterations, {state}: largest change {self.largest_change:.2g} {sign} tolerance {self.tolerance:.2g}{path})"

    def _repr_html_(self) -> str:
        """Return the report as a small HTML table for Jupyter, numbers rounded.

        Examples
        --------
        >>> report = LearningReport(1500, 12, False, 0.0123456789, 1e-06, 12, (-20875.123456789,))
        >>> "<td style='text-align:left'>0.012 (tolerance 1e-06)</td>" in report._repr_html_()
        True
        """
        import html

        rows = {
            "cases": f"{self.n_cases}",
            "EM iterations": f"{self.iterations} of at most {self.max_iterations}",
            "converged": "yes" if self.converged else "no",
            "largest change in the last iteration": f"{self.largest_change:.2g} (tolerance {self.tolerance:.2g})",
        }
        if self.log_posterior:
            rows["log posterior, first -> last iteration"] = f"{self.log_posterior[0]:.1f} -> {self.log_posterior[-1]:.1f}"
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>{html.escape(v)}</td></tr>" for k, v in rows.items())
        return f"<table><caption>Learning report</caption>{body}</table>"


# --------------------------------------------------------------------------- the prior and the posterior of each parameter
# (the prior strengths, the rule of the module docstring, are computed in postfusion_bayes._strengths, their one home:
# Model.parameters shows them without importing the EM)


def learned_distributions(spec: ModelSpec, *, network: CompiledNetwork | None = None) -> dict[str, tuple[str, float, float]]:
    """Return the posterior left by the update for every parameter learned from cases (``cases > 0``).

    What the cases and the prior together say about each learned number, for
    sensitivity analysis of a learned model. With ``m = strength + cases``:

    * a probability: Beta(1 + m v, 1 + m (1 - v)), whose mode is the learned
      value ``v`` (for an entry of a distribution this is the Dirichlet's
      marginal up to the K - 2 extra pseudo-counts of the other entries);
    * an odds ratio: log-normal with ``mu = log v`` and
      ``sigma = 1 / sqrt(m f (1 - f) p (1 - p))``, the information of ``m`` cases
      (``f_s f_r / (f_s + f_r)`` in place of ``f (1 - f)`` for a categorical factor)
      on the log odds ratio (see the module docstring);
    * ``m`` infinite: fixed at ``v``.

    Returns
    -------
    dict of str to (family, shape_1, shape_2)
        ``("beta", a, b)``, ``("lognormal", mu, sigma)`` or ``("fixed", v, 0)``.

    Examples
    --------
    >>> from postfusion_bayes import load_model
    >>> model = load_model()
    >>> learned_distributions(model.spec)   # nothing learned yet
    {}
    """
    learned = {name: (p, p.strength + p.cases) for name, p in spec.parameters.items() if p.cases > 0 and p.strength is not None}
    if not learned:
        return {}
    info = None
    out: dict[str, tuple[str, float, float]] = {}
    for name, (p, m) in learned.items():
        if math.isinf(m):
            out[name] = ("fixed", p.value, 0.0)
        elif p.kind == "odds_ratio":
            if info is None:
                info = _information_per_case(spec, network if network is not None else CompiledNetwork(build_tables(spec)))
            out[name] = ("lognormal", math.log(p.value), 1.0 / math.sqrt(m * info[name])) if m * info[name] > 0 else ("fixed", p.value, 0.0)
        else:
            out[name] = ("beta", 1.0 + m * p.value, 1.0 + m * (1.0 - p.value))
    return out


def _ratio(numerator: np.ndarray, denominator: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Return ``numerator / denominator`` clipped to [0, 1], ``fallback`` where the denominator is 0."""
    out = np.divide(numerator, denominator, out=np.array(fallback, dtype=float, copy=True), where=denominator > 0)
    return np.clip(out, 0.0, 1.0)


# --------------------------------------------------------------------------- the cases


def _masks(spec: ModelSpec, codes: Mapping[str, np.ndarray], n_rows: int, families: _Families, roots: list[str]) -> dict[str, np.ndarray]:
    """Per context variable and cause: the cases in which it or a descendant was recorded (the others are barren for it)."""
    seen = {v: c >= 0 for v, c in codes.items()}
    none = np.zeros(n_rows, bool)
    masks: dict[str, np.ndarray] = {}
    onset = spec.onset.variable if spec.onset is not None else None
    for cause, *_ in families.causes:
        m = seen.get(cause, none).copy()
        for finding, _, link_causes, _ in families.noisy_or:
            if cause in link_causes:
                m |= seen.get(finding, none)
        if onset and cause in families.onset_owners:
            m |= seen.get(onset, none)
        masks[cause] = m
    for var, _ in families.context:
        m = seen.get(var, none).copy()
        for cause, _, factors, *_ in families.causes:
            if var == spec.time_variable or var in factors:
                m |= masks[cause]
        masks[var] = m
    return masks


# --------------------------------------------------------------------------- the update


def update_spec(
    spec: ModelSpec,
    frame: pd.DataFrame,
    strength: float | Mapping[str, float] | None = None,
    *,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    tolerance: float = DEFAULT_TOLERANCE,
    acceleration: str | None = "squarem",
) -> tuple[ModelSpec, LearningReport]:
    """Return the spec whose parameters are the MAP given a table of confirmed cases.

    See the module docstring for the priors, the algorithm and ``cases``.
    ``Model.update_with_cases`` is the public entry point.

    Parameters
    ----------
    spec : ModelSpec
        The model specification whose parameters are updated.
    frame : DataFrame
        One case per row, any model variables as columns; missing cells allowed.
    strength : float or mapping of str to float, optional
        Prior strength override (equivalent number of cases).
    max_iterations : int
        EM stops (and warns) after this many EM maps.
    tolerance : float
        EM stops when no parameter moves by more than this in one EM map
        (odds ratios on the log scale).
    acceleration : {"squarem", None}
        SQUAREM (the default) or plain EM; see the module docstring.

    Returns
    -------
    spec : ModelSpec
        Learned values, with ``cases``, ``strength`` and ``hand_set_value``
        recorded on every parameter; ranges, sources and judgments unchanged.
        An empty table returns ``spec`` itself.
    report : LearningReport

    Raises
    ------
    EvidenceError
        Not a DataFrame, an unknown column (with a close match) or cell value,
        or rows impossible under the model (named).
    SpecError
        A bad ``strength`` (unknown name with a close match, negative, not finite).
    ArgumentError
        A bad ``max_iterations``, ``tolerance`` or ``acceleration`` (:class:`~postfusion_bayes.errors.ArgumentTypeError`,
        also a ``TypeError``, when it is not a number at all).

    Examples
    --------
    >>> import pandas as pd
    >>> from postfusion_bayes.spec import load_spec
    >>> spec = load_spec()
    >>> # the rest of the context recorded too: with 16 causes, a row whose whole context is missing
    >>> # expands into 1,024 completions, past the engine's memory budget (issue 12)
    >>> context = {"time_since_surgery": "over_2_years", "diabetes": False, "osteoporosis": False, "multilevel_fusion": False,
    ...            "fusion_to_sacrum": False, "surgical_approach": "posterior", "rhbmp2_used": False, "age_over_65": False}
    >>> cases = pd.DataFrame({"smoker": [True] * 30 + [False] * 70, **{k: [v] * 100 for k, v in context.items()}})
    >>> learned, report = update_spec(spec, cases)
    >>> p = learned.parameters["context.smoker.prevalence"]
    >>> round(p.value, 4), p.cases, round(p.strength, 2), p.hand_set_value
    (0.2783, 100.0, 27.67, 0.2)
    """
    max_iterations, tolerance, acceleration = _check_settings(max_iterations, tolerance, acceleration)
    codes = frame_codes(spec, frame, soft_hint="learning takes confirmed cases only")
    network = CompiledNetwork(build_tables(spec))
    families = _families(spec)
    strengths = _resolve_strengths(spec, strength, families, _information_per_case(spec, network))
    n_rows = len(frame)
    if n_rows == 0:
        return spec, LearningReport(0, 0, True, 0.0, tolerance, max_iterations, (), acceleration)
    return _EM(spec, frame.index, codes, network, families, strengths).run(max_iterations, tolerance, acceleration)


def _check_settings(max_iterations: object, tolerance: object, acceleration: object) -> tuple[int, float, str | None]:
    """Check the EM settings (the same for the pandas and the Dask update)."""
    if not (acceleration is None or (isinstance(acceleration, str) and acceleration in ACCELERATIONS)):
        raise ArgumentError(f"acceleration must be 'squarem' or None (plain EM), got {acceleration!r}{suggest(acceleration, ['squarem'])}")
    return int(check_count("max_iterations", max_iterations)), float(check_real("tolerance", tolerance, positive=True)), acceleration


@dataclass
class _Statistics:
    """The expected counts of one E-step over some cases: sums over rows, so the statistics of parts of a table add up."""

    context: dict[str, np.ndarray]  # per context variable: expected cases in each state
    cause_n: dict[str, np.ndarray]  # per cause: expected cases per configuration of (time, risk factors), flattened
    cause_n1: dict[str, np.ndarray]  # the same with the cause present
    leak_fired: np.ndarray  # (noisy-OR findings,): expected cases in which the leak fired
    link_fired: np.ndarray  # (noisy-OR findings, causes): expected cases in which the cause's link fired
    den_leak: np.ndarray  # (noisy-OR findings,): cases with the finding recorded
    den_link: np.ndarray  # (noisy-OR findings, causes): expected cases with the finding recorded and the cause present
    onset: np.ndarray  # (onset owners, onset states): expected onsets set by each owner (the leak last)
    log_likelihood: float

    def __add__(self, other: _Statistics) -> _Statistics:
        return _Statistics(
            {v: c + other.context[v] for v, c in self.context.items()},
            {c: x + other.cause_n[c] for c, x in self.cause_n.items()},
            {c: x + other.cause_n1[c] for c, x in self.cause_n1.items()},
            self.leak_fired + other.leak_fired,
            self.link_fired + other.link_fired,
            self.den_leak + other.den_leak,
            self.den_link + other.den_link,
            self.onset + other.onset,
            self.log_likelihood + other.log_likelihood,
        )


#: Cases per block of the E-step (the engine splits a block further to fit the memory budget).
_BLOCK_ROWS = 1 << 13


class _Layout:
    """What the E-step needs to know of a spec (picklable: Dask workers get it with the network)."""

    def __init__(self, spec: ModelSpec, network: CompiledNetwork, families: _Families):
        self.spec, self.families = spec, families
        tables = network.tables
        self.mid_names = list(network.layers["middle"])
        mid = {c: i for i, c in enumerate(self.mid_names)}
        context = spec.names("context")
        self.roots = [v for v in context if v == spec.time_variable or any(v in p.odds_ratios for p in spec.cause_priors.values())]
        self.cards = {c: tuple(len(spec.variables[f].states) for f in factors) for c, _, factors, *_ in families.causes}
        for c, _, factors, *_ in families.causes:  # the engine's families are the update's: (time, risk factors) in this order
            assert tables.parents[c] == (spec.time_variable, *factors), (c, tables.parents[c])
        self.noisy = [f for f, *_ in families.noisy_or]
        # per noisy-OR finding: (its row, [(column of the link's cause among the finding's parents, the cause's position)])
        self.noisy_links = [[(tables.parents[f].index(c), mid[c]) for c in causes] for f, _, causes, _ in families.noisy_or]
        self.onset = spec.onset.variable if spec.onset is not None else None
        if self.onset:
            parents = list(tables.parents[self.onset])
            self.owners = [o for o in families.onset_owners if o != "leak"]
            self.owner_columns = [parents.index(o) for o in self.owners] + [len(parents)]  # the leak last
        self.n_onset = len(spec.variables[self.onset].states) if self.onset else 0

    def zero(self) -> _Statistics:
        spec, fam = self.spec, self.families
        times = len(spec.variables[spec.time_variable].states)
        F, n = len(self.noisy), len(self.mid_names)
        return _Statistics(
            context={v: np.zeros(len(spec.variables[v].states)) for v, _ in fam.context},
            cause_n={c: np.zeros(times * math.prod(self.cards[c])) for c, *_ in fam.causes},
            cause_n1={c: np.zeros(times * math.prod(self.cards[c])) for c, *_ in fam.causes},
            leak_fired=np.zeros(F),
            link_fired=np.zeros((F, n)),
            den_leak=np.zeros(F),
            den_link=np.zeros((F, n)),
            onset=np.zeros((len(self.owners) + 1 if self.onset else 0, self.n_onset)),
            log_likelihood=0.0,
        )

    def expect(self, network: CompiledNetwork, codes: Mapping[str, np.ndarray], index: pd.Index, iteration: int) -> _Statistics:
        """Return the expected counts of these cases under the network's parameters (the E-step on them).

        ``codes``: the cases' state codes per recorded variable (-1 unrecorded),
        ``index`` their labels (to name impossible rows).
        """
        stats = self.zero()
        for start in range(0, len(index), _BLOCK_ROWS):
            part = {v: c[start : start + _BLOCK_ROWS] for v, c in codes.items()}
            stats = stats + self._expect_block(network, part, index[start : start + _BLOCK_ROWS], iteration)
        return stats

    def _expect_block(self, network, codes, index, iteration) -> _Statistics:
        spec, fam = self.spec, self.families
        n_rows = len(index)
        stats = self.zero()
        codes = {v: c for v, c in codes.items() if (c >= 0).any()}
        e = expected_counts(network, codes, n_rows)
        dead = ~np.isfinite(e.log_evidence)
        if dead.any():
            _impossible(network, codes, index, np.flatnonzero(dead), iteration)
        stats.log_likelihood = float(e.log_evidence.sum())
        masks = _masks(spec, codes, n_rows, fam, self.roots)
        for v, _ in fam.context:
            card = len(spec.variables[v].states)
            if v in codes:  # recorded context: counted directly (whole numbers); the rest is imputed below
                c = codes[v]
                stats.context[v] += np.bincount(c[c >= 0], minlength=card)
            if v in self.roots:
                imputed = masks[v] & (codes[v] < 0) if v in codes else masks[v]
                stats.context[v] += imputed @ e.roots[v]
        for c, *_ in fam.causes:
            n_config, n_present = e.families[c]
            stats.cause_n[c] += masks[c] @ n_config
            stats.cause_n1[c] += masks[c] @ n_present
        for i, f in enumerate(self.noisy):
            if f not in codes:
                continue
            recorded = codes[f] >= 0
            stats.den_leak[i] = recorded.sum()
            if f not in e.fired:  # no causes (an isolated red flag): its leak is its prevalence
                stats.leak_fired[i] = (codes[f] == 1).sum()
                continue
            leak, links = e.fired[f]
            stats.leak_fired[i] = leak
            for column, c in self.noisy_links[i]:
                stats.link_fired[i, c] = links[column]
                stats.den_link[i, c] = recorded @ e.causes[:, c]
        if self.onset is not None and self.onset in codes:
            stats.onset += e.shares[self.onset][self.owner_columns]  # (owners and leak, onset states)
        return stats


def _impossible(network, codes, index, rows, iteration):
    """Rows whose evidence is impossible: confirm with the ordinary query, then name them."""
    sub = {v: c[rows] for v, c in codes.items()}
    log_ev = network.query(EncodedEvidence.from_codes(network.states, sub, len(rows)), ()).log_evidence[0]
    labels = list(index[rows][:10])
    if not np.isfinite(log_ev).all():
        when = "under the model" if iteration == 0 else f"under the parameters reached at EM iteration {iteration}"
        raise EvidenceError(f"the evidence is impossible {when} (probability 0) in rows {labels}; check these cases or the priors")
    raise EvidenceError(f"the evidence of rows {labels} is too improbable under the model to learn from in double precision")


class _EM:
    """One EM run: the prior of every parameter, the M-step, and the loop."""

    def __init__(self, spec, index, codes, network, families, strengths):
        self.spec, self.index, self.families, self.strengths = spec, index, families, strengths
        self.n_rows = len(index)
        self.codes = {v: c for v, c in codes.items() if (c >= 0).any()}
        self.layout = _Layout(spec, network, families)
        self.mid_names = self.layout.mid_names
        self.cards = self.layout.cards
        self.prior = {n: p.value for n, p in spec.parameters.items()}
        mask = np.zeros((len(self.layout.noisy), len(self.mid_names)), bool)
        link_names = [[""] * len(self.mid_names) for _ in self.layout.noisy]
        for i, (_, _, causes, names) in enumerate(families.noisy_or):
            for c, name in zip(causes, names, strict=True):
                mask[i, self.mid_names.index(c)] = True
                link_names[i][self.mid_names.index(c)] = name
        self._links = (mask, [leak for _, leak, _, _ in families.noisy_or], link_names)
        if self.layout.onset:
            states = spec.variables[self.layout.onset].states
            self._owners = (self.layout.owners, {o: [spec.onset.distributions[o][s] for s in states] for o in families.onset_owners})

    # ------------------------------------------------------------ E-step
    def expect_all(self, network: CompiledNetwork, iteration: int) -> _Statistics:
        """Return the expected counts of the whole table under the network's parameters."""
        return self.layout.expect(network, self.codes, self.index, iteration)

    # ------------------------------------------------------------ M-step
    def maximise(self, values: dict[str, float], stats: _Statistics) -> tuple[dict[str, float], dict[str, float]]:
        """Return the new values and the cases that counted for each parameter."""
        spec, fam = self.spec, self.families
        new = dict(values)
        cases = dict.fromkeys(spec.parameters, 0.0)
        for var, names in fam.context:
            counts = stats.context[var]
            if names[0] == "":  # boolean prevalence of "yes"
                self._beta(new, cases, names[1], counts[1], counts.sum())
            else:
                self._dirichlet(new, cases, names, counts)
        for cause, baselines, _, or_names, columns in fam.causes:
            self._cause(new, cases, baselines, self.cards[cause], or_names, columns, stats.cause_n[cause], stats.cause_n1[cause])
        self._noisy_or(values, new, cases, stats)
        if self.layout.onset:
            self._onset(values, new, cases, stats.onset)
        return new, cases

    def _beta(self, new, cases, name, n1, n):
        s, v = self.strengths[name], self.prior[name]
        cases[name] = float(n)
        if n > 0 and math.isfinite(s):
            new[name] = float(min(max((s * v + n1) / (s + n), 0.0), 1.0))

    def _dirichlet(self, new, cases, names, counts):
        total = float(counts.sum())
        s = self.strengths[names[0]]
        for name in names:
            cases[name] = total
        if total > 0 and math.isfinite(s):
            for name, c in zip(names, counts, strict=True):
                new[name] = float(min(max((s * self.prior[name] + c) / (s + total), 0.0), 1.0))

    def _cause(self, new, cases, baselines, cards, or_names, columns, n, n1):
        """Baselines and odds ratios of one cause: a penalised logistic fit over (time, factor states) configurations.

        ``cards`` are the factors' numbers of states and ``columns[j]`` the
        (factor, state) whose indicator odds ratio ``j`` multiplies: a boolean
        factor has one column (its "yes"), a categorical one a column per
        non-reference state with an odds ratio.
        """
        from scipy import optimize, special  # imported here: reading Model.parameters (prior_strengths) needs no scipy

        n_times = len(baselines)
        shape = (n_times, *cards)
        n, n1 = n.reshape(n_times, -1), n1.reshape(n_times, -1)
        total = float(n.sum())
        for t, name in enumerate(baselines):
            cases[name] = float(n[t].sum())
        for name in or_names:
            cases[name] = total
        if not or_names:
            for t, name in enumerate(baselines):
                self._beta(new, cases, name, n1[t].sum(), n[t].sum())
            return
        states = np.stack(np.unravel_index(np.arange(n.shape[1]), shape[1:]), axis=1)  # (configurations, factors): each factor's state
        bits = np.stack([states[:, k] == state for k, state in columns], axis=1).astype(float)  # (configurations, odds ratios): indicators
        s = np.array([self.strengths[b] for b in baselines])
        v = np.array([self.prior[b] for b in baselines])
        info = [self._info[o] for o in or_names]
        tau = np.array([self.strengths[o] * i for o, i in zip(or_names, info, strict=True)])
        g0 = np.log([self.prior[o] for o in or_names])
        start_b = special.logit(np.clip([new[b] for b in baselines], 1e-300, 1.0))
        start_g = np.log([new[o] for o in or_names])
        x0 = np.clip(np.concatenate([start_b, start_g]), -LOGIT_BOUND, LOGIT_BOUND)
        # a parameter no case bears on, or with an infinite strength, stays where it is
        touched_b = n.sum(axis=1) > 0
        touched_g = (n.sum(axis=0) @ bits) > 0
        free = np.concatenate([touched_b & np.isfinite(s), touched_g & np.isfinite(tau)])
        if not free.any():
            return
        bounds = [(-LOGIT_BOUND, LOGIT_BOUND) if f else (x, x) for x, f in zip(x0, free, strict=True)]
        s_f, tau_f = np.where(np.isfinite(s), s, 0.0), np.where(np.isfinite(tau), tau, 0.0)

        def objective(theta):
            beta, gamma = theta[:n_times], theta[n_times:]
            eta = beta[:, None] + (bits @ gamma)[None, :]
            ll = np.sum(-n1 * np.logaddexp(0, -eta) - (n - n1) * np.logaddexp(0, eta))
            ll += np.sum(-s_f * v * np.logaddexp(0, -beta) - s_f * (1 - v) * np.logaddexp(0, beta))
            ll -= 0.5 * np.sum(tau_f * (gamma - g0) ** 2)
            resid = n1 - n * special.expit(eta)
            grad_b = resid.sum(axis=1) + s_f * (v - special.expit(beta))
            grad_g = resid.sum(axis=0) @ bits - tau_f * (gamma - g0)
            return -ll, -np.concatenate([grad_b, grad_g])

        design = np.concatenate([np.repeat(np.eye(n_times), bits.shape[0], axis=0), np.tile(bits, (n_times, 1))], axis=1)  # (times x configs, parameters)

        def hessian(theta):
            """Hessian of the negated objective (positive semi-definite: the objective is concave)."""
            beta, gamma = theta[:n_times], theta[n_times:]
            p = special.expit(beta[:, None] + (bits @ gamma)[None, :]).ravel()
            h = design.T @ (design * (n.ravel() * p * (1 - p))[:, None])
            pb = special.expit(beta)
            h[np.arange(n_times), np.arange(n_times)] += s_f * pb * (1 - pb)
            h[np.arange(n_times, theta.size), np.arange(n_times, theta.size)] += tau_f
            return h

        def newton(theta, steps, largest):
            """Newton steps with backtracking on the free parameters away from the bounds; None if they leave Newton's region."""
            theta = theta.copy()
            inside = free & (np.abs(theta) < LOGIT_BOUND - 1e-6)
            value, gradient = objective(theta)
            for _ in range(steps):
                if not inside.any():
                    return theta
                try:
                    step = np.linalg.solve(hessian(theta)[np.ix_(inside, inside)], -gradient[inside])
                except np.linalg.LinAlgError:
                    return None
                if not np.all(np.isfinite(step)) or np.max(np.abs(step), initial=0.0) > largest:
                    return None
                for _ in range(30):  # halve the step until the objective does not get worse
                    trial = theta.copy()
                    trial[inside] += step
                    if np.max(np.abs(trial)) <= LOGIT_BOUND:
                        trial_value, trial_gradient = objective(trial)
                        if trial_value <= value + 1e-12 * abs(value):
                            break
                    step = step / 2
                else:
                    return None
                theta, value, gradient = trial, trial_value, trial_gradient
                if np.max(np.abs(step), initial=0.0) < 1e-13:
                    return theta
            return None

        # from the previous values Newton's method converges in a few steps; L-BFGS-B (bounded) where it does not. Either
        # way the answer ends with Newton steps: L-BFGS-B stops at a gradient tolerance, so its answer would move by ~1e-8
        # with a rounding-level change of the counts (the order in which partitions are added); Newton's does not
        theta = newton(x0, _NEWTON_STEPS, 2.0)
        if theta is None:
            result = optimize.minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 500, "ftol": 1e-15, "gtol": 1e-10})
            theta = np.where(free, result.x, x0)
            polished = newton(theta, 3, 1e-3)
            theta = theta if polished is None else polished
        for t, name in enumerate(baselines):
            if free[t]:
                new[name] = float(special.expit(theta[t]))
        for k, name in enumerate(or_names):
            if free[n_times + k]:
                new[name] = float(np.exp(theta[n_times + k]))

    def _noisy_or(self, values, new, cases, stats: _Statistics):
        """Leaks and links of every recorded binary finding at once (Diez/Vomlel EM).

        With the expected activations of the E-step (cases in which the leak,
        or a cause's link, fired), each is the Beta posterior mode of its
        activations among the cases that could have fired it.
        """
        if not self.layout.noisy:
            return
        mask, leak_names, link_names = self._links
        leak = np.array([values[n] for n in leak_names])
        lam = np.array([[values[n] if n else 0.0 for n in row] for row in link_names])
        s_leak, v_leak = self._prior_arrays(leak_names)
        s_link, v_link = self._prior_arrays([n for row in link_names for n in row])
        s_link, v_link = s_link.reshape(lam.shape), v_link.reshape(lam.shape)
        den_leak, den_link = stats.den_leak, stats.den_link
        free_leak = (den_leak > 0) & np.isfinite(s_leak)
        free_link = mask & (den_link > 0) & np.isfinite(s_link)
        s_leak, s_link = np.where(np.isfinite(s_leak), s_leak, 0.0), np.where(np.isfinite(s_link), s_link, 0.0)
        leak = np.where(free_leak, _ratio(s_leak * v_leak + stats.leak_fired, s_leak + den_leak, leak), leak)
        lam = np.where(free_link, _ratio(s_link * v_link + stats.link_fired, s_link + den_link, lam), lam)
        for i, name in enumerate(leak_names):
            new[name], cases[name] = float(leak[i]), float(den_leak[i])
        for i, row in enumerate(link_names):
            for c, name in enumerate(row):
                if name:
                    new[name], cases[name] = float(lam[i, c]), float(den_link[i, c])

    def _onset(self, values, new, cases, counts):
        """Onset distributions: EM of the equal-weight mixture, hidden "which present cause set the onset" (its expected counts from the E-step)."""
        owners, names = self._owners
        d = np.array([[values[n] for n in names[o]] for o in owners]).reshape(len(owners), counts.shape[1])
        s_own = np.array([self.strengths[names[o][0]] for o in owners])
        v_own = np.array([[self.prior[n] for n in names[o]] for o in owners]).reshape(d.shape)
        finite = np.isfinite(s_own)
        s_own = np.where(finite, s_own, 0.0)
        own = counts[: len(owners)]
        total = own.sum(axis=1)
        free = (total > 0) & finite
        d = np.where(free[:, None], _ratio(s_own[:, None] * v_own + own, (s_own + total)[:, None], d), d)
        for o, row, c in zip(owners, d, total, strict=True):
            for name, x in zip(names[o], row, strict=True):
                new[name], cases[name] = float(x), float(c)
        self._dirichlet(new, cases, names["leak"], counts[-1])

    def _prior_arrays(self, names) -> tuple[np.ndarray, np.ndarray]:
        """Strengths and prior values of some parameters ("" for none: strength 0)."""
        return np.array([self.strengths[n] if n else 0.0 for n in names]), np.array([self.prior[n] if n else 0.0 for n in names])

    # ------------------------------------------------------------ objective
    def log_prior(self, values: Mapping[str, float]) -> float:
        from scipy import special

        total = 0.0
        for name, p in self.spec.parameters.items():
            s = self.strengths[name]
            if not math.isfinite(s) or s == 0:
                continue
            v0, x = self.prior[name], values[name]
            if p.kind == "odds_ratio":
                total -= 0.5 * s * self._info[name] * (math.log(x) - math.log(v0)) ** 2
            # a value that rounds to 0 or 1 (a tiny strength against many cases) is taken at the nearest
            # representable distance from the bound, so that the log prior stays finite
            elif name in self._in_distribution:
                total += s * special.xlogy(v0, max(x, _TINY))
            else:
                total += s * (special.xlogy(v0, max(x, _TINY)) + special.xlogy(1 - v0, max(1 - x, _EPSILON)))
        return float(total)

    # ------------------------------------------------------------ loop
    def _map(self, values: dict[str, float], iteration: int, expect) -> tuple[dict[str, float], dict[str, float], float]:
        """One EM map: the E-step at ``values`` (and the objective there), then the M-step. Returns the new values, the cases, the objective."""
        network = CompiledNetwork(build_tables(self.spec.with_values(values)))
        stats = expect(network, iteration)
        new, cases = self.maximise(values, stats)
        return new, cases, stats.log_likelihood + self.log_prior(values)

    def _change(self, old: Mapping[str, float], new: Mapping[str, float]) -> float:
        """Largest change of a parameter (odds ratios on the log scale)."""
        return max(
            ((abs(math.log(new[n]) - math.log(old[n])) if p.kind == "odds_ratio" else abs(new[n] - old[n])) for n, p in self.spec.parameters.items()),
            default=0.0,
        )

    def _extrapolate(self, v0: Mapping[str, float], v1: Mapping[str, float], v2: Mapping[str, float]) -> dict[str, float] | None:
        """Return the SQUAREM point (S3 step length) from three successive iterates, projected into the parameters' domains; None when there is no step.

        Odds ratios are extrapolated on the log scale; a probability leaving (0, 1) is put back at
        _EDGE from the bound, and each distribution is floored there and rescaled onto the simplex.
        """
        names = list(self.spec.parameters)
        odds = np.array([self.spec.parameters[n].kind == "odds_ratio" for n in names])

        def vector(v):
            x = np.array([v[n] for n in names])
            return np.where(odds, np.log(np.where(odds, x, 1.0)), x)

        x0, x1, x2 = vector(v0), vector(v1), vector(v2)
        r = x1 - x0
        w = x2 - x1 - r
        rr, ww = float(r @ r), float(w @ w)
        if ww == 0.0 or rr == 0.0:
            return None
        alpha = min(-math.sqrt(rr / ww), -1.0)  # S3; -1 gives the second EM iterate itself
        x = x0 - 2.0 * alpha * r + alpha * alpha * w
        moved = x != x0
        out = np.where(odds, np.exp(np.clip(x, -LOGIT_BOUND, LOGIT_BOUND)), np.where(moved, np.clip(x, _EDGE, 1.0 - _EDGE), x))
        values = dict(zip(names, out.tolist(), strict=True))
        for group in self.families.distributions:
            total = math.fsum(values[n] for n in group)
            if abs(total - 1.0) > 1e-12:
                for n in group:
                    values[n] = values[n] / total
        return values

    def run(self, max_iterations: int, tolerance: float, acceleration: str | None = "squarem", expect=None) -> tuple[ModelSpec, LearningReport]:
        """EM (accelerated by SQUAREM unless ``acceleration`` is None) from the priors to the MAP; ``expect(network, iteration)`` is the E-step (default: on this table)."""
        spec = self.spec
        self._info = _information_per_case(spec, CompiledNetwork(build_tables(spec)))
        self._in_distribution = {n for g in self.families.distributions for n in g}
        if expect is None:
            expect = self.expect_all
        values = dict(self.prior)
        trace: list[float] = []
        change, converged, maps = math.inf, False, 0
        cases: dict[str, float] = {}

        def step(current):
            """One EM map from ``current``: (new values, cases, objective at current, change)."""
            nonlocal maps
            new, found, objective = self._map(current, maps, expect)
            maps += 1
            return new, found, objective, self._change(current, new)

        while maps < max_iterations:
            v1, cases, objective, change = step(values)
            trace.append(objective)
            values_prev, values = values, v1
            if change <= tolerance:
                converged = True
                break
            if acceleration is None or maps >= max_iterations:
                continue
            v2, cases2, objective1, change2 = step(values)
            trace.append(objective1)
            cases = cases2
            if change2 <= tolerance:
                values, converged, change = v2, True, change2
                break
            change = change2
            point = self._extrapolate(values_prev, values, v2)
            values = v2
            if point is None or maps >= max_iterations:
                continue
            try:
                v3, cases3, objective_point, change3 = step(point)
            except EvidenceError:  # some case impossible at the extrapolated point (a probability pushed to its bound): plain EM
                maps += 1
                continue
            if not objective_point >= objective1:  # monotone: the extrapolated point must not be worse than the EM iterate before it
                continue  # plain EM: go on from the second iterate
            trace.append(objective_point)
            values, cases, change = v3, cases3, change3
            if change3 <= tolerance:
                converged = True
                break
        current = spec.with_values(values)
        if not converged:
            warnings.warn(
                f"learning from cases: EM stopped after {maps} iterations (max_iterations) with a largest parameter change of "
                f"{change:.3g} > tolerance {tolerance:g}; the values returned are the last iterate",
                ConvergenceWarning,
                stacklevel=4,
            )
        params = {
            n: replace(current.parameters[n], cases=float(cases[n]), strength=float(self.strengths[n]), hand_set_value=p.hand_set_value if p.hand_set_value is not None else p.value)
            for n, p in spec.parameters.items()
        }
        learned = replace(current, parameters=MappingProxyType(params))
        report = LearningReport(self.n_rows, maps, converged, float(change), tolerance, max_iterations, tuple(trace), acceleration)
        return learned, report
