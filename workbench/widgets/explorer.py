"""Pareto explorer: every architecture of a study on one plot, the front for any device profile, click to inspect.

One point per architecture + policy (``workbench.study.front.by_architecture``): trials that trained the same one and
the extra seeds of ``workbench repeats`` are one point at their mean accuracy, with a ± one standard deviation
error bar on the accuracy axis; duplicates that were never trained are not drawn.

Points are coloured by what they are *on the picked device*, by the one feasibility rule
(``TrialRecord.fit_problems``: kernels, SRAM, flash and the study's latency budget): on the front (red,
joined by the attainment step line when the axes are the study's two objectives), trained and fitting
(blue), trained but not fitting (grey), and rejected before training (grey ×, on a strip below the plot
at their real latency — or, when far off the scale, as a ▶ at the edge labelled with the value). A
dashed line marks the latency budget. Both axes are framed to the drawn data and the selection after
every update, so the best model and its selection ring are never off-screen.

The figure is one synced state (``PlotView``): a reload, a second view or a kernel-side refresh all draw
exactly what Python holds. Switching the device recomputes the front from the predictions each trial
stored for every profile — no retraining.
"""
from __future__ import annotations

import threading

import ipywidgets as widgets

from workbench.hardware.profiles import DeviceProfile
from workbench.study.front import TrialRecord, best_of
from workbench.widgets.common import (
    COLORS,
    StudyView,
    axis_options,
    axis_title,
    axis_unit,
    esc,
    hover_text,
    metric_value,
    minimised,
    one_line_error,
    split_axis,
    study_view,
    trust_html,
)
from workbench.widgets.export_panel import ExportPanel
from workbench.widgets.inspector import TrialInspector
from workbench.widgets.plot import PlotView

FEASIBLE, INFEASIBLE, REJECTED, FRONT, SELECTED = range(5)
LABELS = {FEASIBLE: "trained, fits", INFEASIBLE: "trained, does not fit", REJECTED: "rejected before training",
          FRONT: "Pareto front"}
PAD = 0.08  # share of the data span left around it on each side
RUG_EDGE = 0.985  # where an off-scale rejected candidate's marker sits, as a share of the x range


