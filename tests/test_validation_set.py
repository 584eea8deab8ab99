"""The published-case validation set (``validation/``) loads and keeps to its vocabulary."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

VALIDATION = Path(__file__).resolve().parent.parent / "validation"


def _checker():
    spec = importlib.util.spec_from_file_location("check_cases", VALIDATION / "check_cases.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_published_cases_pass_their_checker():
    assert _checker().check(VALIDATION / "published_cases.yaml") == []


def test_the_checker_catches_a_state_outside_the_vocabulary(tmp_path):
    cases = yaml.safe_load((VALIDATION / "published_cases.yaml").read_text(encoding="utf-8"))
    cases["cases"][0]["workup"]["onset"] = "whenever"
    bad = tmp_path / "cases.yaml"
    bad.write_text(yaml.safe_dump(cases), encoding="utf-8")
    problems = _checker().check(bad)
    assert problems and any("whenever" in p for p in problems)


def test_the_set_has_at_least_30_cases_with_citations_and_some_outside_the_model():
    cases = yaml.safe_load((VALIDATION / "published_cases.yaml").read_text(encoding="utf-8"))["cases"]
    assert len(cases) >= 30
    assert all(case["citation"].strip() and case["url"].startswith("http") for case in cases)
    assert sum(case["outside_model"] for case in cases) >= 5


def test_the_report_is_what_the_model_gives_now():
    """validation/REPORT.md is regenerated whenever the priors or the engine change what a case gets."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, str(VALIDATION / "run_validation.py"), "--check"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_readme_quotes_the_report():
    """The README's validation table gives the numbers of validation/REPORT.md."""
    import re

    report = (VALIDATION / "REPORT.md").read_text(encoding="utf-8")
    readme = (VALIDATION.parent / "README.md").read_text(encoding="utf-8")

    def measure(text: str, start: str) -> str:
        line = next(line for line in text.splitlines() if line.startswith(f"| {start}"))
        return re.findall(r"\d+/\d+", line)[0]

    for report_row, readme_row in [
        ("true cause in the top three, after workup", "true cause in the top three after workup"),
        ("true cause first, after workup", "true cause first after workup"),
        ("confidently wrong", "confidently wrong"),
        ("adequacy check quiet", "adequacy check quiet"),
        ("outside-model cases flagged", "outside-model cases flagged"),
    ]:
        assert measure(report, report_row) == measure(readme, readme_row), report_row
