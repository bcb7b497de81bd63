"""Export a trial's trained model to deployable files, verify each by running it, write a manifest.

``workbench export --study S --trial N|best --format onnx,onnx-int8,tflite,tflite-int8 --out DIR``
and :func:`export_trial` do the same thing; :func:`export_model` is the study-free core (an
architecture, a trained model and a data set) that a notebook inspector can call directly.

Weights: a trial stores its architecture and training seed, not its weights. Training is
deterministic under a seed (see :mod:`workbench.train`), so the trial's model is rebuilt by training
again with the study's epochs and the trial's ``train_seed``; the reproduced accuracy is recorded
next to the stored one. ``epochs`` trains longer (a fresh model; no match expected) and
``weights`` loads a saved ``state_dict`` instead (``torch.load(weights_only=True)``).

The deployable model (:func:`deployable_model`) is the trained fp32 network with the
:mod:`workbench.quant` fake-quant modules stripped (the float latent weights are kept) and every
BatchNorm folded into its convolution. Every format starts from it and each format's own
quantiser produces the integers, calibrated on real training samples; it is also the PyTorch
reference every file is compared with.

Formats and how the trial's quantisation policy is honoured (decided per format):

* ``onnx`` — fp32, one self-contained file (opset 21, no external data). A quantised policy is not
  applied here; the manifest says so (``policy_applied: false``).
* ``onnx-int8`` — QDQ: per-channel symmetric weights at the policy's width — int8, and **int4** for
  4-bit stages (opset-21 int4 initializers) — and uint8 per-tensor activations, float I/O.
  Stored widths are read back from the file; any weight stored wider than its policy is a fallback.
  onnxruntime's CPU kernels have no int4 convolution, so int4 layers run as DequantizeLinear → float
  Conv: the file is faithful to the policy but slower on the host than an all-int8 one.
* ``tflite`` — fp32, channel-last I/O (NHWC images, NWC series).
* ``tflite-int8`` — full integer, int8 input and output tensors, channel-last I/O. **Fallback**:
  weights of 4-bit stages are stored as int8, because TFLite's builtin kernels (and TFLite Micro's
  CMSIS-NN ones the MCU profiles model) take int8 filters; each such stage is listed in the file's
  ``fallbacks``. Ops the quantiser leaves in float are listed there as well — never a silent fp32.
  The file is also run in TensorFlow Lite Micro (:mod:`workbench.exporters.tflm_check`): arena used,
  agreement with LiteRT, predicted vs measured SRAM and flash under ``"tflm"``; > 5 % → ``warnings``.
* ``tflm`` (asked for by name) — the same full-INT8 file plus a microcontroller bundle
  (:mod:`workbench.exporters.tflm_bundle`): C array, measured arena size, op resolver, example.

Anything a format cannot represent at all — an op kind its writer has no mapping for, a weight
width it can neither store nor substitute (e.g. 2-bit), activations other than 8 bits — raises a
:class:`~workbench.errors.WorkbenchError` naming the op, its stage and the format, before anything
is trained or written. A converter crash also becomes a ``WorkbenchError`` naming the format.

Verification (every written file, in its own runtime, on the whole held-out test set): top-1
accuracy next to its PyTorch reference's, top-1 agreement with the reference and the max-abs
logit difference (dequantised logits for int8 files). The reference depends on the file:

* fp32 files are compared with the deployable fp32 model and pass with agreement ≥ 99.9 % and
  max-abs ≤ 1e-4 (the same float network in another runtime).
* INT8 files are compared with the trained model **as the search scored it** — fake-quantised
  per its policy, the accuracy the trial stored — not with the fp32 model. An INT8 file claims to
  be that quantised model; judging it against fp32 charges it the policy's own quantisation loss,
  which the search already paid and which moves with the CPU's float paths (the test's vision model
  with a 4-bit stage: 1.4 points below fp32 on an AMD EPYC, within 2 points on the Intel Xeon CI
  used — the limit this check once failed on). Quantised formats are written from
  :func:`on_policy_grid`, the weights the search scored, and ONNX's int4 scale is pinned to the
  same grid (:func:`workbench.exporters.onnx_format.int4_overrides`); what is left is each
  converter's own activation calibration (256 training samples, min/max) and integer kernels.
  ``python benchmarks/bench_int8_reference.py`` on an AMD EPYC (six vision models — PTQ and QAT,
  one to three 4-bit stages or all 8-bit — 360 test samples, ONNX and TFLite each): every file was
  0 to 0.56 points (0–2 samples) below its scored model, while the same files were between 1.67
  points above and 1.39 points below the fp32 model. The limit — at most
  :data:`INT8_MAX_DROP` = 2 points below the scored model, or one test sample where the test set
  has < 50 samples (one sample is then worth more than 2 points) — is 3.5 times the largest loss
  seen. The fp32 accuracy is recorded beside it (``pytorch_fp32_accuracy``).

A failing file stays on disk but is marked ``"passed": false`` and the result is not ok (the CLI
exits 1). Missing optional converters (``.[export]`` extras) are named with the install command
before any work (:func:`require_converters`).
"""
from __future__ import annotations

