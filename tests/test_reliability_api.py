"""Issue 11, the Python API's arguments and the sensitivity numerics: each reproducer of the issue, and fuzzing with junk arguments.

The promises: a bad argument raises a :class:`~postfusion_bayes.errors.PostfusionError`
naming the argument (never a raw ``TypeError``, ``OverflowError``, ``KeyError``,
``MemoryError`` or ``AssertionError``); a valid one gives a result without
NaN; only ratios of soft likelihoods matter, at any scale; no public method
returns an array that writes into the model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import postfusion_bayes as pfb
from postfusion_bayes import sensitivity as sa
from postfusion_bayes.cpts import changed_tables
from postfusion_bayes.engine.encoding import EncodedEvidence

MODEL = pfb.load_model()
EV = {"time_since_surgery": "over_2_years", "neurogenic_claudication": True}
TINY = {**EV, "radicular_pain": {"yes": 1e-200, "no": 1e-200}, "back_pain": {"yes": 1e-200, "no": 1e-200}}
LEAK = "findings.neurogenic_claudication.leak"
TARGET = "adjacent_segment_disease"
HUGE = 10**400  # an integer too large for a float


def _top_at(evidence, parameter, x):
    return MODEL.with_parameters(sa.covaried(MODEL, parameter, x)).diagnose(evidence).top


def _bisect_takeover(evidence, parameter, inside, outside, tol=1e-9):
    """Where the top cause changes between ``inside`` and ``outside``, by bisection on with_parameters + diagnose (not the sensitivity code)."""
    top = _top_at(evidence, parameter, inside)
    rival = _top_at(evidence, parameter, outside)
    assert rival != top
    while abs(outside - inside) > tol:
        mid = 0.5 * (inside + outside)
        if _top_at(evidence, parameter, mid) == top:
            inside = mid
        else:
            outside = mid
    return inside, rival


# ------------------------------------------------------------------ underflow in sensitivity


def test_rank_robustness_with_tiny_soft_likelihoods_finds_the_takeover():
    truth, rival = _bisect_takeover(EV, LEAK, MODEL.spec.value(LEAK), 1.0)
    # 0.2639 with the first edition; vascular insufficiency and hip disease now also give claudication
    assert rival == "foraminal_stenosis" and truth == pytest.approx(0.3539, abs=1e-4)
    for evidence in (EV, TINY):
        row = sa.rank_robustness(MODEL, evidence, parameters=[LEAK]).loc[LEAK]
        assert row["upper"] == pytest.approx(truth, abs=1e-8)
        assert row["cause_above"] == "foraminal_stenosis"
        assert row["lower"] == 0.0 and row["cause_below"] is None


def test_one_way_with_tiny_soft_likelihoods_equals_one_way_without_them():
    plain = sa.one_way(MODEL, EV, TARGET, LEAK)
    tiny = sa.one_way(MODEL, TINY, TARGET, LEAK)  # raised a raw AssertionError
    assert tiny.exact_form and plain.exact_form
    np.testing.assert_allclose(tiny.coefficients.to_numpy(), plain.coefficients.to_numpy(), rtol=1e-9, atol=1e-12)
    assert tiny.derivative == pytest.approx(plain.derivative, rel=1e-9)
    np.testing.assert_allclose(tiny.table["posterior"], plain.table["posterior"], atol=1e-12)
    for x in (0.0, 0.2, 0.7, 1.0):  # against the model itself, changed and diagnosed
        expected = MODEL.with_parameters({LEAK: x}).diagnose(EV).posterior[TARGET]
        assert tiny(x) == pytest.approx(expected, abs=1e-12)


def test_exact_coefficients_are_relative_to_the_evidence_at_the_current_value():
    f = sa.one_way(MODEL, EV, TARGET, LEAK)
    a, b, c, d = f.coefficients
    assert c * f.value + d == pytest.approx(1.0, abs=1e-12)
    # P(evidence | x) / P(evidence | x0) = c x + d, checked against the engine's log P(evidence)
    _, log_evidence = sa.evaluate(MODEL, EV, {LEAK: np.array([0.05, f.value, 0.9])})
    ratios = np.exp(log_evidence[:, 0] - log_evidence[1, 0])
    np.testing.assert_allclose(ratios, c * np.array([0.05, f.value, 0.9]) + d, rtol=1e-10)


def test_subnormal_soft_likelihoods_count_by_their_ratio():
    exact = MODEL.diagnose({**EV, "radicular_pain": {"yes": 1, "no": 2}}).posterior
    subnormal = MODEL.diagnose({**EV, "radicular_pain": {"yes": 5e-324, "no": 1e-323}}).posterior  # exactly 1:2
    pd.testing.assert_series_equal(subnormal, exact, atol=1e-12, rtol=0)


def _sensitivity_outputs(evidence):
    """Return what each sensitivity function says for one patient: plain floats, strings and None, for comparison."""
    parameters = [LEAK, "causes.adjacent_segment_disease.odds_ratios.smoker", "onset.distributions.leak.immediate"]
    out = {}
    exact = sa.one_way(MODEL, evidence, TARGET, LEAK, points=5)
    out["one_way exact"] = [*exact.coefficients.tolist(), exact.derivative, *exact.table["posterior"].tolist()]
    searched = sa.one_way(MODEL, evidence, "pseudarthrosis", "causes.pseudarthrosis.odds_ratios.smoker", points=4)
    out["one_way grid"] = [searched.derivative, *searched.table["posterior"].tolist()]
    tornado = sa.tornado(MODEL, evidence, TARGET, parameters)
    out["tornado"] = tornado.sort_index().to_numpy(dtype=float).ravel().tolist()
    robust = sa.rank_robustness(MODEL, evidence, parameters, points=11)
    out["rank_robustness"] = robust[["lower", "upper"]].to_numpy().ravel().tolist() + robust[["cause_below", "cause_above"]].to_numpy().ravel().tolist()
    mc = sa.monte_carlo(MODEL, evidence, n=64, seed=5, parameters=parameters, progress=False)
    out["monte_carlo"] = mc.sort_index().to_numpy(dtype=float).ravel().tolist()
    return out


def _assert_same(first, second, tol=1e-9):
    assert first.keys() == second.keys()
    for key in first:
        for x, y in zip(first[key], second[key], strict=True):
            if isinstance(x, float):
                assert not math.isnan(x) and y == pytest.approx(x, abs=tol), key
            else:
                assert x == y, key


BASE_OUTPUTS = {}


@given(
    variable=st.sampled_from(["radicular_pain", "back_pain", "onset"]),
    weights=st.lists(st.floats(0.01, 1.0), min_size=4, max_size=4),
    k=st.integers(-300, 300),
)
def test_scaling_every_soft_likelihood_of_a_variable_changes_no_sensitivity_output(variable, weights, k):
    states = MODEL.spec.variables[variable].states
    likelihood = dict(zip(states, weights, strict=False))
    scaled = {s: w * 10.0**k for s, w in likelihood.items()}
    assume(all(np.isfinite(v) and v >= np.finfo(float).tiny for v in scaled.values()))  # finite, > 0 and not subnormal
    evidence = {**EV, "smoker": True}
    key = (variable, tuple(weights))
    if key not in BASE_OUTPUTS:
        BASE_OUTPUTS[key] = _sensitivity_outputs({**evidence, variable: likelihood})
    _assert_same(BASE_OUTPUTS[key], _sensitivity_outputs({**evidence, variable: scaled}))


# ------------------------------------------------------------------ writable views

CONTEXT = {
    "time_since_surgery": "6_weeks_to_6_months", "smoker": "yes", "diabetes": "no",
    "osteoporosis": "no", "multilevel_fusion": "yes", "fusion_to_sacrum": "no",
}


def _float_parts(obj, seen=None):
    """Yield every float array, Series and DataFrame reachable from ``obj`` (through mappings, sequences and the attributes results have)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind == "f":
            yield obj
    elif isinstance(obj, pd.Series | pd.DataFrame):
        yield obj
    elif isinstance(obj, Mapping):
        for v in list(obj.values()):
            yield from _float_parts(v, seen)
    elif isinstance(obj, list | tuple):
        for v in obj:
            yield from _float_parts(v, seen)
    else:
        for name in ("marginals", "log_evidence", "partial", "joint", "posterior", "configurations", "_last", "leak", "links", "distributions",
                     "posterior_values", "prior_values", "prior", "parameters", "variables", "context_priors", "cause_priors", "findings", "onset"):
            if hasattr(type(obj), name) and callable(getattr(type(obj), name)):
                continue  # a method, not a result
            try:
                value = getattr(obj, name)
            except Exception:  # an attribute that cannot be read in this state (e.g. no partial marginals)
                continue
            yield from _float_parts(value, seen)


