"""Tiny launcher run as ``python -S _bench_launch.py CMD ARGS...`` by the bench collector.

Why: a child's peak RSS (``ru_maxrss``) starts at its parent's RSS when it is forked,
so a benchmark forked straight from perfkit (tens of MiB with numpy/scipy loaded)
would never show a peak below perfkit's own.  This launcher is a small process
(``-S``, stdlib builtins only) that spawns the benchmark, waits for it and reports on
its stdout, one line each: the benchmark's pid, then
``status utime stime maxrss_kib wall_seconds`` (or ``error ERRNO`` if it cannot start).
The benchmark's stdout goes to /dev/null; stdin and stderr are inherited.
"""

import os
import sys
import time


def main():
    argv = sys.argv[1:]
    report = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    start = time.perf_counter()
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ,
                              file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)])
    except OSError as exc:
        os.write(report, f"error {exc.errno}\n".encode())
        return 127
    os.write(report, f"{pid}\n".encode())
    while True:
        try:
            _, status, ru = os.wait4(pid, 0)
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries already
            continue
    wall = time.perf_counter() - start
    os.write(report, f"{status} {ru.ru_utime!r} {ru.ru_stime!r} {ru.ru_maxrss} {wall!r}\n".encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
