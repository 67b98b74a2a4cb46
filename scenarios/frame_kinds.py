"""A live process that spends its CPU in every kind of Python frame whose name pprof,
speedscope and collapsed readers tend to mangle: ``<module>``, ``<lambda>``,
``<genexpr>``, ``<listcomp>``, ``<dictcomp>`` and a method ``Worker.run``.

Truth: the main thread runs only module-level code (no ``main()``), taking turns of
``--slice-ms`` of its own CPU time (``time.thread_time``, so the split holds on a loaded
machine) in each of the six kinds, so each holds about 1/6 of the CPU samples.  On
CPython 3.12+ list and dict comprehensions are inlined (PEP 709): their time shows in
the enclosing function (``listcomp_work`` / ``dictcomp_work``) instead.  Each kind's
time is self time in that frame: the work is C arithmetic on big integers, which makes
no Python frame of its own.

    python scenarios/frame_kinds.py --duration 10
"""

import argparse
import time

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--duration", type=float, default=30.0, help="seconds to run, then exit")
ap.add_argument("--slice-ms", type=float, default=20.0, help="CPU time of each turn")
args = ap.parse_args()
SLICE = args.slice_ms / 1000.0

work_lambda = lambda: 7 ** 30000  # noqa: E731  (self time in <lambda>)


def genexpr_work():
    return sum(7 ** 30000 % 2 for _ in range(8))  # self time in <genexpr>


def listcomp_work():
    return [7 ** 30000 for _ in range(8)]  # <listcomp> (inlined into listcomp_work on 3.12+)


def dictcomp_work():
    return {i: 7 ** 30000 for i in range(8)}  # <dictcomp> (inlined into dictcomp_work on 3.12+)


def turn(work, end):
    while time.thread_time() < end:
        work()


class Worker:
    def run(self, end):
        while time.thread_time() < end:
            _ = 7 ** 30000


print("ready", flush=True)
stop_at = time.monotonic() + args.duration
worker = Worker()
while time.monotonic() < stop_at:
    end = time.thread_time() + SLICE
    while time.thread_time() < end:  # <module>'s own turn
        _ = 7 ** 30000
    turn(work_lambda, time.thread_time() + SLICE)
    turn(genexpr_work, time.thread_time() + SLICE)
    turn(listcomp_work, time.thread_time() + SLICE)
    turn(dictcomp_work, time.thread_time() + SLICE)
    worker.run(time.thread_time() + SLICE)
