"""Learning from confirmed cases: recovery, conjugate answers by hand, errors, immutability, properties."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from helpers import random_documents
from hypothesis import given, settings
from hypothesis import strategies as st
from large_models import trimmed_spec
from oracles import forward_sample
from scipy import stats

import postfusion_bayes as pfb
from postfusion_bayes import learning
from postfusion_bayes.ranges import range_distribution
from postfusion_bayes.spec import spec_from_documents

#: The shipped priors cut to the first edition's eight causes (``large_models.trimmed_spec``): the EM recovery
#: tests simulate thousands of cases and iterate; on the 16-cause model they ran past CI's budget. The
#: shipped 16-cause model learns in test_sixteen_causes_learn_without_the_joint_of_the_causes, and the
#: E-step's factorised path is checked against the full joint in tests/test_expected.py.
MODEL = pfb.Model(trimmed_spec(8))

#: Parameters moved away from the priors (inside their domains) to make the "true" clinic.
MOVED = {
    "context.smoker.prevalence": 0.32,
    "causes.nerve_injury.baseline.under_6_weeks": 0.50,
    "causes.nerve_injury.odds_ratios.multilevel_fusion": 2.5,
    "findings.radicular_pain.leak": 0.30,
    "findings.radicular_pain.links.nerve_injury": 0.60,
    # the two moved states keep their sum (0.25 + 0.30 in the priors), so the distribution still sums to 1
    "onset.distributions.leak.immediate": 0.40,
    "onset.distributions.leak.gradual_after_relief": 0.15,
}
TRUE = MODEL.with_parameters(MOVED)


def beta_strength(p) -> float:
    """Return the documented rule's strength: a + b of the Beta whose 5% and 95% quantiles are the range's ends (checked with scipy)."""
    family, a, b = range_distribution(p)
    assert family == "beta"
    assert stats.beta.ppf([0.05, 0.95], a, b) == pytest.approx([max(p.low, 1e-4), min(p.high, 1 - 1e-4)], abs=1e-9)
    return a + b


def errors(model) -> dict[str, float]:
    """Absolute error of each moved parameter (odds ratios on the log scale)."""
    out = {}
    for name, true in MOVED.items():
        learned = model.spec.value(name)
        out[name] = abs(math.log(learned / true)) if model.spec.parameters[name].kind == "odds_ratio" else abs(learned - true)
    return out


def hide(frame: pd.DataFrame, columns, fraction: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = frame.copy()
    for c in columns:
        out.loc[rng.random(len(out)) < fraction, c] = None
    return out


# ------------------------------------------------------------------ (a) recovery


@pytest.fixture(scope="module")
def fits():
    """Fits on 200 and 5000 complete simulated cases, and on 5000 with 40% of the causes and 10% of the context unrecorded."""
    small = MODEL.update_with_cases(TRUE.simulate(200, seed=11))
    cases = TRUE.simulate(5000, seed=12)
    large = MODEL.update_with_cases(cases)
    partial = hide(hide(cases, MODEL.causes, 0.4, seed=13), ["smoker", "multilevel_fusion", "onset"], 0.1, seed=14)
    em = MODEL.update_with_cases(partial)
    return small, large, em


def test_recovery_error_shrinks_with_the_number_of_cases_and_is_small_at_5000(fits):
    small, large, em = fits
    before, e_small, e_large = errors(MODEL), errors(small), errors(large)
    assert sum(e_large.values()) < 0.5 * sum(e_small.values()) < sum(before.values())
    for name in MOVED:
        assert e_large[name] < before[name] / 3, (name, e_large[name], before[name])
        limit = 0.15 if MODEL.spec.parameters[name].kind == "odds_ratio" else 0.03
        assert e_large[name] < limit, (name, e_large[name])


def test_recovery_with_causes_partly_unrecorded_runs_em_to_convergence(fits):
    _, large, em = fits
    report = em.learning_report
    assert report.converged and 2 < report.iterations < report.max_iterations
    assert np.all(np.diff(report.log_posterior) >= -1e-6 * abs(report.log_posterior[0]))  # EM never goes down
    before = errors(MODEL)
    for name, error in errors(em).items():
        limit = 0.15 if MODEL.spec.parameters[name].kind == "odds_ratio" else 0.05
        assert error < min(limit, before[name] / 2), (name, error)
    # complete data: only the noisy-OR's and the onset mixture's hidden "which cause fired" indicators are missing
    assert large.learning_report.converged and large.learning_report.iterations < 40


def test_parameters_table_reports_cases_strength_and_the_hand_set_value(fits):
    _, large, em = fits
    table = em.parameters.set_index("name")
    hand = MODEL.parameters.set_index("name")
    assert list(em.parameters.columns[-3:]) == ["hand_set_value", "cases", "strength"]
    pd.testing.assert_series_equal(table["hand_set_value"], hand["value"], check_names=False)
    pd.testing.assert_frame_equal(table[["low", "high", "source", "judgment", "note"]], hand[["low", "high", "source", "judgment", "note"]])
    assert (hand["cases"] == 0).all()
    assert table.loc["context.smoker.prevalence", "cases"] == 5000  # every case: smoker or a descendant recorded
    # a link counts the cases with the cause present: whole numbers when causes are recorded, fractional under EM
    complete = large.parameters.set_index("name").loc["findings.radicular_pain.links.nerve_injury", "cases"]
    assert complete == int(complete) and 0 < complete < 5000
    assert table.loc["findings.radicular_pain.links.nerve_injury", "cases"] != int(table.loc["findings.radicular_pain.links.nerve_injury", "cases"])
    assert np.isfinite(table[["value", "cases", "strength"]].to_numpy(dtype=float)).all()


def test_diagnosis_moves_towards_the_truth(fits):
    _, large, _ = fits
    patient = {"time_since_surgery": "under_6_weeks", "multilevel_fusion": True, "radicular_pain": True}
    truth = TRUE.diagnose(patient).posterior["nerve_injury"]
    before = MODEL.diagnose(patient).posterior["nerve_injury"]
    after = large.diagnose(patient).posterior["nerve_injury"]
    assert abs(after - truth) < abs(before - truth) / 3


# ------------------------------------------------------------------ (b) zero cases, strength 0


def test_an_empty_table_returns_an_equal_model():
    learned = MODEL.update_with_cases(pd.DataFrame(columns=["smoker", "nerve_injury"]))
    assert learned is not MODEL and learned.spec == MODEL.spec
    pd.testing.assert_frame_equal(learned.parameters, MODEL.parameters)
    assert learned.learning_report.iterations == 0


def test_cases_with_nothing_recorded_change_nothing():
    learned = MODEL.update_with_cases(pd.DataFrame({"smoker": [None] * 5, "radicular_pain": [np.nan] * 5}))
    table = learned.parameters
    assert (table["cases"] == 0).all()
    np.testing.assert_array_equal(table["value"].to_numpy(), MODEL.parameters["value"].to_numpy())


def test_strength_zero_gives_the_observed_frequencies():
    cases = pd.DataFrame({"smoker": [True, False, False, True, False], "time_since_surgery": ["under_6_weeks"] * 4 + ["over_2_years"]})
    learned = MODEL.update_with_cases(cases, strength=0)
    assert learned.spec.value("context.smoker.prevalence") == pytest.approx(0.4, abs=1e-15)
    assert learned.spec.value("context.time_since_surgery.distribution.under_6_weeks") == pytest.approx(0.8, abs=1e-15)
    assert learned.spec.value("context.time_since_surgery.distribution.6_to_24_months") == 0.0
    # a parameter no case bears on keeps its value even without a prior
    assert learned.spec.value("findings.radicular_pain.leak") == MODEL.spec.value("findings.radicular_pain.leak")


# ------------------------------------------------------------------ (c) conjugate answers worked out by hand


def test_context_distribution_fully_observed_is_the_dirichlet_posterior():
    states = ["under_6_weeks", "6_weeks_to_6_months", "6_to_24_months", "over_2_years"]
    counts = [7, 3, 0, 10]
    cases = pd.DataFrame({"time_since_surgery": [s for s, n in zip(states, counts, strict=True) for _ in range(n)]})
    learned = MODEL.update_with_cases(cases)
    names = [f"context.time_since_surgery.distribution.{s}" for s in states]
    params = [MODEL.spec.parameters[n] for n in names]
    strength = min(beta_strength(p) for p in params)  # one Dirichlet: the loosest entry's strength
    for p, n in zip(params, counts, strict=True):
        expected = (strength * p.value + n) / (strength + sum(counts))
        assert learned.spec.value(p.name) == pytest.approx(expected, rel=1e-12)
        assert learned.spec.parameters[p.name].cases == 20
        assert learned.spec.parameters[p.name].strength == pytest.approx(strength)
    assert math.fsum(learned.spec.value(n) for n in names) == pytest.approx(1.0, abs=1e-12)


def test_noisy_or_leak_with_every_cause_recorded_absent_is_the_beta_posterior():
    cases = pd.DataFrame({"back_pain": [True] * 6 + [False] * 14})
    for name in ("smoker", "diabetes", "osteoporosis", "multilevel_fusion", "fusion_to_sacrum"):
        cases[name] = False  # complete context too: no EM needed
    cases["time_since_surgery"] = "6_to_24_months"
    for cause in MODEL.causes:
        cases[cause] = "absent"
    learned = MODEL.update_with_cases(cases)
    p = MODEL.spec.parameters["findings.back_pain.leak"]
    s = beta_strength(p)
    assert learned.spec.value(p.name) == pytest.approx((s * p.value + 6) / (s + 20), rel=1e-12)
    assert learned.spec.parameters[p.name].cases == 20
    # links: no case had their cause present, so they keep their value and count no case
    link = "findings.back_pain.links.pseudarthrosis"
    assert learned.spec.value(link) == MODEL.spec.value(link) and learned.spec.parameters[link].cases == 0
    # an explicit strength replaces the range's
    explicit = MODEL.update_with_cases(cases, strength={"findings.back_pain.leak": 10})
    assert explicit.spec.value(p.name) == pytest.approx((10 * p.value + 6) / 30, rel=1e-12)


def test_baseline_of_a_cause_without_odds_ratios_is_the_beta_posterior():
    cases = pd.DataFrame({"time_since_surgery": ["6_to_24_months"] * 12, "epidural_fibrosis": [True] * 3 + [False] * 9})
    learned = MODEL.update_with_cases(cases)
    p = MODEL.spec.parameters["causes.epidural_fibrosis.baseline.6_to_24_months"]
    s = beta_strength(p)
    assert learned.spec.value(p.name) == pytest.approx((s * p.value + 3) / (s + 12), rel=1e-12)
    other = "causes.epidural_fibrosis.baseline.over_2_years"
    assert learned.spec.value(other) == MODEL.spec.value(other)


def test_updating_twice_equals_updating_once_with_all_the_cases():
    rng = np.random.default_rng(5)
    cases = pd.DataFrame({"smoker": rng.random(60) < 0.4, "time_since_surgery": rng.choice(["under_6_weeks", "over_2_years"], 60)})
    once = MODEL.update_with_cases(cases)
    twice = MODEL.update_with_cases(cases.iloc[:25]).update_with_cases(cases.iloc[25:])
    for name in ("context.smoker.prevalence", "context.time_since_surgery.distribution.over_2_years"):
        assert twice.spec.value(name) == pytest.approx(once.spec.value(name), rel=1e-12)
        assert twice.spec.parameters[name].hand_set_value == MODEL.spec.value(name)


def test_default_strengths_follow_the_ranges():
    strengths = learning.prior_strengths(MODEL.spec)
    p = MODEL.spec.parameters["context.smoker.prevalence"]
    assert strengths[p.name] == pytest.approx(beta_strength(p))
    pd.testing.assert_series_equal(MODEL.parameters.set_index("name")["strength"], strengths, check_names=False)
    assert (strengths > 0).all() and np.isfinite(strengths).all()


def test_one_strength_rule_for_the_update_and_the_parameters_table():
    # the EM and Model.parameters read the rule from its one home, postfusion_bayes._strengths (which imports no scipy)
    from postfusion_bayes import _strengths

    assert learning.prior_strengths is _strengths.prior_strengths
    learned = MODEL.update_with_cases(TRUE.simulate(40, seed=5))
    # a next update starts a learned spec from its recorded strength plus its cases; the table shows the recorded strength
    recorded = pd.Series({n: p.strength + p.cases for n, p in learned.spec.parameters.items()})
    np.testing.assert_array_equal(learning.prior_strengths(learned.spec).to_numpy(), recorded.to_numpy())
    np.testing.assert_array_equal(learned.parameters["strength"].to_numpy(), [p.strength for p in learned.spec.parameters.values()])


# ------------------------------------------------------------------ (d) bad input


def test_bad_tables_raise_evidence_errors_naming_what_is_wrong():
    with pytest.raises(pfb.EvidenceError, match=r"unknown variable 'radicular_pian' in the columns \(did you mean 'radicular_pain'\?\)"):
        MODEL.update_with_cases(pd.DataFrame({"radicular_pian": [True]}))
    with pytest.raises(pfb.EvidenceError, match=r"'nerve_injury': got 'maybe'.*rows \['b'\]"):
        MODEL.update_with_cases(pd.DataFrame({"nerve_injury": [True, "maybe"]}, index=["a", "b"]))
    with pytest.raises(pfb.EvidenceError, match="DataFrame"):
        MODEL.update_with_cases({"smoker": [True]})
    with pytest.raises(pfb.EvidenceError, match="soft evidence"):
        MODEL.update_with_cases(pd.DataFrame({"smoker": [{"yes": 0.5, "no": 0.5}]}))
    spec = MODEL.spec.with_values({"findings.ct_screw_breach.leak": 0.0, "findings.ct_screw_breach.links.nerve_injury": 0.0})
    impossible = pd.DataFrame({"ct_screw_breach": [False, True, True], "smoker": [True, None, False]}, index=["fine", "broken", "also"])
    with pytest.raises(pfb.EvidenceError, match=r"impossible under the model \(probability 0\) in rows \['broken', 'also'\]"):
        pfb.Model(spec).update_with_cases(impossible)


@pytest.mark.parametrize(
    ("strength", "message"),
    [
        ({"findings.radicular_pain.leek": 5}, r"'findings.radicular_pain.leek' does not exist \(did you mean 'findings.radicular_pain.leak'\?\)"),
        (-1, "finite number >= 0"),
        (math.inf, "finite number >= 0"),
        (math.nan, "finite number >= 0"),
        (True, r"strength must be a finite number >= 0, got True \(a bool\)"),
        ("strong", r"strength must be a finite number >= 0, got 'strong' \(a str\)"),
        ({"context.smoker.prevalence": -2}, "strength of 'context.smoker.prevalence'"),
        ({"onset.distributions.leak.immediate": 5, "onset.distributions.leak.sudden_after_relief": 6}, "share one Dirichlet strength"),
    ],
)
def test_bad_strengths_raise_spec_errors(strength, message):
    with pytest.raises(pfb.SpecError, match=message):
        MODEL.update_with_cases(pd.DataFrame({"smoker": [True]}), strength=strength)


def test_a_distribution_key_sets_the_strength_of_its_entries():
    learned = MODEL.update_with_cases(pd.DataFrame({"onset": ["immediate"] * 4}), strength={"onset.distributions.leak": 0})
    table = learned.parameters.set_index("name")
    assert (table.loc[table.index.str.startswith("onset.distributions.leak."), "strength"] == 0).all()


def test_bad_iteration_settings_and_non_convergence():
    cases = hide(TRUE.simulate(300, seed=2), MODEL.causes, 1.0, seed=3)
    with pytest.raises(ValueError, match="max_iterations"):
        MODEL.update_with_cases(cases, max_iterations=0)
    with pytest.raises(ValueError, match="tolerance"):
        MODEL.update_with_cases(cases, tolerance=0)
    with pytest.warns(pfb.ConvergenceWarning, match="EM stopped after 2 iterations"):
        stopped = MODEL.update_with_cases(cases, max_iterations=2)
    report = stopped.learning_report
    assert not report.converged and report.iterations == 2 and report.largest_change > report.tolerance


# ------------------------------------------------------------------ (e) immutability


def test_the_original_model_is_unchanged():
    before = MODEL.parameters.copy()
    tables = {v: t.copy() for v, t in MODEL.tables.cpts.items()}
    learned = MODEL.update_with_cases(TRUE.simulate(100, seed=4))
    pd.testing.assert_frame_equal(MODEL.parameters, before)
    for v, t in MODEL.tables.cpts.items():
        np.testing.assert_array_equal(t, tables[v])
    assert MODEL.learning_report is None and learned.learning_report is not None
    with pytest.raises(AttributeError):
        learned._spec = MODEL.spec
    # setting a learned number by hand makes it hand-set again
    again = learned.with_parameters({"context.smoker.prevalence": 0.25}).spec.parameters["context.smoker.prevalence"]
    assert (again.cases, again.strength, again.hand_set_value) == (0.0, None, None)


# ------------------------------------------------------------------ simulation


def test_simulate_draws_from_the_model_and_is_reproducible():
    a, b = MODEL.simulate(4000, seed=7), MODEL.simulate(4000, seed=np.random.default_rng(7))
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == list(MODEL.tables.variables)
    prior = MODEL.diagnose({}).posterior
    for cause in MODEL.causes:
        share = (a[cause] == "present").mean()
        assert abs(share - prior[cause]) < 4 * math.sqrt(prior[cause] * (1 - prior[cause]) / 4000) + 1e-3, cause
    # the same frequencies as the test oracle's sampler
    oracle = forward_sample(MODEL.tables, 4000, np.random.default_rng(8))
    assert abs((a["radicular_pain"] == "yes").mean() - oracle["radicular_pain"].mean()) < 0.04
    with pytest.raises(pfb.ArgumentTypeError, match="seed"):  # a TypeError too
        MODEL.simulate(3, seed="x")


# ------------------------------------------------------------------ (f) properties


def _small_spec(seed: int):
    docs = random_documents(np.random.default_rng(seed), n_causes=3, n_findings=4, n_times=2, n_factors=2, onset_states=3)
    first = next(iter(docs["findings.yaml"]["findings"].values()))
    for cause in docs["causes.yaml"]["causes"]:  # every cause needs a finding (a layered network)
        first["links"].setdefault(cause, {"value": 0.5, "range": [0.2, 0.8], "judgment": "test"})
    return spec_from_documents(docs)


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 40),
    missing=st.floats(0.0, 0.9),
    strength=st.one_of(st.none(), st.floats(0.0, 50.0)),
)
def test_learned_values_stay_in_their_domains_and_distributions_sum_to_one(seed, n, missing, strength):
    spec = _small_spec(seed % 50)
    model = pfb.Model(spec)
    cases = hide(model.simulate(n, seed=seed), list(spec.variables), missing, seed=seed + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pfb.ConvergenceWarning)  # a tiny table can converge slowly; the bounds must hold regardless
        learned = model.update_with_cases(cases, strength=strength, max_iterations=15)
    table = learned.parameters
    values = table["value"].to_numpy(dtype=float)
    assert np.isfinite(values).all() and np.isfinite(table["cases"].to_numpy(dtype=float)).all()
    probability = table["kind"] == "probability"
    assert ((values[probability] >= 0) & (values[probability] <= 1)).all()
    assert (values[~probability] > 0).all()
    assert (table["cases"] >= 0).all() and (table["cases"] <= n + 1e-9).all()
    for group in learned.spec.onset.distributions.values():
        assert math.fsum(learned.spec.value(name) for name in group.values()) == pytest.approx(1.0, abs=1e-9)
    trace = np.array(learned.learning_report.log_posterior)
    assert np.all(np.diff(trace) >= -1e-7 * np.maximum(1.0, np.abs(trace[:-1])))


# ------------------------------------------------------------------ (g) the E-step in the engine, and SQUAREM


def _em(model, cases):
    """Return the EM object of an update (its E-step and M-step), under the model's parameters."""
    from postfusion_bayes._strengths import _families, _information_per_case, _resolve_strengths
    from postfusion_bayes.evidence import frame_codes

    spec, network = model.spec, model.network
    families = _families(spec)
    strengths = _resolve_strengths(spec, None, families, _information_per_case(spec, network))
    em = learning._EM(spec, cases.index, frame_codes(spec, cases), network, families, strengths)
    em._info = _information_per_case(spec, network)
    em._in_distribution = {n for g in families.distributions for n in g}
    return em