import copy
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .arch import Architecture
from .atomic import MANIFEST, check_replaceable, staged_folder
from .errors import WorkbenchError
from .exporters import FORMATS, Format, get_format
from .safeio import MAX_WEIGHTS_BYTES, check_file_size, check_output_folder, check_zip_members, one_line

FORMAT_NAMES = tuple(n for n in FORMATS if n != "tflm")  # the default set; the MCU bundle is asked for by name
FP32_MIN_AGREEMENT = 0.999
FP32_MAX_ABS = 1e-4
INT8_MAX_DROP = 0.02
CALIBRATION_SAMPLES = 256
CALIBRATION_SEED = 0
LATENCY_WARMUP = 20
LATENCY_REPEATS = 200
TOOLS = ("torch", "onnx", "onnxruntime", "onnxscript", "litert-torch", "ai-edge-litert", "torchao", "numpy",
         "optuna", "tinyml-workbench")

Log = Callable[[str], None]


# ---------------------------------------------------------------- which trial

@dataclass
class TrialSource:
    """A stored trial and the study settings needed to rebuild it."""

    study: str
    storage: str
    number: int
    arch: Architecture
    attrs: dict
    settings: dict
    profile: object  # DeviceProfile the prediction (and ``best``) refer to


def resolve_trial(study: str, storage: str, trial: int | str = "best", device: str | None = None) -> TrialSource:
    """Load ``trial`` (a number or ``"best"``) of ``study``; ``device`` overrides the target profile."""
    from .front import load_records, pareto_front, study_device
    from .storage import load_study, redact

    st = load_study(study, storage)
    settings = dict(st.user_attrs)
    profile = study_device(settings, device)
    if str(trial) == "best":
        front = pareto_front(load_records(st), profile, settings.get("objectives", ["accuracy", "latency"]),
                             settings.get("latency_budget_ms"))
        if not front:
            raise WorkbenchError(f"--trial best: study {study!r} has no trained trial that fits {profile.name}")
        best = max(front, key=lambda r: (r.accuracy, -r.prediction(profile)["latency_ms"], -r.number))
        number = best.number
    else:
        try:
            number = int(trial)
        except ValueError:
            raise WorkbenchError(f"--trial: expected a trial number or 'best', got {trial!r}") from None
    frozen = next((t for t in st.get_trials(deepcopy=False) if t.number == number), None)
    if frozen is None or "arch" not in frozen.user_attrs:
        raise WorkbenchError(f"--trial: study {study!r} has no trial {number} with an architecture "
                             f"(trials 0..{len(st.trials) - 1})")
    attrs = dict(frozen.user_attrs)
    if "train_seed" not in attrs:
        why = ", ".join(attrs.get("rejected", [])) or f"state {frozen.state.name}"
        raise WorkbenchError(f"--trial: trial {number} of {study!r} was never trained ({why}); pick a trained one")
    return TrialSource(study, redact(storage), number, Architecture.from_dict(attrs["arch"]), attrs, settings,
                       profile)


