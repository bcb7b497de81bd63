"""Export: every format written from a real (tiny) study, run in its own runtime and verified.

One sensor-IMU study (1-D, basic-motions) is searched once per module and exported to all four
formats; a small MBConv vision model (2-D, digits, int8 policy with a 4-bit stage) covers NHWC I/O,
int4 ONNX weights and the documented TFLite fallback. Failure paths (verification failure → exit 1,
unsupported layer → one-line error and exit 2) run through the CLI.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from workbench.export import formats as exporters
from workbench.export import trial as ex
from workbench.model.arch import Architecture
from workbench.model.data import load_dataset
from workbench._infra.errors import WorkbenchError

ALL = ["onnx", "onnx-int8", "tflite", "tflite-int8"]


@pytest.fixture(scope="module")
def imu_study(tmp_path_factory):
    from workbench.search import Search

    tmp = tmp_path_factory.mktemp("study")
    storage = f"sqlite:///{tmp}/s.db"
    Search("sensor-imu", "stm32f746", "basic-motions", study_name="imu", storage=storage, epochs=1).run(2)
    return storage


@pytest.fixture(scope="module")
def imu_export(imu_study, tmp_path_factory):
    out = tmp_path_factory.mktemp("imu-export")
    return ex.export_trial("imu", imu_study, "best", ALL, out, repeats=20)


def _interpreter(path):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    return it


# ---------------------------------------------------------------- 1-D study, all formats

def test_all_formats_written_and_verified(imu_export):
    m = imu_export.manifest
    assert imu_export.ok and m["ok"] is True
    assert set(m["files"]) == set(ALL)
    for name, entry in m["files"].items():
        v = entry["verification"]
        assert entry["passed"] and v["passed"], name
        assert v["samples"] == 40
        if name in ("onnx", "tflite"):
            assert (v["min_agreement"], v["max_abs_limit"]) == (0.999, 1e-4)
            assert v["reference"] == "pytorch fp32 (deployable model)" and entry["fallbacks"] == []
        else:  # 40 samples < 50: one sample (2.5 points) is allowed instead of 2 points
            assert v["max_accuracy_drop"] == 1 / 40
            assert v["reference"].startswith("pytorch fake-quantised")
        timing = entry["latency_ms_measured"]
        assert timing["ms"] > 0 and (timing["repeats"], timing["kept"], timing["threads"]) == (20, 16, 1)
        assert timing["statistic"] == "mean of the fastest 80% of timed runs"


def test_manifest_records_trial_policy_predictions_tools(imu_export, imu_study):
    m = json.loads(imu_export.manifest_path.read_text())
    assert m["study"] == "imu" and isinstance(m["trial"], int) and m["trial_selector"] == "best"
    arch = Architecture.from_dict(m["architecture"])
    assert m["policy"] == arch.policy
    training = m["training"]
    assert training["source"] == "retrained" and training["reproduced"] is True
    assert training["accuracy"] == training["stored_accuracy"]
    assert m["device"] == "stm32f746"
    assert {"latency_ms", "peak_sram_bytes", "flash_bytes"} <= set(m["predicted"])
    from workbench.hardware.profiles import load_profile
    from workbench.hardware.trust import precisions_of, statements  # the prediction says what it rests on

    assert m["predicted"]["latency_trust"] == [t.to_dict() for t in statements(load_profile("stm32f746"),
                                                                                 precisions_of([arch]))]
    import importlib.metadata
    import platform

    from workbench.export.manifest import TOOLS

    assert set(m["tools"]) == {"python", *TOOLS} and m["tools"]["python"] == platform.python_version()
    for dist in TOOLS:  # the versions of what ran, looked up independently of the exporter
        try:
            assert m["tools"][dist] == importlib.metadata.version(dist), dist
        except importlib.metadata.PackageNotFoundError:
            assert m["tools"][dist] == "not installed"


def test_best_follows_the_device_front(imu_study):
    from workbench.study.front import load_records, pareto_front
    from workbench.hardware.profiles import load_profile
    from workbench.storages.storage import open_storage
    import optuna

    device = load_profile("stm32l4r5")
    source = ex.resolve_trial("imu", imu_study, "best", device="stm32l4r5")
    assert source.profile.name == "stm32l4r5"
    study = optuna.load_study(study_name="imu", storage=open_storage(imu_study))
    front = pareto_front(load_records(study), device)
    # the best rule: highest accuracy, then lower latency on the device, then the lower trial number
    expected = min(front, key=lambda r: (-r.accuracy, r.prediction(device)["latency_ms"], r.number))
    assert source.number == expected.number
    assert ex.resolve_trial("imu", imu_study, str(expected.number)).number == expected.number


def test_manifest_sizes_and_hashes_match_files(imu_export):
    for entry in imu_export.manifest["files"].values():
        path = imu_export.out_dir / entry["file"]
        data = path.read_bytes()
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()


def test_onnx_files_run_in_onnxruntime(imu_export):
    x = load_dataset("basic-motions").adapted((6, 100))[1].numpy()
    for name in ("onnx", "onnx-int8"):
        path = imu_export.files[name]
        model = onnx.load(str(path))
        assert not any(init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert sess.get_inputs()[0].shape == [1, 6, 100]
        logits = sess.run(None, {sess.get_inputs()[0].name: x[:1]})[0]
        assert logits.shape == (1, 4)
    qdq = onnx.load(str(imu_export.files["onnx-int8"]))
    assert any(n.op_type == "DequantizeLinear" for n in qdq.graph.node)


def test_tflite_files_channel_last_and_int8_io(imu_export):
    fp = _interpreter(imu_export.files["tflite"])
    assert list(fp.get_input_details()[0]["shape"]) == [1, 100, 6]  # NWC
    assert fp.get_input_details()[0]["dtype"] == np.float32
    q = _interpreter(imu_export.files["tflite-int8"])
    inp, out = q.get_input_details()[0], q.get_output_details()[0]
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    assert list(inp["shape"]) == [1, 100, 6] and list(out["shape"]) == [1, 4]
    assert inp["quantization"][0] > 0 and out["quantization"][0] > 0


@pytest.fixture(scope="module")
def imu_trained(imu_study):
    """The best trial of the study, retrained (deterministic: the weights the export used)."""
    source = ex.resolve_trial("imu", imu_study, "best")
    model, _ = ex.trained_model(source, load_dataset("basic-motions"))
    return source, model


def test_reported_numbers_are_what_the_file_gives(imu_export, imu_trained):
    """Recompute the fp32 ONNX file's accuracy, agreement and max |Δlogit| against the deployable
    PyTorch model, independently of the exporter's runner and verifier."""
    source, model = imu_trained
    ds = load_dataset("basic-motions")
    x = ds.adapted((6, 100))[1].numpy()
    sess = ort.InferenceSession(str(imu_export.files["onnx"]), providers=["CPUExecutionProvider"])
    logits = np.concatenate([sess.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])
    with torch.no_grad():
        ref = ex.deployable_model(model, source.arch)(torch.from_numpy(x)).numpy()
    v = imu_export.manifest["files"]["onnx"]["verification"]
    assert float((logits.argmax(1) == ds.y_test).mean()) == pytest.approx(v["accuracy"])
    assert float((logits.argmax(1) == ref.argmax(1)).mean()) == pytest.approx(v["agreement"])
    assert float(np.abs(logits - ref).max()) == pytest.approx(v["max_abs_logit_diff"], rel=1e-3, abs=1e-7)
    assert float((ref.argmax(1) == ds.y_test).mean()) == pytest.approx(v["pytorch_accuracy"])