def _flat(stats) -> np.ndarray:
    parts = [*(stats.context[k] for k in sorted(stats.context)), *(stats.cause_n[k] for k in sorted(stats.cause_n)), *(stats.cause_n1[k] for k in sorted(stats.cause_n1))]
    return np.concatenate([*parts, stats.leak_fired, stats.link_fired.ravel(), stats.den_leak, stats.den_link.ravel(), stats.onset.ravel(), [stats.log_likelihood]])


@pytest.mark.parametrize("model", [MODEL, TRUE, pfb.Model(_small_spec(3))], ids=["shipped", "moved", "small"])
def test_the_e_step_equals_row_copies_and_the_joint_of_the_causes(model):
    from oracles import reference_statistics

    if "time_since_surgery" in model.spec.variables:
        cases = hide(hide(TRUE.simulate(150, seed=21), model.causes, 0.5, seed=23), list(model.spec.variables), 0.3, seed=24)
    else:
        cases = hide(model.simulate(150, seed=25), list(model.spec.variables), 0.4, seed=26)
    em = _em(model, cases)
    values = {n: p.value for n, p in model.spec.parameters.items()}
    new, old = _flat(em.expect_all(model.network, 0)), _flat(reference_statistics(em, model.network, values))
    np.testing.assert_allclose(new, old, rtol=1e-9, atol=1e-9)


