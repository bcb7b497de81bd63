"""Hardware-aware multi-objective search with Optuna.

One trial: sample an architecture from the space (through the trial, so the sampler learns), score
it on *every* shipped device profile (microseconds), set the target device's constraints with
``trial.set_constraint`` and — only when they hold — train and evaluate it. Everything needed to
redraw fronts later (architecture, per-device predictions, accuracy) goes into the trial's user
attributes in the Optuna storage, so studies resume and can be shared between processes/machines.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import optuna

from .cost import estimate, violations
from .errors import WorkbenchError
from .front import OBJECTIVES, TrialRecord, load_records, pareto_front
from .profiles import DeviceProfile, all_profiles, load_profile
from .space import SearchSpace, TrialSuggester, load_space
from .storage import DEFAULT_STORAGE, open_storage

SAMPLERS = ("tpe", "nsga2", "random")


def make_sampler(name: str, seed: int, population: int = 16) -> optuna.samplers.BaseSampler:
    """Seeded samplers; constraints reach them through ``trial.set_constraint``."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, population))
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise WorkbenchError(f"--sampler: unknown sampler {name!r} (choose from {', '.join(SAMPLERS)})")


@dataclass
class SearchResult:
    study: optuna.Study
    front: list[TrialRecord]
    device: DeviceProfile
    storage_url: str


@dataclass
class TrialOutcome:
    """What one finished trial reports to progress listeners (CLI line, notebook widgets)."""

    number: int
    done: int
    total: int
    accuracy: float | None
    latency_ms: float | None
    peak_sram_kb: float
    flash_kb: float
    rejected: tuple[str, ...]
    seconds: float
    summary: str


