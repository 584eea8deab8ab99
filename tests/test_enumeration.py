"""The structured enumeration's prior by halves (``engine._enumeration._split_prior``) against the log-space sum."""

from __future__ import annotations

import numpy as np
import pytest

import postfusion_bayes as pfb
from postfusion_bayes.engine import _enumeration
from postfusion_bayes.engine._enumeration import _binary_configurations, _split_prior
from postfusion_bayes.engine.encoding import EncodedEvidence


def log_space_prior(p: np.ndarray, log_weight: np.ndarray) -> np.ndarray:
    """Log sum_k w_k prod_i P(state_i | k) for every configuration (last variable fastest), term by term."""
    states = _binary_configurations(p.shape[1])[0].astype(bool)  # (J, n)
    with np.errstate(divide="ignore"):
        terms = np.where(states[None], np.log(p)[:, None, :], np.log1p(-p)[:, None, :]).sum(axis=2) + log_weight[:, None]  # (k, J)
    top = terms.max(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isfinite(top), top + np.log(np.exp(terms - np.where(np.isfinite(top), top, 0.0)).sum(axis=0)), -np.inf)


@pytest.mark.parametrize("n", [4, 7, 10])
def test_the_prior_by_halves_equals_the_log_space_sum(n):
    rng = np.random.default_rng(n)
    p = rng.uniform(0.001, 0.999, size=(9, n))
    p[0, 1], p[2, 3] = 0.0, 1.0  # impossible states: exact zeros
    log_weight = np.log(rng.uniform(0.01, 1.0, size=9))
    got = _split_prior(p, log_weight)
    expected = log_space_prior(p, log_weight)
    assert got is not None
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(expected))
    np.testing.assert_allclose(got[np.isfinite(got)], expected[np.isfinite(expected)], rtol=1e-12, atol=1e-12)


def test_terms_spanning_too_many_nats_go_back_to_the_log_space_path():
    p = np.full((2, 6), 0.5)
    p[1, 0] = 1e-300  # a state of probability 1e-300: 690 nats below the others
    assert _split_prior(p, np.zeros(2)) is None
    assert _split_prior(np.full((2, 6), 0.5), np.array([0.0, -700.0])) is None  # a root configuration 700 nats down
    assert _split_prior(np.full((2, 3), 0.5), np.zeros(2)) is None  # too few variables to split


def test_the_shipped_joint_is_the_same_by_either_path(monkeypatch):
    """At 16 causes with the context unobserved (2,048 root configurations), the joint posterior and P(e) of both paths."""
    model = pfb.load_model()
    net = model.network
    evidence = EncodedEvidence.from_rows(net.states, [{"time_since_surgery": "under_6_weeks", "radicular_pain": "yes", "fever": "no"}, {"onset": "immediate"}])
    causes = list(model.causes)
    fast = net.query(evidence, (), joint=causes)
    monkeypatch.setattr(_enumeration, "_SPLIT_RANGE", -1.0)  # every sum in log space
    slow = net.query(evidence, (), joint=causes)
    assert fast.method == slow.method == "structured enumeration"
    np.testing.assert_allclose(fast.joint.posterior, slow.joint.posterior, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(fast.log_evidence, slow.log_evidence, rtol=1e-12)
