"""Which models should a board owner time? The calibration kit against random picks and the MLPerf Tiny four.

A *synthetic board* is a modeled profile whose true constants are the shipped ones, each multiplied by its
own factor exp(N(0, --spread)) — a runtime the prior does not describe, per layer type and term. Each set of
models is "timed" on it (the true constants' latency, times 1 + N(0, --noise) measurement noise), the
profile's shipped constants are fitted to those timings exactly as ``workbench calibrate`` does (same
prior, ``--strength``, unmeasured kernel families kept), and the fitted profile then predicts held-out
random architectures of every shipped space and of MLPs (the kit's candidate distribution, another seed).
Reported per selection: the median and 90th-percentile |error| over all held-out models, the share within
±10 %, the 90th percentile separately for the FC-dominated models (fully connected MACs > half of all MACs)
and the others, and the worst, across --boards boards. The truth has the model's own form, so this measures
how well each set of timings pins the constants down, not how well the form fits a real runtime.

    python benchmarks/bench_calibration_kit.py [--profile stm32f746 [stm32l4r5 ...]] [--boards 20] [--models 12]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _report  # the page writer; also puts the repository root first on sys.path
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.calibration.calibrate import ModeledTerms, fit  # noqa: E402
from workbench.calibration.kit import _fits, candidate_pool, select  # noqa: E402
from workbench.hardware.latency_model import load_constants  # noqa: E402
from workbench.hardware.profiles import load_profile  # noqa: E402
from workbench.model.space import load_space  # noqa: E402

PAGE = _report.Page(__file__)

MLPERF = ("mlperf-kws", "mlperf-vww", "mlperf-ic", "mlperf-ad")


def fc_dominated(arch) -> bool:
    fc = sum(op.macs for op in arch.ops if op.kind in ("linear", "linear_relu"))
    return fc > 0.5 * max(1, sum(op.macs for op in arch.ops))


def mlperf_archs(precision: str) -> list:
    from workbench.calibration.calibrate import _FixedChoices

    return [load_space(n).sample(_FixedChoices(n, precision)) for n in MLPERF]


def fitted_errors(consts, clock_mhz, truth, chosen, test_rows, strength, rng, noise) -> np.ndarray:
    """|predicted / true - 1| on the test rows after fitting the prior to ``chosen``'s noisy true latencies."""
    terms = ModeledTerms(consts, clock_mhz)  # fresh: keep_unmeasured_kernels marks it for these models
    x = np.array([terms.row(a.ops) for a in chosen])
    y = (x @ truth) * (1 + rng.normal(0, noise, len(chosen)))
    terms.keep_unmeasured_kernels(x)
    constants = fit(x, y, terms.prior, terms.lower, strength, terms.unscaled)
    return np.abs((test_rows @ constants) / (test_rows @ truth) - 1)


def compare(name: str, args) -> None:
    """One profile's table: every selection fitted on the same synthetic boards, scored on the same held-out
    models."""
    profile = load_profile(name)
    consts = load_constants(profile.latency.model.path)
    terms = ModeledTerms(consts, profile.clock_mhz)
    kit = [m.arch for m in select(profile, args.models, args.precision)]
    kit_small = [m.arch for m in select(profile, len(MLPERF), args.precision)]
    pool = [a for a in candidate_pool(args.precision, seed=0) if _fits(a, profile)]
    test = [a for a in candidate_pool(args.precision, seed=1) if _fits(a, profile)]
    test = test[:args.test]
    test_rows = np.array([terms.row(a.ops) for a in test])
    fc_mask = np.array([fc_dominated(a) for a in test])
    selections = {f"kit ({args.models})": lambda rng: kit,
                  f"random ({args.models})": lambda rng: [pool[i] for i in rng.choice(len(pool), args.models, False)],
                  f"kit ({len(MLPERF)})": lambda rng: kit_small,
                  f"MLPerf Tiny ({len(MLPERF)})": lambda rng: mlperf_archs(args.precision)}
    results = {label: [] for label in selections}
    for board in range(args.boards):
        rng = np.random.default_rng(board)
        truth = terms.prior * np.exp(rng.normal(0, args.spread, len(terms.prior)))
        for label, pick in selections.items():
            chosen = pick(np.random.default_rng(1000 + board))
            results[label].append(fitted_errors(consts, profile.clock_mhz, truth, chosen, test_rows, args.strength,
                                               np.random.default_rng(2000 + board), args.noise))
    print(f"{name} {args.precision}: {args.boards} synthetic boards (true constants = shipped x "
          f"exp(N(0, {args.spread:g}))), timing noise {args.noise:.0%}, strength {args.strength:g}; "
          f"{len(test)} held-out models ({int(fc_mask.sum())} FC-dominated)")
    print(f"{'models timed':<18}{'median |e|':>11}{'p90 |e|':>9}{'within 10%':>11}{'other p90':>11}"
          f"{'FC p90':>8}{'worst':>8}")
    for label, runs in results.items():
        e = np.concatenate(runs)
        fc = np.concatenate([r[fc_mask] for r in runs])
        other = np.concatenate([r[~fc_mask] for r in runs])
        print(f"{label:<18}{np.median(e):>11.1%}{np.quantile(e, 0.9):>9.1%}{(e <= 0.10).mean():>11.0%}"
              f"{np.quantile(other, 0.9):>11.1%}{np.quantile(fc, 0.9):>8.1%}{e.max():>8.0%}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", nargs="+", default=["stm32f746"], help="one table per profile")
    ap.add_argument("--precision", default="int8")
    ap.add_argument("--boards", type=int, default=20)
    ap.add_argument("--models", type=int, default=12)
    ap.add_argument("--spread", type=float, default=0.5, help="sigma of log(true / prior) per constant")
    ap.add_argument("--noise", type=float, default=0.03, help="relative timing noise")
    ap.add_argument("--strength", type=float, default=0.1)
    ap.add_argument("--test", type=int, default=300)
    PAGE.add_flag(ap)
    args = ap.parse_args(argv)
    for name in args.profile:
        compare(name, args)
    return 0


if __name__ == "__main__":
    sys.exit(PAGE.run(main))
