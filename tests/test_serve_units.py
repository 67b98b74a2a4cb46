"""Pure parts of `perfkit serve`: redaction, listen/auth options, capture conditions,
the alert rules' shape, Go's integer parsing, command labels."""

from __future__ import annotations

import os

import pytest
import yaml

from perfkit.errors import UsageError
from perfkit.redact import redact_argv
from perfkit.serve import captures, config, endpoints, rules, targets


@pytest.mark.parametrize("argv, want", [
    (["app", "--token=abc"], ["app", "--token=REDACTED"]),
    (["app", "--password", "abc", "--port", "80"], ["app", "--password", "REDACTED", "--port", "80"]),
    (["app", "--api-key", "k1", "--keep", "3"], ["app", "--api-key", "REDACTED", "--keep", "3"]),
    (["app", "DB_PASSWORD=x", "MODE=fast"], ["app", "DB_PASSWORD=REDACTED", "MODE=fast"]),
    (["app", "postgres://bob:pw@db/x"], ["app", "postgres://bob:REDACTED@db/x"]),
    (["curl", "Authorization: Bearer abc"], ["curl", "Authorization: REDACTED"]),
    (["mysql", "-ppw", "db"], ["mysql", "-pREDACTED", "db"]),  # mysql -p DB prompts: DB is no password
    (["app", "--secret"], ["app", "--secret"]),  # a flag without a value stays
    (["python", "app.py", "--monkey", "x", "--author=me"], ["python", "app.py", "--monkey", "x", "--author=me"]),
])
def test_redact_argv(argv, want):
    got, changed = redact_argv(argv)
    assert got == want
    assert changed == (got != argv)


def test_listen_parsing_and_loopback():
    assert config.parse_listen("127.0.0.1:6060") == ("127.0.0.1", 6060)
    assert config.parse_listen("[::1]:0") == ("::1", 0)
    assert config.parse_listen(":9000") == ("0.0.0.0", 9000)
    for bad in ("6060", "host:99999", "a:b"):
        with pytest.raises(UsageError):
            config.parse_listen(bad)
    assert config.is_loopback("127.0.0.2") and config.is_loopback("::1") and config.is_loopback("localhost")
    assert not config.is_loopback("0.0.0.0") and not config.is_loopback("::") and not config.is_loopback("10.1.2.3")
    cfg = config.ServeConfig(host="0.0.0.0")
    with pytest.raises(UsageError) as e:
        config.check_listen_security(cfg)
    assert e.value.exit_code == 2 and "--token-file" in e.value.hint
    cfg.token = b"x" * 16
    config.check_listen_security(cfg)


def test_token_file_rules(tmp_path):
    p = tmp_path / "t"
    p.write_text("  " + "a" * 20 + "\n")
    p.chmod(0o600)
    assert config.read_token(str(p)) == b"a" * 20
    p.chmod(0o644)
    with pytest.raises(UsageError, match="readable by others"):
        config.read_token(str(p))
    p.chmod(0o600)
    p.write_text("short")
    with pytest.raises(UsageError, match="too short"):
        config.read_token(str(p))
    with pytest.raises(UsageError, match="cannot read"):
        config.read_token(str(tmp_path / "missing"))


def test_labels():
    assert config.parse_labels(["service=checkout", "env=prod=1"]) == {"service": "checkout", "env": "prod=1"}
    for bad in ("pid=1", "1x=2", "novalue", "__x=1", "a-b=1"):
        with pytest.raises(UsageError):
            config.parse_labels([bad])


class _R:
    def __init__(self, t, cpu, **kw):
        from perfkit.leaks.sampler import ResourceSample

        self.sample = ResourceSample(t=t, **kw)
        self.cpu_s = cpu


class _S:
    def __init__(self, window, fd_limit=None, memory_limit=None):
        self.window, self.fd_limit, self.memory_limit, self.verdicts = window, fd_limit, memory_limit, {}


def test_conditions():
    c = captures.parse_condition("rss>2GiB")
    assert (c.metric, c.op, c.value) == ("rss", ">", 2 * 1024 ** 3)
    assert captures.parse_condition("pss >= 1.5G").value == 1.5e9
    r = _R(10, 5.0, rss=3 * 1024 ** 3, threads=10, fds=95)
    st = _S([_R(5, 2.5), r], fd_limit=100, memory_limit=4 * 1024 ** 3)
    assert c.holds(r, st)
    assert captures.parse_condition("fds>90%").holds(r, st)
    assert not captures.parse_condition("rss>80%").holds(r, st)  # 75 % of the limit
    assert captures.parse_condition("cpu>40").holds(r, st)  # 2.5 s CPU over 5 s = 50 %
    assert not captures.parse_condition("threads>10").holds(r, st)
    assert captures.parse_condition("threads>=10").holds(r, st)
    assert captures.parse_condition("leak=threads").value == "threads"
    for bad in ("rss", "rss>lots", "threads>5MiB", "cpu>5%", "leak=cpu", "nope>1", "rss>1XB"):
        with pytest.raises(UsageError):
            captures.parse_condition(bad)


def test_rules_are_valid_yaml_and_name_the_next_command():
    doc = yaml.safe_load(rules.to_yaml())
    items = doc["groups"][0]["rules"]
    assert len(items) == len(rules.rules()) == 10
    assert len({r["alert"] for r in items}) == len(items)
    for r in items:
        assert r["labels"]["severity"] in ("warning", "critical")
        assert "perfkit " in r["annotations"]["summary"] and "{{ $labels.pid }}" in r["annotations"]["summary"]
    assert any("predict_linear(perfkit_process_open_fds" in r["expr"] for r in items)


@pytest.mark.parametrize("text, want", [("30", 30), ("+5", 5), ("-3", -3), ("", None), ("abc", None),
                                        ("1.5", None), ("²", None), (" 1", None), ("99999999999999999999", None)])
def test_go_parse_int(text, want):
    assert endpoints._parse_int(text) == want
    assert endpoints._atoi(text) == (want or 0)


def test_short_cmd_labels():
    assert targets.short_cmd(["/usr/bin/python3.11", "-u", "/srv/app/main.py", "--workers", "4"]) == \
        "python3.11 main.py --workers 4"
    assert targets.short_cmd(["python", "-m", "celery", "worker"]) == "python -m celery worker"
    assert targets.short_cmd(["gunicorn: master [app]"]) == "gunicorn: master [app]"
    long = targets.short_cmd(["python", "x.py"] + ["a" * 10] * 10)
    assert len(long) == targets.CMD_LABEL_MAX and long.endswith("…")
    assert targets.short_cmd(["py\x1b[31m"]) == "py?[31m"


def test_help_does_not_import_the_server(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from perfkit.cli import main\n"
            "try: main(['--help'])\nexcept SystemExit: pass\n"
            "bad = [m for m in ('perfkit.serve.server', 'prometheus_client', 'http.server') if m in sys.modules]\n"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, COLUMNS="100"))
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_the_rules_data_file_ships_in_the_wheel(tmp_path):
    """rules.py reads alerts.json: a wheel without it would fail at --print-rules."""
    import glob
    import subprocess
    import sys
    import zipfile

    from conftest import ROOT

    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = glob.glob(str(tmp_path / "perfkit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"perfkit/serve/alerts.json", "perfkit/procs/guard.py"} <= names
