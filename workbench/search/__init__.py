"""Hardware-aware multi-objective search with Optuna.

One trial: sample an architecture from the space (through the trial, so the sampler learns), score
it on *every* shipped device profile (microseconds), set the target device's constraints with
``trial.set_constraint`` and — only when they hold, and only when the study has not trained the same
architecture + policy already — train and evaluate it. Everything needed to redraw fronts later
(architecture, per-device predictions, accuracy) goes into the trial's user attributes in the Optuna
storage, so studies resume and can be shared between processes/machines.

Modules: :mod:`.config` (the validated, frozen :class:`SearchConfig`: defaults and choices),
:mod:`.samplers` (the sampler registry), :mod:`.objective` (the plain objective:
architecture → costs, constraints, evaluation → values; benchmarks call it), :mod:`.runner` (the
:class:`Search` runner: storage, workers, tally, heartbeats, listeners), :mod:`.counting` (what
``--trials`` counts) and :mod:`.progress` (what listeners receive).
"""
from workbench.model.evaluators import EVALUATORS
from workbench.search.config import QUICKSTART, SearchConfig, check_latency_coverage, default, parse_objectives
from workbench.search.counting import completed_trials, is_trained, trained_trials
from workbench.search.progress import TrialOutcome, print_progress
from workbench.search.runner import MAX_UNTRAINED_STREAK, Search, SearchExhausted, SearchResult
from workbench.search.samplers import SAMPLERS, Sampler, SamplerContext, make_sampler, register_sampler

__all__ = ["EVALUATORS", "MAX_UNTRAINED_STREAK", "QUICKSTART", "SAMPLERS", "Sampler", "SamplerContext", "Search",
           "SearchConfig", "SearchExhausted", "SearchResult", "TrialOutcome", "check_latency_coverage",
           "completed_trials", "default", "is_trained", "make_sampler", "parse_objectives", "print_progress",
           "register_sampler", "trained_trials"]
