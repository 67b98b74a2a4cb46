"""The life of a `perfkit serve` process: check, bind, launch, serve, shut down.

Start-up checks every ``--pid`` (exit 3) and binds the port (exit 2 when it is taken)
before launching ``-- CMD``.  SIGTERM, SIGINT and SIGHUP stop it cleanly: running
profiles are told to stop (py-spy writes what it has and the client still gets it),
requests in flight get up to ``DRAIN`` seconds, the sampler threads end, the launched
program is stopped, and no helper (py-spy, memray, gdb) is left running.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from perfkit.errors import EXIT_OK, TargetExited, UsageError

DRAIN = 20.0  # seconds in-flight requests get at shutdown


def _bind(cfg, endpoints, metrics):
    from perfkit.serve.server import Server

    try:
        return Server(cfg, endpoints, metrics)
    except OSError as exc:
        raise UsageError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}",
                         "pick another port with --listen HOST:PORT (port 0 picks a free one)") from None


def _say(msg: str) -> None:
    sys.stderr.write(f"perfkit serve: {msg}\n")
    sys.stderr.flush()


def run(cfg, *, pids: list[int], command: list[str], children: bool, match: str | None, conditions, capture_dir,
        keep: int, capture_interval: float, capture_max_per_hour: int, capture_seconds: int, pss: bool,
        as_json: bool) -> int:
    from perfkit.procs import supervisor
    from perfkit.procs.signals import StopRequest
    from perfkit.serve import profiles
    from perfkit.serve.captures import Captures
    from perfkit.serve.collect import Collector
    from perfkit.serve.endpoints import Endpoints
    from perfkit.serve.metrics import Metrics
    from perfkit.serve.targets import TargetSet
    from perfkit.target import check_pid, resolve
    from perfkit.tools.pyspy import find_pyspy

    find_pyspy()  # exit 4 now rather than 500s later
    for p in pids:
        check_pid(p)
    if command:
        resolve(None, command)
    shutdown = threading.Event()
    targets = TargetSet(pids=pids, children=children, match=match, redact=cfg.redact)
    captures = Captures(capture_dir, conditions=conditions, keep=keep, min_interval=capture_interval,
                        max_per_hour=capture_max_per_hour, seconds=capture_seconds, allow_heap=cfg.allow_heap,
                        profiles=profiles, redact=cfg.redact)
    collector = Collector(targets, interval=cfg.interval, window=cfg.window, pss=pss, gil_rate=cfg.gil_rate,
                          on_reading=captures.on_reading)
    metrics = Metrics(collector, cfg.labels)
    captures.collector, captures.metrics = collector, metrics
    endpoints = Endpoints(cfg, targets, collector, metrics, captures, profiles, shutdown)
    server = _bind(cfg, endpoints, metrics)
    launched = None
    thread = None
    rc = EXIT_OK
    try:
        with StopRequest() as stop:
            if command:
                from perfkit.target import Launched

                launched = Launched(command)
                targets.launched_pid = launched.pid
                launched.child.wait(0.3)  # let the interpreter start before the first reading
            captures.start()
            collector.start()
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                      name="perfkit-serve-http", daemon=True)
            thread.start()
            url = cfg.url(server.port)
            shown = ", ".join(f"pid {t.pid} {t.cmd}" for t in targets.served()[:5]) or "none yet"
            _say(f"listening on {url} (pprof: {url}/debug/pprof/ · metrics: {url}/metrics) — targets: {shown}"
                 + (" · token required" if cfg.token else "") + (" · heap on" if cfg.allow_heap else ""))
            if as_json:
                sys.stdout.write(json.dumps({"url": url, "host": cfg.host, "port": server.port,
                                             "targets": [t.to_json() for t in targets.served()]}) + "\n")
                sys.stdout.flush()
            while stop.signal is None:
                if launched is not None and launched.poll() is not None:
                    break
                time.sleep(0.2)
            if stop.signal is not None:
                import signal as _signal

                _say(f"{_signal.Signals(stop.signal).name}: shutting down")
    finally:
        shutdown.set()
        server.shutdown() if thread is not None else None
        server.wait_idle(DRAIN)
        captures.stop()
        collector.stop()
        server.server_close()
        outcome = launched.close() if launched is not None else None
        supervisor.stop_all()
    if outcome is not None and outcome.stopped_by is None:
        if outcome.returncode not in (0, None):
            tail = outcome.stderr_tail.strip()
            raise TargetExited(f"{outcome.describe(' '.join(command[:3]))}; perfkit serve stopped",
                               tail.splitlines()[-1][:300] if tail else None)
        _say(f"{outcome.describe(' '.join(command[:3]))}; stopped")
    return rc
