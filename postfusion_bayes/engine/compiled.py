"""Compiled, batched, exact inference for discrete Bayesian networks: one query.

:func:`compile_network` takes any discrete Bayesian network (a pgmpy
``DiscreteBayesianNetwork`` or :class:`~postfusion_bayes.engine.tables.NetworkTables`)
and returns an immutable :class:`CompiledNetwork`. It has one query,
:meth:`CompiledNetwork.query`, on one evidence encoding
(:class:`~postfusion_bayes.engine.encoding.EncodedEvidence`), batched over
evidence rows and, optionally, over many versions of the tables at once (a
leading parameter-set axis); the labelled :meth:`CompiledNetwork.posteriors` and
:meth:`CompiledNetwork.evidence_probability` are built on it. Every answer is
exact, and the query picks its method from the network's structure and size
(named in :attr:`QueryResult.method`):

``"enumeration"``
    Layered networks (roots -> hidden middle layer -> leaves, as ours: context
    -> causes -> findings) with at most :data:`ENUMERATION_LIMIT` joint middle
    configurations: dense products over them, precomputed at compile time
    (:mod:`._layered`).
``"factorised"``
    Layered networks with binary causes and structured leaves (leaky noisy-OR,
    equal-weight mixtures) too large to enumerate: Quickscore-style sums over
    the positive findings, exact, without cancellation (:mod:`._noisy_or`).
``"structured enumeration"``
    The joint posterior over a large middle layer (for the joint quantities),
    enumerated row by row from the structure within the memory budget
    (:mod:`._enumeration`).
``"elimination"``
    Any other DAG: variable elimination with per-step rescaling (:mod:`._elimination`).

One memory budget (:data:`DEFAULT_MEMORY_BUDGET`, settable per network) bounds
every query: parameter sets and rows are processed in chunks that fit, and a
query that cannot fit says so with a
:class:`~postfusion_bayes.errors.MemoryBudgetError`, never a ``MemoryError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from ..errors import EvidenceError, MemoryBudgetError, NetworkError, shown, suggest
from ._elimination import compile_plan, eliminate
from ._layered import LayeredPlan, layers
from .encoding import EncodedEvidence, one_hot, read_only
from .structured import Mixture, NoisyOr
from .tables import COLUMN_SUM_TOLERANCE, NetworkTables

__all__ = ["CompiledNetwork", "DEFAULT_MEMORY_BUDGET", "ENUMERATION_LIMIT", "JointPosterior", "MostProbable", "QueryResult", "compile_network", "one_hot"]

#: Peak memory a query may use by default, in bytes (256 MB).
DEFAULT_MEMORY_BUDGET = 256 * 2**20
#: Joint middle-layer configurations up to which a layered network is enumerated with precomputed products.
ENUMERATION_LIMIT = 4096
_FLOAT = 8


@dataclass(frozen=True, eq=False)
class JointPosterior:
    """The joint posterior of some variables' configurations.

    Attributes
    ----------
    names : tuple of str
    configurations : int array, shape (J, len(names))
        State index of each variable in each configuration (last variable fastest).
    posterior : array, shape (n_sets, n_rows, J)
        P(configuration | row); NaN in impossible rows.
    """

    names: tuple[str, ...]
    configurations: np.ndarray
    posterior: np.ndarray


@dataclass(frozen=True, eq=False)
class QueryResult:
    """What :meth:`CompiledNetwork.query` returns (every array read-only).

    Attributes
    ----------
    marginals : mapping of str to array, shape (n_sets, n_rows, n_states)
        P(target | evidence); NaN in impossible rows.
    log_evidence : array, shape (n_sets, n_rows)
        log P(evidence); -inf where the evidence is impossible. With soft
        evidence, the likelihoods' scale is included.
    partial : mapping of str to array, or None
        With ``partial=``: P(target | the evidence on those variables alone).
    joint : JointPosterior or None
        With ``joint=``: the joint posterior of those variables.
    method : str
        The method that answered: "enumeration", "factorised",
        "structured enumeration" or "elimination".
    """

    marginals: Mapping[str, np.ndarray]
    log_evidence: np.ndarray
    partial: Mapping[str, np.ndarray] | None
    joint: JointPosterior | None
    method: str
    #: The targets' last states side by side (full, partial), when the method computed them so; read by :meth:`last_state`.
    _last: tuple[tuple[str, ...], np.ndarray, np.ndarray | None] | None = field(default=None, repr=False)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle with plain dictionaries; the arrays come back read-only."""
        return (_rebuild_result, (dict(self.marginals), self.log_evidence, None if self.partial is None else dict(self.partial), self.joint, self.method))

    def last_state(self, targets: Sequence[str], *, partial: bool = False) -> np.ndarray:
        """Each target's probability of its last state (e.g. "present"), shape (n_sets, n_rows, n_targets)."""
        if self._last is not None and tuple(targets) == self._last[0]:
            found = self._last[2] if partial else self._last[1]
            if found is not None:
                return found.reshape(1, 1, -1).copy()
        source = self.partial if partial else self.marginals
        if source is None:
            raise NetworkError("this result has no partial marginals; pass partial= to query()")
        return np.stack([source[t][..., -1] for t in targets], axis=-1)


@dataclass(frozen=True, eq=False)
class MostProbable:
    """What :meth:`CompiledNetwork.most_probable` returns (every array read-only).

    Attributes
    ----------
    names : tuple of str
        The variables.
    configurations : int array, shape (k', len(names))
        State index of each variable in each configuration, most probable first (``k' <= k``: only
        configurations of positive probability).
    posterior : array, shape (k',)
        P(configuration | evidence).
    log_evidence : float
        log P(evidence), as :meth:`CompiledNetwork.query` gives it; -inf when impossible (then no configuration).
    method : str
        "enumeration" (every configuration's posterior from the joint query) or "branch and bound"
        (:mod:`._most_probable`: only the configurations that can be among the ``k`` best are visited).
    """

    names: tuple[str, ...]
    configurations: np.ndarray
    posterior: np.ndarray
    log_evidence: float
    method: str


def _dense_table(table: Any) -> np.ndarray:
    """Return a table as a dense array (a structured one expanded: for isolated variables, a noisy-OR without parents)."""
    return table.dense() if isinstance(table, NoisyOr | Mixture) else np.asarray(table)


def _rebuild_result(marginals, log_evidence, partial, joint, method) -> QueryResult:
    freeze = lambda a: read_only(np.array(a))  # noqa: E731
    joint = None if joint is None else JointPosterior(joint.names, freeze(joint.configurations), freeze(joint.posterior))
    partial = None if partial is None else MappingProxyType({k: freeze(v) for k, v in partial.items()})
    return QueryResult(MappingProxyType({k: freeze(v) for k, v in marginals.items()}), freeze(log_evidence), partial, joint, method)


