"""Writes any stopped kdbg.target.Target as an x86-64 Linux ELF core file (kmcore) that gdb, lldb and readelf read.

Notes come in the kernel's order (fs/binfmt_elf.c write_note_info): the crashing thread's NT_PRSTATUS, the
process notes (NT_PRPSINFO, NT_SIGINFO, NT_AUXV, NT_FILE), its NT_PRFPREG and NT_X86_XSTATE; then each other
thread's NT_PRSTATUS, NT_PRFPREG, NT_X86_XSTATE. gdb selects the first NT_PRSTATUS's thread and ties an
NT_SIGINFO to the NT_PRSTATUS before it. One PT_LOAD per mapping follows, its data page aligned.
"""
from __future__ import annotations

import ctypes
import os
import stat
import struct
import time
from dataclasses import dataclass
from typing import BinaryIO, Callable, Sequence, TypeVar

from kdbg.arch.x86_64 import (
    FXSAVE_SIZE, USER_REGS, XCR0, XSAVE_SIZE, pack_user_regs, registers_to_fxsave, registers_to_xsave, zero_registers)
from kdbg.core.errors import CoreError
from kdbg.core.layouts import (
    ELF_PRARGSZ, ELFCLASS64, ELFDATA2LSB, ELFMAG, ELFOSABI_NONE, EM_X86_64, ET_CORE, EV_CURRENT, NOTE_ALIGN,
    PAGE_SIZE, PF_R, PF_W, PF_X, PN_XNUM, PT_LOAD, PT_NOTE, SI_KERNEL, SIGINFO_SIZE, XSTATE_XCR0_OFFSET, Elf64_Ehdr, Elf64_Phdr, Elf64_Shdr, FileMapping, NoteType, elf_prpsinfo,
    elf_prstatus, pack_note, pack_nt_file, siginfo_t)
from kdbg.target import MemoryRegion, Target, TargetError
from kdbg.tracelog import logger

__all__ = ["write_core", "CoreError"]

log = logger("km.core")
T = TypeVar("T")

_NO_REGIONS: Sequence[MemoryRegion] = ()       # the typed defaults of _call for a failed part
_NO_TIDS: Sequence[int] = ()
_NO_REGISTERS: dict[str, int] = {}
_CHUNK = 1 << 20    # bytes read from the target per call; big enough to amortise, small enough to stream


# The parts of a mapping whose contents go into the core (sorted, disjoint, inside it); the rest of it is a PT_LOAD
# without data, as the kernel writes unmodified file-backed text (gdb then reads it from the file).
Dump = Callable[[MemoryRegion], Sequence[tuple[int, int]]]


def write_core(target: Target, path: str | os.PathLike, *, signal: int, crashing_tid: int | None = None,
               extra_notes: bytes = b"", dump: Dump | None = None) -> None:
    """Write `target` as a core file at `path`, the process killed by `signal` in `crashing_tid`.

    `crashing_tid` defaults to the first thread whose stop event carries `signal`. `extra_notes` (packed notes of
    another owner, such as a snapshot's) follow the kernel's; `dump` chooses what memory is written (default: all
    of every mapping with any right). Anything the target cannot give (a register file, a page of a mapping, the
    auxv) is written as zeros or left out; only a file that cannot be written raises, as CoreError("<path>: <OS
    problem>"), after removing what was written of it."""
    started = time.monotonic()
    tids = _thread_order(target, signal, crashing_tid)
    regions = sorted((r for r in _call(target.mappings, _NO_REGIONS) if r.end > r.start), key=lambda r: r.start)
    notes = _notes(target, tids, signal, regions) + extra_notes
    segments = _segments(regions, dump or _dump_accessible)
    headers, size = _headers(notes, segments)
    try:
        with open(path, "wb") as out:
            out.write(headers)
            out.write(notes)
            for segment in segments:
                if segment.offset is not None:
                    out.seek(segment.offset)
                    _copy_region(target, segment, out)
            out.truncate(size)
    except OSError as error:
        _remove_partial(path)
        raise CoreError(path, error.strerror or str(error)) from error
    log.info("core %s: %d threads, %d mappings, %d bytes in %.2fs", path, len(tids), len(regions), size,
             time.monotonic() - started)


@dataclass
class _Segment:
    """One PT_LOAD: [start, end) with the region's rights; `offset` of its data in the file, None for none."""

    start: int
    end: int
    perms: str
    has_data: bool
    offset: int | None = None


def _dump_accessible(region: MemoryRegion) -> Sequence[tuple[int, int]]:
    """PROT_NONE reservations have no contents; everything else is written whole."""
    return [(region.start, region.end)] if region.perms.strip("-") else []


