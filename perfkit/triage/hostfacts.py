"""Typed host facts for triage (what ``host/host.json`` holds).

Produced by :mod:`perfkit.triage.host`, read by findings and the bundle through
attributes.  Optional facts default to ``None``; ``to_json()`` writes the same keys
host.json always had.  Per-disk and per-NIC counter sets stay mappings of psutil's
counter names to numbers (their names are psutil's and vary by kernel).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from perfkit.triage.facts import Fact, Problem

Counters = Mapping[str, float]


@dataclass(frozen=True)
class Load(Fact):
    load1: float
    load5: float
    load15: float
    runnable: int
    tasks: int
    cpus: int


@dataclass(frozen=True)
class Memory(Fact):
    total: int
    available: int
    used: int
    free: int
    percent: float
    swap_total: int
    swap_used: int
    swap_percent: float
    cached: int | None = None
    buffers: int | None = None


@dataclass(frozen=True)
class Vmstat(Fact):
    """The /proc/vmstat counters triage reads (absolute, or a change over the window)."""

    pswpin: int | None = None
    pswpout: int | None = None
    oom_kill: int | None = None
    pgmajfault: int | None = None
    pgfault: int | None = None
    pgscan_direct: int | None = None
    allocstall_normal: int | None = None

    _omit_none = frozenset({"pswpin", "pswpout", "oom_kill", "pgmajfault", "pgfault", "pgscan_direct",
                            "allocstall_normal"})

    def minus(self, before: Vmstat) -> Vmstat:
        """The change since ``before`` (counters known at both ends only)."""
        d = {}
        for k in self._omit_none:
            now, then = getattr(self, k), getattr(before, k)
            d[k] = now - then if now is not None and then is not None else None
        return Vmstat(**d)


@dataclass(frozen=True)
class CpuModes(Fact):
    """Share of CPU time (%) by mode over the window (guest time is inside user), the
    modes this kernel reports; the total excludes guest and guest_nice."""

    user: float | None = None
    nice: float | None = None
    system: float | None = None
    idle: float | None = None
    iowait: float | None = None
    irq: float | None = None
    softirq: float | None = None
    steal: float | None = None

    _omit_none = frozenset({"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"})

    def items(self) -> list[tuple[str, float]]:
        """(mode, percent) in the kernel's order, known modes only."""
        return list(self.to_json().items())


@dataclass(frozen=True)
class PsiLine(Fact):
    """One line of /proc/pressure/RES: stall shares (%) and the total stall time (us)."""

    avg10: float | None = None
    avg60: float | None = None
    avg300: float | None = None
    total: int | None = None

    _omit_none = frozenset({"avg10", "avg60", "avg300", "total"})


@dataclass(frozen=True)
class Pressure(Fact):
    some: PsiLine | None = None
    full: PsiLine | None = None

    _omit_none = frozenset({"some", "full"})


@dataclass(frozen=True)
class HostProc(Fact):
    """A row of the host's process table."""

    pid: int
    ppid: int
    name: str
    status: str
    rss: int
    cpu_s: float
    num_threads: int
    user: str | None = None
    cpu_percent: float | None = None  # over the window (set by finish_window)


@dataclass(frozen=True)
class ProcessTable(Fact):
    count: int
    states: Mapping[str, int]
    top_cpu: tuple[HostProc, ...]
    top_rss: tuple[HostProc, ...]


@dataclass(frozen=True)
class CgroupFacts(Fact):
    """CPU quota and throttling, memory limit and usage, OOM kills of one cgroup.
    The ``*_delta`` fields are the change over the triage window."""

    cgroup: str | None
    version_cpu: int | None = None
    cpu_quota_cores: float | None = None
    nr_periods: int | None = None
    nr_throttled: int | None = None
    throttled_us: int | None = None
    version_memory: int | None = None
    memory_limit: int | None = None
    memory_current: int | None = None
    swap_current: int | None = None
    oom_kills: int | None = None
    memory_high_events: int | None = None
    memory_fraction: float | None = None
    note: str | None = None
    nr_periods_delta: int | None = None
    nr_throttled_delta: int | None = None
    throttled_us_delta: int | None = None
    oom_kills_delta: int | None = None

    def to_json(self) -> dict[str, Any]:
        d = super().to_json()
        keep = {"cgroup"}
        if self.version_cpu is not None:
            keep |= {"version_cpu", "cpu_quota_cores", "nr_periods", "nr_throttled", "throttled_us"}
        if self.version_memory is not None:
            keep |= {"version_memory", "memory_limit", "memory_current", "oom_kills"}
            if self.version_memory == 2:
                keep |= {"swap_current", "memory_high_events"}
        return {k: v for k, v in d.items() if k in keep or v is not None}


@dataclass(frozen=True)
class Cgroups(Fact):
    by_pid: Mapping[str, str] = field(default_factory=dict)  # pid -> group key
    groups: Mapping[str, CgroupFacts] = field(default_factory=dict)


@dataclass(frozen=True)
class OomEvent(Fact):
    message: str
    uptime_s: float | None = None
    time: float | None = None


@dataclass(frozen=True)
class OomFacts(Fact):
    since_boot: int | None = None
    events: tuple[OomEvent, ...] = ()
    log_readable: bool = False
    truncated: bool = False

    _omit_false = frozenset({"truncated"})


@dataclass(frozen=True)
class HostFacts(Fact):
    """Everything triage read about the host over its window.  When the host
    counters could not be read at all, only ``problems`` is known (``complete`` False)."""

    problems: tuple[Problem, ...] = ()
    complete: bool = True
    hostname: str | None = None
    kernel: str | None = None
    started: float | None = None
    window_s: float | None = None
    load: Load | None = None
    cpu_modes_percent: CpuModes | None = None
    memory: Memory | None = None
    vmstat_delta: Vmstat = field(default_factory=Vmstat)
    pressure: Mapping[str, Pressure] | None = None
    processes: ProcessTable | None = None
    disks: Mapping[str, Counters] = field(default_factory=dict)
    network: Mapping[str, Counters] = field(default_factory=dict)
    cgroups: Cgroups = field(default_factory=Cgroups)
    oom: OomFacts = field(default_factory=OomFacts)

    @classmethod
    def unavailable(cls, what: str, error: str) -> HostFacts:
        return cls(problems=(Problem(what, error),), complete=False)

    def to_json(self) -> dict[str, Any]:
        d = super().to_json()
        d.pop("complete")
        return d if self.complete else {"problems": d["problems"]}

    @property
    def top_cpu(self) -> tuple[HostProc, ...]:
        return self.processes.top_cpu if self.processes else ()

    @property
    def top_rss(self) -> tuple[HostProc, ...]:
        return self.processes.top_rss if self.processes else ()


__all__ = ["Load", "Memory", "Vmstat", "CpuModes", "PsiLine", "Pressure", "HostProc", "ProcessTable", "CgroupFacts",
           "Cgroups", "OomEvent", "OomFacts", "HostFacts"]
