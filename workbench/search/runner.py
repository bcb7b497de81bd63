"""The search runner: a :class:`SearchConfig` worked on in an Optuna storage, by one or many workers.

One trial: ask the sampler, judge the candidate with the plain objective (:mod:`.objective`: costs on
every device, the target's constraints through ``trial.set_constraint``, then training), and tell the
result. Around that, the runner does the I/O the objective must not: it creates or resumes the study
(settings and fingerprint), beats while a trial runs, recovers trials of dead workers, makes sure no
architecture + policy is trained twice in a study (:func:`_claim`), counts trained trials under the
study's tally lock so workers stop at exactly the target, and tells its listeners.
"""
from __future__ import annotations

import contextlib
import os
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import optuna
from optuna.trial import TrialState

from workbench._infra.errors import WorkbenchError, check_count, shown
from workbench._infra.notices import WorkbenchNotice, notify
from workbench._infra.processes import acknowledge, shielded
from workbench.hardware.profiles import DeviceProfile
from workbench.model.space import SearchSpace, TrialSuggester
from workbench.search import objective
from workbench.search.config import COMPARED, MAX_TRIALS, SearchConfig
from workbench.search.counting import holder, is_trained, trained_trials
from workbench.search.progress import TrialOutcome
from workbench.search.samplers import make_sampler
from workbench.storages.recovery import OWNER, Heartbeat, owner_record, recover
from workbench.storages.storage import (
    DEFAULT_STORAGE,
    GRACE_FACTOR,
    HEARTBEAT_S,
    load_study,
    open_storage,
    redact,
    storage_faults,
    tally_lock,
    wait_until,
)
from workbench.study.fingerprint import FINGERPRINT_ATTR, differences, fingerprint
from workbench.study.front import TrialRecord
from workbench.study.objectives import OBJECTIVES, costs
from workbench.study.schema import Keys, StudySettings
from workbench.study.stored import StoredStudy

MAX_UNTRAINED_STREAK = 200  # consecutive candidates a worker may find infeasible or already trained before it stops
DEFINITION_WAIT_S = 10  # how long a joiner waits for a study's creator to finish recording its settings


MAX_HEARTBEAT_S = 86_400  # a day between beats: a dead worker's trial is retried after three days at most


class SearchExhausted(WorkbenchNotice):
    """A worker stopped short of the target: the sampler kept proposing infeasible or already trained
    candidates (the space looks exhausted under the constraints)."""


@dataclass
class SearchResult:
    study: optuna.Study
    front: list[TrialRecord]
    device: DeviceProfile
    storage_url: str
    stopped: str | None = None  # why the search stopped before its target (None: it reached it, or timed out)


@dataclass(frozen=True)
class _Counts:
    trained: int
    running: int  # running trials of any worker (only where heartbeats can tell a dead worker from a slow one)
    waiting: int  # queued trials (retries)


@dataclass(frozen=True)
class _Judged:
    """One judged candidate: what to tell Optuna and how it counts."""

    kind: str  # "trained", "rejected" or "duplicate"
    values: tuple[float, ...]
    assessment: objective.Assessment
    metric: float | None
    seconds: float
    duplicate_of: int | None = None


