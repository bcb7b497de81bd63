"""Fused ops and whole architectures lowered to the ONNX graphs the profiler times.

Each LUT op becomes a one-op ONNX graph that mirrors the deployed graph (BatchNorm folded into
Conv+bias, ReLU6 = ``Clip(0, 6)``, 'same' padding); the nodes of each op kind come from its spec
(:meth:`workbench.model.ops.OpSpec.onnx`). The same builders chain a whole architecture into one graph
(:func:`arch_graph`), so the LUT's sum can be checked against an end-to-end measurement with
identical session settings (``benchmarks/bench_fidelity.py``).

Graphs are written with ``onnx.helper`` directly (no ``torch.onnx.export``): building one takes
about a millisecond, which matters when the LUT has ~2,000 entries. Weights are seeded random
numbers: the time of an op does not depend on its values.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from workbench._infra.onnx_graph import SEED, finish_model
from workbench.calibration.qdq import quantize_int8
from workbench.model.arch import Architecture
from workbench.model.geometry import same_pads
from workbench.model.ops import Op


class GraphBuilder:
    """Accumulates nodes and initialisers; names are unique by a counter; weights from one seeded RNG.

    The interface the op specs' ``onnx`` lowering writes to."""

    def __init__(self, seed: int = SEED):
        self.nodes: list = []
        self.inits: list = []
        self.rng = np.random.default_rng(seed)
        self._n = 0
        self._clip: tuple[str, str] | None = None

    def name(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, base: str, array: np.ndarray) -> str:
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def node(self, op_type: str, inputs: Sequence[str], **attrs) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def _weights(self, cout: int, cin_per_group: int, kernel: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """He-initialised weights and a small bias (the folded BatchNorm's)."""
        fan_in = cin_per_group * int(np.prod(kernel))
        w = self.rng.standard_normal((cout, cin_per_group, *kernel)) * np.sqrt(2.0 / fan_in)
        return w, self.rng.standard_normal(cout) * 0.1

    def conv(self, x: str, cin: int, cout: int, kernel: int, stride: int, groups: int, dims: int, act: bool) -> str:
        """Conv with folded-BN bias ('same' padding kernel//2), then ReLU6 unless ``act`` is False."""
        w, b = self._weights(cout, cin // groups, (kernel,) * dims)
        pad = kernel // 2
        y = self.node("Conv", [x, self.const("w", w), self.const("b", b)], kernel_shape=[kernel] * dims,
                      strides=[stride] * dims, pads=[pad] * (2 * dims), group=groups)
        return self.relu6(y) if act else y

    def conv2d(self, x: str, in_hw, cin: int, cout: int, kernel: tuple, stride: tuple, groups: int,
               act: str | None) -> str:
        """2-D conv with folded-BN bias, any kernel/stride pair, 'same' padding as
        :func:`workbench.model.ops.same_pads` (asymmetric for even kernels), then ``act`` (relu6, relu, None)."""
        w, b = self._weights(cout, cin // groups, kernel)
        (top, bottom), (left, right) = (same_pads(n, k, s) for n, k, s in zip(in_hw, kernel, stride))
        y = self.node("Conv", [x, self.const("w", w), self.const("b", b)], kernel_shape=list(kernel),
                      strides=list(stride), pads=[top, left, bottom, right], group=groups)
        if act == "relu6":
            return self.relu6(y)
        return self.node("Relu", [y]) if act == "relu" else y

    def relu6(self, x: str) -> str:
        if self._clip is None:
            self._clip = (self.const("zero", np.array(0.0)), self.const("six", np.array(6.0)))
        return self.node("Clip", [x, *self._clip])

    def model(self, x: str, y: str, in_shape: Sequence[int], out_shape: Sequence[int], name: str) -> onnx.ModelProto:
        """The batch-1 float model reading ``x`` and returning ``y``."""
        graph = helper.make_graph(self.nodes, name,
                                  [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, *in_shape])],
                                  [helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, *out_shape])], self.inits)
        return finish_model(graph)


def op_graph(op: Op, seed: int = SEED) -> onnx.ModelProto:
    """A batch-1 fp32 ONNX model of one fused op, as the runtime would execute it."""
    g = GraphBuilder(seed)
    return g.model("input", op.spec.onnx(g, "input", op), op.in_shape, op.out_shape, op.key)


def arch_graph(arch: Architecture, seed: int = SEED) -> onnx.ModelProto:
    """The whole architecture as one fp32 ONNX model: the op builders of :func:`op_graph`, chained."""
    g = GraphBuilder(seed)
    x = "input"
    for op in arch.ops:
        x = op.spec.onnx(g, x, op)
    return g.model("input", x, arch.ops[0].in_shape, arch.ops[-1].out_shape, f"{arch.space}")


def null_graph() -> onnx.ModelProto:
    """A one-element Identity: what a ``session.run`` call costs with (almost) no work in it."""
    g = GraphBuilder()
    return g.model("x", g.node("Identity", ["x"]), (1,), (1,), "null")


def deployed_graph(obj: Op | Architecture, precision: str | None = None) -> onnx.ModelProto:
    """The graph that gets timed: fp32 as built, int8 quantised to QDQ with uint8 I/O
    (:func:`workbench.calibration.qdq.quantize_int8`)."""
    model = op_graph(obj) if isinstance(obj, Op) else arch_graph(obj)
    prec = precision or obj.precision
    if prec == "fp32":
        return model
    if prec == "int8":
        return quantize_int8(model)
    raise ValueError(f"precision {prec!r} is not measurable with onnxruntime on this host (fp32, int8)")