def test_a_run_equals_the_run_with_the_old_e_step(monkeypatch):
    from oracles import reference_statistics

    cases = hide(TRUE.simulate(120, seed=31), ["smoker", "diabetes", "onset", *MODEL.causes[:3]], 0.4, seed=32)
    with pytest.warns(pfb.ConvergenceWarning):
        new = MODEL.update_with_cases(cases, max_iterations=4, acceleration=None)

    def old(self, network, iteration):
        return reference_statistics(self, network, self._current)

    original = learning._EM._map

    def remember(self, values, iteration, expect):
        self._current = values
        return original(self, values, iteration, expect)

    monkeypatch.setattr(learning._EM, "_map", remember)
    monkeypatch.setattr(learning._EM, "expect_all", old)
    with pytest.warns(pfb.ConvergenceWarning):
        reference = MODEL.update_with_cases(cases, max_iterations=4, acceleration=None)
    a, b = new.parameters.set_index("name")["value"], reference.parameters.set_index("name")["value"]
    np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(new.learning_report.log_posterior, reference.learning_report.log_posterior, rtol=1e-12)


def test_plain_em_and_squarem_reach_the_same_optimum_and_never_go_down():
    cases = hide(TRUE.simulate(300, seed=41), ["smoker", "diabetes"], 0.4, seed=42)  # the example, smaller
    plain = MODEL.update_with_cases(cases, acceleration=None, tolerance=1e-8)
    fast = MODEL.update_with_cases(cases, tolerance=1e-8)
    assert plain.learning_report.converged and fast.learning_report.converged
    assert fast.learning_report.iterations < plain.learning_report.iterations
    assert (fast.learning_report.acceleration, plain.learning_report.acceleration) == ("squarem", None)
    # the same optimum: values within 1e-6, log posterior within 1e-9 relative
    np.testing.assert_allclose(fast.parameters["value"].to_numpy(float), plain.parameters["value"].to_numpy(float), atol=1e-6, rtol=0)
    assert fast.learning_report.log_posterior[-1] == pytest.approx(plain.learning_report.log_posterior[-1], rel=1e-9)
    for report in (plain.learning_report, fast.learning_report):
        trace = np.array(report.log_posterior)
        assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[:-1]))


