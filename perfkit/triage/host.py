"""Host facts for triage: load, CPU by mode, memory/swap, pressure, top processes,
disk/network deltas, cgroup limits and throttling, recent OOM kills.

Counters are read twice, at the start and the end of a window
(:func:`start_window` / :func:`finish_window`), and reported as deltas and rates.
Every reader tolerates missing files and permission errors: what it could not read
goes into a list of :class:`~perfkit.triage.facts.Problem` instead of raising.
Everything returned is a typed fact (:mod:`perfkit.triage.hostfacts`).  Nothing here
touches a target beyond reading /proc and /sys.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from perfkit.triage.facts import Problem
from perfkit.triage.hostfacts import (
    CgroupFacts,
    Cgroups,
    Counters,
    CpuModes,
    HostFacts,
    HostProc,
    Load,
    Memory,
    OomEvent,
    OomFacts,
    Pressure,
    ProcessTable,
    PsiLine,
    Vmstat,
)

_TOP_N = 15
CGROUP_ROOT = "/sys/fs/cgroup"  # tests point this at a fake tree


@dataclass
class Problems:
    """What could not be read, and whether more rights would have helped."""

    items: list[Problem] = field(default_factory=list)

    def add(self, what: str, exc: BaseException | str, *, needs_privilege: bool | None = None) -> None:
        if isinstance(exc, BaseException):
            priv = isinstance(exc, PermissionError) or type(exc).__name__ == "AccessDenied" or \
                getattr(exc, "errno", None) in (errno.EACCES, errno.EPERM)
            text = _exc_text(exc)
        else:
            priv, text = False, str(exc)
        if needs_privilege is not None:
            priv = needs_privilege
        self.items.append(Problem(what, text, bool(priv)))


def _exc_text(exc: BaseException) -> str:
    name = type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}" + (f" ({exc.filename})" if exc.filename else "")
    msg = str(exc).strip()
    return f"{name}: {msg}" if msg else name


def read_text(path: str, problems: Problems | None = None, what: str | None = None,
              *, missing_ok: bool = True) -> str | None:
    """A small /proc or /sys file as text, or None (recording why unless absent is normal)."""
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20).decode("utf-8", "replace")
    except FileNotFoundError as exc:
        if not missing_ok and problems is not None:
            problems.add(what or path, exc)
        return None
    except OSError as exc:
        if problems is not None:
            problems.add(what or path, exc)
        return None


# --------------------------------------------------------------------------- static facts

def loadavg(problems: Problems) -> Load | None:
    text = read_text("/proc/loadavg", problems, "load averages", missing_ok=False)
    if not text:
        return None
    parts = text.split()
    try:
        running, total = parts[3].split("/")
        return Load(load1=float(parts[0]), load5=float(parts[1]), load15=float(parts[2]),
                    runnable=int(running), tasks=int(total), cpus=os.cpu_count() or 1)
    except (IndexError, ValueError) as exc:
        problems.add("load averages", f"unreadable /proc/loadavg: {exc}")
        return None


def pressure(problems: Problems) -> dict[str, Pressure] | None:
    """/proc/pressure/{cpu,memory,io}: some/full avg10/avg60/avg300 and total (us)."""
    if not os.path.isdir("/proc/pressure"):
        problems.add("pressure stall info", "not available (/proc/pressure absent: kernel without PSI)")
        return None
    out: dict[str, Pressure] = {}
    for res in ("cpu", "memory", "io"):
        text = read_text(f"/proc/pressure/{res}", problems, f"pressure ({res})", missing_ok=False)
        if text is None:
            continue
        out[res] = parse_pressure(text)
    return out


def parse_pressure(text: str) -> Pressure:
    lines: dict[str, PsiLine] = {}
    for line in text.splitlines():
        kind, *fields = line.split()
        vals: dict[str, float | int] = {}
        for f in fields:
            k, _, v = f.partition("=")
            try:
                vals[k] = float(v) if k != "total" else int(v)
            except ValueError:
                continue
        tot = vals.get("total")
        lines[kind] = PsiLine(avg10=vals.get("avg10"), avg60=vals.get("avg60"), avg300=vals.get("avg300"),
                              total=int(tot) if tot is not None else None)
    return Pressure(some=lines.get("some"), full=lines.get("full"))


def memory(problems: Problems) -> Memory | None:
    try:
        import psutil

        vm = psutil.virtual_memory()
        sw = psutil.swap_memory()
    except Exception as exc:  # psutil may fail in odd containers
        problems.add("memory and swap", exc)
        return None
    return Memory(total=vm.total, available=vm.available, used=vm.used, free=vm.free, percent=vm.percent,
                  cached=getattr(vm, "cached", None), buffers=getattr(vm, "buffers", None),
                  swap_total=sw.total, swap_used=sw.used, swap_percent=sw.percent)


_VMSTAT_KEYS = ("pswpin", "pswpout", "oom_kill", "pgmajfault", "pgfault", "pgscan_direct", "allocstall_normal")


def vmstat(problems: Problems) -> Vmstat:
    text = read_text("/proc/vmstat", problems, "/proc/vmstat", missing_ok=False) or ""
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k in _VMSTAT_KEYS:
            try:
                out[k] = int(v)
            except ValueError:
                pass
    return Vmstat(**out)


def cpu_times(problems: Problems) -> dict[str, float] | None:
    try:
        import psutil

        return dict(psutil.cpu_times()._asdict())
    except Exception as exc:
        problems.add("CPU times", exc)
        return None


def disk_counters(problems: Problems) -> dict[str, dict[str, float]]:
    try:
        import psutil

        per = psutil.disk_io_counters(perdisk=True) or {}
        return {k: v._asdict() for k, v in per.items() if not k.startswith(("loop", "ram"))}
    except Exception as exc:
        problems.add("disk counters", exc)
        return {}


def net_counters(problems: Problems) -> dict[str, dict[str, float]]:
    try:
        import psutil

        per = psutil.net_io_counters(pernic=True) or {}
        return {k: v._asdict() for k, v in per.items()}
    except Exception as exc:
        problems.add("network counters", exc)
        return {}


def process_table(problems: Problems) -> dict[int, HostProc]:
    """pid -> name, user, status, rss, cpu seconds (for CPU deltas and the top tables)."""
    import psutil

    table: dict[int, HostProc] = {}
    denied = 0
    for p in psutil.process_iter():
        try:
            with p.oneshot():
                t = p.cpu_times()
                mem = p.memory_info()
                try:
                    user: str | None = p.username()
                except (psutil.Error, KeyError):
                    user = None
                row = HostProc(pid=p.pid, ppid=p.ppid(), name=p.name(), status=p.status(), rss=mem.rss,
                               cpu_s=t.user + t.system, num_threads=p.num_threads(), user=user)
        except psutil.AccessDenied:
            denied += 1
            continue
        except psutil.Error:
            continue
        table[p.pid] = row
    if denied:
        problems.add("process table", f"{denied} processes not readable", needs_privilege=True)
    return table


# --------------------------------------------------------------------------- cgroups

def cgroup_path(pid: int) -> dict[str, str] | None:
    """The cgroup of ``pid``: {"v2": "/path"} and/or {"memory": ..., "cpu": ...} for v1."""
    from perfkit.procs.cgroup import read_cgroup_paths

    paths = read_cgroup_paths(pid)
    out = {("v2" if ctrl == "" else ctrl): path for ctrl, path in paths.items()
           if ctrl in ("", "memory", "cpu", "cpuacct")}
    return out or None


def _cg_dir(kind: str, path: str) -> str | None:
    """Where the cgroup's files live (v2 unified or a v1 controller mount)."""
    r = CGROUP_ROOT
    roots = [f"{r}/unified", r] if kind == "v2" else \
        [f"{r}/{kind}", f"{r}/cpu,cpuacct" if kind in ("cpu", "cpuacct") else ""]
    for root in roots:
        if not root:
            continue
        d = os.path.join(root, path.lstrip("/"))
        marker = "cgroup.controllers" if kind == "v2" else "cgroup.procs"
        if os.path.exists(os.path.join(d, marker)):
            return d
    return None


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    if text in ("max", ""):
        return None
    try:
        v = int(text)
    except ValueError:
        return None
    return None if v >= (1 << 62) else v  # v1 "unlimited" is a huge number


