"""Memory syscalls: brk, mmap, munmap, mprotect, madvise, mremap — served from km's own address-space model."""
from __future__ import annotations

import errno
import fcntl
import os

from ..guest_memory import MMAP_BOTTOM, PROT_EXEC, PROT_READ, PROT_WRITE, USER_TOP, page_down, page_up
from ..kvm import abi
from .args import fd_arg
from .dispatch import syscall

MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x1, 0x2, 0x10, 0x20
MAP_GROWSDOWN, MAP_STACK, MAP_FIXED_NOREPLACE = 0x100, 0x20000, 0x100000
MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2
PAGE = 0x1000


@syscall("brk")
def sys_brk(ctx, addr: int) -> int:
    mem = ctx.mem
    with mem.lock:
        if addr <= mem.brk_start:
            return mem.brk
        old_end, new_end = page_up(mem.brk), page_up(addr)
        if new_end > old_end:
            if not mem._is_free(old_end, new_end - old_end):
                return mem.brk
            mem.map(old_end, new_end - old_end, PROT_READ | PROT_WRITE, name="[heap]")
        elif new_end < old_end:
            mem.unmap(new_end, old_end - new_end)
        mem.brk = addr
        return addr


@syscall("mmap")
def sys_mmap(ctx, addr: int, length: int, prot: int, flags: int, fd: int, offset: int) -> int:
    fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)
    if length == 0 or offset % PAGE or (fixed and addr % PAGE) or not flags & (MAP_SHARED | MAP_PRIVATE):
        return -errno.EINVAL
    addr = page_down(addr)               # a hint is only rounded (as Linux 6.x does); a fixed one must be aligned
    size = page_up(length)
    if size > USER_TOP:
        return -errno.ENOMEM
    prot &= PROT_READ | PROT_WRITE | PROT_EXEC
    mem = ctx.mem
    if not flags & MAP_ANONYMOUS:
        host_fd = fd_arg(fd)
        access = _file_access(host_fd, flags, prot)
        if access < 0:
            return access
    with mem.lock:
        start = _place(mem, addr, size, flags)
        if start < 0:
            return start
        if flags & MAP_ANONYMOUS:
            mem.map(start, size, prot, huge=not flags & MAP_STACK)
        else:                            # shared read-only from an O_RDONLY fd: private (no writes to share)
            _map_file(mem, start, size, prot, host_fd, offset, bool(flags & MAP_SHARED) and access == os.O_RDWR)
        return start


def _file_access(host_fd: int, flags: int, prot: int) -> int:
    """The fd's O_ACCMODE, or -errno when mmap(2) refuses it."""
    try:
        access = fcntl.fcntl(host_fd, fcntl.F_GETFL) & os.O_ACCMODE
    except OSError:
        return -errno.EBADF
    if access == os.O_WRONLY or (flags & MAP_SHARED and prot & PROT_WRITE and access != os.O_RDWR):
        return -errno.EACCES
    return access


