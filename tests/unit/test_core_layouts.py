"""kdbg/core/layouts.py against the C headers: every field's offset and size, every constant, as gcc sees them.

A tiny C program is generated from the ctypes declarations themselves (so a field added to a layout is checked
without touching this test), compiled with gcc against <sys/procfs.h>, <elf.h> and <signal.h>, and run.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess

import pytest

from kdbg.arch.x86_64 import FXSAVE_SIZE, USER_REGS
from kdbg.core import layouts

# Python layout -> the C type that declares it (glibc mirrors the kernel's elfcore.h names field by field).
C_TYPES = {
    layouts.elf_prstatus: "struct elf_prstatus",
    layouts.elf_prpsinfo: "struct elf_prpsinfo",
    layouts.elf_siginfo: "struct elf_siginfo",
    layouts.siginfo_t: "siginfo_t",
    layouts.Elf64_Ehdr: "Elf64_Ehdr",
    layouts.Elf64_Phdr: "Elf64_Phdr",
    layouts.Elf64_Shdr: "Elf64_Shdr",
    layouts.Elf64_Nhdr: "Elf64_Nhdr",
}

# Python constant -> the C expression that defines it.
C_CONSTANTS = {
    "NT_PRSTATUS": "NT_PRSTATUS", "NT_PRFPREG": "NT_PRFPREG", "NT_PRPSINFO": "NT_PRPSINFO", "NT_AUXV": "NT_AUXV",
    "NT_X86_XSTATE": "NT_X86_XSTATE", "NT_SIGINFO": "NT_SIGINFO", "NT_FILE": "NT_FILE",
    "ET_CORE": "ET_CORE", "EM_X86_64": "EM_X86_64", "PT_LOAD": "PT_LOAD", "PT_NOTE": "PT_NOTE", "PF_X": "PF_X",
    "PF_W": "PF_W", "PF_R": "PF_R", "PN_XNUM": "PN_XNUM", "ELFCLASS64": "ELFCLASS64",
    "ELFDATA2LSB": "ELFDATA2LSB", "EV_CURRENT": "EV_CURRENT", "AT_NULL": "AT_NULL", "AT_PHDR": "AT_PHDR",
    "AT_ENTRY": "AT_ENTRY", "SI_KERNEL": "SI_KERNEL", "ELF_PRARGSZ": "ELF_PRARGSZ",
    "SIGINFO_SIZE": "sizeof(siginfo_t)", "PAGE_SIZE": "sysconf(_SC_PAGESIZE)",
}


def _fields(layout: type, prefix: str = "", base: int = 0):
    """(dotted path, offset, size) of every field, nested structures and unions included."""
    for name, ctype in layout._fields_:
        descriptor = getattr(layout, name)
        path = prefix + name
        yield path, base + descriptor.offset, descriptor.size
        if hasattr(ctype, "_fields_"):
            yield from _fields(ctype, path + ".", base + descriptor.offset)


def _python_values() -> dict[str, int]:
    values = {}
    for layout, c_type in C_TYPES.items():
        values[f"sizeof {c_type}"] = ctypes.sizeof(layout)
        for path, offset, size in _fields(layout):
            values[f"offsetof {c_type} {path}"] = offset
            values[f"sizeof {c_type} {path}"] = size
    for name in C_CONSTANTS:
        values[f"const {name}"] = int(getattr(layouts, name) if hasattr(layouts, name) else layouts.NoteType[name])
    values["sizeof elf_gregset_t"] = 8 * len(USER_REGS)
    values["sizeof elf_fpregset_t"] = FXSAVE_SIZE
    return values


def _c_program() -> str:
    lines = ["#include <elf.h>", "#include <signal.h>", "#include <stddef.h>", "#include <stdio.h>",
             "#include <sys/procfs.h>", "#include <unistd.h>",
             "#define P(label, value) printf(\"%s=%ld\\n\", label, (long)(value))"]
    # glibc spells si_pid, si_addr... as macros for `_sifields._kill.si_pid`: undo them to name the members.
    nested = {path.rsplit(".", 1)[1] for path, _, _ in _fields(layouts.siginfo_t) if "." in path}
    lines += [f"#undef {name}" for name in sorted(nested)] + ["int main(void) {"]
    for layout, c_type in C_TYPES.items():
        lines.append(f'P("sizeof {c_type}", sizeof({c_type}));')
        for path, _, _ in _fields(layout):
            lines.append(f'P("offsetof {c_type} {path}", offsetof({c_type}, {path}));')
            lines.append(f'P("sizeof {c_type} {path}", sizeof((({c_type} *)0)->{path}));')
    for name, expression in C_CONSTANTS.items():
        lines.append(f'P("const {name}", {expression});')
    lines += ['P("sizeof elf_gregset_t", sizeof(elf_gregset_t));',
              'P("sizeof elf_fpregset_t", sizeof(elf_fpregset_t));', "return 0; }"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def c_values(tmp_path_factory) -> dict[str, int]:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    work = tmp_path_factory.mktemp("layouts")
    (work / "layouts.c").write_text(_c_program())
    # -D_GNU_SOURCE: SI_KERNEL and the siginfo member names are under feature-test macros in glibc.
    subprocess.run(["gcc", "-D_GNU_SOURCE", "-o", str(work / "layouts"), str(work / "layouts.c")], check=True,
                   capture_output=True)
    output = subprocess.run([str(work / "layouts")], check=True, capture_output=True, text=True).stdout
    return {key: int(value) for key, value in (line.split("=", 1) for line in output.splitlines())}


def test_every_layout_field_matches_the_c_headers(c_values):
    python = _python_values()
    mismatches = {k: (v, c_values.get(k)) for k, v in python.items() if c_values.get(k) != v}
    assert not mismatches, f"python value vs C value: {mismatches}"


def test_the_note_structs_have_the_kernels_sizes(c_values):
    # The sizes readelf and eu-readelf check each note against.
    assert c_values["sizeof struct elf_prstatus"] == ctypes.sizeof(layouts.elf_prstatus) == 336
    assert c_values["sizeof struct elf_prpsinfo"] == ctypes.sizeof(layouts.elf_prpsinfo) == 136
    assert c_values["sizeof siginfo_t"] == ctypes.sizeof(layouts.siginfo_t) == 128


def test_pr_reg_holds_user_regs_struct_in_the_arch_tables_order(c_values):
    assert c_values["sizeof struct elf_prstatus pr_reg"] == 8 * len(USER_REGS)


def test_note_packing_pads_name_and_descriptor_to_four_bytes():
    note = layouts.pack_note(layouts.NoteType.NT_X86_XSTATE, b"\x01\x02\x03")
    header = layouts.Elf64_Nhdr.from_buffer_copy(note[:12])
    assert (header.n_namesz, header.n_descsz, header.n_type) == (6, 3, 0x202)
    assert note[12:20] == b"LINUX\0\0\0" and note[20:] == b"\x01\x02\x03\0"
    assert layouts.pack_note(layouts.NoteType.NT_PRSTATUS, b"")[12:17] == b"CORE\0"


def test_nt_file_round_trips_and_counts_offsets_in_pages():
    entries = [layouts.FileMapping(0x400000, 0x401000, 0, "/bin/prog"),
               layouts.FileMapping(0x401000, 0x480000, 0x1000, "/bin/prog"),
               layouts.FileMapping(0x7F0000000000, 0x7F0000002000, 0x3000, "/lib/x y.so")]
    packed = layouts.pack_nt_file(entries)
    assert int.from_bytes(packed[8:16], "little") == 4096
    assert int.from_bytes(packed[16 + 24 + 16:16 + 24 + 24], "little") == 1      # file_ofs of entry 1, in pages
    assert layouts.parse_nt_file(packed) == entries
    assert layouts.parse_nt_file(b"") == [] and layouts.parse_nt_file(packed[:20]) == []


def test_auxv_parsing_stops_at_at_null():
    data = (3).to_bytes(8, "little") + (0x400040).to_bytes(8, "little") + bytes(16) + \
        (9).to_bytes(8, "little") + (1).to_bytes(8, "little")
    assert layouts.parse_auxv(data) == {3: 0x400040}


def test_a_short_note_unpacks_zero_padded():
    status = layouts.from_bytes(layouts.elf_prstatus, b"\x0b\0\0\0")
    assert status.pr_info.si_signo == 11 and status.pr_pid == 0
