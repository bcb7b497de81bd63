"""Hardware-aware multi-objective search with Optuna.

One trial: sample an architecture from the space (through the trial, so the sampler learns), score
it on *every* shipped device profile (microseconds), set the target device's constraints with
``trial.set_constraint`` and — only when they hold — train and evaluate it. Everything needed to
redraw fronts later (architecture, per-device predictions, accuracy) goes into the trial's user
attributes in the Optuna storage, so studies resume and can be shared between processes/machines.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import optuna

from .cost import estimate, violations
from .errors import WorkbenchError
from .front import OBJECTIVES, TrialRecord, load_records, pareto_front, study_device
from .profiles import DeviceProfile, load_profile, profiles_with
from .space import SearchSpace, TrialSuggester, load_space, space_from_text
from .fingerprint import FINGERPRINT_ATTR, differences, fingerprint
from .processes import acknowledge, shielded
from .recovery import OWNER, Heartbeat, owner_record, recover
from .storage import (DEFAULT_STORAGE, GRACE_FACTOR, HEARTBEAT_S, check_study_name, load_study, open_storage, redact,
                      storage_faults, tally_lock, wait_until)

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
    metric: str = "acc"  # "score" when a training-free proxy stands in for accuracy

    def line(self, pad: int = 0) -> str:
        """The trial in one line: costs on the target, accuracy or why it was rejected, the architecture
        (``pad`` right-aligns the trial number, for columns in a terminal)."""
        lat = "       —" if self.latency_ms is None else f"{self.latency_ms:8.3f}"
        costs = f"lat {lat} ms  sram {self.peak_sram_kb:7.1f} KB  flash {self.flash_kb:7.1f} KB"
        if self.rejected:
            verdict = f"rejected before training ({', '.join(self.rejected)})"
        else:
            verdict = f"{self.metric} {self.accuracy:.4f}  ({self.seconds:.1f} s)"
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
    heartbeat_s: int | None = HEARTBEAT_S  # every storage: detect and retry trials of dead workers (None: off)
    poll_s: float = 1.0  # how often a worker that waits for others' trials looks again
    worker: int = 0  # distinguishes the sampler seeds of workers that share a study
    evaluator: str = "train"  # or a training-free proxy: "synflow", "naswot" (seconds → milliseconds per trial)

    def __post_init__(self):
        """Everything the search needs is loaded and checked here, before any storage is opened: a
        refused command leaves no study, no trial and no changed setting behind."""
        from .data import check_against_space, load_dataset

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
        self.data_notes = check_against_space(self.data, self.space, self.data_source)  # before any storage
        self._check_options()
        self.profiles = list(profiles_with(self.device).values())
        check_lut_coverage(self.space, self.profiles)
        self._study: optuna.Study | None = None
        self._total: int | None = None

    def _check_options(self) -> None:
        self.objectives = tuple(self.objectives)
        if self.objectives[:2] != ("accuracy", "latency") or not set(self.objectives) <= set(OBJECTIVES):
            raise WorkbenchError(f"--objectives: must start with accuracy,latency and add only sram/flash; "
                                 f"got {','.join(self.objectives)}")
        if self.study_name is None:
            self.study_name = f"{self.space.name}-{self.device.name}"
        check_study_name(self.study_name)
        if self.sampler not in SAMPLERS:
            raise WorkbenchError(f"--sampler: unknown sampler {self.sampler!r} (choose from {', '.join(SAMPLERS)})")
        if self.evaluator not in EVALUATORS:
            raise WorkbenchError(f"--evaluator: {self.evaluator!r} is not one of {', '.join(EVALUATORS)}")
        if self.latency_budget_ms is not None and not 0 < self.latency_budget_ms < float("inf"):
            raise WorkbenchError(f"--latency-budget: must be > 0 ms, got {self.latency_budget_ms}")
        for flag, value, least in (("--epochs", self.epochs, 1), ("--population", self.population, 2)):
            if not isinstance(value, int) or value < least:
                raise WorkbenchError(f"{flag}: must be an integer >= {least}, got {value!r}")
        if self.heartbeat_s is not None and self.heartbeat_s < 1:
            raise WorkbenchError(f"--heartbeat: must be >= 1 s (or 0 to disable), got {self.heartbeat_s}")

    @classmethod
    def join(cls, study_name: str, storage: str = DEFAULT_STORAGE, **overrides) -> "Search":
        """A worker on an existing study: space, device, data and settings come from the study itself.

        The space travels inside the study (its YAML text), so a worker on another machine needs only
        the storage URL; the device is looked up by name among shipped profiles (or the creator's
        path), the data by the name or path it was given. Their content must match what the study
        was created with (see :mod:`workbench.fingerprint`).
        """
        study = load_study(study_name, storage)
        attrs = _wait_for_definition(study, storage)
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

    # ---------------------------------------------------------------- the study
    @property
    def study(self) -> optuna.Study:
        """The Optuna study, created (or resumed) on first use — after every check has passed."""
        if self._study is None:
            self._study = self._open_study()
        return self._study

    def open(self, n_trials: int | None = None) -> int:
        """Check ``n_trials``, then create or resume the study and store its target; the target."""
        if n_trials is not None and (not isinstance(n_trials, int) or n_trials < 1):
            raise WorkbenchError(f"--trials: must be >= 1, got {n_trials}")
        with storage_faults(self.storage):
            self._total = self._target(n_trials)
        return self._total

    def _open_study(self) -> optuna.Study:
        storage = open_storage(self.storage, heartbeat_s=self.heartbeat_s)
        with storage_faults(self.storage):
            existing = self._load_existing(storage)
            if existing is None:
                existing = self._create(storage)
            else:
                _wait_for_definition(existing, self.storage)
                self._check_compatible(existing)
            # a resumed study or another worker must not replay the first run's random draws
            n_done = len(existing.get_trials(deepcopy=False))
            sampler = make_sampler(self.sampler, (self.seed + n_done + 7919 * self.worker) % 2**31, self.population)
            return optuna.load_study(study_name=self.study_name, storage=storage, sampler=sampler)

    def _load_existing(self, storage) -> optuna.Study | None:
        try:
            return optuna.load_study(study_name=self.study_name, storage=storage)
        except KeyError:
            return None

    def _create(self, storage) -> optuna.Study:
        """A new study with its settings and fingerprint; when another process created it a moment
        earlier, join that one instead (after the same compatibility check)."""
        directions = [OBJECTIVES[o][1] for o in self.objectives]
        try:
            study = optuna.create_study(study_name=self.study_name, storage=storage, directions=directions)
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=self.study_name, storage=storage)
            _wait_for_definition(study, self.storage)
            self._check_compatible(study)
            return study
        for key, value in self._settings().items():
            study.set_user_attr(key, value)
        study.set_user_attr(FINGERPRINT_ATTR, self._fingerprint())  # last: marks the definition complete
        return study

    def _fingerprint(self) -> dict:
        if not hasattr(self, "_fingerprint_cache"):
            self._fingerprint_cache = fingerprint(self.space, self.device, self.data)
        return self._fingerprint_cache

    def _check_compatible(self, study: optuna.Study) -> None:
        """Resuming with other settings or other content would mix incomparable trials: refuse, naming
        every difference."""
        saved, settings = study.user_attrs, self._settings()
        renamed = [key for key in ("space", "device", "data", "objectives", "latency_budget_ms", "epochs", "evaluator")
                   if key in saved and saved[key] != settings[key]]
        content = []
        if FINGERPRINT_ATTR in saved:  # same names, other content (a named difference says enough by itself)
            mine = dict(self._fingerprint())
            stored = {k: (mine[k] if k in renamed else v) for k, v in saved[FINGERPRINT_ATTR].items()}
            content = differences(stored, mine, saved_space_text=saved.get("space_yaml", ""),
                                  space_text=self.space.text,
                                  space_where=f"space file {self.space.path or self.space.name}",
                                  device_name=self.device.name, data_name=self.data_source or self.data.name)
        if not renamed and not content:
            return
        parts = [f"{key}={saved[key]!r}, not {settings[key]!r}" for key in renamed]
        head = f"study {self.study_name!r} was created with {', '.join(parts)}" if parts else \
            f"study {self.study_name!r} was created with other inputs"
        detail = f": {'; '.join(content)}" if content else ""
        raise WorkbenchError(f"{head}{detail}; use another --study name (or the original files)")

    def _target(self, n_trials: int | None) -> int:
        stored = self.study.user_attrs.get("trials")
        if n_trials is None:
            if stored is None:
                raise WorkbenchError("--trials: the study stores no target number of trials; give one")
            return int(stored)
        if stored is None or n_trials > stored:
            self.study.set_user_attr("trials", n_trials)  # workers that join later aim for the same total
        return n_trials

    # ---------------------------------------------------------------- running
    def run(self, n_trials: int | None = None, *, timeout: float | None = None) -> SearchResult:
        """Work on the study until it holds ``n_trials`` completed trials, together with any other workers.

        ``None`` takes the target stored with the study (workers joining it). A resumed study continues
        where it stopped; trials of workers that died are failed and retried (:mod:`workbench.recovery`);
        a trial that would complete one more than the target is recorded as pruned ("surplus").
        """
        n_trials = self.open(n_trials)
        deadline = None if timeout is None else time.monotonic() + timeout
        with storage_faults(self.storage, mid_run=True):
            while deadline is None or time.monotonic() < deadline:
                recover(self.study, self._grace_s())
                complete, running, waiting = self._counts()
                if complete >= n_trials:
                    break
                if complete + running >= n_trials and not waiting:
                    time.sleep(self.poll_s)  # the last trials are others'; wait for them to finish or go stale
                    continue
                self._run_one()
            return SearchResult(self.study, self.front(), self.device, self.storage)

    def _grace_s(self) -> float | None:
        return None if not self.heartbeat_s else GRACE_FACTOR * self.heartbeat_s

    def _counts(self) -> tuple[int, int, int]:
        """(completed, running, waiting) trials; running ones count only where heartbeats watch them
        (with ``heartbeat_s=None`` a dead worker on another machine could never be told from a slow one)."""
        states = [t.state for t in self.study.get_trials(deepcopy=False)]
        running = states.count(optuna.trial.TrialState.RUNNING) if self.heartbeat_s else 0
        self._snapshot = (states.count(optuna.trial.TrialState.COMPLETE), running,
                          states.count(optuna.trial.TrialState.WAITING))
        return self._snapshot

    def _run_one(self) -> None:
        """One trial through Optuna's ask-and-tell interface: ask, beat while it is evaluated, tell.

        Ctrl-C (or SIGTERM) marks the trial failed and queues its parameters again first; any other
        error marks it failed and propagates. Both clean-ups run with further interrupts held back.
        """
        trial = self._ask()
        try:
            with self._beating(trial):
                result = self._objective(trial)
            self._finish(trial, *result)
        except optuna.TrialPruned:
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)
        except KeyboardInterrupt:
            acknowledge()  # the interrupt arrived; processes stops re-sending it
            self._abandon(trial, retry=True)
            raise
        except BaseException:
            self._abandon(trial, retry=False)
            raise

    def _ask(self) -> optuna.Trial:
        with warnings.catch_warnings():  # "heartbeat is supposed to be used with optimize": we beat ourselves
            warnings.simplefilter("ignore")
            trial = self.study.ask()
        self.study._storage.set_trial_system_attr(trial._trial_id, OWNER, owner_record())
        return trial

    def _beating(self, trial: optuna.Trial):
        if not self.heartbeat_s:
            return contextlib.nullcontext()
        return Heartbeat(self.study._storage, trial._trial_id, self.heartbeat_s)

    def _finish(self, trial: optuna.Trial, values: tuple[float, ...], report: Callable[[int], None]) -> None:
        """Record the trial as complete — or as surplus when others completed the last slot first.

        Counting and telling happen under the study's tally lock, so the study ends with exactly
        ``n_trials`` completed trials however many workers race for the last one.
        """
        with tally_lock(self.study._storage, self.storage, self.study_name):
            done = completed_trials(self.study)
            if done >= self._total:
                self.study._storage.set_trial_user_attr(trial._trial_id, "surplus", True)
                self.study.tell(trial, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)
                return
            frozen = self.study.tell(trial, values, skip_if_finished=True)
        if frozen.state == optuna.trial.TrialState.COMPLETE:  # not failed meanwhile as stale by another worker
            report(done + 1)

    def _abandon(self, trial: optuna.Trial, *, retry: bool) -> None:
        """Mark an interrupted or failed trial FAIL (unless it finished) and, after Ctrl-C, queue it again."""
        storage = self.study._storage
        with shielded():
            try:
                frozen = storage.get_trial(trial._trial_id)
                if frozen.state != optuna.trial.TrialState.RUNNING:
                    return
                storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
                if retry:
                    self.study.enqueue_trial(frozen.params, user_attrs={"retry_of": frozen.number})
            except Exception:  # the storage itself failed: the original error says why; recovery retries later
                pass

    def _is_surplus(self, trial: optuna.Trial) -> bool:
        """Would this trial complete one more than the target? Checked before sampling, to skip work that
        the tally at the end would discard; only near the end is the study read again."""
        complete, running, _ = self._snapshot
        if complete + running + 1 < self._total:
            return False
        ahead = 0
        for t in self.study.get_trials(deepcopy=False):
            if t.number == trial.number:
                continue
            if t.state == optuna.trial.TrialState.COMPLETE or (
                    self.heartbeat_s and t.state == optuna.trial.TrialState.RUNNING and t.number < trial.number):
                ahead += 1
        return ahead >= self._total

    def front(self, device: DeviceProfile | None = None) -> list[TrialRecord]:
        return pareto_front(load_records(self.study), device or self.device, self.objectives, self.latency_budget_ms)

    def _objective(self, trial: optuna.Trial) -> tuple[tuple[float, ...], Callable[[int], None]]:
        """The trial's objective values, and how to report it once its place in the count is known."""
        start = time.perf_counter()
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
        seconds = time.perf_counter() - start
        values = tuple(self._objective_value(o, accuracy, target) for o in self.objectives)
        return values, lambda done: self._report(trial.number, arch, accuracy, target, rejected, seconds, done)

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

    def _report(self, number, arch, accuracy, pred, rejected, seconds, done: int) -> None:
        """``done``: this trial's place among the study's completed trials (all workers'), counted under
        the tally lock, so workers sharing the study print one sequence that ends at n/n."""
        outcome = TrialOutcome(number, done, self._total, accuracy, pred["latency_ms"],
                               pred["peak_sram_bytes"] / 1024, pred["flash_bytes"] / 1024, rejected, seconds,
                               arch.summary(), "acc" if self.evaluator == "train" else "score")
        for listener in self.listeners:
            listener(outcome)


