"""Build the documentation site the way CI does: run the notebooks, then ``mkdocs build --strict``.

``python docs/build.py`` renders every notebook (``docs/render_notebooks.py``: a small stated budget, a
temporary folder each) and builds ``build/site/`` from ``mkdocs.yml``; any mkdocs warning — a dead link or
anchor, a page missing from the navigation, a notebook not rendered or rendered from an older version —
fails the build. ``--reuse-notebooks`` skips the notebooks whose rendering in ``build/docs/notebooks/`` is
still current (same source hash), for quick rebuilds while editing pages. Exit code: mkdocs' (0 = built).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS))

import render_notebooks  # docs/ is not a package: imported from its folder, put on the path above


def stale_notebooks() -> list[str]:
    """Names of the notebooks whose rendering is missing or was made from another version of the source."""
    names = []
    for source in sorted(render_notebooks.NOTEBOOKS.glob("*.ipynb")):
        copy = render_notebooks.OUT / source.name
        recorded = None
        if copy.is_file():
            recorded = json.loads(copy.read_text(encoding="utf-8")).get("metadata", {}).get(
                render_notebooks.SOURCE_HASH_KEY)
        if recorded != render_notebooks.source_hash(source):
            names.append(source.name)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reuse-notebooks", action="store_true",
                        help="render only the notebooks whose rendering is missing or stale")
    args = parser.parse_args(argv)
    start = time.monotonic()
    every = [p.name for p in sorted(render_notebooks.NOTEBOOKS.glob("*.ipynb"))]
    names = stale_notebooks() if args.reuse_notebooks else every
    if names and render_notebooks.main(names) != 0:
        return 2
    rendered = time.monotonic()
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # mkdocs-material's banner about its successor, not ours
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml")]
    code = subprocess.call(command, cwd=ROOT, env=env)
    print(f"docs: notebooks {rendered - start:.0f} s ({len(names)} rendered), "
          f"mkdocs build {time.monotonic() - rendered:.0f} s{'' if code else ' -> build/site/index.html'}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
