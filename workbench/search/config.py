"""What a search is: a validated, frozen configuration — and the one place its defaults and choices live.

:class:`SearchConfig` holds the loaded space, device, data and every option, each checked once, when the
config is made (:meth:`SearchConfig.load` takes names or paths the way the CLI and notebooks give them).
It does no I/O on a storage: the runner (:class:`workbench.search.Search`) opens the study. The CLI takes
its defaults from the field defaults here (:func:`default`) and its choices from the registries
(:data:`~workbench.search.samplers.SAMPLERS`, :data:`~workbench.model.evaluators.EVALUATORS`); a study
stores the config as :class:`workbench.study.schema.StudySettings` (:meth:`SearchConfig.to_settings`) and a
worker rebuilds it from there (:meth:`SearchConfig.from_settings`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

from workbench._infra.errors import WorkbenchError, check_count
from workbench._infra.processes import memory_headroom_bytes
from workbench.hardware.profiles import DeviceProfile, load_profile, profiles_with
from workbench.model.data import check_against_space, load_dataset
from workbench.model.evaluators import EVALUATORS
from workbench.model.train_graph import weight_layers
from workbench.model.update_schemes import parse_scheme
from workbench.model.space import ExtremeSuggester, SearchSpace, load_space, space_from_text
from workbench.search.samplers import SAMPLERS, SamplerContext
from workbench.storages.storage import check_study_name
from workbench.study.front import study_device
from workbench.study.objectives import check_objectives
from workbench.study.schema import StudySettings


# Upper limits of the numeric options, checked where each enters (a value past them is a typo or an attack, and
# past 64 bits it would overflow inside numpy/torch): Optuna's samplers seed numpy's RandomState (< 2**32); a
# study of more trained trials, a longer training or a larger NSGA-II generation than these never finishes on
# the machines the workbench targets.
MAX_SEED = 2 ** 32 - 1
MAX_TRIALS = 100_000
MAX_EPOCHS = 10_000
MAX_POPULATION = 10_000


@dataclass(frozen=True)
class SearchConfig:
    """A search's definition. Build it with :meth:`load` (names, paths or loaded objects); constructing it
    directly checks the options the same way (``__post_init__`` only validates, it changes nothing)."""

    space: SearchSpace
    device: DeviceProfile
    data: Any  # workbench.model.data.Dataset
    study_name: str
    profiles: tuple[DeviceProfile, ...]  # every profile each trial is scored on: the shipped ones and the target
    data_source: str = ""  # the name or path the data was given by (a worker loads it again from there)
    data_notes: tuple[str, ...] = ()  # how the data are fitted to the space (printed as ``note:`` lines)
    sampler: str = "tpe"
    seed: int = 0
    latency_budget_ms: float | None = None
    objectives: tuple[str, ...] = ("accuracy", "latency")
    epochs: int = 3
    population: int = 16
    evaluator: str = "train"
    train_scheme: str | None = None  # update scheme whose training memory each candidate is costed with
    train_sram_budget_kb: float | None = None  # reject candidates needing more training SRAM, before training

    def __post_init__(self):
        if not isinstance(self.objectives, tuple):
            raise TypeError("SearchConfig.objectives must be a tuple (SearchConfig.load converts a list)")
        check_objectives(self.objectives)
        check_study_name(self.study_name)
        SAMPLERS.check(self.sampler)
        EVALUATORS.check(self.evaluator)
        if self.latency_budget_ms is not None and not 0 < self.latency_budget_ms < float("inf"):
            raise WorkbenchError(f"--latency-budget: must be > 0 ms, got {self.latency_budget_ms}")
        for flag, value, least, most in (("--epochs", self.epochs, 1, MAX_EPOCHS),
                                         ("--population", self.population, 2, MAX_POPULATION),
                                         ("--seed", self.seed, 0, MAX_SEED)):
            check_count(flag, value, least, most)
        if self.device.name not in {p.name for p in self.profiles}:
            raise WorkbenchError(f"device {self.device.name}: not among the profiles the search scores")
        self._check_training()

    def _check_training(self) -> None:
        """A train scheme only with something that uses it (the ``train_sram`` objective or its budget), and
        one that every network of the space can take — refused here, before a storage is opened."""
        budget, wanted = self.train_sram_budget_kb, "train_sram" in self.objectives
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float))
                                   or not 0 < budget < float("inf")):
            raise WorkbenchError(f"--train-sram-budget: must be a number > 0 KB, got {budget!r}")
        if self.train_scheme is None:
            if wanted or budget is not None:
                raise WorkbenchError("--train-scheme: needed with the train_sram objective or --train-sram-budget")
            return
        if not wanted and budget is None:
            raise WorkbenchError("--train-scheme: only used with --objectives ...,train_sram or --train-sram-budget; "
                                 "give one of them, or leave it out")
        scheme = parse_scheme(self.train_scheme, "--train-scheme")
        fewest = fewest_weight_layers(self.space, self.device, self.data)
        try:
            scheme.resolve(fewest, "--train-scheme")
        except WorkbenchError as exc:  # a K beyond the smallest network: say which network that is
            raise WorkbenchError(f"{exc} (the fewest a network of space {self.space.name!r} has)") from None

    @classmethod
    def load(cls, space: SearchSpace | str, device: DeviceProfile | str, data: Any = None, *,
             study_name: str | None = None, **options) -> "SearchConfig":
        """Load and check everything a search needs — before any storage is opened, so a refused command
        leaves no study, no trial and no changed setting behind. ``data=None``: the space's dataset."""
        space = load_space(space) if isinstance(space, str) else space
        device = load_profile(device) if isinstance(device, str) else device
        if data is None:
            data = space.dataset or None
            if data is None:
                raise WorkbenchError(f"--data: space {space.name!r} names no default dataset; give one")
        source = data if isinstance(data, str) else getattr(data, "name", "")
        dataset = load_dataset(data) if isinstance(data, str) else data
        notes = tuple(check_against_space(dataset, space, source))
        if "objectives" in options:
            options["objectives"] = tuple(options["objectives"])
        if options.get("train_scheme") is None and ("train_sram" in options.get("objectives", ())
                                                    or options.get("train_sram_budget_kb") is not None):
            options["train_scheme"] = DEFAULT_TRAIN_SCHEME
        config = cls(space, device, dataset, study_name if study_name is not None else f"{space.name}-{device.name}",
                     tuple(profiles_with(device).values()), source, notes, **options)
        check_latency_coverage(space, config.profiles)
        check_fits_memory(space, device, dataset)
        return config

    # ---------------------------------------------------------------- stored form
    def to_settings(self, trials: int | None = None) -> StudySettings:
        """The study's stored settings (its user attributes: ``to_settings().to_attrs()``)."""
        return StudySettings(space=self.space.name, space_yaml=self.space.text, device=self.device.name,
                             data=self.data.name, objectives=self.objectives, latency_budget_ms=self.latency_budget_ms,
                             epochs=self.epochs, seed=self.seed, sampler=self.sampler, evaluator=self.evaluator,
                             space_file=self.space.path or None, device_file=self.device.path or None,
                             data_source=self.data_source, trials=trials, train_scheme=self.train_scheme,
                             train_sram_budget_kb=self.train_sram_budget_kb)

    @classmethod
    def from_settings(cls, settings: StudySettings, study_name: str, *, device: DeviceProfile | str | None = None,
                      data: Any = None, **options) -> "SearchConfig":
        """The config of a stored study (a worker joining it): the space from its stored YAML, the device by
        the creator's path when this machine has it (else by name), the data by name or path — or
        ``device``/``data`` given here. ``options`` override the stored ones (e.g. ``population``)."""
        space = space_from_text(settings.space_yaml, f"study {study_name} (stored space)")
        stored = dict(sampler=settings.sampler, seed=settings.seed, latency_budget_ms=settings.latency_budget_ms,
                      objectives=settings.objectives, epochs=settings.epochs, evaluator=settings.evaluator,
                      train_scheme=settings.train_scheme, train_sram_budget_kb=settings.train_sram_budget_kb)
        stored.update(options)
        return cls.load(space, study_device(settings, device), data or settings.data_source or settings.data,
                        study_name=study_name, **stored)

    # ---------------------------------------------------------------- what others need from it
    def sampler_context(self, seed: int) -> SamplerContext:
        return SamplerContext(seed=seed, population=self.population, space=self.space, device=self.device,
                              profiles=self.profiles, latency_budget_ms=self.latency_budget_ms,
                              objectives=self.objectives, data=self.data, evaluator=self.evaluator, epochs=self.epochs)

    def compared_settings(self) -> dict:
        """The settings a resume must match (names; their content is compared by fingerprint)."""
        attrs = self.to_settings().to_attrs()
        return {key: attrs[key] for key in COMPARED}


