"""The one registry style: the Registry class, every choice the workbench offers registered in it, the CLI's
choices and help taken from it, and no code outside a registry comparing a registered name with a string."""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import workbench
from workbench._infra.errors import WorkbenchError
from workbench._infra.registry import Registry, resolve
from workbench.export.formats import FORMAT_NAMES, FORMATS
from workbench.model import data
from workbench.model.evaluators import EVALUATORS
from workbench.model.families import FAMILIES
from workbench.model.ops import OP_KINDS, SPECS
from workbench.model.tasks import TASKS
from workbench.search import SAMPLERS, register_sampler
from workbench.study.schema import Keys, StudySettings


@dataclass(frozen=True)
class Colour:
    name: str
    help: str
    warm: bool


def colours() -> Registry[Colour]:
    registry: Registry[Colour] = Registry("colour", "--colour")
    for entry in (Colour("red", "like fire", True), Colour("blue", "like ice", False), Colour("amber", "", True)):
        registry.register(entry)
    return registry


# ---------------------------------------------------------------- the class

def test_entries_keep_registration_order_and_get_returns_the_entry():
    reg = colours()
    assert reg.names() == ("red", "blue", "amber") and list(reg) == list(reg.names()) and len(reg) == 3
    assert reg.get("blue") == Colour("blue", "like ice", False) and reg["red"].warm
    assert [e.name for e in reg.entries()] == ["red", "blue", "amber"]
    assert "red" in reg and "green" not in reg


def test_an_unknown_name_is_one_line_naming_the_flag_and_the_choices():
    with pytest.raises(WorkbenchError) as err:
        colours().get("green")
    assert str(err.value) == "--colour: unknown colour 'green' (choose from red, blue, amber)"
    with pytest.raises(WorkbenchError, match=r"^unknown shade 'x' \(choose from \)$"):
        Registry("shade").check("x")  # no flag: the message starts with what is unknown
    assert colours().check("amber") == "amber"


def test_a_name_registered_twice_is_refused_and_the_first_entry_kept():
    reg = colours()
    with pytest.raises(ValueError, match="colour 'red' is registered twice"):
        reg.register(Colour("red", "again", False))
    assert reg.get("red").help == "like fire" and len(reg) == 3


def test_where_selects_by_attributes():
    reg = colours()
    assert [e.name for e in reg.where(warm=True)] == ["red", "amber"]
    assert [e.name for e in reg.where(warm=True, help="")] == ["amber"]
    assert reg.where(warm=None) == ()


def test_help_text_and_resolve():
    assert colours().help_text() == "red: like fire; blue: like ice; amber: "
    assert resolve("os.path:join") is importlib.import_module("os.path").join
    assert resolve(len) is len


# ---------------------------------------------------------------- the workbench's registries

REGISTRIES = {"op kind": SPECS, "model family": FAMILIES, "format": FORMATS, "sampler": SAMPLERS,
              "evaluator": EVALUATORS, "task": TASKS}


@pytest.mark.parametrize("kind", REGISTRIES)
def test_every_choice_is_a_registry_of_named_entries_with_help(kind):
    registry = REGISTRIES[kind]
    assert isinstance(registry, Registry) and registry.kind == kind and len(registry) >= 3
    for name, entry in zip(registry.names(), registry.entries()):
        assert entry.name == name and entry.help, (kind, name)


def test_old_public_names_are_the_registries():
    import workbench.search as search

    assert search.EVALUATORS is EVALUATORS and search.SAMPLERS is SAMPLERS
    assert register_sampler.__self__ is SAMPLERS and OP_KINDS == SPECS.names()
    assert FORMAT_NAMES == ("onnx", "onnx-int8", "tflite", "tflite-int8")  # the MCU bundle only by name
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("workbench.search.registry")


def test_evaluators_carry_what_their_users_ask():
    train, synflow = EVALUATORS.get("train"), EVALUATORS.get("synflow")
    assert [e.name for e in EVALUATORS.where(trains=True)] == ["train"]
    assert (train.label, train.seed(7, 3)) == ("acc", 10) and (synflow.label, synflow.seed(7, 3)) == ("score", 7)
    assert StudySettings("s", "", "d", "x").metric == Keys.ACCURACY
    assert StudySettings("s", "", "d", "x", evaluator="naswot").metric == Keys.SCORE
    for entry in EVALUATORS.entries():
        ranked_by = EVALUATORS.get(entry.ranked_by)
        assert ranked_by is not entry and not ranked_by.trains, entry.name  # never the objective itself
        assert callable(resolve(entry.measure)), entry.name


def test_every_family_declares_a_data_layout_the_data_checks_know():
    for family in FAMILIES.entries():
        assert family.data_layout in data._LAYOUT_CHECKS, family.name


def test_cli_choices_and_help_come_from_the_registries():
    from workbench.cli import build_parser

    search = build_parser()._subparsers._group_actions[0].choices["search"]
    options = {a.dest: a for a in search._actions}
    for flag, registry in (("sampler", SAMPLERS), ("evaluator", EVALUATORS)):
        assert tuple(options[flag].choices) == registry.names()
        assert options[flag].help == f"{registry.help_text()} (default %(default)s)"
    export = build_parser()._subparsers._group_actions[0].choices["export"]
    assert {a.dest: a for a in export._actions}["format"].help.endswith(FORMATS.help_text())


# ---------------------------------------------------------------- no name tests outside the registries

REGISTRY_MODULES = {"_infra/registry.py", "model/evaluators.py", "search/samplers.py", "export/formats/__init__.py",
                    "model/ops.py", "model/families/__init__.py"}


def _name_tests(names) -> list[str]:
    """``x == "name"``, ``"name" != x`` and ``x in ("name", …)`` lines of workbench/ outside the registry modules
    (comments and ``for x in (…)`` loops skipped)."""
    quoted = "|".join(re.escape(f'"{n}"') + "|" + re.escape(f"'{n}'") for n in names)
    compared = re.compile(rf"(==|!=)\s*({quoted})|({quoted})\s*(==|!=)")
    member = re.compile(r"(\bfor\s+[\w, ]+\s+)?\bin\s*[(\[{]([^)\]}]*)")
    root = Path(workbench.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).as_posix() in REGISTRY_MODULES:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            tested = any(m.group(1) is None and re.search(quoted, m.group(2)) for m in member.finditer(code))
            if compared.search(code) or tested:
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def test_no_code_compares_a_registered_name_with_a_string():
    names = {n for registry in REGISTRIES.values() for n in registry.names()}
    assert {"train", "synflow", "tflm", "tpe", "conv2d", "mbconv"} <= names
    assert _name_tests(names) == []


def test_the_name_test_finder_finds_one(tmp_path, monkeypatch):
    (tmp_path / "workbench").mkdir()
    (tmp_path / "workbench" / "__init__.py").write_text("")
    (tmp_path / "workbench" / "late.py").write_text(
        'ok = fmt == "json"\nbad = evaluator != "train"  # x\n# evaluator == \'train\' in a comment\n'
        'for split in ("train", "test"): pass\nalso_bad = kind in ("gap", "train")\n')
    monkeypatch.setattr(workbench, "__file__", str(tmp_path / "workbench" / "__init__.py"))
    assert _name_tests({"train"}) == ['late.py:2: bad = evaluator != "train"  # x',
                                      'late.py:5: also_bad = kind in ("gap", "train")']
