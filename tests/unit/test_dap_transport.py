"""DAP framing: Content-Length headers, split reads, seq stamping, EOF."""
from __future__ import annotations

import io

import pytest

from harness.dap import encode
from kdbg.dap.transport import MalformedMessage, Transport, TransportClosed


class Trickle(io.RawIOBase):
    """A stream that returns at most `step` bytes per read, as a pipe may."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step = data, step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self.data[:min(self.step, len(buffer))]
        self.data = self.data[len(chunk):]
        buffer[:len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("step", [1, 2, 7, 4096])
def test_messages_survive_any_split(step):
    messages = [{"seq": 1, "type": "request", "command": "initialize", "arguments": {"adapterID": "km é"}},
                {"seq": 2, "type": "request", "command": "threads"}]
    stream = io.BufferedReader(Trickle(b"".join(map(encode, messages)), step))
    transport = Transport(stream, io.BytesIO())
    assert [transport.read_message(), transport.read_message()] == messages
    with pytest.raises(TransportClosed):
        transport.read_message()


def test_other_headers_are_ignored_and_eof_inside_a_body_closes():
    data = b"Content-Type: application/vscode-jsonrpc\r\n" + encode({"seq": 1})
    assert Transport(io.BytesIO(data), io.BytesIO()).read_message() == {"seq": 1}
    with pytest.raises(TransportClosed):
        Transport(io.BytesIO(encode({"seq": 1})[:-3]), io.BytesIO()).read_message()


def test_send_stamps_increasing_seq_and_frames_utf8():
    out = io.BytesIO()
    transport = Transport(io.BytesIO(), out)
    transport.send({"type": "event", "event": "output", "body": {"output": "é\n"}})
    transport.send({"type": "event", "event": "terminated"})
    reread = Transport(io.BytesIO(out.getvalue()), io.BytesIO())
    first, second = reread.read_message(), reread.read_message()
    assert (first["seq"], second["seq"]) == (1, 2) and first["body"]["output"] == "é\n"


def test_send_to_a_closed_peer_raises_transport_closed():
    class Broken(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            raise BrokenPipeError(32, "Broken pipe")
    with pytest.raises(TransportClosed):
        Transport(io.BytesIO(), Broken()).send({"type": "event", "event": "terminated"})


def test_a_bad_body_is_dropped_and_the_next_message_still_read():
    data = b"Content-Length: 5\r\n\r\n{nope" + b"Content-Length: 2\r\n\r\n[]" + encode({"seq": 3})
    transport = Transport(io.BytesIO(data), io.BytesIO())
    for _ in range(2):
        with pytest.raises(MalformedMessage):
            transport.read_message()
    assert transport.read_message() == {"seq": 3}
    with pytest.raises(TransportClosed):
        Transport(io.BytesIO(b"Content-Length: x\r\n\r\n{}"), io.BytesIO()).read_message()
