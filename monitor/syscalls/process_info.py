"""Process-level queries and settings beyond proc.py's: personality (kept by km: the host's would change km),
capget, scheduling attributes, I/O priority, kcmp, sysfs, ustat, and the unshare flags that change nothing for a
payload whose descriptor table and file-system context are km's own."""
from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from ..errors import GuestFault
from ..kvm.abi import ffi
from ..host_fds import KM_FD_BASE
from .args import BAD_FD, addr_of, buf_in, buf_out, path_arg
from .dispatch import s32, syscall
from .host import host_syscall
from .numbers import NUMBERS as NR

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread

CAP_V1, CAP_V2, CAP_V3 = 0x19980330, 0x20071026, 0x20080522
SCHED_ATTR_SIZE_VER0, PAGE = 48, 4096
KCMP_FILE, KCMP_EPOLL_TFD = 0, 7
CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND, CLONE_THREAD, CLONE_SYSVSEM = 0x100, 0x200, 0x400, 0x800, 0x10000, 0x40000
NO_CHANGE = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM
NAMESPACES = 0x80 | 0x20000 | 0x2000000 | 0x4000000 | 0x8000000 | 0x10000000 | 0x20000000 | 0x40000000


def host_pid(ctx: VcpuThread, pid: int) -> int:
    """A payload pid or tid as the host knows it: the calling thread is 0, another payload thread the process
    (km's vCPU threads have host tids of their own), anything else a host process."""
    pid = s32(pid)
    if pid == ctx.tid:
        return 0
    return ctx.proc.pid if pid in ctx.proc.threads else pid


@syscall("personality")
def sys_personality(ctx: VcpuThread, persona: int) -> int:
    """The payload's execution domain, kept by km (0, PER_LINUX, at start); 0xffffffff only asks."""
    old = ctx.proc.personality
    if persona & 0xFFFFFFFF != 0xFFFFFFFF:
        ctx.proc.personality = persona & 0xFFFFFFFF
    return old


@syscall("capget")
def sys_capget(ctx: VcpuThread, header: int, data: int) -> int:
    try:
        version = struct.unpack("<I", ctx.mem.read(header, 4))[0]
    except GuestFault:
        version = 0
    size = 12 if version == CAP_V1 else 24
    return host_syscall(NR["capget"], buf_out(ctx, header, 8), buf_out(ctx, data, size) if data else 0)


@syscall("sched_getattr")
def sys_sched_getattr(ctx: VcpuThread, pid: int, attr: int, size: int, flags: int) -> int:
    length = size & 0xFFFFFFFF
    host_attr = buf_out(ctx, attr, length) if SCHED_ATTR_SIZE_VER0 <= length <= PAGE else buf_out(ctx, attr, 1)
    return host_syscall(NR["sched_getattr"], host_pid(ctx, pid), host_attr, size, flags)


@syscall("sched_rr_get_interval")
def sys_sched_rr_get_interval(ctx: VcpuThread, pid: int, interval: int) -> int:
    return host_syscall(NR["sched_rr_get_interval"], host_pid(ctx, pid), buf_out(ctx, interval, 16))


@syscall("ioprio_get")
def sys_ioprio_get(ctx: VcpuThread, which: int, who: int) -> int:
    return host_syscall(NR["ioprio_get"], which, host_pid(ctx, who) if which == 1 else who)


@syscall("kcmp")
def sys_kcmp(ctx: VcpuThread, pid1: int, pid2: int, kind: int, idx1: int, idx2: int) -> int:
    """Descriptor numbers at KM_FD_BASE and up are km's: compared as numbers no process has open."""
    if kind in (KCMP_FILE, KCMP_EPOLL_TFD):
        idx1 = BAD_FD if s32(idx1) >= KM_FD_BASE else idx1
        if kind == KCMP_FILE:
            idx2 = BAD_FD if s32(idx2) >= KM_FD_BASE else idx2
        else:
            idx2 = buf_in(ctx, idx2, 12)
    return host_syscall(NR["kcmp"], host_pid(ctx, pid1), host_pid(ctx, pid2), kind, idx1, idx2)


@syscall("sysfs")
def sys_sysfs(ctx: VcpuThread, option: int, arg1: int, arg2: int) -> int:
    if option == 1:
        return host_syscall(NR["sysfs"], 1, addr_of(path_arg(ctx, arg1)))
    if option != 2:
        return host_syscall(NR["sysfs"], option, arg1, arg2)
    name = ffi.new("char[]", 256)
    result = host_syscall(NR["sysfs"], 2, arg1, addr_of(name))
    if result >= 0:
        ctx.mem.write(arg2, ffi.string(name) + b"\0")
    return result


@syscall("ustat")
def sys_ustat(ctx: VcpuThread, dev: int, ubuf: int) -> int:
    return host_syscall(NR["ustat"], dev, buf_out(ctx, ubuf, 32))


@syscall("unshare")
def sys_unshare(ctx: VcpuThread, flags: int) -> int:
    """Unsharing the descriptor table, file-system context or SysV undo list changes nothing the payload could see
    (km's threads must keep sharing theirs), nor do VM/SIGHAND/THREAD for a single thread; new namespaces are
    refused as for a process without CAP_SYS_ADMIN."""
    if flags & ~(NO_CHANGE | NAMESPACES):
        return -errno.EINVAL
    if flags & NAMESPACES:
        return -errno.EPERM
    if flags & (CLONE_VM | CLONE_SIGHAND | CLONE_THREAD) and len(ctx.proc.live_threads()) > 1:
        return -errno.EINVAL
    return 0
