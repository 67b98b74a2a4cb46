"""/metrics: the Prometheus exposition (prometheus_client), one registry per server.

Names follow Prometheus' rules: a ``perfkit_`` prefix, base units (bytes, seconds) in
the name, ``_total`` on counters, ``_ratio`` on shares, no label that duplicates a name.
Every per-target series carries ``pid``, ``cmd`` (a short redacted command) and the
``--label``s.  ``perfkit_target_info`` is 1 for every served target (also ``origin``).

The values come from the collector's latest reading, re-taken when older than half
a second, so a scrape sees what /proc says now; leak slopes and verdicts come from the
sliding window (``leaks.trend``).
"""

from __future__ import annotations

import time

from perfkit.serve.collect import RESOURCES, Collector

PER_TARGET = [
    # name, type, help
    ("perfkit_process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch."),
    ("perfkit_process_resident_memory_bytes", "gauge", "Resident set size (RSS)."),
    ("perfkit_process_proportional_memory_bytes", "gauge", "Proportional set size (PSS, smaps_rollup)."),
    ("perfkit_process_unique_memory_bytes", "gauge", "Unique set size (USS: private pages)."),
    ("perfkit_process_memory_limit_bytes", "gauge", "The memory the process can use: cgroup memory.max, else "
                                                    "MemTotal."),
    ("perfkit_process_threads", "gauge", "OS threads of the process."),
    ("perfkit_process_open_fds", "gauge", "Open file descriptors."),
    ("perfkit_process_fds", "gauge", "Open file descriptors by kind (file, socket, pipe, other)."),
    ("perfkit_process_max_fds", "gauge", "The soft RLIMIT_NOFILE."),
    ("perfkit_process_sockets", "gauge", "Sockets the process holds, by protocol and state."),
    ("perfkit_process_children", "gauge", "Child processes."),
    ("perfkit_process_cpu_seconds", "counter", "User and system CPU time."),
    ("perfkit_process_context_switches", "counter", "Context switches, voluntary and involuntary."),
    ("perfkit_cgroup_cpu_periods", "counter", "CFS enforcement periods of the process's cgroup."),
    ("perfkit_cgroup_cpu_throttled_periods", "counter", "CFS periods in which the process's cgroup was throttled."),
    ("perfkit_cgroup_cpu_throttled_seconds", "counter", "Time the process's cgroup spent throttled."),
    ("perfkit_process_gil_held_ratio", "gauge",
     "Share of non-blocking py-spy dumps (last 60) in which a thread held the GIL (--gil-rate)."),
    ("perfkit_process_threads_idle_ratio", "gauge",
     "Share of thread observations (last 60 dumps) that were idle (--gil-rate)."),
    ("perfkit_leak_slope_per_second", "gauge",
     "Theil-Sen growth over the sliding window, per second (memory: bytes/s; others: count/s)."),
    ("perfkit_leak_slope_lower_per_second", "gauge", "Lower bound of the slope's 95 % interval."),
    ("perfkit_leak_detected", "gauge",
     "1 when the window shows a leak (Mann-Kendall trend, Theil-Sen slope, rising high-water marks), else 0."),
    ("perfkit_target_info", "gauge", "1 for every served target."),
]


