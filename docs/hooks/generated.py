"""mkdocs hook: the parts of the docs that the code already knows are generated from it at every build.

A page holds prose and a marker line (an HTML comment, invisible on GitHub); the build replaces the marker
with what the code says now, so these parts cannot fall behind it:

- ``<!-- generated: cli reference -->`` — every subcommand's help exactly as ``workbench COMMAND --help``
  prints it, from ``workbench.cli.build_parser()`` (at a fixed width of 100 columns, so the page does not
  depend on the terminal that built it), after an index of the subcommands;
- ``<!-- generated: op vocabulary -->`` — the op kinds a model may be made of, from ``workbench.model.ops.SPECS``
  (each kind's ``help``, key fields and the TFLite operators it lowers to).

A page whose marker is gone, or a marker nobody expands, fails the build.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WIDTH = "100"
MARKER = re.compile(r"<!-- generated: ([^>]+?) -->")


def _import_root() -> None:
    if str(ROOT) not in sys.path:  # the docs build may run without the package installed
        sys.path.insert(0, str(ROOT))


def _parser() -> argparse.ArgumentParser:
    _import_root()
    from workbench.cli import build_parser  # lazy

    return build_parser()


def subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """``{name: (one-line help, parser)}`` in the order ``workbench --help`` lists them."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
    return {name: (helps.get(name, ""), sub) for name, sub in action.choices.items()}


def _help(parser: argparse.ArgumentParser) -> str:
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH  # argparse wraps at the terminal's width, read when it formats
    try:
        return parser.format_help().rstrip()
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved


def cli_markdown(parser: argparse.ArgumentParser | None = None) -> str:
    """An index of the subcommands, ``workbench --help``, then each subcommand's full help."""
    parser = parser or _parser()
    commands = subcommands(parser)
    lines = ["| command | what it does |", "|---|---|"]
    lines += [f"| [`workbench {name}`](#workbench-{name}) | {text} |" for name, (text, _) in commands.items()]
    lines += ["", "## `workbench`", "", "```text", _help(parser), "```"]
    for name, (text, sub) in commands.items():
        lines += ["", f"## `workbench {name}`", "", text[:1].upper() + text[1:] + ".", "",
                  "```text", _help(sub), "```"]
    return "\n".join(lines)


def vocabulary_markdown() -> str:
    """The op vocabulary table: one row per registered op kind."""
    _import_root()
    from workbench.model.ops import SPECS  # lazy

    rows = ["| kind | what it is (deployed) | key fields besides input/output/prec | TFLite operators |",
            "|---|---|---|---|"]
    rows += [f"| `{s.name}` | {s.help} | {', '.join(s.key_fields) or '—'} | {', '.join(s.tflite_ops)} |"
             for s in SPECS.entries()]
    return "\n".join(rows)


GENERATORS = {"cli reference": cli_markdown, "op vocabulary": vocabulary_markdown}


def expand(markdown: str, where: str) -> str:
    """``markdown`` with every marker replaced by its generated text; an unknown marker is an error."""
    def one(match: re.Match) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"{where}: unknown marker <!-- generated: {name} --> (known: {', '.join(GENERATORS)})")
        return GENERATORS[name]()

    return MARKER.sub(one, markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:
    return expand(markdown, f"docs/{page.file.src_uri}")
