"""Identity and process syscalls: exit, ids, uname, arch_prctl, set_tid_address, prctl, limits, sysinfo."""
from __future__ import annotations

import errno
import os
import struct
from typing import TYPE_CHECKING

from .. import __version__
from ..host_fds import KM_FD_BASE
from ..kvm.abi import ffi
from .args import addr_of, buf_in, buf_out
from .dispatch import s32, syscall
from .host import host_syscall
from .numbers import NUMBERS as NR
from .process_info import host_pid
from .procfs import COMM_LEN

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread

ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004
ARCH_GET_CPUID, ARCH_SET_CPUID = 0x1011, 0x1012
PR_SET_NAME, PR_GET_NAME = 15, 16
RLIMIT_STACK, RLIMIT_NOFILE = 3, 7


@syscall("exit_group")
def sys_exit_group(ctx: VcpuThread, status: int) -> None:
    ctx.proc.exit_group(status)
    ctx.exit_requested = True
    return None


@syscall("exit")
def sys_exit(ctx: VcpuThread, status: int) -> None:
    ctx.proc.thread_exit(ctx, status)
    return None


@syscall("getpid")
def sys_getpid(ctx: VcpuThread) -> int:
    return ctx.proc.pid


@syscall("getppid")
def sys_getppid(ctx: VcpuThread) -> int:
    return os.getppid()


@syscall("gettid")
def sys_gettid(ctx: VcpuThread) -> int:
    return ctx.tid


@syscall("getuid")
def sys_getuid(ctx: VcpuThread) -> int:
    return os.getuid()


@syscall("geteuid")
def sys_geteuid(ctx: VcpuThread) -> int:
    return os.geteuid()


@syscall("getgid")
def sys_getgid(ctx: VcpuThread) -> int:
    return os.getgid()


@syscall("getegid")
def sys_getegid(ctx: VcpuThread) -> int:
    return os.getegid()


@syscall("getresuid")
def sys_getresuid(ctx: VcpuThread, r: int, e: int, s: int) -> int:
    for addr, value in zip((r, e, s), os.getresuid()):
        ctx.mem.write(addr, struct.pack("<I", value))
    return 0


@syscall("getresgid")
def sys_getresgid(ctx: VcpuThread, r: int, e: int, s: int) -> int:
    for addr, value in zip((r, e, s), os.getresgid()):
        ctx.mem.write(addr, struct.pack("<I", value))
    return 0


@syscall("getgroups")
def sys_getgroups(ctx: VcpuThread, size: int, addr: int) -> int:
    groups = os.getgroups()
    size = s32(size)
    if size < 0:
        return -errno.EINVAL
    if size == 0:
        return len(groups)
    if size < len(groups):
        return -errno.EINVAL
    ctx.mem.write(addr, struct.pack(f"<{len(groups)}I", *groups))
    return len(groups)


@syscall("getpgrp")
def sys_getpgrp(ctx: VcpuThread) -> int:
    return os.getpgrp()


@syscall("getpgid")
def sys_getpgid(ctx: VcpuThread, pid: int) -> int:
    """Process groups and sessions are the host's: km is the payload's process."""
    return host_syscall(NR["getpgid"], host_pid(ctx, pid))


@syscall("getsid")
def sys_getsid(ctx: VcpuThread, pid: int) -> int:
    return host_syscall(NR["getsid"], host_pid(ctx, pid))


@syscall("setpgid")
def sys_setpgid(ctx: VcpuThread, pid: int, pgid: int) -> int:
    return host_syscall(NR["setpgid"], host_pid(ctx, pid) if s32(pid) != ctx.proc.pid else 0, s32(pgid))


@syscall("setsid")
def sys_setsid(ctx: VcpuThread) -> int:
    return host_syscall(NR["setsid"])


def _ids(*values: int) -> list[int]:
    """uid_t/gid_t arguments: -1 (as 32 bits) means "unchanged", which os.set*id take as -1."""
    return [-1 if v & 0xFFFFFFFF == 0xFFFFFFFF else v & 0xFFFFFFFF for v in values]


def _set_ids(call, *values: int) -> int:
    """Through libc, which changes every thread's credentials (the raw syscall changes only the caller's, and km's
    host threads are all the payload's): a subprocess's user=/group= and privilege drops work as natively."""
    try:
        call(*_ids(*values))
    except OSError as e:
        return -(e.errno or errno.EPERM)
    return 0


@syscall("setuid")
def sys_setuid(ctx: VcpuThread, uid: int) -> int:
    return _set_ids(os.setuid, uid)


@syscall("setgid")
def sys_setgid(ctx: VcpuThread, gid: int) -> int:
    return _set_ids(os.setgid, gid)


@syscall("setreuid")
def sys_setreuid(ctx: VcpuThread, r: int, e: int) -> int:
    return _set_ids(os.setreuid, r, e)


@syscall("setregid")
def sys_setregid(ctx: VcpuThread, r: int, e: int) -> int:
    return _set_ids(os.setregid, r, e)


