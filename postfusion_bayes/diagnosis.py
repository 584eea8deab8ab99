"""The result of a diagnosis: posteriors, priors and red flags, as labelled pandas objects."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .adequacy import Adequacy, adequacy_of, misfit_of
from .engine.arguments import check_count
from .errors import PostfusionError

if TYPE_CHECKING:
    from .evidence import Evidence

__all__ = ["Diagnosis", "RedFlag", "CONFLICT_THRESHOLD"]

DISCLAIMER = (
    "Research and teaching tool, not a medical device: red flags come first, "
    "whatever the probabilities say."
)


@dataclass(frozen=True)
class RedFlag:
    """A red flag found in the evidence, with what to do about it."""

    name: str
    description: str
    advice: str

    def __str__(self) -> str:
        """Return the one-line warning: ``RED FLAG name: advice``."""
        return f"RED FLAG {self.name}: {self.advice}"


#: Conflict above which the report warns: the findings together at least 1.1 times rarer than apart.
#: Judgment: typical presentations go up to about 0.02 (the bare subacute recurrence of radicular
#: pain), and rounding leaves about 1e-16 where the conflict is exactly 0 (context only); the
#: contradictory patients of the tests lie above 0.4.
CONFLICT_THRESHOLD = 0.1

CONFLICT_WARNING = (
    "Conflict {:.2f} > 0: the findings fit the model's patterns poorly (together they are {:.3g} times "
    "less likely than if they were unrelated). Consider an atypical presentation, a cause outside the "
    "model, or a recording error."
)

def _decided_by_context(prior):
    """Whether the context alone decides a cause (a prior of exactly 0 or 1): elementwise for a Series, or one number."""
    return (prior <= 0) | (prior >= 1)


def _reordered(index: pd.Index, order: np.ndarray) -> pd.Index:
    """``index.take(order)``: the causes in posterior order."""
    return index.take(order)


@dataclass(frozen=True)
class Diagnosis:
    """Posterior probabilities of every cause for one patient.

    Built by :meth:`Model.diagnose`; the pandas views are made on first use.

    Attributes
    ----------
    posterior : Series
        P(cause present | evidence), sorted from most to least probable.
    prior : Series
        P(cause present | context only), in the same order.
    red_flags : list of RedFlag
        Red flags observed present, each with urgent advice; ``[]`` when none.
        Checked before and independently of the probabilities.
    evidence : dict
        The evidence as validated (hard states by variable; soft ones marked).

    The reasoning methods (:meth:`explain`, :meth:`next_tests`,
    :attr:`conflict`, :meth:`most_probable_explanation`, :meth:`summary`) run
    exact queries on the model that made the diagnosis; see
    :mod:`postfusion_bayes.reasoning` for the definitions.
    """

    causes: pd.Index = field(repr=False)
    posterior_values: np.ndarray = field(repr=False)
    prior_values: np.ndarray = field(repr=False)
    red_flags: list[RedFlag] = field(default_factory=list)
    evidence: dict = field(default_factory=dict)
    reasoner: Any = field(default=None, repr=False, compare=False)
    """The :class:`~postfusion_bayes.reasoning.Reasoner` behind the reasoning methods (None: not available)."""

    def __post_init__(self) -> None:
        """Hold the probabilities read-only (a copy when given writable arrays): a diagnosis never changes."""
        for name in ("posterior_values", "prior_values"):
            values = getattr(self, name)
            if not isinstance(values, np.ndarray) or values.flags.writeable:
                values = np.array(values, dtype=float)
                values.setflags(write=False)
                object.__setattr__(self, name, values)

    @functools.cached_property
    def _order(self) -> tuple[np.ndarray, pd.Index]:
        order = np.argsort(-self.posterior_values, kind="stable")
        return order, _reordered(self.causes, order)

    @functools.cached_property
    def posterior(self) -> pd.Series:
        """P(cause present | evidence), most probable first."""
        order, index = self._order
        return pd.Series(self.posterior_values[order], index=index, name="posterior", copy=False)

    @functools.cached_property
    def prior(self) -> pd.Series:
        """P(cause present | context only), in the order of :attr:`posterior`."""
        order, index = self._order
        return pd.Series(self.prior_values[order], index=index, name="prior", copy=False)

    def to_frame(self) -> pd.DataFrame:
        """Table of causes: prior, posterior, likelihood ratio and rank.

        The likelihood ratio is posterior odds over prior odds: how strongly
        the findings (beyond the context) moved each cause; ``inf`` when they
        make a possible cause certain, 0 when they rule it out. It is never
        NaN: where the context alone decides a cause (a prior of exactly 0 or
        1, e.g. a parameter at the end of its range), the findings cannot move
        it, and its likelihood ratio is 1 (:meth:`summary` says so).
        """
        prior = self.prior.reindex(self.posterior.index)
        post = self.posterior
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (post / (1 - post)) / (prior / (1 - prior))
        ratio = ratio.where(~_decided_by_context(prior), 1.0)  # 0/0 or inf/inf: the findings cannot move it
        frame = pd.DataFrame(
            {
                "prior": prior,
                "posterior": post,
                "likelihood_ratio": ratio,
                "rank": post.rank(ascending=False, method="min").astype(int),
            }
        )
        frame.index.name = "cause"
        return frame

    @property
    def top(self) -> str:
        """The most probable cause."""
        return str(self.causes[int(np.argmax(self.posterior_values))])

    # ------------------------------------------------------------------ reasoning
    def _require_reasoner(self):
        if self.reasoner is None:
            raise PostfusionError("this Diagnosis was built without its model; use Model.diagnose() to get the reasoning methods")
        return self.reasoner

    def explain(self) -> pd.DataFrame:
        """Which findings pushed each cause up or down: weights of evidence.

        Returns
        -------
        DataFrame
            One row per observed finding (and red flag), most influential on
            the top cause first. ``observed`` is the state seen; ``role`` is
            "finding" or "red_flag" (a red flag is listed apart by the reports:
            it calls for the urgent action of :attr:`red_flags`, whatever it
            weighs for a cause; select ``table[table["role"] == "finding"]``
            for the findings alone); one column per
            cause not itself observed holds the weight of evidence of the finding for the cause
            given the other findings, ln[P(f | cause, rest) / P(f | no cause,
            rest)] (natural log: +2.3 is a likelihood ratio of 10); the last two
            columns say what the top cause's posterior would be without the
            finding, and the difference. See :mod:`postfusion_bayes.reasoning`.

        Examples
        --------
        >>> from postfusion_bayes import load_model
        >>> dx = load_model().diagnose({"time_since_surgery": "over_2_years",
        ...                             "neurogenic_claudication": True, "radicular_pain": False})
        >>> table = dx.explain()
        >>> table.index.tolist()
        ['neurogenic_claudication', 'radicular_pain']
        >>> table["role"].tolist()
        ['finding', 'finding']
        >>> bool(table.loc["neurogenic_claudication", "adjacent_segment_disease"] > 0)
        True
        """
        return self._explanation.copy()

    @functools.cached_property
    def _explanation(self) -> pd.DataFrame:
        return self._require_reasoner().explain(self.posterior)

    def next_tests(self, costs: Mapping[str, float] | None = None, by: str = "finding") -> pd.DataFrame:
        """Unobserved findings ranked by how much they would tell about the causes.

        Parameters
        ----------
        costs : mapping, optional
            Relative cost per finding or per test kind (e.g.
            ``{"cross_sectional_imaging": 10}``), overriding the ``test_kinds``
            of the priors (history 0, examination 1, radiographs 2, MRI/CT and
            EMG 4, diagnostic injections 8 and invasive).
        by : {"finding", "procedure"}
            Rank each finding alone, or rank together the findings one
            procedure shows at once (a gadolinium MRI shows scar, disc and
            stenosis; test kinds marked ``one_procedure`` in the priors).

        Returns
        -------
        DataFrame
            Index ``test`` (a finding, or a procedure), best first by
            ``score`` = ``information_gain / (1 + cost)`` (bits per unit of
            cost: the one ranking, also used by :meth:`summary`, the HTML
            report and ``postfusion-bayes next-tests``; a dearer test ranks
            lower); columns ``findings`` (what it observes), ``test_kind``,
            ``cost``, ``invasive``, ``information_gain`` (expected reduction of
            the entropy over the joint configuration of the causes, in bits),
            ``probability_top_changes`` (chance that the result makes another
            cause the most probable), ``most_likely_result``, ``score``,
            ``rank``, and what a result would do to the top cause:
            ``top_cause``, ``top_now``, ``positive_result`` ("yes" for a yes/no
            finding, its most likely result otherwise; for a procedure, any of
            its findings positive), ``probability_positive``,
            ``top_if_positive`` and ``top_if_negative`` (for every result of
            each finding, see :meth:`result_effects`). Red flags are never
            tests.

        Raises
        ------
        ArgumentError
            If ``costs`` is not a mapping of finding or test kind (not a red
            flag) to a finite cost >= 0, or ``by`` is neither choice.

        Examples
        --------
        >>> from postfusion_bayes import load_model
        >>> dx = load_model().diagnose({"time_since_surgery": "6_weeks_to_6_months",
        ...                             "onset": "gradual_after_relief", "radicular_pain": True})
        >>> tests = dx.next_tests()
        >>> bool((tests["information_gain"] >= 0).all())
        True
        >>> "saddle_anesthesia" in tests.index
        False
        >>> bool(tests["score"].is_monotonic_decreasing)
        True
        """
        if costs is None and by in ("finding", "procedure"):
            return self._default_next_tests(by).copy()
        return self._require_reasoner().next_tests(self._top_index, costs, by)

    @functools.cached_property
    def _top_index(self) -> int:
        return int(np.argmax(self.posterior_values))

    @functools.cached_property
    def _next_tests_cache(self) -> dict[str, pd.DataFrame]:
        """A pure memo of the default-cost rankings (the report and ``next_tests()`` share them).

        It cannot change an answer: each entry is computed once from this
        immutable diagnosis, and callers get a copy.
        """
        return {}

    def _default_next_tests(self, by: str) -> pd.DataFrame:
        cache = self._next_tests_cache
        if by not in cache:
            cache[by] = self._require_reasoner().next_tests(self._top_index, None, by)
        return cache[by]

    def result_effects(self) -> pd.DataFrame:
        """Say what each result of each unobserved finding would do to the top cause.

        Returns
        -------
        DataFrame
            Index (``finding``, ``result``), every state of every unobserved
            finding (red flags are never tests); columns ``test_kind``,
            ``probability`` (P(result | evidence)), ``top_cause``,
            ``top_now`` (its posterior now) and ``top_after`` (its posterior
            if that result were seen: what :meth:`Model.diagnose` gives with
            the finding added; the current posterior for an impossible result).

        Examples
        --------
        >>> from postfusion_bayes import load_model
        >>> dx = load_model().diagnose({"time_since_surgery": "over_2_years", "neurogenic_claudication": True})
        >>> effects = dx.result_effects()
        >>> after = effects.loc[("radicular_pain", "yes"), "top_after"]
        >>> moved = load_model().diagnose({"time_since_surgery": "over_2_years", "neurogenic_claudication": True,
        ...                                "radicular_pain": True}).posterior[dx.top]
        >>> bool(abs(after - moved) < 1e-9)
        True
        """
        return self._result_effects.copy()

    @functools.cached_property
    def _result_effects(self) -> pd.DataFrame:
        return self._require_reasoner().result_effects(self._top_index)

    @functools.cached_property
    def conflict(self) -> float:
        """Data conflict ln[P(e_1)...P(e_n) / P(e)] over the observed variables.

        About 0 or negative when the findings hang together as the model
        expects; positive when they fit its patterns poorly (an atypical
        patient, a cause outside the model, or a recording error). The report
        warns above :data:`CONFLICT_THRESHOLD`.
        """
        return self._require_reasoner().conflict()

    @functools.cached_property
    def adequacy(self) -> Adequacy:
        """Whether the model explains this patient at all (:mod:`postfusion_bayes.adequacy`).

        The percentile of the patient's log P(evidence) among 1,000 patients
        simulated from the model with the same context and observed on the same
        variables (fixed seed); ``adequacy.fires`` below 0.05. Computed on first
        use: tens of milliseconds with the context observed, up to seconds with
        much of it unobserved and many findings observed (each simulated
        pattern's probability is then a sum over the unobserved context). The
        report shows it when it fires, and asks only whether it does, which is
        decided sooner (:func:`postfusion_bayes.adequacy.misfit_of`). For other
        settings call :func:`postfusion_bayes.adequacy.check_adequacy`.

        Examples
        --------
        >>> from postfusion_bayes import load_model
        >>> dx = load_model().diagnose({"time_since_surgery": "over_2_years", "neurogenic_claudication": True})
        >>> dx.adequacy.fires
        False
        """
        r = self._require_reasoner()
        return adequacy_of(r.spec, r.network, r.evidence)

    @property
    def conflict_warning(self) -> str:
        """The report's conflict warning, or "" when :attr:`conflict` is at most :data:`CONFLICT_THRESHOLD`."""
        c = self.conflict
        return CONFLICT_WARNING.format(c, np.exp(c)) if c > CONFLICT_THRESHOLD else ""

    def most_probable_explanation(self, k: int = 3) -> pd.DataFrame:
        """Return the ``k`` most probable joint sets of present causes (a patient can have two).

        Parameters
        ----------
        k : int
            How many sets, most probable first (a positive integer).

        Returns
        -------
        DataFrame
            Index ``rank``; columns ``present_causes`` (joined by " + "),
            ``n_present`` and ``probability``. ``attrs["method"]`` says how
            they were found, exactly either way: "enumeration" (every set's
            probability, while the sets fit the memory budget) or "branch and
            bound" (beyond it: only the sets that can be among the ``k`` best).

        Raises
        ------
        ArgumentError
            If ``k`` is not a positive integer.
        MemoryBudgetError
            If neither method fits the memory budget.

        Examples
        --------
        >>> from postfusion_bayes import load_model
        >>> dx = load_model().diagnose({"time_since_surgery": "under_6_weeks", "onset": "immediate",
        ...                             "radicular_pain": True, "ct_screw_breach": True})
        >>> dx.most_probable_explanation(1)["present_causes"].tolist()
        ['nerve_injury']
        """
        return self._require_reasoner().most_probable_explanation(k)

    # ------------------------------------------------------------------ report
    def _report(self, n_findings: int = 5, n_tests: int = 3) -> dict:
        """Collect the pieces of the reports (:mod:`postfusion_bayes.report`).

        ``mattered``: the findings (not the red flags) ranked by their weight on
        the top cause; ``raised``: the red flags observed present, apart;
        ``tests``: the procedures ranked by score (None, and not computed,
        while a red flag is raised; None when the patient does not fit the
        model); ``effects``:
        :meth:`result_effects`; ``fits``: False when the adequacy check fires
        (then neither the findings nor the tests are given: the model does not
        explain this patient).
        """
        n_findings, n_tests = check_count("n_findings", n_findings, minimum=0), check_count("n_tests", n_tests, minimum=0)
        frame = self.to_frame()
        base = {"frame": frame, "top": self.top, "mattered": None, "raised": [f.name for f in self.red_flags], "tests": None, "effects": None,
                "conflict_warning": self.conflict_warning, "adequacy_warning": self._adequacy_warning, "fits": self._report_adequacy is None, "note": ""}
        tests: pd.DataFrame | None = None
        effects: pd.DataFrame | None = None
        try:
            explanation = self._explanation
            if not self.red_flags:  # no next tests while a red flag is raised (the advice names the investigation): none computed
                tests = self._default_next_tests("procedure")
                effects = self._result_effects
        except PostfusionError as exc:  # e.g. too many unobserved causes to enumerate: report what can be
            return {**base, "note": str(exc)}
        if not base["fits"]:
            return base
        top = self.top
        causes = explanation.attrs["causes"]
        findings = explanation[explanation["role"] != "red_flag"]
        weights = findings[causes].to_numpy(dtype=float) if causes else np.zeros((len(findings), 1))
        strongest = np.nan_to_num(np.abs(weights), posinf=np.finfo(float).max).argmax(axis=1)
        mattered = pd.DataFrame(
            {
                "observed": findings["observed"],
                "weight_for_top_cause": findings[top] if top in causes else 0.0,
                "moves_most": [causes[j] for j in strongest] if causes else "",
                "largest_weight": weights[np.arange(len(weights)), strongest],
                "top_posterior_without": findings["top_posterior_without"],
            },
            index=findings.index,
        )  # explain() already puts the findings that moved the top cause most first
        shown = None if tests is None else tests.head(n_tests)  # one ranking: next_tests() is sorted by score
        return {**base, "mattered": mattered.head(n_findings), "tests": shown, "effects": effects}

    def _report_evidence(self) -> Evidence:
        """Return the evidence the reports' adequacy check judges: the patient's, without the red flags when one is raised.

        Red flags are rare by design (leaks of 0.5-2%), so a raised red flag
        alone makes almost any patient "not fit" (saddle anaesthesia after 2
        years: 1.1% of simulated patients); the red flag is handled by its
        advice, and whether the differential fits the model is judged on the
        other findings.
        """
        r = self._require_reasoner()
        if not self.red_flags:
            return r.evidence
        from .evidence import with_implications

        flags = {f.name for f in self.red_flags} | {n for n, v in r.spec.variables.items() if v.role == "red_flag"}
        return with_implications(r.spec, {k: v for k, v in r.evidence.hard.items() if k not in flags}, {k: v for k, v in r.evidence.soft.items() if k not in flags})

    @functools.cached_property
    def _report_adequacy_in_full(self) -> Adequacy:
        """The adequacy check of the reports' evidence (:meth:`_report_evidence`), with its exact percentile."""
        if not self.red_flags:
            return self.adequacy
        r = self._require_reasoner()
        return adequacy_of(r.spec, r.network, self._report_evidence())

    @functools.cached_property
    def _report_adequacy(self) -> Adequacy | None:
        """The reports' adequacy check when it fires, None when it does not.

        A text report needs only to know whether the check fires, so, unless
        the check was already run in full, the simulated patients are queried
        until that is decided: the same answer as the whole check, often for a
        tenth of the queries.
        """
        full = self.__dict__.get("_report_adequacy_in_full", None if self.red_flags else self.__dict__.get("adequacy"))
        if full is not None:
            return full if full.fires else None
        r = self._require_reasoner()
        return misfit_of(r.spec, r.network, self._report_evidence())

    @property
    def _adequacy_warning(self) -> str:
        """The report's adequacy line when the check fires, else ""."""
        a = self._report_adequacy
        left_out = " (red flags left out: they are rare by design)" if self.red_flags else ""
        return "" if a is None else f"Adequacy check{left_out}: {a}."

    def summary(self, n_findings: int = 5, n_tests: int = 3) -> str:
        """Write a readable report: red flags, ranked causes, the findings that mattered, the next tests, conflict.

        Red-flag mode: when a red flag is raised, the report leads with its
        urgent advice, suggests no next tests (the advice names the
        investigation), and shows the differential only below the divider
        :data:`~postfusion_bayes.report.TEACHING_DIVIDER`, with the raised red
        flags listed apart from the findings that mattered. When the patient
        does not fit the model (:attr:`adequacy` fires), the report says so
        first and does not explain the top cause. See :mod:`postfusion_bayes.report`.

        Examples
        --------
        >>> from postfusion_bayes import load_model
        >>> dx = load_model().diagnose({"time_since_surgery": "over_2_years",
        ...                             "neurogenic_claudication": True, "saddle_anesthesia": True})
        >>> print(dx.summary().splitlines()[0])  # doctest: +ELLIPSIS
        RED FLAG saddle_anesthesia: Suspected cauda equina syndrome: emergency MRI ...
        """
        from .report import render_text

        return render_text(self, n_findings, n_tests)

    def __repr__(self) -> str:
        """Return the report of :meth:`summary`; without a reasoner, the red flags, the posteriors and the disclaimer."""
        if self.reasoner is None:
            lines = [str(flag) for flag in self.red_flags]
            lines.append(self.to_frame().round(3).to_string())
            lines.append(DISCLAIMER)
            return "\n".join(lines)
        return self.summary()

    def _repr_html_(self) -> str:
        """Return the HTML report shown by Jupyter (:func:`postfusion_bayes.report.render_html`)."""
        from .report import render_html

        return render_html(self)
