"""RSP framing: the byte-at-a-time packet state machine, checksums, binary escapes and run-length encoding.

Pure functions and one parser class, no I/O, so every split point of a byte stream can be unit-tested.
Spec: https://sourceware.org/gdb/current/onlinedocs/gdb.html/Overview.html (packets, acks, escapes, RLE).
"""
from __future__ import annotations

import enum
import functools
import re
import zlib
from typing import NamedTuple

ESCAPE = 0x7D            # '}'
RLE_MARK = 0x2A          # '*'
INTERRUPT_BYTE = 0x03    # ^C outside a packet
# Bytes that may not appear raw in a packet body: '$', '#', '}', '*'.
_MUST_ESCAPE = frozenset(b"$#}*")
_MUST_ESCAPE_RE = re.compile(rb"[$#}*]")
# An RLE count byte is (run - 1) + 29 and must be printable, never '$' or '#' (runs of 7 and 8 are split),
# and at most 126 ('~'), so one mark repeats the previous byte at most 97 more times.
_MAX_REPEAT = 126 - 29
_BAD_COUNTS = frozenset(b"$#")
PACKET_SIZE = 0x10000  # the largest packet gdb may send us (qSupported PacketSize); also sizes our `m` replies:
#                        a 4 MiB `dump memory` is 128 round trips instead of gdbserver's 455
MAX_BODY = 4 * PACKET_SIZE   # longer is junk (an X body is at most PacketSize): dropped, not buffered


_ADLER_CHUNK = 256      # adler32's first sum is 1 + the byte sum mod 65521: exact for 256 bytes (1 + 256 * 255)
_SUM_LIMIT = 16         # shorter bodies are summed by sum(): one call of zlib costs about as much


