"""A file-descriptor leak: ``leak_fds`` opens files it never closes.

Truth: after printing ``ready``, the process opens ``--rate`` regular files per second
(default 5) in the function ``leak_fds`` (the ``open(...)`` call is at the line named by
``LEAK_LINE`` below, and the ready line reports it), under a temporary directory whose
name starts with ``perfkit-fdleak-``, and keeps every one of them open.  ``--prefill K``
opens K such files at start (before ``ready``); ``--limit L`` lowers the process's own
soft RLIMIT_NOFILE to L first, so opening eventually fails with EMFILE (the scenario
then keeps running, holding what it has, and prints ``exhausted`` on stderr once).
All fds, pipes and sockets other than these stay constant.  The temp dir is removed
at exit.  Exits by itself after ``--duration`` seconds.

    python scenarios/fd_leak.py --rate 5 --duration 60
"""

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time

HELD = []


def leak_fds(directory, count):
    """Open ``count`` new files under ``directory`` and keep them (the leak)."""
    for _ in range(count):
        path = os.path.join(directory, f"leaked-{len(HELD):06d}.dat")
        HELD.append(open(path, "wb"))  # LEAK_LINE


LEAK_LINE = 31  # the line of the open() above


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=5.0, help="fds opened per second")
    ap.add_argument("--limit", type=int, default=None, help="set the soft RLIMIT_NOFILE to this")
    ap.add_argument("--prefill", type=int, default=0, help="fds opened at start")
    ap.add_argument("--duration", type=float, default=60.0)
    args = ap.parse_args(argv)
    if args.limit is not None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        new = args.limit if hard == resource.RLIM_INFINITY else min(args.limit, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    directory = tempfile.mkdtemp(prefix="perfkit-fdleak-")
    exhausted = False
    try:
        try:
            leak_fds(directory, args.prefill)
        except OSError:
            exhausted = True
        print(f"ready pid={os.getpid()} dir={directory} line={LEAK_LINE} rate={args.rate}", flush=True)
        start = time.monotonic()
        end = start + args.duration
        opened = 0
        while time.monotonic() < end:
            due = int((time.monotonic() - start) * args.rate) - opened
            if due > 0 and not exhausted:
                try:
                    leak_fds(directory, due)
                except OSError:
                    exhausted = True
                    sys.stderr.write("exhausted\n")
                    sys.stderr.flush()
                opened += due
            time.sleep(min(0.05, 1.0 / max(args.rate, 1.0)))
    except KeyboardInterrupt:
        pass
    finally:
        for f in HELD:
            try:
                f.close()
            except OSError:
                pass
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    import signal

    def _stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    sys.exit(main())
