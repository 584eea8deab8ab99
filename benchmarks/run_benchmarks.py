"""Benchmark: postfusion-bayes against pgmpy and pyAgrum on the same evidence, ratios measured in one run.

Usage::

    python benchmarks/run_benchmarks.py                      # full run, writes benchmarks/RESULTS.md and the figures
    python benchmarks/run_benchmarks.py --quick              # small sizes: harness and agreement check (CI)
    python benchmarks/run_benchmarks.py --output PATH        # write the results (and figures) elsewhere
    python benchmarks/run_benchmarks.py --only growth --figures   # one or more parts (see --help)

Networks (built at the spec level by ``bench_networks``, fixed seed): the shipped model (16 causes
since the second edition, issue 12), and the same with 8 and 16 synthetic causes (24 and 32 in all), each linked to 6 findings with links
drawn in [0.3, 0.8] and with its own onset distribution. Patients are sampled from each network
(every row is possible) and shaped to an evidence profile: **typical** (all context and onset
observed, 8-12 findings observed, 3-6 of them positive) or **stress** (all context and onset, 12
positive findings, one of them soft).

Parts (``--only``; all by default):

* ``networks``: per network and profile, the cause posteriors of ``model.diagnose(...).posterior``
  against pgmpy ``VariableElimination`` and pyAgrum ``LazyPropagation`` (where their dense tables fit
  under ``--table-limit``) and against a long-double enumeration (``bench_oracle``); the time per
  patient of each and the ratios;
* ``batch``: ``model.diagnose_many`` per patient (typical profile), checked against ``diagnose``;
* ``parameters``: 10,000 parameter sets through the compiled network for one patient (per set),
  checked against ``with_parameters``;
* ``reasoning``: ``explain()`` and ``next_tests()`` against pgmpy doing the same by repeated queries
  (16 causes); ``next_tests()`` and ``most_probable_explanation(k=3)`` time and peak traced
  allocation (16 and 24 causes), the latter checked against the enumeration;
* ``sensitivity``: ``monte_carlo`` (n = 10,000), ``sobol`` (n = 1024, all parameters),
  ``rank_robustness``, ``tornado``, ``explain()``, ``next_tests()`` and ``load_model`` on the shipped
  model for one typical patient, warm, each against its target;
* ``explorer``: the Python-side time of one update of the interactive explorer
  (``postfusion_bayes.explorer``: a finding clicked, a context changed, a hand-set number moved) for
  one typical patient on the shipped model (16 causes) and at 24: the part before the update returns (red flags, diagnosis,
  posterior bars) against 150 ms, and the next three tests with what each result would do and the
  adequacy check, which follow in a background thread; the tornado and the Monte Carlo band it
  computes on demand; its displayed posteriors checked against ``diagnose``;
* ``cold-start``: a fresh ``python -c`` that imports, loads and diagnoses once, against
  ``python -c "import pandas"`` timed in the same run;
* ``reference``: one labelled query on alarm, child and insurance (``tests/data/networks``) through
  ``compile_network(...).posteriors()`` and the low-level ``query``, against pyAgrum;
* ``growth``: time per diagnosis against the number of causes (16-32) and of positive findings
  (2-14 at 16 causes) for all three engines, as tables and two figures;
* ``registry``: a simulated registry (1e6 patients; quick 1,000) diagnosed by ``diagnose_many``
  (throughput, peak traced memory, chunked and in one query) and by ``distributed.diagnose_many``
  from Parquet to Parquet on a LocalCluster of 1 and 2 worker processes (throughput and peak
  resident memory per worker), checked against pandas (``bench_registry``). ``--scheduler ADDRESS``
  runs it on that cluster instead, with ``--registry-path`` a folder or URL its workers can read.

Every engine call is guarded: an exception is recorded as ``fails: <ExceptionName>: <first line>``,
a call past ``--budget`` seconds as ``fails: TimeoutError: ...``, an engine whose tables would be too
large as ``not run: <reason>``, and the run goes on. Every measure is printed next to its target
with ``met`` / ``NOT met``; targets are reported, never enforced (timings depend on the machine).

Exit status 1 when any two engines disagree by more than 1e-9, when pgmpy is imported on the cold-
start path, when a measure fails on the shipped model, or (full run only) when one fails on a larger
network. The quick mode checks the harness and the agreement, not the timings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_networks as nets  # noqa: E402
import bench_oracle as oracle  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from bench_engines import AgrumLP, Failure, PgmpyVE, attempt, failed, median_time, not_run, peak_allocation, size_guard, timed_per_item  # noqa: E402
from bench_report import TOLERANCE, Agreement, Measure, Section, Series, ratio, size, target_at_least_ratio, target_at_most  # noqa: E402

ROOT = HERE.parent
REFERENCE_NETWORKS = ROOT / "tests" / "data" / "networks"
PARTS = ("networks", "batch", "parameters", "reasoning", "sensitivity", "explorer", "cold-start", "reference", "growth", "registry")
SHIPPED = 16  # causes of the shipped model (8 before the second edition, issue 12)
PGMPY, AGRUM = "pgmpy VE", "pyAgrum LazyPropagation"


@dataclass(frozen=True)
class Settings:
    """Sizes, repeats and the time budget of a run (``FULL`` or ``QUICK``)."""

    networks: tuple[int, ...]  # numbers of causes
    typical: dict[int, int]  # patients per network
    stress: dict[int, int]
    oracle: dict[int, int]  # patients checked against the enumeration, per network and profile
    reference_timed: int  # patients timed with pgmpy / pyAgrum
    repeats: int
    n_batch: dict[int, int]  # patients per network for diagnose_many
    n_sets: dict[int, int]  # parameter sets per network
    reasoning: dict[int, int]  # patients for the reasoning measures
    cold_repeats: int
    reference_rows: int
    growth_causes: tuple[int, ...]
    growth_positives: tuple[int, ...]
    growth_positives_causes: int
    growth_patients: int
    growth_reference_patients: int
    registry: int  # patients of the simulated registry
    registry_partition: int  # rows per Parquet file (a Dask partition)
    learning: int  # confirmed cases for one EM iteration
    budget: float  # seconds per guarded call


FULL = Settings(
    networks=(16, 24, 32),
    typical={16: 200, 24: 200, 32: 50},
    stress={16: 50, 24: 50, 32: 20},
    # the long-double enumeration takes seconds a patient at 24 causes and hours at 32 (2^32 sets of causes): not run there
    oracle={16: 200, 24: 4, 32: 0},
    reference_timed=40,
    repeats=5,
    n_batch={16: 10_000, 24: 10_000, 32: 10_000},
    n_sets={16: 10_000, 24: 10_000},
    # (at 32 causes the explanations are timed; the long-double enumeration of 2^32 sets is not run)
    reasoning={16: 20, 24: 20, 32: 20},
    cold_repeats=5,
    reference_rows=20,
    growth_causes=(16, 20, 24, 28, 32),
    growth_positives=tuple(range(2, 15)),
    growth_positives_causes=16,
    growth_patients=20,
    growth_reference_patients=5,
    registry=1_000_000,
    registry_partition=50_000,
    learning=200_000,
    budget=300.0,
)
QUICK = Settings(
    # (the harness check: the shipped model and one larger network; 32 causes only in the full run)
    networks=(16, 24),
    typical={16: 6, 24: 4},
    stress={16: 3, 24: 2},
    # the long-double enumeration costs seconds a patient at 24 causes (2^24 sets of causes): one patient per profile
    # there still checks the 24-cause network against an independent reference; the shipped model keeps six
    oracle={16: 6, 24: 1},
    reference_timed=4,
    repeats=1,
    n_batch={16: 200, 24: 20, 32: 20},
    n_sets={16: 200, 24: 20},
    reasoning={16: 2, 24: 2},
    cold_repeats=1,
    reference_rows=3,
    growth_causes=(16, 20),
    growth_positives=(2, 3, 4, 5, 6),
    growth_positives_causes=16,
    growth_patients=3,
    growth_reference_patients=2,
    # at 16 causes a registry row with its findings observed costs milliseconds (about 9 ms with 30% unobserved), and
    # the quick run diagnoses the registry five times (pandas, two peak-memory runs, two clusters): 400 rows in
    # partitions of 100 still make four partitions for the two-worker cluster
    registry=400,
    registry_partition=100,
    learning=200,  # (one EM iteration on the 16-cause model: 2,000 cases took over 30 s on a shared machine)
    # one guarded call: the 16-cause sensitivity warm-up (Monte Carlo, Sobol, rank robustness, tornado) and a
    # cold pgmpy import took over 8 s on a shared 2-core machine, and a call cut short mid-import left networkx
    # half imported for the next one
    budget=30.0,
)

#: Targets of model.diagnose per (causes, profile): time per patient, and ratio to pgmpy VE / pyAgrum.
DIAGNOSE_TARGETS = {
    # the shipped model has 16 causes since the second edition (issue 12): the 16-cause targets apply to it
    (16, "typical"): {"time": 0.5e-3, "pgmpy": 20.0, "agrum": 10.0},
    (16, "stress"): {"time": 10e-3, "pgmpy": 20.0},
    (24, "typical"): {"time": 2e-3},
}
BATCH_TARGETS = {16: 50e-6}
PARAMETER_TARGETS = {16: 60e-6}
REASONING_TARGET = {16: 20e-3}
COLD_START_MARGIN = 0.2


def network_label(n: int) -> str:
    """Return the report's name of the network with ``n`` causes."""
    return f"shipped model ({SHIPPED} causes)" if n == SHIPPED else f"{n} causes (shipped + {n - SHIPPED} synthetic)"


