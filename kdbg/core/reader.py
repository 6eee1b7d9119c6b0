"""CoreTarget: an x86-64 Linux ELF core file (kmcore or the kernel's or gdb's) served as a kdbg.target.Target.

With it the GDB stub serves a post-mortem session (`km --core kmcore payload.km -g`) through the same code path
as a live one. The file is parsed with pyelftools (the only pyelftools user in kdbg); note contents with the
layouts of kdbg/core/layouts.py. Memory a core left out (the kernel skips unmodified file-backed text) is read
from the executable's PT_LOAD segments, as gdb's exec target does.
"""
from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from typing import BinaryIO, Sequence

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.enums import ENUM_CORE_NOTE_N_TYPE
from elftools.elf.segments import NoteSegment

from kdbg.arch.x86_64 import (fxsave_to_registers, guess_xsave_layout, unpack_user_regs, xsave_to_registers,
                              zero_registers)
from kdbg.core.errors import CoreError
from kdbg.core.layouts import (
    AT_ENTRY, PF_R, PF_W, PF_X, FileMapping, NoteType, elf_prpsinfo, elf_prstatus, from_bytes, parse_auxv,
    parse_nt_file)
from kdbg.target import GuestMemoryError, MemoryRegion, NoSuchThreadError, StopEvent, StopReason

__all__ = ["CoreTarget", "CoreError"]


@dataclass
class _Thread:
    tid: int
    signal: int
    user_regs: bytes
    fpregs: bytes = b""
    xstate: bytes = b""
    siginfo: bytes = b""


@dataclass(frozen=True, slots=True)
class _Span:
    """Bytes [vaddr, vaddr + filesz) of a file at `offset`; [vaddr, vaddr + memsz) is mapped."""

    vaddr: int
    memsz: int
    filesz: int
    offset: int
    flags: int = 0


