"""``--scheme sparse:auto``: choose the sparse update that gains most within a training-memory budget.

MCUNetV3 (Lin et al., "On-Device Training Under 256KB Memory", NeurIPS 2022) picks its sparse update by
*contribution analysis*: measure, on the target data, the accuracy gained by updating the biases of the last k
layers (for each k), and by updating one layer's weights on a ratio of its channels (for each layer and
ratio); assume the gains add up; pick the combination with the largest total whose training memory fits the
budget. This module does that for one trial and one task, on the deployed graph in the chosen arithmetic:

* the task's adaptation samples are split once (fixed seed): ``1 - HOLDOUT`` to fine-tune each candidate,
  ``HOLDOUT`` to measure its gain, so the choice never sees the held-out samples ``workbench adapt`` reports;
* candidates: ``bias:k`` for k in ``BIAS_BLOCKS`` below the network's n weight layers and k = n (a deep
  network's early layers matter when the shift is at the input: inverted contrast flips the first layer's
  features, which no late bias undoes), and ``sparse:w=j@r`` for each of the last
  ``MAX_WEIGHT_LAYERS`` layers j and each ratio r in ``RATIOS`` (a chosen layer's bias trains too);
* the combination: for every k (0 included), the weight items are added best gain first while the scheme's peak
  training SRAM (:func:`workbench.hardware.training.training_cost`, the compiled int8 count for integer
  arithmetics) stays within the budget, each layer once; the best total wins, the smaller memory on a tie.
  MCUNetV3 searches the combinations with an evolutionary search; with a few dozen measured items a greedy
  fill per k is enough here, and it is deterministic.

A budget no candidate fits — even the biases of the last layer alone — is one line naming the flag.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from workbench._infra.errors import WorkbenchError
from workbench.hardware.training import training_cost
from workbench.model.int_training import ARITHMETICS, accuracy, fine_tune
from workbench.model.train_graph import weight_layers
from workbench.model.update_schemes import UpdateScheme

RATIOS = (0.125, 0.25, 0.5, 1.0)
BIAS_BLOCKS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)  # k of the bias candidates (and the whole network's n)
MAX_WEIGHT_LAYERS = 6
HOLDOUT = 0.3  # share of the adaptation samples that measures the gains
SPLIT_SEED = 20221128  # one fixed split: the same samples judge every candidate


@dataclass
class Choice:
    """The chosen scheme, what the analysis measured, and what the choice costs."""

    scheme: UpdateScheme
    expected_gain: float  # the sum of the chosen items' measured gains (accuracy, 0..1)
    peak_bytes: int
    budget_bytes: int
    base_accuracy: float  # the deployed graph on the analysis' held-out share
    bias_gains: dict[int, float] = field(default_factory=dict)
    weight_gains: dict[tuple[int, float], float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """What ``workbench adapt`` prints about the choice."""
        best_bias = max(self.bias_gains.items(), key=lambda kv: kv[1], default=(0, 0.0))
        best_weight = max(self.weight_gains.items(), key=lambda kv: kv[1], default=((0, 0.0), 0.0))
        (layer, ratio), gain = best_weight
        return [f"sparse:auto chose {self.scheme.text}: expected gain {100 * self.expected_gain:+.1f} points, "
                f"training SRAM {self.peak_bytes / 1024:.1f} KB within the {self.budget_bytes / 1024:.1f} KB budget",
                f"  contribution analysis ({len(self.bias_gains) + len(self.weight_gains)} candidates, gains on "
                f"{HOLDOUT:.0%} of the adaptation samples): best bias block bias:{best_bias[0]} "
                f"{100 * best_bias[1]:+.1f}p, best single layer w={layer}@{ratio:g} {100 * gain:+.1f}p"]

    def to_dict(self) -> dict:
        return {"scheme": self.scheme.text, "expected_gain": self.expected_gain, "peak_sram_bytes": self.peak_bytes,
                "budget_bytes": self.budget_bytes, "base_accuracy": self.base_accuracy,
                "bias_gains": {str(k): g for k, g in self.bias_gains.items()},
                "weight_gains": {f"{layer}@{ratio:g}": g for (layer, ratio), g in self.weight_gains.items()}}


def analysis_split(x, y):
    """(x_fit, y_fit, x_judge, y_judge): the fixed split of the adaptation samples."""
    import torch  # heavy: torch

    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(SPLIT_SEED))
    cut = max(1, int(round(len(x) * HOLDOUT)))
    judge, fit = order[:cut], order[cut:]
    return x[fit], y[fit], x[judge], y[judge]


def measure_contributions(graph, n_layers: int, x, y, *, arith: str, optimizer: str, seed: int,
                          log: Callable[[str], None]) -> tuple[float, dict, dict]:
    """(base accuracy, gain per bias block k, gain per (layer, ratio)) on the held-out share."""
    x_fit, y_fit, x_judge, y_judge = analysis_split(x, y)
    base = accuracy(graph, x_judge, y_judge)

    def gain(scheme: UpdateScheme) -> float:
        tuned = fine_tune(graph, scheme.resolve(n_layers), x_fit, y_fit, arith=arith, seed=seed, optimizer=optimizer)
        return accuracy(tuned, x_judge, y_judge) - base

    blocks = sorted({k for k in BIAS_BLOCKS if k < n_layers} | {n_layers})
    bias_gains = {k: gain(UpdateScheme("sparse", k)) for k in blocks}
    log(f"contribution analysis: bias blocks measured ({len(bias_gains)})")
    weight_gains = {}
    for layer in range(-1, -min(n_layers, MAX_WEIGHT_LAYERS) - 1, -1):
        for ratio in RATIOS:
            weight_gains[(layer, ratio)] = gain(UpdateScheme("sparse", 0, ((layer, ratio),)))
        log(f"contribution analysis: layer {layer} measured at ratios {', '.join(f'{r:g}' for r in RATIOS)}")
    return base, bias_gains, weight_gains


def memory_arith(arith: str) -> str:
    """How training memory is counted for an arithmetic: float as an eager framework, integer as a compiled engine."""
    return "int8" if ARITHMETICS.get(arith).integer else "fp32"


def check_reachable(arch, profile, budget_bytes: int, optimizer: str, arith: str) -> int:
    """The peak of the cheapest sparse scheme (the last layer's biases); one line naming the flag when even it does
    not fit ``budget_bytes`` (checked before anything trains)."""
    smallest = training_cost(arch, profile, UpdateScheme("sparse", 1), optimizer,
                             memory_arith(arith)).peak_sram_bytes
    if smallest > budget_bytes:
        raise WorkbenchError(f"--train-sram-budget: no sparse scheme fits {budget_bytes / 1024:.1f} KB on "
                             f"{profile.name}: the smallest (the last layer's biases) needs {smallest / 1024:.1f} KB")
    return smallest


def choose_scheme(graph, arch, profile, x, y, *, arith: str, budget_bytes: int, optimizer: str = "sgd",
                  seed: int = 0, log: Callable[[str], None] | None = None) -> Choice:
    """The sparse scheme with the best expected gain whose training memory fits ``budget_bytes`` on ``profile``."""
    say = log or (lambda message: None)
    n_layers = len(weight_layers(arch))
    counted = memory_arith(arith)

    def peak(k: int, items: tuple) -> int:
        return training_cost(arch, profile, UpdateScheme("sparse", k, items), optimizer, counted).peak_sram_bytes

    smallest = check_reachable(arch, profile, budget_bytes, optimizer, arith)
    base, bias_gains, weight_gains = measure_contributions(graph, n_layers, x, y, arith=arith, optimizer=optimizer,
                                                           seed=seed, log=say)
    best: tuple[float, int, int, tuple] | None = None
    for k in (0, *bias_gains):
        total, items = bias_gains.get(k, 0.0), ()
        if k and peak(k, ()) > budget_bytes:
            break  # more bias layers only cost more
        for (layer, ratio), g in sorted(weight_gains.items(), key=lambda kv: -kv[1]):
            if g <= 0 or any(layer == chosen for chosen, _ in items):
                continue
            trial_items = tuple(sorted(items + ((layer, ratio),)))
            if peak(k, trial_items) <= budget_bytes:
                items, total = trial_items, total + g
        if not k and not items:
            continue  # nothing at all is not a scheme
        candidate = (total, -peak(k, items), k, items)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    if best is None:  # every weight item lost accuracy and no bias block fits beyond k=1: the cheapest scheme
        best = (bias_gains[1], -smallest, 1, ())
    total, negative_peak, k, items = best
    return Choice(UpdateScheme("sparse", k, items), total, -negative_peak, budget_bytes, base, bias_gains,
                  weight_gains)