class Bench:
    """Caches the networks, models and reference engines, and collects the report."""

    def __init__(self, settings: Settings, table_limit: int, quick: bool, scheduler: str | None = None, registry_path: str | None = None):
        self.s = settings
        self.scheduler = scheduler  # a Dask scheduler for the registry part (default: LocalClusters)
        self.registry_path = registry_path  # where the registry part writes its Parquet files
        self.table_limit = table_limit
        self.quick = quick
        self._specs: dict[int, object] = {}
        self._models: dict[int, object] = {}
        self._build_times: dict[int, object] = {}
        self._refs: dict[tuple[int, str], object] = {}
        self._patients: dict[tuple, list] = {}
        self.sections: list[Section] = []
        self.agreements: list[Agreement] = []
        self.failures: list[tuple[bool, str]] = []  # (new size, what failed)
        self.series: list[Series] = []

    # ---- building blocks, cached
    def spec(self, n: int):
        """Return the spec of the network with ``n`` causes, built once."""
        if n not in self._specs:
            self._specs[n] = nets.network_spec(n - SHIPPED)
        return self._specs[n]

    def model(self, n: int):
        """Return the model (or the Failure of building it), built once under the time budget."""
        if n not in self._models:
            import postfusion_bayes as pfb

            spec = self.spec(n)
            start = time.perf_counter()
            model = attempt(lambda: pfb.Model(spec), self.s.budget)
            self._build_times[n] = model if failed(model) else time.perf_counter() - start
            self._models[n] = model
        return self._models[n]

    def build_time(self, n: int):
        """Return the seconds it took to build the model with ``n`` causes (or the Failure)."""
        self.model(n)
        return self._build_times[n]

    def reference(self, n: int, engine: str):
        """Return pgmpy VE or pyAgrum LazyPropagation on the network, or why not."""
        key = (n, engine)
        if key not in self._refs:
            guard = size_guard(nets.largest_table(self.spec(n)), self.table_limit, engine)
            if guard is not None:
                self._refs[key] = guard
            else:
                cls = PgmpyVE if engine == PGMPY else AgrumLP
                self._refs[key] = attempt(lambda: cls(*nets.reference_tables(self.spec(n))), self.s.budget)
        return self._refs[key]

    def patients(self, n: int, profile: str, count: int, seed: int, **kwargs) -> list:
        """Return ``count`` patients of one profile on the network with ``n`` causes, sampled once per arguments."""
        key = (n, profile, count, seed, tuple(sorted(kwargs.items())))
        if key not in self._patients:
            self._patients[key] = nets.patients(self.spec(n), profile, count, seed, **kwargs)
        return self._patients[key]

    # ---- recording
    def fail(self, new_size: bool, text: str) -> None:
        """Record a failure of postfusion-bayes for the exit status."""
        self.failures.append((new_size, text))

    def agree(self, name: str, value, new_size: bool) -> None:
        """Add an agreement line (a failure on our side is recorded by the measure that times the same call)."""
        self.agreements.append(Agreement(name, value, new_size))

    def measure(self, section: Section, name: str, value, unit: str = "s", target: tuple[str, bool] | None = None, new_size: bool = False, note: str = "", ours: bool = True) -> Measure:
        """Add a measure line to ``section``; a failure of postfusion-bayes (``ours``) is recorded for the exit status."""
        m = Measure(name, value, unit, *(target or ("", None)), note=note)
        section.rows.append(m)
        if ours and failed(value) and value.startswith("fails") and unit != "x":
            self.fail(new_size, f"{name}: {value}")
        return m


def causes_of(model) -> list[str]:
    """Return the model's causes, in its order."""
    return list(model.causes)


def ours_posteriors(model, patients) -> np.ndarray:
    """Return the cause posteriors of ``model.diagnose``, one row per patient."""
    causes = causes_of(model)
    return np.array([model.diagnose(p.evidence).posterior[causes].to_numpy() for p in patients])


def max_difference(a, b):
    """Return the largest absolute difference between ``a`` and ``b``, or the first Failure of the two."""
    if failed(a):
        return a
    if failed(b):
        return b
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def not_ours(value) -> Failure:
    """Return what a comparison records when our side has no value."""
    return not_run(f"postfusion-bayes has no value ({value})")


def compare(ours, theirs):
    """Return max |ours - theirs|, or why not: the reference's reason first, then ours."""
    if failed(theirs):
        return theirs
    if failed(ours):
        return not_ours(ours)
    return max_difference(ours[: len(theirs)], theirs)


# --------------------------------------------------------------------------- parts


