"""Read an existing model file (.tflite or .onnx) into a small format-neutral graph for scoring.

Both readers produce the same :class:`Graph`: operators in execution order, each a :class:`GNode`
with a normalised ``kind`` (conv, fc, add, act, pool, gap, reshape, transpose, alias, softmax) and the attributes
the op vocabulary needs (kernel, stride, groups, channels, fused activation, weight bits), plus every
activation tensor's shape channel-first without the batch (``(C, H, W)``, ``(C, T)``, ``(C,)``).
TFLite tensors are channel-last except where a ``TRANSPOSE`` that only moves the channel axis (NHWC →
NCHW, as litert-torch writes around the layers of a 1-D network) left one channel-first: the reader tracks
those (their shape, a ``MEAN`` over their spatial axes) and marks such transposes ``layout_only``.
Constant tensors (weights, biases, shapes) are not graph edges. Plumbing that moves no work —
quantize/dequantize, identity, dropout, explicit padding before a convolution — becomes an ``alias``
(its output is its input). Anything else keeps its file's operator name in ``kind = "unknown"`` so
:mod:`workbench.scoring.score` can name it in the error.

TFLite files are parsed from the flatbuffer with the schema module that ships in ``ai_edge_litert``
(operator options such as strides, pooling windows and fused activations are not in the
interpreter's op details); ONNX files are read with ``onnx`` and its shape inference.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench._infra.errors import WorkbenchError

MAX_MODEL_BYTES = 512 * 1024 * 1024


@dataclass
class GNode:
    index: int  # position in the file's operator list
    name: str
    op_type: str  # the file's own operator name (CONV_2D, Conv): what messages show
    kind: str
    inputs: tuple[str, ...]  # activation tensors read (constants left out)
    output: str
    attrs: dict = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"operator {self.index} {self.op_type}" + (f" ({self.name})" if self.name else "")


@dataclass
class Graph:
    path: str
    format: str  # "tflite" | "onnx"
    nodes: list[GNode]
    shapes: dict[str, tuple[int, ...]]
    input: str
    quantized: bool  # activations are 8-bit integers
    input_dims: tuple[int, ...] = ()  # the graph input as stored (batch and layout included)
    channel_last: bool = False


def read_graph(path: str | Path) -> Graph:
    """The file's graph; a :class:`WorkbenchError` naming the file when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError("no such model file", where=str(path))
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise WorkbenchError(f"model file is larger than {MAX_MODEL_BYTES >> 20} MB", where=str(path))
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        return _read_tflite(path)
    if suffix == ".onnx":
        return _read_onnx(path)
    raise WorkbenchError(f"unknown model format {suffix or '(no suffix)'!r} (score reads .tflite and .onnx)",
                         where=str(path))


def channel_first(shape, nhwc: bool) -> tuple[int, ...]:
    """Drop the batch; move channels first for channel-last (TFLite) tensors of rank 3 and 4."""
    dims = tuple(int(d) for d in shape[1:])
    if nhwc and len(dims) >= 2:
        return (dims[-1], *dims[:-1])
    return dims


# ---------------------------------------------------------------- TFLite

_TFLITE_ACT = {0: None, 1: "relu", 3: "relu6"}
_TFLITE_ALIAS = {"QUANTIZE", "DEQUANTIZE", "PAD", "PADV2"}


