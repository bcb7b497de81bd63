"""Throughput of many workers on one study, per storage, on a training-free objective.

For each storage (SQLite file, Optuna journal file, PostgreSQL when WORKBENCH_TEST_POSTGRES_URL or
--postgres gives a server) and 1, 2 and 4 worker processes (`workbench worker`), runs a fresh study
of --trials trained trials scored by SynFlow (no training) and prints trained trials per second (the
candidates rejected before scoring are recorded but not counted, as ``--trials`` counts). Then the
framework's overhead per candidate on one worker: wall time minus the proxy's own time, per candidate (what
sampling, scoring on every device profile, constraints and storage writes cost).

    python benchmarks/bench_workers.py [--trials 200] [--workers 1 2 4] [--postgres URL]

Note: this machine has 2 cores, so 4 workers oversubscribe it.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import _report  # the page writer; also puts the repository root first on sys.path
import optuna

from workbench.search import is_trained
from workbench.storages.storage import open_storage

PAGE = _report.Page(__file__)

SEARCH = ["search", "--space", "sensor-imu", "--device", "stm32f746", "--data", "basic-motions",
          "--evaluator", "synflow", "--sampler", "random"]


def cli(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "workbench.cli", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(storage: str, workers: int, trials: int) -> tuple[float, int, int, list[float]]:
    """Seconds from the first worker trial's start to the last one's end (process start-up excluded),
    candidates and trained trials the workers recorded, and the proxy's seconds per trained trial."""
    study = f"bench-{uuid.uuid4().hex[:8]}"
    assert cli(*SEARCH, "--trials", 1, "--study", study, "--storage", storage).wait() == 0
    procs = [cli("worker", "--study", study, "--storage", storage, "--trials", trials + 1) for _ in range(workers)]
    assert all(p.wait() == 0 for p in procs)
    done = optuna.load_study(study_name=study, storage=open_storage(storage)).get_trials(deepcopy=False)
    first = min(t.number for t in done if is_trained(t))  # the creating command's trial
    complete = [t for t in done if t.state.name == "COMPLETE" and t.number != first]
    trained = [t for t in complete if is_trained(t)]
    wall = (max(t.datetime_complete for t in complete) - min(t.datetime_start for t in complete)).total_seconds()
    return wall, len(complete), len(trained), [t.user_attrs.get("eval_seconds", 0.0) for t in trained]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--postgres", default=os.environ.get("WORKBENCH_TEST_POSTGRES_URL"))
    PAGE.add_flag(parser)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    storages = {"sqlite": f"sqlite:///{tmp / 'studies.db'}", "journal": str(tmp / "studies.log")}
    if args.postgres:
        storages["postgresql"] = args.postgres
    print(f"{args.trials} training-free trials (SynFlow, random sampler, sensor-imu on stm32f746) per run; "
          f"{os.cpu_count()} cores")
    print(f"{'storage':<11} {'workers':>7} {'trained':>7} {'cands':>6} {'wall s':>7} {'trained/s':>9} "
          f"{'ms/cand':>8} {'overhead ms':>11}")
    for name, url in storages.items():
        for n in args.workers:
            wall, candidates, trained, evals = run(url, n, args.trials)
            overhead = (wall - sum(evals)) / candidates * 1000 if n == 1 else float("nan")
            print(f"{name:<11} {n:>7} {trained:>7} {candidates:>6} {wall:>7.1f} {trained / wall:>9.1f} "
                  f"{wall / candidates * 1000:>8.1f} {overhead:>11.1f}")
    print("wall = first trial start to last trial end; cands = candidates recorded (trained + rejected before "
          "scoring); overhead = per candidate on one worker, wall minus the proxy's own time")


if __name__ == "__main__":
    sys.exit(PAGE.run(main))
