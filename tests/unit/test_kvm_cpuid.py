"""monitor/kvm/cpuid.py: which host bits km adds to KVM's supported CPUID, and that a table that already has
them (hardware KVM) or a host without them is left as it was."""
from __future__ import annotations

from monitor.kvm.abi import ffi
from monitor.kvm.cpuid import USER_ISA_BITS, add_host_user_isa, host_cpu_flags

ALL = frozenset(bit.flag for bit in USER_ISA_BITS)


def table(*entries: tuple[int, int, int, int, int, int]):
    """A struct kvm_cpuid2 of (function, index, eax, ebx, ecx, edx) entries."""
    cpuid = ffi.new("struct kvm_cpuid2 *")
    cpuid.nent = len(entries)
    for i, (function, index, eax, ebx, ecx, edx) in enumerate(entries):
        e = cpuid.entries[i]
        e.function, e.index, e.eax, e.ebx, e.ecx, e.edx = function, index, eax, ebx, ecx, edx
    return cpuid


def regs(cpuid, function: int) -> tuple[int, int, int, int]:
    e = next(cpuid.entries[i] for i in range(cpuid.nent) if cpuid.entries[i].function == function)
    return e.eax, e.ebx, e.ecx, e.edx


def test_kvm_pvm_table_gets_the_host_user_isa_bits() -> None:
    # kvm-pvm's leaf 0x80000001 on this AMD EPYC, and what the host's own cpuid says
    cpuid = table((0, 0, 0x10, 0, 0, 0), (0x80000001, 0, 0xA10F11, 0x40000000, 0x400393, 0x23D3FBFF))
    assert add_host_user_isa(cpuid, ALL, ring3_native=True) == ["abm", "sse4a", "rdtscp"]
    assert regs(cpuid, 0x80000001) == (0xA10F11, 0x40000000, 0x4003F3, 0x2BD3FBFF)
    assert regs(cpuid, 0) == (0x10, 0, 0, 0)


def test_hardware_kvm_table_and_hosts_without_them_are_unchanged() -> None:
    full = (0x80000001, 0, 0xA10F11, 0x40000000, 0x4003F3, 0x2FD3FBFF)
    cpuid = table(full)
    assert add_host_user_isa(cpuid, ALL, ring3_native=False) == []   # already there: nothing to add
    assert regs(cpuid, 0x80000001) == full[2:]
    bare = (0x80000001, 0, 0, 0, 0x1, 0x20000000)
    cpuid = table(bare)
    assert add_host_user_isa(cpuid, frozenset({"sse2", "avx"}), ring3_native=True) == []   # host lacks them
    assert regs(cpuid, 0x80000001) == bare[2:]
    cpuid = table((1, 0, 0, 0, 0, 0))
    assert add_host_user_isa(cpuid, ALL, ring3_native=True) == [] and cpuid.nent == 1   # unlisted leaf stays absent


def test_hardware_kvm_that_disables_rdtscp_keeps_it_off() -> None:
    # a VMX without "enable RDTSCP": KVM clears the bit, and a guest's rdtscp would raise #UD if km set it
    cpuid = table((0x80000001, 0, 0xA10F11, 0x40000000, 0x400393, 0x23D3FBFF))
    assert add_host_user_isa(cpuid, ALL, ring3_native=False) == ["abm", "sse4a"]
    assert regs(cpuid, 0x80000001)[3] == 0x23D3FBFF


def test_host_flags_name_what_auxv_hwcap_uses() -> None:
    flags = host_cpu_flags()
    assert not flags or {"fpu", "sse2"} <= flags
