"""griffe extension: our docstrings read as Markdown in the API pages.

The docstrings are prose written for readers of the source, in reStructuredText habits: ``:func:`name```
roles, double backticks, ``text::`` before an indented example, square brackets for optional parts
(``[zero pad,] conv [+ BN]``) and angle brackets for placeholders (``hw_profiles/<name>/``). Read as Markdown,
roles would show as clutter, brackets would become link references (an unresolved one fails the strict
build) and ``<name>`` would vanish as an HTML tag. So, outside code spans and indented code blocks, each
role becomes a plain code span (``:meth:`~.Search.run``` -> `` `run` ``, as Sphinx shows it), a
paragraph's closing ``::`` a single colon, and square and angle brackets are escaped. Docstrings are not
parsed into sections (``docstring_style: null`` in ``mkdocs.yml``): ours have none.
"""
from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|obj|exc|const):`(~?)\.?([^`]+)`")
CODE_SPAN = re.compile(r"(``.+?``|`[^`]+`)", re.DOTALL)
LITERAL = re.compile(r"(\S)::$", re.MULTILINE)


def _role(match: re.Match) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


def _escape(prose: str) -> str:
    return prose.replace("[", r"\[").replace("]", r"\]").replace("<", "&lt;")


def _prose(chunk: str) -> str:
    parts = CODE_SPAN.split(ROLE.sub(_role, chunk))
    return LITERAL.sub(r"\1:", "".join(part if i % 2 else _escape(part) for i, part in enumerate(parts)))


def markdown(text: str) -> str:
    """The docstring with roles as code spans, RST ``::`` as ``:`` and brackets escaped outside code.
    Lines indented by four spaces (the examples after ``::``) are code blocks and stay as written."""
    out, prose = [], []
    for line in text.split("\n"):
        if line.startswith("    "):
            if prose:
                out.append(_prose("\n".join(prose)))
                prose = []
            out.append(line)
        else:
            prose.append(line)
    if prose:
        out.append(_prose("\n".join(prose)))
    return "\n".join(out)


class SphinxRolesToMarkdown(griffe.Extension):
    def on_instance(self, *, node, obj, agent, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
