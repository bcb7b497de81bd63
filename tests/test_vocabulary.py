"""The op vocabulary: every kind defined once (ops.SPECS) and covered by cost, latency model, builder,
profiler and export; keys of existing ops unchanged; the MLPerf Tiny reference spaces count exactly."""
from __future__ import annotations

import pytest
import torch

from workbench import estimate, load_profile, load_space
from workbench.model.builder import build_op, deployed_params
from workbench._infra.errors import WorkbenchError
from workbench.export.formats import FORMATS
from workbench.hardware.latency_model import LAYER_TYPES, load_constants, op_cycles
from workbench.model.ops import OP_KINDS, SPECS, Op
from workbench.calibration.profiler import deployed_graph, input_for, make_session
from workbench.hardware.profiles import PROFILES_DIR
from workbench.model.space import list_spaces

# One or more ops per kind with MACs and deployed params written out by hand (formula in the comment).
SAMPLES = {
    "conv2d": [  # 25*5 positions * 64 filters * 10*4*1 taps; 64*40 weights + 64 biases
        (Op("conv2d", (1, 49, 10), (64, 25, 5), 10, 2, kernel_w=4), 25 * 5 * 64 * 40, 64 * 40 + 64),
        (Op("conv2d", (3, 8, 8), (4, 4, 4), 3, 2), 16 * 4 * 27, 4 * 27 + 4)],
    "conv1d": [(Op("conv1d", (2, 8), (4, 8), 3, 1), 8 * 4 * 6, 24 + 4)],
    "mbconv": [  # expand 4->12 on 64 px, dw 3x3 on 64 px, project 12->4 on 64 px
        (Op("mbconv", (4, 8, 8), (4, 8, 8), 3, 1, hidden=12, skip=True), 64 * 48 + 64 * 108 + 64 * 48,
         (48 + 12) + (108 + 12) + (48 + 4))],
    "dsconv2d": [  # dw 3x3 on 25*5 px + pw 64->64
        (Op("dsconv2d", (64, 25, 5), (64, 25, 5), 3, 1), 125 * 64 * 9 + 125 * 64 * 64, (576 + 64) + (4096 + 64)),
        (Op("dsconv2d", (4, 6, 6), (8, 3, 2), 3, 2, kernel_w=5, stride_w=3), 6 * 4 * 15 + 6 * 8 * 4, (60 + 4) + (32 + 8))],
    "resblock": [  # conv 3x3 16->32 s2, conv 3x3 32->32, 1x1 16->32 s2 shortcut, all on 16x16 outputs
        (Op("resblock", (16, 32, 32), (32, 16, 16), 3, 2), 256 * 32 * (144 + 288 + 16),
         (32 * 144 + 32) + (32 * 288 + 32) + (32 * 16 + 32)),
        (Op("resblock", (8, 6, 6), (8, 6, 6), 3, 1, skip=True), 2 * 36 * 8 * 72, 2 * (8 * 72 + 8))],
    "maxpool1d": [(Op("maxpool1d", (16, 50), (16, 25), 2, 2), 0, 0)],
    "avgpool1d": [(Op("avgpool1d", (16, 50), (16, 25), 2, 2), 0, 0)],
    "maxpool2d": [(Op("maxpool2d", (8, 8, 8), (8, 4, 4), 2, 2), 0, 0)],
    "avgpool2d": [(Op("avgpool2d", (64, 25, 5), (64, 1, 1), 24, 24, kernel_w=5, stride_w=5), 0, 0)],
    "gap": [(Op("gap", (16, 4, 4), (16,)), 0, 0)],
    "flatten": [(Op("flatten", (8, 2, 3), (48,)), 0, 0)],
    "linear": [(Op("linear", (64,), (12,)), 64 * 12, 64 * 12 + 12)],
    "linear_relu": [(Op("linear_relu", (640,), (128,)), 640 * 128, 640 * 128 + 128)],
}
CASES = [pytest.param(op, macs, params, id=op.key) for kind in SAMPLES for op, macs, params in SAMPLES[kind]]


