"""The ``perfkit`` console script: a tiny function that guards everything after it.

Importing the CLI (typer, click) takes a few hundred milliseconds; a Ctrl-C, SIGTERM or
SIGHUP in that time — or while the interpreter winds down (the child supervisor's exit
hook, thread pools joining) — must not print a traceback.  So the entry point imports
nothing but ``signal`` and ``sys`` before it can catch KeyboardInterrupt:

* SIGTERM and SIGHUP raise KeyboardInterrupt like Ctrl-C from the first instruction on
  (commands that record replace these handlers with their own stop requests);
* an interrupt before the command starts exits 130 with one line;
* once the command has decided its exit code, a further signal ends perfkit at once
  (``os._exit``): its children are guarded and die with it.
"""

import signal
import sys

EXIT_INTERRUPTED = 130


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _now(code):
    def handler(signum, frame):
        import os

        os._exit(code)

    return handler


def _ending(code):
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            signal.signal(sig, _now(code if isinstance(code, int) else 1))
        except (OSError, ValueError):
            pass


def main(argv=None):
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _interrupt)
        from perfkit.cli import main as cli_main

        cli_main(argv)
    except KeyboardInterrupt:
        try:
            sys.stderr.write("perfkit: error: interrupted\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        _ending(EXIT_INTERRUPTED)
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit as exc:
        _ending(exc.code if exc.code is not None else 0)
        raise
    _ending(0)


if __name__ == "__main__":  # pragma: no cover
    main()
