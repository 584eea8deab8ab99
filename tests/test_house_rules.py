"""House rules kept by configuration: ruff and mypy pass, and pyproject.toml declares every dependency where it is used."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from postfusion_bayes._optional import EXTRAS

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: Modules of this repository imported by plain name (the package, the tests' helpers in tests/, the figure script,
#: and the benchmark's modules in benchmarks/, which tests/test_benchmarks.py imports).
LOCAL_MODULES = {
    "postfusion_bayes",
    "conftest",
    "helpers",
    "oracles",
    "vignettes",
    "large_models",
    "make_figures",
    "bench_networks",
    "bench_oracle",
    "bench_engines",
    "bench_report",
    "bench_registry",
    "run_benchmarks",
}


def _check(command: list[str]) -> None:
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if run.returncode != 0:
        pytest.fail(f"`{' '.join(command[2:])}` failed (exit {run.returncode}):\n{run.stdout}{run.stderr}", pytrace=False)


def test_ruff_passes():
    _check([sys.executable, "-m", "ruff", "check", "--no-cache", "."])


def test_mypy_passes():
    _check([sys.executable, "-m", "mypy"])  # its cache, .mypy_cache, makes later runs take a second


# ------------------------------------------------------------------ dependencies


def _name(requirement: str) -> str:
    """Return the normalised distribution name of a requirement such as ``"pgmpy>=1.1,<2"``."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return _normalise(match.group())


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(*groups: str) -> set[str]:
    """Return the distributions of the core dependencies (``"core"``) and of the named extras."""
    project = PYPROJECT["project"]
    requirements = [r for g in groups for r in (project["dependencies"] if g == "core" else project["optional-dependencies"][g])]
    return {_name(r) for r in requirements}


def _imported_modules(source: str) -> set[str]:
    """Return the top-level modules a piece of code imports, or names in ``require("...")`` calls."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.partition(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require" and isinstance(node.args[0], ast.Constant):
            found.add(str(node.args[0].value).partition(".")[0])
    return found


def _third_party(paths: list[Path]) -> dict[str, set[str]]:
    """Map each distribution that the files import (outside the standard library and this repository) to the files."""
    owners = metadata.packages_distributions()
    out: dict[str, set[str]] = {}
    for path in paths:
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        else:
            source = path.read_text(encoding="utf-8")
        for module in _imported_modules(source) - set(sys.stdlib_module_names) - LOCAL_MODULES:
            assert module in owners, f"{path.name} imports {module!r}, which no installed distribution provides"
            for distribution in owners[module]:
                out.setdefault(_normalise(distribution), set()).add(path.name)
    return out


def test_the_package_imports_only_what_it_declares():
    package = sorted((ROOT / "postfusion_bayes").rglob("*.py"))
    undeclared = {d: files for d, files in _third_party(package).items() if d not in _declared("core", "plot", "sensitivity", "dask")}
    assert not undeclared, f"imported by the package but declared nowhere in pyproject.toml: {undeclared}"


def test_optional_dependencies_stay_out_of_the_core_install():
    # `pip install .` must not pull matplotlib (the plot extra) or SALib (the sensitivity extra)
    assert not _declared("core") & {"matplotlib", "salib", "networkx"}
    for top, (distribution, extra) in EXTRAS.items():
        assert _normalise(distribution) in _declared(extra), f"{top}: {distribution} is not in the {extra!r} extra"
    package = sorted((ROOT / "postfusion_bayes").rglob("*.py"))
    for path in package:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                optional = [n for n in names if n.partition(".")[0] in EXTRAS]
                assert not optional, f"{path.name}:{node.lineno} imports {optional} directly; use _optional.require, which names the extra"


def test_the_test_extra_holds_what_the_suite_imports():
    suite = sorted([*(ROOT / "tests").glob("*.py"), ROOT / "conftest.py", *(ROOT / "docs").glob("*.py"), *(ROOT / "notebooks").glob("*.ipynb")])
    missing = {d: files for d, files in _third_party(suite).items() if d not in _declared("core", "test")}
    assert not missing, f"imported by the tests but not in the core dependencies or the test extra: {missing}"
    # what the suite runs rather than imports: the notebook and house-rule runners and the stubs mypy reads
    assert {"nbmake", "ipykernel", "ruff", "mypy", "pandas-stubs", "types-pyyaml", "types-tqdm"} <= _declared("test")
    # the test extra installs the feature extras, so their tests never skip
    assert _declared("plot", "sensitivity", "dask") <= _declared("test")


# ------------------------------------------------------------------ errors


def test_the_package_raises_no_bare_builtin_errors():
    # every error on bad input is a PostfusionError subclass (postfusion_bayes/errors.py), still a ValueError
    bare = []
    for path in sorted((ROOT / "postfusion_bayes").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and getattr(node.exc.func, "id", None) in {"ValueError", "TypeError", "KeyError", "IndexError"}:
                bare.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bare, f"raise a postfusion_bayes.errors class instead: {bare}"


def test_every_error_class_is_exported_and_catchable_as_value_error():
    import postfusion_bayes as pfb
    from postfusion_bayes import errors

    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, pfb.PostfusionError) and obj is not pfb.PostfusionError:
            assert issubclass(obj, ValueError), name
            assert getattr(pfb, name) is obj, f"{name} is not exported by postfusion_bayes"
    assert issubclass(pfb.ArgumentTypeError, TypeError)
