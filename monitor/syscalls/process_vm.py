"""process_vm_readv/process_vm_writev: copies between the payload's own iovecs, served from guest memory.

Forwarded to the host, the payload's own pid (km's) would make the host copy to and from km's memory at guest
addresses. km copies between guest ranges itself with mm/process_vm_access.c's rules: flags must be 0, at most
UIO_MAXIOV iovecs, negative lengths EINVAL, the copy stops at the first inaccessible byte on either side and
answers the bytes copied (EFAULT if none). Another process (a forked payload is a km of its own, whose guest
memory is not at these addresses) is refused with EPERM, as a ptrace-restricted kernel does.
"""
from __future__ import annotations

import errno
import os
import struct
from typing import TYPE_CHECKING

from ..memory.guest import GuestMemory
from .dispatch import s32, syscall
from .mm import TASK_SIZE

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread

UIO_MAXIOV = 1024
MAX_RW_COUNT = 0x7FFFF000            # INT_MAX & PAGE_MASK: what one call may move
CHUNK = 1 << 20


def _iovecs(mem: GuestMemory, gva: int, count: int) -> list[tuple[int, int]] | int:
    """The guest's iovec array, or -errno (EINVAL for too many or a negative length, EFAULT if unreadable)."""
    if count > UIO_MAXIOV:
        return -errno.EINVAL
    raw = mem.read(gva, 16 * count) if count else b""
    out = [struct.unpack_from("<QQ", raw, 16 * i) for i in range(count)]
    if any(length >> 63 for _, length in out):
        return -errno.EINVAL
    return out


def _spans(mem: GuestMemory, iovecs: list[tuple[int, int]], write: bool, limit: int) -> tuple[list, int]:
    """The accessible prefix of the iovecs, as [(gva, length)], up to `limit` bytes, and its total."""
    spans, total = [], 0
    for base, length in iovecs:
        want = min(length, limit - total)
        if want <= 0:
            break
        got = mem.accessible(base, want, write)
        if got:
            spans.append((base, got))
            total += got
        if got < want:
            break
    return spans, total


def _chunks(spans: list[tuple[int, int]]):
    for base, length in spans:
        for offset in range(0, length, CHUNK):
            yield base + offset, min(CHUNK, length - offset)


def _copy(mem: GuestMemory, source: list[tuple[int, int]], dest: list[tuple[int, int]], size: int) -> None:
    """Copy `size` bytes from the source spans to the destination spans (both already checked), a chunk at a time."""
    src, dst = _chunks(source), _chunks(dest)
    (s_gva, s_len), (d_gva, d_len) = next(src), next(dst)
    while size:
        n = min(s_len, d_len, size)
        mem.write(d_gva, mem.read(s_gva, n))
        size, s_gva, s_len, d_gva, d_len = size - n, s_gva + n, s_len - n, d_gva + n, d_len - n
        if size and not s_len:
            s_gva, s_len = next(src)
        if size and not d_len:
            d_gva, d_len = next(dst)


def _process_vm(ctx: VcpuThread, pid: int, lvec: int, liovcnt: int, rvec: int, riovcnt: int, flags: int,
                write: bool) -> int:
    if flags:
        return -errno.EINVAL
    mem: GuestMemory = ctx.mem
    local = _iovecs(mem, lvec, liovcnt)
    if isinstance(local, int):
        return local
    total = 0
    for base, length in local:                   # import_iovec: access_ok on each, the total capped
        if base + length > TASK_SIZE:
            return -errno.EFAULT
        total += length
    if not min(total, MAX_RW_COUNT):
        return 0
    remote = _iovecs(mem, rvec, riovcnt)
    if isinstance(remote, int):
        return remote
    if not any(length for _, length in remote):
        return 0
    pid = s32(pid)
    if pid != ctx.proc.pid and pid not in ctx.proc.threads:
        if pid <= 0:
            return -errno.ESRCH
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return -errno.ESRCH
        except OSError:
            pass
        return -errno.EPERM
    limit = min(total, MAX_RW_COUNT)
    with mem.lock:
        # readv: remote -> local (km writes the local side); writev: local -> remote
        far, far_total = _spans(mem, remote, write, limit)
        near, near_total = _spans(mem, local, not write, limit)
        size = min(far_total, near_total)
        if size:
            _copy(mem, near if write else far, far if write else near, size)
    return size or -errno.EFAULT


@syscall("process_vm_readv")
def sys_process_vm_readv(ctx: VcpuThread, pid: int, lvec: int, liovcnt: int, rvec: int, riovcnt: int,
                         flags: int) -> int:
    return _process_vm(ctx, pid, lvec, liovcnt, rvec, riovcnt, flags, write=False)


@syscall("process_vm_writev")
def sys_process_vm_writev(ctx: VcpuThread, pid: int, lvec: int, liovcnt: int, rvec: int, riovcnt: int,
                          flags: int) -> int:
    return _process_vm(ctx, pid, lvec, liovcnt, rvec, riovcnt, flags, write=True)
