"""The guest's fixed machinery: GDT, IDT, TSSs, exception stubs, the syscall stub, and each vCPU's CPU state.

Layout (docs/KVM.md section 3; shared/platform/probes/pvm.h builds the same): the first 2 MiB of guest-physical
memory hold the system area, mapped supervisor-only at KBASE in the high half, except the syscall stub page which
is user-executable (on kvm-pvm `syscall` enters LSTAR at CPL3). Exception vector v runs the CPL0 stub
`[push $0]; out %al,$v; add $8,%rsp; iretq`: one KVM_EXIT_IO with port v, the frame at the top of the vCPU's
ring-0 stack. The syscall stub is `out %al,$0x80`: one KVM_EXIT_IO with port 0x80 (the TSS I/O bitmap allows
that port at CPL3); km answers through kvm_run sync regs (rax, rip=rcx, rflags=r11): one exit, no ioctl.
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ..errors import KvmError
from ..kvm import abi

if TYPE_CHECKING:
    from ..kvm.cpuid import CpuidTable
    from ..kvm.vcpu import Vcpu

KBASE = 0xFFFFFFFF80000000
SYSTEM_SIZE = 0x200000
GDT_GPA, STUBS_GPA, IDT_GPA, SYSCALL_STUB_GPA = 0x1000, 0x4000, 0x6000, 0x8000   # GDT: up to 0x4000
TSS_GPA = 0x10000            # 256 bytes per vCPU: 0x68-byte TSS + I/O bitmap for ports 0..0xff
RING0_STACKS_GPA = 0x20000   # one 4 KiB page per vCPU
MAX_VCPUS = 256              # GDT 0x40 + 16 * 256 bytes fits below the stubs; TSSs and stacks below 2 MiB
SYSCALL_PORT = 0x80
SYSCALL_STUB_GVA = KBASE + SYSCALL_STUB_GPA
SELFTEST_GVA = SYSCALL_STUB_GVA + 0x100     # `syscall` used by the start-up self-test
STUBS_GVA = KBASE + STUBS_GPA

KERNEL_CS, KERNEL_DS, USER32_CS, USER_DS, USER_CS = 0x10, 0x18, 0x23, 0x2B, 0x33
MSR_STAR, MSR_LSTAR, MSR_SFMASK, MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE = \
    0xC0000081, 0xC0000082, 0xC0000084, 0xC0000100, 0xC0000101, 0xC0000102
SFMASK = 0x47700             # TF DF IF AC NT cleared on syscall, as Linux does
VECTORS_WITH_ERROR_CODE = frozenset({8, 10, 11, 12, 13, 14, 17, 21, 29, 30})
CR0, CR4, EFER = 0x80010033, 0x620, 0xD01
CR4_OSXSAVE = 1 << 18
# XCR0 components a Linux process may use: x87, SSE, AVX, AVX-512 (opmask, ZMM_Hi256, Hi16_ZMM). AMX needs a
# per-process permission (arch_prctl ARCH_REQ_XCOMP_PERM) that km does not grant; PKRU needs CR4.PKE.
XCR0_USER = 0xE7


def tss_selector(vcpu_id: int) -> int:
    return 0x40 + 16 * vcpu_id


def ring0_stack_top_gpa(vcpu_id: int) -> int:
    return RING0_STACKS_GPA + 0x1000 * (vcpu_id + 1)


def exception_frame_gpa(vcpu_id: int) -> int:
    """Where the stub's frame lies while km handles an exception exit: err, rip, cs, rflags, rsp, ss."""
    return ring0_stack_top_gpa(vcpu_id) - 48