def _scribble(obj) -> None:
    """Write into every float array and frame reachable from ``obj`` that lets itself be written."""
    for part in list(_float_parts(obj)):
        if isinstance(part, np.ndarray):
            if part.flags.writeable:
                part[...] = 0.25
            continue
        frame = part.to_frame() if isinstance(part, pd.Series) else part
        for j, dtype in enumerate(frame.dtypes):
            if dtype.kind == "f" and len(frame):
                try:
                    part.iloc[(0, j) if isinstance(part, pd.DataFrame) else 0] = 0.25
                except ValueError:  # read-only
                    pass
        values = part.to_numpy()
        if values.dtype.kind == "f" and values.flags.writeable:
            values[...] = 0.25


def _snapshot(obj) -> list[np.ndarray]:
    """Return copies of every float array and frame reachable from ``obj``, to compare two results."""
    return [np.array(part.select_dtypes("number") if isinstance(part, pd.DataFrame) else part, dtype=float) for part in _float_parts(obj)]


def _hard(evidence):
    return {k: ("yes" if v is True else "no" if v is False else v) for k, v in evidence.items()}


def _encoded(evidence):
    return EncodedEvidence.one(MODEL.network.state_index, _hard(evidence))


PUBLIC_RESULTS = {
    "query with partial (the issue's posterior_one)": lambda m: m.network.query(_encoded(CONTEXT), tuple(m.causes), partial=frozenset(CONTEXT)),
    "query with a joint": lambda m: m.network.query(_encoded(CONTEXT), tuple(m.causes), joint=m.causes[:2]),
    "query of findings": lambda m: m.network.query(_encoded(EV), ("radicular_pain", "onset")),
    "query with parameter sets": lambda m: m.network.query(_encoded(EV), tuple(m.causes), parameters=changed_tables(m.spec, {LEAK: np.array([0.1, 0.2])})),
    "last_state": lambda m: m.network.query(_encoded(CONTEXT), tuple(m.causes), partial=frozenset(CONTEXT)).last_state(tuple(m.causes), partial=True),
    "posteriors": lambda m: m.network.posteriors(pd.DataFrame([_hard(CONTEXT)]), m.causes),
    "evidence_probability": lambda m: m.network.evidence_probability(pd.DataFrame([_hard(CONTEXT)])),
    "tables.cpd": lambda m: [m.tables.cpd(v) for v in m.tables.variables],
    "tables.cpts": lambda m: dict(m.tables.cpts),
    "network.tables": lambda m: dict(m.network.tables.cpts),
    "parameters": lambda m: m.parameters,
    "variables": lambda m: m.variables,
    "spec": lambda m: m.spec,
    "diagnosis arrays": lambda m: m.diagnose(CONTEXT),
    "diagnosis posterior and prior": lambda m: (lambda dx: [dx.posterior, dx.prior])(m.diagnose(CONTEXT)),
    "to_frame": lambda m: m.diagnose(CONTEXT).to_frame(),
    "explain": lambda m: m.diagnose({**CONTEXT, "radicular_pain": True}).explain(),
    "next_tests": lambda m: m.diagnose({**CONTEXT, "radicular_pain": True}).next_tests(),
    "most_probable_explanation": lambda m: m.diagnose({**CONTEXT, "radicular_pain": True}).most_probable_explanation(3),
    "diagnose_many": lambda m: m.diagnose_many(pd.DataFrame([_hard(CONTEXT)])),
    "likelihood_ratios": lambda m: m.likelihood_ratios(),
    "implied_accuracy": lambda m: m.implied_accuracy("radicular_pain", "nerve_injury"),
    "sensitivity.evaluate": lambda m: sa.evaluate(m, EV, {LEAK: np.array([0.1, 0.2])}),
}


