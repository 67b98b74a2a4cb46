"""A precondition and what its failure means: :class:`Check`, :func:`require`, :func:`verdict`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from perfkit.errors import PerfkitError, ToolMissing


@dataclass(frozen=True)
class Check:
    """One precondition: what was checked, whether it holds, and the fix when it does not."""

    name: str
    ok: bool
    detail: str = ""
    hint: str | None = None
    error: type[PerfkitError] = ToolMissing  # what a failure raises (its exit code)
    needs: tuple[str, ...] = ()  # commands that cannot work without it; () = advice only

    @property
    def status(self) -> str:
        if self.ok:
            return "ok"
        return "fail" if self.needs else "warn"

    def to_json(self) -> dict:
        return {"name": self.name, "ok": self.ok, "status": self.status, "detail": self.detail, "hint": self.hint,
                "needs": list(self.needs), "exit_code": None if self.ok else self.error.exit_code}

    def raise_it(self, others: Sequence["Check"] = ()) -> None:
        hint = self.hint or ""
        if others:
            more = "; ".join(o.detail for o in others[:3]) + ("; …" if len(others) > 3 else "")
            hint = (hint + " — " if hint else "") + f"also: {more}"
        raise self.error(self.detail, hint or None)


def require(checks: list[Check], command: str | None = None) -> None:
    """Raise the first failed check (those ``command`` needs, or any), naming the others."""
    failed = [c for c in checks if not c.ok and (command is None or command in c.needs)]
    if failed:
        failed[0].raise_it(failed[1:])


def verdict(checks: list[Check], command: str) -> tuple[bool, int]:
    """(would ``command`` work, the exit code its first failing precondition means)."""
    failed = [c for c in checks if not c.ok and command in c.needs]
    return (not failed, failed[0].error.exit_code if failed else 0)
