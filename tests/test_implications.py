"""``implies`` between findings (issue 12): progressive weakness is a kind of leg weakness.

A priors folder is built in tmp_path from the shipped one with ``progressive_weakness: implies:
leg_weakness``. The rule (priors/README.md, postfusion_bayes.evidence): with the implying finding
present, the implied one observed present leaves the likelihood (it stays in the evidence shown),
observed absent is a contradiction refused on every path.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import postfusion_bayes as pfb
from postfusion_bayes import sensitivity
from postfusion_bayes.adequacy import check_adequacy
from postfusion_bayes.cli import main
from postfusion_bayes.spec import spec_from_documents

PRIORS = Path(__file__).resolve().parents[1] / "priors"
FILES = ("context.yaml", "causes.yaml", "findings.yaml", "red_flags.yaml", "onset.yaml")
CONTRADICTION = r"evidence 'progressive_weakness' is 'yes' and 'leg_weakness' is 'no', but the priors declare that 'progressive_weakness' implies 'leg_weakness'"


def documents(implies: bool = True) -> dict:
    docs = {name: yaml.safe_load((PRIORS / name).read_text(encoding="utf-8")) for name in FILES}
    if implies:
        docs["red_flags.yaml"]["red_flags"]["progressive_weakness"]["implies"] = "leg_weakness"
    else:
        docs["red_flags.yaml"]["red_flags"]["progressive_weakness"].pop("implies", None)
    return docs


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("implies") / "priors"
    shutil.copytree(PRIORS, folder, ignore=shutil.ignore_patterns("*.md", "__pycache__", "*.py"))
    for name, doc in documents().items():
        (folder / name).write_text(yaml.safe_dump(doc, sort_keys=False, width=1_000_000, allow_unicode=True), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def model(folder) -> pfb.Model:
    return pfb.load_model(folder)


CONTEXT = {"time_since_surgery": "under_6_weeks", "smoker": False}


def test_the_implication_is_read_from_the_priors(model):
    assert dict(model.spec.implications) == {"progressive_weakness": "leg_weakness"}
    assert model.spec.variables["progressive_weakness"].implies == "leg_weakness"
    assert dict(pfb.load_model().spec.implications) == {"progressive_weakness": "leg_weakness"}  # the shipped priors declare it too


@pytest.mark.parametrize("context", [{}, CONTEXT, {**CONTEXT, "radicular_pain": True, "onset": "immediate"}])
def test_weak_and_progressive_equals_progressive_alone_exactly(model, context):
    both = model.diagnose({**context, "leg_weakness": True, "progressive_weakness": True})
    alone = model.diagnose({**context, "progressive_weakness": True})
    pd.testing.assert_series_equal(both.posterior, alone.posterior, rtol=0, atol=0)
    assert both.evidence["leg_weakness"] == "yes"  # kept in the evidence shown
    # without the declaration, the weakness counts twice and the answer differs
    plain = pfb.Model(spec_from_documents(documents(implies=False)))
    twice = plain.diagnose({**context, "leg_weakness": True, "progressive_weakness": True}).posterior
    assert not np.allclose(twice[both.posterior.index], both.posterior, rtol=0, atol=1e-6)


def test_progressive_absent_or_unobserved_leaves_leg_weakness_in(model):
    plain = pfb.Model(spec_from_documents(documents(implies=False)))
    for evidence in ({"leg_weakness": True}, {"leg_weakness": True, "progressive_weakness": False}, {"leg_weakness": False, "progressive_weakness": False}):
        pd.testing.assert_series_equal(model.diagnose({**CONTEXT, **evidence}).posterior, plain.diagnose({**CONTEXT, **evidence}).posterior, rtol=0, atol=0)


def test_soft_leg_weakness_with_progressive_present_leaves_the_likelihood(model):
    alone = model.diagnose({**CONTEXT, "progressive_weakness": True}).posterior
    soft = model.diagnose({**CONTEXT, "progressive_weakness": True, "leg_weakness": {"yes": 0.7, "no": 0.3}}).posterior
    pd.testing.assert_series_equal(soft, alone, rtol=0, atol=0)
    with pytest.raises(pfb.EvidenceError, match=CONTRADICTION):
        model.diagnose({**CONTEXT, "progressive_weakness": True, "leg_weakness": {"yes": 0.0, "no": 1.0}})


# ------------------------------------------------------------------ the contradiction, on every path


def test_the_contradiction_is_refused_for_one_patient_with_the_red_flag_still_reported(model):
    with pytest.raises(pfb.EvidenceError, match=CONTRADICTION) as info:
        model.diagnose({**CONTEXT, "progressive_weakness": "yes", "leg_weakness": "no"})
    assert "Progressive neurological deficit" in str(info.value)  # the red flag's advice comes with the error
    # red flags are read whatever else the evidence says
    assert [f.name for f in model.check_red_flags({"progressive_weakness": True, "leg_weakness": False})] == ["progressive_weakness"]
    with pytest.raises(pfb.EvidenceError, match=CONTRADICTION):
        model.diagnose({"progressive_weakness": 1, "leg_weakness": 0.0})  # the slow path of the reader too


def test_the_contradiction_is_refused_in_a_table_naming_the_rows(model):
    frame = pd.DataFrame({"progressive_weakness": [True, True, False, None], "leg_weakness": [True, False, False, False]}, index=["a", "b", "c", "d"])
    with pytest.raises(pfb.EvidenceError, match=CONTRADICTION + r".*\(rows \['b'\]\)"):
        model.diagnose_many(frame)
    with pytest.raises(pfb.EvidenceError, match=CONTRADICTION + r".*\(rows \['b'\]\)"):
        model.update_with_cases(frame)


def test_the_contradiction_is_refused_by_sensitivity_and_the_adequacy_check(model):
    evidence = {"progressive_weakness": True, "leg_weakness": False}
    with pytest.raises(pfb.EvidenceError, match=CONTRADICTION):
        sensitivity.tornado(model, evidence, "nerve_injury", parameters=["findings.leg_weakness.leak"])
    with pytest.raises(pfb.EvidenceError, match=CONTRADICTION):
        check_adequacy(model, evidence, n=50)


def test_the_contradiction_is_refused_on_the_command_line(folder, capsys):
    code = main(["diagnose", "progressive_weakness=yes", "leg_weakness=no", "--priors", str(folder)])
    out, err = capsys.readouterr()
    assert code == 3
    assert re.search(CONTRADICTION, err) and "Traceback" not in err
    assert "Progressive neurological deficit" in out  # the red flag first, on stdout
    assert main(["diagnose", "progressive_weakness=yes", "leg_weakness=yes", "--priors", str(folder)]) == 0
    capsys.readouterr()
    # from a case file, and from a table of patients
    case = folder.parent / "case.yaml"
    case.write_text("progressive_weakness: yes\nleg_weakness: no\n", encoding="utf-8")
    assert main(["diagnose", "--case", str(case), "--priors", str(folder)]) == 3
    out, err = capsys.readouterr()
    assert re.search(CONTRADICTION, err) and "Progressive neurological deficit" in out
    patients = folder.parent / "patients.csv"
    patients.write_text("id,progressive_weakness,leg_weakness\nfine,yes,yes\nbad,yes,no\n", encoding="utf-8")
    assert main(["batch", str(patients), "--index-col", "id", "-q", "--priors", str(folder)]) == 3
    assert re.search(CONTRADICTION + r".*\(rows \['bad'\]\)", capsys.readouterr().err)


# ------------------------------------------------------------------ tables, learning, simulation


def test_diagnose_many_applies_the_rule_as_diagnose_does(model):
    rows = [
        {"progressive_weakness": True, "leg_weakness": True},
        {"progressive_weakness": True},
        {"progressive_weakness": False, "leg_weakness": True},
        {"leg_weakness": True},
    ]
    many = model.diagnose_many(pd.DataFrame(rows))
    for i, row in enumerate(rows):
        one = model.diagnose(row).posterior
        for cause in model.causes:
            assert many.iloc[i][cause] == pytest.approx(one[cause], rel=1e-12, abs=1e-15)
    assert many.iloc[0]["red_flags"] == "progressive_weakness"


def test_learning_reads_an_implied_weakness_as_unobserved(model):
    rng = np.random.default_rng(4)
    n = 60
    frame = pd.DataFrame(
        {
            "time_since_surgery": rng.choice(["under_6_weeks", "6_to_24_months"], n),
            "progressive_weakness": rng.random(n) < 0.3,
            "leg_weakness": True,
            "nerve_injury": rng.random(n) < 0.5,
        }
    )
    blanked = frame.astype({"leg_weakness": object})
    blanked.loc[frame["progressive_weakness"], "leg_weakness"] = None
    # (five EM maps: the two must agree map for map; convergence with 15 causes unrecorded takes many more)
    with pytest.warns(pfb.ConvergenceWarning):
        a = model.update_with_cases(frame, max_iterations=5)
    with pytest.warns(pfb.ConvergenceWarning):
        b = model.update_with_cases(blanked, max_iterations=5)
    for name in ("findings.leg_weakness.leak", "findings.leg_weakness.links.nerve_injury", "red_flags.progressive_weakness.links.nerve_injury"):
        assert a.spec.value(name) == pytest.approx(b.spec.value(name), rel=1e-12, abs=1e-15)
        assert a.spec.parameters[name].cases == pytest.approx(b.spec.parameters[name].cases, rel=1e-12)


def test_simulated_cases_respect_the_implication_and_can_be_learned_from(model):
    cases = model.with_parameters({"red_flags.progressive_weakness.leak": 0.3}).simulate(400, seed=3)
    progressive = cases["progressive_weakness"] == "yes"
    assert progressive.sum() > 50
    assert (cases.loc[progressive, "leg_weakness"] == "yes").all()
    model.update_with_cases(cases.iloc[:100], max_iterations=60, tolerance=1e-3)  # no contradiction to refuse (complete cases: the noisy-OR activations take EM maps)


# ------------------------------------------------------------------ reasoning on the diagnosis


def test_explain_and_next_tests_follow_the_implication(model):
    dx = model.diagnose({**CONTEXT, "progressive_weakness": True, "leg_weakness": True, "radicular_pain": True})
    table = dx.explain()
    assert (table.loc["leg_weakness", table.attrs["causes"]] == 0).all()  # left out of the likelihood: no weight
    assert (table.loc["progressive_weakness", table.attrs["causes"]].abs() > 0).any()
    # leaving progressive weakness out brings leg weakness back into the likelihood
    without = model.diagnose({**CONTEXT, "leg_weakness": True, "radicular_pain": True}).posterior[table.attrs["top_cause"]]
    assert table.loc["progressive_weakness", "top_posterior_without"] == pytest.approx(without, rel=1e-9)
    # a finding implied by one observed present is known: not a test to do
    tests = model.diagnose({**CONTEXT, "progressive_weakness": True}).next_tests()
    assert "leg_weakness" not in tests.index
    assert "leg_weakness" in model.diagnose(CONTEXT).next_tests().index


# ------------------------------------------------------------------ validation of implies


def _problems(change) -> list[str]:
    docs = documents(implies=False)
    change(docs)
    with pytest.raises(pfb.SpecError) as info:
        spec_from_documents(docs)
    return info.value.problems


def _red(docs, name="progressive_weakness"):
    return docs["red_flags.yaml"]["red_flags"][name]


def _finding(docs, name):
    return docs["findings.yaml"]["findings"][name]


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda d: _red(d).update(implies="leg_weaknes"),
         r"red_flags.yaml: red_flags.progressive_weakness.implies: 'leg_weaknes' is unknown, not a binary finding \(did you mean 'leg_weakness'\?\); allowed: binary findings"),
        (lambda d: _red(d).update(implies="fever"),
         r"red_flags.progressive_weakness.implies: 'fever' is a red flag, not a binary finding"),
        (lambda d: _red(d).update(implies="onset"),
         r"red_flags.progressive_weakness.implies: 'onset' is a categorical finding, not a binary finding"),
        (lambda d: _red(d).update(implies="smoker"),
         r"red_flags.progressive_weakness.implies: 'smoker' is a context, not a binary finding"),
        (lambda d: _red(d).update(implies="nerve_injury"),
         r"red_flags.progressive_weakness.implies: 'nerve_injury' is a cause, not a binary finding"),
        (lambda d: _finding(d, "leg_weakness").update(implies="leg_weakness"),
         r"findings.yaml: findings.leg_weakness.implies: 'leg_weakness' cannot imply itself"),
        (lambda d: (_red(d).update(implies="leg_weakness"), _finding(d, "leg_weakness").update(implies="numbness_tingling")),
         r"red_flags.progressive_weakness.implies: 'progressive_weakness' implies 'leg_weakness', which itself implies 'numbness_tingling': chains and cycles"),
        (lambda d: (_finding(d, "numbness_tingling").update(implies="leg_weakness"), _finding(d, "leg_weakness").update(implies="numbness_tingling")),
         r"findings.leg_weakness.implies: 'leg_weakness' implies 'numbness_tingling', which itself implies 'leg_weakness'"),
        (lambda d: _red(d).update(implies=["leg_weakness"]),
         r"red_flags.progressive_weakness.implies: expected the name of a binary finding, got \['leg_weakness'\]"),
        (lambda d: _red(d).update(implies=""),
         r"red_flags.progressive_weakness.implies: expected the name of a binary finding, got ''"),
        (lambda d: _red(d).update(implie="leg_weakness"),
         r"red_flags.progressive_weakness.implie: unknown key \(did you mean 'implies'\?\)"),
    ],
)  # fmt: skip
def test_each_bad_implication_gets_a_spec_error(change, expected):
    problems = _problems(change)
    assert any(re.search(expected, p) for p in problems), problems


def test_two_findings_may_imply_the_same_one():
    docs = documents()
    _finding(docs, "numbness_tingling")["implies"] = "leg_weakness"
    spec = spec_from_documents(docs)
    assert dict(spec.implications) == {"numbness_tingling": "leg_weakness", "progressive_weakness": "leg_weakness"}
