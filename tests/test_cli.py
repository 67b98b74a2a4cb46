"""The CLI shell: fast --help, version, completion, error boundary."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, run_perfkit

HEAVY = ("psutil", "memray", "google.protobuf", "scipy", "numpy", "rich.table", "jsonschema")


def _modules_after(*argv: str) -> set[str]:
    code = (
        "import sys\n"
        f"sys.argv = ['perfkit', *{list(argv)!r}]\n"
        "from perfkit.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    return set(res.stderr.split())


def test_help_imports_nothing_heavy():
    mods = _modules_after("--help")
    assert "perfkit.cli" in mods
    for heavy in HEAVY:
        assert heavy not in mods, f"perfkit --help imported {heavy}"
    assert not any(m.startswith("perfkit.commands.") for m in mods)


def test_command_help_imports_only_its_module():
    mods = _modules_after("cpu", "--help")
    assert "perfkit.commands.cpu" in mods
    for heavy in ("psutil", "memray", "google.protobuf", "scipy"):
        assert heavy not in mods


def test_gate_help_and_a_gate_run_import_no_scipy_or_numpy():
    """The gate's statistics are the standard library's (perfkit.stats): a CI job pays
    no scipy/numpy import (4.5 s was seen on a busy box) for its normal and t quantiles."""
    mods = _modules_after("gate", "compare", "--help")
    assert "perfkit.gate.command" in mods
    for heavy in ("scipy", "numpy", "memray", "google.protobuf"):
        assert heavy not in mods, f"gate --help imported {heavy}"
    run = ["gate", "compare", "--base-cmd", f"{sys.executable} -c pass", "--head-cmd", f"{sys.executable} -c pass",
           "--repetitions", "3", "--max-repetitions", "3", "--warmups", "0", "--no-profile", "-m", "cpu,wall", "--json"]
    mods = _modules_after(*run)
    assert "perfkit.stats" in mods and "perfkit.gate.runner" in mods  # the run did run
    for heavy in ("scipy", "numpy"):
        assert heavy not in mods, f"a gate run imported {heavy}"


def test_help_lists_commands_and_exit_codes():
    res = run_perfkit("--help")
    assert res.returncode == 0
    for cmd in ("cpu",):
        assert cmd in res.stdout
    assert "130 interrupted" in res.stdout


def test_version():
    from perfkit import __version__

    res = run_perfkit("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"perfkit {__version__}"


def test_completion_script():
    # Without this variable typer guesses the shell from the parent processes (shellingham),
    # which differs between a terminal, CI and a backgrounded run.
    res = run_perfkit("--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert res.returncode == 0
    assert "complete" in res.stdout and "perfkit" in res.stdout


def test_unknown_command_and_option_are_usage_errors():
    res = run_perfkit("nosuchcommand")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    res = run_perfkit("cpu", "--no-such-flag")
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_python_dash_m_entry_point():
    res = subprocess.run([sys.executable, "-m", "perfkit", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0 and res.stdout.startswith("perfkit ")
