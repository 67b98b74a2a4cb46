"""Parity with Go's net/http/pprof: a tiny Go program (built here with golang-go, the
standard library only, nothing fetched) and `perfkit serve` answer the same paths with
the same status codes and content types — including unknown paths and bad parameters.

The Go server's WriteTimeout is --max-seconds + 1 s, so "seconds above the cap" is
refused by both (Go: ``seconds >= WriteTimeout``).  Known, documented differences are
not compared: block/mutex/threadcreate/trace (no Python equivalent: 404 here), methods
other than GET (405 here), and a second concurrent CPU profile (429 here, 500 in Go).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from serve_helpers import Serve, request

from conftest import IN_CI, scenario

pytestmark = pytest.mark.live

MAX_SECONDS = 5
GO_MAIN = """package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"time"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Printf("ready %d\\n", ln.Addr().(*net.TCPAddr).Port)
	os.Stdout.Sync()
	srv := &http.Server{WriteTimeout: (MAX + 1) * time.Second}
	srv.Serve(ln)
}
"""

CASES = [
    "/debug/pprof/",
    "/debug/pprof",
    "/debug/pprof/cmdline",
    "/debug/pprof/symbol",
    "/debug/pprof/profile?seconds=1",
    "/debug/pprof/profile?seconds=1&debug=1",
    f"/debug/pprof/profile?seconds={MAX_SECONDS + 5}",
    "/debug/pprof/goroutine",
    "/debug/pprof/goroutine?debug=1",
    "/debug/pprof/goroutine?debug=2",
    "/debug/pprof/goroutine?debug=abc",
    "/debug/pprof/goroutine?seconds=1",
    "/debug/pprof/goroutine?seconds=abc",
    "/debug/pprof/goroutine?seconds=0",
    "/debug/pprof/goroutine?seconds=-3",
    "/debug/pprof/goroutine?seconds=1&debug=1",
    f"/debug/pprof/goroutine?seconds={MAX_SECONDS + 5}",
    "/debug/pprof/heap?seconds=abc",
    "/debug/pprof/heap?seconds=1&debug=1",
    "/debug/pprof/allocs?seconds=0",
    f"/debug/pprof/allocs?seconds={MAX_SECONDS + 5}",
    "/debug/pprof/nosuch",
    "/debug/pprof/nosuch?debug=1",
    "/",
    "/nosuch",
    "/debug/pprofx",
]


@pytest.fixture(scope="module")
def go_server(tmp_path_factory):
    if shutil.which("go") is None:
        (pytest.fail if IN_CI else pytest.skip)("go not installed; run ./scripts/setup")
    d = tmp_path_factory.mktemp("gopprof")
    (d / "main.go").write_text(GO_MAIN.replace("MAX", str(MAX_SECONDS)))
    (d / "go.mod").write_text("module pprofparity\n\ngo 1.19\n")
    env = dict(os.environ, HOME=str(d), GOPATH=str(d / "gopath"), GOCACHE=str(d / "gocache"), GOFLAGS="-mod=mod",
               GOPROXY="off", CGO_ENABLED="0")
    res = subprocess.run(["go", "build", "-o", str(d / "pprofparity"), "."], cwd=d, env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    proc = subprocess.Popen([str(d / "pprofparity")], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("ready "), line
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def perfkit_server():
    with scenario("deadlock", "--idle-workers", "2", "--duration", "300") as sc, \
            Serve("--pid", sc.pid, "--allow-heap", "--max-seconds", MAX_SECONDS, "--access-log", "off") as s:
        yield s.url


@pytest.mark.parametrize("path", CASES)
def test_same_status_and_content_type_as_go(go_server, perfkit_server, path):
    go = request(go_server, path, timeout=60)
    py = request(perfkit_server, path, timeout=60)
    assert (py.status, py.ctype) == (go.status, go.ctype), (path, go.body[:200], py.body[:200])
    if go.status == 301:
        assert py.headers["location"] == go.headers["location"]
    if "content-disposition" in go.headers:
        assert py.headers.get("content-disposition") == go.headers["content-disposition"]
    if go.headers.get("x-go-pprof"):
        assert py.headers.get("x-go-pprof") == go.headers["x-go-pprof"]
    if go.status in (400, 404) and f"seconds={MAX_SECONDS + 5}" not in path:
        # the same words for the same mistake (over the cap, perfkit names --max-seconds instead of WriteTimeout)
        assert py.body == go.body, (path, go.body, py.body)


def test_profiles_are_pprof_in_both(go_server, perfkit_server):
    from perfkit.formats import pprof

    for path, kind in (("/debug/pprof/goroutine", "goroutine"), ("/debug/pprof/profile?seconds=1", "cpu")):
        for base in (go_server, perfkit_server):
            prof = pprof.read(request(base, path, timeout=60).body)
            assert kind in [vt.type for vt in prof.sample_types], (base, path)
