"""Published STM32F746 figures (MicroNets, MLSys 2021) against what the workbench predicts for the same networks.

Banbury et al., "MicroNets" (arXiv:2010.11267v6), Appendix B Table 4, measured TensorFlow Lite Micro +
CMSIS-NN on an STM32F746ZG: latency (the "M" column; what ``hw_profiles/stm32f746`` is calibrated to),
flash (the ``.tflite`` flatbuffer) and SRAM (TFLM's recording allocator: activations + persistent). The
networks are written down in ``hw_profiles/stm32f746/models/`` (and ``mlperf-ad``), listed with their
latencies in ``hw_profiles/stm32f746/published_latency.csv``. Per network this prints

* Mops (2 x MACs, the paper's unit) — a check that the written-down network is the published one;
* latency as ``cost.estimate`` gives it (ops the shipped spaces never produce are computed from the
  profile's ``latency_model.yaml``, like its LUT rows; ``interp`` counts interpolated ops: 0) and its
  error against the paper — the *fitted* error (``workbench calibrate`` prints the leave-one-out one);
* flash (file) and SRAM as the memory model predicts them for *our* export, and for the graph TensorFlow's
  2020 converter wrote ("TF2020"): SAME padding, so no PAD before strided convolutions, and
  FULLY_CONNECTED weights quantised per tensor (TFLite's int8 spec: per-axis for CONV_2D and
  DEPTHWISE_CONV_2D, per-tensor for FULLY_CONNECTED), so no per-channel multiplier/shift arrays in the
  arena and no per-channel scales in the file for FC layers — our export quantises FC weights per channel.

    python benchmarks/bench_micronets.py
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from unittest import mock

import _report  # the page writer; also puts the repository root first on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.calibration import calibrate
from workbench.hardware import memory  # noqa: E402
from workbench.model import tflite_graph  # noqa: E402
from workbench.hardware.cost import estimate  # noqa: E402
from workbench.hardware.profiles import load_profile  # noqa: E402
from workbench.model.space import load_space  # noqa: E402

PAGE = _report.Page(__file__)

FOLDER = Path(__file__).resolve().parent.parent / "hw_profiles" / "stm32f746"
# MicroNets Table 4, STM32F746ZG: (Mops, flash KB, SRAM KB) per row; "-" (not printed) is None
TABLE4 = {"micronet-kws-l": (129, 612, 208.8), "micronet-kws-m": (30.6, 163, 103.3),
          "micronet-kws-s": (16.4, 102, 53.2), "micronet-ad-m": (124.7, 464, 274.5),
          "dscnn-l": (107.2, 490, 201.3), "dscnn-m": (37.3, 181, 123.3), "dscnn-s": (7.1, 49, 47.2),
          "person-detection": (None, 294, 82.3), "mlperf-ad": (0.52, 270, 4.7)}


def architecture(model: str):
    """The one network a fixed-choice space (a .yaml beside the CSV, or a shipped space name) describes."""
    space = load_space(FOLDER / model if model.endswith(".yaml") else model)
    return space.random_archs(1, seed=0, precisions=["int8"])[0]


def tf2020_graph(arch) -> tflite_graph.Graph:
    """The graph TensorFlow's 2020 converter would write: SAME padding (no PAD ops), FC weights per tensor."""
    tflite_graph._fragment.cache_clear()
    with mock.patch.object(tflite_graph, "same_pads", tflite_graph.tf_same_pads):
        graph = tflite_graph.lower(arch.ops, arch.input_shape)
    tflite_graph._fragment.cache_clear()
    graph.ops = [op._replace(channels=0, consts=tuple(c._replace(channels=min(c.channels, 1)) for c in op.consts))
                 if op.code == "FULLY_CONNECTED" else op for op in graph.ops]
    return graph


def pct(ours: float, paper: float | None) -> str:
    return "       -" if not paper else f"{ours / paper - 1:+8.1%}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    PAGE.add_flag(parser)
    parser.parse_args(argv)
    profile = load_profile(FOLDER)
    print(f"{'network':<18}{'Mops paper/ours':<16}{'ms paper':>9}{'ours':>7}{'err':>9}{'interp':>7}"
          f"{'flash KB paper':>15}{'ours':>16}{'TF2020':>16}{'SRAM KB paper':>14}{'ours':>16}{'TF2020':>16}")
    for m in calibrate.read_measurements(FOLDER / "published_latency.csv"):
        name = Path(m.model).stem
        mops, flash_kb, sram_kb = TABLE4[name]
        arch = architecture(m.model)
        cost = estimate(arch, profile)
        tf = tf2020_graph(arch)
        tf_flash, tf_sram = memory.file_bytes(tf) / 1024, memory.arena(tf, profile.memory).total / 1024
        flash, sram = cost.flash_file / 1024, cost.peak_sram_bytes / 1024
        print(f"{name:<18}{mops or '-':>7}/{2 * cost.macs / 1e6:<8.1f}{m.ms:>9g}{cost.latency_ms:>7.1f}"
              f"{pct(cost.latency_ms, m.ms)}{cost.interpolated_ops:>7}{flash_kb:>15}{flash:>8.1f}{pct(flash, flash_kb)}"
              f"{tf_flash:>8.1f}{pct(tf_flash, flash_kb)}{sram_kb:>14}{sram:>8.1f}{pct(sram, sram_kb)}"
              f"{tf_sram:>8.1f}{pct(tf_sram, sram_kb)}")


if __name__ == "__main__":
    sys.exit(PAGE.run(main))
