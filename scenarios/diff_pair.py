"""Two versions of one paced service, for ``perfkit diff``: a wrapper vanishes, a feature
appears, the rest does the same work per second.

Every ``--tick`` seconds (default 0.1) the service handles one batch, spinning for a
fixed amount of its own CPU time (``time.thread_time``) in each function, then sleeps
until the next tick.  Per batch:

=====================  =========================  ===========================
function               ``--version base``         ``--version head``
=====================  =========================  ===========================
``parse``              20 ms (self)               20 ms (self)
``render``             10 ms (self)               10 ms (self)
``validate``           20 ms total, **no self**:  — (gone: vanished)
                       it only calls check_rows
``check_rows``         20 ms (self)               20 ms (self, called directly)
``new_feature``        —                          25 ms (self, appeared)
=====================  =========================  ===========================

Truth, per second of recording (10 batches/s): base uses 0.5 CPU s/s, head 0.75.
``validate`` vanishes with no self time: its total share goes from 40 % (20 of 50 ms)
to 0 (−40 pp); ``new_feature`` appears at 33.3 % (25 of 75 ms); ``parse``,
``render`` and ``check_rows`` do the same work per second in both (0.2, 0.1, 0.2 CPU
s/s) although their shares shrink (parse 40 % → 26.7 %).  This holds while the
machine gives the process the CPU it asks for (under one core).

    python scenarios/diff_pair.py --version base --duration 30
"""

import argparse
import sys
import time


def _spin(ms):
    end = time.thread_time() + ms / 1000.0
    while time.thread_time() < end:
        pass


def parse():
    _spin(20)


def render():
    _spin(10)


def check_rows():
    _spin(20)


def validate():
    check_rows()


def new_feature():
    _spin(25)


def batch(version):
    parse()
    if version == "base":
        validate()
    else:
        check_rows()
        new_feature()
    render()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", choices=("base", "head"), default="base")
    ap.add_argument("--tick", type=float, default=0.1)
    ap.add_argument("--duration", type=float, default=30.0)
    args = ap.parse_args(argv)
    print(f"ready version={args.version}", flush=True)
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < args.duration:
        batch(args.version)
        n += 1
        delay = start + n * args.tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return 0


if __name__ == "__main__":
    sys.exit(main())