@syscall("setresuid")
def sys_setresuid(ctx: VcpuThread, r: int, e: int, s: int) -> int:
    return _set_ids(os.setresuid, r, e, s)


@syscall("setresgid")
def sys_setresgid(ctx: VcpuThread, r: int, e: int, s: int) -> int:
    return _set_ids(os.setresgid, r, e, s)


@syscall("setgroups")
def sys_setgroups(ctx: VcpuThread, size: int, addr: int) -> int:
    if s32(size) < 0 or size > 65536:
        return -errno.EINVAL
    groups = struct.unpack(f"<{size}I", ctx.mem.read(addr, 4 * size)) if size else ()
    try:
        os.setgroups(list(groups))
    except OSError as e:
        return -(e.errno or errno.EPERM)
    return 0


@syscall("uname")
def sys_uname(ctx: VcpuThread, buf: int) -> int:
    """The host's names, with km named as the runtime in `version` (as the original product did)."""
    u = os.uname()
    fields = [u.sysname, u.nodename, u.release, f"km {__version__} (kdbg)", u.machine, "(none)"]
    ctx.mem.write(buf, b"".join(f.encode()[:64].ljust(65, b"\0") for f in fields))
    return 0


@syscall("sethostname")
def sys_sethostname(ctx: VcpuThread, name: int, length: int) -> int:
    """The host's (km shares its UTS namespace): EPERM without CAP_SYS_ADMIN, as natively."""
    if length > 64:
        return -errno.EINVAL
    return host_syscall(NR["sethostname"], buf_in(ctx, name, length), length)


@syscall("setdomainname")
def sys_setdomainname(ctx: VcpuThread, name: int, length: int) -> int:
    if length > 64:
        return -errno.EINVAL
    return host_syscall(NR["setdomainname"], buf_in(ctx, name, length), length)


@syscall("arch_prctl")
def sys_arch_prctl(ctx: VcpuThread, code: int, addr: int) -> int:
    sregs = ctx.run.s.regs.sregs
    from ..kvm import abi
    if code == ARCH_SET_FS:
        sregs.fs.base = addr
    elif code == ARCH_SET_GS:
        sregs.gs.base = addr
    elif code == ARCH_GET_FS:
        ctx.mem.write(addr, struct.pack("<Q", sregs.fs.base))
        return 0
    elif code == ARCH_GET_GS:
        ctx.mem.write(addr, struct.pack("<Q", sregs.gs.base))
        return 0
    elif code == ARCH_GET_CPUID:
        return 1
    else:
        return -errno.EINVAL
    ctx.sync[1] |= abi.KVM_SYNC_X86_SREGS
    return 0


@syscall("set_tid_address")
def sys_set_tid_address(ctx: VcpuThread, tidptr: int) -> int:
    ctx.clear_child_tid = tidptr
    return ctx.tid


@syscall("set_robust_list")
def sys_set_robust_list(ctx: VcpuThread, head: int, length: int) -> int:
    if length != 24:                      # sizeof(struct robust_list_head)
        return -errno.EINVAL
    ctx.robust_list = head
    return 0


@syscall("get_robust_list")
def sys_get_robust_list(ctx: VcpuThread, pid: int, head_ptr: int, len_ptr: int) -> int:
    ctx.mem.write(head_ptr, struct.pack("<Q", ctx.robust_list))
    ctx.mem.write(len_ptr, struct.pack("<Q", 24))
    return 0


@syscall("rseq")
def sys_rseq(ctx: VcpuThread) -> int:
    return -errno.ENOSYS


@syscall("prctl")
def sys_prctl(ctx: VcpuThread, option: int, arg2: int) -> int:
    if option == PR_SET_NAME:
        ctx.name = ctx.mem.read_cstring(arg2, 16, truncate=True)[:COMM_LEN].decode(errors="surrogateescape")
        return 0
    if option == PR_GET_NAME:
        ctx.mem.write(arg2, ctx.comm.ljust(16, b"\0"))     # the program's file name until one is set
        return 0
    return -errno.EINVAL


def rlimit(resource: int) -> tuple[int, int]:
    """The payload's (soft, hard) limit of `resource`: the host's, but for RLIMIT_NOFILE."""
    if resource == RLIMIT_NOFILE:
        return KM_FD_BASE, KM_FD_BASE     # the payload's descriptors end where km's begin
    limits = ffi.new("uint64_t[2]")         # the host's own (RLIM_INFINITY is ~0 there too), asked without
    host_syscall(NR["prlimit64"], 0, resource, 0, addr_of(limits))      # importing the resource module late
    return limits[0], limits[1]


@syscall("prlimit64")
def sys_prlimit64(ctx: VcpuThread, pid: int, resource: int, new: int, old: int) -> int:
    resource &= 0xFFFFFFFF                # an unsigned int
    if resource > 15:
        return -errno.EINVAL
    if old:
        ctx.mem.write(old, struct.pack("<QQ", *rlimit(resource)))
    return 0


