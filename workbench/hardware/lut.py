"""Latency lookup tables (LUTs): a profile's ``lut.csv``, one row per fused op and precision, each row saying
where its number comes from (``measured``, ``modeled`` or ``imported``) and with what reference.

Read streamed and bounded (a LUT is data someone may have sent you), written sorted (a re-profile gives a
readable diff). A key the table lacks is interpolated from the table's own rows (non-negative least squares
on MACs and bytes, per op kind and precision, falling back to one fit per precision) — or, by a modeled
profile's source, computed from its latency model (:mod:`workbench.hardware.latency`).
"""
from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from workbench._infra.errors import WorkbenchError
from workbench._infra.safeio import bounded_lines, check_file_size
from workbench._infra.yamlio import check_number
from workbench.model.ops import OP_KINDS, PRECISIONS, Op

SOURCES = ("measured", "modeled", "imported")
MAX_LUT_BYTES = 32 << 20  # the shipped LUTs are 0.4-0.7 MB
MAX_LUT_ROWS = 100_000  # the shipped spaces produce < 3,000 distinct ops per device
MAX_LUT_LINE = 2048  # characters per line (shipped: < 400)
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
    """Op key → latency, plus the fitted interpolation model for keys it lacks (the per-op sources of
    :mod:`workbench.hardware.latency` decide when to use it)."""

    path: str
    entries: dict[str, LutEntry]
    mean_ms: dict[str, float] = field(init=False)

    def __post_init__(self):
        self.mean_ms = {k: e.mean_ms for k, e in self.entries.items()}

    @cached_property
    def entries_sha256(self) -> str:
        """Order-free hash of the entries (:func:`lut_sha256`), once per loaded LUT: a
        study's fingerprint and every trust line of a measured profile ask for it."""
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

    def precisions(self) -> set[str]:
        return {e.prec for e in self.entries.values()}


def _nnls_fit(rows: list[LutEntry]) -> np.ndarray:
    from scipy.optimize import nnls  # heavy: scipy

    a = np.array([[r.macs / 1e6, r.bytes / 1e6, 1.0] for r in rows])
    b = np.array([r.mean_ms for r in rows])
    coef, _ = nnls(a, b)
    return coef * np.array([1e-6, 1e-6, 1.0])


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


def lut_sha256(lut) -> str:
    """Order-free hash of the LUT's entries (not of the file's bytes: a re-sorted file is the same LUT)."""
    rows = sorted((e.key, e.kind, e.prec, e.macs, e.bytes, repr(float(e.mean_ms))) for e in lut.entries.values())
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()
