"""The predictor-ranked sampler: seeded, feasible, never a repeat, and usable through the search."""
import math

import numpy as np
import optuna
import pytest
import yaml

from workbench import WorkbenchError
from workbench.hardware.cost import estimate, violations
from workbench.study.compare import AXES
from workbench.study.objectives import hypervolume
from workbench.search.ranking import CHOICE_ATTR, expected_hv_gain, front_steps
from workbench.search import Search, SearchConfig, make_sampler
from workbench.search.objective import Evaluation, objective
from workbench.model.space import load_space, space_from_text
from workbench.study.schema import Keys, arch_key

optuna.logging.set_verbosity(optuna.logging.WARNING)


def fake_evaluation(arch, config, trial_number):
    """Bigger nets score higher (a real trade-off against latency), in microseconds instead of training."""
    value = 1.0 - 1.0 / (1 + arch.macs / 1e5)
    return Evaluation(value, {Keys.SCORE: value})


def vision_config(**options):
    """Scored by the fake evaluation; evaluator naswot makes the sampler's start-up proxy SynFlow (the cheaper)."""
    return SearchConfig.load("vision", "stm32f746", "digits", evaluator="naswot", **options)


def tiny_config():
    """A space of 6 architectures (3 resolutions x 2 head widths, fp32): random draws would repeat."""
    data = yaml.safe_load(load_space("vision").text)
    data.update(name="tiny", stem={"width": 8, "kernel": 3, "stride": 2}, head={"width": [64, 128]},
                quantization={"precision": ["fp32"]})
    data["stages"] = [{"depth": 1, "width": w, "kernel": 3, "expand": e, "stride": s}
                      for w, e, s in ((8, 1, 1), (16, 3, 2), (24, 3, 2), (32, 3, 2))]
    space = space_from_text(yaml.safe_dump(data), "tiny space")
    return SearchConfig.load(space, "stm32f746", "digits", evaluator="naswot")


def run_study(config, seed, trials):
    sampler = make_sampler("ranked", seed, context=config.sampler_context(seed))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(lambda trial: objective(trial, config, fake_evaluation), n_trials=trials)
    return study


def test_the_same_seed_proposes_the_same_trials():
    config = vision_config(latency_budget_ms=12.0)
    first, again, other = (run_study(config, seed, 9) for seed in (3, 3, 4))  # 6 start-up trials, 3 ranked
    assert [t.params for t in first.trials] == [t.params for t in again.trials]
    assert [t.params for t in first.trials] != [t.params for t in other.trials]


def test_only_feasible_candidates_are_proposed():
    config = vision_config(latency_budget_ms=12.0)
    archs = config.space.random_archs(200, seed=0, precisions=config.device.precisions, data=config.data.data_shape)
    infeasible = sum(max(violations(estimate(a, config.device), config.device, 12.0).values()) > 0 for a in archs)
    assert infeasible > 100  # random draws mostly miss the budget: the sampler has to look
    study = run_study(config, 0, 10)
    assert all(not t.user_attrs.get(Keys.REJECTED) for t in study.trials)
    assert all(max(t.system_attrs["constraints"]) <= 0 for t in study.trials)


def test_an_architecture_in_the_study_is_never_proposed_again():
    config = tiny_config()
    study = run_study(config, 0, 6)
    keys = [arch_key(t.user_attrs[Keys.ARCH]) for t in study.trials]
    assert len(set(keys)) == 6  # all six architectures, none twice


def test_a_running_trials_choice_is_not_proposed_to_the_next_trial():
    config = tiny_config()
    sampler = make_sampler("ranked", 0, context=config.sampler_context(0))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    asked = [study.ask() for _ in range(6)]  # none told: as six workers' trials running at once
    choices = [study._storage.get_trial(t._trial_id).system_attrs[CHOICE_ATTR] for t in asked]
    assert len({tuple(sorted(c.items())) for c in choices}) == 6


def test_the_sampler_works_through_the_search(tmp_path):
    search = Search("vision", "stm32f746", "digits", study_name="r", storage=f"sqlite:///{tmp_path / 's.db'}",
                    sampler="ranked", evaluator="synflow", latency_budget_ms=12.0, heartbeat_s=None)
    result = search.run(3)
    trials = result.study.get_trials()
    assert len(trials) == 3 and all(t.user_attrs.get(Keys.TRAINED) for t in trials)
    for t in trials:  # what the sampler chose is what was scored
        chosen = t.system_attrs[CHOICE_ATTR]
        assert {k: v for k, v in t.user_attrs[Keys.ARCH]["choices"].items() if k in chosen} == chosen
        assert math.isfinite(t.user_attrs[Keys.SCORE])


def test_the_ranked_sampler_needs_a_search_context():
    with pytest.raises(WorkbenchError, match="--sampler ranked"):
        make_sampler("ranked", 0)


def test_expected_hypervolume_gain_matches_integrating_the_hypervolume():
    front = [(0.80, 2.0), (0.90, 5.0), (0.95, 9.0)]
    ref = (0.5, 12.0)
    mean, std, latency = np.array([0.85, 0.97, 0.7, 0.99]), np.array([0.05, 0.02, 0.1, 0.03]), np.array(
        [3.0, 7.0, 1.0, 12.5])
    gain = expected_hv_gain(mean, std, latency, front_steps(front, ref), ref)
    base = hypervolume(front, ref, AXES)
    quantiles = (np.arange(4000) + 0.5) / 4000
    from scipy.stats import norm

    for i in range(len(mean)):  # E[HV(front + point) - HV(front)] over the objective's normal distribution
        values = mean[i] + std[i] * norm.ppf(quantiles)
        expected = np.mean([hypervolume(front + [(v, latency[i])], ref, AXES) - base for v in values])
        assert gain[i] == pytest.approx(expected, rel=2e-3, abs=1e-6)
    assert gain[3] == 0.0  # over the reference latency: nothing to gain
