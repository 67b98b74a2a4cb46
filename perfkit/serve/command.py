"""`perfkit serve`: pprof endpoints and Prometheus metrics for Python processes."""

from __future__ import annotations

from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)

_HELP = """Serve Go-compatible /debug/pprof endpoints and Prometheus /metrics for live Python
processes, so Prometheus, Parca, Grafana Pyroscope and go tool pprof can scrape them.

\b
Targets: --pid N (repeatable), --children (their workers, followed as they come and
go), --match REGEX (command lines), or -- CMD (launch and serve).  ?pid=N picks one.
\b
Endpoints: /debug/pprof/ (index)  /debug/pprof/profile?seconds=N (CPU, py-spy)
  /debug/pprof/goroutine?debug=0|1|2 (threads)  /debug/pprof/heap, /allocs (memray,
  only with --allow-heap)  /debug/pprof/cmdline (redacted)  /metrics
  /debug/perfkit/targets  /debug/perfkit/captures  [POST /debug/perfkit/alertmanager]
\b
Secure by default: listens on 127.0.0.1:6060; any other address needs --token-file
(clients send Authorization: Bearer TOKEN; 401 otherwise) and may use TLS.  GET only;
one CPU profile per target at a time (429 + Retry-After); seconds capped by
--max-seconds; bounded responses; access log without secrets.
\b
Exit codes: 0 stopped (SIGTERM/SIGINT/SIGHUP) or the launched program exited 0;
2 usage (also: open address without a token, port in use); 3 target problem (also:
the launched program failed); 4 py-spy missing.

\b
Examples:
  perfkit serve --pid 4242
  perfkit serve --children --pid $(pgrep -o gunicorn)
  perfkit serve --listen 0.0.0.0:6060 --token-file /etc/perfkit/token --match 'celery|uvicorn'
  perfkit serve --print-rules > perfkit-rules.yml
"""


