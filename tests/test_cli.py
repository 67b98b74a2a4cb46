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
