"""The CLI end to end on a tiny budget, and one clear line + exit 2 for every kind of bad input."""
import csv
import json
import os
import re
import signal

import pytest
from conftest import SPACES_DIR


def test_search_then_pareto_for_other_devices(tmp_path, cli):
    storage = f"sqlite:///{tmp_path / 'cli.db'}"
    run = cli("search", "--space", "sensor-imu", "--device", "stm32f746", "--data", "basic-motions",
              "--trials", 3, "--epochs", 1, "--study", "e2e", "--storage", storage, "--seed", 1)
    assert run.code == 0, run.err
    assert "Pareto front on stm32f746" in run.out and "stored in" in run.out
    counters = [line.split("]")[0] for line in run.err.splitlines() if line.startswith("[")]
    assert [c for c in counters if c != "[  -/3"] == ["[  1/3", "[  2/3", "[  3/3"]  # trained trials count
    assert run.err.count("trial ") == len(counters)  # one progress line per trial
    assert "--device stm32l4r5" in run.out  # the closing hint names another device than the study's
    again = cli("search", "--space", "sensor-imu", "--device", "stm32f746", "--data", "basic-motions",
                "--trials", 3, "--epochs", 1, "--study", "e2e", "--storage", storage, "--seed", 1)
    assert again.code == 0 and "already complete (3/3 trained trials)" in again.err and "trial " not in again.err
    assert "Pareto front on stm32f746" in again.out
    as_json = cli("pareto", "--study", "e2e", "--storage", storage, "--format", "json")
    rows = json.loads(as_json.out)["front"]  # {study, device, limits, front, missing}
    assert rows and {"trial", "accuracy", "latency_ms", "peak_sram_kb", "flash_kb", "macs"} <= set(rows[0])
    assert "study 'e2e' on stm32f746" in as_json.err  # the header goes to stderr for csv/json
    other = cli("pareto", "--study", "e2e", "--storage", storage, "--device", "stm32l4r5", "--format", "csv")
    assert other.code == 0 and other.out.splitlines()[0].startswith("trial,accuracy,accuracy_mean,accuracy_std,n,")
    assert "on stm32l4r5 (the study targeted stm32f746; no latency budget; objectives accuracy, latency; " \
        in other.err
    from workbench.model.data import load_dataset  # the header says how coarse the accuracy is: one test sample

    n_test = len(load_dataset("basic-motions").y_test)
    assert f"accuracy = held-out test top-1 on {n_test:,} samples, one sample = {1 / n_test:.4f}): " in other.err
    table = cli("pareto", "--study", "e2e", "--storage", storage)
    assert table.out.splitlines()[0].startswith("Pareto front of study 'e2e' on stm32f746 (the study's target;")
    # each front's latencies say how far to trust them, at the precisions on that front (workbench.hardware.trust)
    from workbench.hardware.profiles import load_profile
    from workbench.hardware.trust import latency_trust

    m4_rows = list(csv.DictReader(other.out.splitlines()))
    for printed, device, front in ((table.out, "stm32f746", rows), (other.err, "stm32l4r5", m4_rows)):
        for precision in {r["precision"] for r in front}:
            assert f"latency on {device}, {latency_trust(load_profile(device), precision).text}" in printed
    assert f"latency on stm32f746, {latency_trust(load_profile('stm32f746'), rows[0]['precision']).text}" in run.out
    m7 = {r["trial"]: r["latency_ms"] for r in rows}
    m4 = {int(row["trial"]): float(row["latency_ms"]) for row in csv.DictReader(other.out.splitlines())}
    assert all(m4[t] > m7[t] for t in m4.keys() & m7.keys())  # the slower M4 is predicted slower


def test_listing_commands(cli):
    spaces = cli("spaces")
    assert spaces.code == 0 and {"vision", "sensor-imu", "audio-kws"} <= {l.split()[0] for l in spaces.out.splitlines()}
    devices = cli("devices")
    assert {"stm32f746", "stm32l4r5", "rpi4", "host-cpu"} <= {line.split()[0] for line in devices.out.splitlines()}
    assert "digits" in cli("datasets").out


COMMANDS = ["quickstart", "search", "worker", "pareto", "repeats", "spaces", "devices", "datasets", "profile",
            "model-lut", "calibrate", "calibration-kit", "score", "export", "train-cost"]


