"""Where studies live: any Optuna storage URL, with friendly defaults and one-line errors.

- ``sqlite:///path.db`` (default ``sqlite:///workbench.db`` in the current directory), or a bare path
  ending in ``.db``/``.sqlite``: one machine, a few processes;
- a path ending in ``.log``/``.jsonl`` (or ``journal:///abs/path``): Optuna's journal file, safe for many
  processes on one machine;
- ``postgresql://user:pass@host/db`` (or any SQLAlchemy URL Optuna accepts): many machines.

Every fault of a storage — a damaged or truncated file, a read-only file or mount, a lock held by
another program, a full disk, a folder where a file should be, a study name the database cannot hold —
becomes a :class:`StorageFault`: one line naming the storage, what is wrong and what to do. Faults
found before anything ran exit 2; faults in the middle of a search exit 1 (completed trials stay in
the storage). Commands that only read (``pareto``, ``export``) open with ``create=False`` and never
create a file.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import time
import warnings
from pathlib import Path

import optuna

from workbench._infra.errors import WorkbenchError

try:  # POSIX (Linux, macOS); without it the package still imports, and only a file storage's lock says so
    import fcntl
except ImportError:
    fcntl = None

DEFAULT_STORAGE = "sqlite:///workbench.db"
JOURNAL_SUFFIXES = (".log", ".jsonl", ".journal")
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
MAX_STUDY_NAME = 512  # Optuna's RDB column (studies.study_name is VARCHAR(512)); the same limit everywhere

HEARTBEAT_S = 10  # a RUNNING trial whose worker stopped beating for GRACE_FACTOR x this is stale
GRACE_FACTOR = 3
CONNECT_TIMEOUT_S = 10  # an unreachable database host fails within this, not after a TCP hang
SQLITE_BUSY_TIMEOUT_S = 60  # wait this long for another writer before "database is locked" (env override:
# WORKBENCH_SQLITE_BUSY_TIMEOUT, seconds)
POSTGRES_INSTALL = 'pip install "tinyml-workbench[postgres]" (from a checkout: pip install -e ".[postgres]")'
MIN_FREE_BYTES = 256 * 1024  # a search refuses to start on a disk with less free space (SQLite's WAL needs room)

# SQLAlchemy's connection pool logs (with a traceback) when a connection is reset after Ctrl-C; our own
# one-line messages say what happened. A handler on its logger keeps Python's last-resort printer quiet.
logging.getLogger("sqlalchemy").addHandler(logging.NullHandler())


class StorageFault(WorkbenchError):
    """The storage itself failed (not the user's input to a search): exit 2 before a search ran, 1 during."""

    def __init__(self, message: str, *, exit_code: int = 2):
        self.exit_code = exit_code
        super().__init__(message)


def normalise_url(url: str) -> str:
    """Turn bare file paths into URLs so users can pass ``studies.db`` or ``studies.log``."""
    if "://" in url:
        return url
    path = Path(url)
    if path.suffix in JOURNAL_SUFFIXES:
        return f"journal://{path.resolve()}"
    if path.suffix in SQLITE_SUFFIXES:
        return f"sqlite:///{path.resolve()}"
    raise WorkbenchError(f"--storage: {url!r} is neither a storage URL (sqlite:///…, postgresql://…) "
                         f"nor a .db/.log file path")


def absolute_url(url: str) -> str:
    """The same storage seen from any working directory (for worker processes)."""
    url = normalise_url(url)
    if url.startswith("sqlite:///") and not url[len("sqlite:///"):].startswith("/"):
        return f"sqlite:///{Path(url[len('sqlite:///'):]).resolve()}"
    return url


def storage_file(url: str) -> Path | None:
    """The file behind a SQLite or journal URL (None for database servers)."""
    url = normalise_url(url)
    if url.startswith("journal://"):
        return Path(url[len("journal://"):])
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):].split("?", 1)[0])
    return None


def check_study_name(name: str) -> str:
    """Names every backend can store and every terminal can show: 1-512 printable characters."""
    if not isinstance(name, str) or not name.strip():
        raise WorkbenchError("--study: a study name must not be empty")
    if len(name) > MAX_STUDY_NAME:
        raise WorkbenchError(f"--study: the name has {len(name):,} characters; at most {MAX_STUDY_NAME} "
                             f"(the longest name a PostgreSQL/MySQL study table holds)")
    if any(not ch.isprintable() for ch in name):
        raise WorkbenchError(f"--study: {name[:40]!r} contains control characters")
    return name


