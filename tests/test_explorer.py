"""The interactive explorer without a browser: widgets set as a click sets them, displayed numbers against the model."""

from __future__ import annotations

import re
import shutil
import socket
import sys

import numpy as np
import pytest
from helpers import random_spec

import postfusion_bayes as pfb
from postfusion_bayes import explorer as ex
from postfusion_bayes import sensitivity
from postfusion_bayes.cli import main
from postfusion_bayes.spec import default_priors_path

pytest.importorskip("ipywidgets", reason="the explore extra (ipywidgets) is in the test extra")

PATIENT = {"time_since_surgery": "over_2_years", "neurogenic_claudication": True}
ROW = re.compile(r"data-cause='([^']+)' data-posterior='([^']+)' data-prior='([^']+)'")


@pytest.fixture(scope="module")
def model():
    return pfb.load_model()


def widgets_with(root, css: str) -> list:
    """Every widget under ``root`` (itself included) with the CSS class ``css``, depth first."""
    found = [root] if css in root._dom_classes else []
    for child in getattr(root, "children", ()):
        found += widgets_with(child, css)
    return found


def one(root, css: str):
    found = widgets_with(root, css)
    assert len(found) == 1, (css, len(found))
    return found[0]


def shown_posterior(root) -> dict[str, tuple[float, float]]:
    """Cause -> (posterior, prior) as the page shows them, in display order."""
    return {c: (float(p), float(q)) for c, p, q in ROW.findall(one(root, ex.POSTERIOR_CLASS).value)}


def assert_shows(root, dx) -> None:
    shown = shown_posterior(root)
    assert list(shown) == dx.posterior.index.tolist()  # most probable first
    for cause, (post, prior) in shown.items():
        assert post == dx.posterior[cause] and prior == dx.prior[cause], cause


def click(root, name: str, state: str) -> None:
    one(root, ex.variable_class(name)).value = "" if state == "unknown" else state
    root.explorer.wait()  # the next tests and the adequacy line follow in the background


def test_every_variable_has_one_control_of_its_role_and_findings_are_grouped_by_test_kind(model):
    root = ex.explore(model)
    roles = {"context": ex.CONTEXT_CLASS, "finding": ex.FINDING_CLASS, "red_flag": ex.RED_FLAG_CLASS}
    for _, row in model.variables.iterrows():
        if row["role"] == "cause":
            assert not widgets_with(root, ex.variable_class(row["name"]))
            continue
        control = one(root, ex.variable_class(row["name"]))
        assert roles[row["role"]] in control._dom_classes
        assert [v for _, v in control.options] == ["", *row["states"]]  # unknown first, then every state
    # the red flags come before the context, the context before the findings; each finding under the heading of its test kind
    order = []
    for w in _all(root):
        order += [c[len("pfb-var-"):] for c in w._dom_classes if c.startswith("pfb-var-")]
        if isinstance(getattr(w, "value", None), str) and w.value.startswith("<b>"):
            order.append(w.value)
    position = {t: i for i, t in enumerate(order)}
    assert max(position[f] for f in model.red_flags) < min(position[c] for c in model.spec.names("context"))
    headings = sorted(i for t, i in position.items() if t.startswith("<b>"))
    for name in model.spec.names("finding"):
        kind = model.spec.variables[name].test.replace("_", " ")
        heading = next(i for t, i in position.items() if t.startswith(f"<b>{kind}</b>"))
        assert max(h for h in headings if h < position[name]) == heading, name


def test_clicked_findings_show_the_posteriors_of_diagnose(model):
    root = ex.explore(model, PATIENT)
    assert_shows(root, model.diagnose(PATIENT))
    evidence = dict(PATIENT)
    for name, state in [("radicular_pain", "yes"), ("mri_adjacent_level_stenosis", "no"), ("onset", "late_after_good_result"), ("smoker", "yes")]:
        click(root, name, state)
        evidence[name] = state
        assert_shows(root, model.diagnose(evidence))
    click(root, "radicular_pain", "unknown")
    del evidence["radicular_pain"]
    assert_shows(root, model.diagnose(evidence))
    assert root.explorer.evidence == {k: ("yes" if v is True else v) for k, v in evidence.items()}


