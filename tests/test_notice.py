"""NOTICE.md and CITATION.cff kept in step with the sources the repository cites.

A published figure enters the workbench through a data file (a ``source`` column or field next to the number)
or a comment naming where it came from. This test reads those places, pulls out each citation's key (an arXiv
identifier, a GitHub repository, a commit, an MLPerf Tiny round, a web address, an "Author et al. YEAR"), and
asserts NOTICE.md names every key, so a figure added with a new source fails here until NOTICE.md lists it.
It also asserts that each published figure carries a source with such a key at all (a number with an
untraceable source would otherwise pass unseen), that NOTICE.md names every file holding published figures,
and that CITATION.cff is valid Citation File Format 1.2.0 agreeing with pyproject.toml and LICENSE.
"""
from __future__ import annotations

import csv
import re
import tomllib
from pathlib import Path

import pytest
import yaml

import workbench

ROOT = Path(__file__).resolve().parent.parent
NOTICE = ROOT / "NOTICE.md"
CITATION = ROOT / "CITATION.cff"

# Where sources are cited: device profiles (data files and their comments; lut.csv rows only point back to
# latency_model.yaml), search spaces and the package's own docstrings and comments.
CITING_GLOBS = ("hw_profiles/**/*.yaml", "hw_profiles/**/*.csv", "hw_profiles/**/*.md", "hw_profiles/**/*.json",
                "search_spaces/*.yaml", "workbench/**/*.py")
# Files whose every row is a published figure; NOTICE.md must name each one.
FIGURE_GLOBS = ("hw_profiles/*/published_latency*.csv", "hw_profiles/*/models/*.yaml")

KEY_PATTERNS = {
    "arXiv identifier": r"\barXiv:(\d{4}\.\d{4,5})",
    "GitHub repository": r"\bgithub\.com/([A-Za-z0-9_-]+/[A-Za-z0-9_.-]*[A-Za-z0-9_-])",
    "commit": r"\b([0-9a-f]{40})\b",
    "MLPerf Tiny round": r"\b(MLPerf Tiny v\d+\.\d+)",
    "web address": r"\b((?!github\.com/)(?:[a-z0-9-]+\.)+(?:io|org|com|edu|net)/[^\s,;)'\"]*)",
    "author-year": r"\b([A-Z][a-zA-Z-]+ et al)\.?,? (?:[A-Za-z]+ )?((?:19|20)\d\d)\b",
}
# Sentence starts that mark a field as the workbench's own estimate or model rather than a published figure.
OWN_WORK = ("modeled", "estimate", "no runtime code counted", "fitted by `workbench calibrate`")


def keys_in(text: str) -> set[tuple[str, str]]:
    """Every citation key in ``text`` as (kind, key); an author-year key is 'Name et al|YEAR'."""
    found = set()
    for kind, pattern in KEY_PATTERNS.items():
        for match in re.finditer(pattern, text):
            found.add((kind, "|".join(match.groups())))
    return found


def notice_lacks(notice: str, kind: str, key: str) -> bool:
    """Whether NOTICE.md fails to name ``key``. A key must not be a prefix of a longer name there (so
    github.com/mlcommons/tiny is not satisfied by github.com/mlcommons/tiny_results_v0.5), and an author-year
    key needs the name and the year on one line."""
    if kind == "author-year":
        name, year = key.split("|")
        return not any(name.lower() in line.lower() and year in line for line in notice.splitlines())
    if kind == "arXiv identifier":
        key = f"arXiv:{key}"
    return re.search(re.escape(key) + r"(?![A-Za-z0-9_-])", notice, re.IGNORECASE) is None


def cited_keys() -> dict[tuple[str, str], set[str]]:
    """Each key cited in the repository's data files and code, with the files citing it."""
    cited: dict[tuple[str, str], set[str]] = {}
    for pattern in CITING_GLOBS:
        for path in ROOT.glob(pattern):
            if path.name == "lut.csv":
                continue
            for key in keys_in(path.read_text(encoding="utf-8", errors="replace")):
                cited.setdefault(key, set()).add(path.relative_to(ROOT).as_posix())
    return cited


def missing_from(notice: str, cited: dict[tuple[str, str], set[str]]) -> list[str]:
    return [f"{kind} {key!r} (cited in {', '.join(sorted(files))})"
            for (kind, key), files in sorted(cited.items()) if notice_lacks(notice, kind, key)]


