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
