"""Which machine this is, and whether a measured host profile belongs to it.

A measured LUT (``workbench profile``) belongs to the CPU it was timed on: the shipped ``host-cpu``
LUT, measured on an Intel Xeon, predicts an AMD EPYC of the same cloud machine kind 2x off. So
``profile.yaml`` records ``measured_on`` (CPU model, core count, runtime version), and loading such a
profile on a different machine emits one :class:`OtherMachineWarning` naming the command that
refreshes it, through the notices channel (:mod:`workbench._infra.notices`): the CLI prints it as one ``notice:``
line on stderr; a notebook shows it as a warning.

Cheap on purpose (reads ``/proc``, no onnxruntime import): every profile load calls it.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

from workbench._infra import places
from workbench._infra.notices import OtherMachineWarning, notify

QUICK_REFRESH = "workbench calibrate {name} --quick"  # ~15 s: whole-model rescale (workbench.calibration.calibrate)
FULL_REFRESH = "workbench profile {out} --force"  # ~1 min on a quiet machine: every op re-measured


def cpu_facts() -> tuple[str, float, int]:
    """(CPU model name, clock MHz, MemTotal kB) from /proc; sensible fallbacks elsewhere."""
    model, mhz, mem_kb = platform.processor() or platform.machine(), 1000.0, 1024 * 1024
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                model = val.strip()
            elif key.strip() == "cpu MHz" and mhz == 1000.0:
                mhz = float(val)
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return model, mhz, mem_kb


def runtime_version() -> str:
    try:
        return f"onnxruntime {importlib.metadata.version('onnxruntime')}"
    except importlib.metadata.PackageNotFoundError:
        return "onnxruntime (not installed)"


def this_machine() -> dict:
    """What ``measured_on`` records: the facts a host LUT depends on."""
    return {"cpu": cpu_facts()[0], "cores": os.cpu_count() or 1, "runtime": runtime_version()}


def differences(measured_on: dict, here: dict | None = None) -> list[str]:
    """Human-readable differences between where a profile was measured and this machine (empty: same)."""
    here = this_machine() if here is None else here
    return [f"{key} {measured_on.get(key)!s} here {here[key]!s}" for key in ("cpu", "cores", "runtime")
            if str(measured_on.get(key)) != str(here[key])]


def mismatch_notice(profile) -> str | None:
    """The one-line notice for a measured profile used on another machine, or None."""
    measured_on = getattr(profile, "measured_on", None)
    if not measured_on:
        return None
    diff = differences(measured_on)
    if not diff:
        return None
    folder = Path(profile.path).parent
    by_name = places.find(places.PROFILES, folder.name)
    named = by_name is not None and by_name.resolve() == folder.resolve()  # a name reaches it: the user's or shipped
    name, out = (folder.name, f"--name {folder.name}") if named else (folder, f"--out {folder}")
    shipped = places.is_shipped(folder, places.PROFILES)  # refreshed in the user's own copy (calibrate, profile)
    into = f" (into your own copy in {places.user_dir(places.PROFILES)})" if shipped else ""
    return (f"device {profile.name!r} was measured on another machine ({'; '.join(diff)}): its latencies "
            f"describe that machine. Refresh{into}: `{QUICK_REFRESH.format(name=name)}` (~15 s) or "
            f"`{FULL_REFRESH.format(out=out)}` (~1 min)")


def warn_if_other_machine(profile) -> None:
    """Emit the notice as an :class:`OtherMachineWarning` (callers load each profile once per process)."""
    notice = mismatch_notice(profile)
    if notice:
        notify(notice, OtherMachineWarning, stacklevel=3)

