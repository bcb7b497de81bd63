"""What a study was created with, by content — so a resume or a worker never mixes definitions.

Names are not enough: an edited space file still called ``vision``, a profile folder still called
``stm32f746`` with ten times the memory, or another ``.npz`` with the same file stem would otherwise
be accepted into an existing study. A study stores, next to the names:

- ``space``: the SHA-256 of the space's YAML text (the text itself is stored too, for workers);
- ``device``: the profile's limits (memory, reserved shares, memory model, clock, per-inference cost,
  precisions: every field but its name, path and description) and its latency source's own fingerprint
  (a LUT's: the SHA-256 of its entries and their count);
- ``data``: the samples' shape, the class count, the split sizes and the SHA-256 of the arrays.

:func:`differences` names what changed, in words a person can act on.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

FINGERPRINT_ATTR = "fingerprint"
_NOT_LIMITS = ("name", "path", "description", "latency")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def space_fingerprint(space) -> dict:
    return {"sha256": _sha(space.text.encode("utf-8"))}


def device_fingerprint(profile) -> dict:
    """Every field of the profile that decides a trial's costs or feasibility (all but its name, path,
    description and latency source, which fingerprints itself), as JSON values."""
    limits = {f.name: getattr(profile, f.name) for f in dataclasses.fields(profile) if f.name not in _NOT_LIMITS}
    limits = json.loads(json.dumps(limits, default=repr))
    return {"limits": limits, **profile.latency.fingerprint()}


def data_fingerprint(dataset) -> dict:
    h = hashlib.sha256()
    for array in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test):
        array = np.ascontiguousarray(array)
        h.update(f"{array.dtype.str}{array.shape}".encode())
        h.update(array.tobytes())
    return {"shape": list(dataset.shape), "classes": int(dataset.classes), "train": int(len(dataset.x_train)),
            "test": int(len(dataset.x_test)), "sha256": h.hexdigest()}


def fingerprint(space, device, dataset) -> dict:
    return {"space": space_fingerprint(space), "device": device_fingerprint(device), "data": data_fingerprint(dataset)}


def differences(saved: dict, mine: dict, *, device, saved_space_text: str = "", space_text: str = "",
                space_where: str = "the space", data_name: str = "the data") -> list[str]:
    """Human-readable differences between a stored fingerprint and the current one (empty: same content);
    ``device``: the profile ``mine`` was taken from (its latency source words what changed in it)."""
    out = []
    if saved.get("space") != mine["space"]:
        out.append(f"{space_where} differs from the space stored with the study"
                   f"{_first_difference(saved_space_text, space_text)}")
    out += _device_differences(saved.get("device"), mine["device"], device)
    out += _data_differences(saved.get("data"), mine["data"], data_name)
    return out


def _first_difference(old: str, new: str) -> str:
    if not old or not new:
        return ""
    for i, (a, b) in enumerate(zip(old.splitlines(), new.splitlines()), start=1):
        if a != b:
            return f" (line {i}: study has {a.strip()[:60]!r}, file has {b.strip()[:60]!r})"
    diff = len(new.splitlines()) - len(old.splitlines())
    return f" ({abs(diff)} line(s) {'added' if diff > 0 else 'removed'} at the end)" if diff else ""


def _device_differences(saved: dict | None, mine: dict, device) -> list[str]:
    if saved is None or saved == mine:
        return []
    out = [f"device {device.name}: {key} is {_short(saved['limits'].get(key))} in the study, {_short(value)} now"
           for key, value in mine["limits"].items() if saved["limits"].get(key) != value]
    saved_latency = {key: value for key, value in saved.items() if key != "limits"}
    if saved_latency != {key: value for key, value in mine.items() if key != "limits"}:
        out.append(f"device {device.name}: {device.latency.describe_change(saved_latency)}")
    return out


def _short(value, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _data_differences(saved: dict | None, mine: dict, name: str) -> list[str]:
    if saved is None or saved == mine:
        return []
    changed = [f"{key} {saved.get(key)!r} in the study, {mine[key]!r} now"
               for key in ("shape", "classes", "train", "test") if saved.get(key) != mine[key]]
    if changed:
        return [f"data {name}: " + "; ".join(changed)]
    return [f"data {name}: same shape and classes but other samples (content hash {saved.get('sha256', '')[:12]} "
            f"in the study, {mine['sha256'][:12]} now)"]

