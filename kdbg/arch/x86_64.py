"""THE x86-64 register table: one row per register gdb knows, and every layout derived from it.

The order is gdb's amd64-linux order (features/i386/64bit-{core,sse,linux,segments,avx}.xml): `regnum` is the
position in the `g` packet and in the target description. Each row also says where the register lives in
Linux's `struct user_regs_struct` (NT_PRSTATUS, include/uapi/asm/ptrace.h... via sys/user.h) and in the
FXSAVE/XSAVE image (NT_PRFPREG, NT_X86_XSTATE, KVM_GET_XSAVE), so the stub, the core files and the monitor
never restate an offset. Only the stdlib may be imported here.
"""
from __future__ import annotations

import os
import struct
from typing import NamedTuple


class Register(NamedTuple):
    name: str
    bits: int
    regnum: int
    feature: str            # gdb feature name, e.g. "org.gnu.gdb.i386.core"
    type: str               # gdb tdesc type: int64, code_ptr, data_ptr, i386_eflags, i387_ext, vec128, ...
    group: str = ""         # gdb register group ("general", "float", "vector", "system")
    fxsave_offset: int | None = None    # byte offset in the 512-byte FXSAVE image (first part of XSAVE)
    xsave_offset: int | None = None     # byte offset in Intel's standard-format XSAVE image (beyond FXSAVE)
    xsave_component: int = 0            # its XSAVE state component (XSTATE_BV/XCR0 bit): 2 AVX, 5-7 AVX-512

    @property
    def size(self) -> int:
        return (self.bits + 7) // 8


CORE = "org.gnu.gdb.i386.core"
SSE = "org.gnu.gdb.i386.sse"
LINUX = "org.gnu.gdb.i386.linux"
SEGMENTS = "org.gnu.gdb.i386.segments"
AVX = "org.gnu.gdb.i386.avx"
AVX512 = "org.gnu.gdb.i386.avx512"

# struct user_regs_struct (sys/user.h), the NT_PRSTATUS pr_reg layout: 27 words in this order.
USER_REGS = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi",
             "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs")

# struct kvm_regs (linux/kvm.h): 18 words. rflags is gdb's "eflags".
KVM_REGS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11", "r12", "r13",
            "r14", "r15", "rip", "eflags")

GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp") + tuple(f"r{i}" for i in range(8, 16))
SEGMENT_SELECTORS = ("cs", "ss", "ds", "es", "fs", "gs")

# Intel's standard-format XSAVE offsets (CPUID 0xD sub-leaf EBX), the layout gdb 13 assumes for every
# NT_X86_XSTATE (i387-tdep.c) and so the one kmcore writes. A CPU may place components elsewhere (AMD Zen 4,
# without MPX's components 3 and 4, puts k0-7 at 832): KVM_GET_XSAVE images use the CPU's own layout, which the
# monitor reads from CPUID and passes as `layout` (component -> offset).
XSAVE_YMM_HI_OFFSET = 576     # component 2 (AVX: YMM_Hi128)
XSAVE_OPMASK_OFFSET = 1088    # component 5 (AVX-512: k0-k7)
XSAVE_ZMM_HI256_OFFSET = 1152  # component 6 (AVX-512: the upper 256 bits of zmm0-15)
XSAVE_HI16_ZMM_OFFSET = 1664  # component 7 (AVX-512: zmm16-31 whole)
XSAVE_AVX512_END = 2688       # the image through component 7
XCR0_AVX512 = 0xE0            # components 5, 6, 7
XsaveLayout = dict[int, int]
INTEL_LAYOUT: XsaveLayout = {2: XSAVE_YMM_HI_OFFSET, 5: XSAVE_OPMASK_OFFSET, 6: XSAVE_ZMM_HI256_OFFSET,
                             7: XSAVE_HI16_ZMM_OFFSET}
XSAVE_HEADER_OFFSET = 512     # XSTATE_BV is the first word of the header
FXSAVE_SIZE = 512


def _build(with_avx512: bool) -> tuple[Register, ...]:
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
        add(f"ymm{i}h", 128, AVX, "uint128", "vector", xsave_offset=XSAVE_YMM_HI_OFFSET + 16 * i, xsave_component=2)
    if not with_avx512:
        return tuple(rows)
    # gdb's features/i386/64bit-avx512.xml order: xmm16-31, ymm16h-31h, k0-7, zmm0h-31h (upper 256 bits)
    for i in range(16, 32):
        add(f"xmm{i}", 128, AVX512, "vec128", "vector", xsave_offset=XSAVE_HI16_ZMM_OFFSET + 64 * (i - 16),
            xsave_component=7)
    for i in range(16, 32):
        add(f"ymm{i}h", 128, AVX512, "uint128", "vector", xsave_offset=XSAVE_HI16_ZMM_OFFSET + 64 * (i - 16) + 16,
            xsave_component=7)
    for i in range(8):
        add(f"k{i}", 64, AVX512, "uint64", "vector", xsave_offset=XSAVE_OPMASK_OFFSET + 8 * i, xsave_component=5)
    for i in range(32):
        offset, component = ((XSAVE_ZMM_HI256_OFFSET + 32 * i, 6) if i < 16 else
                             (XSAVE_HI16_ZMM_OFFSET + 64 * (i - 16) + 32, 7))
        add(f"zmm{i}h", 256, AVX512, "v2ui128", "vector", xsave_offset=offset, xsave_component=component)
    return tuple(rows)


