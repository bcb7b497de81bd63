"""Shifted domains for on-device adaptation (workbench.model.tasks): shipped per space, deterministic, really
shifted, physically sensible (an IMU rotation keeps vector norms in raw units), and one-line errors naming --task."""
from __future__ import annotations

import numpy as np
import pytest

from workbench._infra.errors import WorkbenchError
from workbench.model.data import load_dataset
from workbench.model.space import all_spaces
from workbench.model.tasks import (
    TASKS,
    CepstralChannel,
    RotateContrast,
    ShiftTask,
    load_task,
    motion_statistics,
    rotation_matrix,
    tasks_for,
)


def _arrays(data):
    t = data.target
    return t.x_train, t.y_train, t.x_test, t.y_test


def test_every_shipped_space_with_a_built_in_data_set_has_a_task_for_it():
    with_data = [space for space in all_spaces() if space.dataset]  # the MLPerf spaces name no built-in data
    assert {space.name for space in with_data} >= {"vision", "sensor-imu", "audio-kws"}
    for space in with_data:
        tasks = tasks_for(space.dataset)
        assert tasks, space.name
        assert all(isinstance(t, ShiftTask) and t.help and "\n" not in t.help for t in tasks)


@pytest.mark.parametrize("name", TASKS.names())
def test_a_task_keeps_the_source_classes_and_shapes_and_shifts_every_split(name):
    task = TASKS.get(name)
    source = load_dataset(task.dataset)
    target = load_task(name, task.dataset).target
    assert target.classes == source.classes and target.class_names == source.class_names
    assert target.x_train.shape == source.x_train.shape and target.x_test.shape == source.x_test.shape
    assert target.x_train.dtype == np.float32 and np.isfinite(target.x_train).all()
    np.testing.assert_array_equal(target.y_train, source.y_train)  # adaptation = shifted source train split
    np.testing.assert_array_equal(target.y_test, source.y_test)    # evaluation = shifted source test split
    for shifted, original in ((target.x_train, source.x_train), (target.x_test, source.x_test)):
        assert np.abs(shifted - original).mean() > 0.1  # in standardised / [0, 1] units: a real shift
    assert not target.x_train.flags.writeable and not source.x_train.flags.writeable


@pytest.mark.parametrize("name", TASKS.names())
def test_a_task_is_bit_identical_when_computed_again(name):
    task = TASKS.get(name)
    source = load_dataset(task.dataset)
    first = [task.shift(x, np.random.default_rng([task.seed, i]))
             for i, x in enumerate((source.x_train, source.x_test))]
    again = [task.shift(x, np.random.default_rng([task.seed, i]))
             for i, x in enumerate((source.x_train, source.x_test))]
    for a, b, loaded in zip(first, again, _arrays(load_task(name, task.dataset))[::2]):
        assert a.tobytes() == b.tobytes() == loaded.tobytes()


def test_rotating_the_imu_keeps_accelerometer_and_gyroscope_norms_in_raw_units():
    source = load_dataset("basic-motions-1s")
    target = load_task("motions-rotated", "basic-motions-1s").target
    mean, std = motion_statistics()
    raw_before = source.x_test.astype(np.float64) * std[:, None] + mean[:, None]
    raw_after = target.x_test.astype(np.float64) * std[:, None] + mean[:, None]
    for sensor in (slice(0, 3), slice(3, 6)):
        before = np.linalg.norm(raw_before[:, sensor], axis=1)
        after = np.linalg.norm(raw_after[:, sensor], axis=1)
        np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4)
        assert np.abs(raw_after[:, sensor] - raw_before[:, sensor]).max() > 1.0  # the axes did turn
    r = rotation_matrix((1.0, 1.0, 0.0), 90.0)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)


def test_the_raw_statistics_undo_the_data_sets_standardisation():
    from aeon.datasets import load_basic_motions

    raw, _ = load_basic_motions(split="test")
    mean, std = motion_statistics()
    back = load_dataset("basic-motions").x_test.astype(np.float64) * std[:, None] + mean[:, None]
    np.testing.assert_allclose(back, np.asarray(raw, np.float64), atol=1e-4)


