"""Short, deterministic training of a candidate and its accuracy *as deployed*.

A NAS trial needs a ranking signal, not a converged model: a few epochs of AdamW with a one-cycle
schedule (short linear warm-up, cosine decay) and a small batch give tiny CNNs on these data sets most of
their final accuracy in seconds on a laptop CPU. The quantisation policy is honoured:

* ``fp32``  — train, evaluate.
* ``ptq``   — train in fp32 (``fp32_accuracy``), calibrate activation ranges on training samples,
  freeze, evaluate the fake-quantised model (``accuracy``).
* ``qat``   — fp32 warm-up epoch(s) (quantising a random network wastes the first epoch), then
  fake quantisation with EMA observers for the rest; ranges are frozen for evaluation.
  ``fp32_accuracy`` is the same weights with fake quant switched off.

Determinism: the same architecture, data and seed give bit-identical results in one environment.
Weights are initialised under ``torch.manual_seed(seed)`` inside a forked RNG (the caller's global
RNG is untouched) and batches are shuffled with a dedicated ``torch.Generator``; CPU kernels are
deterministic for a fixed thread count.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

from workbench._infra.process_settings import torch_threads
from workbench.model.builder import build_model
from workbench.model.quant import calibrate, freeze, quant_disabled, quantize_model

DEFAULT_LR = 1e-2
WEIGHT_DECAY = 1e-4
CALIBRATION_SAMPLES = 512
# Training samples whose batch statistics replace BatchNorm's running averages before evaluation.
BN_SAMPLES = 1024
# Intra-op threads while training. These nets are so small that OpenMP synchronisation dominates:
# on a shared 2-core machine one thread trained an epoch 3-10x faster than two whenever anything
# else ran (spinning OpenMP threads get descheduled). A fixed count also keeps results
# bit-identical across runs. None leaves torch's setting alone. Process-wide: set through
# workbench._infra.process_settings, so a notebook's background trainings do not undo each other's setting.
TRAIN_THREADS: int | None = 1
MIN_BATCH = 8
MIN_SAMPLES_PER_EPOCH = 1024


@dataclass
class TrainResult:
    accuracy: float          # held-out top-1 of the model as deployed (fake-quantised per policy)
    fp32_accuracy: float     # same trained weights without quantisation
    epochs: int
    train_seconds: float     # wall time of training + calibration + evaluation
    model: nn.Module = field(repr=False)
    losses: list[float] = field(default_factory=list)  # mean training loss per epoch


def index_stream(n: int, batch_size: int, gen: torch.Generator):
    """Endless full-size batches of indices: reshuffled passes over the data, joined end to end."""
    pending = torch.empty(0, dtype=torch.long)
    while True:
        while len(pending) < batch_size:
            pending = torch.cat([pending, torch.randperm(n, generator=gen)])
        yield pending[:batch_size]
        pending = pending[batch_size:]


def _batches(x: torch.Tensor, size: int):
    for i in range(0, len(x), size):
        yield x[i:i + size]


@torch.no_grad()
def reestimate_batchnorm(model: nn.Module, x: torch.Tensor, batch: int = 128) -> None:
    """Set every BatchNorm's running mean/variance to the exact statistics of ``x`` under the final weights.

    Why: the running averages (momentum 0.1) trail weights that moved fast, so after a short schedule
    the evaluated network normalises with statistics of networks that no longer exist — one epoch on
    ``digits`` (22 steps) left models at chance accuracy (0.10) that score 0.92 with re-estimated
    statistics, and it cost deeper/wider candidates most, which skews the ranking a search needs.
    The deployed model folds these statistics into its convolutions, so they are what export keeps.
    Fake-quant ranges are left alone (observers are frozen or off at this point)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    was_training = model.training
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    with parametrize.cached():
        for chunk in _batches(x, batch):
            if len(chunk) > 1:  # a lone sample has no batch variance (BatchNorm refuses it in train mode)
                model(chunk)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    was_training = model.training
    model.eval()
    correct = 0
    with parametrize.cached():  # quantise each weight once, not once per batch
        for i in range(0, len(x), batch):
            correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    model.train(was_training)
    return correct / max(len(x), 1)


