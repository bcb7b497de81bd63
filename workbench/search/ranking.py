"""Predictor-ranked sampling: spend every trained trial on the most promising *feasible* candidate.

Why: the LUT costs a candidate in microseconds while training one costs seconds to minutes, so a trial
can afford to look at hundreds of candidates before training one. :class:`RankedSampler` is an Optuna
sampler (ask/tell, resumed studies and several workers work as with TPE); for each trial it

1. **draws a pool** of ``pool_size`` candidates from the space: uniform draws and, after the start-up,
   as many mutations of the study's current front (each choice of a front architecture redrawn with
   probability ``mutation_rate``),
   from an RNG seeded by (seed, trial number) — the same seed on the same study proposes the same
   architectures; workers (their seeds differ) propose different ones;
2. **costs every candidate exactly** on the target profile (:func:`workbench.hardware.cost.estimate`) and keeps
   those within every constraint (:func:`workbench.hardware.cost.violations`); when none is feasible it takes the
   least-violating one, so the study still records (and learns from) an infeasible trial;
3. **never proposes an architecture + policy the study already holds** (any trial that recorded an arch,
   trained, rejected, running or failed, and the candidates running trials of other workers chose);
4. **ranks** the rest. Start-up (fewer than ``n_startup`` trained trials): latency strata in a seeded
   order, spread over the feasible range (diversity), and in each stratum the candidate with the best
   training-free proxy. Afterwards: a Gaussian process (ARD Matérn + noise, scikit-learn) fitted on the
   trained trials' architecture features (choices, log MACs/params/SRAM/flash, exact latency) predicts
   the first objective's mean and std for every candidate; the acquisition is the *exact* expected
   hypervolume improvement of (objective, latency) over the study's front — latency is known exactly,
   only the objective is uncertain, so in 2-D the expectation has a closed form (a sum of expected
   improvements over the front's steps). The proxy is used in the start-up only: it costs 10–500 ms per
   candidate on this CPU (too slow for the pool of every trial), and once trials exist the predictor,
   fitted on what the study measured, is the better guide;
5. **hands the winner to Optuna**: ``sample_independent`` returns the chosen candidate's choice for every
   parameter the space asks for (the chosen choices are also stored as a trial system attribute so other
   workers avoid them while the trial runs).

The proxy is never the objective itself: with ``--evaluator train`` it is SynFlow, with the training-free
evaluators it is the *other* proxy (``synflow`` objective → NASWOT, ``naswot`` → SynFlow), so in the
training-free benchmark the ranking cannot simply compute the objective. Extra objectives (SRAM, flash)
are not part of the acquisition (they stay constraints); the ranking targets the (objective, latency) front.
"""
from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from workbench._infra.errors import WorkbenchError
from workbench._infra.memo import BoundedMemo
from workbench._infra.process_settings import torch_threads
from workbench._infra.registry import resolve
from workbench.hardware.cost import CostEstimate, estimate, violations
from workbench.hardware.profiles import DeviceProfile
from workbench.model.arch import Architecture
from workbench.model.evaluators import EVALUATORS
from workbench.model.space import DataShape, RandomSuggester, SearchSpace
from workbench.search.counting import is_trained
from workbench.study.schema import Keys, arch_key

PROXY_MEMO_SIZE = 1024  # proxy scores kept per sampler (a few start-up trials ask for a few dozen)
CHOICE_ATTR = "ranked:choice"  # trial system attribute: the choices the ranked sampler picked for it


@dataclass(frozen=True)
class RankingSettings:
    """How much the sampler looks at per trial (the defaults: 0.2–0.5 s of ranking per trial on the shared
    2-core machine, against seconds of training)."""

    pool_size: int = 384        # candidates drawn per trial
    mutation_share: float = 0.5  # of the pool, after the start-up: mutations of front architectures
    mutation_rate: float = 0.15  # per choice, in a mutation
    n_startup: int = 6           # trained trials before the predictor takes over
    startup_proxy_pool: int = 8  # candidates of a latency stratum whose proxy is compared in start-up


class Candidate(NamedTuple):
    arch: Architecture
    key: str
    cost: CostEstimate
    overshoot: float  # sum of the positive constraint values (0: feasible)


class Observation(NamedTuple):
    arch: Architecture
    cost: CostEstimate
    value: float  # the first objective (accuracy or proxy score): maximised