def test_the_cepstral_channel_leaves_padding_frames_at_zero_and_is_the_same_channel_on_both_splits():
    shift = CepstralChannel(gain=(0.5, 0.8), offset=1.0, noise=0.0, seed=5)
    x = np.zeros((2, 3, 4), np.float32)
    x[:, :, :2] = 1.0  # two real frames, two padding frames
    a = shift(x, np.random.default_rng(0))
    b = shift(x, np.random.default_rng(1))  # another split: noise-free, so the same fixed channel
    assert (a[:, :, 2:] == 0).all() and (a[:, :, :2] != 1).all()
    np.testing.assert_array_equal(a, b)
    g, offset = shift.channel(3)
    np.testing.assert_allclose(a[0, :, 0], g + offset, rtol=1e-6)


def test_rotate_contrast_inverts_a_blank_image_to_white():
    out = RotateContrast(30.0)(np.zeros((1, 1, 8, 8), np.float32), np.random.default_rng(0))
    assert (out == 1.0).all()
    x = np.zeros((1, 1, 8, 8), np.float32)
    x[0, 0, :, 3:5] = 1.0  # a vertical bar
    turned = RotateContrast(90.0, gain=1.0, offset=0.0)(x, np.random.default_rng(0))
    assert turned[0, 0, 3:5, :].mean() > 0.9 and turned[0, 0, 0, :].max() < 0.1  # now horizontal


def test_a_task_for_another_data_set_is_one_line_naming_task_and_the_fitting_tasks():
    with pytest.raises(WorkbenchError) as err:
        load_task("digits-rotated-inverted", "japanese-vowels")
    message = str(err.value)
    assert message.startswith("--task digits-rotated-inverted: shifts data set 'digits' but the study's data set "
                              "is 'japanese-vowels'") and "vowels-channel-noise" in message and "\n" not in message


def test_an_unknown_task_is_one_line_listing_the_tasks():
    with pytest.raises(WorkbenchError) as err:
        load_task("digits-upside-down", "digits")
    message = str(err.value)
    assert message.startswith("--task: unknown task 'digits-upside-down'") and "\n" not in message
    assert all(name in message for name in TASKS.names())


def _write(path, x_train, y_train, x_test, y_test):
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def test_a_users_npz_is_the_target_as_given(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 1, 8, 8)).astype(np.float32)
    y = np.arange(20) % 10
    data = load_task(_write(tmp_path / "my_device.npz", x, y, x[:10], y[:10]), "digits")
    assert data.name == "my_device" and data.target.classes == 10
    np.testing.assert_array_equal(data.target.x_train, x)


@pytest.mark.parametrize("labels, shape, words", [
    (np.arange(20) % 3, (1, 8, 8), "has classes"),         # 3 classes where digits has 10
    (np.arange(20) % 10, (3, 8, 8), "samples have shape"),  # three channels where digits has one
])
def test_a_users_data_that_does_not_fit_is_one_line_naming_task(tmp_path, labels, shape, words):
    x = np.zeros((20, *shape), np.float32)
    path = _write(tmp_path / "bad.npz", x, labels, x, labels)
    with pytest.raises(WorkbenchError) as err:
        load_task(path, "digits")
    assert str(err.value).startswith(f"--task {path}: ") and words in str(err.value) and "\n" not in str(err.value)


def test_a_missing_path_is_one_line_naming_task(tmp_path):
    with pytest.raises(WorkbenchError, match=r"^--task .*nowhere\.npz: .*does not exist"):
        load_task(tmp_path / "nowhere.npz", "digits")


def test_a_trained_model_loses_accuracy_on_the_rotated_imu():
    from workbench.model.quant import deployable_model
    from workbench.model.space import load_space
    from workbench.model.train import evaluate, train_and_evaluate

    source = load_dataset("basic-motions-1s")
    arch = load_space("sensor-imu").random_archs(1, seed=0, data=source.data_shape)[0]
    deployed = deployable_model(train_and_evaluate(arch, source, epochs=2, seed=0).model, arch)
    shifted = load_task("motions-rotated", "basic-motions-1s").target
    assert evaluate(deployed, arch, shifted) < evaluate(deployed, arch, source) - 0.15
