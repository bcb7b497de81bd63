"""MobileNetV2-style inverted-residual network (MBConv blocks) for images."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from workbench._infra.yamlio import Fields
from workbench.model.families import Family, register
from workbench.model.families.common import (
    PRECISION_BITS,
    SEGMENT_MEMO_SIZE,
    classifier_segment,
    conv_segment,
    data_dim,
    parse_image_input,
    parse_square_stem,
)
from workbench.model.families.common import require_odd as _require_odd
from workbench.model.geometry import out_len
from workbench.model.ops import Op, Segment


@dataclass(frozen=True)
class StageSpec:
    depth: tuple[int, ...]
    width: tuple[int, ...]
    kernel: tuple[int, ...]
    expand: tuple[int, ...]
    stride: tuple[int, ...]


@dataclass(frozen=True)
class MBConvSpec:
    channels: int
    resolution: tuple[int, ...]
    classes: int
    stem_width: tuple[int, ...]
    stem_kernel: tuple[int, ...]
    stem_stride: tuple[int, ...]
    stages: tuple[StageSpec, ...]
    head_width: tuple[int, ...]


@lru_cache(maxsize=SEGMENT_MEMO_SIZE)  # bounded: see families.common
def _stage(shape, depth, width, kernel, expand, stride, wbits, abits, stage) -> Segment:
    """``depth`` MBConv blocks; the first has the stage stride, a residual where shapes allow."""
    ops = []
    for b in range(depth):
        s = stride if b == 0 else 1
        out = (width, out_len(shape[1], kernel, s), out_len(shape[2], kernel, s))
        ops.append(Op("mbconv", shape, out, kernel, s, hidden=shape[0] * expand, skip=s == 1 and shape[0] == width,
                      wbits=wbits, abits=abits, stage=stage))
        shape = out
    return Segment(tuple(ops))


# choice names of stage i, spelled once (lowering runs per scored architecture: keep it lean)
_STAGE_KEYS = tuple((f"s{i}", *(f"s{i}_{f}" for f in ("depth", "width", "kernel", "expand", "stride", "wbits")))
                    for i in range(1, 13))


@register
class MBConvFamily(Family):
    name = "mbconv"
    help = "MobileNetV2-style inverted-residual network (MBConv blocks) for images"
    data_layout = "images"

    def parse(self, f):
        channels, resolution = parse_image_input(f, 1)
        classes = int(f.number("classes", 10, minimum=2, maximum=100000, integer=True))
        stem_spec = parse_square_stem(f, 2)
        raw_stages = f.raw("stages")
        if not isinstance(raw_stages, list) or not raw_stages:
            raise f.error("expected a non-empty list of stages", "stages")
        if len(raw_stages) > len(_STAGE_KEYS):  # more would be dropped silently when lowering
            raise f.error(f"{len(raw_stages)} stages; the mbconv family lowers at most {len(_STAGE_KEYS)}", "stages")
        stages = tuple(self._parse_stage(Fields(s, f.file, f"stages[{i}]")) for i, s in enumerate(raw_stages))
        head = f.sub("head")
        head_width = head.int_choices("width", maximum=4096)
        head.reject_unknown()
        return MBConvSpec(channels, resolution, classes, *stem_spec, stages, head_width)

    @staticmethod
    def _parse_stage(s) -> StageSpec:
        spec = StageSpec(s.int_choices("depth", maximum=12), s.int_choices("width", maximum=2048),
                         s.int_choices("kernel", maximum=11), s.int_choices("expand", 1, maximum=12),
                         s.int_choices("stride", 1, maximum=4))
        _require_odd(s, "kernel", spec.kernel)
        s.reject_unknown()
        return spec

    def sample(self, spec: MBConvSpec, s, data):
        channels = data_dim(data, 0, spec.channels)
        classes = spec.classes if data is None else data.classes
        r = s.choose("resolution", spec.resolution)
        s.choose("stem_width", spec.stem_width)
        s.choose("stem_kernel", spec.stem_kernel)
        s.choose("stem_stride", spec.stem_stride)
        stages = []
        for i, st in enumerate(spec.stages, start=1):
            for field in ("depth", "width", "kernel", "expand", "stride"):
                s.choose(f"s{i}_{field}", getattr(st, field))
            stages.append(f"s{i}")
        s.choose("head_width", spec.head_width)
        return (channels, r, r), classes, stages

    def lower(self, arch):
        c = arch.choice
        abits = arch.activation_bits
        w8 = 32 if abits == 32 else 8
        segs = [conv_segment(arch.input_shape, c["stem_width"], c["stem_kernel"], c["stem_stride"], w8, abits, "stem")]
        for st, depth, width, kernel, expand, stride, wbits in _STAGE_KEYS:
            if depth not in c:
                break
            segs.append(_stage(segs[-1].out_shape, c[depth], c[width], c[kernel], c[expand], c[stride],
                               w8 if abits == 32 else c.get(wbits, 8), abits, st))
        segs.append(classifier_segment(segs[-1].out_shape, arch.classes, w8, abits, c["head_width"]))
        return tuple(segs)

    def enumerate_ops(self, spec: MBConvSpec):
        ops = set()
        for wbits, w8, abits in PRECISION_BITS:
            segs = {conv_segment((spec.channels, r, r), width, k, stride, w8, abits, "stem")
                    for r in spec.resolution for width in spec.stem_width
                    for k in spec.stem_kernel for stride in spec.stem_stride}
            for i, st in enumerate(spec.stages, start=1):
                ops.update(op for seg in segs for op in seg.ops)
                segs = {_stage(seg.out_shape, depth, width, k, e, stride, wbits, abits, f"s{i}")
                        for seg in segs for depth in st.depth for width in st.width
                        for k in st.kernel for e in st.expand for stride in st.stride}
            ops.update(op for seg in segs for op in seg.ops)
            for seg in segs:
                for width in spec.head_width:
                    ops.update(classifier_segment(seg.out_shape, spec.classes, w8, abits, width).ops)
        return ops

    def summary(self, arch):
        c = arch.choice
        stages = []
        i = 1
        while f"s{i}_depth" in c:
            stages.append(f"{c[f's{i}_depth']}x{c[f's{i}_width']}k{c[f's{i}_kernel']}e{c[f's{i}_expand']}"
                          + (f"/{c[f's{i}_wbits']}b" if f"s{i}_wbits" in c else ""))
            i += 1
        return (f"r{c['resolution']} stem{c['stem_width']} " + " ".join(stages)
                + f" head{c['head_width']} {arch.precision}" + ("" if arch.precision == "fp32" else f"/{arch.quant_mode}"))
