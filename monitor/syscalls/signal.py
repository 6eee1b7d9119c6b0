"""Signal syscalls: rt_sigaction, rt_sigprocmask, sigaltstack, rt_sigreturn, restart_syscall, kill/tgkill/tkill,
rt_sigpending, rt_sigqueueinfo, rt_sigtimedwait, pause/rt_sigsuspend (kernel/signal.c semantics, one process).
Sending and delivery are monitor/signals/delivery.py's; timers that send signals are in timer.py."""
from __future__ import annotations

import errno
import os
import struct
import threading
import time
from typing import TYPE_CHECKING

from kdbg.arch.linux import SI_KERNEL, SI_TKILL, SI_USER, make_siginfo

from ..errors import GuestFault
from ..signals.altstack import altstack_flags, set_altstack
from ..signals.delivery import ERESTARTNOHAND, ERESTARTNOINTR, NSIG, UNBLOCKABLE, PendingSignal, SigAction
from .dispatch import s32, syscall

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread

SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
SIGKILL, SIGSTOP, SIGSEGV = 9, 19, 11


@syscall("rt_sigaction")
def sys_rt_sigaction(ctx: VcpuThread, signo: int, act: int, oldact: int, size: int) -> int:
    """struct kernel_sigaction: handler, flags, restorer, mask (8 bytes each)."""
    if not 1 <= signo <= NSIG or size != 8:
        return -errno.EINVAL
    state = ctx.proc.signals
    new = struct.unpack("<QQQQ", ctx.mem.read(act, 32)) if act else None
    if new and signo in (SIGKILL, SIGSTOP):
        return -errno.EINVAL
    with state.lock:
        old = state.actions[signo]
        if oldact:
            ctx.mem.write(oldact, struct.pack("<QQQQ", old.handler, old.flags, old.restorer, old.mask))
        if new:
            state.actions[signo] = SigAction(new[0], new[1], new[2], new[3] & ~UNBLOCKABLE)
            if state.is_ignored(signo):
                state.discard(signo)
    return 0


@syscall("rt_sigprocmask")
def sys_rt_sigprocmask(ctx: VcpuThread, how: int, new: int, old: int, size: int) -> int:
    if size != 8:
        return -errno.EINVAL
    own = ctx.proc.signals.of(ctx)
    if old:
        ctx.mem.write(old, struct.pack("<Q", own.mask))
    if new:
        value = struct.unpack("<Q", ctx.mem.read(new, 8))[0]
        if how == SIG_BLOCK:
            own.mask |= value
        elif how == SIG_UNBLOCK:
            own.mask &= ~value
        elif how == SIG_SETMASK:
            own.mask = value
        else:
            return -errno.EINVAL
        own.mask &= ~UNBLOCKABLE
    return 0


@syscall("sigaltstack")
def sys_sigaltstack(ctx: VcpuThread, new: int, old: int) -> int:
    """stack_t: ss_sp (8), ss_flags (int + pad), ss_size (8)."""
    own = ctx.proc.signals.of(ctx)
    sp = ctx.user_regs()[6]
    ss_sp, _, ss_size = own.altstack
    update = struct.unpack("<QI4xQ", ctx.mem.read(new, 24)) if new else None
    if old:
        ctx.mem.write(old, struct.pack("<QI4xQ", ss_sp, altstack_flags(own, sp), ss_size))
    return set_altstack(own, sp, *update) if update else 0


@syscall("rt_sigreturn")
def sys_rt_sigreturn(ctx: VcpuThread) -> None:
    """A frame km cannot read is a SIGSEGV for the thread, as Linux's signal_fault + force_sig."""
    try:
        ctx.proc.signals.sigreturn(ctx)
    except GuestFault:
        ctx.proc.signals.force(ctx, SIGSEGV, make_siginfo(SIGSEGV, SI_KERNEL, 0))
    return None


@syscall("restart_syscall")
def sys_restart_syscall(ctx: VcpuThread) -> int:
    """The rest of a call that returned -ERESTART_RESTARTBLOCK and was restarted with no handler run (a sleep,
    a futex wait with a timeout); EINTR when there is none (do_no_restart_syscall)."""
    block, ctx.restart_block = ctx.restart_block, None
    return block(ctx) if block is not None else -errno.EINTR


@syscall("kill")
def sys_kill(ctx: VcpuThread, pid: int, signo: int) -> int:
    """Another pid is a host process (a forked payload is a km of its own, which forwards the signal to its
    guest): the host kernel delivers it. 0 and -1 stay within this payload: the process group and "every
    process" would reach km's own parent and siblings on the host."""
    pid, signo = s32(pid), s32(signo)
    if not 0 <= signo <= NSIG:
        return -errno.EINVAL
    if pid not in (0, -1, ctx.proc.pid):
        os.kill(pid, signo)
        return 0
    if signo:
        ctx.proc.signals.send(signo, make_siginfo(signo, SI_USER, pid=ctx.proc.pid, uid=os.getuid()))
    return 0


def _thread(ctx: VcpuThread, tid: int):
    return ctx.proc.threads.get(s32(tid)) if s32(tid) in ctx.proc.threads else None


@syscall("tgkill")
def sys_tgkill(ctx: VcpuThread, tgid: int, tid: int, signo: int) -> int:
    if s32(tgid) != ctx.proc.pid:
        if s32(tgid) <= 0 or s32(tid) != s32(tgid) or not 0 <= signo <= NSIG:
            return -errno.EINVAL if s32(tgid) <= 0 or s32(tid) <= 0 else -errno.ESRCH
        os.kill(s32(tgid), signo)         # another km: its main thread, the only tid known outside it
        return 0
    return sys_tkill(ctx, tid, signo)


