"""futex(2) served inside km: wait queues keyed by guest address (one process: private and shared alike), except
a process-shared futex (no FUTEX_PRIVATE_FLAG) in a MAP_SHARED mapping: its waiters and wakers may be other
processes (a forked km: POSIX semaphores and locks in shared memory, CPython's multiprocessing), so WAIT and WAKE
on it are the host's own futex on the host mapping, which the host kernel keys by the shared page as Linux does.

A waiter blocks on its own threading.Event; a wake, a timeout, a guest signal or a stop-the-world kick sets it.
After a kick for a debugger pause the waiter parks and waits again, so a pause is invisible to the payload.
"""
from __future__ import annotations

import errno
import struct
import threading
import time
from typing import TYPE_CHECKING

from ..errors import GuestFault
from ..memory.atomics import cas32
from ..signals.delivery import ERESTART_RESTARTBLOCK, ERESTARTNOINTR, ERESTARTSYS
from .args import buf_in
from .dispatch import syscall
from .host import blocking_host_syscall, host_syscall, interruption
from .numbers import NUMBERS as NR

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread

FUTEX_WAIT, FUTEX_WAKE, FUTEX_FD, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 2, 3, 4, 5
FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI = 6, 7, 8
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET, FUTEX_LOCK_PI2 = 9, 10, 13
FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 128, 256
BITSET_MATCH_ANY = 0xFFFFFFFF


class Waiter:
    __slots__ = ("event", "bitset", "woken", "addr", "tid", "handed")

    def __init__(self, addr: int, bitset: int, tid: int = 0) -> None:
        self.event, self.bitset, self.woken, self.addr = threading.Event(), bitset, False, addr
        self.tid, self.handed = tid, False       # PI waiters: handed is True once FUTEX_UNLOCK_PI made it owner


class FutexTable:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queues: dict[int, list[Waiter]] = {}

    def wake(self, addr: int, count: int, bitset: int = BITSET_MATCH_ANY) -> int:
        woken = 0
        with self.lock:
            queue = self.queues.get(addr, [])
            for waiter in list(queue):
                if woken >= count:
                    break
                if waiter.bitset & bitset:
                    queue.remove(waiter)
                    waiter.woken = True
                    waiter.event.set()
                    woken += 1
            if not queue:
                self.queues.pop(addr, None)
        return woken

    def requeue(self, addr: int, count: int, addr2: int, limit: int) -> int:
        woken = self.wake(addr, count)
        moved = 0
        with self.lock:
            queue = self.queues.get(addr, [])
            while queue and moved < limit:
                waiter = queue.pop(0)
                waiter.addr = addr2
                self.queues.setdefault(addr2, []).append(waiter)
                moved += 1
            if not queue:
                self.queues.pop(addr, None)
        return woken + moved

    def cancel(self, waiter: Waiter) -> None:
        with self.lock:
            queue = self.queues.get(waiter.addr)
            if queue and waiter in queue:
                queue.remove(waiter)
                if not queue:
                    self.queues.pop(waiter.addr, None)


def _load(ctx: VcpuThread, addr: int) -> int:
    return struct.unpack("<I", ctx.mem.read(addr, 4))[0]


def _deadline(ctx: VcpuThread, timeout: int, absolute: bool, realtime: bool) -> float | None:
    if not timeout:
        return None
    sec, nsec = struct.unpack("<qq", ctx.mem.read(timeout, 16))
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        raise OSError(errno.EINVAL, "timeout")
    value = sec + nsec / 1e9
    if absolute:
        return time.monotonic() + value - (time.time() if realtime else time.clock_gettime(time.CLOCK_MONOTONIC))
    return time.monotonic() + value


def wait(ctx: VcpuThread, addr: int, expected: int, deadline: float | None, bitset: int) -> int:
    table = ctx.proc.futexes
    restart = ERESTARTSYS if deadline is None else ERESTART_RESTARTBLOCK
    ctx.waits_interruptibly(restart)
    while True:
        waiter = Waiter(addr, bitset)
        # Published before the checks below: a kick (signal, pause, exit) either finds it and sets its event,
        # or came earlier and its request is seen by the checks; never lost in between (Linux: the task is
        # TASK_INTERRUPTIBLE before it tests signal_pending).
        ctx.blocked_on = waiter
        try:
            with table.lock:
                if _load(ctx, addr) != expected:
                    return -errno.EAGAIN
                table.queues.setdefault(addr, []).append(waiter)
            if not (ctx.exit_requested or ctx.pause_requested or ctx.freezing or ctx.proc.pending_signals_for(ctx)):
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                waiter.event.wait(remaining)
        finally:
            ctx.blocked_on = None
        if waiter.woken:
            return 0
        table.cancel(waiter)
        if waiter.woken:
            return 0
        if deadline is not None and time.monotonic() >= deadline:
            return -errno.ETIMEDOUT
        leave = interruption(ctx, restart)
        if leave == -ERESTART_RESTARTBLOCK:
            # futex_wait_restart: with no handler, the wait goes on until the same deadline
            ctx.restart_block = lambda thread: wait(thread, addr, expected, deadline, bitset)
        if leave is not None:
            return leave
        # a spurious wake-up (the pause is over): wait again if the word still holds the value