def open_storage(url: str = DEFAULT_STORAGE, *, heartbeat_s: int | None = None, create: bool = True):
    """An Optuna storage for ``url``; every problem becomes a one-line :class:`WorkbenchError`.

    With ``heartbeat_s`` (RDB storages: SQLite, PostgreSQL) the storage keeps Optuna's heartbeat table;
    a trial whose worker died (``kill -9``, lost machine) is failed after ``GRACE_FACTOR`` beats by the
    next worker that looks and queued again (see :mod:`workbench.storages.recovery`, which also covers the journal
    file). ``create=False`` (read-only commands) refuses a file that does not exist instead of creating
    an empty storage.
    """
    url = normalise_url(url)
    shown = redact(url)
    path = storage_file(url)
    if path is not None:
        _check_file(path, shown, create=create, sqlite=url.startswith("sqlite"))
    if path is not None and url.startswith("sqlite") and path.is_file() and path.stat().st_size:
        _refuse_foreign_sqlite(path, shown)
    with storage_faults(url):
        if url.startswith("journal://"):
            return _journal_storage(path, shown)
        read_only = path is not None and not create and not _writable(path)
        if read_only and Path(f"{path}-wal").is_file() and Path(f"{path}-wal").stat().st_size > 0:
            raise StorageFault(f"storage {shown}: the last writer left changes in {path.name}-wal that cannot be "
                               f"applied on a read-only medium; copy {path.name} and {path.name}-wal to a "
                               f"writable folder and read it there")
        storage = _rdb_storage(f"sqlite:///file:{path}?immutable=1&uri=true" if read_only else url, shown, heartbeat_s)
        if url.startswith("sqlite"):
            if not read_only:
                _use_wal(storage.engine)
            _quick_check(storage.engine, shown)
        return storage


def _rdb_storage(url: str, shown: str, heartbeat_s: int | None):
    if url.startswith("postgresql"):
        engine_kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}, "pool_pre_ping": True}
    elif url.startswith("sqlite"):  # wait for the other writer instead of failing with "database is locked"
        busy_s = float(os.environ.get("WORKBENCH_SQLITE_BUSY_TIMEOUT", SQLITE_BUSY_TIMEOUT_S))
        engine_kwargs = {"connect_args": {"timeout": busy_s}}
    else:
        engine_kwargs = {}
    heartbeat = {}
    if heartbeat_s:  # stale trials are failed and retried by workbench.storages.recovery (which also covers journals)
        heartbeat = {"heartbeat_interval": heartbeat_s, "grace_period": GRACE_FACTOR * heartbeat_s}
    try:
        return _create_schema_once(url, engine_kwargs, heartbeat)
    except Exception as exc:  # sqlalchemy/driver errors vary by backend; all mean "cannot use this URL"
        missing = next((e.name for e in _chain(exc) if isinstance(e, ModuleNotFoundError) and e.name), None)
        if missing is not None:
            extra = f"; it comes with the postgres extra: {POSTGRES_INSTALL}" if url.startswith("postgresql") else ""
            raise WorkbenchError(f"--storage: {shown} needs the database driver {missing!r}, which is not "
                                 f"installed{extra}") from None
        fault = as_storage_fault(exc, url)
        if fault is not None and _hint(exc) is not None:
            raise fault from None
        raise WorkbenchError(f"--storage: cannot open {shown}: {_first_line(exc)}") from None


