"""A steady worker that checks its own results (for attach/detach stress tests).

Truth: in a loop the process builds a fresh list of ``--items`` records, sorts it,
serialises it and hashes it (sha256), and compares the digest with the one it
computed at start-up; every round allocates and frees about ``--items`` × 100 bytes
and keeps nothing, so memory stays flat.  A wrong digest counts as a failure.
On SIGUSR1 it prints ``status rounds=N failures=F``; at the end of ``--duration`` it
prints ``done rounds=N failures=F`` and exits 1 if any round failed, else 0.  Arguments it does not know are ignored (a
stand-in for a service's own flags, e.g. ``--token=…`` in redaction tests).

    python scenarios/mem_selfcheck.py --items 2000 --duration 120
"""

import argparse
import hashlib
import json
import signal
import sys
import time

STATE = {"rounds": 0, "failures": 0, "report": False}


def one_round(items, seed):
    rows = [{"id": (i * 7919 + seed) % items, "name": f"item-{i}", "v": [i, i * i]} for i in range(items)]
    rows.sort(key=lambda r: r["id"])
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def ask_report(signum=None, frame=None):
    STATE["report"] = True  # printed by the loop: print() inside a handler can re-enter stdout


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=2000, help="records per round")
    ap.add_argument("--pause", type=float, default=0.005, help="seconds to sleep between rounds")
    ap.add_argument("--duration", type=float, default=120.0, help="seconds to run, then exit")
    args, _ignored = ap.parse_known_args(argv)
    expected = one_round(args.items, 17)
    signal.signal(signal.SIGUSR1, ask_report)
    print(f"ready items={args.items}", flush=True)
    end = time.monotonic() + args.duration
    while time.monotonic() < end:
        if one_round(args.items, 17) != expected:
            STATE["failures"] += 1
        STATE["rounds"] += 1
        if STATE["report"]:
            STATE["report"] = False
            print(f"status rounds={STATE['rounds']} failures={STATE['failures']}", flush=True)
        time.sleep(args.pause)
    print(f"done rounds={STATE['rounds']} failures={STATE['failures']}", flush=True)
    return 1 if STATE["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
