"""Reading a snapshot file: its ELF headers, PT_LOADs and km notes, checked before anything is restored.

A file that is not an x86-64 ELF core, a core without km's notes (a kmcore), another format version, a truncated
file (a PT_LOAD's data past its end would be a SIGBUS when the guest touched it) or a note that does not parse
is refused with one line naming the problem.
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field
from typing import BinaryIO

from kdbg.core.layouts import (ELFCLASS64, ELFMAG, EM_X86_64, ET_CORE, PN_XNUM, PT_LOAD, PT_NOTE, Elf64_Ehdr,
                               Elf64_Phdr, Elf64_Shdr, NoteType, iter_notes)

from .errors import SnapshotError
from .layouts import (KM_NOTE_OWNER_PREFIX, KM_SNAPSHOT_FORMAT, KM_SNAPSHOT_MAGIC, SIGACTION_COUNT, Descriptor, KmNote,
                      array_of, km_pending, km_process, km_sigaction, km_snapshot, km_thread, km_vma, km_xsave, strings)


@dataclass
class Load:
    """One PT_LOAD: [vaddr, vaddr + memsz) mapped, its first filesz bytes at `offset` in the file."""

    vaddr: int
    memsz: int
    filesz: int
    offset: int


@dataclass
class Thread:
    """One thread's NT_KM_THREAD record and its XSAVE image (its NT_KM_XSAVE note; empty when it has none)."""

    record: km_thread
    xsave: bytes = b""


@dataclass
class Snapshot:
    """Everything a resume needs, parsed and checked."""

    path: str
    header: km_snapshot
    label: str
    description: str
    process: km_process
    argv: list[str]
    env: list[str]
    exe: str
    cwd: str
    threads: list[Thread]
    actions: list[km_sigaction]
    pending: list[km_pending]
    vmas: list[tuple[km_vma, str, str]]          # record, name, path
    descriptors: list[Descriptor]
    auxv: bytes
    loads: list[Load] = field(default_factory=list)


def read_snapshot(path: str) -> Snapshot:
    """The snapshot at `path`, parsed and checked whole before a resume touches anything: SnapshotError naming
    the first problem."""
    try:
        with open(path, "rb") as f:
            return _parse(path, f, os.fstat(f.fileno()).st_size)
    except OSError as e:
        raise SnapshotError(path, e.strerror or str(e)) from None


def _parse(path: str, f: BinaryIO, size: int) -> Snapshot:
    head = f.read(ctypes.sizeof(Elf64_Ehdr))
    if len(head) < ctypes.sizeof(Elf64_Ehdr) or head[:4] != ELFMAG or head[4] != ELFCLASS64:
        raise SnapshotError(path, "not a snapshot (not a 64-bit ELF file)")
    ehdr = Elf64_Ehdr.from_buffer_copy(head)
    if ehdr.e_type != ET_CORE or ehdr.e_machine != EM_X86_64:
        raise SnapshotError(path, "not a snapshot (not an x86-64 core file)")
    phnum = ehdr.e_phnum
    if phnum == PN_XNUM:
        f.seek(ehdr.e_shoff)
        phnum = Elf64_Shdr.from_buffer_copy(_read(path, f, ctypes.sizeof(Elf64_Shdr))).sh_info
    f.seek(ehdr.e_phoff)
    phdrs = array_of(Elf64_Phdr, _read(path, f, phnum * ctypes.sizeof(Elf64_Phdr)), phnum)
    km: dict[int, list[bytes]] = {}
    auxv = b""
    loads = []
    for phdr in phdrs:
        if phdr.p_type == PT_LOAD:
            if phdr.p_filesz and phdr.p_offset + phdr.p_filesz > size:
                raise SnapshotError(path, f"truncated ({size} bytes, its memory goes on to "
                                          f"{phdr.p_offset + phdr.p_filesz})")
            loads.append(Load(phdr.p_vaddr, phdr.p_memsz, phdr.p_filesz, phdr.p_offset))
        elif phdr.p_type == PT_NOTE:
            if phdr.p_offset + phdr.p_filesz > size:
                raise SnapshotError(path, "truncated (its notes go past its end)")
            f.seek(phdr.p_offset)
            try:
                for owner, kind, desc in iter_notes(_read(path, f, phdr.p_filesz)):
                    if owner.startswith(KM_NOTE_OWNER_PREFIX):
                        km.setdefault(kind, []).append(desc)
                    elif owner == b"CORE" and kind == NoteType.NT_AUXV:
                        auxv = desc
            except ValueError as e:
                raise SnapshotError(path, f"corrupt ({e})") from None
    if KmNote.NT_KM_SNAPSHOT not in km:
        raise SnapshotError(path, "a core file without km's snapshot notes (gdb reads it; km --core serves it)")
    try:
        snapshot = _from_notes(path, km, auxv)
    except (ValueError, KeyError, IndexError, UnicodeError) as e:
        raise SnapshotError(path, f"corrupt ({e})") from None
    snapshot.loads = loads
    return snapshot


