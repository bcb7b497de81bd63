"""Shared fixtures: small spaces and profiles written to tmp dirs, an empty user folder for every test, and an
in-process CLI runner.

``ROOT`` is the repository only when the tests run from a checkout; the shipped data is reached through the
package (``PROFILES_DIR``, ``SPACES_DIR``), so most tests also run against an installed wheel
(``.ci/wheel_check.sh``). Tests that read other repository files (README, benchmarks, notebooks, pyproject) are
marked ``repo``.
"""
from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from workbench._infra.places import HOME_ENV
from workbench.cli import main
from workbench.hardware.locations import PROFILES_DIR  # the shipped folders: tests import them from here
from workbench.model.space import SPACES_DIR  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
_HOMES = itertools.count()


def pytest_configure(config):
    config.addinivalue_line("markers", "repo: reads repository files that an installed wheel does not carry")
    # module- and session-wide fixtures run before the per-test folder below is set: they see this one
    os.environ[HOME_ENV] = os.path.join(tempfile.gettempdir(), f"workbench-test-home-{os.getpid()}")


@pytest.fixture(autouse=True)
def workbench_home(tmp_path_factory, monkeypatch):
    """The user folder of this test: empty, and neither the developer's own nor the repository. Whatever a test
    writes through ``workbench profile``/``calibrate`` lands here, and a developer's own spaces and profiles
    change no result. (Not created: the workbench creates it when it writes.)"""
    home = tmp_path_factory.getbasetemp() / "homes" / str(next(_HOMES))
    monkeypatch.setenv(HOME_ENV, str(home))
    return home


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
        shutil.copytree(PROFILES_DIR / name, dst)
        return dst

    return copy


def one_trial_study(tmp_path_factory, study: str) -> str:
    """The storage URL of a new study ``study`` holding one trained ``sensor-imu`` trial (1 epoch, seed 2) for the
    stm32f746: the smallest study a command that reads a trial can work on (module fixtures call it)."""
    from workbench.cli import main

    storage = f"sqlite:///{tmp_path_factory.mktemp(study) / f'{study}.db'}"
    assert main(["search", "--space", "sensor-imu", "--device", "stm32f746", "--trials", "1", "--epochs", "1",
                 "--study", study, "--storage", storage, "--seed", "2"]) == 0
    return storage
