"""One gdb socket: bytes in through the framing parser, acks/no-ack mode, resends on '-', ^C detection.

The session loop only sees whole packets and interrupts; `+`/`-` bookkeeping stays here. In ack mode the '+'
for a good packet goes out with the next bytes sent, normally the packet's reply: one segment, one send(2)
instead of two (a loopback send costs ~8 us of CPU, a third of gdbserver's whole answer to a `g`). The session
loop calls flush() once it has done what a read asked for, so a packet answered later (a resume) is
acknowledged at once all the same.
"""
from __future__ import annotations

import socket
import struct

from kdbg.rsp.packets import ACK, BAD_PACKET, INTERRUPT, NACK, PACKET, Event, PacketParser, encode_packet
from kdbg.tracelog import DEBUG, logger

log = logger("km.gdb.io")

SEND_TIMEOUT_S = 30.0      # a gdb that stops reading for this long is gone
RECV_SIZE = 65536


class ConnectionClosed(Exception):
    """gdb went away (EOF, reset, or a send that did not complete in time)."""


class Connection:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        # A blocking socket with the kernel's send timeout (SO_SNDTIMEO), not settimeout(): Python would poll()
        # before every recv and send. recv is only called once select() said the socket is readable.
        sock.setblocking(True)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(SEND_TIMEOUT_S), 0))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._parser = PacketParser()
        self._last_frame = b""
        self._acks_owed = 0        # good packets received and not yet acknowledged: '+'s for the next send
        self.no_ack = False
        self._trace = log.isEnabledFor(DEBUG)     # KM_VERBOSE is read once, at start

    def fileno(self) -> int:
        return self._sock.fileno()

    def receive(self) -> list[Event]:
        """Read what the socket has (call when it is readable): PACKET and INTERRUPT events, in order.

        In ack mode a good packet is acknowledged with '+' (with the next send, or flush()) and a bad one with
        '-' at once (gdb then resends it); a '-' from gdb resends our last reply. Bad packets in no-ack mode are
        dropped: gdb will time out; so is a '-' (gdbserver's getpkt discards it: nothing is resent, and the last
        reply may not even be Python's, but one the stop lane sent)."""
        try:
            data = self._sock.recv(RECV_SIZE)
        except (ConnectionError, socket.timeout, OSError) as exc:
            raise ConnectionClosed(str(exc)) from None
        if not data:
            raise ConnectionClosed("end of file")
        return self.take(data)

    def take(self, data: bytes) -> list[Event]:
        """receive()'s events of bytes read elsewhere (the stop lane, kdbg.rsp.cstop, hands back what it did not
        answer)."""
        out: list[Event] = []
        for event in self._parser.feed(data):
            kind = event.kind
            if kind is PACKET:
                if self._trace:
                    log.debug("<- %r", event.data[:200])
                if not self.no_ack:
                    self._acks_owed += 1
                out.append(event)
            elif kind is ACK:
                continue
            elif kind is BAD_PACKET:
                log.debug("<- bad packet %r", event.data[:200])
                if not self.no_ack:
                    self._write(b"-")
            elif kind is NACK and self._last_frame and not self.no_ack:
                log.debug("<- '-': resending")
                self._write(self._last_frame)
            elif kind is INTERRUPT:
                log.debug("<- ^C")
                out.append(event)
        return out

    def send(self, payload: bytes) -> None:
        """Frame and send one reply (the payload already escaped where binary)."""
        if self._trace:
            log.debug("-> %r", payload[:200])
        self._last_frame = encode_packet(payload)
        self._write(self._last_frame)

    def lane_may_read(self) -> bool:
        """No-ack mode, no partial packet buffered, no packet trace: the socket's next bytes start afresh and the
        stop lane (kdbg.rsp.cstop) may read and answer them."""
        return self.no_ack and self._parser.idle() and not self._trace

    def last_frame(self) -> bytes:
        """The frame of the last reply sent."""
        return self._last_frame

    def send_notification(self, payload: bytes) -> None:
        """An asynchronous notification (`%Stop:...#cs`, non-stop mode): never acknowledged, never resent."""
        if self._trace:
            log.debug("-> %%%r", payload[:200])
        self._write(b"%" + encode_packet(payload)[1:])

    def flush(self) -> None:
        """Send the acknowledgements still owed (packets whose reply comes later, or never: a resume, ^C's)."""
        if self._acks_owed:
            self._write(b"")

    def _write(self, data: bytes) -> None:
        if self._acks_owed:             # '+' for each packet received before, ahead of what follows them
            data, self._acks_owed = b"+" * self._acks_owed + data, 0
        try:
            # MSG_NOSIGNAL: a gdb gone mid-reply is EPIPE here, never a SIGPIPE to km (which km would forward to
            # the payload as if sent to it)
            self._sock.sendall(data, socket.MSG_NOSIGNAL)
        except (ConnectionError, socket.timeout, OSError) as exc:
            raise ConnectionClosed(str(exc)) from None

    def close(self) -> None:
        try:
            self.flush()
        except ConnectionClosed:
            pass
        try:
            self._sock.close()
        except OSError:
            pass
