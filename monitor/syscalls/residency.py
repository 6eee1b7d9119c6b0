"""Residency syscalls: msync (write back), mlock/mlock2/munlock/mlockall/munlockall (keep in memory), mincore (is it
in memory) — the range checks of mm/msync.c, mm/mlock.c and mm/mincore.c, then km's VMAs.

km does not pin memory for the payload: a locked VMA is remembered (Linux refuses MADV_DONTNEED and MS_INVALIDATE
on it) and the host decides residency. Only VMAs' own backings reach a host call (msync of a shared file
mapping, mincore of the backing), never a guest-chosen range.
"""
from __future__ import annotations

import errno
import os
import resource
from typing import TYPE_CHECKING

from ..memory.guest import GuestMemory
from ..kvm.abi import PROT_NONE
from ..kvm.abi import ffi
from .dispatch import syscall
from .host import host_syscall
from .mm import MASK64, PAGE, TASK_SIZE, page_align
from .numbers import NUMBERS as NR

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread

MS_ASYNC, MS_INVALIDATE, MS_SYNC = 1, 2, 4
MLOCK_ONFAULT = 1
MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4
MINCORE_BATCH = 1 << 16              # pages per host call (and per guest write of the vector)


@syscall("msync")
def sys_msync(ctx: VcpuThread, addr: int, length: int, flags: int) -> int:
    """EINVAL for unknown flags, ASYNC with SYNC, an unaligned start; ENOMEM for a range that wraps or has holes
    (MS_ASYNC alone stops at the first); EBUSY to invalidate a locked mapping. A shared file mapping is written
    back by the host's msync of its backing."""
    if flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC) or addr % PAGE or \
            (flags & MS_ASYNC and flags & MS_SYNC):
        return -errno.EINVAL
    end = addr + page_align(length)
    if end > MASK64:
        return -errno.ENOMEM
    if end == addr:
        return 0
    mem: GuestMemory = ctx.mem
    unmapped = 0
    with mem.lock:
        vma = mem.find_vma(addr)
        while True:
            if vma is None:
                return -errno.ENOMEM
            if addr < vma.start:
                if flags == MS_ASYNC:
                    return -errno.ENOMEM
                addr = vma.start
                if addr >= end:
                    return -errno.ENOMEM
                unmapped = -errno.ENOMEM
            if flags & MS_INVALIDATE and vma.locked:
                return -errno.EBUSY
            stop = min(end, vma.end)
            if flags & MS_SYNC and vma.shared and vma.gpa is not None and mem.phys.is_file(vma.gpa):
                result = host_syscall(NR["msync"], mem.phys.host_addr(vma.gpa + addr - vma.start), stop - addr,
                                      MS_SYNC)
                if result < 0:
                    return result
            addr = vma.end
            if addr >= end:
                return unmapped
            vma = mem.find_vma(addr)


def _lock_range(addr: int, length: int) -> tuple[int, int] | int:
    """mlock's range: the start rounded down, the length up with it (0 if that wraps); EINVAL past 2^64."""
    length = page_align((length + addr % PAGE) & MASK64)
    addr -= addr % PAGE
    if addr + length > MASK64:
        return -errno.EINVAL
    return addr, addr + length


def _apply_lock(mem: GuestMemory, start: int, end: int, locked: bool) -> int:
    """mm/mlock.c apply_vma_lock_flags: VMA by VMA up to the first hole (ENOMEM)."""
    if end == start:
        return 0
    if mem.find(start) is None:
        return -errno.ENOMEM
    reached = start
    while reached < end:
        vma = mem.find(reached)
        if vma is None:
            break
        reached = vma.end
    for vma in mem.vmas_in(start, min(reached, end)):
        vma.locked = locked
    return 0 if reached >= end else -errno.ENOMEM


