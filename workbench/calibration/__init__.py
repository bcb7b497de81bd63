"""Measuring and fitting device profiles: the host profiler (per-op ONNX timings), whole-model timing,
the fit of a profile's latency model to published or measured timings (``workbench calibrate``), and the
calibration kit a board owner times.

Floor 8: it builds, exports and scores models to measure them. Nothing below imports it.
"""
