"""The project frame: the wheel ships the priors and the console script, CI runs the README's command, the demo runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from postfusion_bayes.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^    (python -m pip install .*)$", readme, flags=re.M)
    assert len(commands) == 2, commands
    demo, tests = commands
    assert "python -m postfusion_bayes" in demo
    assert "pytest" in tests
    assert tests in (ROOT / ".ci" / "run").read_text()


def test_installed_wheel_ships_the_priors_and_loads_them(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), "-q"],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = (tmp_path / "dist").glob("postfusion_bayes-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for filename in ("causes.yaml", "context.yaml", "findings.yaml", "red_flags.yaml", "onset.yaml", "README.md"):
        assert f"postfusion_bayes/priors/{filename}" in names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel), "-q"], check=True, capture_output=True)
    code = (
        "import postfusion_bayes as p, postfusion_bayes.spec as s; m = p.load_model(); "
        "print(s.default_priors_path()); print(m.diagnose({'smoker': True}).top)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": ""}, capture_output=True, text=True, check=True)
    priors_dir, top = out.stdout.split()
    assert Path(priors_dir).is_relative_to(site)
    assert top in p_causes()

    # The console script, as pip installed it from the wheel's entry point (the one real run of the command line).
    entry_points = zipfile.ZipFile(wheel).read("postfusion_bayes-0.2.0.dist-info/entry_points.txt").decode()
    assert "postfusion-bayes = postfusion_bayes.cli:run" in entry_points
    script = subprocess.run(
        [str(site / "bin" / "postfusion-bayes"), "diagnose", "--format", "json", "fever=yes", "time_since_surgery=under_6_weeks"],
        cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": ""}, capture_output=True, text=True,
    )  # fmt: skip
    assert script.returncode == 0, script.stderr
    data = json.loads(script.stdout)
    assert list(data)[0] == "red_flags" and data["red_flags"][0]["name"] == "fever"


def p_causes():
    import postfusion_bayes as pfb

    return pfb.load_model().causes


def test_demo_prints_the_report_with_ranked_causes(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Example patient") and "Causes, most probable first" in out
    assert "Findings that mattered most" in out and "Next best tests" in out
    assert "not a medical device" in out
    ranked = [line.split() for line in out.splitlines() if line.startswith("  ") and len(line.split()) > 1 and line.split()[1] in p_causes()]
    assert [r[0] for r in ranked] == [f"{i}." for i in range(1, len(p_causes()) + 1)]


def test_demo_brief_prints_only_the_table(capsys):
    assert main(["demo", "--brief"]) == 0
    out = capsys.readouterr().out
    assert "posterior" in out and "rank" in out and "Next best tests" not in out
    lines = [line for line in out.splitlines() if line.split() and line.split()[0] in p_causes()]
    assert len(lines) == len(p_causes()) and lines[0].split()[-1] == "1"


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_stored_without_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in cells if c["cell_type"] == "code")


def test_the_readme_quick_start_runs():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    quick_start = blocks[0]
    assert "model.diagnose(" in quick_start
    namespace: dict = {}
    exec(compile(quick_start, "README.md quick start", "exec"), namespace)
    assert namespace["dx"].top in namespace["model"].causes


def test_every_command_line_example_in_the_readme_names_a_real_command(capsys):
    from postfusion_bayes.cli import COMMANDS

    readme = (ROOT / "README.md").read_text()
    lines = re.findall(r"^    postfusion-bayes (\S+)(.*)$", readme, flags=re.M)
    assert {name for name, _ in lines} >= {"diagnose", "explain", "next-tests", "batch", "sensitivity", "export", "validate"}
    for name, _ in lines:
        assert name in COMMANDS
    first = [rest.split("#")[0].split() for name, rest in lines if name == "diagnose"][0]
    assert main(["diagnose", *first]) == 0
    assert "Causes, most probable first" in capsys.readouterr().out


def test_the_readme_engine_example_runs_after_the_quick_start():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    engine = next(b for b in blocks if "net.query(" in b)
    namespace: dict = {}
    exec(compile(blocks[0], "README.md quick start", "exec"), namespace)
    exec(compile(engine, "README.md engine example", "exec"), namespace)
    result = namespace["result"]
    assert result.method == "structured enumeration"  # 2^16 cause configurations since the second edition: past plain enumeration
    assert result.joint.posterior.shape == (1, 1, 4)
    assert abs(float(result.joint.posterior.sum()) - 1.0) < 1e-12


# ------------------------------------------------------------------ optional dependencies


def _run_without(missing: list[str], code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter in which importing any of ``missing`` fails as if it were not installed."""
    prelude = f"import sys; sys.modules.update(dict.fromkeys({missing!r}))\n"
    return subprocess.run([sys.executable, "-c", prelude + code, *args], cwd=ROOT, capture_output=True, text=True)


