"""The base of triage's typed facts: frozen dataclasses that serialise themselves.

Every fact type is a frozen dataclass deriving from :class:`Fact`.  ``to_json()`` turns
it into the JSON the bundle has always held: one key per field, nested facts turned into
their own JSON, and fields named in ``_omit_none`` / ``_omit_false`` left out when they
are ``None`` / ``False`` (the keys that appear only when the fact is known).  What could
not be read is a :class:`Problem`; what was collected or failed, per step, an
:class:`Event` (the manifest's rows).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar


def to_json(value: Any) -> Any:
    """Facts, mappings and sequences of them as plain JSON values."""
    if isinstance(value, Fact):
        return value.to_json()
    if isinstance(value, Mapping):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


class Fact:
    """Mixin for frozen fact dataclasses: ``to_json()`` from the fields."""

    _omit_none: ClassVar[frozenset[str]] = frozenset()
    _omit_false: ClassVar[frozenset[str]] = frozenset()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if (v is None and f.name in self._omit_none) or (v is False and f.name in self._omit_false):
                continue
            out[f.name] = to_json(v)
        return out


@dataclass(frozen=True)
class Problem(Fact):
    """Something that could not be read, and whether more rights would have helped."""

    what: str
    error: str
    needs_privilege: bool = False


@dataclass(frozen=True)
class Event(Fact):
    """One manifest row: a collection step for a pid (or the host) and how it ended."""

    what: str
    status: str  # ok | failed | timeout | vanished | skipped | stopped
    pid: int | None = None
    error: str | None = None
    needs_privilege: bool = False
    seconds: float | None = None

    _omit_none = frozenset({"pid", "error", "seconds"})
    _omit_false = frozenset({"needs_privilege"})

    @property
    def ok(self) -> bool:
        return self.status == "ok"


__all__ = ["Fact", "Problem", "Event", "to_json"]
