"""Hardware-aware multi-objective search with Optuna.

One trial: sample an architecture from the space (through the trial, so the sampler learns), score
it on *every* shipped device profile (microseconds), set the target device's constraints with
``trial.set_constraint`` and — only when they hold — train and evaluate it. Everything needed to
redraw fronts later (architecture, per-device predictions, accuracy) goes into the trial's user
attributes in the Optuna storage, so studies resume and can be shared between processes/machines.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import optuna

from .cost import estimate, violations
from .errors import WorkbenchError
from .front import OBJECTIVES, TrialRecord, load_records, pareto_front, study_device
from .profiles import DeviceProfile, load_profile, profiles_with
from .space import SearchSpace, TrialSuggester, load_space, space_from_text
from .storage import DEFAULT_STORAGE, HEARTBEAT_S, fail_stale_trials, has_heartbeat, load_study, open_storage

SAMPLERS = ("tpe", "nsga2", "random")
EVALUATORS = ("train", "synflow", "naswot")


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

    def line(self, pad: int = 0) -> str:
        """The trial in one line: costs on the target, accuracy or why it was rejected, the architecture
        (``pad`` right-aligns the trial number, for columns in a terminal)."""
        lat = "       —" if self.latency_ms is None else f"{self.latency_ms:8.3f}"
        costs = f"lat {lat} ms  sram {self.peak_sram_kb:7.1f} KB  flash {self.flash_kb:7.1f} KB"
        if self.rejected:
            verdict = f"rejected before training ({', '.join(self.rejected)})"
        else:
            verdict = f"acc {self.accuracy:.4f}  ({self.seconds:.1f} s)"
        return f"trial {self.number:>{pad}}  {costs}  {verdict}  {self.summary}"


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
    heartbeat_s: int | None = HEARTBEAT_S  # RDB storages: detect and retry trials of dead workers
    poll_s: float = 1.0  # how often a worker that waits for others' trials looks again
    worker: int = 0  # distinguishes the sampler seeds of workers that share a study
    evaluator: str = "train"  # or a training-free proxy: "synflow", "naswot" (seconds → milliseconds per trial)

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
            self.data_source = self.data
            self.data = load_dataset(self.data)
        else:
            self.data_source = getattr(self.data, "name", "")
        self.objectives = tuple(self.objectives)
        if self.objectives[:2] != ("accuracy", "latency") or not set(self.objectives) <= set(OBJECTIVES):
            raise WorkbenchError(f"--objectives: must start with accuracy,latency and add only sram/flash; "
                                 f"got {','.join(self.objectives)}")
        if self.study_name is None:
            self.study_name = f"{self.space.name}-{self.device.name}"
        if self.evaluator not in EVALUATORS:
            raise WorkbenchError(f"--evaluator: {self.evaluator!r} is not one of {', '.join(EVALUATORS)}")
        if self.latency_budget_ms is not None and self.latency_budget_ms <= 0:
            raise WorkbenchError(f"--latency-budget: must be > 0 ms, got {self.latency_budget_ms}")
        self.profiles = list(profiles_with(self.device).values())
        self.study = self._open_study()

    @classmethod
    def join(cls, study_name: str, storage: str = DEFAULT_STORAGE, **overrides) -> "Search":
        """A worker on an existing study: space, device, data and settings come from the study itself.

        The space travels inside the study (its YAML text), so a worker on another machine needs only
        the storage URL; the device is looked up by name among shipped profiles (or the creator's
        path), the data by the name or path it was given.
        """
        attrs = load_study(study_name, storage).user_attrs
        space = space_from_text(attrs["space_yaml"], f"study {study_name} (stored space)")
        options = dict(study_name=study_name, storage=storage, sampler=attrs["sampler"], seed=attrs["seed"],
                       latency_budget_ms=attrs["latency_budget_ms"], objectives=attrs["objectives"],
                       epochs=attrs["epochs"], evaluator=attrs.get("evaluator", "train"), worker=os.getpid())
        options.update(overrides)
        device = study_device(attrs, options.pop("device", None))
        data = options.pop("data", None) or attrs.get("data_source") or attrs["data"]
        return cls(space, device, data, **options)


    def _settings(self) -> dict:
        return {"space": self.space.name, "space_file": self.space.path, "space_yaml": self.space.text,
                "device": self.device.name, "device_file": self.device.path,
                "data": self.data.name, "data_source": self.data_source, "objectives": list(self.objectives),
                "latency_budget_ms": self.latency_budget_ms, "epochs": self.epochs, "seed": self.seed,
                "sampler": self.sampler, "evaluator": self.evaluator}

    def _open_study(self) -> optuna.Study:
        storage = open_storage(self.storage, heartbeat_s=self.heartbeat_s)
        self._heartbeat = has_heartbeat(storage)
        directions = [OBJECTIVES[o][1] for o in self.objectives]
        try:
            existing = optuna.load_study(study_name=self.study_name, storage=storage)
        except KeyError:
            existing = None
        n_done = len(existing.trials) if existing else 0
        # a resumed study or another worker must not replay the first run's random draws
        sampler = make_sampler(self.sampler, (self.seed + n_done + 7919 * self.worker) % 2**31, self.population)
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
        saved, settings = study.user_attrs, self._settings()
        for key in ("space", "device", "data", "objectives", "latency_budget_ms", "epochs", "evaluator"):
            mine = settings[key]
            if key in saved and saved[key] != mine:
                raise WorkbenchError(f"study {self.study_name!r} was created with {key}={saved[key]!r}, "
                                     f"not {mine!r}; use another --study name")

    # ---------------------------------------------------------------- running
    def run(self, n_trials: int | None = None, *, timeout: float | None = None) -> SearchResult:
        """Work on the study until it holds ``n_trials`` completed trials, together with any other workers.

        ``None`` takes the target stored with the study (workers joining it). A resumed study continues
        where it stopped; trials of workers that died are failed (heartbeat) and retried; a worker
        whose own trial would exceed the target records it as pruned ("surplus") instead.
        """
        n_trials = self._target(n_trials)
        self._total = n_trials
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            fail_stale_trials(self.study)
            complete, running, waiting = self._counts()
            if complete >= n_trials:
                break
            if complete + running >= n_trials and not waiting:
                time.sleep(self.poll_s)  # the last trials are others'; wait for them to finish or go stale
                continue
            self._optimize_one()
        return SearchResult(self.study, self.front(), self.device, self.storage)

    def _target(self, n_trials: int | None) -> int:
        stored = self.study.user_attrs.get("trials")
        if n_trials is None:
            if stored is None:
                raise WorkbenchError("--trials: the study stores no target number of trials; give one")
            return int(stored)
        if n_trials < 1:
            raise WorkbenchError(f"--trials: must be >= 1, got {n_trials}")
        if stored is None or n_trials > stored:
            self.study.set_user_attr("trials", n_trials)  # workers that join later aim for the same total
        return n_trials

    def _optimize_one(self) -> None:
        """One trial; on Ctrl-C the interrupted trial (marked failed by Optuna) is queued again first."""
        self._current = None
        try:
            self.study.optimize(self._objective, n_trials=1, gc_after_trial=False)
        except KeyboardInterrupt:
            if self._current is not None:
                frozen = self.study._storage.get_trial(self._current._trial_id)
                self.study.enqueue_trial(frozen.params, user_attrs={"retry_of": frozen.number})
            raise

    def _counts(self) -> tuple[int, int, int]:
        """(completed, running, waiting) trials; running ones count only where a heartbeat watches them."""
        states = [t.state for t in self.study.get_trials(deepcopy=False)]
        running = states.count(optuna.trial.TrialState.RUNNING) if self._heartbeat else 0
        self._snapshot = (states.count(optuna.trial.TrialState.COMPLETE), running,
                          states.count(optuna.trial.TrialState.WAITING))
        return self._snapshot

    def _is_surplus(self, trial: optuna.Trial) -> bool:
        """Would this trial complete one more than the target? (two workers raced for the last slot)

        Only near the end is the study read again (reads cost a query per trial); ties between trials
        started at once go to the lower trial number.
        """
        complete, running, _ = self._snapshot
        if complete + running + 1 < self._total:
            return False
        ahead = 0
        for t in self.study.get_trials(deepcopy=False):
            if t.number == trial.number:
                continue
            if t.state == optuna.trial.TrialState.COMPLETE or (
                    self._heartbeat and t.state == optuna.trial.TrialState.RUNNING and t.number < trial.number):
                ahead += 1
        return ahead >= self._total

    def front(self, device: DeviceProfile | None = None) -> list[TrialRecord]:
        return pareto_front(load_records(self.study), device or self.device, self.objectives, self.latency_budget_ms)

    def _objective(self, trial: optuna.Trial) -> tuple[float, ...]:
        start = time.perf_counter()
        self._current = trial
        if self._is_surplus(trial):
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned("the study already has its trials")
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
        elif self.evaluator == "train":
            accuracy = self._train(arch, trial)
        else:
            accuracy = self._proxy(arch, trial)
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

    def _proxy(self, arch, trial: optuna.Trial) -> float:
        """A training-free score instead of accuracy (stored as ``score``, never as ``accuracy``)."""
        from . import proxies

        start = time.perf_counter()
        if self.evaluator == "synflow":
            score = proxies.synflow(arch, seed=self.seed)
        else:
            score = proxies.naswot(arch, self.data.adapted(arch.input_shape)[0][:64], seed=self.seed)
        trial.set_user_attr("score", score)
        trial.set_user_attr("eval_seconds", round(time.perf_counter() - start, 5))
        return score

    @staticmethod
    def _objective_value(objective: str, accuracy: float | None, pred: dict) -> float:
        field_name = OBJECTIVES[objective][0]
        if field_name is None:
            return 0.0 if accuracy is None else accuracy  # rejected: worst accuracy, and infeasible
        return float(pred[field_name])

    def _report(self, number, arch, accuracy, pred, rejected, seconds) -> None:
        outcome = TrialOutcome(number, self._snapshot[0] + 1, self._total, accuracy, pred["latency_ms"],
                               pred["peak_sram_bytes"] / 1024, pred["flash_bytes"] / 1024, rejected, seconds,
                               arch.summary())
        for listener in self.listeners:
            listener(outcome)


def print_progress(outcome: TrialOutcome, stream=None) -> None:
    """The CLI's live line: one line per finished trial."""
    print(f"[{outcome.done:>3}/{outcome.total}] {outcome.line(pad=3)}", file=stream or sys.stderr, flush=True)
