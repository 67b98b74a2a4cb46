"""A socket leak over loopback: ``open_connection`` connects and never closes.

Truth: the scenario listens on 127.0.0.1 (an ephemeral port, printed in the ready line;
loopback only, nothing reachable from outside), accepts in a background thread, and
after ``ready`` opens ``--rate`` TCP connections per second (default 3) from
``open_connection`` to its own listener, keeping both ends.  So ESTABLISHED tcp sockets
grow by 2 x rate per second (the client end, whose peer is 127.0.0.1:PORT, and the
accepted end).  ``--kind unix`` leaks socketpair()s instead (unix sockets, 2 per call).
Exits by itself after ``--duration``.

    python scenarios/socket_leak.py --rate 3 --duration 60
"""

import argparse
import socket
import sys
import threading
import time

KEPT = []


def open_connection(port):
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    KEPT.append(c)  # never closed: the leak


def open_pair():
    KEPT.extend(socket.socketpair())


def acceptor(listener):
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        KEPT.append(conn)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=3.0, help="connections per second")
    ap.add_argument("--kind", choices=["tcp", "unix"], default="tcp")
    ap.add_argument("--duration", type=float, default=60.0)
    args = ap.parse_args(argv)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    threading.Thread(target=acceptor, args=(listener,), name="acceptor", daemon=True).start()
    print(f"ready port={port} kind={args.kind}", flush=True)
    start = time.monotonic()
    made = 0
    try:
        while time.monotonic() - start < args.duration:
            due = int((time.monotonic() - start) * args.rate) + 1 - made
            for _ in range(max(0, due)):
                if args.kind == "tcp":
                    open_connection(port)
                else:
                    open_pair()
                made += 1
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    listener.close()
    for s in KEPT:
        s.close()
    return 0


if __name__ == "__main__":
    import signal

    def _stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    sys.exit(main())
