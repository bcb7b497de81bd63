"""The workbench's notices: things a person should know that are not errors.

A notice is a :class:`WorkbenchNotice` (a ``UserWarning``), raised by :func:`notify`. Where it goes:

- a thread that is :func:`listening` (a widget's background job: the export panel, the live search)
  hands it to its listeners, which show it in the widget — a warning raised in a background thread
  would otherwise land in whichever notebook cell happens to be running;
- otherwise it is a Python warning: the CLI prints it as one ``notice: ...`` line on stderr
  (:func:`print_on_one_line`), a notebook cell shows it under the cell, pytest records it, and
  ``warnings.simplefilter("error", WorkbenchNotice)`` turns it into an exception for a script that wants one.

Every notice the workbench emits is a subclass, so a caller can filter by kind.
"""
from __future__ import annotations

import sys
import threading
import warnings
from contextlib import contextmanager
from typing import Callable


class WorkbenchNotice(UserWarning):
    """Something the user should know about a result that is still usable (not a :class:`WorkbenchError`)."""


class OtherMachineWarning(WorkbenchNotice):
    """A measured profile is being used on a machine other than the one it was measured on
    (:mod:`workbench.hardware.machine`)."""


class RetrainMismatch(WorkbenchNotice):
    """An export retrained a trial and the accuracy differs from the one stored by the search (another
    environment or thread count: the exported weights are not those the search evaluated)."""


Listener = Callable[[WorkbenchNotice], None]
_LOCAL = threading.local()  # .listeners: the current thread's listener stack


def notify(message: str, category: type[WorkbenchNotice] = WorkbenchNotice, *, stacklevel: int = 2) -> None:
    """Raise a notice: to this thread's listeners if it has any, else as a Python warning.

    ``stacklevel`` as for :func:`warnings.warn`, counted from the caller of ``notify``."""
    if not issubclass(category, WorkbenchNotice):
        raise TypeError(f"{category.__name__} is not a WorkbenchNotice")
    listeners = getattr(_LOCAL, "listeners", None)
    if listeners:
        notice = category(message)
        for listener in list(listeners):
            listener(notice)
        return
    warnings.warn(message, category, stacklevel=stacklevel + 1)


@contextmanager
def listening(listener: Listener):
    """Send the notices raised in this thread to ``listener`` while the block runs (they are not warnings then).

    Thread-local on purpose: a widget's job runs in its own thread and must see its own notices, not those
    of another widget's thread or of the cell the user is running meanwhile."""
    stack = getattr(_LOCAL, "listeners", None)
    if stack is None:
        stack = _LOCAL.listeners = []
    stack.append(listener)
    try:
        yield
    finally:
        stack.remove(listener)


def one_line(notice: WorkbenchNotice | str) -> str:
    """How a notice reads in a terminal or a widget's status line."""
    return f"notice: {notice}"


def print_on_one_line() -> None:
    """CLI: show every :class:`WorkbenchNotice` as one ``notice: ...`` line on stderr (other warnings unchanged)."""
    default = warnings.showwarning
    if getattr(default, "one_line_notices", False):
        return  # already installed (main() called again in one process)

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, WorkbenchNotice):
            print(one_line(message), file=sys.stderr if file is None else file)
        else:
            default(message, category, filename, lineno, file, line)

    show.one_line_notices = True
    warnings.showwarning = show
