"""The benchmark pages stay tied to their scripts: every script has a page that names its command, every
script can write its page (``--docs``), and rewriting a page keeps its hand-written prose.

Cheap on purpose: no benchmark runs here (they take minutes to an hour); ``benchmarks/_report.py`` is
exercised on temporary pages.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

_PYTHONPATH = os.environ.get("PYTHONPATH")
import _report  # noqa: E402  (sets PYTHONPATH for a benchmark's child processes: not for the other tests')

if _PYTHONPATH is None:
    os.environ.pop("PYTHONPATH", None)
else:
    os.environ["PYTHONPATH"] = _PYTHONPATH

SCRIPTS = sorted((ROOT / "benchmarks").glob("bench_*.py"))
PAGES = ROOT / "docs" / "benchmarks"


def test_there_are_benchmarks():
    assert len(SCRIPTS) >= 10


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_every_script_has_a_page_that_names_its_command(script):
    page = PAGES / f"{_report.page_name(script)}.md"
    assert page.is_file(), f"{script.name} has no page {page.relative_to(ROOT)}"
    assert f"python benchmarks/{script.name}" in page.read_text(encoding="utf-8")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_every_script_can_write_its_page(script):
    """--docs on its parser, and the page writer around main (else --docs would be accepted and do nothing)."""
    text = script.read_text(encoding="utf-8")
    assert "PAGE = _report.Page(__file__)" in text
    assert re.search(r"PAGE\.add_flag\(\w+\)", text)
    assert 'if __name__ == "__main__":\n    sys.exit(PAGE.run(main))' in text


def test_the_overview_links_every_page():
    index = (PAGES / "index.md").read_text(encoding="utf-8")
    for script in SCRIPTS:
        assert f"({_report.page_name(script)}.md)" in index, f"index.md does not link {script.name}'s page"


def test_every_written_region_says_how_to_rerun_it_and_where():
    """A region on a page was written by its own script's --docs run: it names that command and a machine.
    (An empty region is a place kept for a table not generated yet: the command in the prose fills it.)"""
    for page in PAGES.glob("*.md"):
        text = page.read_text(encoding="utf-8")
        starts = re.findall(r"^<!-- table(?: [\w.-]+)?: .*-->$", text, re.MULTILINE)
        assert len(starts) == len(re.findall(r"^<!-- end of table(?: [\w.-]+)? -->$", text, re.MULTILINE)), page.name
        for match in _report.REGION.finditer(text):
            region = match.group(0)
            if region.count("\n") <= 2:  # the two markers only
                continue
            script = f"bench_{page.stem}.py"
            assert f"written by benchmarks/{script} --docs" in region, page.name
            command = re.search(r"^- \*\*command\*\*: `(.*)`$", region, re.MULTILINE)
            assert command and f"python benchmarks/{script}" in command.group(1), page.name
            assert "--docs" in command.group(1), f"{page.name}: rerunning the command would not refresh the page"
            assert re.search(r"^- \*\*machine\*\*: .+ cores .*load average", region, re.MULTILINE), page.name


PROSE = """# thing

What the benchmark measures, in words nobody should lose.

<!-- table: written by benchmarks/bench_thing.py --docs; a rerun of the command replaces this region -->
- **command**: `python benchmarks/bench_thing.py --docs`

```text
old numbers 1 2 3
```
<!-- end of table -->

How to read it: the second column matters.

