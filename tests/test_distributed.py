"""Registry scale on Dask (issue 14): postfusion_bayes.distributed on a real LocalCluster, and Parquet in the CLI.

One cluster of 2 worker processes (127.0.0.1, no dashboard) serves the module;
its client is not made the default, so the tests that use no client run on
Dask's local threaded scheduler.
"""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster
from large_models import trimmed_spec  # noqa: E402  (tests/ is on the path)

import postfusion_bayes as pfb
from postfusion_bayes import cli, distributed, sensitivity
from postfusion_bayes.cli import main

MODEL = pfb.load_model()
CAUSES = list(MODEL.causes)
#: Learning is tested on the first eight causes: what is distributed (the E-step per partition, the M-step here) does
#: not depend on the network's size, and EM on 600 confirmed cases of the 16-cause network takes minutes.
SMALL = pfb.Model(trimmed_spec(8))
PACKAGE_ROOT = str(Path(pfb.__file__).resolve().parents[1])
#: The scheduler's HTTP server (health checks; the dashboard stays off) on a free port, never the default 8787 another cluster may hold.
QUIET_HTTP = {"dashboard_address": "127.0.0.1:0"}


@pytest.fixture(scope="module")
def client():
    # the workers import this checkout of the package, as the tests do
    env = {"PYTHONPATH": os.pathsep.join(p for p in (PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)}
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None, scheduler_kwargs=QUIET_HTTP, silence_logs=40, env=env) as cluster,
        Client(cluster, set_as_default=False) as c,
    ):
        yield c


def _registry(n: int, seed: int) -> pd.DataFrame:
    """Simulate patients (no causes), a third of the cells unobserved, as the Parquet schema has them: nullable booleans, categorical states."""
    cases = MODEL.simulate(n, seed=seed).drop(columns=CAUSES)
    cases = cases.mask(np.random.default_rng(seed).random(cases.shape) < 0.3)
    out = {}
    for name in cases.columns:
        states = MODEL.spec.variables[name].states
        if tuple(states) == ("no", "yes"):
            out[name] = cases[name].map({"yes": True, "no": False}).astype("boolean")
        else:
            out[name] = pd.Categorical(cases[name], categories=states)
    return pd.DataFrame(out, index=pd.Index([f"p{i:05d}" for i in range(n)], name="patient"))


def _same_diagnoses(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.index) == list(expected.index) and got.index.is_unique  # no row lost, duplicated or moved
    assert list(got.columns) == list(expected.columns)
    assert list(got["red_flags"]) == list(expected["red_flags"]) and list(got["status"]) == list(expected["status"])
    np.testing.assert_allclose(got[CAUSES].to_numpy(dtype=float), expected[CAUSES].to_numpy(dtype=float), rtol=0, atol=1e-12)


def test_diagnose_many_on_the_cluster_equals_pandas(client):
    patients = _registry(1000, seed=1)  # five partitions of 200 rows (3,000 rows checked the same at three times the cost)
    patients.loc["p00007", "fever"] = True  # a red flag
    frame = dd.from_pandas(patients, npartitions=5, sort=False)
    lazy = distributed.diagnose_many(MODEL, frame)
    assert lazy.npartitions == 5 and list(lazy.columns) == ["red_flags", "status", *CAUSES]
    got = client.compute(lazy).result()
    _same_diagnoses(got, MODEL.diagnose_many(patients))
    assert got.loc["p00007", "red_flags"].endswith("fever") and (got[CAUSES].dtypes == "Float64").all()


