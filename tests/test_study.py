"""The study schema: settings round trip (old studies too), the one front rule over all measurements of an
architecture, and the one best rule with its tie-breaks — on hand-built studies (no training)."""
from __future__ import annotations

import json

import optuna
import pytest

from workbench.model.arch import Architecture
from workbench.hardware.cost import estimate
from workbench._infra.errors import WorkbenchError
from workbench.study.front import best_of, by_architecture, front_rows, load_records, pareto_front
from workbench.hardware.profiles import load_profile
from workbench.study.schema import Keys, StudySettings, arch_key, repeats_attr
from workbench.study.stored import StoredStudy

DEVICE = "stm32f746"

# what a study written before this schema existed holds (no evaluator, data_source, file paths or trials)
OLD_ATTRS = {"space": "sensor-imu", "space_yaml": "name: sensor-imu\n", "device": DEVICE, "data": "basic-motions",
             "objectives": ["accuracy", "latency"], "latency_budget_ms": None, "epochs": 2, "seed": 5,
             "sampler": "tpe", "fingerprint": {"space": "abc"}}


def arch(width: int) -> Architecture:
    return Architecture.create("t", "cnn1d", (12, 64), 3, {"blocks": 1, "pool_type": "max", "b1_width": width,
                                                           "b1_kernel": 3, "b1_pool": 1, "precision": "int8",
                                                           "quant_mode": "ptq", "b1_wbits": 8})


def prediction(latency_ms: float) -> dict:
    """A stored prediction with a chosen latency (memory well inside the device)."""
    return estimate(arch(8), load_profile(DEVICE))._replace(latency_ms=latency_ms).to_dict()


def add_trial(study, a: Architecture, accuracy, latency_ms: float, **attrs):
    user_attrs = {Keys.ARCH: a.to_dict(), Keys.PREDICTIONS: {DEVICE: prediction(latency_ms)}, **attrs}
    if accuracy is not None:
        user_attrs[Keys.ACCURACY] = accuracy
    study.add_trial(optuna.trial.create_trial(values=[accuracy or 0.0, latency_ms], user_attrs=user_attrs))


def new_study(**extra) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"], study_name="hand")
    for key, value in {**OLD_ATTRS, **extra}.items():
        study.set_user_attr(key, value)
    return study


def test_settings_round_trip_and_old_studies():
    old = StudySettings.from_attrs(OLD_ATTRS)
    assert (old.evaluator, old.data_source, old.space_file, old.trials) == ("train", "", None, None)
    assert old.objectives == ("accuracy", "latency") and old.seed == 5 and old.epochs == 2
    assert StudySettings.from_attrs(old.to_attrs()) == old
    assert "trials" not in old.to_attrs() and old.to_attrs()["objectives"] == ["accuracy", "latency"]
    new = StudySettings("vision", "x: 1", DEVICE, "digits", ("accuracy", "latency", "sram"), 12.0, 3, 0, "nsga2",
                        "synflow", "/s.yaml", "/p", "digits", 24)
    attrs = new.to_attrs()
    assert StudySettings.from_attrs(attrs) == new and attrs["trials"] == 24 and new.metric == Keys.SCORE
    with pytest.raises(WorkbenchError, match="study 'x' has no recorded space_yaml"):
        StudySettings.from_attrs({k: v for k, v in OLD_ATTRS.items() if k != "space_yaml"}, where="study 'x'")


def test_arch_key_is_canonical():
    assert arch_key(arch(8)) == arch_key(arch(8).to_dict()) == arch_key(Architecture.from_json(arch(8).to_json()))
    assert arch_key(arch(8)) != arch_key(arch(16)) and len(arch_key(arch(8))) == 16


def test_a_better_repeat_moves_the_front():
    study = new_study()
    add_trial(study, arch(8), 0.90, 2.0)   # 0: fast, then repeated worse below
    add_trial(study, arch(16), 0.93, 3.0)  # 1: slower and more accurate
    add_trial(study, arch(24), 0.92, 4.0)  # 2: dominated by trial 1 ...
    stored = StoredStudy(study)
    assert [r.number for r in stored.front()] == [0, 1]
    # ... until a better seed of trial 2's architecture lifts its mean above trial 1
    study.set_user_attr(repeats_attr(arch_key(arch(24))), {"trial": 2, "runs": [
        {"seed": 7, "accuracy": 0.98, "fp32_accuracy": None, "train_seconds": 1.0}]})
    front = stored.front()
    assert [r.number for r in front] == [0, 1, 2]
    top = front[-1]
    assert top.accuracy == pytest.approx(0.95) and top.n == 2 and top.accuracy_std == pytest.approx(0.0424264, abs=1e-6)
    assert top.accuracy_text() == "0.9500 ± 0.0424 (n=2)" and front[0].accuracy_text() == "0.9000"
    assert stored.best().number == 2
    row = front_rows(front, stored.target)[-1]
    assert (row["accuracy"], row["accuracy_mean"], row["accuracy_std"], row["n"]) == (0.92, 0.95, 0.0424, 2)


