"""kdbg/core/layouts.py (and kdbg/arch/linux.py's auxv keys) against the C headers: every field's offset and size,
every constant, as gcc sees them (tests/unit/c_layouts.py generates the C program from the ctypes declarations; compiled against <sys/procfs.h>,
<elf.h> and <signal.h>)."""
from __future__ import annotations

import ctypes

import pytest

from kdbg.arch import linux
from kdbg.arch.x86_64 import FXSAVE_SIZE, USER_REGS
from kdbg.core import layouts

from .c_layouts import c_program, c_values as compiled, fields, mismatches, python_values

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
    "ELFDATA2LSB": "ELFDATA2LSB", "EV_CURRENT": "EV_CURRENT", "SI_KERNEL": "SI_KERNEL", "ELF_PRARGSZ": "ELF_PRARGSZ",
    "SIGINFO_SIZE": "sizeof(siginfo_t)", "PAGE_SIZE": "sysconf(_SC_PAGESIZE)",
    **{name: name for name in dir(linux) if name.startswith("AT_")},     # the auxv keys (kdbg/arch/linux.py)
}
GREGSET = {"sizeof elf_gregset_t": "sizeof(elf_gregset_t)", "sizeof elf_fpregset_t": "sizeof(elf_fpregset_t)"}


def _python_values() -> dict[str, int]:
    values = python_values(C_TYPES)
    for name in C_CONSTANTS:
        source = layouts if hasattr(layouts, name) else linux if hasattr(linux, name) else None
        values[f"const {name}"] = int(getattr(source, name) if source is not None else layouts.NoteType[name])
    values["sizeof elf_gregset_t"] = 8 * len(USER_REGS)
    values["sizeof elf_fpregset_t"] = FXSAVE_SIZE
    return values


@pytest.fixture(scope="module")
def c_values(tmp_path_factory) -> dict[str, int]:
    # glibc spells si_pid, si_addr... as macros for `_sifields._kill.si_pid`: undo them to name the members.
    nested = {path.rsplit(".", 1)[1] for path, _, _ in fields(layouts.siginfo_t) if "." in path}
    source = c_program(["elf.h", "signal.h", "sys/procfs.h", "unistd.h"], C_TYPES,
                       {**{f"const {name}": expression for name, expression in C_CONSTANTS.items()}, **GREGSET},
                       preamble=[f"#undef {name}" for name in sorted(nested)])
    # -D_GNU_SOURCE: SI_KERNEL and the siginfo member names are under feature-test macros in glibc.
    return compiled(tmp_path_factory.mktemp("layouts"), source, ["-D_GNU_SOURCE"])


def test_every_layout_field_matches_the_c_headers(c_values):
    wrong = mismatches(_python_values(), c_values)
    assert not wrong, f"python value vs C value: {wrong}"


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




def test_a_short_note_unpacks_zero_padded():
    status = layouts.from_bytes(layouts.elf_prstatus, b"\x0b\0\0\0")
    assert status.pr_info.si_signo == 11 and status.pr_pid == 0
