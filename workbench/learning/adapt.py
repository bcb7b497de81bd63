"""``workbench adapt``: fine-tune a stored trial on a shifted domain as the device would, and say what it gained.

Why on the host: no board is needed to learn whether a model *can* keep learning — whether a cheap update
scheme recovers the accuracy a domain shift took, and whether the device's integer arithmetic loses any of
that gain. The simulation starts where the device starts: the trial's trained model (rebuilt from its seed,
as an export does) converted to its deployed graph — BatchNorm folded, int8 activations on the ranges the
exported file holds (calibrated on the source data), weights on their policy's integer grid. It then
fine-tunes on a task's adaptation samples (:mod:`workbench.model.tasks`: a shifted copy of the study's data,
or the user's own target-domain data) with the chosen update scheme, once in float (``fp32``: the reference)
and once in the chosen arithmetic (:mod:`workbench.model.int_training`), for several seeds, and evaluates on
the task's held-out samples. The accuracy without adaptation is the deployed graph's on the same samples.

What changes between seeds: the order of the adaptation batches (and any stochastic rounding of the
arithmetic); the starting model and the data are the same, so the spread is the fine-tuning's own.
The same seeds give the same numbers.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from workbench._infra.errors import WorkbenchError, check_count
from workbench.export.trial_source import resolve_trial, study_dataset, trained_model
from workbench.hardware.training import TrainingCost, training_cost, training_trust
from workbench.learning.contribution import check_reachable, choose_scheme, memory_arith
from workbench.model.int_training import ARITHMETICS, accuracy, deployed_graph, fine_tune
from workbench.model.tasks import TASKS, load_task
from workbench.model.train_graph import weight_layers
from workbench.model.update_schemes import UpdateScheme, is_auto, parse_scheme

Log = Callable[[str], None]
MAX_SEEDS = 100  # a mean ± std needs a handful; each seed trains twice
CALIBRATION_SAMPLES = 512  # source-domain samples that set the deployed activation ranges (as the exporters do)
REFERENCE = "fp32"  # the arithmetic every other one is compared with
SIMULATED = ("adaptation accuracy: simulated on the host (PyTorch; integer arithmetic emulated in float32 with "
             "rounding at every quantisation point), not run on a board")


@dataclass(frozen=True)
class ArithResult:
    """Held-out accuracy after fine-tuning in one arithmetic, one value per seed."""

    arith: str
    accuracies: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else None

    def text(self) -> str:
        spread = "" if self.std is None else f" ± {self.std:.4f}"
        return f"{self.mean:.4f}{spread}"


@dataclass
class AdaptReport:
    """What ``workbench adapt`` prints (table or JSON)."""

    study: str
    trial: int
    architecture: str
    device: str
    task: str
    task_description: str
    adapt_samples: int
    test_samples: int
    scheme: str
    arith: str
    seeds: tuple[int, ...]
    source_accuracy: float  # the deployed graph on the study's own test split
    not_adapted: float  # the deployed graph on the task's held-out samples
    results: list[ArithResult]
    cost: TrainingCost
    trust: list[str]
    rounding: dict[str, tuple[tuple[str, str], ...]]  # per compared arithmetic: (tensor, rounding) pairs
    training: dict = field(default_factory=dict)  # how the trial's weights were rebuilt (trial_source)
    choice: object | None = None  # sparse:auto: the contribution analysis' :class:`~.contribution.Choice`

    def result(self, arith: str) -> ArithResult:
        return next(r for r in self.results if r.arith == arith)

    def to_dict(self) -> dict:
        out = {key: getattr(self, key) for key in ("study", "trial", "architecture", "device", "task",
                                                    "task_description", "adapt_samples", "test_samples",
                                                    "scheme", "arith", "source_accuracy", "not_adapted")}
        out["seeds"] = list(self.seeds)
        out["results"] = {r.arith: {"mean": r.mean, "std": r.std, "accuracies": list(r.accuracies),
                                    "gain": r.mean - self.not_adapted} for r in self.results}
        out["training_memory"] = self.cost.to_dict()
        out["rounding"] = {name: dict(pairs) for name, pairs in self.rounding.items()}
        out["trust"] = self.trust
        out["training"] = self.training
        if self.choice is not None:
            out["sparse_auto"] = self.choice.to_dict()
        return out


@dataclass(frozen=True)
class AdaptRequest:
    """The flags of one adaptation, checked before any storage is read (:func:`check_request`)."""

    task: str
    scheme: UpdateScheme | None  # None: sparse:auto
    ariths: tuple[str, ...]  # the arithmetics compared with the fp32 reference (the first one picks sparse:auto)
    seeds: tuple[int, ...]
    optimizer: str
    budget_bytes: int | None

    @property
    def arith(self) -> str:
        """The arithmetic that picks ``sparse:auto`` and whose memory count is reported: the first given."""
        return self.ariths[0]


def check_request(task: str, scheme: str, arith: str, seeds: int = 5, seed: int = 0, optimizer: str = "sgd",
                  budget_kb: float | None = None) -> AdaptRequest:
    """Every flag's one-line error before the study is opened or anything is trained."""
    if not str(task).strip():
        raise WorkbenchError(f"--task: empty (shipped tasks: {', '.join(TASKS)}; or a path to your own data)")
    if str(task) not in TASKS and not Path(str(task)).exists():
        raise WorkbenchError(f"--task: unknown task {str(task)!r} and no such path (shipped tasks: "
                             f"{', '.join(TASKS)})")
    ariths = tuple(dict.fromkeys(name.strip() for name in str(arith).split(",")))
    for name in ariths:
        ARITHMETICS.check(name)
    check_count("--seeds", seeds, 1, MAX_SEEDS)
    check_count("--seed", seed, 0, 2 ** 32 - 1 - seeds)
    if optimizer not in ("sgd", "momentum"):
        raise WorkbenchError(f"--optimizer: adaptation runs sgd or momentum (the on-device optimizers), got "
                             f"{optimizer!r}")
    budget = None
    if budget_kb is not None:
        if not (isinstance(budget_kb, (int, float)) and math.isfinite(budget_kb) and 0 < budget_kb <= 1 << 30):
            raise WorkbenchError(f"--train-sram-budget: must be a positive number of KB, got {budget_kb!r}")
        budget = int(budget_kb * 1024)
    if is_auto(scheme):
        if budget is None:
            raise WorkbenchError("--scheme sparse:auto: needs --train-sram-budget KB (the training memory the "
                                 "chosen scheme must fit)")
        parsed = None
    else:
        parsed = parse_scheme(scheme)
    return AdaptRequest(str(task), parsed, ariths, tuple(range(seed, seed + seeds)), optimizer, budget)


