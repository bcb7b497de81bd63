"""Storage faults and crashes: what the CLI does when the storage breaks or the process is killed.

    python benchmarks/bench_faults.py                 # every fault 3 times, 8 kills per storage
    python benchmarks/bench_faults.py --repeat 1 --kills 2 --postgres postgresql://…

Faults (through the real CLI in a fork of a process that has imported the workbench once, as in
``bench_reliability.py``; 60 s limit each): damaged SQLite files (truncated at a random point, a random
page overwritten, not SQLite at all), journals with a damaged line, a folder where the file should be,
read-only mounts and full disks (a tmpfs mounted here — root only; the rows say "skipped" otherwise), an
SQLite file locked by another process, a 10,000-character study name, a search that fills the disk while
it runs, refused commands and read-only commands (the storage must be left byte-for-byte as it was, or
not created), inputs whose content differs from the study's (edited space, bigger profile, other data of
the same file name) and two searches creating the same study at once. *clean* = the promised exit code
with one ``error:`` line and nothing else changed.

Crashes (real processes): ``kill -9`` at a random moment of a training-free search (where the time goes
to storage writes) and then a resume with a 120 s limit, per storage — the study must end with exactly
its trials (*lost*: fewer, *duplicated*: more); Ctrl-C at a random moment (exit 130, no traceback, gone
within 15 s); SIGTERM to ``search --workers 3`` (no helper left after 15 s); ``kill -9`` during an
export into a folder holding an earlier export (the earlier manifest and files must still match); a
trial that never beat (the deterministic hang of issue 15) resumed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _report  # the page writer; also puts the repository root first on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import hostile_cases as hc  # noqa: E402
from bench_reliability import Row, print_table  # noqa: E402

PAGE = _report.Page(__file__)

FAST = ["--space", "sensor-imu", "--device", "stm32f746", "--data", "basic-motions", "--evaluator", "synflow",
        "--sampler", "random"]
WORKBENCH = [sys.executable, "-m", "workbench.cli"]


def search(storage, study="s", trials=3, *extra) -> list[str]:
    return ["search", *FAST, "--trials", str(trials), "--study", study, "--storage", str(storage), *map(str, extra)]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "absent"


def complete_count(url, study="s") -> int:
    import optuna

    from workbench.storages.storage import open_storage

    trials = optuna.load_study(study_name=study, storage=open_storage(str(url), create=False)).get_trials(deepcopy=False)
    return sum(t.state.name == "COMPLETE" for t in trials)


class Faults:
    """Runs fault cases through H1's fork server and records them as reliability rows."""

    def __init__(self, workdir: Path, runner: hc.Runner, rng: random.Random, postgres: str | None):
        self.workdir, self.runner, self.rng, self.postgres = workdir, runner, rng, postgres
        self.rows: dict[str, Row] = {}
        self.skipped: list[str] = []
        self.mounts: list[Path] = []
        self.n = 0

    def folder(self) -> Path:
        self.n += 1
        path = self.workdir / f"case{self.n:03d}"
        path.mkdir(parents=True)
        return path

    def study(self, folder: Path, kind: str = "sqlite", trials: int = 3) -> Path:
        """A finished study (through the real CLI, in a fork) to damage."""
        url = folder / ("s.db" if kind == "sqlite" else "s.log")
        outcome = self.runner.run(hc.Case("setup", "create", search(url, "s", trials), "", str(folder), 0))
        assert outcome.rc == 0, outcome.stderr[-1000:]
        if kind == "sqlite":
            checkpoint(url)
        return url

    def record(self, klass: str, case: hc.Case, outcome: hc.Outcome, extra: list[str] | None = None) -> None:
        row = self.rows.setdefault(klass, Row("storage", klass))
        extra = extra or []
        if not extra:
            row.add(case, outcome)
            return
        row.tried += 1
        row.seconds.append(outcome.seconds)
        row.other += 1
        row.failures.append(f"{klass} [{case.label}] {'; '.join(extra)}")

    def expect(self, klass: str, label: str, argv, folder: Path, names: str, rc: int = 2, env=None,
               untouched: Path | None = None, absent: Path | None = None) -> hc.Outcome:
        before = digest(untouched) if untouched else None
        case = hc.Case(klass, label, [str(a) for a in argv], names, str(folder), rc)
        outcome = self.runner.run(case, env)
        extra = []
        if untouched and digest(untouched) != before:
            extra.append(f"{untouched.name} changed")
        if absent and absent.exists():
            extra.append(f"{absent.name} was created")
        if rc == 1:  # mid-run faults: progress lines of the trials that ran, then the one error line
            errors = [line for line in outcome.stderr.strip().splitlines() if not line.startswith(("[", "note: "))]
            if len(errors) != 1 or not errors[0].startswith("error: ") or names not in errors[0]:
                extra.append(f"stderr ends {errors[-1][:120] if errors else ''!r}")
        self.record(klass, case, outcome, extra)
        return outcome

    def tmpfs(self, size: str) -> Path | None:
        path = self.folder()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            return None
        self.mounts.append(path)
        return path

    def close(self) -> None:
        for path in self.mounts:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)

    # ------------------------------------------------------------------ the fault classes
    def damaged_sqlite(self) -> None:
        for kind in ("truncated", "garbage page", "not sqlite"):
            d = self.folder()
            url = self.study(d)
            data = bytearray(url.read_bytes())
            if kind == "truncated":
                data = data[: self.rng.randrange(100, len(data) - 4096)]
            elif kind == "garbage page":
                page = self.rng.randrange(1, len(data) // 4096)
                data[page * 4096:(page + 1) * 4096] = self.rng.randbytes(4096)
            else:
                data = bytearray(self.rng.randbytes(len(data)))
            url.write_bytes(bytes(data))
            self.expect("sqlite-damaged", kind, search(url, "s", 5), d, str(url), untouched=url)

    def damaged_journal(self) -> None:
        d = self.folder()
        url = self.study(d, "journal")
        lines = url.read_text().splitlines(keepends=True)
        at = self.rng.randrange(1, len(lines))
        lines[at] = lines[at][: self.rng.randrange(1, len(lines[at]) - 1)] + "\n"  # a record cut in the middle
        url.write_text("".join(lines))
        self.expect("journal-damaged", "cut record", search(url, "s", 5), d, str(url), untouched=url)

    def torn_journal_tail(self) -> None:
        """A last record without its newline (a write cut short) is dropped and the search goes on."""
        d = self.folder()
        url = self.study(d, "journal")
        with open(url, "a") as fh:
            fh.write('{"op_code": 5, "worker_id": "x", "trial_id": 0, "par')
        outcome = self.runner.run(hc.Case("journal-torn-tail", "resume", search(url, "s", 4), "", str(d), 0))
        extra = [] if complete_count(url) == 4 else [f"{complete_count(url)} of 4 trials"]
        self.record("journal-torn-tail", hc.Case("journal-torn-tail", "resume", [], "", str(d), 0), outcome, extra)

    def folder_instead_of_file(self) -> None:
        for suffix in (".db", ".log"):
            d = self.folder()
            (d / f"s{suffix}").mkdir()
            self.expect("folder-not-file", suffix, search(d / f"s{suffix}"), d, "is a folder")

    def read_only_mount(self) -> None:
        for kind in ("sqlite", "journal"):
            mnt = self.tmpfs("4m")
            if mnt is None:
                self.skipped.append("read-only mount (cannot mount a tmpfs: not root)")
                return
            url = self.study(mnt, kind)
            subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True, capture_output=True)
            self.expect("read-only", f"{kind} resume", search(url, "s", 5), self.folder(), "read-only", untouched=url)
            self.expect("read-only", f"{kind} pareto", ["pareto", "--study", "s", "--storage", url], self.folder(),
                        "", rc=0)

    def full_disk(self) -> None:
        for kind in ("sqlite", "journal"):
            mnt = self.tmpfs("4m")
            if mnt is None:
                self.skipped.append("full disk (cannot mount a tmpfs: not root)")
                return
            url = self.study(mnt, kind, trials=2)
            filler = hc_fill(mnt)
            self.expect("disk-full", f"{kind} at start", search(url, "s", 6), self.folder(), "disk")
            filler.unlink()
            self.full_disk_mid_run(mnt, url, kind)

    def full_disk_mid_run(self, mnt: Path, url: Path, kind: str) -> None:
        """The disk fills while the search runs: exit 1, one line, completed trials kept and resumable."""
        done = complete_count(url)

        def fill_when_running():
            end = time.monotonic() + 60
            while time.monotonic() < end:
                try:
                    if complete_count(url) >= done + 2:
                        break
                except Exception:
                    pass
                time.sleep(0.05)
            hc_fill(mnt, name="filler2")

        filler = threading.Thread(target=fill_when_running, daemon=True)
        filler.start()
        self.expect("disk-full", f"{kind} mid-run", search(url, "s", 400), self.folder(), "disk", rc=1)
        filler.join()
        (mnt / "filler2").unlink(missing_ok=True)
        before = complete_count(url)
        outcome = self.runner.run(hc.Case("disk-full", f"{kind} resume", search(url, "s", before + 2), "",
                                          str(self.folder()), 0))
        extra = [] if complete_count(url) == before + 2 else [f"resume left {complete_count(url)} of {before + 2}"]
        self.record("disk-full", hc.Case("disk-full", f"{kind} resume after", [], "", "", 0), outcome, extra)

    def locked(self) -> None:
        d = self.folder()
        url = self.study(d)
        holder = subprocess.Popen([sys.executable, "-c", (
            "import sqlite3, time\n"
            f"c = sqlite3.connect({str(url)!r}, isolation_level=None)\n"
            "c.execute('PRAGMA locking_mode=EXCLUSIVE'); c.execute('BEGIN EXCLUSIVE')\n"
            "c.execute('CREATE TABLE held (x)'); print('locked', flush=True); time.sleep(120)\n")],
            stdout=subprocess.PIPE, text=True)
        try:
            holder.stdout.readline()
            self.expect("sqlite-locked", "exclusive lock", search(url, "s", 5), d, "holds a lock",
                        env={"WORKBENCH_SQLITE_BUSY_TIMEOUT": "2"})
        finally:
            holder.kill()
            holder.wait()

    def long_name(self) -> None:
        storages = [("sqlite", lambda d: d / "n.db"), ("journal", lambda d: d / "n.log")]
        if self.postgres:
            storages.append(("postgresql", lambda d: self.postgres))
        for kind, make in storages:
            d = self.folder()
            url = make(d)
            self.expect("name-10000-chars", kind, search(url, "x" * 10_000), d, "at most 512",
                        absent=url if kind != "postgresql" else None)

    def refused(self) -> None:
        d = self.folder()
        url = self.study(d)
        thin = hc.copy_profile(d)
        lut = (thin / "lut.csv").read_text().splitlines()
        (thin / "lut.csv").write_text("\n".join([lut[0]] + [r for r in lut[1:] if ",fp32," in r]
                                                + [r for r in lut[1:] if ",int8," in r][:2]) + "\n")
        text = (thin / "profile.yaml").read_text()
        (thin / "profile.yaml").write_text(text.replace(", w4a8", ""))
        for label, argv, names in (
                ("--trials 0", search(url, "s", 0, "--latency-budget", 10), "--trials"),
                ("--latency-budget -1", search(url, "s", 50, "--latency-budget", -1), "--latency-budget"),
                ("--population 0", search(url, "s", 50, "--population", 0), "--population"),
                ("LUT cannot interpolate", ["search", *FAST[:2], "--device", thin, *FAST[4:], "--trials", 50,
                                            "--study", "s", "--storage", url], "too few to interpolate")):
            self.expect("refused-untouched", label, argv, d, names, untouched=url)
        fresh = self.folder()
        self.expect("refused-untouched", "new storage", search(fresh / "new.db", "s", 0), fresh, "--trials",
                    absent=fresh / "new.db")

    def read_only_commands(self) -> None:
        for suffix in (".db", ".log"):
            for command in ("pareto", "export"):
                d = self.folder()
                extra = ["--out", d / "out"] if command == "export" else []
                self.expect("read-cmd-creates-none", f"{command} {suffix}",
                            [command, "--study", "s", "--storage", d / f"none{suffix}", *extra], d,
                            "nothing was created", absent=d / f"none{suffix}")

    def other_content(self) -> None:
        d = self.folder()
        url = self.study(d)
        space = d / "sensor-imu.yaml"
        space.write_text((ROOT / "search_spaces" / "sensor-imu.yaml").read_text().replace("\n", "\n\n", 1))
        self.expect("other-content", "edited space", ["search", "--space", space, *FAST[2:], "--trials", 5,
                                                      "--study", "s", "--storage", url], d, "differs", untouched=url)
        big = hc.copy_profile(d)
        text = (big / "profile.yaml").read_text()
        sram = next(line for line in text.splitlines() if line.startswith("sram_kb:"))
        (big / "profile.yaml").write_text(text.replace(sram, f"sram_kb: {float(sram.split(':')[1].split('#')[0]) * 10:g}"))
        self.expect("other-content", "profile 10x SRAM", ["search", *FAST[:2], "--device", big, *FAST[4:],
                                                          "--trials", 5, "--study", "s", "--storage", url], d,
                    "sram_bytes", untouched=url)
        from workbench.model.data import load_dataset
        import numpy as np

        ds = load_dataset("basic-motions")
        for sub, shift in (("a", 0.0), ("b", 0.25)):
            (d / sub).mkdir()
            np.savez(d / sub / "m.npz", x_train=ds.x_train + shift, y_train=ds.y_train, x_test=ds.x_test,
                     y_test=ds.y_test)
        first = ["search", *FAST[:4], "--data", d / "a" / "m.npz", *FAST[6:], "--study", "n", "--storage", url]
        self.runner.run(hc.Case("setup", "npz study", [str(a) for a in first + ["--trials", "1"]], "", str(d), 0))
        checkpoint(url)
        second = [str(a) for a in first + ["--trials", "2"]]
        second[second.index(str(d / "a" / "m.npz"))] = str(d / "b" / "m.npz")
        self.expect("other-content", "other .npz, same name", second, d, "other samples", untouched=url)

    def concurrent_creation(self, repeat: int) -> None:
        for i in range(repeat):
            d = self.folder()
            procs = [subprocess.Popen([*WORKBENCH, *search(d / "t.db", "same", 4)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True) for _ in range(2)]
            start = time.monotonic()
            errs = [p.communicate(timeout=300)[1] for p in procs]
            outcome = hc.Outcome(0 if all(p.returncode == 0 for p in procs) else 1, "", "", 0.0, 0.0,
                                 time.monotonic() - start, False)
            extra = [] if outcome.rc == 0 else [f"exit codes {[p.returncode for p in procs]}: {errs[-1][-150:]}"]
            if not extra and complete_count(d / "t.db", "same") != 4:
                extra.append(f"{complete_count(d / 't.db', 'same')} of 4 trials")
            self.record("same-study-at-once", hc.Case("same-study-at-once", f"round {i}", [], "", "", 0), outcome,
                        extra)


def checkpoint(db: Path) -> None:
    """The forked CLI ends with ``os._exit``: fold its WAL into the file, as a clean exit does, so that the
    file's bytes stand for its content ("untouched" compares them)."""
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def hc_fill(folder: Path, name: str = "filler") -> Path:
    path = folder / name
    with open(path, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    return path


# ---------------------------------------------------------------------------------------- crashes

def spawn(args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([*WORKBENCH, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def kill_rounds(url, kills: int, rng: random.Random, trials: int = 40) -> dict:
    """``kills`` x (start a search, kill -9 it at a random moment), then one resume under a time limit."""
    study = "k"
    for _ in range(kills):
        victim = spawn(search(url, study, trials, "--heartbeat", 1))
        time.sleep(rng.uniform(3.5, 7.0))  # start-up is ~3 s; afterwards the time goes to storage writes
        victim.send_signal(signal.SIGKILL)
        victim.communicate()
    start = time.monotonic()
    try:
        resume = subprocess.run([*WORKBENCH, *search(url, study, trials, "--heartbeat", 1)], capture_output=True,
                                text=True, timeout=120)
        hang, rc, err = False, resume.returncode, resume.stderr
    except subprocess.TimeoutExpired:
        hang, rc, err = True, None, ""
    done = complete_count(url, study) if not hang else 0
    return {"kills": kills, "resumed": rc == 0, "hang": hang, "traceback": "Traceback" in err,
            "lost": max(0, trials - done) if rc == 0 else 0, "duplicated": max(0, done - trials),
            "seconds": time.monotonic() - start}


def ctrl_c_rounds(url, rounds: int, rng: random.Random) -> dict:
    clean = tracebacks = hangs = 0
    for _ in range(rounds):
        proc = spawn(search(url, "c", 200, "--heartbeat", 1))
        time.sleep(rng.uniform(3.5, 7.0))
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            hangs += 1
            continue
        if "Traceback" in err:
            tracebacks += 1
        elif proc.returncode in (130, 0):
            clean += 1
    return {"tried": rounds, "clean": clean, "tracebacks": tracebacks, "hangs": hangs}


def _descendants(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = [int(c) for c in children.read_text().split()] if children.exists() else []
    return found + [d for c in found for d in _descendants(c)]


def _alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


def sigterm_workers(folder: Path, rounds: int) -> dict:
    orphans = exits = 0
    for i in range(rounds):
        parent = spawn(["search", *FAST[:6], "--epochs", 3, "--trials", 8, "--study", f"w{i}", "--storage",
                        folder / "w.db", "--workers", 3, "--heartbeat", 1])
        end, helpers = time.monotonic() + 120, []
        while time.monotonic() < end and len(helpers) < 2:
            time.sleep(0.5)
            helpers = _descendants(parent.pid)
        time.sleep(4)
        parent.send_signal(signal.SIGTERM)
        try:
            parent.communicate(timeout=20)
            exits += parent.returncode == 143
        except subprocess.TimeoutExpired:
            parent.kill()
            parent.communicate()
        time.sleep(15)
        orphans += sum(_alive(p) for p in helpers)
    return {"tried": rounds, "clean": exits, "orphans": orphans}


def export_kill(folder: Path, rng: random.Random, rounds: int) -> dict:
    from workbench.search import Search

    db = folder / "e.db"
    Search("sensor-imu", "stm32f746", "basic-motions", study_name="e", storage=str(db), epochs=1).run(1)
    out = folder / "export"
    export = ["export", "--study", "e", "--storage", db, "--trial", 0, "--out", out]
    subprocess.run([*WORKBENCH, *map(str, export), "--format", "onnx"], capture_output=True, check=True)
    intact = 0
    for _ in range(rounds):
        victim = spawn([*export, "--format", "onnx,onnx-int8"])
        time.sleep(rng.uniform(4.0, 12.0))
        victim.send_signal(signal.SIGKILL)
        victim.communicate()
        manifest = json.loads((out / "manifest.json").read_text())
        same = all(digest(out / e["file"]) == e["sha256"] for e in manifest["files"].values())
        intact += same and sorted(p.name for p in out.iterdir()) == manifest["folder_files"]
    return {"tried": rounds, "intact": intact}


def no_heartbeat_resume(folder: Path) -> dict:
    import optuna

    from workbench.storages.storage import open_storage

    db = folder / "h.db"
    subprocess.run([*WORKBENCH, *search(db, "h", 2)], capture_output=True, check=True)
    study = optuna.load_study(study_name="h", storage=open_storage(str(db)))
    study._storage.create_new_trial(study._study_id)
    start = time.monotonic()
    try:
        result = subprocess.run([*WORKBENCH, *search(db, "h", 3, "--heartbeat", 1)], capture_output=True,
                                timeout=120)
        ok = result.returncode == 0 and complete_count(db, "h") == 3
    except subprocess.TimeoutExpired:
        ok = False
    return {"ok": ok, "seconds": time.monotonic() - start}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each randomised fault (default %(default)s)")
    parser.add_argument("--kills", type=int, default=8, help="kill -9 per storage before the resume (default %(default)s)")
    parser.add_argument("--postgres", default=os.environ.get("WORKBENCH_TEST_POSTGRES_URL"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per fault before it counts as a hang")
    PAGE.add_flag(parser)
    args = parser.parse_args(argv)
    args.mem_mb = 1024
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rng = random.Random(args.seed)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        workdir = Path(tmp)
        with hc.Runner(mem_mb=args.mem_mb, timeout_s=args.timeout) as runner:
            faults = Faults(workdir / "faults", runner, rng, args.postgres)
            try:
                for _ in range(args.repeat):
                    faults.damaged_sqlite()
                    faults.damaged_journal()
                faults.torn_journal_tail()
                faults.folder_instead_of_file()
                faults.read_only_mount()
                faults.full_disk()
                faults.locked()
                faults.long_name()
                faults.refused()
                faults.read_only_commands()
                faults.other_content()
                faults.concurrent_creation(args.repeat)
            finally:
                faults.close()
            print(f"  faults done ({time.monotonic() - start:.0f} s)", file=sys.stderr, flush=True)
        print_table(list(faults.rows.values()), argparse.Namespace(mem_mb=args.mem_mb, timeout=args.timeout,
                                                                   seed=args.seed), time.monotonic() - start)
        for reason in faults.skipped:
            print(f"skipped: {reason}")
        print()
        storages = {"sqlite": workdir / "k.db", "journal": workdir / "k.log"}
        if args.postgres:
            storages["postgresql"] = args.postgres
        print(f"{'crash':<34} {'storage':<10} {'tried':>5} {'clean':>5} {'hangs':>5} {'lost':>5} {'dupl.':>5} "
              f"{'traceb.':>7}")
        print("(kill -9 rows: clean = kills after which the study resumed to exactly its trials; lost/dupl. = "
              "trials missing/over at the end)")
        failures = 0
        for name, url in storages.items():
            r = kill_rounds(url, args.kills, rng)
            failures += r["hang"] or not r["resumed"] or r["lost"] or r["duplicated"] or r["traceback"]
            survived = r["kills"] if r["resumed"] and not (r["lost"] or r["duplicated"] or r["traceback"]) else 0
            print(f"{'kill -9 during writes, then resume':<34} {name:<10} {r['kills']:>5} {survived:>5} "
                  f"{int(r['hang']):>5} {r['lost']:>5} {r['duplicated']:>5} {int(r['traceback']):>7}", flush=True)
        c = ctrl_c_rounds(workdir / "c.db", args.kills, rng)
        failures += c["tracebacks"] + c["hangs"]
        print(f"{'Ctrl-C during writes':<34} {'sqlite':<10} {c['tried']:>5} {c['clean']:>5} {c['hangs']:>5} "
              f"{'':>5} {'':>5} {c['tracebacks']:>7}", flush=True)
        h = no_heartbeat_resume(workdir)
        failures += not h["ok"]
        print(f"{'resume past a never-beating trial':<34} {'sqlite':<10} {1:>5} {int(h['ok']):>5} "
              f"{int(not h['ok']):>5}   ({h['seconds']:.0f} s)", flush=True)
        w = sigterm_workers(workdir, max(1, args.repeat - 1))
        failures += w["orphans"]
        print(f"{'SIGTERM to search --workers 3':<34} {'sqlite':<10} {w['tried']:>5} {w['clean']:>5} "
              f"{'':>5} {'':>5} {'':>5} {'':>7}  orphans left: {w['orphans']}", flush=True)
        e = export_kill(workdir, rng, args.repeat)
        failures += e["tried"] - e["intact"]
        print(f"{'kill -9 during an export':<34} {'-':<10} {e['tried']:>5} {e['intact']:>5}  (previous export "
              f"intact)", flush=True)
    print(f"wall {time.monotonic() - start:.0f} s")
    bad = failures + sum(len(r.failures) for r in faults.rows.values())
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(PAGE.run(main))
