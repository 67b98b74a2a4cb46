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
    p = Path(path)
    if not p.exists():
        raise UsageError(f"no baseline at {p}",
                         "record one first: perfkit gate record   (or use perfkit gate compare --base-cmd ... "
                         "--head-cmd ..., which needs no baseline)")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFormatError(f"cannot read baseline {p}: {exc}") from None
    except ValueError as exc:
        raise InputFormatError(f"baseline {p} is not valid JSON: {exc}", "record it again: perfkit gate record") from None
    if not isinstance(doc, dict) or doc.get("perfkit_gate_baseline") is None:
        raise InputFormatError(f"{p} is not a perfkit gate baseline", "record one with: perfkit gate record")
    if doc["perfkit_gate_baseline"] != FORMAT_VERSION:
        raise InputFormatError(f"baseline {p} has format version {doc['perfkit_gate_baseline']!r}; "
                               f"this perfkit reads version {FORMAT_VERSION}", "record it again: perfkit gate record")
    benches = doc.get("benchmarks")
    if not isinstance(benches, dict):
        raise InputFormatError(f"baseline {p} has no benchmarks table")
    for name, b in benches.items():
        metrics = b.get("metrics") if isinstance(b, dict) else None
        if not isinstance(metrics, dict) or not all(
                isinstance(v, list) and all(isinstance(x, (int, float)) for x in v) for v in metrics.values()):
            raise InputFormatError(f"baseline {p}: benchmark {name!r} has no valid metric values")
    return Baseline(environment=doc.get("environment") or {}, benchmarks=benches, created=doc.get("created", ""),
                    perfkit_version=doc.get("perfkit_version", ""), settings=doc.get("settings") or {})
