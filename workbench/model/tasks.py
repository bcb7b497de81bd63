"""Shifted domains for simulated on-device adaptation: the data a deployed model meets after it ships.

Why: on-device fine-tuning is worth its memory only when the device's data differs from the training data —
a sensor worn another way, another microphone, other handwriting. ``workbench adapt --task TASK`` starts from a
trained trial and fine-tunes it on one of these shifted domains; each search space's built-in data set has at
least one task that ships with the project, so the adaptation numbers can be reproduced without downloading
anything. A user's own target-domain recordings can stand in for a shipped task (``--task PATH``).

Every shipped task is a fixed, seeded transformation of a built-in data set:

* the *adaptation* samples (``x_train``) are the shifted source **train** split — what the device collects
  and labels after deployment;
* the *evaluation* samples (``x_test``) are the shifted source **test** split — never seen in training, before
  or after the shift.

Classes, class names and sample shapes are the source's. The same call returns bit-identical arrays: the shift's
parameters are constants, and the per-sample noise (where a shift has any) comes from a generator seeded by the
task's seed and the split. The returned arrays are read-only (shared through a cache, like the built-ins).

Shipped shifts:

* ``digits-rotated`` (``digits``): every 8x8 image rotated by 30 degrees (bilinear, corners filled with the
  background); ``digits-rotated-inverted``: the same, then the contrast inverted (``1 - x``: dark strokes on a
  light ground).
* ``motions-rotated`` (``basic-motions-1s``): the watch worn differently. The accelerometer's and the
  gyroscope's axes (aeon's BasicMotions channels 0-2 and 3-5: the data set's values show accelerations
  in the first three channels — means up to 4.8 m/s² for running — and zero-mean angular rates in the last
  three) turn by one fixed 3-D rotation ``R``. The rotation acts on the raw sensor values: the standardised
  windows are mapped back to raw units with the source's own training statistics ``m, s``, rotated, and
  standardised again with the same ``m, s`` (the device's preprocessing does not change when the watch moves):
  ``x' = (R (s x + m) - m) / s`` per time step, for the accelerometer and the gyroscope triple alike. A
  rotation keeps each sample's vector norm, per sensor, in raw units.
* ``vowels-channel-noise`` (``japanese-vowels``): another microphone and a noisier room, in the LPC-cepstrum
  domain the data set is given in. The model, per coefficient ``k`` and frame ``t`` of a real (unpadded) frame,
  in units of the coefficient's training standard deviation:
  ``c'[k, t] = g[k] c[k, t] + b[k] + n[k, t]``. A linear channel (the microphone's frequency response)
  convolves the signal, which is a constant added to every cepstral coefficient (``b``); additive background
  noise fills the spectral valleys and pulls the cepstrum towards zero, modelled as a per-coefficient gain
  ``g < 1``; what the noise leaves frame to frame is ``n`` (Gaussian, independent). ``g`` and ``b`` are fixed
  (drawn once from the task's seed); padded frames stay zero (the device pads its own input).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from workbench._infra.errors import WorkbenchError
from workbench._infra.registry import Registry
from workbench.model.data import Dataset, load_dataset

FLAG = "--task"


@dataclass(frozen=True)
class ShiftTask:
    """A shipped target domain: ``shift(x, rng)`` returns the shifted copy of a split ``x`` of ``dataset``
    (``rng`` seeded by ``seed`` and the split; shifts without noise ignore it)."""
    name: str
    help: str
    dataset: str
    shift: Callable[[np.ndarray, np.random.Generator], np.ndarray]
    seed: int = 0


@dataclass(frozen=True)
class TaskData:
    """A loaded task: ``target`` is the shifted domain (adaptation samples in ``x_train``, held-out shifted
    samples in ``x_test``), with the source data set's classes and class names."""
    name: str
    description: str
    target: Dataset


TASKS: Registry[ShiftTask] = Registry("task", FLAG)


# ---------------------------------------------------------------- the shifts

