"""The management socket's server in km: `km --mgtpipe=PATH` (or KM_MGTPIPE) listens on a UNIX socket, a km
thread accepts, each connection gets its own short thread (so a second snapshot asked for while one is written
hears at once that one is), and one request line gets one reply line (protocol.py).

A snapshot asked for here is taken with every thread of the payload frozen; without "live" the payload ends once
the file is written and the reply sent. The socket, and this km's entry in the registry of km-cli list, are
removed when km ends. Every descriptor the server holds is in km's own range (>= KM_FD_BASE): the payload
never sees them, and a snapshot never takes them for the payload's.
"""
from __future__ import annotations

import errno
import os
import select
import socket
import stat
import threading
from typing import TYPE_CHECKING, Any

from kdbg.tracelog import logger
from .. import __version__
from ..errors import MonitorError
from ..host_fds import GATE, high_fd
from . import registry
from .protocol import ProtocolError, decode, encode, read_line

if TYPE_CHECKING:
    from ..process.payload import Process

log = logger("km.mgmt")
REQUEST_TIMEOUT_S = 10.0


class ManagementServer:
    """One km's management socket: listening from construction (registered for km-cli list) until close()."""

    def __init__(self, proc: Process, path: str) -> None:
        self.proc, self.path = proc, os.path.abspath(path)
        self.started = os.path.abspath(proc.path)       # made absolute now: the payload may chdir later
        self.sock = _listen(self.path)
        self.entry = registry.register(self.path)
        self._closed = False
        threading.Thread(target=self._accept_loop, name="mgmt", daemon=True).start()
        log.info("management socket %s", self.path)

    def close(self) -> None:
        """The socket file and the registry entry go; connections being served finish on their own."""
        if self._closed:
            return
        self._closed = True
        registry.unregister(self.entry)
        try:
            if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                os.unlink(self.path)
        except OSError:
            pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)    # wakes the accepting thread's poll (POLLHUP); accept: EINVAL
        except OSError:
            pass
        self.sock.close()

    def _accept_loop(self) -> None:
        """Accept once the socket is readable (then accept does not block), inside the descriptor gate: the new
        connection's descriptor holds one of the payload's numbers until it is moved. close() ends the wait."""
        ready = select.poll()               # (a poll object holds no descriptor; select(2) stops at 1024)
        try:
            ready.register(self.sock, select.POLLIN)
        except ValueError:                  # closed before this thread began
            return
        while not self._closed:
            try:
                ready.poll()
                if self._closed:
                    return
                with GATE.km():
                    conn, _ = self.sock.accept()
                    conn = socket.socket(fileno=high_fd(conn.detach()))
            except (OSError, ValueError):
                return
            threading.Thread(target=self._serve, args=(conn,), name="mgmt-request", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        end_after_reply = False
        with conn:
            conn.settimeout(REQUEST_TIMEOUT_S)
            try:
                reply, end_after_reply = self._answer(decode(read_line(conn)))
            except ProtocolError as e:
                reply = {"error": f"bad request: {e}"}
            except (OSError, socket.timeout) as e:
                log.info("management request not read: %s", e)
                return
            except Exception as e:              # km's bug: the payload must not suffer from it
                log.error("management request failed", exc_info=True)
                reply = {"error": f"internal error: {type(e).__name__}: {e}".splitlines()[0]}
            try:
                conn.sendall(encode(reply), socket.MSG_NOSIGNAL)     # no SIGPIPE for km (the payload's)
            except OSError:
                pass
        if end_after_reply:
            self.proc.exit_group(0)

    def _answer(self, request: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        kind = request.get("request")
        if kind == "info":
            return {"ok": True, "pid": os.getpid(), "payload": self._program(), "km": __version__,
                    "socket": self.path}, False
        if kind == "snapshot":
            return self._snapshot(request)
        return {"error": f"unknown request {kind!r} (snapshot, info)"}, False

    def _program(self) -> str:
        """The program the payload runs now: the one km started, or the one an execve in this km put in its place
        (exec_in_process sets proc.path and proc.execed)."""
        return os.path.abspath(self.proc.path) if self.proc.execed else self.started

    def _snapshot(self, request: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        from ..snapshot.errors import SnapshotError
        from ..snapshot.take import take
        output = request.get("output")
        if not isinstance(output, str) or not output:
            return {"error": "no output file"}, False
        if self.proc.ended.is_set():
            return {"error": "the payload has ended"}, False
        live = bool(request.get("live"))
        try:
            path = take(self.proc, output, label=str(request.get("label", "")),
                        description=str(request.get("description", "")), live=live)
        except SnapshotError as e:      # its subject is the snapshot file, or "snapshot" (then km-cli names the km)
            named = {"subject": e.subject} if e.subject != "snapshot" else {}
            return {"error": e.problem, **named}, False
        return {"ok": True, "output": path}, not live


def _listen(path: str) -> socket.socket:
    """A listening UNIX socket at `path`; a stale socket file (nobody listens) is replaced, anything else refused."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as e:
        raise MonitorError(f"--mgtpipe {path}", e.strerror or str(e)) from None
    if mode is not None:
        if not stat.S_ISSOCK(mode):
            raise MonitorError(f"--mgtpipe {path}", "exists and is not a socket")
        if _answers(path):
            raise MonitorError(f"--mgtpipe {path}", "another process listens there")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock = socket.socket(fileno=high_fd(sock.detach()))
    try:
        sock.bind(path)
        sock.listen(8)
    except OSError as e:
        sock.close()
        problem = "path too long for a UNIX socket" if e.errno == errno.EINVAL else e.strerror or str(e)
        raise MonitorError(f"--mgtpipe {path}", problem) from None
    return sock


def _answers(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()
