"""Hardware-aware AutoML/NAS workbench for TinyML and edge devices.

Data flows one way: search space → architecture → (model, cost) → trial → front → export. The packages are
floors, each importing only the ones below it (``tests/test_layout.py`` checks it):

``_infra`` → ``model`` → ``hardware`` → ``scoring``, ``storages`` → ``study`` → ``search`` → ``export`` →
``calibration`` → ``widgets`` → ``cli``.

The small public API below is what notebooks and scripts use.
"""
from workbench._infra import aliases as _aliases
from workbench._infra.errors import WorkbenchError
from workbench.hardware.cost import CostEstimate, estimate
from workbench.hardware.profiles import DeviceProfile, load_profile
from workbench.model.arch import Architecture
from workbench.model.space import RandomSuggester, SearchSpace, TrialSuggester, load_space
from workbench.scoring.score import score

_aliases.install()

__all__ = [
    "Architecture", "CostEstimate", "DeviceProfile", "RandomSuggester", "SearchSpace", "TrialSuggester",
    "WorkbenchError", "estimate", "load_profile", "load_space", "score",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    """Old module paths as attributes (``workbench.cost``): the moved module, with a FutureWarning."""
    return _aliases.moved_attribute(name)
