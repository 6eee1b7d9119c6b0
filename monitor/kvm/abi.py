"""The KVM ABI as km uses it: cffi declarations of the structs (linux/kvm.h) and the ioctl numbers derived from them.

This is the only place a KVM layout is declared (docs/HOUSE-STYLE.md 2.8); tests/unit/test_kvm_abi.py checks every size
and offset against the C header. ABI mode (no compiler needed at run time), out-of-line: the parsed declarations are
kept as a generated module (kvm/ffi_module.py), so a start does not parse C. The few libc functions km calls
directly (ioctl, mmap family, raw syscall) are declared here too, because cffi releases the GIL around them and
returns EINTR instead of retrying (Python's os.* functions retry, PEP 475, which would make a blocked vCPU thread
deaf to kicks).
"""
from __future__ import annotations

from . import ffi_module

CDEF = """
struct kvm_regs {
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rip, rflags;
};
struct kvm_segment {
    uint64_t base; uint32_t limit; uint16_t selector;
    uint8_t type, present, dpl, db, s, l, g, avl, unusable, padding;
};
struct kvm_dtable { uint64_t base; uint16_t limit; uint16_t padding[3]; };
struct kvm_sregs {
    struct kvm_segment cs, ds, es, fs, gs, ss, tr, ldt;
    struct kvm_dtable gdt, idt;
    uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
    uint64_t interrupt_bitmap[4];
};
struct kvm_run_io { uint8_t direction; uint8_t size; uint16_t port; uint32_t count; uint64_t data_offset; };
struct kvm_run_mmio { uint64_t phys_addr; uint8_t data[8]; uint32_t len; uint8_t is_write; };
struct kvm_run_internal { uint32_t suberror; uint32_t ndata; uint64_t data[16]; };
struct kvm_run_fail_entry { uint64_t hardware_entry_failure_reason; uint32_t cpu; };
struct kvm_run_debug { uint32_t exception; uint32_t pad; uint64_t pc; uint64_t dr6; uint64_t dr7; };
union kvm_run_exit {
    struct kvm_run_io io; struct kvm_run_mmio mmio; struct kvm_run_internal internal;
    struct kvm_run_fail_entry fail_entry; struct kvm_run_debug debug; char padding[256];
};
struct kvm_sync_regs { struct kvm_regs regs; struct kvm_sregs sregs; };
union kvm_sync_area { struct kvm_sync_regs regs; char padding[2048]; };
struct kvm_run {
    uint8_t request_interrupt_window; uint8_t immediate_exit; uint8_t padding1[6];
    uint32_t exit_reason; uint8_t ready_for_interrupt_injection; uint8_t if_flag; uint16_t flags;
    uint64_t cr8; uint64_t apic_base;
    union kvm_run_exit u;
    uint64_t kvm_valid_regs; uint64_t kvm_dirty_regs;
    union kvm_sync_area s;
};
struct kvm_userspace_memory_region {
    uint32_t slot; uint32_t flags; uint64_t guest_phys_addr; uint64_t memory_size; uint64_t userspace_addr;
};
struct kvm_msr_entry { uint32_t index; uint32_t reserved; uint64_t data; };
struct kvm_msrs { uint32_t nmsrs; uint32_t pad; struct kvm_msr_entry entries[8]; };
struct kvm_cpuid_entry2 {
    uint32_t function, index, flags, eax, ebx, ecx, edx; uint32_t padding[3];
};
struct kvm_cpuid2 { uint32_t nent; uint32_t padding; struct kvm_cpuid_entry2 entries[256]; };
struct kvm_xsave { uint32_t region[1024]; };
struct kvm_xcr { uint32_t xcr; uint32_t reserved; uint64_t value; };
struct kvm_xcrs { uint32_t nr_xcrs; uint32_t flags; struct kvm_xcr xcrs[16]; uint64_t padding[16]; };
struct kvm_debugregs { uint64_t db[4]; uint64_t dr6; uint64_t dr7; uint64_t flags; uint64_t reserved[9]; };
struct kvm_guest_debug_arch { uint64_t debugreg[8]; };
struct kvm_guest_debug { uint32_t control; uint32_t pad; struct kvm_guest_debug_arch arch; };

struct kvm_msrs_hdr { uint32_t nmsrs; uint32_t pad; };   /* the fixed part of a variable-length struct: */
struct kvm_cpuid2_hdr { uint32_t nent; uint32_t padding; };  /* its size is the one in the ioctl number */

int ioctl(int fd, unsigned long request, void *arg);
void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
int munmap(void *addr, size_t length);
int mprotect(void *addr, size_t len, int prot);
int madvise(void *addr, size_t length, int advice);
long syscall(long number, long a1, long a2, long a3, long a4, long a5, long a6);
"""
ffi = ffi_module.load("abi", CDEF)
libc = ffi.dlopen(None)

