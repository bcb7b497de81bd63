"""The ``workbench`` command: headless searches, fronts, profiling, and the quickstart.

Every user mistake surfaces as one line ``error: <file/field>: <what>`` and exit code 2.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from pathlib import Path

import optuna

from workbench import __version__
from workbench._infra import places
from workbench._infra.errors import WorkbenchError, check_count, shown
from workbench._infra.notices import print_on_one_line
from workbench._infra.processes import (
    acknowledge,
    check_worker_count,
    exit_code,
    ignore_stop_signals,
    signals_as_interrupts,
    start_workers,
    stop_workers,
)
from workbench.calibration.calibrate import (
    DEFAULT_STRENGTH,
    MAX_QUICK_MODELS,
    QUICK_STRENGTH,
    calibrate_profile,
    calibrate_quick,
    format_report,
    resolve_profile_dir,
    writable_profile_dir,
)
from workbench.calibration.kit import write_kit
from workbench.export.formats import FORMAT_NAMES, FORMATS
from workbench.hardware.profiles import load_profile, model_profile
from workbench.hardware.training import (
    SEARCH_ARITH,
    SEARCH_OPTIMIZER,
    check_options,
    format_comparison,
    format_table,
    training_cost,
    training_trust,
)
from workbench.hardware.trust import memory_trust, precisions_of, trust_lines
from workbench.model.data import list_datasets
from workbench.model.evaluators import EVALUATORS
from workbench.model.space import all_spaces, load_space
from workbench.model.tasks import TASKS
from workbench.model.update_schemes import GRAMMAR as UPDATE_GRAMMAR
from workbench.model.update_schemes import parse_scheme
from workbench.scoring.score import format_score, score
from workbench.search import (
    QUICKSTART,
    SAMPLERS,
    Search,
    default,
    is_trained,
    parse_objectives,
    print_progress,
    trained_trials,
)
from workbench.search import QUICKSTART as q
from workbench.search.config import DEFAULT_TRAIN_SCHEME, MAX_EPOCHS, MAX_SEED
from workbench.storages.storage import DEFAULT_STORAGE, HEARTBEAT_S, absolute_url
from workbench.study.fingerprint import FINGERPRINT_ATTR
from workbench.study.front import front_rows
from workbench.study.objectives import costs, objectives_help
from workbench.study.repeats import MAX_REPEATS, repeat_front, repeat_summary
from workbench.study.schema import Keys
from workbench.study.stored import StoredStudy
from workbench.study.trial_pick import trial_architecture
from workbench.study.whatif import Limits, not_trained_text, parse_limits

QUICKSTART_REPEATS = 2  # the quickstart ends by re-training its top 3 front points with 2 other seeds each


def main(argv: list[str] | None = None) -> int:
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own progress line replaces Optuna's log
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except WorkbenchError as exc:  # a flag's own check (path_flag): the one line every other error gives
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.home is not None:  # through the environment, so worker processes and notebooks' kernels agree
        os.environ[places.HOME_ENV] = str(args.home.expanduser().absolute())

    print_on_one_line()  # every WorkbenchNotice (a host profile measured on another CPU, …): one "notice:" line

    try:
        with signals_as_interrupts():  # SIGTERM stops a search the way Ctrl-C does
            return args.handler(args) or 0
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)  # storage faults in the middle of a search: 1
    except KeyboardInterrupt as exc:
        ignore_stop_signals()  # a second Ctrl-C while exiting changes nothing and prints no traceback
        print("\ninterrupted: the running trial is marked failed; run the same command again to resume",
              file=sys.stderr)
        return exit_code(exc)


def path_flag(flag: str):
    """The ``type`` of a path flag: an empty or blank value is refused (``Path("")`` would silently be the
    current folder: a kit, a profile or an export written where the command was run)."""
    def path(text: str) -> Path:
        if not text.strip():
            raise WorkbenchError(f"{flag}: the path is empty ({text!r}); give a file or folder (`.` for the "
                                 f"current folder)")
        return Path(text)
    return path


def build_parser() -> argparse.ArgumentParser:
    from workbench.calibration.profiler import (  # heavy: onnx, onnxruntime
        DEFAULT_REPEATS,
        DEFAULT_WARMUP,
    )

    parser = argparse.ArgumentParser(prog="workbench", description="Hardware-aware NAS for TinyML and edge devices.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--home", type=path_flag("--home"), default=None, metavar="DIR",
                        help=f"your own spaces and profiles, and where profile/calibrate write (default: "
                        f"${places.HOME_ENV}, else {places.user_home()})")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("quickstart", help="a short real search: vision space, Cortex-M7 profile, digits data, LUT-ranked sampler")
    p.add_argument("--trials", type=int, default=QUICKSTART["trials"], help="trained trials: candidates rejected "
                   "before training and duplicates of trained architectures do not count (default %(default)s)")
    p.add_argument("--storage", default=DEFAULT_STORAGE, help="Optuna storage URL (default %(default)s)")
    p.add_argument("--study", default=QUICKSTART["study"], help="study name (default %(default)s)")
    _add_repeat_flags(p, QUICKSTART_REPEATS)
    p.set_defaults(handler=cmd_quickstart)

    p = sub.add_parser("search", help="run (or resume) a hardware-aware search")
    p.add_argument("--space", required=True, help="search space name (see `workbench spaces`) or YAML file")
    p.add_argument("--device", required=True, help="device profile name (see `workbench devices`) or folder")
    p.add_argument("--data", default=None, help="dataset name (see `workbench datasets`) or path "
                   "(.npz or folder); default: the space's dataset")
    p.add_argument("--trials", type=int, required=True, help="trained trials the study should hold in total "
                   "(infeasible candidates and duplicates of trained architectures are recorded but not counted)")
    p.add_argument("--study", default=None, help="study name (default: <space>-<device>)")
    p.add_argument("--storage", default=DEFAULT_STORAGE, help="Optuna storage URL or .db/.log path "
                   "(default %(default)s)")
    p.add_argument("--sampler", default=default("sampler"), choices=SAMPLERS.names(),
                   help=f"{SAMPLERS.help_text()} (default %(default)s)")
    p.add_argument("--seed", type=int, default=default("seed"), help="sampler and training seed (default %(default)s)")
    p.add_argument("--latency-budget", type=float, default=None, metavar="MS", help="reject slower candidates")
    p.add_argument("--objectives", default=",".join(default("objectives")),
                   help=f"{objectives_help()} (default %(default)s)")
    p.add_argument("--train-scheme", default=None, metavar="SCHEME",
                   help=f"update scheme whose on-device training memory each candidate is costed with ({UPDATE_GRAMMAR}); "
                        f"default {DEFAULT_TRAIN_SCHEME} when the train_sram objective or --train-sram-budget is used")
    p.add_argument("--train-sram-budget", default=None, metavar="KB",
                   help="reject candidates whose training step needs more SRAM, before training")
    p.add_argument("--epochs", type=int, default=default("epochs"), help="training epochs per trial (default %(default)s)")
    p.add_argument("--population", type=int, default=default("population"), help="NSGA-II population / TPE "
                   "start-up trials (TPE: at most 10; default %(default)s)")
    p.add_argument("--evaluator", default=default("evaluator"), choices=EVALUATORS.names(),
                   help=f"{EVALUATORS.help_text()} (default %(default)s)")
    p.add_argument("--workers", type=int, default=1, help="processes on this machine sharing the study "
                   "(SQLite, journal file or PostgreSQL storage; default %(default)s)")
    _add_reliability_flags(p, HEARTBEAT_S)
    _add_repeat_flags(p, 0)
    p.set_defaults(handler=cmd_search)

    p = sub.add_parser("worker", help="join an existing study and work on it until it has its trials",
                       description="Start any number of these, on any machines that reach the storage; the study "
                       "(created by `workbench search`) carries the space, device, data and settings.")
    p.add_argument("--study", required=True)
    p.add_argument("--storage", required=True, help="the study's storage URL (postgresql://… across machines)")
    p.add_argument("--trials", type=int, default=None, help="trained trials in total (default: the study's target)")
    p.add_argument("--data", default=None, help="dataset path on this machine, when it differs from the creator's")
    _add_reliability_flags(p, HEARTBEAT_S)
    p.set_defaults(handler=cmd_worker)

    p = sub.add_parser("pareto", help="print a study's Pareto front for any device profile")
    _add_study_flags(p, "name of the study to read (as given to search/quickstart)")
    p.add_argument("--device", default=None, help="profile to draw the front for (default: the study's target)")
    p.add_argument("--format", default="table", choices=("table", "csv", "json"),
                   help="table (with a header line naming study, device, budget, objectives, and why the other "
                   "trained trials are not on the front), or csv/json (machine-readable; the header goes to stderr, "
                   "the reasons into the JSON or to stderr for csv) (default %(default)s)")
    whatif = p.add_argument_group("what-if limits and filters", "applied to the stored predictions on --device "
                                  "after the search: nothing is retrained or written; a looser limit than the "
                                  "search's brings back no candidate it rejected (those were never trained)")
    whatif.add_argument("--latency-budget", default=None, metavar="MS",
                        help="latency budget in ms in place of the study's ('none': no budget)")
    whatif.add_argument("--sram-kb", default=None, metavar="KB",
                        help="limit for the model's peak SRAM (the SRAM KB column) in place of the device's")
    whatif.add_argument("--flash-kb", default=None, metavar="KB",
                        help="limit for the model's flash (the flash KB column) in place of the device's")
    whatif.add_argument("--precision", action="append", default=[], metavar="P[,P]",
                        help="keep fp32, int8 (8-bit weights throughout) and/or w4a8 (a stage with 4-bit weights) "
                        "models: the prec column")
    whatif.add_argument("--quant-mode", action="append", default=[], metavar="M[,M]",
                        help="keep models quantised this way: ptq, qat, or none (fp32)")
    whatif.add_argument("--stage-bits", action="append", default=[], metavar="STAGE=BITS",
                        help="keep models whose STAGE has BITS-bit weights (e.g. b3=4; repeat for several stages)")
    p.set_defaults(handler=cmd_pareto)

    p = sub.add_parser("repeats", help="re-train the top of a study's front with other seeds (accuracy mean ± std)",
                       description="Train the best candidates of the front again with other seeds (seed = study "
                       "seed + trial number + 1000003 x repeat index) and store each accuracy with the study; "
                       "fronts are then drawn from each architecture's mean. Seeds already stored are not "
                       "trained again. Prints the front with mean ± std.")
    _add_study_flags(p, "name of the study (as given to search/quickstart)")
    p.add_argument("--top", type=int, default=3, help="how many front points, best first (default %(default)s)")
    p.add_argument("--repeats", type=int, default=2, help="extra seeds per candidate (default %(default)s)")
    p.add_argument("--device", default=None, help="profile whose front is repeated (default: the study's target)")
    p.add_argument("--data", default=None, help="dataset path on this machine, when it differs from the creator's")
    p.set_defaults(handler=cmd_repeats)

    p = sub.add_parser("spaces", help="list the search spaces: shipped, and yours (in the user folder)")
    p.set_defaults(handler=cmd_spaces)
    p = sub.add_parser("devices", help="list the device profiles: shipped, and yours (in the user folder)")
    p.set_defaults(handler=cmd_devices)
    p = sub.add_parser("datasets", help="list the built-in datasets")
    p.set_defaults(handler=cmd_datasets)

    p = sub.add_parser("profile", help="measure a latency LUT on this machine (onnxruntime, 1 thread)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--name", default=None, help="write your profile NAME in the user folder (then "
                       "`--device NAME` finds it; a shipped profile of that name is shadowed)")
    where.add_argument("--out", type=path_flag("--out"), default=None, help="or: profile folder to write (profile.yaml + lut.csv)")
    p.add_argument("--space", action="append", default=None, help="limit to these spaces (repeatable)")
    p.add_argument("--precision", action="append", default=None, choices=("fp32", "int8"),
                   help="precisions to measure (repeatable; default fp32 and int8)")
    p.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="warm-up runs per op (default %(default)s)")
    p.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="timed runs per op (default %(default)s)")
    p.add_argument("--force", action="store_true", help="--out may hold another profile (shipped, modeled or "
                   "measured elsewhere): replace its lut.csv, calibration.json and profile.yaml")
    p.add_argument("--limit", type=int, default=None, help="measure only the first N ops (a quick try)")
    p.set_defaults(handler=cmd_profile)

    p = sub.add_parser("model-lut", help="regenerate a modeled LUT from the profile's latency_model.yaml")
    p.add_argument("profile_dir", type=path_flag("profile_dir"))
    p.set_defaults(handler=cmd_model_lut)

    p = sub.add_parser("calibrate", help="fit a profile's latency model to whole models timed end to end",
                       description="Fit a profile's latency constants to end-to-end latencies of 5-20 whole models "
                       "(CSV: model,ms,source[,precision]; model = .tflite/.onnx file, architecture JSON, a fixed "
                       "shipped space such as mlperf-kws or a fixed-choice space .yaml), rewrite them with the measurements, regenerate the LUT, and "
                       "print the fit and leave-one-model-out errors. --quick refreshes a measured host LUT for this "
                       "machine from models timed here (~15 s).")
    p.add_argument("profile", help="device profile name or folder (a shipped profile given by name is copied to "
                   "the user folder first, and the copy is calibrated)")
    p.add_argument("--measurements", type=path_flag("--measurements"), default=None, metavar="CSV", help="whole-model latencies to fit")
    p.add_argument("--quick", action="store_true", help="host profile: time random models here and fit to them")
    p.add_argument("--models-per-space", type=int, default=20, help="--quick: random models per space and "
                   "precision (default %(default)s)")
    p.add_argument("--strength", type=float, default=None, help="pull towards the current constants (default "
                   "0.1 with --measurements, 0.01 with --quick; 0 = least squares)")
    p.add_argument("--restart", action="store_true", help="modeled profile: start from the constants before the "
                   "first calibration (reproduces a calibration instead of refining it)")
    p.set_defaults(handler=cmd_calibrate)

    p = sub.add_parser("calibration-kit", help="pick the models to time on a board for `workbench calibrate`",
                       description="Choose N models that fit a modeled profile's device and together pin down every "
                       "latency constant (greedy D-optimal over each constant's share of the predicted latency), "
                       "and write each as an architecture JSON and a .tflite with seeded random weights, plus "
                       "to_time.csv: time each file on the board, fill in ms and source, then run workbench "
                       "calibrate PROFILE --measurements DIR/to_time.csv.")
    p.add_argument("profile", help="modeled device profile name or folder")
    p.add_argument("--out", type=path_flag("--out"), required=True, help="new folder for the kit")
    p.add_argument("--models", type=int, default=12, help="models to time (default %(default)s; 5-20)")
    p.add_argument("--precision", default="int8", choices=["int8", "fp32"], help="default %(default)s")
    p.add_argument("--seed", type=int, default=0, help="candidate draw and random weights (default %(default)s)")
    p.add_argument("--no-files", action="store_true", help="architecture JSONs and the CSV only (no .tflite: "
                   "no export extras needed)")
    p.set_defaults(handler=cmd_calibration_kit)

    p = sub.add_parser("score", help="cost an existing .tflite/.onnx file on device profiles (latency, SRAM, flash)")
    p.add_argument("model", type=path_flag("model"), help="model file (.tflite or .onnx, fp32 or int8)")
    p.add_argument("--device", default="all", help="device profile name or folder, or 'all' (default %(default)s)")
    p.add_argument("--format", default="table", choices=("table", "json"), help="output (default %(default)s)")
    p.set_defaults(handler=cmd_score)

    p = sub.add_parser("export", help="export a trial to ONNX/TFLite (fp32 and INT8), verify each file, write a manifest",
                       description="Rebuild a trial's trained model (deterministic retraining with its seed, or "
                       "--weights), write the requested formats, run every file in its runtime on the test set and "
                       "write manifest.json. Exit 1 when a file fails verification, 2 when the model cannot be "
                       "exported.")
    p.add_argument("--study", required=True, help="study name")
    p.add_argument("--storage", default=DEFAULT_STORAGE,
                   help="Optuna storage URL or .db/.log path (default %(default)s)")
    p.add_argument("--trial", default="best", help="trial number, or 'best': the highest mean accuracy on the "
                   "front (ties: lower latency, then lower trial number) (default %(default)s)")
    p.add_argument("--format", default=",".join(FORMAT_NAMES),
                   help="comma-separated formats (default %(default)s): "
                        + FORMATS.help_text())
    p.add_argument("--out", required=True, type=path_flag("--out"), help="output folder (files + manifest.json)")
    p.add_argument("--device", default=None, help="profile whose front 'best' and the predictions refer to "
                   "(default: the study's target)")
    p.add_argument("--epochs", type=int, default=None, help="train this many epochs instead of the study's "
                   "(a longer-trained model; no longer reproduces the trial's accuracy)")
    p.add_argument("--weights", type=path_flag("--weights"), default=None, help="load this saved state_dict instead of retraining")
    p.add_argument("--data", default=None, help="dataset name or path (default: the study's)")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("train-cost", help="cost one on-device training step of a trial: peak SRAM in its parts, "
                       "flash, step latency (no training)",
                       description="Peak training SRAM of a stored trial's architecture for an update scheme, in "
                       "its parts (forward arena, activations saved for the backward pass, gradients, weights in "
                       "SRAM, optimizer state, scratch), with flash and a modeled step latency. Schemes: "
                       f"{UPDATE_GRAMMAR}. See docs/guides/on-device-learning.md.")
    _add_study_flags(p, "study name")
    p.add_argument("--trial", default="best", help="trial number, or 'best' (default %(default)s)")
    p.add_argument("--device", default=None, help="device profile (default: the study's target)")
    p.add_argument("--scheme", required=True, action="append", help="what the step updates: " + UPDATE_GRAMMAR
                   + "; repeat the flag to compare schemes side by side")
    p.add_argument("--optimizer", default="sgd", help="sgd | momentum | adam (default %(default)s)")
    p.add_argument("--arith", default="int8", help="int8: a compiled engine's memory; fp32: an eager framework's "
                   "(default %(default)s)")
    p.add_argument("--batch", default="1", help="samples per step (fp32 only; default %(default)s)")
    p.add_argument("--format", default="table", help="table | json (default %(default)s)")
    p.set_defaults(handler=cmd_train_cost)

    p = sub.add_parser("adapt", help="simulate on-device fine-tuning of a trial on a shifted domain: accuracy "
                       "before, after fp32 and after integer fine-tuning",
                       description="Fine-tune a stored trial's deployed graph (BatchNorm folded, int8 ranges of "
                       "the exported file) on a task's adaptation samples with an update scheme, in fp32 and in "
                       "the chosen integer arithmetic, over several seeds; print held-out accuracy without "
                       "adaptation and after each, the scheme's training memory, and the rounding of each tensor. "
                       "See docs/guides/on-device-learning.md.")
    _add_study_flags(p, "study name")
    p.add_argument("--trial", default="best", help="trial number, or 'best' (default %(default)s)")
    p.add_argument("--task", required=True, help="a shipped shifted-domain task (" + TASKS.help_text() + ") or a path "
                   "to your own target-domain data (.npz or folder, with the study's classes)")
    p.add_argument("--scheme", required=True, help="what fine-tuning updates: " + UPDATE_GRAMMAR
                   + "; or sparse:auto (needs --train-sram-budget)")
    p.add_argument("--arith", default="int8-qas", help="fp32 | int8 | int8-qas | int8-octo, or several "
                   "comma-separated (each compared with the fp32 reference; default %(default)s)")
    p.add_argument("--seeds", type=int, default=5, help="fine-tuning runs, seeds --seed.. (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default %(default)s)")
    p.add_argument("--optimizer", default="sgd", help="sgd | momentum (default %(default)s)")
    p.add_argument("--train-sram-budget", type=float, default=None, metavar="KB",
                   help="training SRAM the scheme must fit (sparse:auto chooses within it)")
    p.add_argument("--device", default=None, help="device profile for the training memory (default: the study's "
                   "target)")
    p.add_argument("--data", default=None, help="the study's data set name or path (default: the study's)")
    p.add_argument("--format", default="table", help="table | json (default %(default)s)")
    p.set_defaults(handler=cmd_adapt)
    return parser


def _add_study_flags(p, study_help: str) -> None:
    """``--study`` and ``--storage`` of the commands that read a stored study."""
    p.add_argument("--study", required=True, help=study_help)
    p.add_argument("--storage", default=DEFAULT_STORAGE, help="Optuna storage URL or .db/.log path "
                   "(default %(default)s)")


def _add_repeat_flags(p, repeats: int) -> None:
    """``--repeats N`` / ``--repeat-top K`` of search and quickstart: extra seeds for the top of the front at the end."""
    p.add_argument("--repeats", type=int, default=repeats, metavar="N",
                   help="when the search ends, re-train the top of the front with N other seeds each and print the "
                   "front as mean ± std (`workbench repeats`; 0: off; default %(default)s)")
    p.add_argument("--repeat-top", type=int, default=3, metavar="K",
                   help="how many front points --repeats re-trains, best first (default %(default)s)")


def _add_reliability_flags(p, heartbeat_s: int) -> None:
    p.add_argument("--heartbeat", type=int, default=heartbeat_s, metavar="S",
                   help="seconds between heartbeats of a running trial; a trial silent for 3 beats is failed and "
                   "retried once (every storage; 0 disables; default %(default)s)")


def cmd_quickstart(args) -> int:
    print(f"quickstart: {args.trials} trained trials of the '{q['space']}' space on '{q['device']}' with the "
          f"built-in '{q['data']}' data, latency budget {q['latency_budget_ms']} ms, sampler {q['sampler']}",
          file=sys.stderr)
    options = dict(study_name=args.study, seed=q["seed"], latency_budget_ms=q["latency_budget_ms"], epochs=q["epochs"],
                   sampler=q["sampler"])
    return _run_search(q["space"], q["device"], q["data"], options, storage=args.storage, trials=args.trials,
                       repeats=(args.repeats, args.repeat_top))


def cmd_worker(args) -> int:
    overrides = {"heartbeat_s": args.heartbeat or None, "listeners": [print_progress]}
    search = Search.join(args.study, args.storage, data=args.data, **overrides)
    result = search.run(args.trials)
    print(f"worker done: study '{args.study}' has {trained_trials(result.study)} trained trials", file=sys.stderr)
    return 0


def _train_budget(text: str | None) -> float | None:
    """``--train-sram-budget``'s value: a number of KB (checked > 0 with the search's other options). Read here,
    not by argparse, so a wrong value is the one-line error every other option gives."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise WorkbenchError(f"--train-sram-budget: must be a number > 0 KB, got {text!r}") from None


