"""Cost estimator: architecture + device profile → latency, peak SRAM, flash, MACs, params.

Pure arithmetic over the architecture's cached op schedule and the profile's LUT: no torch model is
built, so scoring costs microseconds (see ``benchmarks/bench_scoring.py``).

- latency: the runtime's per-inference overhead plus the sum over fused ops of the LUT mean (ops missing
  from the LUT are interpolated and counted), cached per memoised segment (stage) and LUT;
- peak SRAM and flash, on a profile with a ``memory:`` section (every shipped profile): the TFLite
  Micro arena the exported graph needs (activations as TFLM's greedy planner lays them out + kernel
  scratch + persistent allocations) and the ``.tflite`` file plus the runtime's code for the operators
  used — :mod:`workbench.memory`, memoised per architecture; the parts are reported next to the totals;
- on a profile without one (the earlier rule, kept for hand-written profiles): the largest live
  activation set over the layer schedule (input + output + held residual of the worst layer,
  MCUNet-style) and weights + biases + per-channel quantisation parameters + the profile's
  ``per_layer_flash_bytes`` for every layer.
"""
from __future__ import annotations

from typing import NamedTuple

from .arch import Architecture
from .memory import MEMO_LIMIT, estimate_memory
from .profiles import DeviceProfile


class CostEstimate(NamedTuple):
    """What a device would pay for an architecture (a NamedTuple: cheap to create on the hot path)."""

    device: str
    supported: bool  # the device runs the architecture's precisions
    latency_ms: float | None
    interpolated_ops: int
    n_ops: int
    peak_sram_bytes: int
    flash_bytes: int
    macs: int
    params: int
    # parts of peak_sram_bytes and flash_bytes (TFLM model; the per-layer rule fills activations/file only)
    sram_activations: int = 0
    sram_scratch: int = 0
    sram_persistent: int = 0
    flash_file: int = 0
    flash_code: int = 0
    memory_model: str = ""  # what produced the memory numbers ("tflm cmsis-nn 32-bit", "per-layer rule")

    @property
    def peak_sram_kb(self) -> float:
        return self.peak_sram_bytes / 1024

    @property
    def flash_kb(self) -> float:
        return self.flash_bytes / 1024

    def to_dict(self) -> dict:
        return self._asdict()


def estimate(arch: Architecture, profile: DeviceProfile) -> CostEstimate:
    """Score ``arch`` on ``profile``: one pass over its memoised segments (the hot path of a search)."""
    latency, interpolated, supported = 0.0, 0, True
    macs = params = weight_bytes = n_layers = n_ops = peak = 0
    cache = profile.lut.segment_cache
    for seg in arch.segments:
        hit = cache.get(seg)
        if hit is None:
            hit = cache[seg] = _segment_latency(seg, profile)
        latency += hit[0]
        interpolated += hit[1]
        supported = supported and hit[2]
        macs += seg.macs
        params += seg.params
        weight_bytes += seg.weight_bytes
        n_layers += seg.n_layers
        n_ops += seg.n_ops
        if seg.peak_bytes > peak:
            peak = seg.peak_bytes
    if profile.memory is not None:
        memory = _tflm_fields(arch, profile.memory)
    else:
        flash = weight_bytes + profile.per_layer_flash_bytes * n_layers
        memory = (peak, flash, peak, 0, 0, flash, 0, "per-layer rule")
    peak, flash, *parts = memory
    if not supported:
        return CostEstimate(profile.name, False, None, 0, n_ops, peak, flash, macs, params, *parts)
    return CostEstimate(profile.name, True, profile.per_inference_ms + latency, interpolated, n_ops, peak, flash,
                        macs, params, *parts)


def _tflm_fields(arch: Architecture, runtime) -> tuple:
    """The TFLM model's (peak, flash, parts...) for ``arch``, memoised per architecture on the runtime."""
    key = (arch.segments, arch.input_shape)
    hit = runtime.cost_memo.get(key)
    if hit is None:
        if len(runtime.cost_memo) >= MEMO_LIMIT:
            runtime.cost_memo.clear()
        hit = runtime.cost_memo[key] = estimate_memory(arch, runtime).cost_fields(runtime.tag)
    return hit


def _segment_latency(seg, profile: DeviceProfile) -> tuple[float, int, bool]:
    """(sum of the segment's LUT entries, ops interpolated because the LUT lacks them, device runs it)."""
    if not seg.precisions.issubset(profile.precisions):
        return 0.0, 0, False
    total, interpolated = 0.0, 0
    for op, key in zip(seg.ops, seg.keys):
        ms, guessed = profile.lut.latency(op, key)
        total += ms
        interpolated += guessed
    return total, interpolated, True


def per_op_latency(arch: Architecture, profile: DeviceProfile) -> list[tuple[str, float, bool]]:
    """(op key, latency ms, interpolated?) for each op — the per-layer breakdown an inspector shows."""
    return [(op.key, *profile.lut.latency(op)) for op in arch.ops]


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
