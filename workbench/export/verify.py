"""Verification of an exported file: run it in its own runtime and judge it against PyTorch.

Every written file runs on the whole held-out test set: its top-1 accuracy next to its PyTorch
reference's, top-1 agreement with the reference and the max-abs logit difference (dequantised
logits for int8 files). The reference depends on the file:

* fp32 files are compared with the deployable fp32 model and pass with agreement ≥ 99.9 % and
  max-abs ≤ 1e-4 (the same float network in another runtime).
* INT8 files are compared with the trained model **as the search scored it** — fake-quantised
  per its policy, the accuracy the trial stored — not with the fp32 model. An INT8 file claims to
  be that quantised model; judging it against fp32 charges it the policy's own quantisation loss,
  which the search already paid and which moves with the CPU's float paths (the test's vision model
  with a 4-bit stage: 1.4 points below fp32 on an AMD EPYC, within 2 points on the Intel Xeon CI
  used — the limit this check once failed on). What is left is each converter's own activation
  calibration and integer kernels. ``python benchmarks/bench_int8_reference.py`` on an AMD EPYC (six
  vision models — PTQ and QAT, one to three 4-bit stages or all 8-bit — 360 test samples, ONNX and
  TFLite each): every file was 0 to 0.56 points (0–2 samples) below its scored model, while the same
  files were between 1.67 points above and 1.39 points below the fp32 model. The limit — at most
  :data:`INT8_MAX_DROP` = 2 points below the scored model, or one test sample where the test set
  has < 50 samples (one sample is then worth more than 2 points) — is 3.5 times the largest loss
  seen. The fp32 accuracy is recorded beside it (``pytorch_fp32_accuracy``).

Full-INT8 TFLite files are also run in TensorFlow Lite Micro (:mod:`workbench.export.formats.tflm_check`).
Each file's single-thread latency is measured with :mod:`workbench._infra.timing`'s statistic.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from workbench.export.formats import Format
from workbench.export.formats.tflm_check import tflm_check

FP32_MIN_AGREEMENT = 0.999
FP32_MAX_ABS = 1e-4
INT8_MAX_DROP = 0.02
SMALL_TEST_SET = 50  # below this many samples one sample is worth more than INT8_MAX_DROP
LATENCY_WARMUP = 20
LATENCY_REPEATS = 200


@dataclass(frozen=True)
class Reference:
    """A PyTorch model's test-set logits and top-1 accuracy, and what the model is."""

    logits: np.ndarray
    accuracy: float
    description: str


def reference_logits(model: nn.Module, x_test: np.ndarray, y_test: np.ndarray) -> tuple[np.ndarray, float]:
    """(logits, top-1 accuracy) of ``model`` in eval mode: the deployable fp32 model, or the trained
    model with its frozen fake quantisers — the model as the search scored it."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(torch.from_numpy(x_test)).numpy()
    finally:
        model.train(was_training)
    return logits, float((logits.argmax(1) == y_test).mean())


def references(deploy: nn.Module, scored: nn.Module, x_test: np.ndarray, y_test: np.ndarray) -> dict[bool, Reference]:
    """The reference of fp32 files (``False``: the deployable model) and of quantised ones (``True``:
    the trained model as the search scored it)."""
    return {False: Reference(*reference_logits(deploy, x_test, y_test), "pytorch fp32 (deployable model)"),
            True: Reference(*reference_logits(scored, x_test, y_test),
                            "pytorch fake-quantised, as the search scored it")}


def int8_allowed_drop(n_test: int) -> float:
    """How far below its scored model an INT8 file may fall on a test set of ``n_test`` samples."""
    return max(INT8_MAX_DROP, 1.0 / n_test) if n_test < SMALL_TEST_SET else INT8_MAX_DROP


def verify(runner, fmt: Format, x_test: np.ndarray, y_test: np.ndarray, ref: np.ndarray, ref_acc: float) -> dict:
    """Run the file on the test set and judge it against the PyTorch reference logits ``ref``."""
    logits = np.asarray(runner.predict(x_test), dtype=np.float32)
    pred = logits.argmax(1)
    acc = float((pred == y_test).mean())
    agree = float((pred == ref.argmax(1)).mean())
    max_abs = float(np.abs(logits - ref).max())
    out = {"samples": int(len(y_test)), "accuracy": acc, "pytorch_accuracy": ref_acc, "agreement": agree,
           "max_abs_logit_diff": max_abs}
    if fmt.quantized:
        out["max_accuracy_drop"] = allowed = int8_allowed_drop(len(y_test))
        out["passed"] = bool(ref_acc - acc <= allowed + 1e-12)
    else:
        out["min_agreement"], out["max_abs_limit"] = FP32_MIN_AGREEMENT, FP32_MAX_ABS
        out["passed"] = bool(agree >= FP32_MIN_AGREEMENT and max_abs <= FP32_MAX_ABS)
    return out


def check_file(fmt: Format, path: Path, x_test: np.ndarray, y_test: np.ndarray, refs: dict[bool, Reference],
               arch, repeats: int = LATENCY_REPEATS) -> dict:
    """Everything the manifest says about how ``path`` ran: interface, runtime, verification, measured
    latency and, for full-INT8 TFLite, the TensorFlow Lite Micro run (``tflm``, ``warnings``)."""
    runner = fmt.open(path)
    ref = refs[fmt.quantized]
    verification = verify(runner, fmt, x_test, y_test, ref.logits, ref.accuracy)
    verification["reference"] = ref.description
    if fmt.quantized:
        verification["pytorch_fp32_accuracy"] = refs[False].accuracy
    out = {"interface": runner.interface, "runtime": runner.runtime, "verification": verification,
           "passed": verification["passed"],
           "latency_ms_measured": runner.latency(x_test[:1], LATENCY_WARMUP, repeats).to_dict()}
    if fmt.tflm:  # full-INT8 TFLite: run it in TFLite Micro, hold the memory model to it
        out["tflm"], out["warnings"] = tflm_check(path, runner, x_test, arch)
    return out


def thresholds() -> dict:
    """The limits above, for the manifest."""
    return {"fp32_min_agreement": FP32_MIN_AGREEMENT, "fp32_max_abs_logit_diff": FP32_MAX_ABS,
            "int8_max_accuracy_drop": INT8_MAX_DROP,
            "int8_reference": "pytorch fake-quantised model, as the search scored it",
            "int8_small_test_set_rule": f"one test sample when the test set has < {SMALL_TEST_SET} samples"}
