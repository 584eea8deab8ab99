"""Plots are drawn from result tables and return their Axes; progress bars stay quiet when not interactive."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import postfusion_bayes as pfb  # noqa: E402
from postfusion_bayes import plotting, sensitivity  # noqa: E402

MODEL = pfb.load_model()
PATIENT = {"time_since_surgery": "over_2_years", "neurogenic_claudication": True}


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_tornado_plot_draws_two_bars_per_parameter_on_the_given_axes():
    table = sensitivity.tornado(MODEL, PATIENT, "adjacent_segment_disease")
    _, ax = plt.subplots()
    assert plotting.tornado_plot(table, top=7, ax=ax) is ax
    assert len(ax.patches) == 14
    assert [t.get_text() for t in ax.get_yticklabels()][-1] == table.index[0]


def test_other_plots_return_axes():
    f = sensitivity.one_way(MODEL, PATIENT, "adjacent_segment_disease", "findings.neurogenic_claudication.leak")
    assert plotting.one_way_plot(f).get_xlabel() == "findings.neurogenic_claudication.leak"
    mc = sensitivity.monte_carlo(MODEL, PATIENT, n=50, seed=0)
    assert len(plotting.interval_plot(mc).get_yticklabels()) == len(MODEL.causes)
    ax = plotting.diagnosis_plot(MODEL.diagnose({**PATIENT, "fever": True}))
    assert "RED FLAG" in ax.get_title()


def test_progress_bar_is_quiet_when_not_interactive_and_shown_when_asked(capsys):
    sensitivity.monte_carlo(MODEL, PATIENT, n=5000, seed=0)
    assert capsys.readouterr().err == ""
    sensitivity.monte_carlo(MODEL, PATIENT, n=5000, seed=0, progress=True)
    assert "parameter sets" in capsys.readouterr().err


def test_explanation_plot_draws_one_row_per_finding_and_one_column_per_cause():
    dx = MODEL.diagnose({**PATIENT, "back_pain": True, "radicular_pain": False, "onset": "late_after_good_result"})
    table = dx.explain()
    ax = plotting.explanation_plot(table)
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"{f} = {s}" for f, s in zip(table.index, table["observed"], strict=True)]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(table.attrs["causes"])
    image = ax.get_images()[0]
    assert image.get_clim()[0] == -image.get_clim()[1]  # symmetric around 0: red for, blue against


def test_explanation_plot_takes_log_likelihood_ratios_with_infinite_cells():
    import numpy as np

    ratios = np.log(MODEL.likelihood_ratios(time_since_surgery="6_to_24_months").xs("yes", level="state"))
    ratios.iloc[0, 0] = np.inf
    ax = plotting.explanation_plot(ratios, title="ln LR")
    assert ax.get_title() == "ln LR"
    assert "inf" in [t.get_text() for t in ax.texts]
    assert len(ax.get_yticklabels()) == len(ratios)


def test_network_plot_places_every_variable_in_its_layer():
    ax = plotting.network_plot(MODEL)
    labels = {t.get_text(): t.get_position() for t in ax.texts}
    assert set(MODEL.variables["name"]) <= set(labels)
    assert labels["time_since_surgery"][1] > labels["nerve_injury"][1] > labels["radicular_pain"][1]
    assert labels["fever"][1] == labels["radicular_pain"][1]


def test_the_readme_figure_is_drawn_by_the_plotting_code(tmp_path):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "docs" / "make_figures.py"
    spec = importlib.util.spec_from_file_location("make_figures", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(tmp_path / "figure.png")]) == 0
    assert (tmp_path / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
