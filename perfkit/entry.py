"""The ``perfkit`` console script: a tiny function that guards everything after it.

Importing the CLI (typer, click) takes a few hundred milliseconds; a Ctrl-C, SIGTERM or
SIGHUP in that time — or while the interpreter winds down (the child supervisor's exit
hook, thread pools joining) — must not print a traceback.  So the entry point imports
nothing but ``signal`` and ``sys`` before it can catch KeyboardInterrupt:

* SIGTERM and SIGHUP raise KeyboardInterrupt like Ctrl-C from the first instruction on
  (commands that record replace these handlers with their own stop requests);
* an interrupt before the command starts exits 130 with one line;
* once the command has decided its exit code, a further signal ends perfkit at once
  with that code, and perfkit leaves without the interpreter's own shutdown (``_leave``):
  its children are stopped (and guarded anyway), its output flushed.
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
    """The exit code is decided: a further signal ends perfkit at once with it."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            signal.signal(sig, _now(code))
        except (OSError, ValueError):
            pass


def _leave(code):
    """Exit with ``code`` now: output flushed, children already stopped (and guarded anyway).

    The interpreter's own shutdown is skipped — a signal landing in it (after Python put
    back the default handlers) would end perfkit by that signal, or with a traceback,
    instead of with the code the command chose.
    """
    _ending(code)
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    try:
        from perfkit.procs import supervisor

        supervisor.stop_all()
    except BaseException:  # noqa: BLE001 - never in the way of exiting
        pass
    os._exit(code)


def main(argv=None):
    code = 0
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _interrupt)
        from perfkit.cli import main as cli_main

        cli_main(argv)
    except KeyboardInterrupt:
        _ending(EXIT_INTERRUPTED)
        try:
            sys.stderr.write("perfkit: error: interrupted\n")
        except (OSError, ValueError):
            pass
        code = EXIT_INTERRUPTED
    except SystemExit as exc:
        _ending(exc.code if isinstance(exc.code, int) else 1)
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            try:
                sys.stderr.write(f"{exc.code}\n")
            except (OSError, ValueError):
                pass
            code = 1
    _leave(code)


if __name__ == "__main__":  # pragma: no cover
    main()