def _fd_path(host_fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{host_fd}")
    except OSError:
        return ""


def _place(mem, addr: int, size: int, flags: int) -> int:
    """Where the mapping goes: the fixed address, else at the hint if free, else the highest gap; or -errno."""
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
        if addr < MMAP_BOTTOM or addr + size > USER_TOP:
            return -errno.EPERM if addr < MMAP_BOTTOM else -errno.ENOMEM
        if flags & MAP_FIXED_NOREPLACE and not mem._is_free(addr, size):
            return -errno.EEXIST
        return addr
    found = mem.find_free(size, addr)
    return -errno.ENOMEM if found is None else found


def _map_file(mem, start: int, size: int, prot: int, host_fd: int, offset: int, shared: bool) -> None:
    """The host's own mapping of the file (lazy; shared: the payload's writes reach it), up to the file's last
    page: past it Linux raises SIGBUS, and km's own access there (or KVM's) would fault km; the guest gets zero
    pages instead."""
    try:
        file_size = os.fstat(host_fd).st_size
    except OSError:
        file_size = 0
    in_file = min(size, max(0, page_up(file_size) - offset))
    if in_file:
        mem.map_file(start, in_file, prot, host_fd, offset, _fd_path(host_fd), shared)
    if in_file < size:
        mem.map(start + in_file, size - in_file, prot)


@syscall("munmap")
def sys_munmap(ctx, addr: int, length: int) -> int:
    if addr % PAGE or length == 0 or addr + length > USER_TOP:
        return -errno.EINVAL
    ctx.mem.unmap(addr, length)
    return 0


@syscall("mprotect")
def sys_mprotect(ctx, addr: int, length: int, prot: int) -> int:
    if addr % PAGE:
        return -errno.EINVAL
    if length == 0:
        return 0
    from ..errors import GuestFault
    try:
        ctx.mem.protect(addr, length, prot & (PROT_READ | PROT_WRITE | PROT_EXEC))
    except GuestFault:
        return -errno.ENOMEM
    return 0


@syscall("madvise")
def sys_madvise(ctx, addr: int, length: int, advice: int) -> int:
    """MADV_DONTNEED must zero anonymous private pages (allocators rely on it) and give a private file mapping
    the file's bytes again; other advice is a hint.

    As Linux (mm/madvise.c): EINVAL for an unaligned start, ENOMEM when part of the range is unmapped (the mapped
    parts still get the advice)."""
    if addr % PAGE:
        return -errno.EINVAL
    if not length:
        return 0
    mem = ctx.mem
    end = addr + page_up(length)
    hole = False
    with mem.lock:
        a = addr
        while a < end:
            vma = mem.find(a)
            if vma is None:
                hole = True
                following = [v.start for v in mem.vmas if v.start > a]
                a = min(following) if following else end
                continue
            stop = min(end, vma.end)
            if advice == abi.MADV_DONTNEED and vma.gpa is not None and \
                    (not vma.path or mem.phys.chunk_of(vma.gpa).is_file):   # not the ELF loader's copies
                mem.phys.drop(vma.gpa + a - vma.start, stop - a)
            a = stop
    return -errno.ENOMEM if hole else 0


@syscall("mremap")
def sys_mremap(ctx, old: int, old_size: int, new_size: int, flags: int, new_addr: int) -> int:
    """Grows in place or moves the mapping with its backing (page tables only, as Linux: no copy); the growth is
    a new VMA of the same rights beside it (a buffer over both is served through a copy, syscalls/bounce.py)."""
    mem = ctx.mem
    fixed = flags & MREMAP_FIXED
    if old % PAGE or new_size == 0 or (fixed and (not flags & MREMAP_MAYMOVE or new_addr % PAGE)):
        return -errno.EINVAL
    old_size, new_size = page_up(old_size), page_up(new_size)
    if fixed and new_addr < old + old_size and old < new_addr + new_size:
        return -errno.EINVAL
    with mem.lock:
        vma = mem.find(old)
        if vma is None or not _is_mapped(mem, old, old + old_size):
            return -errno.EFAULT
        prot, huge = vma.prot, vma.huge
        if new_size <= old_size and not fixed:
            if new_size < old_size:
                mem.unmap(old + new_size, old_size - new_size)
            return old
        if not fixed and mem._is_free(old + old_size, new_size - old_size):
            mem.map(old + old_size, new_size - old_size, prot, huge=huge)
            return old
        if not flags & MREMAP_MAYMOVE:
            return -errno.ENOMEM
        target = new_addr if fixed else mem.find_free(new_size)
        if target is None:
            return -errno.ENOMEM
        keep = min(old_size, new_size)
        mem.move(old, keep, target)
        if keep < old_size:
            mem.unmap(old + keep, old_size - keep)
        if keep < new_size:
            mem.map(target + keep, new_size - keep, prot, huge=huge)
        return target


def _is_mapped(mem, start: int, end: int) -> bool:
    """No hole in [start, end). Linux wants one VMA there; km does not merge neighbours as Linux does (a grown
    mapping is two VMAs), so adjacent ones count as one."""
    while start < end:
        vma = mem.find(start)
        if vma is None:
            return False
        start = vma.end
    return True


@syscall("msync", "mlock", "munlock", "mlockall", "munlockall", "membarrier")
def sys_accept_hint(ctx) -> int:
    return 0

