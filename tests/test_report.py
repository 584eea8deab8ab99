"""The HTML and text reports of a diagnosis (postfusion_bayes.report), read back with html.parser."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser

import pytest
import yaml

import postfusion_bayes as pfb
from postfusion_bayes import formatting
from postfusion_bayes.report import NO_TESTS_WITH_RED_FLAG, NOT_FITTING, TEACHING_DIVIDER
from postfusion_bayes.spec import default_priors_path

MODEL = pfb.load_model()
CLAUDICATION = {"time_since_surgery": "over_2_years", "neurogenic_claudication": True, "back_pain": {"no": 0.3, "yes": 0.7}}
SUBACUTE = {"time_since_surgery": "6_weeks_to_6_months", "onset": "gradual_after_relief", "radicular_pain": True}


class Page(HTMLParser):
    """The report as a list of (tag, classes, text) for every element, texts joined, and every tag seen."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str, list[str]]] = []
        self.elements: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag in ("br",):
            return
        self.stack.append((tag, dict(attrs).get("class") or "", []))

    def handle_endtag(self, tag):
        while self.stack:
            name, classes, parts = self.stack.pop()
            text = "".join(parts)
            self.elements.append((name, classes, text))
            if self.stack:
                self.stack[-1][2].append(text)
            if name == tag:
                break

    def handle_data(self, data):
        self.text.append(data)
        if self.stack:
            self.stack[-1][2].append(data)

    def with_class(self, cls: str) -> list[str]:
        return [text for _, classes, text in self.elements if cls in classes.split()]

    @property
    def all_text(self) -> str:
        return "".join(self.text)


def whole_percent(p: float) -> str:
    """Return the percentage as a person rounds it, for probabilities between 1% and 99% (worked out apart from formatting.py)."""
    assert 0.0095 < p < 0.9905
    return f"{int(100 * p + 0.5)}%"


def test_the_posteriors_are_the_diagnosis_in_percent_most_probable_first():
    dx = MODEL.diagnose(SUBACUTE)
    page = Page(dx._repr_html_())
    rows = [text for tag, classes, text in page.elements if tag == "tr" and "pfb-cause" in classes.split()]
    assert len(rows) == len(MODEL.causes)
    shown_posteriors = page.with_class("pfb-post")
    expected = [whole_percent(p) if 0.0095 < p < 0.9905 else formatting.percent(p) for p in dx.posterior]
    assert shown_posteriors == expected
    first_cells = [text for tag, classes, text in page.elements if tag == "td"][: len(MODEL.causes) * 4 : 4]
    assert first_cells == list(dx.posterior.index)
    ratios = page.with_class("pfb-lr")
    assert ratios == [formatting.likelihood_ratio(x) for x in dx.to_frame()["likelihood_ratio"]]
    assert all("e+" not in r and len(r) <= 7 for r in ratios)


def test_the_evidence_is_shown_as_chips_with_soft_evidence_and_its_likelihoods():
    dx = MODEL.diagnose(CLAUDICATION)
    chips = Page(dx._repr_html_()).with_class("pfb-chip")
    assert "back_pain = soft: no 0.3, yes 0.7" in chips
    assert "time_since_surgery = over_2_years" in chips and "neurogenic_claudication = yes" in chips


def test_next_tests_in_the_report_are_the_one_ranking_with_what_each_result_would_do():
    dx = MODEL.diagnose(SUBACUTE)
    page = Page(dx._repr_html_())
    tests = dx.next_tests(by="procedure").head(3)
    rows = [text for tag, classes, text in page.elements if tag == "tr" and "pfb-test" in classes.split()]
    assert all(row.startswith(test) for row, test in zip(rows, tests.index, strict=True))
    effects = page.with_class("pfb-effects")
    first = dx.result_effects().loc[tests.index[0]]
    for result, row in first.iterrows():
        said = formatting.result_effect(str(result), row["probability"], dx.top, row["top_now"], row["top_after"])
        assert said.replace(f" {formatting.ARROW} ", " \N{RIGHTWARDS ARROW} ") in effects[0]
    assert "Next best tests" in page.all_text and NO_TESTS_WITH_RED_FLAG not in page.all_text


def test_red_flag_mode_banner_first_then_divider_then_the_differential_and_no_tests():
    dx = MODEL.diagnose({"time_since_surgery": "over_2_years", "neurogenic_claudication": True, "saddle_anesthesia": True})
    html = dx._repr_html_()
    page = Page(html)
    alerts = page.with_class("pfb-alert")
    assert len(alerts) == 1 and alerts[0].startswith(f"RED FLAG saddle_anesthesia: {dx.red_flags[0].advice}")
    text = page.all_text
    order = ["RED FLAG saddle_anesthesia", NO_TESTS_WITH_RED_FLAG, TEACHING_DIVIDER, "Causes", "Red flags raised", "Findings that mattered most"]
    positions = [text.index(m) for m in order]
    assert positions == sorted(positions)
    assert html.index("pfb-alert") < html.index("pfb-divider") < html.index("pfb-causes")
    assert "Next best tests" not in text and not page.with_class("pfb-test")
    mattered = [t for tag, classes, t in page.elements if tag == "tr" and "pfb-mattered" in classes.split()]
    assert mattered and not any(t.startswith("saddle_anesthesia") for t in mattered)
    assert page.with_class("pfb-raised") == ["saddle_anesthesia"]


