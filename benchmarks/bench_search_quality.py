"""Search quality: hypervolume of the front found by TPE and NSGA-II vs random search.

Objective without training, so it runs in seconds: a training-free accuracy proxy (SynFlow by
default, or NASWOT; maximised) vs LUT latency on the target device (minimised), with the device's memory limits and
a latency budget as constraints through ``trial.set_constraint`` — the search's own objective
(:func:`workbench.search.objective.objective`: the same sampling, costing, constraints and values as
``workbench search``; infeasible candidates are not scored). Every sampler gets the same number of trials
and the same seeds; hypervolumes use one shared, normalised reference box per (space, device).

    python benchmarks/bench_search_quality.py [--trials 60] [--seeds 5] [--space vision] [--device stm32f746]
                                              [--proxy synflow|naswot]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import _report  # the page writer; also puts the repository root first on sys.path
import optuna

from workbench.study.compare import AXES
from workbench.study.objectives import hypervolume
from workbench.search import EVALUATORS, SearchConfig, make_sampler
from workbench.search.objective import evaluate, objective

PAGE = _report.Page(__file__)


def run_study(config, sampler_name, seed, trials, cache):
    """One seeded study of ``trials`` candidates judged by the search's objective; its feasible points."""
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=make_sampler(sampler_name, seed, context=config.sampler_context(seed)))

    def cached(arch, config, trial_number):  # proxies are deterministic: score each architecture once
        if arch not in cache:
            cache[arch] = evaluate(arch, config, trial_number)
        return cache[arch]

    study.optimize(lambda trial: objective(trial, config, cached), n_trials=trials)
    return [(t.values[0], t.values[1]) for t in study.trials if not t.user_attrs.get("rejected")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="vision")
    parser.add_argument("--device", default="stm32f746")
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--latency-budget", type=float, default=12.0)
    parser.add_argument("--proxy", default="synflow", choices=[e.name for e in EVALUATORS.where(trains=False)])
    PAGE.add_flag(parser)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = SearchConfig.load(args.space, args.device, latency_budget_ms=args.latency_budget, evaluator=args.proxy)
    space, device = config.space, config.device
    cache: dict = {}
    start = time.perf_counter()
    points = {s: [run_study(config, s, seed, args.trials, cache) for seed in range(args.seeds)]
              for s in ("random", "tpe", "nsga2")}
    every = [p for runs in points.values() for run in runs for p in run]
    lo_s, hi_s = min(p[0] for p in every), max(p[0] for p in every)
    hi_l = max(p[1] for p in every)

    def hv(run):  # normalise: score to [0, 1] above the worst seen, latency as a fraction of the worst
        return hypervolume([((s - lo_s) / (hi_s - lo_s), lat / hi_l) for s, lat in run], (0.0, 1.0), AXES)

    print(f"space={space.name} device={device.name} trials={args.trials} seeds={args.seeds} "
          f"budget={args.latency_budget} ms  objective: {args.proxy} (max) vs LUT latency (min)  "
          f"[{time.perf_counter() - start:.1f} s, {len(cache)} distinct archs scored]")
    print(f"{'sampler':<8} {'HV mean':>8} {'HV std':>7} {'vs random':>9} {'feasible/trial':>15}")
    base = statistics.mean(hv(r) for r in points["random"])
    for name, runs in points.items():
        hvs = [hv(r) for r in runs]
        feasible = statistics.mean(len(r) for r in runs) / args.trials
        print(f"{name:<8} {statistics.mean(hvs):8.4f} {statistics.stdev(hvs) if len(hvs) > 1 else 0:7.4f} "
              f"{statistics.mean(hvs) / base:9.3f} {feasible:15.2f}")


if __name__ == "__main__":
    sys.exit(PAGE.run(main))
