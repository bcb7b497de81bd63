"""Notebooks run top to bottom on tiny budgets, and the widgets behave without a browser.

Each notebook reads its budget from environment variables in its ``parameters`` cell (WORKBENCH_TRIALS,
WORKBENCH_EPOCHS, WORKBENCH_STORAGE, ...), so here they run in a temporary folder in seconds. Skipped
when the notebook extra is missing — except in CI (``CI=true``), where it must run.
"""
from __future__ import annotations

import html
import json
import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SMALL = {"WORKBENCH_TRIALS": "4", "WORKBENCH_EPOCHS": "1", "WORKBENCH_EXPORT_FORMAT": "onnx",
         "WORKBENCH_SEEDS": "2"}  # SEEDS: fine-tuning seeds per scheme (05_on_device_learning)


def _require(*modules: str) -> None:
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            reason = f"{module} is not installed (pip install -e '.[notebook]')"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"notebook tests must run in CI: {reason}")
            pytest.skip(reason)


def test_five_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_quickstart.ipynb", "02_compare_devices.ipynb",
                                           "03_quantization_policy.ipynb", "04_bring_your_own.ipynb",
                                           "05_on_device_learning.ipynb"]


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
    # execute() raises CellExecutionError at the first cell that fails (allow_errors is False)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    print(f"{path.name}: {time.monotonic() - start:.1f} s")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))  # every cell ran, in order
    outputs = [o for c in code for o in c.get("outputs", [])]
    stderr = "".join(o.get("text", "") for o in outputs if o.output_type == "stream" and o.get("name") == "stderr")
    assert "Traceback" not in stderr  # nothing failed quietly (a background thread's exception, a caught error)
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, "the notebook displays no widget"
    _assert_searches_ran_their_budget(f"sqlite:///{tmp_path / 'wb.db'}", int(SMALL["WORKBENCH_TRIALS"]))
    manifests = list(tmp_path.glob("export/**/manifest.json")) + list(tmp_path.glob("project/exports/**/manifest.json"))
    if path.stem in ("01_quickstart", "04_bring_your_own"):  # the notebooks that end with an export
        assert len(manifests) == 1 and json.loads(manifests[0].read_text())["files"], manifests


def _assert_searches_ran_their_budget(storage: str, trials: int) -> None:
    """Every study the notebook created holds at least its trial budget of finished trials."""
    import optuna

    summaries = optuna.study.get_all_study_summaries(storage, include_best_trial=False)
    assert summaries, "the notebook stored no study"
    for summary in summaries:
        finished = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        assert len(finished) >= trials, (summary.study_name, len(finished))


# ---------------------------------------------------------------- widgets without a browser

@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    """A finished 6-trial sensor search (seconds): some trials trained, on several devices' fronts."""
    _require("ipywidgets", "plotly", "anywidget")
    from workbench.search import Search

    url = f"sqlite:///{tmp_path_factory.mktemp('widgets') / 'wb.db'}"
    return Search("sensor-imu", "stm32l4r5", "basic-motions", study_name="widgets", storage=url, epochs=1,
                  latency_budget_ms=40.0, seed=0).run(6)


def _contains(rng, value) -> bool:
    return rng is not None and rng[0] <= value <= rng[1]


def _framed(explorer) -> None:
    """Every front point and the selection lie inside the axis ranges the figure sends."""
    from workbench.widgets.explorer import FRONT, SELECTED

    ranges = explorer.axis_ranges()
    data = explorer.figure.figure["data"]
    for index in (FRONT, SELECTED):
        for x, y in zip(data[index]["x"], data[index]["y"]):
            assert _contains(ranges["x"], x), (data[index]["name"], x, ranges)
            if data[index].get("yaxis", "y") == "y":
                assert _contains(ranges["y"], y), (data[index]["name"], y, ranges)


