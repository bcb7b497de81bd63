"""Score an existing model file on device profiles: ``workbench score MODEL --device X``.

The file (.tflite or .onnx, fp32 or int8; see :mod:`workbench.scoring.graph_import`) is lowered to the op
vocabulary of :mod:`workbench.model.ops` the way a runtime fuses it, and the resulting op list is costed
exactly like an architecture from a search space (:func:`workbench.hardware.cost.estimate`: latency from the
profile's source, peak SRAM, flash, MACs, params). Fusions recognised, in this order:

* a residual block — conv, conv, add with the block input or a 1x1 conv of it (+ ReLU) → ``resblock``;
* 1x1 conv → depthwise conv → 1x1 conv [→ add with the block input] → ``mbconv`` (expanded);
* depthwise conv → 1x1 conv → add with the block input, or a linear 1x1 conv → ``mbconv`` (no expand);
* depthwise conv → 1x1 conv with an activation → ``dsconv2d``;
* any other conv → ``conv2d``/``conv1d``; a fully connected layer → ``linear`` or, with a ReLU,
  ``linear_relu``;
* pooling → ``avgpool2d``/``maxpool2d`` (1-D: ``…pool1d``), or ``gap`` when the window is the whole map;
  global average / spatial mean → ``gap``; a reshape to a vector → ``flatten`` (none after a GAP;
  reshapes and transposes of the graph input only fix the input layout, a transpose feeding a flatten
  is part of it, and so is any transpose that only moves the channel axis, NHWC ↔ NCHW);
* a 1-D network stored as 2-D layers over a single row (TFLite has no 1-D conv or pooling: a sequence
  input reshaped to (C, 1, T), windows (1, k)) → the 1-D ops (``conv1d``, ``…pool1d``, ``gap``).

In a QDQ ONNX graph the activations are folded into the quantisation ranges: a conv/FC output whose
uint8 zero point is 0 (its range starts at 0) counts as activated, except the model's output layer
(class scores that were all positive on the calibration data leave the same range).

Padding, quantize/dequantize and biases are part of the op they feed; activations are fused into the
op before them; a final softmax is ignored (a few elementwise operations on the class scores).
Anything else is a :class:`WorkbenchError` naming the operator and its index in the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from math import prod
from pathlib import Path

from workbench._infra.errors import WorkbenchError
from workbench.hardware.cost import CostEstimate, estimate
from workbench.hardware.profiles import DeviceProfile, all_profiles, load_profile
from workbench.hardware.trust import LatencyTrust, precisions_of, statements
from workbench.model.ops import Op, Segment
from workbench.scoring.graph_import import GNode, Graph, channel_first, read_graph


@dataclass(frozen=True)
class ImportedModel:
    """A model file lowered to ops: what :func:`workbench.hardware.cost.estimate` costs (it reads ``segments``)."""

    path: str
    format: str
    precision: str
    ops: tuple[Op, ...]

    @cached_property
    def segments(self) -> tuple[Segment, ...]:
        return (Segment(self.ops),)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.ops[0].in_shape

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)

    @property
    def n_params(self) -> int:
        return sum(op.params for op in self.ops)


@dataclass(frozen=True)
class ModelScore:
    """A file's ops and what each device would pay for it."""

    model: ImportedModel
    costs: dict[str, CostEstimate]
    per_op: dict[str, list[tuple[float | None, bool]]]  # device → (ms, interpolated?) per op
    trust: dict[str, list[LatencyTrust]]  # device → how far its latency can be trusted, per precision of the ops

    def to_dict(self) -> dict:
        ops = []
        for i, op in enumerate(self.model.ops):
            ops.append({"index": i, "key": op.key, "kind": op.kind, "macs": op.macs, "params": op.params,
                        "latency_ms": {d: rows[i][0] for d, rows in self.per_op.items()},
                        "interpolated": {d: rows[i][1] for d, rows in self.per_op.items()}})
        return {"file": self.model.path, "format": self.model.format, "precision": self.model.precision,
                "input_shape": list(self.model.input_shape), "ops": ops,
                "devices": {d: {**c.to_dict(), "latency_trust": [t.to_dict() for t in self.trust[d]]}
                            for d, c in self.costs.items()}}


def import_model(path: str | Path) -> ImportedModel:
    """Read and lower a .tflite/.onnx file (no device involved)."""
    graph = read_graph(path)
    try:
        ops = _Lowering(graph).run()
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
        # a graph the readers parsed but whose shapes/attributes are not what the fusions expect
        # (e.g. dynamic shapes shape inference could not resolve): one line, not a traceback
        raise WorkbenchError(f"cannot lower the graph to the op vocabulary ({type(exc).__name__}: {exc})",
                             where=graph.path) from None
    precision = ops[0].precision if ops else "fp32"
    return ImportedModel(graph.path, graph.format, precision, tuple(ops))