def _lock_allowed(mem: GuestMemory, start: int, end: int) -> bool:
    """RLIMIT_MEMLOCK for an unprivileged payload (root, with CAP_IPC_LOCK, has no limit)."""
    if os.geteuid() == 0:
        return True
    limit = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    if limit == resource.RLIM_INFINITY:
        return True
    locked = sum(v.end - v.start for v in mem.vmas if v.locked and not (start <= v.start and v.end <= end))
    return locked + end - start <= limit


def _mlock(ctx: VcpuThread, addr: int, length: int, populate: bool) -> int:
    span = _lock_range(addr, length)
    if isinstance(span, int):
        return span
    start, end = span
    mem: GuestMemory = ctx.mem
    with mem.lock:
        if not _lock_allowed(mem, start, end):
            return -errno.ENOMEM
        error = _apply_lock(mem, start, end, True)
        if error or not populate:
            return error
        # populating faults in every page: an inaccessible one is EFAULT, which mlock reports as ENOMEM
        if any(v.prot == PROT_NONE for v in mem.vmas_in(start, end)):
            return -errno.ENOMEM
    return 0


@syscall("mlock")
def sys_mlock(ctx: VcpuThread, addr: int, length: int) -> int:
    return _mlock(ctx, addr, length, populate=True)


@syscall("mlock2")
def sys_mlock2(ctx: VcpuThread, addr: int, length: int, flags: int) -> int:
    if flags & ~MLOCK_ONFAULT:
        return -errno.EINVAL
    return _mlock(ctx, addr, length, populate=not flags & MLOCK_ONFAULT)


@syscall("munlock")
def sys_munlock(ctx: VcpuThread, addr: int, length: int) -> int:
    span = _lock_range(addr, length)
    if isinstance(span, int):
        return span
    with ctx.mem.lock:
        return _apply_lock(ctx.mem, span[0], span[1], False)


@syscall("mlockall")
def sys_mlockall(ctx: VcpuThread, flags: int) -> int:
    if not flags or flags & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) or flags == MCL_ONFAULT:
        return -errno.EINVAL
    mem: GuestMemory = ctx.mem
    with mem.lock:
        if flags & MCL_CURRENT:
            if os.geteuid() != 0:
                limit = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
                if limit != resource.RLIM_INFINITY and sum(v.end - v.start for v in mem.vmas) > limit:
                    return -errno.ENOMEM
            for vma in mem.vmas:
                vma.locked = True
        mem.mlock_future = bool(flags & MCL_FUTURE)
    return 0


@syscall("munlockall")
def sys_munlockall(ctx: VcpuThread) -> int:
    mem: GuestMemory = ctx.mem
    with mem.lock:
        for vma in mem.vmas:
            vma.locked = False
        mem.mlock_future = False
    return 0


@syscall("mincore")
def sys_mincore(ctx: VcpuThread, addr: int, length: int, vec: int) -> int:
    """EINVAL for an unaligned start, ENOMEM for a range outside the user half or not fully mapped, EFAULT for a
    vector km cannot write. A page is resident when its backing is resident on the host; a reservation never is,
    [vvar] always is (Linux reports pages of special mappings as resident)."""
    if addr % PAGE:
        return -errno.EINVAL
    if length > TASK_SIZE or addr > TASK_SIZE - length:
        return -errno.ENOMEM
    pages = (length + PAGE - 1) // PAGE
    mem: GuestMemory = ctx.mem
    while pages:
        with mem.lock:
            vma = mem.find(addr)
            if vma is None:
                return -errno.ENOMEM
            count = min(pages, (vma.end - addr) // PAGE, MINCORE_BATCH)
            if vma.gpa is not None:
                out = ffi.new("unsigned char[]", count)
                result = host_syscall(NR["mincore"], mem.phys.host_addr(vma.gpa + addr - vma.start), count * PAGE,
                                      int(ffi.cast("uintptr_t", out)))
                status = bytes(b & 1 for b in bytes(ffi.buffer(out))) if result == 0 else b"\0" * count
            else:
                status = (b"\1" if vma.foreign is not None else b"\0") * count
        mem.write(vec, status)          # GuestFault: EFAULT
        pages -= count
        vec += count
        addr += count * PAGE
    return 0
