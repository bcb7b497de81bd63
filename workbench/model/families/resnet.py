"""Plain ResNet-style CNN for images (ResNet-8 for CIFAR-10 in MLPerf Tiny): a conv stem, stages of
residual blocks, then GAP + classifier.

Each stage is ``depth`` :class:`resblock <workbench.model.ops.ResBlockSpec>` ops of ``width`` channels; the
first block has the stage's stride and a 1x1 projection shortcut when the shape changes (identity
otherwise), the rest keep stride 1 and an identity shortcut.
"""
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
    require_odd,
    window_out,
)
from workbench.model.ops import Op, Segment


@dataclass(frozen=True)
class ResStageSpec:
    depth: tuple[int, ...]
    width: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]


@dataclass(frozen=True)
class ResNetSpec:
    channels: int
    resolution: tuple[int, ...]
    classes: int
    stem_width: tuple[int, ...]
    stem_kernel: tuple[int, ...]
    stem_stride: tuple[int, ...]
    stages: tuple[ResStageSpec, ...]


@lru_cache(maxsize=SEGMENT_MEMO_SIZE)  # bounded: see families.common
def _stage(shape, depth, width, kernel, stride, wbits, abits, stage) -> Segment:
    ops = []
    for b in range(depth):
        s = stride if b == 0 else 1
        out = window_out(shape, width, kernel, s)
        ops.append(Op("resblock", shape, out, kernel, s, skip=out == shape, wbits=wbits, abits=abits, stage=stage))
        shape = out
    return Segment(tuple(ops))


_STAGE_KEYS = tuple((f"s{i}", *(f"s{i}_{f}" for f in ("depth", "width", "kernel", "stride", "wbits")))
                    for i in range(1, 13))


@register
class ResNetFamily(Family):
    name = "resnet"
    help = "ResNet-style CNN for images: a conv stem, stages of residual blocks, GAP + classifier"
    data_layout = "images"

    def parse(self, f):
        channels, resolution = parse_image_input(f, 3)
        classes = int(f.number("classes", 10, minimum=2, maximum=100000, integer=True))
        stem_spec = parse_square_stem(f, 1)
        raw = f.raw("stages")
        if not isinstance(raw, list) or not 1 <= len(raw) <= len(_STAGE_KEYS):
            raise f.error(f"expected a list of 1 to {len(_STAGE_KEYS)} stages", "stages")
        stages = tuple(self._parse_stage(Fields(s, f.file, f"stages[{i}]")) for i, s in enumerate(raw))
        return ResNetSpec(channels, resolution, classes, *stem_spec, stages)

    @staticmethod
    def _parse_stage(s: Fields) -> ResStageSpec:
        spec = ResStageSpec(s.int_choices("depth", 1, maximum=12), s.int_choices("width", maximum=2048),
                            s.int_choices("kernel", 3, maximum=11), s.int_choices("stride", 1, maximum=4))
        require_odd(s, "kernel", spec.kernel)
        s.reject_unknown()
        return spec

    def sample(self, spec: ResNetSpec, s, data):
        channels = data_dim(data, 0, spec.channels)
        classes = spec.classes if data is None else data.classes
        r = s.choose("resolution", spec.resolution)
        s.choose("stem_width", spec.stem_width)
        s.choose("stem_kernel", spec.stem_kernel)
        s.choose("stem_stride", spec.stem_stride)
        stages = []
        for (st, *names, _), stage in zip(_STAGE_KEYS, spec.stages):
            for name, field in zip(names, ("depth", "width", "kernel", "stride")):
                s.choose(name, getattr(stage, field))
            stages.append(st)
        return (channels, r, r), classes, stages

    def lower(self, arch):
        c = arch.choice
        abits = arch.activation_bits
        w8 = 32 if abits == 32 else 8
        segs = [conv_segment(arch.input_shape, c["stem_width"], c["stem_kernel"], c["stem_stride"], w8, abits, "stem")]
        for st, depth, width, kernel, stride, wbits in _STAGE_KEYS:
            if depth not in c:
                break
            segs.append(_stage(segs[-1].out_shape, c[depth], c[width], c[kernel], c[stride],
                               w8 if abits == 32 else c.get(wbits, 8), abits, st))
        segs.append(classifier_segment(segs[-1].out_shape, arch.classes, w8, abits))
        return tuple(segs)

    def enumerate_ops(self, spec: ResNetSpec):
        ops = set()
        for wbits, w8, abits in PRECISION_BITS:
            segs = {conv_segment((spec.channels, r, r), width, k, stride, w8, abits, "stem")
                    for r in spec.resolution for width in spec.stem_width
                    for k in spec.stem_kernel for stride in spec.stem_stride}
            for i, st in enumerate(spec.stages, start=1):
                ops.update(op for seg in segs for op in seg.ops)
                segs = {_stage(seg.out_shape, depth, width, k, stride, wbits, abits, f"s{i}")
                        for seg in segs for depth in st.depth for width in st.width
                        for k in st.kernel for stride in st.stride}
            ops.update(op for seg in segs for op in seg.ops)
            for seg in segs:
                ops.update(classifier_segment(seg.out_shape, spec.classes, w8, abits).ops)
        return ops

    def summary(self, arch):
        c = arch.choice
        stages = []
        i = 1
        while f"s{i}_depth" in c:
            stages.append(f"{c[f's{i}_depth']}x{c[f's{i}_width']}k{c[f's{i}_kernel']}s{c[f's{i}_stride']}"
                          + (f"/{c[f's{i}_wbits']}b" if f"s{i}_wbits" in c else ""))
            i += 1
        return f"r{c['resolution']} stem{c['stem_width']} " + " ".join(stages) + f" {arch.precision}"
