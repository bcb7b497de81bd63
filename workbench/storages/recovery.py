"""Trials of dead workers: found, failed and retried, so that no search or resume waits forever.

A RUNNING trial is *stale* — its worker is gone — when

1. its owner record (host, boot id, process id and start time, written as the trial starts) names a
   process on this machine that no longer runs: found at once, without waiting;
2. its last beat is older than the grace period (``GRACE_FACTOR`` heartbeats). SQLite and PostgreSQL:
   Optuna's heartbeat table, on the database's clock. The journal file has no heartbeat table, so a
   worker writes a ``workbench:beat`` time into the trial instead (one line per heartbeat);
3. it never beat — its worker died between creating it and the first beat — and it started longer
   ago than the grace period. Optuna itself never fails such a trial, and a search that counted it as
   running waited for it forever.

Each stale trial is marked FAIL by exactly one worker (the storage refuses a second change) and, up
to ``retries`` times, queued again with the same parameters. A worker's heartbeat runs in a daemon
thread that stops with its trial, so an interrupted process never lingers.
"""
from __future__ import annotations

import datetime
import os
import socket
import threading
import time
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from workbench.storages.storage import backend_of, is_rdb

OWNER = "workbench:owner"
BEAT = "workbench:beat"
_PER_PROCESS = ("workbench:owner", "workbench:beat")  # never copied into a retry
_CONSTRAINTS = "constraints"  # Optuna's constraint attributes ("constraints:<name>" and the older list)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (tells a reused pid from the original)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def owner_record() -> dict:
    """Who runs a trial: enough to tell, on the same machine, whether that process still lives."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "boot": _boot_id(), "pid": pid, "start": _process_start(pid)}


def owner_alive(record: dict | None) -> bool | None:
    """True/False for a process on this machine (same host name and boot); None when we cannot tell."""
    if not isinstance(record, dict) or not record.get("boot") or record.get("start") is None:
        return None
    if record.get("host") != socket.gethostname() or record.get("boot") != _boot_id():
        return None
    return _process_start(int(record["pid"])) == record["start"]


class Heartbeat:
    """Beats for one trial while it runs: the first beat at once, then every ``interval_s`` in a daemon thread."""

    def __init__(self, storage, trial_id: int, interval_s: float):
        self.storage, self.trial_id, self.interval_s = storage, trial_id, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"workbench-heartbeat-{trial_id}", daemon=True)

    def beat(self) -> None:
        if is_rdb(self.storage):
            backend_of(self.storage).record_heartbeat(self.trial_id)
        else:
            self.storage.set_trial_system_attr(self.trial_id, BEAT, time.time())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
            except Exception:  # a missed beat only makes the trial look stale later; the main thread reports faults
                pass

    def __enter__(self) -> "Heartbeat":
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval_s + 5)


def stale_trials(study: optuna.Study, grace_s: float | None) -> list[FrozenTrial]:
    """RUNNING trials whose worker is gone (see the module doc); ``grace_s=None`` applies rule 1 only."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return []
    stale, undecided = [], []
    for t in running:
        alive = owner_alive(t.system_attrs.get(OWNER))
        if alive is False:
            stale.append(t)
        elif grace_s is not None:
            undecided.append(t)
    if undecided:
        stale += _silent_for(study, undecided, grace_s)
    return stale


def _silent_for(study: optuna.Study, trials: list[FrozenTrial], grace_s: float) -> list[FrozenTrial]:
    storage = backend_of(study._storage)
    now = datetime.datetime.now()
    never_beat_for = {t._trial_id for t in trials
                      if t.datetime_start is None or (now - t.datetime_start).total_seconds() > grace_s}
    if isinstance(storage, optuna.storages.RDBStorage):
        beaten = _rdb_beaten(storage, [t._trial_id for t in trials])
        old = set(storage._get_stale_trial_ids(study._study_id)) if storage.heartbeat_interval else set()
        return [t for t in trials if t._trial_id in old or (t._trial_id not in beaten and t._trial_id in never_beat_for)]
    out = []
    for t in trials:
        last = t.system_attrs.get(BEAT)
        if last is None:
            if t._trial_id in never_beat_for:
                out.append(t)
        elif time.time() - float(last) > grace_s:
            out.append(t)
    return out


def _rdb_beaten(storage, trial_ids: list[int]) -> set[int]:
    """Trials that have a heartbeat record at all (Optuna's stale check ignores those that do not)."""
    from sqlalchemy import bindparam, text  # heavy: sqlalchemy

    query = text("SELECT trial_id FROM trial_heartbeats WHERE trial_id IN :ids").bindparams(
        bindparam("ids", expanding=True))
    with storage.engine.connect() as conn:
        return {row[0] for row in conn.execute(query, {"ids": list(trial_ids)})}


def fail_and_retry(study: optuna.Study, trial: FrozenTrial, retries: int) -> bool:
    """Mark ``trial`` FAIL (True when this worker did it) and queue it again while it has retries left."""
    storage = study._storage
    try:
        if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False  # another worker (or the owner itself) finished it first
    history = list(trial.system_attrs.get("retry_history", [])) + [trial.number]
    if len(history) > retries:
        return True
    system_attrs = {k: v for k, v in trial.system_attrs.items()  # the retry sets its own constraints again
                    if k not in _PER_PROCESS and not k.startswith(_CONSTRAINTS)}
    system_attrs.update({"failed_trial": system_attrs.get("failed_trial", trial.number), "retry_history": history})
    study.add_trial(optuna.create_trial(state=TrialState.WAITING, params=trial.params,
                                        distributions=trial.distributions, system_attrs=system_attrs))
    return True


def recover(study: optuna.Study, grace_s: float | None, retries: int = 1) -> list[int]:
    """Fail (and retry) every stale trial of ``study``; the numbers of those this worker failed."""
    return [t.number for t in stale_trials(study, grace_s) if fail_and_retry(study, t, retries)]
