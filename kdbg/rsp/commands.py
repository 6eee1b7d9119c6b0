"""The packet dispatch table: entries keyed by the spec's packet names, each with its parameter parser, and the
one place where handler failures become RSP error replies (docs/HOUSE-STYLE.md 2.6).

Handler modules (query, xfer, resume, memory, registers, points, hostio) register with @command on import.
A handler returns the reply body, or None when the reply comes later (a resume: the stop reply).
"""
from __future__ import annotations

import functools
import re
from typing import Any, Callable, NamedTuple

from kdbg.rsp.errors import RspError
from kdbg.rsp.session import Session
from kdbg.target import TargetError
from kdbg.tracelog import logger

log = logger("km.gdb")

Parser = Callable[[bytes], tuple[Any, ...]]
Handler = Callable[..., "bytes | None"]


class Command(NamedTuple):
    name: str
    handler: Handler
    parse: Parser
    needs_control: bool      # resume/write packets: E01 on a read-only target (a core file)


TABLE: dict[str, Command] = {}
_NAMED_PREFIXES = b"qQvj"    # packets named by a word (qXfer:features:read, lldb's jThreadsInfo); the rest by
#                               their first letter
_BOUNDARIES = b":,;"


def command(name: str, parse: Parser | None = None, *, needs_control: bool = False) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        if name in TABLE:
            raise ValueError(f"packet {name} registered twice")
        TABLE[name] = Command(name, handler, parse or no_args, needs_control)
        return handler
    return register


# ---- parameter parsers (the schema half of an entry); a ValueError means E22 ----

def no_args(rest: bytes) -> tuple[Any, ...]:
    return ()


def raw(rest: bytes) -> tuple[Any, ...]:
    return (rest,)


_HEX = re.compile(rb"[0-9a-fA-F]+")


def parse_hex(text: bytes) -> int:
    """A hex number as RSP writes them (no sign, no 0x); ValueError otherwise."""
    if not _HEX.fullmatch(text):
        raise ValueError(f"not a hex number: {text[:32]!r}")
    return int(text, 16)


def parse_thread_id(text: bytes) -> int:
    """`-1` (all), `0` (any), a hex tid, or the multiprocess form `p<pid>.<tid>` (the tid is kept)."""
    return parse_ptid(text)[1]


def parse_ptid(text: bytes) -> tuple[int, int]:
    """(pid, tid) of a thread id: `p<pid>.<tid>`, `p<pid>` (all its threads), or a bare tid (pid 0: not named);
    -1 stands for all, 0 for any."""
    pid = 0
    if text.startswith(b"p"):
        pid_text, dot, text = text[1:].partition(b".")
        pid = -1 if pid_text == b"-1" else parse_hex(pid_text)
        if not dot:
            return pid, -1
    if text == b"-1":
        return pid, -1
    return pid, parse_hex(text)


def hex_fields(*separators: bytes) -> Parser:
    """A parser for `a<sep1>b<sep2>c...`, every field hex: hex_fields(b",") reads `addr,length`."""
    def parse(rest: bytes) -> tuple[int, ...]:
        fields = []
        for sep in separators:
            head, found, rest = rest.partition(sep)
            if not found:
                raise ValueError(f"expected {sep!r}")
            fields.append(parse_hex(head))
        fields.append(parse_hex(rest))
        return tuple(fields)
    return parse


# ---- dispatch ----

def find_command(packet: bytes) -> tuple[Command, bytes] | None:
    """The table entry and the argument bytes after its name, or None for an unknown packet."""
    if not packet:
        return None
    if packet[0] not in _NAMED_PREFIXES:
        entry = TABLE.get(chr(packet[0]))
        return (entry, packet[1:]) if entry else None
    # The longest name that is the whole packet or is followed by a separator: `qC` must not take `qCRC:...`,
    # and `qXfer:features:read` wins over any shorter `qXfer` entry. Only the names sharing the packet's first
    # word (what precedes its first separator) can match.
    end = _FIRST_SEPARATOR.search(packet)
    word = packet[:end.start() if end else len(packet)]
    for entry in _by_first_word(len(TABLE)).get(word, ()):
        key = entry.name.encode()
        if packet.startswith(key) and (len(packet) == len(key) or packet[len(key)] in _BOUNDARIES):
            return entry, packet[len(key) + 1:]      # the arguments start after the separator
    return None