# ---------------------------------------------------------------- weights

def trained_model(source: TrialSource, dataset, *, epochs: int | None = None, weights: str | Path | None = None,
                  log: Log | None = None) -> tuple[nn.Module, dict]:
    """The trial's trained model and a manifest record of how it was obtained.

    Retraining with the study's epochs and the trial's seed reproduces the search's model (same
    environment and thread count); the record says whether the accuracy matched.
    """
    from .train import evaluate, train_and_evaluate

    arch, stored = source.arch, source.attrs.get("accuracy")
    if weights is not None and epochs is not None:
        raise WorkbenchError("--weights and --epochs exclude each other (weights are loaded, not trained)")
    if weights is not None:
        model = load_weights(arch, weights)
        acc = evaluate(model, arch, dataset)
        return model, {"source": "weights", "weights": str(weights), "accuracy": acc, "stored_accuracy": stored}
    study_epochs = int(source.settings.get("epochs", 3))
    epochs = study_epochs if epochs is None else int(epochs)
    if epochs < 1:
        raise WorkbenchError(f"--epochs: must be >= 1, got {epochs}")
    seed = int(source.attrs["train_seed"])
    (log or _silent)(f"training trial {source.number} ({epochs} epochs, seed {seed}) to rebuild its weights")
    result = train_and_evaluate(arch, dataset, epochs=epochs, seed=seed)
    record = {"source": "retrained", "epochs": epochs, "study_epochs": study_epochs, "seed": seed,
              "accuracy": result.accuracy, "fp32_accuracy": result.fp32_accuracy, "stored_accuracy": stored,
              "stored_fp32_accuracy": source.attrs.get("fp32_accuracy"),
              "train_seconds": round(result.train_seconds, 2)}
    if epochs == study_epochs:
        record["reproduced"] = stored is not None and abs(result.accuracy - stored) < 1e-9
    return result.model, record


def load_weights(arch: Architecture, path: str | Path) -> nn.Module:
    """``build_model(arch)`` with a saved ``state_dict`` (plain or fake-quantised) loaded."""
    from .builder import build_model
    from .quant import freeze, quantize_model

    state = read_state_dict(Path(path))
    model = build_model(arch)
    quantized = any("parametrizations." in k or k.endswith("min_val") for k in state)
    if quantized:
        quantize_model(model, arch, "ptq")
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()
        raise WorkbenchError(f"does not fit trial's architecture: {' '.join(first[:3])[:300]}",
                             where=str(path)) from None
    if quantized:
        freeze(model)  # the saved ranges are the deployed constants: evaluate as deployed
    return model.eval()


