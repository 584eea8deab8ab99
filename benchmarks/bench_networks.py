"""The benchmark's networks and patients, built from the priors documents alone.

* :func:`network_spec` is the shipped model with ``n_extra`` synthetic causes added at the
  spec level (the same YAML documents as ``priors/``, through ``spec_from_documents``), so the
  result is a valid ``ModelSpec`` for ``pfb.Model``. The extra causes are drawn once from a fixed
  seed and taken in order, so the network with 8 extras is contained in the one with 16.
* :func:`sample_states` draws complete cases from the spec's formulas (no dense table is ever
  built, so it works at 24 causes): every observed row is possible under the model.
* :func:`shape_patient` turns a complete case into an evidence profile (typical, stress, or a
  given number of positive findings).
* :func:`reference_tables` expands the spec into dense tables (for pgmpy and pyAgrum), written
  from the formulas in ``priors/README.md`` without the package's table code; refuse when a table
  would be larger than a limit (:func:`largest_table`).

Nothing here imports the inference engine.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

#: The seed of the synthetic causes (fixed: every run benchmarks the same networks).
NETWORK_SEED = 2024
#: How many synthetic causes are drawn; the networks take the first ``n_extra``.
MAX_EXTRA = 16
#: Findings each synthetic cause is linked to, and the interval its links are drawn from.
LINKS_PER_CAUSE = 6
LINK_RANGE = (0.3, 0.8)


def priors_folder() -> Path:
    """Return the folder of the shipped priors documents."""
    from postfusion_bayes.spec import default_priors_path

    return default_priors_path()


def shipped_documents() -> dict:
    """Read and parse the five priors documents of the shipped model."""
    from postfusion_bayes.spec import PRIOR_FILES

    folder = priors_folder()
    return {name: yaml.safe_load((folder / name).read_text(encoding="utf-8")) for name in PRIOR_FILES}


def _entry(value: float, judgment: str, low: float | None = None, high: float | None = None) -> dict:
    low = value if low is None else min(low, value)
    high = value if high is None else max(high, value)
    return {"value": float(value), "range": [float(low), float(high)], "judgment": judgment}


def _distribution(rng: np.random.Generator, states: list[str], judgment: str) -> dict:
    d = rng.dirichlet(np.full(len(states), 1.5))
    d = np.round(d, 6)
    d[-1] = 1.0 - math.fsum(d[:-1])
    return {s: _entry(float(p), judgment, 0.0, 1.0) for s, p in zip(states, d, strict=True)}


def synthetic_causes(documents: dict, n: int = MAX_EXTRA, seed: int = NETWORK_SEED) -> list[tuple[str, dict, dict[str, dict], dict]]:
    """``n`` synthetic causes: (name, causes.yaml entry, {finding: link entry}, onset distribution)."""
    rng = np.random.default_rng(seed)
    judgment = "synthetic cause for the benchmark"
    times = documents["context.yaml"]["context"][documents["causes.yaml"]["time_variable"]]["states"]
    factors = [k for k, v in documents["context.yaml"]["context"].items() if "prevalence" in v]
    findings = list(documents["findings.yaml"]["findings"])
    onset_states = documents["onset.yaml"]["onset"]["states"]
    out = []
    for i in range(n):
        name = f"synthetic_cause_{i + 1:02d}"
        baseline = {}
        for t in times:
            v = round(float(rng.uniform(0.02, 0.2)), 4)
            baseline[t] = _entry(v, judgment, v / 2, min(1.0, 2 * v))
        factor = str(rng.choice(factors))
        odds_ratio = round(float(rng.uniform(0.5, 3.0)), 3)
        cause = {
            "description": f"Synthetic cause {i + 1} (benchmark only).",
            "baseline": baseline,
            "odds_ratios": {factor: _entry(odds_ratio, judgment, odds_ratio / 2, 2 * odds_ratio)},
        }
        linked = rng.choice(findings, size=LINKS_PER_CAUSE, replace=False)
        links = {str(f): _entry(round(float(rng.uniform(*LINK_RANGE)), 4), judgment, *LINK_RANGE) for f in linked}
        out.append((name, cause, links, _distribution(rng, onset_states, judgment)))
    return out


def network_documents(n_extra: int, seed: int = NETWORK_SEED) -> dict:
    """Return the shipped documents with the first ``n_extra`` synthetic causes added."""
    if not 0 <= n_extra <= MAX_EXTRA:
        raise ValueError(f"n_extra must be in [0, {MAX_EXTRA}]")
    documents = copy.deepcopy(shipped_documents())
    for name, cause, links, onset in synthetic_causes(documents, MAX_EXTRA, seed)[:n_extra]:
        documents["causes.yaml"]["causes"][name] = cause
        for finding, link in links.items():
            documents["findings.yaml"]["findings"][finding].setdefault("links", {})[name] = link
        documents["onset.yaml"]["onset"]["distributions"][name] = onset
    return documents


def network_spec(n_extra: int, seed: int = NETWORK_SEED):
    """Build a validated ``ModelSpec``: the shipped model plus ``n_extra`` synthetic causes."""
    from postfusion_bayes.spec import spec_from_documents

    spec = spec_from_documents(network_documents(n_extra, seed), source=f"<shipped priors + {n_extra} synthetic causes, seed {seed}>")
    return spec


# --------------------------------------------------------------------------- the numbers, as arrays


@dataclass(frozen=True)
class Numbers:
    """The spec's numbers as arrays, in the order of the spec's variables."""

    context: list[str]
    context_states: dict[str, tuple[str, ...]]
    context_prior: dict[str, np.ndarray]  # P(context variable state), each independent
    time_variable: str
    causes: list[str]
    baseline: np.ndarray  # (n_causes, n_times)
    odds_ratios: list[dict[str, dict[str, float]]]  # per cause: factor -> state -> OR (a boolean factor's only state is "yes")
    findings: list[str]  # binary findings and red flags
    roles: dict[str, str]
    leak: np.ndarray  # (n_findings,)
    links: np.ndarray  # (n_findings, n_causes), 0 where not linked
    onset: str | None
    onset_states: tuple[str, ...]
    onset_owner: np.ndarray  # (n_causes,) bool: the cause has an onset distribution
    onset_dist: np.ndarray  # (n_causes, n_onset_states), zeros for non-owners
    onset_leak: np.ndarray  # (n_onset_states,)

    def cause_probability(self, context: dict[str, str]) -> np.ndarray:
        """P(cause present | context), every cause (the odds-ratio formula)."""
        t = self.context_states[self.time_variable].index(context[self.time_variable])
        p = self.baseline[:, t]
        odds = p / (1 - p)
        for i, ors in enumerate(self.odds_ratios):
            for factor, by_state in ors.items():
                if context[factor] in by_state:
                    odds[i] = odds[i] * by_state[context[factor]]
        return odds / (1 + odds)


def numbers(spec) -> Numbers:
    """Gather the spec's numbers as arrays (a :class:`Numbers`), in the order of the spec's variables."""
    value = spec.value
    context = spec.names("context")
    states = {c: spec.variables[c].states for c in context}
    prior = {}
    for c in context:
        dist = spec.context_priors[c]
        if list(dist) == ["yes"]:
            p = value(dist["yes"])
            prior[c] = np.array([1 - p, p])
        else:
            prior[c] = np.array([value(dist[s]) for s in states[c]])
    causes = spec.names("cause")
    times = states[spec.time_variable]
    baseline = np.array([[value(spec.cause_priors[c].baseline[t]) for t in times] for c in causes])
    ors = [{f: {s: value(n) for s, n in by_state.items()} for f, by_state in spec.cause_priors[c].odds_ratios.items()} for c in causes]
    findings = [n for n in spec.findings]
    leak = np.array([value(spec.findings[f].leak) for f in findings])
    links = np.zeros((len(findings), len(causes)))
    for i, f in enumerate(findings):
        for c, n in spec.findings[f].links.items():
            links[i, causes.index(c)] = value(n)
    roles = {f: spec.variables[f].role for f in findings}
    if spec.onset is not None:
        onset = spec.onset.variable
        ostates = spec.variables[onset].states
        owner = np.array([c in spec.onset.distributions for c in causes])
        dist = np.array([[value(spec.onset.distributions[c][s]) for s in ostates] if c in spec.onset.distributions else [0.0] * len(ostates) for c in causes])
        oleak = np.array([value(spec.onset.distributions["leak"][s]) for s in ostates])
    else:
        onset, ostates, owner, dist, oleak = None, (), np.zeros(len(causes), bool), np.zeros((len(causes), 0)), np.zeros(0)
    return Numbers(context, states, prior, spec.time_variable, causes, baseline, ors, findings, roles, leak, links, onset, ostates, owner, dist, oleak)


# --------------------------------------------------------------------------- sampling and profiles


def sample_states(num: Numbers, n: int, rng: np.random.Generator) -> list[dict]:
    """``n`` complete cases (context, causes as 0/1, findings, onset) drawn from the model's formulas."""
    out = []
    for _ in range(n):
        ctx = {c: num.context_states[c][rng.choice(len(num.context_states[c]), p=num.context_prior[c])] for c in num.context}
        present = rng.random(len(num.causes)) < num.cause_probability(ctx)
        absent = (1 - num.leak) * np.prod(np.where(present[None, :], 1 - num.links, 1.0), axis=1)
        positive = rng.random(len(num.findings)) >= absent
        case = {"context": ctx, "causes": present, "findings": dict(zip(num.findings, positive, strict=True))}
        if num.onset is not None:
            owners = np.flatnonzero(present & num.onset_owner)
            dist = num.onset_dist[owners].mean(axis=0) if owners.size else num.onset_leak
            case["onset"] = num.onset_states[rng.choice(len(num.onset_states), p=dist / dist.sum())]
        out.append(case)
    return out


