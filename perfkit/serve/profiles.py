"""The profiles behind the pprof endpoints, from the same collectors every command uses.

* CPU: ``tools.pyspy.record`` for N seconds (a ``samples/count`` + ``cpu/nanoseconds``
  profile, labelled pid / thread_id / thread_name);
* threads ("goroutines"): ``tools.pyspy.dump`` (non-blocking) as a ``goroutine/count``
  profile with one sample per thread, or as Go-style text: ``debug=1`` groups identical
  stacks (``threads.view``), ``debug=2`` lists every thread's full stack;
* heap / allocs: ``tools.memray.capture`` (attach) for N seconds.

Every recording's command line is redacted (unless ``--no-redact``) before it is
written into a profile: pprof files carry perfkit's recording facts.
"""

from __future__ import annotations

import time

from perfkit.model import Frame, Labels, Profile, ProfileBuilder, Recording, ValueType
from perfkit.redact import redact_argv
from perfkit.render.escape import plain

GOROUTINE = ValueType("goroutine", "count")


def _redacted(rec: Recording, redact: bool) -> Recording:
    if not redact:
        return rec
    argv, hit = redact_argv(list(rec.cmdline))
    return rec.copy(cmdline=argv, redacted=rec.redacted or hit,
                    target=f"pid {rec.pid}" if rec.pid is not None else rec.target)


def cpu(pid: int, seconds: int, *, rate: int = 100, should_stop=None, redact: bool = True) -> Profile:
    from perfkit.target import Target
    from perfkit.tools import pyspy

    res = pyspy.record(Target(pid=pid), pyspy.RecordOptions(duration=float(seconds), rate=rate, nonblocking=False),
                       should_stop=should_stop)
    prof = res.profile
    prof.recording = _redacted(prof.recording, redact)
    return prof


def dump(pid: int):
    """Every thread's stack (non-blocking py-spy dump); unnamed threads get their OS name."""
    import dataclasses

    from perfkit.procs import proc
    from perfkit.tools import pyspy

    stacks = pyspy.dump(pid, nonblocking=True, timeout=15.0)
    if any(not s.name for s in stacks):
        try:
            names = {tid: name for tid, (_, name) in proc.thread_cpu_times(pid).items()}
        except proc.Gone:
            names = {}
        stacks = [s if s.name else dataclasses.replace(s, name=names.get(s.os_thread_id or -1)) for s in stacks]
    return stacks


def _frames_root_first(stack) -> list[Frame]:
    return [Frame(str(f.get("name") or "?"), str(f.get("filename") or ""), int(f.get("line") or 0))
            for f in reversed(stack.frames)]


def goroutine_profile(stacks, *, before=None, seconds: float | None = None, started: float | None = None) -> Profile:
    """One ``goroutine/count`` sample per thread; with ``before``, the delta (after − before)."""
    rec = Recording(kind="threads", tool="py-spy", period_type="goroutine",
                    start=started if started is not None else time.time(), duration_s=seconds)
    b = ProfileBuilder([GOROUTINE], rec)
    for sign, group in ((1, stacks), (-1, before or [])):
        for s in group:
            b.add(_frames_root_first(s), (sign,), Labels(s.pid, s.os_thread_id, s.name))
    prof = b.build()
    if before is not None:
        prof.samples = [s for s in prof.samples if s.values[0] != 0]
    pids = {s.pid for s in stacks}
    prof.recording.pid = next(iter(pids)) if len(pids) == 1 else None
    prof.recording.threads = len(stacks)
    prof.recording.samples = len(stacks)
    return prof


def _where(f: dict) -> str:
    return f"{plain(f.get('filename') or '?')}:{f.get('line') or 0}"


def goroutine_text(stacks, debug: int, *, pid: int) -> str:
    """Go's text forms: ``debug=1`` grouped by identical stacks, ``debug>=2`` every thread."""
    from perfkit.threads import view

    threads = view.build_threads(stacks)
    if debug == 1:
        groups = view.group(threads)
        lines = [f"goroutine profile: total {len(threads)}", f"# pid {pid}: {len(threads)} Python threads "
                 f"in {len(groups)} distinct stacks", ""]
        for g in groups:
            app = g.app_frame()
            origin = f" from {view.frame_label(app)}" if app is not None and g.frames and app is not g.frames[0] else ""
            lines.append(f"{g.count} @ {plain(g.where() + origin)}")
            names = ", ".join(f"{t.tid} \"{plain(t.name)}\"" for t in g.threads[:20])
            more = f" and {g.count - 20} more" if g.count > 20 else ""
            lines.append(f"# threads: {names}{more}")
            lines.append(f"# running: {g.running} of {g.count}")
            for f in g.frames:
                lines.append(f"#\t{plain(f.get('name') or '?')}\t{_where(f)}")
            lines.append("")
        return "\n".join(lines) + "\n"
    out = []
    for t in threads:
        state = "running" if t.active else "idle"
        if t.owns_gil:
            state += ", holds GIL"
        out.append(f"goroutine {t.tid or 0} [{state}]: thread \"{plain(t.name)}\" pid {t.pid}")
        for f in t.frames:
            out.append(f"{plain(f.get('name') or '?')}(...)")
            out.append(f"\t{_where(f)}")
        if not t.frames:
            out.append("(no Python frames)")
        out.append("")
    return "\n".join(out) + "\n"


def heap(pid: int, seconds: int, *, kind: str, redact: bool = True) -> Profile:
    """A memray capture of ``seconds``; default sample type inuse_space (heap) or alloc_space (allocs)."""
    from perfkit.target import Target
    from perfkit.tools.memray import MemrayOptions, capture

    res = capture(Target(pid=pid), MemrayOptions(duration=float(seconds)))
    prof = res.profile
    prof.recording = _redacted(prof.recording, redact)
    want = "inuse_space" if kind == "heap" else "alloc_space"
    for i, vt in enumerate(prof.sample_types):
        if vt.type == want:
            prof.default_index = i
    return prof


def heap_text(prof: Profile, *, kind: str, top: int = 50) -> str:
    """A readable top list (``debug=1``): bytes and objects per allocating site."""
    from perfkit.units import human_bytes

    idx = prof.default_index
    objs = next((i for i, vt in enumerate(prof.sample_types)
                 if vt.type == ("inuse_objects" if kind == "heap" else "alloc_objects")), None)
    by_site: dict[Frame, list[int]] = {}
    for s in prof.samples:
        if not s.stack:
            continue
        leaf = prof.frames[s.stack[-1]]
        acc = by_site.setdefault(leaf, [0, 0])
        acc[0] += s.values[idx]
        acc[1] += s.values[objs] if objs is not None else 0
    total = sum(v[0] for v in by_site.values())
    rec = prof.recording
    lines = [f"heap profile: {kind} {prof.sample_types[idx].type} total {human_bytes(total)} "
             f"over {rec.duration_s or 0:.1f} s (memray attach, pid {rec.pid})", ""]
    for frame, (nbytes, count) in sorted(by_site.items(), key=lambda kv: -kv[1][0])[:top]:
        lines.append(f"{nbytes}: {count} [{human_bytes(nbytes)}] @ {plain(frame.function)} "
                     f"{plain(frame.file)}:{frame.line}")
    return "\n".join(lines) + "\n"
