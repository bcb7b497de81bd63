"""JupyterLab widgets (ipywidgets 8, anywidget + plotly.js) for running and reading searches.

    from workbench.widgets import LiveSearch, ParetoExplorer, FrontComparison
    live = LiveSearch(Search("vision", "stm32f746", "digits"), trials=14).start()   # cell returns at once
    ParetoExplorer(result, device="stm32l4r5")        # front on another device, click → inspector + export
    FrontComparison([(result, "stm32f746"), (result, "stm32l4r5")])   # fronts + hypervolumes

Every widget reads what the search stored through ``workbench.study.stored.StoredStudy`` (records with per-device
predictions; the one front rule and the one best rule) and survives a page reload: each figure is one synced state (``PlotView``), so a reloaded page draws what
Python holds; ``LiveSearch.attach(study, storage)`` finds a running search again. Importing this package
in IPython shows a ``WorkbenchError`` as one line instead of a traceback.
Needs the ``notebook`` extra (``pip install -e ".[notebook]"``): without it, importing this package raises
one :class:`ImportError` naming the missing packages and that command, before anything else is imported.
"""
import importlib.util as _importlib_util

NOTEBOOK_PACKAGES = ("ipywidgets", "plotly", "anywidget")
NOTEBOOK_INSTALL = 'pip install -e ".[notebook]"'
_missing = [name for name in NOTEBOOK_PACKAGES if _importlib_util.find_spec(name) is None]
if _missing:
    raise ImportError(f"workbench.widgets needs {', '.join(_missing)} (the notebook extra): {NOTEBOOK_INSTALL}")

from workbench.widgets.common import StudyView, show_errors_as_one_line, study_view
from workbench.widgets.comparison import FrontComparison
from workbench.widgets.explorer import ParetoExplorer
from workbench.widgets.export_panel import ExportPanel
from workbench.widgets.inspector import TrialInspector
from workbench.widgets.live import LiveSearch
from workbench.widgets.model_score import ModelScorePanel, score_file
from workbench.widgets.plot import PlotView

__all__ = ["ExportPanel", "FrontComparison", "LiveSearch", "ModelScorePanel", "ParetoExplorer", "PlotView", "StudyView",
           "TrialInspector", "explore", "score_file", "study_view"]

show_errors_as_one_line()


def explore(source, device: str | None = None, **kwargs) -> ParetoExplorer:
    """Shorthand for ``ParetoExplorer(source, device, ...)``."""
    return ParetoExplorer(source, device, **kwargs)