def _read_tflite(path: Path) -> Graph:
    try:
        from ai_edge_litert import schema_py_generated as schema  # optional: ai_edge_litert (the export extra)
    except ImportError:
        raise WorkbenchError("reading .tflite files needs the export extra: pip install -e '.[export]'",
                             where=str(path)) from None

    try:
        model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
        sub = model.subgraphs[0]
    except Exception as exc:  # a damaged flatbuffer raises anything from struct errors to IndexError
        raise WorkbenchError(f"not a readable TFLite flatbuffer ({type(exc).__name__}: {exc})", where=str(path))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    tensors = sub.tensors

    def is_const(i: int) -> bool:
        buf = model.buffers[tensors[i].buffer] if tensors[i].buffer < len(model.buffers) else None
        return buf is not None and (buf.data is not None and len(buf.data) > 0 or bool(buf.offset))

    def tname(i: int) -> str:
        return f"t{i}"

    shapes = {tname(i): channel_first(t.shape if t.shape is not None else (), True) for i, t in enumerate(tensors)}
    int_types = {schema.TensorType.INT8: 8, schema.TensorType.UINT8: 8, schema.TensorType.INT4: 4}
    stored_first: set[str] = set()  # tensors a layout TRANSPOSE left channel-first in memory
    nodes = []
    for index, op in enumerate(sub.operators):
        op_type = names.get(codes[op.opcodeIndex], f"CUSTOM{codes[op.opcodeIndex]}")
        ins = [int(i) for i in (op.inputs if op.inputs is not None else []) if i >= 0]
        act_in = tuple(tname(i) for i in ins if not is_const(i))
        out = tname(int(op.outputs[0]))
        opts = op.builtinOptions
        out_name = tensors[int(op.outputs[0])].name
        name = out_name.decode() if isinstance(out_name, bytes) else str(out_name or "")
        kind, attrs = "unknown", {}
        if op_type in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = tensors[ins[1]]
            wshape = [int(d) for d in w.shape]
            cin = shapes[act_in[0]][0]
            cout = shapes[out][0]
            groups = cin if op_type == "DEPTHWISE_CONV_2D" and cin > 1 else 1  # 1-channel depthwise = plain conv
            kind = "conv"
            attrs = {"kernel": (wshape[1], wshape[2]), "stride": (opts.strideH, opts.strideW), "groups": groups,
                     "cin": cin, "cout": cout, "act": _TFLITE_ACT.get(opts.fusedActivationFunction, "other"),
                     "wbits": int_types.get(w.type, 32)}
        elif op_type == "FULLY_CONNECTED":
            w = tensors[ins[1]]
            kind = "fc"
            attrs = {"cin": int(w.shape[1]), "cout": int(w.shape[0]),
                     "act": _TFLITE_ACT.get(opts.fusedActivationFunction, "other"), "wbits": int_types.get(w.type, 32)}
        elif op_type in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            kind = "pool"
            attrs = {"mode": "avg" if op_type.startswith("AVERAGE") else "max", "kernel": (opts.filterHeight, opts.filterWidth),
                     "stride": (opts.strideH, opts.strideW), "act": _TFLITE_ACT.get(opts.fusedActivationFunction, "other")}
        elif op_type == "ADD":
            kind = "add" if len(act_in) == 2 else "alias"
            attrs = {"act": _TFLITE_ACT.get(opts.fusedActivationFunction, "other") if opts is not None else None}
        elif op_type == "MEAN":
            axes = _tflite_const(model, tensors[ins[1]])
            rank = len(tensors[ins[0]].shape)
            axis0 = 2 if act_in and act_in[0] in stored_first else 1  # the first spatial axis in memory
            spatial = list(range(axis0, axis0 + rank - 2))
            kind = "gap" if rank >= 3 and sorted(int(a) % rank for a in axes) == spatial else "unknown"
        elif op_type in ("RELU", "RELU6"):
            kind, attrs = "act", {"act": op_type.lower()}
        elif op_type in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"):
            kind = "reshape"
        elif op_type in _TFLITE_ALIAS:
            kind = "alias"
        elif op_type == "SOFTMAX":
            kind = "softmax"
        elif op_type == "TRANSPOSE":
            perm = tuple(int(p) for p in _tflite_const(model, tensors[ins[1]]))
            order = _layout_after(perm, bool(act_in) and act_in[0] in stored_first)
            kind, attrs = "transpose", {"perm": perm, "layout_only": order is not None}
            if order == "first":
                stored_first.add(out)
        if kind == "alias" and act_in and act_in[0] in stored_first:
            stored_first.add(out)  # plumbing (a requantize) keeps the layout
        if out in stored_first:
            shapes[out] = channel_first(tensors[int(op.outputs[0])].shape, False)
        nodes.append(GNode(index, name, op_type, kind, act_in[:2] if kind == "add" else act_in[:1], out, attrs))
    first = int(sub.inputs[0])
    quantized = tensors[first].type in int_types or any(
        n.kind in ("conv", "fc") and tensors[int(n.inputs[0][1:])].type in int_types for n in nodes)
    return Graph(str(path), "tflite", nodes, shapes, tname(first), quantized,
                 tuple(int(d) for d in tensors[first].shape), True)


