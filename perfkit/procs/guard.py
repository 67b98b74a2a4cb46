"""perfkit's child guard: a tiny process between perfkit and every child it starts.

Run by ``perfkit.procs.supervisor`` as::

    python -I -S guard.py CTRL_FD REPORT_FD [--grace S] [--first-signal N] [--wake PID] [--ptracer-any] -- ARGV...

Why a process of its own: a parent-death signal reaches only a direct child, and the
helpers perfkit runs start helpers of their own (``memray attach`` starts gdb, py-spy
starts the program it profiles).  The guard

* becomes a child subreaper, so every orphaned descendant is re-parented to it;
* forks the child into a new session (its own process group: a terminal Ctrl-C
  reaches perfkit, which decides how to stop the child) with a parent-death signal,
  then execs ARGV;
* reports on REPORT_FD, one line each: ``pid N`` once the exec succeeded (or
  ``error ERRNO``), and at the end ``exit STATUS UTIME STIME MAXRSS_KIB WALL``;
* holds the read end of a pipe whose write end only perfkit has (CTRL_FD).  When
  perfkit goes away — exit, exception, SIGKILL, OOM kill, a lost terminal — the pipe
  reads end-of-file and the guard stops everything it started: ``--first-signal``
  (default SIGTERM) to the child's process group, up to ``--grace`` seconds, then
  SIGKILL to the group and every remaining descendant;
* when the child exits on its own, whatever it left behind in its process group or
  re-parented to the guard is stopped the same way: no child outlives perfkit;
* with ``--ptracer-any`` the child allows any process of its user to ptrace it
  (``PR_SET_PTRACER_ANY``): under Yama ``ptrace_scope=1`` only ancestors may, and
  perfkit's sampler (py-spy) is the launched program's sibling, not its parent;
* with ``--on-abandon JSON_ARGV`` (and ``--abandon-timeout S``): when perfkit goes away
  without first writing ``disarm`` on CTRL_FD, the guard runs that command after
  stopping its child — ``memray detach`` when perfkit was SIGKILLed while memray tracked
  a target, so tracking stops within seconds instead of at the end of ``--duration``;
* with ``--wake PID``: a target that was running when the guard started and is left
  in a stopped state (T/t) after a debugger was killed is sent SIGCONT.  A target that
  was already stopped is never resumed.

Debuggers are stopped first and gently, whoever asks (perfkit dying, a deadline, the
child ending): before anything else is signalled, the tree under the child is frozen
(SIGSTOP: ``memray attach`` can neither start a gdb nor SIGKILL its gdb — which is what
its ``subprocess.run`` does 0.25 s after a Ctrl-C), then every gdb/lldb in it gets
SIGINT and is waited for: SIGINT makes gdb interrupt the inferior, take its breakpoints
out and detach.  SIGTERM would not — gdb quits leaving its ``int3`` bytes in the
target's malloc/free/PyMem_* (measured: 10 left behind), and the target dies of SIGTRAP
at its next allocation; SIGKILL leaves them too.  Only a gdb that ignores SIGINT for
``DEBUGGER_GRACE`` seconds is killed.  ``stop_debuggers`` is importable (the
supervisor uses it for perfkit's own stops).

It ignores SIGINT, SIGTERM, SIGHUP and SIGTSTP: it ends when its child ends or when
perfkit's pipe closes, never half-way.  Standard library only, no site (``-S``), so it
starts in a few milliseconds and adds almost nothing to a child's peak RSS (a forked
child's ``ru_maxrss`` starts at its parent's).
"""

import os
import select
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_SET_PTRACER = 0x59616D61
PR_SET_PTRACER_ANY = (1 << 64) - 1
_libc = None


def _prctl(option, arg):
    global _libc
    try:
        import ctypes

        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        ul = ctypes.c_ulong
        return _libc.prctl(ctypes.c_int(option), ul(arg), ul(0), ul(0), ul(0)) == 0
    except Exception:
        return False


def _state(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    i = data.rfind(b")")
    return data[i + 2:i + 3].decode()


def _default_signals_new_session():
    """In a forked child: every signal back to its default, then a session of its own."""
    for sig in range(1, signal.NSIG):
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError, RuntimeError):
            pass
    os.setsid()


