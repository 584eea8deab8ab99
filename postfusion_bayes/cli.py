"""Command line: ``python -m postfusion_bayes [variable=value ...]``.

With no arguments it diagnoses an example patient and prints the ranked table
of causes. Otherwise each argument is one observation, e.g.
``time_since_surgery=over_2_years neurogenic_claudication=yes``.
Uses only the public API.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import EvidenceError, SpecError, load_model
from .diagnosis import DISCLAIMER

#: The demo patient: 3 years after an L4-S1 fusion, walking brings on both legs' pain.
EXAMPLE_PATIENT = {
    "time_since_surgery": "over_2_years",
    "multilevel_fusion": True,
    "fusion_to_sacrum": True,
    "onset": "late_after_good_result",
    "neurogenic_claudication": True,
    "bilateral_leg_symptoms": True,
    "relief_sitting_or_bending_forward": True,
    "back_pain": True,
}


def _parse(pairs: Sequence[str]) -> dict[str, object]:
    evidence: dict[str, object] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise EvidenceError(f"argument {pair!r} is not variable=value")
        evidence[name.strip()] = value.strip()
    return evidence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m postfusion_bayes", description=__doc__.split("\n\n")[0])
    parser.add_argument("observations", nargs="*", help="variable=value, e.g. radicular_pain=yes")
    parser.add_argument("--priors", help="folder of priors to use instead of the shipped ones")
    args = parser.parse_args(argv)
    try:
        model = load_model(args.priors)
        evidence = _parse(args.observations) if args.observations else EXAMPLE_PATIENT
        dx = model.diagnose(evidence)
    except (EvidenceError, SpecError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    title = "Example patient" if not args.observations else "Patient"
    print(f"{title}: " + ", ".join(f"{k}={v}" for k, v in evidence.items()))
    for flag in dx.red_flags:
        print(flag)
    print(dx.to_frame().round(3).to_string())
    print(DISCLAIMER)
    return 0