def _layout_after(perm: tuple[int, ...], stored_first: bool) -> str | None:
    """The storage order ("first"/"last") a TFLite TRANSPOSE leaves when all it does is move the channel
    axis between last and second (NHWC ↔ NCHW, NLC ↔ NCL) of a tensor stored the other way round; None
    for a transpose that moves data (or whose input's layout is not known)."""
    rank = len(perm)
    if rank < 3:
        return None
    if not stored_first and perm == (0, rank - 1, *range(1, rank - 1)):
        return "first"
    if stored_first and perm == (0, *range(2, rank), 1):
        return "last"
    return None


def _tflite_const(model, tensor) -> np.ndarray:
    data = model.buffers[tensor.buffer].data
    return np.frombuffer(bytes(bytearray(data)), dtype=np.int32)


# ---------------------------------------------------------------- ONNX

# plumbing, and BatchNormalization (folded into the conv/FC before it by every deployment runtime)
_ONNX_ALIAS = {"QuantizeLinear", "DequantizeLinear", "Identity", "Dropout", "Pad", "Cast", "BatchNormalization"}
_ONNX_INT_BITS = {2: 8, 3: 8, 21: 4, 22: 4}  # UINT8, INT8, UINT4, INT4


def _tensor_array(tensor, path: Path):
    """An ONNX tensor as an array; a tensor whose data does not fill its declared shape is one line."""
    from onnx import numpy_helper  # heavy: onnx

    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError) as exc:
        raise WorkbenchError(f"tensor {tensor.name[:80]!r} of shape {tuple(tensor.dims)} does not hold its data "
                             f"({type(exc).__name__}: {str(exc)[:120]})", where=str(path)) from None


def _read_onnx(path: Path) -> Graph:
    import onnx  # heavy: onnx
    from onnx import shape_inference  # heavy: onnx

    try:
        model = shape_inference.infer_shapes(onnx.load(str(path)))
    except Exception as exc:  # protobuf DecodeError, onnx's checker/inference errors
        raise WorkbenchError(f"not a readable ONNX model ({type(exc).__name__}: {exc})", where=str(path))
    g = model.graph
    if not model.ir_version or not g.input or not g.node:  # protobuf reads an empty file (and some foreign
        # ones) as an empty message: a model needs an IR version, an input and at least one node
        raise WorkbenchError("not an ONNX model: empty, or a file of another format (no IR version, graph input "
                             "or node)", where=str(path))
    inits = {t.name: t for t in g.initializer}
    for tensor in inits.values():  # shapes are what is scored: a shape its stored data does not fill is a lie
        if tensor.HasField("raw_data") and tensor.data_location != onnx.TensorProto.EXTERNAL:
            _tensor_array(tensor, path)
    consts = set(inits)
    values = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        values[vi.name] = tuple(dims)
    const_arrays = {}
    for node in g.node:  # constants flowing through Constant/DequantizeLinear/Identity stay constants
        if node.op_type == "Constant":
            consts.update(node.output)
            for a in node.attribute:
                if a.name == "value":
                    const_arrays[node.output[0]] = _tensor_array(a.t, path)
        elif node.input and all(i in consts for i in node.input if i):
            consts.update(node.output)

    def weight_init(name: str):
        """The initializer behind a weight input (through DequantizeLinear/Identity), or None.
        Followed in a loop, not recursively: a hostile graph may chain thousands or form a cycle."""
        seen = set()
        while name not in seen:
            seen.add(name)
            producer = next((n for n in g.node if name in n.output
                             and n.op_type in ("DequantizeLinear", "Identity", "Cast")), None)
            if producer is None:
                return inits.get(name)
            name = producer.input[0]
        raise WorkbenchError(f"tensor {name!r} is computed from itself (a cycle in the graph)", where=str(path))

    def array(name: str):
        if name in const_arrays:
            return const_arrays[name]
        init = weight_init(name)
        return _tensor_array(init, path) if init is not None else None

    def shape(name: str) -> tuple[int, ...]:
        return tuple(values.get(name, ())[1:])

    shapes = {}
    nodes = []
    for index, node in enumerate(g.node):
        if node.op_type == "Constant" or all(o in consts for o in node.output):
            continue
        act_in = tuple(i for i in node.input if i and i not in consts)
        out = node.output[0]
        for t in (*act_in, out):
            shapes[t] = shape(t)
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        kind, info = _onnx_kind(node, attrs, act_in, shapes, weight_init, array)
        nodes.append(GNode(index, node.name, node.op_type, kind, act_in[:2] if kind == "add" else act_in[:1], out, info))
    first = g.input[0].name
    shapes[first] = shape(first)
    quantized = any(n.op_type == "QuantizeLinear" for n in g.node)
    if quantized:
        _activations_from_zero_points(g, nodes, array)
    return Graph(str(path), "onnx", nodes, shapes, first, quantized, tuple(values.get(first, ())), False)