def read_state_dict(path: Path) -> dict:
    """A ``state_dict`` file read as tensors only, every failure in one line.

    ``torch.load(weights_only=True)`` refuses pickled code without running it, but says so in a
    paragraph (and may warn about the pickle protocol on stderr): the reason is cut to one line and
    the warning silenced. The file and the sizes its zip members declare are capped first, keys
    must be names and values tensors (a state dict with integer keys is somebody else's file).
    """
    if not path.is_file():
        raise WorkbenchError("weights file does not exist" if not path.exists() else "not a regular file",
                             where=str(path))
    check_file_size(path, MAX_WEIGHTS_BYTES, "a weights file")
    check_zip_members(path, MAX_WEIGHTS_BYTES, "a weights file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors vary
        reason = _unpickling_reason(exc)
        raise WorkbenchError(f"refused: not a plain tensor state dict, nothing in it was run "
                             f"({type(exc).__name__}: {reason[:160]})", where=str(path)) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WorkbenchError(f"expected a state dict, got {type(state).__name__}", where=str(path))
    for key, value in state.items():
        if not isinstance(key, str):
            raise WorkbenchError(f"state dict key {key!r:.40} is not a parameter name (a {type(key).__name__})",
                                 where=str(path))
        if not isinstance(value, torch.Tensor):
            raise WorkbenchError(f"state dict entry {key[:80]!r} is a {type(value).__name__}, not a tensor",
                                 where=str(path))
    return state


def _unpickling_reason(exc: Exception) -> str:
    """The one sentence of torch's weights-only refusal that says what was refused (a global, an opcode)."""
    for line in str(exc).splitlines():
        found = re.search(r"((?:Unsupported|Trying to load unsupported)\b.*?)(?:\. |\.$|$)", line.strip())
        if found:
            return found.group(1)
    return one_line(exc)


def deployable_model(model: nn.Module, arch: Architecture | None = None) -> nn.Module:
    """A new model of ``arch`` as deployed: fake quant stripped (float latent weights kept),
    BatchNorm folded into the preceding convolution, eval mode. Every format is exported from this.

    Built fresh from a plain state dict rather than by deep-copying: a parametrised module's class
    is shared with its copies, so removing the copy's parametrisation would break ``model``.
    """
    from .builder import build_model

    arch = arch or model.arch
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith(".parametrizations.weight.original"):
            state[key[: -len(".parametrizations.weight.original")] + ".weight"] = value
        elif not key.startswith(("input_quant.", "act_quant.")):
            state[key] = value
    fresh = build_model(arch)
    fresh.load_state_dict(state)
    fresh.eval()
    for seq in [m for m in fresh.modules() if isinstance(m, nn.Sequential)]:
        _fold_sequential(seq)
    return fresh


def _fold_sequential(seq: nn.Sequential) -> None:
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    children = list(seq)
    for i in range(len(children) - 1):
        conv, bn = children[i], children[i + 1]
        if isinstance(conv, (nn.Conv1d, nn.Conv2d)) and isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)):
            seq[i] = fuse_conv_bn_eval(conv, bn)
            seq[i + 1] = nn.Identity()
        elif isinstance(conv, nn.Linear) and isinstance(bn, nn.BatchNorm1d):  # linear_relu (MLP layers)
            seq[i] = fuse_linear_bn_eval(conv, bn)
            seq[i + 1] = nn.Identity()


def on_policy_grid(deploy: nn.Module, bits: dict[str, int]) -> nn.Module:
    """A copy of the deployable model whose weights sit on their policy's integer grid — the values
    the search scored (:func:`workbench.quant.fake_quant_weight` of the folded weight, which equals
    folding the scored weight: per-channel symmetric rounding commutes with BatchNorm's per-channel
    scale). Quantised formats start from it, so a converter that stores a 4-bit stage as int8
    (TFLite) keeps the scored weights instead of re-rounding the float latent ones; converters on
    the same grid (int8 everywhere, ONNX int4 via its overrides) store the same codes either way.
    """
    from .quant import fake_quant_weight

    snapped = {key: fake_quant_weight(value, bits[key]) if bits.get(key, 32) < 32 else value
               for key, value in deploy.state_dict().items()}
    twin = copy.deepcopy(deploy)  # a fresh build (see deployable_model): no parametrisations to share
    twin.load_state_dict(snapped)
    return twin.eval()


def layer_bits(model: nn.Module) -> dict[str, int]:
    """State-dict weight name → the policy's weight bits (from each op module's ``op.wbits``)."""
    out = {}
    for i, block in enumerate(getattr(model, "blocks", [])):
        for name, m in block.named_modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                out[f"blocks.{i}.{name}.weight"] = int(block.op.wbits)
    return out


# ---------------------------------------------------------------- what a format can take

