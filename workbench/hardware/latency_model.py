"""Analytical latency model for devices nobody has measured yet (MCUs, edge CPUs).

A modeled LUT is *derived data*: ``hw_profiles/<name>/latency_model.yaml`` writes down the
constants (cycles per MAC of the runtime's kernels per layer type and precision, cycles per output,
memory bandwidths, per-layer overhead) with their sources, and ``workbench model-lut hw_profiles/<name>``
turns them into ``lut.csv`` entries marked ``modeled``. Replace it with ``workbench profile`` on the real board.

Per runtime layer (the :class:`~workbench.model.ops.Layer` schedule of a fused op, typed by its kind's
:meth:`~workbench.model.ops.OpSpec.layer_type`)::

    cycles = MACs * cycles_per_mac[precision][layer type]
           + outputs * cycles_per_output[precision]             (compute layers: bias, requantise, clamp, store)
           + activation bytes read+written / sram_bytes_per_cycle
           + weight bytes / flash_bytes_per_cycle
           + elementwise elements * cycles_per_element        (pooling, residual add)
           + per_layer_overhead_cycles
    ms = cycles / (clock_mhz * 1000)

plus ``per_inference_cycles`` once per model (written to ``profile.yaml`` as ``per_inference_ms``).
The per-output term is what tells a layer with few MACs per output from one with many: an int8 kernel
requantises every output it writes (a 64-bit doubling multiply, a rounding shift, the zero point, the
clamp), which a 3x3 depthwise layer (9 MACs per output) pays nearly as often as it multiplies and a fully
connected layer (hundreds of MACs per output) almost never. Without it one cycles-per-MAC constant per
layer type had to average the two, and whole-model fits mispredicted the networks left out by 30-70 %.
A convolution with one input channel is typed ``depthwise`` where ``one_input_channel_conv: depthwise``
says the runtime runs it so: TensorFlow's converters write it as ``DEPTHWISE_CONV_2D`` with a channel
multiplier (TOCO's ``ConvertPureConvToDepthwise``; the MLIR converter behind our own export does the same —
``tests/test_memory.py`` reads it back from a written file), and TensorFlow Lite Micro runs that with its
depthwise kernel (reference and CMSIS-NN alike). Engines that compile the graph their own way (microTVM,
X-CUBE-AI, XNNPACK: a one-group convolution) keep ``conv``, the default.
The cycles are linear in the constants (:func:`op_features`), which is what lets
:mod:`workbench.calibration.calibrate` fit them to whole-model latencies someone timed on the board.

An op's latency is the sum over its layers (in-order cores: compute and memory do not overlap).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from workbench._infra.errors import WorkbenchError
from workbench._infra.yamlio import Fields, load_yaml_mapping
from workbench.hardware.lut import entry_for, write_lut
from workbench.model.ops import PRECISIONS, Op

LAYER_TYPES = ("conv", "depthwise", "pointwise", "fc")
# Which kernels a precision runs: 4-bit weights are unpacked into the int8 kernels (so a calibration
# measured at int8 speaks for w4a8 too, and for fp32 not at all).
KERNEL_FAMILY = {"fp32": "float", "int8": "integer", "w4a8": "integer"}


@dataclass(frozen=True)
class LatencyConstants:
    reference: str
    cycles_per_mac: dict[str, dict[str, float]]
    sram_bytes_per_cycle: float
    flash_bytes_per_cycle: float
    cycles_per_element: float
    per_layer_overhead_cycles: float
    per_inference_cycles: float = 0.0  # Invoke() set-up paid once per model (profile.yaml per_inference_ms)
    one_input_channel_conv: str = "conv"  # how the runtime runs a 1-input-channel conv (ONE_CHANNEL_CHOICES)
    cycles_per_output: dict[str, float] = field(default_factory=dict)  # per precision; absent = 0

    def vector(self) -> dict[str, float]:
        """The constants as the linear coefficients :func:`op_features` multiplies (bandwidths inverted)."""
        out = {f"cycles_per_mac.{p}.{t}": v for p, row in self.cycles_per_mac.items() for t, v in row.items()}
        out.update({f"cycles_per_output.{p}": self.cycles_per_output.get(p, 0.0) for p in self.cycles_per_mac})
        out.update({"sram_cycles_per_byte": 1.0 / self.sram_bytes_per_cycle,
                    "flash_cycles_per_byte": 1.0 / self.flash_bytes_per_cycle,
                    "cycles_per_element": self.cycles_per_element,
                    "per_layer_overhead_cycles": self.per_layer_overhead_cycles,
                    "per_inference_cycles": self.per_inference_cycles})
        return out

    @classmethod
    def from_vector(cls, reference: str, v: dict[str, float],
                    one_input_channel_conv: str = "conv") -> "LatencyConstants":
        """Inverse of :meth:`vector` (which holds only the fitted numbers); zero bandwidth terms become the
        YAML's largest allowed bandwidth."""
        cpm: dict[str, dict[str, float]] = {}
        per_output: dict[str, float] = {}
        for name, value in v.items():
            if name.startswith("cycles_per_mac."):
                _, prec, kind = name.split(".")
                cpm.setdefault(prec, {})[kind] = max(value, MIN_CYCLES_PER_MAC)
            elif name.startswith("cycles_per_output."):
                per_output[name.split(".")[1]] = max(value, 0.0)
        return cls(reference, cpm, 1.0 / max(v["sram_cycles_per_byte"], 1.0 / MAX_BANDWIDTH),
                   1.0 / max(v["flash_cycles_per_byte"], 1.0 / MAX_BANDWIDTH), v["cycles_per_element"],
                   v["per_layer_overhead_cycles"], v["per_inference_cycles"], one_input_channel_conv, per_output)


