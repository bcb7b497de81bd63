"""INT8 versions of the profiler's timing graphs (QDQ, uint8 in and out).

int8 graphs are QDQ graphs from onnxruntime's ``quantize_static`` (per-channel int8 weights, uint8
activations — the U8S8 pair onnxruntime's x86 kernels are built for, and what the ``onnx-int8``
export writes). Calibration data are a few seeded random inputs: for timing, ranges only need to be
plausible. The leading ``QuantizeLinear`` and trailing ``DequantizeLinear`` are removed so the graph
takes and returns uint8 tensors: inside a deployed int8 network an op reads and writes quantised
activations, so timing the float↔int conversions per op would count them once per op instead of
once per model.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto

from workbench._infra.onnx_graph import SEED
from workbench._infra.process_settings import logger_levels


class _RandomReader:
    """Calibration data: a few seeded standard-normal inputs."""

    def __init__(self, name: str, shape: Sequence[int], n: int, seed: int):
        rng = np.random.default_rng(seed)
        self._data = iter([{name: rng.standard_normal(tuple(shape)).astype(np.float32)} for _ in range(n)])

    def get_next(self):
        return next(self._data, None)


def quantize_int8(model: onnx.ModelProto, n_calib: int = 2, seed: int = SEED, int8_io: bool = True) -> onnx.ModelProto:
    """QDQ int8 version of an fp32 model via ``quantize_static`` (MinMax, per-channel int8 weights, uint8
    activations). ``int8_io`` strips the input Quantize / output Dequantize (see module docstring)."""
    from onnxruntime.quantization import (  # heavy: onnxruntime
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    inp = model.graph.input[0]
    shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    # the root logger at ERROR silences onnxruntime's per-call "consider pre-processing" advice
    with logger_levels({"": logging.ERROR}), tempfile.TemporaryDirectory(prefix="wb-q-") as tmp:
        out = Path(tmp) / "q.onnx"
        quantize_static(model, out, _RandomReader(inp.name, shape, n_calib, seed), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        # pools alone in a graph would otherwise stay float (no quantised producer)
                        extra_options={"ForceQuantizeNoInputCheck": True})
        q = onnx.load(str(out))
    return strip_io_qdq(q) if int8_io else q


def strip_io_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """Make the graph read/write uint8: drop the QuantizeLinear on the input and DequantizeLinear on the output."""
    g = model.graph
    x, y = g.input[0].name, g.output[0].name
    q_in = next((n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] == x), None)
    dq_out = next((n for n in g.node if n.op_type == "DequantizeLinear" and n.output[0] == y), None)
    if q_in is None or dq_out is None:
        return model
    consumers = sum(x in n.input for n in g.node)
    if consumers != 1:
        return model  # the float input feeds something else too: keep the float interface
    qtype = _init_dtype(g, q_in.input[2]) if len(q_in.input) > 2 else TensorProto.UINT8
    g.input[0].name = q_in.output[0]
    g.input[0].type.tensor_type.elem_type = qtype
    g.output[0].name = dq_out.input[0]
    g.output[0].type.tensor_type.elem_type = qtype
    g.node.remove(q_in)
    g.node.remove(dq_out)
    return model


def _init_dtype(g, name: str) -> int:
    return next((init.data_type for init in g.initializer if init.name == name), TensorProto.UINT8)