def test_explorer_front_click_device_and_framing(small_study):
    from workbench.study.front import pareto_front
    from workbench.hardware.profiles import load_profile
    from workbench.widgets import ParetoExplorer
    from workbench.widgets.explorer import FRONT, SELECTED

    explorer = ParetoExplorer(small_study)
    front = explorer.figure.figure["data"][FRONT]
    expected = pareto_front(explorer.view.records, small_study.device, ("accuracy", "latency"), 40.0)
    assert expected and front["customdata"] == [r.number for r in expected]
    assert front["name"].startswith("Pareto front") and front["mode"] == "lines+markers"
    assert explorer.figure.figure["layout"]["shapes"][0]["x0"] == 40.0  # the latency budget line
    _framed(explorer)

    explorer.figure._message(None, {"event": "click", "customdata": front["customdata"][0]}, [])  # a browser click
    assert f"Trial {front['customdata'][0]} " in explorer.inspector.body.value
    assert "wb-layers" in explorer.inspector.body.value and "peak SRAM" in explorer.inspector.body.value
    assert explorer.figure.figure["data"][SELECTED]["customdata"] == [front["customdata"][0]]
    _framed(explorer)

    explorer.device_picker.value = "stm32f746"
    m7 = load_profile("stm32f746")
    assert explorer.figure.figure["data"][FRONT]["x"] == [r.prediction(m7)["latency_ms"] for r in explorer.front]
    assert "front on stm32f746" in explorer.figure.figure["layout"]["title"]["text"]
    assert "on stm32f746" in explorer.inspector.body.value
    from workbench.hardware.trust import latency_trust  # the status says how far the picked device's latencies go

    for precision in {r.arch.precision for r in explorer.front}:
        assert f"latency {html.escape(latency_trust(m7, precision).text)}" in explorer.status.value
    _framed(explorer)

    explorer.x_picker.value, explorer.y_picker.value = "flash", "latency@rpi4"
    assert explorer.figure.figure["data"][FRONT]["mode"] == "markers"  # not the objective pair: no step line
    assert "Pareto front on" not in explorer.figure.figure["layout"]["title"]["text"].split("<br>")[0]
    _framed(explorer)


def test_rejected_candidates_at_their_latency_or_marked_off_scale(small_study):
    from workbench.widgets import ParetoExplorer
    from workbench.widgets.explorer import REJECTED

    explorer = ParetoExplorer(small_study)
    trace = explorer.figure.figure["data"][REJECTED]
    lo, hi = explorer.axis_ranges()["x"]
    reals = {r.number: r.prediction(small_study.device)["latency_ms"]
             for r in explorer.view.records if r.rejected}  # duplicates are drawn as their architecture's point
    assert reals
    inside = {n: x for n, x in reals.items() if lo <= x <= hi}
    drawn = {n: x for n, x, text in zip(trace["customdata"], trace["x"], trace["text"]) if not text}
    assert drawn == inside  # at their real latency
    off = sorted(x for x in reals.values() if not lo <= x <= hi)
    labels = [text for text in trace["text"] if text]
    if off:  # one ▶ at the edge saying how many and their latencies
        assert len(labels) == 1 and f"{off[0]:.4g}" in labels[0] and f"{off[-1]:.4g}" in labels[0]
        assert labels[0].endswith("ms →") and (len(off) == 1 or labels[0].startswith(f"{len(off)} at "))
    else:
        assert not labels


def test_inspector_and_plot_agree_on_a_trial_over_the_budget(small_study):
    """Over the latency budget only: the plot greys it and the inspector says it does not fit, and why."""
    from workbench.widgets import ParetoExplorer
    from workbench.widgets.explorer import INFEASIBLE

    study = small_study.study
    trained = [r for r in ParetoExplorer(small_study).view.records if r.accuracy is not None]
    slowest = max(trained, key=lambda r: r.prediction(small_study.device)["latency_ms"])
    tight = slowest.prediction(small_study.device)["latency_ms"] - 0.5
    study.set_user_attr("latency_budget_ms", tight)
    try:
        explorer = ParetoExplorer(small_study)
        assert [kind for kind, _ in slowest.misfits(small_study.device, tight)] == ["latency"]
        assert slowest.number in explorer.figure.figure["data"][INFEASIBLE]["customdata"]
        explorer.select(slowest.number)
        body = explorer.inspector.body.value
        assert "data-fits='no'" in body and f"budget {tight:g} ms" in body
        assert "does not fit" in explorer.export_panel.target.value  # warned before exporting
    finally:
        study.set_user_attr("latency_budget_ms", 40.0)


