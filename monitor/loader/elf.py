"""Maps an x86-64 ELF program into guest memory as fs/binfmt_elf.c load_elf_binary does: the executable (static,
static-pie or dynamic), and for a dynamic one the interpreter its PT_INTERP names, which then loads the libraries
through ordinary syscalls.

Placement follows Linux with address-space randomization off: an ET_DYN program with an interpreter (a PIE) at
ELF_ET_DYN_BASE (0x555555554000), an ET_EXEC one at its own addresses, the interpreter where mmap would put it
(below the mmap top). km also puts a static-pie program, or an interpreter run as a program
(`km /lib64/ld-linux-x86-64.so.2 /bin/ls`), at 0x555555554000, so that brk follows it. Segments are file-backed
(GuestMemory.map_file), so /proc/self/maps, NT_FILE and gdb see the real files.
"""
from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

from ..record import Record

from kdbg.arch.linux import PAGE_SIZE

from ..errors import PayloadError
from ..host_fds import open_high
from ..memory.guest import PROT_EXEC, PROT_READ, PROT_WRITE, USER_TOP, GuestMemory, page_down, page_up
from ..memory.mapped_file import MappedFile
from .elf_headers import PF_R, PF_W, PF_X, ELFError, ELFFile

PIE_BASE = 0x555555554000       # ELF_ET_DYN_BASE on x86-64 without randomization


class LoadedElf(Record):
    def __init__(self, path: str, entry: int, phdr: int, phent: int, phnum: int, bias: int, end: int) -> None:
        self.path = path
        self.entry = entry
        self.phdr = phdr
        self.phent = phent
        self.phnum = phnum
        self.bias = bias
        self.end = end                  # first byte after the highest segment: where brk starts


class Program(Record):
    """What execve leaves behind: the program's image, its interpreter's (if dynamic), where execution starts."""

    def __init__(self, exe: LoadedElf, interp: LoadedElf | None) -> None:
        self.exe = exe
        self.interp = interp

    @property
    def entry(self) -> int:
        return (self.interp or self.exe).entry

    @property
    def base(self) -> int:
        """AT_BASE: the interpreter's load address (0 for a static program)."""
        return self.interp.bias if self.interp else 0


def open_elf(path: str, stream: BinaryIO | None = None) -> ELFFile:
    """Open and validate a payload, raising PayloadError with the one-line reason. `stream`: the file already open
    (loader/script.open_exec's, whose #! check made the same checks of the path), closed here on failure."""
    f = _open_file(path) if stream is None else stream
    try:
        elf = ELFFile(f)
    except ELFError:
        f.close()
        raise PayloadError(path, "not an ELF file") from None
    try:
        _check_elf(path, elf, os.fstat(f.fileno()).st_size)
    except ELFError:        # headers cut short or inconsistent
        f.close()
        raise PayloadError(path, "truncated or corrupt ELF file") from None
    except PayloadError:
        f.close()
        raise
    return elf


def _open_file(path: str) -> BinaryIO:
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise PayloadError(path, "is a directory", errno.EACCES)
        if not stat.S_ISREG(mode):
            raise PayloadError(path, "not a regular file", errno.EACCES)      # a FIFO or device would block or lie
        # in km's descriptor range: the exec this may serve closes the payload's close-on-exec descriptors
        return os.fdopen(open_high(path), "rb")
    except FileNotFoundError:
        raise PayloadError(path, "no such file", errno.ENOENT) from None
    except PermissionError:
        raise PayloadError(path, "permission denied", errno.EACCES) from None


def _check_elf(path: str, elf: ELFFile, file_size: int) -> None:
    """What execve(2) would refuse, in the order a user wants to hear it."""
    if elf.get_machine_arch() != "x64" or elf.elfclass != 64:
        raise PayloadError(path, f"not an x86-64 executable ({elf.get_machine_arch()}, {elf.elfclass}-bit)")
    if elf["e_type"] not in ("ET_EXEC", "ET_DYN"):
        raise PayloadError(path, f"not an executable ({elf['e_type']})")
    segments = list(elf.iter_segments())
    if not any(seg["p_type"] == "PT_LOAD" for seg in segments):
        raise PayloadError(path, "no loadable segments")
    if any(seg["p_type"] == "PT_LOAD" and seg["p_offset"] + seg["p_filesz"] > file_size for seg in segments):
        raise PayloadError(path, "truncated or corrupt ELF file")
    problem = _layout_problem(elf, segments, file_size)
    if problem:
        raise PayloadError(path, f"corrupt ELF file: {problem}")


