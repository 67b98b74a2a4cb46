"""The background sampler behind /metrics, the leak verdicts and the captures.

Every ``interval`` seconds the collector refreshes the target set and takes one cheap
reading of each target (``leaks.sampler.sample``: RSS, PSS/USS, threads, fds by kind,
sockets by state, children) plus its CPU seconds, context switches, limits and cgroup
CPU counters.  Readings are kept for ``window`` seconds; leak verdicts
(``leaks.trend.assess``) over that window are computed on demand and cached.  A scrape
refreshes a reading older than a second, so /metrics shows what /proc says now.

With ``gil_rate`` > 0 a second thread takes non-blocking ``py-spy dump``s at that rate
per target: the share of dumps in which a thread held the GIL, and the share of thread
observations that were idle.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field

from perfkit.leaks import sampler, trend
from perfkit.procs import cgroup, proc
from perfkit.serve.targets import ServedTarget, TargetSet

RESOURCES = ("memory", "threads", "fds", "sockets", "children")
LIMITS_EVERY = 60.0  # seconds between re-reads of RLIMIT_NOFILE / memory limit
VERDICT_EVERY = 15.0  # seconds a set of leak verdicts is reused
GIL_WINDOW = 60  # dumps kept for the GIL / idle shares


@dataclass
class Reading:
    """One reading of a target beyond the leak sampler's."""

    sample: sampler.ResourceSample
    cpu_s: float | None = None
    ctx_voluntary: int | None = None
    ctx_involuntary: int | None = None
    cgroup_cpu: dict | None = None


@dataclass
class TargetState:
    window: collections.deque = field(default_factory=collections.deque)  # of Reading, oldest first
    last: Reading | None = None
    sockets: proc.SocketCache = field(default_factory=proc.SocketCache)
    kids: proc.ChildCache = field(default_factory=proc.ChildCache)
    fd_limit: int | None = None
    memory_limit: int | None = None
    memory_limit_source: str = ""
    limits_at: float = -1e9
    cgroup: cgroup.CgroupLimits | None = None  # where CPU throttling is counted (re-found with the limits)
    verdicts: dict[str, trend.Verdict] = field(default_factory=dict)
    verdicts_at: float = -1e9
    gil: collections.deque = field(default_factory=lambda: collections.deque(maxlen=GIL_WINDOW))
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def gil_shares(self) -> tuple[float | None, float | None]:
        """(share of dumps with a GIL holder, share of thread observations idle)."""
        if not self.gil:
            return None, None
        held = sum(1 for h, _, _ in self.gil if h) / len(self.gil)
        threads = sum(n for _, _, n in self.gil)
        idle = sum(n - a for _, a, n in self.gil) / threads if threads else None
        return held, idle


