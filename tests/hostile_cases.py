"""Hostile inputs for the ``workbench`` CLI, and a runner that tries each one under a memory and a time limit.

Shared by ``tests/test_hostile_input.py`` (a sample of every class, in CI) and
``benchmarks/bench_reliability.py`` (hundreds of them, with a table).

Runner: a fork server. One helper process imports the workbench (torch, Optuna, …) once; every case
runs in a ``fork()`` of it that sets ``RLIMIT_AS`` to its own address-space size plus the case's
budget, redirects stdout/stderr to files and calls ``workbench.cli.main(argv)`` — the real CLI code
path, minus the interpreter start-up. The server kills a child that outlives its time limit (a hang)
and reads its peak resident memory from ``wait4``. An escaped exception is printed the way Python
would print it (a "Traceback"), so it is counted.

Generators: ``GENERATORS`` maps a class name to ``fn(workdir, rng, n) -> list[Case]``; each case is
a command line plus the text its one-line error must contain (the file or field at fault). Every
case is invalid by construction: the expected exit code is 2.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import random
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "hw_profiles" / "stm32f746"
SPACES = ROOT / "search_spaces"


@dataclass
class Case:
    klass: str  # a row of the reliability table
    label: str  # what this one tries
    argv: list[str]
    names: str  # the one-line error must contain this (the file or field at fault)
    cwd: str = ""
    expect_rc: int | None = 2  # None: may be valid after all (a bit flip in weight data): 0 or a clean 2
    marker: str = ""  # a file that must not exist afterwards (an exploit that ran would create it)
    untouched: tuple = ()  # (path, sha256) of files that must be byte-for-byte the same afterwards


@dataclass
class Outcome:
    rc: int | None
    stdout: str
    stderr: str
    peak_rss_mb: float  # the child's peak resident memory (wait4 ru_maxrss)
    baseline_mb: float  # the fork server's resident memory when it forked (the child starts with it)
    seconds: float
    timed_out: bool

    def problems(self, case: Case) -> list[str]:
        """Why this outcome is not the promised one (empty when it is)."""
        lines = self.stderr.strip().splitlines()
        found = []
        if self.timed_out:
            found.append("hang (killed at the time limit)")
        if "Traceback" in self.stderr:
            found.append("traceback")
        expected = (0, 2) if case.expect_rc is None else (case.expect_rc,)
        if self.rc not in expected:
            found.append(f"exit code {self.rc}, expected {' or '.join(map(str, expected))}")
        for path, digest in case.untouched:
            if _sha256(path) != digest:
                found.append(f"{path} was modified")
        if self.rc == 2 and 2 in expected:
            if len(lines) != 1 or not lines[0].startswith("error: "):
                found.append(f"{len(lines)} stderr lines, expected one 'error: …' line")
            elif case.names not in lines[0]:
                found.append(f"error does not name {case.names!r}")
        return found


def _sha256(path: str) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).is_file() else "missing"


# ---------------------------------------------------------------------------------------------- runner

def _vm_size_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def _child(request: dict) -> None:
    """In the forked child: limits, redirections, then the CLI. Never returns."""
    import resource
    import traceback

    code = 1
    try:
        os.chdir(request["cwd"])
        for fd, name in ((0, os.devnull), (1, "stdout.txt"), (2, "stderr.txt")):
            flags = os.O_RDONLY if fd == 0 else os.O_WRONLY | os.O_CREAT | os.O_TRUNC
            target = os.open(os.path.join(request["cwd"], name), flags, 0o644)
            os.dup2(target, fd)
            os.close(target)
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")
        os.environ.update(request.get("env", {}))
        limit = _vm_size_bytes() + int(request["mem_mb"]) * (1 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        from workbench.cli import main

        code = main(request["argv"])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - what Python itself would print for an escaped exception
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 1)


def _fork_one(request: dict) -> dict:
    import signal
    import time

    baseline = _rss_mb()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(request)
    timed_out = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - start > request["timeout_s"]:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            timed_out = True
            break
        time.sleep(0.005)
    seconds = time.monotonic() - start
    cwd = Path(request["cwd"])
    read = lambda name: (cwd / name).read_text(errors="replace") if (cwd / name).exists() else ""  # noqa: E731
    return {"rc": None if timed_out else os.waitstatus_to_exitcode(status), "stdout": read("stdout.txt")[-4000:],
            "stderr": read("stderr.txt")[-8000:], "peak_rss_mb": usage.ru_maxrss / 1024, "baseline_mb": baseline,
            "seconds": seconds, "timed_out": timed_out}


def serve() -> None:
    """The fork server's loop: one JSON request per stdin line, one JSON outcome per stdout line."""
    import optuna  # noqa: F401  (imported once here, shared by every fork)
    import torch  # noqa: F401

    import workbench.cli  # noqa: F401
    import workbench.model.data  # noqa: F401
    import workbench.export.trial  # noqa: F401
    import workbench.hardware.latency_model  # noqa: F401
    import workbench.calibration.profiler  # noqa: F401
    import workbench.search  # noqa: F401

    for optional in ("aeon.datasets", "sklearn.datasets", "PIL.Image"):  # the data loaders' imports, done once
        try:
            __import__(optional)
        except ImportError:
            pass

    out = sys.stdout
    sys.stdout = sys.stderr  # nothing but outcomes on the pipe
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        out.write(json.dumps(_fork_one(json.loads(line))) + "\n")
        out.flush()


