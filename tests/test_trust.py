"""workbench.hardware.trust: every printed latency says what it rests on and how far off it has been."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from workbench.calibration import calibrate
from workbench.hardware import machine, profiles
from workbench.hardware.locations import PROFILES_DIR
from workbench.calibration.calibrate import Measurement
from workbench.cli import main
from workbench.model.space import load_space
from workbench.hardware.trust import latency_trust, trust_lines
from workbench._infra.yamlio import load_yaml_mapping

ROOT = Path(__file__).resolve().parent.parent
OTHER = {"cpu": "Some Other CPU 9000", "cores": 64, "runtime": "onnxruntime 0.0.1"}


def _copy(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    shutil.copytree(PROFILES_DIR / name, folder)
    return folder


def _load(folder: Path):
    return profiles.parse_profile(load_yaml_mapping(folder / "profile.yaml"), folder / "profile.yaml")


@pytest.mark.parametrize("name", ["stm32f746", "stm32l4r5", "stm32l4r5-microtvm", "stm32l4r5-xcubeai"])
def test_calibrated_profiles_state_their_leave_one_out_error(name):
    """int8 (measured) repeats the calibration record's own summary; w4a8 (the same integer kernels, never
    measured) is derived from it; fp32 (never measured, other kernels) is an unchecked model."""
    record = load_yaml_mapping(PROFILES_DIR / name / "latency_model.yaml")["calibration"]
    profile = profiles.load_profile(name)
    int8 = latency_trust(profile, "int8")
    assert int8.basis == "calibrated" and int8.models == record["measurements"]
    assert (int8.loo_mean_pct, int8.loo_max_pct) == (record["loo_error_pct"]["mean_abs"],
                                                     record["loo_error_pct"]["max_abs"])
    assert int8.within_25pct == record["within_25pct_loo"]
    assert f"worst {record['loo_error_pct']['max_abs']:g} %" in int8.text
    w4a8 = latency_trust(profile, "w4a8")
    assert w4a8.basis == "derived" and w4a8.loo_max_pct == int8.loo_max_pct and "no w4a8 measurement" in w4a8.text
    fp32 = latency_trust(profile, "fp32")
    assert fp32.basis == "modeled" and fp32.loo_mean_pct is None and "error unknown" in fp32.text


def test_a_fresh_calibration_is_what_the_statement_reports(tmp_path):
    """Recalibrated on three of its published models, the profile's statement carries that fit's figures."""
    folder = _copy(tmp_path, "stm32f746")
    rows = (folder / "published_latency.csv").read_text().splitlines()
    subset = folder / "three.csv"
    subset.write_text("\n".join(rows[:1] + rows[1:4]) + "\n")
    report = calibrate.calibrate_profile(folder, subset, strength=0.3)
    trust = latency_trust(_load(folder), "int8")
    summary = report.summary()
    assert trust.models == 3 and trust.loo_max_pct == summary["loo_error_pct"]["max_abs"]
    assert trust.loo_mean_pct == summary["loo_error_pct"]["mean_abs"]
    assert trust.text.startswith("int8: calibrated to 3 measured models")


def test_an_uncalibrated_model_says_its_error_is_unknown(tmp_path):
    folder = _copy(tmp_path, "stm32f746")
    path = folder / "latency_model.yaml"
    data = yaml.safe_load(path.read_text())
    del data["calibration"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    trust = latency_trust(_load(folder), "int8")
    assert trust.basis == "modeled" and trust.models == 0 and "error unknown" in trust.text
    assert latency_trust(profiles.load_profile("rpi4"), "int8").basis == "modeled"  # shipped: not calibrated


def test_a_measured_profile_names_its_machine_and_its_whole_model_check(tmp_path, monkeypatch):
    folder = _copy(tmp_path, "host-cpu")
    monkeypatch.setattr(machine, "this_machine", lambda: dict(OTHER))
    profile = _load(folder)
    elsewhere = latency_trust(profile, "fp32")
    assert elsewhere.basis == "measured" and "another machine" in elsewhere.text
    assert "workbench calibrate host-cpu --quick" in elsewhere.text

    # a whole-model refresh on "this" machine: the statement then says so and carries its leave-one-out error
    archs = load_space("sensor-imu").random_archs(8, seed=3, precisions=["fp32"])
    truth = [0.004 + 1.2 * sum(profile.latency.op_latency(op)[0] for op in a.ops) for a in archs]
    ms = [Measurement(a.to_json(), a.precision, t, "synthetic") for a, t in zip(archs, truth)]
    report = calibrate.calibrate_lut(profile, ms, [list(a.ops) for a in archs], machine=dict(OTHER))
    stored = json.loads((folder / "calibration.json").read_text())["whole_model"]
    assert stored["loo_error_pct"] == report.summary()["loo_error_pct"] and stored["models"] == len(archs)
    here = latency_trust(_load(folder), "fp32")
    assert "on this machine (Some Other CPU 9000" in here.text and here.models == len(archs)
    assert here.loo_max_pct == report.summary()["loo_error_pct"]["max_abs"]


def test_every_command_that_prints_a_latency_says_how_far_to_trust_it(tmp_path, capsys):
    import onnx

    from workbench.calibration.profiler import arch_graph

    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    f746 = profiles.load_profile("stm32f746")
    for line in trust_lines(f746):
        assert f"    latency {line}" in out

    model = tmp_path / "model.onnx"
    onnx.save(arch_graph(load_space("sensor-imu").random_archs(1, seed=1, precisions=["fp32"])[0]), str(model))
    assert main(["score", str(model), "--device", "stm32f746", "--format", "json"]) == 0
    trust = json.loads(capsys.readouterr().out)["devices"]["stm32f746"]["latency_trust"]
    assert trust == [latency_trust(f746, "fp32").to_dict()]
    assert main(["score", str(model), "--device", "stm32f746"]) == 0
    assert latency_trust(f746, "fp32").text in capsys.readouterr().out


def test_memory_figures_say_what_is_checked_and_what_is_estimated(tmp_path):
    from workbench.hardware.trust import memory_trust

    m7 = memory_trust(profiles.load_profile("stm32f746"))
    assert "cmsis-nn scratch and 32-bit structs modeled" in m7 and "runtime code (estimate" in m7
    host = memory_trust(profiles.load_profile("host-cpu"))
    assert "modeled" not in host and "runtime code not counted" in host and "allocates its own way" in host
    folder = _copy(tmp_path, "stm32l4r5")
    text = (folder / "profile.yaml").read_text()
    (folder / "profile.yaml").write_text(text[:text.index("\nmemory:")] + "\n")
    assert memory_trust(_load(folder)).startswith("memory: per-layer rule")


def test_a_front_with_interpolated_ops_says_so():
    from workbench.cli import trust_note
    from workbench.study.front import TrialRecord

    arch = load_space("sensor-imu").random_archs(1, seed=2, precisions=["int8"])[0]
    profile = profiles.load_profile("host-cpu")

    def record(n: int, interpolated: int) -> TrialRecord:
        return TrialRecord(n, arch, 0.9, {"host-cpu": {"interpolated_ops": interpolated}}, (), 1.0)

    assert "interpolated" not in trust_note(profile, [record(0, 0)])
    assert "3 ops of this front are not in its LUT" in trust_note(profile, [record(0, 0), record(1, 3)])


def test_a_network_with_4_bit_stages_names_both_kernels_it_runs():
    """An int8 network with 4-bit stages runs w4a8 ops too: its latency rests on two statements."""
    from workbench.hardware.trust import precisions_of

    archs = load_space("vision").random_archs(40, seed=0)
    mixed = next(a for a in archs if {op.precision for op in a.ops} == {"int8", "w4a8"})
    assert precisions_of([mixed]) == ["int8", "w4a8"]
    f746 = profiles.load_profile("stm32f746")
    assert [t.split(":")[0] for t in trust_lines(f746, precisions_of([mixed]))] == ["int8", "w4a8"]


@pytest.mark.repo
def test_a_recorded_fidelity_check_is_quoted_while_the_lut_is_unchanged(tmp_path, monkeypatch):
    """benchmarks/bench_fidelity.py --record: its per-precision result shows in the measured profile's line,
    and stops showing once the LUT it checked is no longer the one in the folder."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_fidelity

    folder = _copy(tmp_path, "host-cpu")
    monkeypatch.setattr(machine, "this_machine", lambda: dict(OTHER))
    from workbench.calibration.host_profile import set_measured_on

    set_measured_on(folder / "profile.yaml", OTHER)
    profile = _load(folder)
    assert profile.measured_on == OTHER  # "this" machine: the line speaks of this one
    rows = [(1.0, 1.05, "int8"), (2.0, 2.5, "int8"), (1.0, 1.0, "fp32")]  # predicted, measured, precision
    bench_fidelity.record(profile, {"overall": rows}, SimpleNamespace(n=5, seed=0, repeats=10))
    int8 = latency_trust(_load(folder), "int8")
    assert int8.fidelity["models"] == 2 and int8.fidelity["within_10pct"] == 0.5
    assert "50% of 2 random whole models within ±10 %" in int8.text
    assert latency_trust(_load(folder), "fp32").fidelity["within_10pct"] == 1.0
    lut = folder / "lut.csv"
    lines = lut.read_text().splitlines()
    lines[1] = lines[1].replace(lines[1].split(",")[5], "9.9", 1)  # one entry re-measured: another LUT
    lut.write_text("\n".join(lines) + "\n")
    assert latency_trust(_load(folder), "int8").fidelity is None
