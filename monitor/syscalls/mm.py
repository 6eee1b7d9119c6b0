"""Memory syscalls: brk, mmap, munmap, mprotect, madvise, mremap — served from km's own address-space model."""
from __future__ import annotations

import errno
import fcntl
import os
import stat
from typing import TYPE_CHECKING

from kdbg.arch.linux import MASK64, PAGE_SIZE as PAGE
from kdbg.tracelog import logger

from ..host_fds import GATE, dup_high, high_fd, made_high
from ..memory.guest import MADV_POPULATE_WRITE, MMAP_BOTTOM, PROT_EXEC, PROT_READ, PROT_WRITE, USER_TOP, page_down
from ..memory.mapped_file import MappedFile
from ..memory.physical import MADV_REMOVE
from .args import fd_arg
from .dispatch import s32, syscall
from .host import host_syscall
from .numbers import NUMBERS as NR

if TYPE_CHECKING:
    from ..memory.guest import GuestMemory, Vma
    from ..vcpu.loop import VcpuThread

MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x1, 0x2, 0x10, 0x20
MAP_GROWSDOWN, MAP_DENYWRITE, MAP_STACK, MAP_FIXED_NOREPLACE = 0x100, 0x800, 0x20000, 0x100000
MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4
PROT_SEM, PROT_GROWSDOWN, PROT_GROWSUP = 0x8, 0x01000000, 0x02000000
TASK_SIZE = USER_TOP                     # the first address above the user half (mm's TASK_SIZE on x86-64)
log = logger("km.mem")


def page_align(n: int) -> int:
    """PAGE_ALIGN in 64-bit arithmetic: a length within a page of 2^64 becomes 0, as the kernel computes it."""
    return (n + PAGE - 1) & ~(PAGE - 1) & MASK64


@syscall("brk")
def sys_brk(ctx: VcpuThread, addr: int) -> int:
    """As mm/mmap.c: the answer is the new break, or the old one when the request cannot be met (below the start,
    past TASK_SIZE, into another mapping or the page below it, more than the host could commit); shrinking
    always succeeds."""
    mem = ctx.mem
    with mem.lock:
        if addr < mem.brk_start:
            return mem.brk
        old_end, new_end = page_align(mem.brk), page_align(addr)      # new_end is 0 for a break near 2^64
        if new_end != old_end:
            if addr <= mem.brk:
                mem.unmap(new_end, old_end - new_end)
            elif not new_end or new_end > TASK_SIZE or not mem._is_free(old_end, new_end + PAGE - old_end):
                return mem.brk
            else:
                try:
                    mem.map(old_end, new_end - old_end, PROT_READ | PROT_WRITE, name="[heap]")
                except MemoryError:
                    return mem.brk
        mem.brk = addr
        return addr


@syscall("mmap")
def sys_mmap(ctx: VcpuThread, addr: int, length: int, prot: int, flags: int, fd: int, offset: int) -> int:
    """Checks in mm/mmap.c's order: offset alignment, the fd, a zero length (EINVAL), one that PAGE_ALIGN wraps or
    that exceeds TASK_SIZE (ENOMEM), a fixed address past TASK_SIZE (ENOMEM), unaligned (EINVAL), below
    mmap_min_addr (EPERM) or taken (NOREPLACE: EEXIST), then the mapping type."""
    if offset % PAGE:
        return -errno.EINVAL
    if not flags & MAP_ANONYMOUS:
        host_fd = fd_arg(fd)
        mode = host_syscall(NR["fcntl"], host_fd, fcntl.F_GETFL)
        if mode < 0:
            return -errno.EBADF
    if length == 0:
        return -errno.EINVAL
    size = page_align(length)
    if not size or size > TASK_SIZE:
        return -errno.ENOMEM
    fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)
    if fixed:
        if addr > TASK_SIZE - size:
            return -errno.ENOMEM
        if addr % PAGE:
            return -errno.EINVAL
        if addr < MMAP_BOTTOM:
            return -errno.EPERM
    if not flags & (MAP_SHARED | MAP_PRIVATE):
        return -errno.EINVAL
    addr = page_down(addr)               # a hint is only rounded (as Linux 6.x does)
    prot &= PROT_READ | PROT_WRITE | PROT_EXEC
    mem = ctx.mem
    if not flags & MAP_ANONYMOUS:
        access = _file_access(mode, flags, prot)
        if access < 0:
            return access
    with mem.lock:
        start = _place(mem, addr, size, flags)
        if start < 0:
            return start
        if flags & MAP_ANONYMOUS and flags & MAP_SHARED:
            _map_shared_anonymous(mem, start, size, prot)
        elif flags & MAP_ANONYMOUS:
            mem.map(start, size, prot, huge=not flags & MAP_STACK)
        else:
            _map_file(mem, start, size, prot, host_fd, offset, flags)
        return start


