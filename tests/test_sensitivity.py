"""Sensitivity analysis of the priors: one-way functions, tornado, rank robustness, Monte Carlo, Sobol."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import postfusion_bayes as pfb
from postfusion_bayes import sensitivity as sa
from postfusion_bayes.spec import spec_from_documents

MODEL = pfb.load_model()
PATIENT = {
    "time_since_surgery": "over_2_years", "onset": "late_after_good_result",
    "neurogenic_claudication": True, "radicular_pain": True, "smoker": True,
}
TARGET = "adjacent_segment_disease"
PARAMETERS = list(MODEL.spec.parameters)
#: PATIENT with every context variable observed: one root configuration, so the analyses that evaluate thousands of
#: parameter sets stay fast at 16 causes (with the context unobserved each set sums over 2,048 configurations).
FULL_PATIENT = {**PATIENT, "diabetes": False, "osteoporosis": False, "multilevel_fusion": True, "fusion_to_sacrum": False,
                "surgical_approach": "posterior", "rhbmp2_used": False, "age_over_65": True}  # fmt: skip


def _with(model, parameter, value):
    return model.with_parameters(sa.covaried(model, parameter, value))


# ------------------------------------------------------------------ one-way


@settings(max_examples=20)
@given(st.sampled_from(PARAMETERS), st.floats(0.0, 1.0), st.sampled_from(MODEL.causes))
def test_one_way_reproduces_with_parameters_diagnose(parameter, u, target):
    f = sa.one_way(MODEL, PATIENT, target, parameter, points=3)
    p = MODEL.spec.parameters[parameter]
    x = p.low + u * (p.high - p.low)
    expected = _with(MODEL, parameter, x).diagnose(PATIENT).posterior[target]
    assert float(f(x)) == pytest.approx(expected, abs=1e-9)
    assert f.exact_form == (p.kind == "probability" and not (".baseline." in parameter and MODEL.spec.cause_priors[parameter.split(".")[1]].odds_ratios))


def test_one_way_exact_form_coefficients_and_derivative():
    f = sa.one_way(MODEL, PATIENT, TARGET, "findings.neurogenic_claudication.links.adjacent_segment_disease")
    a, b, c, d = f.coefficients
    x = f.value
    assert f(x) == pytest.approx(MODEL.diagnose(PATIENT).posterior[TARGET], abs=1e-12)
    h = 1e-6
    numeric = (_with(MODEL, f.parameter, x + h).diagnose(PATIENT).posterior[TARGET] - _with(MODEL, f.parameter, x - h).diagnose(PATIENT).posterior[TARGET]) / (2 * h)
    assert f.derivative == pytest.approx(numeric, rel=1e-5)
    assert f.derivative > 0  # a stronger link makes the cause more probable
    assert list(f.table.columns) == ["value", "posterior"]
    assert f.table["value"].iloc[0] == MODEL.spec.parameters[f.parameter].low
    assert "exact" in f.note


def test_one_way_odds_ratio_says_it_is_evaluated_on_a_grid():
    f = sa.one_way(MODEL, PATIENT, "pseudarthrosis", "causes.pseudarthrosis.odds_ratios.smoker")
    assert not f.exact_form and f.coefficients is None
    assert "not of the form" in f.note
    assert f.table["posterior"].is_monotonic_increasing  # the patient smokes: a larger odds ratio raises the cause
    assert f.derivative > 0


def test_one_way_distribution_entry_covaries_its_distribution():
    name = "onset.distributions.adjacent_segment_disease.late_after_good_result"
    new = sa.covaried(MODEL, name, 0.3)
    assert set(new) == set(sa.distribution_of(MODEL, name))
    assert sum(new.values()) == pytest.approx(1.0, abs=1e-12)
    f = sa.one_way(MODEL, PATIENT, TARGET, name)
    assert f.exact_form and "co-variation" in f.note


def test_one_way_errors():
    with pytest.raises(pfb.SpecError, match=r"did you mean 'findings.back_pain.leak'"):
        sa.one_way(MODEL, PATIENT, TARGET, "findings.back_pain.lek")
    with pytest.raises(pfb.EvidenceError, match=r"unknown target 'pseudoarthrosis' \(did you mean 'pseudarthrosis'\?\)"):
        sa.one_way(MODEL, PATIENT, "pseudoarthrosis", "findings.back_pain.leak")


# ------------------------------------------------------------------ tornado


def test_tornado_columns_equal_with_parameters_diagnoses():
    table = sa.tornado(MODEL, PATIENT, TARGET)
    assert list(table.columns) == ["value", "low", "high", "posterior_at_low", "posterior_at_high", "swing"]
    assert len(table) == len(PARAMETERS)
    assert table["swing"].is_monotonic_decreasing
    assert table.attrs["target"] == TARGET
    rng = np.random.default_rng(0)
    for name in list(table.index[:3]) + list(rng.choice(table.index, 5, replace=False)):
        row = table.loc[name]
        assert row["posterior_at_low"] == pytest.approx(_with(MODEL, name, row["low"]).diagnose(PATIENT).posterior[TARGET], abs=1e-12)
        assert row["posterior_at_high"] == pytest.approx(_with(MODEL, name, row["high"]).diagnose(PATIENT).posterior[TARGET], abs=1e-12)
    # a finding the patient did not report can still matter through its absence? no: unobserved findings never matter
    unobserved = [n for n in table.index if n.startswith("findings.ct_nonunion.")]
    assert (table.loc[unobserved, "swing"] < 1e-12).all()


# ------------------------------------------------------------------ rank robustness


@pytest.mark.parametrize("parameter", [
    "causes.adjacent_segment_disease.baseline.over_2_years",  # odds-ratio cause: searched
    "causes.foraminal_stenosis.baseline.over_2_years",  # no odds ratios: exact
    "findings.neurogenic_claudication.leak",
    "findings.radicular_pain.links.foraminal_stenosis",
    "onset.distributions.adjacent_segment_disease.late_after_good_result",
    "causes.adjacent_segment_disease.odds_ratios.smoker",
])
def test_rank_robustness_endpoints_are_where_the_top_cause_changes(parameter):
    table = sa.rank_robustness(MODEL, PATIENT, [parameter])
    top = table.attrs["top"]
    assert top == MODEL.diagnose(PATIENT).top
    row = table.loc[parameter]
    assert row["lower"] <= row["value"] <= row["upper"]
    eps = 1e-6 * max(1.0, row["value"])
    for end, cause, outward in (("lower", "cause_below", -1), ("upper", "cause_above", 1)):
        x = row[end]
        inside = _with(MODEL, parameter, x - outward * eps) if row[end] != row["value"] else MODEL
        assert inside.diagnose(PATIENT).top == top
        domain_end = row["domain_low"] if outward < 0 else row["domain_high"]
        if row[cause] is None:
            assert x == domain_end
        else:
            assert x != domain_end
            outside = _with(MODEL, parameter, x + outward * eps).diagnose(PATIENT)
            assert outside.top == row[cause] != top


def test_rank_robustness_covers_every_parameter():
    table = sa.rank_robustness(MODEL, FULL_PATIENT)
    assert len(table) == len(PARAMETERS)
    # the context observed: every odds ratio and baseline moves one table entry, in which the posteriors are linear-fractional
    assert set(table["method"]) == {"exact", "exact through the table entry", "no effect"}
    assert ((table["lower"] <= table["value"]) & (table["value"] <= table["upper"])).all()
    assert set(sa.rank_robustness(MODEL, PATIENT)["method"]) == {"exact", "grid and bisection", "no effect"}  # the context partly unobserved


@pytest.mark.parametrize("evidence", [FULL_PATIENT, {**FULL_PATIENT, "smoker": False, "time_since_surgery": "6_to_24_months", "surgical_approach": "lateral"}])
def test_rank_robustness_through_the_table_entry_equals_grid_and_bisection(evidence):
    table = sa.rank_robustness(MODEL, evidence)
    through = table[table["method"] == "exact through the table entry"]
    assert len(through) >= 10
    ti = MODEL.causes.index(table.attrs["top"])
    searched = sa._searched_intervals(MODEL, evidence, list(through.index), ti, 101)
    for name, row in through.iterrows():
        for end in ("lower", "upper"):
            assert row[end] == pytest.approx(searched[name][end], rel=1e-9, abs=1e-12)
        assert (row["cause_below"], row["cause_above"]) == (searched[name]["cause_below"], searched[name]["cause_above"])
    # a parameter of no effect: the grid finds no cause taking over anywhere in its domain
    none = list(table.index[table["method"] == "no effect"][::25])
    for name, row in sa._searched_intervals(MODEL, evidence, none, ti, 11).items():
        assert (row["cause_below"], row["cause_above"], row["lower"], row["upper"]) == (None, None, row["domain_low"], row["domain_high"])
        assert (table.loc[name, "lower"], table.loc[name, "upper"]) == (row["domain_low"], row["domain_high"])


# ------------------------------------------------------------------ toy network with known answers


def _entry(value, low=None, high=None):
    return {"value": value, "range": [value if low is None else low, value if high is None else high], "judgment": "toy"}


def toy_model():
    """Two time windows (0.5 each), cause A with baselines b0 ~ [0.1, 0.5] and b1 ~ [0.4, 0.8]; everything else fixed.

    With no evidence P(A) = 0.5 b0 + 0.5 b1: its mean and Sobol indices follow from the two Betas.
    """
    docs = {
        "context.yaml": {"context": {"time": {"description": "window", "states": ["t0", "t1"], "distribution": {"t0": _entry(0.5), "t1": _entry(0.5)}}}},
        "causes.yaml": {"time_variable": "time", "reference_patient": "toy", "causes": {
            "a": {"description": "cause a", "baseline": {"t0": _entry(0.3, 0.1, 0.5), "t1": _entry(0.6, 0.4, 0.8)}},
            "b": {"description": "cause b", "baseline": {"t0": _entry(0.2), "t1": _entry(0.2)}},
        }},
        "findings.yaml": {"findings": {"f": {"description": "finding", "leak": _entry(0.1), "links": {"a": _entry(0.7)}}}},
        "red_flags.yaml": {"red_flags": {"flag": {"description": "flag", "advice": "act", "leak": _entry(0.01)}}},
        "onset.yaml": {"onset": {"variable": "onset", "description": "onset", "states": ["x", "y"], "distributions": {"leak": {"x": _entry(0.5), "y": _entry(0.5)}}}},
    }
    return pfb.Model(spec_from_documents(docs))


def _beta_moments(model, name):
    row = sa.fit_distributions(model, [name]).iloc[0]
    return stats.beta.mean(row["shape_1"], row["shape_2"]), stats.beta.var(row["shape_1"], row["shape_2"])


def test_fitted_beta_has_the_range_as_its_5_and_95_percent_quantiles():
    fitted = sa.fit_distributions(MODEL)
    assert set(fitted["family"]) <= {"beta", "lognormal", "fixed"}
    beta = fitted[fitted["family"] == "beta"].head(20)
    for name, row in beta.iterrows():
        p = MODEL.spec.parameters[name]
        low, high = max(p.low, sa.BOUND_MARGIN), min(p.high, 1 - sa.BOUND_MARGIN)
        assert stats.beta.ppf([0.05, 0.95], row["shape_1"], row["shape_2"]) == pytest.approx([low, high], abs=1e-6)
    for name, row in fitted[fitted["family"] == "lognormal"].iterrows():
        p = MODEL.spec.parameters[name]
        q = np.exp(row["shape_1"] + row["shape_2"] * stats.norm.ppf([0.05, 0.95]))
        assert q == pytest.approx([p.low, p.high], rel=1e-9)


def test_monte_carlo_is_reproducible_and_its_mean_converges_to_the_analytic_mean():
    toy = toy_model()
    a = sa.monte_carlo(toy, {}, n=4000, seed=7)
    b = sa.monte_carlo(toy, {}, n=4000, seed=np.random.default_rng(7))
    pd.testing.assert_frame_equal(a, b)
    m0, v0 = _beta_moments(toy, "causes.a.baseline.t0")
    m1, v1 = _beta_moments(toy, "causes.a.baseline.t1")
    mean, sd = 0.5 * m0 + 0.5 * m1, np.sqrt(0.25 * v0 + 0.25 * v1)
    assert a.loc["a", "mean"] == pytest.approx(mean, abs=4 * sd / np.sqrt(4000))
    assert a.loc["b", "mean"] == pytest.approx(0.2, abs=1e-12)  # fixed parameters do not vary
    assert a.loc["a", "q05"] < a.loc["a", "median"] < a.loc["a", "q95"]
    assert a["probability_first"].sum() == pytest.approx(1.0)
    assert not sa.monte_carlo(toy, {}, n=200, seed=8).equals(sa.monte_carlo(toy, {}, n=200, seed=9))


def test_monte_carlo_for_our_model_and_a_batch_of_patients():
    one = sa.monte_carlo(MODEL, PATIENT, n=300, seed=1)
    assert list(one.columns) == ["posterior", "mean", "median", "q05", "q95", "probability_first"]
    assert one.index[0] == TARGET
    assert one.loc[TARGET, "posterior"] == pytest.approx(MODEL.diagnose(PATIENT).posterior[TARGET])
    patients = pd.DataFrame([PATIENT, {"time_since_surgery": "under_6_weeks", "onset": "immediate", "radicular_pain": True}], index=["late", "early"])
    many = sa.monte_carlo(MODEL, patients, n=300, seed=1)
    assert many.index.names == ["patient", "cause"]
    assert many.loc[("early", "nerve_injury"), "probability_first"] > 0.5


def test_sobol_on_a_toy_network_with_a_known_answer():
    toy = toy_model()
    table = sa.sobol(toy, {}, "a", n=2048, seed=3)
    assert set(table.index) == {"causes.a.baseline.t0", "causes.a.baseline.t1"}  # everything else is fixed
    _, v0 = _beta_moments(toy, "causes.a.baseline.t0")
    _, v1 = _beta_moments(toy, "causes.a.baseline.t1")
    expected = {"causes.a.baseline.t0": v0 / (v0 + v1), "causes.a.baseline.t1": v1 / (v0 + v1)}
    for name, share in expected.items():  # additive model: first-order equals total
        assert table.loc[name, "first_order"] == pytest.approx(share, abs=0.05)
        assert table.loc[name, "total"] == pytest.approx(share, abs=0.05)
    assert sa.sobol(toy, {}, "a", n=256, seed=3).equals(sa.sobol(toy, {}, "a", n=256, seed=3))


def test_sobol_and_monte_carlo_argument_errors():
    with pytest.raises(ValueError, match="power of 2"):
        sa.sobol(MODEL, PATIENT, TARGET, n=100)
    with pytest.raises(ValueError, match="n must be a whole number >= 1"):
        sa.monte_carlo(MODEL, PATIENT, n=0)
    with pytest.raises(TypeError, match="seed"):
        sa.monte_carlo(MODEL, PATIENT, n=10, seed="seven")


def test_evaluate_rejects_values_outside_the_domain():
    with pytest.raises(pfb.SpecError, match=r"findings.back_pain.leak: values outside \[0, 1\]"):
        sa.evaluate(MODEL, PATIENT, {"findings.back_pain.leak": np.array([0.5, 1.5])})


# ------------------------------------------------------------------ edge cases found in review


def test_no_false_takeover_where_the_evidence_becomes_impossible():
    cases = [
        ({"time_since_surgery": "over_2_years", "neurogenic_claudication": True}, "context.time_since_surgery.distribution.6_weeks_to_6_months"),
        ({"time_since_surgery": "under_6_weeks"}, "context.time_since_surgery.distribution.under_6_weeks"),
        ({"time_since_surgery": "under_6_weeks", "epidural_fibrosis": True}, "causes.epidural_fibrosis.baseline.under_6_weeks"),
        ({"time_since_surgery": "under_6_weeks", "nerve_injury": True}, "causes.nerve_injury.baseline.under_6_weeks"),
    ]
    for evidence, parameter in cases:
        row = sa.rank_robustness(MODEL, evidence, [parameter]).loc[parameter]
        lo, hi = row["domain_low"], row["domain_high"]
        top = MODEL.diagnose(evidence).top
        for x in np.linspace(lo + 1e-6, hi - 1e-6, 9):
            assert _with(MODEL, parameter, x).diagnose(evidence).top == top
        assert row["cause_below"] is None and row["cause_above"] is None, (parameter, row.to_dict())


def test_tornado_and_one_way_leave_the_posterior_missing_where_the_evidence_is_impossible():
    evidence = {"time_since_surgery": "under_6_weeks", "adjacent_segment_disease": True}
    table = sa.tornado(MODEL, evidence, "nerve_injury")
    name = "causes.adjacent_segment_disease.baseline.under_6_weeks"  # low end 0: an observed cause becomes impossible
    assert table.loc[name, "posterior_at_low"] is pd.NA and table.loc[name, "swing"] is pd.NA
    assert table.index[-1] == name and table["swing"].iloc[:-1].notna().all()
    assert not np.isnan(table[["posterior_at_low", "posterior_at_high", "swing"]].to_numpy(dtype=float, na_value=0.0)).any()  # NA, never NaN
    result = sa.one_way(MODEL, {"time_since_surgery": "over_2_years"}, "pseudarthrosis", "context.time_since_surgery.distribution.over_2_years")
    assert result.table["posterior"].notna().all()  # the plausible range stays away from 0
    with pytest.raises(pfb.EvidenceError, match=r"impossible .*over_2_years = 0\.0"):
        result(0.0)
    assert 0 <= result(0.5) <= 1


def test_evaluate_refuses_a_distribution_entry_changed_without_its_distribution():
    with pytest.raises(pfb.SpecError, match="no longer sums to 1.*covaried"):
        sa.evaluate(MODEL, {"onset": "immediate"}, {"onset.distributions.leak.immediate": np.array([0.9])})
    values = {k: np.array([v]) for k, v in sa.covaried(MODEL, "onset.distributions.leak.immediate", 0.9).items()}
    sa.evaluate(MODEL, {"onset": "immediate"}, values)


def test_evaluate_keeps_the_batch_axis_when_only_an_unobserved_onset_table_is_batched():
    """The onset mixture's table batched, onset unobserved: one answer per set (all equal: onset sums out)."""
    sets = [0.2, 0.5, 0.8]
    per_set = [sa.covaried(MODEL, "onset.distributions.leak.immediate", x) for x in sets]
    values = {k: np.array([p[k] for p in per_set]) for k in per_set[0]}
    patients = pd.DataFrame([{"time_since_surgery": "under_6_weeks", "radicular_pain": True}, {"smoker": True}], index=["a", "b"])
    present, log_evidence = sa.evaluate(MODEL, patients, values)
    assert present.shape == (len(sets), 2, len(MODEL.causes)) and log_evidence.shape == (len(sets), 2)
    for row, label in enumerate(patients.index):
        expected = MODEL.diagnose(patients.loc[label].dropna().to_dict()).posterior[MODEL.causes].to_numpy()
        for s in range(len(sets)):
            np.testing.assert_allclose(present[s, row], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(log_evidence, np.broadcast_to(log_evidence[0], log_evidence.shape), rtol=0, atol=1e-12)


def test_sampling_part_of_a_distribution_keeps_its_fitted_range():
    # P(nerve injury | onset immediate) is monotone in the leak's "immediate" entry, so the posterior's
    # 5% and 95% quantiles are its values at the entry's 5% and 95% quantiles, 0.10 and 0.40 (its range since the second edition)
    name = "onset.distributions.leak.immediate"
    # (the context observed: one root configuration, so 20,000 parameter sets take a fraction of a second)
    context = {"time_since_surgery": "under_6_weeks", "smoker": False, "diabetes": False, "osteoporosis": False, "multilevel_fusion": False,
               "fusion_to_sacrum": False, "surgical_approach": "posterior", "rhbmp2_used": False, "age_over_65": False}  # fmt: skip
    evidence = {**context, "onset": "immediate"}
    table = sa.monte_carlo(MODEL, evidence, n=20000, seed=0, parameters=[name])
    f = sa.one_way(MODEL, evidence, "nerve_injury", name)
    low, high = sorted([f(0.10), f(0.40)])
    assert table.loc["nerve_injury", "q05"] == pytest.approx(low, abs=2e-3)
    assert table.loc["nerve_injury", "q95"] == pytest.approx(high, abs=2e-3)


def test_single_patient_analyses_refuse_a_frame_of_patients():
    frame = pd.DataFrame([PATIENT])
    with pytest.raises(pfb.EvidenceError, match="one patient"):
        sa.tornado(MODEL, frame, TARGET)


def test_monte_carlo_on_a_learned_model_draws_learned_numbers_from_what_the_cases_say():
    model = pfb.load_model()
    truth = model.with_parameters({"findings.radicular_pain.leak": 0.30})
    learned = model.update_with_cases(truth.simulate(3000, seed=4))
    name = "findings.radicular_pain.leak"
    fitted = sa.fit_distributions(learned, [name, "findings.back_pain.leak"])
    row = fitted.loc[name]
    p = learned.spec.parameters[name]
    assert row["basis"] == "learned from cases"
    m = p.strength + p.cases
    assert (row["shape_1"], row["shape_2"]) == pytest.approx((1 + m * p.value, 1 + m * (1 - p.value)))
    assert row["low"] < p.value < row["high"]
    assert row["high"] - row["low"] < 0.5 * (p.high - p.low)  # 3000 cases say more than the hand-set range
    hand = sa.fit_distributions(model, [name]).loc[name]
    assert hand["basis"] == "hand-set range" and hand["low"] == p.low
    patient = {"time_since_surgery": "under_6_weeks", "radicular_pain": True}
    spread = {m_: sa.monte_carlo(m_, patient, n=400, seed=1, parameters=[name]) for m_ in (model, learned)}
    width = {k: float((v["q95"] - v["q05"]).max()) for k, v in spread.items()}
    assert width[learned] < width[model]


def test_an_entry_at_one_co_varies_its_zero_siblings_equally_and_tornado_still_runs():
    model = pfb.load_model()
    leak = "onset.distributions.leak."
    states = ["immediate", "gradual_after_relief", "sudden_after_relief", "late_after_good_result", "unchanged_from_before_surgery"]
    zeros = [s for s in states if s != states[3]]
    degenerate = model.with_parameters({**{leak + s: 0.0 for s in zeros}, leak + states[3]: 1.0})
    new = sa.covaried(degenerate, leak + states[3], 0.7)
    assert new == pytest.approx({leak + states[3]: 0.7, **{leak + s: 0.3 / len(zeros) for s in zeros}})
    table = sa.tornado(degenerate, {"time_since_surgery": "over_2_years", "onset": "immediate"}, "pseudarthrosis")
    row = table.loc[leak + states[3]]
    expected = degenerate.with_parameters(sa.covaried(degenerate, leak + states[3], row["low"]))
    assert row["posterior_at_low"] == pytest.approx(expected.diagnose({"time_since_surgery": "over_2_years", "onset": "immediate"}).posterior["pseudarthrosis"], abs=1e-12)


# ------------------------------------------------------------------ the speed-ups change no result


def _onset_table_by_configuration(distributions, leak):
    """Compute the former onset_table, the reference: one mean per configuration of the causes present."""
    import itertools

    k, n = distributions.shape[-2:]
    batch = np.broadcast_shapes(distributions.shape[:-2], leak.shape[:-1])
    distributions = np.broadcast_to(distributions, batch + (k, n))
    leak = np.broadcast_to(leak, batch + (n,))
    out = np.empty(batch + (2,) * k + (n,))
    for config in itertools.product((0, 1), repeat=k):
        active = [i for i, c in enumerate(config) if c]
        out[(Ellipsis, *config, slice(None))] = distributions[..., active, :].mean(axis=-2) if active else leak
    return out


@settings(max_examples=25, deadline=None)
@given(k=st.integers(0, 8), n=st.integers(1, 5), batch=st.sampled_from([(), (1,), (3,)]), seed=st.integers(0, 2**32 - 1))
def test_vectorised_onset_table_equals_the_loop_over_configurations(k, n, batch, seed):
    from postfusion_bayes.cpts import onset_table

    rng = np.random.default_rng(seed)
    distributions = rng.dirichlet(np.ones(n), size=batch + (k,))
    leak = rng.dirichlet(np.ones(n), size=batch)
    np.testing.assert_array_equal(onset_table(distributions, leak), _onset_table_by_configuration(distributions, leak))


@settings(max_examples=20, deadline=None)
@given(names=st.lists(st.sampled_from(PARAMETERS), min_size=1, max_size=12, unique=True), n_sets=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_changed_tables_are_bit_identical_to_a_full_rebuild(names, n_sets, seed):
    from postfusion_bayes.cpts import build_tables, changed_tables, table_parameters

    rng = np.random.default_rng(seed)
    values: dict[str, np.ndarray] = {}
    for name in names:  # each set moves the named parameters within their ranges (distributions co-varied)
        p = MODEL.spec.parameters[name]
        for k, v in sa._covaried_arrays(MODEL, name, rng.uniform(p.low, p.high, n_sets)).items():
            values.setdefault(k, v)
    full = build_tables(MODEL.spec, values)
    partial = changed_tables(MODEL.spec, values)
    owners = table_parameters(MODEL.spec)
    assert set(partial) == {owners[name] for name in values}
    for variable in full.variables:
        table = full.cpd(variable)
        if variable in partial:
            assert full.batch_size(variable) == n_sets
            _assert_same_table(partial[variable], table)
        else:  # not rebuilt: the compiled network's own table is the one a full rebuild gives
            assert full.batch_size(variable) is None
            _assert_same_table(table, MODEL.tables.cpd(variable))
    assert changed_tables(MODEL.spec, {}) == {}


def _assert_same_table(got, expected):
    """Assert that two tables are the same kind (dense, noisy-OR, mixture) with the same numbers, bit for bit."""
    from postfusion_bayes.engine.structured import Mixture, NoisyOr

    assert type(got) is type(expected)
    if isinstance(got, NoisyOr):
        pairs = [(got.leak, expected.leak), (got.links, expected.links)]
    elif isinstance(got, Mixture):
        pairs = [(got.distributions, expected.distributions), (got.leak, expected.leak)]
    else:
        pairs = [(got, expected)]
    for a, b in pairs:
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ one reading of a range, shared with learning


def test_every_fitted_distribution_has_the_range_ends_as_its_5_and_95_percent_quantiles():
    fitted = sa.fit_distributions(MODEL)
    for name, row in fitted.iterrows():
        p = MODEL.spec.parameters[name]
        if row["family"] == "beta":
            low, high = max(p.low, sa.BOUND_MARGIN), min(p.high, 1 - sa.BOUND_MARGIN)
            assert stats.beta.ppf([0.05, 0.95], row["shape_1"], row["shape_2"]) == pytest.approx([low, high], abs=1e-9, rel=1e-9), name
        elif row["family"] == "lognormal":
            assert stats.lognorm.ppf([0.05, 0.95], row["shape_2"], scale=np.exp(row["shape_1"])) == pytest.approx([p.low, p.high], rel=1e-12), name
        else:
            assert p.low == p.high == row["shape_1"]


@settings(max_examples=40, deadline=None)
@given(low=st.floats(0.0, 0.98), width=st.floats(0.005, 1.0))
def test_fitted_beta_of_any_range_has_its_quantiles_at_the_ends(low, width):
    from postfusion_bayes.ranges import fit_beta

    high = min(low + width, 1.0)
    low, high = max(low, sa.BOUND_MARGIN), min(high, 1 - sa.BOUND_MARGIN)
    if high - low < 0.005:
        return
    a, b = fit_beta(low, high)
    assert stats.beta.ppf([0.05, 0.95], a, b) == pytest.approx([low, high], abs=1e-9, rel=1e-9)
    assert stats.beta.cdf([low, high], a, b) == pytest.approx([0.05, 0.95], abs=1e-9)


def test_learning_weighs_each_number_by_the_distribution_sensitivity_draws_it_from():
    from postfusion_bayes import learning

    strengths = learning.prior_strengths(MODEL.spec)
    fitted = sa.fit_distributions(MODEL)
    grouped = {n for members in sa._groups(MODEL).values() for n in members}
    for name, row in fitted.iterrows():
        if row["family"] == "beta" and name not in grouped:  # a distribution's entries share its loosest entry's strength
            assert strengths[name] == row["shape_1"] + row["shape_2"], name
        elif row["family"] == "lognormal":
            info = learning._information_per_case(MODEL.spec, MODEL.network)[name]
            assert strengths[name] == pytest.approx(1 / (row["shape_2"] ** 2 * info), rel=1e-12), name


def test_reading_model_parameters_imports_no_scipy():
    import subprocess
    import sys

    code = "import sys, postfusion_bayes as p; m = p.load_model(); m.parameters; m.diagnose({'smoker': True}); print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _noisy_or_reference(leak, links):
    """Compute the former noisy_or_table (batch axes first), the reference."""
    k = links.shape[-1]
    batch = np.broadcast_shapes(leak.shape, links.shape[:-1])
    leak, links = np.broadcast_to(leak, batch), np.broadcast_to(links, batch + (k,))
    absent = np.broadcast_to((1.0 - leak).reshape(batch + (1,) * k), batch + (2,) * k).copy()
    for i in range(k):
        absent = absent * np.stack([np.ones(batch), 1.0 - links[..., i]], axis=-1).reshape(batch + tuple(2 if j == i else 1 for j in range(k)))
    return np.stack([absent, 1.0 - absent], axis=-1)


def _odds_ratio_reference(baseline, odds_ratios):
    """Compute the former odds_ratio_table (batch axes first), the reference."""
    k = odds_ratios.shape[-1]
    batch = np.broadcast_shapes(baseline.shape[:-1], odds_ratios.shape[:-1])
    baseline, odds_ratios = np.broadcast_to(baseline, batch + baseline.shape[-1:]), np.broadcast_to(odds_ratios, batch + (k,))
    ratio = np.ones(batch + (2,) * k)
    for i in range(k):
        ratio = ratio * np.stack([np.ones(batch), odds_ratios[..., i]], axis=-1).reshape(batch + tuple(2 if j == i else 1 for j in range(k)))
    p = baseline.reshape(batch + (baseline.shape[-1],) + (1,) * k)
    r = ratio.reshape(batch + (1,) + (2,) * k)
    present = p * r / (1.0 - p + p * r)
    return np.stack([1.0 - present, present], axis=-1)


@settings(max_examples=25, deadline=None)
@given(k=st.integers(0, 6), batch=st.sampled_from([(), (1,), (4,)]), seed=st.integers(0, 2**32 - 1))
def test_noisy_or_and_odds_ratio_tables_equal_their_former_batch_first_versions(k, batch, seed):
    from postfusion_bayes.cpts import noisy_or_table, odds_ratio_table

    rng = np.random.default_rng(seed)
    leak, links = rng.random(batch), rng.random(batch + (k,))
    np.testing.assert_array_equal(noisy_or_table(leak, links), _noisy_or_reference(leak, links))
    np.testing.assert_array_equal(noisy_or_table(np.array(0.3), links), _noisy_or_reference(np.array(0.3), links))
    baseline, ratios = rng.random(batch + (4,)), np.exp(rng.normal(size=batch + (k,)))
    np.testing.assert_array_equal(odds_ratio_table(baseline, ratios), _odds_ratio_reference(baseline, ratios))
    np.testing.assert_array_equal(odds_ratio_table(baseline, ratios[..., :0] if k else ratios), _odds_ratio_reference(baseline, ratios[..., :0] if k else ratios))


@pytest.mark.parametrize("evidence", [PATIENT, {}, {"time_since_surgery": "under_6_weeks", "onset": "immediate", "radicular_pain": {"yes": 0.8, "no": 0.3}}])
def test_evaluate_equals_the_engine_on_a_full_rebuild_of_the_tables(evidence):
    """evaluate() passes only the changed tables of observed or inner variables; the answer is the full rebuild's, bit for bit."""
    from postfusion_bayes.cpts import build_tables

    rng = np.random.default_rng(5)
    fitted = sa.fit_distributions(MODEL)
    values = sa._draw(MODEL, fitted, rng, 64)
    for subset in (values, {k: v for k, v in values.items() if k.startswith("findings.ct_")}, {k: v for k, v in values.items() if k.startswith("onset.")}):
        present, log_evidence = sa.evaluate(MODEL, evidence, subset)
        tables = build_tables(MODEL.spec, subset)
        batched = {v: tables.cpd(v) for v in tables.variables if tables.batch_size(v) is not None}
        lam, _ = sa._encode(MODEL, evidence)
        result = MODEL.network.query(lam, MODEL.causes, parameters=batched, validate=False)
        expected = np.stack([result.marginals[t][..., -1] for t in MODEL.causes], axis=-1)
        expected_log = result.log_evidence
        assert present.shape == expected.shape == (64, 1, len(MODEL.causes))
        np.testing.assert_array_equal(present, expected)
        np.testing.assert_array_equal(log_evidence, expected_log)


# ------------------------------------------------------------------ Sobol design built with numpy; Monte Carlo draws


@pytest.mark.parametrize(("d", "n", "seed"), [(1, 2, 0), (3, 8, 1), (len(PARAMETERS), 64, 12345), (2, 1024, 7)])
def test_array_built_saltelli_design_equals_salibs(d, n, seed):
    from SALib.sample import sobol as sobol_sample

    problem = {"num_vars": d, "names": [f"x{i}" for i in range(d)], "bounds": [[0.0, 1.0]] * d}
    expected = sobol_sample.sample(problem, n, calc_second_order=False, scramble=True, seed=seed)
    np.testing.assert_array_equal(sa._saltelli_design(*sa._saltelli_base(d, n, seed)), expected)


@pytest.mark.parametrize("evidence", [FULL_PATIENT, {**FULL_PATIENT, "time_since_surgery": "under_6_weeks", "onset": "immediate", "neurogenic_claudication": None}])
def test_sobol_outputs_equal_the_whole_design_evaluated_at_once(evidence):
    """Inverse CDFs on the base matrices only, one table rebuilt per cross-sampled batch, unread tables skipped: the same outputs."""
    fitted = sa.fit_distributions(MODEL)
    varying = fitted[fitted["family"] != "fixed"]
    a, b = sa._saltelli_base(len(varying), 8, 3)
    ti = MODEL.causes.index(TARGET)
    y = sa._saltelli_outputs(MODEL, evidence, varying, a, b, ti, progress=False)
    design = sa._saltelli_design(a, b)
    expected = sa.evaluate(MODEL, evidence, sa._transform(MODEL, varying, design))[0][:, 0, ti]
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-15)


def test_monte_carlo_draws_follow_the_fitted_distributions():
    fitted = sa.fit_distributions(MODEL)
    values = sa._draw(MODEL, fitted, np.random.default_rng(2024), 4000)
    grouped = {n for members in sa._groups(MODEL).values() for n in members}
    worst = 1.0
    for name, row in fitted.iterrows():
        if name in grouped:  # entries of a distribution are renormalised after drawing
            continue
        if row["family"] == "beta":
            cdf = stats.beta(row["shape_1"], row["shape_2"]).cdf
        elif row["family"] == "lognormal":
            cdf = stats.lognorm(row["shape_2"], scale=np.exp(row["shape_1"])).cdf
        else:
            assert (values[name] == row["shape_1"]).all()
            continue
        worst = min(worst, stats.kstest(values[name], cdf).pvalue)
    assert worst > 1e-2 / len(fitted)  # the smallest of about 500 p-values with a fixed seed (Bonferroni at 1%); a wrong distribution gives p-values near 0
    for members in {tuple(m) for m in sa._groups(MODEL).values()}:
        np.testing.assert_allclose(np.sum([values[m] for m in members], axis=0), 1.0, rtol=0, atol=1e-12)
    # monte_carlo evaluates exactly these draws
    name, evidence = "findings.radicular_pain.leak", {"radicular_pain": True}
    drawn = sa._draw(MODEL, sa.fit_distributions(MODEL, [name]), np.random.default_rng(9), 500)
    present = sa.evaluate(MODEL, evidence, drawn)[0][:, 0, :]
    table = sa.monte_carlo(MODEL, evidence, n=500, seed=9, parameters=[name])
    for k, cause in enumerate(MODEL.causes):
        assert table.loc[cause, "mean"] == pytest.approx(present[:, k].mean(), rel=1e-12)
        assert table.loc[cause, "q95"] == pytest.approx(np.quantile(present[:, k], 0.95), rel=1e-12)


# ------------------------------------------------------------------ parameters that cannot change a patient's posteriors

_SOFT_PATIENT = {**FULL_PATIENT, "smoker": {"yes": 0.7, "no": 0.2}, "back_pain": {"yes": 0.9, "no": 0.4}}
_CAUSE_OBSERVED = {"time_since_surgery": "over_2_years", "onset": "late_after_good_result", "radicular_pain": True, TARGET: "absent"}


@pytest.mark.parametrize("evidence", [PATIENT, FULL_PATIENT, _SOFT_PATIENT, _CAUSE_OBSERVED, {}], ids=["patient", "full", "soft", "cause", "none"])
def test_parameters_said_not_to_matter_leave_every_posterior_unchanged(evidence):
    lam, _ = sa._encode(MODEL, evidence)
    relevant = sa._relevant(MODEL, lam, MODEL.causes)
    others = [name for name in PARAMETERS if name not in relevant]
    # every one of them moved at once, to values drawn over their whole ranges (distributions stay distributions)
    drawn = sa._draw(MODEL, sa.fit_distributions(MODEL, others), np.random.default_rng(3), 4) if others else {}
    present = sa.evaluate(MODEL, evidence, drawn)[0] if drawn else sa.evaluate(MODEL, evidence, {})[0]
    now = np.array([MODEL.diagnose(evidence).posterior[c] for c in MODEL.causes])
    np.testing.assert_allclose(present[:, 0, :], np.broadcast_to(now, (present.shape[0], len(now))), rtol=0, atol=1e-12)
    if evidence is FULL_PATIENT:  # the context observed: its priors cancel, and so do the baselines of the other time windows
        assert not any(name.startswith("context.") for name in relevant)
        assert "causes.adjacent_segment_disease.baseline.under_6_weeks" not in relevant
        assert "causes.adjacent_segment_disease.baseline.over_2_years" in relevant
    if evidence is _SOFT_PATIENT:  # soft evidence on smoking leaves both of its states possible
        assert "causes.adjacent_segment_disease.odds_ratios.smoker" in relevant
        assert any(name.startswith("context.smoker") for name in relevant)
    assert "findings.radicular_pain.leak" in relevant or "radicular_pain" not in evidence
    if not evidence:  # nothing observed: every finding's numbers are barren, every cause's prior counts
        assert not any(name.startswith("findings.") for name in relevant)
        assert all(name in relevant for name in PARAMETERS if name.startswith(("causes.", "context.")))


def test_monte_carlo_result_does_not_depend_on_the_range_of_a_parameter_that_cannot_change_it():
    import dataclasses
    from types import MappingProxyType

    barren = "findings.back_pain.leak"  # back pain is not observed for PATIENT: its numbers never reach a posterior
    assert "back_pain" not in PATIENT
    p = MODEL.spec.parameters[barren]
    wider = dataclasses.replace(p, low=min(p.value, 0.01), high=max(p.value, 0.9))
    spec = dataclasses.replace(MODEL.spec, parameters=MappingProxyType({**MODEL.spec.parameters, barren: wider}))
    other = pfb.Model(spec)
    a = sa.monte_carlo(MODEL, PATIENT, n=200, seed=11)
    b = sa.monte_carlo(other, PATIENT, n=200, seed=11)
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs["drawn"] < a.attrs["parameters"] == len(PARAMETERS)


@settings(max_examples=10)
@given(n_sets=st.integers(1, 3), seed=st.integers(0, 2**32 - 1), which=st.lists(st.booleans(), min_size=9, max_size=9))
def test_cause_tables_at_fixed_context_equal_the_full_tables_there(n_sets, seed, which):
    """changed_tables(fixed=...): the causes' tables hold the full tables' bits at the fixed states, repeated elsewhere."""
    from postfusion_bayes.cpts import changed_tables

    rng = np.random.default_rng(seed)
    spec = MODEL.spec
    names = [n for n in PARAMETERS if n.startswith("causes.")]
    values = {n: rng.uniform(spec.parameters[n].low, spec.parameters[n].high, n_sets) for n in names}
    context = spec.names("context")
    fixed = {v: int(rng.integers(len(spec.variables[v].states))) for v, keep in zip(context, which, strict=False) if keep}
    full, cut = changed_tables(spec, values), changed_tables(spec, values, fixed=fixed)
    assert set(full) == set(cut) == set(spec.cause_priors)
    for cause, table in full.items():
        parents = MODEL.tables.parents[cause]
        assert cut[cause].shape == table.shape
        at = (slice(None), *(slice(fixed[p], fixed[p] + 1) if p in fixed else slice(None) for p in parents))
        np.testing.assert_array_equal(cut[cause][at], table[at])
        # elsewhere the numbers at the fixed states repeat (a valid table, read by no query with this evidence)
        np.testing.assert_array_equal(cut[cause], np.broadcast_to(table[at], table.shape))


@pytest.mark.parametrize("evidence", [FULL_PATIENT, _SOFT_PATIENT])
def test_monte_carlo_drawing_what_can_matter_gives_the_numbers_of_drawing_everything(evidence):
    """Each parameter has its own stream: the parameters drawn get the numbers that drawing them all gives, and the rest change nothing."""
    table = sa.monte_carlo(MODEL, evidence, n=300, seed=5)
    assert table.attrs["drawn"] < len(PARAMETERS)
    everything = sa._draw(MODEL, sa.fit_distributions(MODEL), np.random.default_rng(5), 300)
    assert len(everything) == len(PARAMETERS)
    present = sa.evaluate(MODEL, evidence, everything)[0][:, 0, :]
    for k, cause in enumerate(MODEL.causes):
        assert table.loc[cause, "mean"] == pytest.approx(present[:, k].mean(), rel=0, abs=1e-12)
        assert table.loc[cause, "q95"] == pytest.approx(np.quantile(present[:, k], 0.95), rel=0, abs=1e-12)
        assert table.loc[cause, "probability_first"] == (present.argmax(axis=1) == k).mean()
