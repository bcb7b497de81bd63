"""Where the workbench finds its data: the search spaces and device profiles shipped inside the package, and
the user folder that holds the user's own and everything the workbench writes.

Shipped data is read-only package data, found through :mod:`importlib.resources`: an installed wheel carries it
in ``workbench/_data/<kind>/`` (``pyproject.toml`` maps the repository's ``hw_profiles/`` and
``search_spaces/`` there); a source checkout or an editable install reads those repository folders in place.

The user folder (:func:`user_home`; ``WORKBENCH_HOME`` or ``workbench --home DIR`` moves it) has the same two
sub-folders. A name found there wins over a shipped one, so ``workbench calibrate host-cpu`` can refresh the
host profile for this machine without touching the installed package: it calibrates a copy in the user folder
(:func:`copy_shipped_profile`).
"""
from __future__ import annotations

import functools
import os
import shutil
import sys
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from workbench._infra.errors import WorkbenchError

HOME_ENV = "WORKBENCH_HOME"
APP_NAME = "tinyml-workbench"
PROFILES = "hw_profiles"  # a folder per profile: <name>/profile.yaml and its files
SPACES = "search_spaces"  # a file per space: <name>.yaml
INSTALLED_DATA = "_data"  # the folder inside an installed package that holds the shipped data


@functools.cache
def shipped_dir(kind: str) -> Path:
    """The shipped ``kind`` folder (:data:`PROFILES` or :data:`SPACES`): inside an installed package, or the
    repository's own folder next to the package (a source checkout, an editable install)."""
    package = files("workbench")
    if not isinstance(package, Path):  # a zipped install: the data must be real files (folders are globbed)
        raise WorkbenchError(f"the workbench package at {package} is not a folder on disk; install it with pip")
    installed = package / INSTALLED_DATA / kind
    return (installed if installed.is_dir() else package.parent / kind).resolve()


def installed_data_root() -> Path | None:
    """The package's own data folder when this is an installed wheel (None in a source checkout)."""
    root = files("workbench") / INSTALLED_DATA
    return root.resolve() if isinstance(root, Path) and root.is_dir() else None


def user_home() -> Path:
    """The user folder: ``$WORKBENCH_HOME`` if set, else the platform's per-user data folder (as platformdirs
    names it): ``$XDG_DATA_HOME`` or ``~/.local/share`` on Linux, ``~/Library/Application Support`` on macOS,
    ``%LOCALAPPDATA%`` on Windows, each with ``tinyml-workbench`` under it. Not created until something is
    written there."""
    chosen = os.environ.get(HOME_ENV)
    if chosen:
        return Path(chosen).expanduser().absolute()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        xdg = os.environ.get("XDG_DATA_HOME", "")
        base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share"  # the spec ignores relative
    return base / APP_NAME


def user_dir(kind: str) -> Path:
    return user_home() / kind


@dataclass(frozen=True)
class Entry:
    """One space or profile as the workbench sees it: ``origin`` is ``"user"`` or ``"shipped"``; ``shadows``:
    a user entry whose name is also shipped (the user's wins)."""

    name: str
    path: Path
    origin: str
    shadows: bool = False


def _found(folder: Path, kind: str) -> dict[str, Path]:
    """name → path of every ``kind`` entry directly in ``folder`` (a profile: its folder); hidden names (a
    copy in progress, :func:`copy_shipped_profile`) are not entries."""
    if kind == PROFILES:
        found = {p.parent.name: p.parent for p in folder.glob("*/profile.yaml")}
    else:
        found = {p.stem: p for p in folder.glob("*.yaml")}
    return {name: path for name, path in found.items() if not name.startswith(".")}


def entries(kind: str) -> list[Entry]:
    """Every ``kind`` entry visible by name, sorted by name: the user's, then the shipped ones they do not
    shadow."""
    shipped = _found(shipped_dir(kind), kind)
    mine = _found(user_dir(kind), kind)
    listed = [Entry(name, path, "user", name in shipped) for name, path in mine.items()]
    listed += [Entry(name, path, "shipped") for name, path in shipped.items() if name not in mine]
    return sorted(listed, key=lambda e: e.name)


def find(kind: str, name: str) -> Path | None:
    """The entry called ``name``: the user's if there is one, else the shipped one, else None."""
    if not name or name in (".", "..") or any(sep in name for sep in ("/", "\\", os.sep)):
        return None
    suffix = "" if kind == PROFILES else ".yaml"
    for folder in (user_dir(kind), shipped_dir(kind)):
        path = folder / f"{name}{suffix}"
        if (path / "profile.yaml").is_file() if kind == PROFILES else path.is_file():
            return path
    return None


def is_shipped(path: str | Path, kind: str) -> bool:
    """Whether ``path`` (a space file or a profile folder) is one of the shipped entries."""
    return Path(path).resolve().parent == shipped_dir(kind)


def refuse_installed(path: str | Path, what: str) -> None:
    """Writes into an installed package are refused: its data is replaced by the next install, and shared by
    every user of it. (A source checkout's ``hw_profiles/`` is the maintainers' to regenerate, by path.)"""
    root = installed_data_root()
    if root is not None and Path(path).resolve().is_relative_to(root):
        raise WorkbenchError(f"{what}: {path} is inside the installed package; the workbench writes your "
                             f"profiles into {user_dir(PROFILES)} (give a name, or another folder)")


def copy_shipped_profile(name: str) -> Path:
    """A copy of the shipped profile ``name`` as the user's own (``user_dir(PROFILES) / name``, which must not
    exist yet): the folder a command that rewrites a shipped profile given by name (``workbench calibrate
    stm32f746``) writes into.

    The copy is made in a hidden sibling and renamed into place, so an interrupted copy leaves no half
    profile that would shadow the shipped one."""
    mine = user_dir(PROFILES) / name
    if mine.exists():  # not a profile (find() passed it over): someone else's files, not ours to fill
        raise WorkbenchError(f"{mine} exists but holds no profile.yaml; remove it (or finish it) to use {name!r}")
    mine.parent.mkdir(parents=True, exist_ok=True)
    partial = mine.parent / f".{name}.copy-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(shipped_dir(PROFILES) / name, partial)
    try:
        os.rename(partial, mine)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        raise WorkbenchError(f"cannot create {mine} (another command made it meanwhile?); run the command again") \
            from None
    return mine
