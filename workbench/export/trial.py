"""Export a trial's trained model to deployable files, verify each by running it, write a manifest.

``workbench export --study S --trial N|best --format onnx,onnx-int8,tflite,tflite-int8 --out DIR``
and :func:`export_trial` do the same thing; :func:`export_model` is the study-free core (an
architecture, a trained model and a data set) that a notebook inspector can call directly. This
module is the sequence; each step is its own module:

* which trial and its weights — :mod:`workbench.export.trial_source` (retrained under the trial's seed),
  :mod:`workbench.model.weights` (``--weights``);
* what a format can take — :mod:`workbench.export.formats.support` (before anything is trained);
* the deployable model — :func:`workbench.model.quant.deployable_model`: fake quant stripped (float latent
  weights kept), every BatchNorm folded; fp32 formats start from it, quantised formats from
  :func:`workbench.model.quant.on_policy_grid` (the weights the search scored), each format's own quantiser
  calibrated on :data:`CALIBRATION_SAMPLES` real training samples;
* writing — :mod:`workbench.export.formats` (one module per format);
* running and judging each file — :mod:`workbench.export.verify`; the manifest — :mod:`workbench.export.manifest`;
* the folder — :mod:`workbench._infra.atomic` (staged, moved into place once complete and checked) and
  :mod:`workbench.export.folder`: an export adds to the trial's folder (the earlier formats' files are carried
  over unchanged; a format exported again replaces only its own files), and the manifest keeps one entry per
  format, each listing every file it wrote with size and SHA-256.

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
  The file is also run in TensorFlow Lite Micro (:mod:`workbench.export.formats.tflm_check`): arena used,
  agreement with LiteRT, predicted vs measured SRAM and flash under ``"tflm"``; > 5 % → ``warnings``.
* ``tflm`` (asked for by name) — the same full-INT8 file plus a microcontroller bundle
  (:mod:`workbench.export.formats.tflm_bundle`): C array, measured arena size, op resolver, example.

A converter crash becomes a :class:`~workbench._infra.errors.WorkbenchError` naming the format. A file
that fails verification stays on disk but is marked ``"passed": false`` and the result is not ok
(the CLI exits 1).
"""
from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from torch import nn

from workbench._infra.atomic import MANIFEST, check_replaceable, recover, staged_folder
from workbench._infra.errors import WorkbenchError
from workbench._infra.safeio import check_output_folder
from workbench.export.folder import carry, describe, file_records, kept_entries, outputs_of
from workbench.export.formats import FORMAT_NAMES, FORMATS
from workbench.export.formats.support import (  # noqa: F401
    EXPORT_INSTALL,
    check_support,
    parse_formats,
    require_converters,
)
from workbench.export.manifest import build_manifest, sha256, write_manifest
from workbench.export.trial_source import (  # noqa: F401
    TrialSource,
    fit_on_device,
    resolve_trial,
    study_dataset,
    trained_model,
)
from workbench.export.verify import (  # noqa: F401
    INT8_MAX_DROP,
    LATENCY_REPEATS,
    check_file,
    references,
    thresholds,
)
from workbench.model.arch import Architecture
from workbench.model.quant import deployable_model, layer_bits, on_policy_grid  # noqa: F401  (public: tests, benchmarks)
from workbench.model.weights import load_weights, read_state_dict  # noqa: F401  (public: --weights)
from workbench.storages.storage import DEFAULT_STORAGE

CALIBRATION_SAMPLES = 256
CALIBRATION_SEED = 0

Log = Callable[[str], None]


@dataclass
class ExportResult:
    out_dir: Path
    manifest: dict
    manifest_path: Path
    files: dict = field(default_factory=dict)  # format → path, every format the folder holds
    exported: list = field(default_factory=list)  # the formats this export wrote (the others were there before)

    @property
    def ok(self) -> bool:
        """This export's files passed (an earlier format's verdict is its own export's)."""
        return not self.failed

    @property
    def failed(self) -> list[str]:
        return [name for name in self.exported if not self.manifest["files"][name]["passed"]]


