"""Disassembly for the DAP `disassemble` request: capstone decodes the bytes, gdb's line table annotates them.

The only importer of capstone (docs/HOUSE-STYLE.md 2.2). x86 instructions have variable length, so reading *backwards*
from an address (a negative instructionOffset, as VS Code's disassembly view asks) needs a start point whose
decoding lands exactly on that address; x86 decoding resynchronises within a few instructions, so the furthest
candidate start that lands there gives the longest run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import capstone

MAX_INSN_SIZE = 15      # Intel SDM vol. 2, 2.3.11: no x86 instruction is longer
_SYNTAX = {"att": capstone.CS_OPT_SYNTAX_ATT, "intel": capstone.CS_OPT_SYNTAX_INTEL}


@dataclass(frozen=True, slots=True)
class Instruction:
    address: int
    size: int
    raw: bytes
    text: str


def decoder(flavor: str = "att") -> capstone.Cs:
    engine = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    engine.syntax = _SYNTAX.get(flavor, capstone.CS_OPT_SYNTAX_ATT)
    return engine


def decode(engine: capstone.Cs, code: bytes, address: int, stop_at: int | None = None) -> list[Instruction]:
    """Decode from `address`; stops at undecodable bytes or at the first instruction reaching `stop_at`."""
    out = []
    for insn in engine.disasm(code, address):
        if stop_at is not None and insn.address >= stop_at:
            break
        out.append(Instruction(insn.address, insn.size, bytes(insn.bytes), f"{insn.mnemonic} {insn.op_str}".strip()))
    return out


def _backwards(engine: capstone.Cs, code: bytes, base: int, address: int) -> list[Instruction]:
    """Instructions ending exactly at `address`, decoded from the furthest start in `code` that lands there."""
    for start in range(base, address):
        run = decode(engine, code[start - base:address - base], start, stop_at=address)
        if run and run[-1].address + run[-1].size == address:
            return run
    return []


def disassemble(read: Callable[[int, int], tuple[int, bytes]], address: int, instruction_offset: int, count: int,
                flavor: str = "att") -> list[Instruction | int]:
    """`count` instructions starting `instruction_offset` instructions from `address`.

    `read(addr, size)` returns (start, bytes) of the readable block holding `address` (bytes may be empty).
    Places with no readable, decodable code are returned as bare addresses for the caller to mark invalid."""
    engine = decoder(flavor)
    back = max(0, -instruction_offset)
    ahead = max(0, instruction_offset + count)
    lo = address - back * MAX_INSN_SIZE
    start, code = read(lo, (back + ahead + 1) * MAX_INSN_SIZE)
    before = _backwards(engine, code, start, address) if start < address else []
    after = decode(engine, code[max(0, address - start):], address) if start <= address else []
    listed: list[Instruction | int] = [*before, *after]
    index = len(before) + instruction_offset
    while index < 0:                       # pad in front: unreadable or undecodable before the known code
        first = listed[0] if listed else address
        listed.insert(0, (first.address if isinstance(first, Instruction) else first) - 1)
        index += 1
    while len(listed) < index + count:
        last = listed[-1] if listed else address - 1
        listed.append(last.address + last.size if isinstance(last, Instruction) else last + 1)
    return listed[index:index + count]


def to_dap(listed: list[Instruction | int], lines: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """DAP DisassembledInstruction rows; `lines` maps an address to gdb's symbol, file and line for it."""
    rows, last_path = [], None
    for item in listed:
        if isinstance(item, int):
            rows.append({"address": hex(item), "instruction": "??", "presentationHint": "invalid"})
            continue
        row: dict[str, Any] = {"address": hex(item.address), "instructionBytes": item.raw.hex(" "),
                               "instruction": item.text}
        where = lines.get(item.address)
        if where:
            if where.get("symbol"):
                row["symbol"] = where["symbol"]
            if where.get("path"):
                if where["path"] != last_path:
                    row["location"] = {"name": where["path"].rsplit("/", 1)[-1], "path": where["path"]}
                    last_path = where["path"]
                row["line"] = where["line"]
        rows.append(row)
    return rows
