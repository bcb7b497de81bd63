"""Noise-aware accuracy: re-train the best architectures of a study's front with other seeds.

One trained trial is one draw of the training noise: the same architecture trained with another seed
scores a point or two apart on the small built-in data sets — as much as the gaps between front points.
``workbench repeats`` (and ``--repeats N`` on ``search``/``quickstart``) trains the top candidates of the
front again with ``N`` other seeds; each result is stored with the study as an extra measurement of the
architecture (:func:`workbench.study.schema.repeats_attr`), and the front is drawn from the mean of all of them
(:mod:`workbench.study.front`). A better repeat can therefore move an architecture onto the front, or push one
off it; candidates that enter the top of the front after a round are repeated as well, until the top
is all repeated (at most ``4 × top`` candidates in one call, so a noisy front cannot keep the loop going;
a call stopped there leaves the rest to the next one).

Seeds are a documented function of the study (:func:`repeat_seed`), so a run is reproducible and a
second run with the same ``N`` trains nothing again (unless the first stopped at its cap); a larger ``N``
adds only the missing seeds.
"""
from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass
from typing import Callable

from workbench._infra.errors import WorkbenchError, shown
from workbench.model.data import load_dataset
from workbench.model.evaluators import EVALUATORS
from workbench.storages.storage import storage_faults, tally_lock
from workbench.study.fingerprint import FINGERPRINT_ATTR, data_fingerprint
from workbench.study.front import TrialRecord, best_key
from workbench.study.schema import Keys, arch_key, repeats_attr
from workbench.study.stored import StoredStudy

# A trial's own training seed is ``study seed + trial number`` (the search's rule); repeat i adds i times
# this stride, a prime above any trial count, so a repeat never reuses another trial's seed.
REPEAT_SEED_STRIDE = 1_000_003
MAX_REPEATS = 100  # extra seeds per architecture: far past what a mean ± std needs; a million would never end
MAX_ROUNDS_FACTOR = 4  # at most this × top candidates are repeated in one call


def repeat_seed(study_seed: int, trial_number: int, index: int) -> int:
    """The training seed of repeat ``index`` (1, 2, …) of the architecture first trained in ``trial_number``;
    ``index`` 0 is the trial's own seed."""
    return (study_seed + trial_number + REPEAT_SEED_STRIDE * index) % 2**31


@dataclass(frozen=True)
class RepeatRun:
    """One extra measurement that was trained (not one read back from the study)."""

    trial: int
    index: int
    seed: int
    accuracy: float
    seconds: float
    summary: str

    def line(self, done: int, total: int) -> str:
        return (f"[{done:>3}/{total}] repeat {self.index} of trial {self.trial:>3} (seed {self.seed})  "
                f"acc {self.accuracy:.4f}  ({self.seconds:.1f} s)  {self.summary}")


def print_repeat(run: RepeatRun, done: int, total: int, stream=None) -> None:
    """The CLI's progress line: one line per trained repeat (stderr)."""
    print(run.line(done, total), file=stream or sys.stderr, flush=True)


def repeat_front(study: StoredStudy | str, storage: str | None = None, *, top: int = 3, repeats: int = 2,
                 device=None, data=None,
                 progress: Callable[[RepeatRun, int, int], None] | None = print_repeat) -> list[RepeatRun]:
    """Train the ``top`` candidates of the front (best rule order, on ``device`` or the study's target) with
    ``repeats`` extra seeds each, store every result with the study, and return the runs trained here.

    ``data`` overrides the study's data set (its content must be the one the study was trained on).
    """
    stored = study if isinstance(study, StoredStudy) else StoredStudy(study, storage)
    _check_counts(top, repeats)
    settings = stored.settings
    if not EVALUATORS.get(settings.evaluator).trains:
        raise WorkbenchError(f"--repeats: study {stored.name!r} scores candidates with the training-free "
                             f"{settings.evaluator!r} proxy, which has no seed-to-seed noise to measure")
    profile = stored.device(device)
    dataset = _study_data(stored, data)
    done_keys: set[str] = set()
    runs: list[RepeatRun] = []
    while len(done_keys) < MAX_ROUNDS_FACTOR * top:
        todo = [r for r in _top(stored, profile, top) if arch_key(r.arch) not in done_keys]
        if not todo:
            break
        todo = todo[:MAX_ROUNDS_FACTOR * top - len(done_keys)]
        plan = [(r, i) for r in todo for i in _missing(stored, r, repeats)]
        total = len(runs) + len(plan)  # a later round (a new top candidate) extends the count
        for record, index in plan:
            run = _train_repeat(stored, record, index, dataset)
            runs.append(run)
            if progress is not None:
                progress(run, len(runs), total)
        done_keys.update(arch_key(r.arch) for r in todo)
    return runs


