"""The triage summary (``summary.json``, the ``--json`` document) and its findings, typed.

The bundle builds a :class:`Summary`; summary.md, index.html and the terminal view read
it through attributes; ``to_json()`` writes the keys summary.json always had.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from perfkit.triage.facts import Event, Fact
from perfkit.triage.hostfacts import CpuModes, HostFacts, HostProc, Load, Memory
from perfkit.triage.model import TopRow


@dataclass(frozen=True)
class Finding(Fact):
    """What stands out, with the bundle paths of its evidence."""

    kind: str
    severity: str  # high | warn | info
    title: str
    detail: str = ""
    evidence: list[str] = field(default_factory=list)
    pid: int | None = None

    _omit_none = frozenset({"pid"})


@dataclass(frozen=True)
class BriefProc(Fact):
    """A host top-table row as the summary shows it."""

    pid: int
    name: str | None = None
    user: str | None = None
    cpu_percent: float | None = None
    rss: int | None = None

    @classmethod
    def of(cls, row: HostProc) -> BriefProc:
        return cls(pid=row.pid, name=row.name, user=row.user, cpu_percent=row.cpu_percent, rss=row.rss)


@dataclass(frozen=True)
class HostBrief(Fact):
    load: Load | None = None
    cpu_modes_percent: CpuModes | None = None
    memory: Memory | None = None
    pressure: Mapping[str, float | None] = field(default_factory=dict)  # resource -> "some" avg10
    top_cpu: tuple[BriefProc, ...] = ()
    top_rss: tuple[BriefProc, ...] = ()

    @classmethod
    def of(cls, host: HostFacts) -> HostBrief:
        psi = {k: (v.some.avg10 if v.some else None) for k, v in (host.pressure or {}).items()}
        return cls(load=host.load, cpu_modes_percent=host.cpu_modes_percent, memory=host.memory, pressure=psi,
                   top_cpu=tuple(BriefProc.of(r) for r in host.top_cpu[:5]),
                   top_rss=tuple(BriefProc.of(r) for r in host.top_rss[:5]))


@dataclass(frozen=True)
class ProcessRow(Fact):
    """One Python process in the summary's table."""

    pid: int
    name: str
    script: str | None = None
    ppid: int | None = None
    cmdline: tuple[str, ...] | list[str] = ()
    user: str | None = None
    role: str | None = None
    parent_target: int | None = None
    state: str | None = None
    cpu_percent: float | None = None
    rss: int | None = None
    threads: int | None = None
    fds: int | None = None
    fd_limit: int | None = None
    sockets: int | None = None
    gil_holder: str | None = None
    stacks: str | None = None  # bundle path of stacks.txt
    stacks_error: str | None = None
    flame: str | None = None
    process_json: str | None = None
    profile_top: tuple[TopRow, ...] = ()

    @property
    def shown_name(self) -> str:
        return self.script or self.name or "?"


@dataclass(frozen=True)
class Collection(Fact):
    failed: tuple[Event, ...] = ()

    @property
    def needs_privilege(self) -> tuple[Event, ...]:
        return tuple(e for e in self.failed if e.needs_privilege)

    def to_json(self) -> dict[str, list[dict[str, object]]]:
        return {"failed": [e.to_json() for e in self.failed],
                "needs_privilege": [e.to_json() for e in self.needs_privilege]}


@dataclass(frozen=True)
class Privilege(Fact):
    euid: int
    user: str | None
    root: bool
    cap_sys_ptrace: bool


@dataclass(frozen=True)
class Summary(Fact):
    """The triage summary document."""

    bundle: str
    hostname: str | None
    started: float
    elapsed_s: float
    budget_s: float
    within_budget: bool
    interrupted: bool
    host: HostBrief
    findings: tuple[Finding, ...]
    processes: tuple[ProcessRow, ...]
    collection: Collection
    privilege: Privilege
    notes: tuple[str, ...] = ()
    command: str = "triage"


__all__ = ["Finding", "BriefProc", "HostBrief", "ProcessRow", "Collection", "Privilege", "Summary"]