@pytest.mark.parametrize("name", list(PUBLIC_RESULTS))
def test_writing_into_what_a_public_method_returns_changes_no_later_answer(name):
    model = pfb.load_model()
    patient = {**CONTEXT, "radicular_pain": True}
    before = (model.diagnose(CONTEXT).to_frame(), model.diagnose(patient).to_frame(), model.diagnose_many(pd.DataFrame([_hard(patient)])))
    result = PUBLIC_RESULTS[name](model)
    _scribble(result)
    after = (model.diagnose(CONTEXT).to_frame(), model.diagnose(patient).to_frame(), model.diagnose_many(pd.DataFrame([_hard(patient)])))
    for x, y in zip(before, after, strict=True):
        pd.testing.assert_frame_equal(x, y, check_exact=True)
    again, fresh = _snapshot(PUBLIC_RESULTS[name](model)), _snapshot(PUBLIC_RESULTS[name](pfb.load_model()))
    assert len(again) == len(fresh)
    for x, y in zip(again, fresh, strict=True):  # the method itself answers as a fresh model does
        np.testing.assert_array_equal(x, y)


def test_a_diagnosis_holds_its_probabilities_read_only():
    dx = MODEL.diagnose(CONTEXT)
    with pytest.raises(ValueError):
        dx.posterior_values[0] = 1.0
    with pytest.raises(ValueError):
        dx.prior_values[:] = 0.0
    given_values = np.array([0.5] * len(MODEL.causes))
    bare = pfb.Diagnosis(dx.causes, given_values, given_values)
    assert given_values.flags.writeable  # the caller's array is copied, not frozen
    given_values[:] = 0.0
    assert (bare.posterior_values == 0.5).all()