def cmd_search(args) -> int:
    check_worker_count(args.workers)
    options = dict(study_name=args.study, sampler=args.sampler, seed=args.seed, latency_budget_ms=args.latency_budget,
                   objectives=parse_objectives(args.objectives), epochs=args.epochs, population=args.population,
                   evaluator=args.evaluator, train_scheme=args.train_scheme,
                   train_sram_budget_kb=_train_budget(args.train_sram_budget))
    return _run_search(args.space, args.device, args.data, options, storage=args.storage, trials=args.trials,
                       workers=args.workers, heartbeat=args.heartbeat, repeats=(args.repeats, args.repeat_top))


def _run_search(space, device, data, options: dict, *, storage: str, trials: int, workers: int = 1,
                heartbeat: int | None = None, repeats: tuple[int, int] = (0, 3)) -> int:
    """Check everything, then create or resume the study, start ``workers - 1`` helper processes, work on
    it until it holds ``trials`` trained trials, re-train the top ``repeats[1]`` front points with
    ``repeats[0]`` other seeds (``workbench repeats``), and print its front."""
    heartbeat = HEARTBEAT_S if heartbeat is None else heartbeat
    search = Search(space, device, data, storage=storage, listeners=[print_progress], heartbeat_s=heartbeat or None,
                    **options)
    _check_repeats(repeats, search.evaluator)
    search.open(trials)  # every check passed: only now is the study created or resumed
    for note in search.data_notes:  # after every check: a refused search prints its one error line only
        print(f"note: {note}", file=sys.stderr)
    done = trained_trials(search.study)
    if done >= trials > 0:
        print(f"study '{search.study_name}' is already complete ({done}/{trials} trained trials): nothing to run; "
              f"its front follows (a larger --trials adds trials)", file=sys.stderr)
    helpers = _start_workers(search.study_name, storage, trials, workers - 1, heartbeat) if done < trials else []
    try:
        result = search.run(trials)
    except BaseException:
        acknowledge()
        stop_workers(helpers)  # an interrupt or a failure stops the helpers too: no orphans
        raise
    for proc in helpers:
        proc.wait()

    front = _repeat_top(result, storage, repeats, search.data) if repeats[0] else result.front
    rows = front_rows(front, result.device)
    print(f"\nPareto front on {result.device.name} ({len(front)} of {_tally(result.study)}; "
          f"{_quality_note(search.evaluator, result.study)}, costs predicted from the device LUT):")
    print(trust_note(result.device, front))
    print(format_rows(rows, "table"))
    other = _other_device(result.device, search.profiles, _front_size(result.study))
    hint = (f"  (see it for another device: workbench pareto --study {search.study_name} --storage {storage} "
            f"--device {other})") if other else ""
    print(f"\nstudy '{search.study_name}' stored in {storage}{hint}")
    return 0