def checksum(body: bytes) -> int:
    """Modulo-256 sum of the raw (escaped, run-length encoded) body, as sent between '$' and '#'.

    Summed by zlib in 256-byte chunks (adler32's first sum is the byte sum): a 64-byte `m` reply costs ~0.1 us
    instead of ~1 us for sum(), a 16 KiB one ~18 us instead of ~100 us."""
    n = len(body)
    if n <= _SUM_LIMIT:
        return sum(body) & 0xFF
    if n <= _ADLER_CHUNK:
        return (zlib.adler32(body) - 1) & 0xFF
    compiled = _compiled
    if compiled is not None:
        return compiled[5](compiled[1](body), n)
    view, adler = memoryview(body), zlib.adler32
    return (sum([adler(view[i:i + _ADLER_CHUNK]) for i in range(0, n, _ADLER_CHUNK)])
            - (n + _ADLER_CHUNK - 1) // _ADLER_CHUNK) & 0xFF


def escape(data: bytes) -> bytes:
    """Binary escape for X, vFile:pwrite, qXfer and vFile:pread payloads: '}' then the byte XOR 0x20."""
    return _MUST_ESCAPE_RE.sub(lambda m: bytes((ESCAPE, m.group()[0] ^ 0x20)), data)


_ESCAPED = re.compile(rb"\}(.)|\}\Z", re.DOTALL)     # an escape and the byte it changes, or a lone one at the end
_UNESCAPED = {bytes((b,)): bytes((b ^ 0x20,)) for b in range(256)}


def _unescape_one(match: re.Match) -> bytes:
    byte = match.group(1)
    if byte is None:
        raise ValueError("escape at end of binary data")
    return _UNESCAPED[byte]


def unescape(data: bytes) -> bytes:
    """Inverse of escape(); a trailing lone '}' is invalid and raises ValueError. Scanned by the regex engine
    (a 64 KiB X packet: ~0.3 ms instead of ~5 ms byte by byte); any byte may be escaped, '}' too."""
    if ESCAPE not in data:
        return bytes(data)
    return _ESCAPED.sub(_unescape_one, data)


_SAME = re.compile(rb"\x00{3,}")     # in body XOR body-shifted-by-one: 3+ zeros = a byte repeated 3+ more times
_SAME_LONG = re.compile(rb"\x00{15,}")   # long binary bodies (vFile, qXfer): only runs of 16+ are worth a loop turn
_SCAN_LIMIT = 512      # longer bodies are only searched for runs when they hold a zero run or an escape


def encode_rle(body: bytes) -> bytes:
    """Run-length encode an (already escaped) body: 'x*N' repeats x (N - 29) more times.

    Runs are only worth it from 4 repeats on. gdb expands runs before it unescapes (remote.c read_frame copies
    the previous byte, whatever it is), so a run is a run in the escaped body too: one that starts at the value
    after a '}' expands back to the same bytes, and '}' itself never repeats (the byte after it is one of the
    four escaped values). Every body finds its runs at C speed: XOR it with itself shifted by one byte and look
    for zero bytes (three in a row: a byte and three repeats; ~1 us for a 64-byte `m` reply, where a regular
    expression with a back-reference took ~4.5). A long binary body (a library's symbol table read through
    vFile) has thousands of short runs: only those of 16 bytes and more are encoded there, so a 32 KiB reply
    costs ~0.3 ms instead of ~8."""
    n = len(body)
    if n < 4:
        return body
    if n > _SCAN_LIMIT and ESCAPE not in body and b"0000" not in body and b"\0\0\0\0" not in body:
        return body         # a long hex reply without a zero run, or binary without an escape or a NUL run
    sentinel = bytes((body[-1] ^ 0xFF,))
    same = (int.from_bytes(body, "big") ^ int.from_bytes(body[1:] + sentinel, "big")).to_bytes(n, "big")
    if b"\0\0\0" not in same:
        return body
    out = []
    last = 0
    binary = n > _SCAN_LIMIT and (ESCAPE in body or b"\0" in body)     # hex replies hold neither
    for match in (_SAME_LONG if binary else _SAME).finditer(same):
        start, end = match.span()          # body[start] repeats end - start more times
        byte = bytes((body[start],))
        out.append(body[last:start + 1])
        full, remaining = divmod(end - start, _MAX_REPEAT + 1)
        out.append((bytes((RLE_MARK, _MAX_REPEAT + 29)) + byte) * full)   # 97 repeats + 1 literal each
        while remaining > 0:
            count = min(remaining, _MAX_REPEAT)
            while count >= 3 and (count + 29) in _BAD_COUNTS:
                count -= 1
            if count >= 3:
                out.append(bytes((RLE_MARK, count + 29)))
                remaining -= count
            if remaining > 0:
                out.append(byte)
                remaining -= 1
        last = end + 1
    out.append(body[last:])
    return b"".join(out)


def decode_rle(body: bytes) -> bytes:
    """Expand run-length encoding; a '*' with nothing before it or no count byte raises ValueError."""
    if RLE_MARK not in body:
        return body
    out = bytearray()
    i, n = 0, len(body)
    while i < n:
        byte = body[i]
        if byte == RLE_MARK:
            if not out or i + 1 >= n:
                raise ValueError("run-length mark without a byte to repeat")
            out += bytes((out[-1],)) * (body[i + 1] - 29)
            i += 2
            continue
        out.append(byte)
        i += 1
    return bytes(out)


_FRAME_CACHE_LIMIT = 4096      # replies up to this size are remembered (the same `g` reply, OK, E01...)


# (the large bytes object framed last, kept alive so its id is never reused; its frame): one tuple, swapped whole
_last_framed: tuple[bytes | None, bytes] = (None, b"")


def encode_packet(payload: bytes, *, rle: bool = True) -> bytes:
    """Frame a reply: `$body#cs`. The payload must already be escaped where the packet carries binary data.

    The very object framed last is framed once: a stopped thread's `g` reply (registers.encode_registers keeps
    it while the stop lasts) is larger than the small-reply cache takes (~4.8 KB with AVX-512) and cost ~100 us
    of run-length encoding per `p $pc` after a register-cache flush."""
    global _last_framed
    last = _last_framed
    if payload is last[0] and rle:
        return last[1]
    if rle and len(payload) <= _FRAME_CACHE_LIMIT:
        return _encode_small(bytes(payload))
    frame = _encode(payload, rle)
    if rle and type(payload) is bytes:          # immutable: the same object is the same reply
        _last_framed = (payload, frame)
    return frame


def _encode(payload: bytes, rle: bool) -> bytes:
    compiled = _compiled
    if compiled is not None and rle and len(payload) >= compiled[0]:
        return _encode_compiled(compiled, payload)
    return encode_python(payload, rle)


def encode_python(payload: bytes, rle: bool = True) -> bytes:
    """The frame in Python: kdbg.rsp.cframing's km_rsp_frame's twin (the same bytes, tested so)."""
    body = encode_rle(payload) if rle else payload
    return b"$" + body + b"#%02x" % checksum(body)


# kdbg.rsp.cframing's compiled framing once use_compiled_framing() loaded it: (the length from which it frames,
# ffi.from_buffer, an allocator that does not clear, ffi.buffer, km_rsp_frame, km_rsp_sum); None: Python frames.
_compiled: tuple | None = None


def use_compiled_framing(on: bool = True) -> bool:
    """Frame long replies and sum long packets with the compiled module (built first if missing; GdbServer asks
    at start, never in the middle of a session); False when it cannot be had, and Python frames."""
    global _compiled
    _compiled = None
    if on:
        from kdbg.rsp import cframing
        loaded = cframing.load()
        if loaded is not None:
            ffi, lib = loaded
            _compiled = (cframing.FRAME_THRESHOLD, ffi.from_buffer, ffi.new_allocator(should_clear_after_alloc=False),
                         ffi.buffer, lib.km_rsp_frame, lib.km_rsp_sum)
    return _compiled is not None


def _encode_compiled(compiled: tuple, payload: bytes) -> bytes:
    _, from_buffer, alloc, buffer, frame, _ = compiled
    n = len(payload)
    out = alloc("unsigned char[]", n + 4)       # run-length encoding never lengthens a body
    return buffer(out, frame(from_buffer(payload), n, out))[:]


def encode_compiled(payload: bytes) -> bytes:
    """The frame by the compiled module, whatever the length (encode_python's twin); use_compiled_framing() first."""
    assert _compiled is not None, "the compiled framing is not loaded"
    return _encode_compiled(_compiled, payload)


def sum_compiled(data: bytes) -> int:
    """The byte sum mod 256 by the compiled module (checksum's twin); use_compiled_framing() first."""
    assert _compiled is not None, "the compiled framing is not loaded"
    return _compiled[5](_compiled[1](data), len(data))


@functools.lru_cache(maxsize=128)
def _encode_small(payload: bytes) -> bytes:
    """Framing is a pure function of the payload: a register file asked for again in the same stop (gdb flushes
    its cache; `info registers`) is framed once."""
    return _encode(payload, True)


class EventKind(enum.Enum):
    PACKET = "packet"            # a well-formed packet; `data` is the body with runs expanded
    BAD_PACKET = "bad-packet"    # checksum mismatch or broken RLE; ack mode answers '-'
    ACK = "ack"                  # '+'
    NACK = "nack"                # '-': resend the last reply
    INTERRUPT = "interrupt"      # 0x03 outside a packet


class Event(NamedTuple):                 # (not a dataclass: `dataclasses` costs km -g's start ~6 ms)
    kind: EventKind
    data: bytes = b""


# Members as plain module constants: reading an Enum member through its class costs ~0.2 us on Python 3.11 (a
# descriptor call), several times in every packet's path.
PACKET, BAD_PACKET, ACK, NACK, INTERRUPT = (EventKind.PACKET, EventKind.BAD_PACKET, EventKind.ACK, EventKind.NACK,
                                            EventKind.INTERRUPT)
_ACK = Event(ACK)

# gdb sends the same short packets again and again (`g`, `m<sp>,40`, `Z0,<pc>,1`, `qXfer:threads:read::0,fff`),
# and a read holds exactly one of them (with the '+' of our last reply in ack mode): the events such a read makes
# from the idle state are a pure function of its bytes, remembered here. Checking the frame, its checksum and its
# run-length encoding again cost ~4 us of each packet's ~25 us at gdbserver's pace.
_KNOWN_READS: dict[bytes, tuple[Event, ...]] = {}
_KNOWN_LIMIT = 512             # entries; the memo starts afresh when full
_KNOWN_MAX_LEN = 100           # longer reads (X, M, vFile:pwrite with data) are framed every time


def _remember(data: bytes, events: tuple[Event, ...]) -> list[Event]:
    if len(data) <= _KNOWN_MAX_LEN and events[-1].kind is PACKET:
        if len(_KNOWN_READS) >= _KNOWN_LIMIT:
            _KNOWN_READS.clear()
        _KNOWN_READS[data] = events
    return list(events)


class _State(enum.Enum):
    IDLE = 0        # between packets: '+', '-', 0x03, '$', junk
    BODY = 1        # after '$', until '#'
    CHECKSUM1 = 2   # first hex digit after '#'
    CHECKSUM2 = 3


_IDLE, _BODY, _CHECKSUM1, _CHECKSUM2 = _State.IDLE, _State.BODY, _State.CHECKSUM1, _State.CHECKSUM2


class PacketParser:
    """Byte-at-a-time framing state machine (gdbserver's readchar/getpkt, QEMU's gdb_read_byte):

        IDLE --'$'--> BODY --'#'--> CHECKSUM1 --hex--> CHECKSUM2 --hex--> IDLE (emit PACKET or BAD_PACKET)
        IDLE --'+'/'-'/0x03--> IDLE (emit ACK/NACK/INTERRUPT); other bytes in IDLE are junk and ignored.
        A '$' inside BODY restarts the packet (the sender gave up on the previous one).
    """

    def __init__(self) -> None:
        self._state = _IDLE
        self._body = bytearray()
        self._sum = 0
        self._overflow = False

    def idle(self) -> bool:
        """Between packets: no partial packet buffered."""
        return self._state is _IDLE

    def feed(self, data: bytes) -> list[Event]:
        if self._state is _IDLE:
            known = _KNOWN_READS.get(data)
            if known is not None:
                return list(known)
            if data.find(b"#") == len(data) - 3:
                if data[:1] == b"$":
                    event = self._whole(data)                # the usual read: exactly one packet
                    if event is not None:
                        return _remember(data, (event,))
                elif data[:2] == b"+$":                      # ack mode: our last reply's '+' and the next packet
                    event = self._whole(data[1:])
                    if event is not None:
                        return _remember(data, (_ACK, event))
        events: list[Event] = []
        pos, end = 0, len(data)
        while pos < end:
            if self._state is _BODY:
                pos = self._take_body(data, pos)    # bulk copy up to the next '#' or '$'
                if pos >= end:
                    break
            event = self._step(data[pos])
            pos += 1
            if event is not None:
                events.append(event)
        return events

    def _whole(self, data: bytes) -> Event | None:
        """`$body#cs` in one piece without a second '$': the event without the byte loop, or None to take the
        general path (which also judges what this one declines)."""
        body = data[1:-3]
        if b"$" in body or len(body) > MAX_BODY:
            return None
        try:
            sent = int(data[-2:], 16)
        except ValueError:
            return None
        if data[-2:-1] in b"+-_ " or data[-1:] in b"+-_ ":     # int() accepts signs, '_' and spaces
            return None
        if checksum(body) != sent:
            return Event(BAD_PACKET, body)
        try:
            return Event(PACKET, decode_rle(body))
        except ValueError:
            return Event(BAD_PACKET, body)

    def _take_body(self, data: bytes, pos: int) -> int:
        """Append body bytes from pos up to (not including) the next '#' or '$'; the new position."""
        stops = [i for i in (data.find(b"#", pos), data.find(b"$", pos)) if i >= 0]
        stop = min(stops) if stops else len(data)
        room = MAX_BODY - len(self._body)
        if stop - pos > room:
            self._overflow = True
        self._body += data[pos:pos + max(room, 0)] if stop - pos > room else data[pos:stop]
        return stop

    def _step(self, byte: int) -> Event | None:
        state = self._state
        if state is _IDLE:
            if byte == 0x24:  # '$'
                self._start()
            elif byte == 0x2B:
                return Event(ACK)
            elif byte == 0x2D:
                return Event(NACK)
            elif byte == INTERRUPT_BYTE:
                return Event(INTERRUPT)
            return None
        if state is _BODY:
            if byte == 0x23:  # '#'
                self._state = _CHECKSUM1
            elif byte == 0x24:
                self._start()
            elif len(self._body) < MAX_BODY:
                self._body.append(byte)
            else:
                self._overflow = True
            return None
        digit = _hex_digit(byte)
        if digit is None:
            self._state = _IDLE
            return Event(BAD_PACKET, bytes(self._body))
        if state is _CHECKSUM1:
            self._sum = digit << 4
            self._state = _CHECKSUM2
            return None
        self._state = _IDLE
        return self._finish(self._sum | digit)

    def _start(self) -> None:
        self._state = _BODY
        self._body.clear()
        self._overflow = False

    def _finish(self, sent_sum: int) -> Event:
        raw = bytes(self._body)
        if self._overflow or checksum(raw) != sent_sum:
            return Event(BAD_PACKET, raw)
        try:
            return Event(PACKET, decode_rle(raw))
        except ValueError:
            return Event(BAD_PACKET, raw)


def _hex_digit(byte: int) -> int | None:
    if 0x30 <= byte <= 0x39:
        return byte - 0x30
    if 0x61 <= byte <= 0x66:
        return byte - 0x57
    if 0x41 <= byte <= 0x46:
        return byte - 0x37
    return None
