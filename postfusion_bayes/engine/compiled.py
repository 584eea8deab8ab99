"""Compiled, batched, exact inference for discrete Bayesian networks.

:func:`compile_network` takes any discrete Bayesian network (a pgmpy
``DiscreteBayesianNetwork`` or :class:`~postfusion_bayes.engine.tables.NetworkTables`)
and returns an immutable :class:`CompiledNetwork`. Queries are batched over
evidence rows and, optionally, over many versions of the tables at once
(a leading parameter-set axis), and are exact:

* layered networks (roots -> hidden middle layer -> leaves, as ours: context
  -> causes -> findings) enumerate the middle layer's joint states with dense
  array products (:mod:`postfusion_bayes.engine._layered`);
* any other DAG runs variable elimination with per-step rescaling
  (:mod:`postfusion_bayes.engine._elimination`).

Evidence is a :class:`pandas.DataFrame` whose columns are variables and whose
cells are state names; a missing cell (NaN or None) means unobserved. Soft
evidence goes through ``likelihood``: for a variable, a DataFrame (same index
as ``evidence``, one column per state) or an array ``(n_rows, n_states)`` of
non-negative numbers proportional to P(observation | state); a row of NaN means
no soft evidence in that row. A variable may carry hard and soft evidence in
the same row only if they agree on nothing else: both are multiplied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ._elimination import eliminate
from ._layered import LayeredPlan, is_layered
from ..errors import EvidenceError, suggest
from .tables import COLUMN_SUM_TOLERANCE, NetworkTables

__all__ = ["compile_network", "CompiledNetwork", "one_hot"]


def one_hot(codes: np.ndarray, cardinality: int) -> np.ndarray:
    """Likelihood rows from state indices: one-hot where ``codes >= 0``, ones where ``-1`` (unobserved).

    Examples
    --------
    >>> one_hot(np.array([1, -1]), 2)
    array([[0., 1.],
           [1., 1.]])
    """
    codes = np.asarray(codes)
    lam = np.zeros((codes.size, cardinality))
    seen = codes >= 0
    lam[np.flatnonzero(seen), codes[seen]] = 1.0
    lam[~seen] = 1.0
    return lam

#: Parameter sets are evaluated in chunks so that no array grows past this many entries.
_CHUNK_ENTRIES = 4_000_000


def compile_network(network: Any, strategy: str = "auto", *, normalize: bool = False) -> "CompiledNetwork":
    """Compile a discrete Bayesian network for fast exact queries.

    Parameters
    ----------
    network : NetworkTables or pgmpy.models.DiscreteBayesianNetwork
    strategy : {"auto", "layered", "elimination"}
        "auto" enumerates when the network is layered and eliminates otherwise.
    normalize : bool, default False
        Every table column must sum to 1 within 1e-9, or compiling fails with
        a list of the offending tables. Some published BIF files (alarm,
        insurance, sachs) round their numbers so that columns sum to 1 only
        within about 1e-7; pass ``normalize=True`` to divide each column by
        its sum, explicitly, when no column is off by more than 1e-4.

    Returns
    -------
    CompiledNetwork

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from .tables import NetworkTables
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
            raise TypeError(f"expected NetworkTables or a pgmpy DiscreteBayesianNetwork, got {type(network).__name__}")
    if normalize:
        problems = network.column_sum_errors(tolerance=1e-4)
        if problems:
            raise ValueError("cannot normalize: " + "; ".join(problems))
        network = network.replace({v: t / t.sum(axis=-1, keepdims=True) for v, t in network.cpts.items()})
    return CompiledNetwork(network, strategy=strategy)


