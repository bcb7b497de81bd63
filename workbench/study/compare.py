"""Comparing accuracy/latency fronts fairly: one reference point per comparison, a normalised hypervolume,
a sentence that says which front is better and where, and the reason a front is empty.

Why normalised: a raw hypervolume is in accuracy × ms, so a front on a slow device wins by its scale, and
a reference point that moves from plot to plot makes numbers incomparable. Here every front of one
comparison is measured against the SAME box — accuracy from ``reference_accuracy`` to 1, latency from 0 to
the reference latency (the latency budget when there is one) — and the hypervolume is the fraction of
that box the front dominates (0..1). Points slower than the reference count for nothing: they miss the
requirement.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from workbench.hardware.profiles import DeviceProfile
from workbench.study.front import TrialRecord
from workbench.study.objectives import ACCURACY, LATENCY, hypervolume

AXES = (ACCURACY.name, LATENCY.name)  # the objectives every compared front is drawn and measured in
Point = tuple[float, float]  # (accuracy, latency ms)


@dataclass(frozen=True)
class Reference:
    accuracy: float
    latency_ms: float
    why: str  # "the latency budget" or "1.1 × the slowest front point"

    @property
    def box(self) -> float:
        return (1.0 - self.accuracy) * self.latency_ms


def reference_for(fronts: Sequence[Sequence[Point]], budget_ms: float | None = None,
                  accuracy: float = 0.0) -> Reference:
    """One reference for a whole comparison: the budget where there is one, else 1.1 × the slowest point."""
    if budget_ms:
        return Reference(accuracy, float(budget_ms), f"the {budget_ms:g} ms latency budget")
    slowest = max((lat for front in fronts for _, lat in front), default=1.0)
    return Reference(accuracy, 1.1 * slowest, "1.1 × the slowest front point (no latency budget)")


def normalised_hypervolume(points: Sequence[Point], reference: Reference) -> float:
    """Fraction (0..1) of the reference box that the front dominates."""
    area = hypervolume(points, (reference.accuracy, reference.latency_ms), AXES)
    return area / reference.box if reference.box > 0 else 0.0


def best_accuracy_within(points: Sequence[Point], latency_ms: float) -> float | None:
    """The attainment curve: the best accuracy the front reaches at or under ``latency_ms``."""
    return max((acc for acc, lat in points if lat <= latency_ms), default=None)


def where_better(a: Sequence[Point], b: Sequence[Point], limit_ms: float) -> list[tuple[float, float]]:
    """Latency intervals (start, end) up to ``limit_ms`` where front ``b`` reaches a higher accuracy than ``a``."""
    cuts = sorted({lat for _, lat in [*a, *b] if lat < limit_ms} | {limit_ms})
    spans: list[tuple[float, float]] = []
    for start, end in zip(cuts, cuts[1:]):
        acc_a, acc_b = best_accuracy_within(a, start), best_accuracy_within(b, start)
        if acc_b is not None and (acc_a is None or acc_b > acc_a):
            if spans and spans[-1][1] == start:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
    return spans


def verdict(named: Sequence[tuple[str, Sequence[Point]]], reference: Reference) -> str:
    """A plain sentence: which front is better overall, by how much, and where the runner-up still wins."""
    scored = sorted(((normalised_hypervolume(pts, reference), label, pts) for label, pts in named if pts),
                    key=lambda item: -item[0])
    if not scored:
        return "No front has a trained model that fits its device: nothing to compare."
    if len(scored) == 1:
        return f"Only {scored[0][1]} has a front; the others are empty (see the reasons below)."
    (hv1, best, pts1), (hv2, second, pts2) = scored[0], scored[1]
    scale = f"of the accuracy × latency box up to {reference.latency_ms:.4g} ms"
    if hv1 == hv2:
        head = f"{best} and {second} dominate the same share ({100 * hv1:.1f}%) {scale}"
    else:
        head = f"{best} is the better front: it dominates {100 * hv1:.1f}% {scale}, {second} {100 * hv2:.1f}%"
    spans = where_better(pts1, pts2, reference.latency_ms)
    if spans:
        where = ", ".join(f"{s:.3g}–{e:.3g} ms" for s, e in spans)
        tail = f"; {second} is more accurate at latencies {where}"
    else:
        tail = f"; it is at least as accurate as {second} at every latency up to {reference.latency_ms:.4g} ms"
    return head + tail + "."


def empty_reason(records: Sequence[TrialRecord], profile: DeviceProfile, budget_ms: float | None) -> str:
    """Why no trained trial of a study fits ``profile``, counted by cause (the one feasibility rule)."""
    if not records:
        return "no finished trials yet"
    trained = [r for r in records if r.accuracy is not None]
    if not trained:
        return f"all {len(records)} finished trials were rejected before training"
    counts: dict[str, int] = {}
    example: dict[str, str] = {}
    for r in trained:
        for kind, text in r.misfits(profile, budget_ms):
            counts[kind] = counts.get(kind, 0) + 1
            example.setdefault(kind, text)
    n = len(trained)
    words = {"kernels": lambda: f"use {example['kernels'].split(' for ', 1)[-1]}, which {profile.name} cannot run",
             "sram": lambda: f"need more SRAM than the {profile.sram_budget_bytes / 1024:.0f} KB {profile.name} leaves",
             "flash": lambda: f"need more flash than the {profile.flash_budget_bytes / 1024:.0f} KB "
                              f"{profile.name} leaves",
             "latency": lambda: f"are slower than the {budget_ms:g} ms budget on {profile.name}",
             "train_sram": lambda: f"need more training SRAM than the study's budget ({example['train_sram']})"}
    parts = [f"{counts[k]} of {n} trained trials {words[k]()}" for k in words if k in counts]
    return "; ".join(parts) if parts else "no trained trial fits"