<!-- table other: written by benchmarks/bench_thing.py --docs; a rerun of the command replaces this region -->
other table
<!-- end of table other -->
Last words.
"""


def fake_facts() -> dict:
    return {"command": "python benchmarks/bench_thing.py --docs", "machine": _report.machine_line(),
            "software": _report.software_line(), "commit": "abc (working tree clean)", "date": "today", "wall": "1 s"}


def test_rewriting_a_region_keeps_the_prose_and_the_other_regions(tmp_path, monkeypatch):
    monkeypatch.setattr(_report, "DOCS", tmp_path)
    page = _report.Page(str(tmp_path / "bench_thing.py"))
    page.path.write_text(PROSE, encoding="utf-8")
    page.write(_report.render("", page.script, fake_facts(), "new numbers 4 5 6\n"))
    text = page.path.read_text(encoding="utf-8")
    assert "new numbers 4 5 6" in text and "old numbers" not in text
    before, after = PROSE.split("<!-- table: ")[0], PROSE.split("<!-- end of table -->\n")[1]
    assert text.startswith(before) and text.endswith(after)  # prose and the other region byte for byte
    page.part = "other"
    page.write(_report.render("other", page.script, fake_facts(), "other, rewritten"))
    text = page.path.read_text(encoding="utf-8")
    assert "other, rewritten" in text and "other table\n" not in text and "new numbers 4 5 6" in text
    assert text.endswith("<!-- end of table other -->\nLast words.\n")


def test_a_region_not_on_the_page_is_appended(tmp_path, monkeypatch):
    monkeypatch.setattr(_report, "DOCS", tmp_path)
    page = _report.Page(str(tmp_path / "bench_thing.py"), part="new")
    page.path.write_text(PROSE, encoding="utf-8")
    page.write(_report.render("new", page.script, fake_facts(), "fresh"))
    text = page.path.read_text(encoding="utf-8")
    assert text.startswith(PROSE.rstrip("\n")) and text.rstrip().endswith("<!-- end of table new -->")


def test_a_generated_region_has_the_machine_and_the_output(tmp_path, monkeypatch):
    """Through Page.run as a script uses it: argv parsed by the script's parser, stdout captured."""
    import argparse

    monkeypatch.setattr(_report, "DOCS", tmp_path)
    page = _report.Page(str(tmp_path / "bench_thing.py"))

    def main():
        parser = argparse.ArgumentParser()
        parser.add_argument("--n", type=int)
        page.add_flag(parser)
        args = parser.parse_args()
        print(f"rows: {args.n}\n```inner fence```")
        return 0

    monkeypatch.setattr(sys, "argv", ["bench_thing.py", "--n", "7", "--docs"])
    assert page.run(main) == 0
    text = page.path.read_text(encoding="utf-8")
    assert re.search(r"^- \*\*command\*\*: `(.* )?python benchmarks/bench_thing\.py --n 7 --docs`$", text, re.MULTILINE)
    assert re.search(r"- \*\*machine\*\*: .+, \d+ cores .*load average [\d.]+ / [\d.]+ / [\d.]+", text)
    assert _report.cpu_model() in text and "Python 3." in text and "**wall time**" in text
    assert "````text\nrows: 7\n```inner fence```\n````" in text  # a fence the output cannot close


def test_a_failed_run_leaves_the_page_alone(tmp_path, monkeypatch):
    import argparse

    monkeypatch.setattr(_report, "DOCS", tmp_path)
    page = _report.Page(str(tmp_path / "bench_thing.py"))
    page.path.write_text(PROSE, encoding="utf-8")

    def main():
        parser = argparse.ArgumentParser()
        page.add_flag(parser)
        parser.parse_args()
        print("half a table")
        sys.exit("something differed")

    monkeypatch.setattr(sys, "argv", ["bench_thing.py", "--docs"])
    assert page.run(main) == "something differed"
    assert page.path.read_text(encoding="utf-8") == PROSE


def test_without_docs_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(_report, "DOCS", tmp_path)
    page = _report.Page(str(tmp_path / "bench_thing.py"))
    monkeypatch.setattr(sys, "argv", ["bench_thing.py"])
    assert page.run(lambda: print("table")) is None
    assert not page.path.exists()


def test_passwords_in_a_command_are_masked(monkeypatch):
    monkeypatch.setattr(_report, "PYTHONPATH", None)
    line = _report.command_line(["--postgres", "postgresql://workbench:secret@127.0.0.1:5432/wb"], "bench_x.py")
    assert "secret" not in line and "postgresql://workbench:***@127.0.0.1:5432/wb" in line
