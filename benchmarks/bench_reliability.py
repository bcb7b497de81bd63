"""Reliability table: hostile inputs through the real CLI, each under a memory and a time limit.

    python benchmarks/bench_reliability.py                      # 24 inputs per class, 14 classes (336)
    python benchmarks/bench_reliability.py --per-class 5 --only weights yaml-alias-bomb

Section "input": the generators of ``tests/hostile_cases.py`` (alias bombs, deep nesting, over-size
YAML/LUT files, profile paths out of their folder, .npz headers declaring terabytes, decompression
bombs, pickled exploits as weights, unusable ``--out`` paths, spaces a family cannot lower, data that
does not fit the space, …). Each input runs in a fork of a process that has imported the workbench
once, with ``RLIMIT_AS`` = the child's size + ``--mem-mb`` and a ``--timeout``; it counts as a clean
error when it exits 2 with exactly one ``error:`` line on stderr naming the file/field at fault
(no traceback, no exploit run). Per class: inputs tried, clean errors, tracebacks, hangs (killed at
the time limit), other failures, the largest peak resident memory of a child (``wait4`` maxrss).

Hook for more sections (storage faults, kills): add a function ``fn(workdir: Path, args) -> list[Row]``
to ``SECTIONS``; its rows are printed in the same table and summed into the totals. ``--sections``
picks which run.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import _report  # the page writer; also puts the repository root first on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import hostile_cases as hc  # noqa: E402
import hostile_extremes as hx  # noqa: E402

PAGE = _report.Page(__file__)


@dataclass
class Row:
    section: str
    klass: str
    tried: int = 0
    clean: int = 0
    tracebacks: int = 0
    hangs: int = 0
    other: int = 0
    peak_rss_mb: float = 0.0
    parent_rss_mb: float = 0.0  # what the process that forks the inputs held (the children start from it)
    seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # one line per failed input, printed under the table

    def add(self, case: hc.Case, outcome: hc.Outcome) -> None:
        problems = outcome.problems(case)
        if case.marker and Path(case.marker).exists():
            problems.append("the pickled code ran")
        self.tried += 1
        self.seconds.append(outcome.seconds)
        self.peak_rss_mb = max(self.peak_rss_mb, outcome.peak_rss_mb)
        self.parent_rss_mb = max(self.parent_rss_mb, outcome.baseline_mb)
        if not problems:
            self.clean += 1
            return
        if outcome.timed_out:
            self.hangs += 1
        elif "Traceback" in outcome.stderr:
            self.tracebacks += 1
        else:
            self.other += 1
        last = (outcome.stderr.strip().splitlines() or [""])[-1][:200]
        self.failures.append(f"{case.klass} [{case.label}] {'; '.join(problems)} | {last}")


def input_rows(workdir: Path, args) -> list[Row]:
    """The hostile-input section: ``--per-class`` inputs of every generator class."""
    rng = random.Random(args.seed)
    rows = []
    with hc.Runner(mem_mb=args.mem_mb, timeout_s=args.timeout) as runner:
        db = None
        for klass in [*hc.GENERATORS, *hc.STUDY_GENERATORS, *hx.GENERATORS]:
            if args.only and klass not in args.only:
                continue
            if klass in hc.GENERATORS:
                cases = hc.GENERATORS[klass](workdir / klass, rng, args.per_class)
            else:
                db = db or hc.make_study(workdir, runner)
                make = hc.STUDY_GENERATORS.get(klass) or hx.GENERATORS[klass]
                cases = make(workdir / klass, rng, args.per_class, db)
            row = Row("input", klass)
            for case in cases:
                row.add(case, runner.run(case))
            print(f"  {klass:<22} {row.clean}/{row.tried} clean  ({sum(row.seconds):.0f} s)", file=sys.stderr,
                  flush=True)
            rows.append(row)
    return rows


SECTIONS = {"input": input_rows}  # more sections (storage faults, kills) register here


def print_table(rows: list[Row], args, wall: float) -> None:
    head = (f"{'section':<8} {'class':<22} {'inputs':>6} {'clean':>6} {'traceb.':>7} {'hangs':>5} {'other':>5} "
            f"{'peak RSS MB':>11} {'median s':>8}")
    print(f"hostile inputs through the CLI: per input RLIMIT_AS = own size + {args.mem_mb} MiB, time limit "
          f"{args.timeout:g} s, seed {args.seed}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r.section:<8} {r.klass:<22} {r.tried:>6} {r.clean:>6} {r.tracebacks:>7} {r.hangs:>5} {r.other:>5} "
              f"{r.peak_rss_mb:>11.0f} {statistics.median(r.seconds) if r.seconds else 0:>8.2f}")
    total = Row("all", "total")
    for r in rows:
        total.tried += r.tried
        total.clean += r.clean
        total.tracebacks += r.tracebacks
        total.hangs += r.hangs
        total.other += r.other
        total.peak_rss_mb = max(total.peak_rss_mb, r.peak_rss_mb)
        total.seconds += r.seconds
    print("-" * len(head))
    print(f"{'all':<8} {'total':<22} {total.tried:>6} {total.clean:>6} {total.tracebacks:>7} {total.hangs:>5} "
          f"{total.other:>5} {total.peak_rss_mb:>11.0f} {statistics.median(total.seconds) if total.seconds else 0:>8.2f}")
    parent = max((r.parent_rss_mb for r in rows), default=0.0)
    print(f"wall {wall:.0f} s; peak RSS = the largest resident set of one child process in the class (forked from "
          f"a parent holding {parent:.0f} MB: torch, Optuna, the data loaders imported)")
    for r in rows:
        for line in r.failures:
            print(f"FAILED {line}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=24, help="inputs per class (default %(default)s)")
    parser.add_argument("--mem-mb", type=int, default=1024, help="address space per input above its start")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per input before it counts as a hang")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=None, help="only these classes")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated (default %(default)s)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the generated inputs here")
    PAGE.add_flag(parser)
    args = parser.parse_args(argv)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-reliability-") as tmp:
        workdir = args.workdir or Path(tmp)
        rows = []
        for name in args.sections.split(","):
            rows += SECTIONS[name.strip()](workdir / name.strip(), args)
    print_table(rows, args, time.monotonic() - start)
    return 0 if all(not r.failures for r in rows) else 1


if __name__ == "__main__":
    sys.exit(PAGE.run(main))