def int8(op: Op) -> Op:
    return Op(op.kind, op.in_shape, op.out_shape, op.kernel, op.stride, op.hidden, op.skip, 8, 8,
              kernel_w=op.kernel_w, stride_w=op.stride_w)


def test_every_kind_has_a_spec_and_a_sample():
    assert set(SAMPLES) == set(SPECS) == set(OP_KINDS)
    for kind, spec in zip(SPECS.names(), SPECS.entries()):
        assert spec.name == kind and spec.help and spec.tflite_ops


PLUMBING = {"PAD", "TRANSPOSE", "RESHAPE", "QUANTIZE", "DEQUANTIZE"}


@pytest.mark.parametrize("op, macs, params", CASES)
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_memory_model_lowers_every_kind_to_its_declared_tflite_operators(op, macs, params, precision):
    """The TFLM memory/flash model reads each kind's lowering from its spec: every kind has one, and the
    compute operators it emits are the ones the spec declares (layout plumbing aside)."""
    from workbench.hardware import memory
    from workbench.model import tflite_graph

    op = op if precision == "fp32" else int8(op)
    graph = tflite_graph.lower([op], op.in_shape)
    emitted = [t.code for t in graph.ops if t.code not in PLUMBING]
    assert emitted or op.kind == "flatten"
    assert set(emitted) <= set(op.spec.tflite_ops) | {"DEPTHWISE_CONV_2D"}  # 1-channel convs become depthwise
    assert memory.arena(graph).total > 0 and memory.file_bytes(graph) > 0


@pytest.mark.parametrize("op, macs, params", CASES)
def test_cost_matches_the_hand_formula(op, macs, params):
    assert op.macs == macs and op.params == params
    assert op.key.startswith(op.kind + "-") and op.key.endswith("-prec:fp32")
    consts = load_constants(PROFILES_DIR / "stm32f746" / "latency_model.yaml")
    assert op_cycles(int8(op), consts) > 0
    assert all(op.spec.layer_type(layer, op) in (*LAYER_TYPES, None) for layer in op.layers)


@pytest.mark.parametrize("op, macs, params", CASES)
def test_builder_module_has_the_op_shape_and_params(op, macs, params):
    torch.manual_seed(0)
    module = build_op(op).eval()
    with torch.no_grad():
        out = module(torch.randn(2, *op.in_shape))
    assert tuple(out.shape[1:]) == op.out_shape
    assert deployed_params(module) == params


@pytest.mark.parametrize("op, macs, params", CASES)
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_profiler_graph_runs_in_onnxruntime(op, macs, params, precision):
    sess = make_session(deployed_graph(op, precision))
    out = sess.run(None, input_for(sess))[0]
    assert out.shape == (1, *op.out_shape)


@pytest.mark.parametrize("kind", OP_KINDS)
def test_export_support_is_declared_by_every_format(kind):
    for fmt in FORMATS.entries():
        assert kind in fmt.op_kinds, (fmt.name, kind)


def test_square_keys_are_unchanged_and_non_square_keys_spell_both_sides():
    assert Op("conv2d", (3, 32, 32), (16, 16, 16), 3, 2).key == \
        "conv2d-input:32x32x3-output:16x16x16-kernel:3-stride:2-prec:fp32"
    assert Op("conv2d", (1, 49, 10), (64, 25, 5), 10, 2, kernel_w=4).key == \
        "conv2d-input:49x10x1-output:25x5x64-kernel:10x4-stride:2x2-prec:fp32"
    assert Op("resblock", (16, 8, 8), (16, 8, 8), 3, 1, skip=True).key.endswith("-kernel:3-stride:1-skip:1-prec:fp32")


def test_residual_block_keeps_the_block_input_alive():
    op = int8(Op("resblock", (16, 32, 32), (32, 16, 16), 3, 2))
    x, y = 16 * 32 * 32, 32 * 16 * 16
    # second conv: its input, output and the held block input; shortcut: x, its output and the held main output
    assert [(l.in_elems, l.out_elems, l.held_elems) for l in op.layers] == \
        [(x, y, 0), (y, y, x), (x, y, y), (2 * y, y, 0)]
    assert op.peak_bytes == max(y + y + x, x + y + y, 3 * y)


