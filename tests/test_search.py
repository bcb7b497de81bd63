"""Search: constraints before training, stored predictions, resume, reproducibility, fronts."""
import time

import pytest

from workbench import WorkbenchError, load_profile
from workbench.study.front import load_records, pareto_front
from workbench.hardware.profiles import list_profiles
from workbench.search import Search
from workbench.model.train import TrainResult


@pytest.fixture
def fake_training(monkeypatch):
    """Replace training by a deterministic fake and record which architectures were trained."""
    trained = []

    def fake(arch, dataset, *, epochs, seed, **kwargs):
        trained.append(arch)
        acc = 1.0 - 1.0 / (1 + arch.macs / 1e5)  # bigger nets score higher: a real trade-off to search
        return TrainResult(accuracy=acc, fp32_accuracy=acc, epochs=epochs, train_seconds=0.0, model=None)

    monkeypatch.setattr("workbench.model.train.train_and_evaluate", fake)
    return trained


def make_search(tmp_path, **kwargs):
    options = dict(study_name="s", storage=f"sqlite:///{tmp_path / 'studies.db'}", epochs=1, seed=0)
    options.update(kwargs)
    space = options.pop("space", "sensor-imu")
    data = options.pop("data", {"sensor-imu": "basic-motions", "vision": "digits"}[space])
    return Search(space, options.pop("device", "stm32f746"), data, **options)


def test_candidates_over_budget_are_rejected_before_training(tmp_path, fake_training):
    result = make_search(tmp_path, latency_budget_ms=4.0).run(16)
    trials = result.study.get_trials()
    rejected = [t for t in trials if t.user_attrs.get("rejected")]
    trained = [t for t in trials if t.user_attrs.get("trained")]
    assert rejected and trained, "the budget should split the space"
    assert len(fake_training) == len(trained) == 16  # --trials counts trained candidates only
    for t in rejected:
        assert t.user_attrs["predictions"]["stm32f746"]["latency_ms"] > 4.0
        assert "accuracy" not in t.user_attrs and "trained" not in t.user_attrs
        assert t.constraints["latency_ms_over"] > 0  # what the sampler sees: infeasible
    for t in trained:
        assert t.user_attrs["predictions"]["stm32f746"]["latency_ms"] <= 4.0
        named = {k: v for k, v in t.constraints.items() if not k.isdigit()}
        assert set(named) == {"latency_ms_over", "sram_kb_over", "flash_kb_over", "unsupported_precision"}
        assert max(t.constraints.values()) <= 0


def test_a_repeated_architecture_is_not_retrained(tmp_path, fake_training):
    search = make_search(tmp_path)
    first = search.run(2).study.get_trials()[0]
    search.study.enqueue_trial(first.params)  # the sampler proposes trial 0's architecture + policy again
    trials = search.run(3).study.get_trials()
    repeat = next(t for t in trials if t.params == first.params and t.number != first.number)
    assert repeat.state.name == "COMPLETE" and repeat.user_attrs["duplicate_of"] == first.number
    assert "trained" not in repeat.user_attrs and "accuracy" not in repeat.user_attrs
    assert repeat.values == first.values  # the sampler is told the original's result
    assert repeat.user_attrs["arch_key"] == first.user_attrs["arch_key"]
    assert len(fake_training) == 3 == sum(bool(t.user_attrs.get("trained")) for t in trials)
    assert len({a for a in fake_training}) == 3  # no architecture trained twice


def test_a_repeat_is_told_the_mean_of_every_measurement(tmp_path, fake_training):
    from workbench.study.schema import repeats_attr

    search = make_search(tmp_path)
    first = search.run(1).study.get_trials()[0]
    accuracy = first.user_attrs["accuracy"]
    extra = [{"seed": 7, "accuracy": accuracy - 0.1, "fp32_accuracy": None, "train_seconds": 0.0}]
    search.study.set_user_attr(repeats_attr(first.user_attrs["arch_key"]), {"trial": 0, "runs": extra})
    search.study.enqueue_trial(first.params)
    repeat = search.run(2).study.get_trials()[1]
    assert repeat.user_attrs["duplicate_of"] == 0
    assert repeat.values[0] == pytest.approx(accuracy - 0.05)  # mean of the two measurements, not the first
    assert repeat.values[1] == first.values[1]