@app.command(help=_HELP, context_settings={"allow_interspersed_args": False})
def serve(
    command: Optional[List[str]] = typer.Argument(None, help="Command to launch and serve (after --)."),
    pid: Optional[List[int]] = typer.Option(None, "--pid", "-p", help="A process to serve (repeatable)."),
    children: bool = typer.Option(False, "--children", help="Also serve the Python descendants of --pid / CMD."),
    match: Optional[str] = typer.Option(None, "--match", help="Serve every Python process whose command line matches."),
    listen: str = typer.Option("127.0.0.1:6060", "--listen", help="HOST:PORT to listen on (port 0: any free)."),
    token_file: Optional[str] = typer.Option(None, "--token-file", help="Require Authorization: Bearer <token in "
                                                                        "file>."),
    tls_cert: Optional[str] = typer.Option(None, "--tls-cert", help="Serve HTTPS with this certificate (PEM)."),
    tls_key: Optional[str] = typer.Option(None, "--tls-key", help="The certificate's private key (PEM)."),
    allow_heap: bool = typer.Option(False, "--allow-heap", help="Enable /debug/pprof/heap and /allocs (memray "
                                                                "attach)."),
    max_seconds: int = typer.Option(60, "--max-seconds", min=1, max=3600, help="Longest profile a client may ask for."),
    heap_seconds: int = typer.Option(10, "--heap-seconds", min=1, max=600, help="Heap capture length without "
                                                                                "?seconds."),
    rate: int = typer.Option(100, "--rate", "-r", min=1, max=1000, help="CPU profile sampling rate (Hz)."),
    interval: float = typer.Option(5.0, "--interval", min=0.2, max=300.0, help="Seconds between readings."),
    window: float = typer.Option(600.0, "--window", min=10.0, max=86400.0, help="Leak analysis window (seconds)."),
    gil_rate: float = typer.Option(0.0, "--gil-rate", min=0.0, max=10.0,
                                   help="Non-blocking py-spy dumps per second per target for GIL/idle shares (0: "
                                        "off)."),
    label: Optional[List[str]] = typer.Option(None, "--label", help="NAME=VALUE on every series and profile "
                                                                    "(repeatable)."),
    capture_on: Optional[List[str]] = typer.Option(None, "--capture-on",
                                                   help="Capture when this holds: rss>2GiB, threads>500, fds>90%, "
                                                        "leak=threads …"),
    capture_dir: Optional[str] = typer.Option(None, "--capture-dir", help="Where capture bundles go (enables "
                                                                          "captures)."),
    keep: int = typer.Option(20, "--keep", min=1, max=10000, help="Capture bundles kept (newest)."),
    capture_interval: float = typer.Option(300.0, "--capture-interval", min=0.0,
                                           help="At most one capture per target this often (seconds)."),
    capture_max_per_hour: int = typer.Option(12, "--capture-max-per-hour", min=1, help="At most this many captures an "
                                                                                       "hour."),
    capture_seconds: int = typer.Option(10, "--capture-seconds", min=1, max=300, help="CPU/heap profile length in a "
                                                                                      "capture."),
    alert_webhook: bool = typer.Option(False, "--alert-webhook",
                                       help="Accept Alertmanager webhooks (POST /debug/perfkit/alertmanager): capture "
                                            "the alert's pid."),
    access_log: str = typer.Option("-", "--access-log", help="Access log: - (stderr), a file, or off."),
    no_redact: bool = typer.Option(False, "--no-redact", help="Show target command lines unredacted."),
    pss: bool = typer.Option(True, "--pss/--no-pss", help="Read PSS/USS (smaps_rollup) in each reading."),
    print_rules: bool = typer.Option(False, "--print-rules", help="Print Prometheus alerting rules and exit."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON line (address, targets) on stdout once "
                                                       "listening."),
) -> None:
    from perfkit.errors import UsageError
    from perfkit.serve import config

    if print_rules:
        from perfkit.serve.rules import to_yaml

        typer.echo(to_yaml(), nl=False)
        return
    host, port = config.parse_listen(listen)
    cfg = config.ServeConfig(host=host, port=port, allow_heap=allow_heap, max_seconds=max_seconds,
                             heap_seconds=min(heap_seconds, max_seconds), rate=rate, interval=interval, window=window,
                             gil_rate=gil_rate, labels=config.parse_labels(list(label or [])), redact=not no_redact,
                             access_log=None if access_log == "off" else access_log, alert_webhook=alert_webhook,
                             tls_cert=tls_cert, tls_key=tls_key)
    if token_file:
        cfg.token = config.read_token(token_file)
    config.check_listen_security(cfg)
    config.check_tls(tls_cert, tls_key)
    if window < 4 * interval:
        raise UsageError(f"--window {window:g} s holds fewer than 4 readings at --interval {interval:g} s")
    from perfkit.serve.captures import parse_condition

    conditions = [parse_condition(c) for c in (capture_on or [])]
    if (conditions or alert_webhook) and not capture_dir:
        raise UsageError("--capture-on and --alert-webhook need --capture-dir DIR", "e.g. --capture-dir "
                                                                                    "/var/lib/perfkit")
    if match is not None:
        import re

        try:
            re.compile(match)
        except re.error as exc:
            raise UsageError(f"--match {match!r} is not a valid regular expression: {exc}") from None
    pids = list(dict.fromkeys(pid or []))
    if pids and command:
        raise UsageError("give --pid or a command after --, not both")
    if not pids and not command and match is None:
        raise UsageError("no target: give --pid N, --match REGEX or -- CMD ARGS",
                         "e.g. perfkit serve --pid 4242   or   perfkit serve -- python app.py")
    if children and not pids and not command:
        raise UsageError("--children follows the descendants of --pid or of -- CMD: give one of them")
    from perfkit.serve.run import run

    raise typer.Exit(run(cfg, pids=pids, command=list(command or []), children=children, match=match,
                         conditions=conditions, capture_dir=capture_dir, keep=keep, capture_interval=capture_interval,
                         capture_max_per_hour=capture_max_per_hour, capture_seconds=capture_seconds, pss=pss,
                         as_json=as_json))
