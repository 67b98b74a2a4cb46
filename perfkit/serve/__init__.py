"""`perfkit serve`: every Python process on the host scrapeable like a Go service.

* ``config``    the parsed options: listen address (loopback unless a token file is
                given), token, TLS, labels, limits
* ``targets``   which processes are served (``--pid``, ``--children``, ``--match``,
                ``-- CMD``), followed as they come and go
* ``collect``   the background sampler: resource samples (``leaks.sampler``), CPU,
                context switches, cgroup counters, optional GIL sampling, and leak
                verdicts over a sliding window (``leaks.trend``)
* ``profiles``  CPU (py-spy record), thread (py-spy dump) and heap (memray) profiles
                for the pprof endpoints, and their Go-style text forms
* ``metrics``   the Prometheus exposition (prometheus_client)
* ``rules``     Prometheus alerting rules for those metrics (``--print-rules``)
* ``captures``  bundles written when a condition holds or Alertmanager calls
* ``endpoints`` the routes: net/http/pprof-compatible paths, /metrics, /debug/perfkit/*
* ``server``    the HTTP(S) server: auth, GET only, limits, access log, shutdown
* ``command``   the typer glue

This package is the only code in perfkit that listens on a network port.
"""