def published_sources() -> list[tuple[str, str]]:
    """(where, source text) of every published figure: rows of published_latency*.csv and the
    ``measurements`` a calibration recorded in latency_model.yaml."""
    rows = []
    for path in sorted(ROOT.glob("hw_profiles/*/published_latency*.csv")):
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                rows.append((f"{path.relative_to(ROOT)} {row['model']}", row.get("source") or ""))
    for path in sorted(ROOT.glob("hw_profiles/*/latency_model.yaml")):
        for m in yaml.safe_load(path.read_text(encoding="utf-8")).get("measurements") or []:
            rows.append((f"{path.relative_to(ROOT)} {m.get('model')}", m.get("source") or ""))
    return rows


def described_fields() -> list[tuple[str, str]]:
    """(where, text) of the fields that say where a profile's constants come from."""
    fields = []
    for path in sorted(ROOT.glob("hw_profiles/*/latency_model.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        fields.append((f"{path.relative_to(ROOT)} reference", data.get("reference") or ""))
        prior = (data.get("calibration") or {}).get("prior_reference")
        if prior is not None:
            fields.append((f"{path.relative_to(ROOT)} calibration.prior_reference", prior))
    for path in sorted(ROOT.glob("hw_profiles/*/profile.yaml")):
        memory = yaml.safe_load(path.read_text(encoding="utf-8")).get("memory") or {}
        if "source" in memory:
            fields.append((f"{path.relative_to(ROOT)} memory.source", memory["source"]))
    return fields


def test_every_cited_source_is_named_in_notice():
    cited = cited_keys()
    assert len(cited) >= 20, f"only {len(cited)} citation keys found: the scan is broken"
    missing = missing_from(NOTICE.read_text(encoding="utf-8"), cited)
    assert not missing, "NOTICE.md does not name:\n  " + "\n  ".join(missing)


def test_the_notice_check_finds_a_removed_entry():
    """Taking one source out of NOTICE.md (here the XNNPACK commit the rpi4 figures were read at) is caught."""
    notice, cited = NOTICE.read_text(encoding="utf-8"), cited_keys()
    commit = "fd2d933bb8acbe86fd11f9a7da4c0ef4fff38450"
    assert ("commit", commit) in cited and commit in notice
    assert missing_from(notice.replace(commit, "a later commit"), cited) == [
        f"commit {commit!r} (cited in hw_profiles/rpi4/published_latency_multithread.csv)"]
    # and a repository named only as a prefix of another does not count as named
    assert notice_lacks("github.com/mlcommons/tiny_results_v0.5", "GitHub repository", "mlcommons/tiny")


def test_every_published_figure_names_a_traceable_source():
    rows = published_sources()
    assert len(rows) >= 20
    untraceable = [where for where, source in rows if not keys_in(source)]
    assert not untraceable, f"published figures whose source has no arXiv id, repository, round or address: {untraceable}"


def test_every_description_of_constants_is_sourced_or_says_it_is_ours():
    fields = described_fields()
    assert len(fields) >= 10
    bare = [where for where, text in fields if not keys_in(text) and not text.strip().lower().startswith(OWN_WORK)]
    assert not bare, f"fields neither citing a source nor saying they are the workbench's own estimate: {bare}"


def test_notice_names_every_file_holding_published_figures():
    notice = NOTICE.read_text(encoding="utf-8")
    files = sorted({p.relative_to(ROOT).as_posix() for g in FIGURE_GLOBS for p in ROOT.glob(g)})
    assert len(files) >= 14
    assert [f for f in files if f not in notice] == []


def test_citation_cff_is_valid_and_matches_the_project():
    cff = yaml.safe_load(CITATION.read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    for field in ("message", "title", "authors", "version", "license", "type"):
        assert cff.get(field), field
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert cff["version"] == workbench.__version__  # the one version source (pyproject reads it, dynamic)
    assert project["license"] == cff["license"] == "Apache-2.0"
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert all("name" in a or "family-names" in a for a in cff["authors"])
    references = cff["references"]
    assert len(references) >= 10
    for ref in references:
        assert ref.get("type") and ref.get("title") and ref.get("authors"), ref
        assert all("name" in a or "family-names" in a for a in ref["authors"]), ref["title"]


@pytest.mark.parametrize("kind, key", [("arXiv identifier", "2010.11267"), ("GitHub repository", "google/XNNPACK")])
def test_notice_and_citation_agree_on_the_main_sources(kind, key):
    """The sources the calibrations rest on are in both files (the paper behind stm32f746, XNNPACK's tables)."""
    assert not notice_lacks(NOTICE.read_text(encoding="utf-8"), kind, key)
    assert key in CITATION.read_text(encoding="utf-8")
