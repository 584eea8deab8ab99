"""The shipped priors with synthetic extra causes (a valid priors folder), for tests of models past 2^k enumeration.

Each extra cause has a baseline per time window, an odds ratio for smoking, links to six findings
drawn in [0.3, 0.8] and an onset distribution; every number is marked as a test judgment. The
clinical content is not meant: these networks exist to exercise the engine at the sizes the
second-edition model reaches (16 causes) and beyond.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import numpy as np
import yaml

from postfusion_bayes.spec import default_priors_path, spec_from_documents


@functools.cache
def _shipped() -> dict:
    folder = Path(default_priors_path())
    return {p.name: yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.yaml"))}


def _entry(value: float, low: float, high: float) -> dict:
    return {"value": round(float(value), 6), "range": [round(float(low), 6), round(float(high), 6)], "judgment": "synthetic test cause"}


def extended_documents(n_extra: int, seed: int = 0) -> dict:
    """Return the shipped priors documents plus ``n_extra`` synthetic causes."""
    docs = copy.deepcopy(_shipped())
    rng = np.random.default_rng(seed)
    windows = docs["context.yaml"]["context"][docs["causes.yaml"]["time_variable"]]["states"]
    findings = list(docs["findings.yaml"]["findings"])
    onset = docs["onset.yaml"]["onset"]
    for k in range(n_extra):
        name = f"extra_cause_{k}"
        docs["causes.yaml"]["causes"][name] = {
            "description": "a synthetic cause for engine tests",
            "baseline": {w: _entry(p, p / 2, min(1.0, 2 * p)) for w, p in zip(windows, rng.uniform(0.01, 0.1, size=len(windows)), strict=True)},
            "odds_ratios": {"smoker": _entry(1.5, 1.0, 3.0)},
        }
        for f in rng.choice(findings, size=6, replace=False):
            link = rng.uniform(0.3, 0.8)
            docs["findings.yaml"]["findings"][str(f)]["links"][name] = _entry(link, 0.2, 0.9)
        dist = rng.dirichlet(np.ones(len(onset["states"])))
        dist = np.round(dist, 6)
        dist[-1] = round(1.0 - float(dist[:-1].sum()), 6)
        onset["distributions"][name] = {s: _entry(p, 0.0, 1.0) for s, p in zip(onset["states"], dist, strict=True)}
    return docs


def extended_spec(n_extra: int, seed: int = 0):
    return spec_from_documents(extended_documents(n_extra, seed), source=f"<shipped priors + {n_extra} synthetic causes>")


def write_priors(folder: Path, n_extra: int, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in extended_documents(n_extra, seed).items():
        (folder / name).write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    readme = Path(default_priors_path()) / "README.md"
    if readme.exists():
        (folder / "README.md").write_text(readme.read_text(encoding="utf-8"), encoding="utf-8")
    return folder


def trimmed_documents(keep: int) -> dict:
    """Return the shipped priors documents with only their first ``keep`` causes (links and onset of the others removed).

    A smaller valid network of the same kinds of tables, for checks whose oracle (pgmpy's exact
    inference, enumeration over every set of causes) grows as 2**causes.
    """
    docs = copy.deepcopy(_shipped())
    causes = docs["causes.yaml"]["causes"]
    dropped = list(causes)[keep:]
    for name in dropped:
        del causes[name]
    for file, section in (("findings.yaml", "findings"), ("red_flags.yaml", "red_flags")):
        for entry in docs[file][section].values():
            for name in dropped:
                entry.get("links", {}).pop(name, None)
    for name in dropped:
        docs["onset.yaml"]["onset"]["distributions"].pop(name, None)
    return docs


def write_trimmed_priors(folder: Path, keep: int) -> Path:
    """Write :func:`trimmed_documents` as a priors folder (for the command line's ``--priors``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in trimmed_documents(keep).items():
        (folder / name).write_text(yaml.safe_dump(content, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return folder


def trimmed_spec(keep: int):
    """Return the spec of :func:`trimmed_documents`."""
    return spec_from_documents(trimmed_documents(keep), source=f"<shipped priors, first {keep} causes>")