def _segments(regions: Sequence[MemoryRegion], dump: Dump) -> list[_Segment]:
    segments = []
    for region in regions:
        position = region.start
        for start, end in dump(region):
            if start > position:
                segments.append(_Segment(position, start, region.perms, False))
            segments.append(_Segment(start, end, region.perms, True))
            position = end
        if position < region.end:
            segments.append(_Segment(position, region.end, region.perms, False))
    return segments


def _call(method: Callable[..., T], default: T, *args: object) -> T:
    """A target call whose failure must not stop the dump: its part of the core is left empty instead."""
    try:
        return method(*args)
    except (TargetError, OSError) as error:
        log.info("core: %s%r failed: %s", getattr(method, "__name__", method), args, error)
        return default


def _thread_order(target: Target, signal: int, crashing_tid: int | None) -> list[int]:
    tids = list(_call(target.threads, _NO_TIDS)) or [_call(target.pid, 1)]
    if crashing_tid is None:
        crashing_tid = next((t for t in tids if _is_stopped_by(target, t, signal)), tids[0])
    return [crashing_tid] + [t for t in tids if t != crashing_tid]


def _is_stopped_by(target: Target, tid: int, signal: int) -> bool:
    try:
        event = target.stop_event(tid)
    except TargetError:
        return False
    return event.tid == tid and event.signal == signal


def _registers(target: Target, tid: int) -> dict[str, int]:
    """The thread's registers over a reset-state file, so a target that omits some still gives sane images."""
    regs = zero_registers()
    regs.update(_call(target.registers, _NO_REGISTERS, tid))
    return regs


# --- notes -----------------------------------------------------------------------------------------------------

def _notes(target: Target, tids: Sequence[int], signal: int, regions: Sequence[MemoryRegion]) -> bytes:
    parts = []
    for index, tid in enumerate(tids):
        regs = _registers(target, tid)
        parts.append(pack_note(NoteType.NT_PRSTATUS, _prstatus(tid, regs, signal)))
        if index == 0:
            parts.append(pack_note(NoteType.NT_PRPSINFO, _prpsinfo(target)))
            parts.append(pack_note(NoteType.NT_SIGINFO, _siginfo(target, tid, signal)))
            parts.append(pack_note(NoteType.NT_AUXV, _auxv(target)))
            files = [FileMapping(r.start, r.end, r.offset, r.path) for r in regions if _is_file(r.path)]
            if files:
                parts.append(pack_note(NoteType.NT_FILE, pack_nt_file(files)))
        parts.append(pack_note(NoteType.NT_PRFPREG, _fxsave(regs)))
        parts.append(pack_note(NoteType.NT_X86_XSTATE, _xsave(regs)))
    return b"".join(parts)


def _is_file(path: str) -> bool:
    """NT_FILE lists files only (fs/binfmt_elf.c fill_files_note walks vm_file): not /proc/pid/maps pseudo-names
    such as [heap], [stack] or [vdso], which gdb would try to open."""
    return bool(path) and not (path.startswith("[") and path.endswith("]"))


def _prstatus(tid: int, regs: dict[str, int], signal: int) -> bytes:
    # fs/binfmt_elf.c fill_prstatus gives every thread the dumping signal in pr_cursig and pr_info.si_signo.
    status = elf_prstatus(pr_cursig=signal, pr_pid=tid, pr_fpvalid=1)
    status.pr_info.si_signo = signal
    status.pr_reg = (ctypes.c_uint64 * len(USER_REGS)).from_buffer_copy(pack_user_regs(regs))
    return bytes(status)


def _prpsinfo(target: Target) -> bytes:
    exe = _call(target.exe_path, "")
    # pr_sname "R": a dumping task is running (fs/binfmt_elf.c fill_psinfo); comm is 15 chars + NUL.
    info = elf_prpsinfo(pr_sname=b"R", pr_pid=_call(target.pid, 0))
    info.pr_fname = os.path.basename(exe).encode(errors="replace")[:15]
    info.pr_psargs = exe.encode(errors="replace")[:ELF_PRARGSZ - 1]
    return bytes(info)


def _siginfo(target: Target, tid: int, signal: int) -> bytes:
    """The target's siginfo when it is about this signal; else the kernel's for a signal with no sender."""
    data = _call(target.siginfo, b"", tid)
    if len(data) == SIGINFO_SIZE and struct.unpack_from("<i", data)[0] == signal:
        return bytes(data)
    return bytes(siginfo_t(si_signo=signal, si_code=SI_KERNEL))