def test_the_red_flag_banner_appears_dims_the_differential_and_goes(model):
    root = ex.explore(model, PATIENT)
    root.explorer.wait()
    banner, differential, tests = one(root, ex.BANNER_CLASS), one(root, ex.DIFFERENTIAL_CLASS), one(root, ex.NEXT_TESTS_CLASS)
    assert banner.layout.display == "none" and ex.DIMMED_CLASS not in differential._dom_classes and "<table>" in tests.value
    click(root, "saddle_anesthesia", "yes")
    advice = model.spec.variables["saddle_anesthesia"].advice
    assert banner.layout.display is None and ex.RAISED_CLASS in banner._dom_classes and advice in banner.value
    assert ex.DIMMED_CLASS in differential._dom_classes and "<table>" not in tests.value  # no next tests during an emergency
    assert_shows(root, model.diagnose({**PATIENT, "saddle_anesthesia": True}))  # still shown, dimmed, for teaching
    click(root, "fever", "yes")
    assert all(model.spec.variables[f].advice in banner.value for f in ("saddle_anesthesia", "fever"))
    click(root, "saddle_anesthesia", "no")
    click(root, "fever", "unknown")
    assert banner.layout.display == "none" and banner.value == "" and ex.DIMMED_CLASS not in differential._dom_classes


def test_a_slider_move_shows_the_posterior_of_with_parameters(model):
    root = ex.explore(model, PATIENT)
    name = "findings.neurogenic_claudication.leak"
    one(root, ex.PARAMETER_CHOICE_CLASS).value = name
    slider = one(root, ex.PARAMETER_SLIDER_CLASS)
    p = model.spec.parameters[name]
    assert (slider.min, slider.max, slider.value) == (p.low, p.high, p.value)
    slider.value = p.high
    changed = model.with_parameters({name: p.high})
    assert_shows(root, changed.diagnose(PATIENT))
    assert changed.diagnose(PATIENT).posterior.iloc[0] != model.diagnose(PATIENT).posterior.iloc[0]  # the move matters
    assert root.explorer.changed == {name: p.high}
    one(root, ex.RESET_CLASS).click()
    assert_shows(root, model.diagnose(PATIENT))
    assert root.explorer.changed == {} and slider.value == p.value


def test_a_distribution_entry_moves_its_distribution_with_it(model):
    root = ex.explore(model, {"onset": "immediate", "radicular_pain": True})
    name = "onset.distributions.leak.immediate"
    one(root, ex.PARAMETER_CHOICE_CLASS).value = name
    one(root, ex.PARAMETER_SLIDER_CLASS).value = model.spec.parameters[name].high
    expected = sensitivity.covaried(model, name, model.spec.parameters[name].high)
    assert root.explorer.changed == expected and len(expected) > 1 and sum(expected.values()) == pytest.approx(1.0, abs=1e-12)
    assert_shows(root, model.with_parameters(expected).diagnose({"onset": "immediate", "radicular_pain": True}))


def test_next_tests_say_what_each_result_does_to_the_top_cause(model):
    root = ex.explore(model, PATIENT)
    root.explorer.wait()
    dx = model.diagnose(PATIENT)
    html = one(root, ex.NEXT_TESTS_CLASS).value
    tests = dx.next_tests().head(3)
    assert re.findall(r"data-test='([^']+)'", html) == tests.index.tolist()
    first = tests.index[0]
    for state in model.spec.variables[first].states:
        after = model.diagnose({**PATIENT, first: state}).posterior[dx.top]
        assert f"if {state}: {100 * after:.1f}%" in html


def test_the_adequacy_line_is_the_diagnosis_adequacy(model):
    root = ex.explore(model, PATIENT, background=False)
    line = one(root, ex.ADEQUACY_CLASS)
    assert str(model.diagnose(PATIENT).adequacy) in line.value and ex.WARNING_CLASS not in line._dom_classes


