"""mkdocs hook: the notebook pages are the copies ``docs/render_notebooks.py`` ran, with their outputs.

The rendered notebooks live in ``build/docs/notebooks/`` (not committed: ``notebooks/`` is kept without
outputs). This hook adds them to the site as ``notebooks/<name>.ipynb`` before mkdocs-jupyter looks at the
files, so mkdocs-jupyter turns them into pages. A notebook that was never rendered, or was edited after its
rendering, is a build warning (an error under ``--strict``) naming the command that fixes it; the page then
shows the committed notebook without outputs.

The static widget snapshots draw their figures with plotly.js; the copy in the plotly wheel is served as
``assets/plotly.min.js`` and loaded by the notebook pages only (4.8 MB, nothing fetched from the network).
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "notebooks"
RENDERED = ROOT / "build" / "docs" / "notebooks"
PLOTLY_URI = "assets/plotly.min.js"
SOURCE_HASH_KEY = "workbench_docs_source_sha256"  # written by docs/render_notebooks.py
FIX = "run `python docs/render_notebooks.py` (or `python docs/build.py`, which also builds the site)"
log = logging.getLogger("mkdocs.hooks.notebooks")


def _rendered(source: Path) -> Path:
    """The rendered copy when it is current; else a warning and the committed notebook."""
    copy = RENDERED / source.name
    if not copy.is_file():
        log.warning("notebooks/%s has not been rendered with its outputs: %s", source.name, FIX)
        return source
    recorded = json.loads(copy.read_text(encoding="utf-8")).get("metadata", {}).get(SOURCE_HASH_KEY)
    if recorded != hashlib.sha256(source.read_bytes()).hexdigest():
        log.warning("notebooks/%s changed after it was rendered (build/docs/notebooks/%s is stale): %s",
                    source.name, source.name, FIX)
    return copy


def _plotly_js() -> Path:
    import plotly  # optional: plotly (the notebook extra); the rendered widgets draw with it

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@event_priority(100)  # before mkdocs-jupyter's on_files wraps the .ipynb files as pages
def on_files(files, config):
    for source in sorted(SOURCES.glob("*.ipynb")):
        path = _rendered(source)
        files.append(File(f"notebooks/{source.name}", src_dir=str(path.parent.parent), dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    files.append(File.generated(config, PLOTLY_URI, abs_src_path=str(_plotly_js())))
    return files


def on_page_content(html: str, page, config, files) -> str:
    if not page.file.src_uri.startswith("notebooks/") or not page.file.src_uri.endswith(".ipynb"):
        return html
    url = files.get_file_from_path(PLOTLY_URI).url_relative_to(page.file)
    return f'<script src="{url}"></script>\n{html}'
