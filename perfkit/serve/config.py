"""The options of `perfkit serve`, checked before anything listens.

Secure by default: a loopback address needs nothing; any other address (0.0.0.0, ::,
a host's IP or name) refuses to start without ``--token-file``.  The token is read once
(whitespace stripped, at least 16 characters) and compared in constant time.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field

from perfkit.errors import UsageError

DEFAULT_LISTEN = "127.0.0.1:6060"
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_RESERVED_LABELS = {"pid", "cmd", "thread_id", "thread_name", "job", "instance", "resource", "kind", "state",
                    "proto", "verdict", "reason", "endpoint", "code", "condition"}


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 6060
    token: bytes | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    allow_heap: bool = False
    max_seconds: int = 60
    heap_seconds: int = 10  # heap/allocs without ?seconds: a capture this long
    rate: int = 100  # CPU profile sampling rate (Hz), like Go's
    interval: float = 5.0  # resource sampling interval
    window: float = 600.0  # leak analysis window
    gil_rate: float = 0.0  # py-spy dumps per second for GIL/idle shares (0: off)
    labels: dict[str, str] = field(default_factory=dict)
    max_response: int = 64 << 20  # bytes; larger bodies are refused (500) rather than sent
    max_connections: int = 32  # concurrent requests; more get 503
    redact: bool = True
    access_log: str | None = "-"  # "-": stderr; None: off; else a file path
    alert_webhook: bool = False

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    def url(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{port or self.port}"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` (all addresses) → (host, port)."""
    text = text.strip()
    m = re.match(r"^\[([^\]]+)\]:(\d+)$", text) or re.match(r"^([^:]*):(\d+)$", text)
    if not m:
        raise UsageError(f"--listen {text!r} is not HOST:PORT", "e.g. --listen 127.0.0.1:6060 or --listen [::1]:6060")
    host, port = m.group(1), int(m.group(2))
    if not 0 <= port <= 65535:
        raise UsageError(f"--listen port {port} is out of range (0-65535)")
    return host or "0.0.0.0", port


def is_loopback(host: str) -> bool:
    """True only when every address ``host`` names is a loopback address."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addrs = {str(i[4][0]) for i in infos}
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def read_token(path: str) -> bytes:
    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            raw = f.read(4097)
    except OSError as exc:
        raise UsageError(f"cannot read --token-file {path}: {exc.strerror or exc}") from None
    token = raw.strip()
    if len(raw) > 4096 or b"\n" in token or b"\r" in token:
        raise UsageError(f"--token-file {path} must hold one token on one line (at most 4 KiB)")
    if len(token) < 16:
        raise UsageError(f"the token in {path} is too short ({len(token)} characters; at least 16)",
                         "make one with: head -c 32 /dev/urandom | base64 > token; chmod 600 token")
    if st.st_mode & 0o077:
        raise UsageError(f"--token-file {path} is readable by others (mode {st.st_mode & 0o777:o})",
                         f"chmod 600 {path}")
    return token


def parse_labels(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not _LABEL_NAME.match(name) or name.startswith("__"):
            raise UsageError(f"--label {item!r} is not NAME=VALUE with a Prometheus label name",
                             "names match [a-zA-Z_][a-zA-Z0-9_]*, e.g. --label service=checkout")
        if name in _RESERVED_LABELS:
            raise UsageError(f"--label {name} is a label perfkit sets itself", "pick another name, e.g. service")
        out[name] = value
    return out


def check_tls(cert: str | None, key: str | None) -> None:
    if bool(cert) != bool(key):
        raise UsageError("--tls-cert and --tls-key go together")
    if cert:
        import ssl

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot load the TLS certificate/key ({cert}, {key}): {exc}") from None


def check_listen_security(cfg: ServeConfig) -> None:
    if not cfg.loopback and cfg.token is None:
        raise UsageError(f"refusing to listen on {cfg.host}:{cfg.port} without a token: pprof endpoints expose "
                         "stacks, memory and command lines",
                         "give --token-file FILE (clients send Authorization: Bearer TOKEN; add --tls-cert/--tls-key "
                         "off-host), or listen on loopback (127.0.0.1)")
