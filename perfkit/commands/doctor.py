"""`perfkit doctor`: every precondition of profiling, checked before anything attaches."""

from __future__ import annotations

from typing import Annotated

import typer

from perfkit import options as o

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


@app.command()
def doctor(
    pid: o.Pid = None,
    probe: Annotated[bool, typer.Option("--probe/--no-probe",
                                        help="With --pid: confirm with one non-blocking py-spy dump (reads memory, "
                                             "never stops the target).")] = True,
    as_json: o.Json = False,
) -> None:
    """Check and explain every precondition, each with its fix: ptrace rules (Yama
    ptrace_scope, root / CAP_SYS_PTRACE), containers and PID namespaces, py-spy, memray
    and gdb, the target's Python version and build, memray in the target's environment,
    temp space and mounts, the project's [tool.perfkit].

    \b
    Exit codes: 0 when perfkit cpu --pid N (without --pid: perfkit cpu -- CMD) would work;
    otherwise the code that command would fail with (2 config, 3 target/permission, 4 tool).
    Problems that only affect perfkit heap are shown but do not change the exit code.
    \b
    Examples:
      perfkit doctor
      perfkit doctor --pid 4242
      perfkit doctor --pid 4242 --json
    """
    import os

    from perfkit import preflight
    from perfkit.console import out_console, print_json

    checks = preflight.host()
    if pid is not None:
        checks += preflight.for_pid(pid, probe=probe)
    cpu_ok, code = preflight.verdict(checks, "cpu")
    heap_ok, _ = preflight.verdict(checks, "heap")
    what = f"--pid {pid}" if pid is not None else "-- CMD"
    if as_json:
        print_json({"command": "doctor", "pid": pid, "euid": os.geteuid(), "checks": [c.to_json() for c in checks],
                    "would_work": {f"cpu {what}": cpu_ok, f"heap {what}": heap_ok}, "exit_code": code})
    else:
        out_console().print(DoctorReport(checks, pid, {f"perfkit cpu {what}": cpu_ok, f"perfkit heap {what}": heap_ok}))
    if code:
        raise typer.Exit(code)


class DoctorReport:
    """The checks as lines: [ok] / [FAIL] / [warn], the detail, the fix under each problem."""

    MARK = {"ok": "[ok]  ", "fail": "[FAIL]", "warn": "[warn]"}
    STYLE = {"ok": "green", "fail": "bold red", "warn": "yellow"}

    def __init__(self, checks, pid, verdicts: dict[str, bool]) -> None:
        self.checks, self.pid, self.verdicts = checks, pid, verdicts

    def lines(self) -> list[tuple[str, str, str | None]]:
        out = []
        for c in self.checks:
            out.append((c.status, f"{self.MARK[c.status]} {c.name}: {c.detail}", c.hint if not c.ok else None))
        return out

    def __rich_console__(self, console, options):
        import os

        from rich.text import Text

        from perfkit.console import plain

        who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
        yield Text(f"perfkit doctor{f' · pid {self.pid}' if self.pid is not None else ''} · as {who}", style="bold")
        for status, line, hint in self.lines():
            mark, _, rest = line.partition(" ")
            t = Text(mark, style=self.STYLE[status])
            t.append(" " + plain(rest))
            yield t
            if hint:
                yield Text("       fix: " + plain(hint), style="dim" if status == "warn" else "")
        verdict = Text("")
        for i, (name, ok) in enumerate(self.verdicts.items()):
            if i:
                verdict.append(" · ")
            verdict.append(f"{name}: ")
            verdict.append("would work" if ok else "would fail", style="green" if ok else "bold red")
        yield verdict