def _check_repeats(repeats: tuple[int, int], evaluator: str) -> None:
    """``--repeats``/``--repeat-top`` checked before the study is touched."""
    n, top = repeats
    if n < 0 or top < 1:
        flag, value, least = ("--repeats", n, 0) if n < 0 else ("--repeat-top", top, 1)
        raise WorkbenchError(f"{flag}: must be an integer >= {least}, got {shown(value)}")
    if n > MAX_REPEATS:
        raise WorkbenchError(f"--repeats: at most {MAX_REPEATS} extra seeds per candidate, got {shown(n)}")
    if n and not EVALUATORS.get(evaluator).trains:
        trained = " or ".join(e.name for e in EVALUATORS.where(trains=True))
        raise WorkbenchError(f"--repeats: the {evaluator!r} evaluator is a training-free proxy with no seed-to-seed "
                             f"noise to measure; drop --repeats or use --evaluator {trained}")


def _repeat_top(result, storage: str, repeats: tuple[int, int], data) -> list:
    """``workbench repeats`` on the finished search: its progress on stderr; the front it leaves (mean ± std)."""

    stored = StoredStudy(result.study, storage)
    started = time.perf_counter()
    runs = repeat_front(stored, top=repeats[1], repeats=repeats[0], device=result.device, data=data)
    print(repeat_summary(stored, runs, started, result.device), file=sys.stderr)
    return stored.front(result.device)