@dataclass(frozen=True)
class RotateContrast:
    """Images (N, C, H, W) in [0, 1]: rotated by ``degrees`` about their centre (bilinear; what comes in from
    outside the frame is background 0), then mapped through ``offset + gain * x`` (``gain=-1, offset=1``
    inverts the contrast; ``0 < gain < 1`` washes it out)."""
    degrees: float
    gain: float = -1.0
    offset: float = 1.0

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from scipy.ndimage import rotate  # heavy: scipy

        out = rotate(np.asarray(x, np.float64), self.degrees, axes=(-1, -2), reshape=False, order=1,
                     mode="constant", cval=0.0)
        return (self.offset + self.gain * np.clip(out, 0.0, 1.0)).astype(np.float32)


def rotation_matrix(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    """The 3x3 rotation by ``degrees`` about ``axis`` (Rodrigues' formula)."""
    k = np.asarray(axis, np.float64)
    k = k / np.linalg.norm(k)
    a = math.radians(degrees)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(a) * cross + (1 - math.cos(a)) * cross @ cross


@lru_cache(maxsize=1)  # one pair of small vectors: BasicMotions' raw training statistics
def motion_statistics() -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per channel, shape (6,), of aeon's raw BasicMotions training recordings — the statistics
    ``workbench.model.data`` standardises ``basic-motions`` (and so ``basic-motions-1s``) with."""
    from aeon.datasets import load_basic_motions  # heavy: aeon

    raw, _ = load_basic_motions(split="train")
    raw = np.asarray(raw, np.float64)
    return raw.mean(axis=(0, 2)), raw.std(axis=(0, 2)) + 1e-6


@dataclass(frozen=True)
class RotateSensors:
    """Series (N, 6, T) standardised per channel: accelerometer (0-2) and gyroscope (3-5) turned by the same
    rotation, in raw units (see the module docstring)."""
    axis: tuple[float, float, float]
    degrees: float

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        mean, std = motion_statistics()
        raw = np.asarray(x, np.float64) * std[:, None] + mean[:, None]
        r = rotation_matrix(self.axis, self.degrees)
        turned = np.concatenate([np.einsum("ij,njt->nit", r, raw[:, s:s + 3]) for s in (0, 3)], axis=1)
        return ((turned - mean[:, None]) / std[:, None]).astype(np.float32)


@dataclass(frozen=True)
class CepstralChannel:
    """Series (N, K, T) of standardised cepstral coefficients: ``g c + b + n`` on real frames (module
    docstring). ``g[k]`` is drawn uniformly from ``gain``, ``b[k]`` normal with std ``offset``, both from
    ``seed``; ``n`` normal with std ``noise`` from the split's generator."""
    gain: tuple[float, float]
    offset: float
    noise: float
    seed: int

    def channel(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(g, b) for ``k`` coefficients: fixed by ``seed``, the same for both splits."""
        rng = np.random.default_rng(self.seed)
        return rng.uniform(*self.gain, size=k), rng.normal(0.0, self.offset, size=k)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.asarray(x, np.float64)
        g, b = self.channel(x.shape[1])
        real = np.any(x != 0, axis=1, keepdims=True)  # (N, 1, T): padding frames are all-zero
        noisy = g[:, None] * x + b[:, None] + rng.normal(0.0, self.noise, size=x.shape)
        return np.where(real, noisy, 0.0).astype(np.float32)


# Strengths chosen on three random architectures per space, trained as the quickstart trains (3 epochs),
# BatchNorm folded, then fine-tuned in float (SGD with momentum 0.9, 300 steps of 32, the better of two learning
# rates); the table is in the message of the commit that set them. Each drop is 30-60 points (digits
# inverted: 88); the biases of the last 3 layers win back 13-30 of them, except on the inverted digits, whose
# first-layer features change sign: there the last 3 layers' biases win back 2-8 points, every layer's biases
# 55-70.
TASKS.register(ShiftTask(
    "digits-rotated",
    "digits rotated by 30 degrees, as if the camera were mounted at a tilt",
    "digits", RotateContrast(30.0, gain=1.0, offset=0.0)))
TASKS.register(ShiftTask(
    "digits-rotated-inverted",
    "digits rotated by 30 degrees and contrast-inverted (dark strokes on a light ground)",
    "digits", RotateContrast(30.0, gain=-1.0, offset=1.0)))
TASKS.register(ShiftTask(
    "motions-rotated",
    "BasicMotions with accelerometer and gyroscope axes turned 90 degrees, as if the watch were worn differently",
    "basic-motions-1s", RotateSensors((1.0, 1.0, 0.0), 90.0)))
TASKS.register(ShiftTask(
    "vowels-channel-noise",
    "JapaneseVowels through another microphone in a noisier room: cepstral offset, gain and frame noise",
    "japanese-vowels", CepstralChannel(gain=(0.6, 0.9), offset=2.0, noise=0.2, seed=23), seed=23))


# ---------------------------------------------------------------- loading

def tasks_for(dataset_name: str) -> list[ShiftTask]:
    """The shipped tasks that shift ``dataset_name`` (a built-in name; none for user data sets)."""
    return [t for t in TASKS.entries() if t.dataset == dataset_name]


def _names(tasks: list[ShiftTask]) -> str:
    return ", ".join(t.name for t in tasks) or "none; give a path to target-domain data"


@lru_cache(maxsize=8)  # one entry per shipped task (a few MB each), arrays read-only
def _shifted(name: str) -> TaskData:
    task = TASKS.get(name)
    source = load_dataset(task.dataset)
    x_train, x_test = (task.shift(x, np.random.default_rng([task.seed, split]))
                       for split, x in enumerate((source.x_train, source.x_test)))
    target = Dataset(task.name, f"{task.help} (from {source.name}: {source.description})", x_train,
                     source.y_train, x_test, source.y_test, source.classes, source.class_names, source.groups)
    for a in (target.x_train, target.x_test):
        a.flags.writeable = False
    return TaskData(task.name, task.help, target)


def _user_task(path: str, source: Dataset) -> TaskData:
    """A user's target-domain data, used as it is once it fits the source's classes and sample layout."""
    try:
        data = load_dataset(path)
    except WorkbenchError as e:  # "--task PATH: what is wrong", the path said once
        said = str(e).removeprefix(f"{e.where}: ") if e.where == path else str(e)
        raise WorkbenchError(f"{FLAG} {path}: {said}") from None
    default_names = tuple(str(i) for i in range(data.classes))
    if data.classes != source.classes or (data.class_names != default_names
                                          and data.class_names != source.class_names):
        raise WorkbenchError(f"{FLAG} {path}: has classes {list(data.class_names)[:12]} but the study's data set "
                             f"{source.name!r} has {list(source.class_names)[:12]}")
    if len(data.shape) != len(source.shape) or data.shape[0] != source.shape[0]:
        raise WorkbenchError(f"{FLAG} {path}: samples have shape {data.shape} but {source.name!r} samples "
                             f"{source.shape} (need the same layout and channel count)")
    return TaskData(data.name, data.description, data)


def load_task(name_or_path: str | Path, dataset_name: str) -> TaskData:
    """The target domain ``name_or_path`` for a study trained on ``dataset_name``: a shipped task's name, or a
    path to data :func:`~workbench.model.data.load_dataset` reads (used as given)."""
    key = str(name_or_path)
    if key in TASKS:
        task = TASKS.get(key)
        if task.dataset != dataset_name:
            raise WorkbenchError(f"{FLAG} {key}: shifts data set {task.dataset!r} but the study's data set is "
                                 f"{dataset_name!r} (tasks for it: {_names(tasks_for(dataset_name))})")
        return _shifted(key)
    if Path(key).suffix or "/" in key or "\\" in key or Path(key).exists():
        return _user_task(key, load_dataset(dataset_name))
    raise WorkbenchError(f"{FLAG}: unknown task {key!r} (choose from {', '.join(TASKS)}; "
                         f"for {dataset_name!r}: {_names(tasks_for(dataset_name))}; or a path to target data)")
