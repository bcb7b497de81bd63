"""Search: constraints before training, stored predictions, resume, reproducibility, fronts."""
import pytest

from workbench import WorkbenchError, load_profile
from workbench.front import hypervolume_2d, load_records, pareto_front
from workbench.profiles import list_profiles
from workbench.search import Search
from workbench.train import TrainResult


@pytest.fixture
def fake_training(monkeypatch):
    """Replace training by a deterministic fake and record which architectures were trained."""
    trained = []

    def fake(arch, dataset, *, epochs, seed, **kwargs):
        trained.append(arch)
        acc = 1.0 - 1.0 / (1 + arch.macs / 1e5)  # bigger nets score higher: a real trade-off to search
        return TrainResult(accuracy=acc, fp32_accuracy=acc, epochs=epochs, train_seconds=0.0, model=None)

    monkeypatch.setattr("workbench.train.train_and_evaluate", fake)
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
    accepted = [t for t in trials if not t.user_attrs.get("rejected")]
    assert rejected and accepted, "the budget should split the space"
    assert len(fake_training) == len(accepted)
    for t in rejected:
        assert t.user_attrs["predictions"]["stm32f746"]["latency_ms"] > 4.0
        assert "accuracy" not in t.user_attrs
        assert t.constraints["latency_ms_over"] > 0  # what the sampler sees: infeasible
    for t in accepted:
        assert t.user_attrs["predictions"]["stm32f746"]["latency_ms"] <= 4.0
        assert set(t.constraints) == {"latency_ms_over", "sram_kb_over", "flash_kb_over", "unsupported_precision"}
        assert max(t.constraints.values()) <= 0


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
    values = []
    for i in range(2):
        search = make_search(tmp_path, storage=f"sqlite:///{tmp_path / f'r{i}.db'}", seed=3)
        values.append([t.values for t in search.run(2).study.get_trials()])
    assert values[0] == values[1]
    assert all(0.0 <= v[0] <= 1.0 for v in values[0])


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


def test_hypervolume_2d():
    # two points: (acc 0.9, 10 ms) and (acc 0.5, 2 ms), reference (0, 20)
    assert hypervolume_2d([(0.9, 10.0), (0.5, 2.0)], (0.0, 20.0)) == pytest.approx(0.9 * 10 + 0.5 * 8)
    assert hypervolume_2d([(0.9, 10.0), (0.8, 12.0)], (0.0, 20.0)) == pytest.approx(0.9 * 10)
