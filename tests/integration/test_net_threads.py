"""Blocking network calls block only their own thread: pthread server and client, a wait woken from another
thread, blocked calls cut by a guest signal (compared with native), and a Go net/http server."""
from __future__ import annotations

import http.client

import pytest

from harness.gdb import Gdb, wait_listening

from .test_net_sockets import LineReader, spawn  # noqa: F401  (spawn is a fixture)
from .test_run import differential


@pytest.mark.parametrize("toolchain", ["musl", "glibc"])
def test_threads_blocking_in_network_calls_match_native(payload, toolchain):
    native, km = differential(payload("net_threads.c", toolchain))
    text = km.stdout.decode()
    assert "client got \"reply to 'request'\"\n" in text
    assert "epoll_wait woke: 1, eventfd value 42\n" in text
    assert "poll cut by a signal: -1 errno 4\n" in text                # poll is never restarted (signal(7))
    assert "recv after the signal: 4 errno 0 data 'late'\n" in text     # SA_RESTART restarts recv
    assert text.count("recv after the signal: -1 errno 4 data ''\n") == 2   # without it, or with SO_RCVTIMEO
    assert text.endswith("done\n")


@pytest.mark.parametrize("runner", ["km", "native"])
def test_go_http_server_answers_one_request(payload, spawn, runner):
    proc = spawn(payload("net_http.go"), under_km=runner == "km")
    out = LineReader(proc)
    first = out.line(timeout_s=30)
    assert first and first.startswith("port "), proc.stderr.read1() if proc.poll() is not None else first
    conn = http.client.HTTPConnection("127.0.0.1", int(first.split()[1]), timeout=20)
    try:
        conn.request("GET", "/from-the-test")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"hello from km, GET /from-the-test\n")
    finally:
        conn.close()
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    assert out.line(timeout_s=5) == "served one request"


def test_go_http_server_survives_gdb_attach_cycles(payload, spawn, free_port):
    """Every Go thread is blocked in km (epoll_pwait, futex): each attach stops them all, each detach lets the
    cut host calls be asked again; the server then still answers."""
    exe = payload("net_http.go")
    proc = spawn(f"-g{free_port}", "--gdb_listen", exe)
    out = LineReader(proc)
    first = out.line(timeout_s=30)
    assert first and first.startswith("port "), proc.stderr.read1() if proc.poll() is not None else first
    wait_listening(free_port, proc)
    gdb = Gdb(str(exe))
    try:
        for _ in range(2):
            gdb.run(f"-target-select remote 127.0.0.1:{free_port}", timeout_s=30)
            threads = gdb.console("info threads")
            assert "runtime.epollwait" in threads, gdb.transcript_text()
            gdb.console("detach")
    finally:
        gdb.exit()
    conn = http.client.HTTPConnection("127.0.0.1", int(first.split()[1]), timeout=20)
    try:
        conn.request("GET", "/after-gdb")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"hello from km, GET /after-gdb\n")
    finally:
        conn.close()
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    assert out.line(timeout_s=5) == "served one request"
