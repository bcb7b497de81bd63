"""Analytical latency model for devices nobody has measured yet (MCUs, edge CPUs).

A modeled LUT is *derived data*: ``hw_profiles/<name>/latency_model.yaml`` writes down the
constants (cycles per MAC of the runtime's kernels per layer type and precision, memory bandwidths,
per-layer overhead) with their sources, and ``workbench model-lut hw_profiles/<name>`` turns them
into ``lut.csv`` entries marked ``modeled``. Replace it with ``workbench profile`` on the real board.

Per runtime layer (the :class:`~workbench.ops.Layer` schedule of a fused op)::

    cycles = MACs * cycles_per_mac[precision][layer type]
           + activation bytes read+written / sram_bytes_per_cycle
           + weight bytes / flash_bytes_per_cycle
           + elementwise elements * cycles_per_element        (pooling, residual add)
           + per_layer_overhead_cycles
    ms = cycles / (clock_mhz * 1000)

An op's latency is the sum over its layers (in-order cores: compute and memory do not overlap).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import WorkbenchError
from .ops import PRECISIONS, Layer, Op
from .profiles import entry_for, write_lut
from .yamlio import Fields, load_yaml_mapping

LAYER_TYPES = ("conv", "depthwise", "pointwise", "fc")


@dataclass(frozen=True)
class LatencyConstants:
    reference: str
    cycles_per_mac: dict[str, dict[str, float]]
    sram_bytes_per_cycle: float
    flash_bytes_per_cycle: float
    cycles_per_element: float
    per_layer_overhead_cycles: float


def load_constants(path: Path) -> LatencyConstants:
    f = Fields(load_yaml_mapping(path), str(path))
    reference = f.str("reference")
    cpm_fields = f.sub("cycles_per_mac")
    cpm = {}
    for prec in PRECISIONS:
        if not cpm_fields.has(prec):
            continue
        p = cpm_fields.sub(prec)
        cpm[prec] = {t: p.number(t, minimum=0, maximum=1e4, exclusive_min=True) for t in LAYER_TYPES}
        p.reject_unknown()
    cpm_fields.reject_unknown()
    if not cpm:
        raise cpm_fields.error("needs at least one precision (fp32, int8, w4a8)")
    consts = LatencyConstants(
        reference, cpm,
        f.number("sram_bytes_per_cycle", minimum=0, maximum=1e6, exclusive_min=True),
        f.number("flash_bytes_per_cycle", minimum=0, maximum=1e6, exclusive_min=True),
        f.number("cycles_per_element", minimum=0, maximum=1e6),
        f.number("per_layer_overhead_cycles", minimum=0, maximum=1e9),
    )
    f.raw("notes", None)
    f.reject_unknown()
    return consts


def _layer_type(layer: Layer, op: Op) -> str | None:
    if layer.name == "fc":
        return "fc"
    if layer.name == "depthwise":
        return "depthwise"
    if layer.name in ("expand", "project", "pointwise") or (layer.name == "conv" and op.kernel == 1):
        return "pointwise"
    if layer.name == "conv":
        return "conv"
    return None  # pooling, gap: elementwise


def op_cycles(op: Op, c: LatencyConstants) -> float:
    cpm = c.cycles_per_mac[op.precision]
    act_bytes = op.abits // 8
    cycles = 0.0
    for layer in op.layers:
        kind = _layer_type(layer, op)
        cycles += c.per_layer_overhead_cycles
        cycles += (layer.in_elems + layer.out_elems) * act_bytes / c.sram_bytes_per_cycle
        if kind is None:
            cycles += layer.in_elems * c.cycles_per_element
            continue
        cycles += layer.macs * cpm[kind]
        cycles += layer.weights * op.wbits / 8 / c.flash_bytes_per_cycle
    if op.skip:
        cycles += op.out_shape[0] * op.out_shape[1] * op.out_shape[2] * c.cycles_per_element
    return cycles


def build_modeled_lut(profile_dir: Path, ops: list[Op], clock_mhz: float, precisions) -> Path:
    """Write ``lut.csv`` for every op at the device's precisions from its ``latency_model.yaml``."""
    model_path = profile_dir / "latency_model.yaml"
    consts = load_constants(model_path)
    missing = [p for p in precisions if p not in consts.cycles_per_mac]
    if missing:
        raise WorkbenchError(f"cycles_per_mac: no constants for {missing}", where=str(model_path))
    reference = f"modeled from {profile_dir.name}/latency_model.yaml (constants and sources there)"
    rows = [entry_for(op, op_cycles(op, consts) / (clock_mhz * 1000.0), 0.0, 1, "modeled", reference)
            for op in ops if op.precision in precisions]
    out = profile_dir / "lut.csv"
    write_lut(out, rows)
    return out


def model_profile(profile_dir: Path, spaces=None) -> tuple[Path, int]:
    """Regenerate a modeled profile's LUT for every op the (shipped) spaces can produce."""
    from .profiles import parse_profile
    from .space import all_spaces, enumerate_ops

    profile_path = Path(profile_dir) / "profile.yaml"
    profile = parse_profile(load_yaml_mapping(profile_path), profile_path, with_lut=False)
    ops = enumerate_ops(spaces if spaces is not None else all_spaces(), profile.precisions)
    return build_modeled_lut(Path(profile_dir), ops, profile.clock_mhz, profile.precisions), len(ops)
