"""Socket syscalls under km: a TCP echo with the test as the client (accept blocks until it connects), and
datagram/message/bad-pointer payloads compared with native runs."""
from __future__ import annotations

import os
import selectors
import socket
import subprocess
import time

import pytest

from harness.km import KM, km_env

from .test_run import differential

TOOLCHAINS = ["musl", "glibc"]


class LineReader:
    """Lines of a child's stdout, each awaited with a deadline (no sleeps)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.buf = proc, b""
        os.set_blocking(proc.stdout.fileno(), False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(proc.stdout, selectors.EVENT_READ)

    def line(self, timeout_s: float) -> str | None:
        """The next line, or None when none arrived in time (or at EOF)."""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.sel.select(remaining):
                return None
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()


@pytest.fixture
def spawn():
    """spawn(*km_args) -> Popen of km (or of the program itself with under_km=False); killed after the test."""
    children: list[subprocess.Popen] = []

    def start(*args, under_km: bool = True) -> subprocess.Popen:
        cmd = [*KM, *map(str, args)] if under_km else list(map(str, args))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=km_env())
        children.append(proc)
        return proc

    yield start
    for proc in children:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def echo_session(proc: subprocess.Popen) -> list[str]:
    """Be the echo server's client; return everything it printed."""
    out = LineReader(proc)
    first = out.line(timeout_s=20)
    assert first and first.startswith("port "), (first, proc.stderr.read1() if proc.poll() is not None else b"")
    port = int(first.split()[1])
    assert out.line(timeout_s=0.3) is None and proc.poll() is None, "accept() returned before anyone connected"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"hello ")
        assert conn.recv(100) == b"hello "
        conn.sendall(b"km" * 300)
        echoed = b""
        while len(echoed) < 600:
            echoed += conn.recv(1000)
        assert echoed == b"km" * 300
        local_port = conn.getsockname()[1]
        conn.shutdown(socket.SHUT_WR)
        assert conn.recv(100) == b""
    proc.wait(timeout=20)
    lines = [first]
    while (line := out.line(timeout_s=5)) is not None:
        lines.append(line)
    assert proc.returncode == 0, proc.stderr.read()
    assert local_port
    return lines


@pytest.mark.parametrize("runner", ["km", "native"])
@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("accept_call", ["accept", "accept4"])
def test_tcp_echo_with_the_test_as_client(payload, spawn, toolchain, accept_call, runner):
    """The native runs show the expectations are Linux's own."""
    lines = echo_session(spawn(payload("net_tcp_echo.c", toolchain), accept_call, under_km=runner == "km"))
    assert lines[1:] == ["accepted 127.0.0.1 len 16, peer port matches", "SO_TYPE 1 len 4", "echoed 606 bytes"]


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_datagrams_and_messages_match_native(payload, toolchain, tmp_path):
    native, km = differential(payload("net_msg.c", toolchain), cwd=tmp_path)
    text = km.stdout.decode()
    assert "iov0 'hea' iov1 'd-tail!' namelen 16 from b: 1 flags 0\n" in text
    assert "data 'fd' controllen 24 level 1 type 1 len 20\n" in text and "pipe gave 'via'\n" in text
    assert "sendmsg SCM_RIGHTS fd 1000: -1 errno 9\n" in text
    assert text.count("SIGPIPE handled 2\n") == 2              # send and sendmsg raise it, MSG_NOSIGNAL does not
    assert "client's peer is 'net_msg.sock'\n" in text and "unlink: 0\n" in text
    assert text.endswith("done\n")


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_bad_pointers_and_km_descriptors_match_native(payload, toolchain):
    native, km = differential(payload("net_efault.c", toolchain))
    text = km.stdout.decode()
    assert text.count("errno 14\n") == 21 and text.count("errno 9\n") == 8
    assert "socket at the limit: -1 errno 24\n" in text and "socket after closing: ok\n" in text


def test_blocked_accept_survives_a_debugger_attach(payload, spawn, free_port):
    """gdb attaching stops the world: the kick cuts the host accept short (EINTR), km parks the thread, and after
    the detach it asks the host again; the payload never sees the EINTR."""
    from harness.gdb import Gdb, wait_listening
    exe = payload("net_tcp_echo.c", "glibc")
    proc = spawn(f"-g{free_port}", "--gdb_listen", exe)
    out = LineReader(proc)
    first = out.line(timeout_s=20)
    assert first and first.startswith("port "), proc.stderr.read1()
    wait_listening(free_port, proc)
    gdb = Gdb(str(exe))
    try:
        gdb.run(f"-target-select remote 127.0.0.1:{free_port}", timeout_s=30)
        frames = gdb.console("bt")
        assert "accept" in frames and "main" in frames, gdb.transcript_text()
        gdb.console("detach")
    finally:
        gdb.exit()
    with socket.create_connection(("127.0.0.1", int(first.split()[1])), timeout=10) as conn:
        conn.sendall(b"after gdb")
        assert conn.recv(100) == b"after gdb"
        conn.shutdown(socket.SHUT_WR)
        assert conn.recv(100) == b""
    assert proc.wait(timeout=20) == 0, proc.stderr.read()
    assert out.line(timeout_s=5) == "accepted 127.0.0.1 len 16, peer port matches"
