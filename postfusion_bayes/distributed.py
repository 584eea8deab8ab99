"""Registry scale on Dask: diagnosis, cohort-wide Monte Carlo and learning from cases over a Dask DataFrame.

The functions here take the same arguments as their pandas versions
(:meth:`Model.diagnose_many <postfusion_bayes.model.Model.diagnose_many>`,
:func:`postfusion_bayes.sensitivity.monte_carlo`) with a Dask DataFrame of
patients, and return a lazy Dask DataFrame: one partition at a time, each
partition by the pandas code, so the numbers are those of the pandas path
(to rounding: the engine may sum a row's terms in another order in a batch of
another size, well within 1e-12). Row order and index are preserved.

Nothing here starts a cluster: computing the result uses the
``dask.distributed.Client`` you have created (``Client("tcp://scheduler:8786")``,
``Client(LocalCluster(...))``), or, without one, Dask's local threaded
scheduler. Models pickle, so worker processes get the model with the graph
(once per worker, not once per partition).

Needs the ``dask`` extra: ``pip install "postfusion-bayes[dask]"`` (dask[dataframe],
distributed, pyarrow); this module imports Dask only when called.

Parquet schema
--------------
Patients (input), one row per patient, one column per observed variable,
any subset of the variables:

* boolean findings, red flags and context (``smoker``, ``fever``): ``bool``,
  or a nullable boolean (pandas ``boolean``, Arrow ``bool`` with nulls); a
  null is unobserved. Text cells ``"yes"``/``"no"`` and 0/1 integers are read
  too, as everywhere in the package.
* variables with named states (``time_since_surgery``, ``onset``): the state
  names, as a categorical (Arrow dictionary of strings) or a string column;
  null is unobserved.
* an id column, if any, becomes the index (``dd.read_parquet(..., index="patient")``).

Results of :func:`diagnose_many` (what ``postfusion-bayes batch`` writes):

* the index (``patient``, or ``row`` numbered from 0);
* ``red_flags``: string, never null: the red flags raised, joined by ", "
  ("" when none), the same string column as ``Model.diagnose_many``;
* ``status``: string, never null: ``"ok"`` or
  :data:`~postfusion_bayes.model.IMPOSSIBLE`;
* one column per cause: nullable double (pandas ``Float64``; null where the
  status says the evidence is impossible, never NaN).

Examples
--------
>>> import dask.dataframe as dd
>>> from postfusion_bayes import load_model
>>> model = load_model()
>>> patients = pd.DataFrame({"fever": [False, True], "radicular_pain": [True, None]}, index=["a", "b"])
>>> out = diagnose_many(model, dd.from_pandas(patients, npartitions=2)).compute()
>>> out.loc["b", "red_flags"], round(float(out.loc["a", "nerve_injury"]), 3)
('fever', 0.374)
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ._optional import require
from .engine.arguments import check_budget, check_count, check_generator, count_text
from .errors import ArgumentTypeError
from .model import Model
from .sensitivity import _FLOAT, _batched_evaluate, _draw, _parameter_names, cohort_summary, evaluate, fit_distributions

__all__ = ["PARQUET_SCHEMA", "diagnose_chunks", "diagnose_many", "monte_carlo", "update_with_cases"]

#: The Parquet schema of the results, by column (see the module's docstring): the causes follow ``status``.
PARQUET_SCHEMA = {"red_flags": "string (never null)", "status": "string (never null)", "<cause>": "double, nullable (null: impossible evidence)"}


def _dataframe_module() -> Any:
    return require("dask.dataframe", "postfusion_bayes.distributed")


def _check(model: object, frame: object) -> None:
    if not isinstance(model, Model):
        raise ArgumentTypeError(f"model must be a postfusion_bayes Model (load_model()), got {type(model).__name__}")
    dd = _dataframe_module()
    if not isinstance(frame, dd.DataFrame):
        raise ArgumentTypeError(
            f"frame must be a dask DataFrame (dask.dataframe.from_pandas, read_parquet), got {type(frame).__name__}; "
            "a pandas DataFrame goes to the pandas version (Model.diagnose_many, sensitivity.monte_carlo)"
        )


def _as_nullable(model: Model, result: pd.DataFrame) -> pd.DataFrame:
    """Give every partition the same dtypes: the causes nullable Float64 (a lazy frame's dtypes cannot depend on whether some row is impossible), the text columns strings."""
    return result.astype({"red_flags": "string", "status": "string", **{c: "Float64" for c in model.causes}})


def _diagnose_partition(patients: pd.DataFrame, model: Model) -> pd.DataFrame:
    return _as_nullable(model, model.diagnose_many(patients))


def diagnose_many(model: Model, frame: Any) -> Any:
    """Posteriors for every patient of a Dask DataFrame, one partition at a time.

    Parameters
    ----------
    model : Model
        The model (pickled to the workers with the graph).
    frame : dask.dataframe.DataFrame
        One patient per row, one column per observed variable (see the
        module's Parquet schema); cells as for ``Model.diagnose_many``.

    Returns
    -------
    dask.dataframe.DataFrame
        Lazy; the partitions, index and row order of ``frame``; the columns of
        ``Model.diagnose_many`` (``red_flags``, ``status``, one per cause) with
        the causes always of the nullable ``Float64`` dtype (pd.NA where the
        evidence is impossible), and the text columns of pandas' ``string``
        dtype (the same text; Arrow strings in Parquet).

    Raises
    ------
    ArgumentTypeError
        ``model`` is no Model or ``frame`` no Dask DataFrame.
    EvidenceError
        An unknown or repeated column, at once; a bad cell when its partition
        is computed (naming the column, the value and its rows).
    ModuleNotFoundError
        Without the ``dask`` extra.

    Examples
    --------
    >>> import dask.dataframe as dd
    >>> from postfusion_bayes import load_model
    >>> frame = dd.from_pandas(pd.DataFrame({"smoker": [True, False, None]}), npartitions=2)
    >>> list(diagnose_many(load_model(), frame).compute().index)
    [0, 1, 2]
    """
    _check(model, frame)
    delayed = require("dask", "postfusion_bayes.distributed").delayed
    meta = _diagnose_partition(frame._meta, model)  # checks the columns now
    return frame.map_partitions(_diagnose_partition, delayed(model, pure=True), meta=meta, enforce_metadata=False, align_dataframes=False)


def _monte_carlo_partition(patients: pd.DataFrame, model: Model, values: Mapping[str, np.ndarray], n: int) -> pd.DataFrame:
    """Summarise one partition's patients by Monte Carlo, rows taken as many at a time as the memory budget allows."""
    parts = []
    draws = _FLOAT * n * len(values)  # held with the posteriors
    per_row = _FLOAT * n * 2 * len(model.causes)  # posteriors under every draw, and the engine's copy
    check_budget(draws + per_row, model.network.memory_budget, f"monte_carlo with n={count_text(n)} draws of {len(values)} parameters for one patient")
    step = max(1, (model.network.memory_budget - draws) // per_row)
    for start in range(0, len(patients), step):
        rows = patients.iloc[start : start + step]
        present = _batched_evaluate(model, rows, values, progress=False)
        current, _ = evaluate(model, rows, {})
        parts.append(cohort_summary(model, present, current[0], rows.index))
    if not parts:
        return _empty_summary(model, patients.index)
    return pd.concat(parts).reset_index("cause")


def _empty_summary(model: Model, index: pd.Index) -> pd.DataFrame:
    empty = cohort_summary(model, np.zeros((1, 0, len(model.causes))), np.zeros((0, len(model.causes))), index[:0])
    return empty.reset_index("cause")


def monte_carlo(model: Model, frame: Any, n: int = 2000, seed: int | np.random.Generator | None = None, *, parameters: Sequence[str] | None = None) -> Any:
    """Posterior uncertainty of every patient of a cohort from the uncertainty of the priors, on Dask.

    The parameters are drawn once, here, exactly as
    :func:`postfusion_bayes.sensitivity.monte_carlo` draws them for the same
    ``seed``, and the same draws are evaluated for every patient, one
    partition at a time: each patient's numbers equal the pandas result for
    the same seed, whatever the partitioning.

    Parameters
    ----------
    model : Model
        The model whose parameters are drawn (pickled to the workers).
    frame : dask.dataframe.DataFrame
        One patient per row (as for :func:`diagnose_many`).
    n : int
        Number of draws.
    seed : int or numpy.random.Generator
        Reproducible with the same seed.
    parameters : sequence of str, optional
        The parameters to draw (default all).

    Returns
    -------
    dask.dataframe.DataFrame
        Lazy, one row per patient and cause (patient after patient, in the
        causes' order), indexed by patient (index name ``patient``): columns
        ``cause``, ``posterior``, ``mean``, ``median``, ``q05``, ``q95``,
        ``probability_first``. ``result.compute().set_index("cause",
        append=True)`` is the pandas table.

    Raises
    ------
    ArgumentTypeError, ArgumentError, SpecError
        As for the pandas version.
    MemoryBudgetError
        When the draws, or one patient's posteriors under every draw, would
        not fit the model's memory budget (refused before drawing); a
        partition's patients are taken as many at a time as the budget allows.

    Examples
    --------
    >>> import dask.dataframe as dd
    >>> from postfusion_bayes import load_model
    >>> frame = dd.from_pandas(pd.DataFrame({"radicular_pain": [True, False]}), npartitions=2)
    >>> table = monte_carlo(load_model(), frame, n=50, seed=1).compute()
    >>> table.index.name, len(table), list(table.columns[:2])
    ('patient', 32, ['cause', 'posterior'])
    """
    _check(model, frame)
    n = check_count("n", n)
    rng = check_generator(seed)
    names = _parameter_names(model, parameters)
    check_budget(_FLOAT * n * (len(names) + 2 * len(model.causes)), model.network.memory_budget, f"monte_carlo with n={count_text(n)} draws of {len(names)} parameters")
    values = _draw(model, fit_distributions(model, names), rng, n)
    delayed = require("dask", "postfusion_bayes.distributed").delayed
    meta = _empty_summary(model, frame._meta.index.rename("patient"))
    out = frame.map_partitions(_monte_carlo_partition, delayed(model, pure=True), delayed(values, pure=True), n, meta=meta, enforce_metadata=False, align_dataframes=False)
    return out


def diagnose_chunks(model: Model, chunks: Iterable[pd.DataFrame], client: Any, *, progress: bool = False) -> Iterator[pd.DataFrame]:
    """Diagnose chunks of patients read here on the workers of ``client``, giving the results back in order.

    What ``postfusion-bayes batch --scheduler/--workers`` does: the chunks
    (read by the caller, so the workers need not see its files) are sent to
    the cluster as they are read, each diagnosed by ``Model.diagnose_many``
    (the very results of the pandas path), and yielded in the order of the
    chunks; each result leaves the cluster once yielded. Every chunk is sent
    before the first result is yielded (so that Dask's progress bar sees the
    whole run): the cluster's memory, not this process's, holds the input.

    Parameters
    ----------
    model : Model
        The model (sent once to every worker).
    chunks : iterable of DataFrame
        Patients, one chunk after another.
    client : dask.distributed.Client
        The cluster to work on.
    progress : bool
        Show Dask's progress bar (on stderr) while the cluster works.

    Yields
    ------
    DataFrame
        ``model.diagnose_many(chunk)`` for each chunk, in order.
    """
    dist = require("distributed", "postfusion_bayes.distributed")
    shared = client.scatter(model, broadcast=True)  # one copy per worker, not one per chunk
    futures: list[Any] = [client.submit(Model.diagnose_many, shared, chunk, pure=False) for chunk in chunks]
    if progress:
        with client.as_current(), contextlib.redirect_stdout(sys.stderr):  # its text bar writes to stdout, where the data goes
            dist.progress(futures)
    for k in range(len(futures)):
        result = futures[k].result()
        futures[k] = None  # the cluster forgets what has been written
        yield result


def _partition_statistics(cases: pd.DataFrame, layout: Any, network: Any, iteration: int) -> Any:
    """Run the E-step on one partition: its expected counts (a few arrays), not its rows."""
    from .evidence import frame_codes

    codes = frame_codes(layout.spec, cases, soft_hint="learning takes confirmed cases only")
    return layout.expect(network, codes, cases.index, iteration)


def _add(parts: Sequence[Any]) -> Any:
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def update_with_cases(
    model: Model,
    frame: Any,
    strength: float | Mapping[str, float] | None = None,
    *,
    max_iterations: int | None = None,
    tolerance: float | None = None,
    acceleration: str | None = "squarem",
    client: Any = None,
) -> Model:
    """Learn from the confirmed cases of a Dask DataFrame: :meth:`Model.update_with_cases <postfusion_bayes.model.Model.update_with_cases>` on Dask.

    Every EM map runs its E-step as a map over the partitions, each giving
    its expected counts (a few arrays: the sufficient statistics of
    :mod:`postfusion_bayes.learning`), added up in a tree; the M-step runs
    here, on those sums. No row leaves its worker. The partitions' sums add in
    another order than the pandas path's, so the learned values equal the
    pandas path's to rounding (tested to 1e-9).

    Parameters
    ----------
    model : Model
        The model whose parameters are updated (unchanged).
    frame : dask.dataframe.DataFrame
        One confirmed case per row (the cells of ``Model.update_with_cases``;
        the module's Parquet schema).
    strength, max_iterations, tolerance, acceleration
        As for ``Model.update_with_cases``.
    client : dask.distributed.Client, optional
        The cluster to compute on; without one, Dask's default scheduler (a
        ``Client`` created as default, else the local threads).

    Returns
    -------
    Model
        The learned model, with its ``learning_report``.

    Raises
    ------
    ArgumentTypeError, ArgumentError, EvidenceError, SpecError
        As for the pandas version (a bad cell when its partition is read).

    Examples
    --------
    >>> import dask.dataframe as dd
    >>> from postfusion_bayes import load_model
    >>> cases = pd.DataFrame({"smoker": [True] * 30 + [False] * 70, "diabetes": [None] * 100})
    >>> learned = update_with_cases(load_model(), dd.from_pandas(cases, npartitions=3))
    >>> round(learned.spec.value("context.smoker.prevalence"), 4)
    0.2783
    """
    _check(model, frame)
    from ._strengths import _families, _information_per_case, _resolve_strengths
    from .evidence import frame_codes
    from .learning import _EM, DEFAULT_MAX_ITERATIONS, DEFAULT_TOLERANCE, LearningReport, _check_settings

    dask = require("dask", "postfusion_bayes.distributed")
    spec = model.spec
    iterations, tol, acceleration = _check_settings(
        DEFAULT_MAX_ITERATIONS if max_iterations is None else max_iterations, DEFAULT_TOLERANCE if tolerance is None else tolerance, acceleration
    )
    frame_codes(spec, frame._meta, soft_hint="learning takes confirmed cases only")  # the columns, checked now
    network = model.network
    families = _families(spec)
    strengths = _resolve_strengths(spec, strength, families, _information_per_case(spec, network))

    def compute(*things):
        return client.compute(list(things), sync=True) if client is not None else dask.compute(*things)

    n_rows = int(compute(frame.map_partitions(len).sum())[0])
    if n_rows == 0:
        learned = Model(spec)
        object.__setattr__(learned, "_learning", LearningReport(0, 0, True, 0.0, tol, iterations, (), acceleration))
        return learned
    em = _EM(spec, pd.RangeIndex(n_rows), {}, network, families, strengths)
    parts = frame.to_delayed()
    layout = dask.delayed(em.layout, pure=True)
    statistics = dask.delayed(_partition_statistics, pure=True)
    add = dask.delayed(_add, pure=True)

    def expect(net: Any, iteration: int) -> Any:
        shared = dask.delayed(net, pure=True)
        level = [statistics(part, layout, shared, iteration) for part in parts]
        while len(level) > 1:  # a tree of sums: no worker receives more than a few partitions' counts
            level = [add(level[i : i + 8]) for i in range(0, len(level), 8)]
        return compute(level[0])[0]

    spec_learned, report = em.run(iterations, tol, acceleration, expect)
    learned = Model(spec_learned)
    object.__setattr__(learned, "_learning", report)
    return learned
