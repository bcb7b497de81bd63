"""Worker processes on this machine, and the signals that stop a search cleanly.

- SIGTERM is handled like Ctrl-C (SIGINT): the running trial is marked failed and queued again, and
  the command exits (130 for SIGINT, 143 for SIGTERM) — see :func:`signals_as_interrupts`.
- Helpers started by ``workbench search --workers N`` never outlive their parent: on Linux the kernel
  sends each one SIGTERM when the parent dies for any reason (``PR_SET_PDEATHSIG``, even after
  ``kill -9``), and an interrupted parent passes the interrupt on and waits at most ``STOP_GRACE_S``
  before it kills a helper that has not stopped.
- Cleanup after an interrupt runs with SIGINT/SIGTERM held back (:func:`shielded`), so a second
  Ctrl-C cannot break a storage write half-way and print a traceback.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

from workbench._infra.errors import WorkbenchError, shown

STOP_GRACE_S = 10
_PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


REDELIVER_S = 1.0


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered where Python delivers Ctrl-C, so one code path stops a search."""


class _Delivery:
    """An interrupt raised while Python runs a finalizer or a weakref callback is printed as "Exception
    ignored" and lost — the process went on as if nothing had happened. So the signal is sent to the main
    thread again every ``REDELIVER_S`` until the code that stops the search calls :func:`acknowledge`."""

    def __init__(self):
        self.acknowledged = threading.Event()
        self.pending: int | None = None
        self.held = 0  # depth of shielded() blocks in the main thread
        self.deferred: int | None = None  # a stop that arrived inside one: raised when the outermost ends

    def on_signal(self, signum, _frame):
        if self.pending is None:
            self.pending = signum
            self.acknowledged.clear()
            threading.Thread(target=self._redeliver, args=(signum,), daemon=True).start()
        if self.held:
            self.deferred = signum
            return
        raise _interrupt(signum)

    def _redeliver(self, signum: int) -> None:
        while not self.acknowledged.wait(REDELIVER_S):
            signal.pthread_kill(threading.main_thread().ident, signum)


_delivery = _Delivery()


def acknowledge() -> None:
    """The interrupt reached the code that stops the search: stop sending it again."""
    _delivery.acknowledged.set()


@contextlib.contextmanager
def signals_as_interrupts():
    """SIGINT raises KeyboardInterrupt and SIGTERM :class:`Terminated` (one) in the main thread while the
    block runs, delivered until acknowledged (see :class:`_Delivery`)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _delivery.pending, _delivery.deferred = None, None
    previous = {sig: signal.signal(sig, _delivery.on_signal) for sig in STOP_SIGNALS}
    previous_hook = sys.unraisablehook

    def quiet_lost_interrupts(unraisable):  # a lost interrupt is sent again: no "Exception ignored" traceback
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            previous_hook(unraisable)

    sys.unraisablehook = quiet_lost_interrupts
    try:
        yield
    finally:
        acknowledge()
        sys.unraisablehook = previous_hook
        interrupted = _delivery.pending is not None  # a re-sent signal may still be on its way: let it pass
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_IGN if interrupted else handler)


def ignore_stop_signals() -> None:
    """After an interrupt has been handled: further Ctrl-C/SIGTERM while the process exits change nothing."""
    acknowledge()
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


def _interrupt(signum: int) -> KeyboardInterrupt:
    return Terminated(signum) if signum == signal.SIGTERM else KeyboardInterrupt()


@contextlib.contextmanager
def shielded():
    """Hold SIGINT/SIGTERM back while the block runs (a cleanup write, creating a trial); they arrive right
    after it. Masking the main thread is not enough: a signal sent to the process is then taken by another
    thread (a heartbeat, torch's workers) and Python still runs the handler in the main thread, inside the
    block. So the handler of :func:`signals_as_interrupts` defers it, and the block's end raises it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    _delivery.held += 1
    try:
        yield
    finally:
        _delivery.held -= 1
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    if _delivery.deferred is not None and not _delivery.held:  # the block ended normally: the stop arrives now
        deferred, _delivery.deferred = _delivery.deferred, None
        raise _interrupt(deferred)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
    except (OSError, AttributeError):  # not Linux: the parent's own stop_workers still applies
        pass


MAX_WORKERS_PER_CORE = 4  # a worker trains on one core and holds its own torch (~0.4 GB): more only queue


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask: a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def memory_headroom_bytes() -> int | None:
    """How much more memory this process may take: the machine's available memory, or less when an
    address-space limit (``ulimit -v``, RLIMIT_AS) is closer; None where neither can be read."""
    found = []
    try:
        with open("/proc/meminfo") as fh:
            found += [int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:")]
        import resource  # lazy

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit != resource.RLIM_INFINITY:
            with open("/proc/self/status") as fh:
                size = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
            found.append(max(0, limit - size))
    except (OSError, ImportError, StopIteration, ValueError):
        pass
    return min(found) if found else None


def check_worker_count(n: int, flag: str = "--workers") -> None:
    """Refuse, before any process starts, a worker count from 1 to ``MAX_WORKERS_PER_CORE`` x the cores."""
    cores = usable_cores()
    most = MAX_WORKERS_PER_CORE * cores
    if not 1 <= n <= most:
        raise WorkbenchError(f"{flag}: must be from 1 to {most} on this machine ({cores} CPU core"
                             f"{'s' if cores != 1 else ''}, at most {MAX_WORKERS_PER_CORE} worker processes per core), "
                             f"got {shown(n)}")


def start_workers(args: list[str], n: int) -> list[subprocess.Popen]:
    """``n`` ``workbench ARGS`` processes that die with this one."""
    command = [sys.executable, "-m", "workbench.cli", *args]
    return [subprocess.Popen(command, preexec_fn=_die_with_parent) for _ in range(n)]


def stop_workers(procs: list[subprocess.Popen], grace_s: float = STOP_GRACE_S) -> None:
    """Interrupt every running helper, give them ``grace_s`` together to mark their trials, then kill."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
    end = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """Shell convention: 128 + the signal number."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)
