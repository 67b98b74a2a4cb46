"""gdb before 14 on CPUs whose register save area is larger than gdb knows (AMX).

gdb 13 reads and writes a thread's extended register state (``NT_X86_XSTATE``) with a
fixed buffer of 2696 bytes (x87, SSE, AVX, AVX-512, PKRU).  Linux takes a
``PTRACE_SETREGSET`` of that register set only as a whole XSAVE image (``xstateregs_set``:
any other size is ``EFAULT``), and on a CPU with AMX tiles (Sapphire Rapids and later)
the whole image is 11008 bytes.  So every inferior function call such a gdb makes — the
``dlopen`` with which ``memray attach`` injects memray — ends in "Couldn't write extended
state status: Bad address": gdb gives up and detaches without putting back the registers
it changed, and the system call the target was in returns a kernel-internal errno
(514, ERESTARTNOHAND) into the program.  ``time.sleep`` raises ``OSError``; the target
dies.  Seen here on Linux 6.18 with gdb 13.1 (Debian 12): ``gdb -p PID -ex 'call getpid()'``
killed a plain ``sleep``.

perfkit runs such a gdb with a small preloaded library (``SOURCE``, built once with the
system C compiler and cached privately) that makes that one write whole: it reads the
thread's complete current state, lays the bytes gdb wrote over its start (the XSAVE
header and every component gdb knows lie inside them) and writes the complete image.
The registers gdb restores are exactly the ones it meant; the AMX state the kernel holds
beyond them is written back as it was.  When the sizes already agree (no AMX, or a newer
kernel/gdb) the library passes the call through unchanged.  A gdb of 14 or later sizes
its buffer from CPUID and is run as it is.

Without a C compiler, on a CPU with AMX, a heap attach is refused before gdb touches the
target (:class:`~perfkit.errors.ToolMissing`, exit 4) rather than let gdb kill it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import stat
import tempfile

from perfkit.errors import ToolMissing

FIXED_IN = (14, 0)  # gdb 14 sizes the XSAVE buffer from CPUID (x86_fetch_xsave_layout)
BUILD_TIMEOUT = 60.0

SOURCE = r"""
/* perfkit: PTRACE_SETREGSET(NT_X86_XSTATE) as a whole XSAVE image, for gdb < 14. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

#define FULL_MAX (1 << 16)

typedef long (*ptrace_fn)(int, pid_t, void *, void *);

long ptrace(enum __ptrace_request request, ...)
{
    va_list ap;
    va_start(ap, request);
    pid_t pid = va_arg(ap, pid_t);
    void *addr = va_arg(ap, void *);
    void *data = va_arg(ap, void *);
    va_end(ap);

    static ptrace_fn real;
    if (!real)
        real = (ptrace_fn)dlsym(RTLD_NEXT, "ptrace");
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    if (request == PTRACE_SETREGSET && (unsigned long)addr == NT_X86_XSTATE && data != NULL) {
        struct iovec *given = data;
        char *full = calloc(1, FULL_MAX);
        if (full != NULL) {
            struct iovec whole = { full, FULL_MAX };
            if (real(PTRACE_GETREGSET, pid, addr, &whole) == 0 && whole.iov_len > given->iov_len) {
                memcpy(full, given->iov_base, given->iov_len);
                long r = real(PTRACE_SETREGSET, pid, addr, &whole);
                int saved = errno;
                free(full);
                errno = saved;
                return r;
            }
            free(full);
        }
    }
    return real(request, pid, addr, data);
}
"""


@functools.lru_cache(maxsize=None)
def gdb_version(exe: str) -> tuple[int, int] | None:
    """``(13, 1)`` from ``gdb --version``; None when it cannot be read."""
    from perfkit.procs import supervisor

    try:
        out = supervisor.run([exe, "--version"], timeout=15.0)
    except OSError:
        return None
    m = re.search(r"GNU gdb\b[^\n]*?(\d+)\.(\d+)", out.stdout.decode("utf-8", "replace"))
    return (int(m.group(1)), int(m.group(2))) if m else None


def needs_fix(exe: str) -> bool:
    """True for a gdb older than 14 (or of unknown version) on x86-64 Linux."""
    if os.uname().machine not in ("x86_64", "amd64"):
        return False
    ver = gdb_version(exe)
    return ver is None or ver < FIXED_IN


def cpu_has_amx() -> bool:
    """The CPU's XSAVE image holds AMX tile state (the case gdb 13 cannot write back)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_tile" in line.split()
    except OSError:
        pass
    return False


def _cache_dir() -> str | None:
    """``$XDG_CACHE_HOME/perfkit`` (or ``~/.cache/perfkit``), 0700 and ours, or None."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "perfkit")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        return None  # a library gdb loads must not be replaceable by anyone else
    return path


def _usable(path: str) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _compiler() -> str | None:
    return next((c for c in (os.environ.get("CC"), "cc", "gcc", "clang") if c and shutil.which(c)), None)


def _build(directory: str) -> str:
    """Compile ``SOURCE`` into ``directory`` (atomically); the library's path."""
    from perfkit.procs import supervisor

    digest = hashlib.sha256(SOURCE.encode()).hexdigest()[:16]
    lib = os.path.join(directory, f"gdb-xstate-{digest}.so")
    if _usable(lib):
        return lib
    cc = _compiler()
    if cc is None:
        raise ToolMissing("no C compiler (cc) to build perfkit's gdb register fix")
    work = tempfile.mkdtemp(prefix="gdbfix-", dir=directory)
    try:
        src = os.path.join(work, "fix.c")
        with open(src, "w", encoding="ascii") as f:
            f.write(SOURCE)
        out = os.path.join(work, "fix.so")
        res = supervisor.run([cc, "-shared", "-fPIC", "-O2", "-o", out, src, "-ldl"], timeout=BUILD_TIMEOUT,
                             stderr_to_stdout=True)
        if not res.ok or not os.path.exists(out):
            tail = res.stdout.decode("utf-8", "replace").strip().splitlines()[-1:] or [res.describe(cc)]
            raise ToolMissing(f"{cc} could not build perfkit's gdb register fix: {tail[0][:300]}")
        os.chmod(out, 0o700)
        os.replace(out, lib)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return lib


def library(scratch: str | None = None) -> str:
    """The fix's shared library, built if needed: in the private cache, else in ``scratch``
    (a directory of this run's, private to perfkit's user)."""
    where = _cache_dir()
    if where is not None:
        try:
            return _build(where)
        except OSError:
            if scratch is None:
                raise
    if scratch is None:
        raise ToolMissing("no private directory to build perfkit's gdb register fix in")
    return _build(scratch)


def describe(exe: str) -> str:
    """``gdb 13.1`` (or ``(version unknown)``), for messages."""
    ver = gdb_version(exe)
    return f"{exe} {'.'.join(map(str, ver)) if ver else '(version unknown)'}"


def refusal(exe: str, exc: BaseException, target: str = "the target") -> tuple[str, str]:
    """(message, hint) when the fix cannot be built on a CPU that needs it: the one
    wording for the heap attach's refusal and doctor's failed check."""
    why = exc.message if isinstance(exc, ToolMissing) else str(exc)
    return (f"{describe(exe)} cannot restore this CPU's AMX register state and would kill {target} when "
            f"memray attaches; perfkit's fix cannot be built ({why})",
            "install a C compiler (apt-get install gcc) so perfkit can build its fix, or gdb 14 or later; "
            "or launch the program under perfkit: perfkit heap -- python app.py")


def gdb_env(env: dict, exe: str, pid: int, scratch: str | None = None) -> dict:
    """``env`` for running ``exe`` (gdb, through memray attach) against ``pid``, with the
    register fix preloaded when this gdb needs it.  Raises :class:`ToolMissing` when it
    cannot be built on a CPU where gdb would otherwise kill the target."""
    if not needs_fix(exe):
        return env
    try:
        lib = library(scratch)
    except (ToolMissing, OSError) as exc:
        if not cpu_has_amx():
            return env  # the sizes agree on this CPU: gdb works as it is
        raise ToolMissing(*refusal(exe, exc, f"pid {pid}")) from None
    out = dict(env)
    out["LD_PRELOAD"] = lib + (" " + env["LD_PRELOAD"] if env.get("LD_PRELOAD") else "")
    return out
