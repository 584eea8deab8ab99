"""The benchmark harness runs in quick mode and the engines agree (timings are not checked here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_quick_mode_runs_and_engines_agree(tmp_path):
    output = tmp_path / "results.md"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_benchmarks.py"), "--quick", "--output", str(output)],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for engine in ("pgmpy VE", "pyAgrum LazyPropagation", "diagnose_many vs diagnose", "parameter sets vs with_parameters"):
        line = next(line for line in run.stdout.splitlines() if line.startswith(f"max |difference| {engine}"))
        assert float(line.split()[-1]) <= 1e-9, line
    text = output.read_text()
    assert "quick mode" in text and "pgmpy VE / model.diagnose" in text
    assert "pgmpy not imported on the cold-start path" in text and "NOT met" not in text.split("pgmpy not imported on the cold-start path")[1].splitlines()[0]
