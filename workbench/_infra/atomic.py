"""Folders written in full or not at all (exports): a half-written export never replaces a whole one.

Files go into a hidden sibling ``.<name>.partial-<pid>`` (same file system, so moving is a rename);
only when the caller has finished and checked them is the folder swapped into place: the earlier
folder is renamed to ``.<name>.previous-<pid>``, the new one to ``<name>``, and the earlier one removed.
A ``kill -9`` at any moment leaves either the earlier folder or the new one under ``<name>`` — except
between the two renames (microseconds), where the earlier one waits as ``.previous-`` and is put back by
the next export into that folder. Leftover ``.partial-`` folders of dead processes are removed then too.

Only a folder that is empty or holds exactly an earlier export (its ``manifest.json`` and the files that
manifest lists in ``files`` and ``folder_files``) can be replaced; anything else is refused before work starts, so an export never moves
a user's unrelated files. The earlier export's files are carried into the staged folder by the caller
(:mod:`workbench.export.folder`): exports add to a folder, they do not delete each other.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from workbench._infra.errors import WorkbenchError

MANIFEST = "manifest.json"


def _owned_files(folder: Path) -> set[str] | None:
    """The names an earlier export in ``folder`` owns (its manifest and listed files); None if no manifest."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        listed = {str(entry["file"]) for entry in manifest.get("files", {}).values()}
        return {MANIFEST, *listed, *map(str, manifest.get("folder_files", []))}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {MANIFEST}  # a broken manifest is ours to replace, but nothing it names is trusted


def check_replaceable(folder: str | Path) -> None:
    """Refuse (before any work) a destination that holds anything but an earlier export."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    present = set(os.listdir(folder))
    if not present:
        return
    foreign = present - (_owned_files(folder) or set())
    if foreign:
        shown = ", ".join(sorted(foreign)[:5]) + (" …" if len(foreign) > 5 else "")
        raise WorkbenchError(f"--out: the folder holds files that are not an earlier export's ({shown}); an export "
                             f"stages the whole folder and swaps it into place, so give a new or empty folder", where=str(folder))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _siblings(folder: Path, kind: str):
    for path in folder.parent.glob(f".{folder.name}.{kind}-*"):
        try:
            yield path, int(path.name.rsplit("-", 1)[1])
        except ValueError:
            continue


def recover(folder: str | Path) -> None:
    """Put back what an export killed between its two renames left aside, before anyone reads ``folder``
    (an export that adds to the folder reads the earlier files first)."""
    folder = Path(folder).absolute()
    if folder.parent.is_dir():
        _tidy(folder)


def _tidy(folder: Path) -> None:
    """Undo what a killed export left: put a ``.previous-`` folder back, remove dead ``.partial-`` ones."""
    for path, pid in _siblings(folder, "previous"):
        if not _pid_alive(pid):
            if not folder.exists():
                os.rename(path, folder)
            else:
                shutil.rmtree(path, ignore_errors=True)
    for path, pid in _siblings(folder, "partial"):
        if not _pid_alive(pid):
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def staged_folder(folder: str | Path):
    """Yield an empty staging folder; when the block ends normally, it becomes ``folder``."""
    folder = Path(folder).absolute()
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        _tidy(folder)
        stage = folder.parent / f".{folder.name}.partial-{os.getpid()}"
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir()
    except OSError as exc:
        raise WorkbenchError(f"--out: cannot write next to the folder ({exc.strerror or exc})", where=str(folder)) from None
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _swap_into_place(stage, folder)


def _swap_into_place(stage: Path, folder: Path) -> None:
    if not folder.exists():
        os.rename(stage, folder)
        return
    previous = folder.parent / f".{folder.name}.previous-{os.getpid()}"
    os.rename(folder, previous)
    os.rename(stage, folder)
    shutil.rmtree(previous, ignore_errors=True)
