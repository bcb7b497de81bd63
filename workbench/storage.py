"""Where studies live: any Optuna storage URL, with friendly defaults and one-line errors.

- ``sqlite:///path.db`` (default ``sqlite:///workbench.db`` in the current directory), or a bare path
  ending in ``.db``/``.sqlite``: one machine, a few processes;
- a path ending in ``.log``/``.jsonl`` (or ``journal:///abs/path``): Optuna's journal file, safe for many
  processes on one machine;
- ``postgresql://user:pass@host/db`` (or any SQLAlchemy URL Optuna accepts): many machines.
"""
from __future__ import annotations

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


def open_storage(url: str = DEFAULT_STORAGE):
    """An Optuna storage for ``url``; connection problems become a WorkbenchError naming the URL."""
    url = normalise_url(url)
    shown = _redact(url)
    if url.startswith("journal://"):
        path = Path(url[len("journal://"):])
        _check_parent(path, shown)
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        _check_parent(Path(url[len("sqlite:///"):]), shown)
    engine_kwargs = {"connect_args": {"connect_timeout": 10}} if url.startswith("postgresql") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=None)
    except Exception as exc:  # sqlalchemy/driver errors vary by backend; all mean "cannot use this URL"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WorkbenchError(f"--storage: cannot open {shown}: {reason}") from None


def _check_parent(path: Path, shown: str) -> None:
    if path.parent and not path.parent.is_dir():
        raise WorkbenchError(f"--storage: folder {path.parent} does not exist (for {shown})")


def _redact(url: str) -> str:
    """Hide a password in URLs we print."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url


def study_names(storage) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
