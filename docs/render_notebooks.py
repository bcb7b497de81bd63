"""Run the notebooks on a small, stated budget and keep their outputs for the documentation site.

``notebooks/*.ipynb`` are committed without outputs (``tests/test_notebooks.py`` checks it), so the site
cannot show what they print unless something runs them. This script runs each one top to bottom with
nbclient in a temporary folder, with the budget in :data:`BUDGET` (the environment variables the notebooks
read in their ``parameters`` cell), and writes the executed copy to ``build/docs/notebooks/`` where the
docs hook (``docs/hooks/notebooks.py``) hands it to mkdocs-jupyter.

Widgets need a kernel; a web page has none. Each widget output is therefore replaced by a static snapshot of
the state it ended in: its HTML parts as they were, its plotly figures drawn by plotly.js (the copy in the
plotly wheel, served with the site), its buttons and pickers shown but inert. A note at the top of each page
says so, and gives the budget, the machine and the time the run took.

``python docs/render_notebooks.py [NAME ...]`` (every notebook by default); ``python docs/build.py`` runs it and
then ``mkdocs build --strict``.
"""
from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "build" / "docs" / "notebooks"

# The budget every notebook runs with here: few trials, one epoch, the ONNX export (no converters needed).
# Small on purpose: the pages show what each cell prints and draws, not a search worth keeping.
BUDGET = {"WORKBENCH_TRIALS": "8", "WORKBENCH_EPOCHS": "1", "WORKBENCH_EXPORT_FORMAT": "onnx"}
SOURCE_HASH_KEY = "workbench_docs_source_sha256"  # in the rendered notebook's metadata: what it was run from
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def source_hash(path: Path) -> str:
    """The committed notebook's hash; the docs hook compares it, so a stale rendering is a build warning."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def machine() -> str:
    """The CPU model and core count, as the benchmark tables name their machine."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def run(path: Path, workdir: Path) -> tuple[object, float]:
    """Execute one notebook in ``workdir`` with :data:`BUDGET`; returns the executed notebook and seconds."""
    import nbformat  # optional: nbformat (the docs extra)
    from nbclient import NotebookClient  # optional: nbclient (the docs extra)

    env = {**BUDGET, "WORKBENCH_STORAGE": f"sqlite:///{workdir / 'workbench.db'}",
           "WORKBENCH_EXPORT_DIR": str(workdir / "exports"), "WORKBENCH_PROJECT": str(workdir / "my_project"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        nb = nbformat.read(path, as_version=4)
        start = time.monotonic()
        NotebookClient(nb, timeout=900, kernel_name="python3", store_widget_state=True,
                       resources={"metadata": {"path": str(workdir)}}).execute()
        return nb, time.monotonic() - start
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ---------------------------------------------------------------- widgets as static HTML

def _ref(value) -> str | None:
    return value[len("IPY_MODEL_"):] if isinstance(value, str) and value.startswith("IPY_MODEL_") else None


class Snapshot:
    """Static HTML for the widget views of one executed notebook, from the widget state nbclient stored."""

    def __init__(self, state: dict):
        self.state = state
        self.plots = 0

    def html(self, model_id: str) -> str:
        entry = self.state.get(model_id)
        if entry is None:
            return "<div class='wb-static-missing'>(widget not in the stored state)</div>"
        s = entry["state"]
        layout = self.state.get(_ref(s.get("layout")) or "", {}).get("state", {})
        if layout.get("display") == "none" or layout.get("visibility") == "hidden":
            return ""
        name = entry["model_name"]
        render = getattr(self, "_" + _render_name(name), None)
        if render is None and "figure" in s:
            render = self._figure
        if render is None:
            return f"<div class='wb-static-missing'>({html.escape(name.removesuffix('Model'))}: interactive only)</div>"
        return render(s)

    @staticmethod
    def _classes(s: dict, base: str) -> str:
        return html.escape(" ".join([base, *s.get("_dom_classes", [])]), quote=True)

    @staticmethod
    def _label(s: dict) -> str:
        text = s.get("description") or ""
        return f"<span class='wb-static-label'>{html.escape(text)}</span>" if text else ""

    def _children(self, s: dict) -> str:
        return "".join(self.html(_ref(child)) for child in s.get("children", []) if _ref(child))

    def _vbox(self, s: dict) -> str:
        return f"<div class='{self._classes(s, 'wb-static-vbox')}'>{self._children(s)}</div>"

    def _hbox(self, s: dict) -> str:
        return f"<div class='{self._classes(s, 'wb-static-hbox')}'>{self._children(s)}</div>"

    _box = _vbox
    _gridbox = _hbox

    def _html(self, s: dict) -> str:
        return f"<div class='{self._classes(s, 'wb-static-html')}'>{self._label(s)}{s.get('value', '')}</div>"

    _htmlmath = _html

    def _label_widget(self, s: dict) -> str:
        return f"<span class='{self._classes(s, 'wb-static-text')}'>{html.escape(str(s.get('value', '')))}</span>"

    def _button(self, s: dict) -> str:
        label = html.escape(s.get("description", ""))
        return f"<button class='{self._classes(s, 'wb-static-button')}' disabled>{label}</button>"

    def _checkbox(self, s: dict) -> str:
        checked = " checked" if s.get("value") else ""
        return (f"<label class='{self._classes(s, 'wb-static-check')}'><input type='checkbox' disabled{checked}> "
                f"{html.escape(s.get('description', ''))}</label>")

    def _dropdown(self, s: dict) -> str:
        labels, index = s.get("_options_labels", []), s.get("index")
        shown = labels[index] if isinstance(index, int) and 0 <= index < len(labels) else ""
        return (f"<label class='{self._classes(s, 'wb-static-pick')}'>{self._label(s)}"
                f"<select disabled><option>{html.escape(str(shown))}</option></select></label>")

    _select = _radiobuttons = _togglebuttons = _dropdown

    def _text(self, s: dict) -> str:
        return (f"<label class='{self._classes(s, 'wb-static-pick')}'>{self._label(s)}"
                f"<input type='text' disabled value='{html.escape(str(s.get('value', '')), quote=True)}'></label>")

    _textarea = _text

    def _intprogress(self, s: dict) -> str:
        return (f"<label class='{self._classes(s, 'wb-static-pick')}'>{self._label(s)}"
                f"<progress value='{s.get('value', 0)}' max='{s.get('max', 100)}'></progress></label>")

    _floatprogress = _intprogress

    def _output(self, s: dict) -> str:
        parts = []
        for out in s.get("outputs", []):
            data = out.get("data", {})
            if "text/html" in data:
                parts.append("".join(data["text/html"]))
            elif out.get("output_type") == "stream" or "text/plain" in data:
                text = out.get("text") or data.get("text/plain", "")
                parts.append(f"<pre>{html.escape(''.join(text))}</pre>")
        return f"<div class='{self._classes(s, 'wb-static-output')}'>{''.join(parts)}</div>"

    def _figure(self, s: dict) -> str:
        """A ``workbench.widgets.plot.PlotView``: its one ``figure`` trait drawn as the widget draws it."""
        figure = dict(s.get("figure") or {})
        figure.pop("revision", None)
        layout = {**figure.get("layout", {}), "autosize": True}
        layout.pop("width", None)  # as the widget does: the plot takes the width of the page
        self.plots += 1
        div = f"wb-static-plot-{self.plots}-{hashlib.sha1(json.dumps(figure, sort_keys=True).encode()).hexdigest()[:8]}"
        config = {"responsive": True, "displaylogo": False, "staticPlot": False}
        payload = json.dumps([figure.get("data", []), layout, config]).replace("</", "<\\/")
        return (f"<div class='{self._classes(s, 'wb-static-plot')}' id='{div}'></div>"
                f"<script>(function(){{var a={payload};if(window.Plotly){{Plotly.newPlot('{div}',a[0],a[1],a[2]);}}"
                f"else{{document.getElementById('{div}').textContent='(plotly.js did not load)';}}}})();</script>")


def _render_name(name: str) -> str:
    """``HBoxModel`` -> ``hbox``; ``LabelModel`` -> ``label_widget`` (``_label`` draws descriptions)."""
    return "label_widget" if name == "LabelModel" else name.removesuffix("Model").lower()


def staticise(nb, workdir: Path) -> tuple[int, dict]:
    """Replace every widget view by its snapshot, drop the stored widget state, and write paths under the
    temporary folder relative to it. Returns the number of widget outputs replaced and the notebook as JSON."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    snapshot, replaced = Snapshot(state), 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view:
                body = snapshot.html(view["model_id"])
                out["data"] = {"text/html": f"<div class='wb-static-widget'>{body}</div>"}
                replaced += 1
    nb.metadata.pop("widgets", None)
    text = json.dumps(nb)
    for prefix in (f"{workdir}/", str(workdir)):
        text = text.replace(prefix, "")
    return replaced, json.loads(text)


class QuietFailure(Exception):
    """A notebook ran to its end, but something in it failed without stopping it."""


def check_quiet_failures(nb) -> None:
    """A traceback printed to stderr (a background thread's exception, a caught error) would be published as
    the notebook's output: refuse it, as ``tests/test_notebooks.py`` does."""
    for number, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.get("output_type") == "stream" and out.get("name") == "stderr" else ""
            if "Traceback" in text:
                raise QuietFailure(f"cell {number} printed a traceback to stderr: {text.strip().splitlines()[-1]}")


def note_cell(path: Path, seconds: float, widgets: int):
    """The page's first words after its title: what ran, with which budget, where, and what the widgets are.
    HTML, since a notebook's Markdown is not run through the site's extensions (it uses the admonition style)."""
    import nbformat  # optional: nbformat (the docs extra)

    budget = ", ".join(f"<code>{k}={v}</code>" for k, v in BUDGET.items())
    text = (f"<div class=\"admonition note\"><p class=\"admonition-title\">How this page was made</p>"
            f"<p><code>python docs/render_notebooks.py</code> ran <code>notebooks/{path.name}</code> top to bottom "
            f"with {budget} (its own defaults are larger: see the <code>parameters</code> cell) on {machine()}, "
            f"in {seconds:.0f} s, on {date.today().isoformat()}. Small budgets make small, noisy fronts: the "
            f"numbers show what the notebook prints, not results to quote.</p>"
            f"<p>The {widgets} widget outputs are <b>static snapshots</b> of the state each widget ended in: "
            f"plots are drawn (hover and zoom work), but buttons, pickers and clicks do nothing here, and a live "
            f"view shows its final state. Run the notebook in JupyterLab "
            f"(<code>pip install -e \".[notebook]\"</code>, then <code>jupyter lab notebooks/</code>) to use "
            f"them. Paths are relative to the folder it ran in.</p></div>")
    return nbformat.v4.new_markdown_cell(text, metadata={"tags": ["workbench-docs-note"]})


def render(path: Path) -> Path:
    import nbformat  # optional: nbformat (the docs extra)

    with tempfile.TemporaryDirectory(prefix="workbench-docs-nb-") as tmp:
        workdir = Path(tmp)
        nb, seconds = run(path, workdir)
        check_quiet_failures(nb)
        widgets, data = staticise(nb, workdir)
    nb = nbformat.from_dict(data)
    title = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0  # the note goes under the title cell
    nb.cells.insert(title, note_cell(path, seconds, widgets))
    nb.metadata[SOURCE_HASH_KEY] = source_hash(path)
    OUT.mkdir(parents=True, exist_ok=True)
    target = OUT / path.name
    nbformat.write(nb, target)
    print(f"{path.name}: {seconds:.1f} s, {widgets} widgets as snapshots -> {target.relative_to(ROOT)}", flush=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebook file names (default: every notebooks/*.ipynb)")
    args = parser.parse_args(argv)
    paths = [NOTEBOOKS / n for n in args.names] or sorted(NOTEBOOKS.glob("*.ipynb"))
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        print(f"error: notebooks/{missing[0]}: no such notebook", file=sys.stderr)
        return 2
    from nbclient.exceptions import CellExecutionError  # optional: nbclient (the docs extra)

    for path in paths:
        try:
            render(path)
        except CellExecutionError as exc:  # its message is the whole traceback; the page would show it
            print(f"error: notebooks/{path.name}: a cell failed ({exc.ename}: {exc.evalue})", file=sys.stderr)
            return 1
        except QuietFailure as exc:
            print(f"error: notebooks/{path.name}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