# ------------------------------------------------------------------ impossible probabilities


@pytest.mark.parametrize("value", [1.5, -0.1, float("nan"), float("inf"), HUGE, True, "0.5", None])
def test_covaried_refuses_values_outside_the_domain_naming_the_parameter_and_value(value):
    name = "onset.distributions.leak.immediate"
    with pytest.raises(pfb.ArgumentError, match=re.escape(f"the value of {name!r} must be a probability in [0, 1], got")) as info:
        sa.covaried(MODEL, name, value)
    assert pfb.errors.shown(value)[:20] in str(info.value)


@pytest.mark.parametrize("value", [0, -2, float("nan"), float("inf"), HUGE])
def test_covaried_refuses_an_odds_ratio_that_is_not_a_finite_positive_number(value):
    with pytest.raises(pfb.ArgumentError, match="'causes.pseudarthrosis.odds_ratios.smoker' must be a finite number > 0"):
        sa.covaried(MODEL, "causes.pseudarthrosis.odds_ratios.smoker", value)


@given(name=st.sampled_from([p for p in MODEL.spec.parameters if MODEL.spec.parameters[p].kind != "odds_ratio"]), value=st.floats(0.0, 1.0))
def test_covaried_values_in_the_domain_are_probabilities_and_distributions_sum_to_one(name, value):
    new = sa.covaried(MODEL, name, value)
    assert new[name] == value
    assert all(0.0 <= v <= 1.0 for v in new.values())
    if len(new) > 1:
        assert sum(new.values()) == pytest.approx(1.0, abs=1e-12)
    MODEL.with_parameters(new)  # the model takes them


def test_the_exact_one_way_function_refuses_values_outside_the_domain():
    f = sa.one_way(MODEL, EV, TARGET, LEAK)
    for bad in (1.5, -0.5, float("nan")):
        with pytest.raises(pfb.PostfusionError, match=LEAK):
            f(bad)
    assert 0.0 <= f(1.0) <= 1.0