def test_two_exports_of_two_trials_leave_two_manifests(small_study, tmp_path):
    _require("onnx", "onnxruntime")
    from workbench.widgets import ParetoExplorer

    explorer = ParetoExplorer(small_study, export_dir=str(tmp_path / "exports"))
    first, second = [r.number for r in explorer.view.records if r.accuracy is not None][:2]
    results = []
    for number in (first, second):
        explorer.select(number)
        results.append(explorer.export_panel.export("onnx"))
    folders = [r.out_dir for r in results]
    assert folders == [tmp_path / "exports" / "widgets" / f"trial-{n}" for n in (first, second)]
    for number, result in zip((first, second), results):
        manifest = json.loads((result.out_dir / "manifest.json").read_text())
        assert manifest["trial"] == number and manifest["fit"]["fits"] is True
    assert str(folders[1].absolute()) in explorer.export_panel.output.value  # absolute paths shown
    assert explorer.export_panel.format.value == "onnx"


def test_export_panel_adds_formats_and_shows_the_tflm_memory_check(small_study, tmp_path):
    """The sequence that once lost the bundle: tflm, then tflite-int8 into the same trial's folder. Both stay;
    the panel says what the folder holds, shows predicted vs measured arena and flash and the bundle arena,
    and each warning once (the trial is put over the latency budget so there is a misfit warning)."""
    _require("onnx", "onnxruntime", "litert_torch", "tflite_micro")
    from workbench.widgets import ParetoExplorer
    from workbench.widgets.common import esc

    study = small_study.study
    explorer = ParetoExplorer(small_study, export_dir=str(tmp_path / "exports"))
    record = next(r for r in explorer.view.records if r.accuracy is not None)
    study.set_user_attr("latency_budget_ms", record.prediction(small_study.device)["latency_ms"] - 0.5)
    try:
        explorer = ParetoExplorer(small_study, export_dir=str(tmp_path / "exports"))
        panel = explorer.export_panel
        explorer.select(record.number)
        first = panel.export("tflm")
        bundle = first.out_dir / first.manifest["files"]["tflm"]["bundle"]["folder"]
        kept = {p: p.read_bytes() for p in [first.files["tflm"], *bundle.iterdir()]}
        panel.format.value = "tflite-int8"
        assert "already holds tflm" in panel.target.value and "adds to them" in panel.target.value
        second = panel.export("tflite-int8")
    finally:
        study.set_user_attr("latency_budget_ms", 40.0)
    assert list(second.manifest["files"]) == ["tflite-int8", "tflm"]
    assert all(p.read_bytes() == data for p, data in kept.items())  # the bundle survived, byte for byte
    assert "TARGET_ARCH=cortex-m4+fp" in (bundle / "README.md").read_text()  # stm32l4r5: a Cortex-M4F
    html = panel.output.value
    assert html.count("<tr>") == 3 and "earlier export (" in html  # header, this export, the kept bundle
    for name in ("tflite-int8", "tflm"):
        memory = second.manifest["files"][name]["tflm"]["memory"]
        assert (f"arena predicted {memory['sram']['predicted']:,} B vs measured {memory['sram']['measured']:,} B"
                in html)
        assert f"flash predicted {memory['flash']['predicted']:,} B vs measured {memory['flash']['measured']:,} B" in html
    bundle_arena = second.manifest["files"]["tflm"]["bundle"]["arena_bytes"]
    assert html.count(f"bundle arena {bundle_arena:,} B") == 1
    assert html.count("does not fit") == 1 and "does not fit" not in panel.target.value  # once, in the result
    for text in {w for e in second.manifest["files"].values() for w in e.get("warnings", [])}:
        assert html.count(esc(text)) == 1
    assert "white-space:nowrap'>" in html and " KB</td>" in html
    assert "already holds tflite-int8" in panel.target.value and "tflm" in panel.target.value


def test_comparison_ranks_fronts_on_one_normalised_scale():
    """Hand-made fronts: in raw accuracy × ms the slow device's front wins by its scale; against one
    reference (the 20 ms budget) and normalised, the front that is better where it matters wins."""
    from workbench.study.compare import AXES, normalised_hypervolume, reference_for, verdict, where_better
    from workbench.study.objectives import hypervolume

    fast = [(0.80, 1.0), (0.90, 4.0), (0.94, 10.0)]   # a quick device's front
    slow = [(0.85, 12.0), (0.95, 18.0), (0.97, 60.0)]  # a slow device's, one point over the budget
    raw = {name: hypervolume(pts, (0.0, 1.1 * max(lat for _, lat in pts)), AXES) for name, pts in
           (("fast", fast), ("slow", slow))}
    assert raw["slow"] > raw["fast"]  # what a per-plot reference in ms crowned
    ref = reference_for([fast, slow], budget_ms=20.0)
    assert (ref.accuracy, ref.latency_ms) == (0.0, 20.0) and "budget" in ref.why
    hv_fast, hv_slow = normalised_hypervolume(fast, ref), normalised_hypervolume(slow, ref)
    # by hand: fast = 0.94·10 + 0.90·6 + 0.80·3 = 17.2 of 20; slow = 0.95·2 + 0.85·6 = 7.0 of 20
    assert hv_fast == pytest.approx(17.2 / 20) and hv_slow == pytest.approx(7.0 / 20)
    assert where_better(fast, slow, 20.0) == [(18.0, 20.0)]  # 0.95 > 0.94 from 18 ms on
    sentence = verdict([("M4", slow), ("M7", fast)], ref)
    assert sentence.startswith("M7 is the better front") and "86.0%" in sentence and "35.0%" in sentence
    assert "M4 is more accurate at latencies 18–20 ms" in sentence
    assert verdict([("A", []), ("B", [])], ref).startswith("No front")


