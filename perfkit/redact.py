"""Secrets out of command lines taken from a target (core: no perfkit imports).

``redact_argv(argv)`` returns a copy with the values of password/token/secret/key/
auth-like flags (``--token=x``, ``--token x``, ``-p x``), ``NAME=value`` pairs whose
name looks secret, credentials in URLs (``scheme://user:pass@host``) and
``Authorization:`` header values replaced by ``REDACTED``, and whether anything changed.
"""

from __future__ import annotations

import re

MASK = "REDACTED"
_SECRET_WORD = r"(pass(word|wd)?|pwd|token|secret|api[-_]?key|access[-_]?key|private[-_]?key|key|auth|authori[sz]ation|authentication|" \
               r"credentials?|cookie|session[-_]?id|bearer|signature|dsn)"
_SECRET_NAME = re.compile(rf"(^|[-_.]){_SECRET_WORD}$", re.I)
_FLAG = re.compile(r"^(-{1,2})([A-Za-z0-9][\w.-]*)$")
_FLAG_EQ = re.compile(r"^(-{1,2}[A-Za-z0-9][\w.-]*)=(.*)$", re.S)
_PAIR = re.compile(r"^([A-Za-z_][\w.-]*)=(.*)$", re.S)
_URL_CRED = re.compile(r"([a-z][a-z0-9+.-]*://)([^/@:\s]*):([^/@\s]*)@", re.I)
_AUTH_HEADER = re.compile(r"^((proxy-)?authorization\s*:\s*)(.+)$", re.I | re.S)
_SHORT_SECRET = {"-p"}  # mysql -p PASS, sshpass -p PASS


def _secret(name: str) -> bool:
    return bool(_SECRET_NAME.search(name.lstrip("-")))


def redact_text(text: str) -> tuple[str, bool]:
    """One argument: URL credentials and Authorization headers."""
    m = _AUTH_HEADER.match(text)
    if m:
        return m.group(1) + MASK, True
    new = _URL_CRED.sub(lambda mm: f"{mm.group(1)}{mm.group(2)}:{MASK}@", text)
    return new, new != text


def redact_argv(argv: list[str]) -> tuple[list[str], bool]:
    out: list[str] = []
    changed = False
    mask_next = False
    for arg in argv:
        if mask_next:
            mask_next = False
            if not arg.startswith("-"):
                out.append(MASK)
                changed = True
                continue
        m = _FLAG_EQ.match(arg)
        if m and _secret(m.group(1)):
            out.append(f"{m.group(1)}={MASK}")
            changed = True
            continue
        m = _FLAG.match(arg)
        if m and (_secret(m.group(2)) or arg in _SHORT_SECRET):
            out.append(arg)
            mask_next = True
            continue
        m = _PAIR.match(arg)
        if m and _secret(m.group(1)):
            out.append(f"{m.group(1)}={MASK}")
            changed = True
            continue
        new, hit = redact_text(arg)
        out.append(new)
        changed |= hit
    return out, changed


__all__ = ["MASK", "redact_argv", "redact_text"]
