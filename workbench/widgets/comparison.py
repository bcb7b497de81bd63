"""Front comparison: several (study, device) fronts on one plot, with hypervolumes on a shared reference.

Typical uses: one search's front re-drawn for several profiles (which device buys what), the same
search aimed at a Cortex-M4 and at a Cortex-M7, or two samplers on the same target. Each front is
the 2-D accuracy/latency front (``workbench.front.pareto_front`` with the study's latency budget) and
its hypervolume comes from ``workbench.front.hypervolume_2d`` against ONE reference point for all
rows, so the numbers are comparable: (reference accuracy, reference latency) defaults to
(0, 1.1 × the slowest front point over all rows). Hypervolume is in accuracy × ms, so rows on devices
whose latencies differ by orders of magnitude are dominated by the slow device's scale — read the
plot (log x) alongside.
"""
from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as widgets
import plotly.graph_objects as go

from ..front import TrialRecord, hypervolume_2d
from ..profiles import DeviceProfile, load_profile
from .common import PALETTE, StudyView, esc, hover_text, study_view, sync_snapshot

AXES = ("accuracy", "latency")


@dataclass
class FrontEntry:
    view: StudyView
    profile: DeviceProfile
    label: str

    @property
    def front(self) -> list[TrialRecord]:
        return self.view.front(self.profile, AXES)

    def points(self) -> list[tuple[float, float]]:
        """(accuracy, latency ms) of the front, fastest first."""
        return [(r.accuracy, r.prediction(self.profile)["latency_ms"]) for r in self.front]


class FrontComparison(widgets.VBox):
    """``FrontComparison([(result_a, "stm32f746"), (result_b, "stm32l4r5", "M4 search")])``.

    Entries are ``(source, device[, label])``; ``source`` is anything the explorer takes (a
    SearchResult, Search, Study or study name with ``storage``), ``device`` a profile name/folder or
    None for the study's target. ``reference=(accuracy, latency_ms)`` fixes the hypervolume reference.
    """

    def __init__(self, entries=(), *, reference: tuple[float, float] | None = None, log_x: bool = False,
                 storage: str | None = None, height: int = 440):
        self.entries: list[FrontEntry] = []
        self.fixed_reference = reference
        self.storage = storage
        self.log_x = widgets.Checkbox(value=log_x, description="log latency axis", indent=False)
        self.log_x.observe(lambda _: self.redraw(), names="value")
        self.figure = go.FigureWidget(layout=dict(height=height, template="plotly_white", hovermode="closest",
                                                  margin=dict(l=60, r=20, t=50, b=50)))
        self.figure.add_class("wb-comparison-figure")
        self.table = widgets.HTML()
        self.table.add_class("wb-hv-table")
        super().__init__([self.log_x, self.figure, self.table])
        self.add_class("wb-comparison")
        for entry in entries:
            self.add(*entry, redraw=False)
        self.redraw()

    def add(self, source, device: str | DeviceProfile | None = None, label: str | None = None, *,
            redraw: bool = True) -> FrontEntry:
        """Add one (study, device) front; the label defaults to ``study @ device``."""
        view = study_view(source, self.storage)
        profile = device if isinstance(device, DeviceProfile) else load_profile(device) if device else view.target
        entry = FrontEntry(view, profile, label or f"{view.name} @ {profile.name}")
        self.entries.append(entry)
        if redraw:
            self.redraw()
        return entry

    @property
    def reference(self) -> tuple[float, float]:
        if self.fixed_reference is not None:
            return self.fixed_reference
        latencies = [lat for e in self.entries for _, lat in e.points()]
        return 0.0, 1.1 * max(latencies, default=1.0)

    def rows(self) -> list[dict]:
        """One dict per entry: what the table shows (and what a test or script can assert on)."""
        ref = self.reference
        out = []
        for e in self.entries:
            pts = e.points()
            out.append({"label": e.label, "study": e.view.name, "device": e.profile.name,
                        "sampler": e.view.settings.get("sampler", "?"), "trials": len(e.view.records),
                        "front": len(pts), "best_accuracy": max((a for a, _ in pts), default=None),
                        "fastest_ms": min((lat for _, lat in pts), default=None),
                        "hypervolume": hypervolume_2d(pts, ref)})
        return out

    def refresh(self) -> None:
        """Re-read every study (a search may still be adding trials) and redraw."""
        for view in {id(e.view): e.view for e in self.entries}.values():
            view.reload()
        self.redraw()

    def redraw(self) -> None:
        """Replace all traces (their number changes with the entries) and the table; reload-safe."""
        traces = [self._trace(i, e) for i, e in enumerate(self.entries)]
        ref = self.reference
        with self.figure.batch_update():
            self.figure.data = []
            if traces:
                self.figure.add_traces(traces)
            self.figure.layout.title = f"Pareto fronts — hypervolume reference ({ref[0]:g}, {ref[1]:.3g} ms)"
            self.figure.layout.xaxis = dict(title="latency (ms) on each row's device",
                                            type="log" if self.log_x.value else "linear")
            self.figure.layout.yaxis = dict(title="accuracy", range=self._accuracy_range())
        sync_snapshot(self.figure)
        self.table.value = self._table_html(self.rows())

    def _accuracy_range(self) -> list[float] | None:
        """A fixed accuracy range around the fronts (plotly pads single points out to nonsense like 0..1.8)."""
        accs = [a for e in self.entries for a, _ in e.points()]
        if not accs:
            return None
        low, high = min(accs), max(accs)
        return [max(0.0, low - 0.05), min(1.0, high) + 0.03]

    def _trace(self, i: int, entry: FrontEntry) -> go.Scatter:
        front = entry.front
        return go.Scatter(x=[r.prediction(entry.profile)["latency_ms"] for r in front],
                          y=[r.accuracy for r in front], name=entry.label, mode="lines+markers",
                          line=dict(shape="hv", color=PALETTE[i % len(PALETTE)]), marker=dict(size=9),
                          customdata=[r.number for r in front], hoverinfo="text",
                          hovertext=[f"{esc(entry.label)}<br>{hover_text(r, entry.profile)}" for r in front])

    def _table_html(self, rows: list[dict]) -> str:
        best = max((r["hypervolume"] for r in rows), default=0.0)
        body = []
        for r in rows:
            acc = "—" if r["best_accuracy"] is None else f"{r['best_accuracy']:.4f}"
            fast = "—" if r["fastest_ms"] is None else f"{r['fastest_ms']:.3f}"
            mark = " ★" if rows and r["hypervolume"] == best and best > 0 else ""
            body.append(f"<tr><td>{esc(r['label'])}</td><td>{esc(r['device'])}</td><td>{esc(r['sampler'])}</td>"
                        f"<td>{r['trials']}</td><td>{r['front']}</td><td>{acc}</td><td>{fast}</td>"
                        f"<td>{r['hypervolume']:.4g}{mark}</td></tr>")
        ref = self.reference
        return ("<table style='font-size:12px'><tr><th>front</th><th>device</th><th>sampler</th><th>trials</th>"
                "<th>front size</th><th>best accuracy</th><th>fastest ms</th><th>hypervolume</th></tr>"
                f"{''.join(body)}</table><div style='font-size:11px'>hypervolume = area (accuracy × ms) dominated "
                f"by the front up to the shared reference point (accuracy {ref[0]:g}, latency {ref[1]:.4g} ms)</div>")
