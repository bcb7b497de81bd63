"""Pareto fronts from a study's stored trials, for any device profile, without retraining.

Each completed trial stores its architecture and its trained accuracy; predictions for a device are
read from the trial (stored at search time for every shipped profile) or recomputed from the
architecture (microseconds), so a front can be drawn for a profile added after the search.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Sequence

import optuna

from .arch import Architecture
from .cost import estimate, violations
from .profiles import DeviceProfile, load_profile

# objective name → (prediction field or None for accuracy, direction, label)
OBJECTIVES = {
    "accuracy": (None, "maximize", "accuracy"),
    "latency": ("latency_ms", "minimize", "latency ms"),
    "sram": ("peak_sram_bytes", "minimize", "peak SRAM KB"),
    "flash": ("flash_bytes", "minimize", "flash KB"),
}


@dataclass(frozen=True)
class TrialRecord:
    number: int
    arch: Architecture
    accuracy: float | None  # None: rejected before training; a proxy score in training-free studies
    predictions: dict[str, dict]
    rejected: tuple[str, ...]
    train_seconds: float | None

    def prediction(self, profile: DeviceProfile) -> dict:
        pred = self.predictions.get(profile.name)
        return pred if pred is not None else estimate(self.arch, profile).to_dict()

    def feasible_on(self, profile: DeviceProfile, latency_budget_ms: float | None = None) -> bool:
        return not self.fit_problems(profile, latency_budget_ms)

    def fit_problems(self, profile: DeviceProfile, latency_budget_ms: float | None = None) -> list[str]:
        """Why the trial does not fit ``profile`` (empty: it fits). The ONE feasibility rule: the fronts, the
        notebook's plot colours, the inspector, the comparison's empty-front reasons and the export warning ask this."""
        return [text for _, text in self.misfits(profile, latency_budget_ms)]

    def misfits(self, profile: DeviceProfile, latency_budget_ms: float | None = None) -> list[tuple[str, str]]:
        """``fit_problems`` with a kind each (``kernels``, ``sram``, ``flash``, ``latency``) for counting. The
        limits are the search's own constraints (``cost.violations``: > 0 is over), read from the stored prediction."""
        pred = self.prediction(profile)
        over = violations(SimpleNamespace(**pred), profile, latency_budget_ms)
        problems = []
        if over["unsupported_precision"] > 0:
            kinds = set().union(*(seg.precisions for seg in self.arch.segments)) - set(profile.precisions)
            problems.append(("kernels", f"{profile.name} has no kernels for "
                                        f"{', '.join(map(_kernel_words, sorted(kinds))) or 'it'}"))
        if over["sram_kb_over"] > 0:
            problems.append(("sram", f"peak SRAM {pred['peak_sram_bytes'] / 1024:.1f} KB > "
                                     f"{profile.sram_budget_bytes / 1024:.0f} KB"))
        if over["flash_kb_over"] > 0:
            problems.append(("flash", f"flash {pred['flash_bytes'] / 1024:.1f} KB > "
                                      f"{profile.flash_budget_bytes / 1024:.0f} KB"))
        if over.get("latency_ms_over", 0) > 0:
            problems.append(("latency", f"latency {pred['latency_ms']:.3f} ms > budget {latency_budget_ms:g} ms"))
        return problems

    def value(self, objective: str, profile: DeviceProfile) -> float:
        field = OBJECTIVES[objective][0]
        return self.accuracy if field is None else self.prediction(profile)[field]


def _kernel_words(kind: str) -> str:
    """``w4a8`` → ``4-bit weights (w4a8)``: what a person reads in a fit problem."""
    if kind.startswith("w") and "a" in kind:
        return f"{kind[1:kind.index('a')]}-bit weights ({kind})"
    return kind


def study_device(settings: dict, override=None) -> DeviceProfile:
    """The device a study aimed at (or ``override``): the creator's profile folder when this machine has
    it, else the shipped profile of that name (workers and notebooks on other machines)."""
    if override is not None:
        return override if isinstance(override, DeviceProfile) else load_profile(override)
    path = settings.get("device_file")
    if path and os.path.isfile(path):
        return load_profile(path)
    return load_profile(settings["device"])


def load_records(study: optuna.Study) -> list[TrialRecord]:
    """Completed trials that carry a workbench architecture."""
    records = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if "arch" not in t.user_attrs:
            continue
        records.append(TrialRecord(t.number, Architecture.from_dict(t.user_attrs["arch"]),
                                   t.user_attrs.get("accuracy", t.user_attrs.get("score")),
                                   t.user_attrs.get("predictions", {}),
                                   tuple(t.user_attrs.get("rejected", ())), t.user_attrs.get("train_seconds")))
    return records


def pareto_front(records: Sequence[TrialRecord], profile: DeviceProfile,
                 objectives: Sequence[str] = ("accuracy", "latency"),
                 latency_budget_ms: float | None = None) -> list[TrialRecord]:
    """Non-dominated trained trials that fit ``profile``, sorted by their first minimised objective.

    A sampler may propose the same architecture twice; the front lists it once (its first trial).
    """
    seen: set = set()
    candidates = []
    for r in sorted(records, key=lambda r: r.number):
        if r.accuracy is not None and r.arch not in seen and r.feasible_on(profile, latency_budget_ms):
            seen.add(r.arch)
            candidates.append(r)
    points = [_as_minimised(r, objectives, profile) for r in candidates]
    front = [r for r, p in zip(candidates, points)
             if not any(_dominates(q, p) for q in points if q is not p)]
    second = objectives[1] if len(objectives) > 1 else objectives[0]
    return sorted(front, key=lambda r: (r.value(second, profile), r.number))


def _as_minimised(record: TrialRecord, objectives, profile) -> tuple[float, ...]:
    return tuple(-record.value(o, profile) if OBJECTIVES[o][1] == "maximize" else record.value(o, profile)
                 for o in objectives)


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def hypervolume_2d(points: Sequence[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by (maximise x, minimise y) points up to ``reference`` = (min x, max y)."""
    ref_x, ref_y = reference
    pts = sorted((x, y) for x, y in points if x > ref_x and y < ref_y)
    area, best_y = 0.0, ref_y
    for x, y in reversed(pts):  # from the most accurate down
        if y < best_y:
            area += (x - ref_x) * (best_y - y)
            best_y = y
    return area


def front_rows(front: Sequence[TrialRecord], profile: DeviceProfile) -> list[dict]:
    """One plain dict per front trial: what tables, CSV and JSON output print."""
    rows = []
    for r in front:
        pred = r.prediction(profile)
        rows.append({
            "trial": r.number,
            "accuracy": round(r.accuracy, 4),
            "latency_ms": round(pred["latency_ms"], 4),
            "peak_sram_kb": round(pred["peak_sram_bytes"] / 1024, 1),
            "flash_kb": round(pred["flash_bytes"] / 1024, 1),
            "macs": pred["macs"],
            "params": pred["params"],
            "interpolated_ops": pred["interpolated_ops"],
            "precision": r.arch.precision,
            "architecture": r.arch.summary(),
        })
    return rows
