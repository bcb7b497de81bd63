"""DS-CNN for keyword spotting (Zhang et al., "Hello Edge"): a conv stem then depthwise-separable blocks.

Input is a (1, frames, features) MFCC/LPC-style map: time along H, coefficients along W.
"""
from __future__ import annotations

from dataclasses import dataclass

from functools import lru_cache

from ..ops import Op, Segment, out_len
from . import Family, register
from .common import BLOCK_KEYS, PRECISION_BITS, classifier_segment, conv_segment, data_dim, require_odd


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


@lru_cache(maxsize=None)
def _block(shape, width, kernel, stride, wbits, abits, stage) -> Segment:
    out = (width, out_len(shape[1], kernel, stride), out_len(shape[2], kernel, stride))
    return Segment((Op("dsconv2d", shape, out, kernel, stride, wbits=wbits, abits=abits, stage=stage),))


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
        segs = [conv_segment(arch.input_shape, c["stem_width"], c["stem_kernel"], c["stem_stride"], w8, abits, "stem")]
        for st, width, kernel, stride, _, wbits in BLOCK_KEYS[:c["blocks"]]:
            segs.append(_block(segs[-1].out_shape, c[width], c[kernel], c[stride],
                               w8 if abits == 32 else c.get(wbits, 8), abits, st))
        segs.append(classifier_segment(segs[-1].out_shape, arch.classes, w8, abits))
        return tuple(segs)

    def enumerate_ops(self, spec: DSCNNSpec):
        ops = set()
        for wbits, w8, abits in PRECISION_BITS:
            segs = {conv_segment((1, spec.frames, spec.features), width, k, stride, w8, abits, "stem")
                    for width in spec.stem_width for k in spec.stem_kernel for stride in spec.stem_stride}
            ops.update(op for seg in segs for op in seg.ops)
            for b in range(1, max(spec.blocks) + 1):
                segs = {_block(seg.out_shape, width, k, stride, wbits, abits, f"b{b}")
                        for seg in segs for width in spec.width for k in spec.kernel for stride in spec.stride}
                ops.update(op for seg in segs for op in seg.ops)
                if b in spec.blocks:
                    for seg in segs:
                        ops.update(classifier_segment(seg.out_shape, spec.classes, w8, abits).ops)
        return ops

    def summary(self, arch):
        c = arch.choice
        blocks = " ".join(f"{c[f'b{i}_width']}k{c[f'b{i}_kernel']}" + (f"/{c[f'b{i}_wbits']}b" if f"b{i}_wbits" in c else "")
                          for i in range(1, c["blocks"] + 1))
        return f"stem{c['stem_width']}k{c['stem_kernel']}s{c['stem_stride']} {blocks} {arch.precision}"
