"""The TFLite Micro memory model (workbench.hardware.memory) against hand derivations and against TFLM itself.

Hand-built graphs check the planner arithmetic; tiny architectures (a stride-2 stem whose PAD the
converter inserts, a residual MBConv block, a pooling that feeds a convolution, a classifier) are
exported to full-INT8 TFLite and run in the ``tflite-micro`` host build: the planned activations
(TFLM's arena head) must match to the byte, the whole arena and the file within a small tolerance.
An export with ``--format tflm`` must record the TFLM numbers in the manifest and write a bundle
whose C array is the file and whose plain-C parts compile for the host and a Cortex-M4.
"""
from __future__ import annotations

import os
import random
import re
import shutil
import subprocess

import numpy as np
import pytest

from workbench._infra.errors import WorkbenchError
from workbench.hardware import memory as M
from workbench.hardware.memory_pieces import Plan, boundary_offsets, estimate_memory, placement, plan_peaks
from workbench.hardware.profiles import all_profiles
from workbench.model import tflite_graph as G
from workbench.model.arch import Architecture
from workbench.model.space import all_spaces

IN_CI = os.environ.get("CI") == "true"


def _need(module: str):
    try:
        __import__(module)
    except ImportError:
        if IN_CI:
            raise
        pytest.skip(f"{module} is not installed (pip install -e '.[export]')")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is missing (apt-get install gcc-arm-none-eabi g++)")
        pytest.skip(f"{name} is not installed")
    return path


def mbconv_arch() -> Architecture:
    """8x8 input, stem 4 channels k3 stride 2 (PAD + depthwise, 1 input channel), two residual
    MBConv blocks (expand 2), head conv to 8, GAP, 3 classes."""
    return Architecture.create("tiny", "mbconv", (1, 8, 8), 3, {
        "resolution": 8, "stem_width": 4, "stem_kernel": 3, "stem_stride": 2, "s1_depth": 2, "s1_width": 4,
        "s1_kernel": 3, "s1_expand": 2, "s1_stride": 1, "head_width": 8, "precision": "int8",
        "quant_mode": "ptq", "s1_wbits": 8})


def pooled_cnn1d_arch() -> Architecture:
    """2 x 16 series: conv 8 k3 + max-pool 2 (requantised between TRANSPOSEs: it feeds a conv), conv 8 k5."""
    return Architecture.create("tiny", "cnn1d", (2, 16), 3, {
        "blocks": 2, "pool_type": "max", "b1_width": 8, "b1_kernel": 3, "b1_pool": 2, "b2_width": 8,
        "b2_kernel": 5, "b2_pool": 1, "precision": "int8", "quant_mode": "ptq", "b1_wbits": 8, "b2_wbits": 8})


def realistic_model(arch):
    """A model of ``arch`` with seeded random weights and BatchNorm statistics: its folded biases are
    distinct, as after training (all-zero biases of a fresh model are stored once by the converter)."""
    import torch

    from workbench.model.builder import build_model

    torch.manual_seed(0)
    model = build_model(arch)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.5, 0.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


# ---------------------------------------------------------------- arithmetic, by hand

def test_greedy_plan_by_hand():
    # a (64 B, steps 0-1), b (32 B, 1-2), c (16 B, 2-3), d (16 B, 3-3): placed largest first, ties later
    # buffer first: a@0, b@64 (overlaps a), d@0, c: d at 0 overlaps (-> 16), b at 64 leaves a 48 B gap -> 16
    assert M.greedy_plan([(64, 0, 1), (32, 1, 2), (16, 2, 3), (16, 3, 3)]) == 96
    # nothing overlaps in time: everything at offset 0
    assert M.greedy_plan([(48, 0, 0), (32, 1, 1), (16, 2, 2)]) == 48


def test_pinned_buffers_keep_their_offset_and_their_turn():
    # a (64 B, step 0), b (32 B, 1-2), c (16 B, 2): free, b goes to 0 (a is over) and c above it, to 32;
    # b pinned at 16 (where another segment's buffers put it) leaves the gap below it to c
    buffers = [(64, 0, 0), (32, 1, 2), (16, 2, 2)]
    assert M.place(buffers) == [0, 0, 32] and M.place(buffers, {1: 16}) == [0, 16, 0]


