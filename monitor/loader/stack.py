"""The initial stack of a new program and its auxv, as fs/binfmt_elf.c create_elf_tables lays them out: argc,
argv[], NULL, envp[], NULL, auxv pairs, then the strings and the AT_RANDOM bytes near the top."""
from __future__ import annotations

import functools
import os
import struct

from kdbg.arch.linux import (AT_BASE, AT_CLKTCK, AT_EGID, AT_ENTRY, AT_EUID, AT_EXECFN, AT_FLAGS, AT_GID, AT_HWCAP,
                             AT_HWCAP2, AT_MINSIGSTKSZ, AT_NULL, AT_PAGESZ, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PLATFORM,
                             AT_RANDOM, AT_SECURE, AT_SYSINFO_EHDR, AT_UID, parse_auxv)

from ..kvm.cpuid import LEAF1_EDX_FLAGS, host_cpu_flags
from ..memory.guest import PROT_READ, PROT_WRITE, GuestMemory
from .elf import Program

STACK_TOP = 0x7FFFFFFFF000
STACK_SIZE = 8 << 20

MINSIGSTKSZ = 2048          # what km tells when the host's auxv does not say (kernels before 5.14)


@functools.cache
def host_minsigstksz() -> int:
    """AT_MINSIGSTKSZ as the host kernel computed it for this CPU (a signal frame with its XSAVE image, which km's
    frames match); glibc's sysconf(_SC_SIGSTKSZ) and CPython's faulthandler size alternate stacks from it."""
    try:
        with open("/proc/self/auxv", "rb") as f:
            data = f.read()
    except OSError:
        return MINSIGSTKSZ
    return max(parse_auxv(data).get(AT_MINSIGSTKSZ, 0), MINSIGSTKSZ)


@functools.cache
def hwcap() -> int:
    """AT_HWCAP as Linux gives it: CPUID.1:EDX, read from the host (what the payload's cpuid sees too)."""
    flags = host_cpu_flags()
    return sum(1 << i for i, name in enumerate(LEAF1_EDX_FLAGS) if name and name in flags)


def hwcap2() -> int:
    """AT_HWCAP2: Linux sets HWCAP2_FSGSBASE when it enabled CR4.FSGSBASE; km's guests run without it (the
    payload sets fs through arch_prctl), and HWCAP2_RING3MWAIT is for Xeon Phi. So none."""
    return 0


def build_stack(mem: GuestMemory, program: Program, argv: list[bytes], envp: list[bytes], execfn: bytes,
                vdso: int = 0) -> int:
    """Map the main stack and write argc/argv/envp/auxv; returns the initial RSP. The stack's host memory is in
    4K pages, as thread stacks are (and as Linux gives stacks no huge pages): writing the strings at its top took
    a 2M host page, zeroed whole (~0.25 ms of every exec), for the few pages a program's stack touches."""
    mem.map(STACK_TOP - STACK_SIZE, STACK_SIZE, PROT_READ | PROT_WRITE, name="[stack]", huge=False)
    sp = STACK_TOP - 16
    strings: dict[str, list[int]] = {"argv": [], "envp": []}

    pushed: list[bytes] = []            # each one just below the one before: written at the end as one block

    def push_bytes(data: bytes) -> int:
        nonlocal sp
        sp -= len(data)
        pushed.append(data)
        return sp

    execfn_addr = push_bytes(execfn + b"\0")
    for key, items in (("envp", envp), ("argv", argv)):
        strings[key] = [push_bytes(s + b"\0") for s in reversed(items)][::-1]
    platform = push_bytes(b"x86_64\0")
    random_addr = push_bytes(os.urandom(16))
    mem.write(sp, b"".join(reversed(pushed)))
    exe = program.exe
    auxv = [(AT_SYSINFO_EHDR, vdso)] if vdso else []
    auxv += [(AT_MINSIGSTKSZ, host_minsigstksz()), (AT_HWCAP, hwcap()), (AT_PAGESZ, 4096), (AT_CLKTCK, 100),
             (AT_PHDR, exe.phdr), (AT_PHENT, exe.phent), (AT_PHNUM, exe.phnum), (AT_BASE, program.base),
             (AT_FLAGS, 0), (AT_ENTRY, exe.entry), (AT_UID, os.getuid()), (AT_EUID, os.geteuid()),
             (AT_GID, os.getgid()), (AT_EGID, os.getegid()), (AT_SECURE, 0), (AT_RANDOM, random_addr),
             (AT_HWCAP2, hwcap2()), (AT_EXECFN, execfn_addr), (AT_PLATFORM, platform), (AT_NULL, 0)]
    words = [len(argv), *strings["argv"], 0, *strings["envp"], 0]
    for tag, value in auxv:
        words += [tag, value]
    sp = (sp - 8 * len(words)) & ~0xF
    mem.write(sp, struct.pack(f"<{len(words)}Q", *words))
    return sp


def auxv_bytes(mem: GuestMemory, rsp0: int) -> bytes:
    """The auxv block of an initial stack built by build_stack (for qXfer:auxv:read and NT_AUXV): read in one
    piece up to the stack's top, where the strings end."""
    data = mem.read(rsp0, STACK_TOP - rsp0)
    words = memoryview(data)[:len(data) // 8 * 8].cast("Q")
    i = words[0] + 2                    # past argc, argv[] and its NULL
    while words[i]:
        i += 1
    start = i = i + 1                   # past envp[]'s NULL
    while words[i] != AT_NULL:
        i += 2
    return data[8 * start:8 * (i + 2)]
