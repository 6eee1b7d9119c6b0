"""A bare RSP client for tests that need what gdb will not do on purpose: a Ctrl-C storm, junk bytes, register
reads of every thread at every stop. It speaks the same protocol to km's stub and to gdbserver."""
from __future__ import annotations

import socket
import time

from kdbg.rsp.packets import decode_rle, encode_packet


class RspClient:
    def __init__(self, port: int, timeout_s: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)     # as gdb: no 40 ms Nagle waits
        self.timeout_s = timeout_s
        self._buf = b""
        self.notifications: list[bytes] = []     # `%Name:body` notifications received so far, oldest first
        self.no_ack = False                      # after start_no_ack(): packets are no longer acknowledged

    def send(self, body: bytes) -> None:
        self.sock.sendall(encode_packet(body, rle=False))

    def receive(self) -> bytes:
        """The next packet's body (acknowledged); acks are skipped, notifications kept in self.notifications."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            self._keep_notifications()
            start = self._buf.find(b"$")
            end = self._buf.find(b"#", start)
            if start >= 0 and end >= 0 and len(self._buf) >= end + 3:
                body, self._buf = self._buf[start + 1:end], self._buf[end + 3:]
                if not self.no_ack:
                    self.sock.sendall(b"+")
                return body
            self._read_more(deadline, "packet")

    def _read_more(self, deadline: float, awaited: str) -> None:
        """Append the next bytes the stub sends to the buffer, or fail past the deadline or at EOF."""
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {awaited}; buffered {self._buf[:80]!r}")
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self._buf += data

    def _keep_notifications(self) -> None:
        """Move each complete notification that comes before the next packet out of the buffer."""
        while True:
            note, start = self._buf.find(b"%"), self._buf.find(b"$")
            end = self._buf.find(b"#", note)
            if note < 0 or 0 <= start < note or end < 0 or len(self._buf) < end + 3:
                return
            self.notifications.append(self._buf[note + 1:end])
            self._buf = self._buf[:note] + self._buf[end + 3:]

    def notification(self) -> bytes:
        """The oldest notification not yet taken (`Stop:T05...`), waiting for one if none has come."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            self._keep_notifications()
            if self.notifications:
                return self.notifications.pop(0)
            self._read_more(deadline, "notification")

    def ask(self, body: bytes) -> bytes:
        self.send(body)
        return self.receive()

    def start(self) -> bytes:
        """The handshake gdb makes (multiprocess thread ids); the initial stop reply."""
        self.ask(b"qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+")
        self.ask(b"Hg0")
        return self.ask(b"?")

    def start_no_ack(self) -> bytes:
        """QStartNoAckMode, as gdb sends it after qSupported: the reply is the last packet acknowledged."""
        reply = self.ask(b"QStartNoAckMode")
        self.no_ack = reply == b"OK"
        return reply

    def stop_reply(self) -> bytes:
        """The next stop reply (T, S, W or X), skipping anything else."""
        while True:
            reply = self.receive()
            if reply[:1] in (b"T", b"S", b"W", b"X"):
                return reply

    def threads(self) -> list[bytes]:
        """The thread ids, run-length decoded (gdbserver encodes a tid such as p110d.1111 as p110d.1* )."""
        ids: list[bytes] = []
        reply = decode_rle(self.ask(b"qfThreadInfo"))
        while reply.startswith(b"m"):
            ids += reply[1:].split(b",")
            reply = decode_rle(self.ask(b"qsThreadInfo"))
        return ids

    def close(self) -> None:
        self.sock.close()
