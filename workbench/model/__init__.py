"""What a candidate *is*: the op vocabulary, architectures, search spaces and model families, and what turns
an architecture into a trained PyTorch model (builder, fake quantisation, training, data sets, proxies).

Floor 1: imports only :mod:`workbench._infra`. The modules that need torch (``builder``, ``quant``,
``train``, ``proxies``, ``weights``) are not imported here, so ``import workbench.model`` stays light.
"""
from workbench.model.arch import Architecture
from workbench.model.ops import Op
from workbench.model.space import RandomSuggester, SearchSpace, TrialSuggester, load_space

__all__ = ["Architecture", "Op", "RandomSuggester", "SearchSpace", "TrialSuggester", "load_space"]
