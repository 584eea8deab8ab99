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
E-step: the exact joint posterior of the eight causes (256 configurations) for
every case, from the compiled engine
(:meth:`~postfusion_bayes.engine.CompiledNetwork.query` with ``joint=``); a
case with missing context is split into one weighted copy per completion of
its missing context (the product of their numbers of states: 4 x 2^5 = 128
copies when the six context variables of the shipped priors are all missing,
four times more with a four-state categorical factor beside them, so such cases
make each iteration up to that much slower: about 3 s per iteration for 2000
cases without any of the six on 2 cores). M-step, per
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
  recorded;
* a cause's baselines (per time window) and odds ratios: a penalised logistic
  fit (``logit P = logit baseline[t] + sum log OR_j x_j``, one indicator
  ``x_j`` per odds ratio: a boolean factor's "yes", or a categorical factor's
  non-reference state) by
  ``scipy.optimize.minimize`` (L-BFGS-B), with the Beta pseudo-counts on the
  baselines and the normal priors on the log odds ratios; without odds ratios
  it is the closed form above. Log odds are kept within +-30.

A case in which neither a variable nor any of its descendants was recorded
carries no information on that variable's table (it is a barren node there)
and is left out of that family's M-step, which is exact. EM stops when no
parameter moves by more than ``tolerance`` between two iterations
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

import itertools
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
from .errors import ConvergenceWarning, EvidenceError
from .evidence import frame_codes
from .spec import ModelSpec

__all__ = ["LearningReport", "update_spec", "prior_strengths", "learned_distributions", "DEFAULT_TOLERANCE", "DEFAULT_MAX_ITERATIONS"]

#: EM stops when no parameter moves by more than this between two iterations.
DEFAULT_TOLERANCE = 1e-6
#: EM warns and stops after this many iterations.
DEFAULT_MAX_ITERATIONS = 500
#: The range is read as a central 90% interval: its half-width is this many standard deviations (see :mod:`postfusion_bayes.ranges`).
RANGE_Z = ranges.RANGE_Z
#: Log odds (baselines and odds ratios) are kept within +-LOGIT_BOUND.
LOGIT_BOUND = 30.0
_TINY = np.finfo(float).tiny
_EPSILON = np.finfo(float).eps / 2
#: Inner fixed-point iterations of the noisy-OR and onset M-steps (at fixed cause posteriors), at most.
_INNER_ITERATIONS = 1000
#: Rows of expanded cases per batch of the E-step (times the 256 configurations).
_CHUNK_CELLS = 1 << 20


@dataclass(frozen=True)
class LearningReport:
    """How an update from cases went.

    Attributes
    ----------
    n_cases : int
        Rows of the table of cases.
    iterations : int
        EM iterations done (E-step and M-step each).
    converged : bool
        Whether the largest change fell to ``tolerance`` or below.
    largest_change : float
        Largest change of a parameter in the last iteration (odds ratios on the log scale).
    tolerance : float
    max_iterations : int
    log_posterior : tuple of float
        Log likelihood of the cases plus log prior (up to a constant) at the
        start of each iteration; never decreasing.
    """

    n_cases: int
    iterations: int
    converged: bool
    largest_change: float
    tolerance: float
    max_iterations: int
    log_posterior: tuple[float, ...]


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


@dataclass(frozen=True)
class _Chunk:
    rows: np.ndarray  # original row of every expanded row
    starts: np.ndarray  # first expanded row of each original row (contiguous runs)
    roots: dict[str, np.ndarray]  # completed codes of every root


