"""DS-CNN for keyword spotting (Zhang et al., "Hello Edge"): a conv stem then depthwise-separable blocks.

Input is a (1, frames, features) MFCC/LPC-style map: time along H, coefficients along W.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ops import Op, out_len
from . import Family, register
from .common import PRECISION_BITS, require_odd, classifier, conv2d, data_dim


@dataclass(frozen=True)
class DSCNNSpec:
    frames: int
    features: int
    classes: int
    stem_width: tuple[int, ...]
    stem_kernel: tuple[int, ...]
    stem_stride: tuple[int, ...]
    blocks: tuple[int, ...]
    width: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]


@register
class DSCNNFamily(Family):
    name = "dscnn"

    def parse(self, f):
        inp = f.sub("input")
        frames = int(inp.number("frames", minimum=4, maximum=4096, integer=True))
        features = int(inp.number("features", minimum=1, maximum=1024, integer=True))
        inp.reject_unknown()
        classes = int(f.number("classes", 10, minimum=2, maximum=100000, integer=True))
        stem = f.sub("stem")
        stem_spec = (stem.int_choices("width", maximum=1024), stem.int_choices("kernel", 3, maximum=11),
                     stem.int_choices("stride", 2, maximum=4))
        stem.reject_unknown()
        blocks = f.sub("blocks")
        spec = DSCNNSpec(frames, features, classes, *stem_spec, blocks.int_choices("count", maximum=16),
                         blocks.int_choices("width", maximum=2048), blocks.int_choices("kernel", maximum=11),
                         blocks.int_choices("stride", 1, maximum=4))
        require_odd(stem, "kernel", spec.stem_kernel)
        require_odd(blocks, "kernel", spec.kernel)
        blocks.reject_unknown()
        return spec

    def sample(self, spec: DSCNNSpec, s, data):
        # data shape (features, frames): coefficients are the channels of a time series
        features = data_dim(data, 0, spec.features)
        classes = spec.classes if data is None else data.classes
        s.choose("stem_width", spec.stem_width)
        s.choose("stem_kernel", spec.stem_kernel)
        s.choose("stem_stride", spec.stem_stride)
        count = s.choose("blocks", spec.blocks)
        stages = []
        for i in range(1, count + 1):
            s.choose(f"b{i}_width", spec.width)
            s.choose(f"b{i}_kernel", spec.kernel)
            s.choose(f"b{i}_stride", spec.stride)
            stages.append(f"b{i}")
        return (1, spec.frames, features), classes, stages

    def lower(self, arch):
        c = arch.choice
        abits = arch.activation_bits
        w8 = 32 if abits == 32 else 8
        ops = [conv2d(arch.input_shape, c["stem_width"], c["stem_kernel"], c["stem_stride"], w8, abits, "stem")]
        shape = ops[0].out_shape
        for i in range(1, c["blocks"] + 1):
            stage = f"b{i}"
            k, stride, cout = c[f"{stage}_kernel"], c[f"{stage}_stride"], c[f"{stage}_width"]
            out = (cout, out_len(shape[1], k, stride), out_len(shape[2], k, stride))
            ops.append(Op("dsconv2d", shape, out, k, stride, wbits=arch.weight_bits(stage), abits=abits, stage=stage))
            shape = out
        ops.extend(classifier(shape, arch.classes, w8, abits))
        return tuple(ops)

    def enumerate_ops(self, spec: DSCNNSpec):
        ops = set()
        for wbits, w8, abits in PRECISION_BITS:
            shapes = set()
            for width in spec.stem_width:
                for k in spec.stem_kernel:
                    for stride in spec.stem_stride:
                        stem = conv2d((1, spec.frames, spec.features), width, k, stride, w8, abits, "stem")
                        ops.add(stem)
                        shapes.add(stem.out_shape)
            reachable = set()
            for b in range(1, max(spec.blocks) + 1):
                nxt = set()
                for shape in shapes:
                    for width in spec.width:
                        for k in spec.kernel:
                            for stride in spec.stride:
                                out = (width, out_len(shape[1], k, stride), out_len(shape[2], k, stride))
                                ops.add(Op("dsconv2d", shape, out, k, stride, wbits=wbits, abits=abits, stage=f"b{b}"))
                                nxt.add(out)
                shapes = nxt
                if b in spec.blocks:
                    reachable |= shapes
            for shape in reachable:
                ops.update(classifier(shape, spec.classes, w8, abits))
        return ops

    def summary(self, arch):
        c = arch.choice
        blocks = " ".join(f"{c[f'b{i}_width']}k{c[f'b{i}_kernel']}" + (f"/{c[f'b{i}_wbits']}b" if f"b{i}_wbits" in c else "")
                          for i in range(1, c["blocks"] + 1))
        return f"stem{c['stem_width']}k{c['stem_kernel']}s{c['stem_stride']} {blocks} {arch.precision}"
