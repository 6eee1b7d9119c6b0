"""g/G/p/P: registers as gdb's `g` layout (kdbg.arch.x86_64 regnum order, little-endian, each its own width).

A register the target's dict lacks is sent as `xx` bytes (unavailable), which gdb shows as <unavailable>.
A target may return the same register mapping while a thread stays stopped (LiveTarget while it is parked,
CoreTarget always; kdbg.target.Target.registers): its `g` encoding is then made once, which is what gdb's
`maintenance flush register-cache` and `info registers` ask again and again.
"""
from __future__ import annotations

from kdbg.arch.x86_64 import REGISTERS, Register
from kdbg.rsp.commands import command, parse_hex
from kdbg.rsp.errors import RspError
from kdbg.rsp.session import Session
from kdbg.target import NoSuchThreadError


def encode_value(reg: Register, value: int | None) -> bytes:
    if value is None:
        return b"xx" * reg.size
    return (value & ((1 << (8 * reg.size)) - 1)).to_bytes(reg.size, "little").hex().encode()


def decode_value(reg: Register, text: bytes) -> int | None:
    """The value of one register's hex field; None for `xx` (gdb leaves it alone)."""
    if len(text) != 2 * reg.size:
        raise RspError(f"{reg.name}: expected {reg.size} bytes")
    if text.lower().startswith(b"xx"):
        return None
    try:
        return int.from_bytes(bytes.fromhex(text.decode("ascii")), "little")
    except (ValueError, UnicodeDecodeError):
        raise RspError(f"{reg.name}: not hex") from None


_G_LAYOUT = tuple((reg.name, reg.size, (1 << (8 * reg.size)) - 1) for reg in REGISTERS)
_last_encoded: list = [None, b""]      # [the mapping last encoded (kept alive, so its id is never reused), its g]


def encode_registers(values: dict[str, int]) -> bytes:
    if values is _last_encoded[0]:
        return _last_encoded[1]
    get = values.get
    chunks: list[bytes] = []
    raw = bytearray()
    for name, size, mask in _G_LAYOUT:
        value = get(name)
        if value is None:
            chunks += (raw.hex().encode(), b"xx" * size)
            raw.clear()
        else:
            raw += (value & mask).to_bytes(size, "little")
    chunks.append(raw.hex().encode())
    encoded = b"".join(chunks)
    _last_encoded[:] = (values, encoded)
    return encoded


def decode_registers(data: bytes) -> dict[str, int]:
    """A G payload into {name: value}; a shorter payload sets a prefix of the registers (gdb's habit)."""
    values: dict[str, int] = {}
    pos = 0
    for reg in REGISTERS:
        end = pos + 2 * reg.size
        if end > len(data):
            break
        value = decode_value(reg, data[pos:end])
        if value is not None:
            values[reg.name] = value
        pos = end
    if pos != len(data):
        raise RspError("G: length does not match the register layout")
    return values


def _register(regnum: int) -> Register:
    if not 0 <= regnum < len(REGISTERS):
        raise RspError(f"no register {regnum}")
    return REGISTERS[regnum]


def current_registers(session: Session) -> dict[str, int]:
    """The registers of the thread g/p act on (Session.current_tid), without listing the process's threads when
    that is the thread gdb selected or the one that stopped: the target itself says when it is gone (~1 us of
    every g and p)."""
    inf = session.current
    tid = session.g_tid
    if tid <= 0:
        stop = inf.run.last_stop
        tid = stop.tid if stop is not None else 0
    if tid > 0:
        try:
            return inf.target.registers(tid)
        except NoSuchThreadError:
            pass                    # current_tid picks the next candidate
    return inf.target.registers(session.current_tid())


@command("g")
def read_all(session: Session) -> bytes:
    return encode_registers(current_registers(session))


@command("G", lambda rest: (rest,), needs_control=True)
def write_all(session: Session, data: bytes) -> bytes:
    session.live.write_registers(session.current_tid(), decode_registers(data))
    return b"OK"


@command("p", lambda rest: (parse_hex(rest),))
def read_one(session: Session, regnum: int) -> bytes:
    reg = _register(regnum)
    return encode_value(reg, current_registers(session).get(reg.name))


def _parse_p_write(rest: bytes) -> tuple[int, bytes]:
    regnum, sep, value = rest.partition(b"=")
    if not sep:
        raise ValueError("expected '='")
    return parse_hex(regnum), value


@command("P", _parse_p_write, needs_control=True)
def write_one(session: Session, regnum: int, text: bytes) -> bytes:
    reg = _register(regnum)
    value = decode_value(reg, text)
    if value is not None:
        session.live.write_registers(session.current_tid(), {reg.name: value})
    return b"OK"
