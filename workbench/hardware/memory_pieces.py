"""An architecture's TFLM arena and flash composed from memoised per-segment pieces, equal to the byte to
:func:`workbench.hardware.memory.reference_memory`'s whole-graph computation.

Why: a search scores mostly *new* architectures built from segments (a stem, a stage, a head) it has met
before. Lowering the whole graph and planning it costs 0.1-0.3 ms per architecture; a piece per segment,
lowered and planned once, brings that to a few dictionary lookups and sums.

Why it is exact:

- the file, the persistent tail and the code are sums over the graph's operators, tensors and constants
  (:func:`~workbench.hardware.memory.file_bytes`, :func:`~workbench.hardware.memory.persistent`), so a
  piece keeps its share; only the int32 operands the converter stores once are kept by key and counted
  once (the first occurrence names the tensor), the operator kinds (for the code) are a union, and the
  counts that are rounded up (TFLM's aligned arrays) are summed before rounding;
- the arena: TFLM's greedy planner is global (largest buffer first, each at the first gap among the placed
  buffers that overlap it in time), but the graph is a chain of segments: every tensor of a segment
  overlaps in time only the segment's own tensors and its two boundary tensors (its input, the previous
  segment's output, and its output). A buffer's offset depends only on the buffers placed before it that
  overlap it, so (by induction in placement order) the whole plan restricted to one segment is the
  segment's own plan with its two boundary tensors pinned at their offsets in the whole plan
  (:meth:`Plan.peak`). A boundary's offset is the first gap among the buffers of its two segments placed
  before it; those depend on the segment's other boundary only if that one was placed earlier still.
  Resolving the boundaries in placement order therefore needs, per segment, "its buffers placed before
  this boundary, given the other boundary's offset" (:meth:`Plan.blocking_out`, :meth:`Plan.blocking_in`),
  memoised per segment and offset, and the boundary's offset itself per pair of neighbouring plans and
  the offsets it depends on (:func:`boundary_offset`).

A piece whose assumptions do not hold (an operator-less segment, an empty tensor, segments of mixed
activation widths) sends the architecture to the whole-graph computation, so the result is always the
reference's. ``tests/test_memory.py`` and ``benchmarks/bench_scoring.py`` check the equality.
"""
from __future__ import annotations

import threading

from workbench.hardware.memory import (
    HOST_TFLM,
    Arena,
    MemoryEstimate,
    Runtime,
    activation_buffers,
    const_file_bytes,
    first_gap,
    graph_file_bytes,
    kernel_code_bytes,
    op_file_bytes,
    op_persistent_bytes,
    persistent_bytes,
    place_in_turn,
    placement_order,
    reference_memory,
    scratch_buffers,
    tensor_file_bytes,
)
from workbench.model.tflite_graph import lower_segment

# Offsets a segment's plan remembers per query kind. A segment's boundary offsets take few values (each is
# a sum of neighbouring tensor sizes), so 64 hold them all in the shipped spaces; past that the memo is
# emptied and refilled (the piece itself stays, bounded by the runtime's memo).
PLAN_MEMO_SIZE = 64
# Boundary offsets a segment's plan remembers for its output boundary, per next segment's plan (a stage is
# followed by every variant of the next stage: a few hundred in the shipped spaces) and offsets.
JOIN_MEMO_SIZE = 1024
# An architecture's counts (tensors, operators, scratch requests, operator bytes, file bytes) are summed
# over its pieces before TFLM's rounding; each piece packs them into one integer, COUNT_BITS per count, so
# composing them is one integer sum (no count of a graph comes near 2**48).
COUNT_BITS = 48
COUNTS = 5


