"""Shared fixtures: small spaces and profiles written to tmp dirs, and an in-process CLI runner."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from workbench.cli import main

ROOT = Path(__file__).resolve().parent.parent


class CliResult:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys):
    """Run ``workbench ARGS`` in-process; returns exit code, stdout, stderr."""

    def run(*args):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def profile_copy(tmp_path):
    """A writable copy of a shipped profile folder."""

    def copy(name="stm32f746"):
        dst = tmp_path / f"{name}-copy"
        shutil.copytree(ROOT / "hw_profiles" / name, dst)
        return dst

    return copy