def test_the_readme_demo_needs_neither_salib_nor_matplotlib():
    # `python -m pip install . && python -m postfusion_bayes` installs neither: the demo must not import them
    out = _run_without(["SALib", "matplotlib", "networkx"], "import runpy; runpy.run_module('postfusion_bayes', run_name='__main__')")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Example patient") and "Causes, most probable first" in out.stdout


def test_plotting_without_its_extra_names_the_pip_command():
    code = (
        "import postfusion_bayes as pfb\n"
        "from postfusion_bayes import plotting\n"
        "try:\n"
        "    plotting.{function}\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(exc)\n"
    )
    without_matplotlib = _run_without(["matplotlib"], code.format(function="diagnosis_plot(pfb.load_model().diagnose({}))"))
    assert without_matplotlib.stdout.strip() == 'plotting needs matplotlib: pip install "postfusion-bayes[plot]"', without_matplotlib.stderr
    without_networkx = _run_without(["networkx"], "import matplotlib; matplotlib.use('Agg')\n" + code.format(function="network_plot(pfb.load_model())"))
    assert without_networkx.stdout.strip() == 'network_plot needs networkx: pip install "postfusion-bayes[plot]"', without_networkx.stderr


def test_the_command_line_plot_without_matplotlib_is_a_one_line_usage_error(tmp_path):
    code = "from postfusion_bayes.cli import main; raise SystemExit(main(sys.argv[1:]))"
    out = _run_without(["matplotlib"], code, "sensitivity", "smoker=yes", "--plot", str(tmp_path / "t.png"))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ['postfusion-bayes sensitivity: error: --plot needs matplotlib: pip install "postfusion-bayes[plot]"']
    assert not (tmp_path / "t.png").exists()


def test_sobol_without_salib_names_the_pip_command():
    code = (
        "import postfusion_bayes as pfb\n"
        "from postfusion_bayes import sensitivity\n"
        "try:\n"
        "    sensitivity.sobol(pfb.load_model(), {}, 'nerve_injury', n=4)\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(exc)\n"
    )
    out = _run_without(["SALib"], code)
    assert out.stdout.strip() == 'sensitivity.sobol needs SALib: pip install "postfusion-bayes[sensitivity]"', out.stderr


def test_registry_scale_without_its_extra_names_the_pip_command(tmp_path):
    code = (
        "import pandas as pd, postfusion_bayes as pfb\n"
        "from postfusion_bayes import distributed\n"
        "try:\n"
        "    distributed.diagnose_many(pfb.load_model(), pd.DataFrame({'smoker': [True]}))\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(exc)\n"
    )
    out = _run_without(["dask", "distributed"], code)
    assert out.stdout.strip() == 'postfusion_bayes.distributed needs dask: pip install "postfusion-bayes[dask]"', out.stderr
    source = tmp_path / "patients.csv"
    source.write_text("smoker\nyes\n")
    cli = "from postfusion_bayes.cli import main; raise SystemExit(main(sys.argv[1:]))"
    out = _run_without(["dask", "distributed"], cli, "batch", str(source), "--workers", "2")
    assert out.returncode == 2 and out.stderr.strip() == 'postfusion-bayes batch: error: --scheduler/--workers needs distributed: pip install "postfusion-bayes[dask]"'
    out = _run_without(["pyarrow"], cli, "batch", str(source), "-o", str(tmp_path / "out.parquet"))
    assert out.returncode == 2 and out.stderr.strip() == 'postfusion-bayes batch: error: reading and writing Parquet needs pyarrow: pip install "postfusion-bayes[dask]"'
    assert not (tmp_path / "out.parquet").exists()