def export_trial(study: str, storage: str = DEFAULT_STORAGE, trial: int | str = "best",
                 formats: str | Sequence[str] = FORMAT_NAMES, out_dir: str | Path = "export", *,
                 device: str | None = None, epochs: int | None = None, weights: str | Path | None = None,
                 data: str | None = None, log: Log | None = None, repeats: int = LATENCY_REPEATS) -> ExportResult:
    """Export ``trial`` (number or ``"best"`` on ``device``'s front) of ``study``; see the module doc."""
    formats = parse_formats(formats)
    require_converters(formats)  # before the study is read or anything is trained
    check_output_folder(out_dir)
    check_replaceable(out_dir)  # the folder is staged and swapped whole: only an earlier export may be there
    if weights is not None:
        read_state_dict(Path(weights))  # a hostile or foreign file is refused before the study and data are read
    source = resolve_trial(study, storage, trial, device)
    checked = {f: check_support(source.arch, FORMATS.get(f)) for f in formats}  # fail before training
    dataset = study_dataset(source, data)
    model, training = trained_model(source, dataset, epochs=epochs, weights=weights, log=log)
    context = {"study": study, "storage": source.storage, "trial": source.number, "trial_selector": str(trial),
               "device": source.profile.name, "training": training, "fit": fit_on_device(source, log)}
    return export_model(model, source.arch, dataset, out_dir, formats, name=f"{_safe(study)}-trial{source.number}",
                        profile=source.profile, context=context, log=log, repeats=repeats, _checked=checked)


def export_model(model: nn.Module, arch: Architecture, dataset, out_dir: str | Path,
                 formats: Sequence[str] = FORMAT_NAMES, *, name: str = "model", profile=None,
                 context: dict | None = None, log: Log | None = None, repeats: int = LATENCY_REPEATS,
                 _checked: dict | None = None) -> ExportResult:
    """Write ``formats`` of ``model`` (a trained workbench model of ``arch``) into ``out_dir``,
    verify each file on ``dataset``'s test split and write ``manifest.json``.

    ``context`` is merged into the manifest (study, trial, training record); ``profile`` adds the
    cost estimator's prediction for that device.
    """
    fmts = [FORMATS.get(f) for f in formats]
    require_converters([f.name for f in fmts])
    checked = _checked or {f.name: check_support(arch, f) for f in fmts}
    out_dir = check_output_folder(out_dir)
    recover(out_dir)
    check_replaceable(out_dir)
    kept = kept_entries(out_dir, [f.name for f in fmts], arch, context)  # checked before any work
    log = log or _silent
    if held := describe(out_dir, [f.name for f in fmts]):
        log(held)
    with staged_folder(out_dir) as stage:  # moved into place only once complete and checked (workbench._infra.atomic)
        carry(out_dir, stage, kept)
        manifest = _export_into(stage, model, arch, dataset, fmts, checked, name, profile, context,
                                log, repeats, shown_dir=out_dir, kept=kept)
    written = {fmt: out_dir / entry["file"] for fmt, entry in manifest["files"].items()}
    return ExportResult(out_dir, manifest, out_dir / MANIFEST, written, [f.name for f in fmts])


def _export_into(out_dir: Path, model, arch, dataset, fmts, checked, name, profile, context, log, repeats, *,
                 shown_dir: Path, kept: dict) -> dict:
    """Write, verify and describe every format in ``out_dir`` (the staging folder, already holding the
    ``kept`` formats' files; ``shown_dir`` is where the files will be); the manifest of them all."""
    deploy = deployable_model(model, arch)
    x_train, x_test = (t.numpy() for t in dataset.adapted(arch.input_shape))
    y_test = np.asarray(dataset.y_test)
    calib = calibration_samples(x_train)
    refs = references(deploy, model, x_test, y_test)
    bits = layer_bits(deploy)
    sources = {False: deploy, True: on_policy_grid(deploy, bits)}
    entries = {}
    for fmt in fmts:
        path = out_dir / f"{name}{fmt.suffix}"
        log(f"writing {fmt.name} → {shown_dir / path.name}")
        entry = _write(fmt, sources[fmt.quantized], arch, calib, path, bits, checked[fmt.name])
        entry.update(check_file(fmt, path, x_test, y_test, refs, arch, repeats))
        if fmt.tflm:
            entry.update(fmt.finish(path, arch, entry, profile))  # the MCU bundle, from the verified file
        entry["outputs"] = file_records(out_dir, outputs_of(entry))
        entries[fmt.name] = entry
    reference = {"accuracy": refs[False].accuracy, "model": "fp32, fake quant stripped, BatchNorm folded",
                 "params": sum(p.numel() for p in deploy.parameters()), "scored_accuracy": refs[True].accuracy}
    made = {"exported": _now(), "training": (context or {}).get("training"), "pytorch_reference": reference}
    entries = {n: {**e, **made} for n, e in entries.items()}  # each format says which export made it
    order = [f.name for f in FORMATS.entries()]
    entries = dict(sorted({**kept, **entries}.items(), key=lambda item: order.index(item[0])))
    manifest = build_manifest(arch, dataset, profile, context, reference, len(calib), entries, thresholds())
    write_manifest(out_dir, manifest)
    return manifest