class Search:
    """A hardware-aware search: ``Search("vision", "stm32f746", "digits").run(20)``.

    ``space``/``device``/``data`` take names of shipped items, paths or loaded objects (or pass one
    :class:`SearchConfig` as ``space``); ``options`` are :class:`SearchConfig` fields (``study_name``,
    ``sampler``, ``seed``, ``latency_budget_ms``, ``objectives``, ``epochs``, ``population``,
    ``evaluator``, ``train_scheme``, ``train_sram_budget_kb``). Everything is loaded and checked here, before any storage is opened; the study is
    created (or resumed) on first use. ``run(n)`` works until the study holds ``n`` trained trials.
    """

    def __init__(self, space: SearchSpace | str | SearchConfig, device: DeviceProfile | str | None = None,
                 data: object = None, *, storage: str = DEFAULT_STORAGE,
                 listeners: Sequence[Callable[[TrialOutcome], None]] = (), heartbeat_s: int | None = HEARTBEAT_S,
                 poll_s: float = 1.0, worker: int = 0, max_untrained_streak: int = MAX_UNTRAINED_STREAK, **options):
        if isinstance(space, SearchConfig):
            if device is not None or data is not None or options:
                raise TypeError("Search(config): give the config alone, without device, data or options")
            self.config = space
        else:
            self.config = SearchConfig.load(space, device, data, **options)
        if heartbeat_s is not None and not 1 <= heartbeat_s <= MAX_HEARTBEAT_S:  # longer: a thread wait overflows
            raise WorkbenchError(f"--heartbeat: must be from 1 to {MAX_HEARTBEAT_S:,} s (or 0 to disable), "
                                 f"got {shown(heartbeat_s)}")
        self.storage = storage
        self.listeners = list(listeners)  # widgets add theirs after construction
        self.heartbeat_s = heartbeat_s  # every storage: detect and retry trials of dead workers (None: off)
        self.poll_s = poll_s  # how often a worker that waits for others' trials looks again
        self.worker = worker  # distinguishes the sampler seeds of workers that share a study
        self.max_untrained_streak = max_untrained_streak
        self._study: optuna.Study | None = None

    # the config's fields, read-only, under the names they always had
    space = property(lambda self: self.config.space)
    device = property(lambda self: self.config.device)
    data = property(lambda self: self.config.data)
    data_source = property(lambda self: self.config.data_source)
    data_notes = property(lambda self: list(self.config.data_notes))
    profiles = property(lambda self: list(self.config.profiles))
    study_name = property(lambda self: self.config.study_name)
    sampler = property(lambda self: self.config.sampler)
    seed = property(lambda self: self.config.seed)
    latency_budget_ms = property(lambda self: self.config.latency_budget_ms)
    objectives = property(lambda self: self.config.objectives)
    epochs = property(lambda self: self.config.epochs)
    population = property(lambda self: self.config.population)
    evaluator = property(lambda self: self.config.evaluator)

    @classmethod
    def join(cls, study_name: str, storage: str = DEFAULT_STORAGE, *, device=None, data=None,
             **options) -> "Search":
        """A worker on an existing study: space, device, data and settings come from the study itself.

        The space travels inside the study (its YAML text), so a worker on another machine needs only
        the storage URL; the device is looked up by name among shipped profiles (or the creator's
        path), the data by the name or path it was given. Their content must match what the study
        was created with (see :mod:`workbench.study.fingerprint`). ``options``: runner options (``listeners``,
        ``heartbeat_s``, …) and config fields that override the stored ones.
        """
        study = load_study(study_name, storage)
        settings = StudySettings.from_attrs(_wait_for_definition(study, storage), where=f"study {study_name!r}")
        runner_options = {k: options.pop(k) for k in ("listeners", "heartbeat_s", "poll_s", "worker",
                                                       "max_untrained_streak") if k in options}
        runner_options.setdefault("worker", os.getpid())
        config = SearchConfig.from_settings(settings, study_name, device=device, data=data, **options)
        return cls(config, storage=storage, **runner_options)

    # ---------------------------------------------------------------- the study
    @property
    def study(self) -> optuna.Study:
        """The Optuna study, created (or resumed) on first use — after every check has passed."""
        if self._study is None:
            self._study = self._open_study()
        return self._study

    def open(self, n_trials: int | None = None) -> int:
        """Check ``n_trials``, then create or resume the study and store its target; the target."""
        if n_trials is not None:
            check_count("--trials", n_trials, 1, MAX_TRIALS)
        with storage_faults(self.storage):
            return self._store_target(n_trials)

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
            seed = (self.seed + n_done + 7919 * self.worker) % 2**31
            sampler = make_sampler(self.sampler, seed, self.population, self.config.sampler_context(seed))
            return optuna.load_study(study_name=self.study_name, storage=storage, sampler=sampler)

    def _load_existing(self, storage) -> optuna.Study | None:
        try:
            return optuna.load_study(study_name=self.study_name, storage=storage)
        except KeyError:
            return None

    def _create(self, storage) -> optuna.Study:
        """A new study with its settings and fingerprint; when another process created it a moment
        earlier, join that one instead (after the same compatibility check)."""
        directions = [OBJECTIVES[o].direction for o in self.objectives]
        try:
            study = optuna.create_study(study_name=self.study_name, storage=storage, directions=directions)
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=self.study_name, storage=storage)
            _wait_for_definition(study, self.storage)
            self._check_compatible(study)
            return study
        with warnings.catch_warnings():  # "set_metric_names is experimental" (since Optuna 3.2)
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([OBJECTIVES[o].metric_name for o in self.objectives])  # axis titles in plots, dashboard
        for key, value in self.config.to_settings().to_attrs().items():
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
        saved, settings = study.user_attrs, self.config.compared_settings()
        renamed = [key for key in COMPARED if key in saved and saved[key] != settings[key]]
        content = []
        if FINGERPRINT_ATTR in saved:  # same names, other content (a named difference says enough by itself)
            mine = dict(self._fingerprint())
            stored = {k: (mine[k] if k in renamed else v) for k, v in saved[FINGERPRINT_ATTR].items()}
            content = differences(stored, mine, saved_space_text=saved.get("space_yaml", ""),
                                  space_text=self.space.text,
                                  space_where=f"space file {self.space.path or self.space.name}",
                                  device=self.device, data_name=self.data_source or self.data.name)
        if not renamed and not content:
            return
        parts = [f"{key}={saved[key]!r}, not {settings[key]!r}" for key in renamed]
        head = f"study {self.study_name!r} was created with {', '.join(parts)}" if parts else \
            f"study {self.study_name!r} was created with other inputs"
        detail = f": {'; '.join(content)}" if content else ""
        raise WorkbenchError(f"{head}{detail}; use another --study name (or the original files)")

    def _store_target(self, n_trials: int | None) -> int:
        stored = StudySettings.stored_target(self.study)
        if n_trials is None:
            if not stored:
                raise WorkbenchError("--trials: the study stores no target number of trials; give one")
            return stored
        if n_trials > stored:  # workers that join later aim for the same total
            self.study.set_user_attr(StudySettings.TARGET, n_trials)
        return n_trials

    # ---------------------------------------------------------------- running
    def run(self, n_trials: int | None = None, *, timeout: float | None = None) -> SearchResult:
        """Work on the study until it holds ``n_trials`` trained trials, together with any other workers.

        ``None`` takes the target stored with the study (workers joining it). Infeasible candidates and
        duplicates of trained architectures are recorded but not counted. A resumed study continues where
        it stopped; trials of workers that died are failed and retried (:mod:`workbench.storages.recovery`); a
        trial that would be one more than the target is recorded as pruned ("surplus"). After
        ``max_untrained_streak`` candidates in a row that were not trained, the worker stops (one
        :class:`SearchExhausted` notice; ``SearchResult.stopped`` says why).
        """
        target = self.open(n_trials)
        deadline = None if timeout is None else time.monotonic() + timeout
        streak, stopped = 0, None
        with storage_faults(self.storage, mid_run=True):
            while deadline is None or time.monotonic() < deadline:
                recover(self.study, self._grace_s())
                counts = self._counts()
                if counts.trained >= target:
                    break
                if counts.trained + counts.running >= target and not counts.waiting:
                    time.sleep(self.poll_s)  # the last trials are others'; wait for them to finish or go stale
                    continue
                kind = self._run_one(target, counts)
                if kind != "lost":
                    streak = 0 if kind in ("trained", "surplus") else streak + 1
                if streak >= self.max_untrained_streak:
                    stopped = self._exhausted(streak, target)
                    break
            return SearchResult(self.study, self.front(), self.device, self.storage, stopped)

    def _exhausted(self, streak: int, target: int) -> str:
        message = (f"study {self.study_name!r}: stopped at {trained_trials(self.study)}/{target} trained trials — "
                   f"the last {streak} candidates were all infeasible or already trained, so the space looks "
                   f"exhausted under the constraints (loosen --latency-budget or --train-sram-budget, widen the space "
                   f"or lower --trials)")
        notify(message, SearchExhausted)
        return message

    def _grace_s(self) -> float | None:
        return None if not self.heartbeat_s else GRACE_FACTOR * self.heartbeat_s

    def _counts(self) -> _Counts:
        """Trained, running and waiting trials; running ones count only where heartbeats watch them
        (with ``heartbeat_s=None`` a dead worker on another machine could never be told from a slow one)."""
        trials = self.study.get_trials(deepcopy=False)
        running = sum(t.state == TrialState.RUNNING for t in trials) if self.heartbeat_s else 0
        return _Counts(sum(map(is_trained, trials)), running, sum(t.state == TrialState.WAITING for t in trials))

    def _run_one(self, target: int, counts: _Counts) -> str:
        """One trial through Optuna's ask-and-tell interface: ask, beat while it is judged, tell; what it
        became ("trained", "rejected", "duplicate", "surplus", or "lost" when another worker failed it).

        Ctrl-C (or SIGTERM) marks the trial failed and queues its parameters again first; any other
        error marks it failed and propagates. Both clean-ups run with further interrupts held back.
        """
        trial = None
        try:
            with shielded():  # a stop held back until this worker knows the RUNNING trial the storage made
                trial = self._ask()
            with self._beating(trial):
                judged = self._judge(trial, target, counts)
            return self._finish(trial, judged, target)
        except optuna.TrialPruned:
            self.study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
            return "surplus"
        except optuna.exceptions.UpdateFinishedTrialError:
            return "lost"  # another worker failed it as stale (beats held up on a busy machine) and queued a retry
        except KeyboardInterrupt:
            acknowledge()  # the interrupt arrived; processes stops re-sending it
            if trial is not None:
                self._abandon(trial, retry=True)
            raise
        except BaseException:
            if trial is not None:
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

    def _judge(self, trial: optuna.Trial, target: int, counts: _Counts) -> _Judged:
        """The plain objective's steps, with the storage's part between them: a candidate that is
        infeasible is not trained; one whose architecture the study already has is not trained again."""
        start = time.perf_counter()
        if self._is_surplus(trial, target, counts):
            trial.set_user_attr(Keys.SURPLUS, True)
            raise optuna.TrialPruned("the study already has its trials")
        arch = objective.sample(self.config, TrialSuggester(trial))
        assessment = objective.assess(arch, self.config)
        objective.record_assessment(trial, assessment, with_key=bool(assessment.rejected))
        if assessment.rejected:
            return _Judged("rejected", objective.objective_values(self.objectives, None, assessment.prediction),
                           assessment, None, time.perf_counter() - start)
        original = self._claim(trial, assessment.key)
        if original is not None:
            metric = self._measured(arch)
            return _Judged("duplicate", objective.objective_values(self.objectives, metric, assessment.prediction),
                           assessment, metric, time.perf_counter() - start, original)
        evaluation = objective.evaluate(arch, self.config, trial.number)
        objective.record_evaluation(trial, evaluation)
        return _Judged("trained", objective.objective_values(self.objectives, evaluation.metric, assessment.prediction),
                       assessment, evaluation.metric, time.perf_counter() - start)

    def _claim(self, trial: optuna.Trial, key: str) -> int | None:
        """Claim architecture ``key`` for this trial, or find the trial that trained it: that trial's number.

        Under the study's tally lock, one worker at a time looks for a trained trial of the same
        architecture + policy, or a running one that claimed it, and otherwise writes the key into its
        own trial (the claim). A claim held by a running trial of another worker is waited for (this
        trial keeps beating meanwhile); when that trial fails instead, the claim is tried again.
        """
        storage, waited = self.study._storage, False
        while True:
            with tally_lock(storage, self.storage, self.study_name):
                found = holder(self.study.get_trials(deepcopy=False), key, trial.number)
                storage.set_trial_user_attr(trial._trial_id, Keys.ARCH_KEY, key)
                if found is not None or waited:  # a waiting trial is no claim; one whose wait failed claims again
                    storage.set_trial_user_attr(trial._trial_id, Keys.DUPLICATE_OF,
                                                None if found is None else found.number)
            if found is None:
                return None
            if found.state == TrialState.COMPLETE or self._wait_for(found.number):
                return found.number
            waited = True

    def _wait_for(self, number: int) -> bool:
        """Wait until trial ``number`` (another worker's claim) finishes; True when it completed trained."""
        while True:
            recover(self.study, self._grace_s())  # its worker may have died
            frozen = next(t for t in self.study.get_trials(deepcopy=False) if t.number == number)
            if frozen.state != TrialState.RUNNING:
                return is_trained(frozen)
            time.sleep(self.poll_s)

    def _measured(self, arch) -> float:
        """The accuracy (or score) the study holds for ``arch``: the mean over all its measurements (the
        one front rule, :func:`workbench.study.front.by_architecture`, so extra seeds count)."""
        for record in StoredStudy(self.study, self.storage).architectures():
            if record.arch == arch and record.accuracy is not None:
                return record.accuracy
        raise WorkbenchError(f"study {self.study_name!r}: no measurement of {arch.summary()} found")

    def _finish(self, trial: optuna.Trial, judged: _Judged, target: int) -> str:
        """Tell the trial. A trained one is counted and told under the study's tally lock — as complete, or
        as surplus when others completed the last slot first — so the study ends with exactly
        ``target`` trained trials however many workers race for the last one. Untrained ones do not count."""
        if judged.kind != "trained":
            frozen = self.study.tell(trial, judged.values, skip_if_finished=True)
            if frozen.state == TrialState.COMPLETE:
                self._report(trial.number, judged, trained_trials(self.study), target, counted=False)
            return judged.kind
        with tally_lock(self.study._storage, self.storage, self.study_name):
            done = trained_trials(self.study)
            if done >= target:
                self.study._storage.set_trial_user_attr(trial._trial_id, Keys.SURPLUS, True)
                self.study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
                return "surplus"
            frozen = self.study.tell(trial, judged.values, skip_if_finished=True)
        if frozen.state == TrialState.COMPLETE:  # not failed meanwhile as stale by another worker
            self._report(trial.number, judged, done + 1, target, counted=True)
        return "trained"

    def _abandon(self, trial: optuna.Trial, *, retry: bool) -> None:
        """Mark an interrupted or failed trial FAIL (unless it finished) and, after Ctrl-C, queue it again."""
        storage = self.study._storage
        with shielded():
            try:
                frozen = storage.get_trial(trial._trial_id)
                if frozen.state != TrialState.RUNNING:
                    return
                storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
                if retry:
                    self.study.enqueue_trial(frozen.params, user_attrs={Keys.RETRY_OF: frozen.number})
            except Exception:  # the storage itself failed: the original error says why; recovery retries later
                pass

    def _is_surplus(self, trial: optuna.Trial, target: int, counts: _Counts) -> bool:
        """Would this trial be trained one more than the target? Checked before sampling, to skip work that
        the tally at the end would discard; only near the end is the study read again."""
        if counts.trained + counts.running + 1 < target:
            return False
        ahead = 0
        for t in self.study.get_trials(deepcopy=False):
            if t.number == trial.number:
                continue
            if is_trained(t) or (self.heartbeat_s and t.state == TrialState.RUNNING and t.number < trial.number):
                ahead += 1
        return ahead >= target

    def front(self, device: DeviceProfile | None = None) -> list[TrialRecord]:
        """The study's Pareto front on ``device`` (default: the target), by the one front rule."""
        return StoredStudy(self.study, self.storage).front(device or self.device, self.objectives)

    def _report(self, number: int, judged: _Judged, done: int, target: int, *, counted: bool) -> None:
        """``done``: trained trials of the study (all workers'), counted under the tally lock for a trained
        trial, so workers sharing the study print one sequence that ends at n/n."""
        pred = judged.assessment.prediction
        outcome = TrialOutcome(number, done, target, judged.metric, {o.name: o.value(pred) for o in costs(pred)},
                               judged.assessment.rejected,
                               judged.seconds, judged.assessment.arch.summary(),
                               objective.metric_label(self.evaluator), counted, judged.duplicate_of)
        for listener in self.listeners:
            listener(outcome)


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
