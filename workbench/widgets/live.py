"""Live search: run a search from the notebook and watch the explorer fill in, trial by trial — and find it
again after a page reload or from a new cell.

The search runs in a background thread, so the cell returns at once and the page keeps rendering
(widgets send their updates from that thread). The thread asks the search for one more trained
trial at a time (``Search.run(k)`` resumes the study up to k trials, with the same sampler), so when
it refreshes the explorer the trial is already stored as complete. ``Search.listeners`` still
deliver each ``TrialOutcome`` for the last-trial line. ``wait()`` joins the thread (headless runs).

No invisible searches: every widget state is synced (a reloaded page shows the live view as it is now
and keeps updating), every running search of this kernel is registered by storage and study name, and
``LiveSearch.attach(study, storage)`` in a new cell shows it again — or, when the search runs elsewhere
(another kernel, ``workbench search``/``worker`` processes), follows it by polling the storage. Progress
reads the storage too: ``n / N`` trials and the time left, estimated from the last completions.
"""
from __future__ import annotations

import html
import threading
import time

import ipywidgets as widgets
import optuna

from workbench._infra.errors import WorkbenchError
from workbench._infra.notices import listening, one_line
from workbench.search import Search, SearchResult, TrialOutcome, is_trained
from workbench.storages.storage import DEFAULT_STORAGE, load_study
from workbench.study.front import best_of
from workbench.study.schema import StudySettings
from workbench.widgets.common import one_line_error
from workbench.widgets.explorer import ParetoExplorer

_RUNNING: dict[tuple[str, str], "LiveSearch"] = {}  # (storage URL, study) → the widget whose thread runs it
_REGISTRY_LOCK = threading.Lock()


def progress_counts(study: optuna.Study) -> tuple[int, int, list[float]]:
    """(trained, running, completion times of the trained ones in s since the epoch, oldest first) — read from
    the storage. Trained trials are what a study's target counts (``workbench.search.is_trained``): candidates
    rejected before training and duplicates of a trained architecture are stored but not counted."""
    trials = study.get_trials(deepcopy=False)
    trained = [t for t in trials if is_trained(t)]
    running = sum(1 for t in trials if t.state == optuna.trial.TrialState.RUNNING)
    times = sorted(t.datetime_complete.timestamp() for t in trained if t.datetime_complete is not None)
    return len(trained), running, times


def seconds_left(completions: list[float], finished: int, target: int, window: int = 10) -> float | None:
    """Time left at the pace of the last ``window`` completions (None until two trials have finished)."""
    recent = completions[-window:]
    if finished >= target:
        return 0.0
    if len(recent) < 2 or recent[-1] <= recent[0]:
        return None
    return (recent[-1] - recent[0]) / (len(recent) - 1) * (target - finished)


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "time left: estimating (after two trials)"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"about {seconds // 3600} h {seconds % 3600 // 60:02d} min left"
    if seconds >= 60:
        return f"about {seconds // 60} min {seconds % 60:02d} s left"
    return f"about {seconds} s left"


