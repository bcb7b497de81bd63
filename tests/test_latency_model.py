"""The analytical latency model (workbench/hardware/latency_model.py): its formula against hand arithmetic, its
linearity and monotonicity, its input errors, and the shipped modeled LUTs against `workbench model-lut`."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from workbench.cli import main
from workbench._infra.errors import WorkbenchError
from workbench.hardware.latency_model import (LatencyConstants, build_modeled_lut, load_constants, op_cycles, op_features,
                                     parse_constants)
from workbench.model.ops import Op
from workbench.hardware.profiles import PROFILES_DIR, list_profiles, load_profile

# round numbers, so the expected cycles below are exact by hand
CONSTS = LatencyConstants(
    "test constants",
    {"int8": {"conv": 0.75, "depthwise": 1.6, "pointwise": 0.6, "fc": 1.0},
     "fp32": {"conv": 7.0, "depthwise": 8.0, "pointwise": 6.5, "fc": 6.0}},
    sram_bytes_per_cycle=4.0, flash_bytes_per_cycle=2.0, cycles_per_element=2.0, per_layer_overhead_cycles=3000.0,
    per_inference_cycles=50_000.0, cycles_per_output={"int8": 10.0, "fp32": 2.0})

LINEAR = Op("linear", (64,), (12,), wbits=8, abits=8)
CONV = Op("conv2d", (8, 16, 16), (16, 16, 16), 3, 1, wbits=8, abits=8)
MBCONV = Op("mbconv", (16, 8, 8), (16, 8, 8), 3, 1, hidden=48, skip=True, wbits=8, abits=8)
GAP = Op("gap", (64, 5, 5), (64,))

# cycles = MACs*cpm + outputs*cpo + activation bytes/sram bw + weight bytes/flash bw + elements*cpe
#          + layers*overhead
HAND_CYCLES = {
    # fc: 64*12 MACs at 1.0; 12 outputs at 10; (64+12) B / 4; 768 int8 weights / 2; 1 layer
    LINEAR: 768 * 1.0 + 12 * 10 + 76 / 4 + 768 / 2 + 3000,
    # 3x3 conv: 16*16 outputs * (16*8*9 = 1152 weights) MACs at 0.75; 4096 outputs at 10; (2048+4096) B / 4;
    # 1152 B / 2; 1 layer
    CONV: 256 * 1152 * 0.75 + 4096 * 10 + 6144 / 4 + 1152 / 2 + 3000,
    # expand 1x1 (49,152 MACs) and project 1x1 (49,152) at 0.6, depthwise 3x3 (64*432) at 1.6; outputs
    # 3072 + 3072 + 1024 at 10; activations 1024->3072, 3072->3072, 3072->1024 bytes; weights 768+432+768 B;
    # residual add of 1024 elements; 3 layers
    MBCONV: 2 * 49_152 * 0.6 + 27_648 * 1.6 + 7168 * 10 + 14_336 / 4 + 1968 / 2 + 1024 * 2.0 + 3 * 3000,
    # fp32 global pooling: elementwise over 1600 inputs; (1600+64)*4 B / 4; no weights; 1 layer
    GAP: 1600 * 2.0 + 1664 * 4 / 4 + 3000,
}


@pytest.mark.parametrize("op", list(HAND_CYCLES), ids=lambda op: op.kind)
def test_cycles_equal_the_hand_formula(op):
    assert op_cycles(op, CONSTS) == pytest.approx(HAND_CYCLES[op], rel=1e-12)


def test_features_name_the_constants_they_multiply():
    feats = op_features(MBCONV)
    assert feats == {"per_layer_overhead_cycles": 3.0, "sram_cycles_per_byte": 14_336.0,
                     "cycles_per_mac.int8.pointwise": 98_304.0, "flash_cycles_per_byte": 1968.0,
                     "cycles_per_mac.int8.depthwise": 27_648.0, "cycles_per_element": 1024.0,
                     "cycles_per_output.int8": 7168.0}
    assert "cycles_per_mac.fp32.fc" not in op_features(LINEAR)  # an int8 op pays int8 constants only


def test_vector_round_trip_and_linearity():
    vec = CONSTS.vector()
    assert vec["sram_cycles_per_byte"] == 0.25 and vec["flash_cycles_per_byte"] == 0.5
    assert LatencyConstants.from_vector("test constants", vec) == CONSTS
    doubled = LatencyConstants.from_vector("x", {k: 2 * v for k, v in vec.items()})
    for op in HAND_CYCLES:
        assert op_cycles(op, doubled) == pytest.approx(2 * HAND_CYCLES[op], rel=1e-12)


def test_more_work_or_dearer_constants_never_cost_less():
    wider = Op("conv2d", (8, 16, 16), (32, 16, 16), 3, 1, wbits=8, abits=8)
    bigger_kernel = Op("conv2d", (8, 16, 16), (16, 16, 16), 5, 1, wbits=8, abits=8)
    assert op_cycles(wider, CONSTS) > op_cycles(CONV, CONSTS)
    assert op_cycles(bigger_kernel, CONSTS) > op_cycles(CONV, CONSTS)
    vec = CONSTS.vector()
    for name in op_features(MBCONV):
        dearer = LatencyConstants.from_vector("x", {**vec, name: vec[name] * 1.5})
        assert op_cycles(MBCONV, dearer) > op_cycles(MBCONV, CONSTS), name
    assert all(amount >= 0 for op in HAND_CYCLES for amount in op_features(op).values())


def test_shipped_lut_row_is_the_formula_over_the_clock():
    """stm32f746's KWS classifier row = its constants through the formula / 216 MHz (the file keeps 6 digits)."""
    folder = PROFILES_DIR / "stm32f746"
    consts = load_constants(folder / "latency_model.yaml")
    row = load_profile(folder).latency.lut.entries[LINEAR.key]
    vec = consts.vector()
    by_hand = (768 * consts.cycles_per_mac["int8"]["fc"] + 12 * vec["cycles_per_output.int8"]
               + 76 * vec["sram_cycles_per_byte"]
               + 768 * vec["flash_cycles_per_byte"] + consts.per_layer_overhead_cycles) / (216 * 1000.0)
    assert row.source == "modeled" and row.mean_ms == pytest.approx(by_hand, rel=1e-5)


