"""Loads a static or static-pie x86-64 ELF into guest memory and builds the initial stack and auxv (the headers
are read by elf_headers.py).

The stack layout and auxv follow the Linux ABI (fs/binfmt_elf.c create_elf_tables): argc, argv[], NULL, envp[],
NULL, auxv pairs, then the strings and AT_RANDOM bytes near the top.
"""
from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass

from .elf_headers import ELFError, ELFFile
from .errors import PayloadError
from .guest_memory import PROT_EXEC, PROT_READ, PROT_WRITE, GuestMemory, page_down, page_up

PIE_BASE = 0x555555554000
STACK_TOP = 0x7FFFFFFFF000
STACK_SIZE = 8 << 20

AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_SYSINFO_EHDR, AT_MINSIGSTKSZ = 23, 25, 26, 31, 33, 51


@dataclass
class LoadedElf:
    path: str
    entry: int
    phdr: int
    phent: int
    phnum: int
    bias: int
    end: int            # first byte after the highest segment: where brk starts


def open_elf(path: str) -> ELFFile:
    """Open and validate a payload, raising PayloadError with the one-line reason."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode) and not os.path.isdir(path):
            raise PayloadError(path, "not a regular file")      # a FIFO or device would block or lie
        f = open(path, "rb")
    except FileNotFoundError:
        raise PayloadError(path, "no such file") from None
    except IsADirectoryError:
        raise PayloadError(path, "is a directory") from None
    except PermissionError:
        raise PayloadError(path, "permission denied") from None
    try:
        elf = ELFFile(f)
    except ELFError:
        f.close()
        raise PayloadError(path, "not an ELF file") from None
    try:
        _check_elf(path, elf, os.fstat(f.fileno()).st_size)
    except ELFError:        # pyelftools' parse errors (ELFParseError included) on a cut or corrupt file
        f.close()
        raise PayloadError(path, "truncated or corrupt ELF file") from None
    except PayloadError:
        f.close()
        raise
    return elf


def _check_elf(path: str, elf: ELFFile, file_size: int) -> None:
    """What execve(2) would refuse, in the order a user wants to hear it."""
    if elf.get_machine_arch() != "x64" or elf.elfclass != 64:
        raise PayloadError(path, f"not an x86-64 executable ({elf.get_machine_arch()}, {elf.elfclass}-bit)")
    if elf["e_type"] not in ("ET_EXEC", "ET_DYN"):
        raise PayloadError(path, f"not an executable ({elf['e_type']})")
    segments = list(elf.iter_segments())
    if any(seg["p_type"] == "PT_INTERP" for seg in segments):
        raise PayloadError(path, "dynamic executable (km runs static and static-pie executables only)")
    if any(seg["p_type"] == "PT_LOAD" and seg["p_offset"] + seg["p_filesz"] > file_size for seg in segments):
        raise PayloadError(path, "truncated or corrupt ELF file")


def load_elf(path: str, mem: GuestMemory) -> LoadedElf:
    elf = open_elf(path)
    try:
        return _load(path, elf, mem)
    except ELFError:
        raise PayloadError(path, "truncated or corrupt ELF file") from None
    finally:
        elf.stream.close()


def _load(path: str, elf: ELFFile, mem: GuestMemory) -> LoadedElf:
    loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
    if not loads:
        raise PayloadError(path, "no loadable segments")
    bias = PIE_BASE - page_down(loads[0]["p_vaddr"]) if elf["e_type"] == "ET_DYN" else 0
    mapped_end = 0
    for seg in loads:
        prot = (PROT_READ if seg["p_flags"] & 4 else 0) | (PROT_WRITE if seg["p_flags"] & 2 else 0) | \
               (PROT_EXEC if seg["p_flags"] & 1 else 0)
        start, end = page_down(seg["p_vaddr"] + bias), page_up(seg["p_vaddr"] + bias + seg["p_memsz"])
        if start < mapped_end:     # shares a page with the previous segment: widen that page's rights
            shared = mem.find(start)
            mem.protect(start, mapped_end - start, shared.prot | prot)
            start = mapped_end
        if end > start:
            mem.map(start, end - start, prot, path=os.path.abspath(path),
                    offset=page_down(seg["p_offset"]) + (start - page_down(seg["p_vaddr"] + bias)))
        mem.write_debug(seg["p_vaddr"] + bias, seg.data()[:seg["p_filesz"]])
        mapped_end = max(mapped_end, end)
    phoff = elf["e_phoff"]
    phdr = next((s["p_vaddr"] for s in elf.iter_segments() if s["p_type"] == "PT_PHDR"), None)
    if phdr is None:
        first = next(s for s in loads if s["p_offset"] <= phoff < s["p_offset"] + s["p_filesz"])
        phdr = first["p_vaddr"] + phoff - first["p_offset"]
    return LoadedElf(path, elf["e_entry"] + bias, phdr + bias, elf["e_phentsize"], elf["e_phnum"], bias, mapped_end)


def build_stack(mem: GuestMemory, elf: LoadedElf, argv: list[bytes], envp: list[bytes], execfn: bytes,
                hwcap: int, vdso: int = 0) -> int:
    """Map the main stack and write argc/argv/envp/auxv; returns the initial RSP."""
    mem.map(STACK_TOP - STACK_SIZE, STACK_SIZE, PROT_READ | PROT_WRITE, name="[stack]")
    sp = STACK_TOP - 16
    strings: dict[str, list[int]] = {"argv": [], "envp": []}

    def push_bytes(data: bytes) -> int:
        nonlocal sp
        sp -= len(data)
        mem.write(sp, data)
        return sp

    execfn_addr = push_bytes(execfn + b"\0")
    for key, items in (("envp", envp), ("argv", argv)):
        strings[key] = [push_bytes(s + b"\0") for s in reversed(items)][::-1]
    platform = push_bytes(b"x86_64\0")
    random_addr = push_bytes(os.urandom(16))
    auxv = [(AT_SYSINFO_EHDR, vdso)] if vdso else []
    auxv += [(AT_MINSIGSTKSZ, 2048), (AT_HWCAP, hwcap), (AT_PAGESZ, 4096), (AT_CLKTCK, 100),
             (AT_PHDR, elf.phdr), (AT_PHENT, elf.phent), (AT_PHNUM, elf.phnum), (AT_BASE, 0), (AT_FLAGS, 0),
             (AT_ENTRY, elf.entry), (AT_UID, os.getuid()), (AT_EUID, os.geteuid()), (AT_GID, os.getgid()),
             (AT_EGID, os.getegid()), (AT_SECURE, 0), (AT_RANDOM, random_addr), (AT_HWCAP2, 0),
             (AT_EXECFN, execfn_addr), (AT_PLATFORM, platform), (AT_NULL, 0)]
    words = [len(argv), *strings["argv"], 0, *strings["envp"], 0]
    for key, value in auxv:
        words += [key, value]
    sp = (sp - 8 * len(words)) & ~0xF
    mem.write(sp, struct.pack(f"<{len(words)}Q", *words))
    return sp


def auxv_bytes(mem: GuestMemory, rsp0: int) -> bytes:
    """The auxv block of an initial stack built by build_stack (for qXfer:auxv:read and NT_AUXV)."""
    argc = struct.unpack("<Q", mem.read(rsp0, 8))[0]
    addr = rsp0 + 8 * (argc + 2)
    while struct.unpack("<Q", mem.read(addr, 8))[0]:
        addr += 8
    addr += 8
    start = addr
    while struct.unpack("<Q", mem.read(addr, 8))[0] != AT_NULL:
        addr += 16
    return mem.read(start, addr + 16 - start)
