"""How fast is LUT scoring, and how much faster than measuring?

Per shipped space and device profile, on one core (the process is pinned to CPU 0 where the OS
allows it):

- ``estimate``: ``cost.estimate`` on archs sampled *and lowered* beforehand (op schedule cached on
  the Architecture, as it is once a search has touched an arch) — the pure scoring cost;
- ``lower+est``: archs sampled beforehand, lowering (``arch.ops``, keys, totals) + estimate timed;
- ``sample+lower+est``: the whole per-trial path — draw choices with a seeded RNG, lower, estimate.

Against that, ``--measure`` archs per space are measured end-to-end in onnxruntime with the
profiler's settings (``profiler.measure`` = warm-up + timed repeats, single thread). Two costs per
arch are reported: the full measurement (graph build, int8 quantisation, session creation,
warm-up and repeats — what replacing the LUT by measuring would cost) and a single inference run
(session already built: the lowest conceivable measuring cost). Speed-ups are against ``estimate``.

    python benchmarks/bench_scoring.py [--n 20000] [--measure 5] [--profiles host-cpu stm32f746]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.calibration import profiler  # noqa: E402
from workbench.model.arch import Architecture  # noqa: E402
from workbench.hardware.cost import estimate  # noqa: E402
from workbench.hardware.profiles import list_profiles, load_profile  # noqa: E402
from workbench.model.space import all_spaces  # noqa: E402


def fresh(archs):
    """Copies without cached lowering, so each timing starts cold."""
    return [Architecture(a.space, a.family, a.input_shape, a.classes, a.choices) for a in archs]


def rate(fn, items) -> float:
    """Items per second of ``fn`` over ``items`` (best of 3 passes on fresh copies where needed)."""
    best = float("inf")
    for _ in range(3):
        batch = items() if callable(items) else items
        t0 = time.perf_counter()
        for it in batch:
            fn(it)
        best = min(best, time.perf_counter() - t0)
    n = len(items() if callable(items) else items)
    return n / best


def scoring_rates(space, profile, n, seed):
    precisions = list(profile.precisions)
    archs = space.random_archs(n, seed=seed, precisions=precisions)
    for a in archs:
        estimate(a, profile)  # lower + warm the cached properties
    est = rate(lambda a: estimate(a, profile), archs)
    lower = rate(lambda a: estimate(a, profile), lambda: fresh(archs))
    t0 = time.perf_counter()
    for a in space.random_archs(n, seed=seed + 1, precisions=precisions):
        estimate(a, profile)
    full = n / (time.perf_counter() - t0)
    return est, lower, full


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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="architectures per space for the scoring rates")
    ap.add_argument("--measure", type=int, default=5, help="architectures per space measured in onnxruntime")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profiles", nargs="*", default=None, help="default: host-cpu and stm32f746 where shipped")
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    shipped = {p.name for p in list_profiles()}
    names = args.profiles or [p for p in ("host-cpu", "stm32f746") if p in shipped]
    spaces = all_spaces()
    meas = {s.name: measuring_cost(s, args.measure, args.seed, profiler.DEFAULT_WARMUP, profiler.DEFAULT_REPEATS)
            for s in spaces} if args.measure else {}
    print(f"scoring throughput, one core, {args.n} archs/space; measuring = onnxruntime host-cpu, "
          f"{args.measure} archs/space, warmup {profiler.DEFAULT_WARMUP} + {profiler.DEFAULT_REPEATS} runs, "
          f"incl. graph build/quantise/session creation")
    head = (f"{'profile':<11}{'space':<12}{'estimate/s':>12}{'lower+est/s':>13}{'sample+lower+est/s':>20}"
            f"{'measure s/arch':>16}{'x vs measure':>14}{'1 run ms':>10}{'x vs 1 run':>12}")
    print(head)
    print("-" * len(head))
    for name in names:
        profile = load_profile(name)
        for space in spaces:
            est, lower, full = scoring_rates(space, profile, args.n, args.seed)
            m_full, m_one = meas.get(space.name, (float("nan"), float("nan")))
            print(f"{name:<11}{space.name:<12}{est:>12,.0f}{lower:>13,.0f}{full:>20,.0f}"
                  f"{m_full:>16.3f}{m_full * est:>14,.0f}{m_one * 1e3:>10.3f}{m_one * est:>12,.1f}")


if __name__ == "__main__":
    main()