def test_diagnose_many_without_a_client_runs_on_the_threaded_scheduler_and_keeps_impossible_rows():
    spec = MODEL.spec.with_values({"findings.ct_screw_breach.leak": 0.0, "findings.ct_screw_breach.links.nerve_injury": 0.0})
    model = pfb.Model(spec)
    patients = pd.DataFrame({"ct_screw_breach": pd.array([False, True, None, False], dtype="boolean"), "fever": pd.array([None, True, None, None], dtype="boolean")}, index=[4, 3, 2, 1])
    got = distributed.diagnose_many(model, dd.from_pandas(patients, npartitions=2, sort=False)).compute()
    expected = model.diagnose_many(patients)
    _same_diagnoses(got, expected)
    assert got.loc[3, "status"] == pfb.model.IMPOSSIBLE and got.loc[3, CAUSES].isna().all() and got.loc[3, "red_flags"] == "fever"


def test_diagnose_many_refuses_what_it_cannot_use():
    with pytest.raises(pfb.ArgumentTypeError, match="frame must be a dask DataFrame"):
        distributed.diagnose_many(MODEL, pd.DataFrame({"smoker": [True]}))
    with pytest.raises(pfb.ArgumentTypeError, match="model must be"):
        distributed.diagnose_many("model", dd.from_pandas(pd.DataFrame({"smoker": [True]}), npartitions=1))
    with pytest.raises(pfb.EvidenceError, match="did you mean 'radicular_pain'"):  # at once, from the columns
        distributed.diagnose_many(MODEL, dd.from_pandas(pd.DataFrame({"radicular_pian": [True]}), npartitions=1))
    bad = dd.from_pandas(pd.DataFrame({"smoker": ["yes", "maybe"]}, index=["a", "b"]), npartitions=1)
    with pytest.raises(pfb.EvidenceError, match=r"got 'maybe'.*\['b'\]"):  # when computed
        distributed.diagnose_many(MODEL, bad).compute()


@pytest.mark.parametrize("npartitions", [1, 3])
def test_monte_carlo_on_the_cluster_equals_pandas_whatever_the_partitioning(client, npartitions):
    patients = _registry(12, seed=3)
    expected = sensitivity.monte_carlo(MODEL, patients, n=150, seed=11)
    lazy = distributed.monte_carlo(MODEL, dd.from_pandas(patients, npartitions=npartitions, sort=False), n=150, seed=11)
    got = client.compute(lazy).result().set_index("cause", append=True)
    assert list(got.index) == list(expected.index) and list(got.columns) == list(expected.columns)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-12)


def test_monte_carlo_takes_a_partition_in_parts_within_the_memory_budget(monkeypatch):
    from large_models import trimmed_spec

    # on the first eight causes one patient's engine work fits a budget of a few patients' posteriors
    # (at 16 causes the engine alone needs about 1.7 MB per patient, more than the budget this test sets)
    model = pfb.Model(trimmed_spec(8))
    registry, n = _registry(5, seed=4), 300
    patients = registry[[c for c in registry.columns if c in model.spec.variables]]
    draws = 8 * n * len(sensitivity.fit_distributions(model))
    small = model.with_memory_budget(draws + 8 * n * 2 * len(model.causes) * 2 + 100)  # the draws and two patients' posteriors at a time
    sizes = []
    real = distributed._batched_evaluate
    monkeypatch.setattr(distributed, "_batched_evaluate", lambda model, rows, *a, **k: sizes.append(len(rows)) or real(model, rows, *a, **k))
    got = distributed.monte_carlo(small, dd.from_pandas(patients, npartitions=1), n=n, seed=2).compute(scheduler="sync").set_index("cause", append=True)
    assert sizes == [2, 2, 1]
    np.testing.assert_allclose(got.to_numpy(), sensitivity.monte_carlo(model, patients, n=n, seed=2).to_numpy(), rtol=0, atol=1e-12)
    with pytest.raises(pfb.MemoryBudgetError, match="monte_carlo with n=300 draws"):
        distributed.monte_carlo(model.with_memory_budget(draws), dd.from_pandas(patients, npartitions=1), n=n, seed=2)


