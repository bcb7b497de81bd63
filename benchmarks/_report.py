"""Benchmark output into its documentation page, with what it takes to trust or repeat it.

Every ``benchmarks/bench_<name>.py`` prints its table(s) on stdout, as before. With ``--docs`` it also
writes what it printed into ``docs/benchmarks/<name>.md``, inside a marked region::

    <!-- table: written by benchmarks/bench_<name>.py --docs; a rerun replaces this region -->
    - command: `nice python benchmarks/bench_<name>.py ... --docs`
    - machine: CPU model, cores, load average at start, OS
    - software / commit / date / wall time
    ```text
    (stdout of the run)
    ```
    <!-- end of table -->

Only the region is replaced; the prose around it (what the benchmark measures, how to read the table)
is hand-written and survives a rerun. A page may hold several regions (``--docs PART``, e.g. one per
command on the page: ``<!-- table PART: ... -->`` … ``<!-- end of table PART -->``); a region not on the
page yet is appended at its end. Why a region and not a whole generated page: the interpretation has to
be written by someone who read the numbers, and the numbers have to come from the command, not from a
hand copy. A run that fails (non-zero exit, an exception, Ctrl-C) leaves the page as it was, so a crash
cannot replace a good table with half of one.

Use in a script::

    import _report
    PAGE = _report.Page(__file__)
    ...
    PAGE.add_flag(parser)                 # in main(), on its ArgumentParser
    ...
    if __name__ == "__main__":
        sys.exit(PAGE.run(main))

Importing this module also puts the repository root first on ``sys.path`` and on ``PYTHONPATH``, so every
script, and every process it starts, imports the ``workbench`` of the checkout it is in (the commit the page
names), with or without ``PYTHONPATH`` set by hand.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import io
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks"
PYTHONPATH = os.environ.get("PYTHONPATH")  # as given: the command line on the page shows this one
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# ... and the processes a benchmark starts (`python -m workbench.cli` workers) import the same checkout
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *([PYTHONPATH] if PYTHONPATH else [])])

from workbench.hardware.machine import cpu_facts  # noqa: E402  (the checkout's, put on the path above)

# the packages a benchmark's numbers can depend on (missing ones are left out of the line)
PACKAGES = ("torch", "numpy", "scipy", "onnx", "onnxruntime", "ai-edge-litert", "tflite-micro", "optuna",
            "scikit-learn", "aeon")
END = "<!-- end of table{part} -->"
REGION = re.compile(r"^<!-- table(?P<part> [\w.-]+)?: [^\n]*-->\n.*?^<!-- end of table(?P=part)? -->\n?",
                    re.MULTILINE | re.DOTALL)
SECRET = re.compile(r"(://[^:/@\s]+):[^@\s]+@")  # a password in a URL (a PostgreSQL storage, say)


def page_name(script: str | Path) -> str:
    """``benchmarks/bench_scoring.py`` → ``scoring``: the page is docs/benchmarks/<this>.md."""
    stem = Path(script).stem
    return stem[len("bench_"):] if stem.startswith("bench_") else stem


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (a virtual machine may give only the family): the
    workbench's own reading, the one a measured profile's ``measured_on`` records."""
    return cpu_facts()[0]


def os_name() -> str:
    """'Debian GNU/Linux 12 (bookworm), Linux 6.1.0 x86_64' where /etc/os-release says so."""
    pretty = ""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                pretty = line.split("=", 1)[1].strip().strip('"') + ", "
    except OSError:
        pass
    return f"{pretty}{platform.system()} {platform.release()} {platform.machine()}"


def machine_line() -> str:
    """CPU, cores (and how many this process may use), memory, load average now, OS."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = f", {cpu_facts()[2] / 1024 ** 2:.0f} GiB memory"
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"{cpu_model()}, {os.cpu_count()} cores ({usable} usable by this run){memory}; load average "
            f"{load} (1/5/15 min) at start; {os_name()}")


def software_line() -> str:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return f"Python {platform.python_version()}, " + ", ".join(found)


def git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def commit_line() -> str:
    """The commit and whether the tree differed from it (the benchmark pages themselves do not count)."""
    head = git("rev-parse", "--short=12", "HEAD")
    if head is None:
        return "not a git checkout"
    status = git("status", "--porcelain") or ""
    changed = [line[3:] for line in status.splitlines() if not line[3:].startswith("docs/benchmarks/")]
    if not changed:
        return f"{head.strip()} (working tree clean)"
    shown = ", ".join(changed[:5]) + (f", … ({len(changed)} in all)" if len(changed) > 5 else "")
    return f"{head.strip()} + uncommitted changes: {shown}"


def foreign_workbench() -> list[str]:
    """A note when the ``workbench`` this run imported is not the checkout's (the commit line would not hold)."""
    module = sys.modules.get("workbench")
    where = Path(getattr(module, "__file__", "") or "").resolve()
    if module is None or ROOT in where.parents:
        return []
    return [f"workbench was imported from {where.parent}, not from this checkout: the commit above may not be "
            f"the code that ran"]


