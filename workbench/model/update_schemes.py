"""Which parameters an on-device fine-tuning step updates: the ``--scheme`` grammar and its per-layer meaning.

Why a scheme and not "train everything": on a microcontroller the memory of a training step is decided by what
is updated. A weight gradient needs the layer's input activations kept from the forward pass, a bias gradient
does not (TinyTL, Cai et al., NeurIPS 2020), and layers below the lowest updated one need no backward pass at
all (MCUNetV3, Lin et al., "On-Device Training Under 256KB Memory", NeurIPS 2022). The schemes:

- ``full``: every parameter;
- ``last:K``: every parameter of the last K weight layers;
- ``bias:K``: the biases of the last K weight layers (TinyTL's bias-only update);
- ``classifier``: every parameter of the last weight layer (the classifier head; the same as ``last:1``);
- ``sparse:bias=K,w=I@R+J@S``: MCUNetV3's sparse update: the biases of the last K layers, plus the weights of
  layers I, J, … on a ratio R, S, … of their *input* channels (a layer whose weights are chosen has its bias
  updated too, as MCUNetV3 does). ``bias=`` or ``w=`` may be left out (not both); ``I`` alone means ratio 1.

"Layers" are the network's weight layers — convolutions (depthwise included) and fully connected layers — in
forward order, numbered from 1; a negative index counts from the end (-1 is the last layer). Inside a residual
block the shortcut's 1x1 convolution comes after the block's main branch (the order the model builder and the
TFLite lowering use).

Why input channels: ``dL/dW[o, i] = sum over positions of dL/dY[o] * X[i]``, so updating the weights of a subset
of input channels needs only those channels of the input kept for the backward pass, which is where the memory
goes; a subset of output channels would still need the whole input. MCUNetV3's reference code
(mit-han-lab/tiny-training, ``algorithm/core/utils/partial_backward.py``) selects input channels of plain
convolutions and the channels of depthwise ones the same way. A ratio keeps ``max(1, floor(channels * R))``
channels.

``sparse:auto`` is not a scheme but a request to choose one: a contribution analysis measures, on a task's data,
what each bias block and each layer's weights at each channel ratio gain, and picks the best sparse scheme under a
training-memory budget (:mod:`workbench.learning.contribution`). Only ``workbench adapt`` takes it (it has the
task and the trained model); :func:`parse_scheme` refuses it elsewhere with one line saying so, and
:func:`is_auto` lets the adapt command recognise it first. Pure parsing: no torch, no architecture needed until
:meth:`UpdateScheme.resolve`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from workbench._infra.errors import WorkbenchError

AUTO = "sparse:auto"
GRAMMAR = "full, classifier, last:K, bias:K, sparse:bias=K,w=I@R+J@S (e.g. sparse:bias=6,w=-1@0.5+-3@0.25)"


class LayerUpdate(NamedTuple):
    """What one weight layer updates: its bias, its weights on ``ratio`` of its input channels (0: frozen),
    and — ``scale`` — every other parameter it has in an eager framework (the BatchNorm scale)."""

    bias: bool = False
    ratio: float = 0.0
    scale: bool = False

    @property
    def trains(self) -> bool:
        return self.bias or self.ratio > 0 or self.scale


FROZEN = LayerUpdate()
ALL = LayerUpdate(True, 1.0, True)
BIAS = LayerUpdate(True, 0.0, False)


def kept_channels(channels: int, ratio: float) -> int:
    """Input channels whose weights a layer updates at ``ratio``: ``max(1, floor(channels * ratio))``, none at 0
    (a small tolerance so that 0.3 * 10 counts as 3, not 2.9999)."""
    if ratio <= 0:
        return 0
    return min(channels, max(1, math.floor(channels * ratio + 1e-9)))


@dataclass(frozen=True)
class UpdateScheme:
    """A parsed ``--scheme``; :meth:`resolve` gives each weight layer's :class:`LayerUpdate`."""

    kind: str  # full | classifier | last | bias | sparse
    k: int = 0  # last:K, bias:K, and sparse's bias count
    weights: tuple[tuple[int, float], ...] = ()  # sparse: (layer index as written, ratio)

    @property
    def text(self) -> str:
        """The canonical spelling (what tables and JSON show)."""
        if self.kind in ("full", "classifier"):
            return self.kind
        if self.kind in ("last", "bias"):
            return f"{self.kind}:{self.k}"
        parts = [f"bias={self.k}"] if self.k else []
        if self.weights:
            parts.append("w=" + "+".join(f"{i}@{r:g}" for i, r in self.weights))
        return "sparse:" + ",".join(parts)

    def __str__(self) -> str:
        return self.text

    def resolve(self, n_layers: int, flag: str = "--scheme") -> tuple[LayerUpdate, ...]:
        """Each of the ``n_layers`` weight layers' update, first layer first; one line naming ``flag`` when
        the scheme asks for layers the network does not have."""
        return _resolve(self, n_layers, flag)