def random_chain(rng, n_segments: int):
    """A chain graph's buffers in segments, as an architecture's lowering makes them: each op reads the
    previous op's output, sometimes also a tensor held from earlier in the same segment (a residual), and
    sometimes requests scratch. Returns the whole graph's (tensors, scratch) and, per segment, its tensors
    (input boundary first, from the second segment on) and scratch, in the whole graph's index order."""
    sizes = [16, 32, 48, 64, 96, 128, 256]
    tensors = [[rng.choice(sizes), 0, 0]]  # [size, first, last] of the graph input
    scratch, segments, x, step = [], [], 0, 0
    for s in range(n_segments):
        own, own_scratch, held = ([] if s else [0]), [], None
        n_ops = rng.randint(1, 4)
        for k in range(n_ops):
            step += 1
            reads = [x]
            if held is not None and (rng.random() < 0.5 or k == n_ops - 1):
                reads, held = reads + [held], None
            elif held is None and k < n_ops - 1 and rng.random() < 0.3:
                held = x
            for t in reads:
                tensors[t][2] = step
            tensors.append([rng.choice(sizes), step, step])
            x = len(tensors) - 1
            own.append(x)
            if rng.random() < 0.3:
                own_scratch.append((rng.choice(sizes), step, step))
        segments.append((([] if s == 0 else [segments[-1][0][-1]]) + own, own_scratch))
        scratch += own_scratch
    return [tuple(t) for t in tensors], scratch, [([tuple(tensors[t]) for t in ids], sc) for ids, sc in segments]


@pytest.mark.parametrize("seed", range(300))
def test_plan_composed_per_segment_equals_the_whole_plan(seed):
    """The composition's claim (workbench.hardware.memory_pieces): boundaries resolved in placement order,
    then each segment planned with its boundaries pinned, give TFLM's plan of the whole graph — with
    residuals inside segments, equal sizes (ties) and scratch requests."""
    rng = random.Random(seed)
    tensors, scratch, segments = random_chain(rng, rng.randint(1, 6))
    for with_scratch in (False, True):
        plans = [Plan(bufs + (sc if with_scratch else []), None if j == 0 else 0, len(bufs) - 1)
                 for j, (bufs, sc) in enumerate(segments)]
        composed = max(plan_peaks(plans, boundary_offsets(plans, placement(plans))))
        assert composed == M.greedy_plan(tensors + (scratch if with_scratch else []))


def test_composed_memory_equals_the_whole_graph_on_every_space():
    """Every shipped space, a few hundred random architectures of every precision mix, on every shipped
    runtime: the composed estimate is the whole-graph reference, to the byte."""
    runtimes = [M.HOST_TFLM] + [p.memory for p in all_profiles() if p.memory is not None]
    checked = 0
    for space in all_spaces():
        for i, precisions in enumerate((["fp32", "int8"], ["int8", "w4a8"])):
            for arch in space.random_archs(150, seed=10 + i, precisions=precisions):
                for runtime in runtimes:
                    composed, whole = estimate_memory(arch, runtime), M.reference_memory(arch, runtime)
                    assert composed == whole, (arch.summary(), runtime.name)
                    checked += 1
    assert checked >= 7 * 300 * len(runtimes)


def test_segments_of_mixed_widths_use_the_whole_graph():
    """A float segment followed by an int8 one: one width for the whole graph (float), which the pieces,
    lowered at their own width, cannot compose — the whole graph is computed instead."""
    from types import SimpleNamespace

    from workbench.model.families.common import classifier_segment, conv_segment

    stem = conv_segment((1, 8, 8), 4, 3, 2, 32, 32, "stem")
    head = classifier_segment(stem.out_shape, 3, 8, 8)
    mixed = SimpleNamespace(segments=(stem, head), ops=stem.ops + head.ops, input_shape=(1, 8, 8))
    assert estimate_memory(mixed, M.HOST_TFLM) == M.reference_memory(mixed, M.HOST_TFLM)
    assert M.lower(mixed.ops, mixed.input_shape).width == 4