def command_line(argv: list[str], script: str) -> str:
    """How to run it again: ``nice`` if the process was niced, WORKBENCH_* and PYTHONPATH settings, passwords
    masked."""
    parts = []
    niceness = os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else 0
    if niceness:
        parts.append("nice" if niceness == 10 else f"nice -n {niceness}")
    env = [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("WORKBENCH_")]
    if PYTHONPATH:
        env.append("PYTHONPATH=" + PYTHONPATH.replace(str(ROOT), "$PWD"))
    line = shlex.join(["python", f"benchmarks/{Path(script).name}", *argv])
    return SECRET.sub(r"\1:***@", " ".join([*env, *parts]) + (" " if env or parts else "") + line)


def fence(text: str) -> str:
    """``text`` in a fenced block longer than any backtick run inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}text\n{text}\n{ticks}"


def render(part: str, script: str, facts: dict, output: str) -> str:
    """The region for one run: markers, the facts as a list, then the output as printed."""
    tag = f" {part}" if part else ""
    lines = [f"<!-- table{tag}: written by benchmarks/{Path(script).name} --docs; a rerun of the command "
             f"replaces this region -->",
             f"- **command**: `{facts['command']}`",
             f"- **machine**: {facts['machine']}",
             f"- **software**: {facts['software']}",
             f"- **commit**: {facts['commit']}",
             f"- **date**: {facts['date']}; **wall time**: {facts['wall']}"]
    lines += [f"- **note**: {note}" for note in facts.get("notes", [])]
    return "\n".join(lines) + "\n\n" + fence(output.strip("\n")) + "\n" + END.format(part=tag) + "\n"


def replace_region(text: str, part: str, region: str) -> str:
    """``text`` with the region named ``part`` replaced by ``region`` (appended if the page has none);
    everything outside it kept byte for byte."""
    for match in REGION.finditer(text):
        if (match.group("part") or "").strip() == part:
            return text[:match.start()] + region + text[match.end():]
    return text.rstrip("\n") + "\n\n" + region


class _Tee(io.TextIOBase):
    """stdout that also keeps a copy of what was written (the table goes to the page as printed)."""

    def __init__(self, stream):
        self.stream, self.copy = stream, io.StringIO()

    def write(self, s: str) -> int:
        self.copy.write(s)
        return self.stream.write(s)

    def flush(self) -> None:
        self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return self.stream.isatty()


@dataclass
class Page:
    """A benchmark script's page: ``Page(__file__)``; ``add_flag`` on its parser, ``run(main)`` to run it."""

    script: str
    requested: bool = False
    part: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return DOCS / f"{page_name(self.script)}.md"

    @property
    def shown(self) -> str:
        """The page's path as messages name it (relative to the repository where it is inside it)."""
        return str(self.path.relative_to(ROOT) if ROOT in self.path.parents else self.path)

    def add_flag(self, parser: argparse.ArgumentParser) -> None:
        page = self

        class DocsAction(argparse.Action):
            def __call__(self, parser, namespace, values, option_string=None):
                page.requested, page.part = True, values or ""
                setattr(namespace, self.dest, values)

        parser.add_argument("--docs", nargs="?", const="", default=None, metavar="PART", action=DocsAction,
                            help=f"also write the output, with this command, the machine, versions and commit, into "
                                 f"docs/benchmarks/{page_name(self.script)}.md (its region PART if given); "
                                 f"the page's prose is kept")

    def note(self, text: str) -> None:
        """A line the page shows above the output (e.g. that a table was re-scored from stored rows)."""
        self.notes.append(text)

    def run(self, main) -> int | str | None:
        """Run ``main()`` (which parses sys.argv); with ``--docs`` and a zero exit, write the page. Returns the
        exit status for ``sys.exit``."""
        argv = sys.argv[1:]
        started = datetime.datetime.now(datetime.timezone.utc)
        facts = {"machine": machine_line(), "commit": commit_line(), "command": command_line(argv, self.script),
                 "date": started.strftime("%Y-%m-%d %H:%M UTC")}
        t0 = time.monotonic()
        tee = sys.stdout = _Tee(sys.stdout)
        try:
            status = main()
        except SystemExit as stop:
            status = stop.code
        finally:
            sys.stdout = tee.stream
        if not self.requested:
            return status
        if status not in (0, None):
            print(f"{self.shown} not written: the run failed (exit status {status!r})",
                  file=sys.stderr)
            return status
        wall = time.monotonic() - t0
        facts.update(software=software_line(), wall=f"{wall:.1f} s" if wall < 10 else f"{wall:.0f} s",
                     notes=self.notes + foreign_workbench())
        self.write(render(self.part, self.script, facts, tee.copy.getvalue()))
        return status

    def write(self, region: str) -> None:
        text = self.path.read_text(encoding="utf-8") if self.path.exists() else f"# {page_name(self.script)}\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".md.tmp")
        tmp.write_text(replace_region(text, self.part, region), encoding="utf-8")
        tmp.replace(self.path)
        print(f"wrote {self.shown}" + (f" (region {self.part})" if self.part else ""),
              file=sys.stderr)