#: The evidence profiles: all context and onset observed, then findings.
PROFILES = {
    "typical": "all context and onset observed; 8-12 findings observed, 3-6 of them positive",
    "stress": "all context and onset observed; 12 positive findings, one of them soft (likelihood yes:no = 0.8:0.2)",
}

#: Soft evidence of the stress profile's soft finding (P(report | state) up to a constant).
SOFT_LIKELIHOOD = {"no": 0.2, "yes": 0.8}


@dataclass(frozen=True)
class Patient:
    """One patient: evidence as ``model.diagnose`` takes it, and split into hard and soft."""

    evidence: dict  # variable -> state name, or {state: likelihood} for the soft one
    hard: dict[str, str]
    soft: dict[str, dict[str, float]]
    n_positive: int


def _positive_findings(case: dict, num: Numbers) -> list[str]:
    return [f for f, v in case["findings"].items() if v and num.roles[f] == "finding"]


def shape_patient(case: dict, num: Numbers, rng: np.random.Generator, n_positive: int, n_negative: int, n_soft: int = 0) -> Patient | None:
    """Observe all context and onset, ``n_positive`` positive and ``n_negative`` negative findings.

    The findings are chosen among the sampled ones, so the row stays possible; the first ``n_soft``
    positive ones are observed as soft evidence. Return ``None`` when the case has too few of either.
    """
    positives = _positive_findings(case, num)
    negatives = [f for f, v in case["findings"].items() if not v]
    if len(positives) < n_positive or len(negatives) < n_negative:
        return None
    hard = dict(case["context"])
    if num.onset is not None:
        hard[num.onset] = case["onset"]
    chosen_pos = [str(f) for f in rng.choice(positives, size=n_positive, replace=False)]
    chosen_neg = [str(f) for f in rng.choice(negatives, size=n_negative, replace=False)] if n_negative else []
    soft = {f: dict(SOFT_LIKELIHOOD) for f in chosen_pos[:n_soft]}
    for f in chosen_pos[n_soft:]:
        hard[f] = "yes"
    for f in chosen_neg:
        hard[f] = "no"
    evidence = dict(hard)
    evidence.update({f: dict(v) for f, v in soft.items()})
    return Patient(evidence, hard, soft, n_positive)


