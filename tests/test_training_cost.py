"""Training-step cost (issue 23, item 1): the int8 compiled count against a hand-computed table, the fp32 eager
count against PyTorch, the scheme grammar, and ``workbench train-cost``'s output and bad input."""
from __future__ import annotations

import json

import pytest
from conftest import one_trial_study

from workbench._infra.errors import WorkbenchError
from workbench.hardware.cost import estimate
from workbench.hardware.profiles import load_profile
from workbench.hardware.training import TrainingEstimator, training_cost
from workbench.model.arch import Architecture
from workbench.model.ops import SPECS
from workbench.model.train_graph import LOWERINGS, weight_layers
from workbench.model.update_schemes import ALL, BIAS, FROZEN, LayerUpdate, parse_scheme

INT8 = {"precision": "int8", "quant_mode": "ptq"}
# A: conv1d 3->8 (k3, T=16) + ReLU6, maxpool 2, conv1d 8->8 (k3, T=8) + ReLU6, gap, fc 8->4
NET_A = Architecture.create("t", "cnn1d", (3, 16), 4, {"blocks": 2, "pool_type": "max", "b1_width": 8,
                                                       "b1_kernel": 3, "b1_pool": 2, "b2_width": 8, "b2_kernel": 3,
                                                       "b2_pool": 1, **INT8})
# B: conv 3x3/2 1->4 on 8x6 (-> 4x3), depthwise 3x3 on 4 ch, pointwise 4->8, gap, fc 8->3
NET_B = Architecture.create("t", "dscnn", (1, 8, 6), 3, {"stem_width": 4, "stem_kernel": 3, "stem_stride": 2,
                                                         "blocks": 1, "b1_width": 8, "b1_kernel": 3, "b1_stride": 1,
                                                         **INT8})
# C: conv 3x3/2 1->4 on 8x8 (-> 4x4), MBConv (expand 4->8, depthwise 3x3, project 8->4, identity add),
#    head 1x1 4->8, gap, fc 8->2
NET_C = Architecture.create("t", "mbconv", (1, 8, 8), 2, {"resolution": 8, "stem_width": 4, "stem_kernel": 3,
                                                          "stem_stride": 2, "s1_depth": 1, "s1_width": 4,
                                                          "s1_kernel": 3, "s1_expand": 2, "s1_stride": 1,
                                                          "head_width": 8, **INT8})