def _file_access(mode: int, flags: int, prot: int) -> int:
    """The fd's O_ACCMODE (from its F_GETFL `mode`), or -errno when mmap(2) refuses it."""
    access = mode & os.O_ACCMODE
    if access == os.O_WRONLY or (flags & MAP_SHARED and prot & PROT_WRITE and access != os.O_RDWR):
        return -errno.EACCES
    return access


def _place(mem: GuestMemory, addr: int, size: int, flags: int) -> int:
    """Where the mapping goes: the fixed address (already checked), else at the hint if free, else the highest
    gap; or -errno."""
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
        if flags & MAP_FIXED_NOREPLACE and not mem._is_free(addr, size):
            return -errno.EEXIST
        return addr
    found = mem.find_free(size, addr)
    return -errno.ENOMEM if found is None else found


def _map_file(mem: GuestMemory, start: int, size: int, prot: int, host_fd: int, offset: int, flags: int) -> None:
    """A file mapping (GuestMemory.map_file); a private mapping of /dev/zero is anonymous memory."""
    shared = bool(flags & MAP_SHARED)
    image = not shared and bool(flags & MAP_DENYWRITE or prot & PROT_EXEC)    # ld.so's MAP_COPY, or code
    file = mem.kept_files.of_fd(host_fd) if image else MappedFile.of_fd(host_fd)
    if not file.is_regular and not shared and _is_dev_zero(host_fd):
        mem.map(start, size, prot)
        return
    mem.map_file(start, size, prot, file, offset, shared, image=image, host_fd=host_fd)


def _is_dev_zero(host_fd: int) -> bool:
    st = os.fstat(host_fd)
    return stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 5)


def _map_shared_anonymous(mem: GuestMemory, start: int, size: int, prot: int) -> None:
    """MAP_SHARED|MAP_ANONYMOUS: memory a forked child shares, so a memfd the host maps shared (km's children
    are other host processes). Linux names it /dev/zero (deleted), as a shmem file."""
    fd = made_high(lambda: os.memfd_create("km-shared-anonymous", os.MFD_CLOEXEC))
    try:
        os.ftruncate(fd, size)
        kept = dup_high(fd)
        mem.map_file(start, size, prot, MappedFile.adopt(kept, "/dev/zero (deleted)", moved=True), 0, True,
                     host_fd=fd)
    finally:
        os.close(fd)


@syscall("munmap")
def sys_munmap(ctx: VcpuThread, addr: int, length: int) -> int:
    return _munmap(ctx.mem, addr, length)


def _munmap(mem: GuestMemory, addr: int, length: int) -> int:
    """mm/vma.c do_vmi_munmap: EINVAL unless the range is aligned, within TASK_SIZE and not empty; holes are fine."""
    if addr % PAGE or addr > TASK_SIZE or length > TASK_SIZE - addr or not page_align(length):
        return -errno.EINVAL
    mem.unmap(addr, length)
    return 0


@syscall("mprotect")
def sys_mprotect(ctx: VcpuThread, addr: int, length: int, prot: int) -> int:
    return _mprotect(ctx.mem, addr, length, prot, -1)


def _mprotect(mem: GuestMemory, addr: int, length: int, prot: int, pkey: int) -> int:
    """mm/mprotect.c do_mprotect_pkey: the rights change VMA by VMA up to the first hole or refusal, which then
    answers ENOMEM or EACCES (the VMAs before it keep their new rights, as on Linux). PROT_GROWSDOWN extends the
    range down to the start of the stack."""
    grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP)
    prot &= ~grows
    if grows == PROT_GROWSDOWN | PROT_GROWSUP or addr % PAGE:
        return -errno.EINVAL
    if not length:
        return 0
    end = addr + page_align(length)
    if end <= addr or end > MASK64:
        return -errno.ENOMEM
    if prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM) or pkey != -1:
        return -errno.EINVAL             # no protection key is ever allocated (pkey_alloc)
    prot &= PROT_READ | PROT_WRITE | PROT_EXEC
    with mem.lock:
        vma = mem.find_vma(addr)
        if vma is None or vma.start >= end:
            return -errno.ENOMEM
        start = addr
        if grows & PROT_GROWSDOWN:
            start = vma.start
            if vma.name != "[stack]":
                return -errno.EINVAL
        elif vma.start > addr:
            return -errno.ENOMEM
        elif grows:
            return -errno.EINVAL             # no VM_GROWSUP mapping on x86-64
        error, reached = 0, start
        while vma is not None and vma.start < end:
            if vma.start > reached:
                error = -errno.ENOMEM
                break
            if vma.foreign is not None and prot & (PROT_WRITE | PROT_EXEC):
                error = -errno.EACCES        # [vvar] has neither VM_MAYWRITE nor VM_MAYEXEC
                break
            reached = vma.end
            vma = mem.find_vma(reached)
        if reached > start:
            mem.protect(start, min(reached, end) - start, prot)
        return error or (-errno.ENOMEM if reached < end else 0)


