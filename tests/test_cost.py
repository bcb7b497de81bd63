"""Cost estimator on hand-computed nets, LUT lookup and interpolation."""
import re

import pytest

from workbench import Architecture, estimate, load_profile, load_space
from workbench.hardware.latency_model import set_per_inference_ms
from workbench.hardware.locations import PROFILES_DIR
from workbench.model.ops import Op
from workbench.hardware.lut import entry_for, write_lut



def tiny_cnn1d(precision="int8", wbits=8):
    """conv1d (2,8)->(4,8) k3, then GAP and a 4->3 classifier."""
    choices = {"blocks": 1, "pool_type": "max", "b1_width": 4, "b1_kernel": 3, "b1_pool": 1, "precision": precision}
    if precision == "int8":
        choices.update(quant_mode="ptq", b1_wbits=wbits)
    return Architecture.create("tiny", "cnn1d", (2, 8), 3, choices)


def test_hand_computed_int8_net():
    """TFLite Micro's arena and flash for the exported graph, derived by hand (workbench.hardware.memory's rules).

    The int8 export is TRANSPOSE, RESHAPE, TRANSPOSE (1-D plumbing, 16 B tensors), CONV_2D 1x3 (out 32 B),
    TRANSPOSE (32 B), MEAN (4 B), FULLY_CONNECTED (3 B): 7 ops at steps 1..7. TFLM's greedy planner
    (16-byte aligned, largest first) packs the activations into 64 B: the two 32 B tensors side by side,
    every 16 B tensor beside its neighbour. CMSIS-NN's 1x3 convolution asks for an im2col buffer of
    2 * align4(3 * 2) * 2 = 32 B at step 4 and MEAN for 16 + 16 + 16 B at step 6, which lifts the
    plan to 96 B. Persistent (32-bit pointers): 17 tensors * 12 B -> 208, 7 nodes * 32 B = 224,
    I/O tensors 144, allocator 470, 4 scratch handles -> 16, op data 3 * 7 + 7 + 115 + 100 + 100
    plus per-channel multiplier/shift arrays 2 * 16 (conv) + 2 * 16 (fc) = 407: 1469 B."""
    arch = tiny_cnn1d()
    profile = load_profile("stm32f746")
    cost = estimate(arch, profile)
    # conv: 4*2*3 = 24 weights + 4 biases, 8 positions * 24 = 192 MACs; fc: 12 weights + 3 biases, 12 MACs
    assert cost.macs == 192 + 12
    assert cost.params == 24 + 4 + 12 + 3
    assert (cost.sram_activations, cost.sram_scratch, cost.sram_persistent) == (64, 32, 1469)
    assert cost.peak_sram_bytes == 64 + 32 + 1469
    # runtime code: base 20 KB + CONV_2D 6 + FULLY_CONNECTED 2 + MEAN 2.5 + TRANSPOSE 1.5 + RESHAPE 0.5 KB
    assert cost.flash_code == 1024 * (20 + 6 + 2 + 2.5 + 1.5 + 0.5)
    assert cost.flash_bytes == cost.flash_file + cost.flash_code
    assert cost.n_ops == 3 and cost.supported


def test_host_runtime_has_no_cmsis_scratch_and_wider_structs():
    """The 64-bit reference-kernel build (host-cpu profile): no im2col buffer, but MEAN's three
    scratch buffers still lift the 64 B plan to 96 B; persistent 416 + 448 + 192 + 470 + 32 + 407."""
    cost = estimate(tiny_cnn1d(), load_profile("host-cpu"))
    assert (cost.sram_activations, cost.sram_scratch, cost.sram_persistent) == (64, 32, 1965)
    assert cost.flash_code == 0 and cost.flash_bytes == cost.flash_file