class CompiledNetwork:
    """A network compiled once for exact batched inference (immutable).

    Use :func:`compile_network` to build one.
    """

    __slots__ = ("_tables", "_strategy", "_plan", "_state_index", "_last_columns")

    def __init__(self, tables: NetworkTables, strategy: str = "auto"):
        problems = tables.column_sum_errors()
        if problems:
            raise ValueError("invalid tables: " + "; ".join(problems) + " (compile_network(..., normalize=True) divides each column by its sum)")
        if any(t.ndim != len(tables.parents[v]) + 1 for v, t in tables.cpts.items()):
            raise ValueError("compile unbatched tables; pass parameter sets to the queries instead")
        layered = is_layered(tables)
        if strategy == "auto":
            strategy = "layered" if layered else "elimination"
        if strategy not in ("layered", "elimination"):
            raise ValueError(f"unknown strategy {strategy!r}; allowed: auto, layered, elimination")
        if strategy == "layered" and not layered:
            raise ValueError("the network is not layered (roots -> middle -> leaves); use strategy='elimination'")
        object.__setattr__(self, "_tables", tables)
        object.__setattr__(self, "_strategy", strategy)
        object.__setattr__(self, "_plan", LayeredPlan(tables) if strategy == "layered" else None)
        object.__setattr__(self, "_state_index", {v: {s: i for i, s in enumerate(st)} for v, st in tables.states.items()})
        object.__setattr__(self, "_last_columns", {})  # cache: targets -> columns of their last states

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("CompiledNetwork is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("CompiledNetwork is immutable")

    def __repr__(self) -> str:
        return f"<CompiledNetwork: {len(self.variables)} variables, strategy={self._strategy!r}>"

    # ---------------------------------------------------------------- description
    @property
    def tables(self) -> NetworkTables:
        """The tables the network was compiled from."""
        return self._tables

    @property
    def strategy(self) -> str:
        """"layered" (enumeration of the middle layer) or "elimination"."""
        return self._strategy

    @property
    def variables(self) -> tuple[str, ...]:
        """Variable names in topological order."""
        return self._tables.variables

    @property
    def states(self) -> Mapping[str, tuple[str, ...]]:
        """State names of every variable."""
        return self._tables.states

    # ---------------------------------------------------------------- encoding
    def _check_variable(self, name: object, what: str) -> str:
        if name not in self._state_index:
            raise EvidenceError(f"unknown variable {name!r} in {what}{suggest(name, self.variables)}")
        return str(name)

    def encode(self, evidence: pd.DataFrame, likelihood: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
        """Turn evidence into one likelihood array ``(n_rows, n_states)`` per observed variable.

        Raises
        ------
        EvidenceError
            For an unknown variable or state, naming it, what was given and what is allowed.
        """
        if not isinstance(evidence, pd.DataFrame):
            raise EvidenceError(f"evidence must be a pandas DataFrame (one row per case), got {type(evidence).__name__}")
        out: dict[str, np.ndarray] = {}
        for column in evidence.columns:
            name = self._check_variable(column, "the evidence columns")
            codes = self._codes(name, evidence[column], evidence.index)
            if (codes < 0).all():
                continue
            out[name] = one_hot(codes, self._tables.cardinality(name))
        for column, value in (likelihood or {}).items():
            name = self._check_variable(column, "the likelihood")
            lam = self._soft(name, value, evidence.index)
            out[name] = out[name] * lam if name in out else lam
        for name, lam in out.items():
            dead = ~(lam.sum(axis=1) > 0)
            if dead.any():
                raise EvidenceError(f"variable {name!r}: likelihood is zero for every state in rows {list(evidence.index[dead][:5])}")
        return out

    def _codes(self, name: str, values: pd.Series, index: pd.Index) -> np.ndarray:
        """State index of every cell (-1 where unobserved); raises on an unknown state, naming rows."""
        states = self._tables.states[name]
        lookup = self._state_index[name]
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        translate = np.empty(len(uniques) + 1, dtype=np.intp)
        translate[-1] = -1
        for i, value in enumerate(uniques):
            if value not in lookup or not isinstance(value, str):
                rows = list(index[codes == i][:5])
                raise EvidenceError(
                    f"variable {name!r}: state {value!r}{suggest(value, states)} is not allowed "
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
            arr = value.reindex(columns=list(states)).to_numpy(dtype=float)
        else:
            arr = np.asarray(value, dtype=float)
            if arr.shape != (len(index), len(states)):
                raise EvidenceError(f"likelihood of {name!r}: shape {arr.shape}, expected {(len(index), len(states))} (rows, states {states})")
        absent = np.isnan(arr).all(axis=1)
        arr = np.where(absent[:, None], 1.0, arr)
        if np.isnan(arr).any() or (arr < 0).any() or np.isinf(arr).any():
            raise EvidenceError(f"likelihood of {name!r}: values must be finite and non-negative, one per state {states}")
        return arr

    def _parameter_tables(self, parameters: Mapping[str, np.ndarray] | None, validate: bool = True) -> tuple[dict[str, np.ndarray], int]:
        cpts = dict(self._tables.cpts)
        if not parameters:
            return cpts, 1
        sizes = set()
        for name, table in parameters.items():
            if name not in cpts:
                raise ValueError(f"parameters name unknown variable {name!r}{suggest(name, self.variables)}")
            table = np.asarray(table, dtype=float)
            expected = self._tables.cpts[name].shape
            if table.ndim != len(expected) + 1 or table.shape[1:] != expected:
                raise ValueError(f"parameter tables of {name!r} have shape {table.shape}, expected (n_sets, *{expected})")
            sizes.add(table.shape[0])
            cpts[name] = table
            if not validate:
                continue
            if not table.min() >= 0:  # also catches NaN
                raise ValueError(f"parameter tables of {name!r} have negative or NaN entries")
            worst = float(np.max(np.abs(table.sum(axis=-1) - 1)))
            if not worst <= COLUMN_SUM_TOLERANCE:  # with no negatives, also bounds every entry by 1
                raise ValueError(f"parameter tables of {name!r}: columns sum to 1 only within {worst:.3g}")
        if len(sizes) != 1:
            raise ValueError(f"parameter tables have different numbers of sets {sorted(sizes)}")
        return cpts, sizes.pop()

    # ---------------------------------------------------------------- arrays in, arrays out
    def posterior_arrays(
        self,
        likelihoods: Mapping[str, np.ndarray],
        targets: Sequence[str],
        n_rows: int,
        parameters: Mapping[str, np.ndarray] | None = None,
        *,
        validate: bool = True,
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Low-level query on encoded evidence (see :meth:`encode`).

        ``parameters`` are replacement tables with a leading axis of parameter
        sets (see :meth:`posteriors`). They are checked (no negative entry,
        columns summing to 1 within 1e-9) unless ``validate=False``, which is
        for tables built from already validated numbers
        (:func:`postfusion_bayes.cpts.build_tables`); a check of 10,000 sets
        of our network's tables costs about as much as the query itself.

        Returns
        -------
        marginals : dict of str to array, shape (n_sets, n_rows, n_states)
            P(target | evidence); NaN where the evidence is impossible.
        log_evidence : array, shape (n_sets, n_rows)
            log P(evidence); -inf where it is impossible.
        """
        for t in targets:
            self._check_variable(t, "the targets")
        cpts, n_sets = self._parameter_tables(parameters, validate)
        marginals, log_evidence = self._chunked(cpts, likelihoods, targets, n_rows, n_sets, parameters)
        return self._rescue(cpts, likelihoods, targets, marginals, log_evidence)

    def _rescue(self, cpts, likelihoods, targets, marginals, log_evidence):
        """Recompute, in extended precision, the rows float64 reported as impossible.

        A row is truly impossible only if it stays so; a probability that
        merely fell below the float64 range somewhere is recovered.
        """
        bad_rows = ~np.isfinite(log_evidence).all(axis=0)
        if not bad_rows.any():
            return marginals, log_evidence
        rows = np.flatnonzero(bad_rows)
        tables = NetworkTables(self._tables.states, self._tables.parents, cpts)
        sub = {v: lam[rows] for v, lam in likelihoods.items()} or {self.variables[0]: np.ones((rows.size, self._tables.cardinality(self.variables[0])))}
        fixed, fixed_log = eliminate(tables, sub, list(targets), extended=True)
        log_evidence = log_evidence.copy()
        log_evidence[:, rows] = np.broadcast_to(fixed_log, (log_evidence.shape[0], rows.size))
        marginals = {t: m.copy() for t, m in marginals.items()}
        for t in targets:
            marginals[t][:, rows] = np.broadcast_to(fixed[t], (log_evidence.shape[0], rows.size, marginals[t].shape[-1]))
        return marginals, log_evidence

    def _chunked(self, cpts, likelihoods, targets, n_rows, n_sets, parameters):
        per_set = n_rows * max(self._plan.J if self._plan else 64, 1)
        chunk = max(1, _CHUNK_ENTRIES // max(per_set, 1)) if n_sets > 1 else 1
        if n_sets <= chunk:
            return self._sets(self._run(cpts, likelihoods, targets, n_rows), n_sets)
        parts = []
        batched = set(parameters or ())
        for start in range(0, n_sets, chunk):
            sub = {v: (t[start : start + chunk] if v in batched else t) for v, t in cpts.items()}
            parts.append(self._sets(self._run(sub, likelihoods, targets, n_rows), min(chunk, n_sets - start)))
        marginals = {t: np.concatenate([p[0][t] for p in parts]) for t in targets}
        return marginals, np.concatenate([p[1] for p in parts])

    @staticmethod
    def _sets(result, n_sets):
        """Give every result the full parameter-set axis (a set of tables that no evidence touches leaves it at 1)."""
        marginals, log_evidence = result
        if log_evidence.shape[0] == n_sets:
            return marginals, log_evidence
        return (
            {t: np.broadcast_to(m, (n_sets,) + m.shape[1:]).copy() for t, m in marginals.items()},
            np.broadcast_to(log_evidence, (n_sets,) + log_evidence.shape[1:]).copy(),
        )

    def _run(self, cpts, likelihoods, targets, n_rows):
        if self._plan is not None:
            shared = all(cpts[v] is t for v, t in self._tables.cpts.items())
            return self._plan.run(None if shared else cpts, likelihoods, list(targets), n_rows)
        tables = NetworkTables(self._tables.states, self._tables.parents, cpts)
        full = {v: likelihoods[v] for v in likelihoods}
        if not full:
            first = self.variables[0]
            full = {first: np.ones((n_rows, self._tables.cardinality(first)))}
        return eliminate(tables, full, list(targets))

    def posterior_one(self, states: Mapping[str, str], targets: Sequence[str], condition_only_on: Sequence[str] = ()) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], float]:
        """One row of hard evidence, in as few array operations as possible.

        Parameters
        ----------
        states : mapping of str to str
            Variable to observed state name (already validated).
        targets : sequence of str
        condition_only_on : sequence of str
            Variables whose evidence alone gives the second result (for a
            diagnosis, the context); on a layered network these must be roots.

        Returns
        -------
        marginals : dict of str to array, shape (n_states,)
            P(target | all the evidence); NaN when it is impossible.
        partial : dict of str to array
            P(target | the evidence on ``condition_only_on``).
        log_evidence : float
            log P(evidence), -inf when impossible.
        """
        plan = self._plan
        index = self._state_index
        if plan is not None and all(t in plan.mid_pos for t in targets):
            fast = self._query_hard(states, condition_only_on)
            if fast is not None:
                full, root_only, log_evidence = fast
                return {t: full[plan.mid_slices[t]] for t in targets}, {t: root_only[plan.mid_slices[t]] for t in targets}, log_evidence
        partial_states = {v: s for v, s in states.items() if v in condition_only_on}
        rows = [states, partial_states]
        lam = {}
        for i, row in enumerate(rows):
            for v, s in row.items():
                if v not in lam:
                    lam[v] = np.ones((2, self._tables.cardinality(v)))
                lam[v][i] = 0.0
                lam[v][i, index[v][s]] = 1.0
        marginals, log_evidence = self.posterior_arrays(lam, targets, 2)
        return {t: m[0, 0] for t, m in marginals.items()}, {t: m[0, 1] for t, m in marginals.items()}, float(log_evidence[0, 0])

    def _query_hard(self, states: Mapping[str, str], condition_only_on) -> tuple[np.ndarray, np.ndarray, float] | None:
        """The layered plan's one-row answer, or None where it does not apply or the row looks impossible.

        It applies when the partial evidence is exactly the evidence on the
        observed roots; a row it reports impossible goes to the general path,
        which recomputes it in extended precision before calling it impossible.
        """
        root_pos = self._plan.root_pos
        if not all(v in root_pos for v in condition_only_on) or not all(v in condition_only_on for v in states if v in root_pos):
            return None
        index = self._state_index
        full, root_only, log_evidence = self._plan.query_hard({v: index[v][s] for v, s in states.items()})
        return (full, root_only, log_evidence) if log_evidence > -np.inf else None

    def last_state_one(self, states: Mapping[str, str], targets: tuple[str, ...], condition_only_on: frozenset[str]) -> tuple[np.ndarray, np.ndarray, float]:
        """:meth:`posterior_one` reduced to each target's last state (e.g. "present"), as arrays.

        Returns
        -------
        full, partial : array, shape (n_targets,)
        log_evidence : float
        """
        plan = self._plan
        columns = self._last_columns.get(targets) if plan is not None else None
        if columns is None and plan is not None and all(t in plan.mid_pos for t in targets):
            columns = np.array([plan.mid_slices[t].stop - 1 for t in targets])
            self._last_columns[targets] = columns
        if columns is not None:
            fast = self._query_hard(states, condition_only_on)
            if fast is not None:
                full, root_only, log_evidence = fast
                return full[columns], root_only[columns], log_evidence
        full_d, partial_d, log_evidence = self.posterior_one(states, targets, condition_only_on)
        return np.array([full_d[t][-1] for t in targets]), np.array([partial_d[t][-1] for t in targets]), log_evidence

    def posterior_codes(self, codes: Mapping[str, np.ndarray], targets: Sequence[str], n_rows: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Many rows of hard evidence given as state indices (-1 unobserved), compiled tables.

        Returns
        -------
        marginals : dict of str to array, shape (n_rows, n_states)
            NaN in rows whose evidence is impossible.
        log_evidence : array, shape (n_rows,)
        """
        plan = self._plan
        if plan is not None and all(t in plan.mid_pos for t in targets):
            values, log_evidence = plan.query_codes(codes, n_rows)
            marginals = {t: values[:, plan.mid_slices[t]] for t in targets}
            if np.isfinite(log_evidence).all():
                return marginals, log_evidence
            lam = {v: one_hot(c, self._tables.cardinality(v)) for v, c in codes.items() if (c >= 0).any()}
            rescued, log_rescued = self._rescue(self._tables.cpts, lam, targets, {t: m[None] for t, m in marginals.items()}, log_evidence[None])
            return {t: m[0] for t, m in rescued.items()}, log_rescued[0]
        lam = {v: one_hot(c, self._tables.cardinality(v)) for v, c in codes.items() if (c >= 0).any()}
        marginals, log_evidence = self.posterior_arrays(lam, targets, n_rows)
        return {t: m[0] for t, m in marginals.items()}, log_evidence[0]

    @property
    def middle(self) -> tuple[tuple[str, ...], np.ndarray]:
        """Names of a layered network's middle layer and its joint configurations.

        Returns
        -------
        names : tuple of str
            The middle variables (for our network, the causes).
        configurations : array, shape (J, n_middle)
            State index of every middle variable in each joint configuration,
            in the order of :meth:`configuration_posteriors`.

        Raises
        ------
        ValueError
            When the network was not compiled with the layered strategy.
        """
        plan = self._layered_plan()
        return tuple(plan.middle), plan.mid_states.copy()

    def _layered_plan(self) -> LayeredPlan:
        if self._plan is None:
            raise ValueError("joint configurations of the middle layer need a layered network (roots -> middle -> leaves)")
        return self._plan

    def configuration_posteriors(self, codes: Mapping[str, np.ndarray], n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Joint posterior of the middle layer (e.g. every combination of causes) for many rows of hard evidence.

        Exact: the layered plan enumerates the ``J`` joint configurations of
        the middle layer (256 for eight binary causes) in one batch.

        Parameters
        ----------
        codes : mapping of str to int array, shape (n_rows,)
            State index per row, -1 where unobserved.
        n_rows : int

        Returns
        -------
        posterior : array, shape (n_rows, J)
            P(configuration | row), configurations as in :attr:`middle`; NaN
            in rows whose evidence is impossible.
        log_evidence : array, shape (n_rows,)
            log P(row); -inf where impossible (not recomputed in extended
            precision: check such rows with :meth:`posterior_codes`).

        Raises
        ------
        ValueError
            When the network is not layered.

        Examples
        --------
        >>> from postfusion_bayes import load_model
        >>> net = load_model().network
        >>> names, configurations = net.middle
        >>> posterior, log_evidence = net.configuration_posteriors({"ct_nonunion": np.array([1])}, 1)
        >>> posterior.shape, bool(np.isclose(posterior.sum(), 1.0))
        ((1, 256), True)
        """
        return self._layered_plan().configuration_codes(codes, n_rows)

    # ---------------------------------------------------------------- labelled queries
    def _impossible(self, log_evidence: np.ndarray, index: pd.Index, n_sets: int) -> None:
        bad = ~np.isfinite(log_evidence)
        if bad.any():
            sets, rows = np.nonzero(bad)
            where = [f"row {index[r]!r}" + (f" (parameter set {s})" if n_sets > 1 else "") for s, r in zip(sets[:5], rows[:5])]
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
            Soft evidence per variable (see the module docstring).
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
        lam = self.encode(evidence, likelihood)
        if targets is None:
            observed = set(evidence.columns[evidence.notna().any().to_numpy()]) if len(evidence.columns) else set()
            targets = [v for v in self.variables if v not in observed]
        targets = list(targets)
        n_sets = self._parameter_tables(parameters)[1]
        marginals, log_evidence = self.posterior_arrays(lam, targets, len(evidence), parameters)
        self._impossible(log_evidence, evidence.index, n_sets)
        index = evidence.index if parameters is None else pd.MultiIndex.from_product([range(n_sets), evidence.index], names=["parameter_set", evidence.index.name])
        out = {}
        for t in targets:
            values = marginals[t].reshape(-1, marginals[t].shape[-1])
            frame = pd.DataFrame(values, index=index, columns=pd.Index(list(self._tables.states[t]), name=t))
            out[t] = frame
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
        lam = self.encode(evidence, likelihood)
        n_sets = self._parameter_tables(parameters)[1]
        _, log_evidence = self.posterior_arrays(lam, [], len(evidence), parameters)
        index = evidence.index if parameters is None else pd.MultiIndex.from_product([range(n_sets), evidence.index], names=["parameter_set", evidence.index.name])
        values = log_evidence.reshape(-1)
        name = "log_evidence_probability" if log else "evidence_probability"
        return pd.Series(values if log else np.exp(values), index=index, name=name)