def score(path: str | Path, device: str | DeviceProfile | list = "all") -> ModelScore:
    """Lower a model file and cost it on ``device`` (a profile name or path, a profile, a list, or ``all``)."""
    model = import_model(path)
    profiles = _profiles(device)
    costs, per_op, trust = {}, {}, {}
    for profile in profiles:
        cost = estimate(model, profile)
        costs[profile.name] = cost
        rows = profile.latency.breakdown(model.ops) if cost.supported else None  # None: no per-op figure
        per_op[profile.name] = rows if rows is not None else [(None, False)] * len(model.ops)
        trust[profile.name] = statements(profile, precisions_of([model]))
    return ModelScore(model, costs, per_op, trust)


def _profiles(device) -> list[DeviceProfile]:
    if isinstance(device, DeviceProfile):
        return [device]
    if device == "all":
        return list(all_profiles())
    if isinstance(device, (list, tuple)):
        return [d if isinstance(d, DeviceProfile) else load_profile(d) for d in device]
    return [load_profile(device)]


# ---------------------------------------------------------------- lowering

class _Lowering:
    """Walk the graph once in file order, fusing node groups into ops (see the module docstring)."""

    def __init__(self, graph: Graph):
        self.g = graph
        self.alias: dict[str, str] = {}
        reshaped = {t for n in graph.nodes if n.kind == "reshape" for t in n.inputs}
        layout = None  # the last reshape/transpose of the graph input: it fixes the input's layout
        for n in graph.nodes:
            if n.kind == "transpose" and n.output in reshaped:
                n.kind = "alias"  # a layout change feeding a flatten is part of the flatten
            on_input = n.kind in ("reshape", "transpose") and self.resolve(n.inputs[0]) == graph.input
            layout_only = n.kind == "transpose" and n.attrs.get("layout_only", False)
            if n.kind == "alias" or on_input or layout_only:
                self.alias[n.output] = self.resolve(n.inputs[0]) if n.inputs else graph.input
            if on_input:
                layout = n
        if layout is not None:
            graph.shapes[graph.input] = self._input_layout(layout)
        self.one_d = self._stored_as_rows()
        self.nodes = [n for n in graph.nodes if n.output not in self.alias]
        if self.one_d:
            for n in self.nodes:
                _drop_row_axis(n.attrs)
        self.consumers: dict[str, list[GNode]] = {}
        for n in self.nodes:
            for t in n.inputs:
                self.consumers.setdefault(self.resolve(t), []).append(n)
        self.producer = {n.output: n for n in self.nodes}
        self.done: set[int] = set()
        self.abits = 8 if graph.quantized else 32
        self.blocks = self._match_resblocks()

    def _input_layout(self, node: GNode) -> tuple[int, ...]:
        """The input shape once the graph's own reshape/transpose of its input is applied (a transpose is
        applied to the stored input, so a padding between them does not leak into the shape)."""
        perm = node.attrs.get("perm")
        if node.kind == "transpose" and perm and len(perm) == len(self.g.input_dims):
            dims = [self.g.input_dims[p] for p in perm]
            return channel_first(dims, self.g.channel_last)
        shape = list(self.g.shapes[node.output])
        stored = [d for d in self.g.input_dims[1:] if d != 1]
        slots = [i for i, d in enumerate(shape) if d != 1]
        if len(stored) == len(slots) and all(a <= shape[i] for a, i in zip(stored, slots)):
            for d, i in zip(stored, slots):  # a padding between input and reshape grew these sizes: undo it
                shape[i] = d
        return tuple(shape)

    def _stored_as_rows(self) -> bool:
        """A 1-D network that the file runs as 2-D layers over a single row: a sequence input (N, T, C) the
        graph's own reshapes turn into (C, 1, T) maps, as TFLite stores every 1-D conv and pooling."""
        shape = self.g.shapes[self.g.input]
        return len(self.g.input_dims) == 3 and len(shape) == 3 and shape[1] == 1

    def resolve(self, t: str) -> str:
        while t in self.alias:
            t = self.alias[t]
        return t

    def shape(self, t: str) -> tuple[int, ...]:
        """Tensor ``t``'s shape, channel first; a (C, 1, T) row of a 1-D network as (C, T)."""
        shape = self.g.shapes[self.resolve(t)]
        if self.one_d and len(shape) == 3 and shape[1] == 1:
            return shape[0], shape[2]
        return shape

    def sole(self, t: str, kind: str | None = None) -> GNode | None:
        """The only consumer of tensor ``t`` (of ``kind``, when given), if it has exactly one."""
        users = self.consumers.get(self.resolve(t), [])
        if len(users) == 1 and users[0].index not in self.done and (kind is None or users[0].kind == kind):
            return users[0]
        return None

    def with_act(self, n: GNode) -> tuple[str | None, str]:
        """(activation, output tensor) of ``n``: its fused activation or a following lone ReLU/ReLU6 node."""
        act = n.attrs.get("act")
        if act is None:
            nxt = self.sole(n.output, "act")
            if nxt is not None:
                self.done.add(nxt.index)
                return nxt.attrs["act"], nxt.output
        return act, n.output

    def fail(self, n: GNode, why: str):
        raise WorkbenchError(f"{n.where}: {why}", where=self.g.path)

    def run(self) -> list[Op]:
        ops: list[Op] = []
        last = self.nodes[-1].index if self.nodes else -1
        for n in self.nodes:
            if n.index in self.done:
                continue
            self.done.add(n.index)
            op = self.lower(n, last)
            if op is not None:
                ops.append(op)
        if not ops:
            raise WorkbenchError("the graph has no operator to score", where=self.g.path)
        return ops

    def lower(self, n: GNode, last: int) -> Op | None:
        handler = getattr(self, f"_{n.kind}", None)
        if n.kind == "softmax" and n.index == last:
            return None
        if handler is None:
            self.fail(n, "not in the op vocabulary (docs/guides/scoring.md lists what is)")
        return handler(n)

    def op(self, kind: str, n: GNode, in_t: str, out_shape, wbits=None, **fields) -> Op:
        w = wbits if wbits is not None else (8 if self.abits == 8 else 32)
        return Op(kind, self.shape(in_t), tuple(out_shape), wbits=w, abits=self.abits, stage=f"#{n.index}", **fields)

    # ---- per node kind
    def _conv(self, n: GNode) -> Op:
        a = n.attrs
        if len(a["kernel"]) == 1:
            if a["groups"] > 1:
                self.fail(n, f"a grouped 1-D convolution ({a['groups']} groups) is not in the op vocabulary")
            act, out = self.with_act(n)
            return self.op("conv1d", n, n.inputs[0], self.shape(out), a["wbits"], kernel=a["kernel"][0],
                           stride=a["stride"][0])
        if a["groups"] > 1:
            if a["groups"] != a["cin"] or a["cout"] != a["cin"]:
                self.fail(n, f"grouped convolution ({a['groups']} groups of {a['cin']} channels) is not in the "
                             "op vocabulary (only depthwise and plain convolutions)")
            return self._depthwise_first(n)
        block = self._resblock(n) or self._expanded_mbconv(n)
        if block is not None:
            return block
        act, out = self.with_act(n)
        return self.op("conv2d", n, n.inputs[0], self.shape(out), a["wbits"], **_window(a))

    def _depthwise_first(self, dw: GNode) -> Op:
        act, t = self.with_act(dw)
        pw = self.sole(t, "conv")
        if pw is None or pw.attrs["kernel"] != (1, 1) or pw.attrs["groups"] != 1 or pw.attrs["stride"] != (1, 1):
            self.fail(dw, "a depthwise convolution must be followed by a 1x1 convolution (dsconv2d/mbconv)")
        self.done.add(pw.index)
        pw_act, out = self.with_act(pw)
        x = dw.inputs[0]
        add = self._residual_add(out, x)
        cin = dw.attrs["cin"]
        if add is not None:
            return self.op("mbconv", dw, x, self.shape(add.output), dw.attrs["wbits"], hidden=cin, skip=True,
                           **_window(dw.attrs))
        if pw_act is None:
            return self.op("mbconv", dw, x, self.shape(out), dw.attrs["wbits"], hidden=cin, **_window(dw.attrs))
        return self.op("dsconv2d", dw, x, self.shape(out), dw.attrs["wbits"], **_window(dw.attrs))

    def _expanded_mbconv(self, ex: GNode) -> Op | None:
        if ex.attrs["kernel"] != (1, 1) or ex.attrs["stride"] != (1, 1):
            return None
        act, t = self.with_act_peek(ex)
        dw = self.sole(t, "conv")
        if dw is None or dw.attrs["groups"] == 1:
            return None
        d_act, d_out = self.with_act_peek(dw)
        pw = self.sole(d_out, "conv")
        if pw is None or pw.attrs["kernel"] != (1, 1) or pw.attrs["groups"] != 1:
            return None
        for node in (ex, dw, pw):
            self.with_act(node)
            self.done.add(node.index)
        x = ex.inputs[0]
        add = self._residual_add(pw.output, x)
        out = add.output if add is not None else pw.output
        return self.op("mbconv", ex, x, self.shape(out), ex.attrs["wbits"], hidden=ex.attrs["cout"],
                       skip=add is not None, **_window(dw.attrs))

    def with_act_peek(self, n: GNode) -> tuple[str | None, str]:
        """Like :meth:`with_act` without consuming the activation node (pattern probing)."""
        act = n.attrs.get("act")
        if act is None:
            nxt = self.sole(n.output, "act")
            if nxt is not None:
                return nxt.attrs["act"], nxt.output
        return act, n.output

    def _residual_add(self, t: str, x: str) -> GNode | None:
        """The add that sums ``t`` with the block input ``x`` (identity residual), consumed if found."""
        add = self.sole(t, "add")
        if add is None or self.resolve(x) not in {self.resolve(i) for i in add.inputs}:
            return None
        self.done.add(add.index)
        return add

    def _match_resblocks(self) -> dict[int, tuple[GNode, ...]]:
        """Residual blocks found from their adds, before the walk (a shortcut conv may come first in the
        file): node index → the block's nodes (first conv, second conv, shortcut conv or None, add)."""
        blocks = {}
        for add in self.nodes:
            if add.kind != "add":
                continue
            for main, other in (add.inputs, add.inputs[::-1]):
                found = self._resblock_at(add, main, other)
                if found is not None:
                    for node in found:
                        if node is not None:
                            blocks[node.index] = found
                    break
        return blocks

    def _resblock_at(self, add: GNode, main: str, other: str):
        c2 = self.producer.get(self.resolve(main))
        if c2 is not None and c2.kind == "act":
            return None  # the second conv of a residual block is linear
        if c2 is None or c2.kind != "conv" or c2.attrs["groups"] != 1 or c2.attrs["stride"] != (1, 1):
            return None
        t1 = self.resolve(c2.inputs[0])
        c1 = self.producer.get(t1)
        if c1 is not None and c1.kind == "act":
            c1 = self.producer.get(self.resolve(c1.inputs[0]))
        if c1 is None or c1.kind != "conv" or c1.attrs["groups"] != 1 or c1.attrs["kernel"] != c2.attrs["kernel"]:
            return None
        x = self.resolve(c1.inputs[0])
        if self.resolve(other) == x:
            return c1, c2, None, add
        shortcut = self.producer.get(self.resolve(other))
        if (shortcut is not None and shortcut.kind == "conv" and shortcut.attrs["kernel"] == (1, 1)
                and shortcut.attrs["groups"] == 1 and self.resolve(shortcut.inputs[0]) == x):
            return c1, c2, shortcut, add
        return None

    def _resblock(self, n: GNode) -> Op | None:
        block = self.blocks.get(n.index)
        if block is None:
            return None
        c1, c2, shortcut, add = block
        for node in (c1, c2):
            self.with_act(node)
        for node in block:
            if node is not None:
                self.done.add(node.index)
        _, out = self.with_act(add)
        return self.op("resblock", c1, c1.inputs[0], self.shape(out), c1.attrs["wbits"], skip=shortcut is None,
                       **_window(c1.attrs))

    def _fc(self, n: GNode) -> Op:
        act, out = self.with_act(n)
        if act == "clamped" and self._is_output(out):
            act = None  # the scores were all positive on the calibration data: no ReLU left that trace
        kind = "linear_relu" if act is not None else "linear"
        return Op(kind, (n.attrs["cin"],), (n.attrs["cout"],), wbits=n.attrs["wbits"], abits=self.abits,
                  stage=f"#{n.index}")

    def _is_output(self, t: str) -> bool:
        """Tensor ``t`` is the model's output: nothing but a (final) softmax reads it."""
        return all(user.kind == "softmax" for user in self.consumers.get(self.resolve(t), []))

    def _pool(self, n: GNode) -> Op:
        in_shape, out_shape = self.shape(n.inputs[0]), self.shape(n.output)
        kernel, stride = n.attrs["kernel"], n.attrs["stride"]
        if tuple(kernel) == tuple(in_shape[1:]) and all(s == 1 for s in out_shape[1:]):
            return self._gap(n)
        if n.attrs.get("act") is None:
            self.with_act(n)
        if len(kernel) == 1:
            return self.op(f"{n.attrs['mode']}pool1d", n, n.inputs[0], out_shape, kernel=kernel[0], stride=stride[0])
        return self.op(f"{n.attrs['mode']}pool2d", n, n.inputs[0], out_shape,
                       **_window({"kernel": tuple(kernel), "stride": tuple(stride)}))

    def _gap(self, n: GNode) -> Op:
        in_shape = self.shape(n.inputs[0])
        flat = self.sole(n.output, "reshape")
        if flat is not None:  # GAP's own flatten to (C,)
            self.done.add(flat.index)
            self.alias[flat.output] = n.output
        return self.op("gap", n, n.inputs[0], (in_shape[0],))

    def _reshape(self, n: GNode) -> Op | None:
        src, out_shape = self.shape(n.inputs[0]), self.shape(n.output)
        if self.sole(n.output, "gap") is not None or src == out_shape or (
                prod(src) == prod(out_shape) and (len(src) == 1 or all(s == 1 for s in src[1:]))):
            self.alias[n.output] = n.inputs[0]
            return None  # a vector stays a vector, a shape stays itself; a reshape feeding a GAP is part of it
        if len(out_shape) == 1:
            return self.op("flatten", n, n.inputs[0], out_shape)
        self.fail(n, f"reshape from {src} to {out_shape} is not in the op vocabulary (only flattening to a vector)")

    def _add(self, n: GNode):
        block = self._resblock(n)
        if block is not None:
            return block
        self.fail(n, "an add outside a residual block the vocabulary knows (mbconv, resblock)")

    def _act(self, n: GNode):
        self.fail(n, f"a lone {n.attrs['act']} activation that follows no convolution, FC or add")


