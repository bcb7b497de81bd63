"""`workbench score`: model files (written by the exporter and by hand) cost what the same architecture
built from a space costs; every op kind round-trips through export and import; unknown operators are
one-line errors naming the operator and its position."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from workbench import WorkbenchError, estimate, load_profile, load_space
from workbench.model.builder import build_model, check_shapes
from workbench.cli import main
from workbench.export.trial import deployable_model, layer_bits
from workbench.export.formats import FORMATS
from workbench.model.ops import Op
from workbench.scoring.score import format_score, import_model, score

DEVICES = ["stm32f746", "rpi4", "host-cpu"]


def _export(model, arch, fmt: str, path) -> str:
    calib = np.random.default_rng(0).standard_normal((4, *arch.input_shape)).astype(np.float32)
    dep = deployable_model(model, arch)
    out = str(path / f"model{FORMATS[fmt].suffix}")
    FORMATS[fmt].write(dep, arch, calib, out, layer_bits(dep))
    return out


def _assert_same_cost(path: str, arch):
    result = score(path, DEVICES)
    assert [op.key for op in result.model.ops] == list(arch.op_keys)
    for device in DEVICES:
        want, got = estimate(arch, load_profile(device)), result.costs[device]
        assert (got.macs, got.params, got.peak_sram_bytes, got.flash_bytes, got.interpolated_ops) == \
            (want.macs, want.params, want.peak_sram_bytes, want.flash_bytes, want.interpolated_ops)
        if want.latency_ms is None:
            assert got.latency_ms is None
        else:
            assert got.latency_ms == pytest.approx(want.latency_ms, rel=1e-9)


@pytest.mark.parametrize("space, fmt", [("mlperf-kws", "tflite"), ("mlperf-ic", "onnx"), ("mlperf-ic", "tflite-int8"),
                                        ("vision", "onnx-int8"), ("mlperf-vww", "tflite")])
def test_exported_space_model_scores_like_the_space(space, fmt, tmp_path):
    precision = "int8" if FORMATS[fmt].quantized else "fp32"
    arch = load_space(space).random_archs(1, seed=4, precisions=[precision])[0]
    assert arch.precision == precision
    if precision == "int8":  # the formats store 8-bit weights: compare with an all-8-bit policy
        arch = type(arch).create(arch.space, arch.family, arch.input_shape, arch.classes,
                                 {k: (8 if k.endswith("_wbits") else v) for k, v in arch.choices})
    torch.manual_seed(0)
    _assert_same_cost(_export(build_model(arch).eval(), arch, fmt, tmp_path), arch)


@pytest.mark.parametrize("fmt", ["tflite-int8", "onnx-int8"])
def test_exported_mlp_imports_as_the_reference_space(fmt, tmp_path):
    """The FC autoencoder (vector input, ReLU folded into QDQ ranges in ONNX) lowers to the space's ops."""
    arch = load_space("mlperf-ad").random_archs(1, precisions=["int8"])[0]
    torch.manual_seed(0)
    model = import_model(_export(build_model(arch).eval(), arch, fmt, tmp_path))
    assert [op.key for op in model.ops] == list(arch.op_keys)
    assert (model.macs, model.n_params) == (arch.macs, arch.n_params) == (264_192, 265_864)


def _imu_arch(precision: str, pools: tuple[int, ...]):
    """A sensor-imu 1-D CNN with one block per entry of ``pools`` (1: no pooling after it, 2: pool by 2),
    8-bit weights when quantised (what the .tflite stores)."""
    base = load_space("sensor-imu").random_archs(1, seed=7, precisions=[precision])[0]
    choices = {k: v for k, v in base.choices if not k.startswith("b")}
    for i, pool in enumerate(pools, 1):
        choices.update({f"b{i}_kernel": (3, 5, 7)[i % 3], f"b{i}_width": (16, 24, 32)[i % 3], f"b{i}_pool": pool})
        if precision == "int8":
            choices[f"b{i}_wbits"] = 8
    return type(base).create(base.space, base.family, base.input_shape, base.classes,
                             {**choices, "blocks": len(pools)})


