"""Front comparison: several (study, device) fronts on one plot, ranked on one stated scale.

Typical uses: one search's front re-drawn for several profiles (which device buys what), the same
search aimed at a Cortex-M4 and at a Cortex-M7, or two samplers on the same target. Each front is the
2-D accuracy/latency front (``workbench.study.front.pareto_front`` with the study's latency budget). The
ranking is ``workbench.study.compare``'s: ONE reference point for the whole comparison — the latency budget
where the studies have one — and a normalised hypervolume (the share of the accuracy × latency box up to
that reference a front dominates), so a slow device's scale cannot win by itself; a sentence says which
front is better and where the other still wins; an empty front says why (counted by the one
feasibility rule).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import ipywidgets as widgets

from workbench.hardware.profiles import DeviceProfile, load_profile
from workbench.study.compare import (
    AXES,
    Reference,
    empty_reason,
    normalised_hypervolume,
    reference_for,
    verdict,
)
from workbench.study.front import TrialRecord
from workbench.study.objectives import LATENCY, TRAIN_SRAM
from workbench.widgets.common import PALETTE, StudyView, esc, hover_text, study_view
from workbench.widgets.plot import PlotView


def least_training_sram(front, profile) -> float | None:
    """The smallest training-step SRAM (KB) on a front, where its study costs training memory (else None)."""
    values = [TRAIN_SRAM.shown(r.prediction(profile)) for r in front if TRAIN_SRAM.field in r.prediction(profile)]
    return min(values, default=None)


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
        return [tuple(r.value(axis, self.profile) for axis in AXES) for r in self.front]

    def why_empty(self) -> str:
        return empty_reason(self.view.records, self.profile, self.view.latency_budget_ms)


class FrontComparison(widgets.VBox):
    """``FrontComparison([(result_a, "stm32f746"), (result_b, "stm32l4r5", "M4 search")])``.

    Entries are ``(source, device[, label])``; ``source`` is anything the explorer takes (a
    SearchResult, Search, Study or study name with ``storage``), ``device`` a profile name/folder or
    None for the study's target. ``budget_ms`` sets the reference latency (default: the studies' latency
    budget, the smallest when they differ; without one, 1.1 × the slowest front point);
    ``reference_accuracy`` the accuracy floor of the box (default 0).
    """

    def __init__(self, entries=(), *, budget_ms: float | None = None, reference_accuracy: float = 0.0,
                 log_x: bool = False, storage: str | None = None, height: int = 460):
        self.entries: list[FrontEntry] = []
        self.budget_ms = budget_ms
        self.reference_accuracy = reference_accuracy
        self.storage = storage
        self.height = height
        self.log_x = widgets.Checkbox(value=log_x, description="log latency axis", indent=False)
        self.log_x.observe(lambda _: self.redraw(), names="value")
        self.figure = PlotView()
        self.figure.add_class("wb-comparison-figure")
        self.sentence = widgets.HTML()
        self.sentence.add_class("wb-verdict")
        self.table = widgets.HTML()
        self.table.add_class("wb-hv-table")
        super().__init__([self.log_x, self.figure, self.sentence, self.table], layout=widgets.Layout(width="100%"))
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
    def reference(self) -> Reference:
        """One reference for every row: the given budget, else the studies' (smallest) latency budget."""
        budgets = [e.view.latency_budget_ms for e in self.entries if e.view.latency_budget_ms]
        budget = self.budget_ms or (min(budgets) if budgets else None)
        return reference_for([e.points() for e in self.entries], budget, self.reference_accuracy)

    def rows(self) -> list[dict]:
        """One dict per entry: what the table shows (and what a test or script can assert on)."""
        ref = self.reference
        out = []
        for e in self.entries:
            pts = e.points()
            out.append({"label": e.label, "study": e.view.name, "device": e.profile.name,
                        "sampler": e.view.settings.sampler, "trials": len(e.view.records),
                        "front": len(pts), "best_accuracy": max((a for a, _ in pts), default=None),
                        "fastest_ms": min((lat for _, lat in pts), default=None),
                        "hypervolume": normalised_hypervolume(pts, ref),
                        "least_train_sram_kb": least_training_sram(e.front, e.profile),
                        "why_empty": None if pts else e.why_empty()})
        return out

    def verdict(self) -> str:
        """The plain sentence under the plot: which front is better, and where the other still wins."""
        return verdict([(e.label, e.points()) for e in self.entries], self.reference)

    def refresh(self) -> None:
        """Re-read every study (a search may still be adding trials) and redraw."""
        for view in {id(e.view): e.view for e in self.entries}.values():
            view.reload()
        self.redraw()

    def redraw(self) -> None:
        """Send the whole figure, the sentence and the table (one synced state each: reload-safe)."""
        ref = self.reference
        data = [self._trace(i, e) for i, e in enumerate(self.entries)]
        lats = [lat for e in self.entries for _, lat in e.points()] + [ref.latency_ms]
        log = self.log_x.value
        layout = dict(height=self.height, template="plotly_white", hovermode="closest", showlegend=True,
                      margin=dict(l=70, r=30, t=70, b=50), legend=dict(orientation="h", y=-0.18, yanchor="top"),
                      title=dict(text=f"Accuracy/latency Pareto fronts<br><sup>reference point for the hypervolumes: "
                                      f"accuracy {ref.accuracy:g}, {ref.latency_ms:.4g} ms ({esc(ref.why)})</sup>",
                                 font=dict(size=15)),
                      xaxis=dict(title=dict(text=f"{LATENCY.axis} on each row's device"), type="log" if log else "linear",
                                 range=self._latency_range(lats, log)),
                      yaxis=dict(title=dict(text="accuracy (test set)"), range=self._accuracy_range()),
                      shapes=[dict(type="line", xref="x", x0=ref.latency_ms, x1=ref.latency_ms, yref="paper", y0=0,
                                   y1=1, line=dict(color="#555", dash="dash", width=1.5))],
                      annotations=[dict(text=f"reference {ref.latency_ms:.4g} ms", x=ref.latency_ms, xref="x", y=1,
                                        yref="paper", xanchor="left", yanchor="top", showarrow=False,
                                        font=dict(size=11, color="#555"))])
        self.figure.show(data, layout)
        self.sentence.value = f"<div class='wb-verdict-text'><b>{esc(self.verdict())}</b></div>"
        self.table.value = self._table_html(self.rows(), ref)

    @staticmethod
    def _latency_range(lats: list[float], log: bool) -> list[float] | None:
        lats = [v for v in lats if v and v > 0]
        if not lats:
            return None
        lo, hi = min(lats), max(lats)
        if log:
            return [math.log10(lo) - 0.1, math.log10(hi) + 0.1]
        return [max(0.0, lo - 0.08 * (hi - lo or hi)), hi + 0.08 * (hi - lo or hi)]

    def _accuracy_range(self) -> list[float] | None:
        """A fixed accuracy range around the fronts (plotly pads single points out to nonsense like 0..1.8)."""
        accs = [a for e in self.entries for a, _ in e.points()]
        if not accs:
            return None
        low, high = min(accs), max(accs)
        return [max(0.0, low - 0.05), min(1.02, high + 0.03)]

    def _trace(self, i: int, entry: FrontEntry) -> dict:
        front = entry.front
        budget = entry.view.latency_budget_ms
        return dict(type="scatter", x=[r.prediction(entry.profile)["latency_ms"] for r in front],
                    y=[r.accuracy for r in front], name=entry.label if front else f"{entry.label} (empty)",
                    mode="lines+markers", line=dict(shape="hv", color=PALETTE[i % len(PALETTE)]), marker=dict(size=9),
                    customdata=[r.number for r in front], hoverinfo="text",
                    error_y=dict(type="data", array=[r.accuracy_std or 0.0 for r in front],
                                 visible=any(r.accuracy_std for r in front), thickness=1.2, width=3),
                    hovertext=[f"{esc(entry.label)}<br>{hover_text(r, entry.profile, budget)}" for r in front])

    @staticmethod
    def _table_html(rows: list[dict], ref: Reference) -> str:
        best = max((r["hypervolume"] for r in rows), default=0.0)
        training = any(r.get("least_train_sram_kb") is not None for r in rows)  # a column only where costed
        body = []
        for r in rows:
            tsram = "—" if r.get("least_train_sram_kb") is None else f"{r['least_train_sram_kb']:.1f}"
            tcell = f"<td>{tsram}</td>" if training else ""
            acc = "—" if r["best_accuracy"] is None else f"{r['best_accuracy']:.4f}"
            fast = "—" if r["fastest_ms"] is None else f"{r['fastest_ms']:.3f}"
            mark = " ★" if r["hypervolume"] == best and best > 0 else ""
            why = (f"<tr class='wb-empty'><td></td><td colspan='8' style='color:#a00'>empty front: "
                   f"{esc(r['why_empty'])}</td></tr>" if r["why_empty"] else "")
            body.append(f"<tr><td>{esc(r['label'])}</td><td>{esc(r['device'])}</td><td>{esc(r['sampler'])}</td>"
                        f"<td>{r['trials']}</td><td>{r['front']}</td><td>{acc}</td><td>{fast}</td>{tcell}"
                        f"<td>{100 * r['hypervolume']:.1f}%{mark}</td></tr>{why}")
        return ("<table style='font-size:12px'><tr><th>front</th><th>device</th><th>sampler</th><th>trials</th>"
                f"<th>front size</th><th>best accuracy</th><th>fastest ms</th>"
                f"{'<th>least training SRAM KB</th>' if training else ''}<th>hypervolume</th></tr>"
                f"{''.join(body)}</table><div style='font-size:11px'>hypervolume = share of the box accuracy "
                f"{ref.accuracy:g}–1 × latency 0–{ref.latency_ms:.4g} ms ({esc(ref.why)}) that the front dominates; "
                "one reference point for every row, so the rows compare.</div>")
