"""Process-wide settings, changed only inside a block and restored after it, safe across threads.

Some things a job needs to change belong to the whole process, not to the thread doing the job:
torch's intra-op thread count, a logger's level, file descriptor 2 (where C++ converters print),
``sys.stdout``, the warning filters, environment variables. In a notebook the live search and the export
panel run in background threads at the same time, and two plain "save, set, restore" blocks that
interleave restore each other's values: thread B saves the sink thread A redirected fd 2 to and puts
it back after A has restored the terminal, so stderr is lost for good.

Each setting here is a :class:`SharedSetting`: any number of threads may hold it at the same value
at once; it is applied when the first holder enters and restored when the last one leaves. A thread
asking for a *different* value waits until the others are done (a thread that is the only holder may
nest a different value; it is undone first). The context managers:

- :func:`torch_threads` — ``torch.set_num_threads`` for a training or timing block;
- :func:`logger_levels` — logger levels (e.g. onnxruntime's root-logger advice at ERROR);
- :func:`environment` — environment variables a library reads when called (litert-torch's progress tree);
- :func:`quiet` — everything converters print: loggers, Python warnings (notices still pass), stdout
  and file descriptor 2.

What sharing cannot do: these settings belong to the process, so while one thread is quiet, what other
threads print to stdout or file descriptor 2 is silenced too (the C++ converters write to fd 2 directly;
no per-thread redirection exists for it). Restoring is what is made safe: the terminal and the levels
always come back once the last holder leaves, whatever order the threads finish in.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import threading
import warnings
from typing import Any, Callable, Hashable, Iterator

from workbench._infra.notices import WorkbenchNotice


class SharedSetting:
    """One process-wide setting: ``apply(value)`` changes it and returns what ``restore`` needs to undo it."""

    def __init__(self, name: str, apply: Callable[[Any], Any], restore: Callable[[Any], None]):
        self.name = name
        self._apply, self._restore = apply, restore
        self._cond = threading.Condition()
        self._levels: list[dict] = []  # nested values: {"value", "holders": {thread id: count}, "undo"}

    @contextlib.contextmanager
    def held(self, value: Hashable) -> Iterator[None]:
        """The setting is ``value`` while the block runs (shared with other threads holding the same value)."""
        me = threading.get_ident()
        with self._cond:
            level = self._join(value, me)
        try:
            yield
        finally:
            with self._cond:
                level["holders"][me] -= 1
                if not level["holders"][me]:
                    del level["holders"][me]
                self._unwind()

    def _join(self, value, me) -> dict:
        while True:
            top = self._levels[-1] if self._levels else None
            if top is not None and top["value"] == value:
                break
            if top is None or set(top["holders"]) == {me}:
                top = {"value": value, "holders": {}, "undo": self._apply(value)}
                self._levels.append(top)
                break
            self._cond.wait()
        top["holders"][me] = top["holders"].get(me, 0) + 1
        return top

    def _unwind(self) -> None:
        """Undo the levels nobody holds any more, innermost first (a level below one still held stays)."""
        changed = False
        while self._levels and not self._levels[-1]["holders"]:
            self._restore(self._levels.pop()["undo"])
            changed = True
        if changed:
            self._cond.notify_all()

    @property
    def holders(self) -> int:
        """How many blocks hold the setting now (tests and diagnostics)."""
        with self._cond:
            return sum(sum(level["holders"].values()) for level in self._levels)


def _set_torch_threads(n: int) -> int:
    import torch  # heavy: torch

    old = torch.get_num_threads()
    if n != old:
        torch.set_num_threads(n)
    return old


def _restore_torch_threads(old: int) -> None:
    import torch  # heavy: torch

    if torch.get_num_threads() != old:
        torch.set_num_threads(old)


TORCH_THREADS = SharedSetting("torch threads", _set_torch_threads, _restore_torch_threads)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """``torch.set_num_threads(n)`` for the block, restored after; ``None`` leaves torch's setting alone.

    Training and timing use one thread so results are bit-identical run to run (:mod:`workbench.model.train`)."""
    if n is None:
        yield
        return
    with TORCH_THREADS.held(int(n)):
        yield


_LOGGERS: dict[str, SharedSetting] = {}
_REGISTRY_LOCK = threading.Lock()


def _logger_setting(name: str) -> SharedSetting:
    with _REGISTRY_LOCK:
        if name not in _LOGGERS:
            logger = logging.getLogger(name)

            def apply(level, logger=logger):
                old = logger.level
                logger.setLevel(level)
                return old

            _LOGGERS[name] = SharedSetting(f"logger {name or 'root'}", apply, logger.setLevel)
        return _LOGGERS[name]


@contextlib.contextmanager
def logger_levels(levels: dict[str, int]) -> Iterator[None]:
    """Set these loggers' levels (``""`` is the root logger) for the block."""
    with contextlib.ExitStack() as stack:
        for name in sorted(levels):  # one order everywhere: two threads never wait on each other crosswise
            stack.enter_context(_logger_setting(name).held(levels[name]))
        yield


_ENV: dict[str, SharedSetting] = {}


def _env_setting(name: str) -> SharedSetting:
    with _REGISTRY_LOCK:
        if name not in _ENV:
            def apply(value, name=name):
                old = os.environ.get(name)
                os.environ[name] = value
                return old

            def restore(old, name=name):
                if old is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = old

            _ENV[name] = SharedSetting(f"environment {name}", apply, restore)
        return _ENV[name]


@contextlib.contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (for libraries that read them when called, not at import)."""
    with contextlib.ExitStack() as stack:
        for name in sorted(variables):
            stack.enter_context(_env_setting(name).held(str(variables[name])))
        yield


def _silence_fd2(_value) -> tuple[int, Any] | None:
    sink = tempfile.TemporaryFile()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): skip the C++ silencing
        sink.close()
        return None
    return saved, sink


def _restore_fd2(undo) -> None:
    if undo is not None:
        saved, sink = undo
        os.dup2(saved, 2)
        os.close(saved)
        sink.close()


def _silence_python(_value) -> tuple:
    """Python warnings ignored (notices still shown) and ``sys.stdout`` to a sink."""
    saved = (warnings.filters[:], sys.stdout)
    warnings.simplefilter("ignore")
    warnings.filterwarnings("default", category=WorkbenchNotice)
    sys.stdout = io.StringIO()
    return saved


def _restore_python(saved) -> None:
    warnings.filters[:] = saved[0]
    getattr(warnings, "_filters_mutated", lambda: None)()  # as catch_warnings does on exit: drop "already shown" caches
    sys.stdout = saved[1]


FD2 = SharedSetting("file descriptor 2", _silence_fd2, _restore_fd2)
PYTHON_OUTPUT = SharedSetting("Python warnings and stdout", _silence_python, _restore_python)


@contextlib.contextmanager
def quiet(loggers: tuple[str, ...] = ("",)) -> Iterator[None]:
    """Silence converters while the block runs: ``loggers`` at ERROR, Python warnings (not
    :class:`~workbench._infra.notices.WorkbenchNotice`), stdout and file descriptor 2, where C++ parts (MLIR/TFLite
    converter, XNNPACK) log directly. Errors still surface as exceptions."""
    with logger_levels({name: logging.ERROR for name in loggers}), PYTHON_OUTPUT.held(True), FD2.held(True):
        yield