def _activations_from_zero_points(g, nodes: list[GNode], array) -> None:
    """A QDQ graph folds ReLU/ReLU6 into the quantisation range of the conv/FC output; a uint8 zero point
    of 0 (the range starts at 0) is that clamp. Mark those convs/FCs as activated."""
    quantizers = {n.input[0]: n for n in g.node if n.op_type == "QuantizeLinear" and len(n.input) > 2}
    for node in nodes:
        if node.kind not in ("conv", "fc") or node.attrs.get("act") is not None or node.output not in quantizers:
            continue
        zero = array(quantizers[node.output].input[2])
        if zero is not None and zero.dtype == np.uint8 and not zero.any():
            node.attrs["act"] = "clamped"


def _onnx_kind(node, attrs, act_in, shapes, weight_init, array):
    op = node.op_type
    if op == "Conv":
        w = weight_init(node.input[1])
        if w is None:
            return "unknown", {}
        dims = list(w.dims)
        kernel = tuple(attrs.get("kernel_shape", dims[2:]))
        stride = tuple(attrs.get("strides", [1] * len(kernel)))
        groups = int(attrs.get("group", 1))
        cin = shapes[act_in[0]][0]
        return "conv", {"kernel": kernel if len(kernel) == 2 else (kernel[0],), "stride": stride,
                        "groups": groups if groups > 1 and cin > 1 else 1, "cin": cin, "cout": dims[0], "act": None,
                        "wbits": _ONNX_INT_BITS.get(w.data_type, 32)}
    if op in ("Gemm", "MatMul"):
        w = weight_init(node.input[1])
        if w is None:
            return "unknown", {}
        cout, cin = (w.dims[0], w.dims[1]) if attrs.get("transB", 0) else (w.dims[1], w.dims[0])
        return "fc", {"cin": int(cin), "cout": int(cout), "act": None, "wbits": _ONNX_INT_BITS.get(w.data_type, 32)}
    if op in ("Relu", "Clip"):
        return "act", {"act": "relu" if op == "Relu" else "relu6"}
    if op in ("MaxPool", "AveragePool"):
        kernel = tuple(attrs["kernel_shape"])
        return "pool", {"mode": "max" if op == "MaxPool" else "avg", "kernel": kernel,
                        "stride": tuple(attrs.get("strides", kernel)), "act": None}
    if op == "GlobalAveragePool":
        return "gap", {}
    if op == "ReduceMean":
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1:
            axes = array(node.input[1])
        rank = len(shapes[act_in[0]]) + 1
        if axes is not None and sorted(int(a) % rank for a in axes) == list(range(2, rank)):
            return "gap", {}
        return "unknown", {}
    if op == "Add":
        return ("add", {"act": None}) if len(act_in) == 2 else ("alias", {})  # + constant = a bias
    if op in ("Flatten", "Reshape", "Squeeze", "Unsqueeze"):
        return "reshape", {}
    if op in _ONNX_ALIAS:
        return "alias", {}
    if op == "Softmax":
        return "softmax", {}
    if op == "Transpose":
        return "transpose", {"perm": tuple(attrs.get("perm", ()))}
    return "unknown", {}
