"""ONNX fp32 and ONNX QDQ INT8 writers, and the onnxruntime runner.

* fp32: ``torch.onnx.export(dynamo=True, external_data=False)`` at :data:`OPSET` — one
  self-contained file (the exporter writes external data by default, which the quantisation
  pre-processing then rejects).
* INT8: onnxruntime ``quant_pre_process`` (shape inference + graph cleanup), then
  ``quantize_static`` in QDQ format, MinMax calibration on real training samples, per-channel
  symmetric weights and uint8 activations (U8S8: the pair onnxruntime's x86 kernels are built for,
  and what ``workbench profile`` times for the host-cpu LUT). Weights of 4-bit stages are stored as
  int4 (opset-21 ``DequantizeLinear`` with an int4 initializer) through ``TensorQuantOverrides``
  that also pin their scale to the workbench's grid (:func:`int4_overrides`), so the file holds the
  integer weights the search scored;
  the written file is inspected afterwards and every weight whose stored type differs from the
  policy is reported as a fallback. The graph keeps float input/output (Quantize/Dequantize at the
  ends), as onnxruntime users expect. onnxruntime has no int4 Conv kernel: int4 layers execute as
  DequantizeLinear → float Conv (correct, but slower on the host than int8 layers).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from workbench._infra.onnx_graph import OPSET, THREADS, make_session
from workbench.export.formats import Runner, WriteResult, quiet
from workbench.model.builder import export_names

INPUT, OUTPUT = "input", "logits"
_ELEM_BITS = {onnx.TensorProto.INT4: 4, onnx.TensorProto.UINT4: 4, onnx.TensorProto.INT8: 8,
              onnx.TensorProto.UINT8: 8}


def write_fp32(model: torch.nn.Module, arch, calib: np.ndarray, path: Path, layer_bits: dict) -> WriteResult:
    """Export the deployable fp32 model as one ONNX file with a batch-1 input named ``input``."""
    x = torch.from_numpy(calib[:1])
    with quiet(), export_names():
        program = torch.onnx.export(model, (x,), dynamo=True, external_data=False, opset_version=OPSET,
                                    input_names=[INPUT], output_names=[OUTPUT], verbose=False)
        program.save(str(path), external_data=False)
    onnx.checker.check_model(str(path))
    return WriteResult(notes={"opset": OPSET, "input_layout": _layout(arch)})


class _Reader:
    """Calibration feed for ``quantize_static``: one real training sample per call."""

    def __init__(self, samples: np.ndarray):
        self._it = iter(samples[i:i + 1] for i in range(len(samples)))

    def get_next(self):
        x = next(self._it, None)
        return None if x is None else {INPUT: x}


def write_int8(model: torch.nn.Module, arch, calib: np.ndarray, path: Path, layer_bits: dict) -> WriteResult:
    """QDQ INT8 (int4 weights where the policy says 4 bits), calibrated on ``calib``."""
    from onnxruntime.quantization import (  # heavy: onnxruntime
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process  # heavy: onnxruntime

    with tempfile.TemporaryDirectory(prefix="wb-onnx-") as tmp:
        fp32, pre = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx"
        write_fp32(model, arch, calib, fp32, layer_bits)
        overrides = int4_overrides(model, layer_bits, QuantType.QInt4)
        with quiet():
            quant_pre_process(str(fp32), str(pre))
            quantize_static(str(pre), str(path), _Reader(calib), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"TensorQuantOverrides": overrides} if overrides else {})
    stored = stored_weight_bits(onnx.load(str(path)))
    fallbacks = [f"{name}: policy {bits}-bit weights stored as {stored.get(name, 32)}-bit"
                 for name, bits in layer_bits.items() if bits < 32 and stored.get(name, 32) != bits]
    return WriteResult(fallbacks, {"opset": OPSET, "input_layout": _layout(arch), "activations": "uint8 per-tensor",
                                   "weights": "per-channel symmetric", "int4_weights": sum(
                                       1 for b in stored.values() if b == 4)})


def int4_overrides(model: torch.nn.Module, layer_bits: dict, qint4) -> dict:
    """``TensorQuantOverrides`` that put 4-bit weights on the grid the search scored them on.

    :func:`workbench.model.quant.fake_quant_weight` uses scale ``max|w| / 7`` (codes -7..7 of int4's
    -8..7). onnxruntime's symmetric int4 path uses the full range, scale ``2 max|w| / 15``, and
    clips the largest weight of every channel: a different, coarser model than the one the trial
    scored (on one AMD EPYC this cost 1.1 points of accuracy against the scored model). A per-channel
    range override of ``±max|w| * 15/14`` makes its scale exactly ``max|w| / 7``, so the stored
    int4 codes equal :func:`workbench.model.quant.weight_codes` of the folded weight. 8-bit weights need
    no override: onnxruntime's symmetric int8 range is -127..127, scale ``max|w| / 127``, as ours.
    """
    state = model.state_dict()
    overrides = {}
    for name, bits in layer_bits.items():
        if bits != 4:
            continue
        w = state[name].detach().numpy()
        reach = np.abs(w.reshape(len(w), -1)).max(axis=1) * 15.0 / 14.0
        channels = [{"rmin": float(-r), "rmax": float(r)} for r in reach]
        channels[0].update({"quant_type": qint4, "axis": 0, "symmetric": True})
        overrides[name] = channels
    return overrides


def stored_weight_bits(model: onnx.ModelProto) -> dict[str, int]:
    """Float weight name → bits of the integer initializer its DequantizeLinear reads (QDQ naming)."""
    inits = {i.name: i.data_type for i in model.graph.initializer}
    out = {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits and node.output[0].endswith("_DequantizeLinear_Output"):
            name = node.output[0][: -len("_DequantizeLinear_Output")]
            out[name] = _ELEM_BITS.get(inits[node.input[0]], 32)
    return out


def _layout(arch) -> str:
    return "NCHW" if len(arch.input_shape) == 3 else "NCW"


class OnnxRunner(Runner):
    """onnxruntime CPU session under the settings the host-cpu LUT was measured with (single thread)."""

    def __init__(self, path):
        self.session = make_session(path)
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self._in, self._out = inp.name, out.name
        self.runtime = f"onnxruntime {ort.__version__} CPUExecutionProvider, {THREADS} thread"
        self.interface = {"input": {"name": inp.name, "shape": list(inp.shape), "dtype": inp.type},
                          "output": {"name": out.name, "shape": list(out.shape), "dtype": out.type}}

    def prepare(self, x: np.ndarray):
        return {self._in: np.ascontiguousarray(x, dtype=np.float32)}

    def run_once(self, prepared) -> None:
        self.session.run([self._out], prepared)

    def predict(self, x: np.ndarray) -> np.ndarray:
        run = self.session.run
        return np.concatenate([run([self._out], self.prepare(x[i:i + 1]))[0] for i in range(len(x))])