@dataclass
class Search:
    """A hardware-aware search: ``Search("vision", "stm32f746", "digits").run(20)``.

    ``space``/``device``/``data`` take names of shipped items or paths. ``objectives`` is accuracy
    and latency, optionally with ``sram`` and/or ``flash``. ``epochs`` is the per-trial training
    budget. The study is created on first use and resumed afterwards (``trials`` counts the total).
    """

    space: SearchSpace | str
    device: DeviceProfile | str
    data: object = None  # a workbench.data.Dataset, a name or a path; None: the space's default dataset
    study_name: str | None = None
    storage: str = DEFAULT_STORAGE
    sampler: str = "tpe"
    seed: int = 0
    latency_budget_ms: float | None = None
    objectives: Sequence[str] = ("accuracy", "latency")
    epochs: int = 3
    population: int = 16
    listeners: list[Callable[[TrialOutcome], None]] = field(default_factory=list)

    def __post_init__(self):
        from .data import load_dataset

        if isinstance(self.space, str):
            self.space = load_space(self.space)
        if isinstance(self.device, str):
            self.device = load_profile(self.device)
        if self.data is None:
            self.data = self.space.dataset or None
            if self.data is None:
                raise WorkbenchError(f"--data: space {self.space.name!r} names no default dataset; give one")
        if isinstance(self.data, str):
            self.data = load_dataset(self.data)
        self.objectives = tuple(self.objectives)
        if self.objectives[:2] != ("accuracy", "latency") or not set(self.objectives) <= set(OBJECTIVES):
            raise WorkbenchError(f"--objectives: must start with accuracy,latency and add only sram/flash; "
                                 f"got {','.join(self.objectives)}")
        if self.study_name is None:
            self.study_name = f"{self.space.name}-{self.device.name}"
        if self.latency_budget_ms is not None and self.latency_budget_ms <= 0:
            raise WorkbenchError(f"--latency-budget: must be > 0 ms, got {self.latency_budget_ms}")
        self.profiles = self._profiles_with_target()
        self.study = self._open_study()

    def _profiles_with_target(self) -> list[DeviceProfile]:
        profiles = {p.name: p for p in all_profiles()}
        profiles[self.device.name] = self.device
        return list(profiles.values())

    def _settings(self) -> dict:
        return {"space": self.space.name, "space_file": self.space.path, "device": self.device.name,
                "device_file": self.device.path, "data": self.data.name, "objectives": list(self.objectives),
                "latency_budget_ms": self.latency_budget_ms, "epochs": self.epochs, "seed": self.seed,
                "sampler": self.sampler}

    def _open_study(self) -> optuna.Study:
        storage = open_storage(self.storage)
        directions = [OBJECTIVES[o][1] for o in self.objectives]
        try:
            existing = optuna.load_study(study_name=self.study_name, storage=storage)
        except KeyError:
            existing = None
        n_done = len(existing.trials) if existing else 0
        sampler = make_sampler(self.sampler, self.seed + n_done, self.population)
        if existing is not None:
            self._check_compatible(existing)
            return optuna.load_study(study_name=self.study_name, storage=storage, sampler=sampler)
        study = optuna.create_study(study_name=self.study_name, storage=storage, directions=directions,
                                    sampler=sampler)
        for key, value in self._settings().items():
            study.set_user_attr(key, value)
        return study

    def _check_compatible(self, study: optuna.Study) -> None:
        """Resuming with other settings would mix incomparable trials: refuse with the difference."""
        saved = study.user_attrs
        for key in ("space", "device", "data", "objectives", "latency_budget_ms", "epochs"):
            mine = self._settings()[key]
            if key in saved and saved[key] != mine:
                raise WorkbenchError(f"study {self.study_name!r} was created with {key}={saved[key]!r}, "
                                     f"not {mine!r}; use another --study name")

    # ---------------------------------------------------------------- running
    def run(self, n_trials: int, *, timeout: float | None = None) -> SearchResult:
        """Run until the study holds ``n_trials`` finished trials (a resumed study continues)."""
        if n_trials < 1:
            raise WorkbenchError(f"--trials: must be >= 1, got {n_trials}")
        finished = self._finished()
        remaining = n_trials - finished
        self._total = n_trials
        if remaining > 0:
            self.study.optimize(self._objective, n_trials=remaining, timeout=timeout, gc_after_trial=False)
        return SearchResult(self.study, self.front(), self.device, self.storage)

    def _finished(self) -> int:
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        return len(self.study.get_trials(deepcopy=False, states=states))

    def front(self, device: DeviceProfile | None = None) -> list[TrialRecord]:
        return pareto_front(load_records(self.study), device or self.device, self.objectives, self.latency_budget_ms)

    def _objective(self, trial: optuna.Trial) -> tuple[float, ...]:
        start = time.perf_counter()
        arch = self.space.sample(TrialSuggester(trial), precisions=self.device.precisions,
                                 data=self.data.data_shape)
        costs = {p.name: estimate(arch, p) for p in self.profiles}
        target = costs[self.device.name].to_dict()
        trial.set_user_attr("arch", arch.to_dict())
        trial.set_user_attr("summary", arch.summary())
        trial.set_user_attr("predictions", {name: cost.to_dict() for name, cost in costs.items()})
        limits = violations(costs[self.device.name], self.device, self.latency_budget_ms)
        for name, value in limits.items():
            trial.set_constraint(name, value)
        rejected = tuple(name for name, value in limits.items() if value > 0)
        accuracy = None
        if rejected:
            trial.set_user_attr("rejected", list(rejected))
        else:
            accuracy = self._train(arch, trial)
        self._report(trial.number, arch, accuracy, target, rejected, time.perf_counter() - start)
        return tuple(self._objective_value(o, accuracy, target) for o in self.objectives)

    def _train(self, arch, trial: optuna.Trial) -> float:
        from .train import train_and_evaluate

        result = train_and_evaluate(arch, self.data, epochs=self.epochs, seed=self.seed + trial.number)
        trial.set_user_attr("accuracy", result.accuracy)
        trial.set_user_attr("fp32_accuracy", result.fp32_accuracy)
        trial.set_user_attr("train_seconds", round(result.train_seconds, 3))
        trial.set_user_attr("train_seed", self.seed + trial.number)
        return result.accuracy

    @staticmethod
    def _objective_value(objective: str, accuracy: float | None, pred: dict) -> float:
        field_name = OBJECTIVES[objective][0]
        if field_name is None:
            return 0.0 if accuracy is None else accuracy  # rejected: worst accuracy, and infeasible
        return float(pred[field_name])

    def _report(self, number, arch, accuracy, pred, rejected, seconds) -> None:
        outcome = TrialOutcome(number, self._finished() + 1, self._total, accuracy, pred["latency_ms"],
                               pred["peak_sram_bytes"] / 1024, pred["flash_bytes"] / 1024, rejected, seconds,
                               arch.summary())
        for listener in self.listeners:
            listener(outcome)


def print_progress(outcome: TrialOutcome, stream=None) -> None:
    """The CLI's live line: one line per finished trial."""
    stream = stream or sys.stderr
    head = f"[{outcome.done:>3}/{outcome.total}] trial {outcome.number:>3}"
    costs = f"lat {outcome.latency_ms:8.3f} ms  sram {outcome.peak_sram_kb:7.1f} KB  flash {outcome.flash_kb:7.1f} KB"
    if outcome.rejected:
        verdict = f"rejected before training ({', '.join(outcome.rejected)})"
    else:
        verdict = f"acc {outcome.accuracy:.4f}  ({outcome.seconds:.1f} s)"
    print(f"{head}  {costs}  {verdict}  {outcome.summary}", file=stream, flush=True)