def check_support(arch: Architecture, fmt: Format) -> list[str]:
    """Raise for what ``fmt`` cannot represent; return the documented fallbacks it needs."""
    fallbacks: dict[tuple, list[int]] = {}
    substitutes = dict(fmt.weight_fallback)
    for i, op in enumerate(arch.ops):
        where = f"op {i} ({op.kind}{', stage ' + op.stage if op.stage else ''})"
        if op.kind not in fmt.op_kinds:
            raise WorkbenchError(f"{where} cannot be exported to {fmt.name}: its writer has no mapping for "
                                 f"'{op.kind}' (it handles {', '.join(sorted(fmt.op_kinds))})")
        if not fmt.quantized:
            continue
        if op.abits not in (8, 32):
            raise WorkbenchError(f"{where} has {op.abits}-bit activations; {fmt.name} stores 8-bit activations only")
        if op.wbits >= 32 or op.wbits in fmt.weight_bits or not op.spec.has_weights:
            continue
        if op.wbits in substitutes:
            fallbacks.setdefault((op.stage, op.wbits, substitutes[op.wbits]), []).append(i)
            continue
        raise WorkbenchError(f"{where} has {op.wbits}-bit weights, which {fmt.name} cannot store "
                             f"(it stores {'/'.join(str(b) for b in sorted(fmt.weight_bits))}-bit weights)")
    return [f"stage {stage or '-'} (ops {_ranges(ops)}): {w}-bit weights stored as int{s} "
            f"({fmt.family} builtin kernels take int{s} filters)" for (stage, w, s), ops in fallbacks.items()]


def _ranges(ix: list[int]) -> str:
    return f"{ix[0]}-{ix[-1]}" if len(ix) > 1 else str(ix[0])


# ---------------------------------------------------------------- the core

@dataclass
class ExportResult:
    out_dir: Path
    manifest: dict
    manifest_path: Path
    files: dict = field(default_factory=dict)  # format → written path

    @property
    def ok(self) -> bool:
        return self.manifest["ok"]

    @property
    def failed(self) -> list[str]:
        return [name for name, f in self.manifest["files"].items() if not f["passed"]]


def export_model(model: nn.Module, arch: Architecture, dataset, out_dir: str | Path,
                 formats: Sequence[str] = FORMAT_NAMES, *, name: str = "model", profile=None,
                 context: dict | None = None, log: Log | None = None, repeats: int = LATENCY_REPEATS,
                 _checked: dict | None = None) -> ExportResult:
    """Write ``formats`` of ``model`` (a trained workbench model of ``arch``) into ``out_dir``,
    verify each file on ``dataset``'s test split and write ``manifest.json``.

    ``context`` is merged into the manifest (study, trial, training record); ``profile`` adds the
    cost estimator's prediction for that device.
    """
    log = log or _silent
    fmts = [get_format(f) for f in formats]
    require_converters([f.name for f in fmts])
    checked = _checked or {f.name: check_support(arch, f) for f in fmts}
    out_dir = check_output_folder(out_dir)
    check_replaceable(out_dir)
    with staged_folder(out_dir) as stage:  # moved into place only once complete and checked (workbench.atomic)
        manifest = _export_into(stage, model, arch, dataset, fmts, checked, name, profile, context, log, repeats,
                                shown_dir=out_dir)
    written = {fmt: out_dir / entry["file"] for fmt, entry in manifest["files"].items()}
    return ExportResult(out_dir, manifest, out_dir / MANIFEST, written)


