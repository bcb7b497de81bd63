"""The ``workbench`` command: headless searches, fronts, profiling, and the quickstart.

Every user mistake surfaces as one line ``error: <file/field>: <what>`` and exit code 2.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from .errors import WorkbenchError

QUICKSTART = {"space": "vision", "device": "stm32f746", "data": "digits", "trials": 24, "epochs": 3,
              "latency_budget_ms": 12.0, "study": "quickstart", "seed": 0}


def main(argv: list[str] | None = None) -> int:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own progress line replaces Optuna's log
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: the running trial is marked failed; run the same command again to resume",
              file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="Hardware-aware NAS for TinyML and edge devices.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("quickstart", help="a short real search: vision space, Cortex-M7 profile, digits data")
    p.add_argument("--trials", type=int, default=QUICKSTART["trials"], help="total trials (default %(default)s)")
    p.add_argument("--storage", default="sqlite:///workbench.db", help="Optuna storage URL (default %(default)s)")
    p.add_argument("--study", default=QUICKSTART["study"], help="study name (default %(default)s)")
    p.set_defaults(handler=cmd_quickstart)

    p = sub.add_parser("search", help="run (or resume) a hardware-aware search")
    p.add_argument("--space", required=True, help="search space name (see `workbench spaces`) or YAML file")
    p.add_argument("--device", required=True, help="device profile name (see `workbench devices`) or folder")
    p.add_argument("--data", default=None, help="dataset name (digits, basic-motions, japanese-vowels) or path "
                   "(.npz or folder); default: the space's dataset")
    p.add_argument("--trials", type=int, required=True, help="total number of trials the study should hold")
    p.add_argument("--study", default=None, help="study name (default: <space>-<device>)")
    p.add_argument("--storage", default="sqlite:///workbench.db", help="Optuna storage URL or .db/.log path")
    p.add_argument("--sampler", default="tpe", choices=("tpe", "nsga2", "random"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--latency-budget", type=float, default=None, metavar="MS", help="reject slower candidates")
    p.add_argument("--objectives", default="accuracy,latency",
                   help="accuracy,latency plus optional sram and/or flash (default %(default)s)")
    p.add_argument("--epochs", type=int, default=3, help="training epochs per trial (default %(default)s)")
    p.add_argument("--population", type=int, default=16, help="NSGA-II population / TPE start-up trials")
    p.add_argument("--evaluator", default="train", choices=("train", "synflow", "naswot"),
                   help="train each candidate (default) or score it with a training-free proxy (fast screening)")
    p.add_argument("--workers", type=int, default=1, help="processes on this machine sharing the study "
                   "(SQLite, journal file or PostgreSQL storage; default %(default)s)")
    _add_reliability_flags(p)
    p.set_defaults(handler=cmd_search)

    p = sub.add_parser("worker", help="join an existing study and work on it until it has its trials",
                       description="Start any number of these, on any machines that reach the storage; the study "
                       "(created by `workbench search`) carries the space, device, data and settings.")
    p.add_argument("--study", required=True)
    p.add_argument("--storage", required=True, help="the study's storage URL (postgresql://… across machines)")
    p.add_argument("--trials", type=int, default=None, help="total trials (default: the study's target)")
    p.add_argument("--data", default=None, help="dataset path on this machine, when it differs from the creator's")
    _add_reliability_flags(p)
    p.set_defaults(handler=cmd_worker)

    p = sub.add_parser("pareto", help="print a study's Pareto front for any device profile")
    p.add_argument("--study", required=True)
    p.add_argument("--storage", default="sqlite:///workbench.db")
    p.add_argument("--device", default=None, help="profile to draw the front for (default: the study's target)")
    p.add_argument("--format", default="table", choices=("table", "csv", "json"))
    p.set_defaults(handler=cmd_pareto)

    p = sub.add_parser("spaces", help="list the shipped search spaces")
    p.set_defaults(handler=cmd_spaces)
    p = sub.add_parser("devices", help="list the shipped device profiles")
    p.set_defaults(handler=cmd_devices)
    p = sub.add_parser("datasets", help="list the built-in datasets")
    p.set_defaults(handler=cmd_datasets)

    p = sub.add_parser("profile", help="measure a latency LUT on this machine (onnxruntime, 1 thread)")
    p.add_argument("--out", required=True, type=Path, help="profile folder to write (profile.yaml + lut.csv)")
    p.add_argument("--space", action="append", default=None, help="limit to these spaces (repeatable)")
    p.add_argument("--precision", action="append", default=None, choices=("fp32", "int8"),
                   help="precisions to measure (repeatable; default fp32 and int8)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up runs per op")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per op")
    p.add_argument("--limit", type=int, default=None, help="measure only the first N ops (a quick try)")
    p.set_defaults(handler=cmd_profile)

    p = sub.add_parser("model-lut", help="regenerate a modeled LUT from the profile's latency_model.yaml")
    p.add_argument("profile_dir", type=Path)
    p.set_defaults(handler=cmd_model_lut)

    p = sub.add_parser("export", help="export a trial to ONNX/TFLite (fp32 and INT8), verify each file, write a manifest",
                       description="Rebuild a trial's trained model (deterministic retraining with its seed, or "
                       "--weights), write the requested formats, run every file in its runtime on the test set and "
                       "write manifest.json. Exit 1 when a file fails verification, 2 when the model cannot be "
                       "exported.")
    p.add_argument("--study", required=True, help="study name")
    p.add_argument("--storage", default="sqlite:///workbench.db", help="Optuna storage URL or .db/.log path")
    p.add_argument("--trial", default="best", help="trial number, or 'best': the most accurate feasible trial on "
                   "the front (default %(default)s)")
    p.add_argument("--format", default="onnx,onnx-int8,tflite,tflite-int8",
                   help="comma-separated formats: onnx, onnx-int8, tflite, tflite-int8 (default: all)")
    p.add_argument("--out", required=True, type=Path, help="output folder (files + manifest.json)")
    p.add_argument("--device", default=None, help="profile whose front 'best' and the predictions refer to "
                   "(default: the study's target)")
    p.add_argument("--epochs", type=int, default=None, help="train this many epochs instead of the study's "
                   "(a longer-trained model; no longer reproduces the trial's accuracy)")
    p.add_argument("--weights", type=Path, default=None, help="load this saved state_dict instead of retraining")
    p.add_argument("--data", default=None, help="dataset name or path (default: the study's)")
    p.set_defaults(handler=cmd_export)
    return parser


def _add_reliability_flags(p) -> None:
    p.add_argument("--heartbeat", type=int, default=10, metavar="S",
                   help="seconds between heartbeats of a running trial; a trial silent for 3 beats is failed and "
                   "retried once (RDB storages; 0 disables; default %(default)s)")


def cmd_quickstart(args) -> int:
    q = QUICKSTART
    print(f"quickstart: {args.trials} trials of the '{q['space']}' space on '{q['device']}' with the built-in "
          f"'{q['data']}' data, latency budget {q['latency_budget_ms']} ms", file=sys.stderr)
    return _run_search(q["space"], q["device"], q["data"], args.study, args.storage, "tpe", q["seed"],
                       q["latency_budget_ms"], ("accuracy", "latency"), q["epochs"], 16, args.trials)


def cmd_worker(args) -> int:
    from .search import Search, print_progress

    overrides = {"heartbeat_s": args.heartbeat or None, "listeners": [print_progress]}
    if args.data:
        overrides["data"] = args.data
    search = Search.join(args.study, args.storage, **overrides)
    result = search.run(args.trials)
    complete = sum(t.state.name == "COMPLETE" for t in result.study.get_trials(deepcopy=False))
    print(f"worker done: study '{args.study}' has {complete} completed trials", file=sys.stderr)
    return 0


def cmd_search(args) -> int:
    objectives = tuple(o.strip() for o in args.objectives.split(",") if o.strip())
    if args.workers < 1:
        raise WorkbenchError(f"--workers: must be >= 1, got {args.workers}")
    return _run_search(args.space, args.device, args.data, args.study, args.storage, args.sampler, args.seed,
                       args.latency_budget, objectives, args.epochs, args.population, args.trials,
                       workers=args.workers, heartbeat=args.heartbeat, evaluator=args.evaluator)


def _run_search(space, device, data, study, storage, sampler, seed, budget, objectives, epochs, population,
                trials, workers=1, heartbeat=10, evaluator="train") -> int:
    from .search import Search, print_progress

    if epochs < 1:
        raise WorkbenchError(f"--epochs: must be >= 1, got {epochs}")
    search = Search(space, device, data, study_name=study, storage=storage, sampler=sampler, seed=seed,
                    latency_budget_ms=budget, objectives=objectives, epochs=epochs, population=population,
                    listeners=[print_progress], heartbeat_s=heartbeat or None, evaluator=evaluator)
    helpers = _start_workers(search.study_name, storage, trials, workers - 1, heartbeat)
    try:
        result = search.run(trials)
    finally:
        for proc in helpers:
            proc.wait()
    from .front import front_rows

    print(f"\nPareto front on {result.device.name} ({len(result.front)} of {len(result.study.trials)} trials; "
          f"{_quality_note(evaluator)}, costs predicted from the device LUT):")
    print(format_rows(front_rows(result.front, result.device), "table"))
    print(f"\nstudy '{search.study_name}' stored in {storage}  "
          f"(see it for another device: workbench pareto --study {search.study_name} --storage {storage} "
          f"--device stm32l4r5)")
    return 0


def _quality_note(evaluator: str) -> str:
    if evaluator == "train":
        return "accuracy = held-out test top-1"
    return f"accuracy column = {evaluator} training-free score, not an accuracy"


def _start_workers(study: str, storage: str, trials: int, n: int, heartbeat: int) -> list:
    """``n`` more ``workbench worker`` processes on this machine, sharing the study through its storage."""
    import subprocess

    from .storage import absolute_url

    command = [sys.executable, "-m", "workbench.cli", "worker", "--study", study, "--storage", absolute_url(storage),
               "--trials", str(trials), "--heartbeat", str(heartbeat)]
    return [subprocess.Popen(command) for _ in range(n)]


def cmd_pareto(args) -> int:
    from .front import front_rows, load_records, pareto_front, study_device
    from .storage import load_study

    study = load_study(args.study, args.storage)
    settings = study.user_attrs
    device = study_device(settings, args.device)
    objectives = settings.get("objectives", ["accuracy", "latency"])
    front = pareto_front(load_records(study), device, objectives, settings.get("latency_budget_ms"))
    print(format_rows(front_rows(front, device), args.format))
    return 0


def format_rows(rows: list[dict], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if not rows:
        return "(no trained trial fits this device)" if fmt == "table" else ""
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    columns = ["trial", "accuracy", "latency_ms", "peak_sram_kb", "flash_kb", "macs", "precision", "architecture"]
    headers = ["trial", "accuracy", "latency ms", "SRAM KB", "flash KB", "MACs", "prec", "architecture"]
    cells = [[_cell(c, row[c]) for c in columns] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) if i == len(headers) - 1 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))]
    for c in cells:
        lines.append("  ".join(v.ljust(w) if i == len(c) - 1 else v.rjust(w) for i, (v, w) in enumerate(zip(c, widths))))
    return "\n".join(lines)


_CELL_FORMATS = {"accuracy": "{:.4f}", "latency_ms": "{:.3f}", "peak_sram_kb": "{:.1f}", "flash_kb": "{:.1f}",
                 "macs": "{:,}"}


def _cell(column: str, value) -> str:
    return _CELL_FORMATS.get(column, "{}").format(value)


def cmd_spaces(args) -> int:
    from .space import list_spaces, load_space

    for path in list_spaces():
        s = load_space(path)
        print(f"{s.name:<12} {s.family:<7} data={s.dataset:<16} {s.description}")
    return 0


def cmd_devices(args) -> int:
    from .profiles import all_profiles

    for profile in all_profiles():
        print(profile.one_line())
    return 0


def cmd_datasets(args) -> int:
    from .data import list_datasets

    for name, description in list_datasets():
        print(f"{name:<16} {description}")
    return 0


def cmd_profile(args) -> int:
    from .profiler import profile_device
    from .space import all_spaces, load_space

    spaces = [load_space(s) for s in args.space] if args.space else all_spaces()
    options = {k: v for k, v in (("warmup", args.warmup), ("repeats", args.repeats)) if v is not None}
    out = profile_device(args.out, spaces=spaces, precisions=tuple(args.precision or ("fp32", "int8")),
                         limit=args.limit, **options)
    print(f"wrote {out}")
    return 0


def cmd_model_lut(args) -> int:
    from .latency_model import model_profile

    path, n = model_profile(args.profile_dir)
    print(f"wrote {path} ({n} modeled entries)")
    return 0


def cmd_export(args) -> int:
    from .export import export_trial, summary_lines

    result = export_trial(args.study, args.storage, args.trial, args.format, args.out, device=args.device,
                          epochs=args.epochs, weights=args.weights, data=args.data,
                          log=lambda m: print(m, file=sys.stderr, flush=True))
    training = result.manifest.get("training", {})
    if training.get("reproduced") is False:
        print(f"warning: retrained accuracy {training['accuracy']:.4f} differs from the stored "
              f"{training['stored_accuracy']:.4f} (different environment or thread count?)", file=sys.stderr)
    print("\n".join(summary_lines(result)))
    verdict = "all files verified" if result.ok else f"FAILED verification: {', '.join(result.failed)}"
    print(f"\n{verdict}; manifest: {result.manifest_path}")
    return 0 if result.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