class Plan:
    """One segment's buffers for TFLM's planner, with the answers composing asks of them, memoised.

    ``inp``/``out``: indices of the boundary buffers (the segment's input, the previous segment's output:
    None in the first segment; its output). Buffer indices follow the whole graph's order (tensors in
    creation order, then scratch requests by step), so ties in size break the same way."""

    __slots__ = ("buffers", "inp", "out", "out_size", "in_first", "out_first", "free_out", "free_in", "order",
                 "_fixed", "_fixed_placed", "_fixed_offsets", "_blocking_out", "_blocking_in", "_peaks", "_joins")

    def __init__(self, buffers: list[tuple[int, int, int]], inp: int | None, out: int):
        self.buffers = buffers
        self.inp, self.out = inp, out
        self.out_size = buffers[out][0]
        in_size = -1 if inp is None else buffers[inp][0]
        # which boundary the planner places first (equal sizes: the later buffer, the output)
        self.in_first = in_size > self.out_size
        self.out_first = inp is not None and not self.in_first
        # the buffers placed before both boundaries land where they land wherever the boundaries go: placed
        # once, the planner goes on from there for each pair of boundary offsets asked
        self.order = placement_order(buffers)
        self._fixed = min(self.order.index(b) for b in (inp, out) if b is not None)
        self._fixed_placed: list = []
        self._fixed_offsets = [0] * len(buffers)
        place_in_turn(buffers, self.order[:self._fixed], self._fixed_placed, self._fixed_offsets)
        self._blocking_out: dict = {}
        self._blocking_in: dict = {}
        self._peaks: dict = {}
        self._joins: dict = {}  # (next plan, offsets its output boundary depends on) → that boundary's offset
        # what blocks a boundary placed before the segment's other one (or in the first segment): fixed
        self.free_out = self._blocking(out, None, None)
        self.free_in = () if inp is None else self._blocking(inp, None, None)

    def blocking_out(self, in_offset: int) -> tuple:
        """Sorted ``(offset, end)`` of the buffers placed before the output boundary that overlap it, the
        input boundary (placed before it: :attr:`in_first`) being at ``in_offset``. (:attr:`free_out`:
        the same when the input boundary comes later.)"""
        hit = self._blocking_out.get(in_offset)
        if hit is None:
            hit = _remember(self._blocking_out, in_offset, self._blocking(self.out, self.inp, in_offset))
        return hit

    def blocking_in(self, out_offset: int) -> tuple:
        """Sorted ``(offset, end)`` of the buffers placed before the input boundary that overlap it, the
        output boundary (placed before it: :attr:`out_first`) being at ``out_offset``. (:attr:`free_in`:
        the same when the output boundary comes later or is the graph's output.)"""
        hit = self._blocking_in.get(out_offset)
        if hit is None:
            hit = _remember(self._blocking_in, out_offset, self._blocking(self.inp, self.out, out_offset))
        return hit

    def peak(self, in_offset: int | None, out_offset: int | None) -> int:
        """The highest end of the segment's buffers with its boundaries pinned (None: planned freely —
        the graph's input and output)."""
        key = (in_offset, out_offset)
        hit = self._peaks.get(key)
        if hit is None:
            pinned = {i: o for i, o in ((self.inp, in_offset), (self.out, out_offset)) if o is not None}
            hit = _remember(self._peaks, key, max(o + b[0] for o, b in zip(self.place(pinned), self.buffers)))
        return hit

    def place(self, pinned: dict[int, int] | None) -> list[int]:
        """:func:`~workbench.hardware.memory.place` of the segment's buffers, boundaries ``pinned``."""
        offsets = self._fixed_offsets[:]
        place_in_turn(self.buffers, self.order[self._fixed:], self._fixed_placed[:], offsets, pinned)
        return offsets

    def _blocking(self, target: int, other: int | None, other_offset: int | None) -> tuple:
        offsets = self.place(None if other_offset is None else {other: other_offset})
        _, first, last = self.buffers[target]
        blocking = []
        for i in self.order:
            if i == target:
                break
            size, f, l_ = self.buffers[i]
            if f <= last and first <= l_:
                blocking.append((offsets[i], offsets[i] + size))
        return tuple(sorted(blocking))


