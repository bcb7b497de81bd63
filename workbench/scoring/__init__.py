"""Scoring a model file someone already has (``.tflite`` or ``.onnx``) on device profiles.

Floor 3: reads the file into a format-neutral graph (:mod:`.graph_import`) and costs it with
:mod:`workbench.hardware` (:mod:`.score`).
"""
from workbench.scoring.score import ModelScore, format_score, import_model, score

__all__ = ["ModelScore", "format_score", "import_model", "score"]
