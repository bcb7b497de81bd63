"""Bounded reading of untrusted input files: sizes, lines, rows and declared array shapes checked
before anything large is allocated.

Spaces, profiles, LUTs, data files and weights are often files someone sent you. Each reader here
refuses an input that would need more memory than its limit *before* reading it whole (a file
size from ``stat``, an array size from its ``.npy`` header, a zip member's declared size), and says
which limit was hit, so a hostile file costs an error line instead of the machine's memory.
"""
from __future__ import annotations

import math
import os
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from workbench._infra.errors import WorkbenchError

MIB = 1 << 20
MAX_DATA_BYTES = 1 << 30  # decoded arrays of one data set (.npz or image folder)
MAX_WEIGHTS_BYTES = 1 << 30  # a weights file, and the tensors its zip members declare
MAX_NPZ_MEMBERS = 10_000  # arrays in one .npz (a data set needs 4 to 6)
MAX_WEIGHTS_MEMBERS = 100_000  # tensors in one weights zip
ZIP_EOCD = b"PK\x05\x06"
ZIP64_LOCATOR = b"PK\x06\x07"


def size_text(n_bytes: float) -> str:
    """``1 GiB``, ``32 MiB``, ``12.5 KiB``: limits and sizes in error messages."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.4g} {unit}"
    return f"{int(n_bytes)} bytes"


def check_file_size(path: Path, limit: int, what: str) -> int:
    """The size of regular file ``path``, refused when over ``limit`` (named in the message)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise WorkbenchError(f"cannot read ({exc.strerror or exc})", where=str(path)) from None
    if size > limit:
        raise WorkbenchError(f"{size:,} bytes ({size_text(size)}) is over the {size_text(limit)} limit for {what}",
                             where=str(path))
    return size


def bounded_lines(fh: IO[str], where: str, *, max_line: int, max_lines: int) -> Iterator[str]:
    """Lines of ``fh`` (newline kept), each at most ``max_line`` characters and at most ``max_lines`` of them.

    ``readline(n)`` never reads more than ``n`` characters, so a file that is one endless line
    (or endless lines) fails at the limit instead of being read into memory.
    """
    for number in range(1, max_lines + 2):
        line = fh.readline(max_line + 1)
        if not line:
            return
        if number > max_lines:
            raise WorkbenchError(f"more than {max_lines:,} lines (the limit)", where=where)
        if len(line.rstrip("\r\n")) > max_line:
            raise WorkbenchError(f"line {number} is longer than {max_line:,} characters (the limit)", where=where)
        yield line


def _npy_header(fh) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a ``.npy`` header (versions 1 and 2), without reading the data."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    return tuple(int(s) for s in shape), np.dtype(dtype)


def read_npz(path: Path, keys: tuple[str, ...], limit: int = MAX_DATA_BYTES) -> dict[str, np.ndarray]:
    """The arrays named ``keys`` of an ``.npz`` (those present), their declared sizes checked first.

    ``np.load`` allocates an array of the shape its header declares before reading the data, and a
    compressed member is small on disk whatever it expands to: so every wanted member's header is
    read, object arrays (pickles) are refused and the declared bytes are summed against ``limit``
    before one array is loaded. Members other than the wanted ``.npy`` arrays are never read.
    """
    where = str(path)
    check_zip_directory(path, MAX_NPZ_MEMBERS, "a data set")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {name[:-4]: name for name in archive.namelist() if name.endswith(".npy")}
            wanted = {key: members[key] for key in keys if key in members}
            total = 0
            for key, member in wanted.items():
                with archive.open(member) as fh:
                    shape, dtype = _npy_header(fh)
                if dtype.hasobject:
                    raise WorkbenchError(f"{key}: holds Python objects (dtype {dtype}); only numeric arrays are "
                                         f"read (pickles are never loaded)", where=where)
                total += math.prod(shape) * dtype.itemsize
                if total > limit:
                    raise WorkbenchError(f"{key}: declared shape {shape} ({dtype}) brings the arrays to "
                                         f"{size_text(total)}, over the {size_text(limit)} limit for a data set",
                                         where=where)
            npz = np.load(path, allow_pickle=False)
            with npz:
                return {key: npz[key] for key in wanted}
    except WorkbenchError:
        raise
    except Exception as exc:  # not a zip, corrupt member, bad header: each library says it differently
        raise WorkbenchError(f"cannot read as .npz ({type(exc).__name__}: {one_line(exc)})", where=where) from None