class Collector:
    def __init__(self, targets: TargetSet, *, interval: float = 5.0, window: float = 600.0, pss: bool = True,
                 gil_rate: float = 0.0, on_reading=None) -> None:
        self.targets = targets
        self.interval = interval
        self.window = window
        self.pss = pss
        self.gil_rate = gil_rate
        self.on_reading = on_reading  # (target, reading) after each reading (captures)
        self.t0 = time.monotonic()
        self.stop_event = threading.Event()
        self.durations: collections.deque = collections.deque(maxlen=1000)  # seconds per reading (to drain)
        self.errors_total = 0
        self._threads: list[threading.Thread] = []
        self._state_lock = threading.Lock()

    # ------------------------------------------------------------------ one reading
    def read(self, t: ServedTarget) -> Reading | None:
        """Take one reading of ``t`` now (None when it has gone)."""
        st = self.state(t)
        c0 = time.perf_counter()
        with st.lock:
            try:
                s = sampler.sample(t.pid, time.monotonic() - self.t0, pss=self.pss, sockets=st.sockets, kids=st.kids)
                r = Reading(sample=s)
                r.cpu_s = proc.stat(t.pid).cpu_s
                r.ctx_voluntary, r.ctx_involuntary = proc.context_switches(t.pid)
                if time.monotonic() - st.limits_at > LIMITS_EVERY:
                    st.fd_limit = proc.fd_limit(t.pid)
                    st.memory_limit, st.memory_limit_source = proc.memory_limit(t.pid)
                    st.cgroup = cgroup.read_cgroup_limits(t.pid)
                    st.limits_at = time.monotonic()
                r.cgroup_cpu = cgroup.read_throttling(st.cgroup) if st.cgroup is not None else None
            except proc.Gone:
                return None
            except (OSError, ValueError):
                st.errors += 1
                self.errors_total += 1
                return None
            st.last = r
            st.window.append(r)
            cut = s.t - self.window
            while st.window and st.window[0].sample.t < cut:
                st.window.popleft()
        self.durations.append(time.perf_counter() - c0)
        if self.on_reading is not None:
            self.on_reading(t, r)
        return r

    def state(self, t: ServedTarget) -> TargetState:
        if t.state is None:
            with self._state_lock:
                if t.state is None:
                    t.state = TargetState()
        return t.state  # type: ignore[return-value]

    def fresh(self, t: ServedTarget, max_age: float = 1.0) -> Reading | None:
        """The latest reading, re-taken when older than ``max_age`` seconds."""
        st = self.state(t)
        last = st.last
        if last is None or (time.monotonic() - self.t0) - last.sample.t > max_age:
            return self.read(t) or last
        return last

    def verdicts(self, t: ServedTarget) -> dict[str, trend.Verdict]:
        st = self.state(t)
        now = time.monotonic()
        with st.lock:
            if now - st.verdicts_at < VERDICT_EVERY and st.verdicts:
                return st.verdicts
            samples = [r.sample for r in st.window]
        out = {}
        for res in RESOURCES:
            pts = [(s.t, s.value(res)) for s in samples if s.value(res) is not None]
            out[res] = trend.assess(res, pts, bin_seconds=max(self.interval, self.window / 60.0))
        with st.lock:
            st.verdicts, st.verdicts_at = out, now
        return out

    def series(self, t: ServedTarget) -> list[dict]:
        """The window as JSON rows (for capture bundles)."""
        st = self.state(t)
        with st.lock:
            rows = list(st.window)
        return [{**r.sample.to_json(), "cpu_s": r.cpu_s, "ctx_voluntary": r.ctx_voluntary,
                 "ctx_involuntary": r.ctx_involuntary} for r in rows]

    # ------------------------------------------------------------------ loops
    def tick(self) -> None:
        self.targets.refresh()
        for t in self.targets.served():
            if self.stop_event.is_set():
                return
            self.read(t)

    def _loop(self) -> None:
        k = 0
        while not self.stop_event.is_set():
            try:
                self.tick()
            except Exception:  # a broken tick must not end the sampler
                self.errors_total += 1
            k += 1
            nxt = self.t0 + k * self.interval
            self.stop_event.wait(max(0.0, nxt - time.monotonic()))

    def _gil_loop(self) -> None:
        from perfkit.errors import PerfkitError
        from perfkit.tools import pyspy

        period = 1.0 / self.gil_rate
        while not self.stop_event.wait(period):
            for t in self.targets.served():
                if self.stop_event.is_set():
                    return
                try:
                    stacks = pyspy.dump(t.pid, nonblocking=True, timeout=min(10.0, period * 4))
                except PerfkitError:
                    self.state(t).errors += 1
                    continue
                held = any(s.owns_gil for s in stacks)
                active = sum(1 for s in stacks if s.active)
                self.state(t).gil.append((held, active, len(stacks)))

    def start(self) -> None:
        self.tick()
        loops = [self._loop] + ([self._gil_loop] if self.gil_rate > 0 else [])
        for fn in loops:
            th = threading.Thread(target=fn, name=f"perfkit-serve-{fn.__name__.strip('_')}", daemon=True)
            th.start()
            self._threads.append(th)

    def stop(self, timeout: float = 15.0) -> None:
        self.stop_event.set()
        for th in self._threads:
            th.join(timeout)

    def drain_durations(self) -> list[float]:
        out = []
        while self.durations:
            out.append(self.durations.popleft())
        return out
