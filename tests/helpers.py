"""Small networks built through the spec path, a brute-force oracle written from the formulas, and a table comparison.

The oracle does not use :mod:`postfusion_bayes.cpts` or the engine: it walks every joint state
and multiplies the probabilities as the priors README defines them.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from postfusion_bayes.spec import spec_from_documents


def entry(value: float, low: float = 0.0, high: float = 1.0) -> dict:
    return {"value": float(value), "range": [min(low, float(value)), max(high, float(value))], "judgment": "test"}


def random_documents(
    rng: np.random.Generator, n_causes: int, n_findings: int, n_times: int = 3, n_factors: int = 1, onset_states: int = 3, categorical: int = 0
) -> dict:
    """Documents of a random small model (same format as the shipped priors).

    ``categorical`` > 0 adds a categorical risk factor ``approach`` with that
    many states (``a0``, the reference, ``a1``, ...) and odds ratios for some
    of its non-reference states on most causes.
    """
    times = [f"t{i}" for i in range(n_times)]
    tdist = rng.dirichlet(np.ones(n_times))
    tdist[-1] = 1.0 - math.fsum(tdist[:-1])
    context = {"time": {"description": "time window", "states": times, "distribution": {t: entry(round(float(p), 17)) for t, p in zip(times, tdist, strict=True)}}}
    factors = [f"risk{i}" for i in range(n_factors)]
    for f in factors:
        context[f] = {"description": "a risk factor", "prevalence": entry(rng.uniform(0.05, 0.95))}
    approach = [f"a{i}" for i in range(categorical)]
    if categorical:
        adist = rng.dirichlet(np.ones(categorical))
        adist[-1] = 1.0 - math.fsum(adist[:-1])
        context["approach"] = {
            "description": "a categorical risk factor",
            "states": approach,
            "reference": approach[0],
            "distribution": {a: entry(float(p)) for a, p in zip(approach, adist, strict=True)},
        }
    causes = {}
    names = [f"cause{i}" for i in range(n_causes)]
    for c in names:
        ors = {f: entry(rng.uniform(0.2, 5.0), 0.01, 10.0) for f in factors if rng.random() < 0.7}
        if categorical and rng.random() < 0.8:
            by_state = {a: entry(rng.uniform(0.1, 10.0), 0.01, 20.0) for a in approach[1:] if rng.random() < 0.7}
            if by_state:
                ors["approach"] = by_state
        causes[c] = {"description": "a cause", "baseline": {t: entry(rng.uniform(0.02, 0.9)) for t in times}, "odds_ratios": ors}
    findings = {}
    for i in range(n_findings):
        links = {c: entry(rng.uniform(0.0, 1.0)) for c in names if rng.random() < 0.6}
        findings[f"finding{i}"] = {"description": "a finding", "leak": entry(rng.uniform(0.0, 0.5)), "links": links}
    red_flags = {"flag": {"description": "a red flag", "advice": "act now", "leak": entry(0.01), "links": {names[0]: entry(0.3)}}}
    ostates = [f"o{i}" for i in range(onset_states)]

    def dist():
        d = rng.dirichlet(np.ones(onset_states))
        d[-1] = 1.0 - math.fsum(d[:-1])
        return {s: entry(float(p)) for s, p in zip(ostates, d, strict=True)}

    onset = {"variable": "onset", "description": "onset", "states": ostates, "distributions": {"leak": dist(), **{c: dist() for c in names if rng.random() < 0.8}}}
    return {
        "context.yaml": {"context": context},
        "causes.yaml": {"time_variable": "time", "reference_patient": "no risk factors", "causes": causes},
        "findings.yaml": {"findings": findings},
        "red_flags.yaml": {"red_flags": red_flags},
        "onset.yaml": {"onset": onset},
    }


def random_spec(seed: int, **kwargs):
    return spec_from_documents(random_documents(np.random.default_rng(seed), **kwargs))


def brute_force(spec, hard: dict[str, str], soft: dict[str, np.ndarray] | None = None, *, observed_only: bool = False) -> tuple[dict[str, float], float]:
    """P(cause present | evidence) for every cause and P(evidence), by full enumeration of the joint.

    ``observed_only`` leaves the findings without evidence out of the
    enumeration (they sum to 1: barren leaves), so that a network with many
    findings (the shipped one) can be enumerated over its context and causes.
    """
    soft = soft or {}
    v = spec.variables
    value = spec.value
    context = spec.names("context")
    causes = spec.names("cause")
    binary = [n for n in v if v[n].role in ("finding", "red_flag") and n in spec.findings and (not observed_only or n in hard or n in soft)]
    onset = spec.onset.variable if spec.onset and (not observed_only or spec.onset.variable in hard or spec.onset.variable in soft) else None
    names = context + causes + binary + ([onset] if onset else [])
    totals = dict.fromkeys(causes, 0.0)
    pe = 0.0
    for config in itertools.product(*[range(len(v[n].states)) for n in names]):
        state = dict(zip(names, config, strict=True))
        weight = 1.0
        for n in names:
            s = v[n].states[state[n]]
            if n in hard and hard[n] != s:
                weight = 0.0
                break
            if n in soft:
                weight *= soft[n][state[n]]
        if weight == 0.0:
            continue
        for n in context:
            dist = spec.context_priors[n]
            if list(dist) == ["yes"]:
                p = value(dist["yes"])
                weight *= p if state[n] == 1 else 1 - p
            else:
                weight *= value(dist[v[n].states[state[n]]])
        for c in causes:
            prior = spec.cause_priors[c]
            p = value(prior.baseline[v[spec.time_variable].states[state[spec.time_variable]]])
            odds = p / (1 - p)
            for f, by_state in prior.odds_ratios.items():  # a boolean factor's odds ratio is under "yes"; the reference state has none
                s = v[f].states[state[f]]
                if s in by_state:
                    odds *= value(by_state[s])
            q = odds / (1 + odds)
            weight *= q if state[c] == 1 else 1 - q
        for f in binary:
            spec_f = spec.findings[f]
            absent = 1 - value(spec_f.leak)
            for c, name in spec_f.links.items():
                if state[c] == 1:
                    absent *= 1 - value(name)
            weight *= absent if state[f] == 0 else 1 - absent
        if onset:
            present = [c for c in causes if state[c] == 1 and c in spec.onset.distributions]
            s = v[onset].states[state[onset]]
            if present:
                weight *= sum(value(spec.onset.distributions[c][s]) for c in present) / len(present)
            else:
                weight *= value(spec.onset.distributions["leak"][s])
        pe += weight
        for c in causes:
            if state[c] == 1:
                totals[c] += weight
    return {c: t / pe for c, t in totals.items()}, pe


def assert_same_tables(tables, expected):
    """Assert that two networks' tables are equal bit for bit, whatever the order of each table's parents (as a file read back gives them)."""
    assert set(tables.variables) == set(expected.variables)
    for name in expected.variables:
        assert tables.states[name] == expected.states[name], name
        order = [tables.parents[name].index(p) for p in expected.parents[name]] + [len(expected.parents[name])]
        assert sorted(tables.parents[name]) == sorted(expected.parents[name]), name
        # every digit is written, so the tables come back bit for bit
        np.testing.assert_array_equal(np.transpose(tables.cpts[name], order), expected.cpts[name], err_msg=name)
