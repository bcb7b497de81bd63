"""THE reader of a stored study: settings, records, architectures, the front and the best trial.

Every read of a study — the CLI, export, the search resuming, the notebook widgets — goes through
:class:`StoredStudy`, so "the front" and "the best trial" have one definition each (rules in
:mod:`workbench.study.front`; keys and settings in :mod:`workbench.study.schema`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from workbench._infra.errors import WorkbenchError
from workbench.storages.storage import DEFAULT_STORAGE, load_study
from workbench.study import front, whatif
from workbench.study.front import TrialRecord
from workbench.study.schema import StudySettings

if TYPE_CHECKING:
    import optuna

    from workbench.hardware.profiles import DeviceProfile
    from workbench.study.whatif import Limits, WhatIf


class StoredStudy:
    """THE reader of a stored study: ``StoredStudy("quickstart", "sqlite:///workbench.db")`` or
    ``StoredStudy(optuna_study)``.

    ``settings`` (:class:`StudySettings`), ``target`` (the device it aimed at), ``records()`` (one per
    trial), ``architectures()`` (one per trained architecture: every measurement merged), ``front(device)``
    and ``best(device)`` — the one front rule and the one best rule of :mod:`workbench.study.front` — and
    ``what_if(device, limits)`` (:mod:`workbench.study.whatif`: other limits and filters, and why trials are missing). Every read
    goes to the storage (live searches append); ``settings`` is read once per ``refresh()``.
    """

    def __init__(self, study: "str | optuna.Study", storage: str | None = None):
        import optuna  # heavy: optuna


        if isinstance(study, optuna.Study):
            self.study = study
            self.storage_url = storage or _storage_url(study)
        elif isinstance(study, str):
            self.storage_url = storage or DEFAULT_STORAGE
            self.study = load_study(study, self.storage_url)
        else:
            raise WorkbenchError(f"cannot read a study from {type(study).__name__}")
        self._settings: StudySettings | None = None

    @property
    def name(self) -> str:
        return self.study.study_name

    @property
    def settings(self) -> StudySettings:
        if self._settings is None:
            self._settings = StudySettings.from_attrs(self.study.user_attrs, where=f"study {self.name!r}")
        return self._settings

    def refresh(self) -> "StoredStudy":
        """Forget the settings read so far (the target number of trials grows when a search resumes)."""
        self._settings = None
        return self

    @property
    def target(self) -> "DeviceProfile":
        """The device the search aimed at (a user profile folder is found again by its path)."""
        return self.device()

    def device(self, override: "DeviceProfile | str | None" = None) -> "DeviceProfile":
        """``override`` (a profile, a name or a folder) or the study's target."""
        return front.study_device(self.settings, override)

    def records(self) -> "list[TrialRecord]":
        """Every completed trial with an architecture, one record per trial (``front.load_records``)."""
        return front.load_records(self.study)

    def architectures(self, records: "list[TrialRecord] | None" = None) -> "list[TrialRecord]":
        """One record per trained architecture (mean over all its measurements) plus the rejected trials."""
        return front.by_architecture(self.records() if records is None else records)

    def front(self, device: "DeviceProfile | str | None" = None, objectives=None,
              records: "list[TrialRecord] | None" = None) -> "list[TrialRecord]":
        """The Pareto front on ``device`` (default: the target) under the study's objectives and budget."""
        return front.pareto_front(self.records() if records is None else records, self.device(device),
                            tuple(objectives or self.settings.objectives), self.settings.latency_budget_ms)

    def best(self, device: "DeviceProfile | str | None" = None,
             records: "list[TrialRecord] | None" = None) -> "TrialRecord | None":
        """The best rule: highest mean accuracy on the front, ties → lower latency → lower trial number."""
        profile = self.device(device)
        return front.best_of(self.front(profile, records=records), profile)

    def what_if(self, device: "DeviceProfile | str | None" = None, limits: "Limits | None" = None,
                records: "list[TrialRecord] | None" = None) -> "WhatIf":
        """The front on ``device`` under what-if ``limits`` (:mod:`workbench.study.whatif`: nothing retrained,
        nothing written) and, for every trained trial not on it, the first reason; failed trials counted beside."""
        import optuna  # heavy: optuna

        failed = len(self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)))
        return whatif.front_under(self.records() if records is None else records, self.device(device),
                                  limits or whatif.Limits(), tuple(self.settings.objectives),
                                  self.settings.latency_budget_ms, failed)

    def trial(self, number: int) -> "optuna.trial.FrozenTrial | None":
        """The stored trial ``number`` (any state), or None."""
        return next((t for t in self.study.get_trials(deepcopy=False) if t.number == number), None)


def _storage_url(study: "optuna.Study") -> str | None:
    """An RDB study remembers its URL (behind Optuna's cache); a journal study does not."""
    backend = getattr(study._storage, "_backend", study._storage)
    return getattr(backend, "url", None)