def evaluate(model: nn.Module, arch, dataset) -> float:
    """Top-1 accuracy of ``model`` (as it is: quantised or not) on ``dataset``'s test split."""
    _, x_test = dataset.adapted(arch.input_shape)
    with torch_threads(TRAIN_THREADS):
        return _accuracy(model, x_test, torch.tensor(dataset.y_test))


def train_and_evaluate(arch, dataset, *, epochs: int = 3, batch_size: int = 64, lr: float | None = None,
                       seed: int = 0, progress: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train ``arch`` on ``dataset`` for ``epochs`` and return its deployed and fp32 test accuracy.

    ``progress(epoch, mean_loss)`` is called after each epoch (epochs count from 1).
    """
    start = time.perf_counter()
    lr = DEFAULT_LR if lr is None else lr
    x_train, x_test = dataset.adapted(arch.input_shape)
    y_train, y_test = torch.tensor(dataset.y_train), torch.tensor(dataset.y_test)
    n = len(x_train)
    # small data sets: an "epoch" is at least MIN_SAMPLES_PER_EPOCH samples (several passes) in
    # smaller batches, so 40 or 270 training series still give the optimiser enough steps
    batch_size = max(2, min(batch_size, max(MIN_BATCH, n // 8)))
    steps_per_epoch = max(1, max(n, MIN_SAMPLES_PER_EPOCH) // batch_size)
    total_steps = max(1, epochs * steps_per_epoch)
    warmup = max(1, min(total_steps // 10, steps_per_epoch))
    qat = arch.quant_mode == "qat"
    qat_from = min(max(1, epochs // 3), epochs - 1) if qat and epochs > 1 else 0  # first QAT epoch (0-based)

    with torch.random.fork_rng(devices=[]), torch_threads(TRAIN_THREADS):
        torch.manual_seed(seed)
        model = build_model(arch)
        gen = torch.Generator().manual_seed(seed)
        if qat and qat_from == 0:
            quantize_model(model, arch, "qat")
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)

        def lr_at(step):
            if step < warmup:
                return (step + 1) / warmup
            t = (step - warmup) / max(1, total_steps - warmup)
            return 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
        stream = index_stream(n, batch_size, gen)
        loss_fn = nn.CrossEntropyLoss()
        losses = []
        model.train()
        for epoch in range(epochs):
            if qat and epoch == qat_from and epoch > 0:
                # parametrisation moves `weight` under `parametrizations.weight.original`; the
                # Parameter object is the same, so the optimiser state carries over.
                quantize_model(model, arch, "qat")
            total, count = 0.0, 0
            for _ in range(steps_per_epoch):
                idx = next(stream)
                out = model(x_train[idx])
                loss = loss_fn(out, y_train[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * len(idx)
                count += len(idx)
            losses.append(total / max(count, 1))
            if progress is not None:
                progress(epoch + 1, losses[-1])

        bn_batch = x_train[torch.randperm(n, generator=gen)[:BN_SAMPLES]]
        if arch.precision == "fp32":
            reestimate_batchnorm(model, bn_batch)
            acc = fp32_acc = _accuracy(model, x_test, y_test)
        elif qat:
            freeze(model)
            reestimate_batchnorm(model, bn_batch)
            acc = _accuracy(model, x_test, y_test)
            with quant_disabled(model):
                fp32_acc = _accuracy(model, x_test, y_test)
        else:  # ptq
            reestimate_batchnorm(model, bn_batch)
            fp32_acc = _accuracy(model, x_test, y_test)
            quantize_model(model, arch, "ptq")
            calib = x_train[torch.randperm(n, generator=gen)[:CALIBRATION_SAMPLES]]
            calibrate(model, _batches(calib, 128))
            acc = _accuracy(model, x_test, y_test)
    model.eval()
    return TrainResult(acc, fp32_acc, epochs, time.perf_counter() - start, model, losses)