FUTEX_WAITERS, FUTEX_OWNER_DIED, FUTEX_TID_MASK = 0x80000000, 0x40000000, 0x3FFFFFFF
ROBUST_LIST_LIMIT = 2048


def exit_robust_list(thread: VcpuThread) -> None:
    """At a thread's exit, mark the robust mutexes it still holds FUTEX_OWNER_DIED and wake one waiter of each
    (kernel/futex/core.c exit_robust_list): glibc leaves this to the kernel, so without it a waiter blocks forever.

    struct robust_list_head { robust_list *list; long futex_offset; robust_list *list_op_pending; }; each entry's
    `next` comes first, bit 0 of a pointer flags a PI futex. The owner is gone, so the only concurrent writers
    are lockers setting FUTEX_WAITERS; the update is made under the futex table lock, and a locker that raced
    sees a changed word (EAGAIN) and looks again."""
    head = thread.robust_list
    if not head:
        return
    mem, table = thread.mem, thread.proc.futexes
    try:
        entry, offset, pending = struct.unpack("<QqQ", mem.read(head, 24))
        seen = 0
        while entry != head and seen < ROBUST_LIST_LIMIT:
            next_entry = struct.unpack("<Q", mem.read(entry & ~1, 8))[0]
            if entry != pending:
                _owner_died(thread, table, (entry & ~1) + offset)
            entry, seen = next_entry, seen + 1
        if pending:
            _owner_died(thread, table, (pending & ~1) + offset)
    except GuestFault:
        pass                      # a corrupt list ends the walk, as in Linux


def _owner_died(thread: VcpuThread, table: FutexTable, addr: int) -> None:
    with table.lock:
        while True:
            value = _load(thread, addr)
            if value & FUTEX_TID_MASK != thread.tid:
                return
            if cas32(thread.mem, addr, value, (value & FUTEX_WAITERS) | FUTEX_OWNER_DIED) == value:
                break
    if value & FUTEX_WAITERS:
        table.wake(addr, 1)


def _wake_op(ctx: VcpuThread, addr: int, count: int, addr2: int, count2: int, op: int) -> int:
    """FUTEX_WAKE_OP: *addr2 = op(*addr2, oparg); wake addr; wake addr2 if cmp(old, cmparg)."""
    kind, cmp, oparg, cmparg = (op >> 28) & 7, (op >> 24) & 15, (op >> 12) & 0xFFF, op & 0xFFF
    if (op >> 28) & 8:
        oparg = 1 << oparg
    table = ctx.proc.futexes
    with table.lock:
        while True:                          # atomically, as futex_atomic_op_inuser: guest threads run
            old = _load(ctx, addr2)
            new = {0: oparg, 1: old + oparg, 2: old | oparg, 3: old & ~oparg, 4: old ^ oparg}.get(kind)
            if new is None:
                return -errno.ENOSYS
            if cas32(ctx.mem, addr2, old, new) == old:
                break
    woken = table.wake(addr, count)
    if {0: old == cmparg, 1: old != cmparg, 2: old < cmparg, 3: old <= cmparg, 4: old > cmparg,
            5: old >= cmparg}.get(cmp, False):
        woken += table.wake(addr2, count2)
    return woken


# ---- priority-inheritance futexes (kernel/futex/pi.c), without the priority boosting ---------------------------
# The word holds the owner's tid | FUTEX_WAITERS | FUTEX_OWNER_DIED; the C library takes and drops an
# uncontended lock itself and asks km only when the word says there are (or will be) waiters.
def lock_pi(ctx: VcpuThread, addr: int, deadline: float | None, try_only: bool) -> int:
    table = ctx.proc.futexes
    while True:
        waiter = Waiter(addr, BITSET_MATCH_ANY, ctx.tid)
        ctx.blocked_on = waiter            # published first: see wait()
        try:
            with table.lock:
                value = _load(ctx, addr)
                owner = value & FUTEX_TID_MASK
                if owner == ctx.tid:
                    return -errno.EDEADLK
                if owner == 0:             # free (perhaps after its owner died): take it, keep the flags
                    waiters = FUTEX_WAITERS if table.queues.get(addr) else 0
                    if cas32(ctx.mem, addr, value, ctx.tid | (value & FUTEX_OWNER_DIED) | waiters) != value:
                        continue           # the word changed under us (a guest thread took the lock)
                    return 0
                if try_only:
                    return -errno.EAGAIN
                if owner not in ctx.proc.threads:
                    return -errno.ESRCH
                # the owner may unlock in user space (cmpxchg tid -> 0) at any moment: flag waiters atomically
                if not value & FUTEX_WAITERS and cas32(ctx.mem, addr, value, value | FUTEX_WAITERS) != value:
                    continue
                table.queues.setdefault(addr, []).append(waiter)
            if not (ctx.exit_requested or ctx.pause_requested or ctx.freezing or ctx.proc.pending_signals_for(ctx)):
                waiter.event.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        finally:
            ctx.blocked_on = None
        table.cancel(waiter)
        if waiter.handed:
            return 0
        if waiter.woken:
            continue                       # woken by an owner's death (robust list): try to take it again
        if deadline is not None and time.monotonic() >= deadline:
            return -errno.ETIMEDOUT
        leave = interruption(ctx, ERESTARTNOINTR)     # restarted after the handler, SA_RESTART or not
        if leave is not None:
            return leave


