"""Plots are drawn from result tables and return their Axes; colours, labels and layout come from the style module."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import postfusion_bayes as pfb  # noqa: E402
from postfusion_bayes import plotting, sensitivity, style  # noqa: E402

MODEL = pfb.load_model()
PATIENT = {"time_since_surgery": "over_2_years", "neurogenic_claudication": True}
TORNADO = sensitivity.tornado(MODEL, PATIENT, "adjacent_segment_disease")
MONTE_CARLO = sensitivity.monte_carlo(MODEL, PATIENT, n=50, seed=0)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _same_colour(a, b) -> bool:
    return np.allclose(mcolors.to_rgb(a), mcolors.to_rgb(b), atol=1e-3)


def _drawn_texts(fig):
    """Every text a reader sees: axes texts, titles, axis labels and tick labels of visible axes, legends, colour bar labels."""
    texts = list(fig.texts)
    for ax in fig.axes:
        texts += [*ax.texts, ax.title, ax._left_title, ax._right_title]
        if ax.axison:
            texts += [ax.xaxis.label, ax.yaxis.label, *ax.get_xticklabels(), *ax.get_yticklabels()]
            if ax.get_yaxis().get_label_position() == "right" or ax.yaxis.get_ticks_position() == "right":
                texts += list(ax.yaxis.get_ticklabels(which="both"))
        legend = ax.get_legend()
        if legend is not None:
            texts += list(legend.get_texts())
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def _figures():
    dx = MODEL.diagnose({**PATIENT, "back_pain": True, "radicular_pain": False})
    steps = pd.DataFrame([MODEL.diagnose(PATIENT).posterior, dx.posterior], index=["start", "+ back pain, radicular pain"])
    return {
        "tornado": lambda: plotting.tornado_plot(TORNADO, top=10, model=MODEL, evidence=PATIENT, sources=True),
        "interval": lambda: plotting.interval_plot(MONTE_CARLO, evidence=PATIENT),
        "diagnosis": lambda: plotting.diagnosis_plot(dx),
        "red flag": lambda: plotting.diagnosis_plot(MODEL.diagnose({**PATIENT, "saddle_anesthesia": True, "fever": True})),
        "explanation": lambda: plotting.explanation_plot(dx.explain()),
        "network": lambda: plotting.network_plot(MODEL),
        "trajectory": lambda: plotting.trajectory_plot(steps),
    }


@pytest.mark.parametrize("name", list(_figures()))
def test_a_plain_savefig_keeps_every_label_inside_the_canvas(name, tmp_path):
    fig = _figures()[name]().figure
    fig.savefig(tmp_path / "figure.png", bbox_inches=None)
    renderer = fig.canvas.get_renderer()
    canvas = fig.bbox
    texts = _drawn_texts(fig)
    assert len(texts) >= 5
    outside = [t.get_text()[:40] for t in texts if not canvas.padded(1).contains(*t.get_window_extent(renderer).p0) or not canvas.padded(1).contains(*t.get_window_extent(renderer).p1)]
    assert outside == []
    assert min(t.get_fontsize() for t in texts) >= style.FONT_SIZE  # legible at notebook width


def test_tornado_plot_short_labels_values_on_the_bars_patient_in_title_legend_outside():
    _, ax = plt.subplots(layout="constrained")
    assert plotting.tornado_plot(TORNADO, top=7, ax=ax, model=MODEL, evidence=PATIENT) is ax
    assert len(ax.patches) == 14  # two bars per parameter
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-1] == style.parameter_label(TORNADO.index[0])  # largest swing on top
    assert not any("." in label for label in labels)  # no dotted paths
    written = {t.get_text().strip() for t in ax.texts}
    for name, row in TORNADO.head(7).iterrows():
        assert {plotting._number(row["low"]), plotting._number(row["high"])} <= written, name
    title = " ".join(ax.get_title(loc="left").split())
    assert "patient: time since surgery: over 2 years; neurogenic claudication: yes" in title
    # each bar is orange where it raises the probability, purple where it lowers it
    centre = TORNADO.attrs["posterior"]
    for bar in ax.patches:
        up = bar.get_x() + bar.get_width() > centre + 1e-12 if bar.get_width() >= 0 else False
        assert _same_colour(bar.get_facecolor(), style.COLOURS["increase" if up else "decrease"])
    ax.figure.canvas.draw()
    legend, axes = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= axes.x1  # the legend does not cover bars


def test_tornado_plot_prints_the_source_of_each_number_when_asked():
    ax = plotting.tornado_plot(TORNADO, top=5, model=MODEL, sources=True)
    footnote = next(t.get_text() for t in ax.texts if t.get_text().startswith("Sources"))
    notes = plotting.parameter_notes(TORNADO.index[:5], MODEL)
    for i, (label, note) in enumerate(zip(notes["label"], notes["note"], strict=True), start=1):
        assert f"[{i}] {label}: {note[:20]}" in footnote
    assert [t.get_text() for t in ax.get_yticklabels()][-1].startswith("[1] ")
    with pytest.raises(pfb.PostfusionError, match="needs the model"):
        plotting.tornado_plot(TORNADO, sources=True)


def test_parameter_notes_give_the_source_or_the_judgment_and_refuse_unknown_names():
    params = MODEL.parameters.set_index("name")
    without = params.index[params["source"].fillna("") == ""][0]
    with_source = params.index[params["source"].fillna("") != ""][0]
    notes = plotting.parameter_notes([without, with_source], MODEL)
    assert notes.loc[without, "note"] == f"judgment: {params.loc[without, 'judgment']}"
    assert notes.loc[with_source, "note"] == params.loc[with_source, "source"]
    with pytest.raises(pfb.PostfusionError, match="findings.radicular_pain.leak"):
        plotting.parameter_notes(["findings.radicular_pain.laek"], MODEL)


def test_other_plots_return_axes():
    f = sensitivity.one_way(MODEL, PATIENT, "adjacent_segment_disease", "findings.neurogenic_claudication.leak")
    assert plotting.one_way_plot(f).get_xlabel() == "findings.neurogenic_claudication.leak"


def test_interval_plot_shows_the_probability_that_each_cause_comes_first():
    ax = plotting.interval_plot(MONTE_CARLO, evidence=PATIENT)
    causes = [t.get_text() for t in ax.get_yticklabels()]
    assert causes == [style.variable_label(c) for c in MONTE_CARLO.index[::-1]]
    shares = [t.get_text() for t in ax.right.get_yticklabels()]
    assert shares == [f"{p:.0%}" for p in MONTE_CARLO["probability_first"].iloc[::-1]]
    assert ax.right.get_ylim() == ax.get_ylim()  # the percentages sit on their cause's row


def test_trajectory_plot_is_labelled_by_the_tests_not_by_step_numbers():
    steps = pd.DataFrame({"a": [0.2, 0.5, 0.9], "b": [0.3, 0.2, 0.1], "c": [0.1, 0.1, 0.05]}, index=["start", "+ gadolinium MRI", "+ EMG"])
    ax = plotting.trajectory_plot(steps, highlight=1)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["start", "+ gadolinium MRI", "+ EMG"]
    ends = {t.get_text(): t.get_color() for t in ax.texts}
    assert set(ends) == {"a", "b", "c"}  # every line named where it ends
    assert _same_colour(ends["a"], style.SERIES[0]) and ends["b"] == ends["c"]  # only the leading cause coloured
    with pytest.raises(pfb.PostfusionError, match="nothing to plot"):
        plotting.trajectory_plot(steps.iloc[:0])


def test_diagnosis_plot_without_a_red_flag_has_prior_ghosts_and_posterior_bars_in_the_style_colours():
    dx = MODEL.diagnose(PATIENT)
    ax = plotting.diagnosis_plot(dx)
    assert all(t.get_gid() != "red-flag-banner" for t in (ax.title, ax._left_title))
    colours = {mcolors.to_hex(p.get_facecolor()[:3]) for p in ax.patches}
    assert colours == {style.COLOURS["prior"], style.COLOURS["posterior"]}
    assert all(p.get_alpha() in (None, 1.0) for p in ax.patches)
    assert {f"{p:.0%}" for p in dx.posterior} <= {t.get_text() for t in ax.texts}


def test_diagnosis_plot_with_a_red_flag_leads_with_a_banner_and_dims_the_differential():
    dx = MODEL.diagnose({**PATIENT, "saddle_anesthesia": True})
    ax = plotting.diagnosis_plot(dx)
    banner = ax._left_title
    assert banner.get_gid() == "red-flag-banner"
    assert banner.get_text().startswith("RED FLAG")
    assert " ".join(banner.get_text().split()).find(" ".join(dx.red_flags[0].advice.split())) > 0  # the whole advice, wrapped
    assert _same_colour(banner.get_bbox_patch().get_facecolor(), style.COLOURS["red_flag"])
    assert all(p.get_alpha() is not None and p.get_alpha() < 0.5 for p in ax.patches)
    assert any("for teaching only" in t.get_text() for t in ax.texts)


def test_explanation_plot_draws_one_row_per_finding_and_one_column_per_cause():
    dx = MODEL.diagnose({**PATIENT, "back_pain": True, "radicular_pain": False, "onset": "late_after_good_result"})
    table = dx.explain()
    ax = plotting.explanation_plot(table)
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"{style.variable_label(f)}: {style.state_label(s)}" for f, s in zip(table.index, table["observed"], strict=True)]
    assert [t.get_text() for t in ax.get_xticklabels()] == [style.variable_label(c) for c in table.attrs["causes"]]


def test_explanation_plot_has_one_fixed_documented_colour_scale_and_no_negative_zero():
    small = pd.DataFrame({"a": [0.2, -0.04], "b": [-0.3, 0.0]}, index=["x", "y"])
    large = pd.DataFrame({"a": [5.0, -0.2], "b": [1.0, 2.9]}, index=["x", "y"])
    limits = []
    for table in (small, large):
        ax = plotting.explanation_plot(table)
        image = ax.get_images()[0]
        limits.append(image.get_clim())
        assert "-0.0" not in [t.get_text() for t in ax.texts]
        colourbar = ax.figure.axes[-1]
        assert "clipped to [-3, 3]" in " ".join(colourbar.get_ylabel().split())
        cmap = image.get_cmap()
        assert _same_colour(cmap(0.0), style.COLOURS["decrease"]) and _same_colour(cmap(1.0), style.COLOURS["increase"])
    assert limits == [(-3.0, 3.0), (-3.0, 3.0)]  # the darkest orange is ln LR 3 in every figure
    ax = plotting.explanation_plot(large, limit=1.5)
    assert ax.get_images()[0].get_clim() == (-1.5, 1.5)
    assert "5.0" in [t.get_text() for t in ax.texts]  # the value beyond the scale is still written
    with pytest.raises(pfb.PostfusionError, match="limit"):
        plotting.explanation_plot(large, limit=0)


def test_explanation_plot_takes_log_likelihood_ratios_with_infinite_cells():
    ratios = np.log(MODEL.likelihood_ratios(time_since_surgery="6_to_24_months").xs("yes", level="state"))
    ratios.iloc[0, 0] = np.inf
    ax = plotting.explanation_plot(ratios, title="ln LR")
    assert ax.get_title(loc="left") == "ln LR"
    assert "inf" in [t.get_text() for t in ax.texts]
    assert len(ax.get_yticklabels()) == len(ratios)


def test_network_plot_groups_findings_under_their_test_kind_and_says_what_red_flags_point_to():
    ax = plotting.network_plot(MODEL)
    texts = {t.get_text(): t for t in ax.texts}
    spec = MODEL.spec
    label = {name: style.variable_label(name) for name in spec.variables}
    found = {name: next(t for text, t in texts.items() if text == label[name] or text.startswith(label[name] + " ->")) for name in spec.variables}
    y = {name: t.get_position()[1] for name, t in found.items()}
    x = {name: found[name].get_position()[0] for name in spec.variables}
    assert x["time_since_surgery"] < x["nerve_injury"] < x["radicular_pain"]  # context, causes, findings left to right
    # findings come in blocks, one per test kind, cheapest kind first, each under its header
    kinds = list(style.kind_colours(MODEL))
    order = sorted((n for n in spec.variables if spec.variables[n].role == "finding"), key=lambda n: -y[n])
    assert [spec.variables[n].test for n in order] == sorted((spec.variables[n].test for n in order), key=kinds.index)
    for kind in {spec.variables[n].test for n in order}:
        header = next(t for text, t in texts.items() if text.startswith(style.variable_label(kind) + " (cost"))
        members = [y[n] for n in order if spec.variables[n].test == kind]
        assert max(members) < header.get_position()[1] < max(members) + 1.5
        assert _same_colour(header.get_color(), style.kind_colours(MODEL)[kind])
    # red flags: in the red-flag colour, below the findings, with their advice; unlinked ones say so
    for flag in spec.names("red_flag"):
        text = found[flag]
        assert _same_colour(text.get_color(), style.COLOURS["red_flag"])
        assert y[flag] < min(y[n] for n in order)
        assert "->" in text.get_text()
        assert ("no modelled cause" in text.get_text()) == (not MODEL.tables.parents.get(flag))
    assert "fever -> suspected infection" in texts  # (fever is also a finding of surgical_site_infection)
    edges = ax.collections[0]
    assert len(edges.get_segments()) == sum(len(p) for p in MODEL.tables.parents.values())
    assert min(edges.get_linewidths()) >= 0.8


def test_style_labels_read_the_model_and_never_leave_a_dotted_path():
    assert style.variable_label("mri_enhancing_scar") == "MRI enhancing scar"
    assert style.variable_label("relief_sitting_or_bending_forward") == "relief sitting or bending forward"
    assert style.parameter_label("findings.radicular_pain.links.nerve_injury") == "radicular pain <- nerve injury"
    assert style.parameter_label("red_flags.fever.leak") == "fever: leak"
    assert style.parameter_label("causes.nerve_injury.odds_ratios.smoker") == "nerve injury: OR smoker"
    assert style.parameter_label("causes.nerve_injury.odds_ratios.surgical_approach.lateral") == "nerve injury: OR surgical approach lateral"
    assert style.parameter_label("context.time_since_surgery.distribution.over_2_years") == "time since surgery: over 2 years"
    labels = [style.parameter_label(n) for n in MODEL.parameters["name"]]
    assert not any("." in label for label in labels)
    assert len(set(labels)) == len(labels)  # short, and still one label per number
    labelled = MODEL.variables.assign(label=lambda v: v["name"].str.upper())

    class Described:  # a model whose description carries its own short labels
        variables = labelled
        parameters = MODEL.parameters.assign(label="a number")

    assert style.variable_label("fever", Described) == "FEVER"
    assert style.parameter_label("findings.radicular_pain.leak", Described) == "a number"


def test_style_colours_one_per_concept_and_test_kinds_darker_when_dearer():
    concepts = ["context", "cause", "prior", "red_flag", "increase", "decrease", "finding"]
    assert len({style.COLOURS[c] for c in concepts}) == len(concepts)
    assert style.COLOURS["posterior"] == style.COLOURS["cause"]
    shades = style.kind_colours(MODEL)
    costs = [MODEL.spec.test_kinds[k].cost for k in shades]
    assert costs == sorted(costs) and set(shades) == set(MODEL.spec.test_kinds)
    lightness = [sum(mcolors.to_rgb(c)) for c in shades.values()]
    assert lightness == sorted(lightness, reverse=True)


def test_progress_bar_is_quiet_when_not_interactive_and_shown_when_asked(capsys):
    # the bar counts chunks of 2,048 parameter sets and is offered only past one chunk: 2,049 sets make two chunks,
    # the fewest for which the bar could appear (5,000 checked the same at more than twice the cost)
    n = 2049
    sensitivity.monte_carlo(MODEL, PATIENT, n=n, seed=0)
    assert capsys.readouterr().err == ""
    sensitivity.monte_carlo(MODEL, PATIENT, n=n, seed=0, progress=True)
    assert "parameter sets" in capsys.readouterr().err


def test_the_readme_figure_is_drawn_by_the_plotting_code(tmp_path):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "docs" / "make_figures.py"
    spec = importlib.util.spec_from_file_location("make_figures", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(tmp_path / "figure.png")]) == 0
    assert (tmp_path / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_progress_bar_uses_the_notebook_widget_only_when_ipywidgets_can_be_imported(monkeypatch):
    import importlib.util

    import tqdm
    import tqdm.auto

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ipywidgets" else find_spec(name, *a))
    assert sensitivity._progress_bar() is tqdm.tqdm  # no red "IProgress not found" box in Jupyter
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "ipywidgets" else find_spec(name, *a))
    assert sensitivity._progress_bar() is tqdm.auto.tqdm


def test_the_readme_figures_example_runs_after_the_quick_start():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    figures = next(b for b in blocks if "plotting.network_plot(" in b)
    namespace: dict = {}
    exec(compile(blocks[0], "README.md quick start", "exec"), namespace)
    exec(compile(figures, "README.md figures", "exec"), namespace)
    assert len(plt.get_fignums()) == 6  # six figures; parameter_notes is a table
