"""The house rules of the package layout, checked so they cannot rot.

- floors: each package imports only packages on lower floors (and itself); no import circles;
- function-local imports say why they are local (a heavy or optional dependency);
- the package map in ``docs/concepts.md`` is the one :func:`package_map` renders from the packages' docstrings;
- old module paths are true aliases of the moved modules, with a FutureWarning.
"""
from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "workbench"
MAP_PAGE = ROOT / "docs" / "concepts.md"  # the documentation page that shows the package map

# Lowest first. A package may import its own floor's package only if it is itself (scoring and storages
# share a floor and must not import each other).
FLOORS: list[tuple[str, ...]] = [
    ("_infra",), ("model",), ("hardware",), ("scoring", "storages"), ("study",), ("search",), ("export",),
    ("learning",),
    ("calibration",), ("widgets",), ("cli",),
]
FLOOR_OF = {pkg: i for i, names in enumerate(FLOORS) for pkg in names}
LOCAL_IMPORT_REASON = re.compile(r"#\s*(heavy|optional|lazy)\b")


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def package_of(module: str) -> str | None:
    """``workbench.hardware.cost`` → ``hardware``; ``workbench.cli`` → ``cli``; the top package → None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def imports(path: Path, name: str, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported workbench module, line, function-local?) for every import statement in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []

    def visit(node, local: bool):
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    anchor = base[: len(base) - child.level + 1]
                    mod = ".".join(anchor + ([child.module] if child.module else []))
                else:
                    mod = child.module or ""
                targets = [f"{mod}.{a.name}" for a in child.names] + [mod]
            else:
                visit(child, inner)
                continue
            for target in targets:
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.append((target, child.lineno, local))
                    break
    visit(tree, False)
    return found


def test_every_package_has_a_floor():
    packages = {package_of(m) for m in modules()} - {None, "__main__"}
    assert packages <= set(FLOOR_OF), f"packages without a floor in tests/test_layout.py: {packages - set(FLOOR_OF)}"


def test_no_package_imports_a_floor_above_its_own():
    known = set(modules())
    wrong = []
    for name, path in modules().items():
        mine = package_of(name)
        if mine is None or mine not in FLOOR_OF:
            continue
        for target, line, _ in imports(path, name, known):
            theirs = package_of(target)
            if theirs is None or theirs == mine or target == "workbench._infra.aliases":
                continue
            if FLOOR_OF[theirs] >= FLOOR_OF[mine]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({mine}) imports {target} ({theirs})")
    assert wrong == []


def test_no_import_circles():
    known = set(modules())
    graph = {name: {t for t, _, _ in imports(path, name, known)
                    if not (path.name == "__init__.py" and t.startswith(name + "."))}
             for name, path in modules().items()}
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def connect(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            connect(v)
    assert circles == []


def local_imports(path: Path) -> list[tuple[int, str]]:
    """(line, first line's text) of every import statement inside a function of ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for fn in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found += [(n.lineno, lines[n.lineno - 1]) for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))]
    return sorted(set(found))


def test_function_local_imports_say_why():
    """An import inside a function is for a heavy or optional dependency (torch, a converter, an extra), and
    its line says which; anything else is imported at the top of the module."""
    silent = [f"{path.relative_to(ROOT)}:{line}: {text.strip()}"
              for path in modules().values() for line, text in local_imports(path)
              if not LOCAL_IMPORT_REASON.search(text)]
    assert silent == []


def package_map() -> str:
    """The docs' map of the packages (``docs/concepts.md``): floor by floor, each package with its docstring's
    first line."""
    rows = ["| floor | package | what goes there |", "|---|---|---|"]
    for floor, names in enumerate(FLOORS):
        for pkg in names:
            path = PACKAGE / pkg / "__init__.py" if (PACKAGE / pkg).is_dir() else PACKAGE / f"{pkg}.py"
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
            first = " ".join(doc.split("\n\n")[0].split())
            first = re.sub(r":\w+:`~?\.?([^`]+)`", r"`\1`", first).replace("``", "`")
            shown = f"`workbench/{pkg}/`" if path.name == "__init__.py" else f"`workbench/{pkg}.py`"
            rows.append(f"| {floor} | {shown} | {first} |")
    return "\n".join(rows)


def test_docs_package_map_is_current():
    text = MAP_PAGE.read_text(encoding="utf-8")
    match = re.search(r"<!-- package map: tests/test_layout.py -->\n(.*?)\n<!-- end of package map -->", text, re.S)
    assert match, f"{MAP_PAGE.relative_to(ROOT)} has no package map section"
    assert match.group(1).strip() == package_map(), (f"{MAP_PAGE.relative_to(ROOT)}'s package map is stale; "
                                                     "run python tests/test_layout.py")


def test_old_module_paths_are_the_moved_modules():
    from workbench._infra.aliases import MOVED

    for old, new in MOVED.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = importlib.import_module(old)
        assert module is importlib.import_module(new), old
        assert module.__name__ == new and module.__spec__.name == new
        assert any(issubclass(w.category, FutureWarning) and new in str(w.message) for w in caught), old


def test_monkeypatching_an_old_path_patches_the_real_module(monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        monkeypatch.setattr("workbench.cost.SEGMENT_MEMO_SIZE", -1)
    from workbench.hardware import cost

    assert cost.SEGMENT_MEMO_SIZE == -1


def test_old_attribute_path_on_the_package_warns_once_per_use():
    code = ("import warnings, workbench\nwarnings.simplefilter('error', FutureWarning)\n"
            "try:\n    workbench.front\nexcept FutureWarning as w:\n    print('warned:', w)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "warned: workbench.front moved to workbench.study.front" in out.stdout, out.stderr


@pytest.mark.parametrize("old", ["workbench.study", "workbench.export"])
def test_old_modules_that_are_packages_now_keep_their_public_names(old):
    module = importlib.import_module(old)
    names = {"workbench.study": ["StoredStudy", "StudySettings", "Keys", "arch_key"],
             "workbench.export": ["export_trial", "export_model", "ExportResult"]}[old]
    assert all(hasattr(module, n) for n in names)


if __name__ == "__main__":  # `python tests/test_layout.py`: rewrite the package map in docs/concepts.md
    text = MAP_PAGE.read_text(encoding="utf-8")
    start, end = "<!-- package map: tests/test_layout.py -->\n", "\n<!-- end of package map -->"
    head, rest = text.split(start, 1)
    MAP_PAGE.write_text(head + start + package_map() + end + rest.split(end, 1)[1], encoding="utf-8")