def _subparsers() -> dict:
    import argparse

    from workbench.cli import build_parser

    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def _flat(text: str) -> str:
    """Help text with argparse's line wrapping undone (it breaks at spaces and after hyphens)."""
    return re.sub(r"([-,])\s+", r"\1", " ".join(text.split()))


def test_top_level_help_names_every_command(cli):
    run = cli("--help")
    assert run.code == 0 and run.out.startswith("usage: workbench")
    listed = {line.split()[0] for line in run.out.splitlines() if line.startswith("    ") and line.split()}
    assert set(COMMANDS) <= listed and set(_subparsers()) <= listed


@pytest.mark.parametrize("command", COMMANDS)
def test_help_names_every_flag_choice_and_default(cli, command):
    import argparse

    run = cli(command, "--help")
    assert run.code == 0 and run.out.startswith(f"usage: workbench {command}")
    text = _flat(run.out)
    for action in _subparsers()[command]._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        names = action.option_strings or [action.metavar or action.dest]
        assert all(name in text for name in names), (command, names)
        for choice in action.choices or ():
            assert str(choice) in text, (command, names[0], choice)
        if action.default not in (None, False, argparse.SUPPRESS):
            shown = ",".join(map(str, action.default)) if isinstance(action.default, (list, tuple)) else action.default
            assert _flat(str(shown)) in text, f"{command} {names[0]}: default {action.default!r} not in its help"


def test_help_shows_known_defaults(cli):
    """A few defaults spelled out, so a help text that names the wrong value fails too."""
    from workbench.storages.storage import DEFAULT_STORAGE

    search = _flat(cli("search", "--help").out)
    assert "--storage" in search and f"(default {DEFAULT_STORAGE})" in search
    assert "--seed SEED" in search and "(default 0)" in search
    calibrate = _flat(cli("calibrate", "--help").out)
    assert "--models-per-space" in calibrate and "(default 20)" in calibrate
    export = _flat(cli("export", "--help").out)
    assert "'best'" in export and "(default best)" in export


