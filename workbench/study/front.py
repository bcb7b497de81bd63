"""Pareto fronts from a study's stored trials, for any device profile, without retraining.

Each completed trial stores its architecture and its trained accuracy; predictions for a device are
read from the trial (stored at search time for every shipped profile) or recomputed from the
architecture (microseconds), so a front can be drawn for a profile added after the search.

The front rule (one, used by the CLI, export, search and the notebooks): measurements are grouped per
architecture + quantisation policy (:func:`by_architecture`) — every trained trial of it and every extra
seed stored for it by ``workbench repeats`` — and a front point is the architecture's MEAN accuracy, with
its sample standard deviation and count, numbered by its first trained trial. A better repeat therefore
moves the front, and no measurement of an architecture is left out of the point that stands for it.
The best rule (:func:`best_of`): the highest mean accuracy on the front; ties → lower latency on the
device → lower trial number.
"""
from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Sequence

import optuna

from workbench.hardware.cost import estimate, violations
from workbench.hardware.profiles import DeviceProfile, load_profile
from workbench.hardware.training import TRAIN_SRAM_FIELD, training_prediction
from workbench.model.arch import Architecture
from workbench.study.objectives import OBJECTIVES, costs
from workbench.study.schema import Keys, arch_key, stored_repeats


@dataclass(frozen=True)
class Training:
    """A study's on-device training settings (``--train-scheme``, ``--train-sram-budget``), carried by each record
    so a prediction recomputed for another device includes training memory, and the fit rule knows the budget."""

    scheme: str
    budget_kb: float | None = None

    @classmethod
    def of(cls, settings) -> "Training | None":
        """From :class:`~workbench.study.schema.StudySettings` or a study's user attributes; None without a scheme."""
        get = settings.get if isinstance(settings, dict) else lambda key: getattr(settings, key, None)
        scheme = get("train_scheme")
        return None if not scheme else cls(scheme, get("train_sram_budget_kb"))


@dataclass(frozen=True)
class TrialRecord:
    number: int
    arch: Architecture
    accuracy: float | None  # None: rejected before training; a proxy score in training-free studies
    predictions: dict[str, dict]
    rejected: tuple[str, ...]
    train_seconds: float | None
    measurements: tuple[float, ...] = ()  # every accuracy measured for this architecture (own first, then repeats)
    duplicate_of: int | None = None  # sampled an architecture already trained in that trial: not trained
    trials: tuple[int, ...] = ()  # the trained trials whose measurements are merged here (by_architecture)
    training: Training | None = None  # the study's training settings (None: training memory not costed)

    @property
    def n(self) -> int:
        """How many measurements the accuracy rests on (0: rejected before training)."""
        return len(self.measurements) if self.measurements else int(self.accuracy is not None)

    @property
    def accuracy_mean(self) -> float | None:
        return statistics.fmean(self.measurements) if self.measurements else self.accuracy

    @property
    def accuracy_std(self) -> float | None:
        """Sample standard deviation (n - 1) of the measurements; None with fewer than two."""
        return statistics.stdev(self.measurements) if len(self.measurements) > 1 else None

    @property
    def first_measurement(self) -> float | None:
        """The numbered trial's own stored accuracy (what ``workbench export`` retrains and compares with)."""
        return self.measurements[0] if self.measurements else self.accuracy

    def accuracy_text(self, digits: int = 4) -> str:
        """``0.9611 ± 0.0087 (n=3)``; the plain value for one measurement; ``—`` for none."""
        mean, std = self.accuracy_mean, self.accuracy_std
        if mean is None:
            return "—"
        return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f} (n={self.n})"

    def prediction(self, profile: DeviceProfile) -> dict:
        pred = self.predictions.get(profile.name)
        if pred is not None:
            return pred
        pred = estimate(self.arch, profile).to_dict()
        if self.training is not None:
            pred.update(training_prediction(self.arch, profile, self.training.scheme))
        return pred

    def feasible_on(self, profile: DeviceProfile, latency_budget_ms: float | None = None) -> bool:
        return not self.fit_problems(profile, latency_budget_ms)

    def fit_problems(self, profile: DeviceProfile, latency_budget_ms: float | None = None) -> list[str]:
        """Why the trial does not fit ``profile`` (empty: it fits). The ONE feasibility rule: the fronts, the
        notebook's plot colours, the inspector, the comparison's empty-front reasons and the export warning ask this."""
        return [text for _, text in self.misfits(profile, latency_budget_ms)]

    def misfits(self, profile: DeviceProfile, latency_budget_ms: float | None = None, *,
                sram_kb: float | None = None, flash_kb: float | None = None) -> list[tuple[str, str]]:
        """``fit_problems`` with a kind each (``kernels``, ``sram``, ``flash``, ``latency``, ``train_sram``), in
        that order, for counting. The limits are the search's own constraints (``cost.violations``: > 0 is over),
        read from the stored prediction; ``sram_kb``/``flash_kb`` put what-if limits for the model's peak SRAM
        and flash in place of the device's budgets (:mod:`workbench.study.whatif`)."""
        pred = self.prediction(profile)
        limits = SimpleNamespace(
            sram_budget_bytes=profile.sram_budget_bytes if sram_kb is None else sram_kb * 1024,
            flash_budget_bytes=profile.flash_budget_bytes if flash_kb is None else flash_kb * 1024)
        over = violations(SimpleNamespace(**pred), limits, latency_budget_ms)
        problems = []
        if over["unsupported_precision"] > 0:
            kinds = set().union(*(seg.precisions for seg in self.arch.segments)) - set(profile.precisions)
            problems.append(("kernels", f"{profile.name} has no kernels for "
                                        f"{', '.join(map(_kernel_words, sorted(kinds))) or 'it'}"))
        if over["sram_kb_over"] > 0:
            problems.append(("sram", f"peak SRAM {pred['peak_sram_bytes'] / 1024:.1f} KB > "
                                     f"{_limit_kb(limits.sram_budget_bytes, sram_kb)} KB"))
        if over["flash_kb_over"] > 0:
            problems.append(("flash", f"flash {pred['flash_bytes'] / 1024:.1f} KB > "
                                      f"{_limit_kb(limits.flash_budget_bytes, flash_kb)} KB"))
        if over.get("latency_ms_over", 0) > 0:
            problems.append(("latency", f"latency {pred['latency_ms']:.3f} ms > budget {latency_budget_ms:g} ms"))
        budget = self.training.budget_kb if self.training else None
        if budget is not None and pred.get(TRAIN_SRAM_FIELD) is not None and pred[TRAIN_SRAM_FIELD] > budget * 1024:
            problems.append(("train_sram", f"training SRAM {pred[TRAIN_SRAM_FIELD] / 1024:.1f} KB > budget "
                                           f"{budget:g} KB"))
        return problems

    def value(self, objective: str, profile: DeviceProfile) -> float:
        """The value of ``objective`` (a registered name) on ``profile``, in stored units."""
        entry = OBJECTIVES[objective]
        return self.accuracy if entry.quality else entry.value(self.prediction(profile))


