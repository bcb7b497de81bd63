"""How far INT8 files land from the model the search scored, and from the fp32 model.

Sets the export's INT8 verification limit (``workbench.export.trial.INT8_MAX_DROP``) on measured numbers:
trains small MBConv models on digits with quantised policies (PTQ and QAT, 4-bit stages and all
8-bit), exports ``onnx-int8`` and ``tflite-int8`` through :func:`workbench.export.trial.export_model`, and
prints per file its accuracy, the scored (fake-quantised) model's, the fp32 model's, and the loss
against each in points. Accuracies depend on the CPU's float paths; the losses against the scored
model are what the limit must cover, with a margin.

    python benchmarks/bench_int8_reference.py [--epochs 4] [--out DIR]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import _report  # the page writer; also puts the repository root first on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.model.arch import Architecture  # noqa: E402
from workbench.model.data import load_dataset  # noqa: E402
from workbench.export.trial import INT8_MAX_DROP, export_model  # noqa: E402
from workbench.model.train import train_and_evaluate  # noqa: E402

PAGE = _report.Page(__file__)

BASE = {"head_width": 64, "precision": "int8", "quant_mode": "ptq", "resolution": 24, "stem_kernel": 3,
        "stem_stride": 2, "stem_width": 8,
        "s1_depth": 1, "s1_expand": 1, "s1_kernel": 3, "s1_stride": 1, "s1_wbits": 8, "s1_width": 8,
        "s2_depth": 2, "s2_expand": 3, "s2_kernel": 3, "s2_stride": 2, "s2_wbits": 4, "s2_width": 16,
        "s3_depth": 1, "s3_expand": 3, "s3_kernel": 3, "s3_stride": 2, "s3_wbits": 8, "s3_width": 24,
        "s4_depth": 1, "s4_expand": 3, "s4_kernel": 3, "s4_stride": 1, "s4_wbits": 8, "s4_width": 32}
# (label, policy changes, training seed); the first is tests/test_export.py's vision model
CASES = [("ptq s2=4b", {}, 0), ("ptq s2=4b", {}, 1), ("ptq s2,s3=4b", {"s3_wbits": 4}, 0),
         ("ptq all 8b", {"s2_wbits": 8}, 0), ("qat s2=4b", {"quant_mode": "qat"}, 0),
         ("qat s2,s3,s4=4b", {"quant_mode": "qat", "s3_wbits": 4, "s4_wbits": 4}, 2)]
FORMATS = ("onnx-int8", "tflite-int8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None, help="keep the exported files here")
    PAGE.add_flag(parser)
    args = parser.parse_args()
    data = load_dataset("digits")
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-int8-"))
    print(f"INT8 files against the scored and the fp32 PyTorch model: vision (MBConv) on digits, "
          f"{len(data.y_test)} test samples, {args.epochs} epochs; loss in points (negative: the file is better)")
    print(f"{'policy':<16} {'seed':>4}  {'format':<12} {'file':>7} {'scored':>7} {'fp32':>7}  "
          f"{'loss vs scored':>14} {'loss vs fp32':>12}")
    worst = 0.0
    for i, (label, changes, seed) in enumerate(CASES):
        arch = Architecture.create("vision", "mbconv", (1, 24, 24), 10, dict(BASE, **changes))
        trained = train_and_evaluate(arch, data, epochs=args.epochs, seed=seed)
        result = export_model(trained.model, arch, data, out / f"case{i}", FORMATS, name="model", repeats=5)
        for fmt in FORMATS:
            v = result.manifest["files"][fmt]["verification"]
            scored_loss = 100 * (v["pytorch_accuracy"] - v["accuracy"])
            worst = max(worst, scored_loss)
            print(f"{label:<16} {seed:>4}  {fmt:<12} {v['accuracy']:7.4f} {v['pytorch_accuracy']:7.4f} "
                  f"{v['pytorch_fp32_accuracy']:7.4f}  {scored_loss:14.2f} "
                  f"{100 * (v['pytorch_fp32_accuracy'] - v['accuracy']):12.2f}", flush=True)
    print(f"largest loss against the scored model: {worst:.2f} points; limit {100 * INT8_MAX_DROP:.0f} points")


if __name__ == "__main__":
    sys.exit(PAGE.run(main))