def check_latency_coverage(space: SearchSpace, profiles: Sequence[DeviceProfile]) -> None:
    """Every op the space can produce at a precision a profile runs must have a latency from its source
    (:meth:`~workbench.hardware.latency.LatencySource.check_covers`). Checked before the study is touched, so a
    profile that cannot cost the space never adds a failed trial."""
    for profile in profiles:
        profile.latency.check_covers(space)


COMPARED = ("space", "device", "data", "objectives", "latency_budget_ms", "epochs", "evaluator", "train_scheme",
            "train_sram_budget_kb")

# The update scheme a search costs when it uses training memory but names none: the classifier head (weights
# and bias of the last layer) fits every network of every space, and is the usual on-device transfer-learning
# baseline; bias:K and sparse schemes (TinyTL, MCUNetV3) are given explicitly.
DEFAULT_TRAIN_SCHEME = "classifier"


TRAIN_BYTES_PER_PARAM = 16  # fp32 weights, their gradients and two optimizer moments: what training holds


def check_fits_memory(space: SearchSpace, device: DeviceProfile, data) -> None:
    """Refuse, before a study is touched, a space whose largest candidate could not even hold its weights,
    gradients and optimizer state in this process's memory (choices of 10**6 channels multiply into networks
    of billions of parameters): building one would fail halfway through the search."""
    headroom = memory_headroom_bytes()
    if headroom is None:
        return
    arch = space.sample(ExtremeSuggester(max), precisions=device.precisions, data=data.data_shape)
    need = TRAIN_BYTES_PER_PARAM * arch.n_params
    if need > headroom:
        raise WorkbenchError(f"{space.path or space.name}: its largest candidate has {arch.n_params:,} parameters "
                             f"(~{need / 2 ** 30:,.1f} GiB to train), more than the {headroom / 2 ** 30:.1f} GiB "
                             f"of memory this machine (or this process's limit) has free; lower the largest width, "
                             f"depth or kernel choices")


def fewest_weight_layers(space: SearchSpace, device: DeviceProfile, data, samples: int = 64) -> int:
    """The fewest weight layers (convolutions and fully connected layers) a network of ``space`` has: its
    smallest choices, and a seeded random sample as a check on that guess. What a ``K`` of a train scheme
    must not exceed for every candidate to be costed."""
    kwargs = dict(precisions=device.precisions, data=data.data_shape)
    archs = [space.sample(ExtremeSuggester(min), **kwargs), *space.random_archs(samples, seed=0, **kwargs)]
    return min(len(weight_layers(arch)) for arch in archs)


def default(name: str):
    """The default of option ``name`` (a :class:`SearchConfig` field): what the CLI shows and uses."""
    for field in dataclasses.fields(SearchConfig):
        if field.name == name and field.default is not dataclasses.MISSING:
            return field.default
    raise KeyError(name)


def parse_objectives(text: str | Sequence[str]) -> tuple[str, ...]:
    """``accuracy,latency,sram`` → a tuple (checked when the config is made)."""
    if isinstance(text, str):
        return tuple(o.strip() for o in text.split(",") if o.strip())
    return tuple(text)


# The quickstart: the README's first run (a short real search on built-in data).
QUICKSTART = {"space": "vision", "device": "stm32f746", "data": "digits", "trials": 24, "epochs": 3,
              "latency_budget_ms": 12.0, "study": "quickstart", "seed": 0, "sampler": "ranked"}
