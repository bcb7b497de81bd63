"""A concrete architecture: the choices sampled from a search space, plain and hashable.

An :class:`Architecture` holds only data (space name, family, input shape, classes and the
name→value choices, quantisation policy included), so it round-trips through JSON into the
Optuna storage and back. Its :attr:`ops` — the fused-operator schedule — is derived by the
family's lowering and is what both the cost estimator and the model builder consume.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from workbench._infra.errors import WorkbenchError
from workbench._infra.memo import cached_attribute
from workbench.model import families
from workbench.model.ops import Op


@dataclass(frozen=True)
class Architecture:
    space: str
    family: str
    input_shape: tuple[int, ...]
    classes: int
    choices: tuple[tuple[str, Any], ...]

    @classmethod
    def create(cls, space: str, family: str, input_shape, classes: int, choices: dict) -> "Architecture":
        return cls(space, family, tuple(int(s) for s in input_shape), int(classes), tuple(sorted(choices.items())))

    @cached_attribute
    def choice(self) -> dict[str, Any]:
        return dict(self.choices)

    @cached_attribute
    def segments(self) -> tuple:
        """The op schedule in memoised segments (stem, stages, head): what lowering returns."""
        return _families().FAMILIES.get(self.family).lower(self)

    @cached_attribute
    def ops(self) -> tuple[Op, ...]:
        return tuple(op for seg in self.segments for op in seg.ops)

    # ---- quantisation policy (part of the choices) ----
    @property
    def precision(self) -> str:
        return self.choice.get("precision", "fp32")

    @property
    def quant_mode(self) -> str:
        return self.choice.get("quant_mode", "none") if self.precision != "fp32" else "none"

    def weight_bits(self, stage: str) -> int:
        """Weight bits of a stage; stem/head/classifier and unlisted stages stay at 8 bits when quantised."""
        if self.precision == "fp32":
            return 32
        return int(self.choice.get(f"{stage}_wbits", 8))

    @property
    def precision_label(self) -> str:
        """``fp32``, ``int8``, or ``w4a8`` when any stage keeps 4-bit weights (its stem and head stay 8-bit): the
        narrowest kernels the model needs, in the vocabulary of a device profile's ``precisions:`` — what the
        front's ``prec`` column prints and ``pareto --precision`` filters on."""
        if self.precision != "fp32" and any(int(v) < 8 for k, v in self.choices if k.endswith("_wbits")):
            return "w4a8"
        return self.precision

    @property
    def activation_bits(self) -> int:
        return 32 if self.precision == "fp32" else 8

    @property
    def policy(self) -> dict[str, Any]:
        """The quantisation policy as stored with a trial and in export manifests."""
        stage_bits = {k[: -len("_wbits")]: v for k, v in self.choices if k.endswith("_wbits")}
        return {"precision": self.precision, "mode": self.quant_mode, "stage_weight_bits": stage_bits,
                "activation_bits": self.activation_bits}

    # ---- totals over the op schedule (device independent) ----
    @property
    def macs(self) -> int:
        return sum(seg.macs for seg in self.segments)

    @property
    def n_params(self) -> int:
        return sum(seg.params for seg in self.segments)

    @property
    def weight_bytes(self) -> int:
        return sum(seg.weight_bytes for seg in self.segments)

    @property
    def peak_sram_bytes(self) -> int:
        return max(seg.peak_bytes for seg in self.segments)

    @property
    def n_layers(self) -> int:
        return sum(seg.n_layers for seg in self.segments)

    @property
    def op_keys(self) -> tuple[str, ...]:
        return tuple(key for seg in self.segments for key in seg.keys)

    # ---- serialisation ----
    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space, "family": self.family, "input_shape": list(self.input_shape),
                "classes": self.classes, "choices": dict(self.choices)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Architecture":
        try:
            return cls.create(data["space"], data["family"], data["input_shape"], data["classes"], data["choices"])
        except (KeyError, TypeError, ValueError) as exc:
            raise WorkbenchError(f"not a valid architecture record ({exc})")

    @classmethod
    def from_json(cls, text: str) -> "Architecture":
        return cls.from_dict(json.loads(text))

    def summary(self) -> str:
        """One line for tables and hover text."""
        return _families().FAMILIES.get(self.family).summary(self)


def _families():
    """The family registry, imported on first use (families import this module)."""
    return families
