"""A plotly figure whose whole state is ONE synced trait: what Python holds is what every view draws.

Why not plotly's ``FigureWidget``: it sends Python-side edits as one-off messages and each browser view
echoes "trace deltas" back; plotly's Python side then moves the properties it just set (``x``, ``y``,
``name``, the title …) out of ``fig._data`` into defaults. Any later copy of ``fig._data`` into the synced
state — which a reload draws — lacks them: a reloaded page drew a "Pareto front" trace without ``x``
(the browser test's ``Cannot read properties of undefined (reading 'map')``), garbled or stale figures,
titles of the previous device. Here Python assigns the full figure (data + layout) to ``figure``; every
view, including one created by a reload, calls ``Plotly.react`` with exactly that. Clicks come back as
messages naming the clicked point's ``customdata``. plotly.js is the copy that ships in the plotly wheel,
sent once per kernel (``PlotlyLibrary``) rather than once per figure.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import anywidget
import ipywidgets as widgets
import plotly
import plotly.graph_objects as go
import traitlets

_VIEW_JS = r"""
const CONFIG = {responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"]};

function plotly() {
  // plotly.js comes from the one PlotlyLibrary model of the kernel, loaded when the front end creates it
  // (in any order with this view during a page reload's restore): wait for it.
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const check = () => window.Plotly ? resolve(window.Plotly)
      : Date.now() - started > 120000 ? reject(new Error("plotly.js did not load (PlotlyLibrary model missing)"))
      : setTimeout(check, 50);
    check();
  });
}

async function render({ model, el }) {
  el.classList.add("wb-plot");
  let Plotly;
  try { Plotly = await plotly(); } catch (err) { el.dataset.error = String(err); el.textContent = String(err); return; }
  const gd = document.createElement("div");
  gd.style.width = "100%";
  el.appendChild(gd);
  let queue = Promise.resolve();
  let listening = false;
  const draw = () => {
    const fig = structuredClone(model.get("figure") || {});
    const revision = String(fig.revision ?? "");
    el.dataset.pending = revision;  // received; "revision" below says drawn (tests wait until they agree)
    const layout = Object.assign({}, fig.layout || {}, {autosize: true});
    delete layout.width;  // responsive: the plot takes the width of its cell
    queue = queue.then(() => Plotly.react(gd, fig.data || [], layout, CONFIG)).then(() => {
      el.dataset.revision = revision;
      if (!listening) {
        listening = true;
        gd.on("plotly_click", (event) => {
          const point = (event.points || []).find((p) => p.customdata !== undefined && p.customdata !== null);
          if (point) model.send({ event: "click", customdata: point.customdata, trace: point.data.name || "" });
        });
      }
    }).catch((err) => { el.dataset.error = String(err); console.error("workbench plot:", err); });
  };
  model.on("change:figure", draw);
  draw();
  const resize = new ResizeObserver(() => { if (gd._fullLayout) Plotly.Plots.resize(gd); });
  resize.observe(el);
  return () => { resize.disconnect(); model.off("change:figure", draw); Plotly.purge(gd); };
}
export default { render };
"""


@lru_cache(maxsize=1)
def _library_source() -> str:
    """plotly.min.js (it sets ``window.Plotly`` when evaluated as a module) as a widget module of its own."""
    bundled = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return bundled.read_text(encoding="utf-8") + "\nexport default {};\n"


class PlotlyLibrary(anywidget.AnyWidget):
    """plotly.js (4.8 MB), sent ONCE per kernel. Each plotly ``FigureWidget`` carries its own copy of the
    bundle in its state; with several figures a reloaded page asked the kernel for tens of MB of widget
    state, the reply missed ipywidgets' 4 s restore deadline and some widgets came back as "model not
    found". Every ``PlotView`` holds a reference to this one model instead."""

    _esm = traitlets.Unicode(_library_source()).tag(sync=True)


@lru_cache(maxsize=1)
def plotly_library() -> PlotlyLibrary:
    return PlotlyLibrary()


class PlotView(anywidget.AnyWidget):
    """``PlotView()``; ``show(data, layout)`` replaces the figure; ``on_click(fn)`` gets clicked customdata."""

    _esm = traitlets.Unicode(_VIEW_JS).tag(sync=True)
    figure = traitlets.Dict().tag(sync=True)
    library = traitlets.Instance(PlotlyLibrary).tag(sync=True, **widgets.widget_serialization)

    def __init__(self, **kwargs):
        super().__init__(library=plotly_library(), **kwargs)
        self._click_handlers = []
        self.revision = 0
        self.on_msg(self._message)
        self.layout.width = "100%"

    def show(self, data: list, layout: dict) -> None:
        """Validate with plotly's figure classes, then send the whole figure as one state change."""
        fig = go.Figure(data=data, layout=layout)
        self.revision += 1
        self.figure = {**json.loads(fig.to_json()), "revision": self.revision}

    def on_click(self, handler) -> None:
        """``handler(customdata, trace_name)`` runs for a click on a point that has customdata."""
        self._click_handlers.append(handler)

    def trace(self, name_start: str) -> dict:
        """The first trace whose name starts with ``name_start`` (tests and scripts read the figure here)."""
        return next(t for t in self.figure.get("data", []) if str(t.get("name", "")).startswith(name_start))

    def _message(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("event") == "click":
            for handler in self._click_handlers:
                handler(content.get("customdata"), content.get("trace", ""))
