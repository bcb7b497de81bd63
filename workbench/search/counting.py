"""What ``--trials`` counts: trained candidates. And which trial already trained an architecture.

A study holds three kinds of COMPLETE trials: **trained** ones (their model was trained, or scored by a
training-free proxy: user attribute ``trained``), **infeasible** candidates (``rejected``: over a limit
of the target, never trained; kept with their constraints so samplers learn where the limits are) and
**duplicates** (``duplicate_of``: an architecture + policy the study had already trained; not trained
again, told the original's values). Only trained trials count toward a study's target. Studies written
before the ``trained`` attribute existed count every COMPLETE trial that is neither of the other two.
"""
from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from workbench.study.schema import Keys, arch_key


def is_trained(trial: FrozenTrial) -> bool:
    """A COMPLETE trial whose candidate was really trained (or proxy-scored): the ones ``--trials`` counts."""
    if trial.state != TrialState.COMPLETE:
        return False
    attrs = trial.user_attrs
    if Keys.TRAINED in attrs:
        return bool(attrs[Keys.TRAINED])
    return Keys.ARCH in attrs and _claims(trial)


def trained_trials(study: optuna.Study) -> int:
    """Trained trials in the storage (all workers'): what a study's target counts."""
    return sum(map(is_trained, study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))))


def completed_trials(study: optuna.Study) -> int:
    """The trials that count toward the study's target — trained ones (:func:`trained_trials`; infeasible and
    duplicate candidates are COMPLETE in Optuna's sense but do not count). Kept under its old name."""
    return trained_trials(study)


def key_of(trial: FrozenTrial) -> str | None:
    """A trial's architecture key (computed from its stored architecture in studies older than the key)."""
    attrs = trial.user_attrs
    if Keys.ARCH_KEY in attrs:
        return attrs[Keys.ARCH_KEY]
    return arch_key(attrs[Keys.ARCH]) if Keys.ARCH in attrs else None


def holder(trials: list[FrozenTrial], key: str, me: int) -> FrozenTrial | None:
    """The trial that trains (or trained) architecture ``key``, other than trial ``me``: the first trained
    one, else the first RUNNING one that claimed it (a feasible candidate that is neither a duplicate nor
    waiting for one). None: nobody has it — ``me`` may train it."""
    running = None
    for t in sorted(trials, key=lambda t: t.number):
        if t.number == me:
            continue
        if t.state == TrialState.COMPLETE and is_trained(t) and key_of(t) == key:
            return t
        if running is None and t.state == TrialState.RUNNING and t.user_attrs.get(Keys.ARCH_KEY) == key \
                and _claims(t):  # a running trial claims its architecture only once it wrote the key
            running = t
    return running


def _claims(trial: FrozenTrial) -> bool:
    """Neither rejected, nor a duplicate, nor surplus: a candidate that is (or was) trained."""
    attrs = trial.user_attrs
    return not attrs.get(Keys.REJECTED) and attrs.get(Keys.DUPLICATE_OF) is None and not attrs.get(Keys.SURPLUS)