def _auxv(target: Target) -> bytes:
    data = bytes(_call(target.auxv, b""))
    data = data[:len(data) - len(data) % 16]
    if len(data) < 16 or any(data[-16:-8]):     # the kernel's saved_auxv ends with its AT_NULL entry
        data += bytes(16)
    return data


def _fxsave(regs: dict[str, int]) -> bytes:
    image = bytearray(FXSAVE_SIZE)
    registers_to_fxsave(regs, image)
    return bytes(image)


def _xsave(regs: dict[str, int]) -> bytes:
    image = bytearray(XSAVE_SIZE)
    registers_to_xsave(regs, image)
    struct.pack_into("<Q", image, XSTATE_XCR0_OFFSET, XCR0)
    return bytes(image)


# --- headers and data ------------------------------------------------------------------------------------------

def _headers(notes: bytes, segments: Sequence[_Segment]) -> tuple[bytes, int]:
    """ELF header, program headers (PT_NOTE then one PT_LOAD per segment) and, past 65534 segments, the section
    header that carries the real count (PN_XNUM, as fs/binfmt_elf.c fill_extnum_info).

    Sets each segment's data offset (page aligned) and returns the header bytes and the file size."""
    phnum = 1 + len(segments)
    ehdr_size, phdr_size = ctypes.sizeof(Elf64_Ehdr), ctypes.sizeof(Elf64_Phdr)
    shdr_size = ctypes.sizeof(Elf64_Shdr) if phnum >= PN_XNUM else 0
    notes_offset = ehdr_size + phnum * phdr_size + shdr_size
    phdrs = [Elf64_Phdr(p_type=PT_NOTE, p_offset=notes_offset, p_filesz=len(notes), p_align=NOTE_ALIGN)]
    position = notes_offset + len(notes)
    for segment in segments:
        length = segment.end - segment.start
        offset = _align_up(position, PAGE_SIZE) + segment.start % PAGE_SIZE
        if segment.has_data:
            segment.offset, position = offset, offset + length
        # a segment without data still points into the file where its data would be, as the kernel's do: gdb
        # takes a p_offset of 0 for data at the file's start, and showed each thread twice
        phdrs.append(Elf64_Phdr(p_type=PT_LOAD, p_flags=_flags(segment.perms), p_offset=offset,
                                p_vaddr=segment.start, p_filesz=length if segment.has_data else 0, p_memsz=length,
                                p_align=PAGE_SIZE))
    ident = (ctypes.c_uint8 * 16)(*(ELFMAG + bytes([ELFCLASS64, ELFDATA2LSB, EV_CURRENT, ELFOSABI_NONE])))
    ehdr = Elf64_Ehdr(e_ident=ident, e_type=ET_CORE, e_machine=EM_X86_64, e_version=EV_CURRENT,
                      e_phoff=ehdr_size, e_ehsize=ehdr_size, e_phentsize=phdr_size, e_phnum=min(phnum, PN_XNUM))
    extra = b""
    if shdr_size:
        ehdr.e_shoff, ehdr.e_shentsize, ehdr.e_shnum = ehdr_size + phnum * phdr_size, shdr_size, 1
        extra = bytes(Elf64_Shdr(sh_size=1, sh_info=phnum))
    headers = bytes(ehdr) + b"".join(map(bytes, phdrs)) + extra
    return headers, position


def _flags(perms: str) -> int:
    return (PF_R if "r" in perms else 0) | (PF_W if "w" in perms else 0) | (PF_X if "x" in perms else 0)


def _align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def _copy_region(target: Target, region: _Segment, out: BinaryIO) -> None:
    """Stream the region into `out`, skipping zero chunks so that untouched memory becomes a file hole."""
    addr = region.start
    while addr < region.end:
        size = min(_CHUNK, region.end - addr)
        data = _read_or_zeros(target, addr, size)
        if data.count(0) == size:
            out.seek(size, os.SEEK_CUR)
        else:
            out.write(data)
        addr += size


def _read_or_zeros(target: Target, addr: int, size: int) -> bytes:
    """The bytes at addr, with zeros for each page the target cannot read."""
    try:
        data = bytes(target.read_memory(addr, size))
        if len(data) == size:
            return data
    except (TargetError, OSError):
        pass
    if addr // PAGE_SIZE == (addr + size - 1) // PAGE_SIZE:
        return bytes(size)
    pieces = []
    end = addr + size
    while addr < end:
        step = min(PAGE_SIZE - addr % PAGE_SIZE, end - addr)
        pieces.append(_read_or_zeros(target, addr, step))
        addr += step
    return b"".join(pieces)


def _remove_partial(path: str | os.PathLike) -> None:
    """A truncated core misleads gdb more than a missing one; never remove what is not a regular file."""
    try:
        if stat.S_ISREG(os.stat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass
