"""Search spaces: YAML files (shipped or the user's own) loaded into validated objects that sample architectures.

A space names a model *family* (a registered lowering: ``mbconv``, ``dscnn``, ``cnn1d``), the
family's choices, and a quantisation policy part. Sampling goes through a :class:`Suggester`, so an
Optuna trial and a seeded RNG produce the same kind of :class:`~workbench.model.arch.Architecture`.
Adding a space means writing YAML only.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from workbench._infra import places
from workbench._infra.errors import WorkbenchError
from workbench._infra.yamlio import Fields, parse_yaml_mapping, read_yaml_text
from workbench.model.arch import Architecture
from workbench.model.families import FAMILIES

SPACES_DIR = places.shipped_dir(places.SPACES)  # the shipped spaces (read-only; the user's own: places.user_dir)


class Suggester(Protocol):
    def choose(self, name: str, choices: Sequence[Any]) -> Any: ...


class TrialSuggester:
    """Samples through an Optuna trial (``suggest_categorical``); single choices are fixed, not suggested."""

    def __init__(self, trial):
        self.trial = trial

    def choose(self, name, choices):
        return choices[0] if len(choices) == 1 else self.trial.suggest_categorical(name, list(choices))


class RandomSuggester:
    """Samples uniformly with a seeded RNG (benchmarks, LUT coverage, tests)."""

    def __init__(self, seed: int | random.Random = 0):
        self.rng = seed if isinstance(seed, random.Random) else random.Random(seed)

    def choose(self, name, choices):
        return choices[0] if len(choices) == 1 else self.rng.choice(list(choices))


class ExtremeSuggester:
    """Takes the smallest (``pick=min``) or largest (``pick=max``) of numeric choices, else the first: the
    space's smallest or largest candidate, for checks made before a search (fewest layers, most parameters)."""

    def __init__(self, pick: Callable[[Sequence], Any]):
        self.pick = pick

    def choose(self, name, choices):
        numeric = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)
        return self.pick(choices) if numeric else choices[0]


class RecordingSuggester:
    """Wraps another suggester and keeps every (name → value) it returned, in order."""

    def __init__(self, inner: Suggester):
        self.inner = inner
        self.values: dict[str, Any] = {}

    def choose(self, name, choices):
        value = self.inner.choose(name, choices)
        self.values[name] = value
        return value


@dataclass(frozen=True)
class QuantSpec:
    precisions: tuple[str, ...]
    modes: tuple[str, ...]
    weight_bits: tuple[int, ...]


@dataclass(frozen=True)
class DataShape:
    """What the training data dictates: sample shape (channel first) and number of classes."""

    shape: tuple[int, ...]
    classes: int


@dataclass(frozen=True)
class SearchSpace:
    name: str
    path: str
    description: str
    family: str
    dataset: str
    spec: Any
    quant: QuantSpec
    text: str = ""  # the YAML it came from, stored with studies so remote workers need no copy of the file

    def sample(self, suggester: Suggester, *, precisions: Sequence[str] | None = None,
               data: DataShape | None = None) -> Architecture:
        """Draw one architecture. ``precisions`` are those the target device runs (None: all)."""
        rec = RecordingSuggester(suggester)
        family = FAMILIES.get(self.family)
        input_shape, classes, stages = family.sample(self.spec, rec, data)
        self._sample_policy(rec, stages, precisions)
        return Architecture.create(self.name, self.family, input_shape, classes, rec.values)

    def _sample_policy(self, rec: RecordingSuggester, stages: Sequence[str], precisions) -> None:
        allowed = [p for p in self.quant.precisions if precisions is None or p in precisions]
        if not allowed:
            raise WorkbenchError(f"space {self.name!r} allows precisions {list(self.quant.precisions)}, "
                                 f"none of which the device runs ({list(precisions)})")
        if rec.choose("precision", allowed) == "fp32":
            return
        rec.choose("quant_mode", self.quant.modes)
        bits = [b for b in self.quant.weight_bits
                if precisions is None or (b == 8 and "int8" in precisions) or (b == 4 and "w4a8" in precisions)]
        for stage in stages:
            rec.choose(f"{stage}_wbits", bits)

    def random_archs(self, n: int, seed: int = 0, **kwargs) -> list[Architecture]:
        rng = random.Random(seed)
        return [self.sample(RandomSuggester(rng), **kwargs) for _ in range(n)]


def list_spaces() -> list[Path]:
    """Every space known by name: the user's own (:func:`workbench._infra.places.user_dir`), then the shipped ones
    theirs do not shadow; sorted by name."""
    return [e.path for e in places.entries(places.SPACES)]


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Load a space by name (``vision``: the user's own of that name, else the shipped one) or any YAML file by
    path."""
    if not str(name_or_path).strip():  # Path("") would be the current folder
        raise WorkbenchError(f"--space: the space name is empty ({str(name_or_path)!r}); give a name (see "
                             f"`workbench spaces`) or a .yaml path")
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = places.find(places.SPACES, str(name_or_path))
        if path is None:
            known = ", ".join(p.stem for p in list_spaces())
            raise WorkbenchError(f"unknown search space {str(name_or_path)!r} (known: {known}; or give a .yaml "
                                 f"path, or put it in {places.user_dir(places.SPACES)})")
    text = read_yaml_text(path)
    return replace(parse_space(parse_yaml_mapping(text, str(path)), str(path)), text=text)


def space_from_text(text: str, where: str) -> SearchSpace:
    """A space from YAML text (as stored with a study), read with the same bounds as a file."""
    return replace(parse_space(parse_yaml_mapping(text, where), where), text=text)


def parse_space(data: dict, file: str) -> SearchSpace:
    f = Fields(data, file)
    name = f.str("name")
    family_name = f.str("family", choices=FAMILIES.names())
    description = f.str("description") if f.has("description") else ""
    dataset = f.str("dataset") if f.has("dataset") else ""
    spec = FAMILIES.get(family_name).parse(f)
    quant = _parse_quant(f.sub("quantization", {"precision": ["fp32"]}))
    f.reject_unknown()
    return SearchSpace(name, file, description, family_name, dataset, spec, quant)


def _parse_quant(q: Fields) -> QuantSpec:
    precisions = q.str_choices("precision", ("fp32", "int8"))
    modes = q.str_choices("mode", ("ptq", "qat"), ["ptq"])
    bits = q.int_choices("weight_bits", [8], minimum=4, maximum=8)
    for b in bits:
        if b not in (4, 8):
            raise q.error(f"{b} is not a supported weight bit width (4 or 8)", "weight_bits")
    q.reject_unknown()
    return QuantSpec(precisions, modes, bits)


def enumerate_ops(spaces: Sequence[SearchSpace], precisions: Sequence[str]) -> list:
    """Every distinct fused op (by LUT key) the given spaces can produce at the given precisions."""
    by_key = {}
    for space in spaces:
        for op in FAMILIES.get(space.family).enumerate_ops(space.spec):
            if op.precision in precisions:
                by_key.setdefault(op.key, op)
    return [by_key[k] for k in sorted(by_key)]


def all_spaces() -> list[SearchSpace]:
    return [load_space(p) for p in list_spaces()]
