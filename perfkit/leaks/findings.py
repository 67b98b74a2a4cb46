"""From a finished watch to the leak report: a verdict per resource plus, for each leak,
its attribution (new threads grouped by stack; new fds grouped by path pattern or socket
peer; memory by the lines memray saw holding the growth) and time to exhaustion.

Pure: works on data the collectors returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from perfkit.leaks import trend

RESOURCES = ("memory", "threads", "fds", "sockets", "children")
UNITS = {"memory": "bytes", "threads": "threads", "fds": "fds", "sockets": "sockets", "children": "processes"}


@dataclass
class Finding:
    resource: str
    verdict: trend.Verdict
    series: list[tuple[float, float]]
    attribution: dict | None = None
    measured: bool = True
    why_unmeasured: str | None = None

    @property
    def unit(self) -> str:
        return UNITS[self.resource]

    def to_json(self) -> dict:
        d = self.verdict.to_json()
        d.update({"unit": self.unit, "measured": self.measured, "why_unmeasured": self.why_unmeasured,
                  "attribution": self.attribution})
        return d


@dataclass
class LeakReport:
    pid: int
    started: float
    duration: float  # requested
    elapsed: float
    interval: float
    n_samples: int
    cost_per_sample_s: float
    findings: list[Finding]
    extra_series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    gone_at: float | None = None
    interrupted: bool = False
    cmdline: list[str] = field(default_factory=list)
    gone_how: str | None = None  # "exited" | "exec" | "reused"
    gone_into: str | None = None
    redacted: bool = False  # secrets were taken out of cmdline

    @property
    def leaks(self) -> list[Finding]:
        return [f for f in self.findings if f.verdict.verdict == trend.LEAK]

    def to_json(self) -> dict:
        return {"command": "leaks", "pid": self.pid, "cmdline": self.cmdline, "started": self.started,
                "duration_s": self.duration, "elapsed_s": round(self.elapsed, 3), "interval_s": self.interval,
                "samples": self.n_samples, "cost_per_sample_ms": round(self.cost_per_sample_s * 1e3, 4),
                "gone_at_s": None if self.gone_at is None else round(self.gone_at, 3),
                "gone_how": self.gone_how, "gone_into": self.gone_into, "redacted": self.redacted,
                "interrupted": self.interrupted, "notes": self.notes,
                "leaks": [f.resource for f in self.leaks],
                "verdicts": {f.resource: f.verdict.verdict for f in self.findings},
                "resources": [f.to_json() for f in self.findings],
                "series": {**{f.resource: [[round(t, 3), v] for t, v in f.series] for f in self.findings},
                           **{k: [[round(t, 3), v] for t, v in s] for k, s in self.extra_series.items()}}}


# ------------------------------------------------------------------ attribution


def thread_attribution(stacks_end, tids_start: set[int], names_end: dict[int, str] | None = None,
                       limit: int = 5) -> dict:
    """New threads (OS thread ids not present at the start) grouped by identical stacks,
    and by OS thread name pattern (digits -> *; available even without stacks)."""
    from perfkit.threads.view import build_threads, group

    names: dict[str, int] = {}
    for tid, name in (names_end or {}).items():
        if tid not in tids_start:
            key = _DIGITS.sub("*", name)
            names[key] = names.get(key, 0) + 1
    by_name = [{"pattern": k, "count": v} for k, v in sorted(names.items(), key=lambda kv: (-kv[1], kv[0]))][:limit]
    if stacks_end is None:
        return {"available": bool(by_name), "why": "no thread stacks (py-spy dump failed or target not Python)",
                "new_threads": sum(names.values()), "groups": [], "summary": [], "names": by_name}
    new = [s for s in stacks_end if s.os_thread_id not in tids_start]
    groups = group(build_threads(new))
    return {"available": True, "new_threads": len(new),
            "groups": [g.to_json() for g in groups[:limit]],
            "summary": [g.summary() for g in groups[:limit]], "names": by_name}


_DIGITS = re.compile(r"\d+")


def _file_pattern(path: str) -> str:
    head, _, base = path.rpartition("/")
    return f"{head}/{_DIGITS.sub('*', base)}" if head else _DIGITS.sub("*", base)


def _split(addr: str) -> tuple[str, str]:
    host, _, port = addr.rpartition(":")
    return host, port


def fd_attribution(new_fds: list[dict] | None, kinds: tuple[str, ...], limit: int = 5) -> dict:
    """New fds grouped: files by path pattern (digits -> *), sockets by proto/state/peer.

    A socket port seen on only one of the new sockets is an ephemeral end and becomes
    ``*``; a port shared by several (the server or the peer) is kept.
    """
    if new_fds is None:
        return {"available": False, "why": "fds could not be read at the start and end"}
    items = [f for f in new_fds if f["kind"] in kinds]
    port_count: dict[tuple[str, str], int] = {}  # (role, address) -> sockets
    for f in items:
        if f["kind"] == "socket" and f.get("proto") in ("tcp", "tcp6", "udp", "udp6"):
            for role in ("local", "remote"):
                k = (role, f.get(role, ""))
                port_count[k] = port_count.get(k, 0) + 1
    groups: dict[str, dict] = {}
    for f in items:
        if f["kind"] == "file":
            key = _file_pattern(f["target"])
            label = key
        elif f["kind"] == "socket" and f.get("proto"):
            if f["proto"] == "unix":
                label = f"unix {f.get('state', '?')} {f.get('local') or '(unnamed)'}"
            else:
                def mask(role: str, f: dict = f) -> str:
                    a = f.get(role, "")
                    host, port = _split(a)
                    return a if port_count.get((role, a), 0) > 1 or len(items) == 1 else f"{host}:*"

                label = f"{f['proto']} {f.get('state')} {mask('local')} -> peer {mask('remote')}"
            key = label
        else:
            key = label = f["kind"] if f["kind"] != "other" else _DIGITS.sub("*", f["target"])
        g = groups.setdefault(key, {"pattern": label, "kind": f["kind"], "count": 0, "examples": []})
        g["count"] += 1
        if len(g["examples"]) < 3:
            ex = {"fd": f["fd"], "target": f["target"]}
            for name in ("proto", "state", "local", "remote"):
                if name in f:
                    ex[name] = f[name]
            g["examples"].append(ex)
    ordered = sorted(groups.values(), key=lambda g: (-g["count"], g["pattern"]))
    return {"available": True, "new_fds": len(items), "groups": ordered[:limit]}


def memory_attribution(profile, limit: int = 5, *, show_imports: bool = False) -> dict:
    """The lines holding the memory that stayed alive during a short capture, your code first.

    One entry per (allocating line, innermost line of the user's own code): ``your_code``
    is the line a person can change, ``function``/``file``/``line`` where the bytes were
    allocated (the same line when it is the user's).  Import-time allocations are left
    out unless ``show_imports`` (``hidden`` says how much).
    """
    from perfkit.analysis.heap import top_sites
    from perfkit.analysis.yourcode import import_noise

    vi = profile.value_index("inuse_space")
    total = profile.total(vi)
    sites = top_sites(profile, "inuse_space", "inuse_objects", limit, hide_imports=not show_imports)
    hidden = None if show_imports else import_noise(profile, vi, profile.value_index("inuse_objects"))
    lines = []
    for s in sites:
        row = s.to_json()
        lines.append({"your_code": row["your_code"], "function": s.function, "file": s.file, "line": s.line,
                      "bytes": s.bytes, "pct": round(s.pct, 2)})
    return {"available": True, "tool": "memray", "inuse_bytes": total,
            "seconds": profile.recording.duration_s, "lines": lines,
            "import_time_hidden": hidden.to_json() if hidden else None}


# ------------------------------------------------------------------ the report


def build(watch, thresholds: dict[str, trend.Thresholds], *, bin_seconds: float = 1.0,
          cmdline: list[str] | None = None) -> LeakReport:
    mon = watch.monitor
    unavailable = mon.unavailable
    findings = []
    for res in RESOURCES:
        series = mon.series(res)
        v = trend.assess(res, series, thresholds.get(res), bin_seconds=bin_seconds)
        f = Finding(resource=res, verdict=v, series=series)
        if res in unavailable and not series:
            f.measured = False
            f.why_unmeasured = unavailable[res]
            v.reasons = [f"not measured: {unavailable[res]}"]
        lim, src = watch.limits.get(res, (None, ""))
        if lim is not None:
            v.limit, v.limit_source = float(lim), src
            if v.verdict == trend.LEAK and v.slope is not None:
                v.time_to_limit_s = trend.time_to_limit(v.end_value, v.slope.slope, float(lim))
        findings.append(f)
    extra = {}
    for key in ("pss", "uss"):
        pts = [(s.t, getattr(s, key)) for s in mon.samples if getattr(s, key) is not None]
        if pts:
            extra[key] = pts
    for kind in ("file", "socket", "pipe", "other"):
        pts = [(s.t, s.fd_kinds[kind]) for s in mon.samples if kind in s.fd_kinds]
        if pts:
            extra[f"fds_{kind}"] = pts
    states = sorted({k for s in mon.samples for k in s.socket_states})
    for st in states:
        extra[f"sockets_{st}"] = [(s.t, s.socket_states.get(st, 0)) for s in mon.samples if s.fds is not None]
    notes = list(watch.notes)
    for what, why in sorted(unavailable.items()):
        notes.append(f"{what}: not measured ({why})")
    if mon.gone_at is not None:
        notes.append(f"{gone_text(watch.pid, mon.gone_how, mon.gone_into)} {mon.gone_at:.1f} s into the window: "
                     f"verdicts use the {len(mon.samples)} samples taken until then")
    if mon.interrupted:
        notes.append(f"interrupted after {mon.elapsed:.1f} s: verdicts use the samples taken until then")
    return LeakReport(pid=watch.pid, started=mon.started, duration=mon.duration, elapsed=mon.elapsed,
                      interval=mon.interval, n_samples=len(mon.samples), cost_per_sample_s=mon.cost_per_sample(),
                      findings=findings, extra_series=extra, notes=notes, gone_at=mon.gone_at,
                      interrupted=mon.interrupted, cmdline=list(cmdline or []), gone_how=mon.gone_how,
                      gone_into=mon.gone_into)


def gone_text(pid: int, how: str | None, into: str | None) -> str:
    """"pid 42 exited" / "pid 42 exec'd into 'sleep 60'" / "pid 42 exited (the pid was reused)"."""
    if how == "exec":
        return f"pid {pid} exec'd into {into or 'another program'!r}"
    if how == "reused":
        return f"pid {pid} exited (the pid now belongs to another process)"
    return f"pid {pid} exited"


def attribute(report: LeakReport, watch) -> None:
    """Fill ``attribution`` on every leaking thread/fd/socket finding."""
    for f in report.leaks:
        if f.resource == "threads":
            f.attribution = thread_attribution(watch.threads_end, watch.thread_tids_start,
                                               getattr(watch, "thread_names_end", None))
        elif f.resource == "fds":
            f.attribution = fd_attribution(watch.new_fds if watch.fds_end is not None else None,
                                           ("file", "socket", "pipe", "other"))
        elif f.resource == "sockets":
            f.attribution = fd_attribution(watch.new_fds if watch.fds_end is not None else None, ("socket",))
