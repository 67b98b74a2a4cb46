"""The baseline file: plain JSON, meant to be committed next to the code.

    {"perfkit_gate_baseline": 1, "perfkit_version": "...", "created": "...",
     "environment": {"python": "3.11.2 (CPython)", "cpu_model": "...", "cpus": 2,
                     "machine": "x86_64", "system": "Linux"},
     "benchmarks": {"NAME": {"command": [...], "metrics": {"cpu": [0.21, ...], ...},
                             "profiles": ["collapsed stacks of one py-spy run", ...] | null}}}

A baseline recorded on another machine (CPU model, CPU count, architecture or Python
differ) still compares, with a warning: time and RSS may shift with the hardware;
instruction and allocation counts mostly do not.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

from perfkit.errors import InputFormatError, UsageError

FORMAT_VERSION = 1
_MACHINE_KEYS = ("cpu_model", "cpus", "machine", "python")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict:
    from perfkit import __version__

    return {
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count() or 0,
        "machine": platform.machine(),
        "system": platform.system(),
        "perfkit_version": __version__,
    }


def machine_differences(recorded: dict, current: dict) -> list[str]:
    """Human lines naming each machine fact that differs (empty: same machine type)."""
    out = []
    for key in _MACHINE_KEYS:
        a, b = recorded.get(key), current.get(key)
        if a is not None and a != b:
            out.append(f"{key.replace('_', ' ')}: baseline {a!r}, now {b!r}")
    return out


@dataclass
class Baseline:
    environment: dict
    benchmarks: dict[str, dict] = field(default_factory=dict)
    created: str = ""
    perfkit_version: str = ""
    settings: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"perfkit_gate_baseline": FORMAT_VERSION, "perfkit_version": self.perfkit_version,
                "created": self.created, "environment": self.environment, "settings": self.settings,
                "benchmarks": self.benchmarks}


def new(settings: dict) -> Baseline:
    env = environment()
    return Baseline(environment=env, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    perfkit_version=env["perfkit_version"], settings=settings)


def write(baseline: Baseline, path: str | os.PathLike) -> Path:
    from perfkit.fileio import atomic_write, private_mkdir

    p = Path(path)
    if not p.parent.exists():
        private_mkdir(p.parent)
    text = json.dumps(baseline.to_json(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    return atomic_write(p, text)


def read(path: str | os.PathLike) -> Baseline:
    """Read and validate a baseline; any problem is exit 2 with the exact place named."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"no baseline at {p}",
                         "record one first: perfkit gate record   (or use perfkit gate compare --base-cmd ... "
                         "--head-cmd ..., which needs no baseline)")
    if p.is_dir():
        raise InputFormatError(f"baseline {p} is a directory", "give the baseline file (perfkit gate record writes it)")
    try:
        if p.stat().st_size > MAX_BYTES:
            raise InputFormatError(f"baseline {p} is larger than {MAX_BYTES >> 20} MiB: not a perfkit gate baseline",
                                   RECORD_HINT)
        doc = json.loads(p.read_text(encoding="utf-8"), parse_constant=_no_constants)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFormatError(f"cannot read baseline {p}: {exc}") from None
    except _Constant as exc:
        raise InputFormatError(f"baseline {p} holds {exc.args[0]}, which is not a measurement", RECORD_HINT) from None
    except (ValueError, RecursionError) as exc:
        raise InputFormatError(f"baseline {p} is not valid JSON: {exc}", RECORD_HINT) from None
    validate(doc, p)
    return Baseline(environment=doc.get("environment") or {}, benchmarks=doc["benchmarks"],
                    created=doc.get("created", ""), perfkit_version=doc.get("perfkit_version", ""),
                    settings=doc.get("settings") or {})


MAX_BYTES = 64 << 20
RECORD_HINT = "record it again: perfkit gate record"
_TOP_KEYS = {"perfkit_gate_baseline", "perfkit_version", "created", "environment", "settings", "benchmarks"}
_BENCH_KEYS = {"command", "metrics", "profiles",
               # written by the pytest plugin (perfkit.gate.pytest_session)
               "source", "sessions", "raw", "calls_per_round"}


class _Constant(ValueError):
    pass


def _no_constants(name: str):
    raise _Constant(name)  # NaN, Infinity, -Infinity: Python's json accepts them, a measurement cannot be one


