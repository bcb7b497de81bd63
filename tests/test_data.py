"""Data sets: built-ins, user .npz and image folders, errors that name the path, and adapt()."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.model.data import adapt, list_datasets, load_dataset
from workbench._infra.errors import WorkbenchError
from workbench.model.space import DataShape


def test_list_datasets():
    names = [n for n, _ in list_datasets()]
    assert names == ["digits", "basic-motions", "basic-motions-1s", "japanese-vowels"]
    assert all(desc for _, desc in list_datasets())


@pytest.mark.parametrize("name, shape, classes, n_train, n_test", [
    ("digits", (1, 8, 8), 10, 1437, 360),
    ("basic-motions", (6, 100), 4, 40, 40),
    ("basic-motions-1s", (6, 10), 4, 760, 760),
    ("japanese-vowels", (12, 29), 9, 270, 370),
])
def test_builtin_shapes(name, shape, classes, n_train, n_test):
    ds = load_dataset(name)
    assert ds.shape == shape and ds.classes == classes
    assert ds.data_shape == DataShape(shape, classes)
    assert ds.x_train.shape == (n_train, *shape) and ds.x_test.shape == (n_test, *shape)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert set(np.unique(ds.y_train)) == set(range(classes)) and ds.y_test.max() < classes
    assert len(ds.class_names) == classes


def test_digits_split_is_stratified_and_scaled():
    ds = load_dataset("digits")
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    counts = np.bincount(ds.y_test)
    assert counts.min() >= 35 and counts.max() <= 37


def test_series_standardised_with_train_stats():
    ds = load_dataset("basic-motions")
    np.testing.assert_allclose(ds.x_train.mean(axis=(0, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(ds.x_train.std(axis=(0, 2)), 1, atol=1e-3)


def test_one_second_windows_are_slices_of_recordings_on_their_own_side_of_the_split():
    whole, windows = load_dataset("basic-motions"), load_dataset("basic-motions-1s")
    per_recording = 19  # 10-step windows starting every 5 steps in 100 steps
    assert windows.x_train.shape == (40 * per_recording, 6, 10)
    for split in ("train", "test"):
        x, y = getattr(windows, f"x_{split}"), getattr(windows, f"y_{split}")
        rec_x, rec_y = getattr(whole, f"x_{split}"), getattr(whole, f"y_{split}")
        for i in (0, 18, 19, 7 * per_recording + 3, len(x) - 1):
            rec, start = divmod(i, per_recording)
            np.testing.assert_array_equal(x[i], rec_x[rec][:, 5 * start:5 * start + 10])
            assert y[i] == rec_y[rec]
        assert np.bincount(y).tolist() == [190] * 4
    train_groups, test_groups = windows.groups
    assert len(train_groups) == len(windows.x_train) and len(test_groups) == len(windows.x_test)
    assert not set(train_groups.tolist()) & set(test_groups.tolist())  # no recording on both sides


def test_kfold_is_seeded_stratified_and_tests_every_sample_once():
    from workbench.model.data import kfold

    ds = load_dataset("basic-motions")
    folds = kfold(ds, 5, seed=3)
    again, other = kfold(ds, 5, seed=3), kfold(ds, 5, seed=4)
    assert [f.name for f in folds] == [f"basic-motions fold {i}/5" for i in range(1, 6)]
    for a, b in zip(folds, again):
        np.testing.assert_array_equal(a.x_test, b.x_test)
        np.testing.assert_array_equal(a.y_train, b.y_train)
    assert any(not np.array_equal(a.x_test, b.x_test) for a, b in zip(folds, other))
    pooled = np.concatenate([ds.x_train, ds.x_test]).reshape(80, -1)
    tested = np.concatenate([f.x_test for f in folds]).reshape(80, -1)
    assert sorted(map(bytes, pooled)) == sorted(map(bytes, tested))  # each sample tested exactly once
    for f in folds:
        assert np.bincount(f.y_test).tolist() == [4] * 4 and len(f.x_train) == 64
        assert f.classes == 4 and f.shape == (6, 100)


def test_kfold_keeps_a_recordings_windows_in_one_fold():
    from workbench.model.data import kfold

    tested = []
    for fold in kfold(load_dataset("basic-motions-1s"), 4, seed=0):
        train_groups, test_groups = fold.groups
        assert not set(train_groups.tolist()) & set(test_groups.tolist())
        assert len(fold.x_test) == 19 * len(set(test_groups.tolist()))  # whole recordings only
        tested += sorted(set(test_groups.tolist()))
    assert sorted(tested) == list(range(80))  # every recording tested once


@pytest.mark.parametrize("k", [1, 21])
def test_kfold_refuses_impossible_fold_counts_in_one_line(k):
    from workbench.model.data import kfold

    with pytest.raises(WorkbenchError, match=f"cannot make {k} folds: need 2..20") as err:
        kfold(load_dataset("basic-motions"), k)
    assert "\n" not in str(err.value) and str(err.value).startswith("basic-motions")


def test_every_shipped_space_default_data_set_loads_and_fits_its_space():
    from workbench.model.data import check_against_space
    from workbench.model.space import all_spaces

    defaults = {s.name: s.dataset for s in all_spaces() if s.dataset}
    assert defaults["sensor-imu"] == "basic-motions-1s" and defaults["audio-kws"] == "japanese-vowels"
    assert defaults["vision"] == "digits"
    for space in all_spaces():
        if space.dataset:
            notes = check_against_space(load_dataset(space.dataset), space)
            assert all(isinstance(n, str) and "\n" not in n for n in notes)
    sensor = next(s for s in all_spaces() if s.name == "sensor-imu")
    assert check_against_space(load_dataset("basic-motions-1s"), sensor) == [
        "the architectures take the data's 10 steps, not space 'sensor-imu' input.length = 100"]


def test_unknown_data_set_names_every_built_in_on_one_line():
    with pytest.raises(WorkbenchError) as err:
        load_dataset("basic-motion")
    message = str(err.value)
    assert "\n" not in message and "unknown data set 'basic-motion'" in message
    assert all(name in message for name, _ in list_datasets())


def _write_npz(path, **override):
    rng = np.random.default_rng(0)
    arrays = dict(x_train=rng.normal(size=(20, 3, 16)).astype(np.float32), y_train=np.arange(20) % 3,
                  x_test=rng.normal(size=(6, 3, 16)).astype(np.float32), y_test=np.arange(6) % 3)
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return path


def test_npz_user_data(tmp_path):
    ds = load_dataset(_write_npz(tmp_path / "imu.npz"))
    assert ds.name == "imu" and ds.shape == (3, 16) and ds.classes == 3
    assert ds.y_train.dtype == np.int64 and ds.x_train.dtype == np.float32
    folder = tmp_path / "mydata"
    folder.mkdir()
    _write_npz(folder / "data.npz", y_train=np.array(["a", "b", "c", "d"] * 5), y_test=np.array(["b", "d"] * 3))
    ds = load_dataset(folder)
    assert ds.name == "mydata" and ds.classes == 4 and ds.class_names == ("a", "b", "c", "d")
    assert list(ds.y_test[:2]) == [1, 3]


@pytest.mark.parametrize("override, message", [
    (dict(y_test=None), "missing key.*y_test"),
    (dict(y_train=np.arange(19) % 3), "20 samples but y_train has 19"),
    (dict(y_test=np.array([0, 1, 2, 3, 0, 1])), "out of range"),
    (dict(y_train=-(np.arange(20) % 3)), "out of range"),
    (dict(x_test=np.zeros((6, 4, 16))), "shape"),
    (dict(x_train=np.full((20, 3, 16), np.nan)), "NaN"),
])
def test_bad_npz_names_the_path(tmp_path, override, message):
    path = _write_npz(tmp_path / "bad.npz", **override)
    with pytest.raises(WorkbenchError, match=message) as err:
        load_dataset(path)
    assert str(path) in str(err.value)


def test_missing_and_unreadable_paths(tmp_path):
    with pytest.raises(WorkbenchError, match="does not exist") as err:
        load_dataset(tmp_path / "nowhere.npz")
    assert "nowhere.npz" in str(err.value)
    with pytest.raises(WorkbenchError, match="unknown data set 'mnist'"):
        load_dataset("mnist")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WorkbenchError, match="missing folder train/") as err:
        load_dataset(empty)
    assert str(empty) in str(err.value)
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    with pytest.raises(WorkbenchError, match="cannot read") as err:
        load_dataset(junk)
    assert str(junk) in str(err.value)


def _image_folder(root, mode="L", size=(10, 12)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        for cls in ("cat", "dog"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
                Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(d / f"{i}.png")
    return root


def test_image_folder(tmp_path):
    ds = load_dataset(_image_folder(tmp_path / "gray"))
    assert ds.shape == (1, 12, 10) and ds.classes == 2 and ds.class_names == ("cat", "dog")
    assert len(ds.x_train) == 8 and len(ds.x_test) == 4 and 0 <= ds.x_train.min() and ds.x_train.max() <= 1
    ds = load_dataset(_image_folder(tmp_path / "rgb", "RGB"))
    assert ds.shape == (3, 12, 10)


def test_image_folder_errors(tmp_path):
    root = _image_folder(tmp_path / "imgs")
    bad = root / "train" / "cat" / "notes.txt"
    bad.write_text("hello")
    with pytest.raises(WorkbenchError, match="not an image") as err:
        load_dataset(root)
    assert str(bad) in str(err.value)
    bad.unlink()
    fake = root / "test" / "dog" / "broken.png"
    fake.write_bytes(b"no png here")
    with pytest.raises(WorkbenchError, match="not a readable image") as err:
        load_dataset(root)
    assert str(fake) in str(err.value)


def test_adapt_images_and_series():
    x = np.random.default_rng(0).random((5, 1, 8, 8), dtype=np.float32)
    assert adapt(x, (1, 24, 24)).shape == (5, 1, 24, 24)
    assert adapt(x, (1, 8, 8)).shape == (5, 1, 8, 8)
    with pytest.raises(WorkbenchError, match="3 channels"):
        adapt(x, (3, 24, 24))
    s = np.random.default_rng(0).random((4, 12, 29), dtype=np.float32)
    kws = adapt(s, (1, 32, 12))  # DS-CNN map: time along H, features along W, zero-padded
    assert kws.shape == (4, 1, 32, 12)
    np.testing.assert_array_equal(kws[:, 0, :29, :], s.transpose(0, 2, 1))
    assert not kws[:, :, 29:].any()
    assert adapt(s, (12, 20)).shape == (4, 12, 20)
    assert adapt(s, (12, 40)).shape == (4, 12, 40)
    with pytest.raises(WorkbenchError):
        adapt(s, (1, 32, 13))
    with pytest.raises(WorkbenchError):
        adapt(s, (6, 29))
    with pytest.raises(WorkbenchError):
        adapt(x, (1, 64))


def test_adapted_is_cached_per_shape():
    ds = load_dataset("digits")
    a = ds.adapted((1, 16, 16))
    assert ds.adapted((1, 16, 16)) is a
    assert a[0].shape == (1437, 1, 16, 16) and a[1].shape == (360, 1, 16, 16)


# ---------------------------------------------------------------- data against the space

def _space(tmp_path, text):
    from workbench.model.space import load_space

    path = tmp_path / "space.yaml"
    path.write_text(text)
    return load_space(path)


IMU_SPACE = """name: imu
family: cnn1d
classes: 3
input: {channels: 6, length: 100}
blocks: {count: [1, 2], width: [8], kernel: [3]}
"""


def test_channel_last_series_is_an_error_that_suggests_transposing(tmp_path):
    from workbench.model.data import check_against_space

    rng = np.random.default_rng(0)
    path = _write_npz(tmp_path / "nwc.npz", x_train=rng.normal(size=(20, 100, 6)), x_test=rng.normal(size=(6, 100, 6)))
    space = _space(tmp_path, IMU_SPACE)
    with pytest.raises(WorkbenchError) as err:
        check_against_space(load_dataset(path), space, str(path))
    message = str(err.value)
    assert message.startswith(str(path)) and f"{space.path} input.channels is 6" in message
    assert "x.transpose(0, 2, 1)" in message and "(100, 6) → (6, 100)" in message


@pytest.mark.parametrize("space_name, data_name, field", [
    ("vision", "basic-motions", "not images"),
    ("sensor-imu", "digits", "not series"),
    ("audio-kws", "basic-motions", "have 6 features .* input.features is 12"),
])
def test_data_of_another_layout_is_refused(space_name, data_name, field):
    from workbench.model.data import check_against_space
    from workbench.model.space import load_space

    with pytest.raises(WorkbenchError, match=field) as err:
        check_against_space(load_dataset(data_name), load_space(space_name), data_name)
    assert f"space '{space_name}' input." in str(err.value)


def test_channel_count_mismatch_names_the_field(tmp_path):
    from workbench.model.data import check_against_space
    from workbench.model.space import load_space

    rgb = np.random.default_rng(0).random((10, 3, 16, 16))
    path = _write_npz(tmp_path / "rgb.npz", x_train=rgb, x_test=rgb[:6], y_train=np.arange(10) % 3)
    with pytest.raises(WorkbenchError, match=r"3 channels but space 'vision' input.channels is 1"):
        check_against_space(load_dataset(path), load_space("vision"), str(path))


def test_adaptations_are_stated(tmp_path):
    from workbench.model.data import check_against_space
    from workbench.model.space import load_space

    assert check_against_space(load_dataset("basic-motions"), load_space("sensor-imu")) == []
    assert check_against_space(load_dataset("digits"), load_space("vision")) == [
        "8x8 images are resized to each candidate's input resolution (24/32/48, space 'vision' input.resolution)"]
    assert check_against_space(load_dataset("japanese-vowels"), load_space("audio-kws")) == [
        "series of 29 frames are zero-padded to space 'audio-kws' input.frames = 32"]
    rng = np.random.default_rng(0)
    path = _write_npz(tmp_path / "long.npz", x_train=rng.normal(size=(20, 6, 128)), x_test=rng.normal(size=(6, 6, 128)),
                      y_train=np.arange(20) % 4, y_test=np.arange(6) % 4)
    notes = check_against_space(load_dataset(path), _space(tmp_path, IMU_SPACE))
    assert any("data's 128 steps, not" in n and "input.length = 100" in n for n in notes)
    assert "the classifier gets the data's 4 classes, not the space's classes: 3" in notes


def test_a_refused_search_opens_no_storage(tmp_path):
    from workbench.search import Search

    rng = np.random.default_rng(0)
    path = _write_npz(tmp_path / "nwc.npz", x_train=rng.normal(size=(20, 100, 6)), x_test=rng.normal(size=(6, 100, 6)))
    db = tmp_path / "s.db"
    with pytest.raises(WorkbenchError, match="transpose"):
        Search("sensor-imu", "stm32f746", str(path), storage=f"sqlite:///{db}")
    assert not db.exists()
