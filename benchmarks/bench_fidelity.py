"""How well does the host-cpu LUT predict whole-model latency?

For ``--n`` random architectures per shipped space (precisions fp32 and int8, fixed seed), compare
``cost.estimate(arch, host-cpu).latency_ms`` (LUT entries + per-inference overhead) with the end-to-end latency
of the whole architecture as one onnxruntime graph (``profiler.arch_graph``, quantised to QDQ int8
with uint8 I/O for int8 archs), timed with exactly the profiler's session settings.

Two predictions are scored: the plain sum of LUT entries, and ``cost.estimate``'s latency, which adds
the profile's ``per_inference_ms`` (the ``session.run`` overhead a model pays once; the profiler
removes the one-op-graph overhead from every entry).

A measured LUT belongs to the CPU it was measured on (``measured_on`` in profile.yaml). With
``--refresh auto`` (the default) a profile measured on another machine is first refreshed *in a
temporary copy* with ``workbench calibrate --quick`` (whole models timed here, seed 1000, disjoint from
the benchmark's seed 0), so the benchmark measures the predictor, not the difference between two CPUs;
``--refresh always`` does so even on the same machine, ``never`` scores the profile as shipped.

``--record`` writes the result per precision into the profile's ``calibration.json`` (``fidelity``: the
share within ±10 %, the median error, the date, this machine and the hash of the LUT it checked), where
:mod:`workbench.hardware.trust` reads it for every latency the profile prints — as long as the LUT is unchanged.
Only a profile scored as shipped is recorded (a refresh happens in a temporary copy).

    python benchmarks/bench_fidelity.py [--n 100] [--seed 0] [--profile host-cpu] [--repeats 300]
                                        [--refresh auto|always|never] [--record]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import _report  # the page writer; also puts the repository root first on sys.path
import numpy as np
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.calibration import calibrate, profiler
from workbench.hardware import machine  # noqa: E402
from workbench.hardware.cost import estimate  # noqa: E402
from workbench.hardware.profiles import load_profile, parse_profile  # noqa: E402
from workbench._infra.yamlio import load_yaml_mapping  # noqa: E402
from workbench.model.space import all_spaces  # noqa: E402

PAGE = _report.Page(__file__)


def refreshed(profile, mode: str, tmp: Path, models: int, strength: float):
    """The profile to score: as shipped, or refreshed for this machine in a temporary copy (see docstring)."""
    notice = machine.mismatch_notice(profile)
    if mode == "never" or (mode == "auto" and notice is None):
        return profile, "as shipped"
    copy = tmp / Path(profile.path).parent.name
    shutil.copytree(Path(profile.path).parent, copy)
    t0 = time.perf_counter()
    report = calibrate.calibrate_quick(copy, models, strength)
    summary = report.summary()
    print(f"[refreshed {profile.name} for this machine in a temporary copy: {summary['measurements']} whole models, "
          f"fit |e| {summary['fit_error_pct']['mean_abs']} %, {time.perf_counter() - t0:.0f} s]", file=sys.stderr)
    fresh = parse_profile(load_yaml_mapping(copy / "profile.yaml"), copy / "profile.yaml")
    return fresh, (f"refreshed here by `workbench calibrate --quick` ({summary['measurements']} models, seed "
                   f"{calibrate.QUICK_SEED})")


def measure_space(space, profile, n, seed, warmup, repeats):
    """(predicted ms, measured ms, precision) for n random archs of one space (distinct ones: a fixed
    reference space such as mlperf-kws yields one architecture per precision)."""
    rows, seen = [], set()
    for arch in space.random_archs(n, seed=seed, precisions=list(profile.precisions)):
        if arch.op_keys in seen:
            continue
        seen.add(arch.op_keys)
        pred = estimate(arch, profile).latency_ms
        meas = profiler.measure(profiler.deployed_graph(arch), None, warmup, repeats)[0]
        rows.append((pred, meas, arch.precision))
    return rows


def scores(pred: np.ndarray, meas: np.ndarray) -> tuple[float, float, float]:
    """(share within ±10 %, median |% error|, Kendall τ)."""
    err = (pred - meas) / meas
    tau = kendalltau(pred, meas).statistic if len(pred) > 1 else float("nan")
    return float(np.mean(np.abs(err) <= 0.10)), float(np.median(np.abs(err)) * 100), float(tau)


def print_table(groups: dict[str, list], overhead_ms: float) -> None:
    head = f"{'group':<18}{'n':>5}{'meas med ms':>13} | {'LUT sum: ±10%':>14}{'med|err|%':>10}{'tau':>7} | " \
           f"{'estimate: ±10%':>16}{'med|err|%':>10}{'tau':>7}"
    print(head)
    print("-" * len(head))
    for name, rows in groups.items():
        pred = np.array([r[0] for r in rows])
        meas = np.array([r[1] for r in rows])
        a, b = scores(pred - overhead_ms, meas), scores(pred, meas)  # estimate = LUT sum + overhead
        print(f"{name:<18}{len(rows):>5}{np.median(meas):>13.4f} | {a[0]:>14.0%}{a[1]:>10.1f}{a[2]:>7.3f} | "
              f"{b[0]:>16.0%}{b[1]:>10.1f}{b[2]:>7.3f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="architectures per space")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", default="host-cpu")
    ap.add_argument("--warmup", type=int, default=profiler.DEFAULT_WARMUP)
    ap.add_argument("--repeats", type=int, default=300, help="timed runs per architecture")
    ap.add_argument("--refresh", default="auto", choices=("auto", "always", "never"),
                    help="refresh a LUT measured on another machine first (default %(default)s)")
    ap.add_argument("--refresh-models", type=int, default=calibrate.QUICK_MODELS,
                    help="refresh: random models per space and precision (default %(default)s)")
    ap.add_argument("--refresh-strength", type=float, default=calibrate.QUICK_STRENGTH,
                    help="refresh: pull towards the LUT as measured (default %(default)s)")
    ap.add_argument("--record", action="store_true",
                    help="write the result into the profile's calibration.json (fidelity), where trust lines read it")
    PAGE.add_flag(ap)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="wb-fidelity-") as tmp:
        profile, how = refreshed(load_profile(args.profile), args.refresh, Path(tmp), args.refresh_models,
                                 args.refresh_strength)
        groups = run(args, profile, how)
    if args.record:
        if how != "as shipped":
            print("not recorded: the profile was refreshed in a temporary copy, so the result does not describe "
                  "the shipped LUT (refresh it for this machine first, then --record)", file=sys.stderr)
        else:
            record(profile, groups, args)


def record(profile, groups: dict[str, list], args) -> None:
    """The per-precision summary into the profile's calibration.json (``fidelity``; read by workbench.hardware.trust)."""
    import datetime
    import json

    rows = groups["overall"]
    precisions = {}
    for prec in profile.precisions:
        sub = [r for r in rows if r[2] == prec]
        if sub:
            within, median, _ = scores(np.array([r[0] for r in sub]), np.array([r[1] for r in sub]))
            precisions[prec] = {"models": len(sub), "within_10pct": round(within, 4), "median_abs_pct": round(median, 2)}
    path = Path(profile.path).parent / "calibration.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data["fidelity"] = {"command": f"python benchmarks/bench_fidelity.py --n {args.n} --seed {args.seed} --repeats "
                                   f"{args.repeats} --record",
                        "date": datetime.date.today().isoformat(), "machine": machine.this_machine(),
                        "lut_sha256": profile.latency.lut.entries_sha256, "precisions": precisions}
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"recorded in {path}", file=sys.stderr)