def frame(values, pad: float = PAD, limits: tuple[float, float] | None = None) -> list[float] | None:
    """An axis range holding every value with a margin (None: nothing to frame); ``limits`` caps it
    (accuracy never spans 0–1.5)."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    lo, hi = min(values), max(values)
    margin = pad * (hi - lo) if hi > lo else max(abs(hi) * 0.05, 0.01)
    lo, hi = lo - margin, hi + margin
    if limits is not None:
        lo, hi = max(lo, limits[0]), min(hi, limits[1])
    return [lo, hi]


def near_enough(extra, values, reach: float = 0.5) -> list[float]:
    """The ``extra`` values (rejected candidates) within ``reach`` × the span of ``values`` beyond it: framed at
    their real position; farther ones would squash the front, so they get an off-scale marker instead."""
    if not values:
        return list(extra)
    lo, hi = min(values), max(values)
    span = (hi - lo) or abs(hi) or 1.0
    return [v for v in extra if lo - reach * span <= v <= hi + reach * span]


class ParetoExplorer(widgets.VBox):
    """``ParetoExplorer(result_or_study, device=None, x="latency", y="accuracy")`` — display it in a cell.

    ``x``/``y`` take ``accuracy``, ``latency``, ``sram``, ``flash``, ``macs``, ``params`` (on the picked
    device) or ``latency@<profile>``; ``profiles`` adds devices (names or folders) to the picker.
    ``refresh()`` re-reads the storage (a live search calls it); after a kernel restart
    ``ParetoExplorer("study", storage=URL)`` rebuilds everything from the storage.
    """

    def __init__(self, source, device: str | None = None, x: str = "latency", y: str = "accuracy", *,
                 storage: str | None = None, profiles=(), export_dir: str = "exports", height: int = 500):
        self.view: StudyView = study_view(source, storage)
        self.profiles = self.view.profiles(profiles)
        self.height = height
        self._lock = threading.RLock()
        self.selected: int | None = None
        self.front: list[TrialRecord] = []
        self.groups: dict[int, list[TrialRecord]] = {}
        options = axis_options(self.profiles)
        self.device_picker = widgets.Dropdown(options=list(self.profiles), value=device or self.view.target.name,
                                              description="device")
        self.x_picker = widgets.Dropdown(options=options, value=x, description="x axis")
        self.y_picker = widgets.Dropdown(options=options, value=y, description="y axis")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh",
                                             tooltip="re-read the study and redraw everything")
        self.status = widgets.HTML()
        self.status.add_class("wb-status")
        self.figure = PlotView()
        self.figure.add_class("wb-explorer-figure")
        self.export_panel = ExportPanel(self.view.name, self.view.storage_url, export_dir, self.profile.path,
                                        latency_budget_ms=self.view.latency_budget_ms)
        self.inspector = TrialInspector(self.view.name, self.export_panel, self.view.latency_budget_ms)
        self.figure.on_click(lambda number, _trace: self._guarded(lambda: self.select(int(number))))
        for picker in (self.device_picker, self.x_picker, self.y_picker):
            picker.observe(lambda _: self._guarded(self.redraw), names="value")
        self.refresh_button.on_click(lambda _: self._guarded(self.refresh))
        controls = widgets.HBox([self.device_picker, self.x_picker, self.y_picker, self.refresh_button],
                                layout=widgets.Layout(flex_flow="row wrap"))
        super().__init__([controls, self.status, self.figure, self.inspector], layout=widgets.Layout(width="100%"))
        self.add_class("wb-explorer")
        self.redraw()

    # ------------------------------------------------------------ public
    @property
    def profile(self) -> DeviceProfile:
        return self.profiles[self.device_picker.value]

    def refresh(self) -> None:
        """Re-read the trials from storage and redraw (safe to call from a search thread)."""
        with self._lock:
            self.view.reload()
            self.redraw()

    def select(self, number: int) -> TrialRecord:
        """Show trial ``number`` in the inspector (what a click on its point does) and ring it on the plot."""
        with self._lock:
            record = self.view.record(number)
            self.selected = record.number
            self.inspector.show(record, self.profile)
            self._draw()
            return record

    def redraw(self) -> None:
        """Recompute the front on the picked device and send the whole figure (reload-safe by construction)."""
        with self._lock:
            profile = self.profile
            self.front = self.view.front(profile)
            self.groups = self._groups(profile)
            self._draw()
            self.status.value = self._status_html(profile)
            if self.selected is not None:
                self.inspector.show(self.view.record(self.selected), profile)

    def axis_ranges(self) -> dict[str, list[float] | None]:
        """The x and y ranges the figure shows (what the browser test checks against the points)."""
        layout = self.figure.figure.get("layout", {})
        return {"x": layout.get("xaxis", {}).get("range"), "y": layout.get("yaxis", {}).get("range")}

    # ------------------------------------------------------------ what is drawn
    def _groups(self, profile: DeviceProfile) -> dict[int, list[TrialRecord]]:
        on_front = {r.number for r in self.front}
        groups = {FEASIBLE: [], INFEASIBLE: [], REJECTED: [], FRONT: list(self.front)}
        for r in self.view.architectures:  # one point per architecture: all its measurements, at their mean
            if r.accuracy is None:
                groups[REJECTED].append(r)
            elif r.number not in on_front:
                fits = r.feasible_on(profile, self.view.latency_budget_ms)
                groups[FEASIBLE if fits else INFEASIBLE].append(r)
        return groups

    def _xy(self, record: TrialRecord, profile: DeviceProfile) -> tuple[float | None, float | None]:
        return (metric_value(record, self.x_picker.value, profile, self.profiles),
                metric_value(record, self.y_picker.value, profile, self.profiles))

    def _points(self, index: int, profile: DeviceProfile) -> list[tuple[float, float | None, TrialRecord]]:
        points = [(x, y, r) for r in self.groups[index] for x, y in [self._xy(r, profile)]
                  if self._drawable(x, y, r)]
        if index == FRONT:
            points.sort(key=lambda p: (p[0], p[1] if p[1] is not None else 0))
        return points

    def _drawable(self, x, y, record: TrialRecord) -> bool:
        """A point needs both values; only a rejected trial's missing accuracy has a place (the strip below)."""
        on_rug = record.accuracy is None and split_axis(self.y_picker.value)[0] == "accuracy"
        return x is not None and (y is not None or on_rug)

    def _budget_axis(self) -> str | None:
        """Which axis shows latency on the picked device (the budget applies there), if any."""
        for name, axis in (("x", self.x_picker.value), ("y", self.y_picker.value)):
            metric, device = split_axis(axis)
            if metric == "latency" and device in (None, self.device_picker.value):
                return name
        return None

    def _draw(self) -> None:
        profile = self.profile
        points = {i: self._points(i, profile) for i in (FEASIBLE, INFEASIBLE, REJECTED, FRONT)}
        on_main = [p for i in (FEASIBLE, INFEASIBLE, FRONT) for p in points[i]]
        on_main += [p for p in points[REJECTED] if p[1] is not None]
        rug = [p for p in points[REJECTED] if p[1] is None]
        selected = self._selected_point(profile)
        budget = self.view.latency_budget_ms
        budget_axis = self._budget_axis() if budget else None
        xs = [p[0] for p in on_main] + ([selected[0]] if selected else []) + ([budget] if budget_axis == "x" else [])
        ys = [p[1] for p in on_main] + ([selected[1]] if selected and selected[1] is not None else [])
        ys += [budget] if budget_axis == "y" else []
        y_metric = split_axis(self.y_picker.value)[0]
        x_range = frame(xs + near_enough([p[0] for p in rug], xs))
        y_range = frame(ys, limits=(0.0, 1.02) if y_metric == "accuracy" else None)
        data = [self._trace(i, points[i], profile) for i in (FEASIBLE, INFEASIBLE)]
        data.append(self._rug_trace(rug, [p for p in points[REJECTED] if p[1] is not None], x_range, profile))
        data.append(self._front_trace(points[FRONT], profile))
        data.append(self._selected_trace(selected, x_range))
        self.figure.show(data, self._layout(profile, x_range, y_range, budget_axis, len(self.front)))

    def _trace(self, index: int, points, profile: DeviceProfile, **style) -> dict:
        marker = {FEASIBLE: dict(color=COLORS["feasible"], size=8),
                  INFEASIBLE: dict(color=COLORS["infeasible"], size=8, opacity=0.8)}.get(index, {})
        trace = dict(type="scatter", mode="markers", name=f"{LABELS[index]} ({len(self.groups[index])})",
                     x=[p[0] for p in points], y=[p[1] for p in points], customdata=[p[2].number for p in points],
                     hovertext=[hover_text(p[2], profile, self.view.latency_budget_ms) for p in points],
                     hoverinfo="text", marker=marker, **self._error_bars(points))
        return {**trace, **style}

    def _error_bars(self, points) -> dict:
        """± one standard deviation of an architecture's accuracy measurements on the accuracy axis (none for
        a single measurement)."""
        stds = [p[2].accuracy_std or 0.0 for p in points]
        if not any(stds):
            return {}
        bars = dict(type="data", array=stds, visible=True, thickness=1.2, width=3)
        if split_axis(self.y_picker.value)[0] == "accuracy":
            return {"error_y": bars}
        if split_axis(self.x_picker.value)[0] == "accuracy":
            return {"error_x": bars}
        return {}

    def _rug_trace(self, rug, placed, x_range, profile: DeviceProfile) -> dict:
        """Rejected candidates: with a y value (e.g. flash) on the main axes; without (no accuracy) on the
        strip below at their real x — those far off the scale as one ▶ (◀) at the edge labelled with their
        values (hover lists each)."""
        budget = self.view.latency_budget_ms
        xs, ys, symbols, texts, numbers, hovers = [], [], [], [], [], []

        def add(x, y, symbol, text, group):
            xs.append(x), ys.append(y), symbols.append(symbol), texts.append(text)
            numbers.append(group[0][2].number)
            hovers.append("<br>".join(hover_text(r, profile, budget) for _, _, r in group[:6])
                          + (f"<br>… and {len(group) - 6} more" if len(group) > 6 else ""))

        for point in placed:
            add(point[0], point[1], "x-thin", "", [point])
        lo, hi = x_range or (float("-inf"), float("inf"))
        inside = [p for p in rug if lo <= p[0] <= hi]
        for point in inside:
            add(point[0], 0.0, "x-thin", "", [point])
        for side, group in (("right", [p for p in rug if p[0] > hi]), ("left", [p for p in rug if p[0] < lo])):
            if not group:
                continue
            values = sorted(p[0] for p in group)
            unit = f" {axis_unit(self.x_picker.value)}".rstrip()
            shown = (f"{values[0]:.4g}{unit}" if len(values) == 1
                     else f"{len(values)} at {values[0]:.4g}–{values[-1]:.4g}{unit}")
            edge = lo + RUG_EDGE * (hi - lo) if side == "right" else hi - RUG_EDGE * (hi - lo)
            add(edge, 0.0, f"triangle-{side}", f"{shown} →" if side == "right" else f"← {shown}",
                sorted(group, key=lambda p: p[0]))
        on_rug = not placed
        return dict(type="scatter", mode="markers+text", name=f"{LABELS[REJECTED]} ({len(self.groups[REJECTED])})",
                    x=xs, y=ys, xaxis="x2" if on_rug else "x", yaxis="y2" if on_rug else "y",
                    text=texts, textposition="top left", textfont=dict(size=10, color=COLORS["rejected"]),
                    customdata=numbers, hovertext=hovers, hoverinfo="text", cliponaxis=False,
                    marker=dict(color=COLORS["rejected"], symbol=symbols, size=9,
                                line=dict(width=2, color=COLORS["rejected"])))

    def _front_trace(self, points, profile: DeviceProfile) -> dict:
        """Step line when the axes are the study's two objectives, plain markers otherwise."""
        x, y = self.x_picker.value, self.y_picker.value
        objectives = self.view.objectives
        stepped = len(objectives) == 2 and {split_axis(x)[0], split_axis(y)[0]} == set(objectives)
        return self._trace(FRONT, points, profile, mode="lines+markers" if stepped else "markers",
                           line=dict(color=COLORS["front"], shape="hv" if minimised(x) else "vh"),
                           marker=dict(color=COLORS["front"], size=11, symbol="diamond"))

    def _selected_point(self, profile: DeviceProfile) -> tuple[float, float | None] | None:
        record = next((r for r in self.view.architectures if r.number == self.selected), None)
        if record is None:
            return None
        x, y = self._xy(record, profile)
        return None if x is None else (x, y)

    def _selected_trace(self, selected, x_range) -> dict:
        if selected is None:
            xs, ys, axes = [], [], {}
        elif selected[1] is None:  # a rejected trial: ringed on the strip
            xs, ys, axes = [min(selected[0], x_range[1]) if x_range else selected[0]], [0.0], dict(xaxis="x2",
                                                                                                     yaxis="y2")
        else:
            xs, ys, axes = [selected[0]], [selected[1]], {}
        return dict(type="scatter", mode="markers", name="selected", hoverinfo="skip", showlegend=False, x=xs, y=ys,
                    customdata=[self.selected] if xs else [],
                    marker=dict(color="rgba(0,0,0,0)", size=20, line=dict(color=COLORS["selected"], width=3)), **axes)

    def _layout(self, profile: DeviceProfile, x_range, y_range, budget_axis, n_front: int) -> dict:
        x_title, y_title = axis_title(self.x_picker.value, profile), axis_title(self.y_picker.value, profile)
        objectives = set(self.view.objectives)
        on_objectives = {split_axis(self.x_picker.value)[0], split_axis(self.y_picker.value)[0]} == objectives
        what = (f"Pareto front on {esc(profile.name)}: {n_front} of {len(self.view.records)} trials"
                if on_objectives else f"red: the {' × '.join(sorted(objectives))} Pareto front on {esc(profile.name)}")
        layout = dict(
            title=dict(text=f"{esc(self.view.name)}: {esc(y_title)} vs {esc(x_title)}<br><sup>{what}</sup>",
                       font=dict(size=15)),
            height=self.height, margin=dict(l=70, r=30, t=70, b=50), hovermode="closest", template="plotly_white",
            legend=dict(orientation="h", y=-0.12, yanchor="top"),
            xaxis=dict(range=x_range, autorange=x_range is None, anchor="y", showticklabels=True),
            yaxis=dict(domain=[0.2, 1.0], title=dict(text=y_title), range=y_range, autorange=y_range is None),
            xaxis2=dict(matches="x", anchor="y2", title=dict(text=x_title), showticklabels=False, showgrid=False),
            yaxis2=dict(domain=[0.0, 0.07], anchor="x2", showticklabels=False, range=[-1, 1], zeroline=False,
                        showgrid=False, title=dict(text="rejected", font=dict(size=10))))
        budget = self.view.latency_budget_ms
        if budget_axis:
            line = dict(type="line", line=dict(color="#555", dash="dash", width=1.5))
            if budget_axis == "x":
                line.update(xref="x", x0=budget, x1=budget, yref="paper", y0=0.0, y1=1.0)
            else:
                line.update(yref="y", y0=budget, y1=budget, xref="paper", x0=0.0, x1=1.0)
            layout["shapes"] = [line]
            layout["annotations"] = [dict(text=f"latency budget {budget:g} ms", showarrow=False,
                                          font=dict(size=11, color="#555"),
                                          **({"x": budget, "xref": "x", "y": 1.0, "yref": "paper",
                                              "xanchor": "right", "yanchor": "bottom"} if budget_axis == "x" else
                                             {"y": budget, "yref": "y", "x": 1.0, "xref": "paper",
                                              "xanchor": "right", "yanchor": "bottom"}))]
        return layout

    def _status_html(self, profile: DeviceProfile) -> str:
        budget = self.view.latency_budget_ms
        front = ", ".join(str(r.number) for r in self.front) or "none"
        best = best_of(self.front, profile)
        if best:
            lat = best.prediction(profile)["latency_ms"]
            best_text = f"best accuracy {best.accuracy_text()} at {lat:.3f} ms (trial {best.number})"
        else:
            best_text = "no trained trial fits"
        not_drawn = sum(1 for r in self.view.architectures if not self._drawable(*self._xy(r, profile), r))
        return (f"<div class='wb-status-line' data-front='{front}'><b>{len(self.view.records)}</b> finished trials · "
                f"front on <b class='wb-device'>{esc(profile.name)}</b>: trials "
                f"<span class='wb-front'>{front}</span> · {best_text} · "
                f"{len(self.groups[INFEASIBLE])} trained but not fitting · {len(self.groups[REJECTED])} rejected before "
                f"training on {esc(self.view.target.name)}"
                f"{f' · latency budget {budget:g} ms' if budget else ''}"
                f"{f' · {not_drawn} without a value on these axes on {esc(profile.name)} (not drawn)' if not_drawn else ''}"
                f"</div>{trust_html(profile, [r.arch for r in self.front])}")

    def _guarded(self, action) -> None:
        """Run a UI callback; an error becomes one line in the status (a callback's traceback goes nowhere)."""
        try:
            action()
        except Exception as exc:  # noqa: BLE001 — shown where the user clicked, not lost in the kernel log
            self.status.value = one_line_error(exc)