MADV_NORMAL, MADV_WILLNEED, MADV_DONTNEED, MADV_FREE, MADV_DOFORK = 0, 3, 4, 8, 11      # MADV_REMOVE: physical.py
MADV_DODUMP, MADV_WIPEONFORK, MADV_COLD, MADV_PAGEOUT, MADV_POPULATE_READ = 17, 18, 20, 21, 22   # ..._WRITE: guest.py
MADV_DONTNEED_LOCKED, MADV_COLLAPSE, MADV_HWPOISON, MADV_SOFT_OFFLINE = 24, 25, 100, 101
MADV_GUARD_INSTALL, MADV_GUARD_REMOVE = 102, 103
MADV_VALID = frozenset(range(0, 5)) | frozenset(range(8, 26)) | {100, 101, 102, 103}   # madvise_behavior_valid


@syscall("madvise")
def sys_madvise(ctx: VcpuThread, addr: int, length: int, advice: int) -> int:
    """MADV_DONTNEED must zero anonymous private pages (allocators rely on it) and give a private file mapping
    the file's bytes again; MADV_REMOVE punches a hole in a shared file; other advice is a hint.

    As mm/madvise.c: EINVAL for an unknown advice, an unaligned start or a length that PAGE_ALIGN wraps or whose
    end wraps past 2^64; the advice then goes VMA by VMA, a refusal by one VMA (EINVAL/EACCES) is the answer at
    once, and a hole is ENOMEM after the mapped parts got the advice (at once for MADV_POPULATE_*). Only VMAs' own
    backings reach the host."""
    advice = s32(advice)
    if advice not in MADV_VALID or addr % PAGE:
        return -errno.EINVAL
    size = page_align(length)
    if (length and not size) or addr + size > MASK64:
        return -errno.EINVAL
    if not size:
        return 0
    if advice in (MADV_HWPOISON, MADV_SOFT_OFFLINE):
        return -errno.EPERM               # hardware-fault injection into the host's memory: never the payload's
    if advice in (MADV_COLLAPSE, MADV_GUARD_INSTALL, MADV_GUARD_REMOVE):
        return -errno.EINVAL              # not implemented: as Linux before 6.1 / 6.13 (callers fall back)
    mem = ctx.mem
    end = addr + size
    hole = False
    with mem.lock:
        a = addr
        while a < end:
            vma = mem.find_vma(a)
            if vma is None:
                return -errno.ENOMEM
            if vma.start > a:
                if advice in (MADV_POPULATE_READ, MADV_POPULATE_WRITE):
                    return -errno.ENOMEM      # populating faults pages in order: a hole ends it (mm/gup.c)
                hole = True
                a = vma.start
                if a >= end:
                    break
            stop = min(end, vma.end)
            error = _advise(mem, vma, a, stop, advice)
            if error:
                return error
            a = stop
    return -errno.ENOMEM if hole else 0


def _advise(mem: GuestMemory, vma: Vma, start: int, end: int, advice: int) -> int:
    """One VMA's share of madvise(2): 0 or the -errno Linux's per-VMA check gives."""
    file_backed = vma.file is not None
    shared = vma.shared
    special = vma.foreign is not None     # [vvar]: VM_IO | VM_PFNMAP
    if advice in (MADV_DONTNEED, MADV_DONTNEED_LOCKED):
        if special or (vma.locked and advice == MADV_DONTNEED):
            return -errno.EINVAL
        mem.discard(start, end)
    elif advice == MADV_FREE:
        if special or vma.locked or file_backed:
            return -errno.EINVAL
    elif advice == MADV_REMOVE:
        if vma.locked or not file_backed:
            return -errno.EINVAL
        if not shared or not vma.prot & PROT_WRITE:      # madvise_remove: VM_SHARED and VM_WRITE
            return -errno.EACCES
        if vma.gpa is not None:
            mem.phys.remove(vma.gpa + start - vma.start, end - start)
    elif advice in (MADV_DOFORK, MADV_DODUMP) and special:
        return -errno.EINVAL
    elif advice == MADV_WIPEONFORK and (file_backed or special):
        return -errno.EINVAL
    elif advice in (MADV_COLD, MADV_PAGEOUT) and (special or vma.locked):
        return -errno.EINVAL
    elif advice == MADV_POPULATE_READ and (special or not vma.prot):        # PROT_NONE
        return -errno.EINVAL
    elif advice == MADV_POPULATE_WRITE and (special or not vma.prot & PROT_WRITE or (file_backed and not shared)):
        return -errno.EINVAL
    return 0