def test_fc_chain_by_hand():
    """input 64 B -> FC 32 -> FC 16 -> FC 4: the planner gives 96 B (see test above); the FCs' op data
    and per-channel arrays are persistent, not planned."""
    g = G.Graph()
    x = g.tensor(64, 2)
    for cin, cout in ((64, 32), (32, 16), (16, 4)):
        x = g.add("FULLY_CONNECTED", [x], cout, out_rank=2, consts=g.weights(cin * cout, 2, cout, "fc"), channels=cout)
    arena = M.arena(g)
    assert (arena.activations, arena.scratch) == (96, 0)
    # 64-bit: 4 activations + 6 constants -> 10 * 24 B; 3 nodes * 64 B; per FC 100 B + 2 * align16(4 * cout)
    per_channel = 2 * (128 + 64 + 16)
    assert arena.persistent == 240 + 192 + 192 + M.ALLOCATOR_FIXED_BYTES + 3 * 100 + per_channel


def test_stride2_conv_gets_a_pad_only_where_same_differs():
    # 8x8, k3, stride 2: PyTorch pads 1/1, TFLite SAME would pad 0/1 -> explicit PAD to 10x10
    g = G.lower(mbconv_arch().ops, (1, 8, 8))
    assert [op.code for op in g.ops][:2] == ["PAD", "DEPTHWISE_CONV_2D"]
    assert g.tensors[g.ops[0].output] == 100
    # 3x3, k7, stride 2: SAME pads 3/3 like PyTorch -> no PAD
    g2 = G.Graph()
    G._conv(g2, g2.tensor(9 * 24, 4), 24, (3, 3), 24, (7, 7), (2, 2), True)
    assert [op.code for op in g2.ops] == ["DEPTHWISE_CONV_2D"]


def test_float_graph_has_no_requantisation_and_float_tensors():
    """An fp32 policy is a float graph: 4-byte tensors, no QUANTIZE/TRANSPOSE pair around the pool (what
    litert-torch writes for a float sensor-imu model, whose TFLM head the model then predicts exactly)."""
    choices = dict(pooled_cnn1d_arch().choices)
    choices = {k: v for k, v in choices.items() if not k.endswith("wbits") and k != "quant_mode"}
    fp32 = Architecture.create("tiny", "cnn1d", (2, 16), 3, {**choices, "precision": "fp32"})
    g8 = G.lower(pooled_cnn1d_arch().ops, (2, 16))
    g32 = G.lower(fp32.ops, (2, 16))
    assert "QUANTIZE" in [op.code for op in g8.ops] and "QUANTIZE" not in [op.code for op in g32.ops]
    assert len(g32.ops) == len(g8.ops) - 3
    assert g32.tensors[0] == 4 * g8.tensors[0] == 4 * 32
    assert all(c.channels == 0 for c in G.constants(g32))  # float weights: no quantisation parameters


# ---------------------------------------------------------------- against TFLite Micro

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    _need("litert_torch")
    _need("tflite_micro")
    from workbench.export.formats.tflite_format import write_int8
    from workbench.export.formats.tflm_runner import run_tflm
    from workbench.export.trial import deployable_model

    out = tmp_path_factory.mktemp("memory")
    results = {}
    for name, arch in (("mbconv", mbconv_arch()), ("cnn1d", pooled_cnn1d_arch())):
        calib = np.random.default_rng(0).standard_normal((8, *arch.input_shape)).astype(np.float32)
        path = out / f"{name}.int8.tflite"
        write_int8(deployable_model(realistic_model(arch), arch), arch, calib, path, {})
        results[name] = (arch, path, run_tflm(path))
    return results


