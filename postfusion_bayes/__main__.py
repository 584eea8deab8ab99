"""``python -m postfusion_bayes``: the command line (the example patient with no arguments)."""

from .cli import run

run()