def test_progress_counts_trained_trials_only(tmp_path, fake_training):
    seen = []
    search = make_search(tmp_path, latency_budget_ms=4.0, listeners=[seen.append])
    first = next(t for t in search.run(3).study.get_trials() if t.user_attrs.get("trained"))
    search.study.enqueue_trial(first.params)  # one repeat among the next trials
    search.run(6)
    counted = [o for o in seen if o.counted]
    assert [o.done for o in counted] == [1, 2, 3, 4, 5, 6]
    uncounted = [o for o in seen if not o.counted]
    assert any(o.rejected for o in uncounted) and any(o.duplicate_of == first.number for o in uncounted)
    assert all(o.rejected or o.duplicate_of is not None for o in uncounted)
    assert all(o.counter() == f"[  -/{o.total}]" for o in uncounted)
    assert all(o.counter() == f"[{o.done:>3}/{o.total}]" for o in counted)
    repeat = next(o for o in uncounted if o.duplicate_of == first.number)
    assert f"already trained as trial {first.number}" in repeat.line() and "not retrained" in repeat.line()


def test_infeasible_trials_are_drawn_as_infeasible_by_optuna(tmp_path, fake_training, caplog):
    import json
    import logging

    import optuna

    optuna.logging.set_verbosity(optuna.logging.INFO)
    optuna.logging.enable_propagation()
    try:
        with caplog.at_level(logging.INFO, logger="optuna"):
            study = make_search(tmp_path, latency_budget_ms=4.0).run(6).study
    finally:
        optuna.logging.disable_propagation()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    assert "finished with value" not in caplog.text  # Optuna's log prints no "[0.0, …]" for them
    rejected = {t.number for t in study.get_trials() if t.user_attrs.get("rejected")}
    assert rejected
    figure = optuna.visualization.plot_pareto_front(study)
    drawn = {}
    for trace in figure.data:
        label = trace.hovertemplate.split("<extra>")[1].split("</extra>")[0]
        for text in trace.text or ():
            drawn[json.loads(text.replace("<br>", "\n"))["number"]] = label
    assert {n for n, label in drawn.items() if label == "Infeasible Trial"} == rejected
    assert all(label in ("Feasible Trial", "Best Trial") for n, label in drawn.items() if n not in rejected)
    assert study.metric_names == ["accuracy", "latency_ms"]  # axis titles in the plot and optuna-dashboard
    for t in study.get_trials():  # optuna-dashboard reads the list form of the constraints
        assert (max(t.system_attrs["constraints"]) > 0) == (t.number in rejected)


def test_a_space_exhausted_under_the_constraints_stops_with_a_notice(tmp_path, fake_training):
    from workbench.search import SearchExhausted

    search = make_search(tmp_path, latency_budget_ms=0.001, max_untrained_streak=5)
    with pytest.warns(SearchExhausted, match="the last 5 candidates were all infeasible or already trained"):
        result = search.run(3)
    assert result.stopped and "stopped at 0/3 trained trials" in result.stopped
    assert len(result.study.get_trials()) == 5 and not fake_training


def test_memory_constraints_use_the_device_budget(tmp_path, fake_training, profile_copy):
    folder = profile_copy("stm32f746")
    text = (folder / "profile.yaml").read_text().replace("sram_kb: 320", "sram_kb: 40")
    (folder / "profile.yaml").write_text(text.replace("name: stm32f746", "name: tiny-mcu"))
    result = make_search(tmp_path, space="vision", device=str(folder)).run(12)
    device = load_profile(folder)
    for t in result.study.get_trials():
        sram = t.user_attrs["predictions"]["tiny-mcu"]["peak_sram_bytes"]
        assert ("sram_kb_over" in t.user_attrs.get("rejected", [])) == (sram > device.sram_budget_bytes)
    assert any("sram_kb_over" in t.user_attrs.get("rejected", []) for t in result.study.get_trials())


