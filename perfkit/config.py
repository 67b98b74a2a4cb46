"""``[tool.perfkit]`` in pyproject.toml: the one reader of project configuration.

    [tool.perfkit]
    rate = 200                    # samples per second (cpu, top)
    duration = 20                 # seconds to record an attached process (cpu, heap)
    output_dir = "profiles"       # relative -o files go here (created, 0700)
    user_code = ["myapp/*", "src/**"]   # glob patterns of files that are "your code"
    redact = true                 # secrets on a target's command line are redacted

    [tool.perfkit.gate]           # read by perfkit.gate.config, through load_toml below
    ...

Flags always win: a value here is only a command's default (see
:func:`default_map`).  Every problem is a ``UsageError`` (exit 2) naming the file, the
key and what is allowed; unknown keys are errors, as in ``[tool.perfkit.gate]`` — a
typo must not silently do nothing.  The file is found in the working directory or the
nearest parent (:func:`find_pyproject`); ``PERFKIT_CONFIG`` names another file, and
``PERFKIT_CONFIG=`` (empty) ignores project configuration altogether.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from perfkit.errors import UsageError, unreadable

MAX_DURATION = 7 * 24 * 3600.0


@dataclass(frozen=True)
class ProjectDefaults:
    rate: int | None = None
    duration: float | None = None
    output_dir: str | None = None  # absolute (resolved against the config file's directory)
    user_code: tuple[str, ...] = ()
    redact: bool = True
    source: str | None = None  # the file the values came from
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    def to_json(self) -> dict:
        return {"rate": self.rate, "duration": self.duration, "output_dir": self.output_dir,
                "user_code": list(self.user_code), "redact": self.redact, "source": self.source}


# key -> (what it holds, the commands whose option it sets by default)
KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "rate": ("samples per second, 1-10000", ("cpu", "top")),
    # not a click default: cpu and heap record a launched program until it exits, so the
    # project's duration applies only when attaching (options.attach_duration)
    "duration": ("seconds to record an attached process (cpu, heap)", ()),
    "output_dir": ("directory for relative -o files", ()),
    "user_code": ("glob patterns of your own source files", ()),
    "redact": ("true or false: redact secrets on target command lines (--no-redact's default)", ()),
}
# sub-tables owned by a feature, each read (and checked) by that feature
TABLES = ("gate",)


# ------------------------------------------------------------------ TOML files

def load_toml(path: str | os.PathLike) -> dict:
    """A TOML file as a dict; every failure a one-line UsageError naming the file."""
    try:
        import tomllib  # Python >= 3.11
    except ImportError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise UsageError(f"cannot read {path}: Python < 3.11 needs the 'tomli' package",
                             "pip install tomli, or pass everything as flags") from None
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise unreadable(exc, path, "config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not valid TOML: not UTF-8 text") from None


def find_pyproject(start: Path | None = None) -> Path | None:
    """pyproject.toml in ``start`` (default: the working directory) or a parent."""
    try:
        here = (start or Path.cwd()).resolve()
    except OSError:  # the working directory was removed
        return None
    for d in (here, *here.parents):
        p = d / "pyproject.toml"
        if p.is_file():
            return p
    return None


def project_file() -> Path | None:
    """The project config file: ``PERFKIT_CONFIG`` (empty: none), else the nearest pyproject.toml."""
    env = os.environ.get("PERFKIT_CONFIG")
    if env is not None:
        return Path(env) if env.strip() else None
    return find_pyproject()


def perfkit_table(doc: dict, path: Path) -> dict | None:
    """``[tool.perfkit]`` of a parsed pyproject.toml (or any file with a [tool] table)."""
    tool = doc.get("tool", {})
    if not isinstance(tool, dict):
        raise UsageError(f"{path}: [tool] must be a table")
    section = tool.get("perfkit")
    if section is not None and not isinstance(section, dict):
        raise UsageError(f"{path}: [tool.perfkit] must be a table")
    return section


# ------------------------------------------------------------------ project defaults

_cache: dict[str, ProjectDefaults] = {}


def load(path: str | os.PathLike | None = None) -> ProjectDefaults:
    """The project defaults from ``path`` (or :func:`project_file`); all-empty when absent."""
    p = Path(path) if path is not None else project_file()
    if p is None:
        return ProjectDefaults()
    key = str(p.resolve()) if p.exists() else str(p)
    try:
        mtime = p.stat().st_mtime_ns
    except OSError:
        mtime = 0
    cached = _cache.get(f"{key}:{mtime}")
    if cached is not None:
        return cached
    section = perfkit_table(load_toml(p), p)
    out = parse(section or {}, where=f"{p} [tool.perfkit]", base_dir=p.parent)
    out = ProjectDefaults(**{**out.__dict__, "source": str(p)})
    _cache[f"{key}:{mtime}"] = out
    return out


def parse(section: dict, *, where: str = "[tool.perfkit]", base_dir: Path | None = None) -> ProjectDefaults:
    if not isinstance(section, dict):
        raise UsageError(f"{where} must be a table")
    known = set(KEYS) | set(TABLES)
    extra = sorted(set(section) - known)
    if extra:
        raise UsageError(f"{where}: unknown key {extra[0]!r}", f"known keys: {', '.join(sorted(known))}")
    values: dict = {"raw": dict(section)}
    if "rate" in section:
        v = section["rate"]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 10000:
            raise UsageError(f"{where} rate must be a whole number of samples per second, 1-10000, not {v!r}")
        values["rate"] = v
    if "duration" in section:
        v = section["duration"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or not 0.1 <= v <= MAX_DURATION:
            raise UsageError(f"{where} duration must be seconds between 0.1 and {MAX_DURATION:g}, not {v!r}")
        values["duration"] = float(v)
    if "output_dir" in section:
        v = section["output_dir"]
        if not isinstance(v, str) or not v.strip():
            raise UsageError(f"{where} output_dir must be a non-empty string (a directory), not {v!r}")
        d = Path(os.path.expanduser(v))
        if not d.is_absolute() and base_dir is not None:
            d = base_dir / d
        values["output_dir"] = str(d)
    if "user_code" in section:
        v = section["user_code"]
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
            raise UsageError(f"{where} user_code must be a list of glob patterns, e.g. [\"myapp/*\"], not {v!r}")
        values["user_code"] = tuple(v)
    if "redact" in section:
        v = section["redact"]
        if not isinstance(v, bool):
            raise UsageError(f"{where} redact must be true or false, not {v!r}")
        values["redact"] = v
    for t in TABLES:
        if t in section and not isinstance(section[t], dict):
            raise UsageError(f"{where}: {t} must be a table ([tool.perfkit.{t}])")
    return ProjectDefaults(**values)


# commands with a --no-redact flag take [tool.perfkit] redact as its default
REDACTING = ("serve", "cpu", "heap", "top", "threads", "leaks", "triage")


def default_map(defaults: ProjectDefaults) -> dict[str, dict]:
    """Per-command option defaults for click's ``default_map``: flags still win."""
    out: dict[str, dict] = {}
    for key, (_, commands) in KEYS.items():
        value = getattr(defaults, key)
        if value is None:
            continue
        for cmd in commands:
            out.setdefault(cmd, {})[key] = value
    if "redact" in defaults.raw:  # only when the project says so: each command keeps its own default otherwise
        for cmd in REDACTING:  # click ignores a default for an option a command does not have
            out.setdefault(cmd, {})["no_redact"] = not defaults.redact
    return out


__all__ = ["ProjectDefaults", "load", "parse", "load_toml", "find_pyproject", "project_file", "perfkit_table",
           "default_map", "KEYS", "TABLES"]
