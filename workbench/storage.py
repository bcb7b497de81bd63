"""Where studies live: any Optuna storage URL, with friendly defaults and one-line errors.

- ``sqlite:///path.db`` (default ``sqlite:///workbench.db`` in the current directory), or a bare path
  ending in ``.db``/``.sqlite``: one machine, a few processes;
- a path ending in ``.log``/``.jsonl`` (or ``journal:///abs/path``): Optuna's journal file, safe for many
  processes on one machine;
- ``postgresql://user:pass@host/db`` (or any SQLAlchemy URL Optuna accepts): many machines.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import optuna

from .errors import WorkbenchError

DEFAULT_STORAGE = "sqlite:///workbench.db"
JOURNAL_SUFFIXES = (".log", ".jsonl", ".journal")


def normalise_url(url: str) -> str:
    """Turn bare file paths into URLs so users can pass ``studies.db`` or ``studies.log``."""
    if "://" in url:
        return url
    path = Path(url)
    if path.suffix in JOURNAL_SUFFIXES:
        return f"journal://{path.resolve()}"
    if path.suffix in (".db", ".sqlite", ".sqlite3"):
        return f"sqlite:///{path.resolve()}"
    raise WorkbenchError(f"--storage: {url!r} is neither a storage URL (sqlite:///…, postgresql://…) "
                         f"nor a .db/.log file path")


HEARTBEAT_S = 10  # a RUNNING trial whose worker stopped beating for GRACE_FACTOR x this is stale
GRACE_FACTOR = 3
CONNECT_TIMEOUT_S = 10  # an unreachable database host fails within this, not after a TCP hang


def absolute_url(url: str) -> str:
    """The same storage seen from any working directory (for worker processes)."""
    url = normalise_url(url)
    if url.startswith("sqlite:///") and not url[len("sqlite:///"):].startswith("/"):
        return f"sqlite:///{Path(url[len('sqlite:///'):]).resolve()}"
    return url


def open_storage(url: str = DEFAULT_STORAGE, *, heartbeat_s: int | None = None, retries: int = 1):
    """An Optuna storage for ``url``; connection problems become a WorkbenchError naming the URL.

    With ``heartbeat_s`` (RDB storages: SQLite, PostgreSQL) every running trial beats; a trial whose
    worker died (``kill -9``, lost machine) is failed after ``GRACE_FACTOR`` beats by the next worker
    that looks, and re-queued ``retries`` times with the same parameters. Optuna's journal storage
    has no heartbeat: dead workers' trials stay RUNNING there (harmless, but not retried).
    """
    url = normalise_url(url)
    shown = redact(url)
    if url.startswith("journal://"):
        path = Path(url[len("journal://"):])
        _check_parent(path, shown)
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        _check_parent(Path(url[len("sqlite:///"):]), shown)
    if url.startswith("postgresql"):
        engine_kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}, "pool_pre_ping": True}
    elif url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}  # wait for the writer instead of "database is locked"
    else:
        engine_kwargs = {}
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8, and the documented way
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            heartbeat = {}
            if heartbeat_s:
                heartbeat = {"heartbeat_interval": heartbeat_s, "grace_period": GRACE_FACTOR * heartbeat_s,
                             "heartbeat_stale_trial_callback":
                                 optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=retries)}
            storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
    except Exception as exc:  # sqlalchemy/driver errors vary by backend; all mean "cannot use this URL"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WorkbenchError(f"--storage: cannot open {shown}: {reason}") from None
    if url.startswith("sqlite"):
        _use_wal(storage.engine)
    return storage


def _use_wal(engine) -> None:
    """SQLite in WAL mode with normal sync: readers never block the writer, and a commit costs no fsync.

    Optuna commits once per suggested parameter; with SQLite's default rollback journal each commit
    fsyncs (~10 ms here), which dominated the per-trial overhead and made concurrent workers hit
    "database is locked". WAL keeps durability across process crashes (not across power loss).
    """
    from sqlalchemy import event

    def on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened while Optuna created the schema lack the pragmas


def _check_parent(path: Path, shown: str) -> None:
    if path.parent and not path.parent.is_dir():
        raise WorkbenchError(f"--storage: folder {path.parent} does not exist (for {shown})")


def redact(url: str) -> str:
    """Hide a password in URLs we print."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail (and, through the storage's callback, re-queue) trials whose worker stopped beating."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def has_heartbeat(storage) -> bool:
    return isinstance(storage, optuna.storages.RDBStorage) and storage.heartbeat_interval is not None


def study_names(storage) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]


def load_study(name: str, url: str = DEFAULT_STORAGE, **open_options) -> optuna.Study:
    """An existing study, or one line saying which studies the storage does hold."""
    backend = open_storage(url, **open_options)
    names = study_names(backend)
    if name not in names:
        raise WorkbenchError(f"--study: no study {name!r} in {redact(url)} (studies there: {', '.join(names) or 'none'})")
    return optuna.load_study(study_name=name, storage=backend)
