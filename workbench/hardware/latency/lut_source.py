"""The per-op LUT source: a profile's ``lut.csv`` measured on a machine (``workbench profile``) or imported, one
row per fused op and precision. An op the table lacks is interpolated from the table's own rows
(:meth:`~workbench.hardware.lut.LatencyLUT.predict`) and counted as such.

Its trust statement says where the rows were timed (``profile.yaml`` ``measured_on``) and what the whole-model
checks in ``calibration.json`` found (``benchmarks/bench_fidelity.py --record``, ``workbench calibrate --quick``).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from workbench._infra.errors import WorkbenchError
from workbench._infra.yamlio import Fields
from workbench.hardware.latency.source import PerOpSource, SourceContext
from workbench.hardware.locations import profile_file
from workbench.hardware.lut import LatencyLUT, load_lut
from workbench.hardware.machine import QUICK_REFRESH, differences
from workbench.hardware.trust import LatencyTrust
from workbench.model.ops import Op
from workbench.model.space import enumerate_ops

MIN_ENTRIES_TO_INTERPOLATE = 3  # per precision: fewer rows fit no interpolation


class LutSource(PerOpSource):
    """A measured or imported ``lut.csv``: its row, else the interpolation fitted on its other rows."""

    def __init__(self, context: SourceContext, lut: LatencyLUT, lut_name: str):
        super().__init__(context)
        self.lut, self.label = lut, lut_name
        self._mean_ms = lut.mean_ms

    @classmethod
    def read_settings(cls, f: Fields, profile_yaml: Path) -> dict:
        lut_name = f.str("lut", "lut.csv")
        return {"lut_name": lut_name, "lut": profile_file(profile_yaml, lut_name, "lut")}

    @classmethod
    def load(cls, settings: dict, context: SourceContext) -> "LutSource":
        return cls(context, load_lut(settings["lut"]), settings["lut_name"])

    def op_latency(self, op: Op, key: str | None = None) -> tuple[float, bool]:
        ms = self._mean_ms.get(op.key if key is None else key)
        return (ms, False) if ms is not None else self._unlisted(op)

    def _unlisted(self, op: Op) -> tuple[float, bool]:
        """(ms, interpolated?) of an op the table has no row for."""
        return self.lut.predict(op), True

    def precisions(self) -> set[str]:
        return self.lut.precisions()

    def check_covers(self, space) -> None:
        """An op the table lacks is interpolated, which takes :data:`MIN_ENTRIES_TO_INTERPOLATE` rows of its
        precision: at a thinner precision every op the space can produce needs its own row."""
        counts = Counter(e.prec for e in self.lut.entries.values())
        thin = [p for p in self.context.precisions if counts[p] < MIN_ENTRIES_TO_INTERPOLATE]
        if not thin:
            return
        for op in enumerate_ops([space], thin):
            if op.key not in self._mean_ms:
                raise WorkbenchError(f"device {self.context.device}: its LUT has {counts[op.precision]} "
                                     f"{op.precision} entries, too few to interpolate {op.key} (which space "
                                     f"{space.name!r} can produce); add entries ({MIN_ENTRIES_TO_INTERPOLATE} or "
                                     f"more per precision) or remove {op.precision} from its precisions",
                                     where=self.lut.path)

    def fingerprint(self) -> dict:
        return {"lut_sha256": self.lut.entries_sha256, "lut_entries": len(self.lut.entries)}

    def describe_change(self, saved: dict) -> str:
        return (f"its latency LUT differs from the study's ({saved.get('lut_entries')} entries then, "
                f"{len(self.lut.entries)} now, content hash {saved.get('lut_sha256', '')[:12]} vs "
                f"{self.lut.entries_sha256[:12]})")

    def trust(self, precision: str) -> LatencyTrust:
        if {e.source for e in self.lut.entries.values() if e.prec == precision} == {"imported"}:
            return LatencyTrust(self.context.device, precision, "imported",
                                f"{precision}: imported LUT entries (their references in lut.csv say from where)",
                                source=self.lut.path)
        return self._measured(precision)

    def files(self) -> tuple[str, ...]:
        return (self.lut.path,)

    def summary(self) -> str:
        sources = sorted({e.source for e in self.lut.entries.values()})
        return f"LUT {len(self.lut.entries)} ops ({'/'.join(sources)})"

    # ---------------------------------------------------------------- trust of measured rows
    def _measured(self, precision: str) -> LatencyTrust:
        context = self.context
        measured_on, folder = context.measured_on, context.folder
        if not measured_on:
            return LatencyTrust(context.device, precision, "measured",
                                f"{precision}: measured per op (the machine is not recorded in profile.yaml)",
                                source=str(context.profile_yaml))
        where = f"{measured_on['cpu']}, {measured_on['cores']} cores, {measured_on['runtime']}"
        check = _whole_model_check(folder / "calibration.json")
        fidelity = _fidelity(folder / "calibration.json", self.lut.entries_sha256, precision)
        if fidelity:  # the direct check: random models, none of them fitted to
            checked = (f"; {fidelity['within_10pct']:.0%} of {fidelity['models']} random whole models within ±10 % "
                       f"(median error {fidelity['median_abs_pct']:g} %; benchmarks/bench_fidelity.py, "
                       f"{fidelity['date']})")
        elif check:
            checked = (f"; whole models timed there: leave-one-out mean {check['mean_abs']:g} %, worst "
                       f"{check['max_abs']:g} % over {check['models']}")
        else:
            checked = ""
        if differences(measured_on):
            text = (f"{precision}: measured per op on another machine ({where}), not on this one: refresh with "
                    f"`{QUICK_REFRESH.format(name=folder.name)}`")
        else:
            text = f"{precision}: measured per op on this machine ({where}){checked}"
        return LatencyTrust(context.device, precision, "measured", text, check["models"] if check else 0,
                            check["mean_abs"] if check else None, check["max_abs"] if check else None,
                            source=str(context.profile_yaml), fidelity=fidelity)


def _fidelity(path: Path, lut_sha256: str, precision: str) -> dict | None:
    """The whole-model check ``benchmarks/bench_fidelity.py --record`` wrote for this LUT at ``precision``;
    None when there is none or the LUT changed since (its entries' hash no longer matches)."""
    try:
        record = json.loads(path.read_text())["fidelity"]
        row = record["precisions"][precision]
        if record["lut_sha256"] != lut_sha256:
            return None
        return {"models": int(row["models"]), "within_10pct": float(row["within_10pct"]),
                "median_abs_pct": float(row["median_abs_pct"]), "date": str(record["date"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _whole_model_check(path: Path) -> dict | None:
    """The leave-one-out summary ``workbench calibrate --quick`` wrote to a measured profile's calibration.json."""
    try:
        whole = json.loads(path.read_text()).get("whole_model", {})
        loo = whole["loo_error_pct"]
        return {"mean_abs": float(loo["mean_abs"]), "max_abs": float(loo["max_abs"]), "models": int(whole["models"])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