# ------------------------------------------------------------------ arguments refused up front


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: sa.one_way(MODEL, EV, TARGET, LEAK, points=-1), pfb.ArgumentError, r"points must be a whole number >= 2, got -1"),
        (lambda: sa.one_way(MODEL, EV, TARGET, LEAK, points=2.5), pfb.ArgumentTypeError, r"points must be a whole number >= 2, got 2\.5 \(a float\)"),
        (lambda: sa.rank_robustness(MODEL, EV, [LEAK], points=-1), pfb.ArgumentError, r"points must be a whole number >= 2, got -1"),
        (lambda: sa.monte_carlo(MODEL, EV, n=10, seed=-1), pfb.ArgumentError, r"seed must be a whole number >= 0"),
        (lambda: sa.sobol(MODEL, EV, TARGET, n=8, seed=-1), pfb.ArgumentError, r"seed must be a whole number >= 0"),
        (lambda: MODEL.simulate(3, seed=-1), pfb.ArgumentError, r"seed must be a whole number >= 0"),
        (lambda: sa.monte_carlo(MODEL, EV, n=True), pfb.ArgumentTypeError, r"n must be a whole number >= 1, got True \(a bool\)"),
        (lambda: sa.monte_carlo(MODEL, EV, n=0), pfb.ArgumentError, r"n must be a whole number >= 1, got 0"),
        (lambda: sa.sobol(MODEL, EV, TARGET, n=True), pfb.ArgumentTypeError, r"n must be a whole number >= 2, got True"),
        (lambda: MODEL.simulate(True), pfb.ArgumentTypeError, r"n must be a whole number >= 0, got True"),
        (
            lambda: sa.tornado(MODEL, EV, TARGET, parameters="findings.x.leak"),
            pfb.ArgumentTypeError,
            r"parameters must be a list of parameter names, got the string 'findings\.x\.leak'; for one name write \['findings\.x\.leak'\]",
        ),
        (lambda: sa.rank_robustness(MODEL, EV, parameters=LEAK), pfb.ArgumentTypeError, r"parameters must be a list of parameter names, got the string"),
        (lambda: sa.rank_robustness(MODEL, EV, parameters=[]), pfb.ArgumentError, r"parameters is empty"),
        (lambda: sa.monte_carlo(MODEL, EV, n=10, parameters=[]), pfb.ArgumentError, r"parameters is empty"),
        (lambda: sa.sobol(MODEL, EV, TARGET, n=8, parameters=[]), pfb.ArgumentError, r"parameters is empty"),
        (lambda: sa.tornado(MODEL, EV, TARGET, parameters=[]), pfb.ArgumentError, r"parameters is empty"),
        (lambda: sa.tornado(MODEL, EV, TARGET, parameters=[LEAK, LEAK]), pfb.ArgumentError, r"parameter '.*' is given twice"),
        (lambda: sa.tornado(MODEL, EV, TARGET, parameters=[3]), pfb.ArgumentTypeError, r"parameters: every entry must be a parameter name \(a string\), got 3"),
        (lambda: sa.monte_carlo(MODEL, EV, n=10, parameters=["findings.radicular_pain.lek"]), pfb.SpecError, r"did you mean 'findings\.radicular_pain\.leak'"),
        (lambda: sa.monte_carlo(MODEL, pd.DataFrame(), n=10), pfb.ArgumentError, r"evidence: the DataFrame has no rows"),
        (lambda: sa.evaluate(MODEL, pd.DataFrame(), {}), pfb.ArgumentError, r"evidence: the DataFrame has no rows"),
        (lambda: sa.monte_carlo(MODEL, EV, n=10**12), pfb.MemoryBudgetError, r"monte_carlo with n=1,000,000,000,000 draws .* would need about .* budget of 256\.0 MB"),
        (lambda: sa.sobol(MODEL, EV, TARGET, n=2**40), pfb.MemoryBudgetError, r"sobol with n=1,099,511,627,776 base samples .* budget of 256\.0 MB"),
        (lambda: sa.one_way(MODEL, EV, TARGET, LEAK, points=10**12), pfb.MemoryBudgetError, r"one_way with a grid of 1,000,000,000,000 points"),
        (lambda: sa.rank_robustness(MODEL, EV, [LEAK], points=10**12), pfb.MemoryBudgetError, r"rank_robustness with a grid"),
        (
            lambda: MODEL.with_parameters({LEAK: HUGE}),
            pfb.SpecError,
            r"findings\.neurogenic_claudication\.leak: value 1000.*\(401 characters\) is too large \(numbers in the priors are at most 1e\+15 in size\)",
        ),
        (lambda: MODEL.with_parameters(None), pfb.ArgumentTypeError, r"values must be a mapping of parameter name to value, got None"),
        (lambda: MODEL.with_parameters([(LEAK, 0.2)]), pfb.ArgumentTypeError, r"values must be a mapping"),
        (lambda: MODEL.diagnose(EV).next_tests(costs={"radicular_pain": HUGE}), pfb.ArgumentError, r"costs\['radicular_pain'\] must be a finite number >= 0, got 1000.*, too large for a float"),
        (lambda: MODEL.diagnose(EV).next_tests(costs={"radicular_pain": True}), pfb.ArgumentTypeError, r"costs\['radicular_pain'\] must be a finite number >= 0, got True \(a bool\)"),
        (lambda: MODEL.diagnose(EV).most_probable_explanation(True), pfb.ArgumentTypeError, r"k must be a whole number >= 1, got True"),
        (lambda: MODEL.update_with_cases(pd.DataFrame({"smoker": [True]}), strength=HUGE), pfb.SpecError, r"strength must be a finite number >= 0, got 1000.*too large for a float"),
        (lambda: MODEL.update_with_cases(pd.DataFrame({"smoker": [True]}), strength={"context.smoker.prevalence": HUGE}), pfb.SpecError, r"strength of 'context\.smoker\.prevalence' must be"),
        (lambda: MODEL.update_with_cases(pd.DataFrame({"smoker": [True]}), tolerance=HUGE), pfb.ArgumentError, r"tolerance must be a finite number > 0"),
        (lambda: MODEL.update_with_cases(pd.DataFrame({"smoker": [True]}), max_iterations=2.0), pfb.ArgumentTypeError, r"max_iterations must be a whole number >= 1, got 2\.0"),
        (lambda: pfb.load_model(5), pfb.ArgumentTypeError, r"path must be a file name \(a string or a path\), got 5 \(an int\)"),
        (lambda: pfb.load_model("a\x00b"), pfb.ArgumentError, r"path must not contain a NUL byte"),
        (lambda: MODEL.write(None), pfb.ArgumentTypeError, r"path must be a file name \(a string or a path\), got None"),
        (lambda: MODEL.write("a\x00b.uai"), pfb.ArgumentError, r"path must not contain a NUL byte"),
        (lambda: MODEL.write_bif(b"model.bif"), pfb.ArgumentTypeError, r"path must be a file name"),
        (lambda: MODEL.simulate(10**12), pfb.MemoryBudgetError, r"simulating 1,000,000,000,000 cases of 72 variables would need about"),
        (lambda: MODEL.diagnose(EV).summary(n_findings=-1), pfb.ArgumentError, r"n_findings must be a whole number >= 0, got -1"),
        (lambda: MODEL.diagnose(EV).summary(n_tests="3"), pfb.ArgumentTypeError, r"n_tests must be a whole number >= 0, got '3' \(a str\)"),
        (lambda: sa.evaluate(MODEL, EV, None), pfb.ArgumentTypeError, r"values must be a mapping"),
        (lambda: sa.evaluate(MODEL, EV, {LEAK: [HUGE]}), pfb.ParameterError, r"values of '.*leak': expected numbers"),
        (lambda: sa.evaluate(MODEL, EV, {LEAK: [0.1, 0.2], "findings.back_pain.leak": [0.1, 0.2, 0.3]}), pfb.ParameterError, r"the same number of parameter sets"),
        (lambda: sa.evaluate(MODEL, EV, {LEAK: 0.2}), pfb.ParameterError, r"expected a 1-D array with one value per parameter set, got shape \(\)"),
        (lambda: sa.evaluate(MODEL, EV, {"causes.pseudarthrosis.odds_ratios.smoker": [math.inf]}), pfb.SpecError, r"odds ratios must be finite and positive"),
        (lambda: sa.evaluate(MODEL, EV, {}, targets="nerve_injury"), pfb.ArgumentTypeError, r"targets must be a list of cause names, got the string"),
        (lambda: sa.evaluate(MODEL, EV, {}, targets=["nerve_injuy"]), pfb.ArgumentError, r"targets: unknown cause 'nerve_injuy' \(did you mean 'nerve_injury'\?\)"),
        (lambda: sa.tornado(MODEL, "abc", TARGET, [LEAK]), pfb.EvidenceError, r"evidence must be a mapping"),
        (lambda: sa.one_way(MODEL, EV, TARGET, 5), pfb.ArgumentTypeError, r"parameter must be a parameter name \(a string\), got 5"),
    ],
)
def test_bad_arguments_are_refused_up_front_naming_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_refusing_a_huge_sample_allocates_nothing():
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(pfb.MemoryBudgetError):
            sa.monte_carlo(MODEL, EV, n=10**9, parameters=[LEAK])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


