"""Per-format writers and runners behind :mod:`workbench.export`.

Each format is a :class:`Format`: a ``write`` function that turns the *deployable* fp32 PyTorch
model (fake quant stripped, BatchNorm folded — see :func:`workbench.export.deployable_model`) into
one file, and an ``open`` function that loads that file in its own runtime and returns a
:class:`Runner`. The runner speaks the workbench's layout (channel-first float batches in, float
logits out) whatever the file's interface is (NHWC, int8), so verification code is format-blind.

Formats are registered in :data:`FORMATS`; the modules that need heavy packages (onnxscript,
litert-torch) are only imported when a format of theirs is written or opened.
"""
from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
import io
import logging
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import WorkbenchError
from ..ops import kinds_for_format


_NOISY_LOGGERS = ("", "torch", "torchao", "torch.onnx", "torch.export", "absl")


@contextlib.contextmanager
def quiet():
    """Silence the converters while they run: Python loggers and warnings, stdout, and file
    descriptor 2, where the C++ parts (MLIR/TFLite converter, XNNPACK) log directly. The CLI's
    own lines stay readable; errors still surface as exceptions."""
    loggers = [logging.getLogger(n) for n in _NOISY_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    saved_fd = None
    sink = tempfile.TemporaryFile()
    try:
        try:
            import sys

            sys.stderr.flush()
            saved_fd = os.dup(2)
            os.dup2(sink.fileno(), 2)
        except (OSError, ValueError):  # no real fd 2 (embedded interpreters): skip the C++ silencing
            saved_fd = None
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        if saved_fd is not None:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
        sink.close()
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@dataclass
class WriteResult:
    """What a writer reports besides the file: documented deviations and facts for the manifest."""

    fallbacks: list[str] = field(default_factory=list)
    notes: dict = field(default_factory=dict)


class Runner(ABC):
    """A loaded file: ``predict`` one channel-first float sample batch → float logits; ``run_once``
    is the bare inference call that timing measures (input already prepared)."""

    runtime: str = ""
    interface: dict = {}

    @abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Implemented by each format's runner."""

    @abstractmethod
    def prepare(self, x: np.ndarray):
        """Implemented by each format's runner."""

    @abstractmethod
    def run_once(self, prepared) -> None:
        """Implemented by each format's runner."""

    def latency_ms(self, x: np.ndarray, warmup: int, repeats: int) -> float:
        """Median single-inference wall time (ms), input conversion excluded: median because a
        shared machine's slow tail is interference, not the model."""
        prepared = self.prepare(x)
        for _ in range(warmup):
            self.run_once(prepared)
        times = np.empty(repeats)
        clock = time.perf_counter
        for i in range(repeats):
            t0 = clock()
            self.run_once(prepared)
            times[i] = clock() - t0
        return float(np.median(times) * 1e3)


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str
    quantized: bool
    family: str  # "onnx" | "tflite"
    description: str
    write: Callable[..., WriteResult]
    open: Callable[[str], Runner]
    op_kinds: frozenset[str]  # op kinds the format's writer handles
    weight_bits: frozenset[int] = frozenset({8})  # integer weight widths stored as such (quantised formats)
    weight_fallback: tuple[tuple[int, int], ...] = ()  # (policy bits, stored bits) documented substitutions
    requires: tuple[str, ...] = ()  # importable modules the writer/runner need (the `export` extras)
    tflm: bool = False  # full-INT8 TFLite: also run in TFLite Micro and checked against workbench.memory
    finish: Callable[..., dict] = lambda path, arch, entry: {}  # extra outputs after verification → entry fields


def _onnx(name):
    from . import onnx_format

    return getattr(onnx_format, name)


def _tflite(name):
    from . import tflite_format

    return getattr(tflite_format, name)


ONNX_REQUIRES = ("onnxscript",)  # torch.onnx's dynamo exporter; onnx and onnxruntime are core dependencies
TFLITE_REQUIRES = ("litert_torch", "ai_edge_litert")

FORMATS: dict[str, Format] = {
    "onnx": Format("onnx", ".onnx", False, "onnx", "ONNX fp32 (torch.onnx dynamo exporter, one file)",
                   lambda *a, **k: _onnx("write_fp32")(*a, **k), lambda p: _onnx("OnnxRunner")(p),
                   kinds_for_format("onnx"), requires=ONNX_REQUIRES),
    "onnx-int8": Format("onnx-int8", ".int8.onnx", True, "onnx",
                        "ONNX QDQ: per-channel int8 (int4 for 4-bit stages) weights, uint8 activations",
                        lambda *a, **k: _onnx("write_int8")(*a, **k), lambda p: _onnx("OnnxRunner")(p),
                        kinds_for_format("onnx-int8"), frozenset({4, 8}), requires=ONNX_REQUIRES),
    "tflite": Format("tflite", ".tflite", False, "tflite", "TFLite fp32 (litert-torch), channel-last I/O",
                     lambda *a, **k: _tflite("write_fp32")(*a, **k), lambda p: _tflite("TfliteRunner")(p),
                     kinds_for_format("tflite"), requires=TFLITE_REQUIRES),
    "tflite-int8": Format("tflite-int8", ".int8.tflite", True, "tflite",
                          "TFLite full-INT8 (PT2E, per-channel int8 weights, int8 input and output)",
                          lambda *a, **k: _tflite("write_int8")(*a, **k), lambda p: _tflite("TfliteRunner")(p),
                          kinds_for_format("tflite-int8"), frozenset({8}), ((4, 8),),
                          requires=TFLITE_REQUIRES + ("torchao",), tflm=True),
    "tflm": Format("tflm", ".tflm.tflite", True, "tflite",
                   "TFLite Micro bundle: the full-INT8 .tflite as an aligned C array, measured arena size, "
                   "op resolver, inference example (folder <name>_tflm/)",
                   lambda *a, **k: _tflite("write_int8")(*a, **k), lambda p: _tflite("TfliteRunner")(p),
                   kinds_for_format("tflite-int8"), frozenset({8}), ((4, 8),),
                   requires=TFLITE_REQUIRES + ("torchao", "tflite_micro"), tflm=True,
                   finish=lambda *a: _bundle()(*a)),
}


def _bundle():
    from .tflm_bundle import write_bundle

    return write_bundle


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise WorkbenchError(f"--format: unknown format {name!r} (choose from {', '.join(FORMATS)})") from None
