"""Cost estimator on hand-computed nets, LUT lookup and interpolation."""
import pytest

from workbench import Architecture, estimate, load_profile, load_space
from workbench.ops import Op
from workbench.profiles import entry_for, write_lut


def tiny_cnn1d(precision="int8", wbits=8):
    """conv1d (2,8)->(4,8) k3, then GAP and a 4->3 classifier."""
    choices = {"blocks": 1, "pool_type": "max", "b1_width": 4, "b1_kernel": 3, "b1_pool": 1, "precision": precision}
    if precision == "int8":
        choices.update(quant_mode="ptq", b1_wbits=wbits)
    return Architecture.create("tiny", "cnn1d", (2, 8), 3, choices)


def test_hand_computed_int8_net():
    arch = tiny_cnn1d()
    profile = load_profile("stm32f746")  # 96 bytes of metadata per layer
    cost = estimate(arch, profile)
    # conv: 4*2*3 = 24 weights + 4 biases, 8 positions * 24 = 192 MACs; fc: 12 weights + 3 biases, 12 MACs
    assert cost.macs == 192 + 12
    assert cost.params == 24 + 4 + 12 + 3
    # int8 activations: conv reads 2*8 and writes 4*8 bytes; GAP 32+4; FC 4+3
    assert cost.peak_sram_bytes == 16 + 32
    # weights 1 B, biases int32, per-channel scale+zero point 8 B: conv 24+16+32, fc 12+12+24; 3 layers * 96
    assert cost.flash_bytes == (24 + 16 + 32) + (12 + 12 + 24) + 3 * 96
    assert cost.n_ops == 3 and cost.supported


def test_hand_computed_4bit_and_fp32():
    profile = load_profile("stm32f746")
    assert estimate(tiny_cnn1d(wbits=4), profile).flash_bytes == (12 + 16 + 32) + (12 + 12 + 24) + 3 * 96
    fp32 = estimate(tiny_cnn1d("fp32"), profile)
    assert fp32.flash_bytes == (96 + 16) + (48 + 12) + 3 * 96
    assert fp32.peak_sram_bytes == 4 * (16 + 32)


def test_mbconv_peak_memory_keeps_the_residual_alive():
    op = Op("mbconv", (4, 8, 8), (4, 8, 8), kernel=3, stride=1, hidden=12, skip=True, wbits=8, abits=8)
    # expand 256->768; depthwise 768->768 while the 256-byte input waits for the add; project 768->256 (+256)
    assert op.peak_bytes == 768 + 768 + 256
    assert op.macs == 64 * 48 + 64 * 108 + 64 * 48
    assert op.params == (48 + 12) + (108 + 12) + (48 + 4)
    assert op.key == "mbconv-input:8x8x4-output:8x8x4-expand:12-kernel:3-stride:1-skip:1-prec:int8"


def test_rpi4_does_not_run_4bit_weights():
    arch = tiny_cnn1d(wbits=4)
    cost = estimate(arch, load_profile("rpi4"))
    assert not cost.supported and cost.latency_ms is None


@pytest.mark.parametrize("device", ["stm32f746", "stm32l4r5", "rpi4"])
def test_shipped_luts_cover_the_shipped_spaces(device):
    profile = load_profile(device)
    for name in ("vision", "audio-kws", "sensor-imu"):
        for arch in load_space(name).random_archs(100, seed=9, precisions=profile.precisions):
            cost = estimate(arch, profile)
            assert cost.interpolated_ops == 0 and cost.latency_ms > 0


def test_latency_is_the_sum_of_lut_entries():
    profile = load_profile("stm32f746")
    arch = load_space("vision").random_archs(1, seed=2, precisions=profile.precisions)[0]
    assert estimate(arch, profile).latency_ms == pytest.approx(sum(profile.lut.mean_ms[k] for k in arch.op_keys))


def test_missing_ops_are_interpolated_and_counted(profile_copy):
    folder = profile_copy("stm32f746")
    ops = [Op("conv1d", (c, 64), (c * 2, 64), 3, 1, wbits=8, abits=8) for c in (4, 8, 16, 24, 32, 48)]
    ops += [Op(kind, (16, 64), (16, 32), 2, 2, wbits=8, abits=8) for kind in ("maxpool1d",)]
    ops += [Op("gap", (16, 64), (16,), wbits=8, abits=8), Op("linear", (16,), (3,), wbits=8, abits=8)]
    rows = [entry_for(op, 1e-5 * op.macs + 0.02, 0.0, 1, "imported", "test") for op in ops]
    write_lut(folder / "lut.csv", rows)
    (folder / "profile.yaml").write_text((folder / "profile.yaml").read_text().replace(
        "precisions: [fp32, int8, w4a8]", "precisions: [int8]"))
    profile = load_profile(folder)
    known = ops[2]
    assert profile.lut.mean_ms[known.key] == pytest.approx(1e-5 * known.macs + 0.02)
    unseen = Op("conv1d", (12, 64), (24, 64), 3, 1, wbits=8, abits=8)
    assert unseen.key not in profile.lut.entries
    # the fit is exact on data that is linear in MACs
    assert profile.lut.predict(unseen) == pytest.approx(1e-5 * unseen.macs + 0.02, rel=0.02)
    arch = Architecture.create("t", "cnn1d", (12, 64), 3, {"blocks": 1, "pool_type": "max", "b1_width": 24,
                               "b1_kernel": 3, "b1_pool": 1, "precision": "int8", "quant_mode": "ptq", "b1_wbits": 8})
    cost = estimate(arch, profile)
    assert cost.interpolated_ops == 3  # the conv, the GAP and the classifier have other shapes
    assert cost.latency_ms > 0
