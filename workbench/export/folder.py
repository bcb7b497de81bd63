"""What an export folder already holds, and how a new export adds to it: exports never delete each other.

One trial's folder collects every format exported from it, one manifest entry per format. A new export
stages the folder afresh (:mod:`workbench._infra.atomic`): the earlier formats' files are copied in
unchanged, the asked-for formats are written, and the whole is swapped into place only once it is
complete and checked. Re-exporting a format *replaces only that format's files*; it does not keep
versions, because an export of one trial in one format is the same model again (deterministic
retraining, or the same ``--weights``), and a folder with two ``.tflm.tflite`` files would leave the
reader to guess which one the bundle's C array holds. A re-export that crashes leaves the earlier
files in place (the staged folder is dropped); one whose file fails verification keeps it, marked
``"passed": false``, as every export does.

A folder holds one model: an export of another trial or architecture into it is refused before any
work (a separate folder per trial is what the notebooks' export panel uses), and an earlier file whose
bytes no longer match its manifest is refused too, rather than being carried forward with a wrong hash.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from workbench._infra.atomic import MANIFEST
from workbench._infra.errors import WorkbenchError
from workbench.export.manifest import sha256


def earlier_manifest(folder: str | Path) -> dict | None:
    """The manifest of the export already in ``folder``, or None (no folder, no manifest, unreadable)."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict) else None


def outputs_of(entry: dict) -> list[str]:
    """Every path (relative to the folder) one format wrote: its file and, for ``tflm``, the bundle's files."""
    if entry.get("outputs"):
        return [o["path"] for o in entry["outputs"]]
    bundle = entry.get("bundle") or {}
    return [entry["file"], *(f"{bundle['folder']}/{name}" for name in bundle.get("files", []))]


def file_records(folder: Path, paths: list[str]) -> list[dict]:
    """Size and SHA-256 of each of ``paths`` under ``folder``, for a manifest entry's ``outputs``."""
    return [{"path": p, "bytes": (folder / p).stat().st_size, "sha256": sha256(folder / p)} for p in paths]


def kept_entries(folder: Path, formats: list[str], arch, context: dict | None) -> dict[str, dict]:
    """The earlier entries this export keeps (every format not asked for again), checked before any work:
    same model, every file present and byte-identical to its record."""
    earlier = earlier_manifest(folder)
    if earlier is None:
        return {}
    _check_same_model(earlier, arch, context or {}, folder)
    kept = {name: entry for name, entry in earlier["files"].items() if name not in formats}
    for name, entry in kept.items():
        if not entry.get("outputs"):  # a manifest written before entries listed their files
            entry["outputs"] = file_records(folder, [p for p in outputs_of(entry) if (folder / p).is_file()])
        for out in entry["outputs"]:
            path = folder / out["path"]
            if not path.is_file() or sha256(path) != out["sha256"]:
                raise WorkbenchError(f"--out: {out['path']} ({name}) is missing or changed since it was exported; "
                                     f"move the folder aside or export {name} again", where=str(folder))
    return kept


def _check_same_model(earlier: dict, arch, context: dict, folder: Path) -> None:
    same_arch = earlier.get("architecture") == json.loads(json.dumps(arch.to_dict(), default=list))
    same_trial = all(earlier.get(k) == context.get(k) for k in ("study", "trial") if k in context)
    if not (same_arch and same_trial):
        held = (f"study {earlier.get('study')!r} trial {earlier.get('trial')}" if "trial" in earlier
                else f"a model {earlier.get('summary', '?')}")
        raise WorkbenchError(f"--out: the folder holds an export of {held} ({', '.join(earlier['files'])}); "
                             f"give another folder for another model", where=str(folder))


def carry(folder: Path, stage: Path, kept: dict[str, dict]) -> None:
    """Copy the kept formats' files from ``folder`` into the staging folder, unchanged."""
    for entry in kept.values():
        for out in entry["outputs"]:
            target = stage / out["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(folder / out["path"], target)


def describe(folder: str | Path, formats: list[str] | None = None) -> str:
    """One line: what the folder already holds and what exporting ``formats`` does to it ('' if empty)."""
    earlier = earlier_manifest(folder)
    if not earlier or not earlier["files"]:
        return ""
    held = ", ".join(f"{name} ({entry['file']}{', bundle ' + entry['bundle']['folder'] if entry.get('bundle') else ''})"
                     for name, entry in earlier["files"].items())
    again = [f for f in formats or [] if f in earlier["files"]]
    tail = (f"; exporting {', '.join(again)} again replaces only {'that format' if len(again) == 1 else 'those formats'}'s "
            f"files" if again else "; a new export adds to them")
    return f"the folder already holds {held}{tail}"