@syscall("mremap")
def sys_mremap(ctx: VcpuThread, old: int, old_size: int, new_size: int, flags: int, new_addr: int) -> int:
    """Grows in place or moves the mapping with its backing (page tables only, as Linux: no copy); the growth is
    a new VMA of the same rights beside it (a buffer over both is served through a copy, syscalls/bounce.py).

    Checks in mm/mremap.c's order (check_mremap_params, vma_lookup, resize_is_valid, mremap_to): EINVAL for bad
    flags, alignment, a zero new length, a new length past TASK_SIZE, an overlapping fixed target; EFAULT when
    the old range is not one mapping; ENOMEM when it cannot grow or move."""
    moves = flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)
    if flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP) or old % PAGE or not page_align(new_size):
        return -errno.EINVAL
    if moves and (new_addr % PAGE or not flags & MREMAP_MAYMOVE or
                  (flags & MREMAP_DONTUNMAP and old_size != new_size)):
        return -errno.EINVAL
    old_size, new_size = page_align(old_size), page_align(new_size)
    mem = ctx.mem
    with mem.lock:
        vma = mem.find(old)
        if vma is None:
            return -errno.EFAULT
        if moves:
            return _mremap_to(mem, vma, old, old_size, new_size, flags, new_addr)
        if new_size == old_size:
            return old
        if new_size < old_size:
            return _munmap(mem, old + new_size, old_size - new_size) or old
        error = _resize_error(mem, vma, old, old_size, new_size, flags)
        if error:
            return error
        if _run_end(mem, vma) == old + old_size and old + new_size <= TASK_SIZE and \
                mem._is_free(old + old_size, new_size - old_size):
            _extend(mem, old + old_size, old + old_size, new_size - old_size)
            return old
        if not flags & MREMAP_MAYMOVE:
            return -errno.ENOMEM
        target = mem.find_free(new_size)
        if target is None:
            return -errno.ENOMEM
        return _move(mem, vma, old, old_size, new_size, target, keep_old=False)


def _mremap_to(mem: GuestMemory, vma: Vma, old: int, old_size: int, new_size: int, flags: int, new_addr: int) -> int:
    """mremap to a fixed address (or, for DONTUNMAP alone, anywhere): the target is unmapped first."""
    if new_size > TASK_SIZE or new_addr > TASK_SIZE - new_size:
        return -errno.EINVAL
    if old + old_size > new_addr and new_addr + new_size > old:
        return -errno.EINVAL
    if flags & MREMAP_FIXED:
        mem.unmap(new_addr, new_size)
        still = mem.find(old)
        if still is None:
            return -errno.EFAULT
        vma = still
    if old_size > new_size:
        mem.unmap(old + new_size, old_size - new_size)
        old_size = new_size
    error = _resize_error(mem, vma, old, old_size, new_size, flags)
    if error:
        return error
    if flags & MREMAP_FIXED:
        target = new_addr
    else:
        found = mem.find_free(new_size, new_addr)
        if found is None:
            return -errno.ENOMEM
        target = found
    return _move(mem, vma, old, old_size, new_size, target, keep_old=bool(flags & MREMAP_DONTUNMAP))


def _resize_error(mem: GuestMemory, vma: Vma, old: int, old_size: int, new_size: int, flags: int) -> int:
    """mm/mremap.c resize_is_valid: 0 or the -errno."""
    if vma.foreign is not None:
        return -errno.EINVAL               # [vvar] stays where the vDSO expects it
    if not old_size:
        return -errno.EINVAL               # duplicating a mapping: only for shared ones, which km does not do
    special = vma.foreign is not None or vma.name in ("[vdso]", "[vvar]")     # VM_DONTEXPAND | VM_PFNMAP
    if flags & MREMAP_DONTUNMAP and (special or vma.path):
        return -errno.EINVAL               # km moves only anonymous memory while keeping the old range
    if old_size > _run_end(mem, vma) - old:
        return -errno.EFAULT
    if new_size == old_size:
        return 0
    if new_size > TASK_SIZE:
        return -errno.EINVAL
    if special:
        return -errno.EFAULT
    return 0


