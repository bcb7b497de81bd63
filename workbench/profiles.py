"""Device profiles and their latency lookup tables (LUTs), stored as data in ``hw_profiles/<name>/``.

``profile.yaml`` holds the device facts (class, runtime, clock, SRAM/flash capacity and what lies
outside the runtime's arena and code, supported precisions) and a ``memory:`` section describing the
runtime build for the TFLite Micro memory model (:func:`workbench.memory.parse_runtime`; without it,
the per-layer rule with ``per_layer_flash_bytes``); ``lut.csv`` holds one row per
fused-op configuration: its key (see :attr:`workbench.ops.Op.key`), features used for
interpolation (MACs, bytes moved), latency mean/std/count in milliseconds, and where the number
came from (``measured``, ``modeled`` or ``imported``) with a reference.

Ops missing from a LUT are scored by a per-(op kind, precision) linear model fitted on the LUT's own
entries (latency ~ a·MACs + b·bytes + c, non-negative least squares), falling back to one fit per
precision; the estimate counts how many ops were interpolated. A *modeled* profile (every LUT row
``modeled``, ``latency_model:`` named) computes a missing op from its latency model instead — exactly
what its LUT row would hold — and does not count it as interpolated.
"""
from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import WorkbenchError
from .memo import BoundedMemo
from .memory import parse_runtime
from .ops import OP_KINDS, PRECISIONS, Op
from .safeio import bounded_lines, check_file_size
from .yamlio import Fields, check_number, load_yaml_mapping

ROOT = Path(__file__).resolve().parent.parent
PROFILES_DIR = ROOT / "hw_profiles"

DEVICE_CLASSES = ("mcu", "cpu", "accelerator")
SOURCES = ("measured", "modeled", "imported")
MAX_LUT_BYTES = 32 << 20  # the shipped LUTs are 0.4-0.7 MB
MAX_LUT_ROWS = 100_000  # the shipped spaces produce < 3,000 distinct ops per device
MAX_LUT_LINE = 2048  # characters per line (shipped: < 400)
OUTSIDE_FILES_ENV = "WORKBENCH_PROFILE_FILES_ANYWHERE"  # "1": a profile may name files outside its folder
LUT_COLUMNS = ("key", "kind", "prec", "macs", "bytes", "mean_ms", "std_ms", "count", "source", "reference")


@dataclass(frozen=True)
class LutEntry:
    key: str
    kind: str
    prec: str
    macs: int
    bytes: int
    mean_ms: float
    std_ms: float
    count: int
    source: str
    reference: str


@dataclass
class LatencyLUT:
    """Op key → latency, plus the fitted interpolation model for keys it lacks.

    ``model``: on a modeled profile (its LUT generated from ``latency_model.yaml``), the
    :class:`~workbench.latency_model.ModeledLatency` that computes a missing op exactly from the same
    constants — such an op is not interpolated. Measured LUTs have none and interpolate."""

    path: str
    entries: dict[str, LutEntry]
    mean_ms: dict[str, float] = field(init=False)
    model: object = None

    def __post_init__(self):
        self.mean_ms = {k: e.mean_ms for k, e in self.entries.items()}

    @cached_property
    def entries_sha256(self) -> str:
        """Order-free hash of the entries (:func:`workbench.fingerprint.lut_sha256`), once per loaded LUT: a
        study's fingerprint and every trust line of a measured profile ask for it."""
        from .fingerprint import lut_sha256

        return lut_sha256(self)

    @cached_property
    def _fits(self) -> dict[tuple[str, str], np.ndarray]:
        """Coefficients (per MAC, per byte, constant) per (kind, precision) and per precision ('*')."""
        groups: dict[tuple[str, str], list[LutEntry]] = {}
        for e in self.entries.values():
            groups.setdefault((e.kind, e.prec), []).append(e)
            groups.setdefault(("*", e.prec), []).append(e)
        return {g: _nnls_fit(rows) for g, rows in groups.items() if len(rows) >= 3}

    def predict(self, op: Op) -> float:
        """Interpolated latency (ms) of an op the table lacks."""
        coef = self._fits.get((op.kind, op.precision))
        if coef is None:
            coef = self._fits.get(("*", op.precision))
        if coef is None:
            raise WorkbenchError(f"no {op.precision} entries to interpolate {op.key}", where=self.path)
        return float(coef[0] * op.macs + coef[1] * op.io_bytes + coef[2])

    def latency(self, op: Op, key: str | None = None) -> tuple[float, bool]:
        """(ms, interpolated?) of one op: its entry; else, on a modeled profile, its latency model's
        value (exact, not interpolated); else the fitted interpolation."""
        ms = self.mean_ms.get(op.key if key is None else key)
        if ms is None and self.model is not None:
            ms = self.model.ms(op)
        return (ms, False) if ms is not None else (self.predict(op), True)

    def precisions(self) -> set[str]:
        return {e.prec for e in self.entries.values()}


