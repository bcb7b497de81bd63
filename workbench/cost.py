"""Cost estimator: architecture + device profile → latency, peak SRAM, flash, MACs, params.

Pure arithmetic over the architecture's cached op schedule and the profile's LUT: no torch model is
built, so scoring costs microseconds (see ``benchmarks/bench_scoring.py``).

- latency: sum over fused ops of the LUT mean (ops missing from the LUT are interpolated and counted);
- peak SRAM: the largest live activation set over the layer schedule (input + output + held residual
  of the worst layer, at the activation precision), MCUNet-style;
- flash: weights at their bit widths + biases + per-channel quantisation parameters, plus the
  profile's per-layer overhead (flatbuffer tensor/op metadata) for every layer.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .arch import Architecture
from .profiles import DeviceProfile


@dataclass(frozen=True)
class CostEstimate:
    device: str
    supported: bool  # the device runs the architecture's precisions
    latency_ms: float | None
    interpolated_ops: int
    n_ops: int
    peak_sram_bytes: int
    flash_bytes: int
    macs: int
    params: int

    @property
    def peak_sram_kb(self) -> float:
        return self.peak_sram_bytes / 1024

    @property
    def flash_kb(self) -> float:
        return self.flash_bytes / 1024

    def to_dict(self) -> dict:
        return asdict(self)


def estimate(arch: Architecture, profile: DeviceProfile) -> CostEstimate:
    ops = arch.ops
    supported = all(op.precision in profile.precisions for op in ops)
    latency, interpolated = (_latency(arch, profile) if supported else (None, 0))
    flash = arch.weight_bytes + profile.per_layer_flash_bytes * arch.n_layers
    return CostEstimate(profile.name, supported, latency, interpolated, len(ops), arch.peak_sram_bytes, flash,
                        arch.macs, arch.n_params)


def _latency(arch: Architecture, profile: DeviceProfile) -> tuple[float, int]:
    table = profile.lut.mean_ms
    total, interpolated = 0.0, 0
    for op, key in zip(arch.ops, arch.op_keys):
        ms = table.get(key)
        if ms is None:
            ms = profile.lut.predict(op)
            interpolated += 1
        total += ms
    return total, interpolated


def per_op_latency(arch: Architecture, profile: DeviceProfile) -> list[tuple[str, float, bool]]:
    """(op key, latency ms, interpolated?) for each op — the per-layer breakdown an inspector shows."""
    rows = []
    for op in arch.ops:
        ms = profile.lut.mean_ms.get(op.key)
        rows.append((op.key, ms if ms is not None else profile.lut.predict(op), ms is None))
    return rows


def violations(cost: CostEstimate, profile: DeviceProfile, latency_budget_ms: float | None = None) -> dict[str, float]:
    """Constraint values (≤ 0 means satisfied), in the units a person reads: ms and KB over budget."""
    out = {
        "sram_kb_over": (cost.peak_sram_bytes - profile.sram_budget_bytes) / 1024,
        "flash_kb_over": (cost.flash_bytes - profile.flash_budget_bytes) / 1024,
        "unsupported_precision": 0.0 if cost.supported else 1.0,
    }
    if latency_budget_ms is not None and cost.latency_ms is not None:
        out["latency_ms_over"] = cost.latency_ms - latency_budget_ms
    return out