def _constants_yaml(**changes) -> dict:
    data = {"reference": "test", "cycles_per_mac": {"int8": {"conv": 1, "depthwise": 1, "pointwise": 1, "fc": 1}},
            "sram_bytes_per_cycle": 4, "flash_bytes_per_cycle": 2, "cycles_per_element": 1,
            "per_layer_overhead_cycles": 100}
    data.update(changes)
    return data


@pytest.mark.parametrize("changes, message", [
    ({"cycles_per_mac": {}}, "cycles_per_mac: needs at least one precision"),
    ({"cycles_per_mac": {"int8": {"conv": 0, "depthwise": 1, "pointwise": 1, "fc": 1}}}, "cycles_per_mac.int8.conv"),
    ({"cycles_per_mac": {"int8": {"conv": 1, "depthwise": 1, "pointwise": 1}}}, "cycles_per_mac.int8.fc"),
    ({"cycles_per_mac": {"int16": {"conv": 1}}}, "unknown field"),
    ({"sram_bytes_per_cycle": -1}, "sram_bytes_per_cycle"),
    ({"clock": 5}, "unknown field"),
    ({"cycles_per_output": {"int8": -1}}, "cycles_per_output.int8"),
    ({"cycles_per_output": {"fp32": 1}}, "unknown field"),  # no cycles_per_mac for fp32 here
])
def test_bad_constants_are_one_line_errors(changes, message):
    with pytest.raises(WorkbenchError, match=message.replace(".", r"\.")):
        parse_constants(_constants_yaml(**changes), "latency_model.yaml")


def test_a_precision_without_constants_is_refused(tmp_path):
    folder = tmp_path / "dev"
    shutil.copytree(PROFILES_DIR / "stm32f746", folder)
    with pytest.raises(WorkbenchError, match=r"no constants for \['int16x'\]"):
        build_modeled_lut(folder, [LINEAR], 216.0, ["int8", "int16x"])


def _modeled_profiles() -> list[Path]:
    """Shipped profiles whose LUT rows are all ``modeled`` (whatever else the folder holds)."""
    found = []
    for folder in list_profiles():
        with (folder / "lut.csv").open(newline="", encoding="utf-8") as fh:
            sources = {row["source"] for row in csv.DictReader(fh)}
        assert sources in ({"modeled"}, {"measured"}, {"imported"}), f"{folder.name}: mixed LUT sources {sources}"
        if sources == {"modeled"}:
            found.append(folder)
    return found