def _check_counts(top: int, repeats: int) -> None:
    """``--top`` >= 1 (a larger one than the front takes the whole front); ``--repeats`` from 1 to MAX_REPEATS."""
    for flag, value in (("--top", top), ("--repeats", repeats)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise WorkbenchError(f"{flag}: must be an integer >= 1, got {value!r}")
    if repeats > MAX_REPEATS:
        raise WorkbenchError(f"--repeats: at most {MAX_REPEATS} extra seeds per candidate, got {shown(repeats)}")


def _top(stored: StoredStudy, profile, top: int) -> list[TrialRecord]:
    """The ``top`` front points by the best rule (best first)."""
    front = stored.front(profile)
    return sorted(front, key=lambda r: best_key(r, profile), reverse=True)[:top]


def _missing(stored: StoredStudy, record: TrialRecord, repeats: int) -> list[int]:
    """Repeat indices 1..repeats whose seed the study does not hold yet for this architecture."""
    have = {run["seed"] for run in _runs(stored, arch_key(record.arch))}
    seed = stored.settings.seed
    return [i for i in range(1, repeats + 1) if repeat_seed(seed, record.number, i) not in have]


def _runs(stored: StoredStudy, key: str) -> list[dict]:
    return list((stored.study.user_attrs.get(repeats_attr(key)) or {}).get("runs", ()))


def _train_repeat(stored: StoredStudy, record: TrialRecord, index: int, dataset) -> RepeatRun:
    from workbench.model.train import train_and_evaluate  # heavy: torch

    seed = repeat_seed(stored.settings.seed, record.number, index)
    result = train_and_evaluate(record.arch, dataset, epochs=stored.settings.epochs, seed=seed)
    entry = {"seed": seed, Keys.ACCURACY: result.accuracy, Keys.FP32_ACCURACY: result.fp32_accuracy,
             Keys.TRAIN_SECONDS: round(result.train_seconds, 3)}
    _store(stored, record, entry)
    return RepeatRun(record.number, index, seed, result.accuracy, result.train_seconds, record.arch.summary())


def _store(stored: StoredStudy, record: TrialRecord, entry: dict) -> None:
    """Add ``entry`` to the architecture's runs under the study's tally lock (other processes may add
    theirs at the same time: read, merge by seed, write). An in-memory study has one process: no lock."""
    key, url = arch_key(record.arch), stored.storage_url
    lock = tally_lock(stored.study._storage, url, stored.name) if url else contextlib.nullcontext()
    with storage_faults(url or "memory", mid_run=True), lock:
        runs = [run for run in _runs(stored, key) if run["seed"] != entry["seed"]] + [entry]
        stored.study.set_user_attr(repeats_attr(key), {"trial": record.number, "runs": runs})


def _study_data(stored: StoredStudy, data):
    """The study's data set (or ``data``), refused when its content is not what the study was trained on."""
    source = data or stored.settings.data_source or stored.settings.data
    dataset = load_dataset(source) if isinstance(source, str) else source
    saved = (stored.study.user_attrs.get(FINGERPRINT_ATTR) or {}).get("data")
    if saved is not None and saved != data_fingerprint(dataset):
        raise WorkbenchError(f"--data: {getattr(dataset, 'name', source)!r} is not the data study {stored.name!r} "
                             f"was trained on (content hash {saved.get('sha256', '')[:12]} in the study); "
                             f"give that data with --data")
    return dataset


def repeat_summary(stored: StoredStudy, runs: list[RepeatRun], started: float | None = None, device=None) -> str:
    """One line after the repeats: how many were trained, for how many architectures, in how long."""
    if not runs:
        if not stored.front(device):
            return f"repeats: nothing to repeat: no trained trial of study {stored.name!r} fits {stored.device(device).name}"
        return f"repeats: study {stored.name!r} already holds every requested seed of its top candidates"
    trials = sorted({r.trial for r in runs})
    took = f" in {time.perf_counter() - started:.0f} s" if started is not None else ""
    return (f"repeats: trained {len(runs)} extra seed{'s' if len(runs) != 1 else ''} for trial"
            f"{'s' if len(trials) != 1 else ''} {', '.join(map(str, trials))}{took}")
