"""Clinical reasoning about one patient: why this ranking, which test next, whether the patient fits.

Four questions a clinician asks of a ranked list, answered exactly with the
compiled engine (no sampling):

Weight of evidence (:meth:`Reasoner.explain`)
    For an observed finding ``f`` and a cause ``c``, given the rest of the
    evidence ``e - f``::

        W(c : f | e - f) = ln[ P(f | c, e - f) / P(f | not c, e - f) ]
                         = logit P(c | e) - logit P(c | e - f)

    the natural log of the finding's likelihood ratio for the cause, which is
    also how much the finding moves the cause's log posterior odds (I. J. Good's
    weight of evidence, in natural units; divide by ln 10 = 2.303 for bans).
    Positive pushes the cause up, negative down, 0 leaves it alone.
Value of a test (:meth:`Reasoner.next_tests`)
    The expected information gain about the *joint configuration* of the causes
    (which of the 2^k sets of causes is present), in bits: the mutual
    information ``I(C; T | e) = H(C | e) - E_t[H(C | e, T = t)]``. We chose the
    joint entropy over the sum of the causes' binary entropies because causes
    are not exclusive (a patient can have two): the joint entropy counts a test
    that separates "both" from "one of them", and it is what a test tells about
    the patient's whole differential (the sum of binary reductions counts twice
    what two correlated causes share).
Data conflict (:meth:`Reasoner.conflict`)
    Jensen's measure ``ln[ P(e_1) ... P(e_n) / P(e) ]`` over the observed
    variables. Findings produced by one cause are positively correlated, so for
    a patient the model can explain the measure is at most about 0; a positive
    value means the findings fit the model's patterns poorly (an atypical
    patient, a cause outside the model, or a recording error).
Most probable explanation (:meth:`Reasoner.most_probable_explanation`)
    The most probable joint sets of present causes given the evidence, the
    other variables summed out.

Next tests and explanations rest on one exact batched query: the evidence with
every cause not observed clamped to each of its 2^k configurations (k = 8 for the
shipped model). Weights of evidence take one query per finding left out, the
conflict one per finding alone.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .engine import CompiledNetwork, one_hot
from .errors import ArgumentError, PostfusionError, suggest
from .evidence import Evidence, encode_rows
from .spec import ModelSpec

__all__ = ["Reasoner", "MAX_ENUMERATED_CAUSES"]

#: Weights of evidence smaller than this are rounding noise (two equal posteriors computed apart) and shown as 0.
WEIGHT_ROUNDING = 1e-12

#: Relative margin by which another cause must beat the top cause for a result to "change the top".
TIE_TOLERANCE = 1e-9

#: The most unobserved causes whose 2^k joint configurations are enumerated.
MAX_ENUMERATED_CAUSES = 16

_NEXT_TESTS_COLUMNS = ["findings", "test_kind", "cost", "invasive", "information_gain", "probability_top_changes", "most_likely_result", "score", "rank"]


def _logit(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class Reasoner:
    """One patient's evidence on a compiled network, with the exact queries behind the explanations.

    Built by :meth:`Model.diagnose` for its :class:`~postfusion_bayes.diagnosis.Diagnosis`;
    use the Diagnosis methods (``explain``, ``next_tests``, ``conflict``,
    ``most_probable_explanation``) rather than this class.

    Parameters
    ----------
    network : CompiledNetwork
    spec : ModelSpec
        For the roles of the variables and the costs of tests.
    evidence : Evidence
        Validated evidence.
    causes : tuple of str
        The causes, in model order.
    """

    network: CompiledNetwork
    spec: ModelSpec
    evidence: Evidence
    causes: tuple[str, ...]

    # ------------------------------------------------------------------ helpers
    def _observed(self, roles: tuple[str, ...]) -> list[str]:
        """Observed variables with one of the roles, in the model's variable order."""
        seen = set(self.evidence.hard) | set(self.evidence.soft)
        return [name for name, var in self.spec.variables.items() if name in seen and var.role in roles]

    def _without(self, name: str) -> Evidence:
        return Evidence({k: v for k, v in self.evidence.hard.items() if k != name}, {k: v for k, v in self.evidence.soft.items() if k != name})

    def _only(self, name: str) -> Evidence:
        return Evidence({k: v for k, v in self.evidence.hard.items() if k == name}, {k: v for k, v in self.evidence.soft.items() if k == name})

    @functools.cached_property
    def free_causes(self) -> tuple[str, ...]:
        """Causes without hard evidence: the ones whose configurations are enumerated."""
        return tuple(c for c in self.causes if c not in self.evidence.hard)

    @functools.cached_property
    def candidate_tests(self) -> list[str]:
        """Unobserved findings (red flags are never tests), in model order."""
        seen = set(self.evidence.hard) | set(self.evidence.soft)
        return [name for name, var in self.spec.variables.items() if var.role == "finding" and name not in seen]

    @functools.cached_property
    def _configurations(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], frozenset[str]]:
        """Every configuration of the free causes, its posterior weight and P(test | configuration, e).

        Returns
        -------
        present : bool array (n_configurations, n_causes)
            Which causes are present, in model order (causes with hard
            evidence at their observed state).
        weight : array (n_configurations,)
            P(configuration | e); 0 where impossible.
        tests : dict of str to array (n_configurations, n_states)
            P(test | configuration, e) for every candidate test; rows of
            impossible configurations are 0.
        direct : frozenset of str
            The tests whose parents are all causes: given a configuration they
            are independent of the evidence and of each other.
        """
        free = self.free_causes
        if len(free) > MAX_ENUMERATED_CAUSES:
            raise PostfusionError(
                f"{len(free)} unobserved causes: enumerating their 2^{len(free)} joint configurations is too costly "
                f"(at most {MAX_ENUMERATED_CAUSES}); observe some causes or use the marginal posteriors"
            )
        grid = np.array(list(itertools.product((0, 1), repeat=len(free))), dtype=np.intp).reshape(2 ** len(free), len(free))
        n = len(grid)
        # A test whose parents are all causes is independent of the rest of the evidence once every
        # cause is fixed (it has no children), so P(test | configuration, e) is read off its table;
        # any other test is queried.
        tables = self.network.tables
        causes = set(self.causes)
        direct = [t for t in self.candidate_tests if set(tables.parents[t]) <= causes]
        queried = [t for t in self.candidate_tests if t not in direct]
        if not self.evidence.soft:  # plain evidence: the engine's fast path for many rows of state codes
            states = self.network.states
            codes = {name: np.full(n, states[name].index(state), dtype=np.intp) for name, state in self.evidence.hard.items()}
            codes.update({cause: grid[:, j] for j, cause in enumerate(free)})
            found, log_joint = self.network.posterior_codes(codes, queried, n)
            marginals = {t: m[None] for t, m in found.items()}
        else:
            base = encode_rows(self.network.states, [self.evidence])
            lam = {name: np.repeat(arr, n, axis=0) for name, arr in base.items()}
            for j, cause in enumerate(free):
                clamp = one_hot(grid[:, j], 2)
                lam[cause] = clamp * lam[cause] if cause in lam else clamp  # keeps a soft likelihood on the cause
            marginals, log_evidence = self.network.posterior_arrays(lam, queried, n, validate=False)
            log_joint = log_evidence[0]
        finite = np.isfinite(log_joint)
        if not finite.any():
            raise PostfusionError("the evidence is impossible under the model (probability 0)")
        top = log_joint[finite].max()
        weight = np.where(finite, np.exp(np.where(finite, log_joint - top, 0.0)), 0.0)
        weight /= weight.sum()
        present = np.zeros((n, len(self.causes)), dtype=bool)
        column = {c: i for i, c in enumerate(self.causes)}
        for j, cause in enumerate(free):
            present[:, column[cause]] = grid[:, j] == 1
        for cause, state in self.evidence.hard.items():  # observed causes keep their state
            if cause in column:
                present[:, column[cause]] = state == self.network.states[cause][1]
        cause_codes = {c: present[:, i].astype(np.intp) for i, c in enumerate(self.causes)}  # state 1 is "present"
        tests = {t: np.where(finite[:, None], np.nan_to_num(marginals[t][0], nan=0.0), 0.0) for t in queried}
        for t in direct:
            table = tables.cpts[t]
            tests[t] = np.where(finite[:, None], table[tuple(cause_codes[p] for p in tables.parents[t])], 0.0)
        return present, weight, tests, frozenset(direct)

    # ------------------------------------------------------------------ explain
    def explain(self, posterior: pd.Series) -> pd.DataFrame:
        """Weight of evidence of each observed finding for each cause, given the other findings.

        Parameters
        ----------
        posterior : Series
            The diagnosis' posterior (its first entry is the top cause).

        Returns
        -------
        DataFrame
            Index ``finding`` (observed findings and red flags; context is what
            the prior already conditions on), sorted by the size of the weight
            for the top cause (by the largest weight when the top cause was
            itself observed). Columns: ``observed`` (the state, or "soft");
            one column per cause not observed, in posterior order, with the weight
            of evidence in natural-log units (``exp`` of it is the finding's
            likelihood ratio given the rest); ``top_posterior_without`` (the top
            cause's posterior with that finding left out) and
            ``change_if_left_out`` (that minus the current posterior).
            ``attrs`` holds ``top_cause``, ``causes`` (the weight columns) and ``unit``.
        """
        items = self._observed(("finding", "red_flag"))
        order = [c for c in posterior.index if c in self.free_causes]
        top = str(posterior.index[0])
        rows = [self.evidence] + [self._without(name) for name in items]
        lam = encode_rows(self.network.states, rows)
        marginals, _ = self.network.posterior_arrays(lam, order, len(rows), validate=False)
        p = np.column_stack([marginals[c][0, :, 1] for c in order]) if order else np.zeros((len(rows), 0))
        now, without = p[0], p[1:]
        with np.errstate(invalid="ignore"):
            weight = _logit(now)[None, :] - _logit(without)
        # where both are 0 or 1 nothing moved; below 1e-12 a weight is the rounding of two equal posteriors
        weight = np.where((now[None, :] == without) | (np.abs(weight) < WEIGHT_ROUNDING), 0.0, weight)
        if top in order:
            k = order.index(top)
            top_without = without[:, k]
            top_now = now[k]
            key = np.abs(weight[:, k])
        else:  # the top cause was observed: no finding moves it
            top_now = float(posterior.iloc[0])
            top_without = np.full(len(items), top_now)
            key = np.abs(weight).max(axis=1) if order else np.zeros(len(items))
        observed = ["soft" if name in self.evidence.soft else self.evidence.hard[name] for name in items]
        frame = pd.DataFrame(weight, index=pd.Index(items, name="finding"), columns=pd.Index(order, name="cause"))
        frame.insert(0, "observed", observed)
        frame["top_posterior_without"] = top_without
        frame["change_if_left_out"] = top_without - top_now
        frame = frame.iloc[np.argsort(-key, kind="stable")]
        frame.attrs.update({"top_cause": top, "causes": order, "unit": "natural log of the likelihood ratio (weight of evidence)"})
        return frame

    # ------------------------------------------------------------------ next tests
    def test_costs(self, costs: Mapping[str, float] | None) -> dict[str, tuple[str, float, bool]]:
        """Kind, cost and invasiveness of every candidate test; ``costs`` overrides by finding or by test kind."""
        spec = self.spec
        kinds = spec.test_kinds
        table = {}
        for t in self.candidate_tests:
            kind = spec.variables[t].test
            table[t] = (kind, kinds[kind].cost, kinds[kind].invasive) if kind else ("unspecified", 0.0, False)
        if costs is None:
            return table
        if not isinstance(costs, Mapping):
            raise ArgumentError(f"costs must be a mapping of finding or test kind to a cost, got {type(costs).__name__}")
        allowed = spec.names("finding") + list(kinds) + (["unspecified"] if any(kind == "unspecified" for kind, _, _ in table.values()) else [])
        for key, value in costs.items():
            if key in spec.variables and spec.variables[key].role == "red_flag":
                raise ArgumentError(f"costs: {key!r} is a red flag, and red flags are never tests")
            if key not in allowed:
                raise ArgumentError(f"costs: unknown finding or test kind {key!r}{suggest(key, allowed)}; allowed: findings, or the test kinds {', '.join(kinds) or '(none declared)'}")
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 <= float(value) < math.inf:
                raise ArgumentError(f"costs: {key!r}: expected a finite number >= 0, got {value!r}")
        for t, (kind, cost, invasive) in table.items():  # a finding's own cost wins over its kind's
            table[t] = (kind, float(costs.get(t, costs.get(kind, cost))), invasive)
        return table

    def _units(self, by: str) -> list[tuple[str, list[str]]]:
        """List the tests to rank: one per finding, or one per procedure that observes several at once."""
        if by == "finding":
            return [(name, [name]) for name in self.candidate_tests]
        if by != "procedure":
            raise ArgumentError(f"by must be 'finding' or 'procedure', got {by!r}{suggest(by, ['finding', 'procedure'])}")
        units: dict[str, list[str]] = {}
        for name in self.candidate_tests:
            kind = self.spec.variables[name].test
            grouped = kind and self.spec.test_kinds[kind].one_procedure
            units.setdefault(kind if grouped else name, []).append(name)
        return list(units.items())

    def next_tests(self, top_index: int, costs: Mapping[str, float] | None = None, by: str = "finding") -> pd.DataFrame:
        """Unobserved findings (or procedures) ranked by expected information gain about the causes.

        Parameters
        ----------
        top_index : int
            Position (in model order) of the current top cause.
        costs : mapping, optional
            Cost per finding or per test kind, overriding the priors' ``test_kinds``.
        by : {"finding", "procedure"}
            "finding" ranks each unobserved finding alone. "procedure" ranks
            together the findings of a test kind marked ``one_procedure`` (one
            MRI shows scar, disc and stenosis at once): the gain is the
            information of all their results jointly, the cost the largest of
            their costs.

        Returns
        -------
        DataFrame
            Index ``test`` (a finding, or a procedure's test kind), most
            informative first. Columns ``findings`` (the findings it observes,
            joined by ", "), ``test_kind``, ``cost``, ``invasive``,
            ``information_gain`` (bits, see the module docstring),
            ``probability_top_changes`` (probability that the result makes
            another cause the most probable), ``most_likely_result``, ``score``
            (``information_gain / (1 + cost)``: bits per unit of effort, so a
            free question scores its whole gain) and ``rank``.
        """
        costs_of = self.test_costs(costs)
        present, weight, tests, direct = self._configurations
        as_float = present.astype(float)
        rows = []
        for label, findings in self._units(by):
            if len(findings) > 1 and not set(findings) <= direct:
                raise PostfusionError(f"cannot rank {label!r} as one procedure: {sorted(set(findings) - direct)} depend on more than the causes")
            q = np.ones((len(weight), 1))
            outcomes: list[tuple[str, ...]] = [()]
            for name in findings:  # independent given the causes: the joint result is a product
                q = (q[:, :, None] * tests[name][:, None, :]).reshape(len(weight), -1)
                outcomes = [(*o, f"{name}={s}" if len(findings) > 1 else s) for o in outcomes for s in self.network.states[name]]
            p_result = weight @ q
            joint = weight[:, None] * q
            with np.errstate(divide="ignore", invalid="ignore"):
                terms = np.where(joint > 0, joint * (np.log2(q) - np.log2(p_result)[None, :]), 0.0)
            gain = max(float(terms.sum()), 0.0)  # a weighted sum of KL divergences: >= 0 up to rounding
            after = joint.T @ as_float  # (n_results, n_causes): P(cause present, result | e)
            # another cause must beat the current top strictly (beyond rounding), so exact ties never count
            changed = (p_result > 0) & (after.max(axis=1) > after[:, top_index] * (1 + TIE_TOLERANCE))
            kinds, costs_here, invasive = zip(*(costs_of[f] for f in findings), strict=True)
            rows.append(
                (label, ", ".join(findings), kinds[0], max(costs_here), any(invasive), gain,
                 min(float(p_result[changed].sum()), 1.0), ", ".join(outcomes[int(np.argmax(p_result))]))
            )
        table = pd.DataFrame.from_records(rows, columns=["test", *_NEXT_TESTS_COLUMNS[:-2]], index="test")
        table["score"] = table["information_gain"] / (1.0 + table["cost"])
        table = table.iloc[np.argsort(-table["information_gain"].to_numpy(), kind="stable")]
        table["rank"] = np.arange(1, len(table) + 1)
        table.attrs.update({"unit": "bits of information about the joint configuration of the causes", "score": "information_gain / (1 + cost)", "by": by})
        return table

    # ------------------------------------------------------------------ conflict
    def conflict(self) -> float:
        """Jensen's data-conflict measure ln[P(e_1)...P(e_n) / P(e)] over every observed variable."""
        items = self._observed(("context", "cause", "finding", "red_flag"))
        if len(items) < 2:
            return 0.0
        rows = [self.evidence] + [self._only(name) for name in items]
        lam = encode_rows(self.network.states, rows)
        _, log_evidence = self.network.posterior_arrays(lam, [], len(rows), validate=False)
        log_p = log_evidence[0]
        return float(log_p[1:].sum() - log_p[0])

    # ------------------------------------------------------------------ explanations
    def most_probable_explanation(self, k: int = 3) -> pd.DataFrame:
        """Return the ``k`` most probable joint sets of present causes.

        Returns
        -------
        DataFrame
            Index ``rank`` (1 = most probable); columns ``present_causes`` (the
            causes present, joined by " + ", or "none of the modelled causes"),
            ``n_present`` and ``probability`` (P(exactly this set | e)). Causes
            given as hard evidence keep their observed state; a cause with soft
            evidence is enumerated like an unobserved one, its likelihood
            weighing each configuration. Fewer than ``k`` rows when fewer sets
            are possible.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ArgumentError(f"k must be a positive integer, got {k!r}")
        present, weight, _, _ = self._configurations
        order = np.argsort(-weight, kind="stable")[: int(k)]
        order = order[weight[order] > 0]  # an impossible set is no explanation
        names = np.array(self.causes)
        sets = [" + ".join(names[present[i]]) or "none of the modelled causes" for i in order]
        frame = pd.DataFrame(
            {"present_causes": sets, "n_present": present[order].sum(axis=1), "probability": weight[order]},
            index=pd.RangeIndex(1, len(order) + 1, name="rank"),
        )
        return frame
