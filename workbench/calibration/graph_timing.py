"""Time an ONNX graph on this host: the session settings of :mod:`workbench._infra.onnx_graph`, the
statistic of :mod:`workbench._infra.timing`.

What the profiler's LUT rows, its overhead calibration, ``workbench calibrate --quick`` and the
fidelity/scoring benchmarks measure: one batch-1 inference, session creation excluded.
"""
from __future__ import annotations

from typing import Sequence

import onnx
import onnxruntime as ort

from workbench._infra.onnx_graph import input_for, make_session
from workbench._infra.timing import time_calls

DEFAULT_WARMUP = 100
DEFAULT_REPEATS = 1000
MAX_RUNS_PER_OP = 100_000  # warm-up or timed runs of one op: 100x the default, over an hour for a whole space


def time_session(sess: ort.InferenceSession, feed: dict, warmup: int, repeats: int) -> tuple[float, float, int]:
    """(ms, std ms, runs kept) of ``sess.run`` on ``feed`` (see :mod:`workbench._infra.timing`)."""
    run = sess.run
    t = time_calls(lambda: run(None, feed), warmup, repeats)
    return t.mean_ms, t.std_ms, t.kept


def measure(model: onnx.ModelProto, input_shape: Sequence[int] | None = None, warmup: int = DEFAULT_WARMUP,
            repeats: int = DEFAULT_REPEATS) -> tuple[float, float, int]:
    """(ms, std ms, runs kept) of one inference of ``model`` on a seeded random input.

    ``input_shape`` is checked against the model's input when given (the model itself knows its
    shape and dtype)."""
    sess = make_session(model)
    feed = input_for(sess)
    if input_shape is not None:
        got = tuple(next(iter(feed.values())).shape)
        want = tuple(input_shape) if len(input_shape) == len(got) else (1, *input_shape)
        if got != want:
            raise ValueError(f"model input is {got}, expected {want}")
    return time_session(sess, feed, warmup, repeats)
