"""``python -m postfusion_bayes``: diagnose the example patient or one given on the command line."""

from .cli import main

raise SystemExit(main())
