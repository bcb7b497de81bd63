"""Many workers on one study (SQLite, journal file, PostgreSQL), crash recovery with kill -9, Ctrl-C.

PostgreSQL tests use the server named by WORKBENCH_TEST_POSTGRES_URL (``.ci/run`` starts one on
127.0.0.1 with ``.ci/postgres.sh``). Outside CI they are skipped when it is unset; in CI they fail.
"""
import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest

from workbench.storages.storage import open_storage

PG_URL = os.environ.get("WORKBENCH_TEST_POSTGRES_URL")
needs_pg = pytest.mark.skipif(not PG_URL and not os.environ.get("CI"),
                              reason="no PostgreSQL: set WORKBENCH_TEST_POSTGRES_URL (see .ci/postgres.sh)")

WORKBENCH = [sys.executable, "-m", "workbench.cli"]
SEARCH = ["search", "--space", "sensor-imu", "--device", "stm32f746", "--data", "basic-motions", "--epochs", "2"]


def run_cli(*args, timeout=300):
    return subprocess.run([*WORKBENCH, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def spawn(*args):
    return subprocess.Popen([*WORKBENCH, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def trials_of(storage, study):
    return optuna.load_study(study_name=study, storage=open_storage(storage)).get_trials(deepcopy=False)


def states(storage, study):
    return [t.state.name for t in trials_of(storage, study)]


def wait_for_running(storage, study, timeout=120):
    """Block until a worker is mid-training: a RUNNING trial whose architecture is already recorded."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if any(t.state.name == "RUNNING" and "arch" in t.user_attrs for t in trials_of(storage, study)):
                return
        except KeyError:
            pass  # study not created yet
        time.sleep(0.05)
    raise AssertionError("no trial started")


def assert_complete_and_intact(storage, study, n):
    """Exactly ``n`` trained trials (the target counts those), every complete trial whole, no architecture
    trained twice."""
    trials = trials_of(storage, study)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    trained = [t for t in complete if t.user_attrs.get("trained")]
    assert len(trained) == n, [(t.state.name, sorted(t.user_attrs)) for t in trials]
    for t in complete:  # never a half-written trial
        assert {"arch", "predictions", "summary"} <= set(t.user_attrs)
        measured = t.user_attrs.get("trained") and ("accuracy" in t.user_attrs or "score" in t.user_attrs)
        assert measured or t.user_attrs.get("rejected") or t.user_attrs.get("duplicate_of") is not None
        assert len(t.values) == 2
    assert len({t.user_attrs["arch_key"] for t in trained}) == len(trained)
    return trials


def create_study(storage, study, trials=1):
    result = run_cli(*SEARCH, "--trials", trials, "--study", study, "--storage", storage, "--heartbeat", 1)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("backend", ["sqlite", "journal", pytest.param("postgresql", marks=needs_pg)])
def test_three_workers_share_a_study_and_stop_at_exactly_n(tmp_path, backend):
    storage = {"sqlite": f"sqlite:///{tmp_path / 's.db'}", "journal": str(tmp_path / "s.log"),
               "postgresql": PG_URL}[backend]
    study = f"shared-{uuid.uuid4().hex[:8]}"
    create_study(storage, study)
    workers = [spawn("worker", "--study", study, "--storage", storage, "--trials", 9, "--heartbeat", 1)
               for _ in range(3)]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[1][-3000:] for w, o in zip(workers, outputs) if w.returncode]
    trials = assert_complete_and_intact(storage, study, 9)  # exactly 9 on every backend (the tally lock)
    # every worker really took part
    assert sum(bool(out[1].count("trial ")) for out in outputs) >= 2
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]


@pytest.mark.parametrize("backend", ["sqlite", "journal", pytest.param("postgresql", marks=needs_pg)])
def test_a_killed_workers_trial_is_failed_and_retried(tmp_path, backend):
    storage = {"sqlite": f"sqlite:///{tmp_path / 'k.db'}", "journal": str(tmp_path / "k.log"),
               "postgresql": PG_URL}[backend]
    study = f"crash-{uuid.uuid4().hex[:8]}"
    create_study(storage, study)
    victim = spawn("worker", "--study", study, "--storage", storage, "--trials", 5, "--heartbeat", 1)
    wait_for_running(storage, study)  # the victim is mid-training ...
    survivor = spawn("worker", "--study", study, "--storage", storage, "--trials", 5, "--heartbeat", 1)
    victim.send_signal(signal.SIGKILL)  # ... and dies there
    victim.wait()
    out, err = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, err[-2000:]
    trials = assert_complete_and_intact(storage, study, 5)
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert len(failed) == 1  # the stale trial, failed by the survivor's heartbeat check ...
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == failed[0].number)
    assert retry.params == failed[0].params and retry.state.name == "COMPLETE"  # ... and run again


def test_next_worker_recovers_a_dead_single_worker(tmp_path):
    storage = f"sqlite:///{tmp_path / 'd.db'}"
    study = "dead"
    create_study(storage, study)
    victim = spawn("worker", "--study", study, "--storage", storage, "--trials", 3, "--heartbeat", 1)
    wait_for_running(storage, study)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert "RUNNING" in states(storage, study)
    start = time.monotonic()
    result = run_cli("worker", "--study", study, "--storage", storage, "--heartbeat", 1)
    assert result.returncode == 0, result.stderr
    trials = assert_complete_and_intact(storage, study, 3)
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert len(failed) == 1
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == failed[0].number)
    assert retry.params == failed[0].params and retry.state.name == "COMPLETE"
    assert time.monotonic() - start < 120


def test_ctrl_c_marks_the_trial_and_the_same_command_resumes(tmp_path):
    storage = f"sqlite:///{tmp_path / 'c.db'}"
    command = [*SEARCH, "--trials", 4, "--study", "ctrlc", "--storage", storage]
    proc = spawn(*command)
    wait_for_running(storage, "ctrlc")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    interrupted = [t for t in trials_of(storage, "ctrlc") if t.state.name == "FAIL"]
    assert len(interrupted) == 1
    resumed = run_cli(*command)
    assert resumed.returncode == 0, resumed.stderr
    trials = assert_complete_and_intact(storage, "ctrlc", 4)
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == interrupted[0].number)
    assert retry.params == interrupted[0].params and retry.state.name == "COMPLETE"


def test_a_stop_that_arrives_while_a_trial_is_created_is_held_until_the_worker_knows_it(tmp_path, monkeypatch):
    """SIGINT/SIGTERM landing inside ``study.ask()`` — after the storage made the RUNNING trial, before the worker
    had it — left that trial RUNNING (CI saw it after a multi-worker SIGTERM). The signal is sent to the process
    while another thread runs, as in a worker (heartbeats, torch): masked in the main thread, the kernel hands
    it to that thread and Python still runs the handler in the main thread — so the handler itself must wait
    for the shielded block to end. Then the trial is marked FAIL and queued again like any interrupted one."""
    import threading

    from workbench._infra.processes import signals_as_interrupts
    from workbench.search import Search

    real_ask = optuna.Study.ask
    bystander = threading.Event()
    threading.Thread(target=bystander.wait, args=(30,), daemon=True).start()  # a thread that takes signals

    def ask_then_signal(self, *args, **kwargs):
        trial = real_ask(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # to the process: the stop arrives right now
        time.sleep(0.3)
        sum(range(10_000))  # bytecode: not held back, the handler would raise here, inside ask()
        return trial

    monkeypatch.setattr(optuna.Study, "ask", ask_then_signal)
    storage = f"sqlite:///{tmp_path / 'a.db'}"
    search = Search("sensor-imu", "stm32f746", "basic-motions", study_name="ask", storage=storage,
                    evaluator="synflow", sampler="random", seed=0)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(KeyboardInterrupt), signals_as_interrupts():
            search.run(3)
    finally:
        bystander.set()
        for sig, handler in handlers.items():  # an interrupted block leaves them ignored (the CLI then exits)
            signal.signal(sig, handler)
    states = [t.state.name for t in trials_of(storage, "ask")]
    assert "RUNNING" not in states and states.count("FAIL") == 1 and states.count("WAITING") == 1, states


@pytest.mark.parametrize("url, expected", [
    pytest.param("wrong-password", "password authentication failed", marks=needs_pg),
    ("postgresql://workbench:x@127.0.0.1:9/nodb", "cannot open postgresql://workbench:***@127.0.0.1:9/nodb"),
])
def test_bad_storage_urls_fail_fast_with_one_line(tmp_path, url, expected):
    if url == "wrong-password":
        user, rest = PG_URL.split("://", 1)[1].split(":", 1)
        url = f"postgresql://{user}:not-the-password@{rest.split('@', 1)[1]}"
    start = time.monotonic()
    result = run_cli(*SEARCH, "--trials", 1, "--storage", url, timeout=60)
    assert time.monotonic() - start < 30
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "not-the-password" not in lines[0]


FAST = ["search", "--space", "sensor-imu", "--device", "stm32f746", "--data", "basic-motions", "--evaluator",
        "synflow", "--sampler", "random", "--heartbeat", 1]


@pytest.mark.parametrize("backend", ["sqlite", "journal", pytest.param("postgresql", marks=needs_pg)])
def test_exact_counts_after_kills_of_racing_workers(tmp_path, backend):
    """Three workers race for the last trials of a training-free study (milliseconds per trial, so the
    race is at the storage); one is killed with -9 twice along the way. The study ends with exactly
    its target — not one more (PostgreSQL used to end with 31 of 30)."""
    storage = {"sqlite": f"sqlite:///{tmp_path / 'x.db'}", "journal": str(tmp_path / "x.log"),
               "postgresql": PG_URL}[backend]
    study = f"exact-{uuid.uuid4().hex[:8]}"
    assert run_cli(*FAST, "--trials", 1, "--study", study, "--storage", storage).returncode == 0
    worker = ["worker", "--study", study, "--storage", storage, "--trials", 30, "--heartbeat", 1]
    for delay in (5.0, 6.5):
        victim = spawn(*worker)
        time.sleep(delay)
        victim.send_signal(signal.SIGKILL)
        victim.communicate()
    workers = [spawn(*worker) for _ in range(3)]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[1][-3000:] for w, o in zip(workers, outputs) if w.returncode]
    final = states(storage, study)
    assert "RUNNING" not in final and "WAITING" not in final
    assert_complete_and_intact(storage, study, 30)
