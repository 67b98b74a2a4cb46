"""An epoll-idle server: an event loop that waits in ``selectors`` (epoll) nearly all the
time, beside one worker thread with a known CPU load.

Truth:

* thread ``event-loop`` (the main thread) runs ``serve_forever``: it waits in
  ``selector.select()`` (epoll_wait) with a ``--tick`` timeout (default 2 ms), so it
  wakes ~500 times a second and does almost nothing each time (a counter).  Its CPU
  use is a few % of a core at most; every sample of it that lands in ``select`` is a
  thread waiting in epoll, i.e. idle.  A listening socket is registered and no client
  ever connects.
* thread ``worker`` runs ``crunch``: it spins for ``--busy`` (default 0.5) of every
  20 ms of its own CPU time, then sleeps the rest — half a core when the machine has one
  to give.

So of the CPU the process uses, nearly all is ``crunch``; a sampler that counts the
event loop's wake-ups as running shows ``select`` with a share its /proc CPU time does
not have.  Prints ``ready port=P loop_tid=T worker_tid=W``.

    python scenarios/epoll_server.py --duration 30
"""

import argparse
import selectors
import socket
import sys
import threading
import time


def crunch(busy, stop):
    cycle = 0.02
    while not stop.is_set():
        end = time.thread_time() + cycle * busy
        while time.thread_time() < end:
            pass
        time.sleep(cycle * (1 - busy))


def serve_forever(sel, tick, deadline):
    wakeups = 0
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=tick):
            conn, _ = key.fileobj.accept()
            conn.close()
        wakeups += 1
    return wakeups


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--tick", type=float, default=0.002, help="seconds the event loop waits per select()")
    ap.add_argument("--busy", type=float, default=0.5, help="fraction of each 20 ms the worker spins")
    args = ap.parse_args(argv)
    threading.current_thread().name = "event-loop"
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(srv, selectors.EVENT_READ)
    stop = threading.Event()
    worker = threading.Thread(target=crunch, args=(args.busy, stop), name="worker", daemon=True)
    worker.start()
    while worker.native_id is None:
        time.sleep(0.01)
    print(f"ready port={srv.getsockname()[1]} loop_tid={threading.get_native_id()} worker_tid={worker.native_id}",
          flush=True)
    serve_forever(sel, args.tick, time.monotonic() + args.duration)
    stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
