"""Draw the README's figure with the library's own plotting code.

    python docs/make_figures.py            # writes docs/example_patient.png
    python docs/make_figures.py OUT.png    # somewhere else

The patient is the command-line demo patient (``postfusion_bayes.cli.EXAMPLE_PATIENT``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

import postfusion_bayes as pfb  # noqa: E402
from postfusion_bayes import plotting  # noqa: E402
from postfusion_bayes.cli import EXAMPLE_PATIENT  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Draw the README figure of the example patient.

    Parameters
    ----------
    argv : list of str, optional
        The output path as the only argument; ``docs/example_patient.png`` without one.

    Returns
    -------
    int
        The exit status, 0.
    """
    argv = sys.argv[1:] if argv is None else argv
    output = Path(argv[0]) if argv else Path(__file__).with_name("example_patient.png")
    dx = pfb.load_model().diagnose(EXAMPLE_PATIENT)
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 5.5), gridspec_kw={"width_ratios": [1, 1.5]}, layout="constrained")
    plotting.diagnosis_plot(dx, ax=left)
    plotting.explanation_plot(dx.explain(), ax=right)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
