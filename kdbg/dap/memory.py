"""Guest memory and code locations through gdb: readMemory/writeMemory bytes, and gdb's address→line table.

gdb reads through km's stub (or the core file), so the bytes are the debuggee's as gdb sees them (km hides its
software breakpoints from memory reads). Addresses travel in DAP as `memoryReference` strings ("0x401000").
"""
from __future__ import annotations

import base64
from typing import Any

from .errors import GdbError, InvalidArgument
from .gdb_backend import Gdb


def parse_reference(reference: str | None, offset: int = 0) -> int:
    try:
        return int(str(reference), 0) + offset
    except ValueError:
        raise InvalidArgument("memoryReference", f"{reference!r} is not an address") from None


def read_block(gdb: Gdb, address: int, size: int) -> tuple[int, bytes]:
    """The readable bytes of [address, address+size) that form one run; (address, b"") if none."""
    try:
        blocks = gdb.command(f"-data-read-memory-bytes {address:#x} {size}")["memory"]
    except GdbError:
        return address, b""
    best = (address, b"")
    for block in blocks:
        begin, data = int(block["begin"], 16), bytes.fromhex(block["contents"])
        if len(data) > len(best[1]):
            best = (begin, data)
    return best


def read_memory(gdb: Gdb, address: int, count: int) -> dict[str, Any]:
    """DAP readMemory body: bytes from `address` until the first unreadable one."""
    start, data = read_block(gdb, address, count)
    data = data if start == address else b""
    body: dict[str, Any] = {"address": hex(address), "unreadableBytes": count - len(data)}
    if data:
        body["data"] = base64.b64encode(data).decode("ascii")
    return body


def write_memory(gdb: Gdb, address: int, data_b64: str) -> dict[str, Any]:
    try:
        data = base64.b64decode(data_b64, validate=True)
    except ValueError:
        raise InvalidArgument("data", "not base64") from None
    gdb.command(f"-data-write-memory-bytes {address:#x} {data.hex()}")
    return {"offset": 0, "bytesWritten": len(data)}


def line_table(gdb: Gdb, lo: int, hi: int) -> dict[int, dict[str, Any]]:
    """address → {symbol, path, line} for code in [lo, hi), from gdb's disassembly listings.

    Symbols come from the plain listing (mode 0). Lines come from the source-centric listing (mode 1), which
    omits a line whose code starts before `lo`, so it is asked from the start of the first function."""
    table: dict[int, dict[str, Any]] = {}
    try:
        plain = gdb.command(f"-data-disassemble -s {lo:#x} -e {hi:#x} -- 0")["asm_insns"]
    except GdbError:
        return table
    for insn in plain:
        offset = int(insn.get("offset", "0"))
        symbol = insn["func-name"] + (f"+{offset}" if offset else "") if "func-name" in insn else None
        table[int(insn["address"], 16)] = {"symbol": symbol} if symbol else {}
    first_offset = int(plain[0].get("offset", "0")) if plain else 0
    for start in (lo - first_offset, lo) if first_offset else (lo,):
        try:
            mixed = gdb.command(f"-data-disassemble -s {start:#x} -e {hi:#x} -- 1")["asm_insns"]
        except GdbError:
            continue
        for item in mixed:
            group = item.get("src_and_asm_line", item)
            for insn in group.get("line_asm_insn", []):
                address = int(insn["address"], 16)
                if address in table and "fullname" in group:
                    table[address].update(path=group["fullname"], line=int(group["line"]))
        break
    return table
