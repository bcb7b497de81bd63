"""What-if fronts after the search (``pareto --latency-budget/--sram-kb/--flash-kb``, ``--precision``,
``--quant-mode``, ``--stage-bits``) and the count of why every trained trial is not on the front
(:mod:`workbench.study.whatif`)."""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
from dataclasses import replace

import pytest

from workbench._infra.errors import WorkbenchError
from workbench.cli import main
from workbench.hardware.profiles import load_profile
from workbench.search import trained_trials
from workbench.study.stored import StoredStudy
from workbench.study.whatif import REASONS, Limits, front_under, parse_limits


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """6 trained trials of sensor-imu on the M7 under a 1.2 ms budget (so some candidates are rejected before
    training); int8 with 4-bit stages among them (rpi4 runs no w4a8). About 10 s."""
    db = tmp_path_factory.mktemp("whatif") / "w.db"
    url = f"sqlite:///{db}"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(["search", "--space", "sensor-imu", "--device", "stm32f746", "--trials", "6", "--epochs", "1",
                     "--storage", url, "--seed", "2", "--study", "w", "--latency-budget", "1.2"])
    assert code == 0
    return db, url


def pareto(cli, url, *flags, fmt="json"):
    run = cli("pareto", "--study", "w", "--storage", url, "--format", fmt, *flags)
    assert run.code == 0, run.err
    return run


def latency(record, profile):
    return record.prediction(profile)["latency_ms"]


def test_without_limits_it_is_the_study_front_and_every_trained_trial_is_counted_once(study):
    _, url = study
    stored = StoredStudy("w", url)
    result = stored.what_if()
    assert [r.number for r in result.front] == [r.number for r in stored.front()]
    assert result.trained == trained_trials(stored.study) == 6
    assert result.on_front + sum(result.missing.values()) == result.trained
    assert list(result.missing) == list(REASONS)
    complete = [t for t in stored.study.get_trials() if t.state.name == "COMPLETE"]
    assert result.not_trained == {"rejected": sum(bool(t.user_attrs.get("rejected")) for t in complete),
                                  "duplicates": 0, "failed": 0}
    assert result.not_trained["rejected"] > 0  # the 1.2 ms budget rejected some candidates before training


def test_a_tighter_latency_budget_only_removes_the_slower_front_points(study, cli):
    _, url = study
    stored = StoredStudy("w", url)
    profile = stored.target
    before = stored.what_if()
    latencies = sorted({latency(r, profile) for r in stored.architectures() if r.accuracy is not None})
    assert len(latencies) >= 3
    for low, high in zip(latencies, latencies[1:]):
        budget = (low + high) / 2
        after = stored.what_if(limits=Limits(latency_budget_ms=budget))
        kept = [r.number for r in before.front if latency(r, profile) <= budget]
        assert [r.number for r in after.front] == kept  # nothing added, exactly the slower points removed
        over = sum(latency(r, profile) > budget for r in stored.architectures() if r.accuracy is not None)
        assert after.missing["latency"] == over
        assert after.on_front + sum(after.missing.values()) == after.trained
        shown = json.loads(pareto(cli, url, "--latency-budget", repr(budget)).out)
        assert [row["trial"] for row in shown["front"]] == kept
        assert shown["missing"]["not_on_front"]["latency"] == over
        assert shown["limits"]["latency_budget_ms"] == budget


def test_reason_counts_add_up_in_every_output(study, cli):
    _, url = study
    for flags in ((), ("--device", "rpi4"), ("--sram-kb", "3.7", "--latency-budget", "0.7"),
                  ("--device", "stm32l4r5", "--precision", "int8,w4a8", "--flash-kb", "60"),
                  ("--latency-budget", "none", "--quant-mode", "qat")):
        missing = json.loads(pareto(cli, url, *flags).out)["missing"]
        assert missing["trained"] == 6
        assert missing["on_front"] + sum(missing["not_on_front"].values()) == 6
        table = pareto(cli, url, *flags, fmt="table").out.splitlines()
        summary = next(line for line in table if " trained trials not on this front" in line)
        left = int(summary.split()[0])
        assert left == 6 - missing["on_front"]
        counted = [line for line in table[table.index(summary) + 1:] if line.startswith("  ")]
        assert sum(int(line.split()[0]) for line in counted) == left
        assert table[-1] == ("never trained, so on no front: " f"{missing['not_trained']['rejected']} candidates "
                             "rejected before training, 0 duplicates of trained architectures not retrained, "
                             "0 failed trials")


def test_a_device_without_4bit_kernels_counts_those_trials_under_that_reason(study, cli):
    _, url = study
    stored = StoredStudy("w", url)
    w4 = sum(r.arch.precision_label == "w4a8" for r in stored.architectures() if r.accuracy is not None)
    assert w4 > 0
    run = pareto(cli, url, "--device", "rpi4", fmt="table")
    assert f"  {w4} use 4-bit weights (rpi4 runs no w4a8)" in run.out.splitlines()
    result = stored.what_if("rpi4")
    assert result.missing["kernels"] == w4 and result.lacking == ("w4a8",)
    assert all(r.arch.precision_label != "w4a8" for r in result.front)


