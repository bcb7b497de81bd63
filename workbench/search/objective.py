"""The objective of a search, without storage: architecture → costs on every device, constraints,
evaluation (training or a training-free proxy) → objective values.

The runner (:mod:`workbench.search.runner`) calls these steps with its bookkeeping (duplicates, the
tally, heartbeats) in between; :func:`objective` strings them together for a plain
``optuna.Study.optimize`` — the benchmarks use it, so they judge candidates exactly as ``workbench
search`` does. Nothing here opens a storage or prints.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import optuna

from workbench._infra.errors import WorkbenchError
from workbench._infra.registry import resolve
from workbench.hardware.cost import CostEstimate, estimate, violations
from workbench.hardware.training import TRAIN_SRAM_FIELD, training_prediction
from workbench.model.arch import Architecture
from workbench.model.evaluators import EVALUATORS
from workbench.model.space import TrialSuggester
from workbench.study.objectives import OBJECTIVES
from workbench.study.schema import Keys, arch_key

LEGACY_CONSTRAINTS = "constraints"  # the system attribute optuna-dashboard reads (a list, Optuna < 5)


@dataclass(frozen=True)
class Evaluation:
    """What evaluating a candidate measured: the objective's quality value and the trial attributes
    that record it (``accuracy``, ``fp32_accuracy``, … or a proxy's ``score``)."""

    metric: float
    attrs: dict


def _trained(result, seed: int) -> Evaluation:
    """A training run's held-out accuracy (int8 when quantised) and the attributes that record it."""
    return Evaluation(result.accuracy, {Keys.ACCURACY: result.accuracy, Keys.FP32_ACCURACY: result.fp32_accuracy,
                                        Keys.TRAIN_SECONDS: round(result.train_seconds, 3), Keys.TRAIN_SEED: seed})


def _scored(score: Callable[[], float]) -> Evaluation:
    """A training-free score instead of accuracy (stored as ``score``, never as ``accuracy``)."""
    start = time.perf_counter()
    value = score()
    return Evaluation(value, {Keys.SCORE: value, Keys.EVAL_SECONDS: round(time.perf_counter() - start, 5)})


def evaluate(arch: Architecture, config, trial_number: int) -> Evaluation:
    """Train (or score) ``arch`` as ``config`` says: its evaluator, data, epochs and seed."""
    evaluator = EVALUATORS.get(config.evaluator)
    seed = evaluator.seed(config.seed, trial_number)
    measure = resolve(evaluator.measure)
    try:
        if evaluator.trains:
            return _trained(measure(arch, config.data, epochs=config.epochs, seed=seed), seed)
        return _scored(lambda: measure(arch, config.data, seed=seed))
    except (MemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError) and "allocate" not in str(exc):  # torch's allocator: "can't allocate"
            raise
        raise WorkbenchError(f"trial {trial_number}: out of memory building or training {arch.summary()} "
                             f"({arch.n_params:,} parameters): the space's candidates are larger than this "
                             f"machine's memory; lower its largest width, depth or kernel choices") from None


def metric_label(evaluator: str) -> str:
    """How a progress line names the measurement of evaluator ``evaluator`` (``acc`` or ``score``)."""
    return EVALUATORS.get(evaluator).label


# ---------------------------------------------------------------- before any training

def sample(config, suggester) -> Architecture:
    """One architecture of the config's space, with a policy the target runs, fitted to the data."""
    return config.space.sample(suggester, precisions=config.device.precisions, data=config.data.data_shape)


@dataclass(frozen=True)
class Assessment:
    """What the LUTs and memory models say about a candidate (microseconds, no training)."""

    arch: Architecture
    costs: dict[str, CostEstimate]  # every profile the search scores, by name
    target: str  # the target device's name
    constraints: dict[str, float]  # on the target; > 0 is violated
    training: dict[str, dict] = field(default_factory=dict)  # per profile: training memory (--train-scheme)

    @property
    def rejected(self) -> tuple[str, ...]:
        return tuple(name for name, value in self.constraints.items() if value > 0)

    @property
    def predictions(self) -> dict[str, dict]:
        """What each profile's prediction stores: the cost estimate, plus training memory when the study costs it."""
        return {name: {**cost.to_dict(), **self.training.get(name, {})} for name, cost in self.costs.items()}

    @property
    def prediction(self) -> dict:
        return {**self.costs[self.target].to_dict(), **self.training.get(self.target, {})}

    @property
    def key(self) -> str:
        return arch_key(self.arch)


def candidate_costs(arch: Architecture, profiles) -> dict[str, CostEstimate]:
    return {p.name: estimate(arch, p) for p in profiles}


def candidate_training(arch: Architecture, profiles, scheme: str | None) -> dict[str, dict]:
    """Training memory of ``arch`` under ``scheme`` on every profile (empty without a scheme)."""
    return {} if scheme is None else {p.name: training_prediction(arch, p, scheme) for p in profiles}


def constraints(cost: CostEstimate, device, latency_budget_ms: float | None, training: dict | None = None,
                train_sram_budget_kb: float | None = None) -> dict[str, float]:
    """The constraint values the sampler learns from (``cost.violations``: > 0 is over the limit), plus the
    training-SRAM budget in KB over it when the search has one."""
    out = violations(cost, device, latency_budget_ms)
    if train_sram_budget_kb is not None and training:
        out["train_sram_kb_over"] = training[TRAIN_SRAM_FIELD] / 1024 - train_sram_budget_kb
    return out


def assess(arch: Architecture, config) -> Assessment:
    costs = candidate_costs(arch, config.profiles)
    training = candidate_training(arch, config.profiles, config.train_scheme)
    target = config.device.name
    return Assessment(arch, costs, target,
                      constraints(costs[target], config.device, config.latency_budget_ms, training.get(target),
                                  config.train_sram_budget_kb), training)


def record_assessment(trial: optuna.Trial, assessment: Assessment, *, with_key: bool = True) -> None:
    """The candidate's architecture, costs on every device and constraints, stored in the trial.
    ``with_key=False`` leaves out the architecture key: in a shared study a feasible candidate writes it as
    its claim on the architecture (:meth:`workbench.search.Search._claim`), under the study's lock."""
    trial.set_user_attr(Keys.ARCH, assessment.arch.to_dict())
    if with_key:
        trial.set_user_attr(Keys.ARCH_KEY, assessment.key)
    trial.set_user_attr(Keys.SUMMARY, assessment.arch.summary())
    trial.set_user_attr(Keys.PREDICTIONS, assessment.predictions)
    for name, value in assessment.constraints.items():
        trial.set_constraint(name, value)
    # optuna-dashboard (0.21) reads only the list Optuna wrote before 5.0: store it too, so its Pareto plot
    # greys infeasible candidates out instead of drawing them as models of accuracy 0.0 (trial.constraints
    # then holds each value twice, by name and by position; sums of violations double, orders stay)
    trial.storage.set_trial_system_attr(trial._trial_id, LEGACY_CONSTRAINTS, list(assessment.constraints.values()))
    if assessment.rejected:
        trial.set_user_attr(Keys.REJECTED, list(assessment.rejected))


def record_evaluation(trial: optuna.Trial, evaluation: Evaluation) -> None:
    for key, value in evaluation.attrs.items():
        trial.set_user_attr(key, value)
    trial.set_user_attr(Keys.TRAINED, True)


def objective_values(objectives, metric: float | None, prediction: dict) -> tuple[float, ...]:
    """The values told to Optuna, in the order of ``objectives``. An infeasible candidate (``metric`` None)
    has no measured quality: Optuna still needs a number, so it gets the worst accuracy, 0.0 — its
    constraints mark it infeasible, which is what samplers and Optuna's plots go by (never by that value)."""
    quality = 0.0 if metric is None else float(metric)
    return tuple(float(OBJECTIVES[name].value(prediction, quality)) for name in objectives)


def objective(trial: optuna.Trial, config, evaluator: Callable[[Architecture, object, int], Evaluation] = evaluate
              ) -> tuple[float, ...]:
    """One candidate judged as ``workbench search`` judges it, for ``study.optimize(lambda t: objective(t,
    config))``: sample, cost on every device, set the constraints, evaluate only a feasible candidate,
    return the objective values. ``evaluator(arch, config, trial_number)`` replaces :func:`evaluate`
    (a benchmark's cache of deterministic proxy scores)."""
    arch = sample(config, TrialSuggester(trial))
    assessment = assess(arch, config)
    record_assessment(trial, assessment)
    if assessment.rejected:
        return objective_values(config.objectives, None, assessment.prediction)
    evaluation = evaluator(arch, config, trial.number)
    record_evaluation(trial, evaluation)
    return objective_values(config.objectives, evaluation.metric, assessment.prediction)