@pytest.mark.parametrize("cap", [1, 2, 3, 4, 5])
def test_squarem_honours_max_iterations_counted_in_em_maps(cap):
    cases = hide(TRUE.simulate(200, seed=51), ["smoker", "diabetes", *MODEL.causes], 0.5, seed=52)
    with pytest.warns(pfb.ConvergenceWarning, match=f"EM stopped after {cap} iterations"):
        stopped = MODEL.update_with_cases(cases, max_iterations=cap)
    assert stopped.learning_report.iterations == cap and not stopped.learning_report.converged


def test_acceleration_must_be_squarem_or_none():
    with pytest.raises(pfb.ArgumentError, match=r"acceleration must be 'squarem' or None \(plain EM\), got 'squaremm' \(did you mean 'squarem'\?\)"):
        MODEL.update_with_cases(pd.DataFrame({"smoker": [True]}), acceleration="squaremm")


def test_sixteen_causes_learn_without_the_joint_of_the_causes():
    model = pfb.load_model()  # the shipped model: 16 causes since the second edition (it was 8 + 8 synthetic)
    assert len(model.causes) == 16 and model.network.strategy == "layered"
    # few findings per case (each positive one costs a factorised query of its own): the test stays fast
    findings = [v for v in model.spec.variables if v not in model.causes and v not in model.spec.names("context")]
    cases = hide(hide(model.simulate(40, seed=61), ["smoker", "diabetes", *model.causes[::2]], 0.4, seed=62), findings, 0.8, seed=63)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pfb.ConvergenceWarning)  # six maps are enough to show it runs; convergence is tested on 8 causes
        learned = model.update_with_cases(cases, max_iterations=6, tolerance=1e-3)
    report = learned.learning_report
    assert report.iterations <= 6 and np.all(np.diff(report.log_posterior) >= -1e-9 * abs(report.log_posterior[0]))
    assert learned.spec.parameters["context.smoker.prevalence"].cases == 40


def test_an_extrapolated_point_where_a_case_is_impossible_falls_back_to_plain_em():
    # strength 0 drives a leak to 0; the SQUAREM point of the fifth EM map then makes three cases impossible (found by hypothesis)
    model = pfb.Model(_small_spec(1))
    cases = hide(model.simulate(15, seed=1), list(model.spec.variables), 0.25, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pfb.ConvergenceWarning)
        learned = model.update_with_cases(cases, strength=0.0, max_iterations=15)
    report = learned.learning_report
    assert report.iterations == 15 and len(report.log_posterior) < 15  # the dropped points leave no trace
    assert np.all(np.diff(report.log_posterior) >= -1e-9 * np.abs(report.log_posterior[:-1]))