def _nnls_fit(rows: list[LutEntry]) -> np.ndarray:
    from scipy.optimize import nnls

    a = np.array([[r.macs / 1e6, r.bytes / 1e6, 1.0] for r in rows])
    b = np.array([r.mean_ms for r in rows])
    coef, _ = nnls(a, b)
    return coef * np.array([1e-6, 1e-6, 1.0])


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
    lut: LatencyLUT
    per_inference_ms: float = 0.0  # fixed cost of one inference call (runtime dispatch), paid once per model
    memory: object = None  # workbench.memory.Runtime (the TFLM arena/flash model); None: the per-layer rule
    measured_on: dict | None = None  # host profiles: {cpu, cores, runtime} the LUT was measured on (workbench.machine)

    @property
    def sram_budget_bytes(self) -> int:
        """SRAM left for activations once the runtime (arena overhead, stack) takes its share."""
        return self.sram_bytes - self.reserved_sram_bytes

    @property
    def flash_budget_bytes(self) -> int:
        """Flash left for the model once the runtime's code is in."""
        return self.flash_bytes - self.reserved_flash_bytes

    def one_line(self) -> str:
        sources = sorted({e.source for e in self.lut.entries.values()})
        return (f"{self.name:<18} {self.device_class:<4} {self.runtime:<28} {self.clock_mhz:>6g} MHz  "
                f"SRAM {_size(self.sram_bytes):>7}  flash {_size(self.flash_bytes):>7}  "
                f"{'/'.join(self.precisions):<15} LUT {len(self.lut.entries)} ops ({'/'.join(sources)})")


def _size(n_bytes: int) -> str:
    for unit, scale in (("GB", 1024 ** 3), ("MB", 1024 ** 2)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.4g} {unit}"
    return f"{n_bytes / 1024:g} KB"


def list_profiles() -> list[Path]:
    return sorted(p.parent for p in PROFILES_DIR.glob("*/profile.yaml"))


