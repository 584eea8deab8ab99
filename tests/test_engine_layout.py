"""The engine subpackage stands alone, and the old import paths still work with a warning."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import postfusion_bayes

ENGINE = Path(postfusion_bayes.__file__).parent / "engine"
CLINICAL_MODULES = {"spec", "cpts", "evidence", "model", "diagnosis", "reasoning", "sensitivity", "learning", "plotting", "cli"}


def _imported_modules(path: Path) -> set[str]:
    """Every module an engine file imports, as absolute dotted names (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                parts = ["postfusion_bayes", "engine"][: 2 - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("path", sorted(ENGINE.glob("*.py")), ids=lambda p: p.name)
def test_the_engine_imports_nothing_from_the_clinical_modules(path):
    imported = _imported_modules(path)
    ours = {m for m in imported if m.startswith("postfusion_bayes")}
    allowed_prefixes = ("postfusion_bayes.engine", "postfusion_bayes.errors")
    offending = sorted(m for m in ours if not m.startswith(allowed_prefixes) and m != "postfusion_bayes")
    assert not offending, f"{path.name} imports {offending}"
    assert not any(m.split(".")[-1] in CLINICAL_MODULES for m in ours if not m.startswith("postfusion_bayes.engine"))


def test_the_layout_check_sees_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from ..spec import ModelSpec\nfrom ..errors import SpecError\n", encoding="utf-8")
    assert "postfusion_bayes.spec" in _imported_modules(bad)


@pytest.mark.parametrize(
    "old, new, name",
    [
        ("postfusion_bayes.tables", "postfusion_bayes.engine.tables", "NetworkTables"),
        ("postfusion_bayes.network", "postfusion_bayes.engine.files", "read_bif"),
        ("postfusion_bayes._layered", "postfusion_bayes.engine._layered", "LayeredPlan"),
        ("postfusion_bayes._elimination", "postfusion_bayes.engine._elimination", "eliminate"),
        ("postfusion_bayes.simulation", "postfusion_bayes.engine.sampling", "sample_cases"),
    ],
)
def test_old_import_paths_still_work_with_a_deprecation_warning(old, new, name):
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(new), name)


def test_the_engine_package_exports_its_public_names():
    from postfusion_bayes import engine

    for name in engine.__all__:
        assert getattr(engine, name) is not None
    assert postfusion_bayes.compile_network is engine.compile_network
