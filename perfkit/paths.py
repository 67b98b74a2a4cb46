"""How file paths are shown: one style everywhere (JSON keeps full paths)."""

from __future__ import annotations

import re

_STDLIB = re.compile(r"/lib/python\d\.\d+/(.*)$")


def short_path(path: str) -> str:
    """Trim long site-packages / stdlib prefixes for display (JSON keeps full paths)."""
    for marker in ("/site-packages/", "/dist-packages/"):
        if marker in path:
            return path.split(marker, 1)[1]
    m = _STDLIB.search(path)
    if m:
        return m.group(1)
    return path
