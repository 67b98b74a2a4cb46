"""The perfkit command line.

Start-up stays fast: this module imports only typer/click.  Each command lives in
``perfkit/commands/<name>.py`` as a ``typer.Typer`` named ``app`` and is imported only
when that command runs (see ``COMMANDS``).  ``main()`` is the one error boundary.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

try:  # newer typer vendors click as typer._click (a separately installed click is another copy)
    from typer import _click as click
except ImportError:  # pragma: no cover - typer < 0.22 depends on click
    import click  # type: ignore[no-redef]
from typer.core import TyperGroup

from perfkit import __version__

# name -> (module, one-line help).  Help text lives here so `perfkit --help`
# does not import any command module.
COMMANDS: dict[str, tuple[str, str]] = {
    "cpu": ("perfkit.commands.cpu", "Sample CPU stacks of a live or launched Python process (py-spy)."),
    "heap": ("perfkit.commands.heap", "Track heap allocations: top allocating lines, what stays alive, the peak "
                                      "(memray)."),
    "top": ("perfkit.commands.top", "A live view of where a process's CPU goes, refreshed every second (py-spy)."),
    "threads": ("perfkit.commands.threads", "Every thread's state, CPU, GIL and Python stack, grouped."),
    "leaks": ("perfkit.leaks.command", "Watch memory, threads, fds and sockets over time and say what leaks."),
    "flame": ("perfkit.commands.flame", "Render a saved profile as a flame graph (SVG/HTML) or a terminal tree."),
    "convert": ("perfkit.commands.convert", "Convert a profile between formats (perfkit, pprof, speedscope, Chrome "
                                            "trace, collapsed, pstats …)."),
    "diff": ("perfkit.commands.diff", "Compare two profiles: differential flame graph and what grew or shrank."),
    "gate": ("perfkit.gate.command", "Fail CI when a change makes things slower or hungrier."),
    "triage": ("perfkit.triage.command", "Snapshot the host and every Python process into one bounded bundle."),
    "affinity": ("perfkit.affinity.command", "Worker-to-core layout: show, plan, apply, reset, recommend, tune."),
    "serve": ("perfkit.serve.command", "Serve pprof endpoints and Prometheus metrics for Python processes (sidecar)."),
    "doctor": ("perfkit.commands.doctor", "Check every precondition (ptrace, tools, Python, temp space) and its fix."),
}

_state = {"debug": False}


class _Interrupted(Exception):
    """Ctrl-C / SIGTERM / SIGHUP inside a command, carried past typer's own handling."""


def _interrupted_chain(exc: BaseException | None) -> bool:
    """An error that is really an interrupt (KeyboardInterrupt raised inside an import's
    dataclass or descriptor set-up comes back wrapped in a RuntimeError)."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, (KeyboardInterrupt, _Interrupted)):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class LazyGroup(TyperGroup):
    """A click group whose subcommands are imported only when invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str):
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        cmd = typer.main.get_command(module.app)
        cmd.name = name
        readable_metavars(cmd)
        return cmd

    def invoke(self, ctx: click.Context):
        # typer turns a KeyboardInterrupt into a silent exit 130 (newer releases) or
        # "Aborted!" (older ones); perfkit says "interrupted" itself, the same way always
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted() from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, help_) in COMMANDS.items()])


# click type name -> the metavar shown in help when a command did not choose one
# (never typer's "<float range>" or "<list[Path]>")
_METAVARS = {"int": "N", "integer": "N", "float": "NUMBER", "str": "TEXT", "text": "TEXT", "path": "PATH",
             "Path": "PATH", "filename": "FILE", "bool": "BOOL", "boolean": "BOOL"}


# ... or, first, from what the option holds
_BY_NAME = {"pid": "PID", "pids": "PID", "output": "FILE", "duration": "SECONDS", "timeout": "SECONDS",
            "interval": "SECONDS", "config": "FILE", "baseline": "FILE", "state": "FILE", "budget": "TIME"}


def _kind(p) -> tuple[str, tuple]:
    """The value type's name and its choices, from typer's descriptor (or click's type)."""
    desc = getattr(p, "type_descriptor", None)
    if desc is not None:
        choices = tuple(desc.choices or ()) if desc.is_choice else ()
        ann = desc.annotation
        origin = getattr(ann, "__origin__", None)
        if origin in (list, tuple):
            ann = (getattr(ann, "__args__", None) or (str,))[0]
        name = getattr(ann, "__name__", str(ann))
        return name, tuple(getattr(c, "value", c) for c in choices)
    t = getattr(p, "type", None)
    return getattr(t, "name", "text").replace(" range", ""), tuple(getattr(t, "choices", ()) or ())


