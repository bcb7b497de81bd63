"""The profiler's ONNX graphs run and have the op's shapes; a tiny profile run writes a loadable LUT."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from workbench import profiler
from workbench.ops import OP_KINDS, Op
from workbench.profiles import load_profile
from workbench.space import all_spaces, enumerate_ops


def _one_op_per_kind_and_precision():
    """Per (space, kind, precision) one op: the smallest by MACs, so the test stays fast."""
    picked = {}
    for space in all_spaces():
        for op in enumerate_ops([space], profiler.HOST_PRECISIONS):
            key = (space.name, op.kind, op.precision)
            if key not in picked or op.macs < picked[key].macs:
                picked[key] = op
    return [pytest.param(op, id=op.key) for op in picked.values()]


OPS = _one_op_per_kind_and_precision()


def _run(model):
    sess = profiler.make_session(model)
    return sess.run(None, profiler.input_for(sess))[0]


def test_every_kind_is_covered():
    # kinds no shipped space picks (avgpool1d, 2-D pooling, flatten) get their graphs run in
    # tests/test_vocabulary.py, which covers every kind of the vocabulary
    assert {p.values[0].kind for p in OPS} | {"avgpool1d", "maxpool2d", "avgpool2d", "flatten"} == set(OP_KINDS)


@pytest.mark.parametrize("precision_bits", [(32, 32), (8, 8)])
def test_avgpool1d_graph(precision_bits):
    op = Op("avgpool1d", (16, 50), (16, 25), 2, 2, wbits=precision_bits[0], abits=precision_bits[1])
    assert _run(profiler.deployed_graph(op)).shape == (1, 16, 25)


@pytest.mark.parametrize("op", OPS)
def test_op_graph_runs_with_op_shapes(op):
    model = profiler.deployed_graph(op)
    out = _run(model)
    assert out.shape == (1, *op.out_shape)
    assert out.dtype == (np.float32 if op.precision == "fp32" else np.uint8)


def test_fp32_op_graph_matches_reference_math():
    """conv1d = Conv (same padding, bias) + Clip(0, 6): check against numpy."""
    op = next(p.values[0] for p in OPS if p.values[0].kind == "conv1d" and p.values[0].precision == "fp32")
    model = profiler.op_graph(op)
    w, b = (np.frombuffer(t.raw_data, np.float32).reshape(t.dims) for t in model.graph.initializer[:2])
    x = np.random.default_rng(3).standard_normal((1, *op.in_shape)).astype(np.float32)
    sess = profiler.make_session(model)
    got = sess.run(None, {"input": x})[0]
    pad = op.kernel // 2
    xp = np.pad(x[0], ((0, 0), (pad, pad)))
    ref = np.stack([sum(w[:, :, j] @ xp[:, t + j] for j in range(op.kernel)) + b for t in range(op.out_shape[1])], 1)
    np.testing.assert_allclose(got[0], np.clip(ref, 0, 6), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("space", ["vision", "audio-kws", "sensor-imu"])
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_arch_graph_output_shape(space, precision):
    sp = next(s for s in all_spaces() if s.name == space)
    arch = sp.random_archs(1, seed=1, precisions=[precision])[0]
    model = profiler.arch_graph(arch)
    sess = profiler.make_session(model)
    x = np.zeros((1, *arch.input_shape), np.float32)
    assert sess.run(None, {"input": x})[0].shape == (1, arch.classes)
    assert _run(profiler.deployed_graph(arch)).shape == (1, arch.classes)


def test_int8_graph_is_qdq():
    op = next(p.values[0] for p in OPS if p.values[0].kind == "mbconv" and p.values[0].precision == "int8")
    q = profiler.quantize_int8(profiler.op_graph(op), int8_io=False)
    types = {n.op_type for n in q.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= types
    stripped = profiler.deployed_graph(op)
    assert stripped.graph.input[0].type.tensor_type.elem_type == 2  # uint8 in, as inside an int8 network


def test_measure_returns_positive_robust_mean():
    op = OPS[0].values[0]
    mean, std, count = profiler.measure(profiler.deployed_graph(op), op.in_shape, warmup=2, repeats=10)
    assert mean > 0 and std >= 0 and count == 8


def test_session_settings_are_single_threaded():
    so = profiler.session_options()
    assert so.intra_op_num_threads == 1 and so.inter_op_num_threads == 1
    assert so.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL


def test_profile_device_writes_loadable_profile(tmp_path):
    out = tmp_path / "tiny-host"
    profiler.profile_device(out, limit=6, warmup=2, repeats=10, progress=False, calib_archs=1)
    profile = load_profile(out)
    assert profile.name == "tiny-host" and profile.device_class == "cpu"
    assert len(profile.lut.entries) == 6
    for e in profile.lut.entries.values():
        assert e.source == "measured" and e.count >= 1 and e.mean_ms > 0
        assert "onnxruntime" in e.reference
    # resumable: a second run keeps the measured rows and adds nothing new
    before = (out / "lut.csv").read_text()
    profiler.profile_device(out, limit=6, warmup=2, repeats=10, progress=False, calib_archs=1)
    assert (out / "lut.csv").read_text() == before


def test_w4a8_is_refused(tmp_path):
    with pytest.raises(ValueError):
        profiler.profile_device(tmp_path / "x", precisions=("w4a8",), limit=1, progress=False)