def depends_on(buffers, target: int) -> set[int]:
    """The buffers whose offsets ``target``'s offset depends on, itself included: those placed before it that
    overlap it in time, and theirs, transitively."""
    order = placement_order(buffers)
    rank = {i: r for r, i in enumerate(order)}
    needed = {target}
    for i in reversed(order[:rank[target]]):  # latest first: what could depend on i is already known
        _, first, last = buffers[i]
        if any(buffers[d][1] <= last and first <= buffers[d][2] for d in needed if rank[d] > rank[i]):
            needed.add(i)
    return needed


def _remember(memo: dict, key, value, bound: int = PLAN_MEMO_SIZE):
    if len(memo) >= bound:
        memo.clear()
    memo[key] = value
    return value


class Piece:
    """A segment's share of an architecture's memory on one runtime, in its context (first segment or not,
    followed by a convolution or not): its two plans and its additive parts."""

    __slots__ = ("entry", "exit", "activations", "head", "in_aside", "out_aside", "counts", "operands", "codes",
                 "code_mask", "graph_file_bytes", "_peaks")

    def __init__(self, seg, feeds_conv: bool, input_shape, runtime: Runtime):
        width = 1 if all(op.abits == 8 for op in seg.ops) else 4
        g, out = lower_segment(seg.ops, width, feeds_conv, input_shape)
        first = input_shape is not None
        buffers = activation_buffers(g)
        # the chain the composition assumes: one buffer per tensor (none empty), the output written last by
        # the last operator, and a segment taking the previous one's output, of the same width
        # (estimate_memory compares ``entry`` with the previous piece's ``exit``; False never matches)
        if not (g.ops and len(buffers) == len(g.tensors) == out + 1 and g.ops[-1].output == out):
            self.entry = False  # its architectures are computed from the whole graph
            return
        self.entry = None if first else (width, buffers[0][0])
        self.exit = (width, buffers[out][0])
        self.activations = Plan(buffers, None if first else 0, out)
        scratch = scratch_buffers(g, runtime)
        self.head = Plan(buffers + scratch, None if first else 0, out) if scratch else self.activations
        # no scratch request among what the input's / output's offset depends on (see compose)
        requests = range(len(buffers), len(buffers) + len(scratch))
        self.in_aside = first or not any(i in depends_on(self.head.buffers, 0) for i in requests)
        self.out_aside = not any(i in depends_on(self.head.buffers, out) for i in requests)
        sums, operands = additive_parts(g, first, len(scratch))
        self.counts = sum(n << (COUNT_BITS * i) for i, n in enumerate(sums))
        self.operands = tuple(operands.items())
        self.codes = frozenset(op.code for op in g.ops)
        self.code_mask = code_mask(self.codes)
        self.graph_file_bytes = graph_file_bytes(g.ops[-1].role if g.ops else None)  # when it ends the graph
        self._peaks: dict = {}

    def peaks(self, in_offset: int | None, out_offset: int | None) -> tuple[int, int]:
        """(activations, head) peaks of the segment, its boundaries at the same offsets in both plans."""
        key = (in_offset, out_offset)
        hit = self._peaks.get(key)
        if hit is None:
            hit = _remember(self._peaks, key, (self.activations.peak(*key), self.head.peak(*key)))
        return hit


_CODE_BITS: dict[str, int] = {}  # TFLite operator kind → its bit in a piece's code_mask (a few dozen kinds)
_CODE_BITS_LOCK = threading.Lock()


def code_mask(codes) -> int:
    """The operator kinds ``codes`` as bits of one integer: an architecture's kinds are the pieces' masks
    or-ed together, and its runtime code is remembered per mask."""
    with _CODE_BITS_LOCK:
        return sum(1 << _CODE_BITS.setdefault(code, len(_CODE_BITS)) for code in set(codes))


def unpack_counts(total: int) -> list[int]:
    """The :data:`COUNTS` counts summed into ``total`` (a sum of pieces' ``counts``)."""
    mask = (1 << COUNT_BITS) - 1
    return [(total >> (COUNT_BITS * i)) & mask for i in range(COUNTS)]


