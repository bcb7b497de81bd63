"""The documentation's cheap checks: the README stays short and agrees with the docs, every relative link
and anchor resolves, every page is in the navigation, and the generated parts cover what the code has.

The full build — the notebooks run, then ``mkdocs build --strict``, in which any warning fails — is
``python docs/build.py``, a step of its own in CI (minutes, most of them the notebooks). These tests take
seconds and need none of the docs tooling, except the last ones (griffe, nbformat: skipped with the reason
when missing, failed in CI).
"""
from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = sorted(DOCS.rglob("*.md"))
README_MAX_LINES = 150  # "fits on two screens"

FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.MULTILINE)


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _require(*modules: str) -> None:
    for module in modules:
        if importlib.util.find_spec(module) is None:
            reason = f"{module} is not installed (pip install -e '.[docs]')"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"docs tests must run in CI: {reason}")
            pytest.skip(reason)


def prose(text: str) -> str:
    """The Markdown without fenced blocks and code spans, where a "link" is only text."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """The anchor of a heading, as Python-Markdown's toc (and, for our headings, GitHub) makes it."""
    text = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    found = {slug(h) for h in HEADING.findall(FENCE.sub("", text))}
    if "<!-- generated: cli reference -->" in text:  # headings the build writes (docs/hooks/generated.py)
        found |= {"workbench"} | {f"workbench-{name}" for name in _subcommand_names()}
    return found


def _subcommand_names() -> list[str]:
    generated = _load("docs_generated", DOCS / "hooks" / "generated.py")
    return list(generated.subcommands(generated._parser()))


def links(path: Path) -> list[str]:
    return [t for t in LINK.findall(prose(path.read_text(encoding="utf-8")))
            if not re.match(r"[a-z]+:", t)]  # http:, https:, mailto: are not checked here


def resolve(page: Path, target: str) -> tuple[Path, str]:
    file, _, anchor = target.partition("#")
    return (page.parent / file).resolve() if file else page, anchor


def rendered_notebook(path: Path) -> Path | None:
    """``docs/notebooks/X.ipynb`` is added at build time from ``notebooks/X.ipynb`` (docs/hooks/notebooks.py)."""
    if path.parent == DOCS / "notebooks" and path.suffix == ".ipynb":
        return ROOT / "notebooks" / path.name
    return None


def test_readme_fits_on_two_screens():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


