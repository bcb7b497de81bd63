"""How far to trust a device's latency numbers: one statement per (profile, precision), made by the profile's
latency source (:meth:`workbench.hardware.latency.LatencySource.trust`) from the files that produced them — the
calibration record of a modeled profile's ``latency_model.yaml``, the machine a measured LUT was timed on
(``profile.yaml`` ``measured_on``) and its whole-model check (``calibration.json``).

Why: "3.7 ms" on a microcontroller profile is a model's output. Whether it came from a fit to nine
published measurements that it reproduces within 10 % when each is left out, from constants nobody has
checked against a board, or from operator timings taken on another CPU, decides how close to a budget a
user can go. Every place that prints a predicted latency (``workbench devices``, the front tables,
``workbench score``, the export manifest, the notebook explorer) says which of these it is, from here.

The kinds (:attr:`LatencyTrust.basis`) the shipped sources state:

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

from workbench.model.ops import PRECISIONS


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
    """The statement for ``profile`` (a :class:`~workbench.hardware.profiles.DeviceProfile`) at ``precision``:
    its latency source's."""
    return profile.latency.trust(precision)


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