class TargetCollector:
    """A prometheus_client custom collector reading the serve collector."""

    def __init__(self, collector: Collector, labels: dict[str, str]) -> None:
        self.collector = collector
        self.labels = dict(sorted(labels.items()))

    def describe(self):  # no describe-time collection (that would read /proc at registration)
        return []

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        keys = ["pid", "cmd", *self.labels]
        fam = {}
        extra = {"perfkit_process_fds": ["kind"], "perfkit_process_sockets": ["proto", "state"],
                 "perfkit_process_context_switches": ["kind"], "perfkit_leak_slope_per_second": ["resource"],
                 "perfkit_leak_slope_lower_per_second": ["resource"], "perfkit_leak_detected": ["resource"],
                 "perfkit_target_info": ["origin"]}
        for name, kind, help_ in PER_TARGET:
            cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            fam[name] = cls(name, help_, labels=keys + extra.get(name, []))
        col = self.collector
        targets = col.targets.served()
        for t in targets:
            r = col.fresh(t, max_age=0.5)
            if r is None:
                continue
            st = col.state(t)
            s = r.sample
            base = [str(t.pid), t.cmd, *self.labels.values()]

            def put(name: str, value, *more: str, base=base) -> None:
                if value is not None:
                    fam[name].add_metric(base + list(more), float(value))

            put("perfkit_target_info", 1, t.origin)
            put("perfkit_process_start_time_seconds", t.started)
            put("perfkit_process_resident_memory_bytes", s.rss)
            put("perfkit_process_proportional_memory_bytes", s.pss)
            put("perfkit_process_unique_memory_bytes", s.uss)
            put("perfkit_process_memory_limit_bytes", st.memory_limit)
            put("perfkit_process_threads", s.threads)
            put("perfkit_process_open_fds", s.fds)
            for k, v in sorted(s.fd_kinds.items()):
                put("perfkit_process_fds", v, k)
            put("perfkit_process_max_fds", st.fd_limit)
            for key, v in sorted(s.socket_states.items()):
                proto, _, state = key.partition(":")
                put("perfkit_process_sockets", v, proto, state or "unknown")
            put("perfkit_process_children", s.children)
            put("perfkit_process_cpu_seconds", r.cpu_s)
            put("perfkit_process_context_switches", r.ctx_voluntary, "voluntary")
            put("perfkit_process_context_switches", r.ctx_involuntary, "involuntary")
            if r.cgroup_cpu:
                put("perfkit_cgroup_cpu_periods", r.cgroup_cpu["nr_periods"])
                put("perfkit_cgroup_cpu_throttled_periods", r.cgroup_cpu["nr_throttled"])
                put("perfkit_cgroup_cpu_throttled_seconds", r.cgroup_cpu["throttled_s"])
            held, idle = st.gil_shares()
            put("perfkit_process_gil_held_ratio", held)
            put("perfkit_process_threads_idle_ratio", idle)
            for res, v in col.verdicts(t).items():
                if res not in RESOURCES:
                    continue
                if v.slope is not None:
                    put("perfkit_leak_slope_per_second", _finite(v.slope.slope), res)
                    put("perfkit_leak_slope_lower_per_second", _finite(v.slope.low), res)
                put("perfkit_leak_detected", 1 if v.verdict == "leak" else 0, res)
        yield from fam.values()
        g = GaugeMetricFamily("perfkit_targets", "Targets served now.")
        g.add_metric([], len(targets))
        yield g
        c = CounterMetricFamily("perfkit_target_exits", "Targets that went away (exited, or stopped matching).")
        c.add_metric([], col.targets.exits)
        yield c
        c = CounterMetricFamily("perfkit_sample_errors", "Readings of a target that failed (not counting exits).")
        c.add_metric([], col.errors_total)
        yield c


def _finite(x: float):
    import math

    return x if x is not None and math.isfinite(x) else None


class Metrics:
    """The registry: target metrics plus perfkit's own (HTTP requests, sampling cost, captures)."""

    def __init__(self, collector: Collector, labels: dict[str, str]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Summary

        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = collector
        self.registry.register(TargetCollector(collector, labels))
        self.requests = Counter("perfkit_http_requests", "HTTP requests served, by endpoint and status code.",
                                ["endpoint", "code"], registry=self.registry)
        self.request_seconds = Summary("perfkit_http_request_duration_seconds",
                                       "Time to answer an HTTP request, by endpoint.", ["endpoint"],
                                       registry=self.registry)
        self.sample_seconds = Summary("perfkit_sample_duration_seconds",
                                      "Wall time of one reading of one target (perfkit's own sampling cost).",
                                      registry=self.registry)
        self.captures = Counter("perfkit_captures", "Capture bundles written, by trigger.", ["trigger"],
                                registry=self.registry)
        self.capture_errors = Counter("perfkit_capture_errors", "Capture bundles that failed.",
                                      registry=self.registry)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        from prometheus_client.exposition import choose_encoder

        for d in self.collector.drain_durations():
            self.sample_seconds.observe(d)
        encoder, content_type = choose_encoder(accept or "")
        t0 = time.perf_counter()
        body = encoder(self.registry)
        self.request_seconds.labels("metrics-render").observe(time.perf_counter() - t0)
        return body, content_type