@pytest.mark.parametrize("precision, pools", [("fp32", (1, 1)), ("int8", (2, 2, 2)), ("int8", (2, 1, 1))])
def test_exported_1d_network_to_tflite_scores_like_the_space(precision, pools, tmp_path, capsys):
    """litert-torch runs 1-D layers as 2-D ones over a (C, 1, T) row with NHWC <-> NCHW TRANSPOSEs between
    them (and before the MEAN): the file lowers to the space's own conv1d/maxpool1d/gap ops and costs the same."""
    arch = _imu_arch(precision, pools)
    assert sum(op.kind == "maxpool1d" for op in arch.ops) == pools.count(2)
    torch.manual_seed(0)
    path = _export(build_model(arch).eval(), arch, "tflite-int8" if precision == "int8" else "tflite", tmp_path)
    _assert_same_cost(path, arch)
    assert main(["score", path, "--device", "stm32f746"]) == 0
    assert "conv1d-input:100x6-output:100x" in capsys.readouterr().out


class HandKWS(nn.Module):
    """The MLPerf Tiny KWS DS-CNN written directly in torch (not through the workbench's builder):
    TF-'same' padding for the 10x4 stride-2 conv, ReLU, 4 dw-separable blocks, (25, 5) average pool."""

    def __init__(self):
        super().__init__()
        layers = [nn.ZeroPad2d((1, 1, 4, 5)), nn.Conv2d(1, 64, (10, 4), (2, 2)), nn.BatchNorm2d(64), nn.ReLU()]
        for _ in range(4):
            layers += [nn.Conv2d(64, 64, 3, padding=1, groups=64), nn.BatchNorm2d(64), nn.ReLU(),
                       nn.Conv2d(64, 64, 1), nn.BatchNorm2d(64), nn.ReLU()]
        layers += [nn.AvgPool2d((25, 5)), nn.Flatten(), nn.Linear(64, 12)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def test_hand_written_torch_model_to_onnx_scores_like_the_reference_space(tmp_path):
    torch.manual_seed(0)
    model = HandKWS().eval()
    path = str(tmp_path / "kws.onnx")
    torch.onnx.export(model, (torch.randn(1, 1, 49, 10),), path, dynamo=True, external_data=False)
    _assert_same_cost(path, load_space("mlperf-kws").random_archs(1, precisions=["fp32"])[0])


def test_hand_written_torch_model_to_litert_scores_like_the_reference_space(tmp_path):
    import litert_torch

    torch.manual_seed(0)
    model = HandKWS().eval()
    path = str(tmp_path / "kws.tflite")
    litert_torch.convert(model, (torch.randn(1, 1, 49, 10),)).export(path)  # NCHW input: a TRANSPOSE first
    _assert_same_cost(path, load_space("mlperf-kws").random_archs(1, precisions=["fp32"])[0])


CHAIN = (Op("conv2d", (1, 20, 12), (8, 10, 6), 10, 2, kernel_w=4),
         Op("dsconv2d", (8, 10, 6), (16, 10, 6), 3, 1),
         Op("mbconv", (16, 10, 6), (16, 10, 6), 3, 1, hidden=16, skip=True),
         Op("mbconv", (16, 10, 6), (24, 5, 3), 3, 2, hidden=48),
         Op("resblock", (24, 5, 3), (32, 5, 3), 3, 1),
         Op("resblock", (32, 5, 3), (32, 5, 3), 3, 1, skip=True),
         Op("maxpool2d", (32, 5, 3), (32, 2, 3), 2, 2, kernel_w=1, stride_w=1),
         Op("avgpool2d", (32, 2, 3), (32, 2, 1), 1, 1, kernel_w=3, stride_w=3),
         Op("flatten", (32, 2, 1), (64,)),
         Op("linear_relu", (64,), (32,)),
         Op("linear", (32,), (5,)))
CHAIN_1D = (Op("conv1d", (3, 40), (8, 40), 5, 1), Op("maxpool1d", (8, 40), (8, 20), 2, 2),
            Op("avgpool1d", (8, 20), (8, 10), 2, 2), Op("gap", (8, 10), (8,)), Op("linear", (8,), (4,)))


@pytest.mark.parametrize("ops, fmt", [(CHAIN, "onnx"), (CHAIN, "tflite"), (CHAIN, "onnx-int8"), (CHAIN, "tflite-int8"),
                                      (CHAIN_1D, "onnx"), (CHAIN_1D, "tflite-int8")])
def test_every_op_kind_round_trips_through_export_and_score(ops, fmt, tmp_path):
    """Builder → exporter → file → score gives back the same ops (their keys), at the file's precision."""
    arch = SimpleNamespace(ops=ops, input_shape=ops[0].in_shape, classes=ops[-1].out_shape[0])
    torch.manual_seed(0)
    model = build_model(arch).eval()
    check_shapes(model)
    got = import_model(_export(model, arch, fmt, tmp_path))
    prec = "int8" if FORMATS[fmt].quantized else "fp32"
    assert [op.key for op in got.ops] == [op.key.replace("prec:fp32", f"prec:{prec}") for op in ops]


class WithSigmoid(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        y = self.conv(x)
        y = y * torch.sigmoid(y)  # SiLU spelled out: Sigmoid and Mul are not in the vocabulary
        return self.fc(y.mean(dim=(2, 3)))


def test_unknown_operator_is_a_one_line_error_naming_it(tmp_path, capsys):
    path = tmp_path / "silu.onnx"
    torch.onnx.export(WithSigmoid().eval(), (torch.randn(1, 1, 8, 8),), str(path), dynamo=True, external_data=False)
    assert main(["score", str(path), "--device", "stm32f746"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"error: {path}: operator ") and "Sigmoid" in err and "not in the op vocabulary" in err


def test_unknown_tflite_operator_names_its_index(tmp_path):
    import litert_torch

    path = tmp_path / "silu.tflite"
    litert_torch.convert(WithSigmoid().eval(), (torch.randn(1, 1, 8, 8),)).export(str(path))
    with pytest.raises(WorkbenchError) as info:
        import_model(path)
    assert "LOGISTIC" in str(info.value) and "operator " in str(info.value)


def test_cli_table_and_json(tmp_path, capsys):
    arch = load_space("mlperf-ic").random_archs(1, precisions=["fp32"])[0]
    torch.manual_seed(0)
    path = _export(build_model(arch).eval(), arch, "onnx", tmp_path)
    assert main(["score", path, "--device", "stm32f746", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    want = estimate(arch, load_profile("stm32f746"))
    assert data["devices"]["stm32f746"]["macs"] == want.macs == 12_501_632
    assert data["devices"]["stm32f746"]["latency_ms"] == pytest.approx(want.latency_ms)
    assert [op["key"] for op in data["ops"]] == list(arch.op_keys)
    assert main(["score", path, "--device", "all"]) == 0
    table = capsys.readouterr().out
    assert "resblock-input:32x32x16-output:16x16x32-kernel:3-stride:2-skip:0-prec:fp32" in table
    assert all(d in table for d in ("stm32f746", "stm32l4r5", "rpi4", "host-cpu"))
    assert format_score(score(path, "rpi4")).count("\n") > len(arch.ops)


@pytest.mark.parametrize("content, suffix, message", [(b"not a flatbuffer", ".tflite", "not a readable TFLite"),
                                                      (b"\x00\x01junk", ".onnx", "not a readable ONNX"),
                                                      (b"x", ".pt", "unknown model format")])
def test_bad_model_files_are_one_line_errors(tmp_path, capsys, content, suffix, message):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    assert main(["score", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and str(path) in err


def test_notebook_panel_shows_the_score_and_errors_as_one_line(tmp_path):
    from workbench.widgets import ModelScorePanel, score_file

    arch = load_space("mlperf-kws").random_archs(1, precisions=["fp32"])[0]
    torch.manual_seed(0)
    path = _export(build_model(arch).eval(), arch, "onnx", tmp_path)
    panel = score_file(path, "stm32f746")
    html = panel.report.value
    assert "2,656,768 MACs" in html and "22,604 params" in html and html.count("<tr>") == len(arch.ops) + 1 + 1 + 1
    assert f"{estimate(arch, load_profile('stm32f746')).latency_ms:.3f} ms" in html
    panel.path.value = str(tmp_path / "missing.onnx")
    panel.refresh()
    assert panel.report.value.startswith("<div style='color:#c00'>error: ") and "no such model file" in panel.report.value
    assert isinstance(ModelScorePanel(), ModelScorePanel)  # empty: nothing scored yet