def _bad(p: Path, what: str) -> InputFormatError:
    return InputFormatError(f"baseline {p}: {what}", RECORD_HINT)


def validate(doc, p: Path) -> None:
    """Every field a check relies on, with its type and range: a baseline that would silently
    switch the gate off (NaN, no values, unknown metrics) is refused."""
    import math

    from perfkit.gate.metrics import METRICS, known_list

    if not isinstance(doc, dict) or "perfkit_gate_baseline" not in doc:
        raise InputFormatError(f"{p} is not a perfkit gate baseline", "record one with: perfkit gate record")
    version = doc["perfkit_gate_baseline"]
    if isinstance(version, bool) or not isinstance(version, int) or version != FORMAT_VERSION:
        raise InputFormatError(f"baseline {p} has format version {version!r}; this perfkit reads version "
                               f"{FORMAT_VERSION}", RECORD_HINT)
    extra = sorted(set(doc) - _TOP_KEYS)
    if extra:
        raise _bad(p, f"unknown key(s) {', '.join(map(repr, extra))} (known: {', '.join(sorted(_TOP_KEYS))})")
    for key in ("environment", "settings"):
        if doc.get(key) is not None and not isinstance(doc[key], dict):
            raise _bad(p, f"{key} must be a table, not {type(doc[key]).__name__}")
    for key in ("perfkit_version", "created"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise _bad(p, f"{key} must be a string")
    benches = doc.get("benchmarks")
    if not isinstance(benches, dict):
        raise _bad(p, "has no benchmarks table")
    if not benches:
        raise _bad(p, "has no benchmarks: a check against it would compare nothing")
    for name, b in benches.items():
        where = f"benchmark {name!r}"
        if not name.strip():
            raise _bad(p, "a benchmark has an empty name")
        if not isinstance(b, dict):
            raise _bad(p, f"{where} is not a table")
        extra = sorted(set(b) - _BENCH_KEYS)
        if extra:
            raise _bad(p, f"{where} has unknown key(s) {', '.join(map(repr, extra))}")
        cmd = b.get("command")
        if cmd is not None and (not isinstance(cmd, list) or not all(isinstance(a, str) for a in cmd)):
            raise _bad(p, f"{where}: command must be a list of strings")
        profiles = b.get("profiles")
        if profiles is not None and (not isinstance(profiles, list) or not all(isinstance(t, str) for t in profiles)):
            raise _bad(p, f"{where}: profiles must be a list of collapsed-stack texts")
        if b.get("source") is not None and not isinstance(b["source"], str):
            raise _bad(p, f"{where}: source must be a string")
        cpr = b.get("calls_per_round")
        if cpr is not None and (isinstance(cpr, bool) or not isinstance(cpr, int) or cpr < 1):
            raise _bad(p, f"{where}: calls_per_round must be a whole number >= 1, not {cpr!r}")
        for key in ("sessions", "raw"):
            table = b.get(key)
            if table is None:
                continue
            if not isinstance(table, dict) or not all(
                    isinstance(v, list) and all(not isinstance(x, bool) and isinstance(x, (int, float))
                                                and math.isfinite(x) and x >= 0 for x in v) for v in table.values()):
                raise _bad(p, f"{where}: {key} must map metrics to lists of finite, non-negative numbers")
        metrics = b.get("metrics")
        if not isinstance(metrics, dict) or not metrics:
            raise _bad(p, f"{where} has no metric values")
        for metric, values in metrics.items():
            at = f"{where} metric {metric!r}"
            if metric not in METRICS:
                raise _bad(p, f"{at} is not a metric perfkit knows (known: {known_list()})")
            if not isinstance(values, list):
                raise _bad(p, f"{at} must be a list of measurements, not {type(values).__name__}")
            if not values:
                raise _bad(p, f"{at} has no measurements (an empty list would switch the check off)")
            for i, v in enumerate(values):
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise _bad(p, f"{at}, value {i + 1}, is {v!r}: not a number")
                if not math.isfinite(v):
                    raise _bad(p, f"{at}, value {i + 1}, is {v!r}: not a finite number")
                if v < 0:
                    raise _bad(p, f"{at}, value {i + 1}, is {v!r}: a measurement in {METRICS[metric].unit} "
                                  "cannot be negative")