def calibration_samples(x_train: np.ndarray, n: int = CALIBRATION_SAMPLES, seed: int = CALIBRATION_SEED) -> np.ndarray:
    """A fixed random subset of real training samples for the INT8 quantisers' ranges."""
    idx = np.random.default_rng(seed).choice(len(x_train), min(n, len(x_train)), replace=False)
    return np.ascontiguousarray(x_train[np.sort(idx)], dtype=np.float32)


def _write(fmt, source, arch, calib, path: Path, bits, fallbacks) -> dict:
    """Write one file; its manifest entry up to verification."""
    start = time.perf_counter()
    try:
        written = fmt.write(source, arch, calib, path, bits)
    except WorkbenchError:
        raise
    except Exception as exc:  # converters raise anything; the user needs the format and the reason
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise WorkbenchError(f"{fmt.name}: the converter failed on this model ({type(exc).__name__}: {reason})") from exc
    return {"file": path.name, "format": fmt.name, "description": fmt.help, "bytes": path.stat().st_size,
            "sha256": sha256(path), "precision": "int8" if fmt.quantized else "fp32",
            "policy_applied": fmt.quantized and arch.precision != "fp32",
            "export_seconds": round(time.perf_counter() - start, 2),
            "fallbacks": list(fallbacks) + written.fallbacks, **written.notes}


def _silent(message: str) -> None:
    pass


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def trial_folder(base: str | Path, study: str, trial: int) -> Path:
    """Where one trial's export goes: ``<base>/<study>/trial-<n>``, absolute. Two trials or two studies never
    share a folder, so no export replaces another's manifest (the notebooks' export panel uses this)."""
    return (Path(base) / _safe(study) / f"trial-{int(trial)}").absolute()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "study"


def summary_lines(result: ExportResult) -> list[str]:
    """One line per file for the CLI: size, accuracy vs PyTorch, agreement, max|Δ|, latency, verdict."""
    fit = result.manifest.get("fit") or {}
    lines = ([f"warning: trial {result.manifest.get('trial')} does not fit {fit.get('device')}: "
              f"{'; '.join(fit['problems'])}"] if fit.get("problems") else [])
    for name, e in result.manifest["files"].items():
        if name not in result.exported:
            lines.append(f"{name:<12} {e['file']:<34} kept from the export of {e.get('exported', 'an earlier run')}")
            continue
        v = e["verification"]
        reference = "scored" if "pytorch_fp32_accuracy" in v else "pytorch"
        lines.append(f"{name:<12} {e['file']:<34} {e['bytes'] / 1024:8.1f} KB  acc {v['accuracy']:.4f} "
                     f"({reference} {v['pytorch_accuracy']:.4f})  agree {100 * v['agreement']:6.2f}%  "
                     f"max|d| {v['max_abs_logit_diff']:.2e}  {e['latency_ms_measured']['ms']:.4f} ms  "
                     f"{'PASS' if e['passed'] else 'FAIL'}")
        lines += [f"{'':<12} fallback: {fb}" for fb in e["fallbacks"]]
        lines += [f"{'':<12} warning: {w}" for w in e.get("warnings", [])]
    return lines