@syscall("getrlimit")
def sys_getrlimit(ctx: VcpuThread, resource: int, old: int) -> int:
    """Unlike prlimit64's, its pointer is not optional: NULL is EFAULT."""
    result = sys_prlimit64(ctx, 0, resource, 0, old)
    if result == 0 and not old:
        return -errno.EFAULT
    return result


@syscall("setrlimit")
def sys_setrlimit(ctx: VcpuThread, resource: int, new: int) -> int:
    return 0


@syscall("sysinfo")
def sys_sysinfo(ctx: VcpuThread, buf: int) -> int:
    return host_syscall(NR["sysinfo"], buf_out(ctx, buf, 112))


@syscall("getrusage")
def sys_getrusage(ctx: VcpuThread, who: int, buf: int) -> int:
    return host_syscall(NR["getrusage"], who, buf_out(ctx, buf, 144))


@syscall("times")
def sys_times(ctx: VcpuThread, buf: int) -> int:
    return host_syscall(NR["times"], buf_out(ctx, buf, 32) if buf else 0)


@syscall("getrandom")
def sys_getrandom(ctx: VcpuThread, buf: int, count: int, flags: int) -> int:
    return host_syscall(NR["getrandom"], buf_out(ctx, buf, count), count, flags)


@syscall("sched_getaffinity")
def sys_sched_getaffinity(ctx: VcpuThread, pid: int, size: int, mask: int) -> int:
    return host_syscall(NR["sched_getaffinity"], 0, size, buf_out(ctx, mask, size))


@syscall("sched_setaffinity")
def sys_sched_setaffinity(ctx: VcpuThread) -> int:
    return 0


@syscall("sched_yield")
def sys_sched_yield(ctx: VcpuThread) -> int:
    os.sched_yield()
    return 0


@syscall("getcpu")
def sys_getcpu(ctx: VcpuThread, cpu: int, node: int) -> int:
    if cpu:
        ctx.mem.write(cpu, struct.pack("<I", ctx.vcpu.id % (os.cpu_count() or 1)))
    if node:
        ctx.mem.write(node, struct.pack("<I", 0))
    return 0


PRIO_PROCESS, PRIO_PGRP, PRIO_USER = 0, 1, 2


def _is_own(ctx: VcpuThread, which: int, who: int) -> bool:
    """Whether (which, who) names the payload or one of its threads (else another process, group or user, which
    the host answers)."""
    return which == PRIO_PROCESS and (who == 0 or who == ctx.proc.pid or who in ctx.proc.threads)


@syscall("getpriority")
def sys_getpriority(ctx: VcpuThread, which: int, who: int) -> int:
    """The raw syscall answers 20 - nice (glibc turns it back)."""
    which, who = s32(which), s32(who)
    if which not in (PRIO_PROCESS, PRIO_PGRP, PRIO_USER):
        return -errno.EINVAL
    if _is_own(ctx, which, who):
        return 20 - ctx.proc.nice
    return host_syscall(NR["getpriority"], which, who)


@syscall("setpriority")
def sys_setpriority(ctx: VcpuThread, which: int, who: int, prio: int) -> int:
    """km's threads are all the payload's: the value is kept per process (and given to the calling host thread,
    so the scheduler follows it); lowering it needs the privilege Linux asks for."""
    which, who = s32(which), s32(who)
    if which not in (PRIO_PROCESS, PRIO_PGRP, PRIO_USER):
        return -errno.EINVAL
    if not _is_own(ctx, which, who):
        return host_syscall(NR["setpriority"], which, who, prio)
    nice = min(max(s32(prio), -20), 19)
    if nice < ctx.proc.nice and os.geteuid() != 0:
        return -errno.EACCES
    ctx.proc.nice = nice
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError:
        pass
    return 0


@syscall("sched_setscheduler")
def sys_sched_setscheduler(ctx: VcpuThread, pid: int, policy: int, param: int) -> int:
    return host_syscall(NR["sched_setscheduler"], host_pid(ctx, pid), policy, buf_in(ctx, param, 4))


@syscall("sched_setparam")
def sys_sched_setparam(ctx: VcpuThread, pid: int, param: int) -> int:
    return host_syscall(NR["sched_setparam"], host_pid(ctx, pid), buf_in(ctx, param, 4))


@syscall("sched_getscheduler")
def sys_sched_getscheduler(ctx: VcpuThread, pid: int) -> int:
    return host_syscall(NR["sched_getscheduler"], host_pid(ctx, pid))


@syscall("sched_getparam")
def sys_sched_getparam(ctx: VcpuThread, pid: int, param: int) -> int:
    return host_syscall(NR["sched_getparam"], host_pid(ctx, pid), buf_out(ctx, param, 4))


@syscall("sched_get_priority_max")
def sys_sched_get_priority_max(ctx: VcpuThread, policy: int) -> int:
    return host_syscall(NR["sched_get_priority_max"], policy)


@syscall("sched_get_priority_min")
def sys_sched_get_priority_min(ctx: VcpuThread, policy: int) -> int:
    return host_syscall(NR["sched_get_priority_min"], policy)
