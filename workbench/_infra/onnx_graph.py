"""The ONNX settings every graph the workbench writes or runs shares: opset, IR version, session.

The profiler's timing graphs (the ``host-cpu`` LUT) and the exported ``.onnx`` files are written
at one opset and run under one session configuration, so that what the LUT measured and what an
exported file measures are the same kind of number.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

OPSET = 21  # the first opset whose Q/DQ ops carry int4 (4-bit weight stages)
IR_VERSION = 10  # onnxruntime 1.32 reads IR <= 11; 10 keeps older runtimes happy too
THREADS = 1
PROVIDERS = ["CPUExecutionProvider"]
SEED = 0  # seeds the inputs of timing runs (their values do not change the time)


def session_options() -> ort.SessionOptions:
    """One intra-op and one inter-op thread, sequential, all graph optimisations, no spinning: the
    deployed single-core setting every measurement (per-op LUT, whole model, exported file) uses."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = THREADS
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


def settings_text() -> str:
    """:func:`session_options` in words, for LUT references and manifests."""
    return (f"onnxruntime {ort.__version__} CPU; intra/inter-op threads {THREADS}/{THREADS}, sequential, "
            f"ORT_ENABLE_ALL")


def make_session(model: onnx.ModelProto | str | Path) -> ort.InferenceSession:
    """A CPU session of an in-memory model or an ``.onnx`` file under :func:`session_options`."""
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(source, session_options(), providers=PROVIDERS)


def finish_model(graph: onnx.GraphProto) -> onnx.ModelProto:
    """A model of ``graph`` at :data:`OPSET` and :data:`IR_VERSION`."""
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                   producer_name="workbench")
    model.ir_version = IR_VERSION
    return model


_NP_TYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}


def input_for(sess: ort.InferenceSession, seed: int = SEED) -> dict:
    """A seeded random feed for the session's first input (standard normal floats, full-range integers)."""
    meta = sess.get_inputs()[0]
    shape, dtype = meta.shape, _NP_TYPES[meta.type]
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        data = rng.standard_normal(shape).astype(np.float32)
    else:
        info = np.iinfo(dtype)
        data = rng.integers(info.min, info.max + 1, size=shape, dtype=dtype)
    return {meta.name: data}
