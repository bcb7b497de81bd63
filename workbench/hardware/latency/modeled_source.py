"""The modeled source: a LUT generated from ``latency_model.yaml``'s documented constants (``workbench model-lut``),
for devices nobody has measured per op (microcontrollers, edge CPUs).

An op the LUT lacks (a network no shipped space produces, a file given to ``workbench score``) is the same
formula evaluated exactly (:class:`~workbench.hardware.latency_model.ModeledLatency`), not interpolated. Its
trust statement comes from the constants' calibration record: calibrated to whole models timed on the board
(with the leave-one-model-out error), derived from another precision's calibration of the same kernels, or
unchecked.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from workbench._infra.yamlio import Fields, load_yaml_mapping
from workbench.hardware.latency.lut_source import LutSource
from workbench.hardware.latency.source import SourceContext
from workbench.hardware.latency_model import KERNEL_FAMILY, ModeledLatency
from workbench.hardware.locations import profile_file
from workbench.hardware.lut import LatencyLUT, load_lut
from workbench.hardware.trust import LatencyTrust
from workbench.model.ops import Op


class ModeledSource(LutSource):
    """A LUT whose every row is ``modeled``, and the latency model that wrote it."""

    def __init__(self, context: SourceContext, lut: LatencyLUT, lut_name: str, model: ModeledLatency):
        super().__init__(context, lut, lut_name)
        self.model = model

    @classmethod
    def read_settings(cls, f: Fields, profile_yaml: Path) -> dict:
        settings = super().read_settings(f, profile_yaml)
        return {**settings, "latency_model": profile_file(profile_yaml, f.str("latency_model"), "latency_model")}

    @classmethod
    def load(cls, settings: dict, context: SourceContext) -> LutSource:
        """The modeled source; a plain :class:`LutSource` when the LUT holds rows that are not ``modeled``
        (re-measured on the board, imported): those rows are then what the profile rests on."""
        lut = load_lut(settings["lut"])
        if not all(e.source == "modeled" for e in lut.entries.values()):
            return LutSource(context, lut, settings["lut_name"])
        return cls(context, lut, settings["lut_name"], ModeledLatency(settings["latency_model"], context.clock_mhz))

    def check_covers(self, space) -> None:
        """Also reads ``latency_model.yaml`` now: a search checks this before its study is touched, and a broken
        file must fail here, not at the first op the LUT lacks, halfway through the search."""
        self.model.constants()
        super().check_covers(space)

    def _unlisted(self, op: Op) -> tuple[float, bool]:
        ms = self.model.ms(op)
        return (ms, False) if ms is not None else super()._unlisted(op)

    def trust(self, precision: str) -> LatencyTrust:
        device, model_path = self.context.device, Path(self.model.path)
        record = _calibration(str(model_path), _stamp(model_path))
        where = str(model_path)
        if record is None:
            return _unchecked(device, precision, model_path)
        if any(row.get("precision") == precision for row in record["per_model"]):
            return _calibrated(device, precision, record, where)
        family = KERNEL_FAMILY.get(precision)
        fitted = sorted({row.get("precision") for row in record["per_model"]
                         if KERNEL_FAMILY.get(row.get("precision")) == family and row.get("precision")})
        if fitted:
            base = _calibrated(device, fitted[0], record, where)
            return LatencyTrust(device, precision, "derived",
                                f"{precision}: no {precision} measurement; the same kernels' {fitted[0]} calibration "
                                f"applied (expect at least its error: leave-one-out mean {base.loo_mean_pct:g} %, "
                                f"worst {base.loo_max_pct:g} %)", base.models, base.loo_mean_pct, base.loo_max_pct,
                                base.within_25pct, where)
        return _unchecked(device, precision, model_path)

    def files(self) -> tuple[str, ...]:
        return (self.lut.path, str(self.model.path))


def _unchecked(device: str, precision: str, model_path: Path) -> LatencyTrust:
    return LatencyTrust(device, precision, "modeled", f"{precision}: modeled from the documented constants in "
                        f"{model_path.name}; no {precision} whole-model measurement checks them (error unknown)",
                        source=str(model_path))


def _calibrated(device: str, precision: str, record: dict, where: str) -> LatencyTrust:
    """The figures of the record's models at ``precision``. When every model is at that precision, the record's
    own summary (computed from unrounded errors: what `workbench calibrate` printed and the docs show)."""
    rows = [row for row in record["per_model"] if row.get("precision") == precision]
    errors = [abs(float(r["loo_error_pct"])) for r in rows]
    mean, worst = round(sum(errors) / len(errors), 1), round(max(errors), 1)
    within = sum(e <= 25.0 for e in errors)
    if len(rows) == len(record["per_model"]):
        try:
            mean, worst = float(record["loo_error_pct"]["mean_abs"]), float(record["loo_error_pct"]["max_abs"])
            within = int(record["within_25pct_loo"])
        except (TypeError, KeyError, ValueError):
            pass  # an older record without the summary: the per-model rows' figures
    return LatencyTrust(device, precision, "calibrated",
                        f"{precision}: calibrated to {len(rows)} measured model{'s' if len(rows) > 1 else ''}; "
                        f"leave-one-model-out error mean {mean:g} %, worst {worst:g} % ({within} of {len(rows)} "
                        f"within ±25 %)", len(rows), mean, worst, within, where)


def _stamp(path: Path) -> tuple:
    try:
        st = path.stat()
        return st.st_mtime_ns, st.st_size
    except OSError:
        return ()


@lru_cache(maxsize=32)
def _calibration(path: str, _stamp: tuple) -> dict | None:
    """The ``calibration`` block of a latency_model.yaml (cached per file version), or None."""
    try:
        record = load_yaml_mapping(Path(path)).get("calibration")
    except Exception:  # noqa: BLE001 — the profile loaded it already; a trust line never breaks a command
        return None
    if not isinstance(record, dict) or not isinstance(record.get("per_model"), list):
        return None
    rows = [r for r in record["per_model"]
            if isinstance(r, dict) and isinstance(r.get("loo_error_pct"), (int, float))]  # hand edits: skipped
    return {**record, "per_model": rows} if rows else None
