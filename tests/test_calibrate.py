"""workbench calibrate: fitting latency constants to whole-model latencies, and host profiles per machine."""
from __future__ import annotations

import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from workbench.calibration import calibrate
from workbench.hardware import machine, profiles
from workbench.hardware.locations import PROFILES_DIR
from workbench.calibration.calibrate import Measurement, fit, leave_one_out
from workbench.cli import main
from workbench._infra.errors import WorkbenchError
from workbench.hardware.latency_model import LatencyConstants, load_constants, op_cycles
from workbench.hardware.profiles import model_profile
from workbench.model.space import load_space
from workbench._infra.yamlio import load_yaml_mapping

ROOT = Path(__file__).resolve().parent.parent
TRUE = LatencyConstants("synthetic truth", {"int8": {"conv": 2.5, "depthwise": 4.0, "pointwise": 1.8, "fc": 1.2}},
                        sram_bytes_per_cycle=2.0, flash_bytes_per_cycle=0.5, cycles_per_element=4.0,
                        per_layer_overhead_cycles=5000.0, per_inference_cycles=20000.0,
                        cycles_per_output={"int8": 15.0})


def _modeled_copy(tmp_path: Path, name: str = "stm32l4r5") -> Path:
    folder = tmp_path / name
    shutil.copytree(PROFILES_DIR / name, folder)
    return folder


def _synthetic_csv(folder: Path, archs, clock_mhz: float) -> Path:
    lines = ["model,ms,source"]
    # the truth's numbers, typed the way the profile types layers (stm32l4r5: 1-input-channel convs as depthwise)
    truth = replace(TRUE, one_input_channel_conv=load_constants(folder / "latency_model.yaml").one_input_channel_conv)
    for i, arch in enumerate(archs):
        (folder / f"arch{i}.json").write_text(arch.to_json())
        cycles = truth.per_inference_cycles + sum(op_cycles(op, truth) for op in arch.ops)
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
    assert got.cycles_per_output["int8"] == pytest.approx(TRUE.cycles_per_output["int8"], rel=0.02)
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


def test_chip_constants_keep_their_prior_when_the_runtime_is_slower():
    """The measured models use only a compute constant and run 3x slower than its prior: k = 3. A constant no
    model uses (say the flash term of FC weights, when no FC network was timed) becomes 3x its prior when it
    is the runtime's, but stays at its prior when it is the chip's (CHIP_CONSTANTS: memory speeds) — scaled,
    a conv-only fit put the MLPerf FC autoencoder at +256 % on the L4R5 reference build."""
    x = np.array([[1.0, 0.0], [2.0, 0.0]])
    y = np.array([3.0, 6.0])
    prior, lower = np.array([1.0, 0.5]), np.zeros(2)
    assert fit(x, y, prior, lower, 0.1) == pytest.approx([3.0, 1.5])
    assert fit(x, y, prior, lower, 0.1, np.array([False, True])) == pytest.approx([3.0, 0.5])
    terms = calibrate.ModeledTerms(TRUE, 120.0)
    assert [n for n, u in zip(terms.names, terms.unscaled) if u] == ["flash_cycles_per_byte", "sram_cycles_per_byte"]


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


def _published_profiles() -> list[Path]:
    return [f for f in profiles.list_profiles() if (f / "published_latency.csv").is_file()]


def test_published_calibrations_cite_their_sources():
    assert {f.name for f in _published_profiles()} >= {"stm32f746", "stm32l4r5", "stm32l4r5-microtvm",
                                                         "stm32l4r5-xcubeai"}
    for folder in _published_profiles():
        for m in calibrate.read_measurements(folder / "published_latency.csv"):
            mlperf = "MLPerf Tiny" in m.source and "github.com/mlcommons/" in m.source
            paper = "arXiv:" in m.source and "Table" in m.source  # a paper, its version and the table
            assert mlperf or paper, (folder.name, m.model)
        text = (folder / "latency_model.yaml").read_text()
        assert "measurements:" in text and "loo_error_pct" in text


def test_shipped_calibrations_are_what_their_commands_produce(tmp_path):
    """Each published calibration, rerun as its recorded command says (--restart), gives the shipped
    constants, errors and LUT again: the docs' tables (docs/guides/devices.md) come from the files as shipped."""
    for folder in _published_profiles():
        copy = tmp_path / folder.name
        shutil.copytree(folder, copy)
        shipped = load_yaml_mapping(folder / "latency_model.yaml")
        assert "--restart" in shipped["calibration"]["command"]
        calibrate.calibrate_profile(copy, copy / "published_latency.csv", strength=shipped["calibration"]["strength"],
                                    restart=True)
        again = load_yaml_mapping(copy / "latency_model.yaml")
        for key in ("cycles_per_mac", "sram_bytes_per_cycle", "flash_bytes_per_cycle", "cycles_per_element",
                    "per_layer_overhead_cycles", "per_inference_cycles", "measurements"):
            assert again[key] == shipped[key], (folder.name, key)
        for key in ("fit_error_pct", "loo_error_pct", "within_25pct_loo", "per_model", "prior"):
            assert again["calibration"][key] == shipped["calibration"][key], (folder.name, key)
        assert (copy / "lut.csv").read_text() == (folder / "lut.csv").read_text(), folder.name


# MicroNets (arXiv:2010.11267v6) Table 4 "Mops" (one multiply-accumulate = two ops) of the models the stm32f746
# calibration describes in hw_profiles/stm32f746/models/: the descriptions must be the published networks.
MICRONETS_MOPS = {"micronet-kws-l": 129, "micronet-kws-m": 30.6, "micronet-kws-s": 16.4, "micronet-ad-m": 124.7,
                  "dscnn-l": 107.2, "dscnn-m": 37.3, "dscnn-s": 7.1, "mlperf-ad": 0.52}


