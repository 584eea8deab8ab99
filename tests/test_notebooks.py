"""The notebooks' prose types no number the model computes (the model grows; the code cells compute them).

The notebooks themselves run headless through nbmake (``notebooks/`` is a test path).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
#: a count of the model's parts ("205 parameters", "8 causes") or a probability ("0.91", ".26") typed in prose
TYPED = re.compile(r"\b\d+\s+(?:hand-set\s+)?(?:parameters|numbers|causes|findings|variables|red flags|context variables|test kinds)\b|(?<![\w.])\d*\.\d+\b", re.IGNORECASE)


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_markdown_types_no_count_or_probability_of_the_model(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    prose = ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    assert prose, "a notebook tells its story in markdown between the cells"
    typed = [m.group(0) for text in prose for m in TYPED.finditer(text)]
    assert typed == []


def test_the_pattern_catches_what_the_issue_found():
    assert TYPED.findall("All 205 parameters are evaluated; sensitivity of 0.91 and .26; 8 causes")
    assert not TYPED.findall("Mrs A., 58, had an L4-L5 fusion 14 months ago; version 2")
