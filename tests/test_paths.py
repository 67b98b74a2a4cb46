"""perfkit.paths: where a frame's code lives, the one display style, user-code patterns."""

from __future__ import annotations

import pytest

from perfkit import paths

STD = "/usr/lib/python3.11"
SITE = "/srv/venv/lib/python3.11/site-packages"


@pytest.fixture(autouse=True)
def _cwd():
    paths.configure([], cwd="/srv/app")
    yield
    paths.configure(None, cwd=None)


@pytest.mark.parametrize("path, kind, shown", [
    ("/srv/app/service/handlers.py", "user", "service/handlers.py"),
    ("/opt/other/tool.py", "user", "/opt/other/tool.py"),
    (f"{STD}/json/encoder.py", "stdlib", "<stdlib>/json/encoder.py"),
    ("<frozen importlib._bootstrap>", "stdlib", "<frozen importlib._bootstrap>"),
    (f"{SITE}/tabulate/__init__.py", "site", "tabulate/__init__.py"),
    ("/usr/lib/python3/dist-packages/yaml/reader.py", "site", "yaml/reader.py"),
    (f"{SITE}/memray/commands/run.py", "tool", "memray/commands/run.py"),
    ("libz.so.1", "native", "libz.so.1"),
    ("", "native", ""),
    ("<string>", "user", "<string>"),
])
def test_classify_and_display(path, kind, shown):
    assert paths.classify(path) == kind
    assert paths.display(path) == shown


def test_perfkit_itself_is_a_tool_even_under_the_working_directory():
    import perfkit

    here = perfkit.__file__
    paths.configure([], cwd=here.rsplit("/perfkit/", 1)[0])
    assert paths.classify(here) == "tool"


def test_user_code_patterns_flag_and_negation():
    paths.configure(["tabulate/*", "!service/vendor/*"], cwd="/srv/app")
    assert paths.classify(f"{SITE}/tabulate/__init__.py") == "user"  # an installed package made yours
    assert paths.classify("/srv/app/service/vendor/six.py") == "site"  # vendored code is not yours
    assert paths.classify("/srv/app/service/handlers.py") == "user"
    assert paths.classify(f"{STD}/json/encoder.py") == "stdlib"


def test_user_code_from_pyproject_then_the_flag(tmp_path):
    """[tool.perfkit] user_code (read by perfkit.config, the one pyproject reader) comes
    first and --user-code adds to it; the real CLI wires both."""
    import json
    import subprocess
    import sys

    (tmp_path / "pyproject.toml").write_text('[tool.perfkit]\nuser_code = ["mylib/*"]\n')
    from perfkit import config

    assert config.load(tmp_path / "pyproject.toml").user_code == ("mylib/*",)
    from conftest import ROOT

    fixture = str(ROOT / "tests" / "fixtures" / "cpu_split_75_25.perfkit")
    check = ("import sys; from perfkit import paths; import perfkit.cli as c; "
             "sys.argv=['perfkit','diff',sys.argv[1],sys.argv[1],'--user-code','!mylib/_vendored/*','--json']\n"
             "try:\n    c.main()\nexcept SystemExit:\n    pass\nprint('PATTERNS', paths.patterns(), file=sys.stderr)")
    res = subprocess.run([sys.executable, "-c", check, fixture], capture_output=True, text=True, cwd=tmp_path,
                         timeout=60)
    assert "PATTERNS ['mylib/*', '!mylib/_vendored/*']" in res.stderr, res.stderr
    assert json.loads(res.stdout)["command"] == "diff"


def test_import_machinery_and_frame_text():
    assert paths.is_import_machinery("<frozen importlib._bootstrap_external>", "_compile_bytecode")
    assert paths.is_import_machinery(f"{STD}/importlib/_bootstrap.py", "_load")
    assert not paths.is_import_machinery("/srv/app/service/handlers.py", "exec_module")
    assert paths.frame_text("encode", f"{STD}/json/encoder.py", 203) == "encode <stdlib>/json/encoder.py:203"
    assert paths.location("/srv/app/a.py", 0) == "a.py"


def test_thread_labels():
    from perfkit.names import thread_label

    assert thread_label("worker-a", "worker-a") == "worker-a"
    assert thread_label("MainThread", "python3", process_name="python3") == "MainThread"  # the inherited name
    assert thread_label("ThreadPoolExecutor-0_0", "ThreadPoolExecu") == "ThreadPoolExecutor-0_0"  # comm truncated
    assert thread_label("worker-1", "pool-1", process_name="python3") == "worker-1 (os: pool-1)"
    assert thread_label("", "jemalloc_bg_thd", tid=7) == "jemalloc_bg_thd"
    assert thread_label(None, None, tid=7) == "thread 7"
    assert thread_label("w", None, pid=42) == "w · pid 42"
