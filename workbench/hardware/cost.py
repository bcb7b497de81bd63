"""Cost estimator: architecture + device profile → latency, peak SRAM, flash, MACs, params.

Pure arithmetic over the architecture's cached op schedule and the profile's latency source: no torch model
is built, so scoring costs microseconds (see ``benchmarks/bench_scoring.py``).

- latency: from the profile's :class:`~workbench.hardware.latency.LatencySource`. A per-op source (the LUTs):
  the runtime's per-inference overhead plus the sum over fused ops of their latencies (ops missing from the
  LUT are computed from a modeled profile's latency model, or on a measured LUT interpolated and counted:
  :meth:`~workbench.hardware.latency.PerOpSource.op_latency`), memoised per segment (stage) by the profile's
  :class:`CostEstimator`; a whole-model source costs the architecture at once;
- peak SRAM and flash, on a profile with a ``memory:`` section (every shipped profile): the TFLite
  Micro arena the exported graph needs (activations as TFLM's greedy planner lays them out + kernel
  scratch + persistent allocations) and the ``.tflite`` file plus the runtime's code for the operators
  used — :mod:`workbench.hardware.memory`, memoised per architecture by the estimator; the parts are reported next
  to the totals;
- on a profile without one (the earlier rule, kept for hand-written profiles): the largest live
  activation set over the layer schedule (input + output + held residual of the worst layer,
  MCUNet-style) and weights + biases + per-channel quantisation parameters + the profile's
  ``per_layer_flash_bytes`` for every layer.
"""
from __future__ import annotations

from typing import NamedTuple

from workbench._infra.memo import BoundedMemo, HotMemo
from workbench.hardware.memory_pieces import estimate_memory
from workbench.hardware.profiles import DeviceProfile
from workbench.model.arch import Architecture


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


class CostEstimator:
    """Scores architectures on one device profile, and owns what it remembers while doing so.

    Two bounded memos (:class:`~workbench._infra.memo.HotMemo`: one ``dict.get`` per read, the scoring hot
    path), dropped with the estimator:

    - per architecture (its segments and input shape), its :class:`CostEstimate` — :data:`ARCH_MEMO_SIZE`:
      an architecture scored again (a repeated trial, a re-rank) costs one read (a whole-model latency
      source still costs the architecture each time);
    - per segment (a stage: its ops' LUT sum, interpolated count, whether the device runs it, and its
      MACs, parameters and operator count) — :data:`SEGMENT_MEMO_SIZE`; segments are shared between
      architectures, so a new architecture is mostly hits. Its TFLite Micro memory is composed from
      per-segment pieces its profile's runtime keeps (:mod:`workbench.hardware.memory_pieces`).

    ``memory_model`` computes an architecture's memory on a runtime: the composed
    :func:`~workbench.hardware.memory_pieces.estimate_memory`, or the whole-graph
    :func:`~workbench.hardware.memory.reference_memory` it must equal (tests, benchmarks).

    A profile reloaded after its files changed is a new profile object and gets a new estimator
    (:func:`estimator_for`), so nothing remembered from the old LUT leaks into the new one."""

    def __init__(self, profile: DeviceProfile, memory_model=estimate_memory):
        self.profile = profile
        self.latency = profile.latency
        self.memory_model = memory_model
        self._segments = HotMemo(SEGMENT_MEMO_SIZE)
        self._estimates = HotMemo(ARCH_MEMO_SIZE)

    def estimate(self, arch: Architecture) -> CostEstimate:
        """Score ``arch``: one memo read if it was scored before, else one pass over its memoised segments."""
        key = (arch.segments, arch.input_shape)
        cost = self._estimates.lookup(key)
        if cost is None:
            cost = self._score(arch, key[0])
            self._estimates.put(key, cost)
        if self.latency.additive or not cost.supported:
            return cost
        latency, interpolated = self.latency.model_latency(arch)  # a whole-model source: per architecture
        return cost._replace(latency_ms=latency, interpolated_ops=interpolated)

    def _score(self, arch: Architecture, segs: tuple) -> CostEstimate:
        """``arch``'s estimate from its segments' memoised entries and its memory (the latency of a
        whole-model source is left to :meth:`estimate`)."""
        profile = self.profile
        latency, interpolated, supported = 0.0, 0, True
        macs = params = n_ops = 0
        lookup = self._segments.lookup
        for seg in segs:
            hit = lookup(seg)
            if hit is None:
                hit = self._segment_entry(seg)
                self._segments.put(seg, hit)
            ms, guessed, runs, seg_macs, seg_params, seg_ops = hit
            latency += ms
            interpolated += guessed
            supported = supported and runs
            macs += seg_macs
            params += seg_params
            n_ops += seg_ops
        if profile.memory is not None:
            memory = self.memory_model(arch, profile.memory).cost_fields(profile.memory.tag)
        else:
            peak = max(seg.peak_bytes for seg in segs)
            flash = sum(seg.weight_bytes for seg in segs) + profile.per_layer_flash_bytes * sum(
                seg.n_layers for seg in segs)
            memory = (peak, flash, peak, 0, 0, flash, 0, "per-layer rule")
        if not supported:
            latency, interpolated = None, 0
        else:
            latency = latency + profile.per_inference_ms if self.latency.additive else None
        return CostEstimate(profile.name, supported, latency, interpolated, n_ops, *memory[:2], macs, params,
                            *memory[2:])

    def _segment_entry(self, seg) -> tuple[float, int, bool, int, int, int]:
        """(sum of the segment's per-op latencies, ops interpolated because the LUT lacks them, device runs it,
        MACs, parameters, operators); a whole-model source's latency is not split by segment (0 here)."""
        totals = (seg.macs, seg.params, seg.n_ops)
        if not seg.precisions.issubset(self.profile.precisions):
            return 0.0, 0, False, *totals
        if not self.latency.additive:
            return 0.0, 0, True, *totals
        total, interpolated = 0.0, 0
        for op, key in zip(seg.ops, seg.keys):
            ms, guessed = self.latency.op_latency(op, key)
            total += ms
            interpolated += guessed
        return total, interpolated, True, *totals