def run(args, profile, how: str) -> dict[str, list]:
    t0 = time.perf_counter()
    overhead = profile.per_inference_ms
    groups: dict[str, list] = {}
    for space in all_spaces():
        rows = measure_space(space, profile, args.n, args.seed, args.warmup, args.repeats)
        groups[space.name] = rows
        for prec in profile.precisions:
            sub = [r for r in rows if r[2] == prec]
            if sub:
                groups[f"  {space.name}/{prec}"] = sub
        print(f"[{space.name}: {len(rows)} archs measured, {time.perf_counter() - t0:.0f} s]", file=sys.stderr)
    groups["overall"] = [r for name, rows in groups.items() if not name.startswith(" ") for r in rows]
    print(f"LUT fidelity: {profile.name} ({len(profile.latency.lut.entries)} LUT entries) vs end-to-end onnxruntime, "
          f"{args.n} archs/space, seed {args.seed}, warmup {args.warmup}, repeats {args.repeats}, "
          f"fastest {profiler.KEEP_FASTEST:.0%} kept; per-inference overhead {overhead * 1e3:.2f} us (profile.yaml); "
          f"{machine.this_machine()['cpu']}; profile {how}")
    print_table(groups, overhead)
    print(f"total {time.perf_counter() - t0:.0f} s")
    return groups


if __name__ == "__main__":
    sys.exit(PAGE.run(main))