def test_stm32f746_published_models_are_the_papers_and_cost():
    from workbench.hardware.cost import estimate

    folder = PROFILES_DIR / "stm32f746"
    device = profiles.load_profile(folder)
    measurements = calibrate.read_measurements(folder / "published_latency.csv")
    assert len(measurements) >= 8
    checked = 0
    for m in measurements:
        assert "MicroNets" in m.source and "STM32F746ZG" in m.source and m.precision == "int8"
        ops = calibrate.model_ops(m, folder)
        assert ops and all(op.precision == "int8" for op in ops), m.model
        name = Path(m.model).stem
        macs = sum(op.macs for op in ops)
        if name in MICRONETS_MOPS:
            assert 2 * macs / 1e6 == pytest.approx(MICRONETS_MOPS[name], rel=0.03), name
            checked += 1
        space = load_space(folder / m.model if m.model.endswith(".yaml") else m.model)
        arch = space.random_archs(1, seed=0, precisions=["int8"])[0]  # every choice is fixed: the one network
        assert arch.ops == tuple(ops), name
        cost = estimate(arch, device)
        assert cost.supported and cost.latency_ms > 0 and cost.peak_sram_bytes > 0 and cost.flash_bytes > 0
    assert checked == len(MICRONETS_MOPS)


# ---------------------------------------------------------------- host profiles per machine

OTHER = {"cpu": "Some Other CPU 9000", "cores": 64, "runtime": "onnxruntime 0.0.1"}


@pytest.fixture
def host_copy(tmp_path, monkeypatch):
    folder = tmp_path / "host"
    shutil.copytree(PROFILES_DIR / "host-cpu", folder)
    monkeypatch.setattr(profiles, "_CACHE", profiles.ProfileCache())
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
    truth = [0.004 + 1.5 * sum(profile.latency.op_latency(op)[0] for op in a.ops) for a in archs]
    ms = [Measurement(a.to_json(), a.precision, t, "synthetic") for a, t in zip(archs, truth)]
    calibrate.calibrate_lut(profile, ms, [list(a.ops) for a in archs], machine=machine.this_machine())
    monkeypatch.setattr(profiles, "_CACHE", profiles.ProfileCache())
    monkeypatch.setattr(profiles, "_NOTIFIED", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        refreshed = profiles.load_profile(host_copy)
    assert not [w for w in caught if issubclass(w.category, machine.OtherMachineWarning)]
    assert refreshed.measured_on == OTHER
    assert "calibrated to whole models on Some Other CPU 9000" in next(iter(refreshed.latency.lut.entries.values())).reference


def test_cli_prints_the_notice_on_one_line(host_copy, monkeypatch, capsys):
    import onnx

    from workbench.calibration.profiler import arch_graph

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
    truth = [0.003 + sum(1.3 * profile.latency.op_latency(op)[0] + 0.002 for op in a.ops) for a in archs]
    ms = [Measurement(a.to_json(), a.precision, t, "synthetic") for a, t in zip(archs, truth)]
    report = calibrate.calibrate_lut(profile, ms, [list(a.ops) for a in archs], strength=1e-6,
                                     machine=dict(OTHER))
    assert report.summary()["fit_error_pct"]["max_abs"] < 1.0


def test_quick_timing_uses_the_shared_measurement(host_copy, monkeypatch):
    """--quick times each model once through graph_timing.measure (the profiler's settings and
    statistic) and records that time; models with ops the LUT lacks are skipped, not timed."""
    from workbench.calibration import graph_timing

    calls = []

    def fake_measure(model, input_shape=None, warmup=0, repeats=1):
        calls.append((len(model.graph.node), warmup, repeats))
        return 0.5 + 0.01 * len(model.graph.node), 0.0, repeats

    monkeypatch.setattr(graph_timing, "measure", fake_measure)
    profile = profiles.parse_profile(load_yaml_mapping(host_copy / "profile.yaml"), host_copy / "profile.yaml")
    measurements, ops = calibrate.time_host_models(profile, n_per_space=1, progress=False)
    assert len(measurements) == len(ops) == len(calls) > 0
    assert {(w, r) for _, w, r in calls} == {(20, 100)}
    assert [m.ms for m in measurements] == [0.5 + 0.01 * n for n, _, _ in calls]
    assert all(m.source.startswith("timed here:") for m in measurements)
    assert all(all(op.key in profile.latency.lut.entries for op in model_ops) for model_ops in ops)


def test_int8_timings_leave_the_float_kernels_at_their_prior(tmp_path):
    """int8 measurements scale the integer kernels (w4a8 runs them too), never fp32: other code, unmeasured."""
    folder = _modeled_copy(tmp_path, "stm32f746")
    prior = load_constants(folder / "latency_model.yaml")
    report = calibrate.calibrate_profile(folder, _synthetic_csv(folder, _int8_archs()[:6], 216.0), strength=1.0)
    got = load_constants(folder / "latency_model.yaml")
    assert got.cycles_per_mac["fp32"] == prior.cycles_per_mac["fp32"]
    assert got.cycles_per_output["fp32"] == prior.cycles_per_output["fp32"]
    assert got.cycles_per_mac["w4a8"] != prior.cycles_per_mac["w4a8"]  # scaled with the int8 kernels
    assert report.summary()["measurements"] == 6