def _layout_problem(elf: ELFFile, segments: list, file_size: int) -> str:
    """What fs/binfmt_elf.c refuses (ENOEXEC, EINVAL) or km cannot map as it says, before anything is mapped:
    the ELF fuzzer's mutants reached the loader's asserts and arithmetic (internal errors) without these."""
    if elf["e_phentsize"] != 56 or not 0 < elf["e_phnum"] <= 65536 // 56:
        return "bad program header table"
    end = 0
    for seg in segments:
        if seg["p_type"] == "PT_INTERP":
            if not 2 <= seg["p_filesz"] <= 4096 or seg["p_offset"] + seg["p_filesz"] > file_size:
                return "bad PT_INTERP"
            if seg.data()[-1:] != b"\0":
                return "PT_INTERP not NUL-terminated"
        if seg["p_type"] != "PT_LOAD":
            continue
        vaddr, memsz = seg["p_vaddr"], seg["p_memsz"]
        if seg["p_filesz"] > memsz:
            return "a PT_LOAD with more file bytes than memory"
        if (vaddr - seg["p_offset"]) % PAGE_SIZE:
            return "a PT_LOAD whose address and file offset disagree within a page"
        if vaddr + memsz > USER_TOP or page_up(vaddr + memsz) > USER_TOP:
            return "a PT_LOAD beyond the user address space"
        if end and page_down(vaddr) < end - PAGE_SIZE:       # only a last page may be shared with the previous
            return "PT_LOAD segments out of order or overlapping"
        end = max(end, page_up(vaddr + memsz))
    if elf["e_type"] == "ET_DYN":                # placed at PIE_BASE or below the mmap top: must fit below it
        loads = [s for s in segments if s["p_type"] == "PT_LOAD"]
        if end - page_down(loads[0]["p_vaddr"]) > USER_TOP - PIE_BASE:
            return "an image larger than the address space"
    return ""


def interpreter_of(elf: ELFFile) -> str | None:
    """The PT_INTERP path of a dynamic program, or None."""
    seg = next((s for s in elf.iter_segments() if s["p_type"] == "PT_INTERP"), None)
    return seg.data().split(b"\0", 1)[0].decode(errors="surrogateescape") if seg is not None else None


class CheckedProgram:
    """A program execve found runnable, its ELF file and its interpreter's still open: what load_program maps
    without opening and checking them again. close() when it is not loaded."""

    def __init__(self, path: str, elf: ELFFile, interp_path: str | None, interp: ELFFile | None) -> None:
        self.path, self.elf, self.interp_path, self.interp = path, elf, interp_path, interp

    def close(self) -> None:
        self.elf.stream.close()
        if self.interp is not None:
            self.interp.stream.close()


def check_program(path: str, stream: BinaryIO | None = None) -> CheckedProgram:
    """What load_program would refuse, before anything is mapped (execve answers before the point of no return
    and before km starts again); PayloadError names what is wrong with the program or its interpreter. `stream`:
    the program's file already open (open_elf), closed here on failure."""
    elf = open_elf(path, stream)
    try:
        interp_path = interpreter_of(elf)
        interp = _open_interpreter(path, interp_path) if interp_path is not None else None
    except ELFError:
        elf.stream.close()
        raise PayloadError(path, "truncated or corrupt ELF file") from None
    except PayloadError:
        elf.stream.close()
        raise
    return CheckedProgram(path, elf, interp_path, interp)


def load_program(path: str, mem: GuestMemory, checked: CheckedProgram | None = None) -> Program:
    """Map the program and, for a dynamic one, its interpreter (`checked`: check_program's answer for `path`,
    which is then closed); PayloadError names what is wrong with either."""
    if checked is None:
        checked = check_program(path)
    try:
        elf = checked.elf
        try:
            exe = _load(path, elf, mem, PIE_BASE if elf["e_type"] == "ET_DYN" else 0)
        except ELFError:
            raise PayloadError(path, "truncated or corrupt ELF file") from None
        except MemoryError:
            raise PayloadError(path, "its segments need more memory than the host has", errno.ENOMEM) from None
        if checked.interp is None:
            return Program(exe, None)
        assert checked.interp_path is not None, "check_program found the interpreter"
        return Program(exe, _load_interpreter(path, checked.interp_path, checked.interp, mem))
    finally:
        checked.close()


