"""Storage faults, refused commands and crashes: one line and the right exit code, never a traceback,
never a hang, never a changed study.

Faults are injected for real: damaged and truncated SQLite files, a folder where the file should be, a
read-only mount and a full disk (a tmpfs this test mounts — it skips with the reason where it cannot),
an SQLite file locked by another process. Crashes use ``kill -9`` and SIGINT/SIGTERM on real processes.
Training-free trials (SynFlow) keep each search to a second or two.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest

from workbench.storages import storage as storage_mod
from workbench._infra.errors import WorkbenchError
from workbench.search import Search
from workbench.storages.storage import open_storage

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--space", "sensor-imu", "--device", "stm32f746", "--data", "basic-motions", "--evaluator", "synflow",
        "--sampler", "random"]
WORKBENCH = [sys.executable, "-m", "workbench.cli"]


def search_args(storage, study="s", trials=3, *extra):
    return ["search", *FAST, "--trials", trials, "--study", study, "--storage", storage, *extra]


def fast_search(storage, study="s", **options):
    return Search("sensor-imu", "stm32f746", "basic-motions", study_name=study, storage=str(storage),
                  evaluator="synflow", sampler="random", **options)


def one_line(result, code=2, *words):
    """The command failed with ``code`` and one error line (after any progress lines of trials that ran)."""
    assert result.code == code, (result.code, result.err[-2000:])
    lines = [line for line in result.err.strip().splitlines() if not line.startswith(("[", "note: "))]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err[-2000:]
    assert "Traceback" not in result.err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def trials_of(url, study="s"):
    return optuna.load_study(study_name=study, storage=open_storage(str(url), create=False)).get_trials(deepcopy=False)


def states(url, study="s"):
    return [t.state.name for t in trials_of(url, study)]


def trained(url, study="s"):
    """Trained trials: what a study's target counts (not its infeasible or repeated candidates)."""
    return sum(t.state.name == "COMPLETE" and bool(t.user_attrs.get("trained")) for t in trials_of(url, study))


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def spawn(*args, **kwargs):
    return subprocess.Popen([*WORKBENCH, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def run_cli(*args, timeout=180):
    return subprocess.run([*WORKBENCH, *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def base_db(tmp_path_factory):
    """An SQLite study with 3 completed trials (copied by each test that damages it)."""
    path = tmp_path_factory.mktemp("base") / "s.db"
    closed(fast_search(path).run(3))  # the last connection closed: everything is in s.db itself (no -wal file)
    return path


@pytest.fixture
def db_copy(base_db, tmp_path):
    dst = tmp_path / "s.db"
    shutil.copy(base_db, dst)
    return dst


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small tmpfs (root or CAP_SYS_ADMIN); skip with the reason where that is not possible."""
    mounted = []

    def mount(size="4m"):
        path = tmp_path / f"mnt{len(mounted)}"
        path.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or 'mount failed'}); needs root")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount_read_only(path):
    result = subprocess.run(["mount", "-o", "remount,ro", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def closed(result):
    """Close a finished search's database connections (a mount with open files cannot turn read-only)."""
    storage = storage_mod.backend_of(result.study._storage)
    if isinstance(storage, optuna.storages.RDBStorage):
        storage.engine.dispose()


def fill_disk(folder):
    with open(folder / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    return folder / "filler"


# ---------------------------------------------------------------- damaged, misplaced, read-only, locked, full

def _truncate(path):
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 3)


def _garbage_page(path):
    with open(path, "r+b") as fh:  # page 3 of 4 KiB pages: a table's b-tree page
        fh.seek(4096 * 3)
        fh.write(np.random.default_rng(0).bytes(4096))


def _not_sqlite(path):
    path.write_text("id,name\n1,this is a CSV file with a .db suffix\n")


@pytest.mark.parametrize("damage", [_truncate, _garbage_page, _not_sqlite], ids=["truncated", "garbage", "not-sqlite"])
def test_damaged_sqlite_is_one_line_and_left_as_it_is(cli, db_copy, damage):
    damage(db_copy)
    before = digest(db_copy)
    for args in (search_args(db_copy, "s", 5), ["pareto", "--study", "s", "--storage", db_copy]):
        line = one_line(cli(*args), 2, str(db_copy))
        assert "damaged" in line or "not an SQLite database" in line
    assert digest(db_copy) == before


@pytest.mark.parametrize("suffix", [".db", ".log"])
def test_a_folder_where_the_storage_file_should_be(cli, tmp_path, suffix):
    (tmp_path / f"studies{suffix}").mkdir()
    one_line(cli(*search_args(tmp_path / f"studies{suffix}")), 2, "is a folder")


def test_damaged_journal_is_one_line(cli, tmp_path):
    journal = tmp_path / "s.log"
    journal.write_text('{"op_code": 0, "worker_id": "x"\n{not json at all}\n')
    one_line(cli(*search_args(journal)), 2, "journal file is damaged")


def test_study_name_longer_than_any_database_holds(cli, tmp_path):
    db = tmp_path / "n.db"
    one_line(cli(*search_args(db, "x" * 10_000)), 2, "10,000 characters", "at most 512")
    assert not db.exists()


@pytest.mark.parametrize("backend", ["sqlite", "journal"])
def test_read_only_mount(cli, tmpfs, backend):
    mnt = tmpfs()
    url = mnt / ("s.db" if backend == "sqlite" else "s.log")
    closed(fast_search(url).run(2))
    remount_read_only(mnt)
    one_line(cli(*search_args(url, "s", 4)), 2, "read-only")
    assert "RUNNING" not in states(url) and trained(url) == 2
    shown = cli("pareto", "--study", "s", "--storage", url)  # reading a read-only copy works
    assert shown.code == 0 and "Pareto front" in shown.out, shown.err


def test_locked_by_another_program(cli, db_copy, monkeypatch):
    monkeypatch.setattr(storage_mod, "SQLITE_BUSY_TIMEOUT_S", 1)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        f"c = sqlite3.connect({str(db_copy)!r}, isolation_level=None)\n"
        "c.execute('PRAGMA locking_mode=EXCLUSIVE'); c.execute('BEGIN EXCLUSIVE')\n"
        "c.execute('CREATE TABLE held (x)'); print('locked', flush=True); time.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        one_line(cli(*search_args(db_copy, "s", 5)), 2, "another program holds a lock")
    finally:
        holder.kill()
        holder.wait()
    assert cli(*search_args(db_copy, "s", 4)).code == 0  # the lock gone, the same command resumes
    assert trained(db_copy) == 4


@pytest.mark.parametrize("backend", ["sqlite", "journal"])
def test_full_disk_keeps_completed_trials_and_resumes(cli, tmpfs, backend):
    mnt = tmpfs("4m")
    url = mnt / ("s.db" if backend == "sqlite" else "s.log")
    fast_search(url).run(2)
    filler = fill_disk(mnt)
    result = cli(*search_args(url, "s", 6))
    line = one_line(result, result.code, "disk")
    assert result.code in (1, 2) and ("full" in line or "No space" in line)
    filler.unlink()
    assert trained(url) == 2  # nothing lost, the file still reads
    assert cli(*search_args(url, "s", 4)).code == 0
    assert trained(url) == 4


def test_storage_fault_in_the_middle_of_a_search_exits_1(cli, tmp_path, monkeypatch):
    """A fault after trials have run (here: the disk fills while the 3rd trial is being recorded)."""
    db = tmp_path / "m.db"
    calls = {"n": 0}
    real = optuna.storages.RDBStorage.set_trial_user_attr

    def failing(self, trial_id, key, value):
        calls["n"] += 1
        if calls["n"] > 16:  # 7 user attributes per proxy-scored trial: the 3rd trial's fail
            import sqlite3
            raise optuna.exceptions.StorageInternalError("commit failed") from sqlite3.OperationalError(
                "database or disk is full")
        return real(self, trial_id, key, value)

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_user_attr", failing)
    one_line(cli(*search_args(db, "s", 6)), 1, "failed during the search", "the disk is full", "completed trials are kept")
    monkeypatch.undo()
    assert "COMPLETE" in states(db) and "RUNNING" not in states(db)


# ---------------------------------------------------------------- refused commands, read-only commands

def test_refused_command_creates_no_storage(cli, tmp_path):
    db = tmp_path / "fresh.db"
    one_line(cli(*search_args(db, "s", 0, "--latency-budget", 10)), 2, "--trials")
    assert not db.exists() and list(tmp_path.iterdir()) == []
    assert cli(*search_args(db, "s", 1, "--latency-budget", 10)).code == 0  # the corrected command runs


def _snapshot(url, study="s"):
    st = optuna.load_study(study_name=study, storage=open_storage(str(url), create=False))
    return dict(st.user_attrs), [(t.number, t.state.name) for t in st.get_trials(deepcopy=False)]


def _thin_lut_profile(tmp_path):
    """A profile still called stm32f746 whose int8 LUT has 2 rows: too few to interpolate."""
    folder = tmp_path / "thin"
    shutil.copytree(ROOT / "hw_profiles" / "stm32f746", folder)
    lut = (folder / "lut.csv").read_text().splitlines()
    kept = [lut[0]] + [r for r in lut[1:] if ",fp32," in r] + [r for r in lut[1:] if ",int8," in r][:2]
    (folder / "lut.csv").write_text("\n".join(kept) + "\n")
    text = (folder / "profile.yaml").read_text()
    (folder / "profile.yaml").write_text(text.replace("w4a8", "").replace(", ]", "]").replace(",]", "]"))
    return folder


@pytest.mark.parametrize("refusal", ["trials", "budget", "lut", "sampler"])
def test_refused_command_leaves_an_existing_study_untouched(cli, db_copy, tmp_path, refusal):
    before = _snapshot(db_copy)
    args = {"trials": search_args(db_copy, "s", 0, "--latency-budget", 10),
            "budget": search_args(db_copy, "s", 50, "--latency-budget", -1),
            "lut": ["search", *FAST[:2], "--device", _thin_lut_profile(tmp_path), *FAST[4:], "--trials", 50,
                    "--study", "s", "--storage", db_copy],
            "sampler": search_args(db_copy, "s", 50, "--population", 0)}[refusal]
    result = cli(*args)
    assert result.code == 2 and "Traceback" not in result.err
    if refusal == "lut":
        assert "too few to interpolate" in result.err
    assert _snapshot(db_copy) == before  # no trial, no changed setting (the stored target is still 3)


@pytest.mark.parametrize("command", ["pareto", "export"])
@pytest.mark.parametrize("suffix", [".db", ".log"])
def test_read_only_commands_create_no_storage(cli, tmp_path, command, suffix):
    missing = tmp_path / f"none{suffix}"
    extra = ["--out", tmp_path / "out"] if command == "export" else []
    one_line(cli(command, "--study", "s", "--storage", missing, *extra), 2, "does not exist", "nothing was created")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- a study remembers its content

def test_resume_with_edited_space_of_the_same_name_is_refused(db_copy, tmp_path):
    space = tmp_path / "sensor-imu.yaml"
    text = (ROOT / "search_spaces" / "sensor-imu.yaml").read_text()
    space.write_text(text + "\n# edited\n")
    with pytest.raises(WorkbenchError, match="differs from the space stored with the study"):
        Search(str(space), "stm32f746", "basic-motions", study_name="s", storage=str(db_copy),
               evaluator="synflow", sampler="random").open(5)


def test_resume_with_a_bigger_profile_of_the_same_name_is_refused(db_copy, tmp_path):
    folder = tmp_path / "stm32f746"
    shutil.copytree(ROOT / "hw_profiles" / "stm32f746", folder)
    text = (folder / "profile.yaml").read_text()
    sram = next(line for line in text.splitlines() if line.startswith("sram_kb:"))
    (folder / "profile.yaml").write_text(text.replace(sram, f"sram_kb: {float(sram.split(':')[1]) * 10:g}"))
    with pytest.raises(WorkbenchError, match="sram_bytes is .* in the study"):
        Search("sensor-imu", str(folder), "basic-motions", study_name="s", storage=str(db_copy),
               evaluator="synflow", sampler="random").open(5)


def test_resume_with_other_data_of_the_same_stem_is_refused(tmp_path):
    from workbench.model.data import load_dataset

    ds = load_dataset("basic-motions")
    first, second = tmp_path / "a" / "motions.npz", tmp_path / "b" / "motions.npz"
    for path, shift in ((first, 0.0), (second, 0.5)):
        path.parent.mkdir()
        np.savez(path, x_train=ds.x_train + shift, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test)
    db = tmp_path / "d.db"
    Search("sensor-imu", "stm32f746", str(first), study_name="d", storage=str(db), evaluator="synflow").run(1)
    with pytest.raises(WorkbenchError, match="other samples"):
        Search("sensor-imu", "stm32f746", str(second), study_name="d", storage=str(db), evaluator="synflow").open(2)
    assert len(trials_of(db, "d")) == 1


# ---------------------------------------------------------------- recovery that never hangs

def test_a_trial_that_never_beat_does_not_hang_a_resume(db_copy):
    """The deterministic repro: a RUNNING trial with no heartbeat record, then resume with one more trial."""
    study = optuna.load_study(study_name="s", storage=open_storage(str(db_copy)))
    orphan = study._storage.create_new_trial(study._study_id)
    start = time.monotonic()
    result = run_cli(*search_args(db_copy, "s", 4, "--heartbeat", 1), timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert time.monotonic() - start < 90
    trials = trials_of(db_copy)
    assert next(t for t in trials if t._trial_id == orphan).state.name == "FAIL"
    assert trained(db_copy) == 4 and "RUNNING" not in states(db_copy)


def test_a_journal_trial_of_a_dead_process_is_failed_at_once(tmp_path):
    journal = tmp_path / "j.log"
    fast_search(journal).run(1)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    study = optuna.load_study(study_name="s", storage=open_storage(str(journal)))
    trial_id = study._storage.create_new_trial(study._study_id)
    study._storage.set_trial_system_attr(trial_id, "workbench:owner", {
        "host": os.uname().nodename, "boot": Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
        "pid": int(dead.stdout), "start": "0"})
    fast_search(journal, heartbeat_s=60).run(2)  # a 3-minute grace: only the dead owner makes this quick
    assert trained(journal) == 2


@pytest.mark.parametrize("backend", ["sqlite", "journal"])
def test_kill_9_during_storage_writes_then_resume_is_exact(tmp_path, backend):
    url = tmp_path / ("k.db" if backend == "sqlite" else "k.log")
    rng = random.Random(7)
    for _ in range(3):
        victim = spawn(*search_args(url, "s", 12, "--heartbeat", 1))
        time.sleep(4.0 + rng.uniform(0.0, 2.0))  # start-up is ~3 s; then trials are mostly storage writes
        victim.send_signal(signal.SIGKILL)
        victim.communicate()
    start = time.monotonic()
    result = run_cli(*search_args(url, "s", 12, "--heartbeat", 1), timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert time.monotonic() - start < 150
    final = states(url)
    assert trained(url) == 12 and "RUNNING" not in final


def test_ctrl_c_during_storage_writes_never_tracebacks(tmp_path):
    db = tmp_path / "c.db"
    rng = random.Random(11)
    for _ in range(3):
        proc = spawn(*search_args(db, "s", 40, "--heartbeat", 1))
        time.sleep(4.0 + rng.uniform(0.0, 2.0))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)  # exits promptly: no leftover heartbeat thread
        if proc.returncode == 0:
            continue
        assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err[-2000:]
    assert run_cli(*search_args(db, "s", 10, "--heartbeat", 1)).returncode == 0
    assert trained(db) >= 10 and "RUNNING" not in states(db)


def _descendants(pid):
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = [int(c) for c in children.read_text().split()] if children.exists() else []
    return found + [d for c in found for d in _descendants(c)]


def test_sigterm_stops_every_worker_of_a_multi_worker_search(tmp_path):
    db = tmp_path / "w.db"
    args = ["search", *FAST[:6], "--epochs", 3, "--trials", 8, "--study", "w", "--storage", db, "--workers", 3,
            "--heartbeat", 1]
    parent = spawn(*args)
    end = time.monotonic() + 120
    helpers = []
    while time.monotonic() < end and len(helpers) < 2:
        time.sleep(0.5)
        helpers = _descendants(parent.pid)
    assert len(helpers) >= 2, "the helpers never started"
    time.sleep(3)
    parent.send_signal(signal.SIGTERM)
    try:
        out, err = parent.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        parent.kill()
        out, err = parent.communicate()
        raise AssertionError(f"the search did not stop within 30 s: {err[-3000:]}")
    assert parent.returncode == 143 and "Traceback" not in err, err[-2000:]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in helpers):
        time.sleep(0.2)
    assert not [p for p in helpers if Path(f"/proc/{p}").exists() and
                "zombie" not in Path(f"/proc/{p}/status").read_text().lower()], "helpers outlived the search"
    assert "RUNNING" not in states(db, "w")  # every worker marked its trial before it stopped


def test_two_searches_creating_the_same_study_at_once(tmp_path):
    db = tmp_path / "t.db"
    procs = [spawn(*search_args(db, "same", 6)) for _ in range(2)]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][:800] for o in outputs]
    assert trained(db, "same") == 6


# ---------------------------------------------------------------- atomic exports

def test_export_folder_with_other_files_is_refused_before_work(cli, base_db, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    one_line(cli("export", "--study", "s", "--storage", base_db, "--format", "onnx", "--out", out), 2,
             "not an earlier export")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_kill_9_during_an_export_leaves_the_previous_export_intact(tmp_path):
    db = tmp_path / "e.db"
    Search("sensor-imu", "stm32f746", "basic-motions", study_name="e", storage=str(db), epochs=1).run(1)
    out = tmp_path / "export"
    first = run_cli("export", "--study", "e", "--storage", db, "--trial", 0, "--format", "onnx", "--out", out)
    assert first.returncode == 0, first.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == manifest["folder_files"]
    victim = spawn("export", "--study", "e", "--storage", db, "--trial", 0, "--format", "onnx,onnx-int8",
                   "--out", out)
    stage = tmp_path / f".export.partial-{victim.pid}"
    end = time.monotonic() + 120
    while time.monotonic() < end and not (stage.is_dir() and any(stage.iterdir())):
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert stage.is_dir(), "the export never started writing"
    after = json.loads((out / "manifest.json").read_text())
    assert after == manifest
    for entry in after["files"].values():  # the manifest still describes exactly its own files
        assert digest(out / entry["file"]) == entry["sha256"]
    second = run_cli("export", "--study", "e", "--storage", db, "--trial", 0, "--format", "onnx", "--out", out)
    assert second.returncode == 0, second.stderr[-2000:]
    assert not stage.exists()  # the killed export's leftovers are tidied
    assert sorted(p.name for p in out.iterdir()) == json.loads((out / "manifest.json").read_text())["folder_files"]
