"""Numbers as people read them (postfusion_bayes.formatting): the rules of the report and the command line."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postfusion_bayes import formatting as fmt

probabilities = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
ratios = st.floats(min_value=0.0, max_value=1e12, allow_nan=False)


@pytest.mark.parametrize(
    ("p", "text"),
    [(0.0, "0%"), (1e-9, "<0.1%"), (0.0004, "<0.1%"), (0.0006, "0.1%"), (0.004, "0.4%"), (0.0149, "1%"), (0.5, "50%"),
     (0.625, "62%"), (0.99, "99%"), (0.995, "99.5%"), (0.9996, ">99.9%"), (1 - 1e-12, ">99.9%"), (1.0, "100%")],
)  # fmt: skip
def test_percent(p, text):
    assert fmt.percent(p) == text


@given(probabilities)
def test_a_possible_cause_never_reads_as_impossible_or_certain(p):
    text = fmt.percent(p)
    assert (text == "0%") == (p == 0) and (text == "100%") == (p == 1)
    assert "e" not in text and text.endswith("%")


@given(probabilities)
def test_a_whole_percent_is_within_half_a_percent(p):
    text = fmt.percent(p).lstrip("<>")
    assert abs(float(text[:-1]) / 100 - p) <= 0.005 + 1e-12 or text in ("0.1%", "99.9%")


@pytest.mark.parametrize(
    ("x", "text"),
    [(0.0, "0"), (0.004, "< 0.01"), (0.0456, "0.046"), (0.5, "0.50"), (0.96, "0.96"), (1.0, "1.0"), (1.04, "1.0"),
     (1.7, "1.7"), (9.94, "9.9"), (9.96, "10"), (12.4, "12"), (99.4, "99"), (99.6, "100"), (100.0, "100"), (100.4, "> 100"), (1359.448, "> 100"), (math.inf, "infinite")],
)  # fmt: skip
def test_likelihood_ratio_is_rounded_for_humans(x, text):
    assert fmt.likelihood_ratio(x) == text


@given(ratios, ratios)
def test_likelihood_ratios_keep_their_order(a, b):
    low, high = sorted((a, b))

    def value(text: str) -> float:
        if text.startswith("> "):
            return 1e300
        if text.startswith("< "):
            return 1e-300 if low > 0 else 0.0
        return float(text)

    assert value(fmt.likelihood_ratio(low)) <= value(fmt.likelihood_ratio(high))
    assert len(fmt.likelihood_ratio(low)) <= 6 and "e" not in fmt.likelihood_ratio(high)


@pytest.mark.parametrize(("w", "text"), [(0.876, "+0.88"), (-0.004, "0.00"), (0.0, "0.00"), (-0.0, "0.00"), (-1.5, "-1.50"), (-math.inf, "-inf")])
def test_weight_has_a_sign_and_never_minus_zero(w, text):
    assert fmt.weight(w) == text


def test_soft_evidence_shows_its_states_and_likelihoods():
    assert fmt.observation([0.3, 0.7], ("no", "yes")) == "soft: no 0.3, yes 0.7"
    assert fmt.observation("late_after_good_result", ("immediate", "late_after_good_result")) == "late_after_good_result"
    assert fmt.likelihoods(("a", "b", "c"), [1, 0.123456, 0]) == "a 1, b 0.123, c 0"
    with pytest.raises(ValueError):
        fmt.likelihoods(("no", "yes"), [0.3])


def test_result_effect_says_the_result_its_chance_and_the_move():
    assert fmt.result_effect("yes", 0.62, "X", 0.62, 0.81) == "if yes (62%): X 62% -> 81%"
