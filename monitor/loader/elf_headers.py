"""The ELF file header and program headers of a payload, read with struct: all a loader needs to map an executable.

Importing pyelftools' ELFFile costs ~25 ms (it brings DWARF and construct along), paid by every km start and by
every exec inside a payload, for two fixed-size headers. This reader offers the small part of ELFFile's interface
the loader uses (`elf["e_entry"]`, `iter_segments()`, `seg["p_type"]`, `seg.data()`, `stream`), with pyelftools'
names for the values, so pyelftools stays the tool for everything else (core files, symbols).
Layouts: the System V gABI, ELF-64 (include/uapi/linux/elf.h Elf64_Ehdr / Elf64_Phdr).
"""
from __future__ import annotations

import os
import struct
from typing import Any, BinaryIO, Iterator

_IDENT = struct.Struct("<4sBBBBB7x")               # magic, class, data, version, osabi, abiversion
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")         # Elf64_Ehdr
_PHDR = struct.Struct("<IIQQQQQQ")                 # Elf64_Phdr
_EHDR_FIELDS = ("e_ident", "e_type", "e_machine", "e_version", "e_entry", "e_phoff", "e_shoff", "e_flags",
                "e_ehsize", "e_phentsize", "e_phnum", "e_shentsize", "e_shnum", "e_shstrndx")
_PHDR_FIELDS = ("p_type", "p_flags", "p_offset", "p_vaddr", "p_paddr", "p_filesz", "p_memsz", "p_align")
E_TYPES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}
P_TYPES = {0: "PT_NULL", 1: "PT_LOAD", 2: "PT_DYNAMIC", 3: "PT_INTERP", 4: "PT_NOTE", 5: "PT_SHLIB", 6: "PT_PHDR",
           7: "PT_TLS", 0x6474E550: "PT_GNU_EH_FRAME", 0x6474E551: "PT_GNU_STACK", 0x6474E552: "PT_GNU_RELRO",
           0x6474E553: "PT_GNU_PROPERTY"}
MACHINES = {3: "x86", 62: "x64", 183: "AArch64", 40: "ARM"}
ELFCLASS64, ELFDATA2LSB, EM_X86_64 = 2, 1, 62
PT_LOAD = 1
PF_X, PF_W, PF_R = 1, 2, 4     # p_flags
_FILE_MAX = 1 << 40          # no payload file is larger; a header's offset or size beyond it is corrupt


def first_code_offset(fd: int) -> int:
    """The file offset of the first executable PT_LOAD of the ELF-64 file open as `fd`, read with two preads
    (0 when it is no such file or has none)."""
    raw = os.pread(fd, _EHDR.size, 0)
    if len(raw) < _EHDR.size or raw[:4] != b"\x7fELF" or raw[4] != ELFCLASS64 or raw[5] != ELFDATA2LSB:
        return 0
    header = _EHDR.unpack(raw)
    phoff, phentsize, phnum = header[5], header[9], header[10]
    if phentsize < _PHDR.size or phoff >= _FILE_MAX:
        return 0
    table = os.pread(fd, phentsize * phnum, phoff)
    offsets = [p_offset for p_type, p_flags, p_offset, *_ in
               (_PHDR.unpack_from(table, i * phentsize) for i in range(len(table) // phentsize))
               if p_type == PT_LOAD and p_flags & PF_X]
    return min(offsets, default=0)


class ELFError(Exception):
    """Not an ELF file, or one whose headers are cut short or inconsistent."""


class Segment(dict[str, Any]):
    """One program header: its values by pyelftools' names (p_type as "PT_LOAD" when known, else the number). A
    dict, so that seg["p_type"] is no Python call: the loader reads ~270 of them per exec of a dynamic program."""

    def __init__(self, stream: BinaryIO, fields: dict[str, Any]) -> None:
        super().__init__(fields)
        self.stream = stream

    def data(self) -> bytes:
        """The segment's file bytes (p_filesz of them); ELFError when the file is shorter."""
        if self["p_offset"] >= _FILE_MAX or self["p_filesz"] >= _FILE_MAX:
            raise ELFError("segment beyond the end of the file")        # seek/read would fail (EINVAL, overflow)
        self.stream.seek(self["p_offset"])
        data = self.stream.read(self["p_filesz"])
        if len(data) != self["p_filesz"]:
            raise ELFError("segment beyond the end of the file")
        return data


class ELFFile:
    """An ELF-64 little-endian file's headers (what km can run); ELFError for anything else that is not ELF."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        stream.seek(0)
        raw = stream.read(_EHDR.size)
        if len(raw) < 16 or raw[:4] != b"\x7fELF":
            raise ELFError("not an ELF file")
        _, ei_class, ei_data, *_ = _IDENT.unpack_from(raw)
        self.elfclass = 64 if ei_class == ELFCLASS64 else 32
        self.little_endian = ei_data == ELFDATA2LSB
        if self.elfclass != 64 or not self.little_endian:
            # too different to read further; the machine check reports it
            machine = raw[18:20]
            self.header: dict[str, Any] = {"e_machine": int.from_bytes(machine, "little" if self.little_endian
                                                                          else "big")}
            self._segments: list[Segment] | None = []
            return
        if len(raw) < _EHDR.size:
            raise ELFError("file header cut short")
        header = dict(zip(_EHDR_FIELDS, _EHDR.unpack(raw)))
        header["e_type"] = E_TYPES.get(header["e_type"], header["e_type"])
        self.header = header
        self._segments = None

    def _read_segments(self) -> list[Segment]:
        """The program headers, read on first use (as pyelftools does: a cut file fails here, not on open)."""
        header, stream = self.header, self.stream
        if header["e_phnum"] and header["e_phentsize"] < _PHDR.size:
            raise ELFError("program header entries too small")
        if header["e_phoff"] >= _FILE_MAX:
            raise ELFError("program headers beyond the end of the file")
        stream.seek(header["e_phoff"])
        table = stream.read(header["e_phentsize"] * header["e_phnum"])
        if len(table) != header["e_phentsize"] * header["e_phnum"]:
            raise ELFError("program headers beyond the end of the file")
        segments = []
        for i in range(header["e_phnum"]):
            fields = dict(zip(_PHDR_FIELDS, _PHDR.unpack_from(table, i * header["e_phentsize"])))
            fields["p_type"] = P_TYPES.get(fields["p_type"], fields["p_type"])
            segments.append(Segment(stream, fields))
        return segments

    def __getitem__(self, name: str):
        return self.header[name]

    def get_machine_arch(self) -> str:
        machine = self.header["e_machine"]
        return MACHINES.get(machine, f"machine {machine}")

    def iter_segments(self) -> Iterator[Segment]:
        if self._segments is None:
            self._segments = self._read_segments()
        return iter(self._segments)

    def num_segments(self) -> int:
        return len(list(self.iter_segments()))
