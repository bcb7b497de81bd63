"""What a candidate *costs* on a device: device profiles and their latency sources
(:mod:`workbench.hardware.latency`: per-op LUTs, latency models, and the registry a new kind of device adds its
source to), the cost estimator, the TFLite Micro memory model, which machine this is, and how far to trust each
number.

Floor 2: imports :mod:`workbench.model` and :mod:`workbench._infra` only.
"""
from workbench.hardware.cost import CostEstimate, estimate
from workbench.hardware.latency import LATENCY_SOURCES, LatencySource
from workbench.hardware.profiles import DeviceProfile, list_profiles, load_profile

__all__ = ["CostEstimate", "DeviceProfile", "LATENCY_SOURCES", "LatencySource", "estimate", "list_profiles",
           "load_profile"]