def _bad_space(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


BASE = ["search", "--device", "stm32f746", "--trials", 1, "--epochs", 1]


@pytest.mark.parametrize("case", ["malformed", "unknown-key", "out-of-range", "unknown-space", "unknown-device",
                                  "missing-lut", "missing-data", "bad-storage", "storage-folder", "unknown-study",
                                  "missing-storage",
                                  "wrong-encoding", "nan-latency"])
def test_bad_input_gives_one_clear_line_and_exit_2(tmp_path, cli, profile_copy, case):
    sensor = (SPACES_DIR / "sensor-imu.yaml").read_text()
    storage = f"sqlite:///{tmp_path / 'x.db'}"
    make_args, expected = {
        "malformed": (lambda: ["--space", _bad_space(tmp_path, "name: [unclosed\n")], "malformed YAML at line"),
        "unknown-key": (lambda: ["--space", _bad_space(tmp_path, sensor + "colour: red\n")], "colour: unknown field"),
        "out-of-range": (lambda: ["--space", _bad_space(tmp_path, sensor.replace("width: [16, 24, 32, 48]", "width: [0]"))],
                         "blocks.width: 0 is out of range"),
        "unknown-space": (lambda: ["--space", "nosuchspace"], "unknown search space 'nosuchspace'"),
        "unknown-device": (lambda: ["--space", "sensor-imu", "--device", "nosuchboard"], "unknown device 'nosuchboard'"),
        "missing-lut": (lambda: ["--space", "sensor-imu", "--device", _without_lut(profile_copy())], "LUT file not found"),
        "missing-data": (lambda: ["--space", "sensor-imu", "--data", tmp_path / "nodata"], "nodata"),
        "bad-storage": (lambda: ["--space", "sensor-imu", "--storage", "nosuchdb://x"], "--storage: cannot open"),
        "storage-folder": (lambda: ["--space", "sensor-imu", "--storage", f"sqlite:///{tmp_path}/no/such/dir/x.db"],
                           "does not exist"),
        "unknown-study": (lambda: _other_study(storage), "no study 'ghost'"),
        "missing-storage": (lambda: None, "does not exist"),
        "wrong-encoding": (lambda: ["--space", _latin1(tmp_path)], "not UTF-8"),
        "nan-latency": (lambda: ["--space", "sensor-imu", "--device", _nan_lut(profile_copy())], "mean_ms: expected a finite"),
    }[case]
    args = make_args()
    if args is None or case == "unknown-study":
        run = cli("pareto", "--study", "ghost", "--storage", storage)
    else:
        run = cli(*BASE, "--storage", storage, *args)
    assert run.code == 2
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.err
    assert expected in lines[0]
    assert "Traceback" not in run.err


def _other_study(storage):
    """A storage that exists and holds a study, just not the one asked for."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    optuna.create_study(study_name="other", storage=storage)


def _without_lut(folder):
    (folder / "lut.csv").unlink()
    return folder


def _nan_lut(folder):
    lines = (folder / "lut.csv").read_text().splitlines()
    fields = lines[1].split(",")
    fields[5] = "nan"
    lines[1] = ",".join(fields)
    (folder / "lut.csv").write_text("\n".join(lines) + "\n")
    return folder


def _latin1(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("name: caf\xe9\nfamily: cnn1d\n".encode("latin-1"))
    return path


def test_failed_bad_input_leaves_an_existing_study_intact(tmp_path, cli):
    storage = f"sqlite:///{tmp_path / 'keep.db'}"
    ok = cli("search", "--space", "sensor-imu", "--device", "stm32f746", "--trials", 2, "--epochs", 1,
             "--study", "keep", "--storage", storage)
    assert ok.code == 0
    before = cli("pareto", "--study", "keep", "--storage", storage, "--format", "json").out
    bad = cli("search", "--space", "sensor-imu", "--device", "rpi4", "--trials", 3, "--study", "keep",
              "--storage", storage)
    assert bad.code == 2 and "device='stm32f746'" in bad.err and "rpi4" in bad.err
    assert cli("pareto", "--study", "keep", "--storage", storage, "--format", "json").out == before


def test_version(cli):
    r = cli("--version")
    assert r.code == 0 and r.out.strip().startswith("workbench 0.")


@pytest.mark.parametrize("command, expected", [
    ("search", ["(default tpe)", "(default 0)", "default 16)", "(default sqlite:///workbench.db)"]),
    ("pareto", ["name of the study", "(default sqlite:///workbench.db)", "(default table)"]),
    ("profile", ["(default 100)", "(default 1000)", "--force"]),
])
def test_help_shows_defaults(cli, command, expected):
    text = " ".join(cli(command, "--help").out.split())  # argparse wraps lines
    for phrase in expected:
        assert phrase in text, phrase


def test_closing_hint_never_suggests_the_studys_own_device():
    from workbench.cli import _other_device
    from workbench.hardware.profiles import all_profiles

    profiles = all_profiles()
    by_name = {p.name: p for p in profiles}
    assert _other_device(by_name["stm32f746"], profiles) == "stm32l4r5"
    assert _other_device(by_name["stm32l4r5"], profiles) == "stm32f746"  # same class first
    assert _other_device(by_name["rpi4"], profiles) not in (None, "rpi4")
    # a device where nothing fits is passed over while another of the class has a front
    assert _other_device(by_name["stm32f746"], profiles, lambda p: p.name == "stm32l4r5-xcubeai") == "stm32l4r5-xcubeai"
    assert _other_device(by_name["stm32f746"], profiles, lambda p: 0) == "stm32l4r5"  # nothing fits anywhere


def test_progress_counts_come_from_the_storage(tmp_path):
    """Another worker finishes a trial while this one runs: the counter says 2/2, not a stale 1/2."""
    from workbench.search import Search

    storage = f"sqlite:///{tmp_path / 'p.db'}"
    seen = []
    common = dict(study_name="p", storage=storage, evaluator="synflow", heartbeat_s=None)
    a = Search("sensor-imu", "stm32f746", "basic-motions", listeners=[lambda o: seen.append(("a", o))], **common)
    b = Search("sensor-imu", "stm32f746", "basic-motions", listeners=[lambda o: seen.append(("b", o))], worker=1,
               **common)
    judge = a._judge

    def judge_while_other_worker_finishes(trial, *args):
        if not seen:
            b.run(1)  # the other worker completes a trial while this one runs
        return judge(trial, *args)

    a._judge = judge_while_other_worker_finishes
    a.run(2)
    assert [(who, o.done, o.total) for who, o in seen if o.counted] == [("b", 1, 1), ("a", 2, 2)]
    scored = [o for _, o in seen if not o.rejected]
    assert scored and all(" score " in f" {o.line()}" and " acc " not in o.line() for o in scored)


def _channel_last_npz(tmp_path, classes=4):
    import numpy as np

    rng = np.random.default_rng(0)
    path = tmp_path / "imu-nwc.npz"
    np.savez(path, x_train=rng.normal(size=(16, 100, 6)).astype(np.float32), y_train=np.arange(16) % classes,
             x_test=rng.normal(size=(8, 100, 6)).astype(np.float32), y_test=np.arange(8) % classes)
    return path


def test_channel_last_data_is_refused_before_the_storage_exists(tmp_path, cli):
    data = _channel_last_npz(tmp_path)
    db = tmp_path / "never.db"
    r = cli("search", "--space", "sensor-imu", "--device", "stm32f746", "--data", data, "--trials", 1,
            "--storage", f"sqlite:///{db}")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.err
    assert str(data) in r.err and "input.channels" in r.err and "x.transpose(0, 2, 1)" in r.err
    assert not db.exists()


def test_data_adaptations_are_printed(tmp_path, cli):
    storage = f"sqlite:///{tmp_path / 'n.db'}"
    r = cli("search", "--space", "vision", "--device", "stm32f746", "--data", "digits", "--trials", 1,
            "--evaluator", "synflow", "--study", "n", "--storage", storage)
    assert r.code == 0, r.err
    assert "note: 8x8 images are resized to each candidate's input resolution (24/32/48" in r.err


def _profile_files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_profile_refuses_a_foreign_profile_folder(tmp_path, cli, profile_copy):
    shipped = profile_copy("stm32f746")
    before = _profile_files(shipped)
    r = cli("profile", "--out", shipped, "--limit", 1)
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.err
    assert str(shipped) in r.err and "--force" in r.err and "Traceback" not in r.err
    assert _profile_files(shipped) == before  # nothing written


def test_profile_resumes_its_own_partial_profile_and_force_replaces_another(tmp_path, cli, profile_copy):
    quick = ["--space", "sensor-imu", "--precision", "fp32", "--warmup", 1, "--repeats", 5]
    mine = tmp_path / "mine"
    assert cli("profile", "--out", mine, "--limit", 2, *quick).code == 0
    first = (mine / "lut.csv").read_text().splitlines()
    resumed = cli("profile", "--out", mine, "--limit", 3, *quick)
    assert resumed.code == 0, resumed.err
    lines = (mine / "lut.csv").read_text().splitlines()
    assert len(lines) == len(first) + 1 and set(first) <= set(lines)  # kept rows are not re-measured
    shipped = profile_copy("stm32l4r5")
    forced = cli("profile", "--out", shipped, "--limit", 1, "--force", *quick)
    assert forced.code == 0, forced.err
    assert "measured" in (shipped / "lut.csv").read_text() and "modeled" not in (shipped / "lut.csv").read_text()
    assert (shipped / "latency_model.yaml").exists()  # --force replaces only the profiler's own files


def test_export_without_its_extras_names_the_install_command(tmp_path, cli, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("onnxscript", "litert_torch") else real(name, *a))
    out = tmp_path / "out"
    r = cli("export", "--study", "nope", "--storage", f"sqlite:///{tmp_path / 'none.db'}", "--out", out)
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.err
    assert "onnxscript" in r.err and "litert_torch" in r.err and 'pip install -e ".[export]"' in r.err
    assert not out.exists() and not (tmp_path / "none.db").exists()  # before the study is even read


def test_front_table_rounds_latency_once_like_the_progress_line():
    """A latency is rounded once where it is printed: 0.00149 ms is 0.001 in the table, as in the progress
    line (rounded first to 4 decimals it read 0.002), and csv/json keep 4 decimals."""
    from workbench.cli import format_rows

    row = {"trial": 0, "accuracy": 0.9, "latency_ms": 0.00149, "peak_sram_kb": 1.0, "flash_kb": 2.0, "macs": 10,
           "precision": "int8", "architecture": "x"}
    table = format_rows([row], "table").splitlines()[1]
    assert table.split()[2] == f"{row['latency_ms']:.3f}" == "0.001"
    assert json.loads(format_rows([row], "json"))[0]["latency_ms"] == 0.0015
    assert format_rows([row], "csv").splitlines()[1].split(",")[2] == "0.0015"


def test_a_reader_that_leaves_early_gets_no_traceback():
    """`workbench devices | head -1`: the pipe closes under the writer; exit 141 quietly, like a shell tool."""
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write
    try:
        run = subprocess.run([sys.executable, "-m", "workbench.cli", "devices"], stdout=write_end,
                             stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert run.returncode == 141 and "Traceback" not in run.stderr, run.stderr


def test_an_interrupt_re_raised_as_another_error_is_still_an_interrupt():
    """A stop signal landing inside an import can come back as the importer's own error: still a stop."""
    from workbench._infra.processes import Terminated
    from workbench.cli import interrupt_behind

    stop = Terminated(signal.SIGTERM)
    try:
        try:
            raise stop
        except KeyboardInterrupt as exc:
            raise ImportError("while importing a module") from exc
    except ImportError as wrapped:
        assert interrupt_behind(wrapped) is stop
    assert interrupt_behind(ValueError("an ordinary error")) is None


@pytest.fixture
def fake_training(monkeypatch):
    """Training replaced by a deterministic fake (the CLI's own path is what these tests check)."""
    from workbench.model.train import TrainResult

    def fake(arch, dataset, *, epochs, seed, **kwargs):
        acc = 1.0 - 1.0 / (1 + arch.macs / 1e5)
        return TrainResult(accuracy=acc, fp32_accuracy=acc, epochs=epochs, train_seconds=0.0, model=None)

    monkeypatch.setattr("workbench.model.train.train_and_evaluate", fake)


def test_search_for_on_device_learning_then_pareto_recomputes_training_memory(tmp_path, cli, profile_copy,
                                                                             fake_training):
    from workbench.hardware.profiles import load_profile
    from workbench.hardware.training import training_cost
    from workbench.model.arch import Architecture
    from workbench.study.stored import StoredStudy

    storage = f"sqlite:///{tmp_path / 'learn.db'}"
    run = cli("search", "--space", "sensor-imu", "--device", "stm32f746", "--trials", 4, "--epochs", 1,
              "--study", "learn", "--storage", storage, "--objectives", "accuracy,latency,train_sram",
              "--train-scheme", "bias:2", "--train-sram-budget", 10)
    assert run.code == 0, run.err
    assert "tsram" in run.err  # the progress line shows training memory
    table = cli("pareto", "--study", "learn", "--storage", storage)
    assert "train SRAM KB" in table.out.splitlines()[2]
    assert "training memory of --train-scheme bias:2 (int8, sgd), budget 10 KB" in table.out.splitlines()[0]
    # a profile no trial stored a prediction for: training memory is recomputed for it
    folder = profile_copy()
    (folder / "profile.yaml").write_text((folder / "profile.yaml").read_text().replace("name: stm32f746",
                                                                                       "name: m7-other", 1))
    other = cli("pareto", "--study", "learn", "--storage", storage, "--device", folder, "--format", "json")
    assert other.code == 0, other.err
    rows = json.loads(other.out)["front"]
    assert rows and "on m7-other" in other.err
    stored = StoredStudy("learn", storage)
    archs = {t.number: Architecture.from_dict(t.user_attrs["arch"]) for t in stored.study.get_trials()}
    profile = load_profile(folder)
    for row in rows:
        expected = training_cost(archs[row["trial"]], profile, "bias:2").peak_sram_bytes / 1024
        assert row["train_sram_kb"] == round(expected, 1) and row["train_sram_kb"] <= 10
    assert "m7-other" not in stored.study.get_trials()[0].user_attrs["predictions"]  # recomputed, not stored


@pytest.mark.parametrize("args, expected", [
    (["--train-scheme", "wings:3", "--objectives", "accuracy,latency,train_sram"], "--train-scheme: unknown scheme"),
    (["--train-scheme", "bias:99", "--objectives", "accuracy,latency,train_sram"], "--train-scheme bias:99: K=99"),
    (["--train-sram-budget", "0"], "--train-sram-budget: must be a number > 0 KB"),
    (["--train-sram-budget", "-5"], "--train-sram-budget: must be a number > 0 KB"),
    (["--train-sram-budget", "lots"], "--train-sram-budget: must be a number > 0 KB, got 'lots'"),
    (["--train-scheme", "bias:2"], "--train-scheme: only used with"),
])
def test_bad_training_options_give_one_line_and_touch_no_storage(tmp_path, cli, args, expected):
    db = tmp_path / "never.db"
    run = cli(*BASE, "--space", "sensor-imu", "--storage", f"sqlite:///{db}", *args)
    lines = run.err.strip().splitlines()
    assert run.code == 2 and len(lines) == 1 and expected in lines[0], run.err
    assert not db.exists()
