"""workbench calibration-kit: the models to time on a board so that `workbench calibrate` can pin down every constant."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from workbench.calibration import kit as calibration_kit
from workbench.calibration.calibrate import ModeledTerms, calibrate_profile
from workbench.calibration.kit import candidate_pool, select
from workbench.cli import main
from workbench.hardware.cost import estimate, violations
from workbench.hardware.latency_model import load_constants
from workbench.hardware.profiles import load_profile, parse_profile
from workbench._infra.yamlio import load_yaml_mapping

ROOT = Path(__file__).resolve().parent.parent
INT8_TERMS = {"cycles_per_mac.int8.conv", "cycles_per_mac.int8.depthwise", "cycles_per_mac.int8.pointwise",
              "cycles_per_mac.int8.fc", "cycles_per_output.int8", "per_layer_overhead_cycles", "flash_cycles_per_byte",
              "per_inference_cycles"}


@pytest.fixture(scope="module")
def pool():
    return candidate_pool("int8")


def test_the_kit_fits_the_device_and_exercises_every_constant(pool):
    profile = load_profile("stm32f746")
    kit = select(profile, 12, "int8", pool=pool)
    assert len(kit) == 12 and len({m.arch for m in kit}) == 12
    for m in kit:
        assert all(v <= 0 for v in violations(estimate(m.arch, profile), profile).values())
        assert all(op.precision == "int8" for op in m.arch.ops)  # no 4-bit stage: a .tflite stores it as int8
        assert abs(sum(m.shares.values()) - 1) < 1e-9
    # every term of the int8 latency carries a real share (≥ 10 %) of some model's predicted time
    dominant = {name for m in kit for name, share in m.shares.items() if share >= 0.10}
    assert INT8_TERMS <= dominant, INT8_TERMS - dominant
    assert [m.arch for m in select(profile, 12, "int8", pool=pool)] == [m.arch for m in kit]  # deterministic


def test_the_kit_is_better_conditioned_than_random_picks(pool):
    """The greedy design's share matrix has a larger smallest singular value than any of 20 random draws."""
    profile = load_profile("stm32l4r5-xcubeai")
    kit = select(profile, 12, "int8", pool=pool)
    names = sorted(INT8_TERMS)

    def smallest_singular(models) -> float:
        return float(np.linalg.svd(np.array([[m.shares.get(n, 0.0) for n in names] for m in models]),
                                   compute_uv=False).min())

    candidates = select(profile, len(pool) // 2, "int8", pool=pool)  # shares of many feasible models
    rng = np.random.default_rng(0)
    draws = [smallest_singular([candidates[i] for i in rng.choice(len(candidates), 12, replace=False)])
             for _ in range(20)]
    assert smallest_singular(kit) > max(draws)


def test_timings_of_the_kit_alone_recover_a_boards_constants(tmp_path, pool):
    """A synthetic board whose constants differ from the profile's by up to 2x per term: calibrating on the
    kit's exact latencies (almost no pull to the prior) recovers its int8 constants and predictions."""
    folder = tmp_path / "board"
    shutil.copytree(ROOT / "hw_profiles" / "stm32f746", folder)
    profile = parse_profile(load_yaml_mapping(folder / "profile.yaml"), folder / "profile.yaml")
    consts = load_constants(folder / "latency_model.yaml")
    terms = ModeledTerms(consts, profile.clock_mhz)
    rng = np.random.default_rng(4)
    truth = terms.prior * np.exp(rng.uniform(-0.7, 0.7, len(terms.prior)))
    truth[terms.names.index("per_inference_cycles")] = 40_000.0  # the prior's 0 is no help here
    kit = select(profile, 12, "int8", pool=pool)
    lines = ["model,ms,source,precision"]
    for i, m in enumerate(kit):
        (folder / f"m{i}.json").write_text(m.arch.to_json())
        lines.append(f"m{i}.json,{float(terms.row(m.arch.ops) @ truth):.9g},synthetic board,int8")
    (folder / "timed.csv").write_text("\n".join(lines) + "\n")
    report = calibrate_profile(folder, folder / "timed.csv", strength=1e-6)
    # an int8 FC layer reads one weight byte per MAC: its cycles per MAC and the flash cycles per byte are
    # told apart only by the convolutions' (few, reused) weight bytes, so only their sum is pinned down ...
    for name in INT8_TERMS - {"cycles_per_mac.int8.fc", "flash_cycles_per_byte"}:
        assert report.constants[name] == pytest.approx(truth[terms.names.index(name)], rel=0.03), name
    fitted = np.array([report.constants.get(n, terms.prior[i]) for i, n in enumerate(terms.names)])
    # ... which is what every prediction needs: held-out models of every kind come out within 3 %
    held_out = [a for a in candidate_pool("int8", seed=1, per_space=10) if a not in {m.arch for m in kit}]
    rows = np.array([terms.row(a.ops) for a in held_out])
    assert np.abs(rows @ fitted / (rows @ truth) - 1).max() < 0.03


def test_cli_writes_the_kit_and_refuses_what_it_cannot_do(tmp_path, capsys):
    out = tmp_path / "kit"
    assert main(["calibration-kit", "stm32f746", "--out", str(out), "--models", "5", "--no-files"]) == 0
    rows = list(csv.DictReader((out / "to_time.csv").open()))
    assert len(rows) == 5 and all(r["ms"] == "" and r["source"] == "" and r["precision"] == "int8" for r in rows)
    assert all((out / r["model"]).is_file() for r in rows)
    assert "workbench calibrate stm32f746 --measurements" in capsys.readouterr().out
    assert main(["calibration-kit", "stm32f746", "--out", str(out), "--no-files"]) == 2  # not an empty folder
    assert "not empty" in capsys.readouterr().err
    assert main(["calibration-kit", "host-cpu", "--out", str(tmp_path / "h"), "--no-files"]) == 2
    assert "--quick" in capsys.readouterr().err  # a measured host is refreshed by timing models here


def test_a_kit_file_is_the_architecture_it_names(tmp_path):
    """The .tflite written for the board lowers to the same ops as the architecture JSON the CSV names."""
    pytest.importorskip("litert_torch")
    from workbench.scoring.score import import_model

    arch = next(a for a in candidate_pool("int8", per_space=4) if a.space.startswith("kit-mlp"))
    path = tmp_path / "m.int8.tflite"
    calibration_kit.write_tflite(arch, path, seed=1)
    assert [op.key for op in import_model(path).ops] == [op.key for op in arch.ops]


def test_an_unfilled_kit_csv_says_what_is_missing(tmp_path, capsys):
    out = tmp_path / "kit"
    assert main(["calibration-kit", "stm32l4r5", "--out", str(out), "--models", "3", "--no-files"]) == 0
    capsys.readouterr()
    assert main(["calibrate", "stm32l4r5", "--measurements", str(out / "to_time.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "to_time.csv:2" in err[0] and "ms: empty" in err[0]
