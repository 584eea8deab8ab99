"""Benchmark: postfusion-bayes against pgmpy and pyAgrum on the same evidence, in one run.

Usage::

    python benchmarks/run_benchmarks.py            # full run, writes benchmarks/RESULTS.md
    python benchmarks/run_benchmarks.py --quick    # harness and agreement check only (CI)

Times (medians over repeats, same patients for every engine):

* pgmpy ``VariableElimination.query(causes, joint=False)``;
* pyAgrum ``LazyPropagation`` with one engine reused across patients;
* ``model.diagnose(...).posterior`` one patient at a time (the full public path:
  validation, red flags, inference and the sorted pandas Series);
* ``model.diagnose_many`` over 10,000 patients (per patient);
* the compiled network over 10,000 parameter sets for one patient (per set): the
  inference on tables built from validated numbers (the path sensitivity analysis
  takes), the same with every table checked, and including expanding the numbers
  into tables;
* cold start: a fresh ``python -c`` that imports, loads and diagnoses once;
* section "sensitivity": ``monte_carlo`` (n = 10,000), ``sobol`` (n = 1024, all
  parameters), ``rank_robustness`` and ``tornado`` for one patient, warm, and
  ``load_model``, each against its target (the quick mode prints them with
  smaller sizes, without comparing).

Every engine's posteriors are compared with every other's; the script fails (exit 1)
if they differ by more than 1e-9. Timings are printed and, in a full run, written to
``benchmarks/RESULTS.md`` with the date and the machine. The quick mode checks the
harness and the agreement, not the timings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
TOLERANCE = 1e-9


def sample_patients(model, n: int, n_findings: int, seed: int) -> pd.DataFrame:
    """Patients drawn from the model itself (so every row is possible), with all context and some findings observed."""
    rng = np.random.default_rng(seed)
    tables = model.tables
    rows = []
    findings = [v for v, r in zip(model.variables["name"], model.variables["role"]) if r in ("finding", "red_flag")]
    for _ in range(n):
        state = {}
        for v in tables.variables:
            table = tables.cpts[v]
            idx = tuple(state[p] for p in tables.parents[v])
            state[v] = rng.choice(len(tables.states[v]), p=table[idx])
        row = {v: tables.states[v][state[v]] for v in model.spec.names("context")}
        for f in rng.choice(findings, size=n_findings, replace=False):
            row[str(f)] = tables.states[str(f)][state[str(f)]]
        rows.append(row)
    return pd.DataFrame(rows)


def patient_dict(row: pd.Series) -> dict:
    return {k: v for k, v in row.items() if isinstance(v, str)}


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def pyagrum_network(tables):
    import pyagrum as gum

    bn = gum.BayesNet("postfusion")
    for v in tables.variables:
        bn.add(gum.LabelizedVariable(v, v, list(tables.states[v])))
    for v, parents in tables.parents.items():
        for p in parents:
            bn.addArc(p, v)
    for v, parents in tables.parents.items():
        table = tables.cpts[v]
        if not parents:
            bn.cpt(v)[:] = table.tolist()
            continue
        for config in itertools.product(*[range(len(tables.states[p])) for p in parents]):
            bn.cpt(v)[dict(zip(parents, config))] = table[config].tolist()
    return bn


def machine() -> str:
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


def cold_start(repeats: int) -> tuple[float, bool]:
    code = (
        "import sys, postfusion_bayes as p; m = p.load_model(); "
        "m.diagnose({'time_since_surgery': 'over_2_years', 'neurogenic_claudication': True}); "
        "print('pgmpy' in sys.modules)"
    )
    times, imported = [], False
    for _ in range(repeats):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - start)
        imported |= out.stdout.strip() == "True"
    return statistics.median(times), imported


#: Targets of the sensitivity analyses on one patient, warm (issue 10, "sensitivity at interactive speed"), in seconds.
SENSITIVITY_TARGETS = {
    "monte_carlo": 0.5,
    "sobol": 15.0,
    "rank_robustness": 0.3,
    "tornado": 0.1,
    "load_model": 0.015,
}


def sensitivity_section(model, patient: dict, quick: bool) -> tuple[list[str], dict[str, bool]]:
    """Time the sensitivity analyses (and loading the model) for one patient, warm, against their targets.

    Parameters
    ----------
    model : Model
    patient : dict
        One patient's evidence.
    quick : bool
        Smaller sizes and one repeat: the lines are printed, but not compared with the targets.

    Returns
    -------
    lines : list of str
        One line per measure: its median, its target and whether it is met.
    met : dict of str to bool
        Per target (full run only; empty in quick mode).
    """
    import postfusion_bayes as pfb
    from postfusion_bayes import sensitivity

    target = model.diagnose(patient).top
    n_mc, n_sobol = (1000, 64) if quick else (10_000, 1024)
    # warm: the first call in a process imports scipy and SALib and fits the distributions
    sensitivity.monte_carlo(model, patient, n=100, seed=0, progress=False)
    sensitivity.sobol(model, patient, target, n=4, seed=0, progress=False)
    sensitivity.rank_robustness(model, patient)
    sensitivity.tornado(model, patient, target)
    measures = [
        ("monte_carlo", f"sensitivity.monte_carlo, n={n_mc:,}", lambda: sensitivity.monte_carlo(model, patient, n=n_mc, seed=1, progress=False), 5),
        ("sobol", f"sensitivity.sobol, n={n_sobol:,}, all parameters", lambda: sensitivity.sobol(model, patient, target, n=n_sobol, seed=1, progress=False), 3),
        ("rank_robustness", "sensitivity.rank_robustness, all parameters", lambda: sensitivity.rank_robustness(model, patient), 7),
        ("tornado", "sensitivity.tornado, all parameters", lambda: sensitivity.tornado(model, patient, target), 9),
        ("load_model", "load_model() (read, check and compile the shipped priors)", pfb.load_model, 9),
    ]
    lines = [f"sensitivity, one patient ({len(patient)} variables observed, target {target}), warm; medians" + (" (quick mode: smaller sizes, not compared)" if quick else "")]
    met: dict[str, bool] = {}
    for key, label, fn, repeats in measures:
        seconds = median_time(fn, 1 if quick else repeats)
        goal = SENSITIVITY_TARGETS[key]
        if quick:
            verdict = "(quick)"
        else:
            met[f"{label} <= {goal:g} s"] = seconds <= goal
            verdict = "met" if seconds <= goal else "NOT met"
        lines.append(f"{label:<70} {seconds * 1e3:>10.1f} ms   target {goal * 1e3:>7.0f} ms   {verdict}")
    return lines, met


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, check harness and agreement only")
    parser.add_argument("--output", type=Path, default=None, help="where to write the results (full run: benchmarks/RESULTS.md)")
    args = parser.parse_args(argv)
    quick = args.quick
    n_patients = 20 if quick else 200
    n_batch = 200 if quick else 10_000
    n_sets = 200 if quick else 10_000
    repeats = 1 if quick else 5

    warnings.simplefilter("ignore", FutureWarning)
    import postfusion_bayes as pfb
    from postfusion_bayes.cpts import build_tables

    model = pfb.load_model()
    causes = model.causes
    patients = sample_patients(model, n_patients, n_findings=8, seed=1)
    dicts = [patient_dict(row) for _, row in patients.iterrows()]
    results: dict[str, float] = {}
    disagreement: dict[str, float] = {}

    # ours, one at a time
    ours = np.array([[model.diagnose(d).posterior[c] for c in causes] for d in dicts])
    # the full public path: validation, inference, red flags and the pandas Series of the posterior
    results["postfusion-bayes model.diagnose, one patient"] = median_time(lambda: [model.diagnose(d).posterior for d in dicts], repeats) / len(dicts)

    # pgmpy
    from pgmpy.inference import VariableElimination

    bn = model.to_pgmpy()
    ve = VariableElimination(bn)
    pg = []
    for d in dicts:
        q = ve.query(causes, evidence=d, joint=False, show_progress=False)
        pg.append([q[c].get_value(**{c: "present"}) for c in causes])
    disagreement["pgmpy VE"] = float(np.max(np.abs(np.array(pg) - ours)))
    subset = dicts[: max(5, len(dicts) // 5)]
    results["pgmpy VariableElimination.query(causes, joint=False)"] = median_time(
        lambda: [ve.query(causes, evidence=d, joint=False, show_progress=False) for d in subset], repeats
    ) / len(subset)

    # pyAgrum, engine reused
    import pyagrum as gum

    gbn = pyagrum_network(model.tables)
    ie = gum.LazyPropagation(gbn)

    def agrum(d):
        ie.eraseAllEvidence()
        ie.setEvidence(d)
        ie.makeInference()
        return [ie.posterior(c)[1] for c in causes]

    ag = np.array([agrum(d) for d in dicts])
    disagreement["pyAgrum LazyPropagation"] = float(np.max(np.abs(ag - ours)))
    results["pyAgrum LazyPropagation, engine reused"] = median_time(lambda: [agrum(d) for d in subset], repeats) / len(subset)

    # ours, batched over patients
    big = sample_patients(model, n_batch, n_findings=8, seed=2)
    batch = model.diagnose_many(big)
    check = [model.diagnose(patient_dict(big.iloc[i])).posterior for i in range(0, n_batch, max(1, n_batch // 20))]
    disagreement["diagnose_many vs diagnose"] = float(max(np.max(np.abs(batch.iloc[i * max(1, n_batch // 20)][causes].to_numpy(dtype=float) - c[causes].to_numpy())) for i, c in enumerate(check)))
    results[f"postfusion-bayes model.diagnose_many, {n_batch:,} patients (per patient)"] = median_time(lambda: model.diagnose_many(big), repeats) / n_batch

    # ours, batched over parameter sets (one patient)
    rng = np.random.default_rng(3)
    params = model.parameters
    probability = params[params["kind"] == "probability"]
    free = probability[~probability["name"].str.startswith(("onset.", "context.time_since_surgery"))]
    values = {row.name_: rng.uniform(row.low, row.high, n_sets) for row in free.rename(columns={"name": "name_"}).itertuples()}
    sets = build_tables(model.spec, values)
    batched = {v: t for v, t in sets.cpts.items() if t.ndim == len(sets.parents[v]) + 2}
    evidence = patients.iloc[[0]]
    lam = model.network.encode(evidence)
    marginals, _ = model.network.posterior_arrays(lam, causes, 1, batched)
    for i in (0, n_sets // 2, n_sets - 1):
        one = pfb.Model(model.spec.with_values({k: float(v[i]) for k, v in values.items()})).diagnose(dicts[0]).posterior
        disagreement["parameter sets vs with_parameters"] = max(
            disagreement.get("parameter sets vs with_parameters", 0.0),
            float(max(abs(marginals[c][i, 0, 1] - one[c]) for c in causes)),
        )
    results[f"postfusion-bayes compiled network, {n_sets:,} parameter sets (per set, inference)"] = median_time(
        lambda: model.network.posterior_arrays(lam, causes, 1, batched, validate=False), repeats
    ) / n_sets
    results[f"postfusion-bayes {n_sets:,} parameter sets, tables checked (per set)"] = median_time(
        lambda: model.network.posterior_arrays(lam, causes, 1, batched), repeats
    ) / n_sets

    def build_and_infer():
        tables = build_tables(model.spec, values)
        sets_only = {v: t for v, t in tables.cpts.items() if t.ndim == len(tables.parents[v]) + 2}
        return model.network.posterior_arrays(lam, causes, 1, sets_only, validate=False)

    results[f"postfusion-bayes {n_sets:,} parameter sets incl. building the tables (per set)"] = median_time(build_and_infer, repeats) / n_sets

    # reasoning on one patient: explain() and next_tests(), fresh diagnosis each time (nothing cached)
    results["postfusion-bayes diagnose + explain(), one patient"] = median_time(lambda: [model.diagnose(d).explain() for d in dicts], repeats) / len(dicts)
    results["postfusion-bayes diagnose + next_tests(), one patient"] = median_time(lambda: [model.diagnose(d).next_tests() for d in dicts], repeats) / len(dicts)
    # the same questions asked of pgmpy: one VE query per finding left out; one joint query per test
    few = dicts[:1] if quick else dicts[:3]

    def pgmpy_explain(d):
        out = {}
        for f in [k for k in d if model.spec.variables[k].role in ("finding", "red_flag")]:
            rest = {k: v for k, v in d.items() if k != f}
            out[f] = ve.query(causes, evidence=rest, joint=False, show_progress=False)
        return out

    def pgmpy_information_gain(d, tests):
        gains = {}
        for t in tests:
            joint = ve.query([*causes, t], evidence=d, joint=True, show_progress=False)
            p = joint.values.reshape(-1, joint.cardinality[joint.variables.index(t)]) if joint.variables[-1] == t else np.moveaxis(joint.values, joint.variables.index(t), -1).reshape(-1, joint.cardinality[joint.variables.index(t)])
            pc, pt = p.sum(axis=1, keepdims=True), p.sum(axis=0, keepdims=True)
            with np.errstate(divide="ignore", invalid="ignore"):
                gains[t] = float(np.where(p > 0, p * np.log2(p / (pc * pt)), 0.0).sum())
        return gains

    for d in few:
        ours_tests = model.diagnose(d).next_tests()
        theirs = pgmpy_information_gain(d, list(ours_tests.index[:5]))
        disagreement["next_tests information gain vs pgmpy joint queries"] = max(
            disagreement.get("next_tests information gain vs pgmpy joint queries", 0.0),
            max(abs(ours_tests.loc[t, "information_gain"] - g) for t, g in theirs.items()),
        )
    results["pgmpy VE, explain (one query per finding left out), one patient"] = median_time(lambda: [pgmpy_explain(d) for d in few], 1) / len(few)
    n_candidates = [len(model.diagnose(d).next_tests()) for d in few]
    results["pgmpy VE, next tests (one joint query per test), one patient"] = median_time(
        lambda: [pgmpy_information_gain(d, list(model.diagnose(d).next_tests().index)) for d in few], 1
    ) / len(few)

    cold, pgmpy_imported = cold_start(1 if quick else 5)
    results["cold start: python -c import, load, diagnose once"] = cold

    # sensitivity analyses on the first sampled patient (all context and 8 findings observed)
    sensitivity_lines, sensitivity_met = sensitivity_section(model, dicts[0], quick)

    # report
    pg_time = results["pgmpy VariableElimination.query(causes, joint=False)"]
    ag_time = results["pyAgrum LazyPropagation, engine reused"]
    one_time = results["postfusion-bayes model.diagnose, one patient"]
    lines = [f"{'measure':<82} {'median':>12}"]
    for name, seconds in results.items():
        shown = f"{seconds * 1e3:.3f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} us"
        lines.append(f"{name:<82} {shown:>12}")
    ratios = {
        "pgmpy VE / model.diagnose (target >= 20)": pg_time / one_time,
        "pyAgrum / model.diagnose (target >= 10)": ag_time / one_time,
        "pgmpy VE / explain()": results["pgmpy VE, explain (one query per finding left out), one patient"] / results["postfusion-bayes diagnose + explain(), one patient"],
        "pgmpy VE / next_tests()": results["pgmpy VE, next tests (one joint query per test), one patient"] / results["postfusion-bayes diagnose + next_tests(), one patient"],
    }
    lines.append("")
    for name, ratio in ratios.items():
        lines.append(f"{name:<82} {ratio:>10.1f}x")
    targets = {
        "model.diagnose >= 20x faster than pgmpy VE": ratios["pgmpy VE / model.diagnose (target >= 20)"] >= 20,
        "model.diagnose >= 10x faster than pyAgrum": ratios["pyAgrum / model.diagnose (target >= 10)"] >= 10,
        "batched patients <= 10 us each": results[f"postfusion-bayes model.diagnose_many, {n_batch:,} patients (per patient)"] <= 10e-6,
        "batched parameter sets <= 30 us each": results[f"postfusion-bayes compiled network, {n_sets:,} parameter sets (per set, inference)"] <= 30e-6,
        "explain() <= 20 ms for one patient": results["postfusion-bayes diagnose + explain(), one patient"] <= 20e-3,
        "next_tests() <= 50 ms for one patient": results["postfusion-bayes diagnose + next_tests(), one patient"] <= 50e-3,
        "cold start <= 1 s": cold <= 1.0,
        "pgmpy not imported on the cold-start path": not pgmpy_imported,
    }
    targets.update(sensitivity_met)
    lines.append("")
    for name, ok in targets.items():
        lines.append(f"{name:<82} {'met' if ok else 'NOT met':>12}")
    lines.append("")
    lines.extend(sensitivity_lines)
    lines.append("")
    for name, value in disagreement.items():
        lines.append(f"max |difference| {name:<65} {value:>12.2e}")
    report = "\n".join(lines)
    print(report)
    ok = all(v <= TOLERANCE for v in disagreement.values()) and not pgmpy_imported
    if not quick or args.output:
        output = args.output or HERE / "RESULTS.md"
        stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
        mode = "quick mode (harness check; timings not meaningful)" if quick else "full run"
        output.write_text(
            f"# Benchmark results\n\n{mode}, {stamp}, on {machine()}.\n\n"
            f"Produced by `python benchmarks/run_benchmarks.py`; {n_patients} sampled patients "
            f"(all context and 8 findings observed), medians of {repeats} repeats.\n\n```\n{report}\n```\n"
        )
    if not ok:
        print("FAILED: engines disagree beyond 1e-9 or pgmpy was imported on the cold-start path", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
