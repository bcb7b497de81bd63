"""Multilayer perceptron: fully connected + folded BN + ReLU layers, then a linear output layer.

The MLPerf Tiny anomaly-detection autoencoder (640 → 128 ×4 → 8 → 128 ×4 → 640) is this family with
fixed widths and ``classes: 640`` (the output width). Inputs with more than one dimension are
flattened first (a ``flatten`` op). ``layers`` is a list with one entry per hidden layer (an int or a
list of width choices), or a mapping ``{count, width}`` whose width choices every layer shares.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import prod

from workbench._infra.yamlio import Fields
from workbench.model.families import Family, register
from workbench.model.families.common import PRECISION_BITS, SEGMENT_MEMO_SIZE
from workbench.model.ops import Op, Segment

MAX_LAYERS = 32
_LAYER_KEYS = tuple((f"l{i}", f"l{i}_width", f"l{i}_wbits") for i in range(1, MAX_LAYERS + 1))


@dataclass(frozen=True)
class MLPSpec:
    features: int
    classes: int
    count: tuple[int, ...]
    widths: tuple[tuple[int, ...], ...]  # width choices per layer position


@lru_cache(maxsize=SEGMENT_MEMO_SIZE)  # bounded: see families.common
def _layer(width_in, width, wbits, abits, stage) -> Segment:
    return Segment((Op("linear_relu", (width_in,), (width,), wbits=wbits, abits=abits, stage=stage),))


@lru_cache(maxsize=SEGMENT_MEMO_SIZE)  # bounded: see families.common
def _output(width_in, classes, wbits, abits) -> Segment:
    return Segment((Op("linear", (width_in,), (classes,), wbits=wbits, abits=abits, stage="head"),))


@lru_cache(maxsize=SEGMENT_MEMO_SIZE)  # bounded: see families.common
def _flatten(shape, wbits, abits) -> Segment:
    return Segment((Op("flatten", shape, (prod(shape),), wbits=wbits, abits=abits, stage="stem"),))


@register
class MLPFamily(Family):
    name = "mlp"
    help = "multilayer perceptron: fully connected + BN + ReLU layers, then a linear output layer"
    data_layout = "vectors"

    def parse(self, f):
        inp = f.sub("input")
        features = int(inp.number("features", minimum=1, maximum=1 << 20, integer=True))
        inp.reject_unknown()
        classes = int(f.number("classes", 10, minimum=1, maximum=1 << 20, integer=True))
        raw = f.raw("layers")
        if isinstance(raw, list):
            if not 1 <= len(raw) <= MAX_LAYERS:
                raise f.error(f"expected 1 to {MAX_LAYERS} layers, got {len(raw)}", "layers")
            items = Fields({f"[{i}]": v for i, v in enumerate(raw)}, f.file, "layers")
            widths = tuple(items.int_choices(f"[{i}]", maximum=1 << 16) for i in range(len(raw)))
            return MLPSpec(features, classes, (len(raw),), widths)
        layers = f.sub("layers")
        count = layers.int_choices("count", maximum=MAX_LAYERS)
        width = layers.int_choices("width", maximum=1 << 16)
        layers.reject_unknown()
        return MLPSpec(features, classes, count, (width,) * max(count))

    def sample(self, spec: MLPSpec, s, data):
        shape = (spec.features,) if data is None else tuple(data.shape)
        classes = spec.classes if data is None else data.classes
        count = s.choose("layers", spec.count)
        stages = []
        for (st, width, _), choices in zip(_LAYER_KEYS[:count], spec.widths):
            s.choose(width, choices)
            stages.append(st)
        return shape, classes, stages

    def lower(self, arch):
        c = arch.choice
        abits = arch.activation_bits
        w8 = 32 if abits == 32 else 8
        segs = []
        width_in = prod(arch.input_shape)
        if len(arch.input_shape) > 1:
            segs.append(_flatten(arch.input_shape, w8, abits))
        for st, width, wbits in _LAYER_KEYS[:c["layers"]]:
            segs.append(_layer(width_in, c[width], w8 if abits == 32 else c.get(wbits, 8), abits, st))
            width_in = c[width]
        segs.append(_output(width_in, arch.classes, w8, abits))
        return tuple(segs)

    def enumerate_ops(self, spec: MLPSpec):
        ops = set()
        for wbits, w8, abits in PRECISION_BITS:
            widths_in = {spec.features}
            for i, choices in enumerate(spec.widths, start=1):
                segs = {_layer(w_in, w, wbits, abits, f"l{i}") for w_in in widths_in for w in choices}
                ops.update(op for seg in segs for op in seg.ops)
                widths_in = set(choices)
                if i in spec.count:
                    ops.update(op for w_in in widths_in for op in _output(w_in, spec.classes, w8, abits).ops)
        return ops

    def summary(self, arch):
        c = arch.choice
        layers = "-".join(str(c[f"l{i}_width"]) + (f"/{c[f'l{i}_wbits']}b" if f"l{i}_wbits" in c else "")
                          for i in range(1, c["layers"] + 1))
        return f"{prod(arch.input_shape)}-{layers}-{arch.classes} {arch.precision}"
