"""Pareto explorer: every trial of a study on one plot, the front for any device profile, click to inspect.

Points are coloured by what they are *on the picked device*: on the front (red, joined by the
attainment step line when the axes are the study's two objectives), trained and fitting (blue),
trained but not fitting (grey: over SRAM/flash, over the latency budget, or a precision it does not
run), and rejected before training (grey ×; they have no accuracy, so on an accuracy axis they sit on
a rug below the plot). Switching the device recomputes the front from the predictions each trial
stored for every profile — no retraining.
"""
from __future__ import annotations

import threading

import ipywidgets as widgets
import plotly.graph_objects as go

from ..front import TrialRecord
from ..profiles import DeviceProfile
from .common import (COLORS, StudyView, axis_options, axis_title, esc, hover_text, metric_value, minimised,
                     study_view, sync_snapshot)
from .export_panel import ExportPanel
from .inspector import TrialInspector

FEASIBLE, INFEASIBLE, REJECTED, FRONT, SELECTED = range(5)
CLICKABLE = (FEASIBLE, INFEASIBLE, REJECTED, FRONT)


def _empty_traces() -> list[go.Scatter]:
    """The fixed trace set; refreshes replace their data, so click handlers stay attached."""
    return [
        go.Scatter(name="trained, fits", mode="markers", marker=dict(color=COLORS["feasible"], size=8)),
        go.Scatter(name="trained, does not fit", mode="markers",
                   marker=dict(color=COLORS["infeasible"], size=8, opacity=0.7)),
        go.Scatter(name="rejected before training", mode="markers",
                   marker=dict(color=COLORS["rejected"], symbol="x-thin", size=9, line=dict(width=2))),
        go.Scatter(name="Pareto front", mode="lines+markers",
                   marker=dict(color=COLORS["front"], size=11, symbol="diamond"), line=dict(color=COLORS["front"])),
        go.Scatter(name="selected", mode="markers", hoverinfo="skip", showlegend=False,
                   marker=dict(color="rgba(0,0,0,0)", size=20, line=dict(color=COLORS["selected"], width=3))),
    ]


def base_layout(height: int = 460) -> dict:
    """Main axes on top, a thin rug strip (yaxis2) at the bottom for trials without a y value."""
    return dict(height=height, margin=dict(l=60, r=20, t=50, b=50), hovermode="closest", template="plotly_white",
                legend=dict(orientation="h", y=-0.16),
                yaxis=dict(domain=[0.14, 1.0]),
                yaxis2=dict(domain=[0.0, 0.07], anchor="x", showticklabels=False, range=[-1, 1], zeroline=False,
                            showgrid=False, title=dict(text="no acc.", font=dict(size=10))))