def build_system_area(view: memoryview) -> None:
    """Write GDT, IDT, TSSs and stubs into the first 2 MiB of guest-physical memory."""
    gdt = [0, 0, 0x00AF9B000000FFFF, 0x00CF93000000FFFF, 0x00CFFB000000FFFF, 0x00CFF3000000FFFF,
           0x00AFFB000000FFFF]
    struct.pack_into(f"<{len(gdt)}Q", view, GDT_GPA, *gdt)
    for v in range(256):
        code = b"" if v in VECTORS_WITH_ERROR_CODE else b"\x6a\x00"        # push $0
        code += bytes([0xE6, v]) + b"\x48\x83\xc4\x08" + b"\x48\xcf"       # out %al,$v; add $8,%rsp; iretq
        view[STUBS_GPA + 16 * v: STUBS_GPA + 16 * v + len(code)] = code
        handler = STUBS_GVA + 16 * v
        dpl = 3 if v in (3, 4) else 0                                        # int3 / into allowed from CPL3
        low = (handler & 0xFFFF) | (KERNEL_CS << 16) | ((0x8E | dpl << 5) << 40) | (((handler >> 16) & 0xFFFF) << 48)
        struct.pack_into("<QQ", view, IDT_GPA + 16 * v, low, handler >> 32)
    # syscall stub: out %al,$0x80 ; ud2 (km never lets it run past the out). Self-test: syscall ; ud2.
    view[SYSCALL_STUB_GPA:SYSCALL_STUB_GPA + 4] = b"\xe6\x80\x0f\x0b"
    view[SYSCALL_STUB_GPA + 0x100:SYSCALL_STUB_GPA + 0x104] = b"\x0f\x05\x0f\x0b"
    for i in range(MAX_VCPUS):
        base = TSS_GPA + 256 * i
        struct.pack_into("<Q", view, base + 4, KBASE + ring0_stack_top_gpa(i))   # rsp0
        struct.pack_into("<H", view, base + 102, 0x68)                          # I/O bitmap offset
        bitmap = bytearray(b"\xff" * 33)                                       # ports 0..255, then 0xff
        bitmap[SYSCALL_PORT // 8] &= ~(1 << (SYSCALL_PORT % 8))
        view[base + 0x68: base + 0x68 + 33] = bitmap
        tss_base, limit = KBASE + base, 0x68 + 33 - 1
        desc_low = (limit & 0xFFFF) | ((tss_base & 0xFFFFFF) << 16) | (0x89 << 40) | (((tss_base >> 24) & 0xFF) << 56)
        struct.pack_into("<QQ", view, GDT_GPA + tss_selector(i), desc_low, tss_base >> 32)


def init_vcpu_state(vcpu: Vcpu, vcpu_id: int, cr3: int, cpuid: CpuidTable) -> None:
    """Long mode at CPL3 with Linux's selectors; STAR/LSTAR/SFMASK for the syscall stub."""
    sregs = vcpu.get_sregs()
    for name in ("cs", "ds", "es", "fs", "gs", "ss"):
        seg = getattr(sregs, name)
        seg.base, seg.limit, seg.present, seg.dpl, seg.s, seg.g, seg.unusable = 0, 0xFFFFFFFF, 1, 3, 1, 1, 0
        if name == "cs":
            seg.selector, seg.type, seg.l, seg.db = USER_CS, 11, 1, 0
        else:
            seg.selector, seg.type, seg.l, seg.db = USER_DS, 3, 0, 1
    sregs.tr.base, sregs.tr.limit, sregs.tr.selector = KBASE + TSS_GPA + 256 * vcpu_id, 0x68 + 33 - 1, tss_selector(vcpu_id)
    sregs.tr.type, sregs.tr.present, sregs.tr.s, sregs.tr.unusable = 11, 1, 0, 0
    sregs.ldt.unusable = 1
    sregs.gdt.base, sregs.gdt.limit = KBASE + GDT_GPA, tss_selector(MAX_VCPUS) - 1
    sregs.idt.base, sregs.idt.limit = KBASE + IDT_GPA, 256 * 16 - 1
    # CPUID first: KVM accepts CR4.OSXSAVE only for a vCPU whose CPUID allows XSAVE
    vcpu.set_cpuid(cpuid)
    xcr0 = xcr0_of(cpuid)
    sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer = CR0, cr3, CR4 | (CR4_OSXSAVE if xcr0 else 0), EFER
    try:
        vcpu.set_sregs(sregs)
    except KvmError:
        if not xcr0:
            raise
        xcr0, sregs.cr4 = 0, CR4          # a KVM that refuses XSAVE to its guests: SSE only, as before
        vcpu.set_sregs(sregs)
    if xcr0:
        vcpu.set_xcr0(xcr0)
    vcpu.set_msrs({MSR_STAR: (USER32_CS << 48) | (KERNEL_CS << 32), MSR_LSTAR: SYSCALL_STUB_GVA,
                   MSR_SFMASK: SFMASK, MSR_KERNEL_GS_BASE: 0})


def xcr0_of(cpuid: CpuidTable) -> int:
    """The XCR0 a Linux kernel would set on this CPU (0 without XSAVE): the components of CPUID 0xD.0 EDX:EAX
    that a user process may use. With CR4.OSXSAVE and XCR0 set, glibc and musl see AVX and AVX-512 as usable
    (CPUID.1:ECX.OSXSAVE, XGETBV) and pick the string and memory routines they pick natively. kvm-pvm's
    KVM_GET_SUPPORTED_CPUID leaves XSAVE out of leaf 1 while its guests run the host's CPUID, so leaf 0xD is
    what tells."""
    for i in range(cpuid.nent):
        entry = cpuid.entries[i]
        if entry.function == 0xD and entry.index == 0 and entry.eax & 3 == 3:     # x87 and SSE: XSAVE works
            return ((entry.edx << 32) | entry.eax) & XCR0_USER
    return 0


# kvm_segment's selector, type, present, dpl, db, s, l: contiguous bytes, rewritten in place in kvm_run's sync
# sregs (cffi's attribute writes cost ~7 us a return to CPL3, which every breakpoint and step stop makes)
_SEGMENT_FIELDS = struct.Struct("<HBBBBBB")
_SEGMENT_AT = abi.ffi.offsetof("struct kvm_segment", "selector")
USER_SEGMENTS = tuple((abi.RUN_SYNC_SREGS + abi.ffi.offsetof("struct kvm_sregs", name) + _SEGMENT_AT, selector,
                        type_, long_mode, db)
                       for name, selector, type_, long_mode, db in (("cs", USER_CS, 11, 1, 0), ("ss", USER_DS, 3, 0, 1)))


def user_segment_fix(run_buf: memoryview) -> None:
    """Return to CPL3 from a stub (an exception's, or hardware KVM's `syscall` at CPL0): user CS and SS in the
    sync sregs of kvm_run (`run_buf`), base, limit, present and granularity left as they are."""
    unpack, pack = _SEGMENT_FIELDS.unpack_from, _SEGMENT_FIELDS.pack_into
    for offset, selector, type_, long_mode, db in USER_SEGMENTS:
        _, _, present, _, _, s, _ = unpack(run_buf, offset)
        pack(run_buf, offset, selector, type_, present, 3, db, s, long_mode)


assert abi.KVM_EXIT_IO == 2
