"""The profiler's ONNX graphs run and have the op's shapes; a tiny profile run writes a loadable LUT."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from workbench.calibration import profiler
from workbench.model.ops import OP_KINDS, Op
from workbench.hardware.profiles import load_profile
from workbench.model.space import all_spaces, enumerate_ops


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


def test_timing_statistic_is_the_mean_of_the_fastest_runs(monkeypatch):
    """A fake clock makes run i take i+1 ms (in shuffled order): 10 runs keep the fastest 8."""
    from workbench._infra import timing

    durations = iter(np.random.default_rng(0).permutation(np.arange(1, 11)) * 1e-3)
    ticks = []

    def clock():
        ticks.append(len(ticks))
        return 0.0 if len(ticks) % 2 else next(durations)

    calls = []
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    t = timing.time_calls(lambda: calls.append(1), warmup=3, repeats=10)
    assert len(calls) == 13  # warm-up runs are called, not timed
    assert (t.kept, t.repeats, t.warmup) == (8, 10, 3)
    assert t.mean_ms == pytest.approx(4.5) and t.std_ms == pytest.approx(np.std(np.arange(1, 9)))
    record = t.to_dict()
    assert record["ms"] == 4.5 and record["statistic"] == "mean of the fastest 80% of timed runs"


def test_measure_times_the_graph_with_the_shared_statistic():
    op = OPS[0].values[0]
    mean, std, count = profiler.measure(profiler.deployed_graph(op), op.in_shape, warmup=2, repeats=10)
    assert count == 8 and 0 < mean < 1e3 and 0 <= std < mean  # 10 runs, the fastest 80 % kept
    with pytest.raises(ValueError, match="model input is"):
        profiler.measure(profiler.deployed_graph(op), (3, 3, 3), warmup=0, repeats=1)


def test_one_session_configuration_for_profiler_and_exported_files(tmp_path):
    """The LUT's graphs and an exported ONNX file run under the same settings (one helper)."""
    from workbench._infra import onnx_graph
    from workbench.export.formats.onnx_format import OnnxRunner

    so = profiler.session_options()
    assert so.intra_op_num_threads == 1 and so.inter_op_num_threads == 1
    assert so.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    op = OPS[0].values[0]
    model = profiler.op_graph(op)
    assert model.opset_import[0].version == onnx_graph.OPSET and model.ir_version == onnx_graph.IR_VERSION
    path = tmp_path / "op.onnx"
    path.write_bytes(model.SerializeToString())
    runner = OnnxRunner(path)
    x = np.random.default_rng(0).standard_normal((1, *op.in_shape)).astype(np.float32)
    np.testing.assert_array_equal(runner.predict(x), profiler.make_session(model).run(None, {"input": x})[0])


def _fake_measure(model, input_shape=None, warmup=0, repeats=1):
    """A deterministic 'measurement': 2 us of fixed cost plus 1 us per node."""
    return 0.002 + 0.001 * len(model.graph.node), 0.0001, 8


def test_profile_device_writes_lut_calibration_and_profile(tmp_path, monkeypatch):
    """Rows are the raw one-op times minus the calibrated per-op overhead; profile.yaml and
    calibration.json hold the same constants; a resumed run re-measures nothing."""
    import json

    from workbench.calibration import op_overhead

    for module in (profiler, op_overhead):
        monkeypatch.setattr(module, "measure", _fake_measure)
    monkeypatch.setattr(op_overhead, "run_overhead_ms", lambda warmup, repeats: 0.0015)
    out = tmp_path / "tiny-host"
    profiler.profile_device(out, limit=6, warmup=2, repeats=10, progress=False, calib_archs=1)
    cal = json.loads((out / "calibration.json").read_text())
    assert cal["per_inference_ms"] == 0.0015 and cal["per_op_ms"] >= 0.0015 and cal["archs"] == len(all_spaces())
    profile = load_profile(out)
    assert profile.name == "tiny-host" and profile.device_class == "cpu"
    assert profile.per_inference_ms == pytest.approx(0.0015)
    assert len(profile.latency.lut.entries) == 6
    ops = {op.key: op for op in enumerate_ops(all_spaces(), profiler.HOST_PRECISIONS)[:6]}
    assert set(profile.latency.lut.entries) == set(ops)
    for key, e in profile.latency.lut.entries.items():
        raw = _fake_measure(profiler.deployed_graph(ops[key]))[0]
        assert e.mean_ms == pytest.approx(max(raw - cal["per_op_ms"], profiler.MIN_MS), abs=1e-6)
        assert e.source == "measured" and e.count == 8
        assert "mean of the fastest 80% of timed runs (10 runs)" in e.reference
    before = (out / "lut.csv").read_text()
    monkeypatch.setattr(profiler, "measure", lambda *a, **k: pytest.fail("a resumed run re-measured an op"))
    profiler.profile_device(out, limit=6, warmup=2, repeats=10, progress=False, calib_archs=1)
    assert (out / "lut.csv").read_text() == before


def test_profile_device_really_measures(tmp_path):
    out = tmp_path / "host"
    profiler.profile_device(out, limit=2, warmup=1, repeats=5, progress=False, calib_archs=0)
    entries = load_profile(out).latency.lut.entries.values()
    assert len(entries) == 2 and all(e.count == 4 and e.mean_ms >= profiler.MIN_MS for e in entries)


def test_profile_yaml_survives_awkward_names(tmp_path, monkeypatch):
    """Folder and CPU names are written by the yaml library: a numeric folder name stays a string, a
    CPU name with ':', '#' and quotes round-trips, and the one-line rewrite of measured_on still works."""
    from workbench.calibration import host_profile

    cpu = 'Weird: CPU # "v2" @ 3 GHz'
    monkeypatch.setattr(host_profile, "cpu_facts", lambda: (cpu, 3000.0, 2048))
    monkeypatch.setattr(host_profile, "this_machine", lambda: {"cpu": cpu, "cores": 3, "runtime": "onnxruntime 9"})
    import yaml

    from workbench.hardware.lut import entry_for, write_lut

    path = host_profile.write_profile_yaml(tmp_path / "1234", ["fp32"], 0.004, 0.005)
    op = next(p.values[0] for p in OPS if p.values[0].precision == "fp32")
    write_lut(tmp_path / "1234" / "lut.csv", [entry_for(op, 0.01, 0.001, 8, "measured", f"{cpu} @ 3000 MHz")])
    profile = load_profile(tmp_path / "1234", notify=False)
    assert profile.name == "1234" and profile.measured_on == {"cpu": cpu, "cores": 3, "runtime": "onnxruntime 9"}
    assert profile.per_inference_ms == 0.005 and profile.sram_bytes == 2048 * 1024
    assert tuple(profile.precisions) == ("fp32",) and profile.clock_mhz == 3000.0
    host_profile.set_measured_on(path, {"cpu": "Other: CPU", "cores": 1, "runtime": "x"})
    data = yaml.safe_load(path.read_text())
    assert data["measured_on"] == {"cpu": "Other: CPU", "cores": 1, "runtime": "x"} and data["name"] == "1234"


def test_w4a8_is_refused(tmp_path):
    with pytest.raises(ValueError):
        profiler.profile_device(tmp_path / "x", precisions=("w4a8",), limit=1, progress=False)
