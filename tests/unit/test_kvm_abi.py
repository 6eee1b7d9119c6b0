"""monitor/kvm/abi.py against <linux/kvm.h>: every struct size and field offset km declares, every ioctl number
and constant, as the C compiler sees them (docs/HOUSE-STYLE.md 2.8:
layouts declared once, checked against the header)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from monitor.kvm import abi

ffi = abi.ffi
HEADER = Path("/usr/include/linux/kvm.h")

# (cffi struct, C struct) pairs whose sizes must agree; the *_hdr structs stand for the fixed part of a
# variable-length struct (the size encoded in its ioctl number)
STRUCTS = {
    "struct kvm_regs": "struct kvm_regs",
    "struct kvm_segment": "struct kvm_segment",
    "struct kvm_dtable": "struct kvm_dtable",
    "struct kvm_sregs": "struct kvm_sregs",
    "struct kvm_run": "struct kvm_run",
    "struct kvm_userspace_memory_region": "struct kvm_userspace_memory_region",
    "struct kvm_msr_entry": "struct kvm_msr_entry",
    "struct kvm_cpuid_entry2": "struct kvm_cpuid_entry2",
    "struct kvm_xsave": "struct kvm_xsave",
    "struct kvm_xcr": "struct kvm_xcr",
    "struct kvm_xcrs": "struct kvm_xcrs",
    "struct kvm_debugregs": "struct kvm_debugregs",
    "struct kvm_guest_debug_arch": "struct kvm_guest_debug_arch",
    "struct kvm_guest_debug": "struct kvm_guest_debug",
    "struct kvm_msrs_hdr": "struct kvm_msrs",
    "struct kvm_cpuid2_hdr": "struct kvm_cpuid2",
}
# declared as a prefix of the C struct (km never touches kvm_sync_regs.events): offsets checked, size at most C's
PREFIX_STRUCTS = {"struct kvm_sync_regs": "struct kvm_sync_regs"}
FIELDS = {
    "struct kvm_sync_regs": ["regs", "sregs"],
    "struct kvm_run": ["request_interrupt_window", "immediate_exit", "exit_reason", "ready_for_interrupt_injection",
                       "if_flag", "flags", "cr8", "apic_base", "kvm_valid_regs", "kvm_dirty_regs", "s"],
    "struct kvm_sregs": ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt", "gdt", "idt", "cr0", "cr2", "cr3", "cr4",
                         "cr8", "efer", "apic_base", "interrupt_bitmap"],
    "struct kvm_segment": ["base", "limit", "selector", "type", "present", "dpl", "db", "s", "l", "g", "avl",
                           "unusable"],
    "struct kvm_regs": ["rax", "rcx", "rsp", "rip", "rflags", "r15"],
    "struct kvm_userspace_memory_region": ["slot", "flags", "guest_phys_addr", "memory_size", "userspace_addr"],
    "struct kvm_debugregs": ["db", "dr6", "dr7", "flags"],
    "struct kvm_guest_debug": ["control", "arch"],
    "struct kvm_cpuid_entry2": ["function", "index", "flags", "eax", "ebx", "ecx", "edx"],
    "struct kvm_xcrs": ["nr_xcrs", "flags", "xcrs", "padding"],
    "struct kvm_xcr": ["xcr", "value"],
}
# union members of kvm_run's exit area, as `u.<member>.<field>` in C
EXIT_FIELDS = {"io": ("struct kvm_run_io", ["direction", "size", "port", "count", "data_offset"]),
               "mmio": ("struct kvm_run_mmio", ["phys_addr", "data", "len", "is_write"]),
               "internal": ("struct kvm_run_internal", ["suberror", "ndata", "data"]),
               "debug": ("struct kvm_run_debug", None)}
CONSTANTS = ["KVM_GET_API_VERSION", "KVM_CREATE_VM", "KVM_CHECK_EXTENSION", "KVM_GET_VCPU_MMAP_SIZE",
             "KVM_GET_SUPPORTED_CPUID", "KVM_CREATE_VCPU", "KVM_SET_USER_MEMORY_REGION", "KVM_RUN", "KVM_GET_REGS",
             "KVM_SET_REGS", "KVM_GET_SREGS", "KVM_SET_SREGS", "KVM_GET_MSRS", "KVM_SET_MSRS", "KVM_SET_CPUID2",
             "KVM_SET_GUEST_DEBUG", "KVM_GET_DEBUGREGS", "KVM_SET_DEBUGREGS", "KVM_GET_XSAVE", "KVM_SET_XSAVE", "KVM_GET_XCRS", "KVM_SET_XCRS",
             "KVM_API_VERSION", "KVM_CAP_IMMEDIATE_EXIT", "KVM_CAP_SYNC_REGS", "KVM_CAP_XSAVE", "KVM_SYNC_X86_REGS",
             "KVM_SYNC_X86_SREGS", "KVM_GUESTDBG_ENABLE", "KVM_GUESTDBG_SINGLESTEP", "KVM_GUESTDBG_USE_HW_BP",
             "KVM_EXIT_UNKNOWN", "KVM_EXIT_EXCEPTION", "KVM_EXIT_IO", "KVM_EXIT_DEBUG", "KVM_EXIT_HLT",
             "KVM_EXIT_MMIO", "KVM_EXIT_SHUTDOWN", "KVM_EXIT_FAIL_ENTRY", "KVM_EXIT_INTR", "KVM_EXIT_INTERNAL_ERROR"]
MMAN = ["PROT_NONE", "PROT_READ", "PROT_WRITE", "PROT_EXEC", "MAP_SHARED", "MAP_PRIVATE", "MAP_FIXED",
        "MAP_ANONYMOUS", "MAP_NORESERVE", "MADV_DONTNEED"]


@pytest.fixture(scope="module")
def c_values(tmp_path_factory) -> dict[str, int]:
    """name -> value as compiled C sees it: sizeof:S, offsetof:S:field, and the constants."""
    if not HEADER.exists() or not shutil.which("gcc"):
        pytest.skip("needs gcc and linux/kvm.h")
    lines = []
    for mine, theirs in {**STRUCTS, **PREFIX_STRUCTS}.items():
        lines.append(f'P("sizeof:{mine}", sizeof({theirs}));')
    for struct, fields in FIELDS.items():
        for f in fields:
            lines.append(f'P("offsetof:{struct}:{f}", offsetof({struct}, {f}));')
    for member, (cdef_name, fields) in EXIT_FIELDS.items():
        lines.append(f'P("offsetof:struct kvm_run:u.{member}", offsetof(struct kvm_run, {member}));')
        lines.append(f'P("sizeof:{cdef_name}", sizeof(((struct kvm_run *)0)->{member}));')
        for f in fields or []:
            lines.append(f'P("offsetof:{cdef_name}:{f}", offsetof(struct kvm_run, {member}.{f}) - '
                         f'offsetof(struct kvm_run, {member}));')
    for name in CONSTANTS + MMAN:
        lines.append(f'P("const:{name}", (unsigned long long)({name}));')
    src = tmp_path_factory.mktemp("abi") / "abi.c"
    src.write_text("#include <stddef.h>\n#include <stdio.h>\n#include <sys/mman.h>\n#include <linux/kvm.h>\n"
                   "#define P(n, v) printf(\"%s=%llu\\n\", n, (unsigned long long)(v))\n"
                   "int main(void) {\n" + "\n".join(lines) + "\nreturn 0; }\n")
    exe = src.with_suffix("")
    subprocess.run(["gcc", "-o", exe, src], check=True, capture_output=True)
    out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    return {k: int(v) for k, v in (line.rsplit("=", 1) for line in out.splitlines())}


@pytest.mark.parametrize("struct", sorted(STRUCTS))
def test_struct_sizes(c_values, struct):
    assert ffi.sizeof(struct) == c_values[f"sizeof:{struct}"]


def test_prefix_structs_fit(c_values):
    for struct in PREFIX_STRUCTS:
        assert ffi.sizeof(struct) <= c_values[f"sizeof:{struct}"], struct


@pytest.mark.parametrize("struct", sorted(FIELDS))
def test_field_offsets(c_values, struct):
    for field in FIELDS[struct]:
        assert ffi.offsetof(struct, field) == c_values[f"offsetof:{struct}:{field}"], field


def test_exit_union_members(c_values):
    base = ffi.offsetof("struct kvm_run", "u")
    for member, (cdef_name, fields) in EXIT_FIELDS.items():
        assert base == c_values[f"offsetof:struct kvm_run:u.{member}"], member
        assert ffi.sizeof(cdef_name) <= ffi.sizeof("union kvm_run_exit")
        for field in fields or []:
            assert ffi.offsetof(cdef_name, field) == c_values[f"offsetof:{cdef_name}:{field}"], (member, field)


def test_fast_path_offsets(c_values):
    """The offsets the vCPU loop unpacks on every exit."""
    assert abi.RUN_EXIT_REASON == c_values["offsetof:struct kvm_run:exit_reason"]
    assert abi.RUN_IO_PORT == c_values["offsetof:struct kvm_run:u.io"] + c_values["offsetof:struct kvm_run_io:port"]
    assert abi.RUN_SYNC_REGS == c_values["offsetof:struct kvm_run:s"]
    assert abi.RUN_SYNC_SREGS == abi.RUN_SYNC_REGS + c_values["sizeof:struct kvm_regs"]


@pytest.mark.parametrize("name", CONSTANTS + MMAN)
def test_ioctl_numbers_and_constants(c_values, name):
    assert getattr(abi, name) == c_values[f"const:{name}"], f"{name}: {getattr(abi, name):#x}"


def test_exit_names_cover_every_exit_reason():
    assert abi.EXIT_NAMES[abi.KVM_EXIT_IO] == "IO"
    assert abi.EXIT_NAMES[abi.KVM_EXIT_INTERNAL_ERROR] == "INTERNAL_ERROR"
    assert len(abi.EXIT_NAMES) == len([n for n in CONSTANTS if n.startswith("KVM_EXIT_")])
