"""Is a target's machine code still exactly what its files hold?  (Breakpoints left behind.)

A debugger sets a breakpoint by writing ``int3`` (0xCC) over the first byte of an
instruction in the target's memory.  gdb takes them out when it detaches on SIGINT, but a
gdb that is killed (SIGKILL, or SIGTERM: measured with gdb 13, it quits without removing
them) leaves them in place, and the target dies of SIGTRAP the next time it calls
malloc.  After every debugger session perfkit compares the executable pages of the
libraries ``memray attach``'s gdb script touches (libc, libpython, the dynamic loader,
the interpreter itself) with the files they are mapped from, and writes back the
original byte wherever a stray 0xCC sits.  Reading needs the same rights as attaching
(``/proc/PID/mem``); nothing is written unless a stray byte is found and no debugger is
attached.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

_WATCHED = re.compile(r"/(libc[.-][^/]*|libpython[^/]*|ld-linux[^/]*|ld-musl[^/]*|libpthread[^/]*|libdl[^/]*|"
                      r"python\d[^/]*)$")
INT3 = 0xCC
MAX_STRAYS = 256  # more than any debugger script sets: then it is not a breakpoint


@dataclass
class Stray:
    address: int
    original: int
    path: str


def _regions(pid: int, everything: bool):
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) < 6 or "x" not in parts[1]:
                continue
            path = parts[5].strip()
            if not path.startswith("/") or path.endswith(" (deleted)"):
                continue
            if not everything and not _WATCHED.search(path):
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            yield lo, hi, int(parts[2], 16), path


def stray_breakpoints(pid: int, *, everything: bool = False) -> list[Stray]:
    """Every 0xCC byte in ``pid``'s watched code that its file does not have.

    Raises OSError (PermissionError, FileNotFoundError) when ``pid`` cannot be read.
    """
    strays: list[Stray] = []
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        for lo, hi, off, path in _regions(pid, everything):
            try:
                with open(path, "rb") as f:
                    f.seek(off)
                    disk = f.read(hi - lo)
            except OSError:
                continue
            try:
                live = os.pread(fd, len(disk), lo)
            except OSError:
                continue
            if live == disk:
                continue
            n = min(len(live), len(disk))
            i = 0
            while True:
                i = live.find(INT3, i, n)
                if i < 0:
                    break
                if disk[i] != INT3:
                    strays.append(Stray(lo + i, disk[i], path))
                i += 1
    finally:
        os.close(fd)
    return strays


def restore(pid: int, strays: list[Stray]) -> int:
    """Write the original bytes back over ``strays``; how many were restored.

    Refuses (returns 0) when a debugger is attached (it owns those bytes) or when there
    are implausibly many (not a debugger's doing).
    """
    from perfkit.procs.proc import tracer

    if not strays or len(strays) > MAX_STRAYS or tracer(pid):
        return 0
    done = 0
    fd = os.open(f"/proc/{pid}/mem", os.O_RDWR)
    try:
        for s in strays:
            if os.pread(fd, 1, s.address) == bytes([INT3]):
                os.pwrite(fd, bytes([s.original]), s.address)
                done += 1
    finally:
        os.close(fd)
    return done


def check_and_repair(pid: int) -> tuple[int, int, str | None]:
    """(strays found, restored, why not checked) — never raises."""
    try:
        strays = stray_breakpoints(pid)
    except OSError as exc:
        return 0, 0, exc.strerror or str(exc)
    if not strays:
        return 0, 0, None
    try:
        return len(strays), restore(pid, strays), None
    except OSError as exc:
        return len(strays), 0, exc.strerror or str(exc)