class ProfileCache:
    """Loaded profiles by path, each kept with a stamp of the files it was read from.

    A profile is reused while the files it reads (``profile.yaml``, its LUT, a modeled profile's
    ``latency_model.yaml``) keep their size, modification time and inode: editing one (by hand,
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
    """(size, mtime ns, inode) of every file the profile reads (profile.yaml, the LUT, and a modeled profile's
    latency_model.yaml, which its LUT's :class:`~workbench.latency_model.ModeledLatency` reads); None when one
    is gone."""
    files = [profile.path, profile.lut.path]
    if profile.lut.model is not None:
        files.append(profile.lut.model.path)
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
    """Load a shipped profile by name (``stm32f746``) or a profile directory / profile.yaml by path.

    Loaded once and reused until its files change (:class:`ProfileCache`). ``notify``: a measured profile
    chosen on a machine other than its own says so, once per process (:mod:`workbench.machine`); listings
    of every profile load them quietly."""
    path = Path(name_or_path)
    if path.is_dir():
        path = path / "profile.yaml"
    elif path.suffix not in (".yaml", ".yml"):
        path = PROFILES_DIR / str(name_or_path) / "profile.yaml"
        if not path.is_file():
            known = ", ".join(p.name for p in list_profiles())
            raise WorkbenchError(f"unknown device {str(name_or_path)!r} (shipped: {known}; or give a profile directory)")
    profile = _CACHE.load(path)
    key = str(path.resolve())
    if notify and key not in _NOTIFIED:
        from .machine import warn_if_other_machine

        _NOTIFIED.add(key)
        warn_if_other_machine(profile)
    return profile


def all_profiles() -> list[DeviceProfile]:
    return [load_profile(p, notify=False) for p in list_profiles()]


def profiles_with(*extra) -> dict[str, DeviceProfile]:
    """Every shipped profile by name, plus ``extra`` ones (profiles, names or folders) that win on a clash:
    a user's own profile is scored next to the shipped ones."""
    found = {p.name: p for p in all_profiles()}
    for profile in extra:
        profile = profile if isinstance(profile, DeviceProfile) else load_profile(profile)
        found[profile.name] = profile
    return found


def parse_profile(data: dict, path: Path, *, with_lut: bool = True) -> DeviceProfile:
    """Validate a profile.yaml; ``with_lut=False`` skips the LUT (used when generating it)."""
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
    lut_name = f.str("lut", "lut.csv")
    lut_path = profile_file(path, lut_name, "lut")
    model_path = None
    if f.has("latency_model"):  # documented constants of a modeled LUT, read by workbench.latency_model
        model_path = profile_file(path, f.str("latency_model"), "latency_model")
    measured_on = _measured_on(f.sub("measured_on")) if f.has("measured_on") else None
    f.reject_unknown()
    if not with_lut:
        return DeviceProfile(name, str(path), description, device_class, runtime, clock, sram, flash, res_sram,
                             res_flash, per_layer, precisions, LatencyLUT(str(lut_path), {}),
                             per_inference, memory, measured_on)
    lut = load_lut(lut_path)
    if model_path is not None and lut.entries and all(e.source == "modeled" for e in lut.entries.values()):
        from .latency_model import ModeledLatency  # it imports this module

        lut.model = ModeledLatency(model_path, clock)
    missing = set(precisions) - lut.precisions()
    if missing:
        raise WorkbenchError(f"precisions: {sorted(missing)} listed but {lut_name} has no entries for them", where=str(path))
    return DeviceProfile(name, str(path), description, device_class, runtime, clock, sram, flash, res_sram,
                         res_flash, per_layer, precisions, lut, per_inference, memory, measured_on)


def _measured_on(f: Fields) -> dict:
    """``measured_on: {cpu, cores, runtime}`` of a measured host profile (see :mod:`workbench.machine`)."""
    facts = {"cpu": f.str("cpu"), "cores": int(f.number("cores", minimum=1, maximum=1e6, integer=True)),
             "runtime": f.str("runtime")}
    f.reject_unknown()
    return facts


def profile_file(profile_yaml: Path, name: str, field: str) -> Path:
    """A file that ``profile.yaml`` names (``lut:``, ``latency_model:``), kept inside the profile's folder.

    A profile is data someone may have sent you: it must not make the workbench open (and judge,
    and quote) ``/etc/passwd`` or ``../../secrets``. Absolute paths, ``..`` and symbolic links that
    lead out of the folder are refused unless the environment variable
    ``WORKBENCH_PROFILE_FILES_ANYWHERE=1`` says otherwise.
    """
    folder = profile_yaml.parent
    candidate = folder / name
    if os.environ.get(OUTSIDE_FILES_ENV) == "1":
        return candidate
    try:
        inside = candidate.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError, ValueError):  # a symlink loop, an unrepresentable name
        inside = False
    if not inside:
        raise WorkbenchError(f"{field}: {name[:120]!r} leads outside the profile folder {folder} (refused; set "
                             f"{OUTSIDE_FILES_ENV}=1 to allow files elsewhere)", where=str(profile_yaml))
    return candidate


