"""Registry scale (issue 14): a simulated registry diagnosed on pandas and on Dask clusters.

The registry is simulated from the shipped model (blocks of 100,000 cases, seeds 0, 1, ...), the
causes dropped and 30% of the other cells unobserved, and written to Parquet: the workers read it
themselves, as from a data lake, and write their results to Parquet, so nothing of the registry
passes through the driver. Measures:

* pandas: ``model.diagnose_many`` on the whole frame, throughput and peak traced allocation, and the
  same in one query (``DIAGNOSE_CHUNK`` out of the way: the memory of the unchunked path);
* Dask: ``distributed.diagnose_many`` from ``read_parquet`` to ``to_parquet`` on a LocalCluster of 1
  and of 2 worker processes (one thread each), or on the cluster at ``--scheduler``: throughput per
  worker, and the peak resident memory of each worker process (``VmHWM``, the worker's own
  baseline included).

On a machine with 2 cores, 2 workers compete with each other and with the driver and the scheduler:
they measure contention as much as scaling.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

BLOCK = 100_000  # cases simulated at a time (simulate() keeps within the memory budget)
#: The scheduler's HTTP server (health checks; the dashboard stays off) on a free port, never the default 8787 another cluster may hold.
QUIET_HTTP = {"dashboard_address": "127.0.0.1:0"}


def simulate_registry(model: Any, n: int, seed: int = 0) -> pd.DataFrame:
    """Return ``n`` simulated patients without their causes, 30% of the cells unobserved, indexed ``patient``."""
    blocks = []
    for k, start in enumerate(range(0, n, BLOCK)):
        cases = model.simulate(min(BLOCK, n - start), seed=seed + k).drop(columns=list(model.causes))
        hidden = np.random.default_rng(seed + k).random(cases.shape) < 0.3
        blocks.append(cases.mask(hidden))
    frame = pd.concat(blocks, ignore_index=True)
    frame.index = pd.Index([f"p{i:07d}" for i in range(n)], name="patient")
    return frame


def write_registry(frame: pd.DataFrame, folder: str, partition_rows: int) -> None:
    """Write the registry as Parquet files of ``partition_rows`` rows each (a URL such as ``s3://...`` works with fsspec)."""
    import dask.dataframe as dd

    dd.from_pandas(frame, chunksize=partition_rows, sort=False).to_parquet(folder, write_index=True, overwrite=True)


def _peak_rss() -> int:
    """Return the peak resident memory of this process in bytes: ``VmHWM`` on Linux.

    Not ``ru_maxrss``: Linux carries it over ``execve``, so a worker process spawned (fork, then exec)
    by a driver holding the registry would report the driver's memory as its own.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss() -> int:
    """Return the current resident memory of this process in bytes (Linux), or 0."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def dask_run(model: Any, client: Any, source: str, target: str) -> dict[str, Any]:
    """Diagnose the registry at ``source`` on ``client`` into Parquet at ``target``: seconds, rows, workers, memory per worker."""
    import dask.dataframe as dd

    from postfusion_bayes import distributed

    workers = len(client.scheduler_info()["workers"])
    baseline = client.run(_rss)
    frame = dd.read_parquet(source)
    start = time.perf_counter()
    client.compute(distributed.diagnose_many(model, frame).to_parquet(target, write_index=True, overwrite=True, compute=False)).result()
    seconds = time.perf_counter() - start
    peaks = client.run(_peak_rss)
    rows = int(client.compute(dd.read_parquet(target, columns=["status"]).map_partitions(len).sum()).result())
    return {"seconds": seconds, "rows": rows, "workers": workers, "baseline": max(baseline.values()), "peak": max(peaks.values())}


def local_cluster(workers: int, env: dict[str, str]) -> Any:
    """Return a LocalCluster of ``workers`` processes of one thread each, on 127.0.0.1, without a dashboard."""
    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None, scheduler_kwargs=QUIET_HTTP, silence_logs=40, env=env)


def max_difference(target: str, expected: pd.DataFrame, causes: list[str]) -> float:
    """Return the largest difference between the causes written at ``target`` and ``expected``; inf when rows differ."""
    got = pd.read_parquet(target).sort_index()  # the files' names need not sort in partition order
    if list(got.index) != list(expected.index) or list(got["red_flags"]) != list(expected["red_flags"]):
        return float("inf")
    return float(np.max(np.abs(got[causes].to_numpy(dtype=float) - expected[causes].to_numpy(dtype=float)), initial=0.0))


def package_env() -> dict[str, str]:
    """Return the environment the worker processes need to import this checkout of the package."""
    import postfusion_bayes

    root = str(Path(postfusion_bayes.__file__).resolve().parents[1])
    return {"PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}


# ------------------------------------------------------------------------------------------------ learning
#: One EM iteration of the E-step that copied every case once per completion of its missing context and asked the
#: engine for the joint of the 8 causes (the path before issue 14), timed on this machine before it was replaced
#: (2026-11-28, 2-core development machine, load average about 2): cases as in simulate_confirmed, all six context
#: columns missing in 40% of the rows each, max_iterations=1, setup included.
OLD_EM_ITERATION_SECONDS = {2_000: 0.83, 20_000: 6.35, 200_000: 52.16}


def simulate_confirmed(model: Any, n: int, seed: int = 0) -> pd.DataFrame:
    """Return ``n`` simulated confirmed cases (causes recorded), each context column missing in 40% of the rows (``default_rng(seed + 1)``)."""
    cases = model.simulate(n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for c in model.spec.names("context"):
        cases[c] = cases[c].astype(object)
        cases.loc[rng.random(n) < 0.4, c] = None
    return cases


def em_iteration(model: Any, cases: Any, client: Any = None) -> tuple[float, Any]:
    """Return the seconds of one EM iteration (``max_iterations=1``, setup included) and the model it gives; on Dask with ``client``."""
    import warnings

    from postfusion_bayes import distributed
    from postfusion_bayes.errors import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # one iteration is not meant to converge
        start = time.perf_counter()
        learned = model.update_with_cases(cases, max_iterations=1) if client is None else distributed.update_with_cases(model, cases, max_iterations=1, client=client)
        return time.perf_counter() - start, learned


def learned_difference(got: Any, expected: Any) -> float:
    """Return the largest difference between the parameter values of two learned models."""
    a, b = got.parameters["value"].to_numpy(dtype=float), expected.parameters["value"].to_numpy(dtype=float)
    return float(np.max(np.abs(a - b), initial=0.0))