def _export_into(out_dir: Path, model, arch, dataset, fmts, checked, name, profile, context, log, repeats, *,
                 shown_dir: Path) -> dict:
    """Write, verify and describe every format in ``out_dir`` (the staging folder; ``shown_dir`` is where
    the files will be); the manifest."""
    deploy = deployable_model(model, arch)
    x_train, x_test = (t.numpy() for t in dataset.adapted(arch.input_shape))
    y_test = np.asarray(dataset.y_test)
    calib = calibration_samples(x_train)
    references = {False: reference_logits(deploy, x_test, y_test), True: reference_logits(model, x_test, y_test)}
    ref_acc = references[False][1]
    bits = layer_bits(deploy)
    sources = {False: deploy, True: on_policy_grid(deploy, bits)}
    entries = {}
    for fmt in fmts:
        path = out_dir / f"{name}{fmt.suffix}"
        log(f"writing {fmt.name} → {shown_dir / path.name}")
        entries[fmt.name] = _export_one(fmt, sources[fmt.quantized], arch, calib, path, bits, checked[fmt.name],
                                        x_test, y_test, references, repeats)
    manifest = _manifest(arch, dataset, profile, context, deploy, ref_acc, len(y_test), len(calib), entries)
    manifest["pytorch_reference"]["scored_accuracy"] = references[True][1]
    manifest["folder_files"] = sorted([*os.listdir(out_dir), MANIFEST])  # what a later export may replace
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n")
    check_manifest(out_dir, manifest)
    return manifest


def check_manifest(folder: Path, manifest: dict) -> None:
    """The manifest describes exactly the folder's files, byte for byte (checked before the folder is
    moved into place: a manifest never describes files that are not its own)."""
    listed = {entry["file"]: entry["sha256"] for entry in manifest["files"].values()}
    present = set(os.listdir(folder))
    if present != set(manifest["folder_files"]) or not set(listed) <= present:
        raise WorkbenchError(f"export folder holds {sorted(present)} but its manifest lists "
                             f"{sorted(manifest['folder_files'])}", where=str(folder))
    for file, digest in listed.items():
        if sha256(folder / file) != digest:
            raise WorkbenchError(f"{file} changed after it was hashed (another process writing here?)", where=str(folder))


def calibration_samples(x_train: np.ndarray, n: int = CALIBRATION_SAMPLES, seed: int = CALIBRATION_SEED) -> np.ndarray:
    """A fixed random subset of real training samples for the INT8 quantisers' ranges."""
    idx = np.random.default_rng(seed).choice(len(x_train), min(n, len(x_train)), replace=False)
    return np.ascontiguousarray(x_train[np.sort(idx)], dtype=np.float32)


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