@pytest.mark.parametrize("name", ["mbconv", "cnn1d"])
def test_graph_and_arena_match_tflm(exported, name):
    arch, path, run = exported[name]
    predicted = G.lower(arch.ops, arch.input_shape)
    written = M.graph_of_file(path)
    assert [op.code for op in predicted.ops] == [op.code for op in written.ops]
    assert predicted.tensors == written.tensors
    if name == "cnn1d":
        assert "QUANTIZE" in [op.code for op in predicted.ops]  # the pool feeding a conv
    else:
        assert {"PAD", "ADD", "MEAN", "FULLY_CONNECTED"} <= {op.code for op in predicted.ops}
    est = estimate_memory(arch, M.HOST_TFLM)
    assert est.arena.activations + est.arena.scratch == run.head  # TFLM's planned head, to the byte
    assert abs(est.arena.persistent - run.tail) <= 32  # persistent: fitted op data, alignment padding
    assert abs(est.sram_bytes - run.total) / run.total < 0.02
    assert abs(est.file_bytes - path.stat().st_size) / path.stat().st_size < 0.05


def test_tflm_runner_reports_outputs(exported):
    from workbench.export.formats.tflm_runner import run_tflm

    arch, path, _ = exported["mbconv"]
    x = np.zeros((2, 8, 8, 1), np.int8)
    run = run_tflm(path, x)
    assert run.outputs.shape == (2, 3) and run.outputs.dtype == np.int8
    assert (run.outputs[0] == run.outputs[1]).all()


def test_mismatch_warning_names_the_parts():
    from workbench.export.formats.tflm_check import compare
    from workbench.export.formats.tflm_runner import TflmRun

    pred = M.MemoryEstimate(M.Arena(1000, 0, 500), 10_000, 0)
    run = TflmRun(total=2000, head=1500, tail=500)
    record, warnings = compare(pred, run, 10_100)
    assert len(warnings) == 1 and "SRAM" in warnings[0] and "-25.0 %" in warnings[0]
    assert "activations+scratch 1,000 vs 1,500" in warnings[0] and "persistent 500 vs 500" in warnings[0]
    assert record["flash"]["relative_error"] == pytest.approx(-0.0099, abs=1e-4)
    assert compare(pred, TflmRun(total=1500, head=1000, tail=500), 10_000)[1] == []


# ---------------------------------------------------------------- export: manifest + bundle

@pytest.fixture(scope="module")
def bundle_export(tmp_path_factory):
    _need("litert_torch")
    _need("tflite_micro")
    from workbench.export.trial import export_model
    from workbench.model.data import load_dataset

    arch = mbconv_arch()
    out = tmp_path_factory.mktemp("bundle")
    return export_model(realistic_model(arch), arch, load_dataset("digits"), out, ["tflm"], name="tiny", repeats=5)


def test_manifest_records_tflm_numbers(bundle_export):
    entry = bundle_export.manifest["files"]["tflm"]
    tflm = entry["tflm"]
    assert tflm["arena_bytes"] == tflm["head_bytes"] + tflm["tail_bytes"] > 0
    assert tflm["samples"] == entry["verification"]["samples"]
    assert tflm["agreement"]["within_one_step"] is True
    mem = tflm["memory"]
    assert mem["sram"]["measured"] == tflm["arena_bytes"]
    assert mem["sram"]["parts"]["activations+scratch"]["predicted"] == tflm["head_bytes"]
    assert mem["flash"]["measured"] == entry["bytes"]
    assert abs(mem["flash"]["relative_error"]) < 0.05 and abs(mem["sram"]["relative_error"]) < 0.05
    assert entry["warnings"] == []


def test_bundle_array_is_the_file_and_resolver_lists_its_ops(bundle_export):
    entry = bundle_export.manifest["files"]["tflm"]
    folder = bundle_export.out_dir / entry["bundle"]["folder"]
    data = (bundle_export.out_dir / entry["file"]).read_bytes()
    text = (folder / "model_data.cc").read_text()
    assert "alignas(16)" in text
    array = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", text))
    assert array == data and f"g_model_data_len = {len(data)};" in text
    resolver = (folder / "op_resolver.h").read_text()
    ops = sorted({op.code for op in M.graph_of_file(bundle_export.out_dir / entry["file"]).ops})
    assert entry["bundle"]["ops"] == ops
    assert re.findall(r"resolver\.(\w+)\(\)", resolver) == [M_RESOLVER[op] for op in ops]
    settings = (folder / "model_settings.h").read_text()
    arena = int(re.search(r"#define MODEL_ARENA_BYTES (\d+)", settings).group(1))
    assert arena >= entry["tflm"]["arena_bytes"] * 1.1 and arena % 1024 == 0
    assert {"README.md", "inference.cc", "model_io.c", "model_io.h", "model_data.h"} <= {p.name for p in folder.iterdir()}


