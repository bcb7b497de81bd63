"""Device profiles, stored as data in ``hw_profiles/<name>/`` (shipped with the package, or the user's own in the
user folder, which wins on a name: :mod:`workbench._infra.places`).

``profile.yaml`` holds the device facts (class, runtime, clock, SRAM/flash capacity and what lies
outside the runtime's arena and code, supported precisions), a ``memory:`` section describing the
runtime build for the TFLite Micro memory model (:func:`workbench.hardware.memory.parse_runtime`; without it,
the per-layer rule with ``per_layer_flash_bytes``), and where its latency comes from: a
:class:`~workbench.hardware.latency.LatencySource` of the kind ``latency_source:`` names or its fields imply
(:mod:`workbench.hardware.latency`; the shipped profiles: a per-op ``lut.csv``, measured or generated from
``latency_model.yaml``). Everything that needs a latency asks ``profile.latency``.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from workbench._infra import places
from workbench._infra.errors import WorkbenchError
from workbench._infra.memo import BoundedMemo
from workbench._infra.yamlio import Fields, load_yaml_mapping
from workbench.hardware.latency import LatencySource, SourceContext, source_kind
from workbench.hardware.latency_model import build_modeled_lut
from workbench.hardware.locations import PROFILES_DIR  # noqa: F401  (re-exported: the shipped profiles)
from workbench.hardware.machine import warn_if_other_machine
from workbench.hardware.memory import parse_runtime
from workbench.model.ops import PRECISIONS
from workbench.model.space import all_spaces, enumerate_ops

DEVICE_CLASSES = ("mcu", "cpu", "accelerator")


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    path: str
    description: str
    device_class: str
    runtime: str
    clock_mhz: float
    sram_bytes: int
    flash_bytes: int
    reserved_sram_bytes: int
    reserved_flash_bytes: int
    per_layer_flash_bytes: int
    precisions: tuple[str, ...]
    latency: LatencySource | None  # None only while its files are being generated (parse_profile with_latency=False)
    per_inference_ms: float = 0.0  # fixed cost of one inference call (runtime dispatch), paid once per model
    memory: object = None  # workbench.hardware.memory.Runtime (the TFLM arena/flash model); None: the per-layer rule
    measured_on: dict | None = None  # host profiles: {cpu, cores, runtime} the LUT was measured on (workbench.hardware.machine)

    @property
    def sram_budget_bytes(self) -> int:
        """SRAM left for activations once the runtime (arena overhead, stack) takes its share."""
        return self.sram_bytes - self.reserved_sram_bytes

    @property
    def flash_budget_bytes(self) -> int:
        """Flash left for the model once the runtime's code is in."""
        return self.flash_bytes - self.reserved_flash_bytes

    def one_line(self) -> str:
        return (f"{self.name:<18} {self.device_class:<4} {self.runtime:<28} {self.clock_mhz:>6g} MHz  "
                f"SRAM {_size(self.sram_bytes):>7}  flash {_size(self.flash_bytes):>7}  "
                f"{'/'.join(self.precisions):<15} {self.latency.summary()}")


def _size(n_bytes: int) -> str:
    for unit, scale in (("GB", 1024 ** 3), ("MB", 1024 ** 2)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.4g} {unit}"
    return f"{n_bytes / 1024:g} KB"


def list_profiles() -> list[Path]:
    """The folder of every profile known by name: the user's own, then the shipped ones theirs do not shadow;
    sorted by name."""
    return [e.path for e in places.entries(places.PROFILES)]


def find_profile(name: str) -> Path | None:
    """The folder of the profile called ``name`` (the user's if there is one, else the shipped one), or None."""
    return places.find(places.PROFILES, name)


def unknown_device(name) -> WorkbenchError:
    if not str(name).strip():
        return WorkbenchError(f"--device: the device name is empty ({str(name)!r}); give a profile name (see "
                              f"`workbench devices`) or folder")
    known = ", ".join(p.name for p in list_profiles())
    return WorkbenchError(f"unknown device {str(name)!r} (known: {known}; or give a profile folder, or put one in "
                          f"{places.user_dir(places.PROFILES)})")


class ProfileCache:
    """Loaded profiles by path, each kept with a stamp of the files it was read from.

    A profile is reused while the files it reads (``profile.yaml`` and its latency source's: the LUT, a
    modeled profile's ``latency_model.yaml``) keep their size, modification time and inode: editing one (by hand,
    ``workbench calibrate``, ``model-lut``) and loading again — re-running a notebook cell — parses the
    new files. A file modified within :data:`RACY_SECONDS` of being read may
    change again within the file system's timestamp granularity without its stamp changing (the "racy"
    case git handles the same way), so such an entry is re-read on its next use.

    Bounded to ``maxsize`` profiles (least recently used dropped): the six shipped ones, a user's own and
    the copies a calibration writes fit; a profile with its LUT is a few MB in memory."""

    RACY_SECONDS = 2.0

    def __init__(self, maxsize: int = 16):
        self._memo = BoundedMemo(maxsize)

    def load(self, path: Path) -> DeviceProfile:
        """The profile in ``path`` (a ``profile.yaml``), parsed again when its files changed."""
        key = str(path.resolve())
        hit = self._memo.peek(key)
        if hit is not None and _stamp(hit[1]) == hit[0]:
            return hit[1]
        profile = parse_profile(load_yaml_mapping(path), path)
        stamp = _stamp(profile)  # taken after reading: a file changed meanwhile is recent, so not kept
        if stamp is not None and not _racy(stamp, self.RACY_SECONDS):
            self._memo.put(key, (stamp, profile))
        return profile

    def __len__(self) -> int:
        return len(self._memo)

    def clear(self) -> None:
        self._memo.clear()


