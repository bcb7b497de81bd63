"""What a candidate *costs* on a device: device profiles and their latency sources (LUTs, latency models),
the cost estimator, the TFLite Micro memory model, which machine this is, and how far to trust each number.

Floor 2: imports :mod:`workbench.model` and :mod:`workbench._infra` only.
"""
from workbench.hardware.cost import CostEstimate, estimate
from workbench.hardware.profiles import DeviceProfile, list_profiles, load_profile

__all__ = ["CostEstimate", "DeviceProfile", "estimate", "list_profiles", "load_profile"]