@syscall("tkill")
def sys_tkill(ctx: VcpuThread, tid: int, signo: int) -> int:
    thread = _thread(ctx, tid)
    if thread is None or thread.exit_requested:
        return -errno.ESRCH
    if not 0 <= signo <= NSIG:
        return -errno.EINVAL
    if signo:
        ctx.proc.signals.send(signo, make_siginfo(signo, SI_TKILL, pid=ctx.proc.pid, uid=os.getuid()), thread)
    return 0


def _queued_info(ctx: VcpuThread, signo: int, uinfo: int) -> bytes:
    """The caller's siginfo with si_signo set (to itself a process may send any si_code)."""
    info = bytearray(ctx.mem.read(uinfo, 128))
    struct.pack_into("<i", info, 0, signo)
    return bytes(info)


@syscall("rt_sigqueueinfo")
def sys_rt_sigqueueinfo(ctx: VcpuThread, tgid: int, signo: int, uinfo: int) -> int:
    if s32(tgid) != ctx.proc.pid:
        return -errno.ESRCH
    if not 0 <= signo <= NSIG:
        return -errno.EINVAL
    info = _queued_info(ctx, signo, uinfo)
    if signo:
        ctx.proc.signals.send(signo, info)
    return 0


@syscall("rt_tgsigqueueinfo")
def sys_rt_tgsigqueueinfo(ctx: VcpuThread, tgid: int, tid: int, signo: int, uinfo: int) -> int:
    thread = _thread(ctx, tid)
    if s32(tgid) != ctx.proc.pid or thread is None or thread.exit_requested:
        return -errno.ESRCH
    if not 0 <= signo <= NSIG:
        return -errno.EINVAL
    info = _queued_info(ctx, signo, uinfo)
    if signo:
        ctx.proc.signals.send(signo, info, thread)
    return 0


@syscall("rt_sigpending")
def sys_rt_sigpending(ctx: VcpuThread, setp: int, size: int) -> int:
    """A set larger than the kernel's is EINVAL; a smaller one gets its first `size` bytes (kernel/signal.c)."""
    if size > 8:
        return -errno.EINVAL
    state = ctx.proc.signals
    bits = 0
    for p in state.of(ctx).pending + state.shared_pending:
        bits |= 1 << (p.signo - 1)
    ctx.mem.write(setp, struct.pack("<Q", bits & state.of(ctx).mask)[:size])
    return 0


WAIT_MAX = 86400.0          # one wait's longest slice: threading refuses a timeout of 2^63 s (OverflowError)


def sleep_until_signal(ctx: VcpuThread, deadline: float | None, wanted: int | None = None, *,
                       interrupted: int) -> int | PendingSignal:
    """Block until a signal is pending (the one of `wanted` taken, else 0 for any deliverable one: a handled signal
    ends sigtimedwait too), or the deadline (-EAGAIN); honours
    pauses; a snapshot's freeze ends it with -ERESTARTNOINTR (the call is made again when the thread goes on).
    `interrupted`: the call's code when a stop cuts it short on Linux (ERESTARTNOHAND, EINTR...), rax meanwhile."""
    ctx.waits_interruptibly(interrupted)
    event = threading.Event()
    ctx.signal_wakeup = event
    ctx.sigwait_set = wanted or 0
    try:
        while True:
            state = ctx.proc.signals
            if wanted is not None:
                taken = state.dequeue(ctx, lambda p: wanted & (1 << (p.signo - 1)))
                if taken is not None:
                    return taken
            if ctx.proc.pending_signals_for(ctx):       # any deliverable signal ends the wait: EINTR
                return 0
            if ctx.exit_requested:
                return 0
            if ctx.freezing:
                return -ERESTARTNOINTR
            if ctx.pause_requested:
                ctx.park()
                continue
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return -errno.EAGAIN
            event.wait(None if remaining is None else min(remaining, WAIT_MAX))
            event.clear()
    finally:
        ctx.signal_wakeup = None
        ctx.sigwait_set = 0


@syscall("pause")
def sys_pause(ctx: VcpuThread) -> int:
    sleep_until_signal(ctx, None, interrupted=ERESTARTNOHAND)
    return -ERESTARTNOHAND


@syscall("rt_sigsuspend")
def sys_rt_sigsuspend(ctx: VcpuThread, mask: int, size: int) -> int:
    own = ctx.proc.signals.of(ctx)
    saved = own.mask
    own.mask = struct.unpack("<Q", ctx.mem.read(mask, 8))[0] & ~UNBLOCKABLE
    sleep_until_signal(ctx, None, interrupted=ERESTARTNOHAND)
    own.mask_to_restore = saved          # set_restore_sigmask: back at the handler's sigreturn, or at once
    return -ERESTARTNOHAND


@syscall("rt_sigtimedwait")
def sys_rt_sigtimedwait(ctx: VcpuThread, setp: int, info: int, timeout: int, size: int) -> int:
    """kernel/signal.c's order: the set's size (EINVAL), the set (EFAULT), the timeout (EFAULT, then EINVAL for a
    negative or unnormalised one); a timeout of years is a wait without end."""
    if size != 8:
        return -errno.EINVAL
    wanted = struct.unpack("<Q", ctx.mem.read(setp, 8))[0]
    deadline = None
    if timeout:
        sec, nsec = struct.unpack("<qq", ctx.mem.read(timeout, 16))
        if sec < 0 or not 0 <= nsec < 1_000_000_000:
            return -errno.EINVAL
        deadline = time.monotonic() + sec + nsec / 1e9
    got = sleep_until_signal(ctx, deadline, wanted, interrupted=errno.EINTR)      # (do_sigtimedwait: no restart)
    if isinstance(got, int):
        return got if got else -errno.EINTR
    if info:
        ctx.mem.write(info, got.info)
    return got.signo