# ---------------------------------------------------------------- the int8 compiled count, by hand
# Rules (first principles, module docstring of workbench.hardware.training), batch 1:
#   saved:     a weight update keeps the kept input channels at int8: in_elems * kept / cin bytes; every ReLU6 at
#              or after the lowest updated layer keeps a 1-bit mask per output element; a max pool the error
#              passes through keeps ceil(log2(window)) bits per output element;
#   weights:   int8 kept weights (1 byte) + int32 biases (4 bytes) of the updated layers;
#   step:      errors at float32 (4 bytes): at the layer's output, at its input when the error goes further
#              down, plus a residual branch's error held; gradient buffer: trained elements * 4 bytes, applied in
#              place; "gradients" and "scratch" are those of the step with the largest sum;
#   trained:   bias elements + kept weight elements; optimizer state = copies * trained * 4 bytes.
HAND = {
    (NET_A, "full"): {
        # conv1 in 3x16=48 (all kept) + mask 128 bits=16 | pool argmax 1 bit x 64 = 8 | conv2 in 64 + mask 64 bits=8
        # | fc in 8
        "saved": 48 + 16 + 8 + 64 + 8 + 8,
        # conv1 8*4 + 72 | conv2 8*4 + 192 | fc 4*4 + 32
        "weights": (32 + 72) + (32 + 192) + (16 + 32),
        "trained": (8 + 72) + (8 + 192) + (4 + 32),
        # steps (grad + errors): conv1 80*4 + 128*4 = 832; pool (64+128)*4 = 768; conv2 200*4 + (64+64)*4 = 1312;
        # gap (8+64)*4 = 288; fc 36*4 + (4+8)*4 = 192 -> conv2
        "gradients": 200 * 4, "scratch": (64 + 64) * 4, "layers": 3},
    (NET_A, "bias:3"): {
        # every layer's bias, no weight: no input kept (the fc's included: a bias gradient needs no input);
        # masks conv1 16 + conv2 8, pool argmax 8
        "saved": 16 + 8 + 8,
        "weights": 32 + 32 + 16, "trained": 8 + 8 + 4,
        # conv1 8*4 + 128*4 = 544; pool (64+128)*4 = 768; conv2 32 + (64+64)*4 = 544; gap 288; fc 16 + 48 = 64
        "gradients": 0, "scratch": (64 + 128) * 4, "layers": 3},
    (NET_A, "classifier"): {
        # only the fc: its input 8 bytes; nothing below it runs backward
        "saved": 8, "weights": 16 + 32, "trained": 4 + 32,
        # fc: grad 36*4, error at its output only (4*4)
        "gradients": 36 * 4, "scratch": 4 * 4, "layers": 1},
    (NET_A, "sparse:bias=1,w=2@0.5"): {
        # conv2 weights on floor(8*0.5)=4 of 8 input channels: 64*4/8=32 bytes kept + mask 8; fc bias: nothing kept
        "saved": 32 + 8,
        "weights": (32 + 192 * 4 // 8) + 16, "trained": (8 + 96) + 4,
        # conv2: grad 104*4=416 + error 64*4=256 (its input gets none: nothing below trains) = 672; gap 288; fc 64
        "gradients": 104 * 4, "scratch": 64 * 4, "layers": 2},
    (NET_B, "full"): {
        # stem in 48 + mask 48 bits=6 | dw in 48 + mask 6 | pw in 48 + mask 96 bits=12 | fc in 8
        "saved": 48 + 6 + 48 + 6 + 48 + 12 + 8,
        "weights": (16 + 36) + (16 + 36) + (32 + 32) + (12 + 24), "trained": (4 + 36) + (4 + 36) + (8 + 32) + (3 + 24),
        # stem 160 + 48*4 = 352; dw 160 + (48+48)*4 = 544; pw 160 + (96+48)*4 = 736; gap (8+96)*4 = 416; fc 108 + 44
        "gradients": 40 * 4, "scratch": (96 + 48) * 4, "layers": 4},
    (NET_B, "bias:3"): {
        "saved": 6 + 12,  # dw and pw masks (the fc has no activation)
        "weights": 16 + 32 + 12, "trained": 4 + 8 + 3,
        # dw 16 + 48*4 = 208; pw 32 + (96+48)*4 = 608; gap 416; fc 12 + 44 = 56
        "gradients": 8 * 4, "scratch": (96 + 48) * 4, "layers": 3},
    (NET_B, "sparse:w=-2@0.5"): {
        # pw weights on floor(4*0.5)=2 input channels (+ its bias): input 48*2/4 = 24 + mask 12
        "saved": 24 + 12, "weights": 32 + 32 * 2 // 4, "trained": 8 + 16,
        # pw 24*4 + 96*4 = 480; gap 416; fc (frozen, error passes) (3+8)*4 = 44
        "gradients": 24 * 4, "scratch": 96 * 4, "layers": 1},
    (NET_C, "full"): {
        # stem in 64 + mask 8 | expand in 64 + mask 16 | dw in 128 + mask 16 | project in 128 | head in 64 + mask 16
        # | fc in 8
        "saved": 64 + 8 + 64 + 16 + 128 + 16 + 128 + 64 + 16 + 8,
        "weights": (16 + 36) + (32 + 32) + (32 + 72) + (16 + 32) + (32 + 32) + (8 + 16),
        "trained": (4 + 36) + (8 + 32) + (8 + 72) + (4 + 32) + (8 + 32) + (2 + 16),
        # inside the residual block the skip path's error at the block input (64) is held:
        # expand 160 + (128+64+64)*4 = 1184; dw 320 + (128+128+64)*4 = 1600; project 144 + (64+128+64)*4 = 1168;
        # stem 416; head 160 + (128+64)*4 = 928; gap 544; fc 112 -> dw
        "gradients": 80 * 4, "scratch": (128 + 128 + 64) * 4, "layers": 6},
    (NET_C, "bias:4"): {
        "saved": 16 + 16,  # dw and head masks (project has no activation); nothing held: the block input needs no error
        "weights": 32 + 16 + 32 + 8, "trained": 8 + 4 + 8 + 2,
        # dw 32 + 128*4 = 544; project 16 + (64+128)*4 = 784; head 32 + (128+64)*4 = 800; gap 544; fc 48
        "gradients": 8 * 4, "scratch": (128 + 64) * 4, "layers": 4},
    (NET_C, "sparse:bias=2,w=2@0.5+-2@0.25"): {
        # expand weights on 2 of 4 input channels: 64*2/4 = 32 + mask 16; dw mask 16 (frozen, the error passes);
        # head weights on floor(4*0.25)=1 of 4: 64/4 = 16 + mask 16
        "saved": 32 + 16 + 16 + 16 + 16,
        "weights": (32 + 32 * 2 // 4) + (32 + 32 // 4) + 8, "trained": (8 + 16) + (8 + 8) + 2,
        # expand 24*4 + 128*4 = 608; dw (frozen) (128+128)*4 = 1024; project (64+128)*4 = 768; head 64 + 768 = 832
        "gradients": 0, "scratch": (128 + 128) * 4, "layers": 3},
}


@pytest.mark.parametrize("net, scheme", list(HAND), ids=[f"{n.family}-{s}" for n, s in HAND])
def test_int8_compiled_count_matches_the_hand_computed_table(net, scheme):
    hand = HAND[(net, scheme)]
    profile = load_profile("stm32f746")
    arena = estimate(net, profile).peak_sram_bytes  # the forward arena is the TFLM plan (checked in test_memory)
    for optimizer, copies in (("sgd", 0), ("momentum", 1), ("adam", 2)):
        cost = training_cost(net, profile, scheme, optimizer, "int8")
        got = {"saved": cost.saved, "weights": cost.weights, "trained": cost.trained_params,
               "gradients": cost.gradients, "scratch": cost.scratch, "layers": cost.updated_layers}
        assert got == hand, (scheme, optimizer)
        assert cost.optimizer_state == copies * hand["trained"] * 4
        assert cost.forward_arena == arena
        assert cost.peak_sram_bytes == (hand["weights"] + copies * hand["trained"] * 4 + hand["saved"]
                                        + max(arena, hand["gradients"] + hand["scratch"]))


def test_the_backward_pass_can_set_the_peak(profile_copy):
    """Without a runtime plan (the per-layer rule: worst layer's in + out + held at int8) the backward errors of
    NET_C's full update (1600 bytes at the depthwise step) exceed the forward arena."""
    folder = profile_copy()
    text = (folder / "profile.yaml").read_text().split("\nmemory:")[0] + "\n"
    (folder / "profile.yaml").write_text(text)
    cost = training_cost(NET_C, load_profile(folder), "full")
    assert cost.forward_arena == 128 + 128 + 64  # depthwise: input 128 + output 128 + the held block input 64
    assert cost.peak_phase == "backward"
    assert cost.peak_sram_bytes == HAND[(NET_C, "full")]["weights"] + HAND[(NET_C, "full")]["saved"] + 320 + 1280


# ---------------------------------------------------------------- the fp32 eager count against PyTorch

def _spaces_one_each():
    from workbench.model.space import load_space

    return [load_space(s).random_archs(1, seed=5)[0] for s in ("vision", "audio-kws", "sensor-imu", "mlperf-ic",
                                                                "mlperf-ad")]


@pytest.mark.parametrize("scheme", ["full", "classifier", "last:2", "bias:3", "sparse:bias=2,w=1@0.5+-1@0.25"])
def test_fp32_eager_count_is_what_pytorch_keeps(scheme):
    torch = pytest.importorskip("torch")
    from workbench.model.builder import build_model
    from workbench.model.update_torch import measure_step

    for arch in [NET_A, NET_B, NET_C, *_spaces_one_each()]:
        torch.manual_seed(0)
        model = build_model(arch)
        updates = parse_scheme(scheme).resolve(len(weight_layers(arch)))
        kept = measure_step(model, updates, torch.randn(2, *arch.input_shape), ("sgd", "momentum", "adam"))
        for optimizer in ("sgd", "momentum", "adam"):
            cost = training_cost(arch, "stm32f746", scheme, optimizer, "fp32", batch=2)
            assert (cost.saved, cost.gradients, cost.optimizer_state, cost.weights) == (
                kept["saved"], kept["gradients"], kept["optimizer_state"][optimizer], kept["weights"]), (
                arch.summary(), scheme, optimizer)


def test_bias_only_keeps_no_input_of_a_linear_layer_but_a_weight_update_does():
    """TinyTL's point, in both counts: a fully connected layer's bias gradient needs no input activation."""
    for arith in ("int8", "fp32"):
        bias = training_cost(NET_A, "stm32f746", "sparse:bias=1", arith=arith, batch=1)
        weight = training_cost(NET_A, "stm32f746", "classifier", arith=arith, batch=1)
        assert bias.saved == 0 and weight.saved == 8 * (4 if arith == "fp32" else 1)


def test_same_inputs_give_the_same_numbers():
    first = [training_cost(NET_C, "stm32f746", s, o, a).to_dict() for s in ("full", "bias:2") for o in ("sgd", "adam")
             for a in ("int8", "fp32")]
    fresh = TrainingEstimator(load_profile("stm32f746"))  # nothing remembered
    again = [fresh.cost(NET_C, s, o, a).to_dict() for s in ("full", "bias:2") for o in ("sgd", "adam")
             for a in ("int8", "fp32")]
    assert first == again


def test_every_op_kind_has_a_training_graph():
    assert set(SPECS.names()) <= set(LOWERINGS)


def test_fp32_at_batch_1_says_pytorch_refuses_vector_batchnorm():
    from workbench.model.space import load_space

    mlp = load_space("mlperf-ad").random_archs(1)[0]
    notes = training_cost(mlp, "stm32f746", "bias:2", arith="fp32").notes
    assert any("BatchNorm" in n and "batch 1" in n for n in notes)
    assert not training_cost(mlp, "stm32f746", "bias:2", arith="fp32", batch=2).notes


# ---------------------------------------------------------------- scheme grammar

def test_schemes_resolve_per_layer():
    assert parse_scheme("full").resolve(3) == (ALL, ALL, ALL)
    assert parse_scheme("classifier").resolve(3) == (FROZEN, FROZEN, ALL)
    assert parse_scheme("last:2").resolve(3) == (FROZEN, ALL, ALL)
    assert parse_scheme("bias:2").resolve(3) == (FROZEN, BIAS, BIAS)
    assert parse_scheme("sparse:bias=1,w=1@0.25+-2").resolve(4) == (
        LayerUpdate(True, 0.25), FROZEN, LayerUpdate(True, 1.0), BIAS)
    assert parse_scheme("sparse:w=2@0.5").text == "sparse:w=2@0.5"
    assert parse_scheme(" Sparse:bias=3,w=-1@0.5 ").text == "sparse:bias=3,w=-1@0.5"


@pytest.mark.parametrize("text, expected", [
    ("everything", "unknown scheme 'everything'"),
    ("sparse:auto", "only `workbench adapt --task T"),
    ("last:0", "K must be an integer >= 1"),
    ("bias:x", "K must be an integer >= 1"),
    ("sparse:bias=2,w=3@1.5", "ratio must be in (0, 1]"),
    ("sparse:w=3@0", "ratio must be in (0, 1]"),
    ("sparse:w=0@0.5", "non-zero integer"),
    ("sparse:bias=0", "updates nothing"),
    ("sparse:bias=1,bias=2", "each once"),
])
def test_bad_schemes_name_the_flag_and_the_grammar(text, expected):
    with pytest.raises(WorkbenchError) as err:
        parse_scheme(text)
    message = str(err.value)
    assert message.startswith("--scheme") and expected in message and "\n" not in message
    if expected.startswith("unknown") or "auto" in text:
        assert "last:K" in message and "sparse:bias=K" in message  # the accepted schemes are listed


@pytest.mark.parametrize("text, expected", [("last:4", "K=4 is larger than the network's 3 weight layers"),
                                            ("sparse:w=5@0.5", "layer 5 does not exist"),
                                            ("sparse:w=-1@0.5+3@0.25", "layer 3 is chosen twice")])
def test_schemes_that_ask_for_missing_layers_are_refused(text, expected):
    with pytest.raises(WorkbenchError, match="^--scheme") as err:
        training_cost(NET_A, "stm32f746", text)
    assert expected in str(err.value)


# ---------------------------------------------------------------- workbench train-cost

@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return one_trial_study(tmp_path_factory, "tc")


def test_train_cost_table_and_json(cli, study):
    table = cli("train-cost", "--study", "tc", "--storage", study, "--trial", "0", "--device", "stm32f746",
                "--scheme", "bias:2")
    assert table.code == 0, table.err
    for part in ("forward arena", "saved for backward", "gradients", "weights in SRAM", "optimizer state",
                 "scratch", "peak training SRAM", "SRAM budget", "training step"):
        assert part in table.out
    assert "modeled" in table.out and "fits" in table.out
    run = cli("train-cost", "--study", "tc", "--storage", study, "--trial", "best", "--scheme", "full",
              "--optimizer", "adam", "--arith", "fp32", "--batch", "2", "--format", "json")
    data = json.loads(run.out)
    assert data["trial"] == 0 and data["arith"] == "fp32" and data["batch"] == 2
    assert data["peak_sram_bytes"] == (data["parts"]["weights in SRAM"] + data["parts"]["optimizer state"]
                                       + data["parts"]["saved for backward"]
                                       + max(data["parts"]["forward arena"],
                                             data["parts"]["gradients"] + data["parts"]["scratch (backward errors)"]))
    assert len(data["trust"]) == 2


def test_train_cost_compares_repeated_schemes_side_by_side(cli, study):
    args = ["train-cost", "--study", "tc", "--storage", study, "--trial", "0", "--scheme", "full", "--scheme", "bias:1"]
    table = cli(*args)
    assert table.code == 0, table.err
    rows = {line.split()[0]: line.split() for line in table.out.splitlines() if line.split()[:1] in (["full"],
                                                                                                     ["bias:1"])}
    singles = [json.loads(cli("train-cost", "--study", "tc", "--storage", study, "--trial", "0", "--scheme", s,
                              "--format", "json").out) for s in ("full", "bias:1")]
    for single in singles:
        row = rows[single["scheme"]]
        assert row[7] == f"{single['peak_sram_bytes'] / 1024:.1f}"  # the peak KB column
        added = single["peak_sram_bytes"] - single["parts"]["forward arena"]
        assert row[8] == f"{added / 1024:.1f}"
    both = json.loads(cli(*args, "--format", "json").out)
    assert [row["scheme"] for row in both] == ["full", "bias:1"]
    assert both[0]["peak_sram_bytes"] == singles[0]["peak_sram_bytes"]


@pytest.mark.parametrize("args, expected", [
    (["--scheme", "sparse:auto"], "--scheme sparse:auto"),
    (["--scheme", "half"], "--scheme: unknown scheme 'half'"),
    (["--scheme", "sparse:w=1@2"], "ratio must be in (0, 1]"),
    (["--scheme", "full", "--optimizer", "lion"], "--optimizer: unknown optimizer 'lion'"),
    (["--scheme", "full", "--arith", "int4"], "--arith: unknown arithmetic 'int4'"),
    (["--scheme", "full", "--batch", "2"], "--batch: the int8 compiled count models batch-1"),
    (["--scheme", "full", "--format", "csv"], "--format"),
])
def test_train_cost_bad_flags_exit_2_before_the_storage_is_opened(tmp_path, cli, args, expected):
    db = tmp_path / "never.db"
    run = cli("train-cost", "--study", "x", "--storage", f"sqlite:///{db}", *args)
    lines = run.err.strip().splitlines()
    assert run.code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], run.err
    assert not db.exists()


def test_train_cost_k_larger_than_the_network_exits_2(cli, study):
    run = cli("train-cost", "--study", "tc", "--storage", study, "--trial", "0", "--scheme", "last:99")
    lines = run.err.strip().splitlines()
    assert run.code == 2 and len(lines) == 1 and "--scheme last:99: K=99 is larger than" in lines[0]


def test_train_cost_help_names_every_flag_and_default(cli):
    out = " ".join(cli("train-cost", "--help").out.split())
    for flag in ("--study", "--storage", "--trial", "--device", "--scheme", "--optimizer", "--arith", "--batch",
                 "--format"):
        assert flag in out
    for default in ("(default best)", "(default sgd)", "(default int8)", "default 1)", "(default table)"):
        assert default in out