class _FixedRunner:
    def __init__(self, logits):
        self.logits = logits

    def predict(self, x):
        return self.logits


@pytest.mark.parametrize("n", [40, 100])
def test_verify_applies_the_limits(n):
    """fp32: any disagreement or a logit off by more than 1e-4 fails; int8: at most 2 points (or one
    sample below 50 samples) under the scored model."""
    from workbench.export.verify import verify

    rng = np.random.default_rng(0)
    ref = rng.standard_normal((n, 4)).astype(np.float32)
    y = ref.argmax(1)
    fp32, int8 = exporters.FORMATS.get("onnx"), exporters.FORMATS.get("onnx-int8")
    x = np.zeros((n, 1), np.float32)
    assert verify(_FixedRunner(ref + 5e-5), fp32, x, y, ref, 1.0)["passed"]
    assert not verify(_FixedRunner(ref + 2e-4), fp32, x, y, ref, 1.0)["passed"]
    flipped = ref.copy()
    flipped[0] = -flipped[0]  # one sample's prediction changes
    out = verify(_FixedRunner(flipped), fp32, x, y, ref, 1.0)
    assert not out["passed"] and out["agreement"] == pytest.approx(1 - 1 / n)
    out = verify(_FixedRunner(flipped), int8, x, y, ref, 1.0)
    assert out["accuracy"] == pytest.approx(1 - 1 / n) and out["passed"]  # 1 of 40 or 100: within its limit
    wrong = ref.copy()
    wrong[:3] = -wrong[:3]  # three samples: 7.5 % of 40, 3 % of 100
    assert not verify(_FixedRunner(wrong), int8, x, y, ref, 1.0)["passed"]