class LiveSearch(widgets.VBox):
    """``LiveSearch(Search(...), trials=20)``; ``start()`` runs it in a thread, ``wait()`` joins it.

    Children: a progress bar with ``n / N`` and the time left, the last trial's line, best-so-far on
    the target device, and a :class:`ParetoExplorer` of the study that refreshes after every finished
    trial. ``LiveSearch.attach(study, storage)`` finds a running search again.
    """

    def __init__(self, search: Search, trials: int | None, *, timeout: float | None = None, poll_s: float = 2.0,
                 **explorer_kwargs):
        self.search, self.timeout, self.poll_s = search, timeout, poll_s
        self.study: optuna.Study = search.study
        self.trials = int(trials) if trials is not None else StudySettings.stored_target(self.study)
        self.result: SearchResult | None = None
        self.error: BaseException | None = None
        self.following = False  # True: the search runs elsewhere; this widget polls the storage
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.progress = widgets.IntProgress(value=0, min=0, max=max(self.trials, 1), description="trials",
                                            bar_style="info")
        self.count = widgets.HTML()
        self.count.add_class("wb-progress")
        self.last = widgets.HTML()
        self.last.add_class("wb-last")
        self.best = widgets.HTML()
        self.best.add_class("wb-best")
        self.notices = widgets.HTML()  # the search thread's WorkbenchNotices (e.g. the space looks exhausted)
        self.notices.add_class("wb-notices")
        self.shown_notices: list[str] = []
        self.stop_button = widgets.Button(description="Stop after this trial", icon="stop", disabled=True,
                                          layout=widgets.Layout(width="auto", min_width="190px"))
        self.stop_button.add_class("wb-stop")
        self.stop_button.on_click(lambda _: self._toggle())
        self.explorer = ParetoExplorer(search, **explorer_kwargs)
        if search is not None:
            search.listeners.append(self._on_outcome)
        super().__init__([widgets.HBox([self.progress, self.count, self.stop_button]), self.last, self.best,
                          self.notices, self.explorer], layout=widgets.Layout(width="100%"))
        self.add_class("wb-live")
        self._show_progress()
        self.last.value = self._idle_text()
        self._show_best()

    # ------------------------------------------------------------ finding a search again
    @property
    def key(self) -> tuple[str, str]:
        return (str(self.explorer.view.storage_url or ""), self.study.study_name)

    @classmethod
    def attach(cls, study: str, storage: str = DEFAULT_STORAGE, **explorer_kwargs) -> "LiveSearch":
        """The live view of ``study``: the running widget of this kernel (display it again; its state is
        current), else a view that follows the study in the storage while any process works on it."""
        with _REGISTRY_LOCK:
            running = _RUNNING.get((str(storage), study))
        if running is not None and running.running:
            return running
        return cls.follow(study, storage, **explorer_kwargs)

    @classmethod
    def follow(cls, study: str, storage: str = DEFAULT_STORAGE, **explorer_kwargs) -> "LiveSearch":
        """A live view of a search run by other processes (CLI, workers, another kernel): polls the storage."""
        opened = load_study(study, storage)
        widget = cls.__new__(cls)
        widget._init_follower(opened, storage, explorer_kwargs)
        return widget

    def _init_follower(self, study: optuna.Study, storage: str, explorer_kwargs: dict) -> None:
        """Same children as a running widget, fed by polling instead of by a search in this kernel."""

        class _Stored:  # what ParetoExplorer and __init__ read from a Search
            def __init__(self, st):
                self.study, self.storage_url, self.listeners = st, storage, []

        LiveSearch.__init__(self, _Stored(study), None, **explorer_kwargs)
        self.search = None
        self.following = True
        self._start_thread(self._follow)

    # ------------------------------------------------------------ running
    def start(self) -> "LiveSearch":
        """Start the search thread and return at once (the widget updates itself). If this kernel already
        runs the same study, follow that search instead of starting a second one on the same study."""
        if self.running:
            return self
        with _REGISTRY_LOCK:
            other = _RUNNING.get(self.key)
            if other is not None and other is not self and other.running:
                self.following = True
                self.last.value = ("<i>this study is already being searched in this kernel: following that "
                                   "search</i>")
            else:
                _RUNNING[self.key] = self
        self._start_thread(self._follow if self.following else self._run)
        return self

    def _start_thread(self, target) -> None:
        self._stop.clear()
        self.progress.bar_style = "info"
        self._show_button(running=True)
        self._thread = threading.Thread(target=target, daemon=True, name="workbench-search")
        self._thread.start()

    def stop(self) -> None:
        """Finish the running trial, then stop (the study keeps everything; start() resumes)."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> SearchResult | None:
        """Block until the search thread ends; re-raises its error (one line in a notebook, see
        ``workbench.widgets.common.show_errors_as_one_line``)."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.result

    @property
    def finished(self) -> int:
        """Trained trials in the study, as ``Search.run`` counts them toward its target."""
        return progress_counts(self.study)[0]

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------ threads
    def _run(self) -> None:
        start = time.monotonic()
        self.shown_notices, self.notices.value = [], ""
        try:
            self._store_target()
            while self.finished < self.trials and not self._stop.is_set():
                if self.timeout is not None and time.monotonic() - start > self.timeout:
                    break
                with listening(self._show_notice):  # this thread's notices go to the widget, not to a random cell
                    self.result = self.search.run(self.finished + 1)  # exactly one more trained trial
                self._after_trial()
                if self.result.stopped:  # the space looks exhausted under the constraints: asking again is futile
                    self.last.value = f"<i>stopped: {html.escape(self.result.stopped)}</i>"
                    break
            if self.result is None and self.finished:  # nothing left to run: a resumed, complete study
                self.result = self.search.run(self.finished)
                self.last.value = (f"<i>resumed a complete study: {self.finished} / {self.trials} trials already "
                                   "stored, nothing left to run</i>")
            self.progress.bar_style = "success" if self.finished >= self.trials else "warning"
        except BaseException as exc:  # noqa: BLE001 — shown in the widget and re-raised by wait()
            self.error = exc
            self.progress.bar_style = "danger"
            self.last.value = one_line_error(exc)
        finally:
            self._show_progress()
            self._show_button(running=False)

    def _store_target(self) -> None:
        """The study remembers the whole target (``Search.run(k)`` stores k, one more each step), so a view
        attached later — or a ``workbench worker`` — knows N."""
        if self.trials > StudySettings.stored_target(self.study):
            self.study.set_user_attr(StudySettings.TARGET, self.trials)

    def _follow(self) -> None:
        """Poll the storage until the study reaches its target and nothing runs (or stop() is pressed)."""
        seen = -1
        try:
            while not self._stop.is_set():
                self.trials = max(self.trials, StudySettings.stored_target(self.study))
                finished, running, _ = progress_counts(self.study)
                if finished != seen:
                    seen = finished
                    self._after_trial()
                if self.trials and finished >= self.trials and not running:
                    break
                self._stop.wait(self.poll_s)
            self.progress.bar_style = "success" if self.trials and self.finished >= self.trials else "warning"
            self.last.value = self._idle_text()
        except WorkbenchError as exc:
            self.error = exc
            self.last.value = one_line_error(exc)

    def _after_trial(self) -> None:
        if not self.trials:
            self.trials = StudySettings.stored_target(self.study)
        self._show_progress()
        self.explorer.refresh()
        self._show_best()

    def _toggle(self) -> None:
        """The one button: stop a running search after its trial, or resume a stopped one."""
        if self.running:
            self.stop()
        else:
            self.start()

    # ------------------------------------------------------------ what is shown
    def _show_button(self, running: bool) -> None:
        """"Stop after this trial" while it runs; "Resume search" when stopped short of the target."""
        incomplete = not self.trials or self.finished < self.trials
        if running and not self.following:
            self.stop_button.description, self.stop_button.icon, self.stop_button.disabled = \
                "Stop after this trial", "stop", False
        elif not running and incomplete and self.search is not None and self.error is None:
            self.stop_button.description, self.stop_button.icon, self.stop_button.disabled = \
                "Resume search", "play", False
            self.last.value = f"<i>stopped at {self.finished} / {self.trials} trials; Resume continues the study</i>"
        else:
            self.stop_button.disabled = True

    def _show_progress(self) -> None:
        finished, running, completions = progress_counts(self.study)
        target = max(self.trials, finished)
        self.progress.max = max(target, 1)
        self.progress.value = finished
        left = "done" if target and finished >= target else duration_text(seconds_left(completions, finished, target))
        running_text = f" · {running} running" if running else ""
        self.count.value = (f"<span class='wb-count' data-finished='{finished}' data-target='{target}'>"
                            f"<b>{finished} / {target}</b> trained trials · {left}{running_text}</span>")

    def _idle_text(self) -> str:
        finished = self.finished
        if self.trials and finished >= self.trials:
            return f"<i>complete: {finished} / {self.trials} trials stored</i>"
        if finished:
            return f"<i>{finished} / {self.trials} trials stored; start() resumes the study</i>"
        return "<i>not started</i>"

    def _show_notice(self, notice) -> None:
        self.shown_notices.append(str(notice))
        self.notices.value = "".join(f"<div style='font-size:12px;color:#c60'>{html.escape(one_line(text))}</div>"
                                     for text in self.shown_notices)

    def _on_outcome(self, outcome: TrialOutcome) -> None:
        self.last.value = html.escape(outcome.line())

    def _show_best(self) -> None:
        front = self.explorer.front
        best = best_of(front, self.explorer.profile)
        target = self.explorer.profile.name
        if best is None:
            self.best.value = f"best so far on {html.escape(target)}: no trained trial fits yet"
            return
        lat = best.prediction(self.explorer.profile)["latency_ms"]
        self.best.value = (f"best so far on <b>{html.escape(target)}</b>: accuracy <b>{best.accuracy_text()}</b> "
                           f"at {lat:.3f} ms (trial {best.number}) · front size {len(front)}")
