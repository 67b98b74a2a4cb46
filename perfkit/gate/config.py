"""``[tool.perfkit.gate]`` in pyproject.toml, merged with command-line flags.

    [tool.perfkit.gate]
    baseline = ".perfkit/gate-baseline.json"
    metrics = ["cpu", "rss", "threads", "allocations", "heap_peak"]   # + "wall", "instructions"
    repetitions = 10        # runs (pairs in compare) before the first decision
    max_repetitions = 30    # adaptive cap: more runs while a metric is undecided
    deterministic_repetitions = 3   # memray / callgrind runs per side (cap: 3x)
    warmups = 1
    alpha = 0.05            # false-alarm budget for the whole check
    timeout = 300           # seconds per benchmark run
    strict = false          # inconclusive fails too
    profile = true          # py-spy profile per side to explain a CPU regression

    [tool.perfkit.gate.min_effect]   # smallest relative change that counts, per metric
    cpu = 0.03

    [tool.perfkit.gate.benchmarks.parse]
    command = ["python", "bench/parse.py", "--n", "1000"]   # or one string
    cwd = "."
    env = { PYTHONHASHSEED = "0" }
    metrics = ["cpu", "heap_peak"]   # optional, overrides the global list

``[[tool.perfkit.gate.benchmarks]]`` with a ``name`` key works too.  Every problem is a
``UsageError`` (exit 2) naming the key and what is allowed; unknown keys are errors
(a typo must not silently disable a check).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path

from perfkit.config import find_pyproject  # the one reader of pyproject.toml
from perfkit.config import load_toml as _load_toml
from perfkit.errors import UsageError
from perfkit.gate.metrics import DEFAULT_METRICS, METRICS, known_list, unknown

DEFAULT_BASELINE = ".perfkit/gate-baseline.json"
_GLOBAL_KEYS = {"baseline", "metrics", "repetitions", "max_repetitions", "deterministic_repetitions", "warmups",
                "alpha", "timeout", "strict", "profile", "min_effect", "benchmarks", "env"}
_BENCH_KEYS = {"name", "command", "cwd", "env", "metrics", "timeout", "min_effect"}


@dataclass
class Benchmark:
    name: str
    command: list[str]
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    metrics: tuple[str, ...] | None = None  # None: the global list
    timeout: float | None = None
    min_effect: dict[str, float] = field(default_factory=dict)


@dataclass
class GateConfig:
    benchmarks: list[Benchmark] = field(default_factory=list)
    baseline: str = DEFAULT_BASELINE
    metrics: tuple[str, ...] = DEFAULT_METRICS
    repetitions: int = 10
    max_repetitions: int = 30
    deterministic_repetitions: int = 3
    warmups: int = 1
    alpha: float = 0.05
    timeout: float = 300.0
    strict: bool = False
    profile: bool = True
    min_effect: dict[str, float] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    source: str | None = None  # the file it came from

    def metrics_for(self, bench: Benchmark) -> tuple[str, ...]:
        return bench.metrics if bench.metrics is not None else self.metrics

    def threshold(self, bench: Benchmark, metric: str) -> float:
        if metric in bench.min_effect:
            return bench.min_effect[metric]
        if metric in self.min_effect:
            return self.min_effect[metric]
        return METRICS[metric].min_effect

    def timeout_for(self, bench: Benchmark) -> float:
        return bench.timeout if bench.timeout is not None else self.timeout

    def env_for(self, bench: Benchmark) -> dict[str, str]:
        env = {"PYTHONHASHSEED": "0"}
        env.update(self.env)
        env.update(bench.env)
        return env


def load(path: str | os.PathLike | None = None, *, required: bool = False) -> GateConfig:
    """The gate config from ``path`` (or the nearest pyproject.toml); defaults if absent."""
    explicit = path is not None
    p = Path(path) if path is not None else find_pyproject()
    if p is None:
        if required:
            raise UsageError("no pyproject.toml found", "give --config FILE or the benchmark command as flags")
        return GateConfig()
    doc = _load_toml(p)
    # pyproject.toml (or any file with a [tool] table) holds [tool.perfkit.gate];
    # a standalone file may hold the gate table's keys at its top level.
    if p.name == "pyproject.toml" or "tool" in doc:
        section = doc.get("tool", {}).get("perfkit", {}).get("gate")
    else:
        section = doc
    if section is None:
        if explicit and required:
            raise UsageError(f"{p} has no [tool.perfkit.gate] section", "see docs/gate.md for an example")
        return GateConfig(source=str(p))
    cfg = parse(section, where=f"{p} [tool.perfkit.gate]")
    cfg.source = str(p)
    base_dir = p.parent
    for b in cfg.benchmarks:  # relative cwd is relative to the config file
        if b.cwd is not None and not os.path.isabs(b.cwd):
            b.cwd = str((base_dir / b.cwd).resolve())
        elif b.cwd is None:
            b.cwd = str(base_dir.resolve())
    if not os.path.isabs(cfg.baseline):
        cfg.baseline = str(base_dir / cfg.baseline)
    return cfg


def parse(section: object, *, where: str = "[tool.perfkit.gate]") -> GateConfig:
    if not isinstance(section, dict):
        raise UsageError(f"{where} must be a table")
    extra = sorted(set(section) - _GLOBAL_KEYS)
    if extra:
        raise UsageError(f"{where}: unknown key {extra[0]!r}", f"known keys: {', '.join(sorted(_GLOBAL_KEYS))}")
    cfg = GateConfig()
    if "baseline" in section:
        cfg.baseline = _str(section["baseline"], f"{where} baseline")
    if "metrics" in section:
        cfg.metrics = _metrics(section["metrics"], f"{where} metrics")
    for key in ("repetitions", "max_repetitions", "deterministic_repetitions", "warmups"):
        if key in section:
            setattr(cfg, key, _int(section[key], f"{where} {key}", minimum=0 if key == "warmups" else 1))
    if "alpha" in section:
        cfg.alpha = _float(section["alpha"], f"{where} alpha", 1e-6, 0.5)
    if "timeout" in section:
        cfg.timeout = _float(section["timeout"], f"{where} timeout", 0.1, 86400)
    for key in ("strict", "profile"):
        if key in section:
            if not isinstance(section[key], bool):
                raise UsageError(f"{where} {key} must be true or false, not {section[key]!r}")
            setattr(cfg, key, section[key])
    if "min_effect" in section:
        cfg.min_effect = _min_effect(section["min_effect"], f"{where} min_effect")
    if "env" in section:
        cfg.env = _env(section["env"], f"{where} env")
    cfg.benchmarks = _benchmarks(section.get("benchmarks", {}), where)
    validate(cfg)
    return cfg


def validate(cfg: GateConfig) -> GateConfig:
    if cfg.max_repetitions < cfg.repetitions:
        raise UsageError(f"max_repetitions ({cfg.max_repetitions}) is smaller than repetitions ({cfg.repetitions})")
    names = [b.name for b in cfg.benchmarks]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"benchmark {dup[0]!r} is defined twice")
    return cfg


def _benchmarks(raw: object, where: str) -> list[Benchmark]:
    items: list[tuple[str | None, object]]
    if isinstance(raw, dict):
        items = list(raw.items())
    elif isinstance(raw, list):
        items = [(None, b) for b in raw]
    else:
        raise UsageError(f"{where} benchmarks must be a table of tables or an array of tables")
    out = []
    for i, (name, b) in enumerate(items):
        w = f"{where} benchmarks.{name}" if name else f"{where} benchmarks[{i}]"
        if not isinstance(b, dict):
            raise UsageError(f"{w} must be a table with at least a 'command'")
        extra = sorted(set(b) - _BENCH_KEYS)
        if extra:
            raise UsageError(f"{w}: unknown key {extra[0]!r}", f"known keys: {', '.join(sorted(_BENCH_KEYS))}")
        bname = name if name is not None else b.get("name")
        if not isinstance(bname, str) or not bname.strip():
            raise UsageError(f"{w} needs a 'name'")
        if "command" not in b:
            raise UsageError(f"{w} needs a 'command' (a string or a list of arguments)")
        out.append(Benchmark(
            name=bname,
            command=parse_command(b["command"], f"{w} command"),
            cwd=_str(b["cwd"], f"{w} cwd") if "cwd" in b else None,
            env=_env(b.get("env", {}), f"{w} env"),
            metrics=_metrics(b["metrics"], f"{w} metrics") if "metrics" in b else None,
            timeout=_float(b["timeout"], f"{w} timeout", 0.1, 86400) if "timeout" in b else None,
            min_effect=_min_effect(b.get("min_effect", {}), f"{w} min_effect"),
        ))
    return out


def parse_command(raw: object, what: str = "command") -> list[str]:
    if isinstance(raw, str):
        try:
            cmd = shlex.split(raw)
        except ValueError as exc:
            raise UsageError(f"{what}: cannot split {raw!r}: {exc}") from None
    elif isinstance(raw, list) and all(isinstance(a, str) for a in raw):
        cmd = list(raw)
    else:
        raise UsageError(f"{what} must be a string or a list of strings")
    if not cmd:
        raise UsageError(f"{what} is empty")
    return cmd


def parse_metrics(text: str, what: str = "--metrics") -> tuple[str, ...]:
    return _metrics([m.strip() for m in text.split(",") if m.strip()], what)


def parse_min_effects(items: list[str], what: str = "--min-effect") -> dict[str, float]:
    """``cpu=0.05`` or ``cpu=5%`` items."""
    out: dict[str, object] = {}
    for item in items:
        name, sep, val = item.partition("=")
        if not sep:
            raise UsageError(f"{what} {item!r}: expected METRIC=FRACTION, e.g. cpu=0.05 or cpu=5%")
        val = val.strip()
        try:
            out[name.strip()] = float(val[:-1]) / 100 if val.endswith("%") else float(val)
        except ValueError:
            raise UsageError(f"{what} {item!r}: {val!r} is not a number") from None
    return _min_effect(out, what)


def _metrics(raw: object, what: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(m, str) for m in raw) or not raw:
        raise UsageError(f"{what} must be a non-empty list of metric names", f"known metrics: {known_list()}")
    bad = unknown(raw)
    if bad:
        raise UsageError(f"{what}: unknown metric {bad[0]!r}", f"known metrics: {known_list()}")
    return tuple(dict.fromkeys(raw))


def _min_effect(raw: object, what: str) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise UsageError(f"{what} must be a table of metric = fraction, e.g. cpu = 0.05")
    bad = unknown(raw)
    if bad:
        raise UsageError(f"{what}: unknown metric {bad[0]!r}", f"known metrics: {known_list()}")
    return {k: _float(v, f"{what} {k}", 0.0, 10.0) for k, v in raw.items()}


def _env(raw: object, what: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise UsageError(f"{what} must be a table of NAME = \"value\"")
    out = {}
    for k, v in raw.items():
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise UsageError(f"{what} {k} must be a string")
        out[k] = str(v)
    return out


def _str(v: object, what: str) -> str:
    if not isinstance(v, str) or not v:
        raise UsageError(f"{what} must be a non-empty string, not {v!r}")
    return v


def _int(v: object, what: str, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum or v > 100000:
        raise UsageError(f"{what} must be a whole number >= {minimum}, not {v!r}")
    return v


def _float(v: object, what: str, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo <= v <= hi):
        raise UsageError(f"{what} must be a number between {lo:g} and {hi:g}, not {v!r}")
    return float(v)


def with_overrides(cfg: GateConfig, **flags) -> GateConfig:
    """A copy with every flag that was given (not None) applied, then validated."""
    given = {k: v for k, v in flags.items() if v is not None}
    reps = given.get("repetitions")
    if reps is not None and "max_repetitions" not in given and reps > cfg.max_repetitions:
        given["max_repetitions"] = reps
    if "min_effect" in given:
        given["min_effect"] = {**cfg.min_effect, **given["min_effect"]}
    return validate(replace(cfg, **given))
