"""Old module paths (before the move into packages by job, 0.2) kept working for one release.

``import workbench.cost`` still gives the module that now lives at ``workbench.hardware.cost`` — the same
module object, registered under both names in ``sys.modules``, so ``monkeypatch.setattr("workbench.cost.x")``
patches the real module — with a :class:`FutureWarning` naming the new path. Two old paths are packages now
and are not aliased: ``workbench.study`` and ``workbench.export`` re-export the old modules' public names
(their modules are ``workbench.study.schema`` and ``workbench.export.trial``).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

REMOVED_IN = "0.3"
MOVED = {
    "workbench.errors": "workbench._infra.errors",
    "workbench.notices": "workbench._infra.notices",
    "workbench.memo": "workbench._infra.memo",
    "workbench.safeio": "workbench._infra.safeio",
    "workbench.yamlio": "workbench._infra.yamlio",
    "workbench.atomic": "workbench._infra.atomic",
    "workbench.process_settings": "workbench._infra.process_settings",
    "workbench.processes": "workbench._infra.processes",
    "workbench.timing": "workbench._infra.timing",
    "workbench.onnx_graph": "workbench._infra.onnx_graph",
    "workbench.ops": "workbench.model.ops",
    "workbench.arch": "workbench.model.arch",
    "workbench.space": "workbench.model.space",
    "workbench.builder": "workbench.model.builder",
    "workbench.quant": "workbench.model.quant",
    "workbench.train": "workbench.model.train",
    "workbench.data": "workbench.model.data",
    "workbench.proxies": "workbench.model.proxies",
    "workbench.weights": "workbench.model.weights",
    "workbench.families": "workbench.model.families",
    "workbench.families.cnn1d": "workbench.model.families.cnn1d",
    "workbench.families.common": "workbench.model.families.common",
    "workbench.families.dscnn": "workbench.model.families.dscnn",
    "workbench.families.mbconv": "workbench.model.families.mbconv",
    "workbench.families.mlp": "workbench.model.families.mlp",
    "workbench.families.resnet": "workbench.model.families.resnet",
    "workbench.profiles": "workbench.hardware.profiles",
    "workbench.latency_model": "workbench.hardware.latency_model",
    "workbench.machine": "workbench.hardware.machine",
    "workbench.cost": "workbench.hardware.cost",
    "workbench.memory": "workbench.hardware.memory",
    "workbench.trust": "workbench.hardware.trust",
    "workbench.graph_import": "workbench.scoring.graph_import",
    "workbench.score": "workbench.scoring.score",
    "workbench.storage": "workbench.storages.storage",
    "workbench.recovery": "workbench.storages.recovery",
    "workbench.front": "workbench.study.front",
    "workbench.repeats": "workbench.study.repeats",
    "workbench.compare": "workbench.study.compare",
    "workbench.fingerprint": "workbench.study.fingerprint",
    "workbench.ranking": "workbench.search.ranking",
    "workbench.trial_source": "workbench.export.trial_source",
    "workbench.manifest": "workbench.export.manifest",
    "workbench.verify": "workbench.export.verify",
    "workbench.exporters": "workbench.export.formats",
    "workbench.exporters.onnx_format": "workbench.export.formats.onnx_format",
    "workbench.exporters.support": "workbench.export.formats.support",
    "workbench.exporters.tflite_format": "workbench.export.formats.tflite_format",
    "workbench.exporters.tflm_bundle": "workbench.export.formats.tflm_bundle",
    "workbench.exporters.tflm_check": "workbench.export.formats.tflm_check",
    "workbench.exporters.tflm_runner": "workbench.export.formats.tflm_runner",
    "workbench.calibrate": "workbench.calibration.calibrate",
    "workbench.calibration_kit": "workbench.calibration.kit",
    "workbench.profiler": "workbench.calibration.profiler",
    "workbench.op_graphs": "workbench.calibration.op_graphs",
    "workbench.qdq": "workbench.calibration.qdq",
    "workbench.graph_timing": "workbench.calibration.graph_timing",
    "workbench.op_overhead": "workbench.calibration.op_overhead",
    "workbench.host_profile": "workbench.calibration.host_profile",
}


def moved_message(old: str) -> str:
    return f"{old} moved to {MOVED[old]}: import it from there (the old path goes in {REMOVED_IN})"


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path and loads it as the module at its new path (one object, two names)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        warnings.warn(moved_message(spec.name), FutureWarning, stacklevel=2)
        module = importlib.import_module(MOVED[spec.name])
        spec.loader_state = module.__spec__  # importlib overwrites __spec__ next; exec_module puts it back
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state or module.__spec__


def install() -> None:
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())


def moved_attribute(name: str):
    """``workbench.<old>`` as an attribute of the package (``workbench.cost`` after ``import workbench``)."""
    old = f"workbench.{name}"
    if old not in MOVED:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    warnings.warn(moved_message(old), FutureWarning, stacklevel=3)
    module = importlib.import_module(MOVED[old])
    sys.modules.setdefault(old, module)
    return module