def test_every_shipped_modeled_lut_is_what_model_lut_generates(tmp_path, capsys):
    shipped = _modeled_profiles()
    assert {p.name for p in shipped} >= {"rpi4", "stm32f746", "stm32l4r5", "stm32l4r5-microtvm", "stm32l4r5-xcubeai"}
    for folder in shipped:
        copy = tmp_path / folder.name  # the rows' reference names the folder
        shutil.copytree(folder, copy)
        (copy / "lut.csv").write_text("stale\n")
        assert main(["model-lut", str(copy)]) == 0
        assert f"wrote {copy / 'lut.csv'}" in capsys.readouterr().out
        assert (copy / "lut.csv").read_text() == (folder / "lut.csv").read_text(), folder.name
        assert (copy / "profile.yaml").read_text() == (folder / "profile.yaml").read_text(), folder.name


def test_a_modeled_profile_computes_ops_its_lut_lacks_from_its_constants():
    """An op no shipped space produces (here MicroNet-KWS-S's, MicroNets Table 5) costs what the profile's own
    formula says — not an interpolation over other rows (that gave 142 ms where the model says 103) — and is
    not counted as interpolated; a measured LUT still interpolates and counts."""
    from workbench.hardware.cost import estimate
    from workbench.model.space import load_space

    folder = PROFILES_DIR / "stm32f746"
    profile, consts = load_profile(folder), load_constants(folder / "latency_model.yaml")
    arch = load_space(folder / "models" / "micronet-kws-s.yaml").random_archs(1, seed=0, precisions=["int8"])[0]
    assert any(op.key not in profile.latency.lut.entries for op in arch.ops)
    modeled_ms = sum(op_cycles(op, consts) for op in arch.ops) / (profile.clock_mhz * 1000.0)
    cost = estimate(arch, profile)
    assert cost.interpolated_ops == 0
    assert cost.latency_ms == pytest.approx(profile.per_inference_ms + modeled_ms, rel=1e-5)
    unseen = Op("linear", (777,), (13,), wbits=8, abits=8)
    assert profile.latency.op_latency(unseen) == (pytest.approx(op_cycles(unseen, consts) / 216_000.0, rel=1e-12), False)
    assert load_profile("host-cpu").latency.op_latency(unseen)[1] is True


def test_one_input_channel_convs_are_depthwise_where_the_runtime_runs_them_so():
    """TFLite's converters write a 1-input-channel conv as DEPTHWISE_CONV_2D (the memory model lowers it so,
    and test_memory reads it back from an exported file); a TFLM profile says `one_input_channel_conv:
    depthwise` and pays the depthwise constant for it. Other engines (the default) keep the conv constant."""
    from dataclasses import replace

    from workbench.model import tflite_graph

    stem = Op("conv2d", (1, 16, 16), (8, 16, 16), 3, 1, wbits=8, abits=8)
    stem_1d = Op("conv1d", (1, 32), (8, 32), 5, 1, wbits=8, abits=8)
    assert [op.code for op in tflite_graph.lower([stem], stem.in_shape).ops] == ["DEPTHWISE_CONV_2D"]
    tflm = replace(CONSTS, one_input_channel_conv="depthwise")
    for op in (stem, stem_1d):
        assert "cycles_per_mac.int8.conv" in op_features(op)
        feats = op_features(op, "depthwise")
        assert "cycles_per_mac.int8.conv" not in feats and feats["cycles_per_mac.int8.depthwise"] == op.layers[0].macs
        assert op_cycles(op, tflm) - op_cycles(op, CONSTS) == pytest.approx(op.layers[0].macs * (1.6 - 0.75))
    assert op_features(CONV, "depthwise") == op_features(CONV)  # 8 input channels: a standard conv
    assert op_features(MBCONV, "depthwise") == op_features(MBCONV)
    assert parse_constants(_constants_yaml(one_input_channel_conv="depthwise"), "x").one_input_channel_conv == "depthwise"
    with pytest.raises(WorkbenchError, match="one_input_channel_conv: 'grouped' is not one of conv, depthwise"):
        parse_constants(_constants_yaml(one_input_channel_conv="grouped"), "latency_model.yaml")