def compile_network(network: Any, strategy: str = "auto", *, normalize: bool = False, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> CompiledNetwork:
    """Compile a discrete Bayesian network for fast exact queries.

    Parameters
    ----------
    network : NetworkTables or pgmpy.models.DiscreteBayesianNetwork
        The network to compile.
    strategy : {"auto", "layered", "elimination"}
        "auto" uses the layered methods when the network is layered and
        elimination otherwise.
    normalize : bool, default False
        Every table column must sum to 1 within 1e-9, or compiling fails with
        a list of the offending tables. Some published BIF files (alarm,
        insurance, sachs) round their numbers so that columns sum to 1 only
        within about 1e-7; pass ``normalize=True`` to divide each column by
        its sum, explicitly, when no column is off by more than 1e-4.
    memory_budget : int, default 256 MB
        Peak bytes one query may use (see :class:`CompiledNetwork`).

    Returns
    -------
    CompiledNetwork

    Raises
    ------
    NetworkError
        Invalid tables (naming them), an unknown strategy, or a non-layered
        network compiled with ``strategy="layered"``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from postfusion_bayes.engine.tables import NetworkTables
    >>> t = NetworkTables(
    ...     states={"rain": ("no", "yes"), "wet": ("no", "yes")},
    ...     parents={"rain": (), "wet": ("rain",)},
    ...     cpts={"rain": np.array([0.8, 0.2]),
    ...           "wet": np.array([[0.9, 0.1], [0.2, 0.8]])})
    >>> net = compile_network(t)
    >>> post = net.posteriors(pd.DataFrame({"wet": ["yes"]}), ["rain"])
    >>> post["rain"].round(3)
    rain     no    yes
    0     0.333  0.667
    """
    if not isinstance(network, NetworkTables):
        if hasattr(network, "get_cpds"):
            from .files import tables_from_pgmpy

            network = tables_from_pgmpy(network)
        else:
            raise NetworkError(f"expected NetworkTables or a pgmpy DiscreteBayesianNetwork, got {type(network).__name__}")
    if normalize:
        problems = network.column_sum_errors(tolerance=1e-4)
        if problems:
            raise NetworkError("cannot normalize: " + "; ".join(problems))
        network = network.replace({v: t / t.sum(axis=-1, keepdims=True) for v, t in network.cpts.items()})
    return CompiledNetwork(network, strategy=strategy, memory_budget=memory_budget)


class CompiledNetwork:
    """A network compiled once for exact batched inference (immutable, picklable, thread-safe).

    Use :func:`compile_network` to build one. Ask it anything with
    :meth:`query`; :meth:`posteriors` and :meth:`evidence_probability` give
    labelled answers for evidence in a DataFrame.

    Parameters
    ----------
    tables : NetworkTables
        Unbatched tables.
    strategy : {"auto", "layered", "elimination"}
    memory_budget : int
        Peak bytes one query may use, measured as the peak traced allocation
        (``tracemalloc``) of the query, excluding its input.
    """

    __slots__ = ("_tables", "_strategy", "_plan", "_state_index", "_budget", "_layers", "_structured", "_columns", "_factors")
    _tables: NetworkTables
    _strategy: str
    _plan: LayeredPlan | None
    _state_index: Mapping[str, Mapping[str, int]]
    _budget: int
    _layers: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]
    _structured: bool
    _columns: dict[str, pd.Index]
    _factors: _Factors | None

    def __init__(self, tables: NetworkTables, strategy: str = "auto", memory_budget: int = DEFAULT_MEMORY_BUDGET):
        problems = tables.column_sum_errors()
        if problems:
            raise NetworkError("invalid tables: " + "; ".join(problems) + " (compile_network(..., normalize=True) divides each column by its sum)")
        if any(tables.batch_size(v) is not None for v in tables.variables):
            raise NetworkError("compile unbatched tables; pass parameter sets to the queries instead")
        if isinstance(memory_budget, bool) or not isinstance(memory_budget, int | np.integer) or memory_budget <= 0:
            raise NetworkError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
        isolated, roots, middle, leaves = layers(tables)
        layered = bool(middle and leaves) and all(set(tables.parents[m]) <= set(roots) for m in middle) and all(set(tables.parents[f]) <= set(middle) for f in leaves)
        if strategy == "auto":
            strategy = "layered" if layered else "elimination"
        if strategy not in ("layered", "elimination"):
            raise NetworkError(f"unknown strategy {strategy!r}; allowed: auto, layered, elimination")
        if strategy == "layered" and not layered:
            raise NetworkError("the network is not layered (roots -> middle -> leaves); use strategy='elimination'")
        structured = layered and all(tables.cardinality(m) == 2 for m in middle) and all(isinstance(tables.cpd(f), NoisyOr | Mixture) for f in leaves)
        plan = None
        if strategy == "layered":
            J = int(np.prod([tables.cardinality(m) for m in middle], dtype=np.int64))
            K = int(np.prod([tables.cardinality(r) for r in roots], dtype=np.int64)) if roots else 1
            leaf_columns = sum(tables.cardinality(f) for f in leaves)
            plan_bytes = _FLOAT * J * (3 * K + 2 * leaf_columns)
            if J <= ENUMERATION_LIMIT and K <= ENUMERATION_LIMIT and plan_bytes <= memory_budget:
                plan = LayeredPlan(tables)
            elif not structured:
                # answered row by row by structured enumeration (:mod:`._enumeration`), which reads dense leaves too
                from ._enumeration import enumeration_bytes

                needed = enumeration_bytes(J, len(middle))
                if needed > memory_budget:
                    raise MemoryBudgetError(needed, int(memory_budget), f"enumerating the {J:,} joint configurations of the middle layer (its leaves are not all noisy-OR or mixtures)")
        object.__setattr__(self, "_tables", tables)
        object.__setattr__(self, "_strategy", strategy)
        object.__setattr__(self, "_plan", plan)
        object.__setattr__(self, "_state_index", MappingProxyType({v: MappingProxyType({s: i for i, s in enumerate(st)}) for v, st in tables.states.items()}))
        object.__setattr__(self, "_budget", int(memory_budget))
        object.__setattr__(self, "_layers", (tuple(isolated), tuple(roots), tuple(middle), tuple(leaves)))
        object.__setattr__(self, "_structured", structured and strategy == "layered")
        factors = _Factors.build(tables, self._layers, {v: tables.cpd(v) for v in tables.variables}) if structured and strategy == "layered" and plan is None else None
        object.__setattr__(self, "_factors", factors)
        # the labelled results' column index of each variable, made on first use: a pure memo (pandas indexes are
        # immutable, and each is made from the states alone, so it cannot change an answer)
        object.__setattr__(self, "_columns", {})

    def __setattr__(self, name: str, value: object) -> None:
        """Refuse: a compiled network is immutable."""
        raise AttributeError("CompiledNetwork is immutable")

    def __delattr__(self, name: str) -> None:
        """Refuse: a compiled network is immutable."""
        raise AttributeError("CompiledNetwork is immutable")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle as the tables and settings; unpickling compiles again."""
        return (CompiledNetwork, (self._tables, self._strategy, self._budget))

    def __repr__(self) -> str:
        """Show the size, the strategy and the memory budget."""
        return f"<CompiledNetwork: {len(self.variables)} variables, strategy={self._strategy!r}, memory budget {self._budget // 2**20} MB>"

    # ---------------------------------------------------------------- description
    @property
    def tables(self) -> NetworkTables:
        """The tables the network was compiled from."""
        return self._tables

    @property
    def strategy(self) -> str:
        """"layered" or "elimination"."""
        return self._strategy

    @property
    def memory_budget(self) -> int:
        """Peak bytes one query may use."""
        return self._budget

    def with_memory_budget(self, memory_budget: int) -> CompiledNetwork:
        """Return the same network with another memory budget (this one is unchanged)."""
        return CompiledNetwork(self._tables, self._strategy, memory_budget)

    @property
    def variables(self) -> tuple[str, ...]:
        """Variable names in topological order."""
        return self._tables.variables

    @property
    def states(self) -> Mapping[str, tuple[str, ...]]:
        """State names of every variable."""
        return self._tables.states

    @property
    def state_index(self) -> Mapping[str, Mapping[str, int]]:
        """Variable -> state name -> index (read-only)."""
        return self._state_index

    @property
    def layers(self) -> Mapping[str, tuple[str, ...]]:
        """The variables by layer: "isolated", "roots", "middle", "leaves" (a layered network's middle is its hidden causes)."""
        isolated, roots, middle, leaves = self._layers
        return MappingProxyType({"isolated": isolated, "roots": roots, "middle": middle, "leaves": leaves})

    # ---------------------------------------------------------------- encoding
    def encode(self, evidence: pd.DataFrame, likelihood: Mapping[str, Any] | None = None) -> EncodedEvidence:
        """Encode evidence given as a DataFrame of state names (NaN or None unobserved) and optional soft evidence.

        Parameters
        ----------
        evidence : DataFrame
            One row per case; columns are variables, cells state names.
        likelihood : mapping, optional
            Soft evidence per variable: a DataFrame (same index as
            ``evidence``, one column per state) or an array ``(n_rows,
            n_states)`` of non-negative numbers proportional to P(observation |
            state); a row of NaN means no soft evidence in that row.

        Returns
        -------
        EncodedEvidence

        Raises
        ------
        EvidenceError
            For an unknown variable or state, naming it, what was given and what is allowed.
        """
        if not isinstance(evidence, pd.DataFrame):
            raise EvidenceError(f"evidence must be a pandas DataFrame (one row per case), got {type(evidence).__name__}")
        if len(evidence) == 1 and not likelihood and evidence.columns.is_unique:
            # one row of hard evidence (one patient): its cells read one by one (converting whole columns costs more),
            # kept as a row of codes; anything else (an unknown name or state) goes the general way, which names it
            hard: dict[str, str] = {}
            for j, column in enumerate(evidence.columns):
                lookup = self._state_index.get(column)
                value: Any = evidence.iat[0, j]
                if lookup is None or not (value in lookup if isinstance(value, str) else pd.api.types.is_scalar(value) and pd.isna(value)):
                    break
                if isinstance(value, str):
                    hard[str(column)] = value
            else:
                return EncodedEvidence.one(self._state_index, hard)
        codes: dict[str, np.ndarray] = {}
        cells = evidence.to_numpy(dtype=object) if len(evidence) <= 16 else None  # a few rows: read the cells once
        for j, column in enumerate(evidence.columns):
            name = self._check_variable(column, "the evidence columns")
            codes[name] = self._codes(name, evidence[column] if cells is None else cells[:, j], evidence.index)
        soft: dict[str, np.ndarray] = {}
        for column, value in (likelihood or {}).items():
            name = self._check_variable(column, "the likelihood")
            soft[name] = self._soft(name, value, evidence.index)
        both = [name for name in soft if name in codes]
        for name in both:  # hard and soft on one variable: multiply, as the likelihoods they are
            lam = one_hot(codes.pop(name), self._tables.cardinality(name))
            soft[name] = np.where(np.isnan(soft[name]).all(axis=1)[:, None], lam, np.nan_to_num(soft[name], nan=1.0) * lam)
        return EncodedEvidence.from_codes(self._tables.states, codes, len(evidence), soft, row_labels=list(evidence.index))

    def _check_variable(self, name: object, what: str) -> str:
        if name not in self._state_index:
            raise EvidenceError(f"unknown variable {name!r} in {what}{suggest(name, self.variables)}")
        return str(name)

    def _codes(self, name: str, values: pd.Series | np.ndarray, index: pd.Index) -> np.ndarray:
        """State index of every cell (-1 where unobserved); raises on an unknown state, naming rows."""
        states = self._tables.states[name]
        lookup = self._state_index[name]
        if len(values) <= 16:  # a few rows: a dictionary lookup per cell beats factorising
            out = np.empty(len(values), dtype=np.intp)
            for i, value in enumerate(values if isinstance(values, np.ndarray) else values.array):
                code = lookup.get(value) if isinstance(value, str) else (-1 if pd.api.types.is_scalar(value) and pd.isna(value) else None)
                if code is None:
                    break
                out[i] = code
            else:
                return out
        try:
            codes, uniques = pd.factorize(pd.Series(values) if isinstance(values, np.ndarray) else values, use_na_sentinel=True)
        except TypeError:  # unhashable cells (a list, a mapping) are no state names
            bad = next(v for v in values if not _hashable(v))
            raise EvidenceError(f"variable {name!r}: state {shown(bad)} is not allowed; allowed states: {', '.join(states)}") from None
        translate = np.empty(len(uniques) + 1, dtype=np.intp)
        translate[-1] = -1
        for i, value in enumerate(uniques):
            if not isinstance(value, str) or value not in lookup:
                rows = list(index[codes == i][:5])
                raise EvidenceError(
                    f"variable {name!r}: state {shown(value)}{suggest(value, states)} is not allowed "
                    f"(rows {rows}); allowed states: {', '.join(states)}"
                )
            translate[i] = lookup[value]
        return translate[codes]

    def _soft(self, name: str, value: Any, index: pd.Index) -> np.ndarray:
        states = self._tables.states[name]
        if isinstance(value, pd.DataFrame):
            extra = [c for c in value.columns if c not in states]
            if extra:
                raise EvidenceError(f"likelihood of {name!r}: unknown state {extra[0]!r}{suggest(extra[0], states)}; allowed states: {', '.join(states)}")
            if not value.index.equals(index):
                raise EvidenceError(f"likelihood of {name!r}: its index does not match the evidence rows")
            return value.reindex(columns=list(states)).to_numpy(dtype=float)
        arr = np.asarray(value, dtype=float)
        if arr.shape != (len(index), len(states)):
            raise EvidenceError(f"likelihood of {name!r}: shape {arr.shape}, expected {(len(index), len(states))} (rows, states {states})")
        return arr

    # ---------------------------------------------------------------- parameter sets
    def _parameter_tables(self, parameters: Mapping[str, Any] | None, validate: bool = True) -> tuple[Mapping[str, Any], int]:
        """Return the tables with some replaced by batched versions, and the number of sets (1 when none)."""
        if not parameters:
            return self._tables.cpts._given, 1  # type: ignore[attr-defined]  # the compiled tables as given (read-only use)
        given = {v: self._tables.cpd(v) for v in self.variables}
        sizes = set()
        for name, table in parameters.items():
            if name not in given:
                raise NetworkError(f"parameters name unknown variable {name!r}{suggest(name, self.variables)}")
            if isinstance(table, NoisyOr | Mixture):
                own = self._tables.cpd(name)
                if not isinstance(own, type(table)) or not table.batch_shape or table.n_parents != own.n_parents:
                    raise NetworkError(f"parameter tables of {name!r}: expected a batched {type(own).__name__} with {len(self._tables.parents[name])} parents")
                sizes.add(table.batch_shape[0])
                given[name] = table
                if validate:
                    problems = table.problems() if isinstance(table, NoisyOr) else table.problems(COLUMN_SUM_TOLERANCE)
                    if problems:
                        raise NetworkError(f"parameter tables of {name!r}: {'; '.join(problems)}")
                continue
            # a dense replacement of a noisy-OR or mixture table is answered by structured enumeration (see _query)
            table = np.asarray(table, dtype=float)
            expected = self._tables.cpts[name].shape
            if table.ndim != len(expected) + 1 or table.shape[1:] != expected:
                raise NetworkError(f"parameter tables of {name!r} have shape {table.shape}, expected (n_sets, *{expected})")
            sizes.add(table.shape[0])
            given[name] = table
            if not validate:
                continue
            if not table.min() >= 0:  # also catches NaN
                raise NetworkError(f"parameter tables of {name!r} have negative or NaN entries")
            worst = float(np.max(np.abs(table.sum(axis=-1) - 1)))
            if not worst <= COLUMN_SUM_TOLERANCE:  # with no negatives, also bounds every entry by 1
                raise NetworkError(f"parameter tables of {name!r}: columns sum to 1 only within {worst:.3g}")
        if len(sizes) != 1:
            raise NetworkError(f"parameter tables have different numbers of sets {sorted(sizes)}")
        return given, sizes.pop()

    # ---------------------------------------------------------------- the query
    def query(
        self,
        evidence: EncodedEvidence,
        targets: Sequence[str] = (),
        *,
        parameters: Mapping[str, Any] | None = None,
        partial: Sequence[str] | frozenset[str] | None = None,
        joint: Sequence[str] | None = None,
        validate: bool = True,
    ) -> QueryResult:
        """Posterior marginals, log P(evidence) and, on request, a joint posterior, for every row and parameter set.

        Parameters
        ----------
        evidence : EncodedEvidence
            See :meth:`encode` and :class:`~postfusion_bayes.engine.encoding.EncodedEvidence`.
        targets : sequence of str
            Variables whose marginals are wanted (may be empty).
        parameters : mapping of str to array or structured table, optional
            Replacement tables with a leading axis of parameter sets, shape
            ``(n_sets, *table.shape)`` (or a batched
            :class:`~postfusion_bayes.engine.structured.NoisyOr` /
            :class:`~postfusion_bayes.engine.structured.Mixture`); unnamed
            tables are shared. Checked (entries in [0, 1], columns summing to 1
            within 1e-9) unless ``validate=False``, which is for tables built
            from already validated numbers.
        partial : sequence of str, optional
            Also give the targets' marginals given only the evidence on these
            variables (for a diagnosis: the prior given the context).
        joint : sequence of str, optional
            Also give the joint posterior of these variables' configurations
            (middle-layer variables of a layered network).
        validate : bool, default True
            Check the parameter tables (see ``parameters``).

        Returns
        -------
        QueryResult

        Raises
        ------
        EvidenceError
            An unknown target.
        NetworkError
            Bad parameter tables, or a joint posterior the network cannot give.
        MemoryBudgetError
            When the answer cannot be computed within the memory budget.

        Examples
        --------
        >>> import numpy as np
        >>> from postfusion_bayes.engine import NetworkTables, compile_network
        >>> from postfusion_bayes.engine.encoding import EncodedEvidence
        >>> t = NetworkTables({"rain": ("no", "yes"), "wet": ("no", "yes")}, {"wet": ("rain",)},
        ...                   {"rain": [0.8, 0.2], "wet": [[0.9, 0.1], [0.2, 0.8]]})
        >>> net = compile_network(t)
        >>> result = net.query(EncodedEvidence.from_rows(net.states, [{"wet": "yes"}]), ["rain"])
        >>> result.marginals["rain"].round(3), result.method
        (array([[[0.333, 0.667]]]), 'elimination')
        """
        if not isinstance(evidence, EncodedEvidence):
            raise EvidenceError(f"evidence must be an EncodedEvidence (see CompiledNetwork.encode), got {type(evidence).__name__}")
        targets = tuple(dict.fromkeys(self._check_variable(t, "the targets") for t in targets))
        cpds, n_sets = self._parameter_tables(parameters, validate)
        batched = bool(parameters)
        if joint is not None:
            joint = tuple(dict.fromkeys(self._check_variable(v, "the joint variables") for v in joint))
            if self._strategy != "layered" or not set(joint) <= set(self._layers[2]):
                if partial is not None:
                    raise NetworkError("partial= and joint= together need the joint variables in the middle layer of a layered network")
                return self._joint_by_clamping(evidence, targets, cpds, n_sets, batched, joint)
        if partial is not None:
            partial = frozenset(self._check_variable(v, "the partial evidence") for v in partial)
            fast = self._one_hard_row(evidence, targets, partial) if not batched and joint is None else None
            if fast is not None:
                return fast
            plan = self._plan
            if plan is not None and not batched and joint is None and evidence.n_rows == 1 and set(targets) <= plan.mid_pos.keys():
                # one row with soft evidence: the prior given hard root evidence is precomputed in the plan
                hard_roots = {v: int(c[0]) for v, c in evidence.codes.items() if v in plan.root_pos and c[0] >= 0}
                if partial <= plan.root_pos.keys() and set(hard_roots) == partial & evidence.names and not (partial & evidence.likelihoods.keys()):
                    _, root_only, log_roots = plan.query_hard(hard_roots)
                    if log_roots > -np.inf:
                        full = self._query(evidence, targets, cpds, n_sets, batched, None)
                        root_only.setflags(write=False)
                        prior = {t: root_only[plan.mid_slices[t]].reshape(1, 1, -1) for t in targets}
                        return QueryResult(full.marginals, full.log_evidence, MappingProxyType(prior), None, full.method)
            factors = self._factors
            if factors is not None and not batched and joint is None and partial <= factors.root_tables.keys() and set(targets) <= factors.mid_index.keys():
                # the causes given the roots' evidence alone are a sum over the root configurations, no factorised sums
                return self._factorised(evidence, targets, cpds, n_sets, batched, partial)
            both = self._query(evidence.stack(evidence.only(partial)), targets, cpds, n_sets, batched, joint)
            n = evidence.n_rows
            return QueryResult(
                MappingProxyType({t: read_only(m[:, :n]) for t, m in both.marginals.items()}),
                read_only(both.log_evidence[:, :n]),
                MappingProxyType({t: read_only(m[:, n:]) for t, m in both.marginals.items()}),
                None if both.joint is None else JointPosterior(both.joint.names, both.joint.configurations, read_only(both.joint.posterior[:, :n])),
                both.method,
            )
        return self._query(evidence, targets, cpds, n_sets, batched, joint)

    def _joint_by_clamping(self, evidence: EncodedEvidence, targets, cpds, n_sets, batched, joint: tuple[str, ...]) -> QueryResult:
        """Give the joint posterior of any variables: one evidence row per configuration, clamped, and their probabilities."""
        cards = [self._tables.cardinality(v) for v in joint]
        J = int(np.prod(cards, dtype=np.int64))
        n = evidence.n_rows
        needed = _FLOAT * J * n * (len(evidence.names) + len(joint) + 4 * max(n_sets, 1))  # the clamped rows and their answers; each method bounds its own work
        if needed > self._budget:
            raise MemoryBudgetError(needed, self._budget, f"the joint posterior of {len(joint)} variables ({J:,} configurations) by clamping")
        configurations = np.stack(np.unravel_index(np.arange(J), cards), axis=1) if joint else np.zeros((1, 0), dtype=np.intp)
        rows = np.repeat(np.arange(n), J)  # row-major: every configuration of row 0, then of row 1, ...
        base = evidence.rows(rows)
        codes = dict(base.codes)
        lik = dict(base.likelihoods)
        for i, v in enumerate(joint):
            clamp = np.tile(configurations[:, i], n)
            if v in codes:  # hard evidence elsewhere in the row: a configuration that disagrees is impossible
                own = codes[v]
                lik[v] = one_hot(own, cards[i]) * (lik[v] if v in lik else 1.0)
            codes[v] = clamp
        clamped = EncodedEvidence.from_codes(self._tables.states, codes, n * J, lik)
        both = self._query(clamped, (), cpds, n_sets, batched, None)
        # both's log evidence already carries the clamped rows' own scale; the base rows' scale comes on top
        log_joint = both.log_evidence.reshape(n_sets, n, J) + evidence.log_scale[None, :, None]
        top = log_joint.max(axis=-1, keepdims=True)
        finite = np.isfinite(top)
        weight = np.exp(log_joint - np.where(finite, top, 0.0))
        total = weight.sum(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            posterior = weight / total
            log_evidence = np.where(finite[..., 0], (np.log(total) + top)[..., 0], -np.inf)
        posterior[~finite[..., 0]] = np.nan
        marginals: Mapping[str, np.ndarray] = {}
        if targets:
            marginals = self._query(evidence, targets, cpds, n_sets, batched, None).marginals
        return QueryResult(MappingProxyType(dict(marginals)), read_only(log_evidence), None, JointPosterior(joint, read_only(configurations), read_only(posterior)), both.method)

    def _one_hard_row(self, evidence: EncodedEvidence, targets: tuple[str, ...], partial: frozenset[str]) -> QueryResult | None:
        """Answer from the enumeration plan's precomputed single-row path, or return None where it does not apply."""
        plan = self._plan
        row = evidence.row
        soft_leaves = None
        if row is None and evidence.n_rows == 1 and evidence.likelihoods and plan is not None and all(v in plan.leaf_number for v in evidence.likelihoods):
            # soft evidence on findings only: it multiplies in as each finding's table times its likelihoods
            codes = evidence.codes
            if not any(v in evidence.likelihoods for v in codes):
                row = {v: int(c[0]) for v, c in codes.items() if c[0] >= 0}
                soft_leaves = {v: lam[0] for v, lam in evidence.likelihoods.items()}
        if plan is None or row is None or not all(t in plan.mid_pos for t in targets):
            return None
        root_pos = plan.root_pos
        if not all(v in root_pos for v in partial) or not all(v in partial for v in row if v in root_pos):
            return None
        full, root_only, log_evidence = plan.query_hard(row, soft_leaves)
        if not log_evidence > -np.inf:
            return None  # the general path recomputes it in extended precision before calling it impossible
        if soft_leaves:
            log_evidence += float(evidence.log_scale[0])
        full.setflags(write=False)
        root_only.setflags(write=False)
        marginals = {t: full[plan.mid_slices[t]].reshape(1, 1, -1) for t in targets}
        prior = {t: root_only[plan.mid_slices[t]].reshape(1, 1, -1) for t in targets}
        last = np.array([plan.mid_slices[t].stop - 1 for t in targets], dtype=np.intp)
        last_states = (targets, read_only(full[last]), read_only(root_only[last]))
        return QueryResult(MappingProxyType(marginals), read_only(np.array([[log_evidence]])), MappingProxyType(prior), None, "enumeration", last_states)

    def _query(self, evidence: EncodedEvidence, targets: tuple[str, ...], cpds: Mapping[str, Any], n_sets: int, batched: bool, joint: tuple[str, ...] | None) -> QueryResult:
        if self._strategy == "elimination":
            return self._eliminate(evidence, targets, cpds, n_sets, batched)
        if joint is not None:
            if self._plan is not None:
                return self._enumerate(evidence, targets, cpds, n_sets, batched, joint)
            return self._enumerate_structured(evidence, targets, cpds, n_sets, batched, joint)
        if self._plan is not None:
            return self._enumerate(evidence, targets, cpds, n_sets, batched, None)
        if self._factors is None or (batched and self._dense_leaves(cpds)):
            return self._enumerate_sets(evidence, targets, cpds, n_sets, batched)
        return self._factorised(evidence, targets, cpds, n_sets, batched)

    def _dense_leaves(self, cpds: Mapping[str, Any]) -> bool:
        """Whether some leaf's table is dense (given so, or replaced by a dense parameter table): no factorised sums then."""
        return any(not isinstance(cpds[f], NoisyOr | Mixture) for f in self._layers[3])

    def _enumerate_sets(self, evidence: EncodedEvidence, targets: tuple[str, ...], cpds: Mapping[str, Any], n_sets: int, batched: bool) -> QueryResult:
        """Answer a layered network whose leaves are not all structured, and whose middle layer is too large for the plan.

        Each parameter set is solved by :func:`._enumeration.enumerate_joint` (row by row over the
        middle layer's configurations, reading dense leaves as they are); targets outside the middle
        layer by clamping them to each state. Rows are chunked to the memory budget.
        """
        from ._enumeration import enumerate_joint, enumeration_bytes

        isolated, roots, middle, leaves = self._layers
        J = int(np.prod([self._tables.cardinality(m) for m in middle], dtype=np.int64))
        per_row = enumeration_bytes(J, len(middle)) + _FLOAT * 2 * J  # the working arrays and the row's posterior
        if evidence.n_rows > 1 and per_row * evidence.n_rows > self._budget:
            return self._in_row_chunks(evidence, targets, cpds, n_sets, batched, None, per_row, lambda ev, t, c, ns, b, _j: self._enumerate_sets(ev, t, c, ns, b))
        names = self._batched_names(cpds) if batched else set()
        sets = []
        for s in range(n_sets if batched else 1):
            own = {v: (cpds[v] if v not in names else _one_set(cpds[v], s)) for v in self.variables}
            sets.append(own)

        def log_evidence_of(rows: EncodedEvidence) -> tuple[np.ndarray, list[np.ndarray]]:
            logs, posts = [], []
            for own in sets:
                tables = NetworkTables(self._tables.states, self._tables.parents, own)
                _, posterior, log_ev = enumerate_joint(tables, roots, middle, leaves, rows, self._budget)
                logs.append(self._add_isolated(log_ev[None], rows, own)[0])
                posts.append(posterior)
            return np.stack(logs), posts

        log_evidence, posteriors = log_evidence_of(evidence)
        configurations = np.stack(np.unravel_index(np.arange(J), [self._tables.cardinality(m) for m in middle]), axis=1) if middle else np.zeros((1, 0), dtype=np.intp)
        marginals: dict[str, np.ndarray] = {}
        for t in targets:
            if t in middle:
                i = middle.index(t)
                marginals[t] = np.stack([np.stack([p[:, configurations[:, i] == s].sum(axis=1) for s in range(self._tables.cardinality(t))], axis=-1) for p in posteriors])
            else:
                marginals[t] = self._by_clamping(evidence, t, lambda clamped: log_evidence_of(clamped)[0])
        marginals = _per_set_answers(marginals, log_evidence)
        return self._result(marginals, log_evidence, evidence, None, None, "structured enumeration")

    # ---------------------------------------------------------------- methods
    def _dense_cpts(self, cpds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return {v: (t if isinstance(t, np.ndarray) else (self._tables.cpts[v] if t is self._tables.cpd(v) else t.dense())) for v, t in cpds.items()}

    def _set_chunk(self, n_rows: int, per_row_entries: int, n_sets: int) -> int:
        per_set = max(1, n_rows * per_row_entries * _FLOAT * 6)
        return max(1, min(n_sets, self._budget // per_set))

    def _enumerate(self, evidence: EncodedEvidence, targets: tuple[str, ...], cpds: Mapping[str, Any], n_sets: int, batched: bool, joint: tuple[str, ...] | None) -> QueryResult:
        plan = self._plan
        assert plan is not None
        n_rows = evidence.n_rows
        per_row = plan.J * max(1, plan.K if not batched else 1)
        needed = _FLOAT * 6 * n_rows * plan.J
        if needed > self._budget and n_sets == 1:
            return self._in_row_chunks(evidence, targets, cpds, n_sets, batched, joint, _FLOAT * 6 * plan.J, self._enumerate)
        if not batched and evidence.is_hard and all(t in plan.mid_pos for t in targets):
            values, log_evidence, configuration = plan.query_codes(evidence.codes, n_rows, want_joint=joint is not None)
            if np.isfinite(log_evidence).all():
                marginals = {t: values[None, :, plan.mid_slices[t]] for t in targets}
                log_ev = log_evidence[None]
                return self._result(marginals, log_ev, evidence, joint, None if configuration is None else configuration[None], "enumeration")
        dense = self._dense_cpts(cpds)
        lam = evidence.dense({v: self._tables.cardinality(v) for v in evidence.names})
        chunk = self._set_chunk(n_rows, per_row, n_sets) if batched else 1
        parts = []
        for start in range(0, n_sets, chunk):
            sub = {v: (t[start : start + chunk] if batched and v in self._batched_names(cpds) else t) for v, t in dense.items()}
            shared = not batched
            marginals, log_evidence, configuration = plan.run(None if shared else sub, lam, list(targets), n_rows, want_joint=joint is not None)
            size = min(chunk, n_sets - start)
            marginals = {t: np.broadcast_to(m, (size,) + m.shape[1:]) for t, m in marginals.items()}
            log_evidence = np.broadcast_to(log_evidence, (size,) + log_evidence.shape[1:])
            if configuration is not None:
                configuration = np.broadcast_to(configuration, (size,) + configuration.shape[1:])
            parts.append((marginals, log_evidence, configuration))
        marginals = {t: np.concatenate([p[0][t] for p in parts]) for t in targets}
        log_evidence = np.concatenate([p[1] for p in parts])
        configuration = np.concatenate([p[2] for p in parts]) if joint is not None else None
        marginals, log_evidence = self._rescue(dense, lam, targets, marginals, log_evidence)
        return self._result(marginals, log_evidence, evidence, joint, configuration, "enumeration")

    def _batched_names(self, cpds: Mapping[str, Any]) -> set[str]:
        return {v for v, t in cpds.items() if t is not self._tables.cpd(v)}

    def _in_row_chunks(self, evidence, targets, cpds, n_sets, batched, joint, per_row_bytes, method) -> QueryResult:
        rows_per_chunk = self._budget // max(per_row_bytes, 1)
        if rows_per_chunk < 1:
            raise MemoryBudgetError(per_row_bytes, self._budget, "one row of this query")
        parts = [method(evidence.rows(np.arange(s, min(s + rows_per_chunk, evidence.n_rows))), targets, cpds, n_sets, batched, joint) for s in range(0, evidence.n_rows, rows_per_chunk)]
        marginals = {t: np.concatenate([p.marginals[t] for p in parts], axis=1) for t in targets}
        log_evidence = np.concatenate([p.log_evidence for p in parts], axis=1)
        joint_result = None
        if joint is not None:
            joints = [p.joint for p in parts if p.joint is not None]
            joint_result = JointPosterior(joints[0].names, joints[0].configurations, read_only(np.concatenate([j.posterior for j in joints], axis=1)))
        return QueryResult(MappingProxyType({t: read_only(m) for t, m in marginals.items()}), read_only(log_evidence), None, joint_result, parts[0].method)

    def _result(self, marginals, log_evidence, evidence: EncodedEvidence, joint, configuration, method: str, configurations: np.ndarray | None = None) -> QueryResult:
        """Freeze the arrays, add back the soft evidence's scale, give the joint its labels."""
        if evidence.log_scales:
            log_evidence = log_evidence + evidence.log_scale[None, :]
        joint_result = None
        if joint is not None:
            plan_names = self._layers[2]
            if configurations is None:
                configurations = np.stack(np.unravel_index(np.arange(configuration.shape[-1]), [self._tables.cardinality(m) for m in plan_names]), axis=1)
            if not joint:
                configuration = np.asarray(configuration).sum(axis=-1, keepdims=True)
                configurations = np.zeros((1, 0), dtype=np.intp)
            elif tuple(joint) != tuple(plan_names):
                keep = [plan_names.index(v) for v in joint]
                cards = [self._tables.cardinality(v) for v in joint]
                flat = np.ravel_multi_index(tuple(configurations[:, k] for k in keep), cards)
                size = int(np.prod(cards))
                rows = np.asarray(configuration).reshape(-1, configuration.shape[-1])
                offsets = (np.arange(rows.shape[0]) * size)[:, None]
                summed = np.bincount((flat[None, :] + offsets).ravel(), weights=rows.ravel(), minlength=rows.shape[0] * size)
                configuration = summed.reshape(configuration.shape[:-1] + (size,))
                configurations = np.stack(np.unravel_index(np.arange(size), cards), axis=1)
            joint_result = JointPosterior(tuple(joint), read_only(configurations), read_only(np.array(configuration)))
        return QueryResult(
            MappingProxyType({t: m if isinstance(m, np.ndarray) and not m.flags.writeable else read_only(np.asarray(m).view()) for t, m in marginals.items()}),  # read-only views, no copies
            read_only(np.array(log_evidence)),
            None,
            joint_result,
            method,
        )

    def _rescue(self, cpts, lam, targets, marginals, log_evidence):
        """Recompute, in extended precision, the rows float64 reported as impossible.

        A row is truly impossible only if it stays so; a probability that
        merely fell below the float64 range somewhere is recovered.
        """
        bad_rows = ~np.isfinite(log_evidence).all(axis=0)
        if not bad_rows.any():
            return marginals, log_evidence
        rows = np.flatnonzero(bad_rows)
        tables = NetworkTables(self._tables.states, self._tables.parents, cpts)
        sub = {v: arr[rows] for v, arr in lam.items()} or {self.variables[0]: np.ones((rows.size, self._tables.cardinality(self.variables[0])))}
        fixed, fixed_log = eliminate(tables, sub, list(targets), extended=True)
        log_evidence = np.array(log_evidence)
        log_evidence[:, rows] = np.broadcast_to(fixed_log, (log_evidence.shape[0], rows.size))
        marginals = {t: np.array(m) for t, m in marginals.items()}
        for t in targets:
            marginals[t][:, rows] = np.broadcast_to(fixed[t], (log_evidence.shape[0], rows.size, marginals[t].shape[-1]))
        return marginals, log_evidence

    def _eliminate(self, evidence: EncodedEvidence, targets, cpds, n_sets, batched) -> QueryResult:
        dense: Mapping[str, np.ndarray] = self._dense_cpts(cpds) if batched else self._tables.cpts
        tables = NetworkTables(self._tables.states, self._tables.parents, dense) if batched else self._tables
        # the largest cluster the plan multiplies out, for every row and set at once, with a few copies alive
        plan = compile_plan(tables, observed=list(evidence.names), targets=list(targets))
        per_row = _FLOAT * 6 * int(plan.largest_cluster) * max(n_sets, 1)
        if per_row * evidence.n_rows > self._budget and evidence.n_rows > 1:
            return self._in_row_chunks(evidence, targets, cpds, n_sets, batched, None, per_row, lambda ev, t, c, ns, b, _j: self._eliminate(ev, t, c, ns, b))
        if per_row > self._budget:
            raise MemoryBudgetError(per_row, self._budget, f"one row of variable elimination (a cluster of {int(plan.largest_cluster):,} entries)")
        lam = evidence.dense({v: self._tables.cardinality(v) for v in evidence.names})
        full = lam or {self.variables[0]: np.ones((evidence.n_rows, self._tables.cardinality(self.variables[0])))}
        marginals, log_evidence = eliminate(tables, full, list(targets))
        if log_evidence.shape[0] != n_sets:
            marginals = {t: np.broadcast_to(m, (n_sets,) + m.shape[1:]) for t, m in marginals.items()}
            log_evidence = np.broadcast_to(log_evidence, (n_sets,) + log_evidence.shape[1:])
        marginals, log_evidence = self._rescue(dense, full, targets, marginals, log_evidence)
        return self._result(marginals, log_evidence, evidence, None, None, "elimination")

    def _enumerate_structured(self, evidence: EncodedEvidence, targets, cpds, n_sets, batched, joint) -> QueryResult:
        from ._enumeration import enumerate_joint

        if batched:
            raise NetworkError("a joint posterior over a middle layer this large is computed for one parameter set at a time")
        isolated, roots, middle, leaves = self._layers
        if any(t not in middle for t in targets):
            raise NetworkError("with joint=, targets must be middle-layer variables on a network this large")
        J = 2 ** len(middle)
        needed = _FLOAT * 3 * J * evidence.n_rows  # the joint posterior of every row, and its sums over subsets
        if needed > self._budget:
            raise MemoryBudgetError(needed, self._budget, f"the joint posterior of {J:,} configurations for {evidence.n_rows:,} rows")
        configurations, posterior, log_evidence = enumerate_joint(self._tables, roots, middle, leaves, evidence, self._budget)
        marginals = {}
        for t in targets:
            i = middle.index(t)
            card = self._tables.cardinality(t)
            marginals[t] = np.stack([posterior[:, configurations[:, i] == s].sum(axis=1) for s in range(card)], axis=-1)[None]
        log_evidence = self._add_isolated(log_evidence[None], evidence)
        return self._result(marginals, log_evidence, evidence, joint, posterior[None], "structured enumeration", configurations)

    def _add_isolated(self, log_evidence: np.ndarray, evidence: EncodedEvidence, cpds: Mapping[str, Any] | None = None) -> np.ndarray:
        """Add the evidence on isolated variables (no parents, no children) to log P(evidence), per parameter set."""
        isolated = self._layers[0]
        if not isolated:
            return log_evidence
        names = evidence.names
        observed = [v for v in isolated if v in names]
        if not observed:
            return log_evidence
        lam = evidence.dense({v: self._tables.cardinality(v) for v in observed})
        for v in observed:
            given = (cpds or {}).get(v)
            # the compiled table's dense form is built once (tables.cpts keeps it); a replacement is expanded here
            table = self._tables.cpts[v] if given is None or given is self._tables.cpd(v) else _dense_table(given)
            table = table if table.ndim == 2 else table[None]  # (P, card)
            with np.errstate(divide="ignore"):
                log_evidence = log_evidence + np.log(np.einsum("bs,ps->pb", lam[v], table))
        return log_evidence

    def _factorised(self, evidence: EncodedEvidence, targets, cpds, n_sets, batched, partial: frozenset[str] | None = None) -> QueryResult:
        """Answer by the factorised sums of :mod:`._noisy_or`.

        With ``partial`` (root variables only, and middle-layer targets only), the targets' marginals given
        the evidence on ``partial`` alone are added: a sum over the root configurations.
        """
        from ._noisy_or import Mixture as MixtureTerm
        from ._noisy_or import factorised_query

        isolated, roots, middle, leaves = self._layers
        tables = self._tables
        n_rows = evidence.n_rows
        if n_rows == 1 and not batched and self._factors is not None:
            one = self._factorised_one(evidence, targets, cpds, partial)
            if one is not None:
                return one
        observed = evidence.names
        lam = evidence.dense({v: tables.cardinality(v) for v in observed})
        factors = _Factors.build(tables, self._layers, cpds, lam) if batched or self._factors is None else self._factors
        mid_index = factors.mid_index
        n = len(middle)
        root_states = factors.root_states
        given_roots: Mapping[str, np.ndarray] | None = None
        hard = None if any(t in factors.root_tables for t in targets) else factors.hard_roots(lam, n_rows)
        if hard is not None:
            # every root observed hard in every row (patients with the context known), no root target: each row has
            # one root configuration of positive weight; only the configurations some row has are passed on (the
            # others weigh exactly 0 in every row), with the same weights
            configuration, value = hard
            kept, inverse = np.unique(configuration, return_inverse=True)
            weight = np.zeros((factors.root_prior.shape[0], n_rows, kept.size))
            weight[:, np.arange(n_rows), inverse.reshape(-1)] = factors.root_prior[:, configuration] * value
            cause_given_root = factors.cause_given_root[:, kept, :]  # (P, K', n)
            root_states = root_states[kept]
            if partial is not None:
                # the causes given the (hard) roots alone are each row's column; given only some of the roots, a sum
                # over the configurations of the others
                if partial >= factors.root_tables.keys():
                    present = cause_given_root[:, inverse.reshape(-1), :]
                else:
                    present = factors.causes_given(factors.root_weight({r: lam[r] for r in partial if r in lam}, n_rows))
                both_prior = read_only(np.stack([1.0 - present, present], axis=-1))
                given_roots = MappingProxyType({t: both_prior[:, :, mid_index[t], :] for t in targets})
        else:
            weight = factors.root_weight(lam, n_rows)
            if partial is not None:
                # every observed root in partial: the roots' weight is the one the full query uses
                only = weight if partial >= factors.root_tables.keys() & observed else factors.root_weight({r: lam[r] for r in partial if r in lam}, n_rows)
                present = factors.causes_given(only)
                both_prior = read_only(np.stack([1.0 - present, present], axis=-1))  # (P, B, n, 2); each target a view
                given_roots = MappingProxyType({t: both_prior[:, :, mid_index[t], :] for t in targets})
            cause_given_root = factors.cause_given_root
        P = max(weight.shape[0], cause_given_root.shape[0], factors.leak.shape[0])
        cause_likelihood = np.ones((n_rows, n, 2))
        for m, i in mid_index.items():
            if m in lam:
                cause_likelihood[:, i] = lam[m]
        leaf_targets = [t for t in targets if t in leaves]
        predicted = [t for t in leaf_targets if t in factors.noisy_index and t not in observed]
        used = [f for f in factors.noisy if f in observed] + predicted  # an observed target's own evidence stays in
        F = len(used)
        columns = [factors.noisy_index[f] for f in used]
        leak = factors.leak[:, columns]
        links = factors.links[:, columns, :]
        finding_likelihood = np.ones((n_rows, F, 2))
        for j, f in enumerate(used):
            if f in lam and f not in predicted:
                finding_likelihood[:, j] = lam[f]
        mixtures = []
        for f, (parent_index, dists, mleak) in factors.mixtures.items():
            if f in observed:
                mixtures.append(MixtureTerm(parent_index, dists, mleak, lam[f]))
        predict = np.arange(F - len(predicted), F)
        result = factorised_query(weight, cause_given_root, cause_likelihood, leak, links, finding_likelihood, mixtures, predict, max_bytes=self._budget, checked=True)
        log_evidence = self._add_isolated(result.log_evidence, evidence, cpds)
        P = max(P, log_evidence.shape[0], n_sets)  # one answer per set, even when only tables the evidence never reads were batched
        marginals: dict[str, np.ndarray] = {}
        both_states = read_only(np.stack([1.0 - result.cause_posterior, result.cause_posterior], axis=-1))  # (P, B, n, 2); each target a view
        for t in targets:
            if t in mid_index:
                marginals[t] = both_states[:, :, mid_index[t], :]
            elif t in roots:
                i = roots.index(t)
                summed = np.stack([result.root_posterior[:, :, root_states[:, i] == s].sum(axis=-1) for s in range(tables.cardinality(t))], axis=-1)
                with np.errstate(invalid="ignore"):  # (the sums of many configurations' posteriors: an observed root exactly one-hot)
                    marginals[t] = summed / summed.sum(axis=-1, keepdims=True)
            elif t in predicted:
                p = result.finding_posterior[:, :, predicted.index(t)]
                marginals[t] = np.stack([1.0 - p, p], axis=-1)
            elif t in isolated:
                prior = _dense_table(cpds[t])
                prior = prior if prior.ndim == 2 else prior[None]  # (P, card)
                q = prior[:, None, :] * (lam[t] if t in lam else np.ones((n_rows, prior.shape[-1])))[None]
                with np.errstate(invalid="ignore"):
                    marginals[t] = np.broadcast_to(q / q.sum(axis=2, keepdims=True), (P, n_rows, prior.shape[-1]))
            else:
                marginals[t] = self._leaf_by_clamping(evidence, t, cpds, n_sets, batched, log_evidence)
        log_evidence = np.broadcast_to(log_evidence, (P,) + log_evidence.shape[1:])
        marginals = _per_set_answers(marginals, log_evidence)
        answer = self._result(marginals, log_evidence, evidence, None, None, "factorised")
        if given_roots is None:
            return answer
        return QueryResult(answer.marginals, answer.log_evidence, given_roots, None, answer.method)

    def _factorised_one(self, evidence: EncodedEvidence, targets, cpds, partial: frozenset[str] | None) -> QueryResult | None:
        """One patient: :meth:`_factorised` for one row with every root observed hard and causes as targets, else None.

        The same factorised sums on the same numbers (the one root configuration of positive weight, the observed
        findings in the compiled order), with the arrays of one row built directly from the hard codes and the soft
        likelihoods; the targets' last states are kept side by side for :meth:`QueryResult.last_state`.
        """
        from ._noisy_or import Mixture as MixtureTerm
        from ._noisy_or import factorised_query

        factors = self._factors
        assert factors is not None
        mid_index = factors.mid_index
        roots = factors.root_tables
        if not all(t in mid_index for t in targets) or (partial is not None and not partial >= roots.keys()):
            return None
        column = self._one_root_column(evidence, factors, targets)
        if column is None:
            return None
        hard = evidence.hard_row
        assert hard is not None
        soft = evidence.likelihoods

        def likelihood(name: str, card: int) -> np.ndarray:
            code = hard.get(name)
            own = soft.get(name)
            if own is None:
                return _identity_row(card, code)
            return own[0] if code is None else _identity_row(card, code) * own[0]

        n = len(mid_index)
        cause_likelihood = np.ones((1, n, 2))
        noisy_index = factors.noisy_index
        columns = []
        for name in evidence.names:
            if name in mid_index:
                cause_likelihood[0, mid_index[name]] = likelihood(name, 2)
            elif name in noisy_index:
                columns.append(noisy_index[name])
        columns.sort()  # the compiled order of the findings, as the general path
        noisy = factors.noisy
        finding_likelihood = np.empty((1, len(columns), 2))
        for j, c in enumerate(columns):
            finding_likelihood[0, j] = likelihood(noisy[c], 2)
        mixtures = [
            MixtureTerm(parent_index, dists, mleak, likelihood(f, dists.shape[-1])[None])
            for f, (parent_index, dists, mleak) in factors.mixtures.items()
            if f in hard or f in soft
        ]
        cause_given_root = factors.cause_given_root[:, column : column + 1, :]  # (1, 1, n)
        weight = factors.root_prior[:, None, column : column + 1]  # (1, 1, 1)
        leak, links = factors.leak[:, columns], factors.links[:, columns, :]
        result = factorised_query(weight, cause_given_root, cause_likelihood, leak, links, finding_likelihood, mixtures, (), max_bytes=self._budget, checked=True)
        log_evidence = self._add_isolated(result.log_evidence, evidence, cpds)
        if not np.isfinite(log_evidence).all() or log_evidence.shape != (1, 1):
            return None  # (impossible evidence: the general path answers, with its NaN marginals)
        post = result.cause_posterior  # (1, 1, n)
        both_states = read_only(np.stack([1.0 - post, post], axis=-1))  # (1, 1, n, 2); each target a view
        index = [mid_index[t] for t in targets]
        marginals = {t: both_states[:, :, i, :] for t, i in zip(targets, index, strict=True)}
        answer = self._result(marginals, log_evidence, evidence, None, None, "factorised")
        if partial is None:
            return QueryResult(answer.marginals, answer.log_evidence, None, None, answer.method, (tuple(targets), read_only(post[0, 0, index]), None))
        present = cause_given_root[0, 0]  # the causes given the (hard) roots alone: the configuration's column
        both_prior = read_only(np.stack([1.0 - present, present], axis=-1)[None, None])  # (1, 1, n, 2)
        given_roots = MappingProxyType({t: both_prior[:, :, i, :] for t, i in zip(targets, index, strict=True)})
        last = (tuple(targets), read_only(post[0, 0, index]), read_only(present[index]))
        return QueryResult(answer.marginals, answer.log_evidence, given_roots, None, answer.method, last)

    def _one_root_column(self, evidence: EncodedEvidence, factors: _Factors, targets: Sequence[str]) -> int | None:
        """Return the root configuration of a single row whose roots are all observed hard (no root a target), else None."""
        if evidence.n_rows != 1 or factors.complete_cards is None or not factors.root_tables:
            return None
        hard = evidence.hard_row
        roots = factors.root_tables
        if hard is None or not all(r in hard for r in roots) or any(r in evidence.likelihoods for r in roots) or any(t in roots for t in targets):
            return None
        return int(np.ravel_multi_index(tuple(hard[r] for r in roots), factors.complete_cards))

    def _leaf_by_clamping(self, evidence: EncodedEvidence, leaf: str, cpds, n_sets, batched, log_evidence) -> np.ndarray:
        """P(leaf | evidence) for a leaf the factorised sums do not predict directly: the evidence with the leaf in each state."""
        return self._by_clamping(evidence, leaf, lambda clamped: self._factorised(clamped, (), cpds, n_sets, batched).log_evidence)

    def _by_clamping(self, evidence: EncodedEvidence, leaf: str, log_evidence_of: Any) -> np.ndarray:
        """P(variable | evidence) from ``log_evidence_of`` (log P of evidence rows, per set) with the variable clamped to each state."""
        card = self._tables.cardinality(leaf)
        rest = {k: v for k, v in evidence.codes.items() if k != leaf}
        soft = {k: v for k, v in evidence.likelihoods.items() if k != leaf}
        own = evidence.dense({leaf: card}).get(leaf, np.ones((evidence.n_rows, card))) if leaf in evidence.names else np.ones((evidence.n_rows, card))
        logs = []
        for s in range(card):
            codes = dict(rest)
            codes[leaf] = np.full(evidence.n_rows, s, dtype=np.intp)
            clamped = EncodedEvidence.from_codes(self._tables.states, codes, evidence.n_rows, soft)
            logs.append(log_evidence_of(clamped))
        stacked = np.stack(logs, axis=-1) + np.log(np.where(own > 0, own, 1.0))[None] + np.where(own > 0, 0.0, -np.inf)[None]
        top = stacked.max(axis=-1, keepdims=True)
        w = np.exp(stacked - np.where(np.isfinite(top), top, 0.0))
        with np.errstate(invalid="ignore"):
            return w / w.sum(axis=-1, keepdims=True)

    # ---------------------------------------------------------------- labelled queries
    def _impossible(self, log_evidence: np.ndarray, index: pd.Index, n_sets: int) -> None:
        bad = ~np.isfinite(log_evidence)
        if bad.any():
            sets, rows = np.nonzero(bad)
            where = [f"row {index[r]!r}" + (f" (parameter set {s})" if n_sets > 1 else "") for s, r in zip(sets[:5], rows[:5], strict=True)]
            raise EvidenceError(f"the evidence is impossible under the model (probability 0) in {', '.join(where)}" + (f" and {len(rows) - 5} more" if len(rows) > 5 else ""))

    def posteriors(
        self,
        evidence: pd.DataFrame,
        targets: Sequence[str] | None = None,
        *,
        likelihood: Mapping[str, Any] | None = None,
        parameters: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, pd.DataFrame]:
        """Posterior distribution of each target for each evidence row.

        Parameters
        ----------
        evidence : DataFrame
            Columns are variables, cells state names; NaN or None is unobserved.
        targets : sequence of str, optional
            Variables to query; by default every variable without hard
            evidence in any row.
        likelihood : mapping, optional
            Soft evidence per variable (see :meth:`encode`).
        parameters : mapping of str to array, optional
            Replacement tables with a leading axis of parameter sets,
            shape ``(n_sets, *table.shape)``; unnamed tables are shared.

        Returns
        -------
        dict of str to DataFrame
            One DataFrame per target: one row per evidence row (index
            preserved) and one column per state. With ``parameters`` the index
            is a MultiIndex (``parameter_set``, evidence index).

        Raises
        ------
        EvidenceError
            Unknown variable or state, or evidence impossible in some row (named).
        """
        encoded = self.encode(evidence, likelihood)
        if targets is None:
            hard = encoded.row if encoded.row is not None else encoded.codes
            targets = [v for v in self.variables if v not in hard]
        result = self.query(encoded, list(targets), parameters=parameters)
        n_sets = result.log_evidence.shape[0]
        self._impossible(result.log_evidence, evidence.index, n_sets)
        index = evidence.index if parameters is None else pd.MultiIndex.from_product([range(n_sets), evidence.index], names=["parameter_set", evidence.index.name])
        # pandas >= 3 builds a frame from one float block per target as it is (no inference, no checks: a third faster)
        create_dataframe_from_blocks = getattr(getattr(pd.api, "internals", None), "create_dataframe_from_blocks", None)
        out = {}
        for t, marginal in result.marginals.items():
            columns = self._columns.get(t)
            if columns is None:
                columns = self._columns[t] = pd.Index(list(self._tables.states[t]), name=t, dtype=object)
            values = marginal.reshape(-1, marginal.shape[-1])
            if create_dataframe_from_blocks is not None and values.dtype == np.float64 and len(values) == len(index):
                out[t] = create_dataframe_from_blocks([(values.T, np.arange(values.shape[1]))], index=index, columns=columns)
            else:
                out[t] = pd.DataFrame(values, index=index, columns=columns, copy=False)
        return out

    def evidence_probability(
        self,
        evidence: pd.DataFrame,
        *,
        likelihood: Mapping[str, Any] | None = None,
        parameters: Mapping[str, np.ndarray] | None = None,
        log: bool = False,
    ) -> pd.Series:
        """P(evidence) for each row (0 for impossible rows; no error here).

        With soft evidence this is the sum over states of the joint times the
        likelihoods, which is P(evidence) only up to the likelihoods' scale.
        With ``log=True`` returns the natural log (safe for tiny values).
        """
        result = self.query(self.encode(evidence, likelihood), (), parameters=parameters)
        n_sets = result.log_evidence.shape[0]
        index = evidence.index if parameters is None else pd.MultiIndex.from_product([range(n_sets), evidence.index], names=["parameter_set", evidence.index.name])
        values = result.log_evidence.reshape(-1)
        name = "log_evidence_probability" if log else "evidence_probability"
        return pd.Series(values if log else np.exp(values), index=index, name=name)

    # ---------------------------------------------------------------- most probable configurations
    def most_probable(self, evidence: EncodedEvidence, variables: Sequence[str], k: int) -> MostProbable:
        """Find the ``k`` most probable joint configurations of some variables given one row of evidence, the rest summed out.

        The method is chosen by structure and size (named in :attr:`MostProbable.method`): the joint
        query's posterior of every configuration (``"enumeration"``) while it fits the memory budget;
        beyond it, on a layered network with binary causes and noisy-OR or mixture leaves, whose causes
        outside ``variables`` the evidence fixes, an exact branch and bound over the causes that never
        holds ``2**n`` rows (``"branch and bound"``, :mod:`._most_probable`).

        Parameters
        ----------
        evidence : EncodedEvidence
            One row.
        variables : sequence of str
            The variables whose configurations are ranked (middle-layer variables of a layered network
            for the branch and bound).
        k : int
            How many configurations, most probable first.

        Returns
        -------
        MostProbable
            Fewer than ``k`` configurations when fewer are possible; configurations whose probabilities
            agree (exactly with the enumeration, within 1e-12 relative with the branch and bound) come in
            the order of their configuration numbers (last variable fastest).

        Raises
        ------
        EvidenceError
            More than one row, or an unknown variable.
        MemoryBudgetError
            When neither method fits the memory budget.

        Examples
        --------
        >>> import numpy as np
        >>> from postfusion_bayes.engine import NetworkTables, compile_network
        >>> from postfusion_bayes.engine.encoding import EncodedEvidence
        >>> t = NetworkTables({"rain": ("no", "yes"), "wet": ("no", "yes")}, {"wet": ("rain",)},
        ...                   {"rain": [0.8, 0.2], "wet": [[0.9, 0.1], [0.2, 0.8]]})
        >>> net = compile_network(t)
        >>> top = net.most_probable(EncodedEvidence.from_rows(net.states, [{"wet": "yes"}]), ["rain"], 1)
        >>> top.configurations.tolist(), top.posterior.round(3).tolist(), top.method
        ([[1]], [0.667], 'enumeration')
        """
        from .arguments import check_count

        if not isinstance(evidence, EncodedEvidence) or evidence.n_rows != 1:
            raise EvidenceError(f"most_probable takes one row of evidence (an EncodedEvidence), got {evidence.n_rows if isinstance(evidence, EncodedEvidence) else type(evidence).__name__} rows")
        variables = tuple(dict.fromkeys(self._check_variable(v, "the variables") for v in variables))
        k = check_count("k", k)
        if self._enumerates(variables) or not self._searchable(evidence, variables):
            return self._most_probable_by_enumeration(evidence, variables, k)
        return self._most_probable_by_search(evidence, variables, k)

    def _enumerates(self, variables: tuple[str, ...]) -> bool:
        """Whether the joint query's posterior of every configuration fits the budget (or no other method applies)."""
        if self._plan is not None or self._factors is None or not set(variables) <= set(self._layers[2]):
            return True
        from ._enumeration import enumeration_bytes

        middle = self._layers[2]
        J = 2 ** len(middle)
        # the structured enumeration (its own peak, and the joint posterior with its sums), then the ranking's copies
        needed = max(enumeration_bytes(J, len(middle)), _FLOAT * 3 * J) + _FLOAT * 3 * 2 ** len(variables)
        return needed <= self._budget

    def _searchable(self, evidence: EncodedEvidence, variables: tuple[str, ...]) -> bool:
        """Whether the branch and bound applies: every middle variable outside ``variables`` fixed by the evidence."""
        rest = [m for m in self._layers[2] if m not in variables]
        if not rest:
            return True
        lam = evidence.dense({m: 2 for m in rest if m in evidence.names})
        return all(m in lam and int((lam[m][0] > 0).sum()) == 1 for m in rest)

    def _most_probable_by_enumeration(self, evidence: EncodedEvidence, variables: tuple[str, ...], k: int) -> MostProbable:
        result = self.query(evidence, (), joint=variables)
        joint = result.joint
        assert joint is not None
        weight = np.nan_to_num(joint.posterior[0, 0], nan=0.0)
        if k < len(weight):  # the k largest, found without sorting every configuration; ties broken by position, as a stable sort would
            cut = np.partition(weight, len(weight) - k)[len(weight) - k]
            candidates = np.flatnonzero(weight >= cut)
            order = candidates[np.argsort(-weight[candidates], kind="stable")][:k]
        else:
            order = np.argsort(-weight, kind="stable")
        order = order[weight[order] > 0]  # an impossible configuration is no explanation
        return MostProbable(variables, read_only(joint.configurations[order]), read_only(weight[order]), float(result.log_evidence[0, 0]), "enumeration")

    def _most_probable_by_search(self, evidence: EncodedEvidence, variables: tuple[str, ...], k: int) -> MostProbable:
        from ._most_probable import top_configurations
        from ._noisy_or import Mixture as MixtureTerm

        factors = self._factors
        assert factors is not None
        tables = self._tables
        lam = evidence.dense({v: tables.cardinality(v) for v in evidence.names})
        n = len(factors.mid_index)
        cause_likelihood = np.ones((n, 2))
        for m, i in factors.mid_index.items():
            if m in lam:
                cause_likelihood[i] = lam[m][0]
        finding_likelihood = np.ones((len(factors.noisy), 2))
        for f, j in factors.noisy_index.items():
            if f in lam:
                finding_likelihood[j] = lam[f][0]
        mixtures = [MixtureTerm(parents, dists[:1], mleak[:1], lam[f]) for f, (parents, dists, mleak) in factors.mixtures.items() if f in lam]
        top = top_configurations(
            factors.root_weight(lam, 1)[0, 0], factors.cause_given_root[0], cause_likelihood, factors.leak[0], factors.links[0], finding_likelihood, mixtures,
            k=k, max_bytes=self._budget,
        )
        log_evidence = top.log_evidence
        if np.isfinite(log_evidence):
            log_evidence = float(self._add_isolated(np.array([[log_evidence]]), evidence)[0, 0] + evidence.log_scale[0])
        columns = [factors.mid_index[v] for v in variables]
        configurations = top.present[:, columns].astype(np.intp)
        return MostProbable(variables, read_only(configurations), read_only(np.array(top.posterior)), log_evidence, "branch and bound")


@dataclass(frozen=True, eq=False)
class _Factors:
    """The numbers the factorised sums read, gathered once from structured tables (read-only).

    For the compiled tables they are built at compile time; for parameter sets, per query.
    """

    mid_index: Mapping[str, int]
    root_states: np.ndarray  # (K, n_roots)
    root_prior: np.ndarray  # (P, K)
    root_tables: Mapping[str, int]  # root -> its column in root_states
    cause_given_root: np.ndarray  # (P, K, n)
    noisy: tuple[str, ...]
    noisy_index: Mapping[str, int]
    leak: np.ndarray  # (P, F)
    links: np.ndarray  # (P, F, n)
    mixtures: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # leaf -> (parent indices, distributions (P, k, S), leak (P, S))
    #: the roots' numbers of states when root_states holds every configuration (first root slowest), else None
    complete_cards: tuple[int, ...] | None = None

    @staticmethod
    def build(tables: NetworkTables, layer: tuple[tuple[str, ...], ...], cpds: Mapping[str, Any], lam: Mapping[str, np.ndarray] | None = None) -> _Factors:
        """Gather the numbers of ``cpds`` (the compiled tables, or batched replacements).

        With ``lam`` (the evidence), only the root configurations some row allows are kept: with the
        context observed, one instead of all of them, for every parameter set.
        """
        _, roots, middle, leaves = layer
        mid_index = {m: i for i, m in enumerate(middle)}
        n = len(middle)
        root_cards = [tables.cardinality(r) for r in roots]
        K = int(np.prod(root_cards, dtype=np.int64)) if roots else 1
        root_states = np.stack(np.unravel_index(np.arange(K), root_cards), axis=1) if roots else np.zeros((1, 0), dtype=np.intp)
        complete = True
        if lam is not None and roots:
            allowed = np.ones(K, dtype=bool)
            for i, r in enumerate(roots):
                if r in lam:
                    allowed &= (lam[r][:, root_states[:, i]] > 0).any(axis=0)
            if allowed.any() and not allowed.all():
                root_states = root_states[allowed]
                K = int(root_states.shape[0])
                complete = False

        def lead(table: Any, n_axes: int) -> np.ndarray:
            table = np.asarray(table)
            return table if table.ndim == n_axes + 1 else table[None]

        root_prior = np.ones((1, K))
        for i, r in enumerate(roots):
            root_prior = root_prior * lead(cpds[r], 1)[:, root_states[:, i]]
        sets = max([root_prior.shape[0]] + [lead(cpds[m], len(tables.parents[m]) + 1).shape[0] for m in middle])
        cause_given_root = np.empty((sets, K, n))
        for m, i in mid_index.items():
            table = lead(cpds[m], len(tables.parents[m]) + 1)
            idx: tuple[Any, ...] = tuple(root_states[:, roots.index(p)] for p in tables.parents[m])
            cause_given_root[:, :, i] = np.broadcast_to(table[(slice(None), *idx, 1)] if idx else table[:, None, 1], (table.shape[0], K))
        noisy = tuple(f for f in leaves if isinstance(cpds[f], NoisyOr))
        batch = max([1] + [cpds[f].batch_shape[0] for f in noisy if cpds[f].batch_shape])
        leak = np.zeros((batch, len(noisy)))
        links = np.zeros((batch, len(noisy), n))
        for j, f in enumerate(noisy):
            cpd = cpds[f]
            leak[:, j] = cpd.leak
            links[:, j, [mid_index[p] for p in tables.parents[f]]] = cpd.links
        mixtures = {}
        for f in leaves:
            cpd = cpds[f]
            if isinstance(cpd, Mixture):
                dists = cpd.distributions if cpd.batch_shape else cpd.distributions[None]
                mleak = cpd.leak if cpd.batch_shape else cpd.leak[None]
                mixtures[f] = (np.array([mid_index[p] for p in tables.parents[f]], dtype=np.intp), dists, mleak)
        for array in (root_states, root_prior, cause_given_root, leak, links):
            array.setflags(write=False)
        return _Factors(
            MappingProxyType(mid_index), root_states, root_prior, MappingProxyType({r: i for i, r in enumerate(roots)}), cause_given_root,
            noisy, MappingProxyType({f: j for j, f in enumerate(noisy)}), leak, links, MappingProxyType(mixtures),
            tuple(root_cards) if complete else None,
        )

    def root_weight(self, lam: Mapping[str, np.ndarray], n_rows: int) -> np.ndarray:
        """Prior times evidence of every root configuration, shape (P, n_rows, K)."""
        observed = [(r, i) for r, i in self.root_tables.items() if r in lam]
        cards = self.complete_cards
        hard = self.hard_roots(lam, n_rows)
        if hard is not None:  # one configuration of positive weight per row: the same products, without the outer ones
            configuration, value = hard
            weight = np.zeros((self.root_prior.shape[0], n_rows, self.root_prior.shape[1]))
            weight[:, np.arange(n_rows), configuration] = self.root_prior[:, configuration] * value
            return weight
        if observed and cards is not None:
            # every configuration, first root slowest: the evidence's weight is the outer product of the roots'
            # likelihoods, built root by root (no gathers over all K configurations)
            evidence = np.ones((n_rows, 1))
            for r, i in self.root_tables.items():
                own = lam[r] if r in lam else np.ones((1, cards[i]))
                product = evidence[:, :, None] * own[:, None, :]
                evidence = product.reshape(product.shape[0], product.shape[1] * product.shape[2])  # (explicit: rows may be 0)
            return self.root_prior[:, None, :] * np.broadcast_to(evidence, (n_rows, evidence.shape[1]))[None]
        weight = np.broadcast_to(self.root_prior[:, None, :], (self.root_prior.shape[0], n_rows, self.root_prior.shape[1]))
        for r, i in observed:
            weight = weight * lam[r][:, self.root_states[:, i]][None]
        return np.array(weight)

    def hard_roots(self, lam: Mapping[str, np.ndarray], n_rows: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Per row, its one root configuration of positive weight and the product of its roots' likelihoods.

        Only when every root is observed hard (one state of positive likelihood) in every row, and the
        factors hold every configuration; else None. The product is taken root by root from 1, as in
        :meth:`root_weight`.
        """
        cards = self.complete_cards
        if cards is None or not n_rows or not self.root_tables or not all(r in lam for r in self.root_tables):
            return None
        positive = [lam[r] > 0 for r in self.root_tables]
        if not all((p.sum(axis=1) == 1).all() for p in positive):
            return None
        codes = [p.argmax(axis=1) for p in positive]
        rows = np.arange(n_rows)
        value = np.ones(n_rows)
        for r, code in zip(self.root_tables, codes, strict=True):
            value = value * lam[r][rows, code]
        return np.ravel_multi_index(tuple(codes), cards), value

    def causes_given(self, weight: np.ndarray) -> np.ndarray:
        """P(cause present | the evidence on the roots alone), shape (P, n_rows, n), from :meth:`root_weight`."""
        total = weight.sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (weight @ self.cause_given_root) / total[..., None]


def _identity_row(card: int, code: int | None) -> np.ndarray:
    """Return the likelihood of hard evidence ``code`` (a one-hot row), or ones when ``code`` is None (read-only)."""
    return _ONES[card] if code is None else _IDENTITY[card][code]


class _Rows(dict):
    """A pure memo of read-only rows by number of states (identity matrices, or rows of ones)."""

    def __init__(self, make: Any) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, card: int) -> np.ndarray:
        value = self[card] = read_only(self._make(card))
        return value


_IDENTITY = _Rows(np.eye)
_ONES = _Rows(np.ones)


def _one_set(table: Any, s: int) -> Any:
    """Parameter set ``s`` of a batched table (dense, noisy-OR or mixture)."""
    if isinstance(table, NoisyOr):
        return NoisyOr(leak=table.leak[s], links=table.links[s])
    if isinstance(table, Mixture):
        return Mixture(distributions=table.distributions[s], leak=table.leak[s])
    return np.asarray(table)[s]


def _hashable(value: Any) -> bool:
    """Whether a cell can be hashed (a tuple holding a list cannot, though it is a Hashable by type)."""
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _per_set_answers(marginals: dict[str, np.ndarray], log_evidence: np.ndarray) -> dict[str, np.ndarray]:
    """Give every answer its parameter-set axis (``log_evidence.shape[0]`` sets), NaN where the evidence is impossible, whatever the target."""
    P = log_evidence.shape[0]
    marginals = {t: (m if m.shape[0] == P else np.broadcast_to(m, (P,) + m.shape[1:])) for t, m in marginals.items()}
    impossible = ~np.isfinite(log_evidence)
    if impossible.any():
        for t in list(marginals):
            value = np.array(marginals[t])
            value[impossible] = np.nan
            marginals[t] = value
    return marginals
