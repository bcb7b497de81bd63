"""Do the built-in data sets separate the candidates of their search space, beyond training noise?

For each built-in data set, ``--archs`` different architectures are drawn from the space that takes
it (seeded; only candidates that fit ``--device``'s SRAM and flash, as a search would train them) and
each is trained ``--seeds`` times with different seeds, exactly as a search trial trains it
(``train_and_evaluate``, ``--epochs`` epochs, deployed accuracy: fake-quantised per the policy).
Printed per data set:

* samples (train/test) and classes; one test sample's weight in accuracy (1 / test samples);
* **noise**: the same architecture's seed-to-seed standard deviation (pooled over architectures:
  the root of the mean per-architecture sample variance);
* **spread**: the standard deviation of the architectures' mean accuracies, and their range;
* spread / noise: how many noise levels apart candidates are (> 1: the data rank candidates;
  about 1 or less: a front on these data is mostly noise). A set on which every run scores the
  same (noise 0 and spread 0) separates nothing. The noise is pooled, so one erratic candidate
  (4-bit weights after PTQ can swing by points between seeds) weighs in; the median
  per-candidate std is printed beside it;
* seed-pair tau: Kendall's tau between the candidates' rankings by seed i and by seed j, averaged
  over all pairs of seeds — how reproducibly ONE run per candidate (what a search trains) ranks
  them (1: always the same order; 0: no agreement; "-": a seed scored every candidate the same).

``--latency-only`` trains nothing: it says how each data set's candidates are costed on ``--device``.
A data set whose series length differs from the space's ``input`` (``basic-motions-1s``: 10 steps; the
LUTs hold the space's ops for 100) makes ops the LUT lacks: a modeled profile computes them from its
latency model (exact), a measured one (``host-cpu``) interpolates them (counted).

With ``--folds K`` the small sets (fewer than ``--cv-below`` test samples) are also scored by
``data.kfold`` cross-validation: each run is the mean test accuracy over K seeded folds.

    nice python benchmarks/bench_data_noise.py [--archs 5] [--seeds 3] [--epochs 3] [--seed 0]
                                               [--data NAME ...] [--device stm32f746] [--folds 5]
    python benchmarks/bench_data_noise.py --latency-only [--device stm32f746] [--archs 300]
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import _report  # the page writer; also puts the repository root first on sys.path
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.hardware.cost import estimate, violations  # noqa: E402
from workbench.model.data import kfold, list_datasets, load_dataset  # noqa: E402
from workbench.hardware.profiles import load_profile  # noqa: E402
from workbench.model.space import load_space  # noqa: E402
from workbench.model.train import train_and_evaluate  # noqa: E402

PAGE = _report.Page(__file__)

# the space each built-in feeds (its default data set or, for the old names, the same family's input)
SPACE_OF = {"digits": "vision", "basic-motions": "sensor-imu", "basic-motions-1s": "sensor-imu",
            "japanese-vowels": "audio-kws"}
MAX_DRAWS = 1000  # candidates drawn per data set while looking for ones that fit the device


def fitting_archs(space, dataset, profile, n: int, seed: int) -> list:
    """``n`` distinct seeded random architectures of ``space`` for ``dataset`` that fit ``profile``'s
    SRAM and flash and run on it (the candidates a search would train)."""
    found, seen = [], set()
    for arch in space.random_archs(MAX_DRAWS, seed=seed, precisions=profile.precisions,
                                   data=dataset.data_shape):
        if arch in seen:
            continue
        seen.add(arch)
        if all(v <= 0 for v in violations(estimate(arch, profile), profile).values()):
            found.append(arch)
            if len(found) == n:
                return found
    raise SystemExit(f"{space.name}: only {len(found)} of {MAX_DRAWS} candidates fit {profile.name}")


def run_accuracy(arch, splits, epochs: int, seed: int) -> float:
    """Deployed test accuracy of one training run (the mean over folds when ``splits`` are CV folds)."""
    return statistics.fmean(train_and_evaluate(arch, split, epochs=epochs, seed=seed).accuracy for split in splits)


def noise_row(name: str, dataset, archs, splits, args, label: str) -> dict:
    per_arch = []
    for i, arch in enumerate(archs, 1):
        t0 = time.perf_counter()
        accs = [run_accuracy(arch, splits, args.epochs, seed) for seed in range(args.seeds)]
        per_arch.append(accs)
        print(f"  [{label} {i}/{len(archs)}] {arch.summary():58s} "
              f"{' '.join(f'{a:.4f}' for a in accs)}  ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
    means = [statistics.fmean(a) for a in per_arch]
    noise = statistics.fmean(statistics.variance(a) for a in per_arch) ** 0.5
    spread = statistics.stdev(means)
    test = sum(len(s.x_test) for s in splits)
    return {"data": name if label == "split" else f"{name} ({label})", "train": len(splits[0].x_train), "test": test,
            "classes": dataset.classes, "step": 1 / test, "low": min(means), "high": max(means),
            "spread": spread, "noise": noise, "median_noise": statistics.median(statistics.stdev(a) for a in per_arch),
            "ratio": spread / noise if noise > 0 else float("inf") if spread else 0.0, "tau": rank_agreement(per_arch)}


def rank_agreement(per_arch: list[list[float]]) -> float:
    """Mean Kendall tau between the candidates' rankings by two different seeds, over every pair of seeds:
    how well ONE training run per candidate (what a search does) ranks them. NaN when a seed ties them all."""
    by_seed = list(zip(*per_arch))
    taus = [kendalltau(by_seed[i], by_seed[j]).statistic for i in range(len(by_seed)) for j in range(i + 1, len(by_seed))]
    return float("nan") if any(math.isnan(t) for t in taus) else statistics.fmean(taus)


def latency_row(name: str, space, dataset, profile, n: int, seed: int) -> str:
    """How ``n`` random candidates for ``dataset`` are costed on ``profile``: the share of their ops that
    are not in its LUT, and the share that were interpolated (a modeled profile computes the missing ones
    from its latency model instead; a measured LUT interpolates them)."""
    ops = missing = interpolated = 0
    for arch in space.random_archs(n, seed=seed, precisions=profile.precisions, data=dataset.data_shape):
        cost = estimate(arch, profile)
        ops, interpolated = ops + cost.n_ops, interpolated + cost.interpolated_ops
        missing += sum(op.key not in profile.latency.lut.entries for op in arch.ops)
    return f"{name:<18} {space.name:<11} {dataset.shape!s:<12} {missing / ops * 100:>10.1f} % {interpolated / ops * 100:>10.1f} %"


def print_table(rows: list[dict]) -> None:
    print(f"{'data set':<26} {'train/test':>11} {'classes':>7} {'1 sample':>8}  {'arch means':>15}  "
          f"{'spread (std)':>12} {'noise (std)':>11} {'median':>7} {'spread/noise':>12} {'seed-pair tau':>13}")
    for r in rows:
        ratio = "-" if r["ratio"] == 0 and r["spread"] == 0 else ("inf" if r["ratio"] == float("inf") else f"{r['ratio']:.1f}")
        tau = "-" if math.isnan(r["tau"]) else f"{r['tau']:.2f}"
        print(f"{r['data']:<26} {r['train']:>5}/{r['test']:<5} {r['classes']:>7} {r['step']:>8.4f}  "
              f"{r['low']:.4f}..{r['high']:.4f}  {r['spread']:>12.4f} {r['noise']:>11.4f} {r['median_noise']:>7.4f} "
              f"{ratio:>12} {tau:>13}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--archs", type=int, default=5, help="architectures per data set (default %(default)s)")
    p.add_argument("--seeds", type=int, default=3, help="training seeds per architecture (default %(default)s)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per run, as a search trial (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the architecture draw (default %(default)s)")
    p.add_argument("--device", default="stm32f746", help="candidates must fit this device (default %(default)s)")
    p.add_argument("--data", nargs="+", default=[n for n, _ in list_datasets()], choices=list(SPACE_OF),
                   help="data sets (default: every built-in)")
    p.add_argument("--folds", type=int, default=0, help="also cross-validate small sets with K folds (0: no)")
    p.add_argument("--cv-below", type=int, default=100, help="'small': fewer test samples than this")
    p.add_argument("--latency-only", action="store_true", help="train nothing: how candidates are costed")
    PAGE.add_flag(p)
    args = p.parse_args(argv)
    if args.archs < 2 or args.seeds < 2:
        p.error("--archs and --seeds must be at least 2 (a spread and a noise need two values each)")
    profile = load_profile(args.device)
    if args.latency_only:
        print(f"{args.archs} random candidates per data set on {profile.name} (draw seed {args.seed}): share of "
              f"their ops not in the LUT / interpolated")
        print(f"{'data set':<18} {'space':<11} {'sample':<12} {'not in LUT':>12} {'interpolated':>12}")
        for name in args.data:
            print(latency_row(name, load_space(SPACE_OF[name]), load_dataset(name), profile, args.archs, args.seed))
        return 0
    rows, start = [], time.perf_counter()
    for name in args.data:
        dataset, space = load_dataset(name), load_space(SPACE_OF[name])
        archs = fitting_archs(space, dataset, profile, args.archs, args.seed)
        print(f"[{name}] {dataset.summary()}; space {space.name}; {args.archs} archs x {args.seeds} seeds, "
              f"{args.epochs} epochs", file=sys.stderr, flush=True)
        rows.append(noise_row(name, dataset, archs, [dataset], args, "split"))
        if args.folds and len(dataset.x_test) < args.cv_below:
            rows.append(noise_row(name, dataset, archs, kfold(dataset, args.folds, args.seed), args,
                                  f"{args.folds}-fold CV"))
    print(f"\n{args.archs} architectures x {args.seeds} seeds per data set, {args.epochs} epochs, candidates "
          f"fitting {profile.name}, draw seed {args.seed}; {time.perf_counter() - start:.0f} s")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(PAGE.run(main))
