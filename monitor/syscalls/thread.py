"""Thread syscalls: clone/clone3 (threads only: CLONE_VM|CLONE_THREAD), each guest thread a new vCPU."""
from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from kdbg.tracelog import logger

from ..errors import KvmError
from ..process.fork import execve, fork     # at start-up: a module imported once the payload runs may fail (cwd, fds)
from .args import buf_out
from .dispatch import syscall
from .host import blocking_host_syscall
from .numbers import NUMBERS

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread

log = logger("km.syscall")
CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND, CLONE_VFORK = 0x100, 0x200, 0x400, 0x800, 0x4000
CLONE_THREAD, CLONE_SETTLS, CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID = \
    0x10000, 0x80000, 0x100000, 0x200000, 0x1000000


def create_thread(ctx: VcpuThread, flags: int, stack: int, ptid: int, ctid: int, tls: int) -> int:
    if not flags & CLONE_THREAD:
        return fork(ctx, flags, stack, ptid, ctid)
    if not flags & CLONE_VM:
        return -errno.EINVAL
    proc = ctx.proc
    try:
        child = proc.new_thread()
    except KvmError as e:             # out of vCPUs (KVM_CREATE_VCPU: EINVAL past KVM's vCPU id limit)
        log.info("clone: no vCPU for a new thread (%s): EAGAIN", e)
        return -errno.EAGAIN
    child.set_user_regs(ctx.child_regs(stack))
    child.orig_rax = ctx.orig_rax           # copy_thread copies pt_regs: the clone's number until it next enters
    sregs = child.vcpu.get_sregs()
    parent = ctx.run.s.regs.sregs
    sregs.fs.base = tls if flags & CLONE_SETTLS else parent.fs.base
    sregs.gs.base = parent.gs.base
    child.vcpu.set_sregs(sregs)
    mirror = child.run.s.regs.sregs           # a reused vCPU's sync copy must agree with what KVM now holds
    mirror.fs.base, mirror.gs.base = sregs.fs.base, sregs.gs.base
    child.vcpu.set_xsave(ctx.vcpu.get_xsave())
    proc.signals.of(child).mask = proc.signals.of(ctx).mask
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = ctid
    tid = struct.pack("<i", child.tid)
    if flags & CLONE_PARENT_SETTID:
        ctx.mem.write(ptid, tid)
    if flags & CLONE_CHILD_SETTID:
        ctx.mem.write(ctid, tid)
    child.start()
    return child.tid


@syscall("clone")
def sys_clone(ctx: VcpuThread, flags: int, stack: int, ptid: int, ctid: int, tls: int) -> int:
    return create_thread(ctx, flags, stack, ptid, ctid, tls)


@syscall("clone3")
def sys_clone3(ctx: VcpuThread, args: int, size: int) -> int:
    """struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, ..."""
    if size < 64:
        return -errno.EINVAL
    flags, _pidfd, child_tid, parent_tid, _exit_signal, stack, stack_size, tls = \
        struct.unpack("<8Q", ctx.mem.read(args, 64))
    return create_thread(ctx, flags, stack + stack_size if stack else 0, parent_tid, child_tid, tls)


@syscall("fork")
def sys_fork(ctx: VcpuThread) -> int:
    return fork(ctx, 0, 0, 0, 0)


@syscall("vfork")
def sys_vfork(ctx: VcpuThread) -> int:
    return fork(ctx, CLONE_VFORK | CLONE_VM, 0, 0, 0)


@syscall("execve")
def sys_execve(ctx: VcpuThread, path: int, argv: int, envp: int) -> int | None:
    return execve(ctx, path, argv, envp)


@syscall("wait4")
def sys_wait4(ctx: VcpuThread, pid: int, status: int, options: int, rusage: int) -> int:
    """Children are km processes on the host: their status is the payload's."""
    return blocking_host_syscall(ctx, NUMBERS["wait4"], pid, buf_out(ctx, status, 4) if status else 0, options,
                                 buf_out(ctx, rusage, 144) if rusage else 0)


@syscall("waitid")
def sys_waitid(ctx: VcpuThread, idtype: int, id_: int, infop: int, options: int, rusage: int) -> int:
    return blocking_host_syscall(ctx, NUMBERS["waitid"], idtype, id_, buf_out(ctx, infop, 128) if infop else 0,
                                 options, buf_out(ctx, rusage, 144) if rusage else 0)
