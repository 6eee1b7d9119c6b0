"""THE x86-64 register table: one row per register gdb knows, and every layout derived from it.

The order is gdb's amd64-linux order (features/i386/64bit-{core,sse,linux,segments,avx}.xml): `regnum` is the
position in the `g` packet and in the target description. Each row also says where the register lives in
Linux's `struct user_regs_struct` (NT_PRSTATUS, include/uapi/asm/ptrace.h... via sys/user.h) and in the
FXSAVE/XSAVE image (NT_PRFPREG, NT_X86_XSTATE, KVM_GET_XSAVE), so the stub, the core files and the monitor
never restate an offset. Only the stdlib may be imported here.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Register:
    name: str
    bits: int
    regnum: int
    feature: str            # gdb feature name, e.g. "org.gnu.gdb.i386.core"
    type: str               # gdb tdesc type: int64, code_ptr, data_ptr, i386_eflags, i387_ext, vec128, ...
    group: str = ""         # gdb register group ("general", "float", "vector", "system")
    fxsave_offset: int | None = None    # byte offset in the 512-byte FXSAVE image (first part of XSAVE)
    xsave_offset: int | None = None     # byte offset in the standard-format XSAVE image (beyond FXSAVE)

    @property
    def size(self) -> int:
        return (self.bits + 7) // 8


CORE = "org.gnu.gdb.i386.core"
SSE = "org.gnu.gdb.i386.sse"
LINUX = "org.gnu.gdb.i386.linux"
SEGMENTS = "org.gnu.gdb.i386.segments"
AVX = "org.gnu.gdb.i386.avx"

# struct user_regs_struct (sys/user.h), the NT_PRSTATUS pr_reg layout: 27 words in this order.
USER_REGS = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi",
             "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs")

# struct kvm_regs (linux/kvm.h): 18 words. rflags is gdb's "eflags".
KVM_REGS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11", "r12", "r13",
            "r14", "r15", "rip", "eflags")

GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp") + tuple(f"r{i}" for i in range(8, 16))
SEGMENT_SELECTORS = ("cs", "ss", "ds", "es", "fs", "gs")

XSAVE_YMM_HI_OFFSET = 576     # XSAVE component 2 (AVX, YMM_Hi128), standard format, Intel and AMD alike
XSAVE_HEADER_OFFSET = 512     # XSTATE_BV is the first word of the header
FXSAVE_SIZE = 512


def _build() -> tuple[Register, ...]:
    rows: list[Register] = []

    def add(name: str, bits: int, feature: str, type_: str, group: str = "", **kw: int) -> None:
        rows.append(Register(name, bits, len(rows), feature, type_, group, **kw))

    for name in GPRS:
        add(name, 64, CORE, {"rbp": "data_ptr", "rsp": "data_ptr"}.get(name, "int64"), "general")
    add("rip", 64, CORE, "code_ptr", "general")
    add("eflags", 32, CORE, "i386_eflags", "general")
    for name in SEGMENT_SELECTORS:
        add(name, 32, CORE, "int32", "general")
    for i in range(8):
        add(f"st{i}", 80, CORE, "i387_ext", "float", fxsave_offset=32 + 16 * i)
    for name, off in (("fctrl", 0), ("fstat", 2), ("ftag", 4), ("fiseg", 12), ("fioff", 8), ("foseg", 20),
                      ("fooff", 16), ("fop", 6)):
        add(name, 32, CORE, "int", "float", fxsave_offset=off)
    for i in range(16):
        add(f"xmm{i}", 128, SSE, "vec128", "vector", fxsave_offset=160 + 16 * i)
    add("mxcsr", 32, SSE, "i386_mxcsr", "vector", fxsave_offset=24)
    add("orig_rax", 64, LINUX, "int", "system")
    add("fs_base", 64, SEGMENTS, "int", "system")
    add("gs_base", 64, SEGMENTS, "int", "system")
    for i in range(16):
        add(f"ymm{i}h", 128, AVX, "uint128", "vector", xsave_offset=XSAVE_YMM_HI_OFFSET + 16 * i)
    return tuple(rows)


REGISTERS: tuple[Register, ...] = _build()
BY_NAME: dict[str, Register] = {r.name: r for r in REGISTERS}
FEATURES: tuple[str, ...] = tuple(dict.fromkeys(r.feature for r in REGISTERS))
PC = "rip"
SP = "rsp"

# The width, in bytes, of each FXSAVE field: the rest of a 32-bit gdb register is zero-extended.
_FXSAVE_FIELD_SIZE = {"fctrl": 2, "fstat": 2, "ftag": 1, "fop": 2, "fiseg": 2, "fioff": 4, "foseg": 2,
                      "fooff": 4, "mxcsr": 4}


def zero_registers() -> dict[str, int]:
    """A register file in reset state (x87 control word and MXCSR as after FNINIT/LDMXCSR defaults)."""
    regs = {r.name: 0 for r in REGISTERS}
    regs.update(fctrl=0x37F, mxcsr=0x1F80, ftag=0xFFFF, eflags=0x202)
    return regs


def _x87_tag(st_raw: bytes) -> int:
    """The 2-bit full tag of one 80-bit register (valid 0, zero 1, special 2), as the FSAVE tag word holds it."""
    mantissa = int.from_bytes(st_raw[:8], "little")
    exponent = int.from_bytes(st_raw[8:10], "little") & 0x7FFF
    if exponent == 0x7FFF:
        return 2
    if exponent == 0:
        return 1 if mantissa == 0 else 2
    return 0 if mantissa >> 63 else 2


def fxsave_to_registers(image: bytes) -> dict[str, int]:
    """Decode a FXSAVE image (or an XSAVE image's first 512 bytes) into gdb's x87/SSE registers.

    FXSAVE keeps an abridged tag (one bit per register, set = not empty); gdb wants the full FSAVE tag word,
    rebuilt from the register contents as the kernel and gdb (i387_supply_fxsave) do."""
    regs: dict[str, int] = {}
    for reg in REGISTERS:
        if reg.fxsave_offset is None:
            continue
        off = reg.fxsave_offset
        size = _FXSAVE_FIELD_SIZE.get(reg.name, reg.size)
        regs[reg.name] = int.from_bytes(image[off:off + size], "little")
    regs["fop"] &= 0x7FF
    abridged = regs["ftag"]
    top = (regs["fstat"] >> 11) & 7
    full = 0
    for phys in range(8):
        if abridged & (1 << phys):
            st_index = (phys - top) & 7
            raw = image[32 + 16 * st_index: 42 + 16 * st_index]
            full |= _x87_tag(raw) << (2 * phys)
        else:
            full |= 3 << (2 * phys)
    regs["ftag"] = full
    return regs


def registers_to_fxsave(regs: dict[str, int], image: bytearray) -> None:
    """Encode gdb's x87/SSE registers into a FXSAVE image in place (the inverse of fxsave_to_registers)."""
    for reg in REGISTERS:
        if reg.fxsave_offset is None or reg.name not in regs:
            continue
        value = regs[reg.name]
        if reg.name == "ftag":
            value = sum(1 << i for i in range(8) if ((value >> (2 * i)) & 3) != 3)
        size = _FXSAVE_FIELD_SIZE.get(reg.name, reg.size)
        image[reg.fxsave_offset:reg.fxsave_offset + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def xsave_to_registers(image: bytes) -> dict[str, int]:
    """x87/SSE from the legacy area plus the AVX upper halves (zero when XSTATE_BV says AVX is in init state)."""
    regs = fxsave_to_registers(image[:FXSAVE_SIZE])
    xstate_bv = struct.unpack_from("<Q", image, XSAVE_HEADER_OFFSET)[0] if len(image) >= 520 else 0
    for reg in REGISTERS:
        if reg.xsave_offset is not None:
            off = reg.xsave_offset
            regs[reg.name] = int.from_bytes(image[off:off + 16], "little") if xstate_bv & 4 else 0
    return regs


def registers_to_xsave(regs: dict[str, int], image: bytearray) -> None:
    """Write x87/SSE/AVX values into a standard-format XSAVE image, marking the x87, SSE and AVX components
    as present in XSTATE_BV so that XRSTOR loads them."""
    registers_to_fxsave(regs, image)
    wrote_avx = False
    for reg in REGISTERS:
        if reg.xsave_offset is not None and reg.name in regs:
            image[reg.xsave_offset:reg.xsave_offset + 16] = regs[reg.name].to_bytes(16, "little")
            wrote_avx = True
    if len(image) >= 520:
        xstate_bv = struct.unpack_from("<Q", image, XSAVE_HEADER_OFFSET)[0] | 3 | (4 if wrote_avx else 0)
        struct.pack_into("<Q", image, XSAVE_HEADER_OFFSET, xstate_bv)


def pack_user_regs(regs: dict[str, int]) -> bytes:
    """struct user_regs_struct (NT_PRSTATUS pr_reg)."""
    return struct.pack("<27Q", *(regs.get(name, 0) & (2**64 - 1) for name in USER_REGS))


def unpack_user_regs(data: bytes) -> dict[str, int]:
    return dict(zip(USER_REGS, struct.unpack_from("<27Q", data)))