def test_red_flag_mode_computes_no_next_tests(monkeypatch):
    """The reports show no next tests while a red flag is raised, so they do not compute them (a second or more at 16 causes)."""
    from postfusion_bayes.reasoning import Reasoner

    def refuse(*args, **kwargs):
        raise AssertionError("next tests computed for a report that cannot show them")

    monkeypatch.setattr(Reasoner, "next_tests", refuse)
    monkeypatch.setattr(Reasoner, "result_effects", refuse)
    dx = MODEL.diagnose({"time_since_surgery": "over_2_years", "neurogenic_claudication": True, "saddle_anesthesia": True})
    text = dx.summary()
    assert "Next tests: none while a red flag is raised" in text and "Findings that mattered most" in text
    assert "Next best tests" not in dx._repr_html_()


def test_a_patient_who_does_not_fit_is_said_first_and_the_top_cause_is_not_explained():
    findings = MODEL.variables.query("role == 'finding'")["name"]
    # every context variable observed (its first state): with only the time known the adequacy check marginalises
    # the rest for each of its 1,000 simulated patients, about 12 s; every finding present fits the model as poorly
    context = {name: MODEL.spec.variables[name].states[0] for name in MODEL.spec.names("context")}
    absurd = {**context, "time_since_surgery": "under_6_weeks", **{f: True for f in findings if f != "onset"}}
    dx = MODEL.diagnose(absurd)
    assert dx.adequacy.fires
    html = dx._repr_html_()
    text = Page(html).all_text
    assert text.index(NOT_FITTING) < text.index("Causes")
    assert "Findings that mattered" not in text and "Next best tests" not in text
    summary = dx.summary()
    assert summary.index(NOT_FITTING) < summary.index("Causes") and "Findings that mattered" not in summary


def test_texts_from_the_priors_are_escaped(tmp_path):
    folder = tmp_path / "priors"
    shutil.copytree(default_priors_path(), folder)
    path = folder / "red_flags.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["red_flags"]["fever"]["description"] = "Fever <script>alert('description')</script>"
    doc["red_flags"]["fever"]["advice"] = "Act now <script>alert('advice')</script> & <b>review</b>"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path = folder / "findings.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["findings"]["radicular_pain"]["description"] = "Pain <img src=x onerror=alert(1)>"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    dx = pfb.load_model(folder).diagnose({"time_since_surgery": "under_6_weeks", "radicular_pain": True, "fever": True})
    html = dx._repr_html_()
    page = Page(html)
    assert "script" not in page.tags and "img" not in page.tags
    assert page.tags.count("b") == len(dx.causes)  # the posteriors' own bold, none from the advice
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "Act now <script>alert('advice')</script> & <b>review</b>" in page.all_text  # shown as text, not run


def test_the_html_reads_in_dark_themes_too():
    html = MODEL.diagnose({**SUBACUTE, "fever": True})._repr_html_().lower().replace(" ", "")
    for hard in ("background:#fff", "background:white", "background-color:#fff", "background-color:white", "color:#000", "color:black", "color:#fff", "color:white"):
        assert hard not in html, hard
    assert "currentcolor" in html and "color:inherit" in html and "background:transparent" in html


def test_the_disclaimer_ends_every_report():
    from postfusion_bayes.diagnosis import DISCLAIMER

    for evidence in (SUBACUTE, {"fever": True}, {}):
        dx = MODEL.diagnose(evidence)
        assert Page(dx._repr_html_()).with_class("pfb-disclaimer") == [DISCLAIMER]
        assert dx.summary().endswith(DISCLAIMER)


def test_a_diagnosis_without_its_model_still_renders():
    dx = MODEL.diagnose(SUBACUTE)
    bare = pfb.Diagnosis(dx.causes, dx.posterior_values, dx.prior_values, [], dict(dx.evidence))
    page = Page(bare._repr_html_())
    assert len(page.with_class("pfb-post")) == len(MODEL.causes) and "Next best tests" not in page.all_text


@pytest.mark.parametrize("n_tests", [0, 1, 5])
def test_the_text_report_lists_as_many_tests_as_asked(n_tests):
    import re

    text = MODEL.diagnose(SUBACUTE).summary(n_tests=n_tests)
    section = text.split("Next best tests")[1] if n_tests else ""
    assert len(re.findall(r"^  \d+\. ", section, flags=re.M)) == n_tests