def _signal_each(pids, sig):
    """``sig`` to each of ``pids`` (gone ones skipped)."""
    for p in pids:
        try:
            os.kill(p, sig)
        except OSError:
            pass


def _kids_of(pid):
    """Direct children of ``pid`` (from every one of its threads' children lists)."""
    kids = []
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return kids
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                kids.extend(int(k) for k in f.read().split())
        except (OSError, ValueError):
            continue
    return kids


def _children():
    """Direct children of the guard (its own child and adopted orphans)."""
    return _kids_of(os.getpid())


def _signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_all(pgid, sig):
    _signal_group(pgid, sig)
    for kid in _children():
        try:
            os.kill(kid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _reap():
    """Reap every exited child without blocking; returns {pid: (status, rusage)}."""
    done = {}
    while True:
        try:
            pid, status, ru = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        done[pid] = (status, ru)
    return done


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


DEBUGGERS = ("gdb", "lldb", "lldb-server", "gdbserver")
DEBUGGER_GRACE = 10.0  # seconds a gdb gets to detach after SIGINT (it takes ~0.1 s)


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid, "rb") as f:
            return f.read().strip().decode("utf-8", "replace")
    except OSError:
        return None


def _tree(root):
    """``root`` and all its descendants (pids), parents before children."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        if pid in out:
            continue
        out.append(pid)
        todo.extend(_kids_of(pid))
    return out


def _exited(pid):
    st = _state(pid)
    return st is None or st in "ZX"


def stop_debuggers(root, grace=DEBUGGER_GRACE, roots=()):
    """Make every gdb/lldb under ``root`` (and ``roots``) detach before anything else is signalled.

    The rest of the tree is frozen first (SIGSTOP) so nothing in it can start a new
    debugger or SIGKILL one mid-detach; the caller signals (and SIGCONTs) it afterwards.
    Returns the pids that were frozen.  Never raises.
    """
    frozen = []
    try:
        pids = []
        for r in (root, *roots):
            pids.extend(p for p in _tree(r) if p not in pids)
        debuggers = [p for p in pids if _comm(p) in DEBUGGERS]
        if not debuggers:
            return frozen
        for p in pids:
            if p not in debuggers and p != os.getpid():
                try:
                    os.kill(p, signal.SIGSTOP)
                    frozen.append(p)
                except OSError:
                    pass
        # a child forked but not yet exec'd into gdb was frozen above; look once more
        for p in _tree(root):
            if p not in pids and _comm(p) in DEBUGGERS:
                debuggers.append(p)
        end = time.monotonic() + grace
        asked = {}
        while True:
            left = [p for p in debuggers if not _exited(p)]
            if not left:
                break
            now = time.monotonic()
            if now >= end:
                for p in left:  # ignored SIGINT for `grace` seconds: nothing gentler is left
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
                break
            for p in left:
                if now - asked.get(p, -99.0) >= 0.5:  # again if it came too early (gdb starting up)
                    asked[p] = now
                    try:
                        os.kill(p, signal.SIGINT)
                    except OSError:
                        pass
            time.sleep(0.02)
    except Exception:  # pragma: no cover - best effort: never stop the caller from stopping
        pass
    return frozen


def _stop_everything(pgid, first, grace, main, record):
    """debuggers detach → first signal → grace → SIGKILL for the group and all descendants; reap them all."""
    if _group_alive(pgid) or _children():
        frozen = stop_debuggers(pgid, roots=_children())
        _signal_group(pgid, first)
        for p in frozen:
            try:
                os.kill(p, first)
                os.kill(p, signal.SIGCONT)
            except OSError:
                pass
        told = set()
        end = time.monotonic() + grace
        while time.monotonic() < end:
            for kid in _children():  # orphans keep arriving while their parents die
                if kid not in told:
                    told.add(kid)
                    try:
                        os.kill(kid, first)
                    except (ProcessLookupError, PermissionError):
                        pass
            for pid, res in _reap().items():
                if pid == main:
                    record(res)
            if not _group_alive(pgid) and not _children():
                break
            time.sleep(0.02)
    for _ in range(50):
        _signal_all(pgid, signal.SIGKILL)
        for pid, res in _reap().items():
            if pid == main:
                record(res)
        if not _children() and not _group_alive(pgid):
            break
        time.sleep(0.02)


def _run_on_abandon(cmd, timeout):
    """perfkit died while something it started in a target was still on (memray tracking):
    run ``cmd`` (``memray detach``) to undo it, within ``timeout`` seconds, stopped gently."""
    try:
        pid = os.fork()
    except OSError:
        return
    if pid == 0:
        try:
            _default_signals_new_session()
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pid in _reap():
            pid = 0
            break
        time.sleep(0.05)
    if pid:
        frozen = stop_debuggers(pid)
        _signal_group(pid, signal.SIGTERM)
        _signal_each(frozen, signal.SIGCONT)
        time.sleep(0.5)
        _signal_group(pid, signal.SIGKILL)
    for _ in range(100):  # whatever it left (a gdb it started) is swept like everything else
        _reap()
        kids = _children()
        if not kids:
            break
        stop_debuggers(kids[0], roots=kids[1:])
        _signal_each(kids, signal.SIGKILL)
        time.sleep(0.02)


def main(argv):
    ctrl, report = int(argv[0]), int(argv[1])
    i = 2
    grace, first, wake, ptracer_any = 3.0, signal.SIGTERM, None, False
    on_abandon, abandon_timeout = None, 20.0
    while argv[i] != "--":
        if argv[i] == "--ptracer-any":
            ptracer_any = True
            i += 1
            continue
        if argv[i] == "--grace":
            grace = float(argv[i + 1])
        elif argv[i] == "--first-signal":
            first = int(argv[i + 1])
        elif argv[i] == "--wake":
            wake = int(argv[i + 1])
        elif argv[i] == "--on-abandon":
            import json

            on_abandon = json.loads(argv[i + 1])
        elif argv[i] == "--abandon-timeout":
            abandon_timeout = float(argv[i + 1])
        i += 2
    cmd = argv[i + 1:]
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU,
                signal.SIGQUIT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    wake_state = _state(wake) if wake else None
    wr, ww = os.pipe()
    os.set_blocking(ww, False)
    signal.set_wakeup_fd(ww)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    er, ew = os.pipe()
    me = os.getpid()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(er)
            signal.set_wakeup_fd(-1)
            _default_signals_new_session()
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != me:
                os._exit(1)
            if ptracer_any:  # Yama ptrace_scope 1: let perfkit's sampler (a sibling) attach
                _prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY)
            for fd in (ctrl, report, wr, ww):
                os.close(fd)
            os.execvp(cmd[0], cmd)
        except OSError as exc:
            os.write(ew, str(exc.errno or 1).encode())
        finally:
            os._exit(127)
    os.close(ew)
    failed = os.read(er, 32)
    os.close(er)
    if failed:
        os.waitpid(pid, 0)
        os.write(report, b"error %s\n" % failed)
        return 0
    os.write(report, b"pid %d\n" % pid)
    # The guard's copies of the child's stdio would keep perfkit's pipes open.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)

    result = []

    def record(res):
        if not result:
            result.append((res, time.perf_counter() - start))

    abandoned = False
    while not result:
        for done, res in _reap().items():
            if done == pid:
                record(res)
        if result:
            break
        try:
            ready, _, _ = select.select([ctrl, wr], [], [])
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            continue
        if wr in ready:
            try:
                os.read(wr, 512)
            except BlockingIOError:
                pass
        if ctrl in ready:
            try:
                data = os.read(ctrl, 64)
            except OSError:
                data = b""
            if not data:
                abandoned = True
                break
            if b"disarm" in data:  # perfkit finished the work the on-abandon command would undo
                on_abandon = None
    _stop_everything(pid, first if abandoned else signal.SIGTERM, grace if abandoned else 0.5, pid, record)
    if abandoned and on_abandon:
        _run_on_abandon(on_abandon, abandon_timeout)
    if wake and wake_state and wake_state not in "Tt" and (_state(wake) or "") in ("T", "t"):
        try:
            os.kill(wake, signal.SIGCONT)
        except OSError:
            pass
    if result:
        (status, ru), wall = result[0]
        line = "exit %d %r %r %d %r\n" % (status, ru.ru_utime, ru.ru_stime, ru.ru_maxrss, wall)
        try:
            os.write(report, line.encode())
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