# ---------------------------------------------------------------- 2-D vision model, NHWC, 4-bit stage

VISION = {"head_width": 64, "precision": "int8", "quant_mode": "ptq", "resolution": 24, "stem_kernel": 3,
          "stem_stride": 2, "stem_width": 8,
          "s1_depth": 1, "s1_expand": 1, "s1_kernel": 3, "s1_stride": 1, "s1_wbits": 8, "s1_width": 8,
          "s2_depth": 2, "s2_expand": 3, "s2_kernel": 3, "s2_stride": 2, "s2_wbits": 4, "s2_width": 16,
          "s3_depth": 1, "s3_expand": 3, "s3_kernel": 3, "s3_stride": 2, "s3_wbits": 8, "s3_width": 24,
          "s4_depth": 1, "s4_expand": 3, "s4_kernel": 3, "s4_stride": 1, "s4_wbits": 8, "s4_width": 32}


@pytest.fixture(scope="module")
def vision_export(tmp_path_factory):
    from workbench.model.train import train_and_evaluate

    arch = Architecture.create("vision", "mbconv", (1, 24, 24), 10, VISION)
    ds = load_dataset("digits")
    result = train_and_evaluate(arch, ds, epochs=4, seed=0)
    out = tmp_path_factory.mktemp("vision-export")
    export = ex.export_model(result.model, arch, ds, out, ["tflite-int8", "onnx-int8"], name="digits", repeats=20)
    return arch, result, export


def test_vision_tflite_int8_is_nhwc_int8_and_verified(vision_export):
    arch, result, export = vision_export
    assert result.fp32_accuracy > 0.5  # a model that learned, so the INT8 check means something
    q = _interpreter(export.files["tflite-int8"])
    inp, out = q.get_input_details()[0], q.get_output_details()[0]
    assert list(inp["shape"]) == [1, 24, 24, 1] and inp["dtype"] == np.int8
    assert list(out["shape"]) == [1, 10] and out["dtype"] == np.int8
    entry = export.manifest["files"]["tflite-int8"]
    assert entry["passed"] and entry["input_layout"] == "NHWC"
    # the 4-bit stage is a documented fallback, and no op was left in float
    assert len(entry["fallbacks"]) == 1 and "stage s2" in entry["fallbacks"][0] and "int8" in entry["fallbacks"][0]
    from workbench.export.formats.tflite_format import float_ops

    assert float_ops(export.files["tflite-int8"]) == []


def test_vision_onnx_int8_stores_4bit_stage_as_int4(vision_export):
    arch, _, export = vision_export
    from workbench.export.formats.onnx_format import stored_weight_bits

    stored = stored_weight_bits(onnx.load(str(export.files["onnx-int8"])))
    s2 = [i for i, op in enumerate(arch.ops) if op.stage == "s2"]
    assert s2 and all(bits == 4 for name, bits in stored.items() if int(name.split(".")[1]) in s2)
    assert all(bits == 8 for name, bits in stored.items() if int(name.split(".")[1]) not in s2)
    entry = export.manifest["files"]["onnx-int8"]
    assert entry["passed"] and entry["fallbacks"] == [] and entry["policy_applied"] is True
    assert export.manifest["policy"]["stage_weight_bits"]["s2"] == 4


