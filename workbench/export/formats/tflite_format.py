"""TFLite fp32 and full-INT8 writers (litert-torch, no TensorFlow), and the LiteRT runner.

* Layout: TFLite kernels are channel-last, and so are the tensors MCU applications hand to TFLite
  Micro, so the model is wrapped with ``litert_torch.to_channel_last_io`` — input ``(1, H, W, C)``
  for images and ``(1, T, C)`` for series; logits ``(1, classes)`` are unchanged.
* fp32: ``litert_torch.convert`` of the deployable model (BatchNorm already folded).
* INT8: PT2E post-training quantisation with litert-torch's ``PT2EQuantizer`` (per-channel
  symmetric int8 weights, int8 per-tensor activations, histogram observers) calibrated on real
  training samples; the converter then emits a fully integer graph whose input and output tensors
  are int8 themselves (scale/zero point in the tensor's quantisation parameters), as TFLite Micro
  applications want. Weights are int8 for every layer: TFLite builtin kernels store int8 filters,
  so a 4-bit stage of the policy is stored as int8 and reported as a fallback by the caller. Any op
  that the quantiser leaves in float (a ``DEQUANTIZE`` → float op → ``QUANTIZE`` island) is listed
  in the file's fallbacks rather than passed off as integer.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from workbench._infra.process_settings import environment
from workbench.export.formats import Runner, WriteResult, quiet
from workbench.model.builder import export_names

NO_PROGRESS = {"LITERT_TORCH_SHOW_PROGRESS": "n"}  # the converter's progress tree is noise in a CLI


@contextmanager
def _converting():
    """The converter silenced (:func:`quiet`) and its progress tree off, and the model classes under their
    stable export names (:func:`workbench.model.builder.export_names`), for this block only."""
    with environment(NO_PROGRESS), quiet(), export_names():
        yield


def _channel_last(x: np.ndarray) -> np.ndarray:
    """(N, C, ...) → (N, ..., C)."""
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


def _wrapped(model: torch.nn.Module):
    import litert_torch  # optional: litert_torch (the export extra)

    arch = getattr(model, "arch", None)
    if arch is not None and len(arch.input_shape) < 2:
        return model.eval()  # a vector input (MLP) has no channel axis to move
    return litert_torch.to_channel_last_io(model, args=[0]).eval()


def _layout(arch) -> str:
    return {3: "NHWC", 2: "NWC"}.get(len(arch.input_shape), "NC")


def write_fp32(model: torch.nn.Module, arch, calib: np.ndarray, path: Path, layer_bits: dict) -> WriteResult:
    sample = torch.from_numpy(_channel_last(calib[:1]))
    with _converting():
        import litert_torch  # optional: litert_torch (the export extra); its import (torchao) logs; inside quiet()

        edge = litert_torch.convert(_wrapped(model), (sample,))
        edge.export(str(path))
    return WriteResult(notes={"input_layout": _layout(arch)})


def write_int8(model: torch.nn.Module, arch, calib: np.ndarray, path: Path, layer_bits: dict) -> WriteResult:
    """PT2E full-INT8 with int8 I/O, calibrated on ``calib`` (channel-first samples)."""
    samples = torch.from_numpy(_channel_last(calib))
    with _converting():
        import litert_torch  # optional: litert_torch (the export extra)
        from litert_torch.quantize.pt2e_quantizer import (  # optional: litert_torch (the export extra)
            PT2EQuantizer,
            get_symmetric_quantization_config,
        )
        from litert_torch.quantize.quant_config import QuantConfig  # optional: litert_torch (the export extra)
        from torchao.quantization.pt2e import move_exported_model_to_eval  # optional: torchao (the export extra)
        from torchao.quantization.pt2e.quantize_pt2e import (  # optional: torchao (the export extra)
            convert_pt2e,
            prepare_pt2e,
        )

        quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        graph = torch.export.export(_wrapped(model), (samples[:1],)).module()
        prepared = prepare_pt2e(graph, quantizer)
        _observe_chained_adds(prepared)
        with torch.no_grad():
            for i in range(len(samples)):  # the exported graph has a static batch of 1
                prepared(samples[i:i + 1])
        converted = move_exported_model_to_eval(convert_pt2e(prepared, fold_quantize=False))
        edge = litert_torch.convert(converted, (samples[:1],), quant_config=QuantConfig(pt2e_quantizer=quantizer))
        edge.export(str(path))
    floats = float_ops(path)
    return WriteResult([f"{op} runs in float32 (quantiser left it unquantised)" for op in floats],
                       {"input_layout": _layout(arch), "weights": "int8 per-channel symmetric",
                        "activations": "int8 per-tensor affine"})


def _observe_chained_adds(gm: torch.fx.GraphModule) -> int:
    """Route an add that reads another add's output through that output's observer.

    With consecutive residual blocks (``y = x + f(x)`` feeding ``z = y + g(y)``) the prepared
    graph lets the second add read the first one's raw output, so the converter keeps both adds in
    float between DEQUANTIZE/QUANTIZE. Reading the observed tensor instead (what every other
    consumer does) makes them int8 ADDs. Returns the number of rewired inputs.
    """
    add = torch.ops.aten.add.Tensor
    fixed = 0
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target != add:
            continue
        for arg in list(node.args):
            if not (isinstance(arg, torch.fx.Node) and arg.op == "call_function" and arg.target == add):
                continue
            observers = [u for u in arg.users if u.op == "call_module" and "activation_post_process" in u.name]
            if observers:
                node.replace_input_with(arg, observers[0])
                fixed += 1
    if fixed:
        gm.recompile()
    return fixed


def interpreter(path, resolver: str = "AUTO"):
    """A LiteRT interpreter on one thread with one of its kernel sets (``OpResolverType`` name):
    ``AUTO`` (default XNNPACK delegate, what verification runs), ``BUILTIN_WITHOUT_DEFAULT_DELEGATES``
    (the file's own op list, what op inspection needs), ``BUILTIN_REF`` (reference kernels)."""
    from ai_edge_litert.interpreter import (  # optional: ai_edge_litert (the export extra)
        Interpreter,
        OpResolverType,
    )

    with quiet():
        it = Interpreter(model_path=str(path), num_threads=1,
                         experimental_op_resolver_type=getattr(OpResolverType, resolver))
        it.allocate_tensors()
    return it


_QUANT_PLUMBING = {"QUANTIZE", "DEQUANTIZE"}


def float_ops(path) -> list[str]:
    """Compute ops of a TFLite file that read or write float32 tensors (``OPNAME#index``)."""
    it = interpreter(path, "BUILTIN_WITHOUT_DEFAULT_DELEGATES")
    dtypes = {t["index"]: t["dtype"] for t in it.get_tensor_details()}
    out = []
    for op in it._get_ops_details():
        if op["op_name"] in _QUANT_PLUMBING:
            continue
        tensors = [i for i in list(op["inputs"]) + list(op["outputs"]) if i >= 0]
        if any(dtypes.get(i) == np.float32 for i in tensors):
            out.append(f"{op['op_name']}#{op['index']}")
    return out


class TfliteRunner(Runner):
    """LiteRT interpreter (default XNNPACK delegate), single thread; quantises int8 inputs and
    dequantises int8 outputs with the tensors' own parameters."""

    def __init__(self, path):
        import ai_edge_litert  # optional: ai_edge_litert (the export extra)

        self.it = interpreter(path)
        self._in = self.it.get_input_details()[0]
        self._out = self.it.get_output_details()[0]
        version = getattr(ai_edge_litert, "__version__", "")
        self.runtime = f"LiteRT {version} interpreter (default delegates), 1 thread".replace("  ", " ")
        self.interface = {"input": _describe(self._in), "output": _describe(self._out)}

    def prepare(self, x: np.ndarray) -> np.ndarray:
        x = _channel_last(np.asarray(x, dtype=np.float32))
        if self._in["dtype"] == np.float32:
            return x
        scale, zero = self._in["quantization"]
        info = np.iinfo(self._in["dtype"])
        return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(self._in["dtype"])

    def run_once(self, prepared) -> None:
        self.it.set_tensor(self._in["index"], prepared)
        self.it.invoke()

    def predict(self, x: np.ndarray) -> np.ndarray:
        rows = []
        for i in range(len(x)):  # static batch of 1
            self.run_once(self.prepare(x[i:i + 1]))
            rows.append(self._output())
        return np.concatenate(rows)

    def raw_output(self) -> np.ndarray:
        """The output tensor of the last run as the file stores it (int8 for full-INT8 files)."""
        return self.it.get_tensor(self._out["index"]).copy()

    def _output(self) -> np.ndarray:
        y = self.it.get_tensor(self._out["index"])
        if self._out["dtype"] == np.float32:
            return y.copy()
        scale, zero = self._out["quantization"]
        return (y.astype(np.float32) - zero) * scale


def _describe(detail: dict) -> dict:
    scale, zero = detail["quantization"]
    d = {"name": detail["name"], "shape": [int(s) for s in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name}
    if detail["dtype"] != np.float32:
        d["quantization"] = {"scale": float(scale), "zero_point": int(zero)}
    return d