def _prepare(spec: ModelSpec, codes: Mapping[str, np.ndarray], n_rows: int, roots: list[str], n_configurations: int) -> list[_Chunk]:
    """Split cases with missing context into one copy per completion; batch them for the E-step."""
    cards = [len(spec.variables[r].states) for r in roots]
    missing = np.stack([codes[r] < 0 if r in codes else np.ones(n_rows, bool) for r in roots], axis=1) if roots else np.zeros((n_rows, 0), bool)
    patterns, which = np.unique(missing, axis=0, return_inverse=True)
    which = which.reshape(-1)
    limit = max(1, _CHUNK_CELLS // n_configurations)
    pieces: list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]] = []
    for k, pattern in enumerate(patterns):
        rows = np.flatnonzero(which == k)
        free = [i for i, m in enumerate(pattern) if m]
        combos = list(itertools.product(*[range(cards[i]) for i in free]))
        completions = np.array(combos, dtype=np.intp).reshape(len(combos), len(free))
        m = len(completions)
        step = max(1, limit // m)
        for start in range(0, len(rows), step):
            part = rows[start : start + step]
            expanded = np.repeat(part, m)
            filled = {}
            for i, r in enumerate(roots):
                if pattern[i]:
                    filled[r] = np.tile(completions[:, free.index(i)], len(part))
                else:
                    filled[r] = codes[r][expanded]
            pieces.append((expanded, np.arange(len(part)) * m, filled))
    chunks: list[_Chunk] = []
    current: list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]] = []
    size = 0
    for piece in pieces:
        if current and size + len(piece[0]) > limit:
            chunks.append(_merge(current, roots))
            current, size = [], 0
        current.append(piece)
        size += len(piece[0])
    if current:
        chunks.append(_merge(current, roots))
    return chunks