def test_a_worker_killed_mid_run_loses_no_row(client):
    # 48 partitions of 50 rows, about 0.1 s each at 16 causes: about 2 s of work for the two workers, while the kill
    # lands within milliseconds of the first task starting (200 rows a partition checked the same at four times the cost)
    patients = _registry(2_400, seed=5)
    expected = MODEL.diagnose_many(patients)
    future = client.compute(distributed.diagnose_many(MODEL, dd.from_pandas(patients, npartitions=48, sort=False)))
    deadline = time.monotonic() + 60
    while not any(client.processing().values()):  # wait until the workers are busy
        assert time.monotonic() < deadline, "the cluster never started the tasks"
        time.sleep(0.01)
    victim = max(client.processing().items(), key=lambda item: len(item[1]))[0]
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    assert not future.done()  # killed mid-run
    got = future.result(timeout=120)
    _same_diagnoses(got, expected)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it, for the tests after this one


def _parquet_patients(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    patients = _registry(700, seed=6)
    patients.loc["p00003", "fever"] = True
    source = tmp_path / "patients.parquet"
    patients.reset_index().to_parquet(source, index=False)
    return source, patients


def test_batch_reads_and_writes_parquet(capsys, tmp_path):
    source, patients = _parquet_patients(tmp_path)
    target = tmp_path / "posteriors.parquet"
    assert main(["batch", str(source), "-o", str(target), "--index-col", "patient", "-q"]) == 0
    assert "wrote" in capsys.readouterr().err
    got = pd.read_parquet(target).set_index("patient")
    _same_diagnoses(got, MODEL.diagnose_many(patients))
    assert main(["batch", str(source), "-o", str(target), "--index-col", "patient", "-q"]) == 1  # exists: --force to replace
    assert "pass --force" in capsys.readouterr().err
    assert main(["batch", str(source), "-o", str(target), "--index-col", "patient", "-q", "--force"]) == 0
    capsys.readouterr()
    assert main(["batch", str(source)]) == 3  # the ids are no variable
    assert "unknown variable 'patient'" in capsys.readouterr().err
    status = main(["batch", str(source), "--index-col", "id"])  # CSV to stdout, from Parquet
    assert status == 3 and "has no column 'id'" in capsys.readouterr().err
    assert main(["batch", str(source), "--index-col", "patient"]) == 0
    csv = pd.read_csv(io.StringIO(capsys.readouterr().out), index_col="patient", keep_default_na=False)
    np.testing.assert_allclose(csv[CAUSES].to_numpy(), got[CAUSES].to_numpy(), rtol=0, atol=1e-15)
    (tmp_path / "junk.parquet").write_text("not parquet")
    assert main(["batch", str(tmp_path / "junk.parquet")]) == 3
    assert "is not a Parquet table" in capsys.readouterr().err


def test_batch_on_the_cluster_writes_what_the_pandas_path_writes(capsys, tmp_path, client, monkeypatch):
    source, _ = _parquet_patients(tmp_path)
    local, remote = tmp_path / "local.parquet", tmp_path / "remote.parquet"
    assert main(["batch", str(source), "-o", str(local), "--index-col", "patient", "-q"]) == 0
    assert main(["batch", str(source), "-o", str(remote), "--index-col", "patient", "-q", "--scheduler", client.scheduler.address]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(remote), pd.read_parquet(local), check_exact=True)
    capsys.readouterr()
    monkeypatch.setattr(cli, "SCHEDULER_TIMEOUT", "1s")
    assert main(["batch", str(source), "--scheduler", "tcp://127.0.0.1:1", "--index-col", "patient"]) == 2
    assert "cannot connect to a Dask scheduler" in capsys.readouterr().err


def test_batch_on_a_local_cluster_of_its_own_writes_the_same_csv(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p))  # for the worker
    monkeypatch.setattr(cli, "BATCH_CHUNK", 150)  # several chunks
    source = tmp_path / "patients.csv"
    _registry(400, seed=7).to_csv(source)
    assert main(["batch", str(source), "--index-col", "patient", "-q"]) == 0
    local = capsys.readouterr().out
    assert main(["batch", str(source), "--index-col", "patient", "-q", "--workers", "1"]) == 0
    assert capsys.readouterr().out == local