def test_rank_robustness_says_none_where_no_cause_takes_over():
    table = sa.rank_robustness(MODEL, EV, [LEAK, "findings.radicular_pain.leak"])
    for column in ("cause_below", "cause_above"):
        assert table[column].dtype == object
        assert not any(isinstance(v, float) for v in table[column])  # None, never NaN
    assert table.loc[LEAK, "cause_below"] is None
    assert table.loc["findings.radicular_pain.leak", "cause_above"] is None  # radicular pain unobserved: the leak changes nothing
    assert table.loc["findings.radicular_pain.leak", "cause_below"] is None


def test_likelihood_ratio_of_a_cause_the_context_decides_is_one_never_nan():
    # a prior of 0 at the low end of its range (0 to 0.03)
    name = "causes.pseudarthrosis.baseline.under_6_weeks"
    assert MODEL.spec.parameters[name].low == 0.0
    model = MODEL.with_parameters({name: 0.0})
    dx = model.diagnose({"time_since_surgery": "under_6_weeks", "radicular_pain": True})
    frame = dx.to_frame()
    assert frame.loc["pseudarthrosis", "prior"] == 0.0 and frame.loc["pseudarthrosis", "posterior"] == 0.0
    assert frame.loc["pseudarthrosis", "likelihood_ratio"] == 1.0
    assert frame["likelihood_ratio"].notna().all()
    others = frame.drop(index="pseudarthrosis")  # the others are posterior odds over prior odds, computed here by hand
    by_hand = (others["posterior"] / (1 - others["posterior"])) / (others["prior"] / (1 - others["prior"]))
    np.testing.assert_allclose(others["likelihood_ratio"], by_hand, rtol=1e-12)
    line = next(x for x in dx.summary().splitlines() if "pseudarthrosis" in x and "likelihood ratio" in x)
    assert "nan" not in line.lower() and "likelihood ratio 1.0 (the context alone decides it)" in line
    certain = dx.to_frame()  # a cause observed present stays inf (its odds went from finite to infinite)
    assert not certain.isna().any().any()
    observed = model.diagnose({"time_since_surgery": "under_6_weeks", "nerve_injury": True}).to_frame()
    assert observed.loc["nerve_injury", "likelihood_ratio"] == math.inf


