"""How fast is LUT scoring, for new and already-seen architectures, and how much faster than measuring?

Per shipped space and device profile, on one core (the process is pinned to CPU 0 where the OS
allows it; rates in the process's CPU time, so other processes on the machine do not count), in a
search's steady state: ``--n`` architectures drawn and scored first (the memos of
segments, their latency and their memory pieces are warm, as after the first trials of a search), then:

- ``seen/s``: ``cost.estimate`` on those architectures again (memo hits: a repeated trial, a re-rank);
- ``new/s``: ``cost.estimate`` on architectures drawn with another seed that were never scored —
  unlowered (choices only), so their lowering to segments, the latency sum over segments and the TFLite
  Micro memory model composed from per-segment pieces (:mod:`workbench.hardware.memory_pieces`) are timed;
  those lowering like a scored architecture (or like each other) are left out;
- ``before/s``: the same on up to 2,000 of them with the whole-graph memory model
  (:func:`workbench.hardware.memory.reference_memory`: lower the graph, plan it, sum it) — what a new
  architecture cost before the pieces;
- ``sample/s``: drawing an architecture from the space with a seeded RNG (a search's sampler, not scoring).

Every architecture timed (seen and new) is checked against the reference computation, nothing memoised:
a fresh estimator with the whole-graph memory model. Peak SRAM, flash, their parts and the latency must be
identical; ``same`` counts them (the benchmark fails if one differs).

Against that, ``--measure`` archs per space are measured end-to-end in onnxruntime with the
profiler's settings (``profiler.measure`` = warm-up + timed repeats, single thread). Two costs per
arch are reported: the full measurement (graph build, int8 quantisation, session creation,
warm-up and repeats — what replacing the LUT by measuring would cost) and a single inference run
(session already built: the lowest conceivable measuring cost). Speed-ups are against ``new/s``.

    python benchmarks/bench_scoring.py [--n 20000] [--measure 5] [--profiles host-cpu stm32f746] [--spaces vision]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import _report  # the page writer; also puts the repository root first on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.calibration import profiler  # noqa: E402
from workbench.hardware.cost import CostEstimator, estimator_for  # noqa: E402
from workbench.hardware.memory import reference_memory  # noqa: E402
from workbench.hardware.profiles import list_profiles, load_profile  # noqa: E402
from workbench.model.arch import Architecture  # noqa: E402
from workbench.model.space import all_spaces  # noqa: E402

PAGE = _report.Page(__file__)

BEFORE_MAX = 2000  # the whole-graph model costs ~0.1-0.3 ms per architecture: a sample is enough


def unlowered(archs):
    """Copies holding only their choices: lowering happens in the timed call, as for a newly drawn arch."""
    return [Architecture(a.space, a.family, a.input_shape, a.classes, a.choices) for a in archs]


def per_second(fn, items, repeats: int = 1) -> float:
    """Items per second of ``fn`` over ``items`` (best of ``repeats`` passes), in this process's CPU time: what
    one core does, whoever else shares the machine."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        for it in items:
            fn(it)
        best = min(best, time.process_time() - t0)
    return len(items) / best if items else float("nan")


def never_scored(drawn, scored):
    """The drawn architectures whose schedule differs from every scored one's and from each other's (two
    choices can lower alike — the quantisation mode changes no op —, and the estimator keeps what it
    computed per schedule)."""
    seen = {(a.segments, a.input_shape) for a in scored}
    fresh = []
    for a in drawn:
        key = (a.segments, a.input_shape)
        if key not in seen:
            seen.add(key)
            fresh.append(a)
    return fresh


def same_as_reference(archs, profile, estimator) -> int:
    """How many of ``archs`` the estimator scores exactly as a fresh estimator with the whole-graph memory
    model and no memo does (every field: latency, peak SRAM, flash and their parts)."""
    return sum(estimator.estimate(a) == CostEstimator(profile, reference_memory).estimate(a) for a in archs)


