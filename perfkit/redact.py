"""Secrets out of text taken from a target (core: imports nothing of perfkit).

Command lines of the processes perfkit looks at end up in profiles, reports, bundles
and ``--json``; they often carry credentials (``--token=…``, ``DB_PASSWORD=…``,
``postgres://user:pw@host``, ``-H 'Authorization: Bearer …'``).  Everything perfkit
writes passes them through here first; ``--no-redact`` (:func:`set_enabled`) keeps them.

What is replaced by ``REDACTED`` (the name of the thing is kept, so a reader still sees
*that* a token was given):

* values of flags whose name says secret — ``--token X``, ``--token=X``, ``--db-password``,
  ``--api-key``, ``--client-secret``, ``--auth``, ``--key`` … (the last word of the flag
  is password/passwd/pwd/pass/secret/token/key/auth/authorization/credential(s)/cookie/
  session/signature/bearer/dsn, or it contains password/passwd/secret/credential/apikey/
  api_key/access_key/private_key/token as a word part);
* ``NAME=value`` pairs (arguments, and words of free text) with such a name:
  ``DB_PASSWORD=x``, ``AWS_SECRET_ACCESS_KEY=x``, ``GITHUB_TOKEN=x``, ``PGPASSWORD=x``;
* credentials in URLs: ``scheme://user:REDACTED@host`` (also ``scheme://token@host`` when
  the user part is long and random-looking is NOT touched: only ``user:password@``);
* HTTP ``Authorization:`` / ``Proxy-Authorization:`` / ``Cookie:`` / ``X-Api-Key:`` /
  ``X-Auth-Token:`` header values;
* short password flags only where the program is known to mean a password by them:
  ``mysql -pSECRET`` (and mysqldump, mysqladmin, mariadb…), ``sshpass -p SECRET``,
  ``redis-cli -a SECRET``; ``-p`` elsewhere (ports, paths) is left alone.

:func:`redact_argv` works on an argument list, :func:`redact_text` on free text (a
command line joined with spaces, a message).  Both return ``(new, changed)``.
"""

from __future__ import annotations

import os
import re

MASK = "REDACTED"

_LAST_WORD = {"password", "passwd", "pwd", "pass", "passphrase", "secret", "token", "key", "apikey", "auth",
              "authorization", "credential", "credentials", "cookie", "session", "sessionid", "signature", "sig",
              "bearer", "dsn", "jwt", "otp", "pin"}
_ANYWHERE = re.compile(r"pass(word|wd|phrase)|secret|credential|api[-_.]?key|access[-_.]?key|private[-_.]?key|"
                       r"token(?![a-z])|auth[-_.]?token|client[-_.]?secret", re.I)
_NOT_SECRET_LAST = {"file", "path", "dir", "url", "type", "name", "id", "length", "size", "count", "env", "prefix",
                    "format", "mode", "timeout", "ttl", "algorithm", "version", "limit", "store"}
_FLAG = re.compile(r"^(-{1,2})([A-Za-z][\w.-]*)$")
_FLAG_EQ = re.compile(r"^(-{1,2}[A-Za-z][\w.-]*)(=)(.*)$", re.S)
_PAIR = re.compile(r"^([A-Za-z_][\w.-]*)(=)(.+)$", re.S)
_URL_CRED = re.compile(r"\b([a-z][a-z0-9+.-]*://)([^/@:\s]+):([^/@\s]+)@", re.I)
_HEADER = re.compile(r"^\s*((?:proxy-)?authorization|cookie|set-cookie|x-api-key|x-auth-token|api-key|"
                     r"private-token)(\s*:\s*)(.+)$", re.I | re.S)
_HEADER_IN_TEXT = re.compile(r"((?:proxy-)?authorization|cookie|x-api-key|x-auth-token|private-token)(\s*:\s*)"
                             r"((?:bearer|basic|token|digest)\s+)?([^\s'\"]+)", re.I)
_WORD_SPLIT = re.compile(r"[-_.]+")
# program -> short flags that take a password: "attached" (-pSECRET only), "both" (-p SECRET too)
_SHORT = {
    "mysql": {"-p": "attached"}, "mysqldump": {"-p": "attached"}, "mysqladmin": {"-p": "attached"},
    "mysqlimport": {"-p": "attached"}, "mysqlcheck": {"-p": "attached"}, "mysqlshow": {"-p": "attached"},
    "mariadb": {"-p": "attached"}, "mariadb-dump": {"-p": "attached"}, "mariadb-admin": {"-p": "attached"},
    "sshpass": {"-p": "both"}, "redis-cli": {"-a": "both"}, "valkey-cli": {"-a": "both"},
    "htpasswd": {}, "smbclient": {"-P": "none"},
}

_enabled = [True]


def set_enabled(on: bool) -> None:
    """``--no-redact`` turns redaction off for the rest of the run."""
    _enabled[0] = bool(on)


