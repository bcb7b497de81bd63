"""The package as installed: shipped data found inside it, the user folder that holds the user's own spaces and
profiles (and everything the workbench writes), one version, ``python -m workbench``, and imports that work
where optional pieces (fcntl, the PostgreSQL driver) are missing.

``.ci/wheel_check.sh`` runs this file (and others) against an installed wheel with
``WORKBENCH_TEST_INSTALLED=1``: then the package must come from site-packages and its data from inside it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from conftest import PROFILES_DIR, ROOT, SPACES_DIR

import workbench
from workbench._infra import places
from workbench._infra.errors import WorkbenchError
from workbench.hardware import profiles
from workbench.model.space import list_spaces, load_space

SHIPPED_SPACES = {"audio-kws", "mlperf-ad", "mlperf-ic", "mlperf-kws", "mlperf-vww", "sensor-imu", "vision"}
SHIPPED_PROFILES = {"host-cpu", "rpi4", "stm32f746", "stm32l4r5", "stm32l4r5-microtvm", "stm32l4r5-xcubeai"}
INSTALLED = os.environ.get("WORKBENCH_TEST_INSTALLED") == "1"


def _run(*args, cwd):
    """``python ARGS`` in ``cwd``, importing the same workbench as this process (a checkout: through PYTHONPATH)."""
    env = dict(os.environ)
    if not INSTALLED:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(workbench.__file__).parents[1]),
                                                          env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env,
                          check=False)


# ---------------------------------------------------------------- shipped data

def test_shipped_data_is_found_by_name():
    assert {p.stem for p in SPACES_DIR.glob("*.yaml")} >= SHIPPED_SPACES
    assert {p.parent.name for p in PROFILES_DIR.glob("*/profile.yaml")} >= SHIPPED_PROFILES
    assert {p.stem for p in list_spaces()} >= SHIPPED_SPACES
    assert {p.name for p in profiles.list_profiles()} >= SHIPPED_PROFILES
    assert (PROFILES_DIR / "stm32f746" / "models" / "dscnn-s.yaml").is_file()  # nested folders ship too


@pytest.mark.skipif(not INSTALLED, reason="WORKBENCH_TEST_INSTALLED=1: run against an installed wheel")
def test_installed_wheel_is_what_runs_and_carries_its_data():
    package = Path(workbench.__file__).resolve().parent
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert package.is_relative_to(site), f"workbench imported from {package}, not from {site}"
    for folder in (PROFILES_DIR, SPACES_DIR):
        assert folder.is_relative_to(package / places.INSTALLED_DATA), folder
    assert places.installed_data_root() == package / places.INSTALLED_DATA
    stray = [p for p in (package / places.INSTALLED_DATA).rglob("*") if p.name == "__pycache__" or
             p.suffix in (".py", ".pyc") or "egg-info" in p.name]
    assert stray == []


@pytest.mark.skipif(not INSTALLED, reason="WORKBENCH_TEST_INSTALLED=1: run against an installed wheel")
def test_nothing_is_written_into_the_installed_package(cli, tmp_path):
    target = PROFILES_DIR / "host-cpu"
    run = cli("profile", "--out", target, "--force", "--limit", 1)
    assert run.code == 2 and "inside the installed package" in run.err, run.err
    run = cli("calibrate", target, "--quick")
    assert run.code == 2 and "inside the installed package" in run.err, run.err
    run = cli("model-lut", PROFILES_DIR / "stm32f746")
    assert run.code == 2 and "inside the installed package" in run.err, run.err


@pytest.mark.repo
def test_pyproject_lists_every_package_and_ships_every_data_file():
    """The packages are listed by hand (a `find` cannot add the mapped data folders): every package folder
    must be there, and every file of the shipped folders must match a package-data glob."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "workbench").rglob("__init__.py")}
    listed = set(config["packages"])
    assert found <= listed, f"add to pyproject's packages: {sorted(found - listed)}"
    for package, folder in config["package-dir"].items():
        assert package in listed and (ROOT / folder).is_dir()
        globs = config["package-data"][package]
        files = [p for p in (ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        unshipped = [str(p.relative_to(ROOT)) for p in files
                     if not any(p.relative_to(ROOT / folder).match(g) and
                                len(p.relative_to(ROOT / folder).parts) == len(Path(g).parts) for g in globs)]
        assert unshipped == [], f"files no package-data glob of {package} ships: {unshipped}"


@pytest.mark.repo
def test_one_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "workbench.__version__"}


def test_python_dash_m_workbench(tmp_path):
    """`python -m workbench` is the command; run from another folder, with the installed or checked-out package."""
    version = _run("-m", "workbench", "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"workbench {workbench.__version__}", version
    devices = _run("-m", "workbench", "devices", cwd=tmp_path)
    assert devices.returncode == 0, devices.stderr
    assert SHIPPED_PROFILES <= {line.split()[0] for line in devices.stdout.splitlines() if line.strip()}


# ---------------------------------------------------------------- the user folder

def test_the_user_folder_is_the_environment_variable_or_the_platform_default(monkeypatch, tmp_path):
    monkeypatch.setenv(places.HOME_ENV, str(tmp_path / "mine"))
    assert places.user_home() == tmp_path / "mine"
    assert places.user_dir(places.PROFILES) == tmp_path / "mine" / "hw_profiles"
    monkeypatch.delenv(places.HOME_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    expected = {"linux": tmp_path / "xdg", "darwin": tmp_path / "Library" / "Application Support"}
    if sys.platform in expected:
        assert places.user_home() == expected[sys.platform] / "tinyml-workbench"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/path")  # the XDG spec says to ignore a relative one
    if sys.platform == "linux":
        assert places.user_home() == tmp_path / ".local" / "share" / "tinyml-workbench"


def _user_space(home: Path, name: str, description: str) -> Path:
    folder = home / "search_spaces"
    folder.mkdir(parents=True, exist_ok=True)
    text = (SPACES_DIR / "sensor-imu.yaml").read_text(encoding="utf-8")
    lines = [f"name: {name}" if line.startswith("name:") else f"description: {description}"
             if line.startswith("description:") else line for line in text.splitlines()]
    (folder / f"{name}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / f"{name}.yaml"


def test_user_entries_are_listed_next_to_shipped_ones_and_win_on_a_name(cli, workbench_home):
    mine = _user_space(workbench_home, "my-imu", "my own space")
    shadow = _user_space(workbench_home, "vision", "my vision, not the shipped one")
    shutil.copytree(PROFILES_DIR / "stm32f746", workbench_home / "hw_profiles" / "my-board")

    assert load_space("my-imu").path == str(mine) and load_space("vision").description.startswith("my vision")
    assert profiles.find_profile("my-board") == workbench_home / "hw_profiles" / "my-board"
    assert profiles.find_profile("stm32f746") == PROFILES_DIR / "stm32f746"

    spaces = cli("spaces")
    assert spaces.code == 0, spaces.err
    lines = {line.split()[0]: line for line in spaces.out.splitlines()}
    assert f"(yours: {mine})" in lines["my-imu"] and "shadows" not in lines["my-imu"]
    assert f"(yours: {shadow}; shadows the shipped space of that name)" in lines["vision"]
    assert "yours" not in lines["audio-kws"]  # shipped entries are not marked
    assert (f"-- 7 shipped spaces ({SPACES_DIR}; 1 shadowed by yours), 2 of yours ({workbench_home / 'search_spaces'};"
            in spaces.out)

    devices = cli("devices")
    assert devices.code == 0, devices.err
    assert f"yours: {workbench_home / 'hw_profiles' / 'my-board'}" in devices.out
    assert f"{len(SHIPPED_PROFILES)} shipped profiles" in devices.out and "1 of yours" in devices.out


def test_the_home_flag_moves_the_user_folder(cli, tmp_path, monkeypatch):
    monkeypatch.setenv(places.HOME_ENV, str(tmp_path / "not-this-one"))
    _user_space(tmp_path / "flag-home", "flagged", "found through --home")
    run = cli("--home", tmp_path / "flag-home", "spaces")
    assert run.code == 0 and "flagged" in {line.split()[0] for line in run.out.splitlines()}, run.err
    assert os.environ[places.HOME_ENV] == str(tmp_path / "flag-home")  # worker processes inherit it


def test_calibrating_a_shipped_profile_by_name_writes_a_copy_in_the_user_folder(cli, workbench_home):
    shipped = {p: p.read_bytes() for p in (PROFILES_DIR / "stm32l4r5").rglob("*") if p.is_file()}
    csv = PROFILES_DIR / "stm32l4r5" / "published_latency.csv"
    run = cli("calibrate", "stm32l4r5", "--measurements", csv, "--strength", 0.5)
    assert run.code == 0, run.err
    copy = workbench_home / "hw_profiles" / "stm32l4r5"
    assert f"wrote {copy} (your copy of the shipped 'stm32l4r5'" in run.out
    assert {p: p.read_bytes() for p in shipped} == shipped  # the shipped profile is untouched
    assert (copy / "latency_model.yaml").read_text() != shipped[PROFILES_DIR / "stm32l4r5" / "latency_model.yaml"]
    assert profiles.find_profile("stm32l4r5") == copy and profiles.load_profile("stm32l4r5").path == str(
        copy / "profile.yaml")
    devices = cli("devices")
    assert "shadows the shipped profile of that name" in devices.out

    again = cli("calibrate", "stm32l4r5", "--measurements", csv, "--strength", 0.5)  # refines the user's copy
    assert again.code == 0 and f"wrote {copy}\n" in again.out, again.out


def test_a_failed_calibration_leaves_no_copy_behind(cli, workbench_home, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("model,ms,source\nnot-a-model,1.0,x\n")
    run = cli("calibrate", "stm32l4r5", "--measurements", bad)
    assert run.code == 2 and run.err.startswith("error:"), run.err
    assert not (workbench_home / "hw_profiles" / "stm32l4r5").exists()
    assert profiles.find_profile("stm32l4r5") == PROFILES_DIR / "stm32l4r5"

    mine = workbench_home / "hw_profiles" / "stm32l4r5"  # a folder of the user's that is not a profile: kept
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    run = cli("calibrate", "stm32l4r5", "--measurements", PROFILES_DIR / "stm32l4r5" / "published_latency.csv")
    assert run.code == 2 and "holds no profile.yaml" in run.err, run.err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_profile_by_name_goes_to_the_user_folder(cli, workbench_home, monkeypatch):
    from workbench.calibration import profiler

    written = []
    monkeypatch.setattr(profiler, "profile_device", lambda out, **kw: written.append(out) or out)
    run = cli("profile", "--name", "my-laptop")
    assert run.code == 0 and written == [workbench_home / "hw_profiles" / "my-laptop"], run.err
    for bad in ("../x", "a/b", ".hidden", ""):
        run = cli("profile", "--name", bad)
        assert run.code == 2 and "--name" in run.err, (bad, run.err)


def test_writes_into_installed_package_data_are_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(places, "installed_data_root", lambda: tmp_path / "_data")
    with pytest.raises(WorkbenchError, match="inside the installed package"):
        places.refuse_installed(tmp_path / "_data" / "hw_profiles" / "x", "--out")
    places.refuse_installed(tmp_path / "elsewhere", "--out")  # anywhere else: fine


def test_a_measured_shipped_profile_names_a_refresh_into_the_user_folder(monkeypatch):
    from workbench.hardware import machine

    monkeypatch.setattr(machine, "this_machine", lambda: {"cpu": "Other", "cores": 1, "runtime": "x"})
    notice = machine.mismatch_notice(profiles.load_profile("host-cpu", notify=False))
    assert "`workbench calibrate host-cpu --quick`" in notice and "`workbench profile --name host-cpu --force`" in notice
    assert f"into your own copy in {places.user_dir(places.PROFILES)}" in notice


# ---------------------------------------------------------------- optional pieces

def test_the_package_imports_without_fcntl(tmp_path):
    """Windows has no fcntl: the package and the CLI still import; only a file storage's lock says so."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    code = ("import sys; sys.modules['fcntl'] = None\n"
            "import workbench.cli, workbench.storages.storage as s\n"
            "from workbench._infra.errors import WorkbenchError\n"
            f"try:\n    s.tally_lock(None, {url!r}, 'study').__enter__()\n"
            "except WorkbenchError as e:\n    print('refused:', e)\n")
    run = _run("-c", code, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "refused: --storage: sqlite:///" in run.stdout and "fcntl.flock" in run.stdout, run.stdout


def test_a_postgres_storage_without_its_driver_names_the_extra(monkeypatch):
    from workbench.storages.storage import open_storage

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the postgres extra were not installed
    with pytest.raises(WorkbenchError, match=r"needs the database driver 'psycopg'.*tinyml-workbench\[postgres\]"):
        open_storage("postgresql://user@127.0.0.1:9/nodb")


def test_the_tflm_child_imports_this_workbench(monkeypatch):
    from workbench.export.formats import tflm_runner

    root = Path(tflm_runner.__file__).resolve().parents[3]
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.setattr(tflm_runner.site, "getsitepackages", lambda: ["/nowhere"])
    assert tflm_runner._child_env()["PYTHONPATH"] == os.pathsep.join([str(root), "/elsewhere"])  # a checkout
    monkeypatch.setattr(tflm_runner.site, "getsitepackages", lambda: [str(root)])
    assert tflm_runner._child_env()["PYTHONPATH"] == "/elsewhere"  # a wheel: site-packages is read anyway
