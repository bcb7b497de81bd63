"""Data sets: shipped real-data benchmarks and user data, as fixed train/test numpy arrays.

Built-ins come from packages already installed (no download at run time):

* ``digits`` — scikit-learn's 1,797 real 8x8 handwritten digits (UCI), stratified 80/20 split.
* ``basic-motions`` — aeon's BasicMotions: 6-axis IMU (accelerometer + gyroscope), 100 steps,
  4 activities, the archive's own train/test split. Every candidate scores 1.0 on its 40 test
  recordings, so it cannot rank architectures (it stays for quick runs and old studies).
* ``basic-motions-1s`` — the same recordings cut into 1-second windows (10 steps at 10 Hz, hop 5),
  the way an on-device activity classifier sees them; windows inherit their recording's side of
  the archive's split (no recording is in both), giving 760/760 windows on which candidates differ.
* ``japanese-vowels`` — aeon's JapaneseVowels: 12 LPC cepstrum coefficients over 7..29 frames,
  9 speakers, the archive's own split; zero-padded to the longest utterance.

:func:`kfold` re-splits a small data set into seeded, stratified folds (cross-validation).

User data is a path: an ``.npz`` file (keys ``x_train``, ``y_train``, ``x_test``, ``y_test``;
optional ``classes``, ``description``), a directory holding ``data.npz``, or an image folder
``DIR/train/<class>/*.png|jpg`` + ``DIR/test/<class>/*``. User arrays are used as given
(scale/standardise them beforehand); images are scaled to [0, 1].

Samples are channel first: ``(C, H, W)`` images, ``(C, T)`` series. :func:`adapt` fits them to an
architecture's input shape (resize images, pad/crop series, lay an (F, T) series out as the
``(1, frames, F)`` map a keyword-spotting DS-CNN reads); :meth:`Dataset.adapted` caches the
result per input shape so a search adapts the whole set once per distinct shape.
:func:`check_against_space` checks a data set against a search space before a search opens its
study: a layout or channel count the space cannot take is an error naming the data and the space
field; what :func:`adapt` will change is returned as sentences the CLI prints.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from workbench._infra import places
from workbench._infra.errors import WorkbenchError
from workbench._infra.safeio import MAX_DATA_BYTES, one_line, read_npz, size_text
from workbench.model.families import FAMILIES
from workbench.model.space import DataShape

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".pgm", ".ppm")
SPLIT_SEED = 0
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test", "classes", "description")
MAX_CLASSES = 100_000  # the spaces' own limit on classes


@dataclass(eq=False)
class Dataset:
    name: str
    description: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    class_names: tuple[str, ...] = ()
    # (train, test): the recording each sample was cut from (windowed built-ins), so that
    # :func:`kfold` keeps a recording's overlapping windows on one side; None: samples are independent
    groups: tuple[np.ndarray, np.ndarray] | None = None
    _adapted: dict = field(default_factory=dict, repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        """Sample shape, channel first."""
        return tuple(int(s) for s in self.x_train.shape[1:])

    @property
    def data_shape(self) -> DataShape:
        return DataShape(self.shape, self.classes)

    def adapted(self, input_shape) -> tuple:
        """(x_train, x_test) as float32 torch tensors fitted to ``input_shape``; cached per shape."""
        import torch  # heavy: torch

        key = tuple(int(s) for s in input_shape)
        if key not in self._adapted:
            self._adapted[key] = tuple(torch.from_numpy(np.require(adapt(x, key), np.float32, ("C", "W")))
                                       for x in (self.x_train, self.x_test))
        return self._adapted[key]

    def summary(self) -> str:
        return (f"{self.name}: {len(self.x_train)} train / {len(self.x_test)} test samples of shape "
                f"{self.shape}, {self.classes} classes")


# ---------------------------------------------------------------- built-ins

def _digits() -> Dataset:
    from sklearn.datasets import load_digits  # heavy: sklearn
    from sklearn.model_selection import train_test_split  # heavy: sklearn

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8), pixel values 0..16
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, stratify=y, random_state=SPLIT_SEED)
    return Dataset("digits", BUILTINS["digits"], xtr, ytr, xte, yte, 10, tuple(str(i) for i in range(10)))


def _encode(ytr, yte):
    names = sorted(set(ytr.tolist()), key=lambda s: (0, int(s), s) if str(s).isdigit() else (1, 0, str(s)))
    index = {n: i for i, n in enumerate(names)}
    return (np.array([index[v] for v in ytr], np.int64), np.array([index[v] for v in yte], np.int64),
            tuple(str(n) for n in names))


def _standardise(xtr, xte):
    """Per-channel standardisation with train statistics (axis 1 = channel)."""
    axes = (0, 2)
    mean = xtr.mean(axis=axes, keepdims=True)
    std = xtr.std(axis=axes, keepdims=True) + 1e-6
    return ((xtr - mean) / std).astype(np.float32), ((xte - mean) / std).astype(np.float32)


def _basic_motions() -> Dataset:
    from aeon.datasets import load_basic_motions  # heavy: aeon

    xtr, ytr = load_basic_motions(split="train")
    xte, yte = load_basic_motions(split="test")
    xtr, xte = _standardise(np.asarray(xtr, np.float64), np.asarray(xte, np.float64))
    ytr, yte, names = _encode(np.asarray(ytr), np.asarray(yte))
    return Dataset("basic-motions", BUILTINS["basic-motions"], xtr, ytr, xte, yte, len(names), names)


def _windows(x: np.ndarray, y: np.ndarray, length: int, hop: int, first_group: int = 0):
    """Every ``length``-step window (start every ``hop`` steps) of each series in ``x`` (N, C, T):
    (windows, their labels, the index of the series each came from, counted from ``first_group``)."""
    starts = range(0, x.shape[2] - length + 1, hop)
    windows = np.stack([x[:, :, s:s + length] for s in starts], axis=1)  # (N, windows, C, length)
    series = np.arange(first_group, first_group + len(x), dtype=np.int64)
    return (np.ascontiguousarray(windows.reshape(-1, x.shape[1], length)), np.repeat(y, len(starts)),
            np.repeat(series, len(starts)))


WINDOW_STEPS, WINDOW_HOP = 10, 5  # BasicMotions is sampled at 10 Hz: 1-second windows, 50 % overlap


def _basic_motions_1s() -> Dataset:
    whole = _builtin("basic-motions")  # standardised with the training recordings' statistics
    xtr, ytr, gtr = _windows(whole.x_train, whole.y_train, WINDOW_STEPS, WINDOW_HOP)
    xte, yte, gte = _windows(whole.x_test, whole.y_test, WINDOW_STEPS, WINDOW_HOP, first_group=len(whole.x_train))
    return Dataset("basic-motions-1s", BUILTINS["basic-motions-1s"], xtr, ytr, xte, yte, whole.classes,
                   whole.class_names, groups=(gtr, gte))


def _japanese_vowels() -> Dataset:
    from aeon.datasets import load_japanese_vowels  # heavy: aeon

    xtr, ytr = load_japanese_vowels(split="train")
    xte, yte = load_japanese_vowels(split="test")
    length = max(a.shape[1] for a in list(xtr) + list(xte))
    # standardise on the real frames only (padding would bias the statistics), then zero-pad
    frames = np.concatenate([a for a in xtr], axis=1)  # (12, total frames)
    mean, std = frames.mean(axis=1, keepdims=True), frames.std(axis=1, keepdims=True) + 1e-6

    def pad(series):
        out = np.zeros((len(series), series[0].shape[0], length), np.float32)
        for i, a in enumerate(series):
            out[i, :, : a.shape[1]] = (a - mean) / std
        return out

    ytr, yte, names = _encode(np.asarray(ytr), np.asarray(yte))
    return Dataset("japanese-vowels", BUILTINS["japanese-vowels"], pad(list(xtr)), ytr, pad(list(xte)), yte,
                   len(names), names)


BUILTINS = {
    "digits": "1,797 real 8x8 handwritten digits (scikit-learn/UCI), 10 classes, stratified 80/20 split",
    "basic-motions": "BasicMotions 6-axis IMU, 100 steps, 4 activities (UEA archive via aeon), 40/40 split",
    "basic-motions-1s": "BasicMotions cut into 1-second windows (10 steps, hop 5), split by recording, 760/760",
    "japanese-vowels": "JapaneseVowels 12 LPC coefficients x 7..29 frames, 9 speakers (UEA archive via aeon), 270/370 split",
}
_LOADERS = {"digits": _digits, "basic-motions": _basic_motions, "basic-motions-1s": _basic_motions_1s,
            "japanese-vowels": _japanese_vowels}


def list_datasets() -> list[tuple[str, str]]:
    """(name, one-line description) of every built-in data set."""
    return list(BUILTINS.items())


@lru_cache(maxsize=len(_LOADERS))  # one entry per built-in data set (each a few MB): the bound is the set of names
def _builtin(name: str) -> Dataset:
    ds = _LOADERS[name]()
    for a in (ds.x_train, ds.y_train, ds.x_test, ds.y_test, *(ds.groups or ())):
        a.flags.writeable = False  # shared between callers through the cache
    return ds


def load_dataset(name_or_path) -> Dataset:
    """A built-in data set by name, or user data from a path (``.npz``, directory, image folder)."""
    key = str(name_or_path)
    if key in _LOADERS:
        return _builtin(key)
    if not key.strip():  # Path("") would be the current folder, read as an image folder
        raise WorkbenchError(f"--data: the data set name is empty ({key!r}); give a built-in name or a path")
    path = Path(name_or_path)
    if not path.exists():
        known = ", ".join(BUILTINS)
        if path.suffix or "/" in key or "\\" in key:
            raise WorkbenchError(f"data set path does not exist (built-ins: {known})", where=key)
        raise WorkbenchError(f"unknown data set {key!r} (built-ins: {known}; or give a .npz file or a folder)")
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise WorkbenchError("not a data set: expected a .npz file or a folder", where=str(path))
        return _load_npz(path)
    if (path / "data.npz").is_file():
        return _load_npz(path / "data.npz")
    return _load_image_folder(path)


def kfold(dataset: Dataset, k: int = 5, seed: int = SPLIT_SEED) -> list[Dataset]:
    """``k`` cross-validation folds of ``dataset``: its train and test samples pooled, then split
    into ``k`` stratified parts; fold ``i`` tests on part ``i`` and trains on the rest.

    Why: on a small set one fixed test split scores a model on a few dozen samples, so one sample
    more or less moves the accuracy by points; over ``k`` folds every sample is tested once. Seeded:
    the same ``seed`` gives the same folds. Windows cut from one recording (``dataset.groups``) stay
    in one part, so no test window overlaps a training window. The arrays are used as loaded (a
    built-in series set was standardised with its own training split's statistics).
    """
    from sklearn.model_selection import (  # heavy: sklearn
        StratifiedGroupKFold,
        StratifiedKFold,
    )

    x = np.concatenate([dataset.x_train, dataset.x_test])
    y = np.concatenate([dataset.y_train, dataset.y_test])
    groups = None if dataset.groups is None else np.concatenate(dataset.groups)
    smallest = int(np.bincount(y, minlength=dataset.classes).min()) if groups is None else \
        min(len(set(groups[y == c].tolist())) for c in range(dataset.classes))
    if not 2 <= k <= smallest:
        raise WorkbenchError(f"cannot make {k} folds: need 2..{smallest} (the smallest class has {smallest} "
                             f"{'recordings' if groups is not None else 'samples'})", where=dataset.name)
    if groups is None:
        parts = StratifiedKFold(k, shuffle=True, random_state=seed).split(x, y)
    else:
        parts = StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(x, y, groups)
    folds = []
    for i, (train, test) in enumerate(parts):
        folds.append(Dataset(f"{dataset.name} fold {i + 1}/{k}", f"{dataset.description}; fold {i + 1} of {k} "
                             f"(seed {seed})", x[train], y[train], x[test], y[test], dataset.classes,
                             dataset.class_names, None if groups is None else (groups[train], groups[test])))
    return folds


# ---------------------------------------------------------------- user data: npz

def _load_npz(path: Path) -> Dataset:
    where = str(path)
    arrays = read_npz(path, NPZ_KEYS)  # declared sizes checked before anything is decompressed
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise WorkbenchError(f"missing key(s) {', '.join(missing)} (has: {', '.join(sorted(arrays)) or 'none'})",
                             where=where)
    x = {}
    for split in ("train", "test"):
        a = arrays[f"x_{split}"]
        if not np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_:
            raise WorkbenchError(f"x_{split} must be numeric, got dtype {a.dtype}", where=where)
        if a.ndim < 2 or a.ndim > 4:
            raise WorkbenchError(f"x_{split} must be (N, T), (N, C, T) or (N, C, H, W), got shape {a.shape}",
                                 where=where)
        if a.ndim == 2:
            a = a[:, None, :]  # (N, T): a one-channel series
        if not np.isfinite(a).all():
            raise WorkbenchError(f"x_{split} contains NaN or infinite values", where=where)
        x[split] = np.ascontiguousarray(a, dtype=np.float32)
        if len(a) == 0:
            raise WorkbenchError(f"x_{split} is empty", where=where)
    if x["train"].shape[1:] != x["test"].shape[1:]:
        raise WorkbenchError(f"x_train samples have shape {x['train'].shape[1:]} but x_test samples "
                             f"{x['test'].shape[1:]}", where=where)
    ytr, yte = arrays["y_train"], arrays["y_test"]
    for split, y in (("train", ytr), ("test", yte)):
        if y.ndim != 1:
            raise WorkbenchError(f"y_{split} must be a 1-D label vector, got shape {y.shape}", where=where)
        if len(y) != len(x[split]):
            raise WorkbenchError(f"x_{split} has {len(x[split])} samples but y_{split} has {len(y)} labels",
                                 where=where)
    for split, y in (("train", ytr), ("test", yte)):
        if y.dtype.kind not in "biufUS":
            raise WorkbenchError(f"y_{split} labels must be integers or strings, got dtype {y.dtype}", where=where)
    if ytr.dtype.kind in "USO" or yte.dtype.kind in "USO":
        unknown = sorted(set(yte.tolist()) - set(ytr.tolist()))
        if unknown:
            raise WorkbenchError(f"y_test has labels not in y_train: {unknown[:5]}", where=where)
        ytr, yte, names = _encode(ytr.astype(str), yte.astype(str))
        classes = len(names)
    else:
        for split, y in (("train", ytr), ("test", yte)):
            if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
                raise WorkbenchError(f"y_{split} labels must be integers 0..K-1", where=where)
        ytr, yte = ytr.astype(np.int64), yte.astype(np.int64)
        if "classes" in arrays:
            classes = _declared_classes(arrays["classes"], where)
        else:
            classes = int(ytr.max()) + 1
            if classes > MAX_CLASSES:
                raise WorkbenchError(f"y_train labels go up to {classes - 1:,}: more than the {MAX_CLASSES:,} "
                                     f"classes allowed", where=where)
        for split, y in (("train", ytr), ("test", yte)):
            if y.min() < 0 or y.max() >= classes:
                raise WorkbenchError(f"y_{split} labels out of range: found {int(y.min())}..{int(y.max())}, "
                                     f"expected 0..{classes - 1}", where=where)
        names = tuple(str(i) for i in range(classes))
    if not 2 <= classes <= MAX_CLASSES:
        raise WorkbenchError(f"need 2..{MAX_CLASSES:,} classes, found {classes:,}", where=where)
    name = path.parent.name if path.name == "data.npz" else path.stem
    desc = str(arrays["description"])[:200] if "description" in arrays else f"user data from {where}"
    return Dataset(name, desc, x["train"], ytr, x["test"], yte, classes, names)


def _declared_classes(value: np.ndarray, where: str) -> int:
    """The optional ``classes`` entry of an .npz: one integer (a 0-d or one-element array)."""
    if value.size != 1 or value.dtype.kind not in "iu":
        raise WorkbenchError(f"classes must be one integer, got an array of shape {value.shape} and dtype "
                             f"{value.dtype}", where=where)
    classes = int(value.reshape(()))
    if not 2 <= classes <= MAX_CLASSES:
        raise WorkbenchError(f"classes must be 2..{MAX_CLASSES:,}, got {classes}", where=where)
    return classes


# ---------------------------------------------------------------- user data: image folder

def _load_image_folder(root: Path) -> Dataset:
    try:
        from PIL import Image, UnidentifiedImageError  # heavy: PIL
    except ImportError:  # pragma: no cover
        raise WorkbenchError("reading image folders needs Pillow (pip install pillow)", where=str(root)) from None
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise WorkbenchError(f"missing folder {split}/ (expected {root}/train/<class>/*.png and "
                                 f"{root}/test/<class>/*, or a data.npz)", where=str(root))
    class_names = sorted(p.name for p in (root / "train").iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_names) < 2:
        raise WorkbenchError(f"need at least 2 class folders in train/, found {len(class_names)}", where=str(root / "train"))
    index = {n: i for i, n in enumerate(class_names)}
    files = {}
    for split in ("train", "test"):
        items = []
        for cdir in sorted(p for p in (root / split).iterdir() if p.is_dir() and not p.name.startswith(".")):
            if cdir.name not in index:
                raise WorkbenchError(f"class folder {cdir.name!r} has no counterpart in train/", where=str(cdir))
            for f in sorted(cdir.iterdir()):
                if f.is_file() and not f.name.startswith("."):
                    if f.suffix.lower() not in IMAGE_EXTS:
                        raise WorkbenchError(f"not an image (expected {', '.join(IMAGE_EXTS)})", where=str(f))
                    items.append((f, index[cdir.name]))
        if not items:
            raise WorkbenchError("no images found in the class folders", where=str(root / split))
        files[split] = items
    size = _check_image_sizes(root, files)
    images = {}
    for split, items in files.items():
        imgs = []
        for f, _ in items:
            try:
                with _open_image(f) as im:
                    im.load()
                    imgs.append(im.copy())
            except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
                raise WorkbenchError(f"not a readable image ({one_line(exc)})", where=str(f)) from None
        images[split] = imgs
    all_imgs = images["train"] + images["test"]
    gray = all(im.mode in ("1", "L", "LA", "I", "I;16", "F") for im in all_imgs)

    def to_array(im):
        im = im.convert("L" if gray else "RGB")
        if im.size != size:
            im = im.resize(size, Image.BILINEAR)
        a = np.asarray(im, dtype=np.float32) / 255.0
        return a[None] if gray else a.transpose(2, 0, 1)

    x = {s: np.stack([to_array(im) for im in images[s]]) for s in images}
    y = {s: np.array([c for _, c in files[s]], np.int64) for s in files}
    return Dataset(root.name, f"image folder {root}", x["train"], y["train"], x["test"], y["test"],
                   len(class_names), tuple(class_names))


def _open_image(f: Path):
    """``Image.open`` without PIL's decompression-bomb *warning* (a second stderr line): the data limit
    checked from the headers is the guard here; PIL's own error for far larger images still applies."""
    from PIL import Image  # heavy: PIL

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(f)


def _check_image_sizes(root: Path, files: dict) -> tuple[int, int]:
    """The common (W, H) of the training images, after checking from the headers alone (nothing
    decoded yet) that decoding every image and its float32 copy stays within :data:`MAX_DATA_BYTES`."""
    from PIL import Image, UnidentifiedImageError  # heavy: PIL

    decoded, sizes, channels = 0, {"train": [], "test": []}, 1
    for split, items in files.items():
        for f, _ in items:
            try:
                with _open_image(f) as im:  # reads the header only
                    width, height, bands = im.width, im.height, len(im.getbands())
            except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
                raise WorkbenchError(f"not a readable image ({one_line(exc)})", where=str(f)) from None
            decoded += width * height * bands
            channels = max(channels, 1 if bands == 1 else 3)
            sizes[split].append((width, height))
            if decoded > MAX_DATA_BYTES:
                raise WorkbenchError(f"the images up to this one decode to more than {size_text(MAX_DATA_BYTES)}, "
                                     f"the limit for a data set", where=str(f))
    size = max(set(sizes["train"]), key=sizes["train"].count)  # the most common (W, H); others are resized to it
    float_bytes = 4 * (len(sizes["train"]) + len(sizes["test"])) * size[0] * size[1] * channels
    if float_bytes > MAX_DATA_BYTES:
        raise WorkbenchError(f"{len(sizes['train']) + len(sizes['test'])} images at {size[0]}x{size[1]} make "
                             f"{size_text(float_bytes)} of float32 input, over the {size_text(MAX_DATA_BYTES)} limit "
                             f"for a data set", where=str(root))
    return size


# ---------------------------------------------------------------- adapting to an input shape

def _fit_length(x: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad or crop the last axis to ``length``."""
    t = x.shape[-1]
    if t == length:
        return x
    if t > length:
        return x[..., :length]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, length - t)]
    return np.pad(x, pad)


def adapt(x: np.ndarray, input_shape) -> np.ndarray:
    """Fit a batch ``x`` (N, *sample) to an architecture's ``input_shape`` (float32, contiguous).

    * image (N, C, h, w) → (N, C, H, W): bilinear resize (antialiased when shrinking)
    * series (N, F, T) → (N, 1, frames, F) for a DS-CNN map: pad/crop time, time along H
    * series (N, C, T) → (N, C, T'): pad/crop time
    """
    input_shape = tuple(int(s) for s in input_shape)
    x = np.asarray(x, dtype=np.float32)
    sample = x.shape[1:]
    if len(sample) == 3 and len(input_shape) == 3:
        if sample[0] != input_shape[0]:
            raise WorkbenchError(f"data has {sample[0]}-channel images but the architecture expects "
                                 f"{input_shape[0]} channels (input {input_shape})")
        if sample[1:] == input_shape[1:]:
            return np.ascontiguousarray(x)
        import torch  # heavy: torch
        import torch.nn.functional as F  # heavy: torch

        shrink = input_shape[1] < sample[1] or input_shape[2] < sample[2]
        out = F.interpolate(torch.tensor(x), size=input_shape[1:], mode="bilinear",
                            align_corners=False, antialias=shrink)
        return out.numpy().astype(np.float32, copy=False)
    if len(sample) == 2 and len(input_shape) == 3:
        if input_shape[0] != 1 or input_shape[2] != sample[0]:
            raise WorkbenchError(f"data are series of {sample[0]} channels x {sample[1]} steps; the architecture "
                                 f"expects a (1, frames, {input_shape[2]}) map (input {input_shape})")
        return np.ascontiguousarray(_fit_length(x, input_shape[1]).transpose(0, 2, 1)[:, None])
    if len(sample) == 2 and len(input_shape) == 2:
        if sample[0] != input_shape[0]:
            raise WorkbenchError(f"data have {sample[0]} channels but the architecture expects "
                                 f"{input_shape[0]} (input {input_shape})")
        return np.ascontiguousarray(_fit_length(x, input_shape[1]))
    raise WorkbenchError(f"data samples of shape {sample} cannot feed an architecture with input {input_shape}")


# ---------------------------------------------------------------- data against a search space

def check_against_space(dataset: Dataset, space, where: str | None = None) -> list[str]:
    """Check that ``dataset`` can feed ``space`` before anything is created; return the adaptations.

    Called by :class:`~workbench.search.Search` before it opens the study (so a refused search leaves
    the storage untouched) and by every evaluator, trained or training-free, through it. Layout and
    channels must match the space's ``input`` (an error names the data and the field; a channel-last
    array gets the transpose that fixes it). What is adapted instead is returned as sentences the CLI
    prints: images resized to the sampled resolution, series padded/cropped to a DS-CNN's frames, a
    1-D series length taken from the data, and the classifier sized for the data's classes (a space's
    ``classes`` is its default for data-free use — profiling, LUT coverage — not a constraint).
    """
    where = where or dataset.name
    family = FAMILIES.get(space.family)
    check = _LAYOUT_CHECKS.get(family.data_layout)
    notes = check(dataset.shape, space.spec, where, _field(space), family.name) if check else []
    declared = getattr(space.spec, "classes", dataset.classes)
    if dataset.classes != declared:
        notes.append(f"the classifier gets the data's {dataset.classes} classes, not the space's "
                     f"classes: {declared}")
    return notes


def _field(space):
    """``name`` → how an error names the space's field: the user's YAML path, or the shipped space's name."""
    shipped = not space.path or places.is_shipped(space.path, places.SPACES)
    label = f"space '{space.name}'" if shipped else space.path
    return lambda name: f"{label} {name}"


def _channel_last_hint(sample: tuple, channels: int) -> str:
    if len(sample) >= 2 and sample[-1] == channels and sample[0] != channels:
        axes = "0, 3, 1, 2" if len(sample) == 3 else "0, 2, 1"
        return (f"; the data look channel-last: store x.transpose({axes}) (samples {tuple(sample)} → "
                f"{(sample[-1], *sample[:-1])})")
    return ""


def _not_a(kind: str, sample, family: str, field_text: str, where: str) -> WorkbenchError:
    return WorkbenchError(f"samples of shape {sample} are not {kind}, which the space's family {family} takes "
                          f"({field_text})", where=where)


def _check_channels(sample, channels: int, field_text: str, where: str) -> None:
    if sample[0] != channels:
        raise WorkbenchError(f"samples {sample} have {sample[0]} channels but {field_text} is {channels}"
                             f"{_channel_last_hint(sample, channels)}", where=where)


def _image_notes(sample, sizes, field_text: str) -> list[str]:
    """Images are resized to an architecture's input (the adaptation :func:`adapt` makes): say so."""
    if sample[1:] in {(h, w) for h, w in sizes}:
        return []
    shown = "/".join(f"{h}" if h == w else f"{h}x{w}" for h, w in sizes)
    return [f"{sample[1]}x{sample[2]} images are resized to each candidate's input resolution ({shown}, {field_text})"]


def _check_images(sample, spec, where, field, family) -> list[str]:
    if len(sample) != 3:
        raise _not_a("images (C, H, W)", sample, family, f"{field('input.channels')} = {spec.channels}", where)
    _check_channels(sample, spec.channels, field("input.channels"), where)
    return _image_notes(sample, [(r, r) for r in sorted(spec.resolution)], field("input.resolution"))


def _check_series(sample, spec, where, field, family) -> list[str]:
    if len(sample) != 2:
        raise _not_a("series (C, T)", sample, family, f"{field('input.channels')} = {spec.channels}", where)
    _check_channels(sample, spec.channels, field("input.channels"), where)
    if sample[1] != spec.length:
        return [f"the architectures take the data's {sample[1]} steps, not {field('input.length')} = {spec.length}"]
    return []


def _check_feature_maps(sample, spec, where, field, family) -> list[str]:
    """DS-CNN: (features, frames) series laid out as a one-channel map, or (C, H, W) images."""
    channels = getattr(spec, "channels", 1)
    if len(sample) == 3:
        _check_channels(sample, channels, field("input.channels"), where)
        return _image_notes(sample, [(spec.frames, spec.features)], field("input.frames x input.features"))
    if len(sample) != 2 or channels != 1:
        raise _not_a("feature series (features, frames)" if channels == 1 else f"{channels}-channel images",
                     sample, family, f"{field('input.features')} = {spec.features}", where)
    if sample[0] != spec.features:
        raise WorkbenchError(f"samples {sample} have {sample[0]} features (axis 1 of x) but "
                             f"{field('input.features')} is {spec.features}"
                             f"{_channel_last_hint(sample, spec.features)}", where=where)
    if sample[1] != spec.frames:
        how = "zero-padded" if sample[1] < spec.frames else "cropped"
        return [f"series of {sample[1]} frames are {how} to {field('input.frames')} = {spec.frames}"]
    return []


def _check_vectors(sample, spec, where, field, family) -> list[str]:
    """MLP: any sample shape, flattened; its size sets the first layer's inputs."""
    size = int(np.prod(sample))
    if size != spec.features:
        return [f"the first layer takes the data's {size} features (samples {sample}, flattened), not "
                f"{field('input.features')} = {spec.features}"]
    return []


# a family's data_layout → how a data set is checked against its space (``family``: its name, for errors)
_LAYOUT_CHECKS = {"images": _check_images, "series": _check_series, "feature_maps": _check_feature_maps,
                  "vectors": _check_vectors}