# The shipped spaces' 3,000-architecture samples hold ~2,800 distinct stages (vision); 16,384 keeps every
# segment a long search meets while bounding a space with very long choice lists.
SEGMENT_MEMO_SIZE = 16_384
# Above benchmarks/bench_scoring.py's 20,000 architectures and any search's trial count; an entry is a
# CostEstimate (16 fields) keyed by the architecture's (shared) segment objects, so a full memo is ~15 MB.
ARCH_MEMO_SIZE = 32_768
# Estimators for the profiles in use: a search scores the target and every shipped device (6 today); a
# notebook adds its own and reloaded profiles. An estimator keeps its profile alive, so the bound is also
# how many profiles (a few MB each with their memos) this can hold; an evicted one is rebuilt on demand.
ESTIMATORS_SIZE = 32

_ESTIMATORS = BoundedMemo(ESTIMATORS_SIZE)  # id(profile) → its CostEstimator


def estimator_for(profile: DeviceProfile) -> CostEstimator:
    """The :class:`CostEstimator` of ``profile``: one per profile object. (The estimator holds its profile,
    so an id found here is that profile's: ids are only reused once an object is gone.)"""
    return _ESTIMATORS.get(id(profile), lambda: CostEstimator(profile))


def estimate(arch: Architecture, profile: DeviceProfile) -> CostEstimate:
    """Score ``arch`` on ``profile`` (:meth:`CostEstimator.estimate` of the profile's estimator)."""
    return estimator_for(profile).estimate(arch)


def per_op_latency(arch: Architecture, profile: DeviceProfile) -> list[tuple[str, float, bool]] | None:
    """(op key, latency ms, interpolated?) for each op — the per-layer breakdown an inspector shows; None when
    the profile's latency source has no per-op rows (a whole-model estimate)."""
    rows = profile.latency.breakdown(arch.ops)
    return None if rows is None else [(op.key, *row) for op, row in zip(arch.ops, rows)]


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