def test_unknown_kind_is_a_workbench_error():
    with pytest.raises(WorkbenchError, match="unknown op kind 'conv3d'"):
        Op("conv3d", (1, 4, 4), (1, 4, 4)).key


# ---------------------------------------------------------------- the MLPerf Tiny reference spaces

def _dw_block(hw, cin, cout):
    """(MACs, deployed params) of a 3x3 depthwise-separable block on an hw-pixel output."""
    return hw * cin * 9 + hw * cin * cout, (cin * 9 + cin) + (cin * cout + cout)


def _keras_bn(channels):
    return 4 * channels  # BatchNormalization: gamma, beta, moving mean, moving variance


def test_kws_dscnn_counts():
    arch = load_space("mlperf-kws").random_archs(1)[0]
    block_macs, block_params = _dw_block(25 * 5, 64, 64)
    macs = 25 * 5 * 64 * 10 * 4 + 4 * block_macs + 64 * 12
    params = (10 * 4 * 64 + 64) + 4 * block_params + (64 * 12 + 12)
    assert (arch.macs, arch.n_params) == (macs, params) == (2_656_768, 22_604)
    assert arch.input_shape == (1, 49, 10) and arch.ops[0].key.endswith("kernel:10x4-stride:2x2-prec:" + arch.precision)
    # Keras counts each BatchNormalization (after the conv and after every dw and pw layer) on top
    assert params + _keras_bn(64 * 9) == 24_908


def test_vww_mobilenet_v1_counts():
    arch = load_space("mlperf-vww").random_archs(1)[0]
    plan = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)] + [(128, 1)] * 5 + [(256, 2), (256, 1)]
    macs, params, side, cin = 48 * 48 * 8 * 27, 8 * 27 + 8, 48, 8
    for cout, stride in plan:
        side //= stride
        m, p = _dw_block(side * side, cin, cout)
        macs, params, cin = macs + m, params + p, cout
    macs, params = macs + 256 * 2, params + 256 * 2 + 2
    assert arch.input_shape == (3, 96, 96) and side == 3
    assert (arch.macs, arch.n_params) == (macs, params) == (7_489_664, 210_850)


def test_ic_resnet8_counts():
    arch = load_space("mlperf-ic").random_archs(1)[0]
    conv = lambda hw, cin, cout, k: (hw * cout * cin * k * k, cout * cin * k * k + cout)  # noqa: E731
    parts = [conv(1024, 3, 16, 3), conv(1024, 16, 16, 3), conv(1024, 16, 16, 3),
             conv(256, 16, 32, 3), conv(256, 32, 32, 3), conv(256, 16, 32, 1),
             conv(64, 32, 64, 3), conv(64, 64, 64, 3), conv(64, 32, 64, 1), (64 * 10, 64 * 10 + 10)]
    macs, params = (sum(p[i] for p in parts) for i in (0, 1))
    assert (arch.macs, arch.n_params) == (macs, params) == (12_501_632, 77_706)
    assert [op.kind for op in arch.ops] == ["conv2d", "resblock", "resblock", "resblock", "gap", "linear"]
    assert [op.skip for op in arch.ops[1:4]] == [True, False, False]
    assert params + _keras_bn(16 + 2 * 16 + 2 * 32 + 2 * 64) == 78_666  # BN after stem and both convs of a block


def test_ad_autoencoder_counts():
    arch = load_space("mlperf-ad").random_archs(1)[0]
    widths = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640]
    macs = sum(a * b for a, b in zip(widths, widths[1:]))
    params = sum(a * b + b for a, b in zip(widths, widths[1:]))
    assert (arch.macs, arch.n_params) == (macs, params) == (264_192, 265_864)
    assert [op.kind for op in arch.ops] == ["linear_relu"] * 9 + ["linear"]
    assert params + _keras_bn(sum(widths[1:-1])) == 269_992