class Runner:
    """Runs cases through the fork server; ``mem_mb`` of address space and ``timeout_s`` per case."""

    def __init__(self, mem_mb: int = 1024, timeout_s: float = 60.0):
        self.mem_mb, self.timeout_s = mem_mb, timeout_s
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=str(ROOT))
        ready = self.proc.stdout.readline()
        if ready.strip() != "ready":
            raise RuntimeError(f"fork server did not start: {ready!r}")

    def run(self, case: Case, env: dict | None = None) -> Outcome:
        request = {"argv": case.argv, "cwd": case.cwd, "mem_mb": self.mem_mb, "timeout_s": self.timeout_s,
                   "env": env or {}}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return Outcome(**json.loads(self.proc.stdout.readline()))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------------- helpers

def case_dir(workdir: Path, klass: str, i: int) -> Path:
    d = Path(workdir) / f"{klass}-{i:03d}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def search_argv(d: Path, *, space="sensor-imu", device: str | Path = "stm32f746", data=None) -> list[str]:
    """A cheap search command (one training-free trial) in the case's own storage."""
    argv = ["search", "--space", str(space), "--device", str(device), "--trials", "1", "--evaluator", "synflow",
            "--storage", f"sqlite:///{d / 'study.db'}", "--study", "hostile"]
    return argv + (["--data", str(data)] if data is not None else [])


def copy_profile(d: Path) -> Path:
    folder = d / "profile"
    if not folder.exists():
        shutil.copytree(PROFILE, folder)
    return folder


def edit_profile(folder: Path, **fields) -> None:
    """Replace top-level ``key: value`` lines of profile.yaml (text edit: the YAML may be hostile)."""
    path = folder / "profile.yaml"
    lines = [line for line in path.read_text().splitlines() if line.split(":")[0] not in fields]
    lines += [f"{k}: {v}" for k, v in fields.items()]
    path.write_text("\n".join(lines) + "\n")