def test_every_trained_trial_of_an_architecture_counts_and_duplicates_do_not():
    study = new_study()
    add_trial(study, arch(8), 0.90, 2.0)                          # 0
    add_trial(study, arch(8), 0.96, 2.0)                          # 1: old studies trained it again
    add_trial(study, arch(8), 0.99, 2.0, **{Keys.DUPLICATE_OF: 0})  # 2: not trained: never a measurement
    add_trial(study, arch(16), None, 9.0, **{Keys.REJECTED: ["sram_kb_over"]})  # 3: rejected
    add_trial(study, arch(24), 0.80, 1.0, **{Keys.REPEATS: [{"seed": 3, "accuracy": 0.84}]})  # 4: trial-side repeat
    records = load_records(study)
    assert [r.n for r in records] == [1, 1, 0, 0, 2]
    merged = {r.number: r for r in by_architecture(records)}
    assert sorted(merged) == [0, 3, 4] and merged[0].trials == (0, 1) and merged[0].measurements == (0.90, 0.96)
    assert by_architecture(list(merged.values())) == list(merged.values())  # idempotent
    front = pareto_front(records, load_profile(DEVICE))
    assert [(r.number, round(r.accuracy, 4)) for r in front] == [(4, 0.82), (0, 0.93)]


def test_best_rule_tie_breaks():
    profile = load_profile(DEVICE)
    study = new_study()
    add_trial(study, arch(8), 0.95, 3.0)   # 0
    add_trial(study, arch(16), 0.95, 2.0)  # 1
    add_trial(study, arch(24), 0.95, 2.0)  # 2
    add_trial(study, arch(32), 0.97, 5.0)  # 3: the most accurate single run ...
    add_trial(study, arch(32), 0.91, 5.0)  # 4: ... of an architecture whose mean (0.94) is lower
    records = {r.number: r for r in by_architecture(load_records(study))}
    assert best_of([records[0], records[2]], profile).number == 2  # equal accuracy: lower latency
    assert best_of([records[2], records[1]], profile).number == 1  # equal latency too: lower trial number
    assert best_of(list(records.values()), profile).number == 1    # the mean counts, not the best run
    assert StoredStudy(study).best().number == 1 and best_of([], profile) is None


def test_repeats_train_other_seeds_of_the_top_once(tmp_path, cli):
    """``workbench repeats`` on a hand-built study of real sensor architectures: the top candidate gets one
    more measurement with the documented seed, the table shows mean ± std, a second run trains nothing."""
    from workbench.model.data import load_dataset
    from workbench.study.repeats import repeat_seed
    from workbench.model.space import RandomSuggester, load_space

    space, profile = load_space("sensor-imu"), load_profile(DEVICE)
    shape = load_dataset("basic-motions").data_shape
    url = f"sqlite:///{tmp_path / 'r.db'}"
    study = optuna.create_study(directions=["maximize", "minimize"], study_name="r", storage=url)
    settings = StudySettings("sensor-imu", space.text, DEVICE, "basic-motions", epochs=1, seed=4)
    for key, value in settings.to_attrs().items():
        study.set_user_attr(key, value)
    archs = []
    for draw in range(40):
        a = space.sample(RandomSuggester(draw), precisions=profile.precisions, data=shape)
        if a not in archs and estimate(a, profile).supported:
            archs.append(a)
    for a, accuracy, latency in zip(archs, (0.10, 0.20, 0.99), (1.0, 2.0, 3.0)):
        pred = estimate(a, profile)._replace(latency_ms=latency).to_dict()
        study.add_trial(optuna.trial.create_trial(values=[accuracy, latency], user_attrs={
            Keys.ARCH: a.to_dict(), Keys.PREDICTIONS: {DEVICE: pred}, Keys.ACCURACY: accuracy}))
    run = cli("repeats", "--study", "r", "--storage", url, "--top", 1, "--repeats", 1)
    assert run.code == 0, run.err
    assert run.err.count("] repeat 1 of trial") == 1 and f"(seed {repeat_seed(4, 2, 1)})" in run.err
    best = StoredStudy("r", url).best()
    assert best.number == 2 and best.n == 2 and best.measurements[0] == 0.99
    assert f"{best.accuracy_mean:.4f} ± {best.accuracy_std:.4f} (n=2)" in run.out
    rows = {row["trial"]: row for row in json.loads(cli("pareto", "--study", "r", "--storage", url,
                                                          "--format", "json").out)["front"]}
    assert (rows[2]["accuracy"], rows[2]["n"], rows[2]["accuracy_std"]) == (0.99, 2, round(best.accuracy_std, 4))
    assert (rows[0]["n"], rows[0]["accuracy_std"], rows[0]["accuracy_mean"]) == (1, None, 0.1)
    again = cli("repeats", "--study", "r", "--storage", url, "--top", 1, "--repeats", 1)
    assert again.code == 0 and "already holds every requested seed" in again.err and "] repeat" not in again.err
    bad = cli("repeats", "--study", "r", "--storage", url, "--repeats", 0)
    assert bad.code == 2 and bad.err.strip() == "error: --repeats: must be an integer >= 1, got 0"