def _load_interpreter(path: str, interp_path: str, elf: ELFFile, mem: GuestMemory) -> LoadedElf:
    """The interpreter, where an mmap without a hint would go (Linux maps it with vm_mmap, top-down)."""
    try:
        loads = _loads(elf)
        low, high = page_down(loads[0]["p_vaddr"]), max(page_up(s["p_vaddr"] + s["p_memsz"]) for s in loads)
        base = mem.find_free(high - low)
        if base is None:
            raise PayloadError(path, f"interpreter {interp_path}: no room in the address space")
        return _load(interp_path, elf, mem, base)
    except ELFError:
        raise PayloadError(path, f"interpreter {interp_path}: truncated or corrupt ELF file", errno.ELIBBAD) from None


def _open_interpreter(path: str, interp_path: str) -> ELFFile:
    """The interpreter's ELFFile; PayloadError as execve fails: ENOENT when missing, ELIBBAD when unusable."""
    try:
        elf = open_elf(interp_path)
    except PayloadError as e:
        raise PayloadError(path, f"interpreter {interp_path}: {e.problem}",
                           errno.ENOENT if e.errno == errno.ENOENT else errno.ELIBBAD) from None
    try:
        if elf["e_type"] != "ET_DYN" or interpreter_of(elf) is not None:
            raise PayloadError(path, f"interpreter {interp_path}: not a dynamic loader", errno.ELIBBAD)
    except ELFError:
        elf.stream.close()
        raise PayloadError(path, f"interpreter {interp_path}: truncated or corrupt ELF file", errno.ELIBBAD) from None
    except PayloadError:
        elf.stream.close()
        raise
    return elf


def _loads(elf: ELFFile) -> list:
    return [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]


def _load(path: str, elf: ELFFile, mem: GuestMemory, base: int) -> LoadedElf:
    """Map each PT_LOAD as elf_map + padzero + the bss mapping do; an ET_DYN image goes at `base`."""
    loads = _loads(elf)
    bias = base - page_down(loads[0]["p_vaddr"]) if elf["e_type"] == "ET_DYN" else 0
    file = MappedFile.of_open_file(elf.stream.fileno(), path)
    mapped_end = 0
    for seg in loads:
        prot = (PROT_READ if seg["p_flags"] & PF_R else 0) | (PROT_WRITE if seg["p_flags"] & PF_W else 0) | \
               (PROT_EXEC if seg["p_flags"] & PF_X else 0)
        vaddr, filesz = seg["p_vaddr"] + bias, seg["p_filesz"]
        start, end = page_down(vaddr), page_up(vaddr + seg["p_memsz"])
        offset = page_down(seg["p_offset"])
        file_end = page_up(vaddr + filesz) if filesz else start
        if start < mapped_end:     # shares a page with the previous segment: widen that page's rights, add its bytes
            shared = mem.find(start)
            assert shared is not None, "the previous segment maps this page"
            mem.protect(start, mapped_end - start, shared.prot | prot)
            mem.write_debug(vaddr, seg.data()[:mapped_end - vaddr])
            offset += mapped_end - start
            start = mapped_end
        if file_end > start:
            mem.map_file(start, file_end - start, prot, file, offset, shared=False, image=True)
            if vaddr + filesz < file_end:       # padzero: the rest of the last file page is bss
                mem.write_debug(vaddr + filesz, bytes(min(file_end, end) - vaddr - filesz))
        if end > max(start, file_end):
            mem.map(max(start, file_end), end - max(start, file_end), prot)
        mapped_end = max(mapped_end, end)
    phoff = elf["e_phoff"]
    phdr = next((s["p_vaddr"] for s in elf.iter_segments() if s["p_type"] == "PT_PHDR"), None)
    if phdr is None:
        first = next((s for s in loads if s["p_offset"] <= phoff < s["p_offset"] + s["p_filesz"]), loads[0])
        phdr = first["p_vaddr"] + phoff - first["p_offset"]
    return LoadedElf(path, elf["e_entry"] + bias, phdr + bias, elf["e_phentsize"], elf["e_phnum"], bias, mapped_end)
