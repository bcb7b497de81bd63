"""A stored trial's architecture by ``--trial`` (a number or ``best``), read without torch.

Why apart from :mod:`workbench.export.trial_source`: costing a trial (``workbench train-cost``) needs only its
architecture, not its weights, and must stay light (no torch import); the rule for ``best`` is the study's own
(:meth:`~workbench.study.stored.StoredStudy.best`).
"""
from __future__ import annotations

from workbench._infra.errors import WorkbenchError
from workbench.model.arch import Architecture
from workbench.study.schema import Keys
from workbench.study.stored import StoredStudy


def trial_architecture(stored: StoredStudy, trial: int | str, profile) -> tuple[int, Architecture]:
    """(trial number, its architecture); ``best``: the best trial of the front on ``profile``."""
    if str(trial) == "best":
        best = stored.best(profile)
        if best is None:
            raise WorkbenchError(f"--trial best: study {stored.name!r} has no trained trial that fits {profile.name}")
        return best.number, best.arch
    try:
        number = int(trial)
    except ValueError:
        raise WorkbenchError(f"--trial: expected a trial number or 'best', got {trial!r}") from None
    frozen = stored.trial(number)
    if frozen is None or Keys.ARCH not in frozen.user_attrs:
        raise WorkbenchError(f"--trial: study {stored.name!r} has no trial {number} with an architecture "
                             f"(trials 0..{len(stored.study.trials) - 1})")
    return number, Architecture.from_dict(frozen.user_attrs[Keys.ARCH])
