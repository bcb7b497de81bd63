"""JupyterLab widgets (ipywidgets 8 + plotly FigureWidget) for running and reading searches.

    from workbench.widgets import LiveSearch, ParetoExplorer, FrontComparison
    live = LiveSearch(Search("vision", "stm32f746", "digits"), trials=14).start()   # cell returns at once
    ParetoExplorer(result, device="stm32l4r5")        # front on another device, click → inspector + export
    FrontComparison([(result, "stm32f746"), (result, "stm32l4r5")])   # fronts + hypervolumes

Every widget reads what the search stored (``workbench.front`` records with per-device predictions)
and survives a page reload: figures are redrawn from full data and their synced state kept current.
Needs the ``notebook`` extra (``pip install -e ".[notebook]"``).
"""
from .common import StudyView, study_view
from .comparison import FrontComparison
from .explorer import ParetoExplorer
from .export_panel import ExportPanel
from .inspector import TrialInspector
from .live import LiveSearch

__all__ = ["ExportPanel", "FrontComparison", "LiveSearch", "ParetoExplorer", "StudyView", "TrialInspector",
           "explore", "study_view"]


def explore(source, device: str | None = None, **kwargs) -> ParetoExplorer:
    """Shorthand for ``ParetoExplorer(source, device, ...)``."""
    return ParetoExplorer(source, device, **kwargs)
