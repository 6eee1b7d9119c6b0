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
    """address → {symbol, path, line} for code in [lo, hi), from gdb's mixed source/assembly listing."""
    try:
        listing = gdb.command(f"-data-disassemble -s {lo:#x} -e {hi:#x} -- 1")["asm_insns"]
    except GdbError:
        return {}
    table: dict[int, dict[str, Any]] = {}
    for item in listing:
        group = item.get("src_and_asm_line", item)
        insns = group.get("line_asm_insn", [group] if "address" in group else [])
        for insn in insns:
            where: dict[str, Any] = {}
            if "func-name" in insn:
                offset = int(insn.get("offset", "0"))
                where["symbol"] = insn["func-name"] + (f"+{offset}" if offset else "")
            if "fullname" in group and "line" in group:
                where["path"], where["line"] = group["fullname"], int(group["line"])
            table[int(insn["address"], 16)] = where
    return table