MIN_CYCLES_PER_MAC = 1e-4  # the YAML needs > 0; a fit that drives a constant to 0 lands here
MAX_BANDWIDTH = 1e6  # bytes per cycle: the YAML's ceiling (a fit that makes memory free lands here)
ONE_CHANNEL_CHOICES = ("conv", "depthwise")


def load_constants(path: Path) -> LatencyConstants:
    return parse_constants(load_yaml_mapping(path), str(path))


def parse_constants(data: dict, where: str) -> LatencyConstants:
    f = Fields(data, where)
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
    per_output = {}
    if f.has("cycles_per_output"):
        out_fields = f.sub("cycles_per_output")
        per_output = {p: out_fields.number(p, 0.0, minimum=0, maximum=1e6) for p in cpm}
        out_fields.reject_unknown()
    consts = LatencyConstants(
        reference, cpm,
        f.number("sram_bytes_per_cycle", minimum=0, maximum=MAX_BANDWIDTH, exclusive_min=True),
        f.number("flash_bytes_per_cycle", minimum=0, maximum=MAX_BANDWIDTH, exclusive_min=True),
        f.number("cycles_per_element", minimum=0, maximum=1e6),
        f.number("per_layer_overhead_cycles", minimum=0, maximum=1e9),
        f.number("per_inference_cycles", 0.0, minimum=0, maximum=1e12),
        f.str("one_input_channel_conv", "conv", choices=ONE_CHANNEL_CHOICES),
        per_output,
    )
    for documented in ("notes", "sources", "measurements", "calibration"):  # written by workbench.calibration.calibrate
        f.raw(documented, None)
    f.reject_unknown()
    return consts


def _input_channels(layer, kind: str, op: Op) -> int:
    """Input channels of a conv or pointwise layer: its weights are out channels x in channels x taps."""
    taps = 1 if kind == "pointwise" else (op.kernel if len(op.in_shape) == 2 else op.kh * op.kw)
    return layer.weights // max(layer.biases * taps, 1)