_FIRST_SEPARATOR = re.compile(rb"[:,;]")


@functools.cache
def _by_first_word(table_size: int) -> dict[bytes, list[Command]]:
    """Named entries grouped by their first word, longest name first; made again when the table grows."""
    index: dict[bytes, list[Command]] = {}
    for name, entry in TABLE.items():
        if name.encode()[0] in _NAMED_PREFIXES:
            index.setdefault(_FIRST_SEPARATOR.split(name.encode())[0], []).append(entry)
    for entries in index.values():
        entries.sort(key=lambda e: -len(e.name))
    return index


# gdb sends the same short packets again and again (each stepi: `Z0,401141,1`, `vCont;s:p1f.1f;c:p1f.-1`, `m...,40`,
# `qXfer:threads:read::0,1000`, `z0,...`; each breakpoint stop twice `QPassSignals:...`, empty while it steps off
# the breakpoint, then its list again): their entry and parsed arguments are remembered, which spares the name
# lookup and the parse (~15 us of a stepi's packet here; ~20 us of a QPassSignals list). Only immutable arguments
# are kept: a handler may not change what another packet will get.
_PARSED: dict[bytes, tuple[Command, tuple[Any, ...]]] = {}
_PARSED_LIMIT = 512            # entries; the memo starts afresh when full
_PARSED_MAX_LEN = 96           # longer packets (X, M, vFile:pwrite...) are parsed every time
_IMMUTABLE = (int, bytes, str, tuple, frozenset, type(None))


def _parse(entry: Command, rest: bytes, packet: bytes) -> tuple[Any, ...]:
    try:
        args = entry.parse(rest)
    except ValueError as exc:
        raise RspError(f"{entry.name}: {exc}") from None
    if len(packet) <= _PARSED_MAX_LEN and all(isinstance(a, _IMMUTABLE) for a in args):
        if len(_PARSED) >= _PARSED_LIMIT:
            _PARSED.clear()
        _PARSED[packet] = (entry, args)
    return args


def dispatch(session: Session, packet: bytes) -> bytes | None:
    """Run one packet; every failure becomes an error reply here and the session goes on serving."""
    memo = _PARSED.get(packet)
    if memo is not None:
        entry, args = memo
        rest = b""
    else:
        found = find_command(packet)
        if found is None:
            log.debug("unknown packet %r", packet[:40])
            return b""
        entry, rest = found
        args = None
    try:
        if entry.needs_control and session.control is None:
            raise RspError(f"{entry.name}: the target is read-only", 1)
        return entry.handler(session, *(_parse(entry, rest, packet) if args is None else args))
    except RspError as exc:
        log.debug("%s: %s", entry.name, exc)
        return error_reply(session, exc.errno, str(exc))
    except TargetError as exc:
        log.debug("%s: %s", entry.name, exc)
        return error_reply(session, exc.errno, str(exc))
    except Exception as exc:  # noqa: BLE001 - Firecracker's "non-fatal": trace it, answer E01, keep serving
        log.exception("%s handler failed", entry.name)
        return error_reply(session, 1, f"{type(exc).__name__}: {exc}")


def error_reply(session: Session, errno: int, text: str) -> bytes:
    """`Enn` with a decimal errno; `E.text` only when gdb offered the error-message feature."""
    if "error-message" in session.gdb_features and text:
        return b"E." + text.encode(errors="replace")[:200]
    return b"E%02d" % min(errno, 99)
