"""On-disk layouts of an x86-64 Linux ELF core file, declared once: the writer packs them, the reader unpacks them.

Each structure mirrors the kernel header named in its docstring; ctypes derives the offsets from C's alignment
rules, and tests/unit/test_core_layouts.py checks every field against the C compiler (<sys/procfs.h>, <elf.h>,
<signal.h>). Register contents are never laid out here: pr_reg is packed by kdbg.arch.x86_64.pack_user_regs and
the FXSAVE/XSAVE images by registers_to_fxsave/registers_to_xsave.
"""
from __future__ import annotations

import ctypes
import enum
import struct
from dataclasses import dataclass
from typing import TypeVar

# the core's own layouts re-export the Linux ABI's (kdbg/arch/linux.py is their one home)
from kdbg.arch.linux import AT_ENTRY, AT_PHDR, PAGE_SIZE, SI_KERNEL, SIGINFO_SIZE, parse_auxv  # noqa: F401
from kdbg.arch.siginfo import siginfo_t  # noqa: F401
from kdbg.arch.x86_64 import USER_REGS

# ctypes' LittleEndianStructure/Union keep the layout right even if this ever runs on a big-endian host.
_Struct = ctypes.LittleEndianStructure
_Union = ctypes.LittleEndianUnion

c_char, c_short, c_int, c_uint = ctypes.c_char, ctypes.c_int16, ctypes.c_int32, ctypes.c_uint32
c_long, c_ulong, c_ushort, c_uchar = ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint16, ctypes.c_uint8


S = TypeVar("S", bound=ctypes.Structure)     # from_bytes returns the layout it is given


class NoteType(enum.IntEnum):
    """n_type values of core notes (include/uapi/linux/elf.h)."""

    NT_PRSTATUS = 1
    NT_PRFPREG = 2
    NT_PRPSINFO = 3
    NT_AUXV = 6
    NT_X86_XSTATE = 0x202
    NT_SIGINFO = 0x53494749
    NT_FILE = 0x46494C45


# The note owner: "LINUX" for the arch-specific regsets the kernel added later, "CORE" for the SVR4 ones
# (fs/binfmt_elf.c fill_thread_core_info: `is_fpreg ? "CORE" : "LINUX"`).
NOTE_OWNER = {NoteType.NT_X86_XSTATE: b"LINUX"}
NOTE_OWNER_DEFAULT = b"CORE"
NOTE_ALIGN = 4          # core notes are 4-byte aligned even on 64-bit (fs/binfmt_elf.c writenote)

# ELF constants (include/uapi/linux/elf.h).
ELFMAG = b"\x7fELF"
ELFCLASS64, ELFDATA2LSB, EV_CURRENT, ELFOSABI_NONE = 2, 1, 1, 0
ET_CORE, EM_X86_64 = 4, 62
PT_LOAD, PT_NOTE = 1, 4
PF_X, PF_W, PF_R = 1, 2, 4
PN_XNUM = 0xFFFF        # e_phnum overflow marker: the real count lives in section header 0's sh_info

# struct user_xstateregs (arch/x86/include/asm/user.h): bytes 464..471 of the NT_X86_XSTATE image hold the
# XCR0 the kernel enabled (USER_XSTATE_XCR0_WORD); gdb picks the core's target description from it.
XSTATE_XCR0_OFFSET = 464
# The XCR0 value and the image size come from kdbg.arch.x86_64 (XCR0, XSAVE_SIZE): AVX-512 where the CPU has it.


class Elf64_Ehdr(_Struct):
    """include/uapi/linux/elf.h elf64_hdr."""

    _fields_ = [("e_ident", c_uchar * 16), ("e_type", c_ushort), ("e_machine", c_ushort), ("e_version", c_uint),
                ("e_entry", c_ulong), ("e_phoff", c_ulong), ("e_shoff", c_ulong), ("e_flags", c_uint),
                ("e_ehsize", c_ushort), ("e_phentsize", c_ushort), ("e_phnum", c_ushort),
                ("e_shentsize", c_ushort), ("e_shnum", c_ushort), ("e_shstrndx", c_ushort)]


class Elf64_Phdr(_Struct):
    """include/uapi/linux/elf.h elf64_phdr."""

    _fields_ = [("p_type", c_uint), ("p_flags", c_uint), ("p_offset", c_ulong), ("p_vaddr", c_ulong),
                ("p_paddr", c_ulong), ("p_filesz", c_ulong), ("p_memsz", c_ulong), ("p_align", c_ulong)]


class Elf64_Shdr(_Struct):
    """include/uapi/linux/elf.h elf64_shdr: only written as section 0, for the PN_XNUM extension."""

    _fields_ = [("sh_name", c_uint), ("sh_type", c_uint), ("sh_flags", c_ulong), ("sh_addr", c_ulong),
                ("sh_offset", c_ulong), ("sh_size", c_ulong), ("sh_link", c_uint), ("sh_info", c_uint),
                ("sh_addralign", c_ulong), ("sh_entsize", c_ulong)]


