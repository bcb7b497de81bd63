"""Where studies live: Optuna storage URLs (SQLite by default, PostgreSQL or a journal file for many
machines) opened with friendly defaults and one-line errors, and the recovery of dead workers' trials.

Floor 3: knows nothing about models or devices.
"""
from workbench.storages.storage import DEFAULT_STORAGE, StorageFault, load_study, open_storage

__all__ = ["DEFAULT_STORAGE", "StorageFault", "load_study", "open_storage"]
