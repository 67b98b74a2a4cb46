"""perfkit.redact: which secrets are taken out of command lines and text, and which look-alikes are kept."""

import pytest

from perfkit import redact
from perfkit.redact import MASK, redact_argv, redact_text

CASES = [
    # (argv, expected) — secrets masked
    (["python", "app.py", "--token=abc123"], ["python", "app.py", f"--token={MASK}"]),
    (["python", "app.py", "--token", "abc123", "--port", "80"], ["python", "app.py", "--token", MASK, "--port", "80"]),
    (["app", "--db-password", "pw", "-v"], ["app", "--db-password", MASK, "-v"]),
    (["app", "--api-key=k"], ["app", f"--api-key={MASK}"]),
    (["app", "--client-secret", "s"], ["app", "--client-secret", MASK]),
    (["app", "--auth", "user:pw"], ["app", "--auth", MASK]),
    (["app", "--key", "k"], ["app", "--key", MASK]),
    (["app", "--private_token=t"], ["app", f"--private_token={MASK}"]),
    (["app", "-Dpassword=x"], ["app", f"-Dpassword={MASK}"]),
    (["env", "DB_PASSWORD=x", "AWS_SECRET_ACCESS_KEY=y", "GITHUB_TOKEN=z", "PGPASSWORD=w", "HOME=/root"],
     ["env", f"DB_PASSWORD={MASK}", f"AWS_SECRET_ACCESS_KEY={MASK}", f"GITHUB_TOKEN={MASK}", f"PGPASSWORD={MASK}",
      "HOME=/root"]),
    (["app", "postgres://bob:hunter2@db:5432/x"], ["app", f"postgres://bob:{MASK}@db:5432/x"]),
    (["app", "--dsn=redis://:pw@cache/0"], ["app", f"--dsn={MASK}"]),
    (["curl", "-H", "Authorization: Bearer abc.def"], ["curl", "-H", f"Authorization: {MASK}"]),
    (["curl", "--header=X-Api-Key: k"], ["curl", f"--header=X-Api-Key: {MASK}"]),
    (["mysql", "-uroot", "-phunter2", "db"], ["mysql", "-uroot", f"-p{MASK}", "db"]),
    (["sshpass", "-p", "hunter2", "ssh", "host"], ["sshpass", "-p", MASK, "ssh", "host"]),
    (["redis-cli", "-a", "pw", "ping"], ["redis-cli", "-a", MASK, "ping"]),
]

KEPT = [
    ["python", "-m", "http.server", "-p", "8080"],          # -p is a port here
    ["mysql", "-p", "db"],                                   # mysql -p prompts: db is the database
    ["app", "--key-file", "/etc/k.pem", "--token-path", "/run/t", "--max-tokens", "100"],
    ["app", "--keyboard", "us", "--author", "me", "--monkey", "x", "--passes", "3"],
    ["gunicorn", "-w", "4", "app:wsgi", "--bind", "0.0.0.0:80"],
    ["python", "scenarios/cpu_split.py", "--ratio", "75:25"],
    ["app", "https://example.com/path?q=1", "user@host"],
]


@pytest.mark.parametrize("argv,expected", CASES)
def test_secrets_are_masked(argv, expected):
    new, changed = redact_argv(argv)
    assert new == expected
    assert changed


@pytest.mark.parametrize("argv", KEPT)
def test_look_alikes_are_kept(argv):
    assert redact_argv(argv) == (argv, False)


def test_free_text_keeps_spacing_and_masks_words():
    text = "python app.py  --token abc --password=pw postgres://u:p@h/ Authorization: Bearer xyz"
    new, changed = redact_text(text)
    assert changed
    for secret in ("abc", "=pw", ":p@", "xyz"):
        assert secret not in new, new
    assert "python app.py  --token" in new and "postgres://u:" in new


def test_switch_off_keeps_everything():
    try:
        redact.set_enabled(False)
        assert redact.argv(["app", "--token=x"]) == (["app", "--token=x"], False)
        assert redact.shown("--token=x") == "--token=x"
    finally:
        redact.set_enabled(True)
    assert redact.shown("--token=x") == f"--token={MASK}"