class Elf64_Nhdr(_Struct):
    """include/uapi/linux/elf.h elf64_note."""

    _fields_ = [("n_namesz", c_uint), ("n_descsz", c_uint), ("n_type", c_uint)]


class elf_siginfo(_Struct):
    """include/uapi/linux/elfcore.h struct elf_siginfo (note: code before errno, unlike siginfo_t)."""

    _fields_ = [("si_signo", c_int), ("si_code", c_int), ("si_errno", c_int)]


class timeval(_Struct):
    """include/uapi/linux/time_types.h struct __kernel_old_timeval."""

    _fields_ = [("tv_sec", c_long), ("tv_usec", c_long)]


class elf_prstatus(_Struct):
    """NT_PRSTATUS: include/linux/elfcore.h struct elf_prstatus (= elf_prstatus_common + pr_reg + pr_fpvalid)."""

    _fields_ = [("pr_info", elf_siginfo), ("pr_cursig", c_short), ("pr_sigpend", c_ulong),
                ("pr_sighold", c_ulong), ("pr_pid", c_int), ("pr_ppid", c_int), ("pr_pgrp", c_int),
                ("pr_sid", c_int), ("pr_utime", timeval), ("pr_stime", timeval), ("pr_cutime", timeval),
                ("pr_cstime", timeval), ("pr_reg", c_ulong * len(USER_REGS)), ("pr_fpvalid", c_int)]


ELF_PRARGSZ = 80


class elf_prpsinfo(_Struct):
    """NT_PRPSINFO: include/linux/elfcore.h struct elf_prpsinfo."""

    _fields_ = [("pr_state", c_char), ("pr_sname", c_char), ("pr_zomb", c_char), ("pr_nice", c_char),
                ("pr_flag", c_ulong), ("pr_uid", c_uint), ("pr_gid", c_uint), ("pr_pid", c_int),
                ("pr_ppid", c_int), ("pr_pgrp", c_int), ("pr_sid", c_int), ("pr_fname", c_char * 16),
                ("pr_psargs", c_char * ELF_PRARGSZ)]




def from_bytes(layout: type[S], data: bytes) -> S:
    """Unpack `data` into `layout`, zero-padding a short note (an older or foreign writer's) instead of failing."""
    size = ctypes.sizeof(layout)
    return layout.from_buffer_copy(bytes(data[:size]).ljust(size, b"\0"))


def pack_note(note_type: NoteType, desc: bytes) -> bytes:
    """One of the kernel's core notes, with the owner the kernel gives it."""
    return pack_owned_note(NOTE_OWNER.get(note_type, NOTE_OWNER_DEFAULT), int(note_type), desc)


def pack_owned_note(owner: bytes, note_type: int, desc: bytes) -> bytes:
    """One ELF note: Elf64_Nhdr, the owner name with its NUL, the descriptor, each padded to NOTE_ALIGN."""
    name = owner + b"\0"
    header = bytes(Elf64_Nhdr(len(name), len(desc), note_type))
    return header + _pad(name) + _pad(desc)


def iter_notes(data: bytes):
    """(owner, n_type, desc) of each note in a PT_NOTE segment's bytes; ValueError when one runs past the end."""
    offset, header_size = 0, ctypes.sizeof(Elf64_Nhdr)
    while offset + header_size <= len(data):
        header = Elf64_Nhdr.from_buffer_copy(data, offset)
        name_at = offset + header_size
        desc_at = name_at + header.n_namesz + (-header.n_namesz % NOTE_ALIGN)
        end = desc_at + header.n_descsz
        if end > len(data):
            raise ValueError(f"note at {offset:#x} runs past its segment")
        yield data[name_at:name_at + header.n_namesz].rstrip(b"\0"), header.n_type, data[desc_at:end]
        offset = end + (-header.n_descsz % NOTE_ALIGN)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % NOTE_ALIGN)


@dataclass(frozen=True, slots=True)
class FileMapping:
    """One NT_FILE entry: [start, end) maps `path` from byte `offset`."""

    start: int
    end: int
    offset: int
    path: str


def pack_nt_file(entries: list[FileMapping]) -> bytes:
    """NT_FILE (fs/binfmt_elf.c fill_files_note): long count, long page_size, count * {start, end, file_ofs in
    pages}, then the count file names, each NUL-terminated."""
    head = struct.pack("<QQ", len(entries), PAGE_SIZE)
    table = b"".join(struct.pack("<QQQ", e.start, e.end, e.offset // PAGE_SIZE) for e in entries)
    names = b"".join(e.path.encode(errors="surrogateescape") + b"\0" for e in entries)
    return head + table + names


def parse_nt_file(data: bytes) -> list[FileMapping]:
    if len(data) < 16:
        return []
    count, page_size = struct.unpack_from("<QQ", data)
    names_at = 16 + 24 * count
    if names_at > len(data):
        return []
    names = data[names_at:].split(b"\0")
    result = []
    for i in range(count):
        start, end, file_ofs = struct.unpack_from("<QQQ", data, 16 + 24 * i)
        name = names[i].decode(errors="surrogateescape") if i < len(names) else ""
        result.append(FileMapping(start, end, file_ofs * page_size, name))
    return result