def _export_one(fmt, deploy, arch, calib, path, bits, fallbacks, x_test, y_test, references, repeats) -> dict:
    start = time.perf_counter()
    try:
        written = fmt.write(deploy, arch, calib, path, bits)
    except WorkbenchError:
        raise
    except Exception as exc:  # converters raise anything; the user needs the format and the reason
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise WorkbenchError(f"{fmt.name}: the converter failed on this model ({type(exc).__name__}: {reason})") from exc
    seconds = time.perf_counter() - start
    runner = fmt.open(path)
    ref, ref_acc = references[fmt.quantized]
    verification = verify(runner, fmt, x_test, y_test, ref, ref_acc)
    if fmt.quantized:
        verification["reference"] = "pytorch fake-quantised, as the search scored it"
        verification["pytorch_fp32_accuracy"] = references[False][1]
    else:
        verification["reference"] = "pytorch fp32 (deployable model)"
    entry = {"file": path.name, "format": fmt.name, "description": fmt.description, "bytes": path.stat().st_size,
             "sha256": sha256(path), "precision": "int8" if fmt.quantized else "fp32",
             "policy_applied": fmt.quantized and arch.precision != "fp32",
             "interface": runner.interface, "runtime": runner.runtime, "export_seconds": round(seconds, 2),
             "verification": verification, "passed": verification["passed"],
             "fallbacks": list(fallbacks) + written.fallbacks, **written.notes}
    entry["latency_ms_measured"] = {"median": round(runner.latency_ms(x_test[:1], LATENCY_WARMUP, repeats), 5),
                                    "repeats": repeats, "threads": 1}
    if fmt.tflm:  # full-INT8 TFLite: run it in TFLite Micro, hold the memory model to it (+ the MCU bundle)
        from .exporters.tflm_check import tflm_check

        entry["tflm"], entry["warnings"] = tflm_check(path, runner, x_test, arch)
        entry.update(fmt.finish(path, arch, entry))
    return entry


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
        allowed = max(INT8_MAX_DROP, 1.0 / len(y_test)) if len(y_test) < 50 else INT8_MAX_DROP
        out["max_accuracy_drop"] = allowed
        out["passed"] = bool(ref_acc - acc <= allowed + 1e-12)
    else:
        out["min_agreement"], out["max_abs_limit"] = FP32_MIN_AGREEMENT, FP32_MAX_ABS
        out["passed"] = bool(agree >= FP32_MIN_AGREEMENT and max_abs <= FP32_MAX_ABS)
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _manifest(arch, dataset, profile, context, deploy, ref_acc, n_test, n_calib, entries) -> dict:
    from .cost import estimate

    manifest = {"workbench_export": 1, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                **(context or {}),
                "architecture": arch.to_dict(), "summary": arch.summary(), "policy": arch.policy,
                "data": {"name": dataset.name, "test_samples": n_test, "calibration_samples": n_calib},
                "pytorch_reference": {"accuracy": ref_acc, "model": "fp32, fake quant stripped, BatchNorm folded",
                                      "params": sum(p.numel() for p in deploy.parameters())}}
    if profile is not None:
        manifest["predicted"] = estimate(arch, profile).to_dict()
    host = _host_profile()
    if host is not None:
        manifest["predicted_host_cpu"] = estimate(arch, host).to_dict()
    manifest["thresholds"] = {"fp32_min_agreement": FP32_MIN_AGREEMENT, "fp32_max_abs_logit_diff": FP32_MAX_ABS,
                              "int8_max_accuracy_drop": INT8_MAX_DROP,
                              "int8_reference": "pytorch fake-quantised model, as the search scored it",
                              "int8_small_test_set_rule": "one test sample when the test set has < 50 samples"}
    manifest["files"] = entries
    manifest["ok"] = all(e["passed"] for e in entries.values())
    manifest["tools"] = tool_versions()
    manifest["host"] = {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                        "system": platform.system()}
    return manifest


def _host_profile():
    """The measured host-cpu profile when one exists (benchmarks compare against its LUT)."""
    from .profiles import load_profile

    try:
        return load_profile("host-cpu")
    except WorkbenchError:
        return None
    except Exception:  # a half-written profile from another tool must not break an export
        return None


def tool_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for dist in TOOLS:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    return str(obj)


def _silent(message: str) -> None:
    pass


# ---------------------------------------------------------------- from a study

def parse_formats(text: str | Sequence[str]) -> list[str]:
    """``"onnx,tflite-int8"`` (or a list) → validated, de-duplicated format names in order."""
    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    if not names:
        raise WorkbenchError(f"--format: give at least one of {', '.join(FORMATS)}")
    for n in names:
        get_format(n)
    return list(dict.fromkeys(names))


EXPORT_INSTALL = 'pip install -e ".[export]"  (from a checkout; else pip install "tinyml-workbench[export]")'


def require_converters(formats: Sequence[str]) -> None:
    """Name the missing optional packages of ``formats`` with the install command, before any work."""
    import importlib.util

    missing = {}
    for name in formats:
        for module in get_format(name).requires:
            if importlib.util.find_spec(module) is None:
                missing.setdefault(module, []).append(name)
    if missing:
        needs = "; ".join(f"{m} (for {', '.join(f)})" for m, f in missing.items())
        raise WorkbenchError(f"--format: missing optional package(s) {needs}: {EXPORT_INSTALL}")


