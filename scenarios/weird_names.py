"""A live process whose function, file and thread names are hostile to renderers.

Truth: one busy thread, named ``THREAD_NAME`` below, spends equal CPU time (measured
with ``time.thread_time``, so it holds on a loaded machine) in each of the
``len(NAMES)`` functions of ``NAMES`` (so each gets 1/len(NAMES) of the CPU
samples, 25% by default), called from ``caller`` in a file named ``FILE_NAME``.
The names contain ``<script>``, quotes, ``&``, ``;``, spaces, a newline and
non-ASCII text; every perfkit output must show them as text, never as markup.
The main thread only waits.  With ``--controls`` the busy thread is named
``CONTROLS_NAME`` instead and one more function, ``CONTROLS_NAME`` too, joins the
split: bidi overrides/isolates (U+202E, U+2066), zero-width characters (U+200B,
U+FEFF), a C1 control (U+009B) and an ANSI colour escape — none may reach a terminal
or a document raw.

    python scenarios/weird_names.py --duration 10
"""

import argparse
import sys
import threading
import time
import types

NAMES = [
    '<script>alert("pwned")</script>',
    "it's \"quoted\" & <b>bold</b>; semi;colon",
    "spaces and\nnewline\tand tab",
    "ünïcødé_函数_🔥 </text></svg>",
]
FILE_NAME = '/tmp/evil dir/<script>x</script> & "q"; it\'s\nü.py'
THREAD_NAME = '<img src=x onerror=alert(1)> "t" & ü;'
CONTROLS_NAME = "evil\u202etxt.exe\u2066iso\u200bzw\ufeffbom\x9bcsi\x1b[31mred"


def _template(seconds):
    # slices of the thread's own CPU time: the split holds even on a busy machine
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _caller_template(funcs, slice_s, stop_at):
    while time.monotonic() < stop_at:
        for f in funcs:
            f(slice_s)


def _renamed(fn, name, filename):
    code = fn.__code__.replace(co_name=name, co_filename=filename)
    if sys.version_info >= (3, 11):
        code = code.replace(co_qualname=name)
    return types.FunctionType(code, fn.__globals__, name)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=30.0, help="seconds to run, then exit")
    ap.add_argument("--slice-ms", type=float, default=1.37, help="time in each function per turn")
    ap.add_argument("--controls", action="store_true", help="add bidi/zero-width/C1/ANSI names (see above)")
    args = ap.parse_args(argv)
    names = NAMES + ([CONTROLS_NAME] if args.controls else [])
    funcs = [_renamed(_template, n, FILE_NAME) for n in names]
    caller = _renamed(_caller_template, "caller; <i>&amp;</i>", FILE_NAME)
    stop_at = time.monotonic() + args.duration
    t = threading.Thread(target=caller, args=(funcs, args.slice_ms / 1000.0, stop_at),
                         name=CONTROLS_NAME if args.controls else THREAD_NAME)
    t.start()
    print("ready", flush=True)
    t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
