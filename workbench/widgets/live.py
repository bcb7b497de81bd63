"""Live search: run a search from the notebook and watch the explorer fill in, trial by trial.

The search runs in a background thread, so the cell returns at once and the page keeps rendering
(widgets send their updates from that thread). The thread asks the search for one more finished
trial at a time (``Search.run(k)`` resumes the study up to k trials, with the same sampler), so when
it refreshes the explorer the trial is already stored as complete. ``Search.listeners`` still
deliver each ``TrialOutcome`` for the progress line. ``wait()`` joins the thread (headless runs).
"""
from __future__ import annotations

import html
import threading
import time

import ipywidgets as widgets
import optuna

from ..search import Search, SearchResult, TrialOutcome
from .explorer import ParetoExplorer


class LiveSearch(widgets.VBox):
    """``LiveSearch(Search(...), trials=20)``; ``start()`` runs it in a thread, ``wait()`` joins it.

    Children: a progress bar, the last trial's line, best-so-far on the target device, and a
    :class:`ParetoExplorer` of the study that refreshes after every finished trial.
    """

    def __init__(self, search: Search, trials: int, *, timeout: float | None = None, **explorer_kwargs):
        self.search, self.trials, self.timeout = search, trials, timeout
        self.result: SearchResult | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.progress = widgets.IntProgress(value=0, min=0, max=trials,
                                            description="trials", bar_style="info")
        self.last = widgets.HTML("<i>not started</i>")
        self.best = widgets.HTML()
        self.best.add_class("wb-best")
        self.stop_button = widgets.Button(description="Stop after this trial", icon="stop", disabled=True)
        self.stop_button.on_click(lambda _: self.stop())
        self.explorer = ParetoExplorer(search, **explorer_kwargs)
        search.listeners.append(self._on_outcome)
        super().__init__([widgets.HBox([self.progress, self.stop_button]), self.last, self.best, self.explorer])
        self.add_class("wb-live")
        self.progress.value = self.finished
        self._show_best()

    def start(self) -> "LiveSearch":
        """Start the search thread and return at once (the widget updates itself)."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self.stop_button.disabled = False
        self.progress.bar_style = "info"
        self._thread = threading.Thread(target=self._run, daemon=True, name="workbench-search")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Finish the running trial, then stop (the study keeps everything; start() resumes)."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> SearchResult | None:
        """Block until the search thread ends; re-raises its error so a notebook cell fails loudly."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.result

    @property
    def finished(self) -> int:
        """Finished trials in the study (complete or pruned), as ``Search.run`` counts them."""
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        return len(self.search.study.get_trials(deepcopy=False, states=states))

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------ thread
    def _run(self) -> None:
        start = time.monotonic()
        try:
            while self.finished < self.trials and not self._stop.is_set():
                if self.timeout is not None and time.monotonic() - start > self.timeout:
                    break
                self.result = self.search.run(self.finished + 1)  # exactly one more finished trial
                self.progress.value = self.finished
                self.explorer.refresh()
                self._show_best()
            if self.result is None and self.finished:  # nothing left to run: a resumed, complete study
                self.result = self.search.run(self.finished)
            self.progress.bar_style = "success"
        except BaseException as exc:  # shown in the widget and re-raised by wait()
            self.error = exc
            self.progress.bar_style = "danger"
            self.last.value = f"<b style='color:#c00'>search failed:</b> {html.escape(repr(exc))}"
        finally:
            self.stop_button.disabled = True

    def _on_outcome(self, outcome: TrialOutcome) -> None:
        self.last.value = html.escape(outcome.line())

    def _show_best(self) -> None:
        front = self.explorer.front
        best = max(front, key=lambda r: r.accuracy, default=None)
        target = self.explorer.profile.name
        if best is None:
            self.best.value = f"best so far on {html.escape(target)}: no trained trial fits yet"
            return
        lat = best.prediction(self.explorer.profile)["latency_ms"]
        self.best.value = (f"best so far on <b>{html.escape(target)}</b>: accuracy <b>{best.accuracy:.4f}</b> "
                           f"at {lat:.3f} ms (trial {best.number}) · front size {len(front)}")