def additive_parts(g, first: bool, n_scratch: int) -> tuple[tuple, dict]:
    """What compose() adds up for a segment's graph ``g``: (persistent tensors — activations it creates and
    constants but the shared operands —, operators, scratch requests, the operators' persistent bytes, file
    bytes), and the shared operands' file bytes by key (first occurrence)."""
    quantized = g.width == 1
    ranks = g.ranks if first else g.ranks[1:]  # a later segment's input is the previous segment's tensor
    unkeyed = [c for op in g.ops for c in op.consts if c.key is None]
    operands: dict = {}
    for op in g.ops:
        for c in op.consts:
            if c.key is not None and c.key not in operands:
                operands[c.key] = const_file_bytes(c, quantized)
    file = (sum(op_file_bytes(op) for op in g.ops) + sum(tensor_file_bytes(r, quantized) for r in ranks)
            + sum(const_file_bytes(c, quantized) for c in unkeyed))
    op_bytes = sum(op_persistent_bytes(op) for op in g.ops)
    return (len(ranks) + len(unkeyed), len(g.ops), n_scratch, op_bytes, file), operands


def estimate_memory(arch, runtime: Runtime = HOST_TFLM) -> MemoryEstimate:
    """Arena and flash of ``arch``'s export on ``runtime``, composed from the pieces of its segments (kept
    by the runtime, bounded): what :func:`workbench.hardware.memory.reference_memory` computes from the
    whole graph, to the byte."""
    segs = arch.segments
    lookup = runtime.memo.lookup
    pieces = []
    link = None  # what the next piece must start from: the previous piece's exit (none for the first)
    # a piece's context: its segment, whether a plain convolution follows, the graph's input shape (first only)
    contexts = [(seg, after.starts_plain_conv, None) for seg, after in zip(segs, segs[1:])]
    contexts.append((segs[-1], False, None))
    contexts[0] = (segs[0], contexts[0][1], arch.input_shape)
    for key in contexts:
        piece = lookup(key)
        if piece is None:
            piece = Piece(*key, runtime)
            runtime.memo.put(key, piece)
        if piece.entry != link:
            return reference_memory(arch, runtime)
        link = piece.exit
        pieces.append(piece)
    return compose(pieces, runtime)


def compose(pieces: list[Piece], runtime: Runtime) -> MemoryEstimate:
    """The memory estimate of the graph the pieces form, in order.

    The head (activations + scratch) is a second plan. A scratch request can move a boundary only through
    a chain of buffers, each placed before the next and overlapping it, that reaches one of its own segment's
    boundaries (a scratch buffer overlaps its segment's buffers only, and a chain leaves a segment through a
    boundary): :func:`head_offsets` resolves again only the boundaries such a chain reaches
    (:func:`depends_on`) and those depending on a boundary that moved."""
    counts = kinds = 0
    operands: dict = {}
    for piece in pieces:
        counts += piece.counts
        kinds |= piece.code_mask
        for key, size in piece.operands:  # an operand stored once: the first segment that uses it counts it
            operands.setdefault(key, size)
    n_tensors, n_ops, n_scratch, op_bytes, file = unpack_counts(counts)
    plans = [p.activations for p in pieces]
    order = placement(plans)
    offsets = boundary_offsets(plans, order)
    heads, moved = head_offsets(pieces, order, offsets) if n_scratch else (plans, offsets)
    if moved == offsets:  # both plans' boundaries alike: one memo read per piece for both peaks
        activations = head = 0
        in_offset = None
        for piece, out_offset in zip(pieces, [*offsets, None]):
            acts, high = piece._peaks.get((in_offset, out_offset)) or piece.peaks(in_offset, out_offset)
            activations = acts if acts > activations else activations
            head = high if high > head else head
            in_offset = out_offset
    else:
        activations, head = max(plan_peaks(plans, offsets)), max(plan_peaks(heads, moved))
    file += pieces[-1].graph_file_bytes + sum(operands.values())
    tail = persistent_bytes(runtime, n_tensors + len(operands), n_ops, n_scratch, op_bytes)
    code = runtime.memo.lookup(("code", kinds))  # few distinct operator sets: remembered with the pieces
    if code is None:
        code = kernel_code_bytes(frozenset().union(*[p.codes for p in pieces]), runtime)
        runtime.memo.put(("code", kinds), code)
    return MemoryEstimate(Arena(activations, head - activations, tail), file, code)


