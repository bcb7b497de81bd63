"""What one on-device training step costs: peak SRAM in its parts, flash and a modeled step latency, per update scheme.

Why: a model that can keep learning on a microcontroller must fit its *training* step, not only its inference,
and that depends far more on what is updated than on the parameter count (TinyTL, Cai et al., NeurIPS 2020;
MCUNetV3, Lin et al., NeurIPS 2022). :func:`training_cost` answers for an architecture, a device profile, an
update scheme (:mod:`workbench.model.update_schemes`), an optimizer and an arithmetic, without training,
from the op schedule (no torch), memoised per segment like the inference estimator.

The parts (bytes):

- **forward arena** — the forward pass's working memory. ``int8``: the TFLite Micro arena of the deployed
  full-int8 graph (:mod:`workbench.hardware.memory`, checked against TFLM). ``fp32``: the largest live activation
  set of one layer (input + output + held residual) at 4 bytes, times the batch (an eager framework frees a
  tensor when its last reference goes; an estimate);
- **saved for backward** — activations kept from the forward pass for the backward pass. ``fp32``: exactly the
  tensors PyTorch's autograd saves for the builder's model (:mod:`workbench.model.train_graph`), each storage once
  (a ReLU's result that the next convolution also saves is one tensor): a convolution saves its input whenever
  anything about it needs a gradient, BatchNorm (training mode) its input plus a mean and an inverse std per
  channel, an in-place ReLU its result, an in-place ReLU6 (``hardtanh_``) a clone of its input, max pooling
  its input and int64 indices, average pooling its input, a fully connected layer its input only when its
  weight is trained (``addmm``: the bias gradient needs no input — TinyTL's observation), global average
  pooling (a mean), padding, flatten and adds nothing.
  ``int8`` (a compiled engine, MCUNetV3's Tiny Training Engine semantics): the int8 input channels a weight
  update needs (``ratio`` of them, :func:`~workbench.model.update_schemes.kept_channels`), one bit per element
  for each ReLU/ReLU6 mask the error passes through (counted even where the saved input could give it back, as
  MCUNetV3's own accounting in ``partial_backward.py`` does), and for max pooling the argmax inside each window
  (``ceil(log2(window))`` bits per output); nothing below the lowest updated layer (the backward graph is pruned);
- **gradients** — ``fp32``: every trained parameter's ``.grad`` (whole tensors: a channel ratio masks the
  gradient after PyTorch has materialised all of it). ``int8``: one layer's gradient buffer (float32/int32,
  4 bytes per element), since the engine applies each gradient as soon as it exists; the layer of the worst
  backward step;
- **weights in SRAM** — ``fp32``: the whole model (parameters and BatchNorm buffers at 4 bytes; the step count
  at 8): an eager framework holds it in RAM. ``int8``: only what is updated: int8 weights of the kept channels
  and int32 biases (frozen weights stay in flash);
- **optimizer state** — ``sgd`` none, ``momentum`` one copy of the trained elements, ``adam`` two (plus, in
  ``fp32``, PyTorch's 4-byte ``step`` per trained tensor). In ``int8`` the state is float32: the updates it
  accumulates are far below one int8 step of the weight they belong to, so an int8 state would round them
  away; MCUNetV3 avoids the question by using SGD without momentum, the default here;
- **scratch** — the backward pass's error buffers at the worst step: the error at the layer's output and at its
  input (float32 in both arithmetics: TTE's default backward, ``int8_bp = False`` in tiny-training's
  ``compilation/mcu_ir_gen.py``), plus a residual branch's error held while the other branch runs.

Peak = weights + optimizer state + saved + max(forward arena, gradients + scratch): the saved activations live
from the forward pass into the backward pass, the forward arena is reused by the backward pass. Batch: ``fp32``
any (every activation-shaped buffer scales with it); ``int8`` 1, as on-device engines train.

Flash: the inference flash of the graph that is run (the full-int8 ``.tflite`` + runtime code, or the float one);
the backward kernels' code is not counted. Step latency (modeled): the forward latency from the profile's
source, plus for each op the backward work priced like its forward: a weight layer's share of the op's latency
(by MACs) once for the input error and ``ratio`` times for the weight gradient, a pooling once when the error
passes through; a source without per-op rows scales the model latency by the same MAC ratio.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from workbench._infra.errors import WorkbenchError, check_count
from workbench._infra.memo import BoundedMemo, HotMemo
from workbench.hardware.cost import estimator_for
from workbench.hardware.profiles import DeviceProfile, load_profile
from workbench.hardware.trust import latency_trust
from workbench.model.arch import Architecture
from workbench.model.train_graph import train_nodes, weight_layers
from workbench.model.update_schemes import UpdateScheme, kept_channels, parse_scheme

OPTIMIZERS = {"sgd": 0, "momentum": 1, "adam": 2}  # optimizer state copies of the trained elements


@dataclass(frozen=True)
class Arith:
    """How a training step keeps its tensors: an eager framework's fp32 or a compiled engine's int8."""

    name: str
    eager: bool
    precision: str  # the precision of the graph that runs (its flash, forward arena, latency)
    act_bytes: int  # forward activations (and the inputs saved for weight gradients)
    error_bytes: int  # activation gradients in the backward pass
    grad_bytes: int  # weight and bias gradients
    weight_bytes: int  # trained weights held in SRAM (per element; biases are 4 bytes)
    state_bytes: int  # optimizer state per element
    text: str


ARITHS = {
    "fp32": Arith("fp32", True, "fp32", 4, 4, 4, 4, 4,
                  "fp32 as an eager framework keeps it (PyTorch: autograd's saved tensors, every .grad, the model "
                  "in RAM)"),
    "int8": Arith("int8", False, "int8", 1, 4, 4, 1, 4,
                  "int8 as a compiled engine keeps it (backward graph pruned to the scheme, gradients applied in "
                  "place, float32 errors)"),
}


MAX_BATCH = 1 << 16  # samples per training step: far past any device's memory; past 64 bits the sums overflow


def check_options(optimizer: str, arith: str, batch: int = 1) -> Arith:
    """The :class:`Arith` for ``arith``; one line naming the flag when an option is unknown."""
    if optimizer not in OPTIMIZERS:
        raise WorkbenchError(f"--optimizer: unknown optimizer {optimizer!r} (accepted: {', '.join(OPTIMIZERS)})")
    if arith not in ARITHS:
        raise WorkbenchError(f"--arith: unknown arithmetic {arith!r} (accepted: {', '.join(ARITHS)})")
    check_count("--batch", batch, 1, MAX_BATCH)
    if batch != 1 and not ARITHS[arith].eager:
        raise WorkbenchError(f"--batch: the int8 compiled count models batch-1 steps (as on-device engines "
                             f"train), got {batch}")
    return ARITHS[arith]


class TrainingCost(NamedTuple):
    """A training step's cost on one device; the SRAM parts in bytes (see the module docstring). A NamedTuple, like
    :class:`~workbench.hardware.cost.CostEstimate`: cheap to create when a search scores every candidate."""

    device: str
    scheme: str
    optimizer: str
    arith: str
    batch: int
    forward_arena: int
    saved: int
    gradients: int
    weights: int
    optimizer_state: int
    scratch: int
    flash_bytes: int
    latency_ms: float | None  # one training step (forward + backward), modeled; None: the device lacks the precision
    forward_ms: float | None  # the forward pass alone (the inference latency times the batch)
    trained_params: int  # parameter elements the step updates
    updated_layers: int
    n_layers: int
    sram_budget_bytes: int
    flash_budget_bytes: int
    notes: tuple[str, ...] = ()

    @property
    def backward_bytes(self) -> int:
        return self.gradients + self.scratch

    @property
    def peak_sram_bytes(self) -> int:
        """weights + optimizer state + saved + max(forward arena, gradients + scratch)."""
        return self.weights + self.optimizer_state + self.saved + max(self.forward_arena, self.backward_bytes)

    @property
    def peak_phase(self) -> str:
        return "forward" if self.forward_arena >= self.backward_bytes else "backward"

    @property
    def fits_sram(self) -> bool:
        return self.peak_sram_bytes <= self.sram_budget_bytes

    @property
    def fits_flash(self) -> bool:
        return self.flash_bytes <= self.flash_budget_bytes

    def parts(self) -> list[tuple[str, int, str]]:
        """(part, bytes, when it is alive) in table order."""
        return [("forward arena", self.forward_arena, "forward"),
                ("saved for backward", self.saved, "forward+backward"),
                ("gradients", self.gradients, "backward"),
                ("weights in SRAM", self.weights, "always"),
                ("optimizer state", self.optimizer_state, "always"),
                ("scratch (backward errors)", self.scratch, "backward")]

    def to_dict(self) -> dict:
        return {"device": self.device, "scheme": self.scheme, "optimizer": self.optimizer, "arith": self.arith,
                "batch": self.batch, "parts": {name: n for name, n, _ in self.parts()},
                "peak_sram_bytes": self.peak_sram_bytes, "peak_phase": self.peak_phase,
                "sram_budget_bytes": self.sram_budget_bytes, "fits_sram": self.fits_sram,
                "flash_bytes": self.flash_bytes, "flash_budget_bytes": self.flash_budget_bytes,
                "fits_flash": self.fits_flash, "latency_ms": self.latency_ms, "forward_ms": self.forward_ms,
                "trained_params": self.trained_params, "updated_layers": self.updated_layers,
                "n_layers": self.n_layers, "notes": list(self.notes)}


# ---------------------------------------------------------------- one segment's share, traced once

class SegmentCost(NamedTuple):
    """A segment's share of a training step, for one context (its layers' updates, whether an error reaches it)."""

    saved: int
    in_saved: int  # fp32: bytes of the segment's input storage when the segment saves it (else 0)
    out_saved: bool  # fp32: the segment's output storage is saved inside it
    out_is_in: bool  # the output is a view of the input (a flatten alone)
    rg_out: bool  # an error flows back into the segment's output
    grads: int  # fp32: every trained tensor's .grad
    weights: int
    state_elems: int
    trained_tensors: int
    trained_params: int
    updated_layers: int
    worst: tuple[int, int]  # (gradient bytes, error bytes) of the segment's worst backward step
    bwd_macs: float
    bwd_ms: float


class _Trace:
    """Walks a segment's training nodes once, keeping what the arithmetic says a step keeps."""

    def __init__(self, arith: Arith, batch: int, updates):
        self.a, self.b = arith, batch
        self.updates = iter(updates)
        self.saved: dict = {}
        self.ids = 0
        self.held = 0
        self.grads = self.weights = self.state = self.tensors = self.params = self.layers = 0
        self.worst = (0, 0)
        self.macs = 0.0
        self.op_factor = 0.0

    def new(self) -> int:
        self.ids += 1
        return self.ids

    def save(self, key, nbytes: int) -> None:
        self.saved[key] = max(nbytes, self.saved.get(key, 0))

    def step(self, dy: int, dx: int, grad_bytes: int = 0) -> None:
        """One backward step: the errors at its output and input (and a held residual error), its gradient."""
        err = (dy + dx + self.held) * self.a.error_bytes * self.b
        if err + grad_bytes > sum(self.worst):
            self.worst = (grad_bytes, err)

    def run(self, nodes, x: tuple[int, bool]) -> tuple[int, bool]:
        for node in nodes:
            x = getattr(self, node.kind)(node, x)
        return x

    # x: (storage id, an error flows into it)
    def weight(self, n, x):
        u = next(self.updates)
        keep = kept_channels(n.cin, u.ratio)
        x_id, x_rg = x
        if self.a.eager:
            rg, out = self._eager_weight(n, u, x)
        else:
            rg = x_rg or u.trains
            if keep:
                self.save(("in", x_id), n.in_elems * keep // n.cin * self.a.act_bytes * self.b)
            out = self.new()
            if n.act and rg:
                self.save(("mask", out), _bits(n.out_elems * self.b))
            elems = (n.cout if u.bias else 0) + n.weights * keep // n.cin
            self.weights += (4 * n.cout if u.bias else 0) + n.weights * keep // n.cin * self.a.weight_bytes
            self.state += elems
            self.params += elems
            self.tensors += bool(u.bias) + bool(keep)
        if u.trains:
            self.layers += 1
        if rg:
            grad = 0 if self.a.eager else ((n.cout if u.bias else 0) + n.weights * keep // n.cin) * self.a.grad_bytes
            self.step(n.out_elems, n.in_elems if x_rg else 0, grad)
            ratio = (1.0 if keep else 0.0) if self.a.eager else keep / n.cin
            work = n.macs * ((1.0 if x_rg else 0.0) + ratio)
            self.macs += work
            self.op_factor += work
        return out, rg

    def _eager_weight(self, n, u, x):
        """PyTorch's modules for the layer: [ZeroPad2d,] conv/linear, [BatchNorm], [in-place ReLU/ReLU6]."""
        x_id, x_rg = x
        act = 4 * self.b
        w_tr, b_tr = u.ratio > 0, u.bias and n.has_bias
        beta, gamma = u.bias and n.bn, u.scale and n.bn
        elems = (n.weights if w_tr else 0) + n.cout * (b_tr + beta + gamma)
        self.grads += 4 * elems
        self.state += elems
        self.params += elems
        self.tensors += w_tr + b_tr + beta + gamma
        self.weights += 4 * (n.weights + n.cout * n.has_bias) + ((16 * n.cout + 8) if n.bn else 0)
        if n.pad_elems:  # constant_pad_nd saves nothing; the conv then reads (and saves) the padded copy
            x_id, in_bytes = self.new(), n.pad_elems * act
        else:
            in_bytes = n.in_elems * act
        rg = x_rg or w_tr or b_tr
        if n.name == "fc":
            if w_tr:  # addmm saves its input for the weight gradient only
                self.save(x_id, in_bytes)
        elif rg:  # convolution saves its input (and weight) whenever any gradient is needed
            self.save(x_id, in_bytes)
        out = self.new()
        if n.bn:
            rg = rg or beta or gamma
            if rg:  # native batch norm (training): input, save_mean, save_invstd
                self.save(out, n.out_elems * act)
                self.save(self.new(), 4 * n.cout)
                self.save(self.new(), 4 * n.cout)
            out = self.new()
        if n.act and rg:  # in-place ReLU saves its result (the same storage); in-place ReLU6 (hardtanh_) its
            # input, which autograd must first clone since the op overwrites it
            self.save(out if n.act == "relu" else self.new(), n.out_elems * act)
        return rg, out

    def pool(self, n, x):
        x_id, rg = x
        out = self.new()
        if rg:
            if self.a.eager:
                self.save(x_id, n.in_elems * 4 * self.b)
                if n.pool == "max":
                    self.save(self.new(), n.out_elems * 8 * self.b)  # int64 indices
            elif n.pool == "max":
                self.save(("argmax", out), _bits(n.out_elems * self.b * max(0, math.ceil(math.log2(n.window)))))
            self.step(n.out_elems, n.in_elems)
            self.op_factor = 1.0
        return out, rg

    def gap(self, n, x):
        if x[1]:
            self.step(n.out_elems, n.in_elems)
            self.op_factor = 1.0
        return self.new(), x[1]

    def view(self, n, x):
        return x

    def residual(self, n, x):
        held = self.held
        if x[1]:
            self.held += n.in_elems  # the other branch's error at the block input waits while the body runs back
        body = self.run(n.body, x)
        self.held = held
        short = self.run(n.shortcut, x)
        rg = body[1] or short[1]
        out = self.new()
        if n.relu and rg:
            if self.a.eager:
                self.save(out, n.out_elems * 4 * self.b)  # torch.relu (not in place) saves its result
            else:
                self.save(("mask", out), _bits(n.out_elems * self.b))
        return out, rg


def _bits(n_bits: int) -> int:
    return -(-n_bits // 8)


def trace_segment(seg, updates, rg_in: bool, arith: Arith, batch: int, op_ms=None) -> SegmentCost:
    """A segment's :class:`SegmentCost`; ``op_ms(op, key)``: the profile's per-op latency (None: not additive)."""
    t = _Trace(arith, batch, updates)
    x = (0, rg_in)
    bwd_ms = 0.0
    for op, key in zip(seg.ops, seg.keys):
        t.op_factor = 0.0
        x = t.run(train_nodes(op), x)
        if op_ms is not None and t.op_factor:
            factor = t.op_factor / op.macs if op.macs else t.op_factor
            bwd_ms += op_ms(op, key)[0] * factor
    in_saved = t.saved.get(0, 0) if arith.eager else 0
    return SegmentCost(sum(t.saved.values()), in_saved, x[0] in t.saved, x[0] == 0, x[1], t.grads, t.weights,
                       t.state, t.tensors, t.params, t.layers, t.worst, t.macs, bwd_ms)


# ---------------------------------------------------------------- per device

_ONLY = {p: frozenset((p,)) for p in ("int8", "fp32")}


def precision_twin(arch: Architecture, precision: str) -> Architecture:
    """``arch`` at ``precision`` (``int8``: every weight at 8 bits, the full-int8 graph ``tflite-int8`` writes;
    ``fp32``: the float model): the graph a training step of that arithmetic runs."""
    if arch.precision == precision and all(seg.precisions == _ONLY[precision] for seg in arch.segments):
        return arch
    if precision == "int8":
        choices = {k: v for k, v in arch.choices if not k.endswith("_wbits")}
        choices.update(precision="int8", quant_mode=arch.choice.get("quant_mode", "ptq"))
    else:
        choices = {k: v for k, v in arch.choices if not k.endswith("_wbits") and k != "quant_mode"}
        choices["precision"] = "fp32"
    return Architecture.create(arch.space, arch.family, arch.input_shape, arch.classes, choices)


class TrainingEstimator:
    """Costs training steps on one profile, remembering each segment's share per context (bounded)."""

    def __init__(self, profile: DeviceProfile):
        self.profile = profile
        self._inference = estimator_for(profile)  # the forward graph's arena, flash and latency
        self._segments = HotMemo(SEGMENT_MEMO_SIZE)
        self._layers = HotMemo(SEGMENT_MEMO_SIZE)

    def cost(self, arch: Architecture, scheme: UpdateScheme | str, optimizer: str = "sgd", arith: str = "int8",
             batch: int = 1) -> TrainingCost:
        a = check_options(optimizer, arith, batch)
        scheme = parse_scheme(scheme)
        profile = self.profile
        twin = precision_twin(arch, a.precision)
        inference = self._inference.estimate(twin)
        counts = [self._n_layers(seg) for seg in twin.segments]
        updates = scheme.resolve(sum(counts))
        additive = profile.latency.additive and inference.supported
        t = self._compose(twin.segments, counts, updates, a, batch, profile.latency.op_latency if additive else None)
        state = OPTIMIZERS[optimizer] * t.state_elems * a.state_bytes
        if a.eager:
            state += 4 * t.trained_tensors if optimizer == "adam" else 0  # PyTorch's float32 step per tensor
            arena = batch * max(op.peak_bytes // (op.abits // 8) * 4 for op in twin.ops)
        else:
            arena = inference.peak_sram_bytes
        forward_ms = step_ms = None
        if inference.latency_ms is not None:
            backward = t.bwd_ms if additive else inference.latency_ms * t.bwd_macs / max(twin.macs, 1)
            forward_ms = batch * inference.latency_ms
            step_ms = batch * (inference.latency_ms + backward)
        return TrainingCost(profile.name, scheme.text, optimizer, a.name, batch, arena, t.saved,
                            t.grads if a.eager else t.worst[0], t.weights, state, t.worst[1], inference.flash_bytes,
                            step_ms, forward_ms, t.trained_params, t.updated_layers, len(updates),
                            profile.sram_budget_bytes, profile.flash_budget_bytes,
                            tuple(_notes(twin, a, batch, inference)))

    def _compose(self, segs, counts, updates, a: Arith, batch: int, op_ms) -> SegmentCost:
        """The whole network's share: each segment's (memoised per context) summed, a storage saved on both sides
        of a segment boundary counted once, the worst backward step kept."""
        lookup, i, rg, boundary_saved = self._segments.lookup, 0, False, False
        saved = grads = weights = state = tensors = params = layers = 0
        macs = ms = 0.0
        worst = (0, 0)
        for seg, k in zip(segs, counts):
            key = (seg, updates[i:i + k], rg, a.name, batch)
            s = lookup(key)
            if s is None:
                s = trace_segment(seg, key[1], rg, a, batch, op_ms)
                self._segments.put(key, s)
            i, rg = i + k, s.rg_out
            saved += s.saved - (s.in_saved if boundary_saved else 0)
            boundary_saved = s.out_saved or (s.out_is_in and (boundary_saved or s.in_saved > 0))
            grads += s.grads
            weights += s.weights
            state += s.state_elems
            tensors += s.trained_tensors
            params += s.trained_params
            layers += s.updated_layers
            macs += s.bwd_macs
            ms += s.bwd_ms
            if s.worst[0] + s.worst[1] > worst[0] + worst[1]:
                worst = s.worst
        return SegmentCost(saved, 0, False, False, rg, grads, weights, state, tensors, params, layers, worst, macs, ms)

    def _n_layers(self, seg) -> int:
        n = self._layers.lookup(seg)
        if n is None:
            n = len(weight_layers(seg))
            self._layers.put(seg, n)
        return n


def _notes(twin: Architecture, a: Arith, batch: int, inference) -> list[str]:
    notes = []
    if not inference.supported:
        notes.append(f"{inference.device} does not run {a.precision}: no step latency")
    if a.eager and batch == 1:
        single = sum(1 for n in weight_layers(twin) if n.bn and n.out_elems == n.cout)
        if single:
            notes.append(f"PyTorch refuses BatchNorm batch statistics over one value per channel ({single} "
                         f"layer{'s' if single > 1 else ''} at batch 1): train with --batch 2 or more, or with "
                         f"those BatchNorms frozen")
    return notes


# A search scores a few thousand architectures per scheme; segments are shared between them.
SEGMENT_MEMO_SIZE = 16_384
_ESTIMATORS = BoundedMemo(32)  # id(profile) → its TrainingEstimator (the estimator keeps its profile alive)


def training_estimator(profile: DeviceProfile) -> TrainingEstimator:
    """The :class:`TrainingEstimator` of ``profile`` (one per profile object)."""
    return _ESTIMATORS.get(id(profile), lambda: TrainingEstimator(profile))


def training_cost(arch: Architecture, profile: DeviceProfile | str, scheme: UpdateScheme | str,
                  optimizer: str = "sgd", arith: str = "int8", batch: int = 1) -> TrainingCost:
    """The cost of one training step of ``arch`` on ``profile`` (a profile, name or folder) updating ``scheme``
    (text such as ``"bias:4"`` or an :class:`UpdateScheme`) with ``optimizer`` (sgd | momentum | adam) in
    ``arith`` (int8: a compiled engine; fp32: an eager framework), at ``batch`` samples."""
    if not isinstance(profile, DeviceProfile):
        profile = load_profile(profile)
    return training_estimator(profile).cost(arch, scheme, optimizer, arith, batch)


# ---------------------------------------------------------------- what to trust, and the table

def training_trust(cost: TrainingCost, profile: DeviceProfile) -> list[str]:
    """Two lines: what the memory figures were checked against, and that the step latency is modeled."""
    if cost.arith == "fp32":
        memory = ("training memory (fp32 eager): saved-for-backward, gradient and optimizer bytes are what PyTorch "
                  "keeps for the built model, checked on random architectures of every space "
                  "(benchmarks/bench_train_memory.py); forward arena and scratch are estimates, the peak an upper "
                  "bound of the step's timeline")
    else:
        memory = ("training memory (int8 compiled): a model of a compiled training engine (MCUNetV3's Tiny Training "
                  "Engine semantics), not measured on a board; its forward arena is the TFLite Micro plan of the "
                  "int8 graph (checked against TFLM), its other parts are arithmetic pinned by a hand-computed table "
                  "(tests/test_training_cost.py); backward kernels' code is not in the flash figure")
    if cost.latency_ms is None:
        return [memory, f"training-step latency: none ({profile.name} does not run {ARITHS[cost.arith].precision})"]
    basis = latency_trust(profile, ARITHS[cost.arith].precision).basis
    latency = (f"training-step latency: modeled, not measured (no training step has been timed here): the forward "
               f"pass from {profile.name}'s {basis} latency source, the backward pass priced like the forward ops "
               f"of the same shape (input errors once, weight gradients by the updated share, by MACs)")
    return [memory, latency]


def format_table(cost: TrainingCost, title: str, trust: list[str]) -> str:
    """The ``workbench train-cost`` table: the parts, the peak against the device's SRAM, flash, latency."""
    rows = [(name, n, phase) for name, n, phase in cost.parts()]
    lines = [title,
             (f"updates {cost.updated_layers} of {cost.n_layers} weight layers ({cost.trained_params:,} parameter "
              f"elements); {ARITHS[cost.arith].text}; batch {cost.batch}"),
             f"{'part':<28}{'bytes':>12}{'KB':>10}  alive"]
    lines += [f"{name:<28}{n:>12,}{n / 1024:>10.1f}  {phase}" for name, n, phase in rows]
    peak = cost.peak_sram_bytes
    lines.append(f"{'peak training SRAM':<28}{peak:>12,}{peak / 1024:>10.1f}  = weights + state + saved + "
                 f"max(forward arena, gradients + scratch): the {cost.peak_phase} pass")
    budget = cost.sram_budget_bytes
    lines.append(f"{'SRAM budget':<28}{budget:>12,}{budget / 1024:>10.1f}  "
                 f"{'fits' if cost.fits_sram else 'does NOT fit'} ({100 * peak / budget:.1f} % used)")
    lines.append(f"{'flash':<28}{cost.flash_bytes:>12,}{cost.flash_bytes / 1024:>10.1f}  of "
                 f"{cost.flash_budget_bytes / 1024:.1f} KB: {'fits' if cost.fits_flash else 'does NOT fit'}")
    if cost.latency_ms is not None:
        lines.append(f"{'training step':<28}{cost.latency_ms:>12.2f} ms (modeled; forward alone "
                     f"{cost.forward_ms:.2f} ms)")
    lines += [f"note: {n}" for n in cost.notes]
    lines += trust
    return "\n".join(lines)


SHORT_PARTS = ("arena", "saved", "grads", "weights", "state", "scratch")  # column heads of the comparison


def format_comparison(costs: list[TrainingCost], title: str, trust: list[str]) -> str:
    """Several schemes of one trial side by side (``train-cost`` with ``--scheme`` repeated): the parts in KB,
    the peak, what training adds to the forward arena, whether it fits, the modeled step."""
    head = f"{'scheme':<34}" + "".join(f"{name:>9}" for name in SHORT_PARTS)
    head += f"{'peak KB':>9}{'added':>8}  {'fits':<5}{'step ms':>9}{'params':>9}"
    lines = [title, "KB per part (arena = forward arena; added = peak - forward arena: what training adds to "
             "inference)", head]
    for c in costs:
        row = f"{c.scheme:<34}" + "".join(f"{n / 1024:>9.1f}" for _, n, _ in c.parts())
        step = "-" if c.latency_ms is None else f"{c.latency_ms:.2f}"
        row += (f"{c.peak_sram_bytes / 1024:>9.1f}{(c.peak_sram_bytes - c.forward_arena) / 1024:>8.1f}  "
                f"{'yes' if c.fits_sram else 'NO':<5}{step:>9}{c.trained_params:>9,}")
        lines.append(row)
    budget = costs[0].sram_budget_bytes
    lines.append(f"SRAM budget {budget / 1024:.1f} KB; flash {costs[0].flash_bytes / 1024:.1f} KB of "
                 f"{costs[0].flash_budget_bytes / 1024:.1f} KB; {ARITHS[costs[0].arith].text}")
    return "\n".join(lines + trust)


# ---------------------------------------------------------------- what a search stores per device

SEARCH_OPTIMIZER, SEARCH_ARITH = "sgd", "int8"  # how a search with --train-scheme counts training memory
TRAIN_SRAM_FIELD = "train_sram_bytes"  # the prediction key the ``train_sram`` objective reads


def training_prediction(arch: Architecture, profile: DeviceProfile, scheme: UpdateScheme | str) -> dict:
    """The training part of a trial's stored prediction on ``profile``: peak training SRAM (bytes) as a compiled
    int8 engine with plain SGD counts it — the on-device setting MCUNetV3 trains in, and the one whose count
    the hand-computed tests pin down. Searches fix optimizer and arithmetic so a study has one meaning for it."""
    cost = training_estimator(profile).cost(arch, scheme, SEARCH_OPTIMIZER, SEARCH_ARITH)
    return {TRAIN_SRAM_FIELD: cost.peak_sram_bytes}