def patients(spec, profile: str, n: int, seed: int, *, n_positive: int | None = None, max_draws: int = 2_000_000) -> list[Patient]:
    """Sample ``n`` patients of one profile, each from a case sampled from the spec.

    Cases are rejected on their number of positive (and negative) findings, and drawn in blocks
    until enough fit.

    ``profile`` is "typical", "stress" or "positives" (``n_positive`` positive findings and 4
    negative ones, for the growth series).
    """
    num = numbers(spec)
    rng = np.random.default_rng(seed)
    out: list[Patient] = []
    drawn = 0
    while len(out) < n:
        if drawn >= max_draws:
            raise RuntimeError(f"only {len(out)} of {n} {profile} patients in {drawn} sampled cases")
        block = sample_states(num, 500, rng)
        drawn += len(block)
        for case in block:
            if profile == "typical":
                n_obs = int(rng.integers(8, 13))
                n_pos = int(rng.integers(3, 7))
                p = shape_patient(case, num, rng, n_pos, n_obs - n_pos)
            elif profile == "stress":
                p = shape_patient(case, num, rng, 12, 0, n_soft=1)
            elif profile == "positives":
                p = shape_patient(case, num, rng, int(n_positive), 4)
            else:
                raise ValueError(f"unknown profile {profile!r}")
            if p is not None:
                out.append(p)
                if len(out) == n:
                    break
    return out


