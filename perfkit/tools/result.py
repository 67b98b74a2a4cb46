"""What every collector returns: the profile and how the capture ended."""

from __future__ import annotations

from dataclasses import dataclass, field

from perfkit.model import Profile
from perfkit.procs.supervisor import Outcome


@dataclass
class CaptureResult:
    profile: Profile
    interrupted: bool = False  # stopped by Ctrl-C / SIGTERM / SIGHUP
    target_exited: bool = False  # an attached target went away before the end
    notes: list[str] = field(default_factory=list)
    program: Outcome | None = None  # a launched command's own outcome
    stderr: str = ""  # the tool's own diagnostics (py-spy's status lines)