def test_readme_setup_commands_are_the_getting_started_ones():
    """The two set-up commands are written twice (README, docs/getting-started.md); they must not drift."""
    def commands(path: Path) -> str:
        text = path.read_text(encoding="utf-8")
        match = re.search(r"^##+ Set-up: two commands\n.*?^```bash\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
        assert match, f"{path.relative_to(ROOT)} has no set-up commands"
        return match.group(1)

    readme = commands(README)
    assert readme == commands(DOCS / "getting-started.md")
    assert readme.count("\n") == 2 and "workbench quickstart" in readme and "pytest" in readme


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for target in links(page):
        path, anchor = resolve(page, target)
        source = rendered_notebook(path)
        if source is not None:
            ok = source.is_file() and not anchor
        elif page != README and DOCS not in path.parents:
            ok = False  # outside docs/, the site has no such page: name the file as code instead
        else:
            ok = path.exists() and (not anchor or path.suffix != ".md" or anchor in anchors(path))
        if not ok:
            broken.append(target)
    assert broken == []


def test_a_broken_anchor_is_caught():
    page = DOCS / "index.md"
    assert resolve(page, "concepts.md#the-package-map")[1] in anchors(DOCS / "concepts.md")
    assert "no-such-heading" not in anchors(DOCS / "concepts.md")


def _nav_files(entries) -> list[str]:
    files = []
    for entry in entries:
        if isinstance(entry, str):
            files.append(entry)
        elif isinstance(entry, dict):
            for value in entry.values():
                files += _nav_files(value) if isinstance(value, list) else [value]
    return files


def test_every_page_is_in_the_navigation_and_every_entry_exists():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = _nav_files(config["nav"])
    assert len(nav) == len(set(nav))
    missing = [f for f in nav if not (DOCS / f).is_file() and not (rendered_notebook(DOCS / f) or Path()).is_file()]
    assert missing == []
    assert sorted(p.relative_to(DOCS).as_posix() for p in PAGES) == sorted(f for f in nav if f.endswith(".md"))
    assert sorted(f for f in nav if f.endswith(".ipynb")) == sorted(
        f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb"))


def test_cli_reference_has_every_subcommand_with_its_help():
    generated = _load("docs_generated", DOCS / "hooks" / "generated.py")
    page = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    text = generated.expand(page, "docs/reference/cli.md")
    names = list(generated.subcommands(generated._parser()))
    assert {"quickstart", "search", "worker", "pareto", "export", "score", "calibrate"} <= set(names)
    for name in names:
        section = text.split(f"## `workbench {name}`\n", 1)
        assert len(section) == 2, name
        assert f"usage: workbench {name}" in section[1].split("\n## ", 1)[0], name
        assert f"[`workbench {name}`](#workbench-{name})" in text
    assert "<!-- generated:" not in text


def test_op_vocabulary_table_lists_every_op_kind():
    from workbench.model.ops import SPECS

    generated = _load("docs_generated", DOCS / "hooks" / "generated.py")
    text = generated.expand((DOCS / "guides" / "scoring.md").read_text(encoding="utf-8"), "scoring.md")
    rows = re.findall(r"^\| `([\w-]+)` \|", text, re.MULTILINE)
    assert rows == [spec.name for spec in SPECS.entries()]


def test_an_unknown_marker_fails_the_build():
    generated = _load("docs_generated", DOCS / "hooks" / "generated.py")
    with pytest.raises(ValueError, match="unknown marker"):
        generated.expand("<!-- generated: nothing -->", "page.md")


def test_docstrings_read_as_markdown():
    _require("griffe")
    roles = _load("docs_griffe_roles", DOCS / "hooks" / "griffe_roles.py")
    text = roles.markdown("[zero pad,] conv (see :func:`workbench.model.ops.same_pads`) [+ BN] into "
                          "``hw_profiles/<name>/`` or <name>, by :meth:`~.Search.run`::\n\n    x = a[0]\n")
    assert text == ("\\[zero pad,\\] conv (see `workbench.model.ops.same_pads`) \\[+ BN\\] into "
                    "``hw_profiles/<name>/`` or &lt;name>, by `run`:\n\n    x = a[0]\n")


def test_widget_snapshot_draws_the_figure_and_keeps_the_html():
    """A notebook's widget view becomes static HTML: boxes, HTML values, inert controls, the plot's figure."""
    _require("nbformat")
    import nbformat

    render = _load("docs_render_notebooks", DOCS / "render_notebooks.py")

    def model(name, **state):
        return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}

    state = {
        "box": model("VBoxModel", children=["IPY_MODEL_html", "IPY_MODEL_row", "IPY_MODEL_plot", "IPY_MODEL_gone"]),
        "html": model("HTMLModel", value="<b>8 / 8</b> trained trials", _dom_classes=["wb-progress"]),
        "row": model("HBoxModel", children=["IPY_MODEL_pick", "IPY_MODEL_button"]),
        "pick": model("DropdownModel", description="device", _options_labels=["rpi4", "stm32f746"], index=1),
        "button": model("ButtonModel", description="Refresh"),
        "plot": {"model_name": "AnyModel", "model_module": "anywidget",
                 "state": {"figure": {"data": [{"x": [1.5], "y": [0.9]}], "layout": {"width": 900}, "revision": 3}}},
        "gone": model("HTMLModel", value="hidden", layout="IPY_MODEL_hide"),
        "hide": model("LayoutModel", display="none"),
    }
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("live", outputs=[nbformat.v4.new_output(
        "execute_result", data={render.WIDGET_VIEW: {"model_id": "box"}, "text/plain": "VBox()"},
        execution_count=1)])]
    nb.metadata["widgets"] = {render.WIDGET_STATE: {"state": state}}
    count, data = render.staticise(nb, Path("/tmp/run-here"))
    html = data["cells"][0]["outputs"][0]["data"]["text/html"]
    assert count == 1 and list(data["cells"][0]["outputs"][0]["data"]) == ["text/html"]
    assert "widgets" not in data["metadata"]  # no widget state (nor plotly.js inside it) left in the page
    assert "<b>8 / 8</b> trained trials" in html and "wb-progress" in html
    assert "<option>stm32f746</option>" in html and "disabled" in html and ">Refresh</button>" in html
    assert "Plotly.newPlot" in html and '"x": [1.5]' in html and '"width"' not in html
    assert "hidden" not in html


def test_a_notebook_that_failed_quietly_is_not_published():
    _require("nbformat")
    import nbformat

    render = _load("docs_render_notebooks", DOCS / "render_notebooks.py")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output(
        "stream", name="stderr", text="Exception in thread Thread-3:\nTraceback (most recent call last):\nValueError: boom\n")])]
    with pytest.raises(render.QuietFailure, match="cell 0 printed a traceback to stderr: ValueError: boom"):
        render.check_quiet_failures(nb)
    nb.cells[0].outputs[0]["text"] = "notice: a warning, not a failure\n"
    render.check_quiet_failures(nb)