def _host_has_avx512() -> bool:
    """Whether this CPU (and the kernel, which lists only what it enabled in XCR0) has AVX-512 Foundation: the
    register set the stub describes and the cores carry. KM_NO_AVX512=1 describes a CPU without it."""
    if os.environ.get("KM_NO_AVX512"):
        return False
    try:
        with open("/proc/cpuinfo", "rb") as f:
            for line in f:
                if line.startswith(b"flags"):
                    return b" avx512f" in line
    except OSError:
        pass
    return False


HAS_AVX512: bool = _host_has_avx512()
REGISTERS: tuple[Register, ...] = _build(HAS_AVX512)
XCR0: int = 0x7 | (XCR0_AVX512 if HAS_AVX512 else 0)        # x87, SSE, AVX (+ AVX-512): what the stub shows
XSAVE_SIZE: int = XSAVE_AVX512_END if HAS_AVX512 else XSAVE_YMM_HI_OFFSET + 256   # an image holding all of it
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


ZEN4_LAYOUT: XsaveLayout = {2: XSAVE_YMM_HI_OFFSET, 5: 832, 6: 896, 7: 1408}     # AMD, no MPX components
_ZEN4_SIZE = 2432


def guess_xsave_layout(image: bytes) -> XsaveLayout:
    """The layout of a core's NT_X86_XSTATE, told from its size as gdb 14's i387_guess_xsave_layout does: a kernel
    on AMD Zen 4 writes its own (2432 bytes with AVX-512); Intel's otherwise, which is what kmcore writes."""
    return ZEN4_LAYOUT if len(image) == _ZEN4_SIZE else INTEL_LAYOUT


def _xsave_offset(reg: Register, layout: XsaveLayout) -> int:
    assert reg.xsave_offset is not None
    return reg.xsave_offset - INTEL_LAYOUT[reg.xsave_component] + layout.get(reg.xsave_component, 1 << 20)


def xsave_to_registers(image: bytes, layout: XsaveLayout = INTEL_LAYOUT) -> dict[str, int]:
    """x87/SSE from the legacy area plus the AVX (and AVX-512) components: zero when XSTATE_BV says a component
    is in its init state, absent when the image is too short to hold it (a core from a CPU without it)."""
    regs = fxsave_to_registers(image[:FXSAVE_SIZE])
    xstate_bv = struct.unpack_from("<Q", image, XSAVE_HEADER_OFFSET)[0] if len(image) >= 520 else 0
    for reg in REGISTERS:
        if reg.xsave_offset is not None:
            off = _xsave_offset(reg, layout)
            if off + reg.size > len(image):
                continue
            in_use = xstate_bv & (1 << reg.xsave_component)
            regs[reg.name] = int.from_bytes(image[off:off + reg.size], "little") if in_use else 0
    return regs


def registers_to_xsave(regs: dict[str, int], image: bytearray, layout: XsaveLayout = INTEL_LAYOUT) -> None:
    """Write x87/SSE/AVX values into a standard-format XSAVE image, marking the x87, SSE and AVX components
    as present in XSTATE_BV so that XRSTOR loads them."""
    registers_to_fxsave(regs, image)
    xstate_bv = struct.unpack_from("<Q", image, XSAVE_HEADER_OFFSET)[0] if len(image) >= 520 else 0
    places = [(reg, _xsave_offset(reg, layout)) for reg in REGISTERS if reg.xsave_offset is not None]
    places = [(reg, off) for reg, off in places if off + reg.size <= len(image)]
    for reg, off in places:         # a component in its init state holds stale bytes: zero it before it is used
        if not xstate_bv & (1 << reg.xsave_component):
            image[off:off + reg.size] = bytes(reg.size)
    written = 0
    for reg, off in places:
        if reg.name in regs:
            mask = (1 << (8 * reg.size)) - 1
            image[off:off + reg.size] = (regs[reg.name] & mask).to_bytes(reg.size, "little")
            written |= 1 << reg.xsave_component
    if len(image) >= 520:
        struct.pack_into("<Q", image, XSAVE_HEADER_OFFSET, xstate_bv | 3 | written)


def pack_user_regs(regs: dict[str, int]) -> bytes:
    """struct user_regs_struct (NT_PRSTATUS pr_reg)."""
    return struct.pack("<27Q", *(regs.get(name, 0) & (2**64 - 1) for name in USER_REGS))


def unpack_user_regs(data: bytes) -> dict[str, int]:
    return dict(zip(USER_REGS, struct.unpack_from("<27Q", data)))
