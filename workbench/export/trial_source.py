"""Which stored trial an export is of, and how its trained weights are obtained.

A trial stores its architecture and training seed, not its weights. Training is deterministic under
a seed (see :mod:`workbench.model.train`), so the trial's model is rebuilt by training again with the
study's epochs and the trial's ``train_seed``; the reproduced accuracy is recorded next to the
stored one, and a mismatch is raised as a :class:`~workbench._infra.notices.RetrainMismatch` notice
(the CLI prints it, the notebook's export panel shows it). ``epochs`` trains longer (a fresh model;
no match expected) and ``weights`` loads a saved ``state_dict`` instead (:mod:`workbench.model.weights`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from workbench._infra.errors import WorkbenchError
from workbench._infra.notices import RetrainMismatch, notify
from workbench.model.arch import Architecture
from workbench.model.data import load_dataset
from workbench.model.train import evaluate, train_and_evaluate
from workbench.model.weights import load_weights
from workbench.storages.storage import redact
from workbench.study.front import TrialRecord
from workbench.study.schema import Keys, StudySettings
from workbench.study.stored import StoredStudy

Log = Callable[[str], None]


@dataclass
class TrialSource:
    """A stored trial and the study settings needed to rebuild it."""

    study: str
    storage: str
    number: int
    arch: Architecture
    attrs: dict
    settings: StudySettings
    profile: object  # DeviceProfile the prediction (and ``best``) refer to


def resolve_trial(study: str, storage: str | None = None, trial: int | str = "best",
                  device: str | None = None) -> TrialSource:
    """Load ``trial`` (a number, or ``"best"``: the study's best rule on ``device``'s front,
    :meth:`workbench.study.stored.StoredStudy.best`) of ``study``; ``device`` overrides the target profile."""
    stored = StoredStudy(study, storage)
    profile = stored.device(device)
    if str(trial) == "best":
        best = stored.best(profile)
        if best is None:
            raise WorkbenchError(f"--trial best: study {study!r} has no trained trial that fits {profile.name}")
        number = best.number
    else:
        number = _trial_number(trial)
    frozen = stored.trial(number)
    if frozen is None or Keys.ARCH not in frozen.user_attrs:
        raise WorkbenchError(f"--trial: study {study!r} has no trial {number} with an architecture "
                             f"(trials 0..{len(stored.study.trials) - 1})")
    attrs = dict(frozen.user_attrs)
    if Keys.TRAIN_SEED not in attrs:
        raise WorkbenchError(f"--trial: trial {number} of {study!r} was never trained ({_untrained(attrs, frozen)})")
    return TrialSource(study, redact(stored.storage_url), number, Architecture.from_dict(attrs[Keys.ARCH]), attrs,
                       stored.settings, profile)


def study_dataset(source: TrialSource, data: str | None = None):
    """The data set the trial was trained on (``data``, a name or path, overrides the study's record)."""
    data_name = data or source.settings.data_source or source.settings.data
    if not data_name:
        raise WorkbenchError(f"study {source.study!r} records no data set; give --data")
    try:
        return load_dataset(data_name)
    except WorkbenchError as exc:
        raise WorkbenchError(f"--data: cannot load the study's data set ({exc}); give --data") from None


def _untrained(attrs: dict, frozen) -> str:
    """Why a trial has no weights to rebuild, and which trial to export instead."""
    if attrs.get(Keys.DUPLICATE_OF) is not None:
        return f"it repeats the architecture of trial {attrs[Keys.DUPLICATE_OF]}: export that one"
    why = ", ".join(attrs.get(Keys.REJECTED, [])) or f"state {frozen.state.name}"
    return f"{why}; pick a trained one"


def _trial_number(trial: int | str) -> int:
    try:
        return int(trial)
    except ValueError:
        raise WorkbenchError(f"--trial: expected a trial number or 'best', got {trial!r}") from None


def trained_model(source: TrialSource, dataset, *, epochs: int | None = None, weights=None,
                  log: Log | None = None) -> tuple[nn.Module, dict]:
    """The trial's trained model and a manifest record of how it was obtained.

    Retraining with the study's epochs and the trial's seed reproduces the search's model (same
    environment and thread count); the record says whether the accuracy matched.
    """
    arch, stored = source.arch, source.attrs.get(Keys.ACCURACY)
    if weights is not None and epochs is not None:
        raise WorkbenchError("--weights and --epochs exclude each other (weights are loaded, not trained)")
    if weights is not None:
        model = load_weights(arch, weights)
        acc = evaluate(model, arch, dataset)
        return model, {"source": "weights", "weights": str(weights), "accuracy": acc, "stored_accuracy": stored}
    study_epochs = source.settings.epochs
    epochs = study_epochs if epochs is None else int(epochs)
    if epochs < 1:
        raise WorkbenchError(f"--epochs: must be >= 1, got {epochs}")
    seed = int(source.attrs[Keys.TRAIN_SEED])
    if log is not None:
        log(f"training trial {source.number} ({epochs} epochs, seed {seed}) to rebuild its weights")
    result = train_and_evaluate(arch, dataset, epochs=epochs, seed=seed)
    record = {"source": "retrained", "epochs": epochs, "study_epochs": study_epochs, "seed": seed,
              "accuracy": result.accuracy, "fp32_accuracy": result.fp32_accuracy, "stored_accuracy": stored,
              "stored_fp32_accuracy": source.attrs.get(Keys.FP32_ACCURACY),
              "train_seconds": round(result.train_seconds, 2)}
    if epochs == study_epochs:
        record["reproduced"] = stored is not None and abs(result.accuracy - stored) < 1e-9
        if not record["reproduced"]:
            _notify_mismatch(source.number, result.accuracy, stored)
    return result.model, record


def _notify_mismatch(number: int, accuracy: float, stored: float | None) -> None:
    was = "none stored" if stored is None else f"{stored:.4f} stored"
    notify(f"trial {number}: retrained accuracy {accuracy:.4f} differs from the search's ({was}; "
           f"different environment or thread count?)", RetrainMismatch)


def fit_on_device(source: TrialSource, log: Log | None = None) -> dict:
    """Does the trial fit the device it is exported for (SRAM, flash, kernels, the study's latency budget)?
    The same rule as the fronts and the notebook (``TrialRecord.fit_problems``); a misfit is a warning."""
    record = TrialRecord(source.number, source.arch, source.attrs.get(Keys.ACCURACY),
                         source.attrs.get(Keys.PREDICTIONS, {}), (), None)
    budget = source.settings.latency_budget_ms
    problems = record.fit_problems(source.profile, budget)
    if problems and log is not None:
        log(f"warning: trial {source.number} does not fit {source.profile.name}: {'; '.join(problems)}")
    return {"device": source.profile.name, "latency_budget_ms": budget, "fits": not problems, "problems": problems}