def _tally(study) -> str:
    """``24 trained trials; 9 candidates rejected before training, 2 duplicates of trained architectures not
    retrained`` (duplicates: proposed again after training; extra seeds are ``workbench repeats``)."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    trained = sum(map(is_trained, complete))
    counts = {"rejected": sum(bool(t.user_attrs.get(Keys.REJECTED)) for t in complete),
              "duplicates": sum(t.user_attrs.get(Keys.DUPLICATE_OF) is not None for t in complete)}
    parts = [f"{trained} trained trial{'s' if trained != 1 else ''}"]
    if any(counts.values()):
        parts.append(not_trained_text(counts))  # the words `pareto` counts the never-trained candidates in
    return "; ".join(parts)


def _other_device(device, profiles, front_size=None) -> str | None:
    """A profile to suggest for ``pareto --device``: not the study's own, of the same class when there is one,
    and (given ``front_size(profile)``) one on which some trained trial fits: an empty table is no example."""
    others = [p for p in profiles if p.name != device.name]
    same_class = [p for p in others if p.device_class == device.device_class]
    pool = same_class or others
    if front_size is not None:
        pool = [p for p in pool if front_size(p) > 0] or pool
    return pool[0].name if pool else None


def _front_size(optuna_study):
    """How many front points a study has on a profile (its trials read once, the front recomputed per profile)."""
    study = StoredStudy(optuna_study)
    records = study.records()
    return lambda profile: len(study.front(profile, records=records))


def _quality_note(evaluator: str, study=None) -> str:
    """What the accuracy column is; with the study's test-set size (its data fingerprint), how coarse it is."""
    if not EVALUATORS.get(evaluator).trains:
        return f"accuracy column = {evaluator} training-free score, not an accuracy"

    try:
        samples = int(study.user_attrs[FINGERPRINT_ATTR]["data"]["test"])
    except (AttributeError, KeyError, TypeError, ValueError):
        return "accuracy = held-out test top-1"
    return f"accuracy = held-out test top-1 on {samples:,} samples, one sample = {1 / samples:.4f}"