def _kv(text: str | None) -> dict[str, int]:
    out = {}
    for line in (text or "").splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k] = int(v)
        except ValueError:
            pass
    return out


def _cg_cpu(v2: str | None, cpu_v1: str | None, problems: Problems) -> dict[str, Any]:
    def rd(d: str, name: str) -> str | None:
        return read_text(os.path.join(d, name), problems, f"cgroup {name}")

    if v2 is not None and os.path.exists(os.path.join(v2, "cpu.max")):
        quota_cores = None
        cpu_max = rd(v2, "cpu.max")
        if cpu_max:
            quota, _, period = cpu_max.strip().partition(" ")
            q, per = _int(quota), _int(period)
            quota_cores = round(q / per, 3) if q and per else None
        st = _kv(rd(v2, "cpu.stat"))
        return {"version_cpu": 2, "cpu_quota_cores": quota_cores, "nr_periods": st.get("nr_periods"),
                "nr_throttled": st.get("nr_throttled"), "throttled_us": st.get("throttled_usec")}
    if cpu_v1:
        q, per = _int(rd(cpu_v1, "cpu.cfs_quota_us")), _int(rd(cpu_v1, "cpu.cfs_period_us"))
        st = _kv(rd(cpu_v1, "cpu.stat"))
        return {"version_cpu": 1, "cpu_quota_cores": round(q / per, 3) if q and q > 0 and per else None,
                "nr_periods": st.get("nr_periods"), "nr_throttled": st.get("nr_throttled"),
                "throttled_us": st["throttled_time"] // 1000 if "throttled_time" in st else None}
    return {}


def _cg_memory(v2: str | None, mem_v1: str | None, problems: Problems) -> dict[str, Any]:
    def rd(d: str, name: str) -> int | None:
        return _int(read_text(os.path.join(d, name), problems, f"cgroup {name}"))

    if v2 is not None and os.path.exists(os.path.join(v2, "memory.max")):
        ev = _kv(read_text(os.path.join(v2, "memory.events"), problems, "cgroup memory.events"))
        return {"version_memory": 2, "memory_limit": rd(v2, "memory.max"),
                "memory_current": rd(v2, "memory.current"),
                "swap_current": _int(read_text(os.path.join(v2, "memory.swap.current"))),
                "oom_kills": ev.get("oom_kill"), "memory_high_events": ev.get("high")}
    if mem_v1:
        oc = _kv(read_text(os.path.join(mem_v1, "memory.oom_control")))
        return {"version_memory": 1, "memory_limit": rd(mem_v1, "memory.limit_in_bytes"),
                "memory_current": rd(mem_v1, "memory.usage_in_bytes"), "oom_kills": oc.get("oom_kill")}
    return {}


def cgroup_facts(cg: Mapping[str, str], problems: Problems) -> CgroupFacts:
    """CPU quota, throttling counters, memory limit/usage/OOM events of one cgroup."""
    name = cg.get("v2") or cg.get("memory") or cg.get("cpu")
    v2 = _cg_dir("v2", cg["v2"]) if "v2" in cg else None
    mem_v1 = _cg_dir("memory", cg["memory"]) if "memory" in cg else None
    cpu_v1 = _cg_dir("cpu", cg["cpu"]) if "cpu" in cg else None
    cpu = _cg_cpu(v2, cpu_v1, problems)
    mem = _cg_memory(v2, mem_v1, problems)
    facts = CgroupFacts(cgroup=name, note=None if cpu or mem else "cgroup files not visible from here", **cpu, **mem)
    limit, current = facts.memory_limit, facts.memory_current
    return replace(facts, memory_fraction=round(current / limit, 4)) if limit and current is not None else facts


# --------------------------------------------------------------------------- OOM kills

def oom_kills(problems: Problems, *, max_records: int = 50000, max_seconds: float = 1.0) -> OomFacts:
    """Recent OOM kills from the kernel log (/dev/kmsg, non-blocking) and /proc/vmstat."""
    since_boot = vmstat(Problems()).oom_kill
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        problems.add("kernel log (/dev/kmsg) for OOM kills", exc)
        return OomFacts(since_boot=since_boot)
    boot = _boot_time()
    end = time.monotonic() + max_seconds
    events: list[OomEvent] = []
    readable, truncated = True, False
    try:
        for _ in range(max_records):
            if time.monotonic() > end:
                truncated = True
                break
            try:
                rec = os.read(fd, 8192)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # overwritten record: keep reading
                    continue
                if exc.errno in (errno.EPERM, errno.EACCES):
                    problems.add("kernel log (/dev/kmsg) for OOM kills", exc)
                    readable = False
                break
            line = rec.decode("utf-8", "replace")
            head, _, msg = line.partition(";")
            if "Out of memory" in msg or "oom-kill:" in msg or "Killed process" in msg:
                ts: float | None
                try:
                    ts = int(head.split(",")[2]) / 1e6
                except (IndexError, ValueError):
                    ts = None
                events.append(OomEvent(uptime_s=ts, time=boot + ts if boot and ts is not None else None,
                                       message=msg.strip().splitlines()[0][:500]))
    finally:
        os.close(fd)
    return OomFacts(since_boot=since_boot, events=tuple(events[-50:]), log_readable=readable, truncated=truncated)


def _boot_time() -> float | None:
    try:
        import psutil

        return float(psutil.boot_time())
    except Exception:
        return None


# --------------------------------------------------------------------------- the window

@dataclass
class HostWindow:
    started: float
    mono: float
    cpu: dict[str, float] | None
    disks: dict[str, dict[str, float]]
    nets: dict[str, dict[str, float]]
    vm: Vmstat
    procs: dict[int, HostProc]
    pressure: dict[str, Pressure] | None
    cgroups: dict[str, CgroupFacts]
    problems: Problems


def _cgroups_for(pids: list[int], problems: Problems) -> tuple[dict[int, str], dict[str, CgroupFacts]]:
    by_pid: dict[int, str] = {}
    groups: dict[str, CgroupFacts] = {}
    for pid in pids:
        cg = cgroup_path(pid)
        if not cg:
            continue
        key = "|".join(f"{k}={v}" for k, v in sorted(cg.items()))
        by_pid[pid] = key
        if key not in groups:
            groups[key] = cgroup_facts(cg, problems)
    return by_pid, groups


def start_window(pids: list[int] | None = None) -> HostWindow:
    problems = Problems()
    _, groups = _cgroups_for(pids or [], Problems())
    return HostWindow(started=time.time(), mono=time.monotonic(), cpu=cpu_times(problems),
                      disks=disk_counters(problems), nets=net_counters(problems), vm=vmstat(problems),
                      procs=process_table(problems), pressure=pressure(Problems()), cgroups=groups,
                      problems=problems)


def _delta(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    return {k: b[k] - a[k] for k in b if k in a and isinstance(b[k], (int, float))}


def _with_deltas(facts: CgroupFacts, before: CgroupFacts | None) -> CgroupFacts:
    if before is None:
        return facts
    changes = {}
    for k in ("nr_periods", "nr_throttled", "throttled_us", "oom_kills"):
        now, then = getattr(facts, k), getattr(before, k)
        if now is not None and then is not None:
            changes[f"{k}_delta"] = now - then
    return replace(facts, **changes)


def finish_window(win: HostWindow, pids: list[int] | None = None) -> HostFacts:
    """All host facts, with counter deltas since ``win``."""
    problems = win.problems
    elapsed = max(time.monotonic() - win.mono, 1e-3)
    cpu_end = cpu_times(problems)
    cpu_modes = None
    if win.cpu and cpu_end:
        d = _delta(win.cpu, cpu_end)
        total = sum(v for k, v in d.items() if k not in ("guest", "guest_nice")) or 1e-9
        cpu_modes = CpuModes(**{k: round(100.0 * v / total, 2) for k, v in d.items() if k in CpuModes._omit_none})
    disks_end, nets_end = disk_counters(Problems()), net_counters(Problems())
    disks = {name: _rates(_delta(win.disks[name], c), elapsed) for name, c in disks_end.items() if name in win.disks}
    nets = {name: _rates(_delta(win.nets[name], c), elapsed) for name, c in nets_end.items() if name in win.nets}
    vm_end = vmstat(Problems())
    rows = []
    for pid, row in process_table(Problems()).items():
        before = win.procs.get(pid)
        cpu_pct = round(100.0 * (row.cpu_s - before.cpu_s) / elapsed, 1) if before else None
        rows.append(replace(row, cpu_percent=cpu_pct))
    by_cpu = sorted((r for r in rows if r.cpu_percent is not None), key=lambda r: -(r.cpu_percent or 0.0))[:_TOP_N]
    by_rss = sorted(rows, key=lambda r: -r.rss)[:_TOP_N]
    states: dict[str, int] = {}
    for r in rows:
        states[r.status] = states.get(r.status, 0) + 1
    by_pid, groups = _cgroups_for(pids or [], problems)
    groups = {key: _with_deltas(facts, win.cgroups.get(key)) for key, facts in groups.items()}
    load, mem, psi = loadavg(problems), memory(problems), pressure(problems)
    oom = oom_kills(problems)
    return HostFacts(
        hostname=socket.gethostname(), kernel=os.uname().release, started=win.started, window_s=round(elapsed, 3),
        load=load, cpu_modes_percent=cpu_modes, memory=mem, vmstat_delta=vm_end.minus(win.vm), pressure=psi,
        processes=ProcessTable(count=len(rows), states=states, top_cpu=tuple(by_cpu), top_rss=tuple(by_rss)),
        disks=disks, network=nets, cgroups=Cgroups(by_pid={str(k): v for k, v in by_pid.items()}, groups=groups),
        oom=oom, problems=tuple(problems.items))


def _rates(delta: Counters, elapsed: float) -> dict[str, float]:
    out = dict(delta)
    for k in ("read_bytes", "write_bytes", "bytes_sent", "bytes_recv"):
        if k in delta:
            out[f"{k}_per_s"] = round(delta[k] / elapsed, 1)
    if "busy_time" in delta:
        out["util_percent"] = round(min(100.0, 100.0 * delta["busy_time"] / 1000.0 / elapsed), 1)
    return out


__all__ = ["Problems", "HostWindow", "start_window", "finish_window", "cgroup_path", "cgroup_facts",
           "parse_pressure", "read_text", "oom_kills"]