def test_comparison_widget_shares_one_reference_and_explains_empty_fronts(small_study):
    from workbench.study.compare import normalised_hypervolume
    from workbench.widgets import FrontComparison

    comparison = FrontComparison([(small_study, "stm32l4r5"), (small_study, "stm32f746", "M7")])
    rows = comparison.rows()
    assert [r["label"] for r in rows] == ["widgets @ stm32l4r5", "M7"]
    ref = comparison.reference
    assert ref.latency_ms == 40.0  # the study's budget
    for row, entry in zip(rows, comparison.entries):
        assert row["hypervolume"] == normalised_hypervolume(entry.points(), ref) and 0 < row["hypervolume"] <= 1
    assert comparison.verdict() in comparison.sentence.value.replace("&#x27;", "'")
    assert len(comparison.figure.figure["data"]) == 2 and "hypervolume" in comparison.table.value

    tight = FrontComparison([(small_study, "stm32l4r5")], budget_ms=0.001)
    small_study.study.set_user_attr("latency_budget_ms", 0.001)
    try:
        row = FrontComparison([(small_study, "stm32l4r5")]).rows()[0]
    finally:
        small_study.study.set_user_attr("latency_budget_ms", 40.0)
    trained = sum(1 for r in tight.entries[0].view.records if r.accuracy is not None)
    assert row["front"] == 0 and row["why_empty"] == (f"{trained} of {trained} trained trials are slower than "
                                                      "the 0.001 ms budget on stm32l4r5")


def test_live_search_refreshes_after_every_trial(tmp_path):
    _require("ipywidgets", "plotly", "anywidget")
    from workbench.search import Search
    from workbench.widgets import LiveSearch

    url = f"sqlite:///{tmp_path / 'wb.db'}"
    search = Search("sensor-imu", "stm32l4r5", "basic-motions", study_name="live", storage=url, epochs=1, seed=0)
    live = LiveSearch(search, trials=3)
    assert "0 / 3" in live.count.value and "not started" in live.last.value
    seen = []
    original = live.explorer.refresh
    live.explorer.refresh = lambda: (original(), seen.append(len(live.explorer.view.records)))
    result = live.start().wait(timeout=300)
    assert seen == [1, 2, 3]  # the explorer saw each trial as soon as it was stored
    assert live.progress.value == 3 and result is not None and "best so far" in live.best.value
    assert "3 / 3" in live.count.value and "done" in live.count.value
    assert live.last.value.startswith("trial 2")

    resumed = LiveSearch(Search("sensor-imu", "stm32l4r5", "basic-motions", study_name="live", storage=url,
                                epochs=1, seed=0), trials=3)
    assert "complete: 3 / 3" in resumed.last.value  # a full bar never says "not started"
    resumed.start().wait(timeout=60)
    assert "nothing left to run" in resumed.last.value


def test_seconds_left_from_the_pace_of_recent_trials():
    from workbench.widgets.live import duration_text, seconds_left

    assert seconds_left([100.0], 1, 10) is None
    assert seconds_left([100.0, 110.0, 120.0], 3, 10) == pytest.approx(70.0)
    assert seconds_left([100.0, 110.0], 10, 10) == 0.0
    assert duration_text(70.0) == "about 1 min 10 s left" and duration_text(None).startswith("time left")