def _start_workers(study: str, storage: str, trials: int, n: int, heartbeat: int) -> list:
    """``n`` more ``workbench worker`` processes on this machine, sharing the study through its storage."""
    return start_workers(["worker", "--study", study, "--storage", absolute_url(storage), "--trials", str(trials),
                          "--heartbeat", str(heartbeat)], n)


def cmd_pareto(args) -> int:
    limits = parse_limits(latency_budget=args.latency_budget, sram_kb=args.sram_kb, flash_kb=args.flash_kb,
                          precision=args.precision, quant_mode=args.quant_mode, stage_bits=args.stage_bits)
    stored = StoredStudy(args.study, args.storage)
    print_front(stored, args.device, args.format, limits)
    return 0


def print_front(stored, device=None, fmt: str = "table", limits: Limits | None = None) -> None:
    """A stored study's front on ``device`` (default: its target) under what-if ``limits``: the header line,
    the rows (mean ± std where an architecture has several measurements), then why every other trained trial is
    not on it. csv keeps the header and reasons on stderr; json holds ``front``, ``limits`` and ``missing``."""
    settings = stored.settings
    profile = stored.device(device)
    limits = limits or Limits()
    result = stored.what_if(profile, limits)
    rows = front_rows(result.front, profile)
    header = pareto_header(stored.name, settings, profile, len(result.front),
                           _quality_note(settings.evaluator, stored.study),
                           limits.flags(settings.latency_budget_ms, profile, settings.device))
    out = sys.stdout if fmt == "table" else sys.stderr  # csv/json stay machine-readable
    print(header, file=out)
    print(trust_note(profile, result.front), file=out)
    if fmt == "json":
        print(json.dumps({"study": stored.name, "device": profile.name, "limits": limits.to_dict(),
                          "front": _machine_rounded(rows), "missing": result.to_dict()}, indent=2))
        return
    print(format_rows(rows, fmt) if rows or fmt != "table" else "(no trained trial on this front: why, below)")
    print("\n".join(result.reason_lines()), file=out)


