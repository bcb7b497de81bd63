"""``workbench adapt``: bad input refused before anything is read or trained, and a small adaptation end to end
(reproducible under its seeds, sparse:auto within its budget)."""
from __future__ import annotations

import json

import pytest
from conftest import one_trial_study

from workbench.model.tasks import tasks_for

IMU_DATA = "basic-motions-1s"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return one_trial_study(tmp_path_factory, "ad")


@pytest.fixture(scope="module")
def imu_task():
    return tasks_for(IMU_DATA)[0].name


def adapt(cli, storage, *args):
    return cli("adapt", "--study", "ad", "--storage", storage, "--trial", "0", *args)


@pytest.mark.parametrize("args, expected", [
    (["--task", "no-such-task", "--scheme", "bias:2"], "--task: unknown task 'no-such-task'"),
    (["--task", "{task}", "--scheme", "sparse:auto"], "--scheme sparse:auto: needs --train-sram-budget"),
    (["--task", "{task}", "--scheme", "half"], "--scheme: unknown scheme 'half'"),
    (["--task", "{task}", "--scheme", "sparse:w=1@0"], "ratio must be in (0, 1]"),
    (["--task", "{task}", "--scheme", "bias:2", "--arith", "int4"], "--arith: unknown arithmetic 'int4'"),
    (["--task", "{task}", "--scheme", "bias:2", "--seeds", "0"], "--seeds: must be an integer from 1"),
    (["--task", "{task}", "--scheme", "bias:2", "--optimizer", "adam"], "--optimizer"),
    (["--task", "{task}", "--scheme", "bias:2", "--train-sram-budget", "-3"], "--train-sram-budget: must be"),
    (["--task", "{task}", "--scheme", "bias:2", "--format", "csv"], "--format"),
])
def test_bad_flags_exit_2_before_the_storage_is_opened(cli, tmp_path, imu_task, args, expected):
    db = tmp_path / "none.db"
    run = cli("adapt", "--study", "x", "--storage", f"sqlite:///{db}",
              *[a.replace("{task}", imu_task) for a in args])
    assert run.code == 2, run.out + run.err
    assert expected in run.err and len(run.err.strip().splitlines()) == 1
    assert "Traceback" not in run.err and not db.exists()


def test_a_task_for_another_data_set_is_refused(cli, study):
    other = tasks_for("digits")[0].name
    run = adapt(cli, study, "--task", other, "--scheme", "bias:2")
    assert run.code == 2 and run.err.startswith("error: --task") and "basic-motions-1s" in run.err, run.err


@pytest.mark.parametrize("args, expected", [
    (["--scheme", "last:99"], "K=99 is larger than the network's"),
    (["--scheme", "sparse:auto", "--train-sram-budget", "1"], "--train-sram-budget: no sparse scheme fits"),
    (["--scheme", "full", "--train-sram-budget", "2"], "--train-sram-budget: scheme full needs"),
])
def test_schemes_the_network_or_budget_cannot_take_exit_2(cli, study, imu_task, args, expected):
    run = adapt(cli, study, "--task", imu_task, *args)
    assert run.code == 2 and expected in run.err and len(run.err.strip().splitlines()) == 1, run.err


def test_adaptation_reports_before_and_after_and_repeats_under_its_seeds(cli, study, imu_task):
    args = ["--task", imu_task, "--scheme", "bias:2", "--arith", "int8-qas", "--seeds", "2", "--format", "json"]
    first = adapt(cli, study, *args)
    assert first.code == 0, first.err
    data = json.loads(first.out)
    assert data["scheme"] == "bias:2" and data["seeds"] == [0, 1]
    assert set(data["results"]) == {"fp32", "int8-qas"}
    for result in data["results"].values():
        assert len(result["accuracies"]) == 2 and all(0 <= a <= 1 for a in result["accuracies"])
        assert result["gain"] == pytest.approx(result["mean"] - data["not_adapted"])
    assert 0 <= data["not_adapted"] <= 1 and data["adapt_samples"] > 0 and data["test_samples"] > 0
    assert data["training_memory"]["arith"] == "int8" and data["training_memory"]["peak_sram_bytes"] > 0
    assert set(data["rounding"]) == {"int8-qas"}
    assert {"weights", "activations", "errors", "weight gradients"} <= set(data["rounding"]["int8-qas"])
    assert "seed 1 (2/2)" in first.err  # progress, one line per seed
    again = adapt(cli, study, *args)
    assert json.loads(again.out)["results"] == data["results"]  # same seeds, same numbers


def test_table_compares_several_arithmetics_with_their_rounding_and_memory(cli, study, imu_task):
    run = adapt(cli, study, "--task", imu_task, "--scheme", "bias:1", "--arith", "int8-octo,int8", "--seeds", "1")
    assert run.code == 0, run.err
    for text in ("not adapted (deployed)", "fine-tuned, fp32", "fine-tuned, int8-octo", "fine-tuned, int8 ",
                 "int8-octo vs fp32", "int8 vs fp32", "training memory on stm32f746", "rounding in int8-octo:",
                 "rounding in int8:", "modeled", "simulated on the host"):
        assert text in run.out, text
    rows = {line.split()[1]: line for line in run.out.splitlines() if line.startswith("fine-tuned, ")}
    assert "+0.0p" in rows["int8"]  # unscaled integer-unit steps are s_w^2 too small to move the codes


def test_sparse_auto_chooses_within_the_budget(cli, study, imu_task):
    from workbench.cli import main  # noqa: F401  (the fixture's study exists)
    from workbench.hardware.training import training_cost
    from workbench.model.arch import Architecture
    from workbench.study.stored import StoredStudy

    stored = StoredStudy("ad", study)
    arch = Architecture.from_dict(stored.trial(0).user_attrs["arch"])
    arena = training_cost(arch, "stm32f746", "bias:1").forward_arena
    budget_kb = (arena + 600) / 1024
    run = adapt(cli, study, "--task", imu_task, "--scheme", "sparse:auto", "--train-sram-budget", f"{budget_kb:.3f}",
                "--seeds", "1", "--format", "json")
    assert run.code == 0, run.err
    data = json.loads(run.out)
    chosen = data["sparse_auto"]
    assert chosen["scheme"] == data["scheme"] and data["scheme"].startswith("sparse:")
    assert chosen["peak_sram_bytes"] <= budget_kb * 1024
    assert training_cost(arch, "stm32f746", data["scheme"]).peak_sram_bytes == chosen["peak_sram_bytes"]
    assert chosen["bias_gains"] and chosen["weight_gains"]