class ParetoExplorer(widgets.VBox):
    """``ParetoExplorer(result_or_study, device=None, x="latency", y="accuracy")`` — display it in a cell.

    ``x``/``y`` take ``accuracy``, ``latency``, ``sram``, ``flash``, ``macs``, ``params`` (on the picked
    device) or ``latency@<profile>``; ``profiles`` adds devices (names or folders) to the picker.
    ``refresh()`` re-reads the storage (a live search calls it).
    """

    def __init__(self, source, device: str | None = None, x: str = "latency", y: str = "accuracy", *,
                 storage: str | None = None, profiles=(), export_dir: str = "export", height: int = 460):
        self.view: StudyView = study_view(source, storage)
        self.profiles = self.view.profiles(profiles)
        self._lock = threading.RLock()
        self.selected: int | None = None
        self.front: list[TrialRecord] = []
        options = axis_options(self.profiles)
        self.device_picker = widgets.Dropdown(options=list(self.profiles), value=device or self.view.target.name,
                                              description="device")
        self.x_picker = widgets.Dropdown(options=options, value=x, description="x axis")
        self.y_picker = widgets.Dropdown(options=options, value=y, description="y axis")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh",
                                             tooltip="re-read the study and redraw everything")
        self.status = widgets.HTML()
        self.status.add_class("wb-status")
        self.figure = go.FigureWidget(data=_empty_traces(), layout=base_layout(height))
        self.figure.add_class("wb-explorer-figure")
        self.export_panel = ExportPanel(self.view.name, self.view.storage_url, export_dir, self.profile.path)
        self.inspector = TrialInspector(self.view.name, self.export_panel)
        for i in CLICKABLE:
            self.figure.data[i].on_click(self._clicked)
        for picker in (self.device_picker, self.x_picker, self.y_picker):
            picker.observe(lambda _: self.redraw(), names="value")
        self.refresh_button.on_click(lambda _: self.refresh())
        controls = widgets.HBox([self.device_picker, self.x_picker, self.y_picker, self.refresh_button])
        super().__init__([controls, self.status, self.figure, self.inspector])
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
        """Show trial ``number`` in the inspector (what a click on its point does)."""
        with self._lock:
            record = self.view.record(number)
            self.selected = number
            self.inspector.show(record, self.profile)
            self._draw_selected()
            sync_snapshot(self.figure)
            return record

    def redraw(self) -> None:
        """Recompute the front on the picked device and replace all trace data (reload-safe)."""
        with self._lock:
            profile = self.profile
            self.front = self.view.front(profile)
            groups = self._groups(profile)
            with self.figure.batch_update():
                for index, records in groups.items():
                    self._fill(index, records, profile)
                self._style_front()
                self._draw_selected()
                self._relayout(profile, groups)
            sync_snapshot(self.figure)
            self.status.value = self._status_html(profile, groups)
            if self.selected is not None:
                self.inspector.show(self.view.record(self.selected), profile)

    # ------------------------------------------------------------ drawing
    def _groups(self, profile: DeviceProfile) -> dict[int, list[TrialRecord]]:
        on_front = {r.number for r in self.front}
        groups = {FEASIBLE: [], INFEASIBLE: [], REJECTED: [], FRONT: list(self.front)}
        for r in self.view.records:
            if r.accuracy is None:
                groups[REJECTED].append(r)
            elif r.number not in on_front:
                fits = r.feasible_on(profile, self.view.latency_budget_ms)
                groups[FEASIBLE if fits else INFEASIBLE].append(r)
        return groups

    def _xy(self, record: TrialRecord, profile: DeviceProfile) -> tuple[float | None, float | None]:
        return (metric_value(record, self.x_picker.value, profile, self.profiles),
                metric_value(record, self.y_picker.value, profile, self.profiles))

    def _fill(self, index: int, records: list[TrialRecord], profile: DeviceProfile) -> None:
        """Set one trace's points; y-less points (no accuracy) go on the rug axis."""
        points = [(x, y, r) for r in records for x, y in [self._xy(r, profile)] if x is not None]
        if index == FRONT:
            points.sort(key=lambda p: (p[0], p[1] if p[1] is not None else 0))
        rug = any(y is None for _, y, _ in points)
        self.figure.data[index].update(
            x=[p[0] for p in points], y=[0.0 if rug else p[1] for p in points],
            yaxis="y2" if rug else "y", customdata=[p[2].number for p in points],
            hovertext=[hover_text(p[2], profile) for p in points], hoverinfo="text")

    def _style_front(self) -> None:
        """Step line when the axes are the study's two objectives, plain markers otherwise."""
        x, y = self.x_picker.value, self.y_picker.value
        objectives = self.view.objectives
        stepped = len(objectives) == 2 and {x, y} == set(objectives)
        self.figure.data[FRONT].update(mode="lines+markers" if stepped else "markers",
                                       line=dict(shape="hv" if minimised(x) else "vh"))

    def _draw_selected(self) -> None:
        trace = self.figure.data[SELECTED]
        record = next((r for r in self.view.records if r.number == self.selected), None)
        x, y = self._xy(record, self.profile) if record is not None else (None, None)
        if x is None:
            trace.update(x=[], y=[])
        else:
            trace.update(x=[x], y=[0.0 if y is None else y], yaxis="y2" if y is None else "y")

    def _relayout(self, profile: DeviceProfile, groups) -> None:
        n_front = len(groups[FRONT])
        self.figure.layout.title = dict(text=f"{esc(self.view.name)} — front on {esc(profile.name)}: "
                                             f"{n_front} of {len(self.view.records)} trials", font=dict(size=15))
        self.figure.layout.xaxis.title = axis_title(self.x_picker.value, profile)
        self.figure.layout.yaxis.title = axis_title(self.y_picker.value, profile)
        for index, label in ((FEASIBLE, "trained, fits"), (INFEASIBLE, "trained, does not fit"),
                             (REJECTED, "rejected before training"), (FRONT, "Pareto front")):
            self.figure.data[index].name = f"{label} ({len(groups[index])})"
        self._fit_x_to_trained(profile, groups)

    def _fit_x_to_trained(self, profile: DeviceProfile, groups) -> None:
        """Zoom x to the trained trials; rejected ones further out sit on the right edge (hover tells the value).

        Rejected candidates are often far slower (that is why they were rejected) and would squash the front.
        """
        xs = [x for i in (FEASIBLE, INFEASIBLE) for r in groups[i] for x in [self._xy(r, profile)[0]] if x is not None]
        if not xs:
            self.figure.layout.xaxis.autorange = True
            return
        lo, hi = min(xs), max(xs)
        pad = 0.08 * (hi - lo or abs(hi) or 1.0)
        self.figure.layout.xaxis.range = [lo - pad, hi + pad]
        rejected = self.figure.data[REJECTED]
        if rejected.x:
            rejected.x = [min(x, hi + pad * 0.9) for x in rejected.x]

    def _status_html(self, profile: DeviceProfile, groups) -> str:
        budget = self.view.latency_budget_ms
        front = ", ".join(str(r.number) for r in self.front) or "none"
        best = max(self.front, key=lambda r: r.accuracy, default=None)
        best_text = f"best accuracy {best.accuracy:.4f} (trial {best.number})" if best else "no trained trial fits"
        return (f"<div><b>{len(self.view.records)}</b> finished trials · "
                f"front on <b class='wb-device'>{esc(profile.name)}</b>: trials "
                f"<span class='wb-front'>{front}</span> · {best_text} · "
                f"{len(groups[INFEASIBLE])} trained but not fitting · {len(groups[REJECTED])} rejected before "
                f"training on {esc(self.view.target.name)}"
                f"{f' · latency budget {budget:g} ms' if budget else ''}</div>")

    def _clicked(self, trace, points, state) -> None:
        """plotly calls this for every trace on a click; only the one under the pointer has indices."""
        if points.point_inds:
            self.select(int(trace.customdata[points.point_inds[0]]))