def part_networks(b: Bench) -> None:
    """Check and time model.diagnose against pgmpy VE, pyAgrum LazyPropagation and the enumeration, per network and profile."""
    for n in b.s.networks:
        new = n > SHIPPED
        sec = Section(f"{network_label(n)}: model.diagnose(...).posterior against pgmpy VE, pyAgrum LazyPropagation and the enumeration")
        b.sections.append(sec)
        spec = b.spec(n)
        num = nets.numbers(spec)
        model = b.model(n)
        b.measure(sec, f"pfb.Model(spec): build the {n}-cause model, once", b.build_time(n), new_size=new)
        pg, ag = b.reference(n, PGMPY), b.reference(n, AGRUM)
        for profile, counts in (("typical", b.s.typical), ("stress", b.s.stress)):
            pats = b.patients(n, profile, counts[n], seed=100 + n + (profile == "stress"))
            where = f"{n} causes, {profile}"
            ours = model if failed(model) else attempt(lambda model=model, pats=pats: ours_posteriors(model, pats), b.s.budget)
            # exactness
            theirs = {}
            for engine, eng in ((PGMPY, pg), (AGRUM, ag)):
                theirs[engine] = eng if failed(eng) else attempt(lambda eng=eng, num=num, pats=pats: np.array([eng.posteriors(num.causes, p.hard, p.soft) for p in pats]), b.s.budget)
                b.agree(f"{engine} ({where}, {len(pats)} patients)", compare(ours, theirs[engine]), new)
            checked = pats[: b.s.oracle[n]]
            if not checked:
                enumeration = not_run(f"the long-double enumeration of 2^{n} sets of causes would take hours a patient")
            elif failed(ours) and all(failed(t) for t in theirs.values()):
                enumeration = not_ours(ours)  # nothing to check, and at 24 causes it costs seconds a patient
            else:
                enumeration = attempt(lambda num=num, checked=checked: np.array([oracle.posteriors(num, p.hard, p.soft)[0] for p in checked]), b.s.budget)
            b.agree(f"long-double enumeration ({where}, {len(checked)} patients)", compare(ours, enumeration), new)
            if not failed(theirs[PGMPY]) and not failed(enumeration):
                b.agree(f"enumeration vs pgmpy VE, the harness's own check ({where})", max_difference(theirs[PGMPY][: len(checked)], enumeration), new)
            # speed
            timed_refs = pats[: b.s.reference_timed]
            t_ours = ours if failed(ours) else timed_per_item(lambda p, model=model: model.diagnose(p.evidence).posterior, pats, b.s.repeats, b.s.budget)
            t_pg = pg if failed(pg) else timed_per_item(lambda p, pg=pg, num=num: pg.posteriors(num.causes, p.hard, p.soft), timed_refs, b.s.repeats, b.s.budget)
            t_ag = ag if failed(ag) else timed_per_item(lambda p, ag=ag, num=num: ag.posteriors(num.causes, p.hard, p.soft), timed_refs, b.s.repeats, b.s.budget)
            targets = DIAGNOSE_TARGETS.get((n, profile), {})
            b.measure(
                sec,
                f"postfusion-bayes model.diagnose(...).posterior, per patient ({where})",
                t_ours,
                target=target_at_most(t_ours, targets["time"]) if "time" in targets else None,
                new_size=new,
            )
            b.measure(sec, f"pgmpy VariableElimination.query(causes, joint=False), per patient ({where})", t_pg, ours=False)
            b.measure(sec, f"pyAgrum LazyPropagation, engine reused, per patient ({where})", t_ag, ours=False)
            r = ratio(t_pg, t_ours)
            b.measure(sec, f"pgmpy VE / model.diagnose ({where})", r, "x", target_at_least_ratio(r, targets["pgmpy"]) if "pgmpy" in targets else None)
            r = ratio(t_ag, t_ours)
            b.measure(sec, f"pyAgrum / model.diagnose ({where})", r, "x", target_at_least_ratio(r, targets["agrum"]) if "agrum" in targets else None)