def test_hand_computed_4bit_and_fp32():
    profile = load_profile("stm32f746")
    int8 = estimate(tiny_cnn1d(), profile)
    # the .tflite stores 4-bit stages as int8 (TFLite's builtin kernels take int8 filters): same bytes
    assert estimate(tiny_cnn1d(wbits=4), profile).flash_bytes == int8.flash_bytes
    fp32 = estimate(tiny_cnn1d("fp32"), profile)
    # float32 tensors: 64, 64, 64, 64, 128, 128, 16, 16 B -> planned in 256 B; MEAN's two index buffers fit
    assert (fp32.sram_activations, fp32.sram_scratch) == (256, 0)
    # float weights (4 B) but no per-channel quantisation parameters: weights 24*4 + 12*4 vs 24 + 12 bytes,
    # scales and zero points 12 B per channel on 4 + 4 + 3 + 3 channels in the int8 file
    assert fp32.flash_file < int8.flash_file


@pytest.mark.parametrize("device", ["stm32f746", "host-cpu"])
def test_memoised_estimate_equals_the_reference_computation(device):
    """A search's estimator (memos, memory composed per segment) scores every field exactly as a fresh one
    with the whole-graph memory model does: latency, peak SRAM, flash and their parts."""
    from workbench.hardware.cost import CostEstimator, estimator_for
    from workbench.hardware.memory import reference_memory

    profile = load_profile(device)
    for name in ("vision", "audio-kws", "sensor-imu"):
        for arch in load_space(name).random_archs(100, seed=3, precisions=list(profile.precisions)):
            assert estimator_for(profile).estimate(arch) == CostEstimator(profile, reference_memory).estimate(arch)


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


def test_latency_is_the_sum_of_lut_entries_plus_one_per_inference_overhead(profile_copy):
    profile = load_profile("stm32f746")
    arch = load_space("vision").random_archs(1, seed=2, precisions=profile.precisions)[0]
    lut_sum = sum(profile.latency.lut.mean_ms[k] for k in arch.op_keys)
    assert estimate(arch, profile).latency_ms == pytest.approx(profile.per_inference_ms + lut_sum, rel=1e-12)

    folder = profile_copy("stm32f746")  # the same LUT with a 0.75 ms Invoke() overhead
    set_per_inference_ms(folder / "profile.yaml", 0.75, "test")
    with_overhead = load_profile(folder)
    assert with_overhead.per_inference_ms == 0.75
    assert len(arch.segments) > 1 and len(arch.op_keys) > 1  # once per model, not per segment or op
    assert estimate(arch, with_overhead).latency_ms == pytest.approx(0.75 + lut_sum, rel=1e-12)

    host = load_profile("host-cpu")  # the shipped calibrated overhead, as its profile.yaml writes it
    written = float(re.search(r"^per_inference_ms:\s*([0-9.eE+-]+)", (PROFILES_DIR / "host-cpu" /
                                                                    "profile.yaml").read_text(), re.M).group(1))
    host_arch = load_space("vision").random_archs(1, seed=2, precisions=host.precisions)[0]
    assert written > 0 and host.per_inference_ms == written
    assert estimate(host_arch, host).latency_ms == pytest.approx(
        written + sum(host.latency.op_latency(op)[0] for op in host_arch.ops), rel=1e-12)


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
    assert profile.latency.lut.mean_ms[known.key] == pytest.approx(1e-5 * known.macs + 0.02)
    unseen = Op("conv1d", (12, 64), (24, 64), 3, 1, wbits=8, abits=8)
    assert unseen.key not in profile.latency.lut.entries
    # the fit is exact on data that is linear in MACs
    assert profile.latency.lut.predict(unseen) == pytest.approx(1e-5 * unseen.macs + 0.02, rel=0.02)
    arch = Architecture.create("t", "cnn1d", (12, 64), 3, {"blocks": 1, "pool_type": "max", "b1_width": 24,
                               "b1_kernel": 3, "b1_pool": 1, "precision": "int8", "quant_mode": "ptq", "b1_wbits": 8})
    cost = estimate(arch, profile)
    assert cost.interpolated_ops == 3  # the conv, the GAP and the classifier have other shapes
    assert [profile.latency.op_latency(op)[1] for op in arch.ops] == [True, True, True]
    assert cost.latency_ms == pytest.approx(sum(profile.latency.lut.predict(op) for op in arch.ops), rel=1e-12)