def _drop_row_axis(attrs: dict) -> None:
    """A conv/pool window (1, k) / stride (1, s) over a row of a 1-D network as the 1-D (k,) / (s,)."""
    kernel, stride = attrs.get("kernel"), attrs.get("stride")
    if kernel is not None and len(kernel) == 2 and kernel[0] == 1 and stride[0] == 1:
        attrs["kernel"], attrs["stride"] = tuple(kernel[1:]), tuple(stride[1:])


def _window(attrs: dict) -> dict:
    """Op kernel/stride fields from (h, w) pairs, square windows spelled without the width side."""
    (kh, kw), (sh, sw) = attrs["kernel"], attrs["stride"]
    fields = {"kernel": kh, "stride": sh}
    if (kw, sw) != (kh, sh):
        fields.update(kernel_w=kw, stride_w=sw)
    return fields


# ---------------------------------------------------------------- report

def format_score(result: ModelScore) -> str:
    """Per-op table (latency per device, * = interpolated) then one totals line per device."""
    devices = list(result.costs)
    m = result.model
    key_w = max(len(op.key) for op in m.ops)
    col_w = max(15, *(len(d) + 3 for d in devices))  # "<device> ms"
    name_w = max(12, *(len(d) for d in devices))
    head = f"{'#':>3}  {'op':<{key_w}}  {'MACs':>11}  {'params':>8}" + "".join(f"  {d + ' ms':>{col_w}}" for d in devices)
    shape = "x".join(map(str, m.input_shape))
    lines = [f"{m.path}: {m.format}, {m.precision}, input {shape} (channel first), {len(m.ops)} ops", head]
    for i, op in enumerate(m.ops):
        cells = []
        for d in devices:
            ms, guessed = result.per_op[d][i]
            cells.append(f"  {'-' if ms is None else f'{ms:.4f}' + ('*' if guessed else ' '):>{col_w}}")
        lines.append(f"{i:>3}  {op.key:<{key_w}}  {op.macs:>11,}  {op.params:>8,}" + "".join(cells))
    lines.append("")
    lines.append(f"{'device':<{name_w}} {'latency ms':>11} {'interp.':>8} {'peak SRAM KB':>13} {'flash KB':>9} "
                 f"{'MACs':>12} {'params':>9}")
    for d, c in result.costs.items():
        lat = "unsupported" if c.latency_ms is None else f"{c.latency_ms:.3f}"
        lines.append(f"{d:<{name_w}} {lat:>11} {c.interpolated_ops:>8} {c.peak_sram_kb:>13.1f} {c.flash_kb:>9.1f} "
                     f"{c.macs:>12,} {c.params:>9,}")
    if any(c.interpolated_ops for c in result.costs.values()):
        lines.append("* interpolated: the device's LUT has no entry for that op (fitted on its other entries)")
    lines.append("\nhow far each latency can be trusted:")
    lines += [f"{d:<{name_w}} {t.text}" for d, said in result.trust.items() for t in said]
    return "\n".join(lines)