def readable_metavars(cmd) -> None:
    """Give every option and argument of ``cmd`` (and its subcommands) a plain metavar."""
    for p in cmd.params:
        if getattr(p, "is_flag", False) or getattr(p, "count", False):
            continue
        if p.param_type_name == "argument":
            if p.metavar is None:
                p.metavar = (p.name or "ARG").upper()
            p.display_type_rich = lambda ctx=None: None  # the name says it; no "<path>" after it
            continue
        if p.metavar is None:
            kind, choices = _kind(p)
            p.metavar = "|".join(str(c) for c in choices) if choices else \
                _BY_NAME.get(p.name or "") or _METAVARS.get(kind, kind.upper())
    for sub in getattr(cmd, "commands", {}).values():
        readable_metavars(sub)


app = typer.Typer(
    cls=LazyGroup,
    name="perfkit",
    help="Performance diagnostics for running Python processes: perfkit COMMAND --help for each.",
    epilog="Exit codes: 0 done; 1 a finding you asked to fail on; 2 usage/input/output error; "
           "3 target problem (no such pid, not Python, exited, permission denied); "
           "4 required tool missing or failed (perfkit's own internal errors too); "
           "130 interrupted (partial results written).",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"perfkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and "
                                                                                            "exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for unexpected errors."),
) -> None:
    """Performance diagnostics for running Python processes.

    Exit codes: 0 done; 1 finding you asked to fail on; 2 usage/input/output error;
    3 target problem; 4 required tool missing or failed; 130 interrupted.
    """
    _state["debug"] = debug
    _project_defaults(ctx)


def _project_defaults(ctx: click.Context) -> None:
    """``[tool.perfkit]`` defaults for the subcommand about to run (flags still win).

    ``doctor`` reports a broken config as one of its checks instead of failing on it.
    """
    from perfkit import config
    from perfkit.errors import UsageError

    try:
        defaults = config.load()
    except UsageError:
        if ctx.invoked_subcommand == "doctor":
            return
        raise
    ctx.default_map = config.default_map(defaults) or None
    from perfkit import paths

    paths.configure(list(defaults.user_code))  # every command: which code is yours (--user-code adds to it)


def _print_error(message: str, hint: str | None) -> None:
    # Plain stderr writes: no markup interpretation of untrusted text.
    sys.stderr.write(f"perfkit: error: {message}\n")
    if hint:
        sys.stderr.write(f"  {hint}\n")
    sys.stderr.flush()


def _usage_hint(exc) -> str | None:
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None) if ctx is not None else None
    return f"see: {path} -h" if path else "see: perfkit -h"


def _one_line(exc: object) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("…" if len(text) > 300 else "")


def main(argv: list[str] | None = None) -> None:
    from perfkit.errors import EXIT_INTERRUPTED, EXIT_TOOL, PerfkitError

    os.environ.pop("RUST_BACKTRACE", None)
    command = typer.main.get_command(app)
    _state["debug"] = False
    try:
        rc = command.main(args=argv, prog_name="perfkit", standalone_mode=False)
    except PerfkitError as exc:
        if _state["debug"]:
            import traceback

            traceback.print_exc()
        _print_error(exc.message, exc.hint)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt, _Interrupted):
        _print_error("interrupted", None)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        _print_error(_one_line(exc.format_message()), _usage_hint(exc))
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # a bug: short message unless --debug; perfkit itself failed: exit 4
        if _interrupted_chain(exc):
            _print_error("interrupted", None)
            sys.exit(EXIT_INTERRUPTED)
        if _state["debug"]:
            raise
        _print_error(f"internal error: {type(exc).__name__}: {_one_line(exc)}",
                     "this is a bug in perfkit (exit 4: a required tool failed — perfkit itself); "
                     "rerun with --debug for a traceback")
        sys.exit(EXIT_TOOL)
    if rc == EXIT_INTERRUPTED:  # a command that kept its partial results, or typer's own Ctrl-C handling
        _print_error("interrupted", None)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