def _stored_codes(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Float weight name → the integer codes its DequantizeLinear reads (QDQ naming)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    return {node.output[0][: -len("_DequantizeLinear_Output")]: numpy_helper.to_array(inits[node.input[0]])
            for node in model.graph.node if node.op_type == "DequantizeLinear" and node.input[0] in inits
            and node.output[0].endswith("_DequantizeLinear_Output")}


def test_vision_int8_files_hold_the_scored_weights_and_are_judged_against_them(vision_export):
    """The ONNX codes (int4 and int8) are the fake quantiser's, on any CPU: the file is the model the
    search scored, so it is compared with that model, not with fp32."""
    from workbench.model.quant import weight_codes

    arch, result, export = vision_export
    deploy = ex.deployable_model(result.model, arch)
    state = deploy.state_dict()
    stored = _stored_codes(onnx.load(str(export.files["onnx-int8"])))
    bits = ex.layer_bits(deploy)
    assert {n for n, b in bits.items() if b == 4} <= set(stored)
    for name, codes in stored.items():
        if name not in bits:
            continue  # biases
        expected = weight_codes(state[name], bits[name]).numpy().astype(int)
        diff = np.abs(codes.reshape(expected.shape).astype(int) - expected)
        assert diff.max() <= 1 and (diff == 0).mean() >= 0.999, name  # equal but for a rounding tie
    n_test = export.manifest["files"]["onnx-int8"]["verification"]["samples"]
    for fmt in ("onnx-int8", "tflite-int8"):
        v = export.manifest["files"][fmt]["verification"]
        assert v["reference"].startswith("pytorch fake-quantised")
        assert abs(v["pytorch_accuracy"] - result.accuracy) <= 1 / n_test  # the scored model's accuracy
        assert abs(v["pytorch_fp32_accuracy"] - result.fp32_accuracy) <= 1 / n_test
        assert v["pytorch_accuracy"] - v["accuracy"] <= v["max_accuracy_drop"] == ex.INT8_MAX_DROP
    assert export.manifest["pytorch_reference"]["scored_accuracy"] == \
        export.manifest["files"]["onnx-int8"]["verification"]["pytorch_accuracy"]


def test_deployable_model_strips_quant_and_folds_bn(vision_export):
    from torch import nn
    from torch.nn.utils import parametrize

    from workbench.model.quant import ActFakeQuant, quant_disabled

    arch, result, _ = vision_export
    deploy = ex.deployable_model(result.model)  # the export already built one: the source model is intact
    assert any(parametrize.is_parametrized(m) for m in result.model.modules())
    assert not any(isinstance(m, (ActFakeQuant, nn.BatchNorm2d)) for m in deploy.modules())
    assert not any(parametrize.is_parametrized(m) for m in deploy.modules())
    x = torch.rand(4, *arch.input_shape)
    with torch.no_grad(), quant_disabled(result.model):
        assert torch.allclose(deploy(x), result.model(x), atol=1e-4)


# ---------------------------------------------------------------- what cannot be exported

def test_two_bit_weights_are_a_clear_error():
    choices = dict(VISION, s3_wbits=2)
    arch = Architecture.create("vision", "mbconv", (1, 24, 24), 10, choices)
    with pytest.raises(WorkbenchError, match=r"op \d+ \(mbconv, stage s3\) has 2-bit weights.*tflite-int8"):
        ex.check_support(arch, exporters.FORMATS.get("tflite-int8"))
    with pytest.raises(WorkbenchError, match="onnx-int8"):
        ex.check_support(arch, exporters.FORMATS.get("onnx-int8"))
    assert ex.check_support(arch, exporters.FORMATS.get("onnx")) == []  # fp32 files carry no integer policy


def test_unsupported_layer_is_one_line_exit_2(cli, imu_study, tmp_path, monkeypatch):
    fmt = exporters.FORMATS.get("tflite")
    monkeypatch.setitem(exporters.FORMATS._entries, "tflite",  # a writer without conv1d, for this test only
                        dataclasses.replace(fmt, op_kinds=fmt.op_kinds - {"conv1d"}))
    r = cli("export", "--study", "imu", "--storage", imu_study, "--format", "tflite", "--out", tmp_path / "o")
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: op 0 (conv1d")
    assert "tflite" in lines[0]
    assert not (tmp_path / "o").exists()  # refused before training or writing


def test_forced_verification_failure_exits_1(cli, imu_study, tmp_path, monkeypatch):
    from workbench.export import verify

    monkeypatch.setattr(verify, "FP32_MAX_ABS", -1.0)  # no file can meet it
    r = cli("export", "--study", "imu", "--storage", imu_study, "--format", "onnx", "--out", tmp_path)
    assert r.code == 1
    assert "FAIL" in r.out and "FAILED verification: onnx" in r.out
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["ok"] is False and m["files"]["onnx"]["passed"] is False


def test_cli_exports_from_saved_weights(cli, imu_study, imu_trained, tmp_path):
    source, model = imu_trained
    torch.save(model.state_dict(), tmp_path / "w.pt")
    r = cli("export", "--study", "imu", "--storage", imu_study, "--trial", source.number, "--format", "onnx",
            "--weights", tmp_path / "w.pt", "--out", tmp_path / "o")
    assert r.code == 0, r.err
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert m["training"]["source"] == "weights" and m["trial"] == source.number
    assert m["training"]["accuracy"] == pytest.approx(m["training"]["stored_accuracy"])


@pytest.mark.parametrize("args, message", [
    (["--format", "onnx,coreml"], "unknown format 'coreml'"),
    (["--trial", "99"], "no trial 99"),
    (["--trial", "first"], "expected a trial number or 'best'"),
])
def test_bad_arguments_are_one_line_errors(cli, imu_study, tmp_path, args, message):
    r = cli("export", "--study", "imu", "--storage", imu_study, "--out", tmp_path, *args)
    assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1


def test_unknown_study_lists_known(cli, imu_study, tmp_path):
    r = cli("export", "--study", "nope", "--storage", imu_study, "--out", tmp_path)
    assert r.code == 2 and "imu" in r.err


def test_saved_fake_quant_weights_load_as_deployed(vision_export, tmp_path):
    from workbench.model.train import evaluate

    arch, result, _ = vision_export
    torch.save(result.model.state_dict(), tmp_path / "q.pt")
    loaded = ex.load_weights(arch, tmp_path / "q.pt")
    assert evaluate(loaded, arch, load_dataset("digits")) == pytest.approx(result.accuracy)
    with pytest.raises(WorkbenchError, match="does not fit"):
        ex.load_weights(Architecture.create("vision", "mbconv", (1, 24, 24), 10, dict(VISION, head_width=128)),
                        tmp_path / "q.pt")


# ---------------------------------------------------------------- exports add to a folder, never delete

def _every_format() -> list[str]:
    """Every registered format whose converters are installed (tflm also needs tflite-micro)."""
    import importlib.util

    return [f.name for f in exporters.FORMATS.entries() if all(importlib.util.find_spec(m) for m in f.requires)]


def _snapshot(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _export_one(folder, fmt, imu_trained):
    source, model = imu_trained
    return ex.export_model(model, source.arch, load_dataset("basic-motions"), folder, [fmt],
                           name=f"imu-trial{source.number}", profile=source.profile,
                           context={"study": "imu", "trial": source.number}, repeats=5)


def _add_and_check(folder, fmt, imu_trained, expected: set[str]) -> dict:
    """Export ``fmt`` into ``folder``: every other format's entry and files stay byte for byte; the
    manifest lists exactly ``expected`` and every file it names, no more."""
    before = json.loads((folder / "manifest.json").read_text())["files"] if (folder / "manifest.json").exists() else {}
    files_before = _snapshot(folder)
    result = _export_one(folder, fmt, imu_trained)
    assert result.ok and result.exported == [fmt]
    after = json.loads((folder / "manifest.json").read_text())
    assert set(after["files"]) == expected
    for name, entry in before.items():
        if name != fmt:
            assert after["files"][name] == entry  # the earlier record, untouched
            for out in entry["outputs"]:
                assert files_before[out["path"]] == _snapshot(folder)[out["path"]] == out["sha256"]
    listed = {"manifest.json"} | {o["path"] for e in after["files"].values() for o in e["outputs"]}
    assert set(_snapshot(folder)) == listed  # nothing unlisted, nothing listed missing
    for entry in after["files"].values():
        for out in entry["outputs"]:
            assert _snapshot(folder)[out["path"]] == out["sha256"] and (folder / out["path"]).stat().st_size == out["bytes"]
    return after


def test_exports_never_delete_each_other(imu_trained, tmp_path):
    """Forward and reverse registry order: every ordered pair of formats occurs once each way (a exported
    before b, and b before a), which is where one export could remove another's files. All 120 orders
    would be 600 exports (about 35 minutes at the ~3.5 s each this test measures) for nothing a pair does
    not already show. Then one format exported again in
    the middle of a full folder replaces only its own files."""
    every = _every_format()
    assert {"onnx", "tflite-int8"} <= set(every)
    for folder, order in ((tmp_path / "forward", every), (tmp_path / "reverse", every[::-1])):
        for i, fmt in enumerate(order):
            manifest = _add_and_check(folder, fmt, imu_trained, set(order[:i + 1]))
        assert list(manifest["files"]) == every  # registry order, whatever the export order
    middle = "tflite-int8"  # shares its converter and TFLM run with the tflm bundle beside it
    manifest = _add_and_check(tmp_path / "forward", middle, imu_trained, set(every))
    assert manifest["files"][middle]["exported"] >= max(e["exported"] for e in manifest["files"].values())
    if "tflm" in every:
        bundle = manifest["files"]["tflm"]["bundle"]
        assert {o["path"] for o in manifest["files"]["tflm"]["outputs"]} == {
            manifest["files"]["tflm"]["file"], *(f"{bundle['folder']}/{f}" for f in bundle["files"])}


def test_another_model_or_a_changed_file_is_refused_before_work(imu_trained, tmp_path):
    source, model = imu_trained
    folder = tmp_path / "one"
    _export_one(folder, "onnx", imu_trained)
    with pytest.raises(WorkbenchError, match="holds an export of study 'imu' trial"):
        ex.export_model(model, source.arch, load_dataset("basic-motions"), folder, ["tflite"], name="x",
                        context={"study": "imu", "trial": source.number + 1}, repeats=5)
    onnx_file = json.loads((folder / "manifest.json").read_text())["files"]["onnx"]["file"]
    (folder / onnx_file).write_bytes(b"edited")
    with pytest.raises(WorkbenchError, match=f"{onnx_file} \\(onnx\\) is missing or changed"):
        _export_one(folder, "tflite", imu_trained)
    assert sorted(p.name for p in folder.iterdir()) == sorted(["manifest.json", onnx_file])


def test_cli_says_what_the_folder_holds(cli, imu_study, imu_trained, tmp_path):
    source, model = imu_trained
    torch.save(model.state_dict(), tmp_path / "w.pt")
    folder = tmp_path / "o"
    _export_one(folder, "tflite", imu_trained)
    kept = _snapshot(folder)
    r = cli("export", "--study", "imu", "--storage", imu_study, "--trial", source.number, "--format", "onnx",
            "--weights", tmp_path / "w.pt", "--out", folder)
    assert r.code == 0, r.err
    assert f"the folder already holds tflite (imu-trial{source.number}.tflite); a new export adds to them" in r.err
    assert any(line.startswith("tflite") and "kept from the export of" in line for line in r.out.splitlines())
    assert any(line.startswith("onnx") and "PASS" in line for line in r.out.splitlines())
    assert {k: v for k, v in _snapshot(folder).items() if k in kept and k != "manifest.json"} == \
        {k: v for k, v in kept.items() if k != "manifest.json"}
