"""The HTTP(S) server of `perfkit serve` — the only code in perfkit that listens.

Standard library only (``http.server.ThreadingHTTPServer`` + ``ssl``):

* **auth**: with a token, every request (every path) needs ``Authorization: Bearer
  TOKEN``, compared in constant time (``hmac.compare_digest``); otherwise 401 with
  ``WWW-Authenticate: Bearer``;
* **TLS**: the handshake runs in the request's own thread (a slow client never blocks
  accepting), with a timeout;
* **GET only** (405 otherwise; POST only on the Alertmanager webhook when enabled,
  body at most 1 MiB);
* **bounds**: at most ``MAX_CONNECTIONS`` open connections (more are closed at once)
  and ``max_connections`` requests in progress (503 + Retry-After),
  request lines/headers as http.server limits them, a socket timeout per connection,
  responses above ``max_response`` refused;
* **access log**: time, client, method, path (secret-looking query values masked),
  status, bytes, duration, user agent — never a header value or the token.
"""

from __future__ import annotations

import hmac
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from perfkit.render.escape import plain
from perfkit.serve.endpoints import Response, text

MAX_BODY = 1 << 20
MAX_CONNECTIONS = 128  # open connections (threads); more are closed at accept
_SECRET_QUERY = re.compile(r"((?:^|&)[^=&]*(?:token|secret|pass|key|auth)[^=&]*=)[^&]*", re.I)


class AccessLog:
    def __init__(self, target: str | None) -> None:
        self._lock = threading.Lock()
        self._fh = None
        if target == "-":
            self._fh = sys.stderr
        elif target:
            import os

            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._fh = os.fdopen(fd, "a", buffering=1)

    def write(self, client: str, method: str, path: str, status: int, size: int, seconds: float, agent: str) -> None:
        if self._fh is None:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        base, _, query = path.partition("?")
        shown = plain(base) + ("?" + plain(_SECRET_QUERY.sub(r"\1REDACTED", query)) if query else "")
        line = f"{stamp} {client} {plain(method)} {shown} {status} {size} {seconds:.3f}s \"{plain(agent)[:120]}\"\n"
        with self._lock:
            try:
                self._fh.write(line)
                self._fh.flush()
            except (OSError, ValueError):
                pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "perfkit-serve"
    sys_version = ""
    timeout = 30  # seconds a connection may sit idle or dribble a request
    server: "Server"

    def log_message(self, fmt, *args) -> None:  # http.server's own lines: replaced by AccessLog
        pass

    def _send(self, resp: Response, endpoint: str, t0: float) -> None:
        body = resp.body
        if len(body) > self.server.cfg.max_response:
            resp = text(500, f"response too large ({len(body)} bytes > {self.server.cfg.max_response})")
            body = resp.body
        self.send_response_only(resp.status)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
        seconds = time.monotonic() - t0
        m = self.server.metrics
        if m is not None:
            m.requests.labels(endpoint, str(resp.status)).inc()
            m.request_seconds.labels(endpoint).observe(seconds)
        headers = getattr(self, "headers", None)
        self.server.log.write(self.client_address[0], getattr(self, "command", None) or "-",
                              getattr(self, "path", None) or "-", resp.status, len(body), seconds,
                              headers.get("User-Agent", "") if headers is not None else "")

    def _authorized(self) -> bool:
        token = self.server.cfg.token
        if token is None:
            return True
        got = self.headers.get("Authorization", "")
        scheme, _, cred = got.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(cred.strip().encode("utf-8", "replace"), token)

    def _handle(self) -> None:
        t0 = time.monotonic()
        if not self._authorized():
            self.close_connection = True
            return self._send(text(401, "unauthorized: send Authorization: Bearer TOKEN",
                                   **{"WWW-Authenticate": 'Bearer realm="perfkit"'}), "unauthorized", t0)
        body = None
        if self.command == "POST":
            try:
                n = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                n = -1
            if n < 0 or n > MAX_BODY:
                self.close_connection = True
                return self._send(text(413, f"request body must be 0..{MAX_BODY} bytes"), "too-large", t0)
            body = self.rfile.read(n)
        elif self.command != "GET":
            self.close_connection = True
            return self._send(text(405, "only GET is served here", Allow="GET"), "method", t0)
        if not self.server.slots.acquire(blocking=False):
            return self._send(text(503, "too many requests in progress", **{"Retry-After": "1"}), "busy", t0)
        with self.server.inflight_lock:
            self.server.inflight += 1
        try:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query, keep_blank_values=True)
            endpoint, resp = self.server.endpoints.route(self.command, parts.path, query, self.headers, body)
        except Exception as exc:  # a bug: answer, keep serving
            endpoint, resp = "error", text(500, f"internal error: {type(exc).__name__}")
        finally:
            self.server.slots.release()
        try:
            self._send(resp, endpoint, t0)
        finally:
            with self.server.inflight_lock:
                self.server.inflight -= 1

    do_GET = _handle
    do_POST = _handle
    do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _handle

    def send_error(self, code, message=None, explain=None) -> None:
        # http.server's own errors (bad request line, headers too long): plain text, logged
        self.close_connection = True
        try:
            self._send(text(code, message or self.responses.get(code, ("error",))[0]), "bad-request", time.monotonic())
        except Exception:
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, cfg, endpoints, metrics) -> None:
        self.cfg, self.endpoints, self.metrics = cfg, endpoints, metrics
        self.log = AccessLog(cfg.access_log)
        self.slots = threading.BoundedSemaphore(cfg.max_connections)
        self.inflight = 0
        self.connections = 0
        self.inflight_lock = threading.Lock()
        self.ssl_ctx = None
        if cfg.tls_cert:
            import ssl

            self.ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ssl_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            self.ssl_ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        self.address_family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
        super().__init__((cfg.host, cfg.port), Handler)

    def server_bind(self) -> None:
        import socketserver

        if self.address_family == socket.AF_INET6:  # [::] listens on IPv6 only, never by surprise on IPv4
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        socketserver.TCPServer.server_bind(self)  # not HTTPServer's: its getfqdn() can hang on DNS
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in progress (True) or ``timeout`` passed (False)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.inflight_lock:
                if self.inflight == 0:
                    return True
            time.sleep(0.05)
        return False

    def process_request(self, request, client_address) -> None:
        with self.inflight_lock:
            full = self.connections >= MAX_CONNECTIONS
            if not full:
                self.connections += 1
        if full:  # idle keep-alive or slow clients must not pile up threads
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            with self.inflight_lock:
                self.connections -= 1
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.inflight_lock:
                self.connections -= 1

    def finish_request(self, request, client_address) -> None:
        if self.ssl_ctx is not None:
            import ssl

            request.settimeout(10)
            try:
                request = self.ssl_ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                request.close()
                return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address) -> None:  # no tracebacks on stderr for a dropped client
        pass

    @property
    def port(self) -> int:
        return self.server_address[1]