def _limit_kb(budget_bytes: float, what_if_kb: float | None) -> str:
    """A device budget in whole KB; a what-if limit as the person gave it."""
    return f"{budget_bytes / 1024:.0f}" if what_if_kb is None else f"{what_if_kb:g}"


def _kernel_words(kind: str) -> str:
    """``w4a8`` → ``4-bit weights (w4a8)``: what a person reads in a fit problem."""
    if kind.startswith("w") and "a" in kind:
        return f"{kind[1:kind.index('a')]}-bit weights ({kind})"
    return kind


def study_device(settings, override=None) -> DeviceProfile:
    """The device a study aimed at (or ``override``): the creator's profile folder when this machine has
    it, else the shipped profile of that name (workers and notebooks on other machines). ``settings``: a
    :class:`workbench.study.schema.StudySettings` or the study's user attributes."""
    if override is not None:
        return override if isinstance(override, DeviceProfile) else load_profile(override)
    if isinstance(settings, dict):
        path, name = settings.get("device_file"), settings["device"]
    else:
        path, name = settings.device_file, settings.device
    if path and os.path.isfile(path):
        return load_profile(path)
    return load_profile(name)


def load_records(study: optuna.Study) -> list[TrialRecord]:
    """Completed trials that carry a workbench architecture, one record per trial, in trial order.

    A trained trial's ``measurements`` are its own accuracy followed by the extra seeds stored for its
    architecture (``workbench repeats``) when it is that architecture's first trained trial; a trial marked
    ``duplicate_of`` was never trained and carries no measurement.
    """
    extra = stored_repeats(study)
    training = Training.of(study.user_attrs)
    records, first_trained = [], set()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        attrs = t.user_attrs
        if Keys.ARCH not in attrs:
            continue
        arch = Architecture.from_dict(attrs[Keys.ARCH])
        duplicate_of = attrs.get(Keys.DUPLICATE_OF)
        measured = duplicate_of is None and attrs.get(Keys.TRAINED, True) is not False
        accuracy = attrs.get(Keys.ACCURACY, attrs.get(Keys.SCORE)) if measured else None
        measurements = ()
        if accuracy is not None:
            repeats = list(attrs.get(Keys.REPEATS) or ())
            if arch not in first_trained:
                first_trained.add(arch)
                repeats += extra.get(attrs.get(Keys.ARCH_KEY) or arch_key(arch), [])
            measurements = (float(accuracy), *(float(r[Keys.ACCURACY]) for r in repeats
                                               if isinstance(r, dict) and r.get(Keys.ACCURACY) is not None))
        records.append(TrialRecord(t.number, arch, accuracy, attrs.get(Keys.PREDICTIONS, {}),
                                   tuple(attrs.get(Keys.REJECTED, ())), attrs.get(Keys.TRAIN_SECONDS),
                                   measurements, duplicate_of, training=training))
    return records