def _read(path: str, f: BinaryIO, count: int) -> bytes:
    data = f.read(count)
    if len(data) != count:
        raise SnapshotError(path, "truncated")
    return data


def _one(km: dict[int, list[bytes]], kind: KmNote) -> bytes:
    if kind not in km:
        raise ValueError(f"no {kind.name} note")
    return km[kind][0]


def _from_notes(path: str, km: dict[int, list[bytes]], auxv: bytes) -> Snapshot:
    data = _one(km, KmNote.NT_KM_SNAPSHOT)
    header = array_of(km_snapshot, data, 1)[0]
    if header.magic != KM_SNAPSHOT_MAGIC:
        raise ValueError("bad magic")
    if header.format != KM_SNAPSHOT_FORMAT:
        version = header.km_version.decode(errors="replace")
        raise SnapshotError(path, f"written by km {version} in snapshot format {header.format}; this km reads "
                                  f"format {KM_SNAPSHOT_FORMAT}")
    label, description = (s.decode(errors="surrogateescape")
                          for s in strings(data[ctypes.sizeof(km_snapshot):], 2))
    data = _one(km, KmNote.NT_KM_PROCESS)
    process = array_of(km_process, data, 1)[0]
    words = [s.decode(errors="surrogateescape")
             for s in strings(data[ctypes.sizeof(km_process):], process.argc + process.envc + 2)]
    argv, env = words[:process.argc], words[process.argc:process.argc + process.envc]
    xsaves = {}
    for blob in km.get(KmNote.NT_KM_XSAVE, []):
        record = array_of(km_xsave, blob, 1)[0]
        xsaves[record.tid] = blob[ctypes.sizeof(km_xsave):ctypes.sizeof(km_xsave) + record.size]
    threads = [Thread(t, xsaves.get(t.tid, b"")) for blob in km.get(KmNote.NT_KM_THREAD, [])
               for t in array_of(km_thread, blob, 1)]
    if not threads:
        raise ValueError("no thread")
    actions = array_of(km_sigaction, _one(km, KmNote.NT_KM_SIGACTIONS), SIGACTION_COUNT)
    blob = km.get(KmNote.NT_KM_SIGPENDING, [b""])[0]
    pending = array_of(km_pending, blob, len(blob) // ctypes.sizeof(km_pending))
    return Snapshot(path, header, label, description, process, argv, env, words[-2], words[-1], threads, actions,
                    pending, [_vma(n) for n in km.get(KmNote.NT_KM_VMA, [])],
                    [Descriptor.unpack(n) for n in km.get(KmNote.NT_KM_FD, [])], auxv)


def _vma(note: bytes) -> tuple[km_vma, str, str]:
    record = array_of(km_vma, note, 1)[0]
    name, path = strings(note[ctypes.sizeof(km_vma):], 2)
    return record, name.decode(errors="surrogateescape"), path.decode(errors="surrogateescape")