def adapt_trial(study: str, storage: str | None, trial: int | str, task: str, scheme: str, arith: str = "int8-qas",
                *, seeds: int = 5, seed: int = 0, optimizer: str = "sgd", device: str | None = None,
                budget_kb: float | None = None, data: str | None = None, log: Log | None = None) -> AdaptReport:
    """Adapt ``trial`` of ``study`` to ``task`` with ``scheme`` in ``arith`` (see the module docstring)."""
    request = check_request(task, scheme, arith, seeds, seed, optimizer, budget_kb)
    say = log or (lambda message: None)
    source = resolve_trial(study, storage, trial, device)
    dataset = study_dataset(source, data)
    target = load_task(request.task, dataset.name)
    arch, profile = source.arch, source.profile
    n_layers = len(weight_layers(arch))
    chosen, choice = request.scheme, None
    if chosen is not None:
        chosen.resolve(n_layers)  # K or a layer past the network: one line before anything trains
        _check_budget(arch, profile, chosen, request)
    else:
        check_reachable(arch, profile, request.budget_bytes, request.optimizer, request.arith)
    model, training = trained_model(source, dataset, log=say)
    x_source, x_source_test = dataset.adapted(arch.input_shape)
    x_adapt, x_test = target.target.adapted(arch.input_shape)
    y_adapt, y_test = _labels(target.target)
    calibration = x_source[:CALIBRATION_SAMPLES]
    graphs = _deployed_graphs(model, arch, calibration, (REFERENCE, *request.ariths))
    deployed = graphs[request.arith]
    source_accuracy = accuracy(deployed, x_source_test, _labels(dataset)[1])
    not_adapted = accuracy(deployed, x_test, y_test)
    say(f"trial {source.number} deployed ({request.arith}): {source_accuracy:.4f} on {dataset.name}, "
        f"{not_adapted:.4f} on task {target.name} before adaptation")
    if chosen is None:
        choice = choose_scheme(deployed, arch, profile, x_adapt, y_adapt, arith=request.arith,
                               budget_bytes=request.budget_bytes, optimizer=request.optimizer,
                               seed=request.seeds[0], log=say)
        chosen = choice.scheme
    updates = chosen.resolve(n_layers)
    results = _fine_tune_all(graphs, updates, x_adapt, y_adapt, x_test, y_test, request, say)
    cost = training_cost(arch, profile, chosen, request.optimizer, memory_arith(request.arith))
    return AdaptReport(study, source.number, arch.summary(), profile.name, target.name, target.description,
                       len(x_adapt), len(x_test), chosen.text, ",".join(request.ariths), request.seeds,
                       source_accuracy,
                       not_adapted, results, cost, [SIMULATED, *training_trust(cost, profile)],
                       {name: ARITHMETICS.get(name).rounding for name in request.ariths}, training, choice)