def _create_schema_once(url: str, engine_kwargs: dict, heartbeat: dict, attempts: int = 3):
    """Optuna's RDBStorage, which creates its tables on first use. Two processes doing that at once on a
    new database collide (a unique-key or "already exists" error for the second); the second then finds
    the tables made and opens them on a retry."""
    from sqlalchemy.exc import (  # heavy: sqlalchemy
        IntegrityError,
        OperationalError,
        ProgrammingError,
    )

    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8, and the documented way
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
        except (IntegrityError, OperationalError, ProgrammingError) as exc:
            collided = isinstance(exc, IntegrityError) or "already exists" in str(exc)
            if not collided or attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def _check_file(path: Path, shown: str, *, create: bool, sqlite: bool) -> None:
    """Problems a file storage shows before it is opened: a missing folder, a folder instead of a file, no
    permission to read, create or write, a full disk."""
    what = "an SQLite file" if sqlite else "a journal file"
    if path.is_dir():
        raise StorageFault(f"storage {shown}: {path} is a folder, not {what}; give a file path "
                           f"(e.g. {path / ('studies.db' if sqlite else 'studies.log')})")
    if not path.parent.is_dir():
        raise WorkbenchError(f"--storage: folder {path.parent} does not exist (for {shown})")
    if not path.exists():
        if not create:
            raise WorkbenchError(f"--storage: {path} does not exist (nothing was created; a study is created "
                                 f"by `workbench search`)")
        if not os.access(path.parent, os.W_OK):
            raise StorageFault(f"storage {shown}: cannot create {path.name}: folder {path.parent} is read-only "
                               f"(mount or permissions); use a writable folder")
        _check_free_space(path.parent, shown)
        return
    if create:
        _check_free_space(path.parent, shown)
    if not os.access(path, os.R_OK):
        raise StorageFault(f"storage {shown}: {path} is not readable; fix its permissions")
    if create and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
        where = path if not os.access(path, os.W_OK) else f"its folder {path.parent}"
        raise StorageFault(f"storage {shown}: {where} is read-only (mount or permissions); the search must write "
                           f"there — make it writable or copy the file to a writable place")
    # No peeking at an SQLite file's bytes here: opening and closing another descriptor on it would drop the
    # POSIX locks this process's SQLite connections hold (sqlite.org/howtocorrupt.html, 2.2). SQLite's own
    # "file is not a database" and quick_check (below) find damaged files.


