"""Sample efficiency: hypervolume of 60 trials of the predictor-ranked sampler vs random search with 200.

Goal (issue 12 item 5): the feasible front of ``--sampler ranked`` after 60 trained trials has at least the
hypervolume of random search after 200 trials, on two objectives:

- ``proxy`` — training-free: SynFlow (max) vs LUT latency (min), ``vision`` on ``stm32f746``, 12 ms budget,
  5 seeds. The ranked sampler's own proxy is then NASWOT (:func:`workbench.search.ranking.proxy_for`): it never
  computes the objective to rank candidates, its Gaussian process learns SynFlow from the trials.
- ``train`` — real training: held-out accuracy on the built-in ``digits`` data (max) vs LUT latency (min),
  3 seeds, **reduced**: ``--epochs 2`` and a benchmark-local copy of the ``vision`` space with the input
  resolution fixed to 24 (``vision-r24``): ~360 trainings, 14 minutes on the shared 2-core machine
  (``--long-random-train`` adds ~430 more).

Every trial goes through the search's own objective (:func:`workbench.search.objective.objective`: the same
sampling, costing, constraints and training as ``workbench search``) in an in-memory Optuna study.
"ranked" runs until 60 *trained* trials (what ``workbench search --trials 60`` counts); random search gets
200 *draws* (infeasible ones included, as ``bench_search_quality.py`` counts) and, in the ``proxy`` part
(``train`` with ``--long-random-train``), continuing the same study to 200 *trained* trials (what
``--trials 200`` counts now) — the table shows both. Hypervolumes
are normalised per part over every run's points (metric to [0, 1] above the least seen, latency as a
fraction of the largest), as in ``bench_search_quality.py``.

    python benchmarks/bench_sample_efficiency.py [--parts proxy train] [--samplers ranked random]
                                                 [--proxy-seeds 5] [--train-seeds 3] [--long-random-train]
                                                 [--rows rows.jsonl] [--rescore]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import _report  # the page writer; also puts the repository root first on sys.path
import optuna
import yaml

from workbench.study.compare import AXES
from workbench.study.objectives import hypervolume
from workbench._infra.process_settings import torch_threads
from workbench.search import SearchConfig, is_trained, make_sampler
from workbench.search.objective import evaluate, objective
from workbench.model.space import load_space, space_from_text

PAGE = _report.Page(__file__)

RANKED_TRIALS, RANDOM_TRIALS = 60, 200


def local_space(resolution: int):
    """The ``vision`` space with one input resolution (a benchmark-local copy; the shipped file is untouched)."""
    shipped = load_space("vision")
    data = yaml.safe_load(shipped.text)
    data["name"] = f"vision-r{resolution}"
    data["input"]["resolution"] = resolution
    return space_from_text(yaml.safe_dump(data, sort_keys=False), f"benchmark copy of {shipped.path}")


def part_config(part: str) -> SearchConfig:
    if part == "proxy":
        return SearchConfig.load("vision", "stm32f746", "digits", latency_budget_ms=12.0, evaluator="synflow")
    return SearchConfig.load(local_space(24), "stm32f746", "digits", latency_budget_ms=12.0, evaluator="train",
                             epochs=2)


def run(config: SearchConfig, sampler: str, seed: int, *, trained: int, draws: int | None, cache: dict,
        label: str) -> list[dict]:
    """One seeded study, run until it holds ``trained`` trained trials (or has ``draws`` trials). Returns
    every trial as {draw, trained, value, latency} (value None for an infeasible candidate)."""
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=make_sampler(sampler, seed, context=config.sampler_context(seed)))
    start = time.perf_counter()

    def cached(arch, config, trial_number):  # proxies are deterministic: score each architecture once
        if config.evaluator == "train":
            return evaluate(arch, config, trial_number)
        if arch not in cache:
            cache[arch] = evaluate(arch, config, trial_number)
        return cache[arch]

    def stop(study, trial):
        n_trained = sum(map(is_trained, study.get_trials(deepcopy=False)))
        if is_trained(trial) and n_trained % 20 == 0:  # progress every 20 trained trials
            print(f"  {label}: {trial.number + 1} trials, {n_trained} trained  ({time.perf_counter() - start:.0f} s)",
                  file=sys.stderr, flush=True)
        if n_trained >= trained or (draws is not None and trial.number + 1 >= draws):
            study.stop()

    study.optimize(lambda trial: objective(trial, config, cached), n_trials=10_000, callbacks=[stop])
    return [{"draw": t.number, "trained": is_trained(t), "value": t.values[0] if is_trained(t) else None,
             "latency": t.values[1]} for t in study.trials]


def front_points(rows: list[dict], *, draws: int | None = None, trained: int | None = None) -> list[tuple]:
    """(value, latency) of the trained trials among the first ``draws`` trials / first ``trained`` trained."""
    points = []
    for row in rows:
        if draws is not None and row["draw"] >= draws:
            break
        if row["trained"]:
            points.append((row["value"], row["latency"]))
            if trained is not None and len(points) >= trained:
                break
    return points


def measure(parts, samplers, seeds: dict, long_random: dict, rows_file: Path | None) -> list[dict]:
    records = []
    for part in parts:
        config, cache = part_config(part), {}
        print(f"{part}: space {config.space.name} on {config.device.name}, budget {config.latency_budget_ms} ms, "
              f"evaluator {config.evaluator}" + (f", {config.epochs} epochs" if config.evaluator == "train" else ""),
              file=sys.stderr, flush=True)
        for seed in range(seeds[part]):
            for sampler, trained in (("ranked", RANKED_TRIALS), ("random", RANDOM_TRIALS)):
                if sampler not in samplers:
                    continue
                start = time.perf_counter()
                label = f"{part} seed {seed} {sampler}"
                draws = RANDOM_TRIALS if sampler == "random" and not long_random[part] else None
                rows = run(config, sampler, seed, trained=trained, draws=draws, cache=cache, label=label)
                record = {"part": part, "seed": seed, "sampler": sampler, "seconds": round(time.perf_counter() - start, 1),
                          "rows": rows}
                print(f"{label}: {len(rows)} trials, {sum(r['trained'] for r in rows)} trained, "
                      f"{record['seconds']:.0f} s", file=sys.stderr, flush=True)
                records.append(record)
                if rows_file is not None:
                    with rows_file.open("a") as f:
                        f.write(json.dumps(record) + "\n")
    return records


def table(records: list[dict]) -> None:
    for part in dict.fromkeys(r["part"] for r in records):
        runs = [r for r in records if r["part"] == part]
        every = [p for r in runs for p in front_points(r["rows"])]
        lo, hi, slowest = min(p[0] for p in every), max(p[0] for p in every), max(p[1] for p in every)

        def hv(points):
            return hypervolume([((v - lo) / (hi - lo), lat / slowest) for v, lat in points], (0.0, 1.0), AXES)

        by_seed = {}
        for r in runs:
            entry = by_seed.setdefault(r["seed"], {})
            if r["sampler"] == "ranked":
                entry["ranked"] = hv(front_points(r["rows"], trained=RANKED_TRIALS))
            else:
                entry["random_draws"] = hv(front_points(r["rows"], draws=RANDOM_TRIALS))
                if sum(row["trained"] for row in r["rows"]) >= RANDOM_TRIALS:
                    entry["random_trained"] = hv(front_points(r["rows"], trained=RANDOM_TRIALS))
        seeds = sorted(s for s, e in by_seed.items() if "ranked" in e and "random_draws" in e)
        if not seeds:
            print(f"\npart {part}: no seed has runs of both samplers (split runs: concatenate their --rows, then "
                  f"--rescore)")
            continue
        long_runs = all("random_trained" in by_seed[s] for s in seeds)
        print(f"\npart {part}: hypervolume (normalised), ranked = {RANKED_TRIALS} trained trials, random = "
              f"{RANDOM_TRIALS} draws" + (f" / {RANDOM_TRIALS} trained trials" if long_runs else ""))
        print(f"{'seed':>5} {'ranked-60':>10} {'random-200 draws':>17} {'ratio':>6}"
              + (f" {'random-200 trained':>19} {'ratio':>6}" if long_runs else ""))
        for seed in seeds + ["mean"]:
            if seed == "mean":
                e = {k: statistics.mean(by_seed[s][k] for s in seeds) for k in by_seed[seeds[0]]}
            else:
                e = by_seed[seed]
            line = f"{seed:>5} {e['ranked']:10.4f} {e['random_draws']:17.4f} {e['ranked'] / e['random_draws']:6.3f}"
            if long_runs:
                line += f" {e['random_trained']:19.4f} {e['ranked'] / e['random_trained']:6.3f}"
            print(line)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=["proxy", "train"], choices=("proxy", "train"))
    parser.add_argument("--samplers", nargs="+", default=["ranked", "random"], choices=("ranked", "random"),
                        help="run only these (runs split over processes: concatenate their --rows, then --rescore)")
    parser.add_argument("--proxy-seeds", type=int, default=5)
    parser.add_argument("--train-seeds", type=int, default=3)
    parser.add_argument("--long-random-train", action="store_true",
                        help="train part: random search to 200 trained trials too (about 3x the trainings)")
    parser.add_argument("--rows", type=Path, help="append each run's trials here (JSON lines)")
    parser.add_argument("--rescore", action="store_true", help="print the table from --rows without running")
    PAGE.add_flag(parser)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    if args.rescore:
        records = [json.loads(line) for line in args.rows.read_text().splitlines() if line.strip()]
        PAGE.note(f"re-scored from the runs in {args.rows}, which earlier commands measured (see the page); the "
                  f"machine and wall time here are the re-scoring's")
        records = [r for r in records if r["part"] in args.parts]
    else:
        with torch_threads(1):
            records = measure(args.parts, args.samplers, {"proxy": args.proxy_seeds, "train": args.train_seeds},
                              {"proxy": True, "train": args.long_random_train}, args.rows)
    table(records)
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    sys.exit(PAGE.run(main))
