"""The evaluator registry: every ``--evaluator`` choice and what the rest of the workbench needs to know about it.

An evaluator judges a feasible candidate's quality: by training it (held-out accuracy) or by a training-free
proxy score (milliseconds). The study schema (which trial key holds the measurement), repeats (whether
seed-to-seed noise exists to measure), the search (the evaluation seed, the progress label, the ranked
sampler's start-up proxy) and the CLI all ask the entry, never its name. It lives on the model floor, next to
``train`` and ``proxies``, so every one of those users can import it; its ``measure`` is a
``"module:attribute"`` string, so torch is imported only when a candidate is evaluated.

Register an evaluator with one entry (``trains`` decides the rest)::

    EVALUATORS.register(Evaluator("zen", "Zen-NAS score (data-free)", "my_proxies:zen_score", trains=False,
                                  ranked_by="synflow"))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from workbench._infra.registry import Registry


@dataclass(frozen=True)
class Evaluator:
    """One way of judging a candidate.

    ``measure``: ``measure(arch, data, *, epochs, seed)`` returning a :class:`workbench.model.train.TrainResult`
    when ``trains``, else ``measure(arch, data, *, seed)`` returning a float score — a callable, or its
    ``"module:attribute"`` (imported on first use). ``ranked_by``: the training-free evaluator whose score the
    ranked sampler ranks candidates by before they are evaluated — never the evaluator itself, so the start-up
    does not pre-judge the objective.
    """

    name: str
    help: str
    measure: Callable[..., Any] | str
    trains: bool  # trained: an accuracy, with seed-to-seed noise (repeats and retraining make sense)
    ranked_by: str

    @property
    def label(self) -> str:
        """How a progress line names the measurement: ``acc``, or ``score`` for a training-free proxy."""
        return "acc" if self.trains else "score"

    def seed(self, study_seed: int, trial_number: int) -> int:
        """Training uses the study seed plus the trial number (each trial its own initialisation, reproducible);
        a proxy scores a fixed initialisation (the study seed), so its scores compare architectures only."""
        return study_seed + trial_number if self.trains else study_seed


EVALUATORS: Registry[Evaluator] = Registry("evaluator", "--evaluator")
EVALUATORS.register(Evaluator("train", "train each candidate for --epochs and measure its held-out accuracy",
                              "workbench.model.train:train_and_evaluate", trains=True, ranked_by="synflow"))
EVALUATORS.register(Evaluator("synflow", "SynFlow training-free score (data-free; milliseconds)",
                              "workbench.model.proxies:synflow_score", trains=False, ranked_by="naswot"))
EVALUATORS.register(Evaluator("naswot", "NASWOT training-free score on 64 training samples (milliseconds)",
                              "workbench.model.proxies:naswot_score", trains=False, ranked_by="synflow"))
