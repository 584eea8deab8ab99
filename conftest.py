"""Repository-wide pytest setup: the notebooks' kernels import this checkout's package.

nbmake runs each notebook in a separate kernel, which imports whichever copy of
postfusion_bayes is installed (an editable install may point at another
checkout). Putting this checkout first on PYTHONPATH makes the notebooks test
the code beside them.
"""

from __future__ import annotations

import os
from pathlib import Path

_REPOSITORY = str(Path(__file__).resolve().parent)
os.environ["PYTHONPATH"] = os.pathsep.join([_REPOSITORY, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])