def test_impossible_evidence_is_said_and_shows_no_number(model):
    root = ex.explore(model)
    root.explorer.move("red_flags.fever.leak", 0.0)
    root.explorer.move("red_flags.fever.links.surgical_site_infection", 0.0)  # (fever is also a finding of infection)
    click(root, "fever", "yes")
    assert "impossible" in one(root, ex.ERROR_CLASS).value and root.explorer.diagnosis is None
    assert shown_posterior(root) == {} and "fever" in one(root, ex.BANNER_CLASS).value  # the red flag still leads
    click(root, "fever", "unknown")
    assert one(root, ex.ERROR_CLASS).value == "" and root.explorer.diagnosis is not None


def test_tornado_and_monte_carlo_on_demand(model):
    root = ex.explore(model, PATIENT)
    out_t, out_mc = one(root, ex.TORNADO_CLASS), one(root, ex.MONTE_CARLO_CLASS)
    assert out_t.value == "" and out_mc.value == ""  # nothing computed until asked
    one(root, ex.TORNADO_BUTTON_CLASS).click()
    top = model.diagnose(PATIENT).top
    table = sensitivity.tornado(model, PATIENT, top)
    assert re.findall(r"data-parameter='([^']+)'", out_t.value) == table.index[: ex.TORNADO_ROWS].tolist()
    one(root, ex.MONTE_CARLO_BUTTON_CLASS).click()
    band = sensitivity.monte_carlo(model, PATIENT, n=ex.MONTE_CARLO_DRAWS, seed=ex.MONTE_CARLO_SEED, progress=False)
    assert f"90% of draws {100 * band.loc[top, 'q05']:.1f}% to {100 * band.loc[top, 'q95']:.1f}%" in out_mc.value
    click(root, "radicular_pain", "yes")  # a new patient: the analyses of the old one go
    assert out_t.value == "" and out_mc.value == ""


def test_a_model_with_categorical_context_and_no_test_kinds():
    model = pfb.Model(random_spec(3, n_causes=3, n_findings=4, categorical=3))
    root = ex.explore(model, {"approach": "a2"})
    assert [v for _, v in one(root, ex.variable_class("approach")).options] == ["", "a0", "a1", "a2"]
    click(root, "finding1", "yes")
    assert_shows(root, model.diagnose({"approach": "a2", "finding1": "yes"}))
    assert any(getattr(w, "value", None) == "<b>other findings</b>" for w in _all(root))  # no test kinds in these priors


def _all(root) -> list:
    return [root] + [w for c in getattr(root, "children", ()) for w in _all(c)]


def test_text_from_the_priors_is_escaped(tmp_path):
    priors = tmp_path / "priors"
    shutil.copytree(default_priors_path(), priors)
    path = priors / "red_flags.yaml"
    path.write_text(path.read_text().replace("Suspected cauda equina syndrome: emergency MRI", "<script>alert(1)</script> emergency MRI", 1))
    root = ex.explore(pfb.load_model(priors), {"saddle_anesthesia": True})
    banner = one(root, ex.BANNER_CLASS).value
    assert "<script>" not in banner and "&lt;script&gt;alert(1)&lt;/script&gt;" in banner


def test_bad_input_is_refused_naming_it(model):
    with pytest.raises(pfb.EvidenceError, match="radicular_pian"):
        ex.explore(model, {"radicular_pian": True})
    with pytest.raises(pfb.ArgumentError, match="soft evidence given for radicular_pain"):
        ex.explore(model, {"radicular_pain": {"yes": 0.7, "no": 0.3}})
    with pytest.raises(pfb.ArgumentError, match="a cause given as evidence has no control: nerve_injury"):
        ex.explore(model, {"nerve_injury": "present"})
    explorer = ex.Explorer(model)
    with pytest.raises(pfb.ArgumentError, match="did you mean 'radicular_pain'"):
        explorer.set("radicular_pian", "yes")
    with pytest.raises(pfb.ArgumentError, match="allowed: None"):
        explorer.set("radicular_pain", "maybe")
    with pytest.raises(pfb.SpecError, match="did you mean"):
        explorer.move("findings.radicular_pain.leek", 0.1)
    assert explorer.changed == {}


