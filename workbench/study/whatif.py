"""What-if fronts: other limits and filters applied to a study's stored predictions after the search, and why
every trained trial that is not on the front is missing.

A search keeps a candidate only when it fits its target's SRAM and flash and the latency budget; a person
looking at the results asks what a tighter budget, a smaller chip or only int8 models would leave. The
predictions are stored with every trial (or recomputed from the architecture in microseconds), so the answer
needs no retraining and writes nothing: :func:`front_under` applies :class:`Limits` to the records and returns
the front with one reason counted for every trained trial it leaves out.

Reasons, in the fixed order in which they are tried (the first that applies is the one counted; a trial is
counted once, and ``dominated`` only when it passes every other check):

``precision``, ``quant_mode``, ``stage_bits``
    the filters (``--precision``, ``--quant-mode``, ``--stage-bits``): what the person asked not to see;
``kernels``, ``sram``, ``flash``, ``latency``, ``train_sram``
    the fit rule of :meth:`~workbench.study.front.TrialRecord.misfits` on the device, with the what-if
    limits in place of the device's budgets and the study's latency budget;
``dominated``
    fits and passes the filters, but a front point is at least as good on every objective.

Candidates that were never trained are counted beside, in the words of the search's own tally: candidates
rejected before training, duplicates of trained architectures (not retrained), failed trials.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from workbench._infra.errors import WorkbenchError, shown
from workbench.hardware.profiles import DeviceProfile
from workbench.model.ops import PRECISIONS
from workbench.study.front import TrialRecord, by_architecture, non_dominated

QUANT_MODES = ("none", "ptq", "qat")  # an architecture's quant_mode: none for fp32 models
MAX_LATENCY_MS = 1e6  # 1000 s per inference: past any device a front is drawn for (and past float noise)
MAX_KB = 1e9  # a terabyte of SRAM or flash
REASONS = ("precision", "quant_mode", "stage_bits", "kernels", "sram", "flash", "latency", "train_sram",
           "dominated")
NOT_TRAINED = ("rejected", "duplicates", "failed")


@dataclass(frozen=True)
class Limits:
    """What-if limits and filters for :func:`front_under` (each None or empty: as the study and device have it).

    ``latency_budget_ms`` replaces the study's budget (``math.inf``: no budget); ``sram_kb``/``flash_kb`` replace
    the device's budgets for the model's peak SRAM and flash (the table's SRAM KB and flash KB columns);
    ``precisions`` keeps the models whose :attr:`~workbench.model.arch.Architecture.precision_label` is listed,
    ``quant_modes`` those quantised that way, ``stage_bits`` ((stage, bits), …) those with those weight bits in
    those stages. Invalid values raise the one-line :class:`WorkbenchError` naming the ``pareto`` flag."""

    latency_budget_ms: float | None = None
    sram_kb: float | None = None
    flash_kb: float | None = None
    precisions: tuple[str, ...] = ()
    quant_modes: tuple[str, ...] = ()
    stage_bits: tuple[tuple[str, int], ...] = ()

    def __post_init__(self):
        if self.latency_budget_ms != math.inf:
            _check_limit("--latency-budget", self.latency_budget_ms, MAX_LATENCY_MS, "ms")
        _check_limit("--sram-kb", self.sram_kb, MAX_KB, "KB")
        _check_limit("--flash-kb", self.flash_kb, MAX_KB, "KB")
        _check_names("--precision", self.precisions, PRECISIONS)
        _check_names("--quant-mode", self.quant_modes, QUANT_MODES)
        for stage, bits in self.stage_bits:
            if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= 32:
                raise WorkbenchError(f"--stage-bits: {stage}'s bits must be an integer from 1 to 32, got {shown(bits)}")

    def flags(self, study_budget_ms: float | None = None, profile: DeviceProfile | None = None,
              target: str | None = None) -> list[str]:
        """The what-if as the flags that give it, each with what it replaces (``--sram-kb 20 (stm32f746: 312
        KB)``) and, where it is looser than the search's own limit (the study's budget; the device's memory when
        ``profile`` is the study's ``target``), that it brings back no candidate."""
        out = []
        if self.latency_budget_ms is not None:
            shown_budget = "none" if self.latency_budget_ms == math.inf else f"{self.latency_budget_ms:g}"
            study = f"the study's: {study_budget_ms:g} ms" if study_budget_ms else "the study had none"
            looser = study_budget_ms is not None and self.latency_budget_ms > study_budget_ms
            out.append(f"--latency-budget {shown_budget} ({study}{_LOOSER if looser else ''})")
        for flag, kb, budget in (("--sram-kb", self.sram_kb, profile and profile.sram_budget_bytes),
                                 ("--flash-kb", self.flash_kb, profile and profile.flash_budget_bytes)):
            if kb is not None and profile is None:
                out.append(f"{flag} {kb:g}")
            elif kb is not None:
                looser = profile.name == target and kb * 1024 > budget
                out.append(f"{flag} {kb:g} ({profile.name}: {budget / 1024:.0f} KB{_LOOSER if looser else ''})")
        out += [f"{flag} {','.join(values)}" for flag, values in
                (("--precision", self.precisions), ("--quant-mode", self.quant_modes),
                 ("--stage-bits", [f"{s}={b}" for s, b in self.stage_bits])) if values]
        return out

    def to_dict(self) -> dict:
        """The limits for JSON (``latency_budget_ms``: null for the study's own, ``"none"`` for no budget)."""
        latency = "none" if self.latency_budget_ms == math.inf else self.latency_budget_ms
        return {"latency_budget_ms": latency, "sram_kb": self.sram_kb, "flash_kb": self.flash_kb,
                "precision": list(self.precisions), "quant_mode": list(self.quant_modes),
                "stage_bits": {s: b for s, b in self.stage_bits}}


_LOOSER = "; looser than the search's, which never trained the candidates over it"


@dataclass(frozen=True)
class WhatIf:
    """A front under :class:`Limits` and the count of every trained trial left out, by reason.

    ``front``: the points (grouped by architecture, as every front); ``trained``: trained trials; ``on_front``:
    trained trials merged into the front's points (more than ``len(front)`` when an architecture was trained
    twice); ``missing``: trained trials per reason, every key of :data:`REASONS` in order, so ``on_front +
    sum(missing.values()) == trained``; ``not_trained``: rejected / duplicates / failed candidates (``failed``
    is None when only records were given: failed trials have none)."""

    front: list[TrialRecord]
    profile: DeviceProfile
    limits: Limits
    latency_budget_ms: float | None  # the budget applied (the study's or the what-if's; None: none)
    trained: int
    on_front: int
    missing: dict[str, int]
    not_trained: dict[str, int | None]
    lacking: tuple[str, ...] = ()  # the kernels the device lacks, over the trials counted under "kernels"
    train_budget_kb: float | None = None  # the study's --train-sram-budget (records carry it)

    def reason_lines(self) -> list[str]:
        """``22 of 24 trained trials not on this front:`` then one indented line per reason with a count (and
        ``dominated`` always), then one line for the candidates never trained."""
        left = self.trained - self.on_front
        merged = f" ({self.on_front} trained trials in {len(self.front)} points)" if self.on_front != len(
            self.front) else ""
        lines = [(f"{left} of {self.trained} trained trial{'s' if self.trained != 1 else ''} not on this "
                  f"front{merged}{':' if left else ''}")]
        width = len(str(max(self.missing.values(), default=0)))
        lines += [f"  {n:>{width}} {self._words(reason)}" for reason, n in self.missing.items()
                  if n or (reason == "dominated" and left)]
        lines.append(f"never trained, so on no front: {not_trained_text(self.not_trained)}")
        return lines

    def _words(self, reason: str) -> str:
        """What a reason's line says after its count: the limit or filter by the flag or budget that set it."""
        limits = self.limits
        if reason in ("sram", "flash"):
            return self._memory_words(reason)
        if reason == "kernels":
            return (f"use {' and '.join(map(_kind_words, self.lacking)) or 'kernels'} ({self.profile.name} runs no "
                    f"{', '.join(self.lacking) or 'such kernels'})")
        if reason == "latency":
            return (f"over --latency-budget {limits.latency_budget_ms:g} ms" if limits.latency_budget_ms is not None
                    else f"over the study's {self.latency_budget_ms:g} ms latency budget")
        if reason == "train_sram":
            return f"over the study's {self.train_budget_kb:g} KB training SRAM budget (--train-sram-budget)"
        if reason == "dominated":
            return "dominated (a front point is as good or better on every objective)"
        flag, values = {"precision": ("--precision", limits.precisions),
                        "quant_mode": ("--quant-mode", limits.quant_modes),
                        "stage_bits": ("--stage-bits", [f"{s}={b}" for s, b in limits.stage_bits])}[reason]
        return f"left out by {flag} {','.join(values)}"

    def _memory_words(self, reason: str) -> str:
        kb = self.limits.sram_kb if reason == "sram" else self.limits.flash_kb
        if kb is not None:
            return f"over --{reason}-kb {kb:g}"
        budget = self.profile.sram_budget_bytes if reason == "sram" else self.profile.flash_budget_bytes
        return f"over {self.profile.name}'s {budget / 1024:.0f} KB of {'SRAM' if reason == 'sram' else 'flash'} " \
               f"for the model"

    def to_dict(self) -> dict:
        """``missing`` for JSON: trained / on_front / not_on_front (every reason) / not_trained."""
        return {"trained": self.trained, "on_front": self.on_front, "not_on_front": dict(self.missing),
                "not_trained": dict(self.not_trained)}


def front_under(records: Sequence[TrialRecord], profile: DeviceProfile, limits: Limits | None = None,
                objectives: Sequence[str] = ("accuracy", "latency"), latency_budget_ms: float | None = None,
                failed: int | None = None) -> WhatIf:
    """The front of ``records`` on ``profile`` under ``limits`` (``latency_budget_ms``: the study's own budget,
    which ``limits.latency_budget_ms`` replaces), and why every other trained trial is not on it. Without
    limits the front is :func:`~workbench.study.front.pareto_front`'s. ``failed``: the study's failed
    trials (they have no record), counted beside the candidates never trained."""
    limits = limits or Limits()
    _check_stages(records, limits)
    budget = latency_budget_ms if limits.latency_budget_ms is None else limits.latency_budget_ms
    budget = None if budget == math.inf else budget
    missing = dict.fromkeys(REASONS, 0)
    lacking: set[str] = set()
    fits, weight = [], {}
    for group in by_architecture(records):
        if group.accuracy is None:
            continue
        weight[group.number] = len(group.trials) or 1
        reason = _first_reason(group, profile, limits, budget)
        if reason is None:
            fits.append(group)
            continue
        missing[reason] += weight[group.number]
        if reason == "kernels":
            lacking |= {op.precision for op in group.arch.ops} - set(profile.precisions)
    front = non_dominated(fits, profile, objectives)
    on_front = sum(weight[r.number] for r in front)
    missing["dominated"] = sum(weight[r.number] for r in fits) - on_front
    training = next((r.training for r in records if r.training is not None), None)
    return WhatIf(front, profile, limits, budget, sum(weight.values()), on_front, missing,
                  _not_trained(records, failed), tuple(p for p in PRECISIONS if p in lacking),
                  training.budget_kb if training else None)


def not_trained_text(counts: dict[str, int | None]) -> str:
    """``9 candidates rejected before training, 2 duplicates of trained architectures not retrained, 1 failed
    trial``: the search's own tally words (``failed`` left out when unknown)."""
    words = {"rejected": ("candidate", "rejected before training"),
             "duplicates": ("duplicate", "of trained architectures not retrained"),
             "failed": ("failed trial", "")}
    parts = []
    for key in NOT_TRAINED:
        n = counts.get(key)
        if n is not None:
            noun, tail = words[key]
            parts.append(f"{n} {noun}{'s' if n != 1 else ''}{' ' + tail if tail else ''}")
    return ", ".join(parts)


def _first_reason(group: TrialRecord, profile: DeviceProfile, limits: Limits, budget: float | None) -> str | None:
    """The first reason of :data:`REASONS` that keeps ``group`` off the front (None: it fits and passes)."""
    arch = group.arch
    if limits.precisions and arch.precision_label not in limits.precisions:
        return "precision"
    if limits.quant_modes and arch.quant_mode not in limits.quant_modes:
        return "quant_mode"
    stage_bits = arch.policy["stage_weight_bits"]
    if any(stage_bits.get(stage) != bits for stage, bits in limits.stage_bits):
        return "stage_bits"
    misfits = group.misfits(profile, budget, sram_kb=limits.sram_kb, flash_kb=limits.flash_kb)
    return misfits[0][0] if misfits else None


def _not_trained(records: Sequence[TrialRecord], failed: int | None) -> dict[str, int | None]:
    """Rejected and duplicate candidates among the records, as the search's tally counts them."""
    return {"rejected": sum(bool(r.rejected) for r in records if r.duplicate_of is None),
            "duplicates": sum(r.duplicate_of is not None for r in records), "failed": failed}


def _kind_words(kind: str) -> str:
    return "4-bit weights" if kind == "w4a8" else f"{kind} kernels"


def _check_limit(flag: str, value, most: float, unit: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= most:
        got = f"{value:g}" if isinstance(value, float) else shown(value)
        raise WorkbenchError(f"{flag}: must be a number of {unit} above 0 and at most {most:g}, got {got}")


def _check_names(flag: str, values, known: Sequence[str]) -> None:
    for value in values:
        if value not in known:
            raise WorkbenchError(f"{flag}: unknown value {value!r}; choose from {', '.join(known)}")


def _check_stages(records: Sequence[TrialRecord], limits: Limits) -> None:
    """A ``--stage-bits`` stage must be one the study's quantised architectures have (a typo filters all out)."""
    if not limits.stage_bits:
        return
    stages = sorted({s for r in records for s in r.arch.policy["stage_weight_bits"]})
    for stage, _ in limits.stage_bits:
        if stage not in stages:
            raise WorkbenchError(f"--stage-bits: no architecture of this study has a stage {stage!r} with its "
                                 f"own weight bits (stages: {', '.join(stages) or 'none: no quantised model'})")


def parse_limits(*, latency_budget: str | None = None, sram_kb: str | None = None, flash_kb: str | None = None,
                 precision: Sequence[str] = (), quant_mode: Sequence[str] = (),
                 stage_bits: Sequence[str] = ()) -> Limits:
    """:class:`Limits` from the ``pareto`` flags' text (``--latency-budget none`` drops the study's budget;
    list flags take comma-separated values and may repeat; ``--stage-bits b3=4``)."""
    latency = math.inf if latency_budget is not None and latency_budget.strip().lower() == "none" \
        else _number("--latency-budget", latency_budget)
    bits = []
    for text in _items("--stage-bits", stage_bits):
        stage, sep, value = text.partition("=")
        if not sep or not stage.strip():
            raise WorkbenchError(f"--stage-bits: expected STAGE=BITS (e.g. b3=4), got {text!r}")
        try:
            bits.append((stage.strip(), int(value)))
        except ValueError:
            raise WorkbenchError(f"--stage-bits: {stage.strip()}'s bits must be an integer, got {value!r}") from None
    return Limits(latency, _number("--sram-kb", sram_kb), _number("--flash-kb", flash_kb),
                  tuple(_items("--precision", precision)),
                  tuple(_items("--quant-mode", quant_mode)), tuple(bits))


def _items(flag: str, values: Sequence[str]) -> list[str]:
    """Repeated and comma-separated flag values, in order, once each (an empty one is refused: it would
    silently filter nothing)."""
    out = []
    for value in values:
        for item in value.split(","):
            if not item.strip():
                raise WorkbenchError(f"{flag}: an empty value in {value!r}; give one or more names, comma-separated")
            if item.strip() not in out:
                out.append(item.strip())
    return out


def _number(flag: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise WorkbenchError(f"{flag}: must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise WorkbenchError(f"{flag}: must be a finite number, got {text!r}")
    return value
