"""1-D CNN for multichannel time series (IMU): conv+BN+ReLU blocks with optional pooling."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from workbench.model.families import Family, register
from workbench.model.families.common import (
    BLOCK_KEYS,
    PRECISION_BITS,
    SEGMENT_MEMO_SIZE,
    classifier_segment,
    require_odd,
)
from workbench.model.geometry import out_len, pool_len
from workbench.model.ops import Op, Segment


@dataclass(frozen=True)
class CNN1DSpec:
    channels: int
    length: int
    classes: int
    blocks: tuple[int, ...]
    width: tuple[int, ...]
    kernel: tuple[int, ...]
    pool: tuple[int, ...]
    pool_type: tuple[str, ...]


@lru_cache(maxsize=SEGMENT_MEMO_SIZE)  # bounded: see families.common
def _block(shape, width, kernel, pool, pool_type, wbits, w8, abits, stage) -> Segment:
    """conv1d+BN+ReLU6, then pooling by ``pool`` when it is > 1 and the series is long enough."""
    conv = Op("conv1d", shape, (width, out_len(shape[1], kernel, 1)), kernel, 1, wbits=wbits, abits=abits, stage=stage)
    ops = [conv]
    t = conv.out_shape[1]
    if pool > 1 and t >= pool:
        ops.append(Op(f"{pool_type}pool1d", conv.out_shape, (width, pool_len(t, pool, pool)), pool, pool,
                      wbits=w8, abits=abits, stage=stage))
    return Segment(tuple(ops))


@register
class CNN1DFamily(Family):
    name = "cnn1d"
    help = "1-D CNN for multichannel time series: conv+BN+ReLU blocks with optional pooling"
    data_layout = "series"

    def parse(self, f):
        inp = f.sub("input")
        channels = int(inp.number("channels", minimum=1, maximum=1024, integer=True))
        length = int(inp.number("length", minimum=4, maximum=100000, integer=True))
        inp.reject_unknown()
        classes = int(f.number("classes", 10, minimum=2, maximum=100000, integer=True))
        blocks = f.sub("blocks")
        spec = CNN1DSpec(channels, length, classes, blocks.int_choices("count", maximum=16),
                         blocks.int_choices("width", maximum=2048), blocks.int_choices("kernel", maximum=31),
                         blocks.int_choices("pool", [1], maximum=8), blocks.str_choices("pool_type", ("max", "avg"), ["max"]))
        require_odd(blocks, "kernel", spec.kernel)
        blocks.reject_unknown()
        return spec

    def sample(self, spec: CNN1DSpec, s, data):
        shape = (spec.channels, spec.length) if data is None else data.shape
        classes = spec.classes if data is None else data.classes
        count = s.choose("blocks", spec.blocks)
        s.choose("pool_type", spec.pool_type)
        stages = []
        for i in range(1, count + 1):
            s.choose(f"b{i}_width", spec.width)
            s.choose(f"b{i}_kernel", spec.kernel)
            s.choose(f"b{i}_pool", spec.pool)
            stages.append(f"b{i}")
        return tuple(shape), classes, stages

    def lower(self, arch):
        c = arch.choice
        abits = arch.activation_bits
        w8 = 32 if abits == 32 else 8
        shape, segs = arch.input_shape, []
        pool_type = c["pool_type"]
        for st, width, kernel, _, pool, wbits in BLOCK_KEYS[:c["blocks"]]:
            segs.append(_block(shape, c[width], c[kernel], c[pool], pool_type,
                               w8 if abits == 32 else c.get(wbits, 8), w8, abits, st))
            shape = segs[-1].out_shape
        segs.append(classifier_segment(shape, arch.classes, w8, abits))
        return tuple(segs)

    def enumerate_ops(self, spec: CNN1DSpec):
        ops = set()
        for wbits, w8, abits in PRECISION_BITS:
            shapes = {(spec.channels, spec.length)}
            for b in range(1, max(spec.blocks) + 1):
                segs = {_block(shape, width, k, pool, pool_type, wbits, w8, abits, f"b{b}")
                        for shape in shapes for width in spec.width for k in spec.kernel
                        for pool in spec.pool for pool_type in spec.pool_type}
                ops.update(op for seg in segs for op in seg.ops)
                shapes = {seg.out_shape for seg in segs}
                if b in spec.blocks:
                    for shape in shapes:
                        ops.update(classifier_segment(shape, spec.classes, w8, abits).ops)
        return ops

    def summary(self, arch):
        c = arch.choice
        blocks = " ".join(f"{c[f'b{i}_width']}k{c[f'b{i}_kernel']}" + (f"p{c[f'b{i}_pool']}" if c[f'b{i}_pool'] > 1 else "")
                          + (f"/{c[f'b{i}_wbits']}b" if f"b{i}_wbits" in c else "") for i in range(1, c["blocks"] + 1))
        return f"{blocks} {arch.precision}"