def alias_bomb(rng: random.Random) -> str:
    """A "billion laughs": each level repeats the previous one ``fan`` times."""
    fan = rng.randint(4, 20)
    levels = math.ceil(6 / math.log10(fan)) + rng.randint(0, 3)  # at least a million leaves
    lines = [f"l0: &l0 [{', '.join(['lol'] * fan)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fan)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def deep_yaml(rng: random.Random, depth: int) -> str:
    style = rng.choice(["flow-seq", "flow-map", "block-map", "block-seq"])
    if style == "flow-seq":
        return "[" * depth + "1" + "]" * depth
    if style == "flow-map":
        return "{a: " * depth + "1" + "}" * depth
    depth = depth if style.startswith("flow") else min(depth, 1500)  # block indentation grows as depth²
    if style == "block-map":
        return "\n" + "".join(" " * i + "k:\n" for i in range(1, depth + 1)) + " " * (depth + 1) + "v"
    return "\n" + "".join(" " * i + "-\n" for i in range(1, depth + 1)) + " " * (depth + 1) + "1"


def yaml_targets(d: Path, rng: random.Random, text: str) -> tuple[list[str], str]:
    """Put hostile YAML ``text`` into a space, a profile or a latency model; (argv, file it names)."""
    target = rng.choice(["space", "space-field", "profile", "profile-field", "latency_model"])
    if target.startswith("space"):
        path = d / "space.yaml"
        base = (SPACES / "sensor-imu.yaml").read_text()
        path.write_text(text if target == "space" else base + "\nclasses:\n  " + text.replace("\n", "\n  ") + "\n")
        return search_argv(d, space=path), str(path)
    folder = copy_profile(d)
    if target == "latency_model":
        (folder / "latency_model.yaml").write_text(text)
        return ["model-lut", str(folder)], str(folder / "latency_model.yaml")
    path = folder / "profile.yaml"
    if target == "profile":
        path.write_text(text)
    else:
        path.write_text(path.read_text() + "\nsram_kb:\n  " + text.replace("\n", "\n  ") + "\n")
    return search_argv(d, device=folder), str(path)


def npy_bytes(shape: tuple, dtype: str = "<f4", data: bytes = b"") -> bytes:
    """A .npy file whose header declares ``shape`` (the data may be missing: the header is the attack)."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)}).encode("latin1")
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


def write_npz(path: Path, arrays: dict, raw: dict | None = None) -> Path:
    """An .npz of real arrays plus ``raw`` members given as bytes (hand-made headers)."""
    import numpy as np

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, value in arrays.items():
            with archive.open(f"{key}.npy", "w") as fh:
                np.lib.format.write_array(fh, np.asarray(value), allow_pickle=True)
        for key, data in (raw or {}).items():
            archive.writestr(f"{key}.npy", data)
    return path


def valid_arrays(rng: random.Random, channels=6, length=100, classes=4) -> dict:
    import numpy as np

    gen = np.random.default_rng(rng.randrange(1 << 30))
    return {"x_train": gen.normal(size=(12, channels, length)).astype("float32"),
            "y_train": np.arange(12) % classes, "x_test": gen.normal(size=(8, channels, length)).astype("float32"),
            "y_test": np.arange(8) % classes}


class _Exploit:
    """Pickles to a call of ``function(*args)``: a weights file that would run code if unpickled."""

    def __init__(self, function, args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def png_bytes(width: int, height: int, idat: bytes | None = None) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` gray pixels; the data may be short or absent."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64) if idat is None else idat
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


# ---------------------------------------------------------------------------------------------- generators

def gen_yaml_alias_bomb(workdir, rng, n):
    cases = []
    for i in range(n):
        d = case_dir(workdir, "yaml-alias-bomb", i)
        argv, names = yaml_targets(d, rng, alias_bomb(rng))
        cases.append(Case("yaml-alias-bomb", "billion laughs", argv, names, str(d)))
    return cases


def gen_yaml_deep(workdir, rng, n):
    cases = []
    for i in range(n):
        d = case_dir(workdir, "yaml-deep-nesting", i)
        depth = rng.choice([65, 100, 1000, 20000, rng.randint(65, 60000)])
        argv, names = yaml_targets(d, rng, deep_yaml(rng, depth))
        cases.append(Case("yaml-deep-nesting", f"{depth} levels", argv, names, str(d)))
    return cases


def gen_yaml_huge(workdir, rng, n):
    cases = []
    for i in range(n):
        d = case_dir(workdir, "yaml-huge-file", i)
        size = rng.randint((1 << 20) + 1, 6 << 20)
        filler = rng.choice(["comment", "string", "list"])
        body = {"comment": "#" + "x" * size, "string": "description: " + "y" * size,
                "list": "n: [" + "1," * (size // 2) + "1]"}[filler]
        argv, names = yaml_targets(d, rng, body)
        cases.append(Case("yaml-huge-file", f"{size / (1 << 20):.1f} MiB {filler}", argv, names, str(d)))
    return cases


BAD_SCALARS = ["1" * 5000, "2021-02-30", "2021-13-45 25:61:61", "!!timestamp 'not a time'", "!!float 'x'",
               "!!int 'abc'", "!!binary '@@@@'", "!!python/object/apply:os.system ['true']", "!!set {a, b}",
               "[1, 2", "{a: 1", "'unterminated", "\t- tab", "&a [*b]", "*undefined", "? [1, 2]\n: 3",
               "!!python/name:os.system", "0x" + "f" * 9000, "!!str [1]", "!!map [1]", "1\n---\n2", "@reserved",
               "%YAML 9.9\n---\na: 1"]


def gen_yaml_bad_scalar(workdir, rng, n):
    cases = []
    for i in range(n):
        d = case_dir(workdir, "yaml-bad-values", i)
        value = BAD_SCALARS[i % len(BAD_SCALARS)] if i < len(BAD_SCALARS) else rng.choice(BAD_SCALARS)
        argv, names = yaml_targets(d, rng, value)
        cases.append(Case("yaml-bad-values", value[:30], argv, names, str(d)))
    return cases


def gen_yaml_bytes(workdir, rng, n):
    """Shipped files cut short and followed by random bytes (invalid UTF-8, NULs, control characters)."""
    cases = []
    for i in range(n):
        d = case_dir(workdir, "yaml-garbage-bytes", i)
        source = rng.choice([SPACES / "vision.yaml", PROFILE / "profile.yaml", PROFILE / "latency_model.yaml"])
        data = source.read_bytes()
        junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        text = data[: rng.randrange(len(data))] + junk + b"\n\xff\xfe"
        if source.name == "vision.yaml":
            path = d / "space.yaml"
            path.write_bytes(text)
            argv = search_argv(d, space=path)
        else:
            folder = copy_profile(d)
            path = folder / source.name
            path.write_bytes(text)
            argv = ["model-lut", str(folder)] if source.name == "latency_model.yaml" else search_argv(d, device=folder)
        cases.append(Case("yaml-garbage-bytes", f"{source.name} + {len(junk)} bytes", argv, str(path), str(d)))
    return cases


def _lut_row(i: int) -> str:
    return f"conv2d-hostile{i}-prec:int8,conv2d,int8,1000,100,0.01,0,1,modeled,generated row {i}\n"


def gen_lut_huge(workdir, rng, n):
    """LUTs over the size, row and line limits: a 10-million-row file (sparse), 100,001 valid rows,
    one endless line, long lines, NUL bytes, a quoted field that never ends."""
    from workbench.hardware.lut import LUT_COLUMNS

    header = ",".join(LUT_COLUMNS) + "\n"
    kinds = ["ten-million-rows", "rows-over-limit", "endless-line", "long-line", "nul-bytes", "open-quote",
             "binary"]
    cases = []
    for i in range(n):
        d = case_dir(workdir, "lut-huge-or-binary", i)
        folder = copy_profile(d)
        path = folder / "lut.csv"
        kind = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
        if kind == "ten-million-rows":  # 10,000,000 rows of ~90 bytes: the size cap refuses it from stat
            with path.open("w") as fh:
                fh.write(header + "".join(_lut_row(j) for j in range(1000)))
            os.truncate(path, 10_000_000 * 90)
        elif kind == "rows-over-limit":
            from workbench.hardware.lut import MAX_LUT_ROWS

            with path.open("w") as fh:
                fh.write(header)
                for start in range(0, MAX_LUT_ROWS + 1, 10_000):
                    fh.write("".join(_lut_row(j) for j in range(start, min(start + 10_000, MAX_LUT_ROWS + 1))))
        elif kind == "endless-line":
            path.write_text(header + "x" * rng.randint(3 << 20, 20 << 20))
        elif kind == "long-line":
            path.write_text(header + _lut_row(0) + "conv2d-" + "k" * rng.randint(2100, 200_000) + ",x\n")
        elif kind == "nul-bytes":
            path.write_bytes(header.encode() + _lut_row(0).encode() + b"\x00" * rng.randint(1, 5000) + b"\n")
        elif kind == "open-quote":
            path.write_text(header + '"' + "a,\n" * rng.randint(1000, 200_000))
        else:
            path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randint(10, 4000))))
        cases.append(Case("lut-huge-or-binary", kind, search_argv(d, device=folder), str(path), str(d)))
    return cases


def gen_profile_paths(workdir, rng, n):
    """Profiles whose ``lut:`` / ``latency_model:`` lead out of their folder (or at things that are not files)."""
    kinds = ["absolute", "dotdot", "symlink", "dev-zero", "fifo", "directory", "latency-absolute",
             "latency-dotdot", "symlink-dir"]
    cases = []
    for i in range(n):
        d = case_dir(workdir, "profile-file-paths", i)
        folder = copy_profile(d)
        kind = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
        field, names, argv = "lut", str(folder / "profile.yaml"), search_argv(d, device=folder)
        if kind == "absolute":
            value = rng.choice(["/etc/passwd", "/etc/hostname", "/proc/self/environ"])
        elif kind == "dotdot":
            value = "../" * rng.randint(1, 12) + "etc/passwd"
        elif kind == "symlink":
            (folder / "evil.csv").symlink_to("/etc/passwd")
            value = "evil.csv"
        elif kind == "symlink-dir":
            (folder / "sub").symlink_to("/etc")
            value = "sub/passwd"
        elif kind == "dev-zero":
            value = "/dev/zero"
        elif kind == "fifo":
            os.mkfifo(folder / "pipe.csv")
            value, names = "pipe.csv", "pipe.csv"
        elif kind == "directory":
            (folder / "dir.csv").mkdir()
            value, names = "dir.csv", "dir.csv"
        elif kind == "latency-absolute":
            field, value = "latency_model", "/etc/passwd"
        else:
            field, value = "latency_model", "../../../../etc/shadow"
        if field == "latency_model" and rng.random() < 0.5:
            argv = ["model-lut", str(folder)]
        edit_profile(folder, **{field: value})
        cases.append(Case("profile-file-paths", kind, argv, names, str(d)))
    return cases


def gen_npz_declared_huge(workdir, rng, n):
    """.npz members whose headers declare huge arrays (no data behind them), and a deflate bomb."""
    cases = []
    for i in range(n):
        d = case_dir(workdir, "npz-declared-huge", i)
        arrays = valid_arrays(rng)
        key = rng.choice(["x_train", "x_test", "y_train", "y_test", "classes"])
        shape = rng.choice([(10 ** 6, 6, 100_000), (2 ** 31,), (50_000, 3, 1024, 1024), (rng.randint(1 << 28, 1 << 40),)])
        dtype = rng.choice(["<f8", "<f4", "<i8", "|u1"])
        arrays.pop(key, None)
        raw = {key: npy_bytes(shape, dtype, b"\x00" * rng.randint(0, 64))}
        path = write_npz(d / "data.npz", arrays, raw)
        cases.append(Case("npz-declared-huge", f"{key} {shape} {dtype}", search_argv(d, data=path), str(path), str(d)))
    if n >= 4:  # and one real deflate bomb: 1.25 GiB of zeros in ~1 MB (a few seconds to write)
        d = case_dir(workdir, "npz-declared-huge", n)
        arrays = valid_arrays(rng)
        arrays.pop("x_train")
        path = d / "data.npz"
        write_npz(path, arrays)
        with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive, archive.open("x_train.npy", "w", force_zip64=True) as fh:
            count = 5 * (1 << 26)
            fh.write(npy_bytes((count // (6 * 100), 6, 100), "<f4"))
            block = b"\x00" * (1 << 24)
            for _ in range(count * 4 // len(block)):
                fh.write(block)
        cases.append(Case("npz-declared-huge", "deflate bomb 1.25 GiB", search_argv(d, data=path), str(path), str(d)))
    return cases


def gen_npz_malformed(workdir, rng, n):
    import numpy as np

    def variant(kind, arrays):
        if kind == "classes-array":
            arrays["classes"] = np.array([4, 5, 6])
        elif kind == "classes-float":
            arrays["classes"] = np.array(4.5)
        elif kind == "classes-huge":
            arrays["classes"] = np.array(10 ** 15)
        elif kind == "classes-string":
            arrays["classes"] = np.array("four")
        elif kind == "labels-huge":
            arrays["y_train"] = np.full(12, 10 ** 15)
        elif kind == "labels-complex":
            arrays["y_train"] = arrays["y_train"].astype(complex)
        elif kind == "labels-datetime":
            arrays["y_train"] = np.arange(12).astype("datetime64[D]")
        elif kind == "labels-nan":
            arrays["y_test"] = np.full(8, np.nan)
        elif kind == "labels-2d":
            arrays["y_train"] = arrays["y_train"][:, None]
        elif kind == "x-strings":
            arrays["x_train"] = np.array([["a"] * 100] * 12)
        elif kind == "x-nan":
            arrays["x_test"][0, 0, 0] = np.inf
        elif kind == "x-5d":
            arrays["x_train"] = np.zeros((12, 1, 2, 3, 4), np.float32)
        elif kind == "x-1d":
            arrays["x_train"] = np.zeros(12, np.float32)
        elif kind == "x-empty":
            arrays["x_train"], arrays["y_train"] = np.zeros((0, 6, 100), np.float32), np.zeros(0, int)
        elif kind == "shape-mismatch":
            arrays["x_test"] = np.zeros((8, 6, 99), np.float32)
        elif kind == "count-mismatch":
            arrays["y_test"] = np.arange(7) % 4
        elif kind == "missing-key":
            arrays.pop(rng.choice(["x_train", "y_train", "x_test", "y_test"]))
        elif kind == "one-class":
            arrays["y_train"], arrays["y_test"] = np.zeros(12, int), np.zeros(8, int)
        elif kind == "unknown-test-label":
            arrays["y_train"], arrays["y_test"] = np.array(["a", "b"] * 6), np.array(["a", "z"] * 4)
        elif kind == "labels-negative":
            arrays["y_test"] = -np.ones(8, int)
        elif kind == "structured":
            arrays["x_train"] = np.zeros((12, 100), dtype=[("a", "<f4"), ("b", "<i4")])
        return arrays

    kinds = ["classes-array", "classes-float", "classes-huge", "classes-string", "labels-huge", "labels-complex",
             "labels-datetime", "labels-nan", "labels-2d", "x-strings", "x-nan", "x-5d", "x-1d", "x-empty",
             "shape-mismatch", "count-mismatch", "missing-key", "one-class", "unknown-test-label",
             "labels-negative", "structured", "object-pickle", "not-a-zip", "truncated", "npy-v3", "empty-file",
             "many-members"]
    cases = []
    for i in range(n):
        d = case_dir(workdir, "npz-malformed", i)
        kind = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
        path = d / "data.npz"
        if kind == "object-pickle":
            arrays = valid_arrays(rng)
            arrays["y_train"] = np.array([_Exploit(os.system, ("echo PWNED",))] * 12, dtype=object)
            write_npz(path, arrays)
        elif kind == "not-a-zip":
            path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randint(1, 5000))))
        elif kind == "truncated":
            write_npz(path, valid_arrays(rng))
            data = path.read_bytes()
            path.write_bytes(data[: rng.randrange(1, len(data))])
        elif kind == "npy-v3":
            arrays = valid_arrays(rng)
            raw = npy_bytes((12, 6, 100)).replace(b"\x01\x00", b"\x03\x00", 1)
            arrays.pop("x_train")
            write_npz(path, arrays, {"x_train": raw})
        elif kind == "empty-file":
            path.write_bytes(b"")
        elif kind == "many-members":  # a directory of 70,000 members (zip64) that zipfile would index first
            with zipfile.ZipFile(path, "w") as archive:
                for j in range(rng.randint(10_001, 70_000)):
                    archive.writestr(f"m{j}.npy", b"")
        else:
            write_npz(path, variant(kind, valid_arrays(rng)))
        cases.append(Case("npz-malformed", kind, search_argv(d, data=path), str(path), str(d)))
    return cases


def gen_data_vs_space(workdir, rng, n):
    """Data that does not fit the space: modality, channels, classes (helper A owns these checks)."""
    import numpy as np

    combos = [("sensor-imu", "digits"), ("vision", "basic-motions"), ("audio-kws", "basic-motions"),
              ("vision", "japanese-vowels"), ("sensor-imu", "npz-image"), ("vision", "npz-series"),
              ("sensor-imu", "npz-3ch"), ("audio-kws", "npz-3ch")]  # (a DS-CNN takes 1-channel images as maps)
    cases = []
    for i in range(n):
        d = case_dir(workdir, "data-vs-space", i)
        space, data = combos[i % len(combos)] if i < len(combos) else rng.choice(combos)
        names = data
        if data.startswith("npz"):
            arrays = valid_arrays(rng, channels=3 if data == "npz-3ch" else 6)
            if data == "npz-image":
                arrays["x_train"] = np.zeros((12, 1, 16, 16), np.float32)
                arrays["x_test"] = np.zeros((8, 1, 16, 16), np.float32)
            data = names = str(write_npz(d / "data.npz", arrays))
        cases.append(Case("data-vs-space", f"{space} on {Path(data).name}", search_argv(d, space=space, data=data),
                          names, str(d)))
    return cases


def gen_images(workdir, rng, n):
    """Image folders with decompression bombs, lying headers, non-images and over-limit totals."""
    kinds = ["png-bomb", "png-huge-declared", "png-warning-size", "truncated-png", "not-an-image", "zero-bytes",
             "over-total", "one-class"]
    cases = []
    for i in range(n):
        d = case_dir(workdir, "image-folders", i)
        root = d / "images"
        kind = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
        good = png_bytes(8, 8, zlib.compress(b"".join(b"\x00" + bytes(8) for _ in range(8))))
        for split in ("train", "test"):
            for cls in ("a", "b"):
                (root / split / cls).mkdir(parents=True, exist_ok=True)
                (root / split / cls / "ok.png").write_bytes(good)
        bad = root / rng.choice(["train", "test"]) / "a" / "bad.png"
        names = str(bad)
        if kind == "png-bomb":
            bad.write_bytes(png_bytes(rng.randint(60_000, 100_000), rng.randint(60_000, 100_000)))
        elif kind == "png-huge-declared":
            bad.write_bytes(png_bytes(rng.randint(30_000, 40_000), rng.randint(30_000, 40_000)))
        elif kind == "png-warning-size":  # over PIL's warning threshold, under its error threshold
            bad.write_bytes(png_bytes(10_000, rng.randint(9_000, 17_000)))
        elif kind == "truncated-png":
            bad.write_bytes(good[: rng.randrange(8, 45)])  # cut before the end of the compressed pixels
        elif kind == "not-an-image":
            bad.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randint(1, 3000))))
        elif kind == "zero-bytes":
            bad.write_bytes(b"")
        elif kind == "over-total":  # under PIL's bomb limit one by one, over the data limit together
            for j in range(14):
                (root / "train" / "a" / f"big{j}.png").write_bytes(png_bytes(9000, 9000))
            names = "limit"
        else:
            shutil.rmtree(root / "train" / "b")
            shutil.rmtree(root / "test" / "b")
            names = str(root / "train")
        cases.append(Case("image-folders", kind, search_argv(d, space="vision", data=root), names, str(d)))
    return cases


def gen_space_structure(workdir, rng, n):
    """Spaces a family cannot lower as written: more stages/blocks than it has, wrong containers."""
    import yaml

    kinds = ["mbconv-13-stages", "mbconv-40-stages", "cnn1d-17-blocks", "dscnn-17-blocks", "stages-mapping",
             "stages-empty", "classes-1", "width-0", "kernel-even", "huge-resolution", "unknown-family",
             "family-list"]
    cases = []
    for i in range(n):
        d = case_dir(workdir, "space-structure", i)
        kind = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
        name = "vision"
        doc = yaml.safe_load((SPACES / f"{name}.yaml").read_text())
        field = "stages"
        if kind.startswith("mbconv"):
            doc["stages"] = [dict(doc["stages"][-1]) for _ in range(int(kind.split("-")[1]))]
        elif kind == "cnn1d-17-blocks":
            name = "sensor-imu"
            doc = yaml.safe_load((SPACES / name).with_suffix(".yaml").read_text())
            doc["blocks"]["count"], field = [17], "count"
        elif kind == "dscnn-17-blocks":
            name = "audio-kws"
            doc = yaml.safe_load((SPACES / name).with_suffix(".yaml").read_text())
            doc["blocks"] = {**doc["blocks"], "count": [17]} if isinstance(doc["blocks"], dict) else [doc["blocks"][0]] * 17
            field = "blocks"
        elif kind == "stages-mapping":
            doc["stages"] = {"a": 1}
        elif kind == "stages-empty":
            doc["stages"] = []
        elif kind == "classes-1":
            doc["classes"], field = 1, "classes"
        elif kind == "width-0":
            doc["head"]["width"], field = [0], "width"
        elif kind == "kernel-even":
            doc["stem"]["kernel"], field = [4], "kernel"
        elif kind == "huge-resolution":
            doc["input"]["resolution"], field = [10 ** 9], "resolution"
        elif kind == "unknown-family":
            doc["family"], field = "transformer-xxl", "family"
        else:
            doc["family"], field = ["mbconv"], "family"
        path = d / "space.yaml"
        path.write_text(yaml.safe_dump(doc))
        cases.append(Case("space-structure", kind, search_argv(d, space=path, data="digits" if name == "vision" else None),
                          field, str(d)))
    return cases


# -------------------------------------------------------------- export: --out and --weights (need a study)

def make_study(workdir: Path, runner: Runner) -> Path:
    """A one-trial training-free study the export cases point at (created through the runner)."""
    d = Path(workdir) / "study"
    d.mkdir(parents=True, exist_ok=True)
    db = d / "study.db"
    if not db.exists():
        argv = search_argv(d)
        argv[argv.index("synflow")] = "train"  # export needs a trained trial
        case = Case("setup", "study", argv + ["--epochs", "1"], "", str(d), expect_rc=0)
        outcome = runner.run(case)
        if outcome.rc != 0:
            raise RuntimeError(f"could not create the export study: {outcome.stderr[-2000:]}")
    return db


def export_argv(db: Path, out: str | Path, weights: Path | None = None) -> list[str]:
    argv = ["export", "--study", "hostile", "--storage", f"sqlite:///{db}", "--trial", "0", "--format", "onnx",
            "--out", str(out)]
    return argv + (["--weights", str(weights)] if weights is not None else [])


def gen_export_out(workdir, rng, n, db: Path):
    kinds = ["existing-file", "under-a-file", "proc", "nul", "too-long-name", "dev-null", "deep-under-file"]
    cases = []
    for i in range(n):
        d = case_dir(workdir, "export-out", i)
        kind = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
        (d / "file.txt").write_text("not a folder")
        out, names = {
            "existing-file": (d / "file.txt", "--out"),
            "under-a-file": (d / "file.txt" / "exports", "--out"),
            "deep-under-file": (d / "file.txt" / "a" / "b" / "c", "--out"),
            "proc": (Path("/proc/self/hostile-exports"), "--out"),
            "nul": (f"{d}/bad\0name", "--out"),
            "too-long-name": (d / ("x" * rng.randint(256, 5000)), "--out"),
            "dev-null": (Path("/dev/null"), "--out"),
        }[kind]
        cases.append(Case("export-out", kind, export_argv(db, out), names, str(d)))
    return cases


def gen_weights(workdir, rng, n, db: Path):
    """Weights files: pickled code (refused without running it), integer keys, non-tensors, wrong
    shapes, a zip bomb, junk, truncation, folders."""
    import torch

    kinds = ["exploit-system", "int-keys", "wrong-shapes", "not-tensors", "exploit-eval", "exploit-subprocess",
             "exploit-proto4", "list", "zip-bomb", "junk", "truncated", "empty", "directory", "nested-junk",
             "many-members"]
    cases = []
    for i in range(n):
        d = case_dir(workdir, "weights", i)
        kind = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
        path = d / "weights.pt"
        marker = d / "PWNED"
        if kind.startswith("exploit"):
            payload = {"exploit-system": _Exploit(os.system, (f"touch {marker}",)),
                       "exploit-eval": _Exploit(eval, (f"open({str(marker)!r}, 'w')",)),
                       "exploit-subprocess": _Exploit(subprocess.call, (["touch", str(marker)],)),
                       "exploit-proto4": _Exploit(os.system, (f"touch {marker}",))}[kind]
            if rng.random() < 0.5:
                torch.save({"blocks.0.weight": payload}, path)
            else:
                path.write_bytes(pickle.dumps({"w": payload}, protocol=4 if kind == "exploit-proto4" else 2))
        elif kind == "int-keys":
            torch.save({j: torch.zeros(3) for j in range(rng.randint(1, 5))}, path)
        elif kind == "not-tensors":
            torch.save({"blocks.0.weight": rng.choice([1, "x", [1.0, 2.0], None])}, path)
        elif kind == "wrong-shapes":
            torch.save({"blocks.0.weight": torch.zeros(rng.randint(1, 9), 2)}, path)
        elif kind == "list":
            torch.save([torch.zeros(2)], path)
        elif kind == "zip-bomb":
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, \
                    archive.open("archive/data/0", "w", force_zip64=True) as fh:
                block = b"\x00" * (1 << 24)
                for _ in range(80):  # 1.25 GiB of zeros
                    fh.write(block)
        elif kind == "junk":
            path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randint(1, 5000))))
        elif kind == "truncated":
            torch.save({"a": torch.zeros(100)}, path)
            data = path.read_bytes()
            path.write_bytes(data[: rng.randrange(1, len(data))])
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "directory":
            path.mkdir()
        elif kind == "many-members":
            with zipfile.ZipFile(path, "w") as archive:
                for j in range(100_001):
                    archive.writestr(f"archive/data/{j}", b"")
        else:
            torch.save({"state_dict": {"a": {"b": torch.zeros(1)}}}, path)
        cases.append(Case("weights", kind, export_argv(db, d / "out", path), str(path), str(d), marker=str(marker)))
    return cases


def _tiny_onnx(dims=(8, 1, 3, 3), raw: bytes | None = None) -> bytes:
    """A one-Conv ONNX model; ``dims``/``raw`` of its weight may lie (a huge declared tensor, no data)."""
    import numpy as np
    from onnx import TensorProto, helper

    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=list(dims),  # built by hand: no size check
                         raw_data=raw if raw is not None else np.zeros(int(np.prod(dims)), np.float32).tobytes())
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, dims[0], 8, 8])], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _onnx_graph(nodes: list) -> bytes:
    """An ONNX model of (op, inputs, outputs, attributes) nodes from x (1, 1, 8, 8) to y (1, 8, 8, 8)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node(op, i, o, **attrs) for op, i, o, attrs in nodes], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _tiny_tflite(workdir: Path) -> bytes:
    """A real .tflite of a small conv net (litert-torch), converted once per work folder."""
    cached = Path(workdir) / "tiny.tflite"
    if not cached.exists():  # in a child process: the converter's progress output stays out of the table
        script = ("import sys, torch, litert_torch\n"
                  "net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),"
                  " torch.nn.Linear(8 * 8 * 8, 4)).eval()\n"
                  "litert_torch.convert(net, (torch.zeros(1, 1, 8, 8),)).export(sys.argv[1])\n")
        subprocess.run([sys.executable, "-c", script, str(cached)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return cached.read_bytes()


def gen_model_files(workdir, rng, n):
    """``workbench score`` on model files that are not what they claim: random bytes, bit flips, truncation,
    a 3 GiB sparse file, a folder, a FIFO, ONNX tensors that declare terabytes with no data behind them."""
    kinds = ["random-tflite", "onnx-cycle", "bitflip-onnx", "truncated-onnx", "sparse-huge", "folder", "fifo",
             "declared-huge-onnx", "tflite-magic-only", "onnx-constant-short", "random-onnx", "bitflip-tflite"]
    cases = []
    for i in range(n):
        d = case_dir(workdir, "model-files", i)
        kind = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
        suffix = ".tflite" if "tflite" in kind or (kind in ("sparse-huge", "fifo") and rng.random() < 0.5) else ".onnx"
        path = d / f"model{suffix}"
        if kind.startswith("random"):
            path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randint(1, 20_000))))
        elif kind == "bitflip-onnx":
            data = bytearray(_tiny_onnx())
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            path.write_bytes(bytes(data))
        elif kind == "truncated-onnx":
            data = _tiny_onnx()
            path.write_bytes(data[: rng.randrange(1, len(data))])
        elif kind == "sparse-huge":
            path.write_bytes(b"\x00" * 64)
            os.truncate(path, 3 << 30)
        elif kind == "folder":
            path.mkdir()
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "onnx-cycle":  # two Identity nodes feeding each other the Conv's weight
            path.write_bytes(_onnx_graph([("Identity", ["w2"], ["w"], {}), ("Identity", ["w"], ["w2"], {}),
                                          ("Conv", ["x", "w"], ["y"], {"kernel_shape": [3, 3], "pads": [1] * 4})]))
        elif kind == "onnx-constant-short":
            from onnx import TensorProto

            short = TensorProto(name="c", data_type=TensorProto.FLOAT, dims=[rng.randint(10, 10 ** 6)] * 2,
                                raw_data=b"\x00" * 16)
            path.write_bytes(_onnx_graph([("Constant", [], ["w"], {"value": short}),
                                          ("Conv", ["x", "w"], ["y"], {"kernel_shape": [3, 3], "pads": [1] * 4})]))
        elif kind == "bitflip-tflite":
            data = bytearray(_tiny_tflite(workdir))
            for _ in range(rng.randint(1, 16)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            path.write_bytes(bytes(data))
        elif kind == "declared-huge-onnx":
            path.write_bytes(_tiny_onnx(dims=(rng.randint(1 << 20, 1 << 30), 1, 3, 3), raw=b"\x00" * 36))
        else:
            path.write_bytes(b"\x18\x00\x00\x00TFL3" + bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))))
        cases.append(Case("model-files", kind, ["score", str(path), "--device", "stm32f746"], str(path), str(d),
                          expect_rc=None if kind.startswith("bitflip") else 2))
    return cases


GENERATORS = {
    "yaml-alias-bomb": gen_yaml_alias_bomb,
    "yaml-deep-nesting": gen_yaml_deep,
    "yaml-huge-file": gen_yaml_huge,
    "yaml-bad-values": gen_yaml_bad_scalar,
    "yaml-garbage-bytes": gen_yaml_bytes,
    "lut-huge-or-binary": gen_lut_huge,
    "profile-file-paths": gen_profile_paths,
    "npz-declared-huge": gen_npz_declared_huge,
    "npz-malformed": gen_npz_malformed,
    "data-vs-space": gen_data_vs_space,
    "image-folders": gen_images,
    "space-structure": gen_space_structure,
    "model-files": gen_model_files,
}
STUDY_GENERATORS = {"export-out": gen_export_out, "weights": gen_weights}  # these take the study's db too


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    serve()