def op_features(op: Op, one_input_channel_conv: str = "conv") -> dict[str, float]:
    """What one op pays per unit of each constant of :meth:`LatencyConstants.vector` (cycles are linear in
    the constants: ``cycles = sum(features[k] * vector[k])``), so whole-model latencies can fit them.
    ``one_input_channel_conv``: the constants' setting (see the module docstring)."""
    feats: dict[str, float] = {}

    def add(name: str, amount: float) -> None:
        feats[name] = feats.get(name, 0.0) + amount

    act_bytes = op.abits // 8
    spec = op.spec
    for layer in op.layers:
        kind = spec.layer_type(layer, op)
        if (one_input_channel_conv == "depthwise" and kind in ("conv", "pointwise")
                and _input_channels(layer, kind, op) == 1):
            kind = "depthwise"
        add("per_layer_overhead_cycles", 1.0)
        add("sram_cycles_per_byte", (layer.in_elems + layer.out_elems) * act_bytes)
        if kind is None:
            add("cycles_per_element", layer.in_elems)
            continue
        add(f"cycles_per_mac.{op.precision}.{kind}", layer.macs)
        add(f"cycles_per_output.{op.precision}", layer.out_elems)
        add("flash_cycles_per_byte", layer.weights * op.wbits / 8)
    add("cycles_per_element", spec.residual_elems(op))
    return feats


def op_cycles(op: Op, c: LatencyConstants) -> float:
    vec = c.vector()
    return sum(amount * vec[name] for name, amount in op_features(op, c.one_input_channel_conv).items())


class ModeledLatency:
    """A modeled profile's latency for ops its LUT lacks, computed exactly from its ``latency_model.yaml``.

    The LUT of a modeled profile is this formula evaluated over the ops the shipped spaces produce; an op
    outside them (a network written down by hand, a ``.tflite`` given to ``workbench score``) is the same
    formula, not an interpolation over other ops' rows (interpolating mispredicted the MicroNets by up to
    1.8x). The constants are read on the first miss, so a profile loads as fast as before."""

    def __init__(self, path: Path, clock_mhz: float):
        self.path, self.clock_mhz = Path(path), clock_mhz
        self._consts: LatencyConstants | None = None

    def constants(self) -> LatencyConstants:
        """The constants, read on first use (a broken file is its one-line error then)."""
        if self._consts is None:
            self._consts = load_constants(self.path)
        return self._consts

    def ms(self, op: Op) -> float | None:
        """The op's modeled latency, or None at a precision the constants do not cover."""
        consts = self.constants()
        if op.precision not in consts.cycles_per_mac:
            return None
        return op_cycles(op, consts) / (self.clock_mhz * 1000.0)


def build_modeled_lut(profile_dir: Path, ops: list[Op], clock_mhz: float, precisions) -> Path:
    """Write ``lut.csv`` for every op at the device's precisions from its ``latency_model.yaml``, and the
    per-inference constant into ``profile.yaml`` (``per_inference_ms``, which :func:`workbench.hardware.cost.estimate` adds)."""
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
    set_per_inference_ms(profile_dir / "profile.yaml", consts.per_inference_cycles / (clock_mhz * 1000.0))
    return out


PER_INFERENCE_LINE = re.compile(r"^per_inference_ms:.*$", re.MULTILINE)


def set_per_inference_ms(profile_yaml: Path, ms: float,
                         why: str = "= per_inference_cycles of latency_model.yaml / clock (model-lut writes it)") -> None:
    """Rewrite (or add after ``latency_model:``) the ``per_inference_ms`` line of a modeled profile, leaving
    every other line as it is (other sections of profile.yaml are edited by hand or by other tools)."""
    text = profile_yaml.read_text(encoding="utf-8")
    line = f"per_inference_ms: {ms:.6g}   # {why}"
    if PER_INFERENCE_LINE.search(text):
        new = PER_INFERENCE_LINE.sub(line, text, count=1)
    elif ms == 0.0:
        return
    else:
        new = re.sub(r"^(latency_model:.*)$", lambda m: m.group(1) + "\n" + line, text, count=1, flags=re.MULTILINE)
    if new != text:
        profile_yaml.write_text(new, encoding="utf-8")