def unlock_pi(ctx: VcpuThread, addr: int) -> int:
    """Hand the lock to the first waiter (the word becomes its tid, | FUTEX_WAITERS if more wait), or free it.
    The word is replaced atomically; a lost race (a guest thread set a bit meanwhile) is retried."""
    table = ctx.proc.futexes
    with table.lock:
        while True:
            value = _load(ctx, addr)
            if value & FUTEX_TID_MASK != ctx.tid:
                return -errno.EPERM
            queue = table.queues.get(addr, [])
            new = queue[0].tid | (FUTEX_WAITERS if len(queue) > 1 else 0) if queue else 0
            if cas32(ctx.mem, addr, value, new) == value:
                break
        if queue:
            waiter = queue.pop(0)
            if not queue:
                table.queues.pop(addr, None)
            waiter.woken = waiter.handed = True
            waiter.event.set()
    return 0


def _deadline_pi(ctx: VcpuThread, cmd: int, op: int, timeout: int) -> float | None:
    """FUTEX_LOCK_PI's timeout is absolute CLOCK_REALTIME; LOCK_PI2's is CLOCK_MONOTONIC unless asked."""
    return _deadline(ctx, timeout, True, cmd == FUTEX_LOCK_PI or bool(op & FUTEX_CLOCK_REALTIME))


def _host_shared_word(ctx: VcpuThread, addr: int, op: int) -> int | None:
    """The host address of a process-shared futex word in a MAP_SHARED mapping, else None (km's table serves)."""
    if op & FUTEX_PRIVATE_FLAG:
        return None
    vma = ctx.mem.find(addr)
    if vma is None or not vma.shared or vma.gpa is None:
        return None
    return ctx.mem.host_addr(addr, 4, write=False)


@syscall("futex")
def sys_futex(ctx: VcpuThread, addr: int, op: int, val: int, timeout: int, addr2: int, val3: int) -> int:
    cmd = op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
    table = ctx.proc.futexes
    if addr % 4:
        return -errno.EINVAL
    val &= 0xFFFFFFFF
    if cmd in (FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_WAKE, FUTEX_WAKE_BITSET):
        word = _host_shared_word(ctx, addr, op)
        if word is not None:
            if cmd in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
                return host_syscall(NR["futex"], word, op, val, 0, 0, val3)
            return blocking_host_syscall(ctx, NR["futex"], word, op, val, buf_in(ctx, timeout, 16) if timeout else 0,
                                         0, val3)
    if cmd == FUTEX_WAIT:
        return wait(ctx, addr, val, _deadline(ctx, timeout, False, False), BITSET_MATCH_ANY)
    if cmd == FUTEX_WAIT_BITSET:
        if val3 & 0xFFFFFFFF == 0:
            return -errno.EINVAL
        return wait(ctx, addr, val, _deadline(ctx, timeout, True, bool(op & FUTEX_CLOCK_REALTIME)), val3)
    if cmd == FUTEX_WAKE:
        return table.wake(addr, val)
    if cmd == FUTEX_WAKE_BITSET:
        return table.wake(addr, val, val3 & 0xFFFFFFFF)
    if cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE):
        if cmd == FUTEX_CMP_REQUEUE and _load(ctx, addr) != val3 & 0xFFFFFFFF:
            return -errno.EAGAIN
        return table.requeue(addr, val, addr2, timeout & 0x7FFFFFFF)
    if cmd == FUTEX_WAKE_OP:
        return _wake_op(ctx, addr, val, addr2, timeout & 0x7FFFFFFF, val3)
    if cmd in (FUTEX_LOCK_PI, FUTEX_LOCK_PI2):
        return lock_pi(ctx, addr, _deadline_pi(ctx, cmd, op, timeout), False)
    if cmd == FUTEX_TRYLOCK_PI:
        return lock_pi(ctx, addr, None, True)
    if cmd == FUTEX_UNLOCK_PI:
        return unlock_pi(ctx, addr)
    return -errno.ENOSYS