def export_trial(study: str, storage: str = "sqlite:///workbench.db", trial: int | str = "best",
                 formats: str | Sequence[str] = FORMAT_NAMES, out_dir: str | Path = "export", *,
                 device: str | None = None, epochs: int | None = None, weights: str | Path | None = None,
                 data: str | None = None, log: Log | None = None, repeats: int = LATENCY_REPEATS) -> ExportResult:
    """Export ``trial`` (number or ``"best"`` on ``device``'s front) of ``study``; see the module doc."""
    from .data import load_dataset

    formats = parse_formats(formats)
    require_converters(formats)  # before the study is read or anything is trained
    check_output_folder(out_dir)
    check_replaceable(out_dir)  # an export replaces the whole folder: only an earlier export may be there
    if weights is not None:
        read_state_dict(Path(weights))  # a hostile or foreign file is refused before the study and data are read
    source = resolve_trial(study, storage, trial, device)
    checked = {f: check_support(source.arch, get_format(f)) for f in formats}  # fail before training
    data_name = data or source.settings.get("data_source") or source.settings.get("data")
    if not data_name:
        raise WorkbenchError(f"study {study!r} records no data set; give --data")
    try:
        dataset = load_dataset(data_name)
    except WorkbenchError as exc:
        raise WorkbenchError(f"--data: cannot load the study's data set ({exc}); give --data") from None
    model, training = trained_model(source, dataset, epochs=epochs, weights=weights, log=log)
    context = {"study": study, "storage": source.storage, "trial": source.number, "trial_selector": str(trial),
               "device": source.profile.name, "training": training, "fit": fit_on_device(source, log)}
    return export_model(model, source.arch, dataset, out_dir, formats, name=f"{_safe(study)}-trial{source.number}",
                        profile=source.profile, context=context, log=log, repeats=repeats, _checked=checked)


def trial_folder(base: str | Path, study: str, trial: int) -> Path:
    """Where one trial's export goes: ``<base>/<study>/trial-<n>``, absolute. Two trials or two studies never
    share a folder, so no export replaces another's manifest (the notebooks' export panel uses this)."""
    return (Path(base) / _safe(study) / f"trial-{int(trial)}").absolute()


def fit_on_device(source: TrialSource, log: Log | None = None) -> dict:
    """Does the trial fit the device it is exported for (SRAM, flash, kernels, the study's latency budget)?
    The same rule as the fronts and the notebook (``TrialRecord.fit_problems``); a misfit is a warning."""
    from .front import TrialRecord

    record = TrialRecord(source.number, source.arch, source.attrs.get("accuracy"),
                         source.attrs.get("predictions", {}), (), None)
    budget = source.settings.get("latency_budget_ms")
    problems = record.fit_problems(source.profile, budget)
    if problems and log is not None:
        log(f"warning: trial {source.number} does not fit {source.profile.name}: {'; '.join(problems)}")
    return {"device": source.profile.name, "latency_budget_ms": budget, "fits": not problems, "problems": problems}


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "study"


def summary_lines(result: ExportResult) -> list[str]:
    """One line per file for the CLI: size, accuracy vs PyTorch, agreement, max|Δ|, latency, verdict."""
    fit = result.manifest.get("fit") or {}
    lines = ([f"warning: trial {result.manifest.get('trial')} does not fit {fit.get('device')}: "
              f"{'; '.join(fit['problems'])}"] if fit.get("problems") else [])
    for name, e in result.manifest["files"].items():
        v = e["verification"]
        reference = "scored" if "pytorch_fp32_accuracy" in v else "pytorch"
        lines.append(f"{name:<12} {e['file']:<34} {e['bytes'] / 1024:8.1f} KB  acc {v['accuracy']:.4f} "
                     f"({reference} {v['pytorch_accuracy']:.4f})  agree {100 * v['agreement']:6.2f}%  "
                     f"max|d| {v['max_abs_logit_diff']:.2e}  {e['latency_ms_measured']['median']:.4f} ms  "
                     f"{'PASS' if e['passed'] else 'FAIL'}")
        lines += [f"{'':<12} fallback: {fb}" for fb in e["fallbacks"]]
        lines += [f"{'':<12} warning: {w}" for w in e.get("warnings", [])]
    return lines