def scoring_rates(space, profile, n, seed) -> dict:
    precisions = list(profile.precisions)
    estimator = estimator_for(profile)
    t0 = time.process_time()
    scored = space.random_archs(n, seed=seed, precisions=precisions)
    sample = n / (time.process_time() - t0)
    for a in scored:  # the search so far: segments, their latency and memory pieces are warm
        estimator.estimate(a)
    seen = per_second(estimator.estimate, scored, repeats=3)
    new_archs = unlowered(never_scored(space.random_archs(n, seed=seed + 1, precisions=precisions), scored))
    new = per_second(estimator.estimate, new_archs)
    before_estimator = CostEstimator(profile)
    for a in scored:  # as warm as the other estimator, then the whole-graph memory model for new archs
        before_estimator.estimate(a)
    before_estimator.memory_model = reference_memory
    before = per_second(before_estimator.estimate, unlowered(new_archs[:BEFORE_MAX]))
    checked = scored + new_archs
    same = same_as_reference(checked, profile, estimator)
    return {"seen": seen, "new": new, "before": before, "sample": sample, "n_new": len(new_archs),
            "same": same, "checked": len(checked)}


def measuring_cost(space, n, seed, warmup, repeats):
    """(seconds per arch for a full measurement, seconds per single inference run), mean over n archs."""
    full, single = 0.0, 0.0
    for arch in space.random_archs(n, seed=seed, precisions=list(profiler.HOST_PRECISIONS)):
        t0 = time.perf_counter()
        model = profiler.deployed_graph(arch)
        profiler.measure(model, None, warmup, repeats)
        full += time.perf_counter() - t0
        sess = profiler.make_session(model)
        single += profiler.time_session(sess, profiler.input_for(sess), 3, 21)[0] / 1e3  # robust single-run time
    return full / n, single / n


def cell(value: float, width: int, spec: str, unit: str = "") -> str:
    """A table cell; '-' where there is nothing to show (NaN)."""
    return f"{'-':>{width}}" if value != value else f"{format(value, spec) + unit:>{width}}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="architectures per space for the scoring rates")
    ap.add_argument("--measure", type=int, default=5, help="architectures per space measured in onnxruntime")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profiles", nargs="*", default=None, help="default: host-cpu and stm32f746 where shipped")
    ap.add_argument("--spaces", nargs="*", default=None, help="default: every shipped space")
    PAGE.add_flag(ap)
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    shipped = {p.name for p in list_profiles()}
    names = args.profiles or [p for p in ("host-cpu", "stm32f746") if p in shipped]
    spaces = [s for s in all_spaces() if args.spaces is None or s.name in args.spaces]
    meas = {s.name: measuring_cost(s, args.measure, args.seed, profiler.DEFAULT_WARMUP, profiler.DEFAULT_REPEATS)
            for s in spaces} if args.measure else {}
    print(f"scoring throughput, one core, {args.n} archs/space scored first, then up to {args.n} new ones; "
          f"before = whole-graph memory model on up to {BEFORE_MAX} new ones; measuring = onnxruntime host-cpu, "
          f"{args.measure} archs/space, warmup {profiler.DEFAULT_WARMUP} + {profiler.DEFAULT_REPEATS} runs, "
          f"incl. graph build/quantise/session creation")
    head = (f"{'profile':<11}{'space':<12}{'seen/s':>10}{'new/s':>9}{'before/s':>10}{'new/before':>11}"
            f"{'new/seen':>9}{'sample/s':>10}{'same':>14}{'measure s/arch':>16}{'x vs measure':>14}"
            f"{'1 run ms':>10}{'x vs 1 run':>12}")
    print(head)
    print("-" * len(head))
    failed = 0
    for name in names:
        profile = load_profile(name)
        for space in spaces:
            r = scoring_rates(space, profile, args.n, args.seed)
            m_full, m_one = meas.get(space.name, (float("nan"), float("nan")))
            new = r["new"] if r["n_new"] else float("nan")  # nan: printed as '-'
            same = f"{r['same']:,}/{r['checked']:,}"
            print(f"{name:<11}{space.name:<12}{r['seen']:>10,.0f}{cell(new, 9, ',.0f')}"
                  f"{cell(r['before'], 10, ',.0f')}{cell(new / r['before'], 11, '.1f', 'x')}"
                  f"{cell(new / r['seen'], 9, '.2f', 'x')}{r['sample']:>10,.0f}"
                  f"{same:>14}{m_full:>16.3f}{cell(m_full * new, 14, ',.0f')}{m_one * 1e3:>10.3f}"
                  f"{cell(m_one * new, 12, ',.1f')}")
            failed += r["checked"] - r["same"]
    if failed:
        sys.exit(f"{failed} architectures scored differently from the reference computation")
    print("'-': the space has no architecture that was not scored first (fixed choices)")


if __name__ == "__main__":
    sys.exit(PAGE.run(main))