def test_every_trial_stores_architecture_and_predictions_for_every_profile(tmp_path, fake_training):
    result = make_search(tmp_path).run(4)
    names = {p.name for p in map(load_profile, list_profiles())}
    for t in result.study.get_trials():
        assert set(t.user_attrs["predictions"]) == names
        assert t.user_attrs["arch"]["space"] == "sensor-imu"
        assert "accuracy" in t.user_attrs


def test_resume_keeps_completed_trials_and_continues_the_count(tmp_path, fake_training):
    first = make_search(tmp_path).run(3)
    params_before = [t.params for t in first.study.get_trials()]
    second = make_search(tmp_path).run(5)
    trials = second.study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert [t.params for t in trials[:3]] == params_before
    assert make_search(tmp_path).run(5).study.get_trials() == trials  # nothing left to do


def test_resuming_with_other_settings_is_refused(tmp_path, fake_training):
    make_search(tmp_path).run(1)
    with pytest.raises(WorkbenchError, match="was created with device='stm32f746'"):
        make_search(tmp_path, device="stm32l4r5").run(2)


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "random"])
def test_same_seed_gives_the_same_trials(tmp_path, fake_training, sampler):
    runs = []
    for i in range(2):
        search = make_search(tmp_path, storage=f"sqlite:///{tmp_path / f'{sampler}{i}.db'}", sampler=sampler,
                             population=4, seed=11)
        runs.append([t.params for t in search.run(8).study.get_trials()])
    assert runs[0] == runs[1]


def test_real_training_is_reproducible(tmp_path):
    runs = []
    for i in range(2):
        search = make_search(tmp_path, storage=f"sqlite:///{tmp_path / f'r{i}.db'}", seed=3)
        trained = [t for t in search.run(2).study.get_trials() if t.user_attrs.get("trained")]
        runs.append([(t.params, t.values, t.user_attrs["accuracy"], t.user_attrs["train_seed"]) for t in trained])
    assert len(runs[0]) == 2  # two models really trained (run(2) counts trained trials)
    assert runs[0] == runs[1]
    assert all(0.0 < accuracy <= 1.0 and values[0] == accuracy for _, values, accuracy, _ in runs[0])


def test_front_can_be_recomputed_for_any_device(tmp_path, fake_training):
    search = make_search(tmp_path, space="vision")
    search.run(10)
    records = load_records(search.study)
    for device in ("stm32f746", "stm32l4r5", "rpi4"):
        profile = load_profile(device)
        front = pareto_front(records, profile)
        assert front
        for a in front:  # nothing on the front is dominated by any feasible trained trial
            for b in records:
                if b.accuracy is None or not b.feasible_on(profile):
                    continue
                la, lb = a.value("latency", profile), b.value("latency", profile)
                assert not (b.accuracy >= a.accuracy and lb <= la and (b.accuracy > a.accuracy or lb < la))


def test_a_repeat_sampled_while_another_worker_trains_it_waits_for_that_result(tmp_path, monkeypatch):
    """Two workers on one study draw the same candidate: the second waits for the first's training and
    takes its result instead of training it again."""
    import threading

    import optuna

    from workbench.search import objective
    from workbench.model.space import TrialSuggester

    started, release, trained = threading.Event(), threading.Event(), []

    def slow_training(arch, dataset, *, epochs, seed, **kwargs):
        trained.append(arch)
        started.set()
        release.wait(120)
        return TrainResult(accuracy=0.75, fp32_accuracy=0.75, epochs=epochs, train_seconds=0.0, model=None)

    monkeypatch.setattr("workbench.model.train.train_and_evaluate", slow_training)
    first = make_search(tmp_path, heartbeat_s=None, poll_s=0.05)
    draft = optuna.create_study().ask()
    objective.sample(first.config, TrialSuggester(draft))
    first.study.enqueue_trial(draft.params)
    first.study.enqueue_trial(draft.params)  # both workers' next candidate is the same architecture
    second = make_search(tmp_path, heartbeat_s=None, poll_s=0.05, worker=1)
    runs = [threading.Thread(target=first.run, args=(1,))]
    runs[0].start()
    assert started.wait(60)
    runs.append(threading.Thread(target=second.run, args=(2,)))
    runs[1].start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
            t.user_attrs.get("duplicate_of") is not None for t in second.study.get_trials(deepcopy=False)):
        time.sleep(0.05)  # the second worker found the first one's claim and waits for it
    release.set()
    for run in runs:
        run.join(120)
    trials = second.study.get_trials()
    original, repeat = (next(t for t in trials if t.number == n) for n in (0, 1))
    assert original.user_attrs["trained"] and repeat.user_attrs["duplicate_of"] == 0
    assert repeat.values == original.values and "trained" not in repeat.user_attrs
    assert len(trained) == 2 and trained[0] != trained[1]  # the second worker trained a new candidate instead


