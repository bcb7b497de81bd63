"""Search spaces: loading, validation, sampling through Optuna and an RNG, architecture records."""
import json

import optuna
import pytest

from workbench import Architecture, RandomSuggester, TrialSuggester, WorkbenchError, load_space
from workbench.model.space import DataShape, enumerate_ops, parse_space

SPACES = ["vision", "audio-kws", "sensor-imu"]


@pytest.mark.parametrize("name", SPACES)
def test_rng_and_optuna_trial_give_the_same_architecture(name):
    space = load_space(name)
    arch = space.sample(RandomSuggester(7))
    fixed = optuna.trial.FixedTrial({k: v for k, v in arch.choices})
    assert space.sample(TrialSuggester(fixed)) == arch


@pytest.mark.parametrize("name", SPACES)
def test_architecture_is_plain_hashable_and_round_trips_json(name):
    archs = load_space(name).random_archs(20, seed=1)
    for arch in archs:
        again = Architecture.from_json(json.dumps(json.loads(arch.to_json())))
        assert again == arch and hash(again) == hash(arch)
        assert again.op_keys == arch.op_keys
    assert len(set(archs)) > 10  # the space really varies


def test_seeded_sampling_is_reproducible():
    space = load_space("vision")
    assert space.random_archs(10, seed=3) == space.random_archs(10, seed=3)
    assert space.random_archs(10, seed=3) != space.random_archs(10, seed=4)


def test_device_precisions_restrict_the_policy():
    space = load_space("vision")
    for arch in space.random_archs(50, seed=0, precisions=["fp32", "int8"]):
        assert all(op.precision in ("fp32", "int8") for op in arch.ops)
    policies = {arch.precision for arch in space.random_archs(50, seed=0, precisions=["int8", "w4a8"])}
    assert policies == {"int8"}
    bits = {op.wbits for a in space.random_archs(50, seed=0, precisions=["int8", "w4a8"]) for op in a.ops}
    assert bits == {4, 8}


def test_data_shape_sets_input_channels_and_classes():
    arch = load_space("vision").sample(RandomSuggester(0), data=DataShape((3, 8, 8), 5))
    assert arch.input_shape[0] == 3 and arch.classes == 5
    assert arch.ops[-1].out_shape == (5,)


@pytest.mark.parametrize("name", SPACES)
def test_enumerated_ops_cover_every_sampled_architecture(name):
    space = load_space(name)
    keys = {op.key for op in enumerate_ops([space], ("fp32", "int8", "w4a8"))}
    for arch in space.random_archs(300, seed=5):
        assert set(arch.op_keys) <= keys


def test_a_space_is_yaml_only(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("name: tiny\nfamily: cnn1d\ninput: {channels: 3, length: 32}\nclasses: 2\n"
                    "blocks: {count: [1, 2], width: [8], kernel: [3]}\n")
    arch = load_space(path).sample(RandomSuggester(0))
    assert arch.space == "tiny" and arch.input_shape == (3, 32) and arch.precision == "fp32"


@pytest.mark.parametrize("patch, message", [
    ({"family": "transformer"}, "family: 'transformer' is not one of"),
    ({"stages": []}, "stages: expected a non-empty list"),
    ({"colour": "blue"}, "colour: unknown field"),
    ({"head": {"width": [-8]}}, "head.width: -8 is out of range"),
    ({"stem": {"width": [8], "kernel": 4}}, "stem.kernel: kernel 4 must be odd"),
    ({"quantization": {"precision": ["int3"]}}, "quantization.precision: 'int3' is not one of"),
    ({"quantization": {"precision": ["int8"], "weight_bits": [2]}}, "quantization.weight_bits: 2 is out of range"),
])
def test_bad_space_fields_name_the_field(patch, message):
    data = {"name": "v", "family": "mbconv", "input": {"resolution": [32]}, "stem": {"width": [8]},
            "stages": [{"depth": 1, "width": 8, "kernel": 3}], "head": {"width": 16}}
    data.update(patch)
    with pytest.raises(WorkbenchError, match=message) as info:
        parse_space(data, "v.yaml")
    assert str(info.value).startswith("v.yaml: ")
