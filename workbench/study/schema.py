"""The stored study's schema: named attribute keys and its settings.

A study lives in an Optuna storage: the search writes its settings as study user attributes (once, when
the study is created) and each trial's architecture, predictions and measurements as trial user
attributes. Everything that reads a study back — the CLI, export, the search resuming, the notebook
widgets — reads it with the names defined here, so the keys are spelled once (:class:`Keys`) and the
settings are one frozen object (:class:`StudySettings`). The reader itself is
:class:`workbench.study.stored.StoredStudy`.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Mapping

from workbench._infra.errors import WorkbenchError
from workbench.model.arch import Architecture
from workbench.model.evaluators import EVALUATORS

if TYPE_CHECKING:
    import optuna


class Keys:
    """Trial user-attribute keys. The stored strings never change: studies written by older versions
    must still read."""

    ARCH = "arch"                    # Architecture.to_dict()
    ARCH_KEY = "arch_key"            # arch_key(arch): architecture + quantisation policy, canonical
    SUMMARY = "summary"              # Architecture.summary()
    PREDICTIONS = "predictions"      # device name → cost.estimate(...).to_dict()
    REJECTED = "rejected"            # constraint names over their limit: not trained
    ACCURACY = "accuracy"            # held-out test top-1 of the trained model
    FP32_ACCURACY = "fp32_accuracy"  # the float model's accuracy before quantisation (None when fp32)
    SCORE = "score"                  # training-free proxy score (evaluator synflow/naswot), never "accuracy"
    TRAIN_SECONDS = "train_seconds"
    TRAIN_SEED = "train_seed"
    SURPLUS = "surplus"              # pruned: others completed the study's last slot first
    RETRY_OF = "retry_of"            # re-queued after an interrupt: the trial number it repeats
    EVAL_SECONDS = "eval_seconds"    # proxy evaluation time
    DUPLICATE_OF = "duplicate_of"    # the arch+policy was already trained in trial N; this one was not trained
    REPEATS = "repeats"              # extra seeds of an architecture: a running trial's own list, or the study
    #                                  attribute "repeats:<arch_key>" once the trial finished (see repeats_attr)
    TRAINED = "trained"              # the model was really trained/evaluated (what --trials counts)


def arch_key(arch: Architecture | Mapping[str, Any]) -> str:
    """A short canonical key of an architecture and its quantisation policy (the policy is part of the
    choices): equal keys ⇔ equal ``Architecture``. 16 hex digits of the SHA-256 of its sorted JSON, so it
    is the same on every machine and in every process (unlike ``hash()``). Takes the stored dict too."""
    if not isinstance(arch, Architecture):
        arch = Architecture.from_dict(dict(arch))
    return hashlib.sha256(arch.to_json().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StudySettings:
    """What a study was created with, stored as its user attributes (one attribute per field).

    ``from_attrs`` reads studies written by older versions, which may lack the newer fields (``evaluator``,
    ``data_source``, ``trials``, the file paths): those take the defaults below.
    """

    space: str
    space_yaml: str
    device: str
    data: str
    objectives: tuple[str, ...] = ("accuracy", "latency")
    latency_budget_ms: float | None = None
    epochs: int = 3
    seed: int = 0
    sampler: str = "tpe"
    evaluator: str = "train"
    space_file: str | None = None
    device_file: str | None = None
    data_source: str = ""
    trials: int | None = None  # the target number of trials (raised by a resume with a larger --trials)
    train_scheme: str | None = None  # update scheme whose training memory each trial stores (None: not costed)
    train_sram_budget_kb: float | None = None  # candidates needing more training SRAM are rejected untrained

    REQUIRED = ("space", "space_yaml", "device", "data")
    TARGET = "trials"  # the attribute of ``trials``: raised while a study runs, read by workers and live views

    def to_attrs(self) -> dict[str, Any]:
        """The study user attributes (JSON values: ``objectives`` as a list; ``trials`` only once set)."""
        attrs = asdict(self)
        attrs["objectives"] = list(self.objectives)
        if self.trials is None:
            del attrs["trials"]
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], *, where: str = "study") -> "StudySettings":
        """Settings from a study's user attributes; other attributes (fingerprint, …) are ignored."""
        missing = [key for key in cls.REQUIRED if key not in attrs]
        if missing:
            raise WorkbenchError(f"{where} has no recorded {', '.join(missing)} (not a workbench study, or its "
                                 f"creator stopped before writing its settings)")
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in attrs.items() if key in known and value is not None}
        if "objectives" in values:
            values["objectives"] = tuple(values["objectives"])
        for key in ("latency_budget_ms", "train_sram_budget_kb"):
            if key in values:
                values[key] = float(values[key])
        for key in ("epochs", "seed", "trials"):
            if key in values:
                values[key] = int(values[key])
        return cls(**values)

    @staticmethod
    def stored_target(study: "optuna.Study") -> int:
        """The study's target number of trained trials as stored now (0 while none is stored)."""
        return int(study.user_attrs.get(StudySettings.TARGET) or 0)

    @property
    def metric(self) -> str:
        """The trial key holding the measurement: ``accuracy``, or ``score`` for a training-free proxy."""
        return Keys.ACCURACY if EVALUATORS.get(self.evaluator).trains else Keys.SCORE


# ---------------------------------------------------------------- extra measurements (workbench repeats)

REPEATS_PREFIX = f"{Keys.REPEATS}:"


def repeats_attr(key: str) -> str:
    """The STUDY user attribute holding the extra measurements of the architecture with ``arch_key`` key.

    Optuna refuses to change a finished trial's attributes (``UpdateFinishedTrialError``), so extra seeds
    of an already completed trial live on the study, one attribute per architecture
    (``repeats:<arch_key>`` → ``{"trial": first trained trial, "runs": [{"seed", "accuracy",
    "fp32_accuracy", "train_seconds"}, ...]}``). A trial's own ``repeats`` attribute, when a writer set it
    before the trial finished, is read as well.
    """
    return f"{REPEATS_PREFIX}{key}"


def stored_repeats(study: "optuna.Study") -> dict[str, list[dict]]:
    """arch_key → its extra measurements stored on ``study`` (empty lists for none)."""
    return {name[len(REPEATS_PREFIX):]: list(value.get("runs", ()))
            for name, value in study.user_attrs.items()
            if name.startswith(REPEATS_PREFIX) and isinstance(value, dict)}