def test_without_ipywidgets_the_error_names_the_extra(model, monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    with pytest.raises(ModuleNotFoundError, match=r'pip install "postfusion-bayes\[explore\]"'):
        ex.explore(model)


def test_an_update_stays_under_150_ms(model):
    explorer = ex.Explorer(model, PATIENT)
    times = []
    for name, state in [("radicular_pain", "yes"), ("back_pain", "no"), ("smoker", "yes")]:
        explorer.set(name, state)
        times.append(explorer.last_update_ms)
    explorer.wait()
    assert np.median(times) < 150  # a diagnosis and the HTML: about a millisecond (benchmarks/run_benchmarks.py --only explorer measures it)
    assert explorer.last_panels_ms > 0


def test_only_the_latest_update_reaches_the_slow_panels(model):
    explorer = ex.Explorer(model, PATIENT)
    for name in ("radicular_pain", "back_pain", "buttock_pain", "leg_weakness"):  # faster than the background can follow
        explorer.set(name, "yes")
    explorer.wait()
    latest = ex.Explorer(model, explorer.evidence, background=False)
    assert one(explorer.widget, ex.NEXT_TESTS_CLASS).value == one(latest.widget, ex.NEXT_TESTS_CLASS).value
    assert one(explorer.widget, ex.ADEQUACY_CLASS).value == one(latest.widget, ex.ADEQUACY_CLASS).value


def test_a_failure_in_the_background_is_shown_and_raised_by_wait(model, monkeypatch):
    explorer = ex.Explorer(model, PATIENT)
    explorer.wait()

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(explorer, "_next_tests", broken)
    explorer.set("radicular_pain", "yes")
    with pytest.raises(RuntimeError, match="boom"):
        explorer.wait()
    assert "RuntimeError: boom" in one(explorer.widget, ex.ERROR_CLASS).value


def test_cli_explore_refuses_bad_options_before_serving(capsys, tmp_path, monkeypatch):
    assert main(["explore", "--port", "70000"]) == 2
    assert "port number from 1 to 65535" in capsys.readouterr().err
    assert main(["explore", "--priors", str(tmp_path / "none")]) == 3
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["explore", "--port", str(taken.getsockname()[1])]) == 2
        assert "leave --port out for a free port" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "voila", None)
    assert main(["explore"]) == 2
    assert 'pip install "postfusion-bayes[explore]"' in capsys.readouterr().err


def test_the_page_notebook_shows_the_explorer_of_the_priors(tmp_path):
    cell = ex.page_notebook(str(tmp_path))["cells"][0]["source"]
    namespace: dict = {}
    priors = tmp_path
    shutil.copytree(default_priors_path(), priors, dirs_exist_ok=True)
    exec(compile(cell.replace("explore(load_model", "widget = explore(load_model"), "page", "exec"), namespace)
    assert str(priors) in namespace["widget"].explorer.model.spec.source
    assert ex.voila_command("x.ipynb", 1234)[-4:] == ["--port=1234", "--Voila.ip=127.0.0.1", "--Voila.port_retries=0", "--no-browser"]


def test_find_returns_the_one_widget_of_a_class(model):
    explorer = ex.Explorer(model)
    assert explorer.find(ex.POSTERIOR_CLASS) is one(explorer.widget, ex.POSTERIOR_CLASS)
    with pytest.raises(pfb.ArgumentError, match=f"{len(model.red_flags)} widgets of the explorer have the class"):
        explorer.find(ex.RED_FLAG_CLASS)
    with pytest.raises(pfb.ArgumentError, match="0 widgets"):
        explorer.find("pfb-nothing")
