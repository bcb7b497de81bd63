"""DS-CNN (Zhang et al., "Hello Edge"): a conv stem then depthwise-separable blocks, then GAP + classifier.

Input is a (channels, frames, features) map: one channel of MFCC/LPC-style coefficients for keyword
spotting (time along H, coefficients along W), or an image (``channels: 3``; MobileNetV1 is this
family with per-block widths and strides). The stem may be non-square (DS-CNN's 10x4 stride 2 on a
49x10 MFCC map: ``kernel: 10, kernel_w: 4``). ``blocks`` is either one mapping whose choices every
block shares (``count``, ``width``, ``kernel``, ``stride``) or a list with one mapping per block.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from workbench._infra.yamlio import Fields
from workbench.model.families import Family, register
from workbench.model.families.common import (
    BLOCK_KEYS,
    PRECISION_BITS,
    SEGMENT_MEMO_SIZE,
    classifier_segment,
    conv2d,
    conv_segment,
    data_dim,
    require_odd,
)
from workbench.model.ops import Segment


@dataclass(frozen=True)
class DSBlockSpec:
    width: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]


@dataclass(frozen=True)
class DSCNNSpec:
    frames: int
    features: int
    classes: int
    stem_width: tuple[int, ...]
    stem_kernel: tuple[int, ...]
    stem_stride: tuple[int, ...]
    blocks: tuple[int, ...]
    block_specs: tuple[DSBlockSpec, ...]  # one per block position (the mapping form repeats one spec)
    channels: int = 1
    stem_kernel_w: tuple[int, ...] = ()  # empty: square stem
    stem_stride_w: tuple[int, ...] = ()


@lru_cache(maxsize=SEGMENT_MEMO_SIZE)  # bounded: see families.common
def _block(shape, width, kernel, stride, wbits, abits, stage) -> Segment:
    return Segment((conv2d(shape, width, kernel, stride, wbits, abits, stage, kind="dsconv2d"),))


def _block_spec(b: Fields) -> DSBlockSpec:
    spec = DSBlockSpec(b.int_choices("width", maximum=2048), b.int_choices("kernel", maximum=11),
                       b.int_choices("stride", 1, maximum=4))
    require_odd(b, "kernel", spec.kernel)
    return spec


@register
class DSCNNFamily(Family):
    name = "dscnn"
    help = "DS-CNN: a conv stem, depthwise-separable blocks, GAP + classifier (keyword spotting, MobileNetV1)"
    data_layout = "feature_maps"

    def parse(self, f):
        inp = f.sub("input")
        frames = int(inp.number("frames", minimum=4, maximum=4096, integer=True))
        features = int(inp.number("features", minimum=1, maximum=1024, integer=True))
        channels = int(inp.number("channels", 1, minimum=1, maximum=64, integer=True))
        inp.reject_unknown()
        classes = int(f.number("classes", 10, minimum=2, maximum=100000, integer=True))
        stem = f.sub("stem")
        stem_spec = (stem.int_choices("width", maximum=1024), stem.int_choices("kernel", 3, maximum=11),
                     stem.int_choices("stride", 2, maximum=4))
        stem_w = (stem.int_choices("kernel_w", maximum=11) if stem.has("kernel_w") else (),
                  stem.int_choices("stride_w", maximum=4) if stem.has("stride_w") else ())
        stem.reject_unknown()
        count, block_specs = self._parse_blocks(f)
        return DSCNNSpec(frames, features, classes, *stem_spec, count, block_specs, channels, *stem_w)

    @staticmethod
    def _parse_blocks(f: Fields):
        raw = f.raw("blocks")
        if isinstance(raw, list):
            if not 1 <= len(raw) <= len(BLOCK_KEYS):
                raise f.error(f"expected 1 to {len(BLOCK_KEYS)} blocks, got {len(raw)}", "blocks")
            specs = []
            for i, item in enumerate(raw):
                b = Fields(item, f.file, f"blocks[{i}]")
                specs.append(_block_spec(b))
                b.reject_unknown()
            return (len(specs),), tuple(specs)
        blocks = f.sub("blocks")
        count = blocks.int_choices("count", maximum=len(BLOCK_KEYS))
        spec = _block_spec(blocks)
        blocks.reject_unknown()
        return count, (spec,) * max(count)

    def sample(self, spec: DSCNNSpec, s, data):
        # series data (features, frames): the coefficients are the map's width, one channel; image-like data
        # (C, H, W) keep their channels and are resized to the space's (frames, features) map
        if data is not None and len(data.shape) == 3:
            channels, features = data.shape[0], spec.features
        else:
            channels, features = spec.channels, data_dim(data, 0, spec.features)
        classes = spec.classes if data is None else data.classes
        s.choose("stem_width", spec.stem_width)
        s.choose("stem_kernel", spec.stem_kernel)
        s.choose("stem_stride", spec.stem_stride)
        if spec.stem_kernel_w:
            s.choose("stem_kernel_w", spec.stem_kernel_w)
        if spec.stem_stride_w:
            s.choose("stem_stride_w", spec.stem_stride_w)
        count = s.choose("blocks", spec.blocks)
        stages = []
        for i, block in zip(range(1, count + 1), spec.block_specs):
            s.choose(f"b{i}_width", block.width)
            s.choose(f"b{i}_kernel", block.kernel)
            s.choose(f"b{i}_stride", block.stride)
            stages.append(f"b{i}")
        return (channels, spec.frames, features), classes, stages

    def lower(self, arch):
        c = arch.choice
        abits = arch.activation_bits
        w8 = 32 if abits == 32 else 8
        segs = [conv_segment(arch.input_shape, c["stem_width"], c["stem_kernel"], c["stem_stride"], w8, abits, "stem",
                             c.get("stem_kernel_w", 0), c.get("stem_stride_w", 0))]
        for st, width, kernel, stride, _, wbits in BLOCK_KEYS[:c["blocks"]]:
            segs.append(_block(segs[-1].out_shape, c[width], c[kernel], c[stride],
                               w8 if abits == 32 else c.get(wbits, 8), abits, st))
        segs.append(classifier_segment(segs[-1].out_shape, arch.classes, w8, abits))
        return tuple(segs)

    def enumerate_ops(self, spec: DSCNNSpec):
        ops = set()
        stem_kw = spec.stem_kernel_w or (0,)
        stem_sw = spec.stem_stride_w or (0,)
        for wbits, w8, abits in PRECISION_BITS:
            segs = {conv_segment((spec.channels, spec.frames, spec.features), width, k, stride, w8, abits, "stem", kw, sw)
                    for width in spec.stem_width for k in spec.stem_kernel for stride in spec.stem_stride
                    for kw in stem_kw for sw in stem_sw}
            ops.update(op for seg in segs for op in seg.ops)
            for b, block in zip(range(1, max(spec.blocks) + 1), spec.block_specs):
                segs = {_block(seg.out_shape, width, k, stride, wbits, abits, f"b{b}")
                        for seg in segs for width in block.width for k in block.kernel for stride in block.stride}
                ops.update(op for seg in segs for op in seg.ops)
                if b in spec.blocks:
                    for seg in segs:
                        ops.update(classifier_segment(seg.out_shape, spec.classes, w8, abits).ops)
        return ops

    def summary(self, arch):
        c = arch.choice
        blocks = " ".join(f"{c[f'b{i}_width']}k{c[f'b{i}_kernel']}" + (f"s{c[f'b{i}_stride']}" if c[f'b{i}_stride'] > 1 else "")
                          + (f"/{c[f'b{i}_wbits']}b" if f"b{i}_wbits" in c else "")
                          for i in range(1, c["blocks"] + 1))
        kernel = f"{c['stem_kernel']}" + (f"x{c['stem_kernel_w']}" if "stem_kernel_w" in c else "")
        return f"stem{c['stem_width']}k{kernel}s{c['stem_stride']} {blocks} {arch.precision}"
