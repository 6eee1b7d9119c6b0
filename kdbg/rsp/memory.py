"""m/M/X: guest memory through target.read_memory/write_memory.

Breakpoint shadowing is the target's job (LiveTarget hides its int3 bytes), so `x/` shows the real text.
Reads that run into unmapped memory return the readable prefix, as gdbserver does; none readable is E14.
"""
from __future__ import annotations

import binascii

from kdbg.arch.linux import PAGE_SIZE as PAGE
from kdbg.rsp.commands import command, hex_fields
from kdbg.rsp.errors import EFAULT, RspError
from kdbg.rsp.packets import PACKET_SIZE, unescape
from kdbg.rsp.session import Session
from kdbg.target import GuestMemoryError

MAX_READ = PACKET_SIZE // 2     # bytes per m reply: 2 hex digits per byte
ADDRESS_LIMIT = 1 << 64


def read_prefix(session: Session, addr: int, length: int) -> bytes:
    """As many bytes from addr as are readable, up to length (page by page after a failure)."""
    length = min(length, MAX_READ, ADDRESS_LIMIT - addr)
    if length <= 0:
        return b""
    try:
        return session.target.read_memory(addr, length)
    except GuestMemoryError:
        pass
    out = bytearray()
    while len(out) < length:
        cur = addr + len(out)
        chunk = min(length - len(out), PAGE - cur % PAGE)
        try:
            out += session.target.read_memory(cur, chunk)
        except GuestMemoryError:
            break
    return bytes(out)


@command("m", hex_fields(b","))
def read_memory(session: Session, addr: int, length: int) -> bytes:
    if addr >= ADDRESS_LIMIT:
        raise RspError("address beyond 64 bits")
    if length == 0:
        return b""
    data = read_prefix(session, addr, length)
    if not data:
        raise RspError(f"cannot read {addr:#x}", EFAULT)
    return binascii.hexlify(data)


def _parse_write(rest: bytes) -> tuple[int, int, bytes]:
    header, sep, data = rest.partition(b":")
    if not sep:
        raise ValueError("expected ':'")
    addr, length = hex_fields(b",")(header)
    return addr, length, data


def _write(session: Session, addr: int, length: int, data: bytes) -> bytes:
    if len(data) != length:
        raise RspError(f"length {length:#x} does not match {len(data):#x} data bytes")
    if addr + length > ADDRESS_LIMIT:
        raise RspError("address beyond 64 bits")
    if length:
        session.live.write_memory(addr, data)
    return b"OK"


@command("M", _parse_write, needs_control=True)
def write_memory_hex(session: Session, addr: int, length: int, text: bytes) -> bytes:
    try:
        data = bytes.fromhex(text.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise RspError("M: data is not hex") from None
    return _write(session, addr, length, data)


@command("X", _parse_write, needs_control=True)
def write_memory_binary(session: Session, addr: int, length: int, escaped: bytes) -> bytes:
    try:
        data = unescape(escaped)
    except ValueError as exc:
        raise RspError(f"X: {exc}") from None
    return _write(session, addr, length, data)

