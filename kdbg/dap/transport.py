"""DAP wire framing: `Content-Length: N\r\n\r\n` + N bytes of UTF-8 JSON, over byte streams (stdio or a socket).

The Debug Adapter Protocol's base protocol (https://microsoft.github.io/debug-adapter-protocol/overview#base-protocol)
is small enough to frame by hand, so this module does not use debugpy's internals: a reader that parses headers
and a writer that serialises whole messages under a lock (events come from several threads).
"""
from __future__ import annotations

import json
import logging
import threading
from typing import IO, Any

log = logging.getLogger("km.dap")


MAX_MESSAGE = 64 << 20      # no DAP message comes near it (a readMemory reply is a few MiB at most)

class TransportClosed(Exception):
    """The peer closed the stream (EOF or a broken pipe): the session ends."""


class MalformedMessage(ValueError):
    """A well-framed body that is not a JSON object: that message is dropped, the stream stays usable."""


class Transport:
    """One DAP connection. `read_message` blocks; `send` may be called from any thread."""

    def __init__(self, reader: IO[bytes], writer: IO[bytes]) -> None:
        self._reader, self._writer = reader, writer
        self._lock = threading.Lock()
        self._seq = 0

    def read_message(self) -> dict[str, Any]:
        """The next message; raises TransportClosed at EOF or on a broken header, MalformedMessage on a bad body."""
        length = None
        while True:
            line = self._reader.readline()
            if not line:
                raise TransportClosed("end of stream")
            line = line.strip()
            if not line:
                if length is None:
                    continue            # stray blank line between messages
                break
            name, _, value = line.decode("ascii", "replace").partition(":")
            if name.strip().lower() == "content-length":
                if not value.strip().isdigit():
                    raise TransportClosed(f"bad Content-Length {value.strip()!r}: cannot find the next message")
                length = int(value.strip())
                if length > MAX_MESSAGE:        # read(length) would allocate it all (MemoryError, OverflowError)
                    raise TransportClosed(f"Content-Length {length} is more than {MAX_MESSAGE} bytes")
        body = b""
        while len(body) < length:
            chunk = self._reader.read(min(length - len(body), 1 << 20))
            if not chunk:
                raise TransportClosed("end of stream inside a message")
            body += chunk
        try:
            message = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedMessage(f"not JSON: {exc}") from None
        if not isinstance(message, dict):
            raise MalformedMessage("not a JSON object")
        log.debug("<- %s", message)
        return message

    def send(self, message: dict[str, Any]) -> None:
        """Stamp `seq` and write one framed message; a closed peer raises TransportClosed."""
        with self._lock:
            self._seq += 1
            message["seq"] = self._seq
            body = json.dumps(message, separators=(",", ":")).encode("utf-8")
            log.debug("-> %s", message)
            try:
                self._writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
                self._writer.flush()
            except (BrokenPipeError, ConnectionError, ValueError, OSError) as exc:
                raise TransportClosed(str(exc)) from exc
