"""Does the memory model match TensorFlow Lite Micro? Predicted vs measured arena and file size.

For ``--n`` random int8 architectures per shipped space: build the model, give its BatchNorm layers
seeded random statistics (so the folded biases are as distinct as a trained model's: the converter
stores identical constants once, and all-zero biases would shrink the file unrealistically), export
the full-INT8 ``.tflite`` exactly as ``workbench export`` does (calibrated on a few random samples;
memory does not depend on training), load it in TFLM (``tflite-micro`` host build) and compare:

- SRAM: :func:`workbench.hardware.memory_pieces.estimate_memory` arena (host runtime: 64-bit, reference kernels)
  against the arena TFLM's ``RecordingMicroAllocator`` reports;
- flash: the predicted ``.tflite`` size against the written file's size (runtime code is a
  per-profile constant added on top and is not measured here).

Prints the share within ±5 % per space and the worst cases. Measured rows go to ``--rows`` as they
come (architectures round robin over the spaces), and ``--rescore`` re-scores them without exporting.

    nice python benchmarks/bench_memory.py --n 100 --seed 0        # rows in runs/bench_memory.jsonl
    python benchmarks/bench_memory.py --rescore                    # the table again, no exports
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import _report  # the page writer; also puts the repository root first on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from workbench.model.arch import Architecture  # noqa: E402
from workbench.export.formats.tflite_format import write_int8  # noqa: E402
from workbench.export.formats.tflm_runner import run_tflm  # noqa: E402
from workbench.hardware.memory import HOST_TFLM  # noqa: E402
from workbench.hardware.memory_pieces import estimate_memory  # noqa: E402
from workbench.model.space import load_space  # noqa: E402
from workbench.model.weights import random_deployable_model  # noqa: E402

PAGE = _report.Page(__file__)

SPACES = ("vision", "audio-kws", "sensor-imu")
TOLERANCE = 0.05
CALIBRATION = 8


def measure(arch, seed: int, workdir: Path) -> dict:
    """Export ``arch`` to int8 TFLite and run it in TFLM; the measured bytes (predictions come later,
    from the stored architecture, so a model change can be re-scored without re-exporting)."""
    model = random_deployable_model(arch, seed)
    calib = np.random.default_rng(seed).standard_normal((CALIBRATION, *arch.input_shape)).astype(np.float32)
    path = workdir / f"m{seed}.int8.tflite"
    write_int8(model, arch, calib, path, {})
    run = run_tflm(path)
    row = {"space": arch.space, "arch": arch.to_dict(), "summary": arch.summary(), "seed": seed,
           "sram_tflm": run.total, "head_tflm": run.head, "tail_tflm": run.tail,
           "file_bytes": path.stat().st_size}
    path.unlink()
    return row


def predict(row: dict) -> dict:
    """The memory model's numbers for a measured row."""
    pred = estimate_memory(Architecture.from_dict(row["arch"]), HOST_TFLM)
    return {**row, "sram_pred": pred.sram_bytes, "head_pred": pred.arena.activations + pred.arena.scratch,
            "tail_pred": pred.arena.persistent, "file_pred": pred.file_bytes}


def rel(pred: int, real: int) -> float:
    return (pred - real) / real


def summarise(space: str, rows: list[dict], worst: int) -> list[str]:
    sram = [rel(r["sram_pred"], r["sram_tflm"]) for r in rows]
    flash = [rel(r["file_pred"], r["file_bytes"]) for r in rows]
    ok_s = sum(abs(e) <= TOLERANCE for e in sram) / len(rows)
    ok_f = sum(abs(e) <= TOLERANCE for e in flash) / len(rows)
    exact = sum(r["head_pred"] == r["head_tflm"] for r in rows)
    lines = [f"| {space} | {len(rows)} | {100 * ok_s:.1f} % | {100 * ok_f:.1f} % | {exact} / {len(rows)} | "
             f"{100 * max(abs(e) for e in sram):.2f} % | {100 * max(abs(e) for e in flash):.2f} % |"]
    order = sorted(range(len(rows)), key=lambda i: -max(abs(sram[i]), abs(flash[i])))[:worst]
    for i in order:
        r = rows[i]
        lines.append(f"    worst: {r['summary']}: SRAM {r['sram_pred']} vs {r['sram_tflm']} ({100 * sram[i]:+.2f} %), "
                     f"file {r['file_pred']} vs {r['file_bytes']} ({100 * flash[i]:+.2f} %)")
    return lines


def table(rows: list[dict], worst: int) -> list[str]:
    out = ["| space | archs | SRAM within ±5 % | flash (file) within ±5 % | activations exact | worst SRAM | worst flash |",
           "|---|---|---|---|---|---|---|"]
    details = []
    for space in dict.fromkeys(r["space"] for r in rows):
        lines = summarise(space, [predict(r) for r in rows if r["space"] == space], worst)
        out.append(lines[0])
        details += lines[1:]
    return out + details


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="architectures per space")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--first", type=int, default=0,
                    help="start at this architecture index (split one run over processes: --first 50 --n 100)")
    ap.add_argument("--spaces", nargs="+", default=list(SPACES))
    ap.add_argument("--worst", type=int, default=3)
    ap.add_argument("--rows", default="runs/bench_memory.jsonl",
                    help="measured rows are appended here (one JSON per line) as they come")
    ap.add_argument("--rescore", action="store_true",
                    help="do not export: re-score the rows already in --rows with the current model")
    PAGE.add_flag(ap)
    args = ap.parse_args(argv)
    rows_path = Path(args.rows)
    if not args.rescore:
        archs = {name: load_space(name).random_archs(args.n, seed=args.seed, precisions=["int8"])
                 for name in args.spaces}
        rows_path.parent.mkdir(parents=True, exist_ok=True)
        rows_path.write_text("")
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
            for i in range(args.first, args.n):  # round robin: an interrupted run still covers every space
                for name in args.spaces:
                    row = measure(archs[name][i], args.seed * 100003 + i, Path(tmp))
                    with rows_path.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    p = predict(row)
                    print(f"[{name:<10} {i + 1:>3}/{args.n}] SRAM {p['sram_pred']} / {p['sram_tflm']}  "
                          f"file {p['file_pred']} / {p['file_bytes']}  ({time.perf_counter() - t0:.0f} s)  "
                          f"{p['summary']}", file=sys.stderr, flush=True)
    if args.rescore:
        PAGE.note(f"re-scored from the rows in {args.rows} (the exports and TFLM runs were done earlier, by the "
                  f"command that wrote them; only the predictions are this run's)")
    rows = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
    rows = list({(r["space"], r["seed"]): r for r in rows}.values())  # split runs may overlap
    for line in table(rows, args.worst):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(PAGE.run(main))