def test_filters_keep_only_what_was_asked(study, cli):
    _, url = study
    stored = StoredStudy("w", url)
    trained = [r for r in stored.architectures() if r.accuracy is not None]
    for precision in ("fp32", "int8", "w4a8"):
        shown = json.loads(pareto(cli, url, "--precision", precision).out)
        assert all(row["precision"] == precision for row in shown["front"])
        assert shown["missing"]["not_on_front"]["precision"] == sum(r.arch.precision_label != precision
                                                                    for r in trained)
    both = json.loads(pareto(cli, url, "--precision", "fp32", "--precision", "w4a8").out)
    assert {row["precision"] for row in both["front"]} <= {"fp32", "w4a8"}
    qat = stored.what_if(limits=Limits(quant_modes=("qat",)))
    assert qat.front and all(r.arch.quant_mode == "qat" for r in qat.front)
    staged = stored.what_if(limits=Limits(stage_bits=(("b2", 4),)))
    assert all(r.arch.policy["stage_weight_bits"]["b2"] == 4 for r in staged.front)
    assert staged.missing["stage_bits"] == sum(r.arch.policy["stage_weight_bits"].get("b2") != 4 for r in trained)


def test_memory_limits_apply_to_the_table_columns(study, cli):
    _, url = study
    rows = json.loads(pareto(cli, url, "--sram-kb", "3.7", "--flash-kb", "56").out)["front"]
    assert rows and all(row["peak_sram_kb"] <= 3.7 and row["flash_kb"] <= 56 for row in rows)


def test_the_header_names_the_what_if_beside_the_study_budget_and_csv_keeps_reasons_on_stderr(study, cli):
    _, url = study
    run = pareto(cli, url, "--latency-budget", "0.7", "--sram-kb", "400", "--precision", "w4a8", fmt="csv")
    header = run.err.splitlines()[0]
    assert "latency budget 1.2 ms; what-if after the search: --latency-budget 0.7 (the study's: 1.2 ms), " \
           "--sram-kb 400 (stm32f746: 312 KB; looser than the search's" in header
    assert "--precision w4a8; objectives" in header
    assert " trained trials not on this front" in run.err and "not on this front" not in run.out
    assert list(csv.DictReader(run.out.splitlines()))  # stdout stays plain CSV
    plain = pareto(cli, url, fmt="table").out.splitlines()[0]
    assert "what-if" not in plain and "latency budget 1.2 ms" in plain


def test_merged_trials_of_one_architecture_count_on_the_front(study):
    _, url = study
    stored = StoredStudy("w", url)
    records = stored.records()
    best = stored.best()
    twin = replace(next(r for r in records if r.number == best.number), number=1000)
    result = front_under([*records, twin], stored.target, None, ("accuracy", "latency"), 1.2)
    assert result.trained == 7 and result.on_front == len(result.front) + 1
    assert result.on_front + sum(result.missing.values()) == 7
    assert f"({result.on_front} trained trials in {len(result.front)} points)" in result.reason_lines()[0]
    w4 = next(r for r in records if r.accuracy is not None and r.arch.precision_label == "w4a8")
    rpi4 = load_profile("rpi4")
    alone = front_under(records, rpi4)
    twice = front_under([*records, replace(w4, number=1001)], rpi4)  # a second trial of an architecture left out
    assert twice.missing["kernels"] == alone.missing["kernels"] + 1 and twice.trained == alone.trained + 1


@pytest.mark.parametrize("flags, named", [
    (("--latency-budget", "nan"), "--latency-budget"), (("--latency-budget=-3",), "--latency-budget"),
    (("--latency-budget", "1e999"), "--latency-budget"), (("--sram-kb", "0"), "--sram-kb"),
    (("--sram-kb", "1e15"), "--sram-kb"), (("--flash-kb", "inf"), "--flash-kb"), (("--flash-kb", "ten"), "--flash-kb"),
    (("--precision", "int4"), "--precision"), (("--precision", "int8,"), "--precision"),
    (("--quant-mode", "dynamic"), "--quant-mode"), (("--stage-bits", "b9=4"), "--stage-bits"),
    (("--stage-bits", "b2"), "--stage-bits"), (("--stage-bits", f"b2={2 ** 70}"), "--stage-bits"),
])
def test_bad_flags_are_one_line_and_leave_the_storage_untouched(study, cli, flags, named):
    db, url = study
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    run = cli("pareto", "--study", "w", "--storage", url, *flags)
    assert run.code == 2 and run.out == ""
    assert run.err.count("\n") == 1 and run.err.startswith(f"error: {named}: "), run.err
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_limits_refuse_bad_values_in_the_api_too():
    for bad in (dict(latency_budget_ms=-1.0), dict(sram_kb=math.nan), dict(flash_kb=True),
                dict(precisions=("int16",)), dict(stage_bits=(("b1", 0),))):
        with pytest.raises(WorkbenchError):
            Limits(**bad)
    assert parse_limits(latency_budget="none").latency_budget_ms == math.inf
    assert parse_limits(precision=["int8,w4a8", "int8"]).precisions == ("int8", "w4a8")
    assert load_profile("rpi4").precisions == ("fp32", "int8")  # the kernels test relies on it