def cmd_repeats(args) -> int:
    stored = StoredStudy(args.study, args.storage)
    started = time.perf_counter()
    runs = repeat_front(stored, top=args.top, repeats=args.repeats, device=args.device, data=args.data)
    print(repeat_summary(stored, runs, started, args.device), file=sys.stderr)
    print_front(stored, args.device)
    return 0


def pareto_header(study: str, settings, device, n_front: int, quality: str = "", what_if=()) -> str:
    """One line: which study, which device (and whether it is the study's target), budget, the what-if limits
    and filters applied after the search (``Limits.flags``), objectives and ``quality`` (what the accuracy
    column is: :func:`_quality_note`)."""
    target, budget = settings.device, settings.latency_budget_ms
    whose = "the study's target" if device.name == target else f"the study targeted {target}"
    limit = f"latency budget {budget:g} ms" if budget else "no latency budget"
    if getattr(settings, "train_scheme", None):
        train_budget = settings.train_sram_budget_kb
        limit += (f"; training memory of --train-scheme {settings.train_scheme} ({SEARCH_ARITH}, {SEARCH_OPTIMIZER})"
                  f"{f', budget {train_budget:g} KB' if train_budget else ''}")
    if what_if:
        limit += f"; what-if after the search: {', '.join(what_if)}"
    return (f"Pareto front of study '{study}' on {device.name} ({whose}; {limit}; objectives "
            f"{', '.join(settings.objectives)}{'; ' + quality if quality else ''}): "
            f"{n_front} trial{'s' if n_front != 1 else ''}")


def trust_note(profile, front) -> str:
    """How far the table's latencies can be trusted on ``profile`` (:mod:`workbench.hardware.trust`): one line per
    precision the front's ops run at (every precision of the device when the front is empty)."""
    lines = [f"latency on {profile.name}, {line}"
             for line in trust_lines(profile, precisions_of(r.arch for r in front) or None)]
    interpolated = sum(r.prediction(profile).get("interpolated_ops", 0) for r in front)
    if interpolated:
        lines.append(f"latency on {profile.name}: {interpolated} op{'s' if interpolated > 1 else ''} of this front "
                     f"{'are' if interpolated > 1 else 'is'} not in its LUT, interpolated from the LUT's other entries "
                     f"(not measured)")
    return "\n".join(lines)


