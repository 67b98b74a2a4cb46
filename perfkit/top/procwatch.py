"""What /proc says about the target while ``perfkit top`` runs: per-thread CPU ticks,
RSS and the thread count, sampled on every refresh (cheap reads, no ptrace).

Per-thread CPU over any stretch of time is the difference of two readings of
``/proc/PID/task/*/stat`` (user + system ticks); RSS and thread count keep a history
for the sparklines.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from perfkit.procs import proc


@dataclass
class Reading:
    at: float  # monotonic
    threads: dict[int, tuple[float, str]]  # tid -> (CPU seconds, name)
    rss: int | None
    cpu_s: float  # the whole process (threads that ended included)
    state: str | None = None


@dataclass
class ProcWatch:
    pid: int
    keep: float = 300.0  # seconds of history kept (sparklines show the last of it)
    readings: deque = field(default_factory=deque)
    gone: bool = False

    def read(self, now: float) -> Reading | None:
        try:
            st = proc.stat(self.pid)
            threads = proc.thread_cpu_times(self.pid)
        except proc.Gone:
            self.gone = True
            return None
        if st.state in ("Z", "X"):
            self.gone = True
            return None
        r = Reading(now, threads, proc.rss(self.pid), st.cpu_s, st.state)
        self.readings.append(r)
        while self.readings and self.readings[0].at < now - self.keep:
            self.readings.popleft()
        return r

    def at(self, t: float) -> Reading | None:
        """The latest reading taken at or before ``t`` (else the oldest)."""
        best = None
        for r in self.readings:
            if r.at <= t:
                best = r
            else:
                break
        return best or (self.readings[0] if self.readings else None)

    def thread_cpu(self, start: float, end: float) -> dict[int, tuple[float, str]] | None:
        """tid -> (cores used between ``start`` and ``end``, name); None before two readings."""
        a, b = self.at(start), self.at(end)
        if a is None or b is None or b.at - a.at <= 0:
            return None
        dt = b.at - a.at
        return {tid: (max(0.0, (cpu - a.threads.get(tid, (0.0, name))[0]) / dt), name)
                for tid, (cpu, name) in b.threads.items()}

    def process_cpu(self, start: float, end: float) -> float | None:
        """Cores the whole process used between ``start`` and ``end`` (threads that ended included)."""
        a, b = self.at(start), self.at(end)
        if a is None or b is None or b.at - a.at <= 0:
            return None
        return max(0.0, (b.cpu_s - a.cpu_s) / (b.at - a.at))

    def series(self, what: str, points: int = 60) -> list[float]:
        """The last ``points`` values of ``rss`` or ``threads`` (for a sparkline)."""
        vals = [float(r.rss or 0) if what == "rss" else float(len(r.threads)) for r in self.readings]
        return vals[-points:]

    @property
    def latest(self) -> Reading | None:
        return self.readings[-1] if self.readings else None