KVMIO = 0xAE
_IOC_NONE, _IOC_WRITE, _IOC_READ = 0, 1, 2


def _ioc(direction: int, nr: int, struct: str | None) -> int:
    size = ffi.sizeof(struct) if struct else 0
    return (direction << 30) | (size << 16) | (KVMIO << 8) | nr


def _io(nr: int) -> int:
    return _ioc(_IOC_NONE, nr, None)


def _ior(nr: int, struct: str) -> int:
    return _ioc(_IOC_READ, nr, struct)


def _iow(nr: int, struct: str) -> int:
    return _ioc(_IOC_WRITE, nr, struct)


def _iowr(nr: int, struct: str) -> int:
    return _ioc(_IOC_READ | _IOC_WRITE, nr, struct)



KVM_GET_API_VERSION = _io(0x00)
KVM_CREATE_VM = _io(0x01)
KVM_CHECK_EXTENSION = _io(0x03)
KVM_GET_VCPU_MMAP_SIZE = _io(0x04)
KVM_GET_SUPPORTED_CPUID = _iowr(0x05, "struct kvm_cpuid2_hdr")
KVM_CREATE_VCPU = _io(0x41)
KVM_SET_USER_MEMORY_REGION = _iow(0x46, "struct kvm_userspace_memory_region")
KVM_RUN = _io(0x80)
KVM_GET_REGS = _ior(0x81, "struct kvm_regs")
KVM_SET_REGS = _iow(0x82, "struct kvm_regs")
KVM_GET_SREGS = _ior(0x83, "struct kvm_sregs")
KVM_SET_SREGS = _iow(0x84, "struct kvm_sregs")
KVM_GET_MSRS = _iowr(0x88, "struct kvm_msrs_hdr")
KVM_SET_MSRS = _iow(0x89, "struct kvm_msrs_hdr")
KVM_SET_CPUID2 = _iow(0x90, "struct kvm_cpuid2_hdr")
KVM_SET_GUEST_DEBUG = _iow(0x9B, "struct kvm_guest_debug")
KVM_GET_DEBUGREGS = _ior(0xA1, "struct kvm_debugregs")
KVM_SET_DEBUGREGS = _iow(0xA2, "struct kvm_debugregs")
KVM_GET_XSAVE = _ior(0xA4, "struct kvm_xsave")
KVM_SET_XSAVE = _iow(0xA5, "struct kvm_xsave")
KVM_GET_XCRS = _ior(0xA6, "struct kvm_xcrs")
KVM_SET_XCRS = _iow(0xA7, "struct kvm_xcrs")

KVM_API_VERSION = 12
KVM_CAP_IMMEDIATE_EXIT = 136
KVM_CAP_SYNC_REGS = 74
KVM_CAP_XSAVE = 55
KVM_SYNC_X86_REGS = 1 << 0
KVM_SYNC_X86_SREGS = 1 << 1

KVM_GUESTDBG_ENABLE = 0x1
KVM_GUESTDBG_SINGLESTEP = 0x2
KVM_GUESTDBG_USE_HW_BP = 0x20000

# exit reasons
KVM_EXIT_UNKNOWN = 0
KVM_EXIT_EXCEPTION = 1
KVM_EXIT_IO = 2
KVM_EXIT_DEBUG = 4
KVM_EXIT_HLT = 5
KVM_EXIT_MMIO = 6
KVM_EXIT_SHUTDOWN = 8
KVM_EXIT_FAIL_ENTRY = 9
KVM_EXIT_INTR = 10
KVM_EXIT_INTERNAL_ERROR = 17
EXIT_NAMES = {v: k[9:] for k, v in dict(globals()).items() if k.startswith("KVM_EXIT_")}

# Byte offsets inside struct kvm_run of the areas the vCPU loop reads on every exit with struct.unpack_from.
RUN_EXIT_REASON = ffi.offsetof("struct kvm_run", "exit_reason")
RUN_IO_PORT = ffi.offsetof("struct kvm_run", "u") + ffi.offsetof("struct kvm_run_io", "port")
RUN_SYNC_REGS = ffi.offsetof("struct kvm_run", "s")
RUN_SYNC_SREGS = RUN_SYNC_REGS + ffi.sizeof("struct kvm_regs")

# mmap/mprotect/madvise constants (linux/mman.h)
PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC = 0, 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS, MAP_NORESERVE = 0x1, 0x2, 0x10, 0x20, 0x4000
MADV_DONTNEED = 4


if __name__ == "__main__":      # tools/install.sh: make the generated module beside the package
    print(ffi_module.install("abi", CDEF) or "monitor/kvm is read-only: the first km run makes the module in ~/.cache/km")
