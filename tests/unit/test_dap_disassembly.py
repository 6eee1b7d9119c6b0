"""Disassembly around an address: forward, backward (x86 resynchronisation), padding where nothing decodes."""
from __future__ import annotations

from kdbg.dap.disassembly import Instruction, decode, decoder, disassemble, to_dap

# push %rbp; mov %rsp,%rbp; mov $3,-0x20(%rbp) (7 bytes); nop; ret
CODE = bytes.fromhex("55" "4889e5" "c745e003000000" "90" "c3")
BASE = 0x401000


def reader(code: bytes = CODE, base: int = BASE):
    def read(addr: int, size: int) -> tuple[int, bytes]:
        start = max(addr, base)
        return start, code[start - base:addr + size - base]
    return read


def test_forward_from_an_address():
    listed = disassemble(reader(), BASE, 0, 3)
    assert [(i.address - BASE, i.text) for i in listed] == [(0, "pushq %rbp"), (1, "movq %rsp, %rbp"),
                                                           (4, "movl $3, -0x20(%rbp)")]


def test_backwards_lands_on_instruction_boundaries():
    listed = disassemble(reader(), BASE + 11, -3, 6)
    assert [i.address - BASE if isinstance(i, Instruction) else i - BASE for i in listed] == [0, 1, 4, 11, 12, 13]
    assert isinstance(listed[-1], int)                 # past the readable code: an invalid row


def test_padding_before_readable_code_and_after_its_end():
    listed = disassemble(reader(), BASE, -2, 4)
    assert listed[:2] == [BASE - 2, BASE - 1] and isinstance(listed[2], Instruction)
    rows = to_dap(listed, {BASE: {"symbol": "main", "path": "/src/x.c", "line": 3}})
    assert rows[0] == {"address": hex(BASE - 2), "instruction": "??", "presentationHint": "invalid"}
    assert rows[2]["symbol"] == "main" and rows[2]["line"] == 3 and rows[2]["location"]["path"] == "/src/x.c"
    assert rows[2]["instructionBytes"] == "55"


def test_intel_flavor():
    assert decode(decoder("intel"), CODE[:1], BASE)[0].text == "push rbp"