def test_widgets_show_mean_and_spread_of_repeated_architectures():
    """The explorer draws one point per architecture at its mean with a ± std error bar, says mean ± std in the
    hover, the inspector and the best line, and a click on any trial of the architecture shows all of it."""
    pytest.importorskip("ipywidgets")
    pytest.importorskip("anywidget")
    from workbench.widgets import ParetoExplorer
    from workbench.widgets.explorer import FEASIBLE, FRONT

    study = new_study()
    add_trial(study, arch(8), 0.90, 2.0)   # 0
    add_trial(study, arch(16), 0.93, 3.0)  # 1
    add_trial(study, arch(16), 0.97, 3.0)  # 2: the same architecture again (an old study): one point, n = 2
    add_trial(study, arch(24), 0.91, 4.0)  # 3: dominated
    explorer = ParetoExplorer(study)
    front = explorer.figure.figure["data"][FRONT]
    assert front["customdata"] == [0, 1] and front["y"] == [0.90, pytest.approx(0.95)]
    assert front["error_y"]["array"] == [0.0, pytest.approx(0.0282843, abs=1e-6)]
    assert "accuracy 0.9500 ± 0.0283 (n=2)" in front["hovertext"][1] and "measured 0.9300, 0.9700" in front["hovertext"][1]
    assert explorer.figure.figure["data"][FEASIBLE]["customdata"] == [3]  # trial 2 is not a point of its own
    assert "best accuracy 0.9500 ± 0.0283 (n=2) at 3.000 ms (trial 1)" in explorer.status.value
    explorer.select(2)
    assert explorer.selected == 1 and "accuracy 0.9500 ± 0.0283 (n=2)" in explorer.inspector.body.value
    assert "trials 1, 2" in explorer.inspector.body.value


def test_a_candidate_that_enters_the_top_is_repeated_too(monkeypatch):
    """Training replaced by a table of outcomes (the loop is what is tested): trial 1's repeats pull its mean
    below trial 2's, so trial 2 becomes the top candidate and is repeated in a second round; then it stops."""
    import workbench.model.train as train
    from workbench.study.repeats import repeat_front, repeat_seed

    study = new_study()
    add_trial(study, arch(8), 0.80, 1.0)   # 0
    add_trial(study, arch(16), 0.95, 2.0)  # 1: top by one lucky run
    add_trial(study, arch(24), 0.90, 3.0)  # 2
    outcome = {repeat_seed(5, 1, 1): 0.70, repeat_seed(5, 2, 1): 0.92}
    trained = []

    def fake_training(a, dataset, *, epochs, seed):
        trained.append((a.choice["b1_width"], seed, epochs))
        return train.TrainResult(outcome[seed], outcome[seed], epochs, 0.01, model=None)

    monkeypatch.setattr(train, "train_and_evaluate", fake_training)
    runs = repeat_front(StoredStudy(study), top=1, repeats=1, progress=None)
    assert trained == [(16, repeat_seed(5, 1, 1), 2), (24, repeat_seed(5, 2, 1), 2)]
    assert [(r.trial, r.index, r.accuracy) for r in runs] == [(1, 1, 0.70), (2, 1, 0.92)]
    best = StoredStudy(study).best()
    assert best.number == 2 and best.accuracy == pytest.approx(0.91) and best.n == 2
    assert repeat_front(StoredStudy(study), top=1, repeats=1, progress=None) == []  # every seed is stored


def test_search_repeats_flag_measures_the_top_and_refuses_proxies(tmp_path, cli):
    url = f"sqlite:///{tmp_path / 's.db'}"
    common = ("--space", "sensor-imu", "--device", "stm32f746", "--trials", 3, "--epochs", 1, "--study", "s",
              "--storage", url)
    proxy = cli("search", *common, "--evaluator", "synflow", "--repeats", 1)
    assert proxy.code == 2 and proxy.err.startswith("error: --repeats: the 'synflow' evaluator") \
        and not (tmp_path / "s.db").exists()  # refused before the study was created
    run = cli("search", *common, "--repeats", 1, "--repeat-top", 1)
    assert run.code == 0, run.err
    assert run.err.count("] repeat 1 of trial") >= 1 and "repeats: trained" in run.err
    measured = [r for r in StoredStudy("s", url).architectures() if r.n == 2]
    assert measured and all(r.accuracy_std is not None for r in measured)
