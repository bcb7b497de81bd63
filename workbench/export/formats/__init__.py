"""Per-format writers and runners behind :mod:`workbench.export.trial`.

Each format is a :class:`Format`: a ``write`` function that turns the *deployable* fp32 PyTorch
model (fake quant stripped, BatchNorm folded — see :func:`workbench.model.quant.deployable_model`) into
one file, and an ``open`` function that loads that file in its own runtime and returns a
:class:`Runner`. The runner speaks the workbench's layout (channel-first float batches in, float
logits out) whatever the file's interface is (NHWC, int8), so verification code is format-blind.

Formats are registered in :data:`FORMATS` (the one registry style, :mod:`workbench._infra.registry`); the
modules that need heavy packages (onnxscript, litert-torch) are only imported when a format of theirs is
written or opened.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from workbench._infra.process_settings import quiet as _quiet_process
from workbench._infra.registry import Registry
from workbench._infra.timing import Timing, time_calls
from workbench.model.ops import kinds_for_format

_NOISY_LOGGERS = ("", "torch", "torchao", "torch.onnx", "torch.export", "absl")


def quiet():
    """Silence the converters while they run (their loggers, Python warnings, stdout and file
    descriptor 2, where the C++ parts log): the CLI's own lines stay readable; errors still surface
    as exceptions. Scoped and thread-safe: :func:`workbench._infra.process_settings.quiet`."""
    return _quiet_process(_NOISY_LOGGERS)


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

    def latency(self, x: np.ndarray, warmup: int, repeats: int) -> Timing:
        """Single-inference wall time of one sample, input conversion excluded, with the statistic
        every workbench timing uses (:mod:`workbench._infra.timing`)."""
        prepared = self.prepare(x)
        return time_calls(lambda: self.run_once(prepared), warmup, repeats)


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str
    quantized: bool
    family: str  # "onnx" | "tflite"
    help: str
    write: Callable[..., WriteResult]
    open: Callable[[str], Runner]
    op_kinds: frozenset[str]  # op kinds the format's writer handles
    weight_bits: frozenset[int] = frozenset({8})  # integer weight widths stored as such (quantised formats)
    weight_fallback: tuple[tuple[int, int], ...] = ()  # (policy bits, stored bits) documented substitutions
    requires: tuple[str, ...] = ()  # importable modules the writer/runner need (the `export` extras)
    tflm: bool = False  # full-INT8 TFLite: also run in TFLite Micro and checked against workbench.hardware.memory
    finish: Callable[..., dict] = lambda path, arch, entry, profile: {}  # extra outputs after verification → entry fields
    default: bool = True  # in --format's default set (False: asked for by name)


def _lazy(module: str, name: str) -> Callable:
    """``name`` of this package's ``module``, imported on the first call: the heavy converters
    (onnxscript, litert-torch) load only when a format of theirs is written or opened."""
    def call(*args, **kwargs):
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)(*args, **kwargs)

    return call


ONNX_REQUIRES = ("onnxscript",)  # torch.onnx's dynamo exporter; onnx and onnxruntime are core dependencies
TFLITE_REQUIRES = ("litert_torch", "ai_edge_litert")
_ONNX_RUNNER, _TFLITE_RUNNER = _lazy("onnx_format", "OnnxRunner"), _lazy("tflite_format", "TfliteRunner")
_TFLITE_INT8 = _lazy("tflite_format", "write_int8")

FORMATS: Registry[Format] = Registry("format", "--format")
FORMATS.register(Format("onnx", ".onnx", False, "onnx", "ONNX fp32 (torch.onnx dynamo exporter, one file)",
                        _lazy("onnx_format", "write_fp32"), _ONNX_RUNNER, kinds_for_format("onnx"),
                        requires=ONNX_REQUIRES))
FORMATS.register(Format("onnx-int8", ".int8.onnx", True, "onnx",
                        "ONNX QDQ: per-channel int8 (int4 for 4-bit stages) weights, uint8 activations",
                        _lazy("onnx_format", "write_int8"), _ONNX_RUNNER, kinds_for_format("onnx-int8"),
                        frozenset({4, 8}), requires=ONNX_REQUIRES))
FORMATS.register(Format("tflite", ".tflite", False, "tflite", "TFLite fp32 (litert-torch), channel-last I/O",
                        _lazy("tflite_format", "write_fp32"), _TFLITE_RUNNER, kinds_for_format("tflite"),
                        requires=TFLITE_REQUIRES))
FORMATS.register(Format("tflite-int8", ".int8.tflite", True, "tflite",
                        "TFLite full-INT8 (PT2E, per-channel int8 weights, int8 input and output)",
                        _TFLITE_INT8, _TFLITE_RUNNER, kinds_for_format("tflite-int8"), frozenset({8}), ((4, 8),),
                        requires=TFLITE_REQUIRES + ("torchao",), tflm=True))
FORMATS.register(Format("tflm", ".tflm.tflite", True, "tflite",
                        "TFLite Micro bundle: the full-INT8 .tflite as an aligned C array, measured arena size, "
                        "op resolver, inference example (folder <name>_tflm/)",
                        _TFLITE_INT8, _TFLITE_RUNNER, kinds_for_format("tflite-int8"), frozenset({8}), ((4, 8),),
                        requires=TFLITE_REQUIRES + ("torchao", "tflite_micro"), tflm=True,
                        finish=_lazy("tflm_bundle", "write_bundle"), default=False))

FORMAT_NAMES = tuple(fmt.name for fmt in FORMATS.where(default=True))  # the MCU bundle is asked for by name
