"""Models, specs, tables, compiled networks and encoded evidence pickle (process-based workers need them)."""

from __future__ import annotations

import pickle

import numpy as np

import postfusion_bayes as pfb
from postfusion_bayes.engine.encoding import EncodedEvidence

MODEL = pfb.load_model()
PATIENT = {"time_since_surgery": "over_2_years", "neurogenic_claudication": True, "back_pain": {"yes": 0.7, "no": 0.3}}


def test_a_model_round_trips_through_pickle_and_answers_the_same():
    again = pickle.loads(pickle.dumps(MODEL))
    assert again.spec == MODEL.spec
    np.testing.assert_array_equal(again.diagnose(PATIENT).posterior.to_numpy(), MODEL.diagnose(PATIENT).posterior.to_numpy())
    assert again.diagnose(PATIENT).posterior.index.equals(MODEL.diagnose(PATIENT).posterior.index)


def test_a_learned_model_keeps_its_learning_report_through_pickle():
    import pandas as pd

    # the rest of the context recorded: a row with its whole context missing expands into 1,024 completions at 16 causes
    context = {"time_since_surgery": "over_2_years", "diabetes": False, "osteoporosis": False, "multilevel_fusion": False,
               "fusion_to_sacrum": False, "surgical_approach": "posterior", "rhbmp2_used": False, "age_over_65": False}
    learned = MODEL.update_with_cases(pd.DataFrame({"smoker": [True, False, False], **{k: [v] * 3 for k, v in context.items()}}), max_iterations=3)
    again = pickle.loads(pickle.dumps(learned))
    assert again.learning_report == learned.learning_report
    assert again.spec.value("context.smoker.prevalence") == learned.spec.value("context.smoker.prevalence")


def test_spec_tables_and_network_round_trip_and_stay_read_only():
    spec = pickle.loads(pickle.dumps(MODEL.spec))
    assert spec == MODEL.spec
    try:
        spec.parameters["x"] = None  # type: ignore[index]
    except TypeError:
        pass
    else:
        raise AssertionError("the unpickled spec's parameters are writable")
    tables = pickle.loads(pickle.dumps(MODEL.tables))
    assert tables.variables == MODEL.tables.variables
    for name in tables.variables:
        np.testing.assert_array_equal(tables.cpts[name], MODEL.tables.cpts[name])
    network = pickle.loads(pickle.dumps(MODEL.network))
    assert network.memory_budget == MODEL.network.memory_budget and network.strategy == MODEL.network.strategy


def test_encoded_evidence_round_trips():
    ev = EncodedEvidence.from_rows(MODEL.network.states, [{"smoker": "yes"}, {}], [{"back_pain": [1e-300, 2e-300]}, {}])
    again = pickle.loads(pickle.dumps(ev))
    assert again.n_rows == 2
    np.testing.assert_array_equal(again.codes["smoker"], ev.codes["smoker"])
    np.testing.assert_array_equal(again.likelihoods["back_pain"], ev.likelihoods["back_pain"])
    np.testing.assert_array_equal(again.log_scale, ev.log_scale)
