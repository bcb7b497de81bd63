"""The CLI end to end on a tiny budget, and one clear line + exit 2 for every kind of bad input."""
import json

import pytest

from conftest import ROOT


def test_search_then_pareto_for_other_devices(tmp_path, cli):
    storage = f"sqlite:///{tmp_path / 'cli.db'}"
    run = cli("search", "--space", "sensor-imu", "--device", "stm32f746", "--data", "basic-motions",
              "--trials", 3, "--epochs", 1, "--study", "e2e", "--storage", storage, "--seed", 1)
    assert run.code == 0, run.err
    assert "Pareto front on stm32f746" in run.out and "stored in" in run.out
    assert run.err.count("trial ") == 3  # one progress line per trial
    as_json = cli("pareto", "--study", "e2e", "--storage", storage, "--format", "json")
    rows = json.loads(as_json.out)
    assert rows and {"trial", "accuracy", "latency_ms", "peak_sram_kb", "flash_kb", "macs"} <= set(rows[0])
    other = cli("pareto", "--study", "e2e", "--storage", storage, "--device", "stm32l4r5", "--format", "csv")
    assert other.code == 0 and other.out.splitlines()[0].startswith("trial,accuracy,latency_ms")
    m7 = {r["trial"]: r["latency_ms"] for r in rows}
    m4 = {int(line.split(",")[0]): float(line.split(",")[2]) for line in other.out.splitlines()[1:]}
    assert all(m4[t] > m7[t] for t in m4.keys() & m7.keys())  # the slower M4 is predicted slower


def test_listing_commands(cli):
    spaces = cli("spaces")
    assert spaces.code == 0 and len(spaces.out.splitlines()) == 3
    devices = cli("devices")
    assert {"stm32f746", "stm32l4r5", "rpi4", "host-cpu"} <= {line.split()[0] for line in devices.out.splitlines()}
    assert "digits" in cli("datasets").out


@pytest.mark.parametrize("command", ["search", "pareto", "quickstart", "profile", "spaces", "devices",
                                     "model-lut", "datasets"])
def test_help_everywhere(cli, command):
    assert cli(command, "--help").code == 0


def _bad_space(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


BASE = ["search", "--device", "stm32f746", "--trials", 1, "--epochs", 1]


@pytest.mark.parametrize("case", ["malformed", "unknown-key", "out-of-range", "unknown-space", "unknown-device",
                                  "missing-lut", "missing-data", "bad-storage", "storage-folder", "unknown-study",
                                  "wrong-encoding", "nan-latency"])
def test_bad_input_gives_one_clear_line_and_exit_2(tmp_path, cli, profile_copy, case):
    sensor = (ROOT / "search_spaces" / "sensor-imu.yaml").read_text()
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
        "unknown-study": (lambda: None, "no study 'ghost'"),
        "wrong-encoding": (lambda: ["--space", _latin1(tmp_path)], "not UTF-8"),
        "nan-latency": (lambda: ["--space", "sensor-imu", "--device", _nan_lut(profile_copy())], "mean_ms: expected a finite"),
    }[case]
    args = make_args()
    if args is None:
        run = cli("pareto", "--study", "ghost", "--storage", storage)
    else:
        run = cli(*BASE, "--storage", storage, *args)
    assert run.code == 2
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.err
    assert expected in lines[0]
    assert "Traceback" not in run.err


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
    assert bad.code == 2 and "was created with device" in bad.err
    assert cli("pareto", "--study", "keep", "--storage", storage, "--format", "json").out == before