# ------------------------------------------------------------------ fuzzing with junk arguments

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 40),
    st.integers(10**12, 10**500),
    st.integers(-(10**500), -(10**12)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.binary(max_size=3),
    st.lists(st.integers(0, 3), max_size=2),
    st.sampled_from([np.int64(7), np.float64(0.5), np.bool_(True), np.nan, (), {}, [LEAK], (LEAK,), [LEAK, LEAK], object()]),
)


def _assert_no_nan(result):
    if isinstance(result, pd.DataFrame | pd.Series):
        numeric = result.select_dtypes("number") if isinstance(result, pd.DataFrame) else result
        assert not np.isnan(np.asarray(numeric, dtype=float)).any()
    elif isinstance(result, Mapping):
        for v in result.values():
            _assert_no_nan(v)
    elif isinstance(result, sa.OneWayResult):
        _assert_no_nan(result.table)
        assert not math.isnan(result.derivative)
    elif isinstance(result, float):
        assert not math.isnan(result)


CALLS = {
    "one_way points": ("points", lambda x: sa.one_way(MODEL, EV, TARGET, LEAK, points=x)),
    "one_way parameter": ("parameter", lambda x: sa.one_way(MODEL, EV, TARGET, x)),
    "rank_robustness points": ("points", lambda x: sa.rank_robustness(MODEL, EV, [LEAK], points=x)),
    "rank_robustness parameters": ("parameters", lambda x: sa.rank_robustness(MODEL, EV, x, points=5)),
    "tornado parameters": ("parameters", lambda x: sa.tornado(MODEL, EV, TARGET, x)),
    "monte_carlo n": ("n", lambda x: sa.monte_carlo(MODEL, EV, n=x, seed=1, parameters=[LEAK], progress=False)),
    "monte_carlo seed": ("seed", lambda x: sa.monte_carlo(MODEL, EV, n=16, seed=x, parameters=[LEAK], progress=False)),
    "monte_carlo parameters": ("parameters", lambda x: sa.monte_carlo(MODEL, EV, n=16, seed=1, parameters=x, progress=False)),
    "sobol n": ("n", lambda x: sa.sobol(MODEL, EV, TARGET, n=x, seed=1, parameters=[LEAK, "findings.back_pain.leak"], progress=False)),
    "evaluate values": ("values", lambda x: sa.evaluate(MODEL, EV, {LEAK: x})[0]),
    "evaluate targets": ("targets", lambda x: sa.evaluate(MODEL, EV, {}, targets=x)[0]),
    "tornado evidence": ("evidence", lambda x: sa.tornado(MODEL, x, TARGET, [LEAK])),
    "covaried value": ("value", lambda x: sa.covaried(MODEL, "onset.distributions.leak.immediate", x)),
    "covaried odds ratio": ("value", lambda x: sa.covaried(MODEL, "causes.pseudarthrosis.odds_ratios.smoker", x)),
    "with_parameters value": ("findings.neurogenic_claudication.leak", lambda x: MODEL.with_parameters({LEAK: x}).diagnose(EV).posterior),
    "with_parameters values": ("values", lambda x: MODEL.with_parameters(x)),
    "simulate n": ("n", lambda x: MODEL.simulate(x, seed=1)),
    "simulate seed": ("seed", lambda x: MODEL.simulate(2, seed=x)),
    "next_tests costs": ("costs", lambda x: MODEL.diagnose(EV).next_tests(costs={"radicular_pain": x})),
    "summary n_findings": ("n_findings", lambda x: MODEL.diagnose(EV).summary(n_findings=x)),
    "most_probable_explanation k": ("k", lambda x: MODEL.diagnose(EV).most_probable_explanation(x)),
    "update strength": ("strength", lambda x: MODEL.update_with_cases(pd.DataFrame({"smoker": [True, False]}), strength=x, max_iterations=3).spec.value("context.smoker.prevalence")),
    "update tolerance": ("tolerance", lambda x: MODEL.update_with_cases(pd.DataFrame({"smoker": [True, False]}), tolerance=x, max_iterations=3).spec.value("context.smoker.prevalence")),
    "load_model path": ("path", lambda x: pfb.load_model(x) if not isinstance(x, str) or "\x00" in x else pfb.load_model(None)),
    "write path": ("path", lambda x: MODEL.write(x) if not isinstance(x, str | bytes) else MODEL.write(f"{x}\x00")),
}


@pytest.mark.filterwarnings("ignore::postfusion_bayes.errors.ConvergenceWarning")
@pytest.mark.parametrize("call", sorted(CALLS))
@given(junk=JUNK)
def test_junk_arguments_give_an_error_naming_the_argument_or_a_valid_result(call, junk):
    argument, function = CALLS[call]
    try:
        result = function(junk)
    except pfb.PostfusionError as exc:
        text = str(exc)
        assert argument in text or (argument == "parameter" and "parameter" in text) or "evidence" in text or "budget" in text, (call, junk, text)
    else:
        _assert_no_nan(result)
