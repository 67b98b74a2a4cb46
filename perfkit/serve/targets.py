"""Which processes `perfkit serve` serves, followed as they come and go.

Sources, any combination:

* ``--pid N`` (repeatable): checked up front (exists, Python, reachable);
* ``--children``: every Python descendant of those pids (or of the launched program) —
  a gunicorn/celery master's workers, re-read on every refresh;
* ``--match REGEX``: every Python process whose command line matches (searched in
  the whole ``/proc``; perfkit itself and its helpers are never matched);
* ``-- CMD``: a program perfkit launches (``target.Launched``).

A target is identified by (pid, start time), so a recycled pid is a new target.  A
target that exits disappears at the next refresh; a new matching one appears.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field

from perfkit.procs import proc
from perfkit.redact import redact_argv

CMD_LABEL_MAX = 60


@dataclass
class ServedTarget:
    pid: int
    started: float  # epoch seconds (with pid, the identity)
    argv: list[str]  # redacted unless --no-redact
    redacted: bool
    origin: str  # "pid", "child", "match", "launched"
    found_at: float = field(default_factory=time.time)
    # one CPU profile / one heap capture at a time: (lock, monotonic end of the running one)
    cpu_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    cpu_busy_until: float = 0.0
    heap_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    heap_busy_until: float = 0.0
    state: object = None  # collect.TargetState, owned by the collector

    @property
    def cmd(self) -> str:
        """A short command label: the program and its first arguments (redacted)."""
        return short_cmd(self.argv)

    def to_json(self) -> dict:
        return {"pid": self.pid, "cmd": self.cmd, "argv": self.argv, "redacted": self.redacted,
                "origin": self.origin, "started": round(self.started, 3), "found_at": round(self.found_at, 3)}


def short_cmd(argv: list[str]) -> str:
    if not argv:
        return "?"
    parts = [os.path.basename(argv[0])]
    rest = argv[1:]
    # python [-opts] script|-m mod: keep the script or module, not the interpreter's flags
    while rest and rest[0].startswith("-") and rest[0] not in ("-m", "-c"):
        rest = rest[1:]
    if rest[:1] == ["-m"] and len(rest) > 1:
        parts += rest[:2]
        rest = rest[2:]
    elif rest:
        parts.append(os.path.basename(rest[0]) if "/" in rest[0] else rest[0])
        rest = rest[1:]
    text = " ".join(parts + rest)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= CMD_LABEL_MAX else text[:CMD_LABEL_MAX - 1] + "…"


def _identity(pid: int) -> float | None:
    try:
        return proc.start_time(pid)
    except (proc.Gone, OSError, StopIteration):
        return None


class TargetSet:
    """The served targets; :meth:`refresh` re-reads the sources (thread-safe)."""

    def __init__(self, *, pids: list[int] | None = None, children: bool = False, match: str | None = None,
                 launched_pid: int | None = None, redact: bool = True) -> None:
        self.roots = list(dict.fromkeys(pids or []))
        self.children = children
        self.match = re.compile(match) if match else None
        self.launched_pid = launched_pid
        self.redact = redact
        self.self_pid = os.getpid()
        self._lock = threading.Lock()
        self._targets: dict[int, ServedTarget] = {}
        self._python: dict[tuple[int, float], bool] = {}  # (pid, start) -> is Python (and reachable)
        self.exits = 0  # targets that went away
        self.skipped: dict[int, str] = {}  # matching processes perfkit cannot serve, and why

    # ------------------------------------------------------------------ reading
    def served(self) -> list[ServedTarget]:
        with self._lock:
            return sorted(self._targets.values(), key=lambda t: (t.found_at, t.pid))

    def get(self, pid: int | None) -> ServedTarget | None:
        """``pid``'s target, or the first one when ``pid`` is None."""
        with self._lock:
            if pid is None:
                items = sorted(self._targets.values(), key=lambda t: (t.found_at, t.pid))
                return items[0] if items else None
            return self._targets.get(pid)

    def __len__(self) -> int:
        with self._lock:
            return len(self._targets)

    # ------------------------------------------------------------------ discovery
    def _servable(self, pid: int, started: float) -> bool:
        key = (pid, started)
        ok = self._python.get(key)
        if ok is None:
            from perfkit.errors import PerfkitError
            from perfkit.target import check_reachable, is_python

            try:
                check_reachable(pid)
                ok = is_python(pid)
            except PerfkitError as exc:
                self.skipped[pid] = exc.message
                ok = False
            if len(self._python) > 4096:
                self._python.clear()
            self._python[key] = ok
        return ok

    def _own_helpers(self) -> set[int]:
        """perfkit's own descendants (guards, py-spy, memray) — never targets."""
        mine = set(proc.child_pids(self.self_pid))
        if self.launched_pid is not None:
            mine.discard(self.launched_pid)
            mine -= set(proc.child_pids(self.launched_pid))
        return mine | {self.self_pid}

    def _wanted(self) -> dict[int, str]:
        want: dict[int, str] = {}
        roots = [p for p in self.roots if proc.alive(p)]
        if self.launched_pid is not None and proc.alive(self.launched_pid):
            roots.append(self.launched_pid)
        for p in roots:
            want[p] = "launched" if p == self.launched_pid else "pid"
        if self.children:
            for root in roots:
                for kid in proc.child_pids(root):
                    want.setdefault(kid, "child")
        if self.match is not None:
            helpers = self._own_helpers()
            for name in os.listdir("/proc"):
                if not name.isdigit():
                    continue
                pid = int(name)
                if pid in want or pid in helpers:
                    continue
                argv = proc.cmdline(pid)
                if argv and self.match.search(" ".join(argv)):
                    want[pid] = "match"
        return want

    def refresh(self) -> tuple[list[ServedTarget], list[ServedTarget]]:
        """Re-read the sources; (added, removed)."""
        want = self._wanted()
        added: list[ServedTarget] = []
        removed: list[ServedTarget] = []
        with self._lock:
            current = dict(self._targets)
        for pid, t in current.items():
            if pid not in want or not proc.alive(pid) or _identity(pid) != t.started:
                removed.append(t)
        gone = {t.pid for t in removed}
        for pid, origin in want.items():
            if pid in current and pid not in gone:
                continue
            started = _identity(pid)
            if started is None:
                continue
            # --pid roots and the launched program were checked up front; children and
            # matches are served only when they are Python processes perfkit can read
            if origin in ("child", "match") and not self._servable(pid, started):
                continue
            argv = proc.cmdline(pid)
            shown, hit = redact_argv(argv) if self.redact else (argv, False)
            added.append(ServedTarget(pid=pid, started=started, argv=shown, redacted=hit, origin=origin))
        with self._lock:
            for t in removed:
                self._targets.pop(t.pid, None)
            for t in added:
                self._targets[t.pid] = t
            self.exits += len(removed)
        return added, removed