def format_rows(rows: list[dict], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(_machine_rounded(rows), indent=2)
    if not rows:
        return "(no trained trial fits this device)" if fmt == "table" else ""
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(_machine_rounded(rows))
        return out.getvalue().rstrip("\n")
    shown = [o for o in costs() if o.column in rows[0]]
    columns = ["trial", "accuracy", *(o.column for o in shown), "macs", "precision", "architecture"]
    headers = ["trial", "accuracy", *(o.header for o in shown), "MACs", "prec", "architecture"]
    formats = {**_CELL_FORMATS, **{o.column: f"{{:.{o.digits}f}}" for o in shown}}
    cells = [[_accuracy_cell(row) if c == "accuracy" else formats.get(c, "{}").format(row[c]) for c in columns]
             for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) if i == len(headers) - 1 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))]
    for c in cells:
        lines.append("  ".join(v.ljust(w) if i == len(c) - 1 else v.rjust(w) for i, (v, w) in enumerate(zip(c, widths))))
    return "\n".join(lines)


def _machine_rounded(rows: list[dict]) -> list[dict]:
    """csv/json rows with each objective to its ``machine_digits`` (latency to 0.1 us; the table rounds to its
    own digits: one rounding each)."""
    return [{**row, **{o.column: None if row[o.column] is None else round(row[o.column], o.machine_digits)
                       for o in costs() if o.column in row}} for row in rows]


_CELL_FORMATS = {"macs": "{:,}"}  # the columns that are not objectives (those print with their own digits)


def _accuracy_cell(row: dict) -> str:
    """The front's accuracy: the mean over the architecture's measurements, ``± std (n=…)`` when several."""
    mean = row.get("accuracy_mean", row["accuracy"])
    if row.get("accuracy_std") is None:
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {row['accuracy_std']:.4f} (n={row['n']})"


def cmd_spaces(args) -> int:
    found = places.entries(places.SPACES)
    for entry in found:
        s = load_space(entry.path)
        print(f"{s.name:<12} {s.family:<7} data={s.dataset:<16} {s.description}{_yours(entry, 'space')}")
    print(_origins(found, places.SPACES, "spaces"))
    return 0


def cmd_devices(args) -> int:
    found = places.entries(places.PROFILES)
    for entry in found:
        profile = load_profile(entry.path, notify=False)
        print(profile.one_line())
        for line in trust_lines(profile):
            print(f"    latency {line}")
        print(f"    {memory_trust(profile)}")
        if entry.origin == "user":
            print(f"    {_yours(entry, 'profile').strip(' ()')}")
    print(_origins(found, places.PROFILES, "profiles"))
    return 0


def _yours(entry, what: str) -> str:
    """`` (yours: PATH)`` after a user's entry, saying when it shadows a shipped one; nothing after a shipped one."""
    if entry.origin != "user":
        return ""
    return f" (yours: {entry.path}{f'; shadows the shipped {what} of that name' if entry.shadows else ''})"


def _origins(found, kind: str, what: str) -> str:
    """The listing's last line: how many are shipped and how many are yours, and both folders."""
    mine = sum(e.origin == "user" for e in found)
    shadowed = sum(e.shadows for e in found)
    hidden = f"; {shadowed} shadowed by yours" if shadowed else ""
    return (f"-- {len(found) - mine + shadowed} shipped {what} ({places.shipped_dir(kind)}{hidden}), {mine} of "
            f"yours ({places.user_dir(kind)}; ${places.HOME_ENV} or --home moves it)")


def cmd_datasets(args) -> int:
    for name, description in list_datasets():
        print(f"{name:<16} {description}")
    return 0


def cmd_profile(args) -> int:
    from workbench.calibration.profiler import (  # heavy: onnx, onnxruntime
        MAX_RUNS_PER_OP,
        check_out_dir,
        profile_device,
    )

    spaces = [load_space(s) for s in args.space] if args.space else all_spaces()
    check_count("--warmup", args.warmup, 0, MAX_RUNS_PER_OP)  # a run per op beyond these never ends
    check_count("--repeats", args.repeats, 1, MAX_RUNS_PER_OP)
    if args.limit is not None:
        check_count("--limit", args.limit, 1, 10 ** 9)
    out_dir = _profile_out(args.name, args.out)
    check_out_dir(out_dir, force=args.force)  # before anything is written
    out = profile_device(out_dir, spaces=spaces, precisions=tuple(args.precision or ("fp32", "int8")),
                         limit=args.limit, warmup=args.warmup, repeats=args.repeats)
    print(f"wrote {out}")
    return 0


def _profile_out(name: str | None, out: Path | None) -> Path:
    """``--name NAME``: the user folder's NAME; ``--out DIR``: DIR, unless it lies inside the installed package."""
    if name is None:
        places.refuse_installed(out, "--out")
        return out
    if not name or name.startswith(".") or any(sep in name for sep in ("/", "\\", os.sep)):
        raise WorkbenchError(f"--name: {name!r} is not a profile name (one folder name, not hidden; for a path "
                             f"use --out)")
    return places.user_dir(places.PROFILES) / name


def cmd_model_lut(args) -> int:
    path, n = model_profile(args.profile_dir)
    print(f"wrote {path} ({n} modeled entries)")
    return 0


def cmd_calibrate(args) -> int:
    if (args.measurements is None) == (not args.quick):
        raise WorkbenchError("calibrate: give exactly one of --measurements CSV or --quick")
    if args.quick:
        check_count("--models-per-space", args.models_per_space, 1, MAX_QUICK_MODELS)
    strength = args.strength if args.strength is not None else QUICK_STRENGTH if args.quick else DEFAULT_STRENGTH
    read_from = resolve_profile_dir(args.profile)
    with writable_profile_dir(args.profile) as folder:
        if args.quick:
            report = calibrate_quick(folder, args.models_per_space, strength, name=args.profile)
        else:
            report = calibrate_profile(folder, args.measurements, strength, name=args.profile, restart=args.restart)
    print(format_report(report))
    copied = "" if folder == read_from else (f" (your copy of the shipped {args.profile!r}: it shadows the shipped "
                                           f"one from now on; delete the folder to go back)")
    print(f"wrote {folder}{copied}")
    return 0


