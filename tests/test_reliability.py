"""The promises of the README's "what you can rely on", fuzzed across the whole command line and API.

The reproducers of each class of failure, and the fuzzing of each surface, live
beside this file (``test_reliability_input.py``, ``_cli``, ``_api``, ``_spec``);
here hypothesis checks the promises that cross those surfaces:

* a case file of any junk gives a diagnosis or exit 3 with an error naming the
  file, never a traceback;
* a raised red flag reaches every output: the API's diagnosis, ``diagnose_many``,
  and the command line's table, JSON and CSV, whatever else the evidence says;
* nothing returned holds a NaN.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import postfusion_bayes as pfb
from postfusion_bayes.cli import main

MODEL = pfb.load_model()
STATES = dict(zip(MODEL.variables["name"], MODEL.variables["states"], strict=True))
VARIABLES = sorted(STATES)
RED_FLAGS = MODEL.red_flags
EXIT_CODES = {0, 1, 2, 3}

#: JSON values nested a little, for case files.
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**400), max_value=10**400), st.floats(allow_nan=True), st.text(max_size=8)),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)),
    max_leaves=8,
)


def _check_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    status = main(argv)  # main must never raise for any input
    out, err = capsys.readouterr()
    assert status in EXIT_CODES, (argv, status, err)
    assert "Traceback" not in err and "Traceback" not in out, (argv, err)
    if status != 0:
        assert err.strip(), f"{argv}: exit {status} without saying why"
    return status, out, err


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.one_of(st.dictionaries(st.one_of(st.sampled_from(VARIABLES), st.text(max_size=8)), JSON_VALUES, max_size=4), JSON_VALUES))
def test_case_files_of_junk_give_a_result_or_exit_3(capsys, tmp_path_factory, case):
    folder = tmp_path_factory.mktemp("case")
    for name, text in (("case.json", json.dumps(case)), ("case.yaml", json.dumps(case))):
        path = folder / name
        path.write_text(text)
        status, out, err = _check_cli(capsys, ["diagnose", "--case", str(path), "--format", "json"])
        assert status in (0, 3), err
        if status == 3:
            assert name in err, f"the error does not name the file: {err}"
        else:
            posteriors = [c["posterior"] for c in json.loads(out)["causes"]]
            assert all(0 <= p <= 1 and math.isfinite(p) for p in posteriors)


# --------------------------------------------------------------------------- red flags reach every output

BACKGROUND = st.dictionaries(
    st.sampled_from([v for v in VARIABLES if v not in RED_FLAGS and len(STATES[v]) == 2]),
    st.sampled_from([True, False, None]),
    max_size=6,
)


def _with_flags(background: dict, flags: list[str]) -> dict:
    """Return the background with the red flags raised, never denying a finding a raised flag implies (progressive weakness: leg weakness)."""
    implied = {MODEL.spec.implications.get(flag) for flag in flags}
    return {**{k: v for k, v in background.items() if not (k in implied and v is False)}, **{flag: True for flag in flags}}


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(background=BACKGROUND, flags=st.lists(st.sampled_from(RED_FLAGS), min_size=1, max_size=3, unique=True))
def test_a_raised_red_flag_reaches_every_output(capsys, background, flags):
    evidence = _with_flags(background, flags)
    dx = MODEL.diagnose(evidence)
    assert sorted(f.name for f in dx.red_flags) == sorted(flags)
    assert not dx.posterior.isna().any()

    table = MODEL.diagnose_many(pd.DataFrame([evidence, background]))
    assert sorted(table["red_flags"].iloc[0].split(", ") if isinstance(table["red_flags"].iloc[0], str) else table["red_flags"].iloc[0]) == sorted(flags)

    argv = ["diagnose", *(f"{k}={'yes' if v else 'no'}" for k, v in evidence.items() if v is not None)]  # causes take yes/no too
    _, out, _ = _check_cli(capsys, [*argv, "--format", "json"])
    assert sorted(f["name"] for f in json.loads(out)["red_flags"]) == sorted(flags)
    _, out, _ = _check_cli(capsys, [*argv, "--format", "csv"])
    assert all(flag in out for flag in flags)


# The table is the full report (Diagnosis.summary: explain, next tests and the adequacy check's 1,000 simulated
# patients, about a second a patient at 16 causes), so it is fuzzed on fewer draws of the same strategies; the red
# flags it prints are the Diagnosis's, which the test above checks on every draw.
@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(background=BACKGROUND, flags=st.lists(st.sampled_from(RED_FLAGS), min_size=1, max_size=3, unique=True))
def test_a_raised_red_flag_reaches_the_table(capsys, background, flags):
    evidence = _with_flags(background, flags)
    argv = ["diagnose", *(f"{k}={'yes' if v else 'no'}" for k, v in evidence.items() if v is not None)]
    _, out, _ = _check_cli(capsys, [*argv, "--format", "table"])
    assert all(f"RED FLAG {flag}" in out for flag in flags)


@pytest.mark.parametrize("command", ["diagnose", "explain", "next-tests", "sensitivity"])
def test_every_command_puts_a_raised_red_flag_on_stdout(capsys, command):
    status, out, _ = _check_cli(capsys, [command, "time_since_surgery=under_6_weeks", "saddle_anesthesia=yes"])
    assert status == 0 and "saddle_anesthesia" in out