class _Image:
    """An open ELF file and its PT_LOAD spans, sorted by address once all are known."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.spans: list[_Span] = []
        self.starts: list[int] = []

    def index(self, spans: list[_Span]) -> None:
        self.spans = sorted(spans, key=lambda s: s.vaddr)
        self.starts = [s.vaddr for s in self.spans]

    def span_at(self, addr: int) -> _Span | None:
        index = bisect.bisect_right(self.starts, addr) - 1
        if index >= 0 and addr < self.spans[index].vaddr + self.spans[index].memsz:
            return self.spans[index]
        return None

    def read(self, span: _Span, addr: int, size: int) -> bytes:
        self.stream.seek(span.offset + addr - span.vaddr)
        return self.stream.read(size)


class CoreTarget:
    """A read-only Target over a core file. Close it (or use `with`) to release the core and executable."""

    def __init__(self, core_path: str | os.PathLike, exe_path: str | os.PathLike | None = None) -> None:
        self._path = str(core_path)
        self._threads: dict[int, _Thread] = {}
        self._registers: dict[int, dict[str, int]] = {}     # tid -> its registers, decoded once
        self._psinfo: elf_prpsinfo | None = None
        self._auxv = b""
        self._files: list[FileMapping] = []
        self._core = _Image(_open(core_path))
        try:
            self._parse(ELFFile(self._core.stream))
        except ELFError as error:
            self.close()
            raise CoreError(core_path, f"not a readable ELF core file ({error})") from error
        except CoreError:
            self.close()
            raise
        self._exe = exe_path and os.fspath(exe_path) or self._guess_exe()
        self._exe_image = self._open_exe(exe_path is not None)

    # --- parsing -------------------------------------------------------------------------------------------------

    def _parse(self, elf: ELFFile) -> None:
        if elf["e_type"] != "ET_CORE" or elf["e_machine"] != "EM_X86_64":
            raise CoreError(self._path, f"not an x86-64 core file ({elf['e_type']}, {elf['e_machine']})")
        spans = []
        for segment in elf.iter_segments():
            if segment["p_type"] == "PT_LOAD":
                spans.append(_Span(segment["p_vaddr"], segment["p_memsz"], segment["p_filesz"], segment["p_offset"],
                                   segment["p_flags"]))
            elif isinstance(segment, NoteSegment):    # PT_NOTE
                for note in segment.iter_notes():
                    self._take_note(_note_type(note["n_type"]), note["n_name"] or "", bytes(note["n_descdata"]))
        self._core.index(spans)
        if not self._threads:
            raise CoreError(self._path, "no NT_PRSTATUS note: not a process core file")

    def _take_note(self, note_type: int, owner: str, desc: bytes) -> None:
        """Per-thread notes follow their thread's NT_PRSTATUS (the order both the kernel and gdb write); notes of
        other owners (gdb's NT_GDB_TDESC, the kernel's newer LINUX ones) are not needed."""
        current = next(reversed(self._threads.values()), None)
        if owner == "LINUX" and note_type == NoteType.NT_X86_XSTATE and current is not None:
            current.xstate = desc
        elif owner != "CORE":
            return
        elif note_type == NoteType.NT_PRSTATUS:
            status = from_bytes(elf_prstatus, desc)
            self._threads[status.pr_pid] = _Thread(status.pr_pid, status.pr_cursig, bytes(status.pr_reg))
        elif note_type == NoteType.NT_PRPSINFO:
            self._psinfo = from_bytes(elf_prpsinfo, desc)
        elif note_type == NoteType.NT_AUXV:
            self._auxv = desc
        elif note_type == NoteType.NT_FILE:
            self._files = parse_nt_file(desc)
        elif note_type == NoteType.NT_PRFPREG and current is not None:
            current.fpregs = desc
        elif note_type == NoteType.NT_SIGINFO and current is not None:
            current.siginfo = desc

    def _guess_exe(self) -> str:
        """The NT_FILE mapping that holds AT_ENTRY (the executable for a static payload), else the first one."""
        entry = parse_auxv(self._auxv).get(AT_ENTRY)
        for mapping in self._files:
            if entry is not None and mapping.start <= entry < mapping.end:
                return mapping.path
        return self._files[0].path if self._files else ""

    def _open_exe(self, required: bool) -> _Image | None:
        """The executable's PT_LOAD spans at their run-time addresses (biased by AT_ENTRY for a PIE)."""
        if not self._exe:
            return None
        try:
            image = _Image(_open(self._exe))
        except CoreError:
            if required:
                self.close()
                raise
            return None
        try:
            elf = ELFFile(image.stream)
            bias = 0
            entry = parse_auxv(self._auxv).get(AT_ENTRY)
            if elf["e_type"] == "ET_DYN" and entry is not None:
                bias = entry - elf["e_entry"]
            image.index([_Span(s["p_vaddr"] + bias, s["p_filesz"], s["p_filesz"], s["p_offset"], s["p_flags"])
                         for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"])
        except ELFError as error:
            image.stream.close()
            if required:
                self.close()
                raise CoreError(self._exe, f"not an ELF executable ({error})") from error
            return None
        return image

    def close(self) -> None:
        self._core.stream.close()
        exe = getattr(self, "_exe_image", None)
        if exe is not None:
            exe.stream.close()

    def __enter__(self) -> CoreTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- Target --------------------------------------------------------------------------------------------------

    def threads(self) -> Sequence[int]:
        """In file order: the crashing thread first."""
        return list(self._threads)

    def thread_name(self, tid: int) -> str:
        self._thread(tid)
        return self._psinfo.pr_fname.decode(errors="replace") if self._psinfo else ""

    def registers(self, tid: int) -> dict[str, int]:
        """The same dict at every call for a thread (a core never changes; callers do not change it either), so
        the stub's `g` reply, memoised on the dict it last encoded, is encoded once per thread."""
        regs = self._registers.get(tid)
        if regs is None:
            regs = self._registers[tid] = self._decode_registers(tid)
        return regs

    def _decode_registers(self, tid: int) -> dict[str, int]:
        thread = self._thread(tid)
        regs = zero_registers()
        regs.update(unpack_user_regs(thread.user_regs))
        regs["eflags"] &= 0xFFFFFFFF
        if len(thread.xstate) >= 512:
            regs.update(xsave_to_registers(thread.xstate, guess_xsave_layout(thread.xstate)))
        elif len(thread.fpregs) >= 512:
            regs.update(fxsave_to_registers(thread.fpregs))
        return regs

    def read_memory(self, addr: int, size: int) -> bytes:
        pieces = []
        position, end = addr, addr + size
        while position < end:
            piece = self._read_piece(position, end - position)
            if not piece:
                raise GuestMemoryError(addr, size)
            pieces.append(piece)
            position += len(piece)
        return b"".join(pieces)

    def _read_piece(self, addr: int, size: int) -> bytes:
        """Bytes from the core's data for addr, else from the executable's file image; b"" if neither has it."""
        span = self._core.span_at(addr)
        if span is not None and addr < span.vaddr + span.filesz:
            return self._core.read(span, addr, min(size, span.vaddr + span.filesz - addr))
        if self._exe_image is not None:
            exe_span = self._exe_image.span_at(addr)
            if exe_span is not None:
                limit = exe_span.vaddr + exe_span.filesz
                if span is not None:
                    limit = min(limit, span.vaddr + span.memsz)
                return self._exe_image.read(exe_span, addr, min(size, limit - addr))
        return b""

    def mappings(self) -> Sequence[MemoryRegion]:
        """PT_LOAD segments named by NT_FILE, plus the NT_FILE mappings a core left out entirely (gdb's gcore
        skips unmodified read-only file data), with the executable's permissions where it has that segment."""
        regions = []
        for span in self._core.spans:
            mapping = next((m for m in self._files if m.start <= span.vaddr < m.end), None)
            offset = mapping.offset + span.vaddr - mapping.start if mapping else 0
            regions.append(MemoryRegion(span.vaddr, span.vaddr + span.memsz, _perms(span.flags), offset,
                                        mapping.path if mapping else ""))
        for mapping in self._files:
            if any(s.vaddr < mapping.end and mapping.start < s.vaddr + s.memsz for s in self._core.spans):
                continue
            exe_span = self._exe_image.span_at(mapping.start) if self._exe_image else None
            perms = _perms(exe_span.flags) if exe_span else "---"
            regions.append(MemoryRegion(mapping.start, mapping.end, perms, mapping.offset, mapping.path))
        return sorted(regions, key=lambda r: r.start)

    def auxv(self) -> bytes:
        return self._auxv

    def exe_path(self) -> str:
        return self._exe

    def pid(self) -> int:
        if self._psinfo is not None and self._psinfo.pr_pid:
            return self._psinfo.pr_pid
        return next(iter(self._threads))

    def stop_event(self, tid: int) -> StopEvent:
        """The crash signal for the first thread; the others were stopped along with it."""
        thread = self._thread(tid)
        if tid == next(iter(self._threads)):
            return StopEvent(tid, StopReason.SIGNAL, thread.signal)
        return StopEvent(tid, StopReason.INTERRUPT, 0)

    def siginfo(self, tid: int) -> bytes:
        return self._thread(tid).siginfo

    def _thread(self, tid: int) -> _Thread:
        try:
            return self._threads[tid]
        except KeyError:
            raise NoSuchThreadError(tid) from None


def _perms(flags: int) -> str:
    return "".join(c if flags & bit else "-" for c, bit in (("r", PF_R), ("w", PF_W), ("x", PF_X)))


def _note_type(n_type: int | str) -> int:
    """pyelftools names the SVR4 note types it knows and leaves the others (NT_X86_XSTATE) as numbers."""
    return ENUM_CORE_NOTE_N_TYPE.get(n_type, -1) if isinstance(n_type, str) else n_type


def _open(path: str | os.PathLike) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as error:
        raise CoreError(path, error.strerror or str(error)) from error