def load_lut(path: Path) -> LatencyLUT:
    """Read and validate ``lut.csv``, streamed: the file size, the line length and the row count are
    capped (:data:`MAX_LUT_BYTES`, :data:`MAX_LUT_LINE`, :data:`MAX_LUT_ROWS`), so a hostile LUT fails
    at the limit instead of filling memory."""
    if not path.is_file():
        raise WorkbenchError("LUT file not found", where=str(path))
    check_file_size(path, MAX_LUT_BYTES, "a LUT")
    entries: dict[str, LutEntry] = {}
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            lines = bounded_lines(fh, str(path), max_line=MAX_LUT_LINE, max_lines=MAX_LUT_ROWS + 1)
            reader = csv.DictReader(lines)
            if reader.fieldnames is None or tuple(reader.fieldnames) != LUT_COLUMNS:
                raise WorkbenchError(f"header must be {','.join(LUT_COLUMNS)}, got {reader.fieldnames}", where=str(path))
            for line, row in enumerate(reader, start=2):
                entry = _parse_lut_row(row, f"{path}:{line}")
                if entry.key in entries:
                    raise WorkbenchError(f"key: duplicate entry {entry.key}", where=f"{path}:{line}")
                entries[entry.key] = entry
    except UnicodeDecodeError as exc:
        raise WorkbenchError(f"not UTF-8 text ({exc.reason})", where=str(path))
    except csv.Error as exc:
        raise WorkbenchError(f"malformed CSV: {exc}", where=str(path))
    if not entries:
        raise WorkbenchError("LUT has no entries", where=str(path))
    return LatencyLUT(str(path), entries)


def _parse_lut_row(row: dict, where: str) -> LutEntry:
    if None in row or any(v is None for v in row.values()):
        raise WorkbenchError("wrong number of columns", where=where)

    def num(col, integer=False, minimum=0.0, exclusive_min=False):
        text = row[col]
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise WorkbenchError(f"{col}: expected {'an integer' if integer else 'a number'}, got {text!r}", where=where)
        return check_number(value, col, where, minimum=minimum, maximum=1e15, integer=integer,
                            exclusive_min=exclusive_min)

    kind, prec, source = row["kind"], row["prec"], row["source"]
    if kind not in OP_KINDS:
        raise WorkbenchError(f"kind: unknown op {kind!r} (known: {', '.join(OP_KINDS)})", where=where)
    if prec not in PRECISIONS:
        raise WorkbenchError(f"prec: unknown precision {prec!r} (known: {', '.join(PRECISIONS)})", where=where)
    if source not in SOURCES:
        raise WorkbenchError(f"source: {source!r} is not one of {', '.join(SOURCES)}", where=where)
    key = row["key"]
    if not key.startswith(kind + "-") or not key.endswith(f"-prec:{prec}"):
        raise WorkbenchError(f"key: {key!r} does not match kind {kind!r} and prec {prec!r}", where=where)
    if not row["reference"].strip():
        raise WorkbenchError("reference: empty (say where the number comes from)", where=where)
    return LutEntry(key, kind, prec, int(num("macs", True)), int(num("bytes", True)),
                    num("mean_ms", minimum=0.0, exclusive_min=True), num("std_ms"), int(num("count", True, 1)),
                    source, row["reference"])


def write_lut(path: Path, rows: list[LutEntry]) -> None:
    """Write a LUT sorted by key, so re-profiling gives a readable diff."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(LUT_COLUMNS)
        for e in sorted(rows, key=lambda e: e.key):
            writer.writerow([e.key, e.kind, e.prec, e.macs, e.bytes, f"{e.mean_ms:.6g}", f"{e.std_ms:.4g}", e.count,
                             e.source, e.reference])


def entry_for(op: Op, mean_ms: float, std_ms: float, count: int, source: str, reference: str) -> LutEntry:
    return LutEntry(op.key, op.kind, op.precision, op.macs, op.io_bytes, mean_ms, std_ms, count, source, reference)
