"""How the workbench times one inference: the one timing loop and the one statistic.

Everything that measures latency on this host goes through :func:`time_calls`: the profiler's
one-op and whole-model graphs (the ``host-cpu`` LUT), the export runners (``latency_ms_measured``
in an export manifest), ``workbench calibrate --quick`` and the benchmarks. One statistic means a
file's measured latency and the LUT's prediction for it can be put side by side.

The statistic is the **mean of the fastest** :data:`KEEP_FASTEST` **share of the runs** (a
one-sided trimmed mean), with the standard deviation of the same runs:

* *a mean, not a median*: a LUT predicts a model as the sum of its ops' entries, and means add up
  (the mean of a sum is the sum of the means) where medians do not; LUT rows also carry a std
  and a count, which belong with a mean;
* *trimmed on the slow side only*: on a shared machine the slow tail is interference — other
  processes, interrupts, page faults — not the model; an inference cannot run faster than its
  work, so the fast side holds no outliers to drop.

Every run is timed alone with :func:`time.perf_counter` after a warm-up (caches, lazy kernel
selection), the input already prepared, so only the inference call is counted.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

KEEP_FASTEST = 0.8  # share of timed runs kept: the slowest 20 % are taken as interference


@dataclass(frozen=True)
class Timing:
    """One latency measurement: the statistic in ms, the spread of the runs it kept, how many."""

    mean_ms: float
    std_ms: float
    kept: int
    repeats: int
    warmup: int

    def to_dict(self) -> dict:
        """The manifest's ``latency_ms_measured`` record."""
        return {"ms": round(self.mean_ms, 5), "std_ms": round(self.std_ms, 5), "statistic": statistic(),
                "kept": self.kept, "repeats": self.repeats, "warmup": self.warmup, "threads": 1}


def statistic() -> str:
    """The statistic in words, for LUT references, manifests and benchmark tables."""
    return f"mean of the fastest {KEEP_FASTEST:.0%} of timed runs"


def kept_runs(repeats: int) -> int:
    """How many of ``repeats`` runs the statistic keeps (at least one)."""
    return max(1, int(round(repeats * KEEP_FASTEST)))


def summarise(seconds: np.ndarray, warmup: int = 0) -> Timing:
    """The statistic of per-run wall times (seconds) → :class:`Timing` in ms."""
    if len(seconds) < 1:
        raise ValueError("time at least one run")
    kept = np.sort(np.asarray(seconds, dtype=float))[: kept_runs(len(seconds))] * 1e3
    return Timing(float(kept.mean()), float(kept.std()), int(kept.size), int(len(seconds)), int(warmup))


def time_calls(call: Callable[[], object], warmup: int, repeats: int) -> Timing:
    """Call ``call()`` ``warmup`` times untimed, then ``repeats`` times each timed alone; the statistic."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        call()
    clock = time.perf_counter
    times = np.empty(repeats)
    for i in range(repeats):
        start = clock()
        call()
        times[i] = clock() - start
    return summarise(times, warmup)