# --------------------------------------------------------------------------- dense tables for pgmpy and pyAgrum


def largest_table(spec) -> int:
    """Entries of the largest table the dense network would have (the onset table at many causes)."""
    num = numbers(spec)
    sizes = [2 ** int((num.links[i] > 0).sum()) * 2 for i in range(len(num.findings))]
    sizes.append(len(num.context_states[num.time_variable]) * max((math.prod(len(num.context_states[f]) for f in o) for o in num.odds_ratios), default=1) * 2)
    if num.onset is not None:
        sizes.append(2 ** int(num.onset_owner.sum()) * len(num.onset_states))
    return max(sizes)


def reference_tables(spec) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]], dict[str, np.ndarray]]:
    """(states, parents, tables) with tables shaped ``(*parent cards, own card)``, from the formulas."""
    num = numbers(spec)
    states: dict[str, tuple[str, ...]] = {}
    parents: dict[str, tuple[str, ...]] = {}
    cpts: dict[str, np.ndarray] = {}
    for c in num.context:
        states[c], parents[c], cpts[c] = tuple(num.context_states[c]), (), num.context_prior[c].copy()
    times = num.context_states[num.time_variable]
    for i, c in enumerate(num.causes):
        factors = list(num.odds_ratios[i])
        parents[c] = (num.time_variable, *factors)
        states[c] = ("absent", "present")
        table = np.empty((len(times),) + tuple(len(num.context_states[f]) for f in factors) + (2,))
        for idx in np.ndindex(*table.shape[:-1]):
            p = num.baseline[i, idx[0]]
            chosen = [num.context_states[f][k] for f, k in zip(factors, idx[1:], strict=True)]
            odds = p / (1 - p) * math.prod(num.odds_ratios[i][f].get(state, 1.0) for f, state in zip(factors, chosen, strict=True))
            q = odds / (1 + odds)
            table[idx] = (1 - q, q)
        cpts[c] = table
    for k, f in enumerate(num.findings):
        linked = np.flatnonzero(num.links[k] > 0)
        parents[f] = tuple(num.causes[j] for j in linked)
        states[f] = ("no", "yes")
        bits = _bits(len(linked))
        absent = (1 - num.leak[k]) * np.prod(np.where(bits == 1, 1 - num.links[k, linked][None, :], 1.0), axis=1)
        cpts[f] = np.stack([absent, 1 - absent], axis=-1).reshape((2,) * len(linked) + (2,))
    if num.onset is not None:
        owners = np.flatnonzero(num.onset_owner)
        parents[num.onset] = tuple(num.causes[j] for j in owners)
        states[num.onset] = tuple(num.onset_states)
        bits = _bits(len(owners))
        count = bits.sum(axis=1, keepdims=True)
        mixed = (bits @ num.onset_dist[owners]) / np.maximum(count, 1)
        mixed[count[:, 0] == 0] = num.onset_leak
        cpts[num.onset] = mixed.reshape((2,) * len(owners) + (len(num.onset_states),))
    return states, parents, cpts


def _bits(k: int) -> np.ndarray:
    """All 2^k configurations of k binary variables, the last varying fastest (C order)."""
    if k == 0:
        return np.zeros((1, 0), dtype=np.int8)
    return ((np.arange(2**k)[:, None] >> np.arange(k - 1, -1, -1)[None, :]) & 1).astype(np.int8)
