"""Notebooks run top to bottom on tiny budgets, and the widgets behave without a browser.

Each notebook reads its budget from environment variables in its ``parameters`` cell (WORKBENCH_TRIALS,
WORKBENCH_EPOCHS, WORKBENCH_STORAGE, ...), so here they run in a temporary folder in seconds. Skipped
when the notebook extra is missing — except in CI (``CI=true``), where it must run.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SMALL = {"WORKBENCH_TRIALS": "4", "WORKBENCH_EPOCHS": "1", "WORKBENCH_EXPORT_FORMAT": "onnx"}


def _require(*modules: str) -> None:
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            reason = f"{module} is not installed (pip install -e '.[notebook]')"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"notebook tests must run in CI: {reason}")
            pytest.skip(reason)


def test_four_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_quickstart.ipynb", "02_compare_devices.ipynb",
                                           "03_quantization_policy.ipynb", "04_bring_your_own.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_parameterised(path):
    """Committed without outputs, with a papermill-style ``parameters`` cell that reads the environment."""
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "strip outputs"
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1 and "WORKBENCH_TRIALS" in "".join(params[0]["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    _require("nbclient", "nbformat", "ipykernel", "ipywidgets", "plotly", "anywidget")
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.chdir(tmp_path)
    for key, value in {**SMALL, "WORKBENCH_STORAGE": f"sqlite:///{tmp_path / 'wb.db'}",
                       "WORKBENCH_EXPORT_DIR": str(tmp_path / "export"),
                       "WORKBENCH_PROJECT": str(tmp_path / "project")}.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(path, as_version=4)
    start = time.monotonic()
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    print(f"{path.name}: {time.monotonic() - start:.1f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    widgets = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, "the notebook displays no widget"


# ---------------------------------------------------------------- widgets without a browser

@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    """A finished 6-trial sensor search (seconds): some trials trained, on several devices' fronts."""
    _require("ipywidgets", "plotly", "anywidget")
    from workbench.search import Search

    url = f"sqlite:///{tmp_path_factory.mktemp('widgets') / 'wb.db'}"
    return Search("sensor-imu", "stm32l4r5", "basic-motions", study_name="widgets", storage=url, epochs=1,
                  latency_budget_ms=40.0, seed=0).run(6)


def test_explorer_front_click_device_and_snapshot(small_study):
    from workbench.front import pareto_front
    from workbench.profiles import load_profile
    from workbench.widgets import ParetoExplorer
    from workbench.widgets.explorer import FRONT

    explorer = ParetoExplorer(small_study)
    front = explorer.figure.data[FRONT]
    expected = pareto_front(explorer.view.records, small_study.device, ("accuracy", "latency"), 40.0)
    assert expected and list(front.customdata) == [r.number for r in expected]
    assert explorer.figure._widget_data[FRONT]["customdata"] == list(front.customdata)  # reload-safe state

    class Points:  # what plotly passes to click callbacks
        point_inds = [0]

    explorer._clicked(front, Points(), None)
    assert f"Trial {front.customdata[0]} " in explorer.inspector.body.value
    assert "wb-layers" in explorer.inspector.body.value and "peak SRAM" in explorer.inspector.body.value

    explorer.device_picker.value = "stm32f746"
    m7 = load_profile("stm32f746")
    assert list(explorer.figure.data[FRONT].x) == [r.prediction(m7)["latency_ms"] for r in explorer.front]
    assert "stm32f746" in explorer.figure._widget_layout["title"]["text"]
    assert "on stm32f746" in explorer.inspector.body.value

    explorer.x_picker.value, explorer.y_picker.value = "flash", "latency@rpi4"
    assert explorer.figure.data[FRONT].mode == "markers"  # not the objective pair: no step line


def test_comparison_hypervolumes_share_one_reference(small_study):
    from workbench.front import hypervolume_2d
    from workbench.widgets import FrontComparison

    comparison = FrontComparison([(small_study, "stm32l4r5"), (small_study, "stm32f746", "M7")])
    rows = comparison.rows()
    assert [r["label"] for r in rows] == ["widgets @ stm32l4r5", "M7"]
    ref = comparison.reference
    for row, entry in zip(rows, comparison.entries):
        assert row["hypervolume"] == hypervolume_2d(entry.points(), ref)
    assert len(comparison.figure.data) == 2 and "hypervolume" in comparison.table.value


def test_live_search_refreshes_after_every_trial(tmp_path):
    _require("ipywidgets", "plotly", "anywidget")
    from workbench.search import Search
    from workbench.widgets import LiveSearch

    search = Search("sensor-imu", "stm32l4r5", "basic-motions", study_name="live",
                    storage=f"sqlite:///{tmp_path / 'wb.db'}", epochs=1, seed=0)
    live = LiveSearch(search, trials=3)
    seen = []
    original = live.explorer.refresh
    live.explorer.refresh = lambda: (original(), seen.append(len(live.explorer.view.records)))
    result = live.start().wait(timeout=300)
    assert seen == [1, 2, 3]  # the explorer saw each trial as soon as it was stored
    assert live.progress.value == 3 and result is not None and "best so far" in live.best.value
    assert live.last.value.startswith("trial 2")