def enabled() -> bool:
    return _enabled[0]


def secret_name(name: str) -> bool:
    """Does a flag or variable name (``--db-password``, ``GITHUB_TOKEN``) say it holds a secret?"""
    bare = name.lstrip("-").strip()
    if not bare:
        return False
    words = [w.lower() for w in _WORD_SPLIT.split(bare) if w]
    if not words:
        return False
    if words[-1] in _NOT_SECRET_LAST:
        return False  # --key-file, --token-path, TOKEN_URL: where the secret is, not the secret
    if words[-1] in _LAST_WORD:
        return True
    return bool(_ANYWHERE.search(bare))


def _program(argv: list[str]) -> str:
    if not argv:
        return ""
    name = os.path.basename(argv[0])
    if re.match(r"^(python|pypy)\d*(\.\d+)?$", name) and len(argv) > 2 and argv[1] == "-m":
        return argv[2]
    return name


def _value_text(text: str) -> tuple[str, bool]:
    """URL credentials and a header value inside one argument or word."""
    m = _HEADER.match(text)
    if m:
        return m.group(1) + m.group(2) + MASK, True
    new = _URL_CRED.sub(lambda mm: f"{mm.group(1)}{mm.group(2)}:{MASK}@", text)
    return new, new != text


def redact_argv(argv: list[str] | tuple[str, ...]) -> tuple[list[str], bool]:
    """A copy of ``argv`` with secret values replaced by ``REDACTED``, and whether any were."""
    argv = [str(a) for a in argv]
    out: list[str] = []
    changed = False
    mask_next = False
    short = _SHORT.get(_program(argv), {})
    for i, arg in enumerate(argv):
        if mask_next:
            mask_next = False
            if arg and not arg.startswith("-"):
                out.append(MASK)
                changed = True
                continue
        if i == 0 and not arg.startswith("-"):  # the program (or an env-style NAME=value before it)
            m = _PAIR.match(arg)
            if m and secret_name(m.group(1)):
                out.append(f"{m.group(1)}={MASK}")
                changed = True
            else:
                new, hit = _value_text(arg)
                out.append(new)
                changed |= hit
            continue
        for flag, how in short.items():  # mysql -pSECRET, sshpass -p SECRET, redis-cli -a SECRET
            if arg.startswith(flag) and len(arg) > len(flag) and how in ("attached", "both"):
                out.append(flag + MASK)
                changed = True
                break
            if arg == flag and how == "both":
                out.append(arg)
                mask_next = True
                break
        else:
            m = _FLAG_EQ.match(arg)
            if m and secret_name(m.group(1)):
                out.append(f"{m.group(1)}={MASK}")
                changed = True
                continue
            if m:  # --header=Authorization: …, --url=scheme://u:p@h
                new, hit = _value_text(m.group(3))
                out.append(f"{m.group(1)}={new}")
                changed |= hit
                continue
            m = _FLAG.match(arg)
            if m and secret_name(m.group(2)):
                out.append(arg)
                mask_next = True  # its value is the next argument (unless that is another flag)
                continue
            m = _PAIR.match(arg)
            if m and secret_name(m.group(1)):
                out.append(f"{m.group(1)}={MASK}")
                changed = True
                continue
            new, hit = _value_text(arg)
            out.append(new)
            changed |= hit
            continue
    return out, changed


_TOKEN = re.compile(r"\S+")


def redact_text(text: str) -> tuple[str, bool]:
    """Free text (a command line joined by spaces, a message): each word as an argument,
    plus header values and URL credentials anywhere.  Whitespace is kept as it was."""
    if not text:
        return text, False
    words = _TOKEN.findall(text)
    new_words, changed = redact_argv(words)
    if changed:
        it = iter(new_words)
        text = _TOKEN.sub(lambda _m: next(it), text)
    new = _HEADER_IN_TEXT.sub(lambda m: m.group(1) + m.group(2) + (m.group(3) or "") + MASK
                              if m.group(4) != MASK else m.group(0), text)
    new = _URL_CRED.sub(lambda mm: f"{mm.group(1)}{mm.group(2)}:{MASK}@", new)
    return new, changed or new != text


# --------------------------------------------------------------- honouring --no-redact


def argv(args: list[str] | tuple[str, ...]) -> tuple[list[str], bool]:
    """:func:`redact_argv` unless redaction is off (``--no-redact``)."""
    if not _enabled[0]:
        return [str(a) for a in args], False
    return redact_argv(args)


def text(value: str | None) -> tuple[str | None, bool]:
    """:func:`redact_text` unless redaction is off (``--no-redact``)."""
    if value is None or not _enabled[0]:
        return value, False
    return redact_text(value)


def shown(value: str | None) -> str | None:
    """Just the (possibly) redacted text."""
    return text(value)[0]


__all__ = ["MASK", "redact_argv", "redact_text", "secret_name", "set_enabled", "enabled", "argv", "text", "shown"]
