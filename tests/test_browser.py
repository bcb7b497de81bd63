"""The quickstart notebook in a real browser: JupyterLab + Debian's Chromium driven by Playwright.

What only a browser shows: the plotly figures render inside the widget outputs and frame their data (the
axis ranges hold every front point and the selection), a reload in the middle of the search brings back
a live view that keeps counting, a click on a point reaches Python and fills the inspector, the inspector
and the plot agree on feasibility for a trial over the latency budget, the device picker redraws the
front, and after a page reload every figure shows the *current* data (each figure is one synced state —
see ``workbench.widgets.plot``).

Nothing here retries (one exception, a reloaded page that restored no widget at all: see ``_reload``):
cells are run and the notebook saved through JupyterLab's command registry (``window.jupyterapp``, exposed with ``--LabApp.expose_app_in_browser`` as JupyterLab's own Galata tests do)
once the kernel is ready, instead of menu clicks, and every wait is for a state the kernel produced — a lost
event fails the test. The flow: run the cells up to the live search, re-attach to it from a new cell, reload
mid-search, run the rest, click, switch device, click a trial over the budget, reload.

Skipped (with the reason) when Chromium, Playwright or JupyterLab is missing — except in CI (``CI=true``),
where it must run. Screenshots go to a temporary folder, or to ``$WORKBENCH_SCREENSHOTS``: the README's
pictures come from ``WORKBENCH_SCREENSHOTS=docs/screenshots WORKBENCH_BROWSER_TRIALS=24 python -m pytest
tests/test_browser.py``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("WORKBENCH_SCREENSHOTS") or tempfile.mkdtemp(prefix="workbench-screenshots-"))
RUN_TIMEOUT_S = 420
EMPTY_PAGE_S = 120  # a reloaded page with no widget at all after this long gets one more reload (see _reload)
# Settings: no news/update pop-ups, every cell kept in the DOM (no windowing), and widget comm messages on the
# kernel's main shell rather than on subshells. JupyterLab 4.6 sends them to one subshell per comm target by
# default; after a page reload ipykernel 7.2 received messages for a subshell it no longer had, logged
# "Invalid message … KeyError: <subshell id>" and dropped them (ipython/ipykernel#1557): the reloaded page's
# widget-state request went unanswered ("Error displaying widget: model not found") — the lost events this
# test used to retry around.
OVERRIDES = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
             "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
             "@jupyterlab/apputils-extension:kernels-settings": {"commsOverSubshells": "disabled"}}
# What the browser drew: axis ranges, title and each trace's points (trial, data and pixel position).
FIGURE_JS = """(gd) => {
  const fl = gd._fullLayout, box = gd.getBoundingClientRect();
  const trace = (prefix) => gd.data.find(d => (d.name || '').startsWith(prefix));
  const points = (d) => !d ? [] : (d.x || []).map((x, i) => ({trial: d.customdata[i], x: x, y: d.y[i],
      main: (d.yaxis || 'y') === 'y',
      px: box.left + fl.xaxis._offset + fl.xaxis.l2p(fl.xaxis.d2l(x)),
      py: box.top + fl.yaxis._offset + fl.yaxis.l2p(fl.yaxis.d2l(d.y[i]))}));
  return {x: fl.xaxis.range, y: fl.yaxis.range, title: fl.title.text,
          front: points(trace('Pareto front')), selected: points(trace('selected')),
          fits: points(trace('trained, fits')), misfits: points(trace('trained, does not fit'))};
}"""


def _missing() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    for module in ("playwright", "jupyterlab", "ipywidgets", "plotly", "anywidget"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[notebook]' playwright)"
    return None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 with a copy of the quickstart notebook and tiny search budgets."""
    reason = _missing()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser test must run in CI: {reason}")
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(ROOT / "notebooks" / "01_quickstart.ipynb", root)
    settings = root / ".settings"
    settings.mkdir()
    (settings / "overrides.json").write_text(json.dumps(OVERRIDES))
    port, token = _free_port(), "workbench-test-token"
    trials = os.environ.get("WORKBENCH_BROWSER_TRIALS", "12")  # 24 (the notebook's default) for README shots
    env = {**os.environ, "WORKBENCH_TRIALS": trials, "WORKBENCH_EPOCHS": "2", "WORKBENCH_EXPORT_FORMAT": "onnx",
           "WORKBENCH_STORAGE": f"sqlite:///{root / 'wb.db'}", "WORKBENCH_EXPORT_DIR": str(root / "exports"),
           "JUPYTERLAB_SETTINGS_DIR": str(root / ".user-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(root / ".workspaces")}
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", f"--LabApp.app_settings_dir={settings}",
           "--LabApp.expose_app_in_browser=True"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(root / "jupyter.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/api/status?token={token}", proc, root / "jupyter.log")
        yield {"url": f"http://127.0.0.1:{port}/lab/tree/01_quickstart.ipynb?reset&token={token}", "root": root,
               "trials": int(trials)}
    finally:
        proc.terminate()  # our own server, by its PID; it shuts its kernels down
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"jupyter lab not ready after {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def page(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        context = browser.new_context(viewport={"width": 1280, "height": 1800})
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        pg.console_errors = []  # shown when an assertion fails: the widget manager logs why a view is missing
        pg.on("console", lambda m: pg.console_errors.append(f"{m.type}: {m.text[:300]}"))
        pg.page_errors = []  # uncaught errors and unhandled rejections: the console listener never sees them
        pg.on("pageerror", lambda e: pg.page_errors.append(str(e)[:300]))
        pg.widget_messages = WidgetMessages()
        pg.on("websocket", pg.widget_messages.watch)
        try:
            yield pg
        finally:
            browser.close()


class WidgetMessages:
    """The widget-restore messages a page exchanges with its kernel, with seconds since ``reset()``.

    A reloaded page's widget manager opens a ``jupyter.widget.control`` comm and sends ``request_states``; the
    kernel answers ``update_states`` (every widget's state in one message). Without an answer within 4 s it
    falls back to ``comm_info_request`` and one ``request_state`` per widget, each answered by an ``update``.
    When a reloaded page shows no widget, this record says which step was missing."""

    KINDS = {b"comm_open", b"comm_msg", b"comm_info_request", b"comm_info_reply"}
    MSG_TYPE = re.compile(rb'"msg_type":\s*"(\w+)"')  # the first one is the header's (then the parent's)
    DETAIL = re.compile(rb'"(?:method|target_name)":\s*"([\w.]+)"')

    def __init__(self):
        self.start, self.seen = time.monotonic(), []

    def reset(self) -> None:
        self.start, self.seen = time.monotonic(), []

    def watch(self, ws) -> None:
        if "/channels" in ws.url:
            ws.on("framesent", lambda payload: self._record(">", payload))
            ws.on("framereceived", lambda payload: self._record("<", payload))

    def _record(self, direction: str, payload) -> None:
        head = (payload if isinstance(payload, bytes) else payload.encode())[:3000]
        kind = self.MSG_TYPE.search(head)
        if kind and kind.group(1) in self.KINDS:
            detail = self.DETAIL.search(head, kind.end())
            name = kind.group(1).decode() + (f" {detail.group(1).decode()}" if detail else "")
            self.seen.append((round(time.monotonic() - self.start, 1), direction + name, len(payload)))

    def summary(self) -> str:
        """Each kind of message once, with when it first went (>) or came (<), how many and the largest size."""
        kinds: dict[str, list] = {}
        for at, name, size in self.seen:
            entry = kinds.setdefault(name, [at, 0, 0])
            entry[1], entry[2] = entry[1] + 1, max(entry[2], size)
        return "; ".join(f"{name} at {at} s (x{count}, up to {size} B)" for name, (at, count, size) in kinds.items()) \
            or "none: the page never asked the kernel for widget state"


KERNEL_IDLE_JS = """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return !!(w && w.context && w.context.isReady && w.sessionContext && w.sessionContext.isReady
            && w.sessionContext.session && w.sessionContext.session.kernel
            && w.sessionContext.session.kernel.status === 'idle'); }"""


def _kernel_idle(page, timeout_s: float = RUN_TIMEOUT_S) -> None:
    """The notebook is loaded and its kernel session exists and is idle. (The toolbar's execution indicator
    already says "idle" while the kernel is still starting; a Run All sent then runs nothing — the cause of
    the old test's "swallowed" menu clicks.)"""
    page.wait_for_function(KERNEL_IDLE_JS, timeout=timeout_s * 1000)


def _wait_all_ran(page) -> None:
    """Every code cell has an execution count (none queued or running) and the kernel is idle."""
    page.wait_for_function(
        "() => { const p = [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt')];"
        " return p.length && p.every(e => /\\[\\d+\\]/.test(e.textContent)); }", timeout=RUN_TIMEOUT_S * 1000)
    _kernel_idle(page)


def _wait_queued(page) -> None:
    page.wait_for_function("() => [...document.querySelectorAll('.jp-NotebookPanel .jp-InputArea-prompt')]"
                           ".some(e => /\\[\\*\\]/.test(e.textContent))", timeout=30_000)


def _cell_index(page, text: str) -> int:
    index = page.evaluate("(t) => window.jupyterapp.shell.currentWidget.content.widgets"
                          ".findIndex(c => c.model.sharedModel.getSource().includes(t))", text)
    assert index >= 0, f"no cell containing {text!r}"
    return index


def _run_around(page, index: int, command: str) -> None:
    """Make cell ``index`` the active one and run ``notebook:run-all-above`` (the cells before it) or
    ``notebook:run-all-below`` (it and the cells after it)."""
    _kernel_idle(page, 120)
    page.evaluate("([i, c]) => { const nb = window.jupyterapp.shell.currentWidget.content; nb.activeCellIndex = i;"
                  " window.jupyterapp.commands.execute(c); }", [index, command])
    _wait_queued(page)


def _append_and_run(page, source: str) -> None:
    """A new cell at the end with ``source``, run — what a person types into a new cell."""
    _kernel_idle(page, 120)
    page.evaluate("""async (src) => {
      const app = window.jupyterapp, nb = app.shell.currentWidget.content;
      nb.activeCellIndex = nb.widgets.length - 1;
      await app.commands.execute('notebook:insert-cell-below');
      nb.activeCell.model.sharedModel.setSource(src);
      app.commands.execute('notebook:run-cell');
    }""", source)


def _save(page) -> None:
    """Save through the command registry and wait for the save itself (its promise), not for a time."""
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands")
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")


def _explorer(page):
    """The stand-alone explorer (the live search's own explorer comes first in the notebook)."""
    return page.locator(".wb-explorer").nth(1)


def _figure(page, explorer) -> dict:
    """The drawn figure, with the plot centred in the viewport so its points' pixel positions are clickable."""
    plot = explorer.locator(".wb-plot .js-plotly-plot").first
    plot.wait_for()
    plot.evaluate("e => e.scrollIntoView({block: 'center'})")
    page.wait_for_function(  # the browser has drawn the last figure it received
        "(e) => { const w = e.closest('.wb-plot'); return w.dataset.revision && w.dataset.revision === "
        "w.dataset.pending; }", arg=plot.element_handle())
    return plot.evaluate(FIGURE_JS)


def _assert_framed(figure: dict) -> None:
    """The axis ranges hold every front point and the selection (issue 13: the best model was off-screen)."""
    (x0, x1), (y0, y1) = figure["x"], figure["y"]
    for p in figure["front"] + [p for p in figure["selected"] if p["main"]]:
        assert x0 <= p["x"] <= x1 and y0 <= p["y"] <= y1, (p, figure["x"], figure["y"])


def _count(page) -> tuple[int, int]:
    element = page.locator(".wb-live .wb-count").first
    element.wait_for()
    return int(element.get_attribute("data-finished")), int(element.get_attribute("data-target"))


def _wait_ringed(page, trial: int) -> None:
    """The explorer's figure rings ``trial`` (the kernel's answer to a click, drawn by the browser)."""
    page.wait_for_function("(t) => { const s = document.querySelectorAll('.wb-explorer')[1]"
                           ".querySelector('.js-plotly-plot').data.find(d => d.name === 'selected');"
                           " return s && s.customdata && s.customdata[0] === t; }", arg=trial)


def _click(page, point: dict) -> None:
    page.mouse.move(point["px"], point["py"])
    page.mouse.click(point["px"], point["py"])


def _loneliest(points: list[dict], others: list[dict]) -> dict:
    """The point farthest from every other drawn point: a click there cannot land on a neighbour."""
    def gap(p):
        return min(((p["px"] - q["px"]) ** 2 + (p["py"] - q["py"]) ** 2 for q in others if q is not p),
                   default=1e9)
    return max(points, key=gap)


def _screenshot(page, element, name: str) -> None:
    """Centre the element in a tall viewport, so no sticky toolbar covers it, and save its picture."""
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": 2600})
    element.evaluate("e => e.scrollIntoView({block: 'center'})")
    page.wait_for_timeout(500)
    element.screenshot(path=str(SCREENSHOTS / name))
    page.set_viewport_size(size)
    page.wait_for_timeout(300)


def _errors(page) -> list[str]:
    return page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] pre, "
                        ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']").all_inner_texts()


def _reload(page, figure_in):
    """Save, reload and wait for a figure: a widget that is not restored fails the test.

    The one allowance: when the reloaded page rendered *no* widget at all (no plot element, plotly.js never
    loaded, no "Error displaying widget"), the page is reloaded once more, with a warning. Seen only under
    heavy load on 2 cores (2 of 6 full runs, both times the first reload, about 10 s after the kernel
    started), never in 14 runs alone nor in 10 reloads with this test's processes starved (nice 19 against
    busy loops). Its cause is not established. In ipywidgets 8.1.9 a reloaded page keeps every output at
    "Loading widget..." without an error only when the widget manager's restore throws (``restoreWidgets``
    swallows the error) or never finishes; a missed 4 s deadline on the kernel's all-widgets reply
    (ipywidgets issue #3633) is not enough on its own — forced (the deadline patched to 0.1 s, or the kernel
    busy for 8 s) the per-model fallback restored every widget. The warning lists the widget messages the
    page exchanged and its uncaught errors, to tell the possible causes apart. A user reloads again; the
    test does the same, once. Anything else (stale or wrong data, a lost widget, a second empty page) fails."""
    _save(page)
    for attempt in (1, 2):
        page.console_errors.clear()
        page.page_errors.clear()
        page.widget_messages.reset()
        page.reload()
        page.locator(".jp-NotebookPanel:visible").wait_for()
        if _figure_restored(page, figure_in, allow_empty=attempt == 1):
            return
        warnings.warn(f"the reloaded page rendered no widget within {EMPTY_PAGE_S} s; {_page_report(page)}; "
                      "reloading once more")


def _page_report(page) -> str:
    """What the page did about its widgets since the reload: messages, uncaught errors, console."""
    loading = page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea-output')]"
                            ".filter(e => e.textContent.startsWith('Loading widget')).length")
    return (f"{loading} outputs still say 'Loading widget...'; widget messages: {page.widget_messages.summary()}; "
            f"page errors: {page.page_errors[-5:]}; browser console: {page.console_errors[-5:]}")