def test_diagnose_chunks_gives_the_chunks_back_in_order_with_the_progress_bar_on_stderr(capsys, client):
    patients = _registry(900, seed=8)
    chunks = [patients.iloc[k : k + 200] for k in range(0, 900, 200)]
    results = list(distributed.diagnose_chunks(MODEL, iter(chunks), client, progress=True))
    out, err = capsys.readouterr()
    assert out == "" and "100%" in err
    for chunk, result in zip(chunks, results, strict=True):
        pd.testing.assert_frame_equal(result, MODEL.diagnose_many(chunk), check_exact=True)


# ------------------------------------------------------------------ learning: the E-step per partition, the M-step here


def _confirmed(n: int, seed: int) -> pd.DataFrame:
    """Simulate confirmed cases of SMALL (causes recorded in half the rows), smoker and diabetes missing in 40%, in the Parquet schema's dtypes."""
    cases = SMALL.simulate(n, seed=seed)
    rng = np.random.default_rng(seed)
    causes = list(SMALL.causes)
    cases[causes] = cases[causes].mask(rng.random((n, len(causes))) < 0.5)
    cases[["smoker", "diabetes"]] = cases[["smoker", "diabetes"]].mask(rng.random((n, 2)) < 0.4)
    for name in cases.columns:
        if tuple(SMALL.spec.variables[name].states) == ("no", "yes"):
            cases[name] = cases[name].map({"yes": True, "no": False}).astype("boolean")
        elif name in causes:
            cases[name] = cases[name].astype("string")
    return cases.set_axis(pd.Index([f"c{i:05d}" for i in range(n)], name="case"))


def _same_learning(got: pfb.Model, expected: pfb.Model) -> None:
    a, b = got.parameters.set_index("name"), expected.parameters.set_index("name")
    np.testing.assert_allclose(a["value"].to_numpy(float), b["value"].to_numpy(float), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a["cases"].to_numpy(float), b["cases"].to_numpy(float), rtol=1e-9)
    r, s = got.learning_report, expected.learning_report
    assert (r.iterations, r.converged, r.n_cases) == (s.iterations, s.converged, s.n_cases)
    np.testing.assert_allclose(r.log_posterior, s.log_posterior, rtol=1e-12)


def test_update_with_cases_on_the_cluster_equals_pandas(client):
    cases = _confirmed(600, seed=71)
    got = distributed.update_with_cases(SMALL, dd.from_pandas(cases, npartitions=4, sort=False), client=client, tolerance=1e-5)
    _same_learning(got, SMALL.update_with_cases(cases, tolerance=1e-5))


def test_update_with_cases_on_the_threaded_scheduler_plain_em_and_errors():
    cases = _confirmed(200, seed=72)
    frame = dd.from_pandas(cases, npartitions=3, sort=False)
    with pytest.warns(pfb.ConvergenceWarning, match="after 3 iterations"):
        got = distributed.update_with_cases(SMALL, frame, strength=5, max_iterations=3, acceleration=None)
    with pytest.warns(pfb.ConvergenceWarning):
        expected = SMALL.update_with_cases(cases, strength=5, max_iterations=3, acceleration=None)
    _same_learning(got, expected)
    with pytest.raises(pfb.EvidenceError, match="unknown variable 'smokr'"):
        distributed.update_with_cases(MODEL, dd.from_pandas(pd.DataFrame({"smokr": [True]}), npartitions=1))
    with pytest.raises(pfb.ArgumentTypeError, match="dask DataFrame"):
        distributed.update_with_cases(MODEL, cases)
    with pytest.raises(pfb.ArgumentError, match="acceleration"):
        distributed.update_with_cases(MODEL, frame, acceleration="fast")