def part_batch(b: Bench) -> None:
    """Time model.diagnose_many per patient and check it against diagnose, per network."""
    sec = Section("model.diagnose_many, typical profile (hard evidence, one patient per row)")
    b.sections.append(sec)
    for n in b.s.networks:
        new = n > SHIPPED
        where = f"{n} causes, typical"
        model = b.model(n)
        if failed(model):
            b.measure(
                sec,
                f"postfusion-bayes model.diagnose_many, {b.s.n_batch[n]:,} patients (per patient, {where})",
                model,
                new_size=new,
                target=target_at_most(model, BATCH_TARGETS[n]) if n in BATCH_TARGETS else None,
            )
            b.agree(f"diagnose_many vs diagnose ({where})", not_ours(model), new)
            continue
        pats = b.patients(n, "typical", b.s.n_batch[n], seed=200 + n)
        frame = pd.DataFrame([p.hard for p in pats])
        batch = attempt(lambda model=model, frame=frame: model.diagnose_many(frame), b.s.budget)
        causes = causes_of(model)
        rows = list(range(0, len(pats), max(1, len(pats) // 20)))
        if failed(batch):
            value = batch
        else:
            one = attempt(lambda model=model, pats=pats, causes=causes, rows=rows: np.array([model.diagnose(pats[i].evidence).posterior[causes].to_numpy() for i in rows]), b.s.budget)
            value = max_difference(batch.iloc[rows][causes].to_numpy(dtype=float), one) if not failed(one) else not_run(f"model.diagnose has no value ({one})")
        b.agree(f"diagnose_many vs diagnose ({where}, {len(rows)} of {len(pats):,} rows)", value, new)
        t = batch if failed(batch) else attempt(lambda model=model, frame=frame: median_time(lambda: model.diagnose_many(frame), b.s.repeats) / len(frame), b.s.budget)
        b.measure(
            sec,
            f"postfusion-bayes model.diagnose_many, {len(frame):,} patients (per patient, {where})",
            t,
            target=target_at_most(t, BATCH_TARGETS[n]) if n in BATCH_TARGETS else None,
            new_size=new,
        )


def part_parameters(b: Bench) -> None:
    """Time parameter sets through the compiled network for one patient and check them against with_parameters, per network."""
    import postfusion_bayes as pfb
    from postfusion_bayes.cpts import build_tables

    sec = Section("parameter sets through the compiled network, one typical patient (the path sensitivity analysis takes)")
    b.sections.append(sec)
    for n in sorted(b.s.n_sets):
        new = n > SHIPPED
        where = f"{n} causes"
        model = b.model(n)
        n_sets = b.s.n_sets[n]
        name = f"postfusion-bayes compiled network, {n_sets:,} parameter sets (per set, inference, {where})"
        if failed(model):
            b.measure(sec, name, model, target=target_at_most(model, PARAMETER_TARGETS[n]) if n in PARAMETER_TARGETS else None, new_size=new)
            b.agree(f"parameter sets vs with_parameters ({where})", not_ours(model), new)
            continue
        causes = causes_of(model)
        rng = np.random.default_rng(3)
        # every probability but the distributions (onset, the categorical context: time window, approach), drawn within its range
        categorical = tuple(f"context.{v}.distribution." for v, d in model.spec.context_priors.items() if list(d) != ["yes"])
        free = [p for p in model.spec.parameters.values() if p.kind == "probability" and not p.name.startswith(("onset.", *categorical))]
        values = {p.name: rng.uniform(p.low, p.high, n_sets) for p in free}
        patient = b.patients(n, "typical", 1, seed=300 + n)[0]

        def batched_tables(model=model, values=values):
            sets = build_tables(model.spec, values)
            return {v: sets.cpd(v) for v in sets.variables if sets.batch_size(v) is not None}

        batched = attempt(batched_tables, b.s.budget)
        lam = attempt(lambda model=model, patient=patient: model.network.encode(pd.DataFrame([patient.hard])))
        if failed(batched) or failed(lam):
            problem = batched if failed(batched) else lam
            b.measure(sec, name, problem, target=target_at_most(problem, PARAMETER_TARGETS[n]) if n in PARAMETER_TARGETS else None, new_size=new)
            b.agree(f"parameter sets vs with_parameters ({where})", not_ours(problem), new)
            continue
        result = attempt(lambda model=model, lam=lam, causes=causes, batched=batched: model.network.query(lam, causes, parameters=batched), b.s.budget)
        if failed(result):
            agreement = result
        else:
            marginals = result.marginals

            def check(model=model, values=values, patient=patient, marginals=marginals, causes=causes, n_sets=n_sets):
                worst = 0.0
                for i in (0, n_sets // 2, n_sets - 1):
                    one = pfb.Model(model.spec.with_values({k: float(v[i]) for k, v in values.items()})).diagnose(patient.evidence).posterior
                    worst = max(worst, float(max(abs(marginals[c][i, 0, 1] - one[c]) for c in causes)))
                return worst

            agreement = attempt(check, b.s.budget)
        b.agree(f"parameter sets vs with_parameters ({where}, 3 of {n_sets:,} sets)", agreement, new)
        t = result if failed(result) else attempt(
            lambda model=model, lam=lam, causes=causes, batched=batched, n_sets=n_sets: (
                median_time(lambda: model.network.query(lam, causes, parameters=batched, validate=False), b.s.repeats) / n_sets
            ),
            b.s.budget,
        )
        b.measure(sec, name, t, target=target_at_most(t, PARAMETER_TARGETS[n]) if n in PARAMETER_TARGETS else None, new_size=new)
        if n == SHIPPED:
            t = result if failed(result) else attempt(
                lambda model=model, lam=lam, causes=causes, batched=batched, n_sets=n_sets: (
                    median_time(lambda: model.network.query(lam, causes, parameters=batched), b.s.repeats) / n_sets
                ),
                b.s.budget,
            )
            b.measure(sec, f"postfusion-bayes {n_sets:,} parameter sets, tables checked (per set, {where})", t)

            def build_and_infer(model=model, lam=lam, causes=causes, batched_tables=batched_tables):
                return model.network.query(lam, causes, parameters=batched_tables(), validate=False)

            t = result if failed(result) else attempt(lambda build_and_infer=build_and_infer, n_sets=n_sets: median_time(build_and_infer, b.s.repeats) / n_sets, b.s.budget)
            b.measure(sec, f"postfusion-bayes {n_sets:,} parameter sets incl. building the tables (per set, {where})", t)


def pgmpy_explain(ve, spec, causes, d):
    """Query the cause posteriors with pgmpy, each observed finding left out in turn (what explain() needs)."""
    out = {}
    for f in [k for k in d if spec.variables[k].role in ("finding", "red_flag")]:
        rest = {k: v for k, v in d.items() if k != f}
        out[f] = ve.query(causes, evidence=rest, joint=False, show_progress=False)
    return out


def pgmpy_information_gain(ve, causes, d, tests):
    """Mutual information (bits) between each test and the joint state of the causes, one joint query per test."""
    gains = {}
    for t in tests:
        joint = ve.query([*causes, t], evidence=d, joint=True, show_progress=False)
        axis = joint.variables.index(t)
        p = np.moveaxis(joint.values, axis, -1).reshape(-1, joint.cardinality[axis])
        pc, pt = p.sum(axis=1, keepdims=True), p.sum(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            gains[t] = float(np.where(p > 0, p * np.log2(p / (pc * pt)), 0.0).sum())
    return gains


def mpe_difference(mpe, top) -> float:
    """Return the largest difference between our k most probable sets and the enumeration's, rank by rank.

    The difference is 1.0 when a set differs where the enumeration's probabilities are not tied.
    """
    worst = 0.0
    probs = [p for _, p in top]
    for rank, (sets, prob) in enumerate(zip(mpe["present_causes"], mpe["probability"], strict=True)):
        if rank >= len(top):
            return 1.0
        expected_set = " + ".join(top[rank][0]) or "none of the modelled causes"
        tied = any(abs(probs[rank] - q) <= TOLERANCE for j, q in enumerate(probs) if j != rank)
        if sets != expected_set and not tied:
            return 1.0
        worst = max(worst, abs(float(prob) - probs[rank]))
    return worst


def part_reasoning(b: Bench) -> None:
    """Time explain(), next_tests() and most_probable_explanation(k=3), against pgmpy where it does the same, and check them."""
    sec = Section("reasoning on one patient (typical profile): explain(), next_tests(), most_probable_explanation(k=3); dx.method() times a fresh Diagnosis made outside the timing")
    b.sections.append(sec)
    model = b.model(SHIPPED)
    pg = b.reference(SHIPPED, PGMPY)
    if not failed(model) and not failed(pg):
        spec = model.spec
        causes = causes_of(model)
        pats = b.patients(SHIPPED, "typical", b.s.reasoning[SHIPPED], seed=400)
        dicts = [p.hard for p in pats]
        t_explain = timed_per_item(lambda d: model.diagnose(d).explain(), dicts, b.s.repeats, b.s.budget)
        t_tests = timed_per_item(lambda d: model.diagnose(d).next_tests(), dicts, b.s.repeats, b.s.budget)
        few = dicts[:1] if b.quick else dicts[:3]

        def information_gain_difference():
            worst = 0.0
            for d in few:
                ours = model.diagnose(d).next_tests()
                theirs = pgmpy_information_gain(pg.ve, causes, d, list(ours.index[:5]))
                worst = max(worst, max(abs(ours.loc[t, "information_gain"] - g) for t, g in theirs.items()))
            return worst

        b.agree(f"next_tests information gain vs pgmpy joint queries ({SHIPPED} causes, typical)", attempt(information_gain_difference, b.s.budget), False)
        t_pg_explain = timed_per_item(lambda d: pgmpy_explain(pg.ve, spec, causes, d), few, 1, b.s.budget)
        t_pg_tests = timed_per_item(lambda d: pgmpy_information_gain(pg.ve, causes, d, list(model.diagnose(d).next_tests().index)), few, 1, b.s.budget)
        b.measure(sec, f"postfusion-bayes diagnose + explain(), one patient ({SHIPPED} causes)", t_explain, target=target_at_most(t_explain, 20e-3))
        b.measure(sec, f"postfusion-bayes diagnose + next_tests(), one patient ({SHIPPED} causes)", t_tests, target=target_at_most(t_tests, 50e-3))
        b.measure(sec, f"pgmpy VE, explain (one query per finding left out), one patient ({SHIPPED} causes)", t_pg_explain, ours=False)
        b.measure(sec, f"pgmpy VE, next tests (one joint query per test), one patient ({SHIPPED} causes)", t_pg_tests, ours=False)
        b.measure(sec, f"pgmpy VE / explain() ({SHIPPED} causes)", ratio(t_pg_explain, t_explain), "x")
        b.measure(sec, f"pgmpy VE / next_tests() ({SHIPPED} causes)", ratio(t_pg_tests, t_tests), "x")
    else:
        problem = model if failed(model) else pg
        b.measure(sec, f"postfusion-bayes diagnose + explain(), one patient ({SHIPPED} causes)", problem, ours=failed(model))
        b.agree(f"next_tests information gain vs pgmpy joint queries ({SHIPPED} causes, typical)", problem, False)
    for n in sorted(b.s.reasoning):
        new = n > SHIPPED
        where = f"{n} causes, typical"
        model = b.model(n)
        target = REASONING_TARGET.get(n)
        pats = b.patients(n, "typical", b.s.reasoning[n], seed=500 + n)
        num = nets.numbers(b.spec(n))
        first: dict[str, object] = {}
        for method, call in (("next_tests()", lambda dx: dx.next_tests()), ("most_probable_explanation(k=3)", lambda dx: dx.most_probable_explanation(k=3))):
            name = f"postfusion-bayes dx.{method}, one patient ({where})"
            # one call first: a failure is recorded once, not paid again by the timing and the allocation
            first[method] = model if failed(model) else attempt(lambda call=call, model=model, pats=pats: call(model.diagnose(pats[0].evidence)), b.s.budget)
            if failed(first[method]):
                b.measure(sec, name, first[method], target=target_at_most(first[method], target) if target else None, new_size=new)
                b.measure(sec, f"peak traced allocation of dx.{method} ({where})", first[method], "B", new_size=new, ours=False)
                continue

            def run_fresh(model=model, pats=pats, call=call):
                # a fresh Diagnosis for every call (the methods cache their answer); diagnoses are made outside the timing
                times = []
                for _ in range(b.s.repeats):
                    dxs = [model.diagnose(p.evidence) for p in pats]
                    start = time.perf_counter()
                    for dx in dxs:
                        call(dx)
                    times.append((time.perf_counter() - start) / len(dxs))
                return statistics.median(times)

            t = attempt(run_fresh, b.s.budget)
            b.measure(sec, name, t, target=target_at_most(t, target) if target else None, new_size=new)
            dx = attempt(lambda model=model, pats=pats: model.diagnose(pats[0].evidence))
            peak = dx if failed(dx) else peak_allocation(lambda call=call, dx=dx: call(dx))
            b.measure(sec, f"peak traced allocation of dx.{method} ({where})", peak, "B", new_size=new)
        if failed(first["most_probable_explanation(k=3)"]):
            b.agree(f"most_probable_explanation vs enumeration ({where})", not_ours(first["most_probable_explanation(k=3)"]), new)
            continue
        if n > 24:
            b.agree(f"most_probable_explanation vs enumeration ({where})", not_run(f"the long-double enumeration of 2^{n} sets of causes would take hours a patient"), new)
            continue

        def mpe_check(model=model, pats=pats, num=num):
            worst = 0.0
            for p in pats:
                mpe = model.diagnose(p.evidence).most_probable_explanation(k=3)
                worst = max(worst, mpe_difference(mpe, oracle.most_probable(num, p.hard, p.soft, 3)))
            return worst

        b.agree(f"most_probable_explanation vs enumeration ({where}, {len(pats)} patients)", attempt(mpe_check, b.s.budget), new)


def cold_start(code: str, repeats: int) -> tuple[float, str]:
    """Run ``python -c code`` ``repeats`` times; return the median wall time and the last run's output."""
    times, out = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - start)
        out = run.stdout.strip()
    return statistics.median(times), out


def part_cold_start(b: Bench) -> bool:
    """Time a cold start against ``import pandas``; return whether pgmpy was imported on the cold-start path."""
    sec = Section("cold start: a fresh python -c, median of the runs")
    b.sections.append(sec)
    ours_code = (
        "import sys, postfusion_bayes as p; m = p.load_model(); "
        "m.diagnose({'time_since_surgery': 'over_2_years', 'neurogenic_claudication': True}); "
        "print('pgmpy' in sys.modules)"
    )
    pandas = attempt(lambda: cold_start("import pandas", b.s.cold_repeats)[0], b.s.budget)
    ours = attempt(lambda: cold_start(ours_code, b.s.cold_repeats), b.s.budget)
    imported = (not failed(ours)) and ours[1] == "True"
    t_ours = ours if failed(ours) else ours[0]
    b.measure(sec, 'python -c "import pandas" (the baseline, same run)', pandas, ours=False)
    b.measure(sec, "cold start: python -c import, load, diagnose once", t_ours)
    over = t_ours if failed(t_ours) else (pandas if failed(pandas) else t_ours - pandas)
    b.measure(sec, "cold start minus import pandas", over, target=target_at_most(over, COLD_START_MARGIN))
    b.measure(sec, "pgmpy not imported on the cold-start path", None if not failed(ours) else ours, target=("", not imported and not failed(ours)))
    return imported


#: Targets of the sensitivity analyses on one patient, warm (issue 10, "sensitivity at interactive speed"), in seconds.
SENSITIVITY_TARGETS = {"monte_carlo": 0.5, "sobol": 15.0, "rank_robustness": 0.3, "tornado": 0.1, "next_tests": 0.002, "explain": 0.001, "load_model": 0.015, "load_model_new": 0.015}


def part_sensitivity(b: Bench) -> None:
    """Time the sensitivity analyses, explain, next tests and loading the model for one patient, warm, on the shipped model."""
    import postfusion_bayes as pfb
    from postfusion_bayes import sensitivity

    sec = Section("sensitivity and reasoning at interactive speed: the shipped model, one typical patient, warm (after a first call)")
    b.sections.append(sec)
    model = b.model(SHIPPED)
    if failed(model):
        b.measure(sec, "shipped model", model)
        return
    patient = b.patients(SHIPPED, "typical", 1, seed=500)[0].evidence
    target = model.diagnose(patient).top
    n_mc, n_sobol = (250, 16) if b.quick else (10_000, 1024)  # quick: every analysis runs; its timing is not judged
    warm = attempt(lambda: (sensitivity.monte_carlo(model, patient, n=100, seed=0, progress=False), sensitivity.sobol(model, patient, target, n=4, seed=0, progress=False),
                            sensitivity.rank_robustness(model, patient), sensitivity.tornado(model, patient, target)), b.s.budget)
    if failed(warm):
        b.measure(sec, "sensitivity warm-up", warm)
        return
    measures = [
        ("monte_carlo", f"sensitivity.monte_carlo, n={n_mc:,}", lambda: sensitivity.monte_carlo(model, patient, n=n_mc, seed=1, progress=False), 5),
        ("sobol", f"sensitivity.sobol, n={n_sobol:,}, all parameters", lambda: sensitivity.sobol(model, patient, target, n=n_sobol, seed=1, progress=False), 3),
        ("rank_robustness", "sensitivity.rank_robustness, all parameters", lambda: sensitivity.rank_robustness(model, patient), 7),
        ("tornado", "sensitivity.tornado, all parameters", lambda: sensitivity.tornado(model, patient, target), 9),
        ("next_tests", "diagnose(...).next_tests() (a new diagnosis each time)", lambda: model.diagnose(patient).next_tests(), 30),
        ("explain", "diagnose(...).explain() (a new diagnosis each time)", lambda: model.diagnose(patient).explain(), 30),
        ("load_model", "load_model() (read, check and compile the shipped priors)", pfb.load_model, 9),
        ("load_model_new", "load_model(folder), its text not read before in the process (no memo: parse, check, compile)", lambda: pfb.load_model(next(copies)), 9),
    ]
    # load_spec keeps a memo of specs by folder and text: a copy of the priors in a new folder is read in full
    import shutil
    import tempfile

    from postfusion_bayes.spec import default_priors_path

    root = Path(tempfile.mkdtemp(prefix="pfb-bench-priors-"))
    folders = []
    for i in range(10):
        folders.append(root / f"copy{i}")
        shutil.copytree(default_priors_path(), folders[-1], ignore=shutil.ignore_patterns("*.md", "__pycache__", "*.py"))
    copies = iter(folders)
    for key, label, fn, repeats in measures:
        t = attempt(lambda fn=fn, repeats=repeats: median_time(fn, 1 if b.quick else repeats), b.s.budget)
        b.measure(sec, label, t, target=None if b.quick else target_at_most(t, SENSITIVITY_TARGETS[key]))
    shutil.rmtree(root, ignore_errors=True)


#: Target of one update of the interactive explorer (issue 13), Python side, in seconds.
EXPLORER_TARGET = 0.150


def part_explorer(b: Bench) -> None:
    """Time the explorer's updates (a click, a context change, a moved number) and its on-demand panels, on the shipped model and at 24 causes."""
    import re

    from postfusion_bayes import explorer

    sec = Section("interactive explorer: Python-side time of one update (one typical patient, the widgets without a browser)")
    b.sections.append(sec)
    # the shipped model, and in the full run the next size (8 synthetic causes more)
    for n in (SHIPPED,) if b.quick else (SHIPPED, SHIPPED + 8):
        new_size = n != SHIPPED
        label = f"{n} causes"
        model = b.model(n)
        if failed(model):
            b.measure(sec, f"explorer ({label})", model, new_size=new_size)
            continue
        patient = {k: v for k, v in b.patients(n, "typical", 1, seed=700)[0].evidence.items() if not isinstance(v, dict)}
        built = attempt(lambda model=model, patient=patient: explorer.Explorer(model, patient, background=True), b.s.budget)
        if failed(built):
            b.measure(sec, f"explorer ({label})", built, new_size=new_size)
            continue
        ex = built
        unobserved = [f for f in model.spec.names("finding") if f not in patient and len(model.spec.variables[f].states) == 2][:3]
        context = next(c for c in model.spec.names("context"))
        states = model.spec.variables[context].states
        parameter = next(p for p in model.spec.parameters if p.startswith("findings."))
        low, high = model.spec.parameters[parameter].low, model.spec.parameters[parameter].high

        actions = {
            "a finding clicked": [lambda f=f, state=state, ex=ex: ex.set(f, state) for f in unobserved for state in ("yes", None)],
            "a context variable changed": [lambda state=state, ex=ex, context=context: ex.set(context, state) for state in (states[0], states[-1])],
            "a hand-set number moved": [lambda value=value, ex=ex, parameter=parameter: ex.move(parameter, value) for value in (high, low)],
        }
        for name, steps in actions.items():
            update, panels = [], []
            for _ in range(1 if b.quick else 5):
                for step in steps:
                    start = time.perf_counter()
                    done = attempt(step, b.s.budget)
                    update.append(time.perf_counter() - start)
                    done = done if failed(done) else attempt(ex.wait, b.s.budget)
                    if failed(done):
                        break
                    panels.append(ex.last_panels_ms / 1000)
            t_update = done if failed(done) else statistics.median(update)
            t_panels = done if failed(done) else statistics.median(panels)
            b.measure(sec, f"explorer update: {name} ({label})", t_update, target=None if b.quick else target_at_most(t_update, EXPLORER_TARGET), new_size=new_size,
                      note="red flags, diagnosis, posterior bars: before the update returns")
            b.measure(sec, f"explorer next tests and adequacy after {name} ({label})", t_panels, new_size=new_size, note="in a background thread, the latest update only")
        ex.reset()
        for name, fn in (("tornado, on demand", ex.show_tornado), ("Monte Carlo band, on demand", ex.show_monte_carlo)):
            t = attempt(lambda fn=fn: median_time(fn, 1), b.s.budget)
            b.measure(sec, f"explorer {name} ({label})", t, new_size=new_size, note="not an update: computed when its button is pressed")

        def shown_difference(ex=ex, model=model):
            html = ex.find(explorer.POSTERIOR_CLASS).value
            rows = re.findall(r"data-cause='([^']+)' data-posterior='([^']+)'", html)
            dx = model.diagnose(ex.evidence)
            return max(abs(float(p) - float(dx.posterior[c])) for c, p in rows) if len(rows) == len(model.causes) else float("nan")

        b.agree(f"explorer posterior shown vs diagnose ({label})", attempt(shown_difference, b.s.budget), new_size)


def part_reference(b: Bench) -> None:
    """Check and time one labelled query on the reference networks (alarm, child, insurance) against pyAgrum."""
    from postfusion_bayes.engine import compile_network
    from postfusion_bayes.engine.files import read_bif
    from postfusion_bayes.engine.sampling import sample_cases

    sec = Section("reference networks (tests/data/networks): one labelled query, all unobserved variables, against pyAgrum (engine reused)")
    b.sections.append(sec)
    for name in ("alarm", "child", "insurance"):
        tables = attempt(lambda name=name: read_bif(REFERENCE_NETWORKS / f"{name}.bif"))
        if failed(tables):
            b.measure(sec, f"{name}: read", tables)
            continue
        normalize = attempt(lambda tables=tables: bool(tables.column_sum_errors()))
        net = normalize if failed(normalize) else attempt(lambda tables=tables, normalize=normalize: compile_network(tables, normalize=normalize))
        label = f"{name} ({len(tables.variables)} nodes{', normalize=True' if normalize else ''})"
        if failed(net):
            b.measure(sec, f"{label}: compile_network", net)
            b.agree(f"compile_network(...).posteriors() vs pyAgrum ({name})", not_ours(net), False)
            continue
        ag = attempt(lambda net=net: AgrumLP(net.tables.states, net.tables.parents, net.tables.cpts))
        rng = np.random.default_rng(600)
        cases = attempt(lambda net=net: sample_cases(net.tables, b.s.reference_rows, seed=601))
        if failed(cases):
            b.measure(sec, f"{label}: sample the evidence", cases)
            continue
        rows = []
        for _, case in cases.iterrows():
            observed = rng.choice(list(net.tables.variables), size=max(3, len(net.tables.variables) // 4), replace=False)
            rows.append(pd.DataFrame([{v: case[v] for v in observed}]))
        targets = [[v for v in net.tables.variables if v not in row.columns] for row in rows]

        def public(i, net=net, rows=rows, targets=targets):
            return net.posteriors(rows[i], targets[i])

        ours = attempt(lambda public=public, rows=rows: [public(i) for i in range(len(rows))], b.s.budget)
        theirs = ag if failed(ag) else attempt(lambda ag=ag, targets=targets, rows=rows: [ag.all_posteriors(targets[i], rows[i].iloc[0].to_dict()) for i in range(len(rows))], b.s.budget)
        if failed(ours) or failed(theirs):
            value = not_ours(ours) if failed(ours) else theirs
        else:
            value = max(float(np.max(np.abs(o[t].to_numpy()[0] - th[t]))) for o, th in zip(ours, theirs, strict=True) for t in o)
        b.agree(f"compile_network(...).posteriors() vs pyAgrum ({name}, {len(rows)} queries)", value, False)
        idx = list(range(len(rows)))
        t_ours = ours if failed(ours) else timed_per_item(public, idx, b.s.repeats, b.s.budget)
        encoded = attempt(lambda net=net, rows=rows: [net.encode(row) for row in rows])
        t_low = encoded if failed(encoded) else timed_per_item(lambda i, net=net, encoded=encoded, targets=targets: net.query(encoded[i], targets[i]), idx, b.s.repeats, b.s.budget)
        t_ag = theirs if failed(theirs) else timed_per_item(lambda i, ag=ag, targets=targets, rows=rows: ag.all_posteriors(targets[i], rows[i].iloc[0].to_dict()), idx, b.s.repeats, b.s.budget)
        r = ratio(t_ag, t_ours)
        b.measure(sec, f"{label}: compile_network(...).posteriors(), per query", t_ours)
        b.measure(sec, f"{label}: low level, encode once then query, per query", t_low)
        b.measure(sec, f"{label}: pyAgrum LazyPropagation, engine reused, per query", t_ag, ours=False)
        b.measure(sec, f"pyAgrum / compile_network(...).posteriors() ({name})", r, "x", target_at_least_ratio(r, 1.0))
        b.measure(sec, f"pyAgrum / query ({name})", ratio(t_ag, t_low), "x")


def growth_point(b: Bench, series: Series, x, n: int, pats: list, agreement: dict) -> None:
    """Time per diagnosis of every engine on one point of a growth series (failures recorded)."""
    num = nets.numbers(b.spec(n))
    model = b.model(n)
    ours = model if failed(model) else attempt(lambda: ours_posteriors(model, pats), b.s.budget)
    series.set("postfusion-bayes", x, ours if failed(ours) else timed_per_item(lambda p: model.diagnose(p.evidence).posterior, pats, b.s.repeats, b.s.budget))
    if failed(series.values["postfusion-bayes"][x]):
        b.fail(n > SHIPPED, f"growth {series.x_label} = {x}: {series.values['postfusion-bayes'][x]}")
    few = pats[: b.s.growth_reference_patients]
    for engine, label in ((PGMPY, "pgmpy VE"), (AGRUM, "pyAgrum LP")):
        eng = b.reference(n, engine)
        if failed(eng):
            series.set(label, x, eng)
            continue
        theirs = attempt(lambda eng=eng: np.array([eng.posteriors(num.causes, p.hard, p.soft) for p in few]), b.s.budget)
        if not failed(theirs) and not failed(ours):
            agreement[engine] = max(agreement.get(engine, 0.0), max_difference(ours[: len(few)], theirs))
        series.set(label, x, theirs if failed(theirs) else timed_per_item(lambda p, eng=eng: eng.posteriors(num.causes, p.hard, p.soft), few, b.s.repeats, b.s.budget))


def part_growth(b: Bench) -> None:
    """Time every engine against the number of causes and against the number of positive findings."""
    engines = ["postfusion-bayes", "pgmpy VE", "pyAgrum LP"]
    agreement: dict[str, float] = {}
    by_causes = Series("time per diagnosis against the number of causes (typical profile)", "number of causes", list(b.s.growth_causes), engines)
    for n in b.s.growth_causes:
        growth_point(b, by_causes, n, n, b.patients(n, "typical", b.s.growth_patients, seed=700 + n), agreement)
    n = b.s.growth_positives_causes
    by_positives = Series(
        f"time per diagnosis against the number of positive findings ({n} causes; all context, onset and 4 negative findings observed)",
        "number of positive findings",
        list(b.s.growth_positives),
        engines,
    )
    for k in b.s.growth_positives:
        growth_point(b, by_positives, k, n, b.patients(n, "positives", b.s.growth_patients, seed=800 + k, n_positive=k), agreement)
    for engine in (PGMPY, AGRUM):
        b.agree(f"growth series vs {engine} (every point where both run)", agreement.get(engine, not_run(f"{engine} ran at no point with postfusion-bayes")), True)
    b.series += [by_causes, by_positives]


# --------------------------------------------------------------------------- report


REGISTRY_MEMORY_TARGET = 500 * (1 << 20)  # diagnose_many on 1e6 rows (issue 14)


#: Rows of the registry timed first (the whole registry only if they finish within the time budget).
REGISTRY_SAMPLE = 2_000


def part_registry(b: Bench) -> None:
    """Diagnose a simulated registry on pandas and on Dask (1 and 2 local workers, or the cluster at --scheduler)."""
    import shutil
    import tempfile

    import bench_registry as reg

    import postfusion_bayes as pfb

    sec = Section(f"registry scale: {b.s.registry:,} simulated patients x 38 columns (30% unobserved), Parquet files of {b.s.registry_partition:,} rows")
    b.sections.append(sec)
    model = pfb.load_model()
    frame = reg.simulate_registry(model, b.s.registry)
    sample = frame.iloc[:REGISTRY_SAMPLE]
    start = time.perf_counter()
    first = attempt(lambda: model.diagnose_many(sample), b.s.budget)
    t = first if failed(first) else time.perf_counter() - start
    b.measure(sec, f"pandas model.diagnose_many, the first {len(sample):,} rows (time per patient, 1 process)", t if failed(t) else t / len(sample))
    start = time.perf_counter()
    projected = None if failed(t) else t / len(sample) * len(frame)
    if projected is not None and projected > b.s.budget:
        expected = not_run(f"at that rate the {len(frame):,} rows would take about {projected / 60:.0f} min, past the {b.s.budget:g} s budget")
    else:
        expected = first if failed(first) else attempt(lambda: model.diagnose_many(frame), b.s.budget)
    t = expected if failed(expected) else time.perf_counter() - start
    b.measure(sec, "pandas model.diagnose_many (time per patient, 1 process)", t if failed(t) else t / len(frame))
    if failed(expected):  # (the memory and Dask measures would take as long again, unguarded)
        return
    peak = peak_allocation(lambda: model.diagnose_many(frame))
    # the target is for a million rows (the full run); the quick run's registry is too small to judge
    target = None if b.quick else (f"<= {REGISTRY_MEMORY_TARGET >> 20} MB", (not failed(peak)) and peak <= REGISTRY_MEMORY_TARGET)
    b.measure(sec, f"pandas model.diagnose_many peak traced memory (chunks of {pfb.model.DIAGNOSE_CHUNK:,} rows)", peak, unit="B", target=target)
    chunk = pfb.model.DIAGNOSE_CHUNK
    try:
        pfb.model.DIAGNOSE_CHUNK = 10**12  # one query: the memory of the path before issue 14
        whole = peak_allocation(lambda: model.diagnose_many(frame))
    finally:
        pfb.model.DIAGNOSE_CHUNK = chunk
    b.measure(sec, "pandas model.diagnose_many peak traced memory in one query (before issue 14)", whole, unit="B", ours=False)
    folder = b.registry_path or tempfile.mkdtemp(prefix="registry-")
    try:
        _registry_on_dask(b, sec, model, frame, expected, folder)
        _registry_learning(b, model, folder)
    finally:
        if b.registry_path is None:
            shutil.rmtree(folder, ignore_errors=True)


def _registry_learning(b: Bench, model, folder: str) -> None:
    """One EM iteration on simulated confirmed cases: the old path's recorded time, pandas, and Dask (1 and 2 local workers, or --scheduler)."""
    import bench_registry as reg
    import dask.dataframe as dd
    from distributed import Client

    n = b.s.learning
    sec = Section(f"learning from a registry: one EM iteration on {n:,} simulated confirmed cases, each context column missing in 40%")
    b.sections.append(sec)
    cases = reg.simulate_confirmed(model, n)
    old = reg.OLD_EM_ITERATION_SECONDS.get(n)
    if old is not None:
        b.measure(sec, "update_with_cases before issue 14 (row copies and the joint of the causes; recorded 2026-11-28, not rerun)", old, ours=False)
    result = attempt(lambda: reg.em_iteration(model, cases), b.s.budget)
    if failed(result):
        b.measure(sec, "model.update_with_cases, one EM iteration", result)
        return
    seconds, expected = result
    b.measure(sec, "model.update_with_cases, one EM iteration (pandas, 1 process)", seconds, note="" if old is None else f"{old / seconds:.1f}x faster than before")
    source = f"{folder.rstrip('/')}/confirmed"
    as_text = cases.astype({c: "string" for c in cases.columns if cases[c].dtype == object})  # Parquet: nullable text columns
    written = attempt(lambda: dd.from_pandas(as_text, chunksize=b.s.registry_partition, sort=False).to_parquet(source, overwrite=True))
    if failed(written):
        b.measure(sec, "write the cases to Parquet", written)
        return
    configurations = [(f"the cluster at {b.scheduler}", None)] if b.scheduler else [(f"LocalCluster, {k} worker{'s' if k > 1 else ''}", k) for k in (1, 2)]
    for label, workers in configurations:

        def run(workers=workers):
            if workers is None:
                with Client(b.scheduler, set_as_default=False) as client:
                    return reg.em_iteration(model, dd.read_parquet(source), client)
            with reg.local_cluster(workers, reg.package_env()) as cluster, Client(cluster, set_as_default=False) as client:
                return reg.em_iteration(model, dd.read_parquet(source), client)

        got = attempt(run, max(b.s.budget, 120.0))
        if failed(got):
            b.measure(sec, f"distributed.update_with_cases on {label}, one EM iteration", got)
            continue
        b.measure(sec, f"distributed.update_with_cases on {label}, one EM iteration (Parquet partitions, the M-step on the driver)", got[0])
        b.agree(f"distributed.update_with_cases vs update_with_cases (one EM iteration, {label}, {n:,} cases)", reg.learned_difference(got[1], expected), False)
    sec.rows.append("note: with 2 cores, 2 workers compete with each other, the driver and the scheduler: they measure contention as much as scaling")


def _registry_on_dask(b: Bench, sec: Section, model, frame: pd.DataFrame, expected: pd.DataFrame, folder: str) -> None:
    """Write the registry to Parquet under ``folder`` and diagnose it on each Dask configuration."""
    import bench_registry as reg

    causes = list(model.causes)
    source = f"{folder.rstrip('/')}/patients"
    written = attempt(lambda: reg.write_registry(frame, source, b.s.registry_partition))
    if failed(written):
        b.measure(sec, "write the registry to Parquet", written)
        return
    if b.scheduler:
        configurations: list[tuple[str, object]] = [(f"the cluster at {b.scheduler}", None)]
    else:
        configurations = [(f"LocalCluster, {k} worker{'s' if k > 1 else ''}", k) for k in (1, 2)]
    from distributed import Client

    for label, workers in configurations:

        def run(workers=workers, label=label):
            if workers is None:
                with Client(b.scheduler, set_as_default=False) as client:
                    return reg.dask_run(model, client, source, f"{folder.rstrip('/')}/posteriors-cluster")
            with reg.local_cluster(workers, reg.package_env()) as cluster, Client(cluster, set_as_default=False) as client:
                return reg.dask_run(model, client, source, f"{folder.rstrip('/')}/posteriors-{workers}")

        result = attempt(run, max(b.s.budget, 120.0))  # starting a cluster takes seconds
        if failed(result):
            b.measure(sec, f"distributed.diagnose_many on {label}", result)
            continue
        n = result["workers"]
        b.measure(sec, f"distributed.diagnose_many on {label}: wall time per patient, Parquet to Parquet", result["seconds"] / result["rows"])
        b.measure(sec, f"distributed.diagnose_many on {label}: time per patient per worker ({n} worker{'s' if n > 1 else ''})", result["seconds"] * n / result["rows"])
        b.measure(sec, f"distributed.diagnose_many on {label}: peak resident memory per worker", result["peak"], unit="B", note=f"the worker alone before the run: {size(result['baseline'])}")
        target_path = f"{folder.rstrip('/')}/posteriors-{'cluster' if workers is None else workers}"
        difference = attempt(lambda target_path=target_path: reg.max_difference(target_path, expected, causes))
        b.agree(f"distributed.diagnose_many vs diagnose_many (registry, {label}, {result['rows']:,} rows)", difference, False)
    sec.rows.append("note: with 2 cores, 2 workers compete with each other, the driver and the scheduler: they measure contention as much as scaling")


def machine() -> str:
    """Describe the machine, Python and the versions of the libraries, for the results' header."""
    import numpy
    import pgmpy
    import pyagrum

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; Python {platform.python_version()}, "
        f"numpy {numpy.__version__}, pandas {pd.__version__}, pgmpy {pgmpy.__version__}, pyagrum {pyagrum.__version__}"
    )


def render(b: Bench, settings_line: str) -> str:
    """Return the report: the settings, the exactness section, the other sections, then the growth tables."""
    lines: list[str] = [settings_line, ""]
    exact = Section(f"exactness: max |difference| of the cause posteriors (and the other answers) between engines; the run fails above {TOLERANCE:g}")
    exact.rows = list(b.agreements)
    numeric = [a.value for a in b.agreements if not failed(a.value)]
    ok = not any(a.too_large for a in b.agreements)
    exact.rows.append(Measure(f"every max |difference| <= {TOLERANCE:g} ({len(numeric)} compared, {len(b.agreements) - len(numeric)} without a value)", None, met=ok))
    sections = [exact, *b.sections]
    width = max(sec.width() for sec in sections)
    for sec in sections:
        lines += sec.lines(width) + [""]
    for series in b.series:
        lines += series.table() + [""]
    return "\n".join(lines).rstrip() + "\n"


def write_results(b: Bench, report: str, output: Path, quick: bool, figures: list[Path]) -> None:
    """Write the results file: a description of the run, the report and links to the figures."""
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    mode = "quick mode (harness check; timings not meaningful)" if quick else "full run"
    s = b.s
    intro = (
        f"# Benchmark results\n\n{mode}, {stamp}, on {machine()}.\n\n"
        f"Produced by `python benchmarks/run_benchmarks.py{' --quick' if quick else ''}`. Networks: "
        + ", ".join(network_label(n) for n in s.networks)
        + f"; synthetic causes drawn with seed {nets.NETWORK_SEED}, each linked to {nets.LINKS_PER_CAUSE} findings "
        f"(links in [{nets.LINK_RANGE[0]}, {nets.LINK_RANGE[1]}]) and with its own onset distribution. Patients are sampled "
        "from each network and shaped to a profile:\n\n"
        + "".join(f"- **{k}**: {v}\n" for k, v in nets.PROFILES.items())
        + "\nPatients per network (typical / stress): "
        + ", ".join(f"{n} causes {s.typical[n]} / {s.stress[n]}" for n in s.networks)
        + f"; pgmpy and pyAgrum timed on the first {s.reference_timed}; medians of {s.repeats} repeats. "
        "pgmpy and pyAgrum are not run when a dense table would pass the size limit (the onset table has "
        "2^causes columns). Targets are reported, not enforced; `fails: ...` is an exception raised by the engine "
        "(or the harness's time budget), recorded while the run went on.\n\n"
        f"```\n{report}```\n"
    )
    for path in figures:
        intro += f"\n![{path.stem.replace('_', ' ')}]({path.name})\n"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(intro)


def limit_memory(gigabytes: float) -> None:
    """Cap the address space so that a runaway allocation raises MemoryError instead of swapping the machine."""
    if gigabytes > 0:
        limit = int(gigabytes * (1 << 30))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def main(argv=None) -> int:
    """Run the benchmark; return 1 when engines disagree, pgmpy is imported on the cold-start path or a measure fails, else 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: check the harness and the agreement (CI); about a minute")
    parser.add_argument("--output", type=Path, default=None, help="where to write the results (full run: benchmarks/RESULTS.md); figures go beside it")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=None, metavar="PART", help=f"run only these parts: {', '.join(PARTS)}")
    parser.add_argument("--figures", action="store_true", help="draw the growth figures in quick mode too")
    parser.add_argument("--budget", type=float, default=None, help="seconds allowed to one guarded engine call (full 300, quick 30)")
    parser.add_argument("--table-limit", type=int, default=1 << 22, help="largest dense table pgmpy and pyAgrum are given (entries; default 2^22, so up to 20 causes)")
    parser.add_argument("--memory-limit-gb", type=float, default=8.0, help="address-space cap of this process (0: none)")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None, help="registry part: run on the Dask cluster at ADDRESS (tcp://host:8786) instead of local clusters")
    parser.add_argument(
        "--registry-path", metavar="FOLDER_OR_URL", default=None,
        help="registry part: where to write its Parquet files (default: a temporary folder; with --scheduler, one its workers read, e.g. s3://...)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    settings = QUICK if quick else FULL
    if args.budget is not None:
        settings = Settings(**{**settings.__dict__, "budget": args.budget})
    parts = args.only or PARTS
    limit_memory(args.memory_limit_gb)
    warnings.simplefilter("ignore", FutureWarning)

    b = Bench(settings, args.table_limit, quick, scheduler=args.scheduler, registry_path=args.registry_path)
    started = time.perf_counter()
    pgmpy_imported = False
    for part in PARTS:
        if part not in parts:
            continue
        part_start = time.perf_counter()
        if part == "cold-start":
            pgmpy_imported = part_cold_start(b)
        else:
            run = {
                "networks": part_networks,
                "batch": part_batch,
                "parameters": part_parameters,
                "reasoning": part_reasoning,
                "sensitivity": part_sensitivity,
                "explorer": part_explorer,
                "reference": part_reference,
                "growth": part_growth,
                "registry": part_registry,
            }[part]
            crashed = attempt(lambda run=run: run(b))  # a last resort: each part guards its own engine calls
            if failed(crashed):
                sec = Section(f"part {part} stopped early (a harness error or an unguarded call)")
                b.sections.append(sec)
                b.measure(sec, f"part {part}", crashed)
        print(f"[{part}: {time.perf_counter() - part_start:.1f} s]", file=sys.stderr, flush=True)
    settings_line = (
        f"{'quick' if quick else 'full'} run of {', '.join(p for p in PARTS if p in parts)}; every guarded call limited to {settings.budget:g} s; "
        f"pgmpy and pyAgrum given tables of at most {args.table_limit:,} entries; "
        + (f"address space capped at {args.memory_limit_gb:g} GB (a larger allocation fails as MemoryError)" if args.memory_limit_gb > 0 else "address space not capped")
    )
    report = render(b, settings_line)
    print(report)
    output = args.output or (None if quick else HERE / "RESULTS.md")
    figures: list[Path] = []
    if b.series and (not quick or args.figures):
        folder = output.parent if output else HERE
        names = ["growth_causes.png", "growth_positives.png"]
        folder.mkdir(parents=True, exist_ok=True)
        for series, name in zip(b.series, names, strict=True):
            drawn = attempt(lambda series=series, name=name: series.figure(folder / name))
            if failed(drawn):
                print(f"figure {name}: {drawn}", file=sys.stderr)
            else:
                figures.append(drawn)
    if output:
        write_results(b, report, output, quick, figures)
    print(f"total {time.perf_counter() - started:.1f} s", file=sys.stderr)

    problems = []
    too_large = [a for a in b.agreements if a.too_large]
    if too_large:
        problems.append(f"engines disagree beyond {TOLERANCE:g}: " + "; ".join(f"{a.name} {a.value:.2e}" for a in too_large))
    if pgmpy_imported:
        problems.append("pgmpy was imported on the cold-start path")
    blocking = [text for new, text in b.failures if not new or not quick]
    if blocking:
        problems.append(f"{len(blocking)} measures failed" + ("" if quick else " (a full run needs every network)") + ": " + "; ".join(blocking[:5]) + (" ..." if len(blocking) > 5 else ""))
    if problems:
        print("FAILED: " + " | ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
