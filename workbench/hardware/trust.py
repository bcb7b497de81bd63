"""How far to trust a device's latency numbers: one statement per (profile, precision), read from the files
that produced them — the calibration record of a modeled profile's ``latency_model.yaml``, the machine a
measured LUT was timed on (``profile.yaml`` ``measured_on``) and its whole-model check (``calibration.json``).

Why: "3.7 ms" on a microcontroller profile is a model's output. Whether it came from a fit to nine
published measurements that it reproduces within 10 % when each is left out, from constants nobody has
checked against a board, or from operator timings taken on another CPU, decides how close to a budget a
user can go. Every place that prints a predicted latency (``workbench devices``, the front tables,
``workbench score``, the export manifest, the notebook explorer) says which of these it is, from here.

The kinds (:attr:`LatencyTrust.basis`):

- ``calibrated``: constants fitted to whole-model latencies at this precision; the leave-one-model-out error
  is how far a model *not* in the fit came out (the honest figure for a new architecture);
- ``derived``: no measurement at this precision, but the fitted kernels are the same family (w4a8 runs the
  integer kernels int8 was fitted with): at least the calibrated precision's error;
- ``modeled``: constants from documented sources, no whole-model measurement checks them;
- ``measured``: every LUT entry timed on a machine; trustworthy on that machine, not on another;
- ``imported``: LUT entries copied from elsewhere (their references in ``lut.csv`` say from where).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from workbench.hardware.latency_model import KERNEL_FAMILY
from workbench.hardware.machine import QUICK_REFRESH, differences
from workbench.model.ops import PRECISIONS
from workbench._infra.yamlio import load_yaml_mapping


@dataclass(frozen=True)
class LatencyTrust:
    """What a device's predicted latency at one precision rests on, and how far off it has been."""

    device: str
    precision: str
    basis: str  # calibrated | derived | modeled | measured | imported
    text: str  # one line for people
    models: int = 0  # whole models the basis was checked against
    loo_mean_pct: float | None = None  # leave-one-model-out mean |error|, %
    loo_max_pct: float | None = None
    within_25pct: int | None = None  # of ``models``, left out, within ±25 %
    source: str = ""  # the file that says so
    fidelity: dict | None = None  # measured profile: its recorded whole-model check at this precision
    #                               ({models, within_10pct (a share), median_abs_pct, date}; see _fidelity)

    def to_dict(self) -> dict:
        return asdict(self)


def latency_trust(profile, precision: str) -> LatencyTrust:
    """The statement for ``profile`` (a :class:`~workbench.hardware.profiles.DeviceProfile`) at ``precision``."""
    sources = {e.source for e in profile.lut.entries.values() if e.prec == precision}
    model = getattr(profile.lut, "model", None)
    if model is not None:
        return _modeled(profile.name, precision, Path(model.path))
    if sources == {"imported"}:
        return LatencyTrust(profile.name, precision, "imported",
                            f"{precision}: imported LUT entries (their references in lut.csv say from where)",
                            source=profile.lut.path)
    return _measured(profile, precision)


def statements(profile, precisions=None) -> list[LatencyTrust]:
    """One statement per precision (default: the profile's)."""
    return [latency_trust(profile, p) for p in (precisions or profile.precisions)]


def trust_lines(profile, precisions=None) -> list[str]:
    """One line per precision (default: the profile's), for tables' headers and ``workbench devices``."""
    return [t.text for t in statements(profile, precisions)]


def precisions_of(models) -> list[str]:
    """The precisions the models' ops run at (anything with ``.ops``: architectures, imported files), in the
    usual order: an int8 network with 4-bit stages runs w4a8 ops too, which rest on other constants."""
    found = {op.precision for model in models for op in model.ops}
    return [p for p in PRECISIONS if p in found] + sorted(found - set(PRECISIONS))


def memory_trust(profile) -> str:
    """What a profile's peak SRAM and flash figures rest on, in one line (``workbench devices``)."""
    runtime = profile.memory
    if runtime is None:
        return ("memory: per-layer rule (worst layer's input + output + held residual; weights + quantisation "
                "parameters): an approximation, not a runtime's plan")
    modeled = [f"{runtime.kernels} scratch"] if runtime.kernels != "reference" else []
    modeled += [f"{8 * runtime.pointer_bytes}-bit structs"] if runtime.pointer_bytes != 8 else []
    checked = ("planned as TFLite Micro plans it (checked against its 64-bit host build, reference kernels, at "
               f"every tflite-int8 export{'; ' + ' and '.join(modeled) + ' modeled' if modeled else ''})")
    code = ("+ runtime code (estimate, profile.yaml memory.source)" if runtime.code_base_bytes or runtime.code_bytes
            else "(runtime code not counted: an installed library)")
    other = "" if profile.runtime.startswith("TFLM") else f"; TFLite Micro's figures ({profile.runtime} allocates its own way)"
    return f"memory: peak SRAM = the int8 graph's arena, {checked}; flash = the .tflite file {code}{other}"


def _modeled(device: str, precision: str, model_path: Path) -> LatencyTrust:
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


def _unchecked(device: str, precision: str, model_path: Path) -> LatencyTrust:
    return LatencyTrust(device, precision, "modeled", f"{precision}: modeled from the documented constants in "
                        f"{model_path.name}; no {precision} whole-model measurement checks them (error unknown)",
                        source=str(model_path))


def _calibrated(device: str, precision: str, record: dict, where: str) -> LatencyTrust:
    """The figures of the record's models at ``precision``. When every model is at that precision, the record's
    own summary (computed from unrounded errors: what `workbench calibrate` printed and the README shows)."""
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


def _measured(profile, precision: str) -> LatencyTrust:
    measured_on = profile.measured_on
    folder = Path(profile.path).parent
    if not measured_on:
        return LatencyTrust(profile.name, precision, "measured",
                            f"{precision}: measured per op (the machine is not recorded in profile.yaml)",
                            source=str(profile.path))
    where = f"{measured_on['cpu']}, {measured_on['cores']} cores, {measured_on['runtime']}"
    check = _whole_model_check(folder / "calibration.json")
    fidelity = _fidelity(folder / "calibration.json", profile, precision)
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
    return LatencyTrust(profile.name, precision, "measured", text, check["models"] if check else 0,
                        check["mean_abs"] if check else None, check["max_abs"] if check else None,
                        source=str(profile.path), fidelity=fidelity)


def _fidelity(path: Path, profile, precision: str) -> dict | None:
    """The whole-model check ``benchmarks/bench_fidelity.py --record`` wrote for this LUT at ``precision``;
    None when there is none or the LUT changed since (its entries' hash no longer matches)."""
    import json

    try:
        record = json.loads(path.read_text())["fidelity"]
        row = record["precisions"][precision]
        if record["lut_sha256"] != profile.lut.entries_sha256:
            return None
        return {"models": int(row["models"]), "within_10pct": float(row["within_10pct"]),
                "median_abs_pct": float(row["median_abs_pct"]), "date": str(record["date"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


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


def _whole_model_check(path: Path) -> dict | None:
    """The leave-one-out summary ``workbench calibrate --quick`` wrote to a measured profile's calibration.json."""
    import json

    try:
        whole = json.loads(path.read_text()).get("whole_model", {})
        loo = whole["loo_error_pct"]
        return {"mean_abs": float(loo["mean_abs"]), "max_abs": float(loo["max_abs"]), "models": int(whole["models"])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