@pytest.mark.parametrize("device, core", [("stm32f746", "cortex-m7"), ("stm32l4r5", "cortex-m4+fp"), ("rpi4", None)])
def test_bundle_readme_builds_for_the_export_device_and_lists_its_files(bundle_export, tmp_path, device, core):
    """The README's TARGET_ARCH is the export's device's core (none named for a non-Cortex-M device), and
    the files it tells the reader to add are exactly the files written beside it."""
    from workbench.export.formats.tflm_bundle import target_arch, write_bundle
    from workbench.hardware.profiles import load_profile

    profile = load_profile(device)
    assert target_arch(profile) == core
    entry = bundle_export.manifest["files"]["tflm"]
    shutil.copy(bundle_export.out_dir / entry["file"], tmp_path / entry["file"])
    fields = write_bundle(tmp_path / entry["file"], mbconv_arch(), entry, profile)
    folder = tmp_path / fields["bundle"]["folder"]
    readme = (folder / "README.md").read_text()
    written = sorted(p.name for p in folder.iterdir() if p.name != "README.md")
    assert len(written) == 7 and "Add the seven files of this bundle (" in readme
    assert all(f"`{name}`" in readme.split("## Build")[1] for name in written)
    targets = re.findall(r"TARGET_ARCH=(\S+)", readme)
    assert targets == ([core] if core else ["<your"])
    assert fields["bundle"]["target_arch"] == core
    assert (f"the export's device, `{device}`, is not a Cortex-M" in readme) is (core is None)


M_RESOLVER = {"ADD": "AddAdd", "CONV_2D": "AddConv2D", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
              "FULLY_CONNECTED": "AddFullyConnected", "MEAN": "AddMean", "PAD": "AddPad"}


@pytest.mark.parametrize("compiler, flags", [("g++", ["-std=c++17"]), ("gcc", ["-std=c99"]),
                                             ("arm-none-eabi-gcc", ["-mcpu=cortex-m4", "-mthumb", "-std=c99"]),
                                             ("arm-none-eabi-g++", ["-mcpu=cortex-m4", "-mthumb", "-std=c++17"])])
def test_bundle_compiles(bundle_export, tmp_path, compiler, flags):
    """The parts that need no TFLM headers: the C array and the quantisation helpers."""
    cc = _tool(compiler)
    entry = bundle_export.manifest["files"]["tflm"]
    folder = bundle_export.out_dir / entry["bundle"]["folder"]
    source = "model_data.cc" if compiler.endswith("++") else "model_io.c"
    done = subprocess.run([cc, *flags, "-Wall", "-Werror", "-c", str(folder / source), "-o", str(tmp_path / "o.o")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- profiles

def test_profile_memory_section_is_validated(tmp_path):
    from workbench._infra.yamlio import load_yaml_mapping
    from workbench.hardware.profiles import load_profile, parse_profile

    shipped = load_profile("stm32f746")
    data = load_yaml_mapping(__import__("pathlib").Path(shipped.path))
    assert shipped.memory.kernels == "cmsis-nn" and shipped.memory.pointer_bytes == 4
    for field, value in (("kernels", "fast"), ("pointer_bytes", 6), ("code_kb", {"CONV_2D": -1}), ("typo", 1)):
        bad = {**data, "memory": {**data["memory"], field: value}}
        with pytest.raises(WorkbenchError) as err:
            parse_profile(bad, __import__("pathlib").Path(shipped.path))
        assert "memory." in str(err.value)
