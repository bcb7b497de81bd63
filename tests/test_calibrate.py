"""workbench calibrate: fitting latency constants to whole-model latencies, and host profiles per machine."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from workbench import calibrate, machine, profiles
from workbench.calibrate import Measurement, fit, leave_one_out
from workbench.cli import main
from workbench.errors import WorkbenchError
from workbench.latency_model import LatencyConstants, load_constants, model_profile, op_cycles
from workbench.space import load_space
from workbench.yamlio import load_yaml_mapping

ROOT = Path(__file__).resolve().parent.parent
TRUE = LatencyConstants("synthetic truth", {"int8": {"conv": 2.5, "depthwise": 4.0, "pointwise": 1.8, "fc": 1.2}},
                        sram_bytes_per_cycle=2.0, flash_bytes_per_cycle=0.5, cycles_per_element=4.0,
                        per_layer_overhead_cycles=5000.0, per_inference_cycles=20000.0)


def _modeled_copy(tmp_path: Path, name: str = "stm32l4r5") -> Path:
    folder = tmp_path / name
    shutil.copytree(ROOT / "hw_profiles" / name, folder)
    return folder


def _synthetic_csv(folder: Path, archs, clock_mhz: float) -> Path:
    lines = ["model,ms,source"]
    for i, arch in enumerate(archs):
        (folder / f"arch{i}.json").write_text(arch.to_json())
        cycles = TRUE.per_inference_cycles + sum(op_cycles(op, TRUE) for op in arch.ops)
        lines.append(f"arch{i}.json,{cycles / (clock_mhz * 1000):.9g},synthetic: generated from known constants")
    path = folder / "timed.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _int8_archs():
    archs = []
    for name in ("vision", "audio-kws", "sensor-imu"):
        archs += load_space(name).random_archs(8, seed=7, precisions=["int8"])
    return [a for a in archs if a.precision == "int8" and all(op.wbits == 8 for op in a.ops)]


def test_calibration_recovers_known_constants(tmp_path):
    folder = _modeled_copy(tmp_path)
    archs = _int8_archs()
    assert len(archs) >= 12
    csv_path = _synthetic_csv(folder, archs, 120.0)
    report = calibrate.calibrate_profile(folder, csv_path, strength=1e-9)
    got = load_constants(folder / "latency_model.yaml")
    for kind, value in TRUE.cycles_per_mac["int8"].items():
        assert got.cycles_per_mac["int8"][kind] == pytest.approx(value, rel=0.02), kind
    assert got.sram_bytes_per_cycle == pytest.approx(TRUE.sram_bytes_per_cycle, rel=0.02)
    assert got.flash_bytes_per_cycle == pytest.approx(TRUE.flash_bytes_per_cycle, rel=0.02)
    assert got.per_layer_overhead_cycles == pytest.approx(TRUE.per_layer_overhead_cycles, rel=0.02)
    assert got.per_inference_cycles == pytest.approx(TRUE.per_inference_cycles, rel=0.05)
    assert report.summary()["fit_error_pct"]["max_abs"] < 1.0
    assert report.summary()["loo_error_pct"]["max_abs"] < 2.0
    # every measurement and its source is kept with the constants
    text = (folder / "latency_model.yaml").read_text()
    assert text.count("synthetic: generated from known constants") == len(archs)
    assert "prior:" in text  # the constants it started from


def test_regularisation_keeps_few_measurements_near_the_prior(tmp_path):
    """Two models cannot pin down nine constants: a strong pull keeps the ratios of the current constants."""
    folder = _modeled_copy(tmp_path)
    prior = load_constants(folder / "latency_model.yaml").cycles_per_mac["int8"]
    csv_path = _synthetic_csv(folder, _int8_archs()[:2], 120.0)
    calibrate.calibrate_profile(folder, csv_path, strength=100.0)
    got = load_constants(folder / "latency_model.yaml").cycles_per_mac["int8"]
    ratios = [got[k] / prior[k] for k in prior]
    assert max(ratios) / min(ratios) < 1.1  # one common scale, not a free-for-all


def test_calibrated_lut_equals_what_its_constants_generate(tmp_path):
    folder = _modeled_copy(tmp_path)
    calibrate.calibrate_profile(folder, _synthetic_csv(folder, _int8_archs()[:6], 120.0))
    written = (folder / "lut.csv").read_text()
    model_profile(folder)  # what `workbench model-lut` writes
    assert (folder / "lut.csv").read_text() == written


def test_restart_reproduces_a_calibration(tmp_path):
    """--restart starts from the constants recorded before the first calibration: the same file again."""
    folder = _modeled_copy(tmp_path)
    csv_path = _synthetic_csv(folder, _int8_archs()[:5], 120.0)
    calibrate.calibrate_profile(folder, csv_path, restart=True)
    first = (folder / "latency_model.yaml").read_text()
    calibrate.calibrate_profile(folder, csv_path, restart=True)
    assert (folder / "latency_model.yaml").read_text() == first
    calibrate.calibrate_profile(folder, csv_path)  # without: refines the last fit, the prior record stays
    assert "prior:" in (folder / "latency_model.yaml").read_text()


def test_leave_one_out_by_hand():
    # one constant, x = MAC counts, y = ms; with no pull the fit is c = sum(x/y) / sum((x/y)^2)
    x = np.array([[1.0], [2.0], [4.0]])
    y = np.array([1.0, 2.0, 2.0])
    args = (np.array([1.0]), np.array([0.0]), 0.0)
    # without row 0: x/y = 1, 2 -> c = 3/5; without row 1: x/y = 1, 2 -> 3/5; without row 2: 1, 1 -> 1
    assert leave_one_out(x, y, ["a", "b", "c"], *args) == pytest.approx([0.6, 1.2, 4.0])
    # rows of one model leave together: without rows 1 and 2 only row 0 is left -> c = 1
    assert leave_one_out(x, y, ["a", "b", "b"], *args) == pytest.approx([0.6, 2.0, 4.0])
    assert fit(x, y, *args) == pytest.approx([4 / 6])  # all rows: x/y = 1, 1, 2


def test_bad_measurements_are_one_line(tmp_path, capsys):
    folder = _modeled_copy(tmp_path)
    before = (folder / "latency_model.yaml").read_text()
    bad = tmp_path / "bad.csv"
    bad.write_text("model,ms\nmlperf-kws,10\nmlperf-ic,20\n")
    assert main(["calibrate", str(folder), "--measurements", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.csv" in err[0] and "source" in err[0]
    bad.write_text("model,ms,source\nmlperf-kws,-3,x\nmlperf-ic,20,y\n")
    with pytest.raises(WorkbenchError, match=r"bad.csv:2: ms"):
        calibrate.read_measurements(bad)
    bad.write_text("model,ms,source\nvision,3,x\nmlperf-ic,20,y\n")  # a space with free choices
    with pytest.raises(WorkbenchError, match="architecture JSON"):
        calibrate.calibrate_profile(folder, bad)
    assert (folder / "latency_model.yaml").read_text() == before


def test_shipped_space_names_are_models():
    ops = calibrate.model_ops(Measurement("mlperf-kws", "int8", 1.0, "x"), ROOT)
    assert ops and all(op.precision == "int8" for op in ops)


def test_every_shipped_modeled_lut_is_what_model_lut_generates(tmp_path):
    shipped = [p for p in profiles.list_profiles() if (p / "latency_model.yaml").is_file()]
    assert len(shipped) >= 4
    for folder in shipped:
        copy = tmp_path / folder.name
        shutil.copytree(folder, copy)
        model_profile(copy)
        assert (copy / "lut.csv").read_text() == (folder / "lut.csv").read_text(), folder.name
        assert (copy / "profile.yaml").read_text() == (folder / "profile.yaml").read_text(), folder.name


def test_published_calibrations_cite_their_sources():
    for folder in profiles.list_profiles():
        csv_path = folder / "published_latency.csv"
        if not csv_path.is_file():
            continue
        for m in calibrate.read_measurements(csv_path):
            assert "MLPerf Tiny" in m.source and "github.com/mlcommons/" in m.source
        text = (folder / "latency_model.yaml").read_text()
        assert "measurements:" in text and "loo_error_pct" in text


# ---------------------------------------------------------------- host profiles per machine

OTHER = {"cpu": "Some Other CPU 9000", "cores": 64, "runtime": "onnxruntime 0.0.1"}


@pytest.fixture
def host_copy(tmp_path, monkeypatch):
    folder = tmp_path / "host"
    shutil.copytree(ROOT / "hw_profiles" / "host-cpu", folder)
    monkeypatch.setattr(profiles, "_CACHE", {})
    monkeypatch.setattr(profiles, "_NOTIFIED", set())
    return folder


def test_cpu_mismatch_notice_fires_once_and_refresh_clears_it(host_copy, monkeypatch):
    monkeypatch.setattr(machine, "this_machine", lambda: dict(OTHER))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        profile = profiles.load_profile(host_copy)
        profiles.load_profile(host_copy)
        profiles.all_profiles()  # listings load every profile quietly
    notices = [w for w in caught if issubclass(w.category, machine.OtherMachineWarning)]
    assert len(notices) == 1
    assert "Some Other CPU 9000" in str(notices[0].message) and "workbench calibrate" in str(notices[0].message)

    # the refresh: a whole-model calibration on "this" machine rewrites measured_on
    archs = load_space("sensor-imu").random_archs(6, seed=3, precisions=["fp32", "int8"])
    truth = [0.004 + 1.5 * sum(profile.lut.latency(op)[0] for op in a.ops) for a in archs]
    ms = [Measurement(a.to_json(), a.precision, t, "synthetic") for a, t in zip(archs, truth)]
    calibrate.calibrate_lut(profile, ms, [list(a.ops) for a in archs], machine=machine.this_machine())
    monkeypatch.setattr(profiles, "_CACHE", {})
    monkeypatch.setattr(profiles, "_NOTIFIED", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        refreshed = profiles.load_profile(host_copy)
    assert not [w for w in caught if issubclass(w.category, machine.OtherMachineWarning)]
    assert refreshed.measured_on == OTHER
    assert "calibrated to whole models on Some Other CPU 9000" in next(iter(refreshed.lut.entries.values())).reference


def test_cli_prints_the_notice_on_one_line(host_copy, monkeypatch, capsys):
    import onnx

    from workbench.profiler import arch_graph

    model = host_copy.parent / "model.onnx"
    onnx.save(arch_graph(load_space("sensor-imu").random_archs(1, seed=1, precisions=["fp32"])[0]), str(model))
    monkeypatch.setattr(machine, "this_machine", lambda: dict(OTHER))
    assert main(["score", str(model), "--device", str(host_copy)]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("notice:")]
    assert len(err) == 1 and "measured on another machine" in err[0]


def test_lut_calibration_fits_scale_and_per_op_overhead(host_copy):
    """Whole models that cost 1.3x the LUT plus 2 us per op are fitted (what --quick does with timings)."""
    profile = profiles.parse_profile(load_yaml_mapping(host_copy / "profile.yaml"), host_copy / "profile.yaml")
    archs = [a for s in ("sensor-imu", "audio-kws") for a in load_space(s).random_archs(12, seed=5,
                                                                                         precisions=["fp32"])]
    truth = [0.003 + sum(1.3 * profile.lut.latency(op)[0] + 0.002 for op in a.ops) for a in archs]
    ms = [Measurement(a.to_json(), a.precision, t, "synthetic") for a, t in zip(archs, truth)]
    report = calibrate.calibrate_lut(profile, ms, [list(a.ops) for a in archs], strength=1e-6,
                                     machine=dict(OTHER))
    assert report.summary()["fit_error_pct"]["max_abs"] < 1.0
