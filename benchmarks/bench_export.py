"""Export the quickstart's pick to every format and compare files, accuracy and latency.

Takes the ``best`` trial of study ``quickstart`` in ``sqlite:///workbench.db`` when that study
exists (run ``workbench quickstart`` first), otherwise runs a small vision search on digits in a
temporary storage. Exports onnx, onnx-int8, tflite and tflite-int8, verifies each on the test set
and prints per format: size, accuracy (next to PyTorch fp32), top-1 agreement, export time, the
measured single-thread latency on this machine, and the host-cpu LUT's prediction for the same
architecture at that format's precision (the host-cpu LUT is measured with onnxruntime, so it
predicts the ONNX rows; the TFLite rows show it for scale only). A missing host-cpu profile prints
``n/a``.

    python benchmarks/bench_export.py [--storage URL] [--study NAME] [--trials 6] [--epochs 3] [--out DIR]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import _report  # the page writer; also puts the repository root first on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.model.arch import Architecture  # noqa: E402
from workbench.hardware.cost import estimate  # noqa: E402
from workbench._infra.errors import WorkbenchError  # noqa: E402
from workbench.export.trial import FORMAT_NAMES, export_trial  # noqa: E402
from workbench.hardware.profiles import load_profile  # noqa: E402
from workbench.storages.storage import open_storage, study_names  # noqa: E402
from workbench._infra.timing import statistic  # noqa: E402

PAGE = _report.Page(__file__)


def ensure_study(storage: str, study: str, trials: int, epochs: int, tmp: Path) -> tuple[str, str]:
    """(storage, study) holding a searched study: the given one if it exists, else a fresh small search."""
    try:
        if study in study_names(open_storage(storage)):
            return storage, study
    except WorkbenchError:
        pass
    from workbench.search import Search, print_progress

    storage = f"sqlite:///{tmp}/bench.db"
    # on stdout: the table below then describes this fallback study, not the quickstart's
    print(f"no study {study!r} in the given storage: ran a {trials}-trial vision search on digits ({epochs} epochs, "
          f"stm32f746, 12 ms budget) in a temporary storage, named {study!r}", flush=True)
    Search("vision", "stm32f746", "digits", study_name=study, storage=storage, epochs=epochs, latency_budget_ms=12.0,
           listeners=[print_progress]).run(trials)
    return storage, study


def host_prediction(arch: Architecture, precision: str) -> float | None:
    """The host-cpu LUT's latency for ``arch`` at ``precision`` (int8: every weight 8-bit); None without it."""
    try:
        host = load_profile("host-cpu")
    except WorkbenchError:
        return None
    choices = {k: v for k, v in arch.choice.items() if not k.endswith("_wbits")}
    choices["precision"] = precision
    if precision == "int8":
        choices.update({k: 8 for k in arch.choice if k.endswith("_wbits")})
        choices.setdefault("quant_mode", "ptq")
    variant = Architecture.create(arch.space, arch.family, arch.input_shape, arch.classes, choices)
    return estimate(variant, host).latency_ms


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--storage", default="sqlite:///workbench.db")
    ap.add_argument("--study", default="quickstart")
    ap.add_argument("--trials", type=int, default=6, help="trials of the fallback search")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of the fallback search")
    ap.add_argument("--out", type=Path, default=None, help="keep the files here (default: a temp folder)")
    ap.add_argument("--repeats", type=int, default=500, help=f"timed runs per file ({statistic().replace('%', '%%')} reported)")
    PAGE.add_flag(ap)
    args = ap.parse_args(argv)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the search's own progress line is enough
    with tempfile.TemporaryDirectory(prefix="wb-bench-export-") as tmp:
        storage, study = ensure_study(args.storage, args.study, args.trials, args.epochs, Path(tmp))
        out = args.out or Path(tmp) / "export"
        start = time.perf_counter()
        result = export_trial(study, storage, "best", FORMAT_NAMES, out, repeats=args.repeats,
                              log=lambda m: print(m, file=sys.stderr))
        total = time.perf_counter() - start
        print_table(result, total)
    return 0 if result.ok else 1


def print_table(result, total_seconds: float) -> None:
    m = result.manifest
    arch = Architecture.from_dict(m["architecture"])
    t = m["training"]
    print(f"\nstudy {m['study']!r} trial {m['trial']} ({m['summary']}); policy {m['policy']['precision']}"
          f"/{m['policy']['mode']}; retrained {t.get('epochs')} epochs: accuracy {t['accuracy']:.4f} "
          f"(stored {t['stored_accuracy']:.4f}, reproduced={t.get('reproduced')})")
    pred = m.get("predicted", {})
    if pred:
        print(f"target {m['device']}: predicted {pred['latency_ms']:.3f} ms, SRAM {pred['peak_sram_bytes'] / 1024:.1f} KB, "
              f"flash {pred['flash_bytes'] / 1024:.1f} KB")
    head = (f"{'format':<12} {'size KB':>8} {'acc':>7} {'pytorch':>7} {'agree %':>8} {'max|d|':>9} {'export s':>8} "
            f"{'measured ms':>11} {'host LUT ms':>11}  verdict")
    print(head)
    print("-" * len(head))
    for name, e in m["files"].items():
        v = e["verification"]
        lut = host_prediction(arch, e["precision"])
        lut_s = f"{lut:.4f}" if lut is not None else "n/a"
        print(f"{name:<12} {e['bytes'] / 1024:8.1f} {v['accuracy']:7.4f} {v['pytorch_accuracy']:7.4f} "
              f"{100 * v['agreement']:8.2f} {v['max_abs_logit_diff']:9.2e} {e['export_seconds']:8.2f} "
              f"{e['latency_ms_measured']['ms']:11.4f} {lut_s:>11}  {'PASS' if e['passed'] else 'FAIL'}"
              + (f"  ({len(e['fallbacks'])} fallback(s))" if e["fallbacks"] else ""))
    print(f"\ntotal export + verification time {total_seconds:.1f} s (training included); "
          f"measured = {statistic()} (single thread, this machine), the statistic the host LUT's rows use")


if __name__ == "__main__":
    sys.exit(PAGE.run(main))
