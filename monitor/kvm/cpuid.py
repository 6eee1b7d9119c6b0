"""The CPUID km's vCPUs get: KVM's supported CPUID plus the host's user-mode instruction-set bits it leaves out.

kvm-pvm's KVM_GET_SUPPORTED_CPUID omits user-mode ISA extensions the host has (LZCNT/ABM, SSE4A and RDTSCP on
this AMD EPYC), while its guests' ring 3 runs natively on the host CPU, where those instructions work whatever
CPUID says. The payload's `cpuid` answers leaf 0x80000001 from the table km sets (KVM_SET_CPUID2), so without
them glibc computed x86-64-v2 instead of the host's v4 (LZCNT is part of v3), skipped the glibc-hwcaps
subdirectories and the LZCNT-using string routines. km adds back, from a short explicit allow-list, the bits the
host has: pure user-mode instructions only, never kernel-only features (PCID, INVPCID, XSAVES, CET, 1G pages),
which a payload without a kernel cannot use and KVM may refuse.

Not in the list: RDPID (leaf 7.0 ECX bit 22). kvm-pvm answers leaves 1 and 7 itself, from the host's CPUID with
its own features removed (PCID, INVPCID, CET_SS, RDPID), whatever the table says (measured: bits set or cleared
there change nothing), so the payload cannot be shown it; `rdpid` executes and returns the host CPU as natively.

On hardware KVM the supported CPUID already holds these bits when the host has them (arch/x86/kvm/cpu.c
kvm_set_cpu_caps keeps ABM, SSE4A and RDTSCP from the host's own CPUID), so the addition changes nothing there.
RDTSCP is the exception that could: a VMX without the "enable RDTSCP" control makes KVM clear it, and a guest's
`rdtscp` then raises #UD, so km adds it only where ring 3 runs on the host CPU (kvm-pvm, KVM_PVM_MODULE).
"""
from __future__ import annotations

import functools
import os
from typing import NamedTuple, Protocol, Sequence

# Present when the KVM is kvm-pvm, whose guests' ring 3 runs natively on the host CPU
KVM_PVM_MODULE = "/sys/module/kvm_pvm"


class CpuidEntry(Protocol):
    """struct kvm_cpuid_entry2 (monitor/kvm/abi.py declares it): a leaf and sub-leaf, and the four registers' values
    a `cpuid` of it returns."""
    function: int
    index: int
    eax: int
    ebx: int
    ecx: int
    edx: int


class CpuidTable(Protocol):
    """struct kvm_cpuid2, as KVM_GET_SUPPORTED_CPUID fills it and KVM_SET_CPUID2 takes it: `nent` of `entries` are
    used."""
    nent: int

    @property
    def entries(self) -> Sequence[CpuidEntry]: ...


class CpuidBit(NamedTuple):
    """One feature bit: CPUID leaf, sub-leaf, register, bit number, and its /proc/cpuinfo flag name."""
    leaf: int
    subleaf: int
    register: str          # "eax", "ebx", "ecx" or "edx"
    bit: int
    flag: str
    hardware_gated: bool = False   # hardware KVM can disable the instruction for its guests (a VMX control)


# The one list of user-mode ISA bits km takes from the host (leaf, sub-leaf, register, bit as in the SDM/APM and
# arch/x86/include/asm/cpufeatures.h). RDTSCP reads TSC_AUX: on kvm-pvm the host's, so the host CPU number as
# natively (tests/integration/test_cpu_features.py checks it against getcpu).
USER_ISA_BITS = (
    CpuidBit(0x80000001, 0, "ecx", 5, "abm"),        # LZCNT (x86-64-v3)
    CpuidBit(0x80000001, 0, "ecx", 6, "sse4a"),      # EXTRQ/INSERTQ, MOVNTSS/SD (AMD)
    CpuidBit(0x80000001, 0, "edx", 27, "rdtscp", hardware_gated=True),
)

# CPUID.1:EDX bit names as /proc/cpuinfo spells them (arch/x86/include/asm/cpufeatures.h, word 0): AT_HWCAP
LEAF1_EDX_FLAGS = ("fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic", "", "sep", "mtrr", "pge",
                   "mca", "cmov", "pat", "pse36", "pn", "clflush", "", "dts", "acpi", "mmx", "fxsr", "sse", "sse2",
                   "ss", "ht", "tm", "ia64", "pbe")


@functools.cache
def host_cpu_flags() -> frozenset[str]:
    """The host CPU's feature flags as /proc/cpuinfo names them (its first CPU's `flags` line); empty when the
    file cannot be read. Read once per km: AT_HWCAP (loader/stack.py) and the vCPU's CPUID share it."""
    try:
        with open("/proc/cpuinfo") as f:
            return frozenset(next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), ()))
    except OSError:
        return frozenset()


def add_host_user_isa(cpuid: CpuidTable, flags: frozenset[str] | None = None,
                      ring3_native: bool | None = None) -> list[str]:
    """Set in `cpuid` (a struct kvm_cpuid2, in place) each USER_ISA_BITS bit the host has (`flags`, by default
    host_cpu_flags()) and the table lacks; a leaf the table does not hold stays absent, and a hardware-gated bit
    is added only when ring 3 runs on the host CPU (`ring3_native`, by default: kvm-pvm is loaded). Returns the
    flags added."""
    flags = host_cpu_flags() if flags is None else flags
    if ring3_native is None:
        ring3_native = os.path.exists(KVM_PVM_MODULE)
    added: list[str] = []
    for want in USER_ISA_BITS:
        if want.flag not in flags or (want.hardware_gated and not ring3_native):
            continue
        for i in range(cpuid.nent):
            entry = cpuid.entries[i]
            if entry.function == want.leaf and entry.index == want.subleaf:
                value = getattr(entry, want.register)
                if not value >> want.bit & 1:
                    setattr(entry, want.register, value | 1 << want.bit)
                    added.append(want.flag)
                break
    return added