def _refuse_foreign_sqlite(path: Path, shown: str) -> None:
    """A valid SQLite database with tables but none of Optuna's is another application's: refused before
    Optuna would add its own tables to it. Read through SQLite itself (read-only), which shares its file
    locks with the process's other connections; a file SQLite cannot read is left to the checks that follow."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as con:
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error:
        return
    if tables and "version_info" not in tables:
        listed = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
        raise WorkbenchError(f"--storage: {path} is an SQLite database of another application (tables: {listed}), "
                             f"not an Optuna storage; nothing was written to it — give a new file (for {shown})")


def _journal_storage(path: Path, shown: str):
    """Optuna's journal storage on ``path``; a file of JSON lines that are not Optuna's records is one line."""
    try:
        return optuna.storages.JournalStorage(_journal_backend(path))
    except (TypeError, KeyError, AttributeError, IndexError, ValueError) as exc:
        if isinstance(exc, (OSError, json.JSONDecodeError)):  # a torn or damaged file: storage_faults says so
            raise
        raise WorkbenchError(f"--storage: {path} is not an Optuna journal: its records cannot be replayed "
                             f"({type(exc).__name__}: {str(exc)[:80]}); give a new file (for {shown})") from None


def _journal_backend(path: Path):
    """Optuna's journal file backend, safe against a torn last record.

    A write cut short (a full disk, a kill during the write) leaves a last line without its newline;
    Optuna appends the next record to it and the file can no longer be read. Here the torn tail is
    dropped (under the journal's lock) before every append, and a failed append is undone at once.
    """
    from optuna.storages.journal import JournalFileBackend  # heavy: optuna
    from optuna.storages.journal._file import get_lock_file  # heavy: optuna

    class RepairingJournalFileBackend(JournalFileBackend):
        def append_logs(self, logs: list[dict]) -> None:
            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            with get_lock_file(self._lock):
                with open(self._file_path, "r+b") as fh:
                    end = _drop_torn_tail(fh)
                    try:
                        fh.write(text.encode("utf-8"))
                        fh.flush()
                        os.fsync(fh.fileno())
                    except OSError:
                        with contextlib.suppress(OSError):
                            fh.truncate(end)  # nothing of a record that was not written completely
                        raise

    return RepairingJournalFileBackend(str(path))


def _drop_torn_tail(fh) -> int:
    """Cut the file after its last newline; the new end offset (the file position is left there)."""
    end = fh.seek(0, os.SEEK_END)
    if end == 0:
        return 0
    fh.seek(end - 1)
    if fh.read(1) == b"\n":
        return end
    pos = end
    while pos > 0:
        start = max(0, pos - 65536)
        fh.seek(start)
        cut = fh.read(pos - start).rfind(b"\n")
        if cut >= 0:
            end = start + cut + 1
            break
        pos = start
    else:
        end = 0
    fh.truncate(end)
    fh.seek(end)
    return end


def _writable(path: Path) -> bool:
    """Can SQLite write here (the file, and its folder for the WAL files)? Read-only media are read with
    SQLite's ``immutable`` flag instead, so ``pareto``/``export`` work on a read-only copy."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _check_free_space(folder: Path, shown: str) -> None:
    try:
        free = shutil.disk_usage(folder).free  # statvfs's f_bavail * f_frsize on POSIX; also on Windows
    except OSError:
        return
    if free < MIN_FREE_BYTES:
        raise StorageFault(f"storage {shown}: the disk holding {folder} is full ({free // 1024} KB free, a search "
                           f"needs at least {MIN_FREE_BYTES // 1024} KB); free space and run the same command again")


def _use_wal(engine) -> None:
    """SQLite in WAL mode with normal sync: readers never block the writer, and a commit costs no fsync.

    Optuna commits once per suggested parameter; with SQLite's default rollback journal each commit
    fsyncs (~10 ms here), which dominated the per-trial overhead and made concurrent workers hit
    "database is locked". WAL keeps durability across process crashes (not across power loss).
    """
    from sqlalchemy import event  # heavy: sqlalchemy

    def on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened while Optuna created the schema lack the pragmas


def _quick_check(engine, shown: str) -> None:
    """A damaged page is found here, before a search writes into the file (milliseconds for a study file)."""
    from sqlalchemy import text  # heavy: sqlalchemy

    with engine.connect() as conn:
        verdict = [" ".join(str(row[0]).split()) for row in conn.execute(text("PRAGMA quick_check(3)"))]
    if verdict != ["ok"]:
        raise StorageFault(f"storage {shown}: the file is damaged (SQLite quick_check: {'; '.join(verdict)[:200]}); "
                           f"restore it from a backup, or recover what is readable with `sqlite3 FILE .recover`")


def redact(url: str) -> str:
    """Hide a password in URLs we print."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url


# ---------------------------------------------------------------- faults → one line

# (what the driver or the OS says, in lower case) → (what is wrong, what to do)
_HINTS = (
    (("file is not a database", "malformed", "not an sqlite"),
     "the file is damaged", "restore it from a backup or give another --storage"),
    (("expecting value", "unterminated string", "extra data", "jsondecodeerror", "should not reach"),
     "the journal file is damaged or was cut short (a full disk?)", "free space, restore the file or give another --storage"),
    (("readonly", "read-only", "permission denied"),
     "it cannot be written (read-only file, folder or mount)", "make it writable or give another --storage"),
    (("database is locked", "database table is locked"),
     "another program holds a lock on it", "stop that program (or wait for it) and run the same command again"),
    (("disk is full", "no space left", "file too large", "disk quota"),
     "the disk is full", "free space and run the same command again"),
    (("is a directory",), "a folder is where the file should be", "give a file path"),
    (("value too long", "data too long", "exceeding max length"),
     "a value is longer than the database column", f"use study names of at most {MAX_STUDY_NAME} characters"),
    (("unable to open database file", "disk i/o error"),
     "the file cannot be opened or read", "check the path, its folder's permissions and free space"),
)
_ERRNO_WORDS = {errno.ENOSPC: "no space left", errno.EDQUOT: "disk quota", errno.EFBIG: "file too large",
                errno.EROFS: "read-only", errno.EACCES: "permission denied", errno.EPERM: "permission denied",
                errno.EISDIR: "is a directory"}


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _texts(exc: BaseException) -> str:
    parts = []
    for e in _chain(exc):
        parts.append(f"{type(e).__name__} {e}")
        if isinstance(e, OSError) and e.errno in _ERRNO_WORDS:
            parts.append(_ERRNO_WORDS[e.errno])
    return " ".join(parts).lower()


def _hint(exc: BaseException) -> tuple[str, str] | None:
    text = _texts(exc)
    for needles, what, todo in _HINTS:
        if any(n in text for n in needles):
            return what, todo
    return None


def _raised_in_storage_code(exc: BaseException) -> bool:
    storage_dirs = (f"{os.sep}optuna{os.sep}storages{os.sep}", f"{os.sep}sqlalchemy{os.sep}",
                    f"{os.sep}psycopg2{os.sep}", f"{os.sep}psycopg{os.sep}")
    for e in _chain(exc):
        tb = e.__traceback__
        while tb is not None:
            if any(d in tb.tb_frame.f_code.co_filename for d in storage_dirs):
                return True
            tb = tb.tb_next
    return False


def _is_storage_error(exc: BaseException) -> bool:
    if isinstance(exc, (optuna.exceptions.UpdateFinishedTrialError, optuna.exceptions.DuplicatedStudyError)):
        return False  # races between workers, handled where they happen
    from sqlalchemy.exc import SQLAlchemyError  # heavy: sqlalchemy

    if any(isinstance(e, (optuna.exceptions.StorageInternalError, SQLAlchemyError, sqlite3.Error))
           for e in _chain(exc)):
        return True
    return isinstance(exc, (OSError, AssertionError, ValueError)) and _raised_in_storage_code(exc)


def as_storage_fault(exc: BaseException, url: str, *, mid_run: bool = False) -> StorageFault | None:
    """The one line for a storage failure, or None when ``exc`` is not one."""
    if isinstance(exc, WorkbenchError) or not _is_storage_error(exc):
        return None
    shown = redact(normalise_url(url))
    hint = _hint(exc)
    reason = next((_first_line(e) for e in _chain(exc)
                   if not isinstance(e, optuna.exceptions.StorageInternalError)), _first_line(exc))
    reason = reason.split(" (Background on this error")[0]
    what, todo = hint if hint else (f"it failed ({reason})", "check the storage and run the same command again")
    detail = f" ({reason})" if hint else ""
    if mid_run:
        return StorageFault(f"storage {shown} failed during the search: {what}{detail}; {todo} "
                            f"(completed trials are kept; the same command resumes)", exit_code=1)
    return StorageFault(f"storage {shown}: {what}{detail}; {todo}")


@contextlib.contextmanager
def storage_faults(url: str, *, mid_run: bool = False):
    """Turn storage exceptions raised inside the block into a :class:`StorageFault`."""
    try:
        yield
    except Exception as exc:
        fault = as_storage_fault(exc, url, mid_run=mid_run)
        if fault is None:
            raise
        raise fault from None


# ---------------------------------------------------------------- studies

def backend_of(storage):
    """The storage itself behind Optuna's per-study cache wrapper (``study._storage`` of an RDB study)."""
    return getattr(storage, "_backend", storage)


def is_rdb(storage) -> bool:
    return isinstance(backend_of(storage), optuna.storages.RDBStorage)


def study_names(storage) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]