def test_trials_of_older_studies_count_and_are_not_retrained(tmp_path, fake_training):
    """A trained trial written before the "trained" and "arch_key" attributes existed still counts toward
    the target and still stops its architecture from being trained again."""
    import optuna

    from workbench.search import objective, trained_trials
    from workbench.model.space import TrialSuggester

    search = make_search(tmp_path)
    draft = optuna.create_study().ask()
    arch = objective.sample(search.config, TrialSuggester(draft))
    latency = objective.assess(arch, search.config).prediction["latency_ms"]
    search.study.add_trial(optuna.create_trial(
        params=draft.params, distributions=draft.distributions, values=[0.5, latency],
        user_attrs={"arch": arch.to_dict(), "summary": arch.summary(), "predictions": {}, "accuracy": 0.5}))
    assert trained_trials(search.study) == 1
    search.study.enqueue_trial(draft.params)
    trials = search.run(2).study.get_trials()
    assert trials[1].user_attrs["duplicate_of"] == 0 and trials[1].values == [0.5, latency]
    assert trained_trials(search.study) == 2 and arch not in fake_training and len(fake_training) == 1


def test_train_sram_budget_rejects_before_training_and_every_device_stores_training_memory(tmp_path, fake_training):
    """``--objectives accuracy,latency,train_sram --train-scheme bias:2 --train-sram-budget 10``: candidates whose
    training step needs more than 10 KB are recorded, not trained; every profile's prediction carries the value
    ``training_cost`` gives for it, so a front on another device shows training memory too."""
    from workbench.hardware.profiles import load_profile
    from workbench.hardware.training import training_cost
    from workbench.model.arch import Architecture

    search = make_search(tmp_path, objectives=("accuracy", "latency", "train_sram"), train_scheme="bias:2",
                         train_sram_budget_kb=10.0)
    result = search.run(6)
    trials = result.study.get_trials()
    rejected = [t for t in trials if "train_sram_kb_over" in t.user_attrs.get("rejected", ())]
    trained = [t for t in trials if t.user_attrs.get("trained")]
    assert rejected and len(trained) == len(fake_training) == 6, "the budget should split the space"
    assert result.study.user_attrs["train_scheme"] == "bias:2" and result.study.user_attrs["train_sram_budget_kb"] == 10
    for t in rejected:
        assert t.user_attrs["predictions"]["stm32f746"]["train_sram_bytes"] > 10 * 1024
        assert t.constraints["train_sram_kb_over"] > 0 and "accuracy" not in t.user_attrs
    for t in trained:
        assert t.user_attrs["predictions"]["stm32f746"]["train_sram_bytes"] <= 10 * 1024
        assert t.values[2] == t.user_attrs["predictions"]["stm32f746"]["train_sram_bytes"]  # what Optuna minimises
    t = trained[0]
    arch = Architecture.from_dict(t.user_attrs["arch"])
    for device in ("stm32f746", "stm32l4r5"):
        expected = training_cost(arch, load_profile(device), "bias:2", "sgd", "int8").peak_sram_bytes
        assert t.user_attrs["predictions"][device]["train_sram_bytes"] == expected
    assert all(r.prediction(search.device)["train_sram_bytes"] <= 10 * 1024 for r in result.front)


def test_a_resume_with_another_train_scheme_is_refused(tmp_path, fake_training):
    make_search(tmp_path, objectives=("accuracy", "latency", "train_sram"), train_scheme="bias:2").run(1)
    with pytest.raises(WorkbenchError, match="train_scheme='bias:2', not 'classifier'"):
        make_search(tmp_path, objectives=("accuracy", "latency", "train_sram")).run(2)
