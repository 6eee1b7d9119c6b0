"""Timers that end in a signal: alarm, setitimer/getitimer (ITIMER_REAL on the wall clock; ITIMER_VIRTUAL and
ITIMER_PROF on the process's CPU time, which is km's: the guest's own plus km serving it, as a kernel counts a
process's system time), and POSIX timers (timer_create..., including CPU-time clocks measured on the vCPU threads,
which Go's profiler needs)."""
from __future__ import annotations

import errno
import struct
from signal import SIGALRM, SIGPROF, SIGVTALRM
import threading
import time
from typing import TYPE_CHECKING

from kdbg.arch.linux import SI_KERNEL, is_timer_siginfo, make_siginfo, make_timer_siginfo

from ..signals.delivery import NSIG
from .dispatch import s32, syscall

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread
    from ..process.payload import Process


class _Timer:
    """One armed clock: ITIMER_REAL/alarm, or a POSIX timer (timer_create)."""

    def __init__(self, fire, clock_id: int = 1, cpu_clock: int | None = None) -> None:
        self.fire, self.deadline, self.interval = fire, 0.0, 0.0    # deadline: time.monotonic(); 0 disarmed
        self.clock_id = clock_id                                      # for TIMER_ABSTIME
        self.cpu_clock, self.cpu_deadline = cpu_clock, 0.0            # a host CPU-time clock, when it runs on one
        self.overrun = self.last_overrun = 0

    def remaining(self) -> float:
        if not self.deadline:
            return 0.0
        if self.cpu_clock is not None:
            return max(0.0, self.cpu_deadline - self._cpu_now())
        return max(0.0, self.deadline - time.monotonic())

    def _cpu_now(self) -> float:
        assert self.cpu_clock is not None, "a CPU-time timer"
        try:
            return time.clock_gettime(self.cpu_clock)
        except OSError:               # its thread is gone: the clock stands still
            return self.cpu_deadline - 1.0

    def arm(self, value: float, interval: float) -> None:
        self.interval = interval
        if value <= 0:
            self.deadline = 0.0
        elif self.cpu_clock is None:
            self.deadline = time.monotonic() + value
        else:
            self.cpu_deadline = self._cpu_now() + value
            self.deadline = time.monotonic() + min(value, CPU_POLL_S)

    def expire(self, now: float) -> bool:
        """At a wall deadline: rearm or disarm; False when a CPU clock has not reached its deadline yet (then
        looked at again when it could at the earliest, polling at most every CPU_POLL_S for a process clock)."""
        if self.cpu_clock is not None:
            left = self.cpu_deadline - self._cpu_now()
            if left > 0:
                self.deadline = now + min(left, CPU_POLL_S)
                return False
            if self.interval:
                missed = int(-left // self.interval)
                self.overrun += missed
                self.cpu_deadline += (missed + 1) * self.interval
                self.deadline = now + min(self.interval, CPU_POLL_S)
            else:
                self.deadline = 0.0
            return True
        if self.interval:
            missed = int((now - self.deadline) // self.interval)
            self.overrun += missed
            self.deadline += (missed + 1) * self.interval
        else:
            self.deadline = 0.0
        return True


class ProcessClock:
    """The process's timers (built with the Process, new in a forked child: Linux's child inherits none), served
    by one host thread that sleeps until the earliest deadline; the thread starts when a timer is first armed, so
    a payload that never arms one costs no thread."""

    def __init__(self, proc: Process) -> None:
        self.proc = proc
        def sender(signo: int):
            return lambda timer: proc.signals.send(signo, make_siginfo(signo, SI_KERNEL))
        self.timers: dict[object, _Timer] = {      # ITIMERS' names (setitimer) or a POSIX timer id
            "real": _Timer(sender(SIGALRM)),
            "virtual": _Timer(sender(SIGVTALRM), cpu_clock=time.CLOCK_PROCESS_CPUTIME_ID),
            "prof": _Timer(sender(SIGPROF), cpu_clock=time.CLOCK_PROCESS_CPUTIME_ID)}
        self.cond = threading.Condition()
        self._serving = False

    def set(self, key, value: float, interval: float) -> tuple[float, float]:
        """Arm (value > 0) or disarm a timer; returns its old (remaining, interval)."""
        with self.cond:
            timer = self.timers[key]
            old = (timer.remaining(), timer.interval)
            timer.arm(value, interval)
            if value > 0 and not self._serving:
                self._serving = True
                threading.Thread(target=self._run, daemon=True, name="itimer").start()
            self.cond.notify()
        return old

    def forget_posix_timers(self) -> None:
        """execve deletes the POSIX timers (timer_create); alarm and the itimers go on (fs/exec.c)."""
        with self.cond:
            for key in [k for k in self.timers if isinstance(k, int)]:
                del self.timers[key]
            self.cond.notify()

    def _run(self) -> None:
        with self.cond:
            while True:
                armed = [t for t in self.timers.values() if t.deadline]
                now = time.monotonic()
                due = [t for t in armed if t.deadline <= now]
                if not due:
                    self.cond.wait(min(min(t.deadline for t in armed) - now, threading.TIMEOUT_MAX)
                                   if armed else None)
                    continue
                for timer in due:
                    if timer.expire(now):
                        timer.fire(timer)


def _timeval_pair(interval: float, value: float) -> bytes:
    return struct.pack("<qqqq", int(interval), round(interval % 1 * 1e6), int(value), round(value % 1 * 1e6))


@syscall("alarm")
def sys_alarm(ctx: VcpuThread, seconds: int) -> int:
    old, _ = ctx.proc.clock.set("real", float(seconds & 0xFFFFFFFF), 0.0)     # unsigned int, as Linux
    return int(old + 0.999999) if old else 0


ITIMERS = {0: "real", 1: "virtual", 2: "prof"}     # ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF


@syscall("setitimer")
def sys_setitimer(ctx: VcpuThread, which: int, new: int, old: int) -> int:
    """A NULL new value disarms, as Linux does."""
    if which not in ITIMERS:
        return -errno.EINVAL
    i_sec, i_usec, v_sec, v_usec = struct.unpack("<qqqq", ctx.mem.read(new, 32)) if new else (0, 0, 0, 0)
    if not (0 <= i_usec < 1_000_000 and 0 <= v_usec < 1_000_000):
        return -errno.EINVAL
    old_value, old_interval = ctx.proc.clock.set(ITIMERS[which], v_sec + v_usec / 1e6, i_sec + i_usec / 1e6)
    if old:
        ctx.mem.write(old, _timeval_pair(old_interval, old_value))
    return 0


@syscall("getitimer")
def sys_getitimer(ctx: VcpuThread, which: int, cur: int) -> int:
    if which not in ITIMERS:
        return -errno.EINVAL
    timer = ctx.proc.clock.timers[ITIMERS[which]]
    ctx.mem.write(cur, _timeval_pair(timer.interval, timer.remaining()))
    return 0


# ---- POSIX timers (kernel/time/posix-timers.c) --------------------------------------------------------------
SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID = 0, 1, 4
TIMER_ABSTIME = 1
CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_TAI = 0, 1, 7, 11
WALL_CLOCKS = {CLOCK_REALTIME: time.CLOCK_REALTIME, CLOCK_MONOTONIC: time.CLOCK_MONOTONIC,
               CLOCK_BOOTTIME: time.CLOCK_BOOTTIME, CLOCK_TAI: time.CLOCK_TAI, 8: time.CLOCK_REALTIME,
               9: time.CLOCK_BOOTTIME}
CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID = 2, 3
CPU_POLL_S = 0.01


def _cpu_clock(ctx: VcpuThread, clock_id: int) -> int | None:
    """The host clock measuring a guest CPU-time clock: a guest thread's is its vCPU thread's (guest time in
    KVM_RUN plus km serving its calls), the process's is km's. Negative ids are Linux's per-pid/tid encoding
    (~id << 3 | per-thread 4 | CPUCLOCK_PROF 0 / VIRT 1 / SCHED 2), as Go's profiler builds them. None: invalid."""
    if clock_id == CLOCK_PROCESS_CPUTIME_ID:
        return time.CLOCK_PROCESS_CPUTIME_ID
    if clock_id == CLOCK_THREAD_CPUTIME_ID:
        return _thread_cpu_clock(ctx)
    if clock_id >= 0 or clock_id & 3 == 3:
        return None
    who = ~(clock_id >> 3)
    if clock_id & 4:
        return _thread_cpu_clock(ctx.proc.threads.get(who) if who else ctx)
    return time.CLOCK_PROCESS_CPUTIME_ID if who in (0, ctx.proc.pid) else None


def _thread_cpu_clock(thread: VcpuThread | None) -> int | None:
    host = thread.thread if thread is not None else None
    try:
        return time.pthread_getcpuclockid(host.ident) if host is not None and host.ident else None
    except OSError:
        return None


def _fire_posix(proc: Process, timer_id: int, signo: int, value: int, target_tid: int | None):
    def fire(timer: _Timer) -> None:
        state = proc.signals
        target = proc.threads.get(target_tid) if target_tid is not None else None
        with state.lock:
            queue = state.of(target).pending if target is not None else state.shared_pending
            if any(p.signo == signo and is_timer_siginfo(p.info, timer_id) for p in queue):
                timer.overrun += 1          # still pending: Linux counts an overrun instead of queueing again
                return
            timer.last_overrun, timer.overrun = timer.overrun, 0
        proc.signals.send(signo, make_timer_siginfo(signo, timer_id, timer.last_overrun, value), target)
    return fire


@syscall("timer_create")
def sys_timer_create(ctx: VcpuThread, clock_id: int, sevp: int, timer_id_p: int) -> int:
    """struct sigevent: sigval (8), int sigev_signo, int sigev_notify, int sigev_notify_thread_id."""
    clock_id = s32(clock_id)
    cpu_clock = None
    if clock_id not in WALL_CLOCKS:
        cpu_clock = _cpu_clock(ctx, clock_id)
        if cpu_clock is None:
            return -errno.EINVAL
    clock = ctx.proc.clock
    if sevp:
        value, signo, notify, tid = struct.unpack("<Qiii", ctx.mem.read(sevp, 20))
    else:
        value, signo, notify, tid = None, SIGALRM, SIGEV_SIGNAL, 0
    target_tid = None
    if notify == SIGEV_THREAD_ID:
        if s32(tid) not in ctx.proc.threads:
            return -errno.EINVAL
        target_tid = s32(tid)
    elif notify not in (SIGEV_SIGNAL, SIGEV_NONE):
        return -errno.EINVAL
    if notify != SIGEV_NONE and not 1 <= signo <= NSIG:
        return -errno.EINVAL
    with clock.cond:                  # the id is chosen and taken at once: threads create timers concurrently
        timer_id = next(i for i in range(len(clock.timers) + 1) if i not in clock.timers)
        fire = (_fire_posix(ctx.proc, timer_id, signo, timer_id if value is None else value, target_tid)
                if notify != SIGEV_NONE else (lambda t: None))
        clock.timers[timer_id] = _Timer(fire, clock_id, cpu_clock)
    try:
        ctx.mem.write(timer_id_p, struct.pack("<i", timer_id))
    except Exception:
        with clock.cond:
            clock.timers.pop(timer_id, None)
        raise
    return 0


def _posix_timer(ctx: VcpuThread, timer_id: int) -> _Timer | None:
    timer_id = s32(timer_id)
    return ctx.proc.clock.timers.get(timer_id) if timer_id >= 0 else None


def _timespec_pair(interval: float, value: float) -> bytes:
    return struct.pack("<qqqq", int(interval), round(interval % 1 * 1e9), int(value), round(value % 1 * 1e9))


@syscall("timer_settime")
def sys_timer_settime(ctx: VcpuThread, timer_id: int, flags: int, new: int, old: int) -> int:
    timer = _posix_timer(ctx, timer_id)
    if timer is None:
        return -errno.EINVAL
    i_sec, i_nsec, v_sec, v_nsec = struct.unpack("<qqqq", ctx.mem.read(new, 32))
    if not (0 <= i_nsec < 1_000_000_000 and 0 <= v_nsec < 1_000_000_000) or i_sec < 0 or v_sec < 0:
        return -errno.EINVAL
    value, interval = v_sec + v_nsec / 1e9, i_sec + i_nsec / 1e9
    if flags & TIMER_ABSTIME and value:
        host_clock = timer.cpu_clock if timer.cpu_clock is not None else WALL_CLOCKS[timer.clock_id]
        value = max(1e-9, value - time.clock_gettime(host_clock))      # already past: fires at once
    old_value, old_interval = ctx.proc.clock.set(s32(timer_id), value, interval)
    if old:
        ctx.mem.write(old, _timespec_pair(old_interval, old_value))
    return 0


@syscall("timer_gettime")
def sys_timer_gettime(ctx: VcpuThread, timer_id: int, cur: int) -> int:
    timer = _posix_timer(ctx, timer_id)
    if timer is None:
        return -errno.EINVAL
    ctx.mem.write(cur, _timespec_pair(timer.interval, timer.remaining()))
    return 0


@syscall("timer_getoverrun")
def sys_timer_getoverrun(ctx: VcpuThread, timer_id: int) -> int:
    timer = _posix_timer(ctx, timer_id)
    return -errno.EINVAL if timer is None else min(timer.last_overrun, 0x7FFFFFFF)


@syscall("timer_delete")
def sys_timer_delete(ctx: VcpuThread, timer_id: int) -> int:
    clock = ctx.proc.clock
    with clock.cond:
        if s32(timer_id) < 0 or clock.timers.pop(s32(timer_id), None) is None:
            return -errno.EINVAL
        clock.cond.notify()
    return 0