@lru_cache(maxsize=4096)
def _resolve(scheme: UpdateScheme, n: int, flag: str) -> tuple[LayerUpdate, ...]:
    where = f"{flag} {scheme.text}"
    if n < 1:
        raise WorkbenchError(f"{where}: the network has no weight layer to update")
    if scheme.kind == "full":
        return (ALL,) * n
    if scheme.kind == "classifier":
        return (FROZEN,) * (n - 1) + (ALL,)
    if scheme.k > n:
        raise WorkbenchError(f"{where}: K={scheme.k} is larger than the network's {n} weight layers")
    if scheme.kind == "last":
        return (FROZEN,) * (n - scheme.k) + (ALL,) * scheme.k
    layers = [FROZEN] * (n - scheme.k) + [BIAS] * scheme.k
    for index, ratio in scheme.weights:
        if not (1 <= index <= n or -n <= index <= -1):
            raise WorkbenchError(f"{where}: layer {index} does not exist (the network has {n} weight layers: "
                                 f"1..{n}, or -1..-{n} from the end)")
        position = index - 1 if index > 0 else n + index
        if layers[position].ratio:
            raise WorkbenchError(f"{where}: layer {index} is chosen twice")
        layers[position] = LayerUpdate(True, ratio, False)
    return tuple(layers)


@lru_cache(maxsize=256)
def parse_scheme(text: str | UpdateScheme, flag: str = "--scheme") -> UpdateScheme:
    """``--scheme`` text → :class:`UpdateScheme`; one line naming ``flag`` (the option the text came from) and
    the accepted schemes otherwise (memoised: a search costs every architecture with the same scheme)."""
    if isinstance(text, UpdateScheme):
        return text
    raw = str(text).strip()
    name, _, arg = raw.partition(":")
    name = name.strip().lower()
    if name in ("full", "classifier") and not arg:
        return UpdateScheme(name)
    if name in ("last", "bias"):
        return UpdateScheme(name, _count(f"{flag} {raw}", arg, minimum=1))
    if name == "sparse" and arg.strip() and arg.strip() != "auto":
        return _parse_sparse(f"{flag} {raw}", arg)
    if is_auto(raw):
        raise WorkbenchError(f"{flag} sparse:auto: the scheme is chosen by contribution analysis on a task's data, "
                             f"which only `workbench adapt --task T --scheme sparse:auto --train-sram-budget KB` "
                             f"runs; give a scheme explicitly here (accepted: {GRAMMAR})")
    raise WorkbenchError(f"{flag}: unknown scheme {raw!r} (accepted: {GRAMMAR})")


def is_auto(text) -> bool:
    """Is ``text`` the ``sparse:auto`` request (any case and spacing)?"""
    return isinstance(text, str) and re.sub(r"\s+", "", text).lower() == AUTO


def _count(where: str, arg: str, minimum: int) -> int:
    arg = arg.strip()
    if not re.fullmatch(r"\d+", arg) or int(arg) < minimum:
        raise WorkbenchError(f"{where}: K must be an integer >= {minimum}, got {arg!r}")
    return int(arg)


def _parse_sparse(where: str, arg: str) -> UpdateScheme:
    k, weights, seen = 0, (), set()
    for part in arg.split(","):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or key not in ("bias", "w") or key in seen:
            raise WorkbenchError(f"{where}: expected bias=K and/or w=I@R+J@S, comma-separated, each once "
                                 f"(got {part.strip()!r})")
        seen.add(key)
        if key == "bias":
            k = _count(where, value, minimum=0)
        else:
            weights = tuple(_weight_item(where, item) for item in value.split("+"))
    if not k and not weights:
        raise WorkbenchError(f"{where}: updates nothing (give bias=K with K >= 1 or w=I@R)")
    return UpdateScheme("sparse", k, weights)


def _weight_item(where: str, item: str) -> tuple[int, float]:
    index, at, ratio = item.strip().partition("@")
    if not re.fullmatch(r"-?\d+", index.strip()) or int(index) == 0:
        raise WorkbenchError(f"{where}: layer index must be a non-zero integer (1 = first, -1 = last), "
                             f"got {index.strip()!r}")
    if not at:
        return int(index), 1.0
    try:
        value = float(ratio)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:
        raise WorkbenchError(f"{where}: ratio must be in (0, 1], got {ratio.strip()!r} for layer "
                             f"{index.strip()}")
    return int(index), value