def _deployed_graphs(model, arch, calibration, names) -> dict:
    """Each arithmetic's starting graph: the graph depends only on integer vs float (fine_tune copies it), so every
    integer arithmetic shares one build and one activation calibration."""
    built: dict[bool, object] = {}
    graphs = {}
    for name in names:
        integer = ARITHMETICS.get(name).integer
        if integer not in built:
            built[integer] = deployed_graph(model, arch, calibration, name)
        graphs[name] = built[integer]
    return graphs


def _labels(dataset) -> tuple:
    import torch  # heavy: torch

    return torch.tensor(dataset.y_train), torch.tensor(dataset.y_test)  # copies: the cached arrays are read-only


def _check_budget(arch, profile, scheme: UpdateScheme, request: AdaptRequest) -> None:
    """An explicit scheme with ``--train-sram-budget``: refuse one that does not fit before anything trains."""
    if request.budget_bytes is None:
        return
    peak = training_cost(arch, profile, scheme, request.optimizer, memory_arith(request.arith)).peak_sram_bytes
    if peak > request.budget_bytes:
        raise WorkbenchError(f"--train-sram-budget: scheme {scheme.text} needs {peak / 1024:.1f} KB of training "
                             f"SRAM on {profile.name}, over the {request.budget_bytes / 1024:.1f} KB budget")


def _fine_tune_all(graphs: dict, updates, x_adapt, y_adapt, x_test, y_test, request: AdaptRequest,
                   say: Log) -> list[ArithResult]:
    """Fine-tune the reference and the chosen arithmetic once per seed; held-out accuracy of each."""
    names = list(dict.fromkeys((REFERENCE, *request.ariths)))
    scores: dict[str, list[float]] = {name: [] for name in names}
    for i, seed in enumerate(request.seeds):
        for name in names:
            tuned = fine_tune(graphs[name], updates, x_adapt, y_adapt, arith=name, seed=seed,
                              optimizer=request.optimizer)
            scores[name].append(accuracy(tuned, x_test, y_test))
        shown = ", ".join(f"{name} {scores[name][-1]:.4f}" for name in names)
        say(f"seed {seed} ({i + 1}/{len(request.seeds)}): {shown}")
    return [ArithResult(name, tuple(values)) for name, values in scores.items()]


def format_report(report: AdaptReport) -> str:
    """The ``workbench adapt`` table: accuracy before and after, the scheme's training memory, the rounding."""
    seeds = f"{len(report.seeds)} seed{'s' if len(report.seeds) > 1 else ''} ({report.seeds[0]}..{report.seeds[-1]})"
    lines = [f"adaptation of trial {report.trial} of study '{report.study}' ({report.architecture}) to task "
             f"{report.task}: {report.task_description}",
             f"{report.adapt_samples} adaptation samples, {report.test_samples} held-out samples; scheme "
             f"{report.scheme}; accuracy = held-out top-1, mean ± std over {seeds}",
             f"{'':<34}{'accuracy':>18}{'gain':>10}",
             f"{'source data (deployed, no shift)':<34}{report.source_accuracy:>18.4f}",
             f"{'not adapted (deployed)':<34}{report.not_adapted:>18.4f}"]
    for r in report.results:
        label = f"fine-tuned, {r.arith}"
        lines.append(f"{label:<34}{r.text():>18}{100 * (r.mean - report.not_adapted):>+9.1f}p")
    for r in report.results[1:]:
        lines.append(f"{r.arith} vs fp32: {100 * (r.mean - report.results[0].mean):+.2f} points")
    if report.choice is not None:
        lines += report.choice.lines()
    c = report.cost
    lines.append(f"training memory on {report.device} ({c.arith} count, {c.optimizer}): peak "
                 f"{c.peak_sram_bytes / 1024:.1f} KB of {c.sram_budget_bytes / 1024:.1f} KB "
                 f"({'fits' if c.fits_sram else 'does NOT fit'}; forward arena {c.forward_arena / 1024:.1f} KB, "
                 f"training adds {(c.peak_sram_bytes - c.forward_arena) / 1024:.1f} KB) — "
                 f"workbench train-cost --scheme {report.scheme} for its parts")
    for name, pairs in report.rounding.items():
        lines.append(f"rounding in {name}:")
        lines += [f"  {tensor}: {rule}" for tensor, rule in pairs]
    lines += report.trust
    return "\n".join(lines)