def placement(plans: list[Plan]) -> list[tuple[int, int]]:
    """(size, index) of the boundary tensors (the output of every segment but the last) in the order the
    planner places them: largest first, ties the later one first."""
    return sorted(zip([p.out_size for p in plans[:-1]], range(len(plans) - 1)), reverse=True)


def boundary_offsets(plans: list[Plan], order) -> list[int]:
    """Where the planner puts each boundary tensor in the whole graph's plan, resolved in placement
    ``order`` (see the module's docstring)."""
    offsets: list = [None] * (len(plans) - 1)  # boundary j: the output of segment j
    for size, j in order:
        offsets[j] = boundary_offset(plans, j, size, offsets)
    return offsets


def head_offsets(pieces: list[Piece], order, offsets: list[int]) -> tuple[list[Plan], list[int]]:
    """The head plans and their boundary offsets. A boundary lands where the activations' plan put it unless
    a scratch request of one of its two segments is among what its offset depends on (the piece's
    ``out_aside``/``in_aside``), or a boundary it depends on (placed before it) moved; compose() explains why
    a scratch request reaches no further."""
    heads = [p.head for p in pieces]
    last = len(pieces) - 1
    moved = offsets[:]
    for size, j in order:
        left, right = pieces[j], pieces[j + 1]
        if (left.out_aside and right.in_aside and not (left.head.in_first and moved[j - 1] != offsets[j - 1])
                and not (right.head.out_first and j + 1 < last and moved[j + 1] != offsets[j + 1])):
            continue
        moved[j] = boundary_offset(heads, j, size, moved)
    return heads, moved


def boundary_offset(plans: list[Plan], j: int, size: int, offsets: list) -> int:
    """The offset of boundary ``j`` (``size`` bytes): the first gap among the buffers of its two segments
    placed before it that overlap it, given the offsets of the boundaries placed before it (remembered by
    the left plan per right plan and those offsets)."""
    left, right = plans[j], plans[j + 1]
    key = (right, offsets[j - 1] if left.in_first else None,
           offsets[j + 1] if right.out_first and j + 2 < len(plans) else None)
    hit = left._joins.get(key)
    if hit is None:
        hit = _remember(left._joins, key, join_offset(left, right, size, *key[1:]), JOIN_MEMO_SIZE)
    return hit


def join_offset(left: Plan, right: Plan, size: int, in_offset: int | None, out_offset: int | None) -> int:
    """The offset of the boundary between ``left`` and ``right`` (``size`` bytes), ``left``'s input boundary
    at ``in_offset`` and ``right``'s output boundary at ``out_offset`` where they are placed before it (None:
    placed after it, or the graph's output)."""
    blocking = left.free_out if in_offset is None else left.blocking_out(in_offset)
    more = right.free_in if out_offset is None else right.blocking_in(out_offset)
    if more:
        blocking = sorted(blocking + more) if blocking else more
    return first_gap(blocking, size) if blocking else 0


def plan_peaks(plans: list[Plan], offsets: list[int]) -> list[int]:
    """Each segment's highest buffer end, its boundaries at ``offsets``."""
    return [plan.peak(o_in, o_out) for plan, (o_in, o_out) in zip(plans, boundary_pairs(offsets))]


def boundary_pairs(offsets: list[int]):
    """(input, output) boundary offsets of each segment in turn: None for the graph's input and output (free)."""
    return zip([None, *offsets], [*offsets, None])
