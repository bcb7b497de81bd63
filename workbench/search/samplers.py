"""The sampler registry: every ``--sampler`` choice and the one function that builds them.

A sampler factory takes one :class:`SamplerContext` — what the search knows before its first trial — so a
sampler that needs more than a seed (a predictor-ranked sampler costs candidates on the devices and
scores them on the data) is registered the same way as Optuna's own. Constraints reach every sampler
through ``trial.set_constraint`` (Optuna 5 reads them from the trials).

Register a sampler with one entry (a ``"module:attribute"`` target is imported on first use)::

    register_sampler(Sampler("ranked", "what it does, in a few words", "workbench.search.ranking:make_ranked_sampler"))
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import optuna

from workbench._infra.registry import Registry, resolve


@dataclass(frozen=True)
class Sampler:
    """A ``--sampler`` choice: ``factory(SamplerContext) → optuna sampler``, a callable or ``"module:attribute"``."""

    name: str
    help: str
    factory: Callable[..., optuna.samplers.BaseSampler] | str


SAMPLERS: Registry[Sampler] = Registry("sampler", "--sampler")
register_sampler = SAMPLERS.register


@dataclass(frozen=True)
class SamplerContext:
    """What a sampler factory may use. ``seed`` is already distinct per worker and per resume; the other
    fields are None where a caller has no search behind it (``make_sampler(name, seed)``)."""

    seed: int = 0
    population: int = 16
    space: Any = None  # SearchSpace
    device: Any = None  # the target DeviceProfile
    profiles: tuple = ()  # every DeviceProfile a trial is scored on (the target among them)
    latency_budget_ms: float | None = None
    objectives: tuple[str, ...] = ("accuracy", "latency")
    data: Any = None  # the loaded workbench.model.data.Dataset
    evaluator: str = "train"
    epochs: int = 3


def _tpe(context: SamplerContext) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=context.seed, n_startup_trials=min(10, context.population))


def _nsga2(context: SamplerContext) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=context.seed, population_size=context.population)


def _random(context: SamplerContext) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=context.seed)


register_sampler(Sampler("tpe", "Optuna TPE, seeded random start-up of min(10, --population) trials", _tpe))
register_sampler(Sampler("nsga2", "Optuna NSGA-II, population --population", _nsga2))
register_sampler(Sampler("random", "uniform random draws", _random))
register_sampler(Sampler("ranked", "draws many candidates per trial, keeps feasible untried ones, trains the best by "
                         "predicted hypervolume gain", "workbench.search.ranking:make_ranked_sampler"))


def make_sampler(name: str, seed: int, population: int = 16,
                 context: SamplerContext | None = None) -> optuna.samplers.BaseSampler:
    """The seeded sampler ``name``; ``context`` gives samplers that need it the search's space, devices
    and data (its seed and population are replaced by the arguments)."""
    factory = resolve(SAMPLERS.get(name).factory)
    return factory(replace(context or SamplerContext(), seed=seed, population=population))
