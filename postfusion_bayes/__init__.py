"""postfusion-bayes: Bayesian differential diagnosis of leg pain after lumbar spinal fusion.

A research and teaching tool, not a medical device: red flags (cauda equina,
infection, progressive weakness) always come first, whatever the probabilities say.

Examples
--------
>>> import postfusion_bayes as pfb
>>> model = pfb.load_model()
>>> dx = model.diagnose({"time_since_surgery": "under_6_weeks", "onset": "immediate",
...                      "radicular_pain": True, "ct_screw_breach": True})
>>> dx.top
'nerve_injury'
"""

from .diagnosis import Diagnosis, RedFlag
from .engine import CompiledNetwork, compile_network
from .engine.tables import NetworkTables
from .errors import (
    ArgumentError,
    ArgumentTypeError,
    ConvergenceWarning,
    EvidenceError,
    ExportError,
    MemoryBudgetError,
    NetworkError,
    ParameterError,
    PostfusionError,
    SpecError,
)
from .model import Model, load_model
from .spec import ModelSpec, load_spec

__all__ = [
    "ArgumentError",
    "ArgumentTypeError",
    "CompiledNetwork",
    "ConvergenceWarning",
    "Diagnosis",
    "EvidenceError",
    "ExportError",
    "MemoryBudgetError",
    "Model",
    "ModelSpec",
    "NetworkError",
    "NetworkTables",
    "ParameterError",
    "PostfusionError",
    "RedFlag",
    "SpecError",
    "compile_network",
    "load_model",
    "load_spec",
]

__version__ = "0.2.0"
