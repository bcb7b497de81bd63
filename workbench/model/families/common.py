"""Helpers shared by the family lowerings."""
from __future__ import annotations

from functools import lru_cache

from workbench.model.geometry import out_len
from workbench.model.ops import Op, Segment


def conv2d(shape, cout, kernel, stride, wbits, abits, stage, kernel_w=0, stride_w=0, kind="conv2d") -> Op:
    """A 'same'-padded 2-D conv op (``kind`` conv2d or dsconv2d); width-side kernel/stride 0 = square."""
    return Op(kind, shape, window_out(shape, cout, kernel, stride, kernel_w, stride_w), kernel, stride, wbits=wbits,
              abits=abits, stage=stage, **window_w(kernel, stride, kernel_w, stride_w))


def window_out(shape, cout, kernel, stride, kernel_w=0, stride_w=0) -> tuple[int, int, int]:
    """Output shape of a 'same' 2-D window op on ``shape`` (C, H, W)."""
    return (cout, out_len(shape[1], kernel, stride), out_len(shape[2], kernel_w or kernel, stride_w or stride))


def window_w(kernel, stride, kernel_w, stride_w) -> dict:
    """The Op's width-side fields, normalised so a square window is spelled one way (kernel_w = stride_w = 0)."""
    kw, sw = kernel_w or kernel, stride_w or stride
    return {} if (kw, sw) == (kernel, stride) else {"kernel_w": kw, "stride_w": sw}


def classifier(shape, classes, wbits, abits) -> tuple[Op, Op]:
    """Global average pooling then a fully connected layer (kept at 8-bit weights when quantised)."""
    gap = Op("gap", shape, (shape[0],), wbits=wbits, abits=abits, stage="head")
    fc = Op("linear", (shape[0],), (classes,), wbits=wbits, abits=abits, stage="head")
    return gap, fc


def data_dim(data, index, default):
    """A dimension of the data's sample shape, or the space's default when there is no data."""
    return default if data is None else data.shape[index]


# (stage weight bits, stem/head weight bits, activation bits) of the three precisions
PRECISION_BITS = ((32, 32, 32), (8, 8, 8), (4, 8, 8))


def require_odd(fields, key, kernels) -> None:
    """'Same' padding needs odd kernels; say which field holds an even one."""
    for k in kernels:
        if k % 2 == 0:
            raise fields.error(f"kernel {k} must be odd (same padding)", key)


# Segments are memoised so that architectures sharing a stage share one Segment object (cheap keys for the
# cost and memory memos, lowering once per stage). Bounded per function: 3,000 random architectures of each
# shipped space produce at most ~2,800 distinct segments (vision's MBConv stages), so 8,192 keeps every
# segment of a long search, while a space with very long choice lists cannot grow the memo without limit.
SEGMENT_MEMO_SIZE = 8192


@lru_cache(maxsize=SEGMENT_MEMO_SIZE)
def conv_segment(shape, cout, kernel, stride, wbits, abits, stage, kernel_w=0, stride_w=0) -> Segment:
    """A single conv2d+BN+ReLU6 (stems)."""
    return Segment((conv2d(shape, cout, kernel, stride, wbits, abits, stage, kernel_w, stride_w),))


@lru_cache(maxsize=SEGMENT_MEMO_SIZE)
def classifier_segment(shape, classes, wbits, abits, head_width=0) -> Segment:
    """[1x1 conv to ``head_width`` channels,] global average pooling and the fully connected classifier."""
    ops = []
    if head_width:
        ops.append(conv2d(shape, head_width, 1, 1, wbits, abits, "head"))
        shape = ops[-1].out_shape
    ops.extend(classifier(shape, classes, wbits, abits))
    return Segment(tuple(ops))


# choice names of block i (b1, b2, …), spelled once: lowering runs per scored architecture
BLOCK_KEYS = tuple((f"b{i}", f"b{i}_width", f"b{i}_kernel", f"b{i}_stride", f"b{i}_pool", f"b{i}_wbits")
                   for i in range(1, 17))


def parse_image_input(f, default_channels: int) -> tuple[int, tuple[int, ...]]:
    """``input: {channels, resolution}`` of the image families: (channels, resolution choices)."""
    inp = f.sub("input")
    channels = int(inp.number("channels", default_channels, minimum=1, maximum=64, integer=True))
    resolution = inp.int_choices("resolution", minimum=8, maximum=1024)
    inp.reject_unknown()
    return channels, resolution


def parse_square_stem(f, default_stride: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """``stem: {width, kernel, stride}`` of a square conv stem: (width, kernel, stride) choices."""
    stem = f.sub("stem")
    spec = (stem.int_choices("width", maximum=1024), stem.int_choices("kernel", 3, maximum=11),
            stem.int_choices("stride", default_stride, maximum=4))
    require_odd(stem, "kernel", spec[1])
    stem.reject_unknown()
    return spec