def load_study(name: str, url: str = DEFAULT_STORAGE, **open_options) -> optuna.Study:
    """An existing study, or one line saying which studies the storage does hold. Never creates a storage."""
    check_study_name(name)
    open_options.setdefault("create", False)
    backend = open_storage(url, **open_options)
    with storage_faults(url):
        names = study_names(backend)
        if name not in names:
            raise WorkbenchError(f"--study: no study {name!r} in {redact(url)} "
                                 f"(studies there: {', '.join(names) or 'none'})")
        return optuna.load_study(study_name=name, storage=backend)


# ---------------------------------------------------------------- exact trial counts

@contextlib.contextmanager
def tally_lock(storage, url: str, study_name: str):
    """Held while a worker counts the completed trials and records its own as complete (or surplus).

    Workers decide "is mine the n-th or the (n+1)-th?" one at a time, so a study ends with exactly the
    trials it asked for on every backend. File storages lock a file beside the storage (``flock``,
    released by the kernel when a process dies); PostgreSQL takes a session advisory lock, released by
    the server when the connection drops.
    """
    path = storage_file(url)
    if path is not None:
        if fcntl is None:
            raise WorkbenchError(f"--storage: {redact(url)}: a file storage is locked with fcntl.flock, which this "
                                 f"system lacks (Windows); use Linux, macOS or WSL, or a postgresql:// storage")
        with open(f"{path}.workbench-lock", "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    storage = backend_of(storage)
    if normalise_url(url).startswith("postgresql") and isinstance(storage, optuna.storages.RDBStorage):
        from sqlalchemy import text  # heavy: sqlalchemy

        key = int.from_bytes(hashlib.sha256(f"workbench:{study_name}".encode()).digest()[:8], "big", signed=True)
        with storage.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()
        return
    yield  # other servers (MySQL, ...): counts are checked but not serialised


def wait_until(predicate, timeout_s: float, poll_s: float = 0.2) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passes (used while a creator finishes a study)."""
    end = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(poll_s)
