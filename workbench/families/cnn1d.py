"""1-D CNN for multichannel time series (IMU): conv+BN+ReLU blocks with optional pooling."""
from __future__ import annotations

from dataclasses import dataclass

from ..ops import Op, out_len
from . import Family, register
from .common import PRECISION_BITS, require_odd, classifier, data_dim


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


@register
class CNN1DFamily(Family):
    name = "cnn1d"

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
        shape = arch.input_shape
        ops = []
        for i in range(1, c["blocks"] + 1):
            stage = f"b{i}"
            k, cout = c[f"{stage}_kernel"], c[f"{stage}_width"]
            out = (cout, out_len(shape[1], k, 1))
            ops.append(Op("conv1d", shape, out, k, 1, wbits=arch.weight_bits(stage), abits=abits, stage=stage))
            shape = out
            p = c[f"{stage}_pool"]
            if p > 1 and shape[1] >= p:
                out = (shape[0], (shape[1] - p) // p + 1)
                ops.append(Op(f"{c['pool_type']}pool1d", shape, out, p, p, wbits=w8, abits=abits, stage=stage))
                shape = out
        ops.extend(classifier(shape, arch.classes, w8, abits))
        return tuple(ops)

    def enumerate_ops(self, spec: CNN1DSpec):
        ops = set()
        for wbits, w8, abits in PRECISION_BITS:
            shapes = {(spec.channels, spec.length)}
            reachable = set()
            for b in range(1, max(spec.blocks) + 1):
                nxt = set()
                for shape in shapes:
                    for width in spec.width:
                        for k in spec.kernel:
                            conv = Op("conv1d", shape, (width, out_len(shape[1], k, 1)), k, 1,
                                      wbits=wbits, abits=abits, stage=f"b{b}")
                            ops.add(conv)
                            for p in spec.pool:
                                out = conv.out_shape
                                if p > 1 and out[1] >= p:
                                    for kind in spec.pool_type:
                                        pool = Op(f"{kind}pool1d", out, (out[0], (out[1] - p) // p + 1), p, p,
                                                  wbits=w8, abits=abits, stage=f"b{b}")
                                        ops.add(pool)
                                    out = pool.out_shape
                                nxt.add(out)
                shapes = nxt
                if b in spec.blocks:
                    reachable |= shapes
            for shape in reachable:
                ops.update(classifier(shape, spec.classes, w8, abits))
        return ops

    def summary(self, arch):
        c = arch.choice
        blocks = " ".join(f"{c[f'b{i}_width']}k{c[f'b{i}_kernel']}" + (f"p{c[f'b{i}_pool']}" if c[f'b{i}_pool'] > 1 else "")
                          + (f"/{c[f'b{i}_wbits']}b" if f"b{i}_wbits" in c else "") for i in range(1, c["blocks"] + 1))
        return f"{blocks} {arch.precision}"
