"""Write a triage bundle: a private directory or a .tar.gz (files 0600, dirs 0700).

Layout (relative paths are what findings cite as evidence)::

    index.html  summary.md  summary.json  manifest.json
    host/host.json
    procs/<pid>/process.json   facts, threads, fds, sockets, what failed
    procs/<pid>/stacks.txt     every thread's stack (text), stacks.json (both looks)
    procs/<pid>/cpu.svg        flame graph (or cpu.speedscope.json until SVG exists)
    procs/<pid>/cpu.collapsed  cpu.perfkit   (re-render with `perfkit flame`)

Everything is written into a private staging directory next to the destination and
moved into place at the end, so a bundle is never half-written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfkit import redact
from perfkit.errors import OutputError
from perfkit.fileio import private_mkdir, sweep_partial, sweep_stale
from perfkit.triage import findings as fnd
from perfkit.triage import report as rep
from perfkit.triage.facts import Event, to_json
from perfkit.triage.model import ProcRecord, Stacks, TopRow, stacks_json
from perfkit.triage.summary import Collection, HostBrief, Privilege, ProcessRow, Summary

if TYPE_CHECKING:
    from perfkit.model import Profile
    from perfkit.triage.run import ProcResult, TriageResult

TAR_SUFFIXES = (".tar.gz", ".tgz")


def default_destination(now: float | None = None) -> Path:
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:40] or "host"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now or time.time()))
    return Path.cwd() / f"perfkit-triage-{host}-{stamp}"


def is_tar(dest: Path) -> bool:
    return str(dest).lower().endswith(TAR_SUFFIXES)


def check_destination(dest: Path) -> None:
    """Fail before collecting if the bundle cannot be written there."""
    try:
        _check_destination(dest)
    except OSError as exc:
        raise OutputError(f"cannot write the bundle to {dest}: {exc.strerror or exc}",
                          "choose a directory this user can write") from None


def _check_destination(dest: Path) -> None:
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {dest}: directory {parent} does not exist", "create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {dest}: permission denied on {parent}", "choose a writable directory")
    if is_tar(dest):
        if dest.is_dir():
            raise OutputError(f"cannot write {dest}: it is a directory")
        if dest.exists() and not os.access(dest, os.W_OK):
            raise OutputError(f"cannot write {dest}: permission denied")
    elif dest.exists():
        if not dest.is_dir():
            raise OutputError(f"cannot write the bundle to {dest}: a file with that name exists",
                              "give a new directory name, or a name ending in .tar.gz")
        if any(dest.iterdir()):
            raise OutputError(f"cannot write the bundle to {dest}: the directory is not empty",
                              "give a new or empty directory")


def _dump(obj: Any) -> bytes:
    text = json.dumps(obj, indent=1, sort_keys=True, default=str, ensure_ascii=False)
    return text.encode("utf-8", "backslashreplace")


def _text(s: str) -> bytes:
    return s.encode("utf-8", "backslashreplace")


class _Writer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.artifacts: list[dict[str, Any]] = []

    def _dirs(self, path: Path) -> None:
        for parent in reversed(path.relative_to(self.root).parents):
            d = self.root / parent
            if not d.is_dir():
                private_mkdir(d)

    def put(self, rel: str, data: bytes, what: str) -> str:
        """A new 0600 file in the private staging directory.  No per-file fsync: the
        bundle becomes visible only when the whole directory is renamed into place."""
        path = self.root / rel
        self._dirs(path)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
        except OSError as exc:
            raise OutputError(f"cannot write the bundle ({rel}): {exc.strerror or exc}",
                              "free some space or choose another path") from None
        self.artifacts.append({"path": rel, "bytes": len(data), "what": what})
        return rel

    def profile(self, rel: str, profile: Profile, what: str) -> str:
        from perfkit.formats import write_profile

        path = self.root / rel
        self._dirs(path)
        write_profile(profile, path)
        self.artifacts.append({"path": rel, "bytes": path.stat().st_size, "what": what})
        return rel


def script_name(cmdline: list[str], name: str) -> str:
    """A short human name: the script or module a Python process runs."""
    args = list(cmdline or [])
    if not args:
        return name
    exe = os.path.basename(args[0])
    rest = args[1:]
    if "--multiprocessing-fork" in rest or any("multiprocessing" in a and "spawn_main" in a for a in rest):
        return "multiprocessing worker"
    if re.match(r"^(python|pypy)", exe):
        opts_with_arg = {"-X", "-W", "-Q"}
        i = 0
        while i < len(rest):
            a = rest[i]
            if a == "-m" and i + 1 < len(rest):
                return f"-m {rest[i + 1]}"
            if a == "-c":
                return "-c …"
            if a in opts_with_arg:
                i += 2
                continue
            if a.startswith("-"):
                i += 1
                continue
            return os.path.basename(a)
        return exe
    return exe


def _profile_top(profile: Profile, n: int = 5) -> tuple[TopRow, ...]:
    from perfkit.analysis.top import top

    return tuple(TopRow(function=r.function, location=f"{os.path.basename(r.file)}:{r.line}" if r.file else "",
                        file=r.file, line=r.line, self_percent=round(r.self_pct, 1),
                        total_percent=round(r.total_pct, 1)) for r in top(profile, limit=n))


def _write_flames(w: _Writer, pid: int, profile: Profile, notes: set[str]) -> str | None:
    """Flame graph + raw profile for one process; returns the path to open."""
    d = fnd.proc_dir(pid)
    w.profile(f"{d}/cpu.perfkit", profile, "CPU profile (lossless; perfkit flame/convert read it)")
    w.profile(f"{d}/cpu.collapsed", profile, "CPU profile, collapsed stacks")
    try:
        return w.profile(f"{d}/cpu.svg", profile, "CPU flame graph (SVG)")
    except Exception as exc:  # a renderer bug must not lose the bundle
        notes.add(f"SVG flame graphs failed ({type(exc).__name__}: {str(exc)[:100]}); wrote speedscope JSON")
    return w.profile(f"{d}/cpu.speedscope.json", profile, "CPU profile, speedscope JSON")


def _busy_percent(profile: Profile | None) -> float | None:
    """On-CPU (or runnable) samples per sampling tick, in % of one core."""
    if profile is None:
        return None
    rec = profile.recording
    ticks = (rec.requested_rate or 0) * (rec.duration_s or 0)
    if not ticks:
        return None
    return round(min(100.0 * (rec.samples or 0) / ticks, 100.0 * max(1, rec.threads or 1)), 1)


def _gil_label(threads: Stacks | None) -> str | None:
    from perfkit.triage.pyprocs import gil_holder

    g = gil_holder(threads or ())
    if g is None:
        return None
    return f'"{g.name}" ({g.os_thread_id})' if g.name else str(g.os_thread_id)


def _state(r: ProcResult) -> str | None:
    if r.facts is not None and r.facts.status:
        return r.facts.status
    return "vanished" if any(e.status == "vanished" for e in r.events) else None


def _proc_records(w: _Writer, result: TriageResult,
                  notes: set[str]) -> tuple[list[ProcRecord], list[ProcessRow], dict[int, str]]:
    """(analysis inputs, summary rows, stacks text by pid); writes per-process files."""
    full: list[ProcRecord] = []
    rows: list[ProcessRow] = []
    texts: dict[int, str] = {}
    redacted = sum(1 for r in result.procs if r.proc.redacted)
    if redacted:
        notes.add(f"secrets on {redacted} command line(s) were written as REDACTED (--no-redact keeps them)")
    for r in result.procs:
        pid, p, facts = r.pid, r.proc, r.facts
        d = fnd.proc_dir(pid)
        script = script_name(p.cmdline, p.name)
        flame = None
        top: tuple[TopRow, ...] = ()
        if r.profile is not None:
            try:
                flame = _write_flames(w, pid, r.profile, notes)
                top = _profile_top(r.profile)
            except OutputError:
                raise
            except Exception as exc:  # noqa: BLE001
                r.event("flame graph", "failed", error=f"{type(exc).__name__}: {str(exc)[:200]}")
        stacks_path = None
        if r.stacks is not None:
            text = rep.stacks_text(pid, r.stacks, facts, title=f"{script}  {' '.join(p.cmdline)[:300]}")
            texts[pid] = text
            stacks_path = w.put(fnd.stacks_txt(pid), _text(text), "all-thread stacks (text)")
            w.put(f"{d}/stacks.json", _dump(stacks_json(pid, r.stacks, r.stacks2, r.stacks2_delay_s)),
                  "all-thread stacks (py-spy dump --json; a second look when threads waited on locks)")
        stack_err = next((e.error for e in r.events if e.what == "stacks" and not e.ok), None)
        gil = _gil_label(r.stacks)
        proc_doc = {**p.to_json(), "script": script, "facts": facts.to_json() if facts else {}, "gil_holder": gil,
                    "profile_top": to_json(top), "events": to_json(r.events), "problems": to_json(r.problems)}
        process_json = w.put(fnd.proc_json(pid), _dump(proc_doc), "process facts")
        full.append(ProcRecord(pid=pid, name=p.name, script=script, facts=facts, stacks=r.stacks,
                               profile_busy_percent=_busy_percent(r.profile), stacks2=r.stacks2,
                               stacks2_delay_s=r.stacks2_delay_s, profile_top=top, flame=flame))
        rows.append(ProcessRow(
            pid=pid, ppid=p.ppid, name=p.name, script=script, cmdline=p.cmdline, user=p.user, role=p.role,
            parent_target=p.parent_target, state=_state(r), cpu_percent=facts.cpu_percent if facts else None,
            rss=facts.rss if facts else None,
            threads=(facts.num_threads if facts else None) or (len(r.stacks) if r.stacks else None),
            fds=facts.fd_count if facts else None, fd_limit=facts.fd_soft_limit if facts else None,
            sockets=facts.sockets.count if facts and facts.sockets else None, gil_holder=gil,
            stacks=stacks_path, stacks_error=stack_err, flame=flame, process_json=process_json,
            profile_top=top[:3]))
    return full, rows, texts


def _privilege() -> Privilege:
    euid = os.geteuid()
    caps = None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    caps = int(line.split()[1], 16)
    except OSError:
        pass
    ptrace = bool(caps is not None and caps & (1 << 19))
    try:
        import pwd

        name = pwd.getpwuid(euid).pw_name
    except (KeyError, ImportError):
        name = None
    return Privilege(euid=euid, user=name, root=euid == 0, cap_sys_ptrace=ptrace)


def build(result: TriageResult, dest: Path, argv: list[str]) -> Summary:
    """Write the bundle for ``result`` to ``dest``; returns the summary document."""
    parent = dest.parent if str(dest.parent) else Path(".")
    sweep_stale(str(parent), prefix=".perfkit-")  # staging left by a triage that was SIGKILLed
    staging = Path(tempfile.mkdtemp(prefix=f".perfkit-triage-{os.getpid()}-", dir=parent))
    os.chmod(staging, 0o700)
    try:
        doc = _fill(staging, result, dest, argv)
        _publish(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return doc


def _failed(result: TriageResult) -> tuple[list[Event], list[Event]]:
    """(every manifest row, the rows that did not succeed) of a run."""
    events = [e for r in result.procs for e in r.events]
    failed = [e for e in events if not e.ok]
    failed += [Event(prob.what, "failed", error=prob.error, needs_privilege=prob.needs_privilege)
               for prob in [*result.problems, *result.host.problems]]
    return events, failed


def _fill(root: Path, result: TriageResult, dest: Path, argv: list[str]) -> Summary:
    from perfkit import __version__

    w = _Writer(root)
    notes: set[str] = set(result.notes)
    full, rows, texts = _proc_records(w, result, notes)
    w.put(fnd.HOST_JSON, _dump(result.host.to_json()), "host facts and counter deltas")
    found = fnd.analyse(result.host, full)
    events, failed = _failed(result)
    priv = _privilege()
    elapsed = round(time.time() - result.started, 3)
    doc = Summary(bundle=str(dest), hostname=result.host.hostname, started=result.started, elapsed_s=elapsed,
                  budget_s=result.options.budget, within_budget=elapsed <= result.options.budget,
                  interrupted=result.interrupted, host=HostBrief.of(result.host), findings=tuple(found),
                  processes=tuple(rows), collection=Collection(failed=tuple(failed)), privilege=priv,
                  notes=tuple(sorted(notes)))
    w.put("summary.json", _dump(doc.to_json()), "the summary (same as --json)")
    w.put("summary.md", _text(rep.summary_md(doc)), "summary (Markdown)")
    w.put("index.html", _text(rep.index_html(doc, texts)), "summary (HTML), start here")
    needs_privilege = to_json(doc.collection.needs_privilege)
    manifest = {
        "perfkit_version": __version__,
        "argv": redact.argv(argv)[0],
        "hostname": doc.hostname,
        "started": result.started,
        "elapsed_s": round(time.time() - result.started, 3),
        "budget_s": result.options.budget,
        "options": {"pids": result.options.pids, "profile_top": result.options.profile_top,
                    "profile_seconds": result.options.profile_seconds, "locals": result.options.locals_,
                    "workers": result.options.workers},
        "phases_s": result.phases,
        "interrupted": result.interrupted,
        "privilege": priv.to_json(),
        "processes": [{"pid": r.pid, "script": r.script, "role": r.role, "state": r.state} for r in rows],
        "collected": [e.to_json() for e in events if e.ok],
        "failed": to_json(failed),
        "needs_privilege": needs_privilege,
        "notes": sorted(notes),
        "artifacts": sorted(w.artifacts + [{"path": "manifest.json", "what": "this file"}], key=lambda a: a["path"]),
    }
    if needs_privilege and not priv.root:
        manifest["privilege_hint"] = ("some facts need more rights: run as root (sudo) or with CAP_SYS_PTRACE "
                                      "to read other users' processes")
    w.put("manifest.json", _dump(manifest), "what was collected, what failed and why")
    return replace(doc, within_budget=manifest["elapsed_s"] <= result.options.budget)


def _publish(staging: Path, dest: Path) -> None:
    if is_tar(dest):
        base = dest.name
        for suf in TAR_SUFFIXES:
            if base.lower().endswith(suf):
                base = base[: -len(suf)]
        where = dest.parent if str(dest.parent) else Path(".")
        sweep_partial(where, dest.name)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.perfkit-{os.getpid()}-", suffix=".tmp", dir=where)
        os.fchmod(fd, 0o600)
        os.close(fd)
        try:
            with tarfile.open(tmp, "w:gz") as tar:
                tar.add(staging, arcname=base or "perfkit-triage", filter=_private)
            os.replace(tmp, dest)
        except OSError as exc:
            raise OutputError(f"cannot write {dest}: {exc.strerror or exc}") from exc
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return
    try:
        if dest.exists():
            dest.rmdir()  # checked empty before collecting
        os.rename(staging, dest)
        os.chmod(dest, 0o700)
    except OSError as exc:
        raise OutputError(f"cannot write the bundle to {dest}: {exc.strerror or exc}") from exc


def _private(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mode = 0o700 if info.isdir() else 0o600
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


__all__ = ["build", "check_destination", "default_destination", "is_tar", "script_name"]
