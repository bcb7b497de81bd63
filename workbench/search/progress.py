"""What a search tells its listeners after each trial (the CLI's progress line, the notebook widgets)."""
from __future__ import annotations

import sys
from dataclasses import dataclass

from workbench.study.objectives import OBJECTIVES


@dataclass
class TrialOutcome:
    """One finished trial. ``done``/``total``: trained trials of the study (all workers') and its target;
    ``counted`` is False for a candidate that was not trained — infeasible (``rejected``) or a repeat of
    an architecture the study already trained (``duplicate_of``) — which leaves ``done`` where it was.
    ``costs``: each cost objective's value on the target in stored units (objective name → value; None where
    the target cannot run the candidate), printed in registry order."""

    number: int
    done: int
    total: int
    accuracy: float | None  # a duplicate: the original's (mean) value, told to the sampler
    costs: dict[str, float | None]
    rejected: tuple[str, ...]
    seconds: float
    summary: str
    metric: str = "acc"  # "score" when a training-free proxy stands in for accuracy
    counted: bool = True
    duplicate_of: int | None = None

    def line(self, pad: int = 0) -> str:
        """The trial in one line: costs on the target, accuracy or why it was not trained, the architecture
        (``pad`` right-aligns the trial number, for columns in a terminal)."""
        costs = "  ".join(OBJECTIVES[name].cell(value) for name, value in self.costs.items())
        if self.rejected:
            verdict = f"rejected before training ({', '.join(self.rejected)})"
        elif self.duplicate_of is not None:
            verdict = f"already trained as trial {self.duplicate_of} ({self.metric} {self.accuracy:.4f}): not retrained"
        else:
            verdict = f"{self.metric} {self.accuracy:.4f}  ({self.seconds:.1f} s)"
        return f"trial {self.number:>{pad}}  {costs}  {verdict}  {self.summary}"

    def counter(self) -> str:
        """``[  3/24]`` for a trained trial; ``[  -/24]`` for one that did not count."""
        done = f"{self.done:>3}" if self.counted else "  -"
        return f"[{done}/{self.total}]"


def print_progress(outcome: TrialOutcome, stream=None) -> None:
    """The CLI's live line: one line per finished trial."""
    print(f"{outcome.counter()} {outcome.line(pad=3)}", file=stream or sys.stderr, flush=True)