def cmd_calibration_kit(args) -> int:
    if not 2 <= args.models <= 50:
        raise WorkbenchError(f"--models: must be between 2 and 50, got {args.models}")
    check_count("--seed", args.seed, 0, MAX_SEED)
    profile = load_profile(resolve_profile_dir(args.profile))
    kit = write_kit(profile, args.out, args.models, args.precision, args.seed, files=not args.no_files)
    total = sum(m.predicted_ms for m in kit)
    print(f"wrote {len(kit)} models to {args.out} (predicted {total:.1f} ms in all on {profile.name}); time each "
          f"{'file' if not args.no_files else 'model'} on the board, fill in the ms and source columns of "
          f"{args.out / 'to_time.csv'}, then: workbench calibrate {args.profile} --measurements "
          f"{args.out / 'to_time.csv'}")
    return 0


def cmd_score(args) -> int:
    result = score(args.model, args.device)
    print(json.dumps(result.to_dict(), indent=2) if args.format == "json" else format_score(result))
    return 0


def cmd_export(args) -> int:
    from workbench.export.trial import export_trial, summary_lines  # heavy: torch

    if args.epochs is not None:
        check_count("--epochs", args.epochs, 1, MAX_EPOCHS)
    result = export_trial(args.study, args.storage, args.trial, args.format, args.out, device=args.device,
                          epochs=args.epochs, weights=args.weights, data=args.data,
                          log=lambda m: print(m, file=sys.stderr, flush=True))
    print("\n".join(summary_lines(result)))  # a retrain that missed the stored accuracy: a notice (trial_source)
    verdict = "all files verified" if result.ok else f"FAILED verification: {', '.join(result.failed)}"
    print(f"\n{verdict}; manifest: {result.manifest_path}")
    return 0 if result.ok else 1


def cmd_train_cost(args) -> int:
    schemes = [parse_scheme(text) for text in args.scheme]  # every flag checked before the storage is opened
    if not args.batch.isdigit():
        raise WorkbenchError(f"--batch: must be an integer >= 1, got {args.batch!r}")
    check_options(args.optimizer, args.arith, int(args.batch))
    if args.format not in ("table", "json"):
        raise WorkbenchError(f"--format: must be table or json, got {args.format!r}")
    profile = load_profile(args.device) if args.device else None
    stored = StoredStudy(args.study, args.storage)
    profile = profile or stored.target
    number, arch = trial_architecture(stored, args.trial, profile)
    costs = [training_cost(arch, profile, scheme, args.optimizer, args.arith, int(args.batch)) for scheme in schemes]
    trust = training_trust(costs[0], profile)
    if args.format == "json":
        rows = [{"study": stored.name, "trial": number, "architecture": arch.summary(), **cost.to_dict(),
                 "trust": trust} for cost in costs]
        print(json.dumps(rows[0] if len(rows) == 1 else rows, indent=2))
        return 0
    what = f"scheme {costs[0].scheme}, " if len(costs) == 1 else ""
    title = (f"training step of trial {number} of study '{stored.name}' ({arch.summary()}) on {profile.name}: "
             f"{what}optimizer {costs[0].optimizer}, {costs[0].arith}")
    print(format_table(costs[0], title, trust) if len(costs) == 1 else format_comparison(costs, title, trust))
    return 0


def cmd_adapt(args) -> int:
    from workbench.learning.adapt import adapt_trial, check_request, format_report  # heavy: torch

    if args.format not in ("table", "json"):
        raise WorkbenchError(f"--format: must be table or json, got {args.format!r}")
    check_request(args.task, args.scheme, args.arith, args.seeds, args.seed, args.optimizer,
                  args.train_sram_budget)  # every flag before the storage is opened
    if args.device:
        load_profile(args.device)
    report = adapt_trial(args.study, args.storage, args.trial, args.task, args.scheme, args.arith,
                         seeds=args.seeds, seed=args.seed, optimizer=args.optimizer, device=args.device,
                         budget_kb=args.train_sram_budget, data=args.data,
                         log=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(report.to_dict(), indent=2) if args.format == "json" else format_report(report))
    return 0


def run() -> None:
    """The ``workbench`` command (and ``python -m workbench.cli``): :func:`main`, then exit with its code.

    Once the work is done, a Ctrl-C or SIGTERM that arrives while the interpreter shuts down is ignored:
    otherwise Python would re-raise it at exit and the shell would see a process killed by the signal
    after it had finished (and printed) everything."""
    try:
        code = main()
    except KeyboardInterrupt as exc:  # before main's own handling started, or just after it ended
        print("\ninterrupted", file=sys.stderr)
        code = exit_code(exc)
    except BrokenPipeError:  # `workbench pareto … | head`: the reader left; nothing to report, no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own exit flush would fail again
        code = 141  # what a shell reports for a writer killed by SIGPIPE
    except Exception as exc:  # an interrupt that landed inside an import and was re-raised as another error
        interrupt = interrupt_behind(exc)
        if interrupt is None:
            raise
        print("\ninterrupted", file=sys.stderr)
        code = exit_code(interrupt)
    ignore_stop_signals()
    sys.exit(code)


def interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM an exception was raised from, if any: a stop signal that arrives while a module is
    being imported (a worker told to stop as it starts) can surface as the importer's own error."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


if __name__ == "__main__":  # pragma: no cover
    run()