def _move(mem: GuestMemory, vma: Vma, old: int, old_size: int, new_size: int, target: int, keep_old: bool) -> int:
    """Move [old, old+old_size) to target and grow it to new_size there; DONTUNMAP leaves the old range mapped
    and empty (zero pages), as Linux leaves an anonymous one."""
    prot, huge = vma.prot, vma.huge
    if new_size > old_size:                # first: running out of memory changes nothing
        _extend(mem, old + old_size, target + old_size, new_size - old_size)
    mem.move(old, old_size, target)
    if keep_old:
        mem.map(old, old_size, prot, huge=huge)
    return target


def _extend(mem: GuestMemory, end: int, at: int, size: int) -> None:
    """Map `size` bytes at `at` as the continuation of the mapping that ends at `end`: the same rights, and for a
    file mapping the file's next bytes (as Linux grows the one VMA)."""
    last = mem.find(end - 1)
    assert last is not None, "called for the mapping that ends at `end`"
    if last.file is None:
        mem.map(at, size, last.prot, huge=last.huge).locked = last.locked
        return
    offset = last.offset + end - last.start
    fd = _reopen(mem, last) if last.file.fd is None else None
    try:
        if last.file.fd is None and fd is None:
            log.info("mremap: %s cannot be reopened to grow its mapping: zero pages", last.file.path)
            mem.map(at, size, last.prot)
        else:
            mem.map_file(at, size, last.prot, last.file, offset, last.shared, image=last.file.fd is not None,
                         host_fd=fd)
    finally:
        if fd is not None:
            os.close(fd)
    for vma in mem.vmas_in(at, at + size):
        vma.locked = last.locked


def _reopen(mem: GuestMemory, vma: Vma) -> int | None:
    """A descriptor of the file the host maps under `vma` (a shared mapping keeps none: closing a descriptor
    would drop the payload's POSIX locks on the file), through /proc/self/map_files (needs CAP_SYS_ADMIN)."""
    if vma.gpa is None or not mem.phys.is_file(vma.gpa):
        return None
    host = mem.phys.host_addr(vma.gpa)
    flags = os.O_RDWR if vma.shared and vma.prot & PROT_WRITE else os.O_RDONLY
    try:
        with GATE.km():         # listdir's descriptor, then the file's, hold a payload's number for a moment
            for name in os.listdir("/proc/self/map_files"):
                low, high = (int(x, 16) for x in name.split("-"))
                if low <= host < high:
                    return high_fd(os.open(f"/proc/self/map_files/{name}", flags | os.O_CLOEXEC))
    except (OSError, ValueError):
        pass
    return None


def _mergeable(a, b) -> bool:
    """Whether Linux would keep a and b (adjacent) as one VMA: same rights, both anonymous or the same file at
    consecutive offsets, neither special."""
    return a.end == b.start and a.prot == b.prot and a.locked == b.locked and a.name == b.name and \
        a.foreign is None and b.foreign is None and a.path == b.path and \
        (not a.path or a.offset + (a.end - a.start) == b.offset)


def _run_end(mem: GuestMemory, vma: Vma) -> int:
    """The end of the VMA Linux would have: km does not merge neighbours (a grown mapping is two VMAs)."""
    end = vma.end
    while True:
        following = mem.find(end)
        if following is None or not _mergeable(vma, following):
            return end
        vma, end = following, following.end


@syscall("membarrier")
def sys_membarrier(ctx: VcpuThread, cmd: int, flags: int, cpu_id: int) -> int:
    """The host's: km's threads are the payload's, and a barrier on their CPUs also reaches guest code running
    there (it leaves KVM_RUN)."""
    return host_syscall(NR["membarrier"], cmd, flags, cpu_id)


PKEY_DISABLE_ACCESS, PKEY_DISABLE_WRITE = 1, 2


@syscall("pkey_alloc")
def sys_pkey_alloc(ctx: VcpuThread, flags: int, access_rights: int) -> int:
    """km's vCPUs have no protection keys (the guest's PKRU is not managed): as Linux on a CPU without PKU."""
    return -errno.EINVAL


@syscall("pkey_free")
def sys_pkey_free(ctx: VcpuThread, pkey: int) -> int:
    return -errno.EINVAL                  # never allocated


@syscall("pkey_mprotect")
def sys_pkey_mprotect(ctx: VcpuThread, addr: int, length: int, prot: int, pkey: int) -> int:
    """pkey -1 is plain mprotect; any other key was never allocated."""
    return _mprotect(ctx.mem, addr, length, prot, s32(pkey))