def test_attach_shows_a_search_running_in_another_process(tmp_path):
    """A kernel restarted mid-run: the search goes on in a process; attach() from a new cell follows it."""
    _require("ipywidgets", "plotly", "anywidget")
    import subprocess
    import sys

    from workbench.widgets import LiveSearch

    url = f"sqlite:///{tmp_path / 'wb.db'}"
    cmd = [sys.executable, "-m", "workbench.cli", "search", "--space", "sensor-imu", "--device", "stm32l4r5",
           "--data", "basic-motions", "--trials", "4", "--epochs", "1", "--study", "elsewhere", "--storage", url]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        live = None
        while live is None and time.monotonic() < deadline:
            try:
                live = LiveSearch.attach("elsewhere", url, poll_s=0.2)
            except Exception:  # noqa: BLE001 — the study does not exist until the process created it
                assert proc.poll() is None, proc.stderr.read()
                time.sleep(0.3)
        assert live is not None and live.following
        seen = []
        original = live.explorer.refresh
        live.explorer.refresh = lambda: (original(), seen.append(len(live.explorer.view.records)))
        live.wait(timeout=300)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert live.progress.value == 4 and "4 / 4" in live.count.value
    assert seen and seen[-1] == 4 and seen == sorted(seen)  # it followed the trials as they were stored
    assert LiveSearch.attach("elsewhere", url).finished == 4


def test_errors_show_as_one_line_without_cli_flags():
    _require("ipywidgets", "plotly", "anywidget")
    from workbench._infra.errors import WorkbenchError
    from workbench.widgets.common import notebook_message, one_line_error

    exc = WorkbenchError("--trials: the study stores no target number of trials; give --latency-budget too")
    assert notebook_message(exc) == "trials: the study stores no target number of trials; give latency_budget too"
    html = one_line_error(exc)
    assert "--" not in html and "Traceback" not in html and html.count("<div") == 1


def test_missing_notebook_extras_are_named_with_the_install_command():
    """Without ipywidgets/plotly the import fails at once with one message naming them and the command."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['plotly'] = None; sys.modules['ipywidgets'] = None\n"
            "import importlib.util as u; real = u.find_spec\n"
            "u.find_spec = lambda name, *a: None if name in ('plotly', 'ipywidgets') else real(name, *a)\n"
            "import workbench.widgets")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: workbench.widgets needs ipywidgets, plotly")
    assert 'pip install -e ".[notebook]"' in last


def test_widgets_show_training_memory_where_the_study_costs_it(tmp_path, small_study):
    """A study searched with ``train_sram``: the explorer plots it on an axis, the inspector and the hover say it,
    the comparison has its column; a study without a train scheme has no value on that axis (and no column)."""
    from workbench.search import Search
    from workbench.widgets import FrontComparison, ParetoExplorer
    from workbench.widgets.common import metric_value
    from workbench.widgets.explorer import FRONT

    url = f"sqlite:///{tmp_path / 'learn.db'}"
    learn = Search("sensor-imu", "stm32l4r5", "basic-motions", study_name="learn", storage=url, epochs=1, seed=0,
                   objectives=("accuracy", "latency", "train_sram"), train_scheme="bias:2").run(3)
    explorer = ParetoExplorer(learn)
    assert "train_sram" in [value for _, value in explorer.x_picker.options]
    explorer.x_picker.value = "train_sram"
    front = explorer.figure.figure["data"][FRONT]
    by_number = {r.number: r for r in explorer.view.records}
    assert front["x"] and front["x"] == [by_number[n].prediction(learn.device)["train_sram_bytes"] / 1024
                                         for n in front["customdata"]]
    assert "training SRAM" in front["hovertext"][0]
    explorer.figure._message(None, {"event": "click", "customdata": front["customdata"][0]}, [])
    assert "wb-training" in explorer.inspector.body.value and "(bias:2)" in explorer.inspector.body.value

    row = FrontComparison([(learn, "stm32l4r5"), (small_study, "stm32l4r5")])
    rows = row.rows()
    entry = row.entries[0]  # the comparison's own accuracy/latency front
    assert rows[0]["least_train_sram_kb"] == min(r.prediction(entry.profile)["train_sram_bytes"] / 1024
                                                 for r in entry.front)
    assert rows[1]["least_train_sram_kb"] is None
    assert "least training SRAM KB" in row.table.value
    plain = ParetoExplorer(small_study)
    record = plain.view.records[0]
    assert metric_value(record, "train_sram", small_study.device, {}) is None
    assert "least training SRAM KB" not in FrontComparison([(small_study, "stm32l4r5")]).table.value
