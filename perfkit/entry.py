"""The ``perfkit`` console script: a tiny function that guards everything after it.

Importing the CLI (typer, click) takes a few hundred milliseconds; a Ctrl-C, SIGTERM or
SIGHUP in that time — or while the interpreter winds down (the child supervisor's exit
hook, thread pools joining) — must not print a traceback.  So the entry point imports
nothing but ``signal``, ``sys``, ``time`` and ``_thread`` (built in) before it can catch KeyboardInterrupt:

* SIGTERM and SIGHUP raise KeyboardInterrupt like Ctrl-C from the first instruction on
  (commands that record replace these handlers with their own stop requests);
* an interrupt that Python swallows is delivered again: a KeyboardInterrupt raised while
  the interpreter runs a weakref callback or a ``__del__`` (the import system's module
  locks have one — a Ctrl-C during start-up lands there) is only reported as "Exception
  ignored in …" and the program goes on; perfkit's unraisable hook re-sends the signal
  instead, so it is raised again in ordinary code;
* an interrupt before the command starts exits 130 with one line;
* once the command has decided its exit code, a further signal ends perfkit at once
  with that code, and perfkit leaves without the interpreter's own shutdown (``_leave``):
  its children are stopped (and guarded anyway), its output flushed.
"""

import _thread
import signal
import sys
import time

EXIT_INTERRUPTED = 130


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _resend():
    time.sleep(0.005)
    _thread.interrupt_main(signal.SIGINT)


def _unraisable(previous):
    """sys.unraisablehook: a swallowed KeyboardInterrupt is re-sent, not printed."""

    def hook(info):
        if isinstance(info.exc_value, KeyboardInterrupt) or info.exc_type is KeyboardInterrupt:
            # SIGINT again, a moment later, from a helper thread: its handler (perfkit's, or
            # once the exit code is decided an immediate exit with it) then runs in the
            # main thread's ordinary code.  Sent from here, it would run inside this hook,
            # where the exception is swallowed once more.
            _thread.start_new_thread(_resend, ())
            return
        previous(info)

    return hook


def _guard():
    """From here on a signal interrupts perfkit cleanly (see the module docstring)."""
    sys.unraisablehook = _unraisable(sys.unraisablehook)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)


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
        _guard()
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
