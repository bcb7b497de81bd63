"""Hardware-aware AutoML/NAS workbench for TinyML and edge devices.

Data flows one way: search space → architecture → (model, cost) → trial → front → export.
The small public API below is what notebooks and scripts use.
"""
from .arch import Architecture
from .cost import CostEstimate, estimate
from .errors import WorkbenchError
from .profiles import DeviceProfile, load_profile
from .score import score  # noqa: E402  (the function shadows its module's name on the package: by design)
from .space import RandomSuggester, SearchSpace, TrialSuggester, load_space

__all__ = [
    "Architecture", "CostEstimate", "DeviceProfile", "RandomSuggester", "SearchSpace", "TrialSuggester",
    "WorkbenchError", "estimate", "load_profile", "load_space", "score",
]
__version__ = "0.1.0"
