"""MobileNetV2-style inverted-residual network (MBConv blocks) for images."""
from __future__ import annotations

from dataclasses import dataclass

from ..ops import Op, out_len
from ..yamlio import Fields
from . import Family, register
from .common import PRECISION_BITS, classifier, conv2d, data_dim, require_odd as _require_odd


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


@register
class MBConvFamily(Family):
    name = "mbconv"

    def parse(self, f):
        inp = f.sub("input")
        channels = int(inp.number("channels", 1, minimum=1, maximum=64, integer=True))
        resolution = inp.int_choices("resolution", minimum=8, maximum=1024)
        inp.reject_unknown()
        classes = int(f.number("classes", 10, minimum=2, maximum=100000, integer=True))
        stem = f.sub("stem")
        stem_spec = (stem.int_choices("width", maximum=1024), stem.int_choices("kernel", 3, maximum=11),
                     stem.int_choices("stride", 2, maximum=4))
        _require_odd(stem, "kernel", stem_spec[1])
        stem.reject_unknown()
        raw_stages = f.raw("stages")
        if not isinstance(raw_stages, list) or not raw_stages:
            raise f.error("expected a non-empty list of stages", "stages")
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
        ops = [conv2d(arch.input_shape, c["stem_width"], c["stem_kernel"], c["stem_stride"], w8, abits, "stem")]
        shape = ops[0].out_shape
        i = 1
        while f"s{i}_depth" in c:
            stage = f"s{i}"
            wbits = arch.weight_bits(stage)
            for b in range(c[f"{stage}_depth"]):
                stride = c[f"{stage}_stride"] if b == 0 else 1
                cin, h, w = shape
                cout, k = c[f"{stage}_width"], c[f"{stage}_kernel"]
                out = (cout, out_len(h, k, stride), out_len(w, k, stride))
                ops.append(Op("mbconv", shape, out, k, stride, hidden=cin * c[f"{stage}_expand"],
                              skip=stride == 1 and cin == cout, wbits=wbits, abits=abits, stage=stage))
                shape = out
            i += 1
        ops.append(conv2d(shape, c["head_width"], 1, 1, w8, abits, "head"))
        ops.extend(classifier(ops[-1].out_shape, arch.classes, w8, abits))
        return tuple(ops)

    def enumerate_ops(self, spec: MBConvSpec):
        ops = set()
        for wbits, w8, abits in PRECISION_BITS:
            shapes = set()
            for r in spec.resolution:
                for width in spec.stem_width:
                    for k in spec.stem_kernel:
                        for stride in spec.stem_stride:
                            stem = conv2d((spec.channels, r, r), width, k, stride, w8, abits, "stem")
                            ops.add(stem)
                            shapes.add(stem.out_shape)
            for i, st in enumerate(spec.stages, start=1):
                shapes = self._enumerate_stage(st, f"s{i}", shapes, wbits, abits, ops)
            for shape in shapes:
                for width in spec.head_width:
                    head = conv2d(shape, width, 1, 1, w8, abits, "head")
                    ops.add(head)
                    ops.update(classifier(head.out_shape, spec.classes, w8, abits))
        return ops

    @staticmethod
    def _enumerate_stage(st: StageSpec, stage, shapes, wbits, abits, ops) -> set:
        out_shapes = set()
        for shape in shapes:
            for width in st.width:
                for k in st.kernel:
                    for e in st.expand:
                        for stride in st.stride:
                            cur = shape
                            for b in range(max(st.depth)):
                                s = stride if b == 0 else 1
                                out = (width, out_len(cur[1], k, s), out_len(cur[2], k, s))
                                ops.add(Op("mbconv", cur, out, k, s, hidden=cur[0] * e, skip=s == 1 and cur[0] == width,
                                           wbits=wbits, abits=abits, stage=stage))
                                cur = out
                                if b + 1 in st.depth:
                                    out_shapes.add(cur)
        return out_shapes

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