def by_architecture(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """One record per trained architecture + policy, holding ALL its measurements: accuracy = their mean,
    number = its first trained trial (whose predictions it keeps); rejected trials pass through one by one,
    never-trained duplicates are dropped (their architecture's record stands for them). In trial order.
    Idempotent: grouped records group to themselves."""
    groups: dict[Architecture, list[TrialRecord]] = {}
    out: list[TrialRecord] = []
    for r in sorted(records, key=lambda r: r.number):
        if r.duplicate_of is not None:
            continue
        if r.accuracy is None:
            out.append(r)
        else:
            groups.setdefault(r.arch, []).append(r)
    for members in groups.values():
        values = tuple(v for r in members for v in (r.measurements or (r.accuracy,)))
        numbers = tuple(sorted({n for r in members for n in (r.trials or (r.number,))}))
        out.append(replace(members[0], accuracy=statistics.fmean(values), measurements=values, trials=numbers))
    return sorted(out, key=lambda r: r.number)


def pareto_front(records: Sequence[TrialRecord], profile: DeviceProfile,
                 objectives: Sequence[str] = ("accuracy", "latency"),
                 latency_budget_ms: float | None = None) -> list[TrialRecord]:
    """Non-dominated trained architectures that fit ``profile``, sorted by their first minimised objective.

    Records are grouped first (:func:`by_architecture`): an architecture trained or repeated several
    times is one point at its mean accuracy.
    """
    candidates = [r for r in by_architecture(records)
                  if r.accuracy is not None and r.feasible_on(profile, latency_budget_ms)]
    return non_dominated(candidates, profile, objectives)


def non_dominated(candidates: Sequence[TrialRecord], profile: DeviceProfile,
                  objectives: Sequence[str] = ("accuracy", "latency")) -> list[TrialRecord]:
    """The candidates (grouped, trained, already known to fit) no other candidate dominates on ``objectives``,
    sorted by the second objective, then trial number: the last step of every front (``pareto_front``, the
    what-if front of :mod:`workbench.study.whatif`)."""
    points = [_as_minimised(r, objectives, profile) for r in candidates]
    front = [r for r, p in zip(candidates, points)
             if not any(_dominates(q, p) for q in points if q is not p)]
    second = objectives[1] if len(objectives) > 1 else objectives[0]
    return sorted(front, key=lambda r: (r.value(second, profile), r.number))


def best_key(record: TrialRecord, profile: DeviceProfile) -> tuple:
    """Sort key of the best rule (larger is better): mean accuracy, then lower latency on ``profile``,
    then lower trial number."""
    latency = record.prediction(profile)["latency_ms"]
    return (record.accuracy_mean, -(latency if latency is not None else float("inf")), -record.number)


def best_of(front: Sequence[TrialRecord], profile: DeviceProfile) -> TrialRecord | None:
    """THE best trial of a front: highest mean accuracy; ties → lower latency on ``profile`` → lower
    trial number. None for an empty front."""
    return max(front, key=lambda r: best_key(r, profile), default=None)


def _as_minimised(record: TrialRecord, objectives, profile) -> tuple[float, ...]:
    return tuple(-record.value(o, profile) if OBJECTIVES[o].maximised else record.value(o, profile)
                 for o in objectives)


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def front_rows(front: Sequence[TrialRecord], profile: DeviceProfile) -> list[dict]:
    """One plain dict per front point: what tables, CSV and JSON output print. ``accuracy`` is the numbered
    trial's own measurement; ``accuracy_mean``/``accuracy_std``/``n`` are over every measurement of its
    architecture (the front is drawn from the mean; std is None for a single measurement). Every cost
    objective the prediction carries has its column in shown units, unrounded: each output rounds it once
    (``Objective.digits`` in tables, ``machine_digits`` in csv/json). ``precision`` is the kernels the model needs
    (``Architecture.precision_label``: ``w4a8`` for an int8 model with a 4-bit stage), what ``--precision`` filters."""
    rows = []
    for r in front:
        pred = r.prediction(profile)
        std = r.accuracy_std
        rows.append({
            "trial": r.number,
            "accuracy": round(r.first_measurement, 4),
            "accuracy_mean": round(r.accuracy_mean, 4),
            "accuracy_std": None if std is None else round(std, 4),
            "n": r.n,
            **{o.column: o.shown(pred) for o in costs(pred)},
            "macs": pred["macs"],
            "params": pred["params"],
            "interpolated_ops": pred["interpolated_ops"],
            "precision": r.arch.precision_label,
            "architecture": r.arch.summary(),
        })
    return rows
