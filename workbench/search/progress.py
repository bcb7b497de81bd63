"""What a search tells its listeners after each trial (the CLI's progress line, the notebook widgets)."""
from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass
class TrialOutcome:
    """One finished trial. ``done``/``total``: trained trials of the study (all workers') and its target;
    ``counted`` is False for a candidate that was not trained — infeasible (``rejected``) or a repeat of
    an architecture the study already trained (``duplicate_of``) — which leaves ``done`` where it was."""

    number: int
    done: int
    total: int
    accuracy: float | None  # a duplicate: the original's (mean) value, told to the sampler
    latency_ms: float | None
    peak_sram_kb: float
    flash_kb: float
    rejected: tuple[str, ...]
    seconds: float
    summary: str
    metric: str = "acc"  # "score" when a training-free proxy stands in for accuracy
    counted: bool = True
    duplicate_of: int | None = None

    def line(self, pad: int = 0) -> str:
        """The trial in one line: costs on the target, accuracy or why it was not trained, the architecture
        (``pad`` right-aligns the trial number, for columns in a terminal)."""
        lat = "       —" if self.latency_ms is None else f"{self.latency_ms:8.3f}"
        costs = f"lat {lat} ms  sram {self.peak_sram_kb:7.1f} KB  flash {self.flash_kb:7.1f} KB"
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