def _merge(pieces, roots) -> _Chunk:
    offsets = np.cumsum([0] + [len(p[0]) for p in pieces[:-1]])
    return _Chunk(
        rows=np.concatenate([p[0] for p in pieces]),
        starts=np.concatenate([p[1] + o for p, o in zip(pieces, offsets, strict=True)]),
        roots={r: np.concatenate([p[2][r] for p in pieces]) for r in roots},
    )


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
        EM stops (and warns) after this many iterations.
    tolerance : float
        EM stops when no parameter moves by more than this between two
        iterations (odds ratios on the log scale).

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
        A bad ``max_iterations`` or ``tolerance`` (:class:`~postfusion_bayes.errors.ArgumentTypeError`,
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
    max_iterations = check_count("max_iterations", max_iterations)
    tolerance = check_real("tolerance", tolerance, positive=True)
    codes = frame_codes(spec, frame, soft_hint="learning takes confirmed cases only")
    network = CompiledNetwork(build_tables(spec))
    families = _families(spec)
    strengths = _resolve_strengths(spec, strength, families, _information_per_case(spec, network))
    n_rows = len(frame)
    if n_rows == 0:
        return spec, LearningReport(0, 0, True, 0.0, float(tolerance), int(max_iterations), ())
    return _EM(spec, frame.index, codes, network, families, strengths).run(int(max_iterations), float(tolerance))


@dataclass
class _Statistics:
    """The expected counts of one E-step (added to in place while the cases are read)."""

    context: dict[str, np.ndarray]  # per context variable: expected cases in each state
    cause_n: dict[str, np.ndarray]  # per cause: expected cases per configuration of (time, risk factors), flattened
    cause_n1: dict[str, np.ndarray]  # the same with the cause present
    q1: np.ndarray  # (recorded binary findings, cause configurations): expected cases with the finding present
    qobs: np.ndarray  # the same with the finding recorded
    onset: np.ndarray  # (onset states, cause configurations): expected cases with that onset


class _EM:
    """One EM run: the fixed structure of the cases, and the statistics of each E-step."""

    def __init__(self, spec, index, codes, network, families, strengths):
        self.spec, self.index, self.families, self.strengths = spec, index, families, strengths
        self.n_rows = len(index)
        self.codes = {v: c for v, c in codes.items() if (c >= 0).any()}
        self.mid_names = list(network.layers["middle"])
        configurations = np.stack(np.unravel_index(np.arange(2 ** len(self.mid_names)), [2] * len(self.mid_names)), axis=1)  # as the joint query orders them
        self.present = (configurations == 1).astype(float)  # (J, n_causes)
        self.J = len(configurations)
        context = spec.names("context")
        self.roots = [v for v in context if v == spec.time_variable or any(v in p.odds_ratios for p in spec.cause_priors.values())]
        self.cards = {c: tuple(len(spec.variables[f].states) for f in factors) for c, _, factors, *_ in families.causes}
        self.chunks = _prepare(spec, self.codes, self.n_rows, self.roots, self.J)
        self.masks = _masks(spec, self.codes, self.n_rows, families, self.roots)
        self.binary = [f for f, *_ in families.noisy_or if f in self.codes]
        self.onset = spec.onset.variable if spec.onset is not None and spec.onset.variable in self.codes else None
        self.prior = {n: p.value for n, p in spec.parameters.items()}
        self.fixed_codes = {v: c for v, c in self.codes.items() if v not in self.roots}
        by_name = {f: (leak, causes, links) for f, leak, causes, links in families.noisy_or}
        mask = np.zeros((len(self.binary), len(self.mid_names)), bool)
        link_names = [[""] * len(self.mid_names) for _ in self.binary]
        for i, f in enumerate(self.binary):
            for c, name in zip(by_name[f][1], by_name[f][2], strict=True):
                mask[i, self.mid_names.index(c)] = True
                link_names[i][self.mid_names.index(c)] = name
        self._links = (mask, [by_name[f][0] for f in self.binary], link_names)
        if self.onset:
            states = spec.variables[self.onset].states
            owners = [o for o in families.onset_owners if o != "leak"]
            self._owners = (owners, {o: [spec.onset.distributions[o][s] for s in states] for o in families.onset_owners})

    # ------------------------------------------------------------ E-step
    def expect(self, network: CompiledNetwork, iteration: int) -> tuple[_Statistics, float]:
        """Return the expected counts under the current parameters, and the log likelihood of the cases."""
        spec, fam = self.spec, self.families
        times = spec.variables[spec.time_variable].states
        stats = _Statistics(
            context={v: np.zeros(len(spec.variables[v].states)) for v, _ in fam.context},
            cause_n={c: np.zeros(len(times) * math.prod(self.cards[c])) for c, *_ in fam.causes},
            cause_n1={c: np.zeros(len(times) * math.prod(self.cards[c])) for c, *_ in fam.causes},
            q1=np.zeros((len(self.binary), self.J)),
            qobs=np.zeros((len(self.binary), self.J)),
            onset=np.zeros((len(spec.variables[self.onset].states) if self.onset else 0, self.J)),
        )
        for v, _ in fam.context:  # recorded context: counted directly (whole numbers); the rest is imputed below
            if v in self.codes:
                c = self.codes[v]
                stats.context[v] += np.bincount(c[c >= 0], minlength=len(spec.variables[v].states))
        log_likelihood = 0.0
        bad_rows: list[int] = []
        cause_pos = {c: i for i, c in enumerate(self.mid_names)}
        for chunk in self.chunks:
            rows = chunk.rows
            query = {v: c[rows] for v, c in self.fixed_codes.items()}
            query.update(chunk.roots)
            result = network.query(EncodedEvidence.from_codes(network.states, query, len(rows)), (), joint=self.mid_names, validate=False)
            assert result.joint is not None  # asked for with joint=
            posterior, log_ev = np.array(result.joint.posterior[0]), result.log_evidence[0]
            peak = np.maximum.reduceat(log_ev, chunk.starts)
            dead = ~np.isfinite(peak)
            if dead.any():
                bad_rows.extend(rows[chunk.starts[dead]].tolist())
                continue
            spread = np.repeat(peak, np.diff(np.append(chunk.starts, len(rows))))
            with np.errstate(invalid="ignore"):
                scaled = np.exp(log_ev - spread)
            scaled[~np.isfinite(log_ev)] = 0.0
            total = np.add.reduceat(scaled, chunk.starts)
            log_likelihood += float(np.sum(np.log(total) + peak))
            weight = scaled / np.repeat(total, np.diff(np.append(chunk.starts, len(rows))))
            posterior[~np.isfinite(log_ev)] = 0.0
            cause_present = posterior @ self.present  # (B', n_causes)
            for v, _ in fam.context:
                if v in self.roots:
                    imputed = self.masks[v][rows] & (self.codes[v][rows] < 0) if v in self.codes else self.masks[v][rows]
                    w = weight * imputed
                    stats.context[v] += np.bincount(chunk.roots[v], weights=w, minlength=len(spec.variables[v].states))
            for c, _, factors, *_ in fam.causes:
                w = weight * self.masks[c][rows]
                config = np.ravel_multi_index([chunk.roots[spec.time_variable]] + [chunk.roots[f] for f in factors], [len(times), *self.cards[c]])
                size = len(times) * math.prod(self.cards[c])
                stats.cause_n[c] += np.bincount(config, weights=w, minlength=size)
                stats.cause_n1[c] += np.bincount(config, weights=w * cause_present[:, cause_pos[c]], minlength=size)
            columns = []
            if self.binary:
                f_codes = np.stack([self.codes[f][rows] for f in self.binary], axis=1)
                columns += [(f_codes == 1) * weight[:, None], (f_codes >= 0) * weight[:, None]]
            if self.onset:
                o = self.codes[self.onset][rows]
                columns.append((o[:, None] == np.arange(stats.onset.shape[0])[None, :]) * weight[:, None])
            if columns:
                # one product (J, B') @ (B', columns): expected counts of every leaf state per cause configuration
                sums = (posterior.T @ np.concatenate(columns, axis=1)).T
                nb = len(self.binary)
                stats.q1 += sums[:nb]
                stats.qobs += sums[nb : 2 * nb]
                stats.onset += sums[2 * nb :]
        if bad_rows:
            self._impossible(network, sorted(set(bad_rows)), iteration)
        return stats, log_likelihood

    def _impossible(self, network, rows, iteration):
        """Rows with every completion impossible: confirm in extended precision, then name them."""
        sub = {v: c[rows] for v, c in self.codes.items()}
        log_ev = network.query(EncodedEvidence.from_codes(network.states, sub, len(rows)), ()).log_evidence[0]
        labels = list(self.index[rows][:10])
        if not np.isfinite(log_ev).all():
            when = "under the model" if iteration == 0 else f"under the parameters reached at EM iteration {iteration}"
            raise EvidenceError(f"the evidence is impossible {when} (probability 0) in rows {labels}; check these cases or the priors")
        raise EvidenceError(f"the evidence of rows {labels} is too improbable under the model to learn from in double precision")

    # ------------------------------------------------------------ M-step
    def maximise(self, values: dict[str, float], stats: _Statistics, inner_tolerance: float) -> tuple[dict[str, float], dict[str, float]]:
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
        self._noisy_or(values, new, cases, stats, inner_tolerance)
        if self.onset:
            self._onset(values, new, cases, stats.onset, inner_tolerance)
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

        result = optimize.minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 500, "ftol": 1e-15, "gtol": 1e-10})
        theta = np.where(free, result.x, x0)
        for t, name in enumerate(baselines):
            if free[t]:
                new[name] = float(special.expit(theta[t]))
        for k, name in enumerate(or_names):
            if free[n_times + k]:
                new[name] = float(np.exp(theta[n_times + k]))

    def _noisy_or(self, values, new, cases, stats: _Statistics, inner_tolerance):
        """Leaks and links of every recorded binary finding at once (Diez/Vomlel EM).

        The cause posteriors of the E-step are held fixed and the hidden
        "which cause fired" indicators are iterated to their own fixed point
        (cheap: 256 configurations), so that complete data need few outer
        iterations; every inner step increases the expected log posterior.
        """
        if not self.binary:
            return
        q1, qobs = stats.q1, stats.qobs
        on = self.present  # (J, C)
        mask, leak_names, link_names = self._links
        leak = np.array([values[n] for n in leak_names])
        lam = np.array([[values[n] if n else 0.0 for n in row] for row in link_names])
        s_leak, v_leak = self._prior_arrays(leak_names)
        s_link, v_link = self._prior_arrays([n for row in link_names for n in row])
        s_link, v_link = s_link.reshape(lam.shape), v_link.reshape(lam.shape)
        den_leak = qobs.sum(axis=1)
        den_link = qobs @ on  # expected cases with the finding recorded and the cause present
        free_leak = (den_leak > 0) & np.isfinite(s_leak)
        free_link = mask & (den_link > 0) & np.isfinite(s_link)
        s_leak, s_link = np.where(np.isfinite(s_leak), s_leak, 0.0), np.where(np.isfinite(s_link), s_link, 0.0)
        for _ in range(_INNER_ITERATIONS):
            inhibit = np.ones_like(q1)
            for c in range(on.shape[1]):
                inhibit *= np.where(on[:, c][None, :] == 1, 1.0 - lam[:, c][:, None], 1.0)
            p_yes = 1.0 - (1.0 - leak)[:, None] * inhibit
            ratio = np.divide(q1, p_yes, out=np.zeros_like(q1), where=p_yes > 0)
            new_leak = np.where(free_leak, _ratio(s_leak * v_leak + leak * ratio.sum(axis=1), s_leak + den_leak, leak), leak)
            new_lam = np.where(free_link, _ratio(s_link * v_link + lam * (ratio @ on), s_link + den_link, lam), lam)
            change = max(np.max(np.abs(new_leak - leak)), np.max(np.abs(new_lam - lam), initial=0.0))
            leak, lam = new_leak, new_lam
            if change <= inner_tolerance:
                break
        for i, name in enumerate(leak_names):
            new[name], cases[name] = float(leak[i]), float(den_leak[i])
        for i, row in enumerate(link_names):
            for c, name in enumerate(row):
                if name:
                    new[name], cases[name] = float(lam[i, c]), float(den_link[i, c])

    def _onset(self, values, new, cases, q_states, inner_tolerance):
        """Onset distributions: EM of the equal-weight mixture, hidden "which present cause set the onset"."""
        owners, names = self._owners
        on = self.present[:, [self.mid_names.index(o) for o in owners]] if owners else np.zeros((self.J, 0))
        empty = on.sum(axis=1) == 0
        d = np.array([[values[n] for n in names[o]] for o in owners]).reshape(len(owners), q_states.shape[0])
        s_own = np.array([self.strengths[names[o][0]] for o in owners])
        v_own = np.array([[self.prior[n] for n in names[o]] for o in owners]).reshape(d.shape)
        finite = np.isfinite(s_own)
        s_own = np.where(finite, s_own, 0.0)
        for _ in range(_INNER_ITERATIONS):
            mix = on @ d  # (J, S): sum of the present owners' distributions
            ratio = np.divide(q_states.T, mix, out=np.zeros_like(mix), where=mix > 0)
            counts = d * (on.T @ ratio)  # (owners, S)
            total = counts.sum(axis=1)
            free = (total > 0) & finite
            new_d = np.where(free[:, None], _ratio(s_own[:, None] * v_own + counts, (s_own + total)[:, None], d), d)
            change = np.max(np.abs(new_d - d), initial=0.0)
            d = new_d
            if change <= inner_tolerance:
                break
        for o, row, c in zip(owners, d, counts.sum(axis=1), strict=True):
            for name, x in zip(names[o], row, strict=True):
                new[name], cases[name] = float(x), float(c)
        self._dirichlet(new, cases, names["leak"], q_states[:, empty].sum(axis=1))

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
    def run(self, max_iterations: int, tolerance: float) -> tuple[ModelSpec, LearningReport]:
        spec = self.spec
        network = CompiledNetwork(build_tables(spec))
        self._info = _information_per_case(spec, network)
        self._in_distribution = {n for g in self.families.distributions for n in g}
        values = dict(self.prior)
        trace: list[float] = []
        change, converged, iteration = math.inf, False, 0
        cases: dict[str, float] = {}
        current = spec
        while iteration < max_iterations:
            stats, log_likelihood = self.expect(network, iteration)
            trace.append(log_likelihood + self.log_prior(values))
            new, cases = self.maximise(values, stats, tolerance / 10)
            change = max((abs(math.log(new[n]) - math.log(values[n])) if p.kind == "odds_ratio" else abs(new[n] - values[n])) for n, p in spec.parameters.items())
            iteration += 1
            values = new
            current = spec.with_values(values)
            if change <= tolerance:
                converged = True
                break
            network = CompiledNetwork(build_tables(current))
        if not converged:
            warnings.warn(
                f"learning from cases: EM stopped after {iteration} iterations (max_iterations) with a largest parameter change of "
                f"{change:.3g} > tolerance {tolerance:g}; the values returned are the last iterate",
                ConvergenceWarning,
                stacklevel=4,
            )
        params = {
            n: replace(current.parameters[n], cases=float(cases[n]), strength=float(self.strengths[n]), hand_set_value=p.hand_set_value if p.hand_set_value is not None else p.value)
            for n, p in spec.parameters.items()
        }
        learned = replace(current, parameters=MappingProxyType(params))
        report = LearningReport(self.n_rows, iteration, converged, float(change), tolerance, max_iterations, tuple(trace))
        return learned, report

