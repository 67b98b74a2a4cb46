"""Threads grouped by identical stacks, like Go's goroutine dump.

Input: py-spy ``ThreadStack``s (frames leaf first) and optional per-thread CPU% from
the sampler.  Output: :class:`ThreadInfo` per thread and :class:`StackGroup` per distinct
stack ("12 threads in get (queue.py:171)"), busiest groups first.  Pure: no process
access here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perfkit.names import thread_label


@dataclass
class ThreadInfo:
    pid: int
    tid: int | None  # OS thread id
    name: str
    active: bool
    owns_gil: bool
    cpu_pct: float | None
    frames: list[dict]  # leaf first: name, filename, line, locals?
    new: bool = False  # appeared during the measuring window

    @property
    def state(self) -> str:
        return "running" if self.active else "idle"

    def key(self) -> tuple:
        return tuple((f.get("name"), f.get("filename"), f.get("line")) for f in self.frames)

    def to_json(self) -> dict:
        return {"pid": self.pid, "tid": self.tid, "name": self.name, "state": self.state, "active": self.active,
                "owns_gil": self.owns_gil, "cpu_pct": self.cpu_pct, "new": self.new,
                "frames": [_frame_json(f) for f in self.frames]}


def _frame_json(f: dict) -> dict:
    out = {"function": f.get("name"), "file": f.get("filename"), "line": f.get("line")}
    if f.get("locals"):
        out["locals"] = [{"name": v.get("name"), "repr": v.get("repr"), "arg": v.get("arg")}
                         for v in f["locals"]]
    return out


@dataclass
class StackGroup:
    frames: list[dict]  # leaf first
    threads: list[ThreadInfo] = field(default_factory=list)
    several_processes: bool = False  # the snapshot spans several processes: name the pids

    @property
    def count(self) -> int:
        return len(self.threads)

    @property
    def cpu_pct(self) -> float:
        return round(sum(t.cpu_pct or 0.0 for t in self.threads), 1)

    @property
    def running(self) -> int:
        return sum(1 for t in self.threads if t.active)

    def where(self) -> str:
        """``function (file:line)`` of the innermost frame, or "no Python frames"."""
        if not self.frames:
            return "no Python frames"
        return frame_label(self.frames[0])

    def app_frame(self) -> dict | None:
        """The innermost frame outside the standard library and site-packages."""
        for f in self.frames:
            if not is_library(f.get("filename") or ""):
                return f
        return None

    def summary(self) -> str:
        n = self.count
        pids = sorted({t.pid for t in self.threads})
        text = f"{n} thread{'s' if n != 1 else ''} in {self.where()}"
        app = self.app_frame()
        if app is not None and self.frames and app is not self.frames[0]:
            text += f" from {frame_label(app)}"
        if self.several_processes:
            text += f" (pid {', '.join(map(str, pids[:4]))}{', …' if len(pids) > 4 else ''})"
        return text

    def to_json(self) -> dict:
        app = self.app_frame()
        return {"count": self.count, "where": self.where(), "summary": self.summary(),
                "app_frame": _frame_json(app) if app else None, "cpu_pct": self.cpu_pct,
                "running": self.running,
                "threads": [{"pid": t.pid, "tid": t.tid, "name": t.name} for t in self.threads],
                "frames": [_frame_json(f) for f in self.frames]}


def is_library(path: str) -> bool:
    """Not the user's own code (standard library, installed package, perfkit/py-spy/memray,
    native or unknown) — ``perfkit.paths`` decides, the same everywhere."""
    from perfkit import paths

    if not path or path.startswith("<"):
        return True
    return paths.classify(path) != paths.USER


def frame_label(f: dict) -> str:
    """``function (path:line)`` in the one path style of ``perfkit.paths``."""
    from perfkit import paths

    where = paths.location(f.get("filename") or "", f.get("line") or 0)
    name = f.get("name") or "?"
    return f"{name} ({where})" if where else name


def build_threads(stacks, cpu: dict[int, dict] | None = None, *, names: dict[int, str] | None = None,
                  process_names: dict[int, str] | None = None) -> list[ThreadInfo]:
    """ThreadInfo per py-spy ThreadStack, joined with per-thread CPU on the OS thread id."""
    cpu = cpu or {}
    out = []
    for s in stacks:
        tid = s.os_thread_id
        c = cpu.get(tid) if tid is not None else None
        os_name = (c or {}).get("name") or (names or {}).get(tid)
        proc_name = (process_names or {}).get(s.pid) or (cpu.get(s.pid) or {}).get("name")
        name = thread_label(s.name, os_name, tid=tid, process_name=proc_name)
        out.append(ThreadInfo(pid=s.pid, tid=tid, name=name, active=s.active, owns_gil=s.owns_gil,
                              cpu_pct=c["cpu_pct"] if c else None, frames=list(s.frames),
                              new=bool(c and c.get("new"))))
    return out


def group(threads: list[ThreadInfo]) -> list[StackGroup]:
    """Threads with identical stacks (function, file, line at every level) together.

    Largest groups first, then busiest; ties by where (deterministic).
    """
    groups: dict[tuple, StackGroup] = {}
    for t in threads:
        g = groups.get(t.key())
        if g is None:
            g = groups[t.key()] = StackGroup(frames=t.frames)
        g.threads.append(t)
    several = len({t.pid for t in threads}) > 1
    for g in groups.values():
        g.threads.sort(key=lambda t: (t.pid, t.tid or 0))
        g.several_processes = several
    return sorted(groups.values(), key=lambda g: (-g.count, -g.cpu_pct, g.where()))
