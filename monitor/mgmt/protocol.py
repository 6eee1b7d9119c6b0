"""The management socket's protocol, shared by km's server and km-cli: one JSON object per line each way.

Requests: {"request": "snapshot", "output": ABSOLUTE_PATH, "live": BOOL, "label": STR, "description": STR}
          -> {"ok": true, "output": PATH}
          {"request": "info"} -> {"ok": true, "pid": INT, "payload": PATH, "km": VERSION, "socket": PATH}
Every failure is {"error": "one line"}, with "subject" when the failure is about something other than the km
itself (the snapshot file), so km-cli names one subject: `km-cli: <subject>: <problem>`. A connection carries one
request and its reply.
"""
from __future__ import annotations

import json
import socket
from typing import Any

MAX_LINE = 1 << 16


class ProtocolError(Exception):
    """A line that is not a request or reply of this protocol."""


def encode(message: dict[str, Any]) -> bytes:
    """One line: compact JSON (no newline inside) and its newline."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """The object on `line`; ProtocolError for anything else, so a peer's garbage gets an answer, not a crash."""
    try:
        message = json.loads(line)
    except ValueError as e:
        raise ProtocolError(f"not a JSON line ({e})") from None
    if not isinstance(message, dict):
        raise ProtocolError("not a JSON object")
    return message


def read_line(sock: socket.socket, limit: int = MAX_LINE) -> bytes:
    """Up to the first newline (b"" when the peer closed first); ProtocolError past `limit` bytes."""
    data = b""
    while b"\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
        if len(data) > limit:
            raise ProtocolError(f"a line longer than {limit} bytes")
    return data.split(b"\n", 1)[0]
