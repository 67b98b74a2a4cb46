"""Typed facts of one Python process, its stacks and its CPU profile's top, as triage
collects them (:mod:`perfkit.triage.pyprocs`, :mod:`perfkit.triage.run`) and findings,
report and bundle read them.

``to_json()`` of each type gives the keys ``procs/<pid>/process.json`` and
``stacks.json`` always had.  Stack frames keep py-spy's own frame document for
``stacks.json`` (its keys are py-spy's and vary with its version) beside the typed
fields perfkit reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from perfkit.triage.facts import Fact

# --------------------------------------------------------------------------- stacks

@dataclass(frozen=True)
class Local(Fact):
    name: str
    repr: str = ""


@dataclass(frozen=True)
class StackFrame(Fact):
    """One frame of a py-spy dump (leaf first in a thread)."""

    name: str
    filename: str
    line: int
    locals: tuple[Local, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)  # py-spy's frame, for stacks.json

    @classmethod
    def from_pyspy(cls, d: Mapping[str, Any]) -> StackFrame:
        locs = tuple(Local(str(x.get("name", "?")), str(x.get("repr", ""))) for x in d.get("locals") or [])
        return cls(name=str(d.get("name", "?")), filename=str(d.get("filename") or ""), line=int(d.get("line") or 0),
                   locals=locs, raw=dict(d))

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw) if self.raw else {"name": self.name, "filename": self.filename, "line": self.line}


@dataclass(frozen=True)
class ThreadDump(Fact):
    """One thread of an all-thread stack dump, and its leaf's source line."""

    pid: int
    thread_id: int
    os_thread_id: int | None = None
    name: str | None = None
    active: bool = False
    owns_gil: bool = False
    frames: tuple[StackFrame, ...] = ()
    leaf_source: str | None = None

    @property
    def tid(self) -> int:
        """The OS thread id when known (the one /proc and the CPU table use)."""
        return self.os_thread_id or self.thread_id

    @property
    def leaf(self) -> StackFrame | None:
        return self.frames[0] if self.frames else None


Stacks = tuple[ThreadDump, ...]


# --------------------------------------------------------------------------- process facts

@dataclass(frozen=True)
class ThreadCpu(Fact):
    cpu_seconds: float
    cpu_percent: float | None = None

    _omit_none = frozenset({"cpu_percent"})


@dataclass(frozen=True)
class FdCounts(Fact):
    count: int
    by_kind: Mapping[str, int] = field(default_factory=dict)  # file socket pipe anon other


@dataclass(frozen=True)
class NofileLimit(Fact):
    soft: int | None = None  # None: unlimited
    hard: int | None = None


@dataclass(frozen=True)
class SocketFacts(Fact):
    count: int
    by_state: Mapping[str, int] = field(default_factory=dict)
    listening: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProcessFacts(Fact):
    """RSS, CPU, threads with their CPU, fds against RLIMIT_NOFILE, sockets, status."""

    pid: int
    status: str
    cpu_seconds: float
    rss: int
    vms: int
    num_threads: int
    create_time: float
    cpu_percent: float | None = None  # over cpu_window_s
    cpu_window_s: float | None = None
    nice: int | None = None
    threads: Mapping[str, ThreadCpu] = field(default_factory=dict)  # os thread id (text) -> CPU
    fds: FdCounts | None = None
    nofile_limit: NofileLimit | None = None
    fd_fraction: float | None = None
    sockets: SocketFacts | None = None
    fds_at_end: int | None = None  # re-counted when triage ends

    _omit_none = frozenset({"cpu_percent", "cpu_window_s", "nice", "fd_fraction", "fds_at_end"})

    @property
    def fd_soft_limit(self) -> int | None:
        return self.nofile_limit.soft if self.nofile_limit else None

    @property
    def fd_count(self) -> int | None:
        """Open fds at the last look."""
        if self.fds_at_end is not None:
            return self.fds_at_end
        return self.fds.count if self.fds else None


# --------------------------------------------------------------------------- profile top

@dataclass(frozen=True)
class TopRow(Fact):
    """A row of a CPU profile's top table."""

    function: str
    location: str
    file: str | None
    line: int | None
    self_percent: float
    total_percent: float


# --------------------------------------------------------------------------- what findings read

@dataclass(frozen=True)
class ProcRecord:
    """One Python process as the findings see it: its facts, stacks (both looks) and profile."""

    pid: int
    name: str = "?"
    script: str | None = None
    facts: ProcessFacts | None = None
    stacks: Stacks | None = None
    stacks2: Stacks | None = None
    stacks2_delay_s: float | None = None
    profile_top: tuple[TopRow, ...] = ()
    profile_busy_percent: float | None = None
    flame: str | None = None

    @property
    def label(self) -> str:
        return f"pid {self.pid} ({self.script or self.name or '?'})"


def stacks_json(pid: int, first: Sequence[ThreadDump] | None, second: Sequence[ThreadDump] | None,
                seconds_between: float | None) -> dict[str, Any]:
    """The document of ``procs/<pid>/stacks.json``."""
    return {"pid": pid, "first": None if first is None else [t.to_json() for t in first],
            "second": None if second is None else [t.to_json() for t in second], "seconds_between": seconds_between}


__all__ = ["Local", "StackFrame", "ThreadDump", "Stacks", "ThreadCpu", "FdCounts", "NofileLimit", "SocketFacts",
           "ProcessFacts", "TopRow", "ProcRecord", "stacks_json"]