@pytest.mark.parametrize("name", ["mlperf-kws", "mlperf-vww", "mlperf-ic", "mlperf-ad"])
def test_reference_spaces_build_and_are_fixed(name):
    space = load_space(name)
    archs = space.random_archs(5, seed=3, precisions=["fp32"])
    assert len(set(archs)) == 1  # fixed choices: every draw is the reference architecture
    from workbench.model.builder import build_model, check_shapes

    model = build_model(archs[0])
    check_shapes(model)
    assert deployed_params(model) == archs[0].n_params


@pytest.mark.parametrize("device", ["stm32f746", "stm32l4r5", "rpi4"])
def test_modeled_luts_cover_the_reference_spaces(device):
    profile = load_profile(device)
    for name in ("mlperf-kws", "mlperf-vww", "mlperf-ic", "mlperf-ad"):
        for arch in load_space(name).random_archs(4, seed=0, precisions=profile.precisions):
            for op in arch.ops:  # every op has its own LUT row (nothing interpolated)
                ms, interpolated = profile.latency.op_latency(op)
                assert not interpolated and ms > 0, op.key


def test_measured_host_lut_covers_every_shipped_space_reference_models_included():
    """host-cpu's LUT is measured (``workbench profile``) over every op the shipped spaces can produce, the
    reference models' new kinds included: nothing is interpolated, and every entry says it was measured."""
    profile = load_profile("host-cpu")
    assert {e.source for e in profile.latency.lut.entries.values()} == {"measured"}
    for path in list_spaces():
        space = load_space(path)
        for arch in space.random_archs(10, seed=9, precisions=profile.precisions):
            assert estimate(arch, profile).interpolated_ops == 0, (space.name, arch.summary())


def test_families_take_any_input_channels_and_non_square_stems(tmp_path):
    path = tmp_path / "ds3.yaml"
    path.write_text("name: ds3\nfamily: dscnn\ninput: {frames: 20, features: 16, channels: 3}\nclasses: 4\n"
                    "stem: {width: 8, kernel: 5, kernel_w: 3, stride: 2, stride_w: 1}\n"
                    "blocks: {count: [1, 2], width: [8, 16], kernel: 3, stride: [1, 2]}\n")
    from workbench.model.builder import build_model, check_shapes

    for arch in load_space(path).random_archs(4, seed=1):
        assert arch.input_shape == (3, 20, 16)
        assert arch.ops[0].key.split("-")[2:5] == ["output:10x16x8", "kernel:5x3", "stride:2x1"]
        check_shapes(build_model(arch))


def test_resnet_and_mlp_families_search_from_yaml(tmp_path):
    import optuna

    from workbench import TrialSuggester

    res = tmp_path / "res.yaml"
    res.write_text("name: res\nfamily: resnet\ninput: {channels: 1, resolution: [16, 24]}\nclasses: 3\n"
                   "stem: {width: 8}\nstages:\n  - {depth: [1, 2], width: [8, 16]}\n  - {depth: 1, width: 16, stride: 2}\n")
    mlp = tmp_path / "mlp.yaml"
    mlp.write_text("name: mlp\nfamily: mlp\ninput: {features: 20}\nclasses: 3\nlayers: {count: [1, 3], width: [8, 16]}\n")
    for path in (res, mlp):
        space = load_space(path)
        archs = space.random_archs(10, seed=2)
        assert len(set(archs)) > 1
        arch = archs[0]
        assert space.sample(TrialSuggester(optuna.trial.FixedTrial(dict(arch.choices)))) == arch
        from workbench.model.space import enumerate_ops

        keys = {op.key for op in enumerate_ops([space], ("fp32", "int8", "w4a8"))}
        assert all(set(a.op_keys) <= keys for a in archs)


def test_mlp_flattens_multi_dimensional_data():
    from workbench.model.space import DataShape

    arch = load_space("mlperf-ad").sample(__import__("workbench").RandomSuggester(0), data=DataShape((5, 128), 640))
    assert arch.ops[0].kind == "flatten" and arch.ops[0].out_shape == (640,)
    assert arch.macs == 264_192  # the flatten costs no MACs