def _figure_restored(page, figure_in, allow_empty: bool) -> bool:
    """True once the figure is drawn (restoring every widget is slow on 2 busy cores: up to RUN_TIMEOUT_S);
    False when, with ``allow_empty``, nothing at all was restored after EMPTY_PAGE_S; else the test fails."""
    figure = figure_in(page).locator(".wb-plot .js-plotly-plot .main-svg").first
    waited = 0
    for limit in (EMPTY_PAGE_S, RUN_TIMEOUT_S):
        try:
            figure.wait_for(timeout=(limit - waited) * 1000)
            return True
        except Exception as exc:
            waited = limit
            lost = page.get_by_text("Error displaying widget").count()
            plots = page.evaluate("() => ({plotly: !!window.Plotly, plots: [...document.querySelectorAll('.wb-plot')]"
                                  ".map(e => ({...e.dataset}))})")
            empty = lost == 0 and not plots["plotly"] and not plots["plots"]
            if empty and allow_empty:
                return False
            if limit == RUN_TIMEOUT_S:
                raise AssertionError(f"no figure after a reload ({lost} widgets not restored; {plots}); "
                                     f"{_page_report(page)}") from exc
    raise AssertionError("unreachable: the last wait returns or raises")


def test_quickstart_in_browser(lab, page):
    from playwright.sync_api import expect

    expect.set_options(timeout=60_000)  # a kernel round trip on 2 busy cores; a lost event still fails

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(lab["url"])
    page.locator(".jp-NotebookPanel:visible").wait_for()

    # start the search (the cells up to the live one): it runs in a kernel thread, the kernel stays idle;
    # stop it after its first trial, so the rest of it happens after the re-attach and the reload
    _kernel_idle(page, 120)
    after_live = _cell_index(page, "LiveSearch(search") + 1
    _run_around(page, after_live, "notebook:run-all-above")
    button = page.locator(".wb-live .wb-stop").first
    expect(button).to_contain_text("Stop after this trial")
    expect(button).to_be_enabled()
    button.click()
    expect(button).to_contain_text("Resume search")
    stopped, target = _count(page)
    assert target == lab["trials"] and 1 <= stopped < target

    # re-attach from a new cell: a view of the study (the search is stopped: it follows the storage)
    _append_and_run(page, "LiveSearch.attach(STUDY, STORAGE)")
    attached = page.locator(".wb-live").nth(1).locator(".wb-count")
    expect(attached).to_have_attribute("data-finished", str(stopped))

    # reload: both views come back; resume from the reloaded page and both keep counting to the end
    _reload(page, lambda pg: pg.locator(".wb-live").first)
    assert _count(page) == (stopped, target)
    page.locator(".wb-live .wb-stop").first.click()
    for view in (0, 1):
        page.wait_for_function("([v, n]) => +document.querySelectorAll('.wb-live .wb-count')[v].dataset.finished > n",
                               arg=[view, stopped], timeout=RUN_TIMEOUT_S * 1000)
        page.wait_for_function("([v, n]) => +document.querySelectorAll('.wb-live .wb-count')[v].dataset.finished"
                               " >= n", arg=[view, target], timeout=RUN_TIMEOUT_S * 1000)
    expect(page.locator(".wb-live .wb-count").first).to_contain_text(f"{target} / {target}")

    # the rest of the notebook (waits for the search, explorer, comparison, pick, export)
    _run_around(page, _cell_index(page, "live.wait()"), "notebook:run-all-below")
    _wait_all_ran(page)
    errors = [e for e in _errors(page) if "Traceback" in e or "Error" in e]
    assert not errors, errors[:1]

    # the front renders inside the widget output, framed with the notebook's selection
    explorer = _explorer(page)
    expect(explorer.locator(".js-plotly-plot .gtitle")).to_contain_text("front on stm32f746")
    page.wait_for_function("() => document.querySelectorAll('.wb-explorer')[1].querySelector('.js-plotly-plot')"
                           ".data.find(d => d.name === 'selected').x.length === 1")  # the notebook's pick
    before = _figure(page, explorer)
    _assert_framed(before)
    assert before["front"] and before["selected"], "no front on the M7, or the notebook's pick is not ringed"

    # click a front point (another one than the notebook selected, when there is one) → inspector shows it
    shown = explorer.locator(".wb-trial-title")
    current = shown.text_content() or ""
    point = next((p for p in before["front"] if f"Trial {p['trial']} " not in current), before["front"][0])
    _click(page, point)
    expect(shown).to_contain_text(f"Trial {point['trial']} ")
    expect(explorer.locator(".wb-layers")).to_be_visible()
    _wait_ringed(page, point["trial"])
    _assert_framed(_figure(page, explorer))
    _screenshot(page, explorer, "explorer.png")
    _screenshot(page, page.locator(".wb-comparison").first, "device_comparison.png")

    # switch the device → the front is recomputed for it (latencies on the slower Cortex-M4); one pick, no retry
    explorer.locator(".widget-dropdown select").first.select_option("stm32l4r5")
    expect(explorer.locator(".js-plotly-plot .gtitle")).to_contain_text("front on stm32l4r5", timeout=60_000)
    expect(explorer.locator(".wb-inspector-body")).to_contain_text("on stm32l4r5")
    after = _figure(page, explorer)
    assert [(p["trial"], p["x"]) for p in after["front"]] != [(p["trial"], p["x"]) for p in before["front"]]
    _assert_framed(after)

    # a trained trial that does not fit the M4 (over the 12 ms budget there): plot and inspector agree
    assert after["misfits"], "no trained trial misses the M4's budget: nothing to check"
    drawn = after["front"] + after["fits"] + after["misfits"]
    misfit = _loneliest(after["misfits"], drawn)
    _click(page, misfit)
    expect(shown).to_contain_text(f"Trial {misfit['trial']} ")
    _wait_ringed(page, misfit["trial"])
    verdict = explorer.locator(".wb-fit")
    expect(verdict).to_have_attribute("data-fits", "no")
    expect(verdict).to_contain_text("does NOT fit stm32l4r5")
    if misfit["x"] > 12.0:  # over the budget on the plot's latency axis: the inspector says so too
        expect(verdict).to_contain_text("budget 12 ms")
    _assert_framed(_figure(page, explorer))

    # save, reload: the page reconnects to the running kernel and must draw the *current* figure
    selected = _figure(page, explorer)["selected"]
    _reload(page, _explorer)
    explorer = _explorer(page)
    expect(explorer.locator(".js-plotly-plot .gtitle")).to_contain_text("front on stm32l4r5")
    reloaded = _figure(page, explorer)
    assert [(p["trial"], p["x"]) for p in reloaded["front"]] == [(p["trial"], p["x"]) for p in after["front"]]
    assert [(p["trial"], p["x"], p["y"]) for p in reloaded["selected"]] == \
        [(p["trial"], p["x"], p["y"]) for p in selected]
    _assert_framed(reloaded)
    expect(explorer.locator(".wb-trial-title")).to_contain_text(f"Trial {misfit['trial']} ")