def _stamp(profile: DeviceProfile) -> tuple | None:
    """(size, mtime ns, inode) of every file the profile reads (profile.yaml and its latency source's files);
    None when one is gone."""
    files = [profile.path, *profile.latency.files()]
    try:
        return tuple((st.st_size, st.st_mtime_ns, st.st_ino) for st in map(os.stat, files))
    except OSError:
        return None


def _racy(stamp: tuple, seconds: float) -> bool:
    now_ns = time.time_ns()
    return any(now_ns - mtime_ns < seconds * 1e9 for _, mtime_ns, _ in stamp)


_CACHE = ProfileCache()
_NOTIFIED: set[str] = set()  # profiles whose machine check has run in this process


def load_profile(name_or_path: str | Path, *, notify: bool = True) -> DeviceProfile:
    """Load a profile by name (``stm32f746``: the user's own of that name, else the shipped one) or a profile
    directory / profile.yaml by path.

    Loaded once and reused until its files change (:class:`ProfileCache`). ``notify``: a measured profile
    chosen on a machine other than its own says so, once per process (:mod:`workbench.hardware.machine`); listings
    of every profile load them quietly."""
    path = Path(name_or_path)
    if path.is_dir():
        path = path / "profile.yaml"
    elif path.suffix not in (".yaml", ".yml"):
        folder = find_profile(str(name_or_path))
        if folder is None:
            raise unknown_device(name_or_path)
        path = folder / "profile.yaml"
    profile = _CACHE.load(path)
    key = str(path.resolve())
    if notify and key not in _NOTIFIED:
        _NOTIFIED.add(key)
        warn_if_other_machine(profile)
    return profile


def all_profiles() -> list[DeviceProfile]:
    return [load_profile(p, notify=False) for p in list_profiles()]


def profiles_with(*extra) -> dict[str, DeviceProfile]:
    """Every profile known by name (the user folder's and the shipped ones), plus ``extra`` ones (profiles,
    names or folders) that win on a clash: a user's own profile is scored next to the shipped ones."""
    found = {p.name: p for p in all_profiles()}
    for profile in extra:
        profile = profile if isinstance(profile, DeviceProfile) else load_profile(profile)
        found[profile.name] = profile
    return found


def parse_profile(data: dict, path: Path, *, with_latency: bool = True) -> DeviceProfile:
    """Validate a profile.yaml; ``with_latency=False`` checks its latency settings but reads none of the latency
    source's files (the profile's ``latency`` is None): used while generating them."""
    f = Fields(data, str(path))
    name = f.str("name")
    description = f.str("description") if f.has("description") else ""
    device_class = f.str("device_class", choices=DEVICE_CLASSES)
    runtime = f.str("runtime")
    clock = f.number("clock_mhz", minimum=0, maximum=100000, exclusive_min=True)
    sram = int(f.number("sram_kb", minimum=0, maximum=1e9, exclusive_min=True) * 1024)
    flash = int(f.number("flash_kb", minimum=0, maximum=1e9, exclusive_min=True) * 1024)
    res_sram = int(f.number("reserved_sram_kb", 0, maximum=1e9) * 1024)
    res_flash = int(f.number("reserved_flash_kb", 0, maximum=1e9) * 1024)
    if res_sram >= sram:
        raise f.error("must be smaller than sram_kb", "reserved_sram_kb")
    if res_flash >= flash:
        raise f.error("must be smaller than flash_kb", "reserved_flash_kb")
    per_layer = int(f.number("per_layer_flash_bytes", 0, maximum=1e6, integer=True))
    per_inference = f.number("per_inference_ms", 0.0, maximum=1e6)
    memory = parse_runtime(f.sub("memory"), runtime) if f.has("memory") else None
    precisions = f.str_choices("precisions", PRECISIONS)
    kind = source_kind(f)
    latency_settings = kind.read(f, path)
    measured_on = _measured_on(f.sub("measured_on")) if f.has("measured_on") else None
    f.reject_unknown()
    latency = None
    if with_latency:
        latency = kind.load(latency_settings, SourceContext(name, path, clock, precisions, per_inference, measured_on))
        missing = set(precisions) - latency.precisions()
        if missing:
            raise WorkbenchError(f"precisions: {sorted(missing)} listed but {latency.label} has no entries for them",
                                 where=str(path))
    return DeviceProfile(name, str(path), description, device_class, runtime, clock, sram, flash, res_sram,
                         res_flash, per_layer, precisions, latency, per_inference, memory, measured_on)


def _measured_on(f: Fields) -> dict:
    """``measured_on: {cpu, cores, runtime}`` of a measured host profile (see :mod:`workbench.hardware.machine`)."""
    facts = {"cpu": f.str("cpu"), "cores": int(f.number("cores", minimum=1, maximum=1e6, integer=True)),
             "runtime": f.str("runtime")}
    f.reject_unknown()
    return facts


def model_profile(profile_dir: Path, spaces=None) -> tuple[Path, int]:
    """Regenerate a modeled profile's LUT for every op the spaces (shipped and the user's) can produce."""
    places.refuse_installed(profile_dir, "model-lut")
    profile_path = Path(profile_dir) / "profile.yaml"
    profile = parse_profile(load_yaml_mapping(profile_path), profile_path, with_latency=False)
    ops = enumerate_ops(spaces if spaces is not None else all_spaces(), profile.precisions)
    return build_modeled_lut(Path(profile_dir), ops, profile.clock_mhz, profile.precisions), len(ops)