def _zip_directory_size(path: Path) -> tuple[int, int] | None:
    """(members, central directory bytes) from a zip's end record alone, or None when it has none.

    ``zipfile.ZipFile`` builds an object per member as it opens a file: a directory of millions of
    members costs gigabytes before any other check could run, so it is sized from the end record first.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        fh.seek(max(0, size - 22 - 65535))  # the end record (22 bytes) plus a comment of at most 64 KiB
        tail = fh.read()
        at = tail.rfind(ZIP_EOCD)
        if at < 0 or len(tail) - at < 22:
            return None
        members, directory, offset = struct.unpack("<H2L", tail[at + 10: at + 20])
        if 0xFFFF in (members,) or 0xFFFFFFFF in (directory, offset):  # zip64: the real counts are elsewhere
            locator = tail[at - 20: at] if at >= 20 else b""
            if locator[:4] != ZIP64_LOCATOR:
                return None
            fh.seek(struct.unpack("<Q", locator[8:16])[0])
            record = fh.read(56)
            if record[:4] != b"PK\x06\x06" or len(record) < 48:
                return None
            members, directory = struct.unpack("<QQ", record[32:48])
    return members, directory


def check_zip_directory(path: Path, max_members: int, what: str) -> None:
    """Refuse a zip with more than ``max_members`` members (or a directory too large for that many)."""
    try:
        found = _zip_directory_size(path)
    except (OSError, struct.error) as exc:
        raise WorkbenchError(f"cannot read ({one_line(exc, 120)})", where=str(path)) from None
    if found and (found[0] > max_members or found[1] > max_members * 1024):
        raise WorkbenchError(f"its zip directory lists {found[0]:,} members in {size_text(found[1])}, over the "
                             f"limit of {max_members:,} members for {what}", where=str(path))


def check_zip_members(path: Path, limit: int, what: str, max_members: int = MAX_WEIGHTS_MEMBERS) -> None:
    """Refuse a zip whose members declare more than ``limit`` bytes uncompressed (a zip bomb)."""
    if not zipfile.is_zipfile(path):
        return
    check_zip_directory(path, max_members, what)
    try:
        with zipfile.ZipFile(path) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise WorkbenchError(f"cannot read as a zip archive ({one_line(exc)})", where=str(path)) from None
    if total > limit:
        raise WorkbenchError(f"its zip members expand to {size_text(total)}, over the {size_text(limit)} limit "
                             f"for {what}", where=str(path))


def check_output_folder(out_dir: str | Path) -> Path:
    """``--out`` as a folder a command can write into (exports, profiles), refused before any work: an
    existing file, a path under a file, a folder that cannot be created there (probed by making and
    removing an empty one, which also catches read-only mounts and ``/proc``)."""
    out_dir = Path(out_dir)
    try:
        if "\0" in str(out_dir):
            raise ValueError("embedded NUL character")
        if out_dir.exists() and not out_dir.is_dir():
            raise WorkbenchError("--out: exists and is not a folder", where=str(out_dir))
        existing = out_dir.absolute()
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        if not existing.is_dir():
            raise WorkbenchError(f"--out: cannot create a folder here: {existing} is not a folder", where=str(out_dir))
        os.rmdir(tempfile.mkdtemp(prefix=".workbench-probe-", dir=existing))  # can a folder be made there?
    except (OSError, ValueError) as exc:
        raise WorkbenchError(f"--out: not a usable folder path ({one_line(exc, 120)})", where=ascii(str(out_dir))[:200]) from None
    return out_dir


def one_line(exc: BaseException, limit: int = 240) -> str:
    """An exception's message as one short line (library messages often span many)."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"