def completed_trials(study: optuna.Study) -> int:
    """Completed trials in the storage (all workers'), rejected-before-training ones included."""
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


DEFINITION_WAIT_S = 10  # how long a joiner waits for a study's creator to finish recording its settings


def _wait_for_definition(study: optuna.Study, storage_url: str) -> dict:
    """The study's settings, once its creator has written them all (it writes the fingerprint last).

    Studies created before fingerprints existed are accepted as they are when they hold trials.
    """
    def complete() -> bool:
        attrs = study.user_attrs
        return FINGERPRINT_ATTR in attrs or ("space_yaml" in attrs and len(study.get_trials(deepcopy=False)) > 0)

    if not wait_until(complete, DEFINITION_WAIT_S):
        raise WorkbenchError(f"study {study.study_name!r} in {redact(storage_url)} has no recorded settings (its "
                             f"creator stopped before writing them, or another program made it); use another "
                             f"--study name")
    return study.user_attrs


def check_lut_coverage(space: SearchSpace, profiles: Sequence[DeviceProfile]) -> None:
    """Every op the space can produce at a precision a profile runs must have a latency in its LUT: an
    entry, or an interpolation fitted on at least 3 entries of that precision. Checked before the study
    is touched, so a profile that cannot cost the space never adds a failed trial."""
    from .space import enumerate_ops

    for profile in profiles:
        counts: dict[str, int] = {}
        for entry in profile.lut.entries.values():
            counts[entry.prec] = counts.get(entry.prec, 0) + 1
        thin = [p for p in profile.precisions if counts.get(p, 0) < 3]
        if not thin:
            continue
        for op in enumerate_ops([space], thin):
            if op.key not in profile.lut.mean_ms:
                raise WorkbenchError(f"device {profile.name}: its LUT has {counts.get(op.precision, 0)} "
                                     f"{op.precision} entries, too few to interpolate {op.key} (which space "
                                     f"{space.name!r} can produce); add entries (3 or more per precision) or "
                                     f"remove {op.precision} from its precisions", where=profile.lut.path)


def print_progress(outcome: TrialOutcome, stream=None) -> None:
    """The CLI's live line: one line per finished trial."""
    print(f"[{outcome.done:>3}/{outcome.total}] {outcome.line(pad=3)}", file=stream or sys.stderr, flush=True)