class MutatingSuggester:
    """Keeps a parent architecture's choices, redrawing each with probability ``rate`` (and any choice the
    parent lacks, e.g. weight bits after an fp32 parent turns int8)."""

    def __init__(self, parent: dict[str, Any], rng: random.Random, rate: float):
        self.parent, self.rng, self.rate = parent, rng, rate

    def choose(self, name, choices):
        choices = list(choices)
        if len(choices) == 1:
            return choices[0]
        kept = self.parent.get(name)
        if kept in choices and self.rng.random() >= self.rate:
            return kept
        return self.rng.choice(choices)


class RankedSampler(optuna.samplers.BaseSampler):
    """Optuna sampler that proposes the feasible candidate with the highest expected hypervolume gain
    (see the module docstring). ``proxy``: architecture → training-free score (None: no proxy)."""

    def __init__(self, space: SearchSpace, device: DeviceProfile, *, latency_budget_ms: float | None = None,
                 data_shape: DataShape | None = None, proxy: Callable[[Architecture], float] | None = None,
                 seed: int = 0, settings: RankingSettings = RankingSettings()):
        self.space, self.device, self.budget = space, device, latency_budget_ms
        self.data_shape, self.proxy, self.seed, self.settings = data_shape, proxy, seed, settings
        self._chosen: dict[int, dict[str, Any]] = {}  # trial id → choices, for this process's trials
        # start-up proxy scores: at most n_startup x latency strata x startup_proxy_pool architectures are asked
        self._proxy_cache = BoundedMemo(PROXY_MEMO_SIZE)
        self._fallback = optuna.samplers.RandomSampler(seed=seed)

    # ------------------------------------------------------------ the Optuna sampler interface
    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return {}  # everything goes through sample_independent: the space is conditional

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.system_attrs.get("fixed_params"):  # an enqueued retry: its parameters are given
            return
        choice = self.choose(study, trial.number)
        self._chosen[trial._trial_id] = choice
        study._storage.set_trial_system_attr(trial._trial_id, CHOICE_ATTR, choice)

    def sample_independent(self, study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        choice = self._chosen.get(trial._trial_id) or trial.system_attrs.get(CHOICE_ATTR) or {}
        value = choice.get(param_name)
        if isinstance(param_distribution, optuna.distributions.CategoricalDistribution) \
                and value in param_distribution.choices:
            return value
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._chosen.pop(trial._trial_id, None)

    # ------------------------------------------------------------ choosing one candidate
    def choose(self, study: optuna.Study, number: int) -> dict[str, Any]:
        """The choices of the candidate proposed for trial ``number`` of ``study`` (deterministic)."""
        observed, taken = self._history(study)
        rng = random.Random(f"ranked:{self.seed}:{number}")
        front = _front(observed)
        started = len(observed) >= self.settings.n_startup
        pool = self._pool(rng, [o.arch for o in front] if started else [], taken)
        feasible = [c for c in pool if c.overshoot <= 0] or sorted(pool, key=lambda c: c.overshoot)[:1]
        if not feasible:  # every draw was already in the study: take a fresh uniform draw
            return self.space.sample(RandomSuggester(rng), precisions=self.device.precisions,
                                     data=self.data_shape).choice
        if not started:
            pick = self._startup_pick(feasible, len(observed))
        else:
            pick = self._ranked_pick(feasible, observed, front)
        return dict(pick.arch.choice)

    def _history(self, study: optuna.Study) -> tuple[list[Observation], set[str]]:
        """Trained trials as observations (repeats with other seeds are extra observations) and the keys
        of every architecture the study already holds or a running trial has chosen."""
        observed, taken = [], set()
        for t in study.get_trials(deepcopy=False):
            arch = self._trial_arch(t)
            if arch is None:
                continue
            taken.add(arch_key(arch))
            if not is_trained(t) or not math.isfinite(t.values[0]):  # a proxy's -inf teaches nothing
                continue
            cost = estimate(arch, self.device)
            observed.append(Observation(arch, cost, float(t.values[0])))
            for extra in t.user_attrs.get(Keys.REPEATS) or ():
                if extra.get("accuracy") is not None:
                    observed.append(Observation(arch, cost, float(extra["accuracy"])))
        return observed, taken

    def _trial_arch(self, t: FrozenTrial) -> Architecture | None:
        if Keys.ARCH in t.user_attrs:
            return Architecture.from_dict(t.user_attrs[Keys.ARCH])
        chosen = t.system_attrs.get(CHOICE_ATTR)
        if chosen and t.state in (TrialState.RUNNING, TrialState.WAITING):
            return self._replay(chosen)
        return None

    def _replay(self, choice: dict[str, Any]) -> Architecture:
        return self.space.sample(_Replay(choice), precisions=self.device.precisions, data=self.data_shape)

    def _pool(self, rng: random.Random, parents: list[Architecture], taken: set[str]) -> list[Candidate]:
        n = self.settings.pool_size
        n_mutants = round(n * self.settings.mutation_share) if parents else 0
        pool, seen = [], set(taken)
        for i in range(n):
            if i < n_mutants:
                suggester = MutatingSuggester(rng.choice(parents).choice, rng, self.settings.mutation_rate)
            else:
                suggester = RandomSuggester(rng)
            arch = self.space.sample(suggester, precisions=self.device.precisions, data=self.data_shape)
            key = arch_key(arch)
            if key in seen:
                continue
            seen.add(key)
            cost = estimate(arch, self.device)
            over = sum(max(0.0, v) for v in violations(cost, self.device, self.budget).values())
            pool.append(Candidate(arch, key, cost, over))
        return pool

    def _startup_pick(self, feasible: list[Candidate], n_observed: int) -> Candidate:
        """Diversity first: the trial's latency stratum (strata visited in a seeded order), and in it the
        best proxy among the first few candidates."""
        strata = self.settings.n_startup
        order = list(range(strata))
        random.Random(f"ranked-strata:{self.seed}").shuffle(order)
        lats = np.array([c.cost.latency_ms for c in feasible])
        lo, hi = float(lats.min()), float(lats.max())
        bins = np.minimum(((lats - lo) / max(hi - lo, 1e-12) * strata).astype(int), strata - 1)
        wanted = order[n_observed % strata]
        nearest = min(set(bins.tolist()), key=lambda b: (abs(b - wanted), b))
        members = [c for c, b in zip(feasible, bins) if b == nearest][: self.settings.startup_proxy_pool]
        if self.proxy is None:
            return members[0]
        return max(members, key=lambda c: self._proxy_of(c.arch))

    def _ranked_pick(self, feasible: list[Candidate], observed: list[Observation], front: list[Observation]) -> Candidate:
        ref = self._reference(feasible, observed)
        steps = front_steps([(o.value, o.cost.latency_ms) for o in front], ref)
        lats = np.array([c.cost.latency_ms for c in feasible])
        mean, std = self._predict(observed, feasible)
        gain = expected_hv_gain(mean, std, lats, steps, ref)
        return feasible[int(np.argmax(gain))]

    def _reference(self, feasible: list[Candidate], observed: list[Observation]) -> tuple[float, float]:
        """(worst objective, latency limit): the least objective seen; the budget, or just above the
        slowest candidate or observation when there is none."""
        worst = min(o.value for o in observed)
        if self.budget is not None:
            return worst, float(self.budget)
        slowest = max([c.cost.latency_ms for c in feasible] + [o.cost.latency_ms for o in observed])
        return worst, 1.05 * slowest

    def _predict(self, observed: list[Observation], candidates: list[Candidate]):
        rows_x = [features(o.arch, o.cost) for o in observed]
        columns = feature_columns(rows_x)
        rows_c = [features(c.arch, c.cost) for c in candidates]
        x, x_c = ([[row.get(c, 0.0) for c in columns] for row in rows] for rows in (rows_x, rows_c))
        return gp_predict(np.array(x), np.array([o.value for o in observed]), np.array(x_c), self.seed)

    def _proxy_of(self, arch: Architecture) -> float:
        return self._proxy_cache.get(arch, lambda: self._score(arch))

    def _score(self, arch: Architecture) -> float:
        with torch_threads(1):  # tiny nets: one thread is fastest on a busy machine, and deterministic
            score = self.proxy(arch)
        return score if math.isfinite(score) else -1e3


class _Replay:
    """A suggester that answers with given choices (rebuilds an architecture from its choices)."""

    def __init__(self, choice: dict[str, Any]):
        self.choice = choice

    def choose(self, name, choices):
        return self.choice[name] if name in self.choice else list(choices)[0]


def _front(observed: list[Observation]) -> list[Observation]:
    """Non-dominated observations in (objective max, latency min)."""
    return [o for o in observed
            if not any(p.value >= o.value and p.cost.latency_ms <= o.cost.latency_ms
                       and (p.value > o.value or p.cost.latency_ms < o.cost.latency_ms) for p in observed)]


# ---------------------------------------------------------------- features and the predictor
def features(arch: Architecture, cost: CostEstimate) -> dict[str, float]:
    """Numbers that describe an architecture on the target: every choice (numeric as is, text one-hot; a
    choice the architecture lacks, e.g. weight bits when fp32, reads 0), log MACs/params/SRAM/flash and
    the exact latency."""
    row = {}
    for name, value in arch.choices:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            row[f"{name}={value}"] = 1.0
        else:
            row[name] = float(value)
    row.update({"log_macs": math.log1p(cost.macs), "log_params": math.log1p(cost.params),
                "log_sram": math.log1p(cost.peak_sram_bytes), "log_flash": math.log1p(cost.flash_bytes),
                "latency_ms": float(cost.latency_ms or 0.0)})
    return row


def feature_columns(rows: list[dict[str, float]]) -> list[str]:
    """The feature names that vary among the observed rows (a constant column tells the model nothing)."""
    names = sorted({k for r in rows for k in r})
    return [n for n in names if len({r.get(n, 0.0) for r in rows}) > 1]


def gp_predict(x: np.ndarray, y: np.ndarray, candidates: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of a Gaussian process (ARD Matérn 5/2 + white noise) fitted on (x, y), at ``candidates``.

    Features are standardised on the observations; with no varying feature the prediction is the mean."""
    from sklearn.exceptions import ConvergenceWarning  # heavy: sklearn
    from sklearn.gaussian_process import GaussianProcessRegressor  # heavy: sklearn
    from sklearn.gaussian_process.kernels import (  # heavy: sklearn
        ConstantKernel,
        Matern,
        WhiteKernel,
    )

    if x.shape[1] == 0 or len(y) < 2:
        return np.full(len(candidates), float(y.mean())), np.full(len(candidates), float(y.std() or 1.0))
    centre, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    kernel = (ConstantKernel(1.0, (1e-2, 1e2)) * Matern(np.full(x.shape[1], 3.0), (1e-1, 1e3), nu=2.5)
              + WhiteKernel(0.1, (1e-5, 1.0)))
    gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp.fit((x - centre) / scale, y)
    mean, std = gp.predict((candidates - centre) / scale, return_std=True)
    return mean, np.maximum(std, 1e-9)


# ---------------------------------------------------------------- expected hypervolume improvement
class Steps(NamedTuple):
    """The front as a step function of latency: on [starts[i], ends[i]) the best objective is levels[i]."""

    starts: np.ndarray
    ends: np.ndarray
    levels: np.ndarray


def front_steps(front: Sequence[tuple[float, float]], ref: tuple[float, float]) -> Steps:
    """(objective, latency) front points → the best objective reachable at each latency up to ref."""
    ref_value, ref_lat = ref
    edges = sorted({lat for _, lat in front if lat < ref_lat})
    starts = [-math.inf] + edges
    ends = edges + [ref_lat]
    levels = [max([ref_value] + [v for v, lat in front if lat <= s]) for s in starts]
    return Steps(np.array(starts), np.array(ends), np.array(levels))


def expected_hv_gain(mean: np.ndarray, std: np.ndarray, latency: np.ndarray, steps: Steps,
                     ref: tuple[float, float]) -> np.ndarray:
    """Expected hypervolume gain of adding each candidate (objective ~ N(mean, std), latency exact).

    A point (v, l) adds the area between v and the front's level over latencies l..ref, where v is
    above it: Σ_steps width × E[max(0, v − level)], and E[max(0, v − c)] = (μ − c)Φ(z) + σφ(z)."""
    from scipy.stats import norm  # heavy: scipy

    width = np.clip(steps.ends[None, :] - np.maximum(steps.starts[None, :], latency[:, None]), 0.0, None)
    diff = mean[:, None] - steps.levels[None, :]
    z = diff / std[:, None]
    improvement = diff * norm.cdf(z) + std[:, None] * norm.pdf(z)
    gain = (width * improvement).sum(axis=1)
    return np.where(latency < ref[1], gain, 0.0)


# ---------------------------------------------------------------- the registry's factory
def proxy_for(evaluator: str, data, seed: int = 0) -> Callable[[Architecture], float]:
    """The training-free proxy the start-up ranks by — never the objective itself: the evaluator entry's
    ``ranked_by`` (SynFlow when training: data-free, cheapest; otherwise the other proxy)."""
    score = resolve(EVALUATORS.get(EVALUATORS.get(evaluator).ranked_by).measure)
    return lambda arch: score(arch, data, seed=seed)


def make_ranked_sampler(context) -> RankedSampler:
    """The search's sampler registry entry ``ranked`` (``context``: the search's ``SamplerContext``)."""
    if context.space is None or context.device is None or context.data is None:
        raise WorkbenchError("--sampler ranked: needs a search's space, target device and data (use it through "
                             "workbench search / Search, or build a RankedSampler)")
    return RankedSampler(context.space, context.device, latency_budget_ms=context.latency_budget_ms,
                         data_shape=context.data.data_shape, proxy=proxy_for(context.evaluator, context.data),
                         seed=context.seed)
