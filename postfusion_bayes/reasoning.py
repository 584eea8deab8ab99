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
Ranking of tests (:data:`SCORE_FORMULA`)
    One ranking, used by ``Diagnosis.next_tests()``, the report and the
    command line: the score ``information_gain / (1 + cost)``, bits per unit
    of cost, with the costs of the priors' ``test_kinds`` (0 for a question in
    the history, so a free question scores its whole gain) or those given by
    ``costs=``. Raising a test's cost lowers its rank.
Data conflict (:meth:`Reasoner.conflict`)
    Jensen's measure ``ln[ P(e_1) ... P(e_n) / P(e) ]`` over the observed
    variables. Findings produced by one cause are positively correlated, so for
    a patient the model can explain the measure is at most about 0; a positive
    value means the findings fit the model's patterns poorly (an atypical
    patient, a cause outside the model, or a recording error).
Most probable explanation (:meth:`Reasoner.most_probable_explanation`)
    The most probable joint sets of present causes given the evidence, the
    other variables summed out: read off the joint posterior of every set
    while the sets fit the memory budget, else found by an exact branch and
    bound over the causes (the engine's ``most_probable``).

Next tests and explanations rest on one exact batched query: the evidence with
every cause not observed clamped to each of its 2^k configurations (k = 8 for the
shipped model). Weights of evidence take one query per finding left out, the
conflict one per finding alone.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from .engine import CompiledNetwork
from .engine.arguments import check_count, check_real
from .engine.encoding import EncodedEvidence
from .engine.structured import NoisyOr
from .errors import ArgumentError, MemoryBudgetError, PostfusionError, suggest
from .evidence import Evidence, encode_rows, with_implications
from .spec import BOOLEAN_STATES, ModelSpec

__all__ = ["Reasoner"]

#: Weights of evidence smaller than this are rounding noise (two equal posteriors computed apart) and shown as 0.
WEIGHT_ROUNDING = 1e-12

#: Relative margin by which another cause must beat the top cause for a result to "change the top".
TIE_TOLERANCE = 1e-9

#: Arrays over the joint configurations that ranking the tests holds at its peak, per test: ranking single
#: findings (and ``result_effects``) holds one weighted table per test beside the configurations (peak traced
#: about 100 such arrays for 41 tests and 16 causes); ranking procedures also builds each test's (no, yes)
#: table and the products of a procedure's results (about 270 for 41 tests). Rounded up.
_ARRAYS_PER_TEST = {"finding": 3, "procedure": 7}

#: The one ranking of next tests (Diagnosis.next_tests, the report, the CLI): information per unit of cost.
SCORE_FORMULA = "information_gain / (1 + cost)"

_NEXT_TESTS_COLUMNS = ["findings", "test_kind", "cost", "invasive", "information_gain", "probability_top_changes", "most_likely_result", "score", "rank",
                       "top_cause", "top_now", "positive_result", "probability_positive", "top_if_positive", "top_if_negative"]


def _kl_bits(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Compute KL(q || p) in bits over the last axis (the results): 0 where q is 0, and exactly 0 where q equals p.

    ``p`` broadcasts against ``q``; a state with ``p = 0`` has ``q = 0`` wherever its weight is positive.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = np.where(p > 0, np.log2(np.where(p > 0, p, 1.0)), 0.0)
        return np.where(q > 0, q * (np.log2(np.where(q > 0, q, 1.0)) - log_p), 0.0).sum(axis=-1)


def _entropy_bits(p: np.ndarray) -> float:
    """Entropy in bits of one distribution (0 log 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(0.0 - np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0).sum())


def _logit(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class NoisyBlock:
    """The noisy-OR tests over the joint configurations of the causes, side by side.

    Attributes
    ----------
    names : tuple of str
    small : tuple of arrays (2^k, 2)
        Each test's table over its own parents' configurations.
    parents : tuple of (axes, order, index)
        Where each test's parents are in the configurations, seen as a tensor with one axis of size 2
        per free cause (in :attr:`Reasoner.free_causes` order): ``axes`` the free parents' axes
        (ascending), ``order`` the permutation that puts them in the test's parent order, ``index`` the
        test's table indexed by parent (the observed state for an observed parent, all for a free one).
    spread : tuple of (table, sizes)
        Each test's (no, yes) table over its free parents, shaped to broadcast over the configurations
        seen as a tensor of shape ``sizes`` (runs of parent and other axes merged).
    """

    names: tuple[str, ...]
    small: tuple[np.ndarray, ...]
    parents: tuple[tuple[tuple[int, ...], tuple[int, ...], tuple[Any, ...]], ...]
    spread: tuple[tuple[np.ndarray, tuple[int, ...]], ...]

    def over_configurations(self, result: int, weight: np.ndarray | None = None) -> np.ndarray:
        """P(test = ``result`` | configuration), times ``weight`` if given, shape (n_tests, n_configurations)."""
        n = int(np.prod(self.spread[0][1])) if weight is None else weight.size
        out = np.empty((len(self.names), n))
        for k, (table, sizes) in enumerate(self.spread):
            if weight is None:
                out[k].reshape(sizes)[...] = table[..., result]
            else:
                np.multiply(table[..., result], weight.reshape(sizes), out=out[k].reshape(sizes))
        return out

    @functools.cached_property
    def absent(self) -> np.ndarray:
        """P(test no | configuration), shape (n_configurations, n_tests), built on first use (a pure memo)."""
        out = self.over_configurations(0).T
        out.setflags(write=False)
        return out

    @functools.cached_property
    def present(self) -> np.ndarray:
        """P(test yes | configuration), shape (n_configurations, n_tests), built on first use (a pure memo).

        Ranking single tests needs neither; procedures of several tests and :meth:`table` do.
        """
        out = self.over_configurations(1).T
        out.setflags(write=False)
        return out

    def table(self, name: str) -> np.ndarray:
        """Return one test's (no, yes) probabilities for every configuration, shape (n_configurations, 2)."""
        k = self.names.index(name)
        return np.stack([self.absent[:, k], self.present[:, k]], axis=1)

    def parent_weights(self, k: int, weight: np.ndarray) -> np.ndarray:
        """Posterior of test ``k``'s parents' configurations (its table's rows) from the weight of every configuration.

        The weights summed over the other causes' axes, one axis at a time from the outermost (each sum
        adds two contiguous halves), so ``weight`` must cover every configuration.
        """
        axes, order, index = self.parents[k]
        summed = weight
        remaining = int(weight.size).bit_length() - 1
        before = 0  # kept axes before the current one
        for a in range(remaining):
            if a in axes:
                before += 1
                continue
            halves = summed.reshape(2**before, 2, -1)
            summed = np.add(halves[:, 0], halves[:, 1])
        out = np.zeros(self.small[k].shape[0])
        out.reshape((2,) * len(index))[index] = summed.reshape((2,) * len(axes)).transpose(order) if axes else summed.sum()
        return out


def _runs(n_axes: int, axes: tuple[int, ...]) -> tuple[list[bool], tuple[int, ...]]:
    """Group ``n_axes`` axes of size 2 into runs of consecutive parent axes (``axes``) and other axes.

    Returns whether each run is of parents and its size (``2**length``): the same tensor with few axes,
    which numpy broadcasts over much faster than over one axis of size 2 per cause.
    """
    runs: list[bool] = []
    sizes: list[int] = []
    chosen = set(axes)
    for a in range(n_axes):
        parent = a in chosen
        if runs and runs[-1] == parent:
            sizes[-1] *= 2
        else:
            runs.append(parent)
            sizes.append(2)
    return runs, tuple(sizes)


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
        # implications are applied again: leaving out the finding that implies another brings the implied one back
        return with_implications(self.spec, {k: v for k, v in self.evidence.hard.items() if k != name}, {k: v for k, v in self.evidence.soft.items() if k != name})

    def _only(self, name: str) -> Evidence:
        return Evidence({k: v for k, v in self.evidence.hard.items() if k == name}, {k: v for k, v in self.evidence.soft.items() if k == name})

    @functools.cached_property
    def free_causes(self) -> tuple[str, ...]:
        """Causes without hard evidence: the ones whose configurations are enumerated."""
        return tuple(c for c in self.causes if c not in self.evidence.hard)

    @functools.cached_property
    def candidate_tests(self) -> list[str]:
        """Unobserved findings (red flags are never tests), in model order; a finding implied by one observed present is known, not a test."""
        seen = set(self.evidence.hard) | set(self.evidence.soft)
        seen |= {implied for implying, implied in self.spec.implications.items() if self.evidence.hard.get(implying) == BOOLEAN_STATES[1]}
        return [name for name, var in self.spec.variables.items() if var.role == "finding" and name not in seen]

    @functools.cached_property
    def _encoded(self) -> EncodedEvidence:
        return encode_rows(self.network.states, [self.evidence])

    @functools.cached_property
    def _joint(self) -> tuple[np.ndarray, np.ndarray]:
        """Every configuration of the free causes and its posterior weight, from one joint query.

        Returns
        -------
        present : bool array (n_configurations, n_causes)
            Which causes are present, in model order (causes with hard
            evidence at their observed state); configurations in the order of
            ``itertools.product((0, 1), repeat=len(free))``.
        weight : array (n_configurations,)
            P(configuration | e); 0 where impossible.

        Raises
        ------
        MemoryBudgetError
            When the configurations do not fit in the network's memory budget.
        """
        free = self.free_causes
        n = 2 ** len(free)
        needed = n * 8 * (len(self.causes) + 8)
        if needed > self.network.memory_budget:
            raise MemoryBudgetError(needed, self.network.memory_budget, f"enumerating the 2^{len(free)} joint configurations of the unobserved causes")
        result = self.network.query(self._encoded, (), joint=free)
        weight = result.joint.posterior[0, 0] if free else np.ones(1)  # type: ignore[union-attr]
        if not np.isfinite(result.log_evidence[0, 0]):
            raise PostfusionError("the evidence is impossible under the model (probability 0)")
        weight = np.where(np.isfinite(weight), weight, 0.0)
        grid = result.joint.configurations  # type: ignore[union-attr]  # itertools.product((0, 1), ...) order
        column = {c: i for i, c in enumerate(self.causes)}
        if free == self.causes:
            present = grid.astype(bool)
        else:
            present = np.zeros((n, len(self.causes)), dtype=bool)
            for j, cause in enumerate(free):
                present[:, column[cause]] = grid[:, j] == 1
        for cause, state in self.evidence.hard.items():  # observed causes keep their state
            if cause in column:
                present[:, column[cause]] = state == self.network.states[cause][1]
        return present, weight

    @functools.cached_property
    def _present_float(self) -> np.ndarray:
        """:attr:`_joint`'s configurations as floats 0/1 (a pure memo: the ranking uses them twice)."""
        present = self._joint[0].astype(float)
        present.setflags(write=False)
        return present

    @functools.cached_property
    def _tests(self) -> tuple[dict[str, np.ndarray], frozenset[str], NoisyBlock | None]:
        """P(test | configuration, e) for every candidate test, over the configurations of :attr:`_joint`.

        A test whose parents are all causes is independent of the rest of the
        evidence once every cause is fixed (it has no children), so its
        probabilities are read off its table (or its structured numbers); any
        other test is queried with the free causes clamped.

        Returns
        -------
        tests : dict of str to array (n_configurations, n_states)
            The tests that are not noisy-OR; rows of impossible configurations are 0.
        direct : frozenset of str
            The tests whose parents are all causes: given a configuration they
            are independent of the evidence and of each other.
        block : NoisyBlock or None
            The noisy-OR tests, side by side (:meth:`NoisyBlock.table` gives one as ``tests`` would).
        """
        present, weight = self._joint
        self._check_ranking_memory(_ARRAYS_PER_TEST["finding"])
        tables = self.network.tables
        causes = set(self.causes)
        direct = [t for t in self.candidate_tests if set(tables.parents[t]) <= causes]
        queried = [t for t in self.candidate_tests if t not in direct]
        possible = weight > 0
        column = {c: i for i, c in enumerate(self.causes)}
        tests: dict[str, np.ndarray] = {}
        noisy = [t for t in direct if isinstance(tables.cpd(t), NoisyOr)]
        block: NoisyBlock | None = None
        if noisy:
            # each noisy-OR test given each configuration is its table at the configuration of its parents: with the
            # configurations seen as a tensor (one axis per free cause), its table broadcast over the other axes
            axis_of = {c: i for i, c in enumerate(self.free_causes)}
            small = []
            where = []
            spread = []
            for t in noisy:
                parents = tables.parents[t]
                small.append(tables.cpd(t).configuration_table)  # type: ignore[union-attr]  # rows: the first parent most significant
                full = small[-1].reshape((2,) * len(parents) + (2,))  # the parents' axes, then (no, yes)
                index = tuple(slice(None) if p in axis_of else int(present[0, column[p]]) for p in parents)  # observed: fixed
                axes = [axis_of[p] for p in parents if p in axis_of]
                order = tuple(int(i) for i in np.argsort(axes))  # parent order -> ascending axes
                where.append((tuple(sorted(axes)), tuple(int(i) for i in np.argsort(order)), index))
                table = full[index].transpose(order + (len(axes),))
                runs, sizes = _runs(len(axis_of), tuple(sorted(axes)))
                table = table.reshape(tuple(size if parent else 1 for parent, size in zip(runs, sizes, strict=True)) + (2,))
                spread.append((table, sizes))
            block = NoisyBlock(tuple(noisy), tuple(small), tuple(where), tuple(spread))
        for t in direct:
            if t in noisy:
                continue
            parent_states = present[:, [column[p] for p in tables.parents[t]]].astype(np.intp)
            cpd = tables.cpd(t)
            probabilities = cpd[tuple(parent_states.T)] if isinstance(cpd, np.ndarray) else cpd.given(parent_states)
            tests[t] = np.where(possible[:, None], probabilities, 0.0)
        if queried:
            n = len(weight)
            states = self.network.states
            free = self.free_causes
            codes = {name: np.full(n, states[name].index(state), dtype=np.intp) for name, state in self.evidence.likelihood_hard.items()}
            codes.update({cause: present[:, column[cause]].astype(np.intp) for cause in free})
            soft = {name: np.repeat(np.asarray(v, dtype=float)[None], n, axis=0) for name, v in self.evidence.likelihood_soft.items()}
            result = self.network.query(EncodedEvidence.from_codes(states, codes, n, soft), queried, validate=False)
            for t in queried:
                tests[t] = np.where(possible[:, None], np.nan_to_num(result.marginals[t][0], nan=0.0), 0.0)
        return tests, frozenset(direct), block

    def _check_ranking_memory(self, per_test: int) -> None:
        """Raise MemoryBudgetError if ranking the tests would hold more than the budget: ``per_test`` arrays over the configurations per test."""
        n_tests = len(self.candidate_tests)
        needed = 2 ** len(self.free_causes) * 8 * (per_test * n_tests + len(self.causes) + 16)
        if needed > self.network.memory_budget:
            raise MemoryBudgetError(needed, self.network.memory_budget, f"ranking {n_tests} tests over the 2^{len(self.free_causes)} joint configurations of the unobserved causes")

    # ------------------------------------------------------------------ explain
    def _left_out(self, items: list[str]) -> EncodedEvidence:
        """Encode the evidence, then the evidence without each of ``items`` in turn, one row each, as :func:`encode_rows` would.

        Without implications at work (no finding's evidence left out because
        another implies it), leaving a finding out only clears its own entry:
        the rows are the patient's encoded row repeated, each with one entry
        cleared, and nothing is parsed or encoded again. Otherwise each row is
        the evidence rebuilt without the finding (:meth:`_without`), which
        brings back a finding the left-out one implied.
        """
        if self.evidence.implied:
            return encode_rows(self.network.states, [self.evidence] + [self._without(name) for name in items])
        base = self._encoded
        n = 1 + len(items)
        codes = {k: np.repeat(v, n) for k, v in base.codes.items()}
        likelihoods = {k: np.repeat(v, n, axis=0) for k, v in base.likelihoods.items()}
        scales = {k: np.repeat(v, n) for k, v in base.log_scales.items()}
        for row, name in enumerate(items, start=1):
            if name in codes:
                codes[name][row] = -1
            if name in likelihoods:
                likelihoods[name][row] = 1.0
            if name in scales:
                scales[name][row] = 0.0
        for array in (*codes.values(), *likelihoods.values(), *scales.values()):
            array.setflags(write=False)
        return EncodedEvidence(n, MappingProxyType(codes), MappingProxyType(likelihoods), MappingProxyType(scales))

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
            ``role`` ("finding", or "red_flag": a red flag raised is urgent
            whatever it weighs, and the reports list it apart);
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
        marginals = self.network.query(self._left_out(items), order, validate=False).marginals
        p = np.column_stack([marginals[c][0, :, 1] for c in order]) if order else np.zeros((1 + len(items), 0))
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
        rank = np.argsort(-key, kind="stable")
        columns: dict[str, object] = {"observed": [observed[i] for i in rank], "role": [self.spec.variables[items[i]].role for i in rank]}
        columns.update({cause: weight[rank, j] for j, cause in enumerate(order)})
        columns["top_posterior_without"] = np.asarray(top_without)[rank]
        columns["change_if_left_out"] = (np.asarray(top_without) - top_now)[rank]
        frame = pd.DataFrame(columns, index=pd.Index([items[i] for i in rank], name="finding"))
        frame.columns.name = "cause"
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
        given = {}
        for key, value in costs.items():
            if key in spec.variables and spec.variables[key].role == "red_flag":
                raise ArgumentError(f"costs: {key!r} is a red flag, and red flags are never tests")
            if key not in allowed:
                raise ArgumentError(f"costs: unknown finding or test kind {key!r}{suggest(key, allowed)}; allowed: findings, or the test kinds {', '.join(kinds) or '(none declared)'}")
            given[key] = check_real(f"costs[{key!r}]", value)
        for t, (kind, cost, invasive) in table.items():  # a finding's own cost wins over its kind's
            table[t] = (kind, given.get(t, given.get(kind, cost)), invasive)
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
            Index ``test`` (a finding, or a procedure's test kind), best
            first by ``score`` (ties by information, then model order): the
            one ranking of next tests. Columns ``findings`` (the findings it observes,
            joined by ", "), ``test_kind``, ``cost``, ``invasive``,
            ``information_gain`` (bits, see the module docstring),
            ``probability_top_changes`` (probability that the result makes
            another cause the most probable), ``most_likely_result``, ``score``
            (:data:`SCORE_FORMULA`, ``information_gain / (1 + cost)``: bits per unit of effort, so a
            free question scores its whole gain), ``rank``; then what the
            result would do to the current top cause: ``top_cause``,
            ``top_now`` (its posterior now), ``positive_result`` (``yes`` for a
            yes/no finding, the most likely result for another; for a
            procedure, any of its findings positive), ``probability_positive``,
            ``top_if_positive`` and ``top_if_negative`` (its posterior after
            each; the current one where that result is impossible).
        """
        costs_of = self.test_costs(costs)
        units = self._units(by)  # (checks ``by`` first)
        present, weight = self._joint
        self._check_ranking_memory(_ARRAYS_PER_TEST[by])
        tests, direct, block = self._tests
        keep = weight > 0  # impossible configurations add nothing to any sum below
        whole = bool(keep.all())
        if whole:
            as_float = self._present_float
        else:
            weight, as_float = weight[keep], present[keep].astype(float)
            tests = {t: q[keep] for t, q in tests.items()}
        if block is not None:  # a noisy-OR test inside a procedure of several is ranked over the configurations
            tests = {**tests, **{t: block.table(t) if whole else block.table(t)[keep] for t in block.names if any(t in f and len(f) > 1 for _, f in units)}}
        gain = np.zeros(len(units))
        p_changes = np.zeros(len(units))
        likely = np.zeros(len(units), dtype=np.intp)
        fast = [u for u, (_, findings) in enumerate(units) if block is not None and len(findings) == 1 and findings[0] in block.names]
        if fast:
            self._noisy_gains([units[u][1][0] for u in fast], np.array(fast), top_index, gain, p_changes, likely)
        fast_set = set(fast)
        # the result distributions of every other unit given each configuration, stacked by number of results
        groups: dict[int, list[tuple[int, np.ndarray]]] = {}
        outcomes: list[list[str]] = []
        for u, (label, findings) in enumerate(units):
            if len(findings) > 1 and not set(findings) <= direct:
                raise PostfusionError(f"cannot rank {label!r} as one procedure: {sorted(set(findings) - direct)} depend on more than the causes")
            if u in fast_set:
                outcomes.append(list(self.network.states[findings[0]]))
                continue
            q = tests[findings[0]]
            names = [f"{findings[0]}={s}" if len(findings) > 1 else s for s in self.network.states[findings[0]]]
            for name in findings[1:]:  # independent given the causes: the joint result is a product
                q = (q[:, :, None] * tests[name][:, None, :]).reshape(len(weight), -1)
                names = [f"{o}, {name}={s}" for o in names for s in self.network.states[name]]
            groups.setdefault(q.shape[1], []).append((u, q))
            outcomes.append(names)
        for members in groups.values():
            index = np.array([u for u, _ in members])
            q = np.stack([q for _, q in members], axis=1)  # (J, T, S)
            J, T, S = q.shape
            flat = q.reshape(J, T * S)
            p_result = (weight @ flat).reshape(T, S)
            # information = sum over configurations of weight x KL(result | configuration || result), each KL >= 0
            kl = _kl_bits(q, p_result)  # (J, T)
            gain[index] = np.maximum(weight @ kl, 0.0)  # a weighted sum of KL divergences: >= 0 up to rounding
            after = ((weight[:, None] * as_float).T @ flat).reshape(-1, T, S).transpose(1, 2, 0)  # P(cause present, result | e)
            # another cause must beat the current top strictly (beyond rounding), so exact ties never count
            changed = (p_result > 0) & (after.max(axis=2) > after[:, :, top_index] * (1 + TIE_TOLERANCE))
            p_changes[index] = np.minimum(np.where(changed, p_result, 0.0).sum(axis=1), 1.0)
            likely[index] = np.argmax(p_result, axis=1)
        kinds, costs_here, invasive = [], [], []
        for _, findings in units:
            k, c, i = zip(*(costs_of[f] for f in findings), strict=True)
            kinds.append(k[0])
            costs_here.append(max(c))
            invasive.append(any(i))
        cost = np.array(costs_here, dtype=float)
        score = gain / (1.0 + cost)
        order = np.lexsort((-gain, -score))  # one ranking: by score, ties by information, then model order
        effects = self._unit_effects(units, top_index)
        table = pd.DataFrame(
            {
                "findings": [", ".join(units[u][1]) for u in order],
                "test_kind": [kinds[u] for u in order],
                "cost": cost[order],
                "invasive": np.array(invasive, dtype=bool)[order],
                "information_gain": gain[order],
                "probability_top_changes": p_changes[order],
                "most_likely_result": [outcomes[u][likely[u]] for u in order],
                "score": score[order],
                "rank": np.arange(1, len(units) + 1),
                "top_cause": self.causes[top_index],
                "top_now": effects[0][order],
                "positive_result": [effects[1][u] for u in order],
                "probability_positive": effects[2][order],
                "top_if_positive": effects[3][order],
                "top_if_negative": effects[4][order],
            },
            index=pd.Index([units[u][0] for u in order], name="test"),
        )
        table.attrs.update({"unit": "bits of information about the joint configuration of the causes", "score": SCORE_FORMULA, "by": by})
        return table

    def _positive(self, finding: str) -> tuple[int, str]:
        """Return the result called "positive": ``yes`` for a yes/no finding, else its most likely result (index, name)."""
        states = self.network.states[finding]
        if tuple(states) == BOOLEAN_STATES:
            return 1, states[1]
        k = int(np.argmax(self._joint[1] @ self._result_table(finding)))
        return k, states[k]

    def _result_column(self, finding: str, k: int) -> np.ndarray:
        """P(result ``k`` | configuration, e) of one candidate finding over every configuration of :attr:`_joint`."""
        tests, _, block = self._tests
        if finding in tests:
            return tests[finding][:, k]
        assert block is not None
        column = block.names.index(finding)
        return block.present[:, column] if k == 1 else block.absent[:, column]

    def _result_table(self, finding: str) -> np.ndarray:
        """P(result | configuration, e) of one candidate finding over every configuration of :attr:`_joint`."""
        tests, _, block = self._tests
        return tests[finding] if finding in tests else block.table(finding)  # type: ignore[union-attr]

    def _unit_effects(self, units: list[tuple[str, list[str]]], top_index: int) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray, np.ndarray]:
        """Say what a positive and a negative result of each unit would do to the top cause's posterior.

        A unit's result is positive when any of its findings shows its positive
        result (:meth:`_positive`); negative when none does. Given the
        causes, the findings of one procedure are independent, so
        P(negative | configuration) is the product of each finding's
        P(not positive | configuration). Where a result is impossible, the top
        cause keeps its current posterior.

        Returns
        -------
        top_now, positive names, P(positive), P(top | positive), P(top | negative), one entry per unit.
        """
        weight = self._joint[1] / self._joint[1].sum()
        top = self._present_float[:, top_index] * weight
        top_now = float(top.sum())
        _, _, block = self._tests
        position, _, p_result, after = self._noisy_results if block is not None else ({}, None, None, None)
        p_neg = np.empty(len(units))  # P(no finding of the unit positive | e)
        top_neg = np.empty(len(units))  # P(top cause present, no finding of the unit positive | e)
        names = []
        for u, (_, findings) in enumerate(units):
            if len(findings) == 1 and findings[0] in position:  # a noisy-OR test: its negative result is "no"
                k = position[findings[0]]
                p_neg[u], top_neg[u] = p_result[k, 0], after[k, top_index, 0]  # type: ignore[index]
                names.append(BOOLEAN_STATES[1])
                continue
            labels = []
            negative = np.ones(len(weight))  # P(no finding of the unit positive | configuration)
            for finding in findings:
                k, state = self._positive(finding)
                negative -= negative * self._result_column(finding, k)
                labels.append(state if len(findings) == 1 else f"{finding}={state}")
            every_yes = len(findings) > 1 and all(label.endswith(f"={BOOLEAN_STATES[1]}") for label in labels)
            names.append(f"any finding {BOOLEAN_STATES[1]}" if every_yes else " or ".join(labels))
            p_neg[u], top_neg[u] = negative @ weight, negative @ top
        p_neg = np.clip(p_neg, 0.0, 1.0)
        p_yes = 1.0 - p_neg
        with np.errstate(divide="ignore", invalid="ignore"):
            if_pos = np.where(p_yes > 0, np.clip((top_now - top_neg) / np.where(p_yes > 0, p_yes, 1.0), 0.0, 1.0), top_now)
            if_neg = np.where(p_neg > 0, np.clip(top_neg / np.where(p_neg > 0, p_neg, 1.0), 0.0, 1.0), top_now)
        return np.full(len(units), top_now), names, p_yes, if_pos, if_neg

    def result_effects(self, top_index: int) -> pd.DataFrame:
        """Every result of every candidate finding: its probability and the top cause's posterior after it.

        Returns
        -------
        DataFrame
            Index (``finding``, ``result``), findings in model order; columns
            ``test_kind``, ``probability`` (P(result | e)), ``top_cause``,
            ``top_now`` and ``top_after`` (P(top cause | e, result); the
            current posterior where the result is impossible).
        """
        _, weight = self._joint
        top = self._present_float[:, top_index] * weight
        total = float(weight.sum())
        top_now = float(top.sum() / total)
        rows, index = [], []
        for finding in self.candidate_tests:
            q = self._result_table(finding)
            p = (weight @ q) / total
            after = (top @ q) / total
            for s, state in enumerate(self.network.states[finding]):
                rows.append((self.spec.variables[finding].test or "unspecified", float(p[s]), self.causes[top_index], top_now, min(max(float(after[s] / p[s]), 0.0), 1.0) if p[s] > 0 else top_now))
                index.append((finding, state))
        labels = pd.MultiIndex.from_tuples(index, names=["finding", "result"]) if index else pd.MultiIndex.from_arrays([[], []], names=["finding", "result"])
        return pd.DataFrame(rows, columns=["test_kind", "probability", "top_cause", "top_now", "top_after"], index=labels)

    @functools.cached_property
    def _noisy_results(self) -> tuple[dict[str, int], np.ndarray, np.ndarray, np.ndarray]:
        """What each single noisy-OR candidate test would tell, from the joint (a pure memo: the ranking and its effects share it).

        The information a test gives about every cause is the information it gives about its parents
        (it depends on the rest only through them), so it is computed from the posterior of its parents'
        configurations (a sum of the joint over the other causes), then tables of at most 2^k rows. The
        joint of each cause with a negative result is one matrix product over the configurations, with
        a positive one the cause's posterior minus it.

        Returns
        -------
        position : dict of str to int
            Each noisy-OR test's row in the arrays below.
        gain : array (T,)
            Information about the causes, bits.
        p_result : array (T, 2)
            P(no | e), P(yes | e).
        after : array (T, C, 2)
            P(cause present, result | e).
        """
        _, weight = self._joint  # every configuration, the impossible ones weighing 0
        _, _, block = self._tests
        assert block is not None
        no = block.over_configurations(0, weight) @ self._present_float  # (T, C): P(cause present, result no | e)
        after = np.stack([no, np.maximum((weight @ self._present_float)[None, :] - no, 0.0)], axis=2)
        gain = np.empty(len(block.names))
        p_result = np.empty((len(block.names), 2))
        cpds = self.network.tables.cpd
        for k, name in enumerate(block.names):
            w = block.parent_weights(k, weight)
            p_result[k] = w @ block.small[k]
            # I(parents; T | e) = H(T | e) - E[H(T | parents)], the entropies of the table's rows a memo of the network's numbers
            gain[k] = max(float(_entropy_bits(p_result[k]) - w @ cpds(name).entropy_bits), 0.0)  # type: ignore[union-attr]
        return {name: k for k, name in enumerate(block.names)}, gain, p_result, after

    def _noisy_gains(self, names: list[str], index: np.ndarray, top_index: int, gain: np.ndarray, p_changes: np.ndarray, likely: np.ndarray) -> None:
        """Information, chance of a new top cause and likeliest result of single noisy-OR tests, in place (see :attr:`_noisy_results`)."""
        position, gains, p_results, afters = self._noisy_results
        for t, name in enumerate(names):
            k = position[name]
            p_result, here = p_results[k], afters[k]  # (2,), (C, 2)
            u = index[t]
            gain[u] = gains[k]
            # another cause must beat the current top strictly (beyond rounding), so exact ties never count
            changed = (p_result > 0) & (here.max(axis=0) > here[top_index] * (1 + TIE_TOLERANCE))
            p_changes[u] = min(float(np.where(changed, p_result, 0.0).sum()), 1.0)
            likely[u] = int(np.argmax(p_result))

    # ------------------------------------------------------------------ conflict
    def conflict(self) -> float:
        """Jensen's data-conflict measure ln[P(e_1)...P(e_n) / P(e)] over every observed variable."""
        items = self._observed(("context", "cause", "finding", "red_flag"))
        if len(items) < 2:
            return 0.0
        rows = [self.evidence] + [self._only(name) for name in items]
        log_p = self.network.query(encode_rows(self.network.states, rows), (), validate=False).log_evidence[0]
        return float(log_p[1:].sum() - log_p[0])

    # ------------------------------------------------------------------ explanations
    def most_probable_explanation(self, k: int = 3) -> pd.DataFrame:
        """Return the ``k`` most probable joint sets of present causes.

        Exact, by the engine's :meth:`~postfusion_bayes.engine.CompiledNetwork.most_probable`: the
        posterior of every configuration of the free causes while they fit the memory budget
        (``attrs["method"]`` "enumeration"), else a branch and bound that visits only the sets that can
        be among the ``k`` best ("branch and bound"; at 24 causes, a few milliseconds for a typical patient).

        Returns
        -------
        DataFrame
            Index ``rank`` (1 = most probable); columns ``present_causes`` (the
            causes present, joined by " + ", or "none of the modelled causes"),
            ``n_present`` and ``probability`` (P(exactly this set | e)). Causes
            given as hard evidence keep their observed state; a cause with soft
            evidence is ranked like an unobserved one, its likelihood
            weighing each configuration. Fewer than ``k`` rows when fewer sets
            are possible. Sets of equal probability come in the order of the
            configurations of the free causes (the first, in model order, most
            significant; within 1e-12 relative for the branch and bound).
            ``attrs["method"]`` names the method.

        Raises
        ------
        MemoryBudgetError
            When neither method fits the network's memory budget.
        """
        k = check_count("k", k)
        top = self.network.most_probable(self._encoded, self.free_causes, k)
        if not np.isfinite(top.log_evidence):
            raise PostfusionError("the evidence is impossible under the model (probability 0)")
        column = {c: i for i, c in enumerate(self.causes)}
        present = np.zeros((len(top.posterior), len(self.causes)), dtype=bool)
        for j, cause in enumerate(self.free_causes):
            present[:, column[cause]] = top.configurations[:, j] == 1
        for cause, state in self.evidence.hard.items():  # observed causes keep their state
            if cause in column:
                present[:, column[cause]] = state == self.network.states[cause][1]
        names = np.array(self.causes)
        sets = [" + ".join(names[row]) or "none of the modelled causes" for row in present]
        frame = pd.DataFrame(
            {"present_causes": sets, "n_present": present.sum(axis=1), "probability": top.posterior},
            index=pd.RangeIndex(1, len(sets) + 1, name="rank"),
        )
        frame.attrs["method"] = top.method
        return frame
