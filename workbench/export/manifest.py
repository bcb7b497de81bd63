"""An export folder's ``manifest.json``: what each file is, how it was verified, what it was made from.

The manifest records the architecture and policy, the data, the PyTorch reference, the cost
estimator's predictions (for the export's device and, when a measured ``host-cpu`` profile exists,
for this host), every file's entry (size, SHA-256, verification, measured latency, fallbacks), the
thresholds, the tool versions and the host. A folder collects a trial's formats over several exports
(:mod:`workbench.export.folder`): each entry lists every file it wrote (``outputs``: path, bytes, SHA-256)
and which export made it (``exported``, ``training``, ``pytorch_reference``); the top-level record is the
latest export's. It is checked against the folder before the folder is
moved into place (:func:`check_manifest`): a manifest never describes files that are not its own.
"""
from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

from workbench._infra.atomic import MANIFEST
from workbench._infra.errors import WorkbenchError
from workbench.hardware.cost import estimate
from workbench.hardware.profiles import load_profile
from workbench.hardware.trust import precisions_of, statements

TOOLS = ("torch", "onnx", "onnxruntime", "onnxscript", "litert-torch", "ai-edge-litert", "torchao", "numpy",
         "optuna", "tinyml-workbench")


def build_manifest(arch, dataset, profile, context: dict | None, reference: dict, n_calib: int,
                   entries: dict, thresholds: dict) -> dict:
    """The manifest of one export: ``reference`` is the ``pytorch_reference`` record, ``entries`` the
    files' records by format name."""
    manifest = {"workbench_export": 1,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                **(context or {}),
                "architecture": arch.to_dict(), "summary": arch.summary(), "policy": arch.policy,
                "data": {"name": dataset.name, "test_samples": int(len(dataset.y_test)),
                         "calibration_samples": n_calib},
                "pytorch_reference": reference}
    if profile is not None:
        manifest["predicted"] = {**estimate(arch, profile).to_dict(),
                                 "latency_trust": [t.to_dict() for t in statements(profile, precisions_of([arch]))]}
    host = _host_profile()
    if host is not None:
        manifest["predicted_host_cpu"] = {**estimate(arch, host).to_dict(),
                                          "latency_trust": [t.to_dict() for t in statements(host, precisions_of([arch]))]}
    manifest["thresholds"] = thresholds
    manifest["files"] = entries
    manifest["ok"] = all(e["passed"] for e in entries.values())
    manifest["tools"] = tool_versions()
    manifest["host"] = {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                        "system": platform.system()}
    return manifest


def write_manifest(folder: Path, manifest: dict) -> Path:
    """Record the folder's files in ``manifest``, write it and check it against the folder."""
    manifest["folder_files"] = sorted([*os.listdir(folder), MANIFEST])  # what a later export may replace
    path = folder / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n")
    check_manifest(folder, manifest)
    return path


def check_manifest(folder: Path, manifest: dict) -> None:
    """The manifest describes exactly the folder's files, byte for byte."""
    listed = {entry["file"]: entry["sha256"] for entry in manifest["files"].values()}
    for entry in manifest["files"].values():  # every file of every format, bundles included
        listed.update({out["path"]: out["sha256"] for out in entry.get("outputs", [])})
    present = set(os.listdir(folder))
    if present != set(manifest["folder_files"]) or not {f.split("/")[0] for f in listed} <= present:
        raise WorkbenchError(f"export folder holds {sorted(present)} but its manifest lists "
                             f"{sorted(manifest['folder_files'])}", where=str(folder))
    for file, digest in listed.items():
        if sha256(folder / file) != digest:
            raise WorkbenchError(f"{file} changed after it was hashed (another process writing here?)", where=str(folder))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _host_profile():
    """The measured host-cpu profile when one exists (benchmarks compare against its LUT)."""
    try:
        return load_profile("host-cpu")
    except Exception:  # WorkbenchError, or a half-written profile from another tool: must not break an export
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
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    return str(obj)
