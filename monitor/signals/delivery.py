"""Guest signals: dispositions, masks, pending sets, sending, and delivery with the restart of the syscall a
signal cut short (the frame itself is laid out by frame.py).

Linux semantics (kernel/signal.c): a synchronous fault goes to the faulting thread; SIG_DFL of a fatal signal
ends the process (with a core for the core-dumping ones); a handler runs on a Linux rt_sigframe.

Syscall restart, the kernel's way (include/linux/errno.h, arch/x86/kernel/signal.c): a handler whose call is
cut short returns -ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND or -ERESTART_RESTARTBLOCK, never -EINTR
itself; on the way back to the guest, deliver() (arch_do_signal_or_restart) turns that code into -EINTR or a
restart (RIP back on the `syscall` instruction, RAX the call's number again) according to whether a handler
runs and its SA_RESTART. With no handler to run (the debugger took the signal, a snapshot froze the thread)
every code restarts the call, ERESTART_RESTARTBLOCK through restart_syscall(2) and the thread's restart_block.
"""
from __future__ import annotations

import errno
import os
import signal as host_signal
import threading
import time
from kdbg.tracelog import logger
from ..record import Record
from typing import TYPE_CHECKING, Callable

from kdbg.arch.linux import MASK64
from kdbg.arch.x86_64 import KVM_REGS

from ..errors import GuestFault
from ..host_fds import made_high
from ..kvm.abi import ffi, libc
from .altstack import SS_DISABLE
from .frame import build_frame, fault_siginfo, restore_frame
from ..syscalls.args import addr_of
from ..syscalls.dispatch import s64
from ..syscalls.numbers import NUMBERS

if TYPE_CHECKING:
    from ..process.payload import Process
    from ..syscalls.signalfd import SignalFds
    from ..vcpu.loop import VcpuThread

log = logger("km.signal")
SIG_DFL, SIG_IGN = 0, 1
NSIG = 64
IGNORED_BY_DEFAULT = frozenset({host_signal.SIGCHLD, host_signal.SIGURG, host_signal.SIGWINCH, host_signal.SIGCONT})
UNBLOCKABLE = (1 << (host_signal.SIGKILL - 1)) | (1 << (host_signal.SIGSTOP - 1))
STOP_BY_DEFAULT = frozenset({host_signal.SIGSTOP, host_signal.SIGTSTP, host_signal.SIGTTIN, host_signal.SIGTTOU})
SIGRTMIN = 32
SA_ONSTACK, SA_RESTART, SA_NODEFER, SA_RESETHAND = 0x08000000, 0x10000000, 0x40000000, 0x80000000
# include/linux/errno.h: what a syscall cut short returns; never seen by the guest
ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK = 512, 513, 514, 516
RESTART_CODES = range(-ERESTART_RESTARTBLOCK, -ERESTARTSYS + 1)    # a result in here goes through deliver()
RAX, RIP = KVM_REGS.index("rax"), KVM_REGS.index("rip")
NR_RESTART_SYSCALL = NUMBERS["restart_syscall"]
NO_SYSCALL = -1         # orig_rax outside a call (an exception, an interrupt, after rt_sigreturn)
RestartBlock = Callable[["VcpuThread"], int]      # restart_syscall's continuation of an interrupted call
TFD_TIMER_ABSTIME = 1      # linux/timerfd.h (os has it from Python 3.13; TFD_CLOEXEC is O_CLOEXEC)


# Signals sent to km that its main thread passes on to the payload (cli.forward_host_signals). km's vCPU threads
# block them but SIGPIPE (raised by km's own writes on the writing thread), so the kernel hands them to the main
# thread and cuts its wait short: one taken by a vCPU thread waited up to a second for the main thread to run
# Python's handler (a child's SIGCHLD reached the payload late).
FORWARDED_FROM_HOST = (host_signal.SIGINT, host_signal.SIGTERM, host_signal.SIGHUP, host_signal.SIGQUIT,
                       host_signal.SIGUSR1, host_signal.SIGUSR2, host_signal.SIGWINCH, host_signal.SIGCHLD,
                       host_signal.SIGPIPE, host_signal.SIGALRM)
MAIN_THREAD_ONLY = frozenset(FORWARDED_FROM_HOST) - {host_signal.SIGPIPE}


SYNCHRONOUS = frozenset({host_signal.SIGSEGV, host_signal.SIGBUS, host_signal.SIGILL, host_signal.SIGTRAP,
                         host_signal.SIGFPE, host_signal.SIGSYS})


def next_index(queue: list[PendingSignal], may_take: Callable[[PendingSignal], object]) -> int | None:
    """Which queued signal goes first (kernel/signal.c next_signal): a synchronous one, else the lowest number;
    FIFO among equals (queued real-time signals keep their order)."""
    best = None
    for i, pending in enumerate(queue):
        if may_take(pending):
            key = (pending.signo not in SYNCHRONOUS, pending.signo)
            if best is None or key < best[0]:
                best = (key, i)
    return None if best is None else best[1]


class SigAction(Record):
    def __init__(self, handler: int = SIG_DFL, flags: int = 0, restorer: int = 0, mask: int = 0) -> None:
        self.handler = handler
        self.flags = flags
        self.restorer = restorer
        self.mask = mask


class PendingSignal(Record):
    def __init__(self, signo: int, info: bytes, chosen_tid: int | None = None,
                 seen_by_debugger: bool = False) -> None:
        self.signo = signo
        self.info = info                    # 128-byte siginfo_t
        self.chosen_tid = chosen_tid        # process-directed: the thread woken for it (complete_signal)
        self.seen_by_debugger = seen_by_debugger    # reported to gdb once; not again when gdb hands it back


class ThreadSignals(Record):
    def __init__(self, mask: int = 0, pending: list[PendingSignal] | None = None,
                 altstack: tuple[int, int, int] = (0, 2, 0), last_info: bytes = b"",
                 mask_to_restore: int | None = None) -> None:
        self.mask = mask
        self.pending: list[PendingSignal] = [] if pending is None else pending
        self.altstack = altstack            # ss_sp, ss_flags (SS_DISABLE), ss_size
        self.last_info = last_info
        self.mask_to_restore = mask_to_restore  # rt_sigsuspend: the mask the handler's sigreturn brings back


class Rekicker:
    """Kicks a thread again while a signal it can take stays pending.

    A kick interrupts a blocking host call only if the thread is already in it: one that lands between the
    handler's check for signals and the call itself (read, nanosleep, poll...) is absorbed by Python's C-level
    handler, and the call blocks with a signal pending. Linux closes that window by testing signal_pending
    after the task is marked interruptible; km re-kicks instead, after 2 ms and then backing off to 100 ms,
    until the thread takes the signal (or exits, or the debugger parks it).

    It sleeps on a timerfd armed for the earliest kick due, not in a timed wait: a thread that has taken its
    signals stops being watched (`taken`, from deliver) and the timer is disarmed when none is left, so a kick
    that was not lost (nearly every one: a SIGCHLD reaching a shell's wait4) costs two timerfd_settime calls and
    no wake-up of this thread; it wakes only when a signal is still pending at the due time."""
    DELAYS_S = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1)

    def __init__(self, state: SignalState) -> None:
        self.state = state
        self.lock = threading.Lock()
        self.watched: dict[int, tuple[VcpuThread, float, int]] = {}    # tid -> (thread, next kick, kicks so far)
        self.wakes = 0                  # the timer's expiries this thread woke for (tests/unit/test_rekicker.py)
        self._due = 0.0                 # when the timer expires (time.monotonic's clock), 0.0 while disarmed
        self._spec = ffi.new("int64_t[4]")                  # struct itimerspec: it_interval (0, 0), it_value
        self._spec_address = addr_of(self._spec)
        self.timer = made_high(_timerfd)
        threading.Thread(target=self._run, name="signal-rekick", daemon=True).start()

    def watch(self, thread: VcpuThread) -> None:
        with self.lock:
            if thread.tid not in self.watched:
                due = time.monotonic() + self.DELAYS_S[0]
                self.watched[thread.tid] = (thread, due, 0)
                if not self._due or due < self._due:
                    self._arm(due)

    def taken(self, thread: VcpuThread) -> None:
        """The thread has taken every signal it can take: no kick of it needs repeating. Checked again under the
        lock, as a signal is queued before its kick watches the thread: one sent since keeps it watched."""
        if thread.tid not in self.watched:      # (unlocked: only this method and _run drop a thread)
            return
        with self.lock:
            if thread.tid in self.watched and not self.state.has_pending(thread):
                del self.watched[thread.tid]
                if not self.watched:
                    self._arm(0.0)

    def _arm(self, due: float) -> None:
        """Under the lock: the timer set to expire at `due`, or disarmed for 0.0."""
        self._due = due
        self._spec[2], self._spec[3] = int(due), int(due % 1 * 1e9)
        libc.syscall(NUMBERS["timerfd_settime"], self.timer, TFD_TIMER_ABSTIME, self._spec_address, 0, 0, 0)

    def _run(self) -> None:
        while True:
            os.read(self.timer, 8)      # until the timer expires
            with self.lock:
                self.wakes += 1
                self._due = 0.0
                now = time.monotonic()
                for tid, (thread, due, kicks) in list(self.watched.items()):
                    if due > now:
                        continue
                    if thread.exit_requested or thread.pause_requested or not self.state.has_pending(thread):
                        del self.watched[tid]
                        continue
                    log.debug("signal still pending for %d: kick again", tid)
                    thread.kick()
                    delay = self.DELAYS_S[min(kicks + 1, len(self.DELAYS_S) - 1)]
                    self.watched[tid] = (thread, now + delay, kicks + 1)
                if self.watched:
                    self._arm(min(due for _, due, _ in self.watched.values()))


def _timerfd() -> int:
    """A CLOCK_MONOTONIC timerfd (time.monotonic's clock), close-on-exec."""
    fd = libc.syscall(NUMBERS["timerfd_create"], time.CLOCK_MONOTONIC, os.O_CLOEXEC, 0, 0, 0, 0)
    if fd < 0:
        raise OSError(ffi.errno, "timerfd_create")
    return fd


class SignalState:
    """The process's signal dispositions and process-directed queue, and each thread's mask and queue."""

    def __init__(self, proc: Process, actions: list[SigAction] | None = None) -> None:
        """`actions`: the dispositions a forked child inherits (its parent's list), else all default."""
        self.proc = proc
        self.actions = actions if actions is not None else [SigAction() for _ in range(NSIG + 1)]
        self.per_thread: dict[int, ThreadSignals] = {}
        self.shared_pending: list[PendingSignal] = []
        self.lock = threading.RLock()
        self._rekicker: Rekicker | None = None
        self.signalfds: SignalFds | None = None     # made by the first signalfd(2)

    def dequeue(self, thread: VcpuThread, may_take: Callable[[PendingSignal], object]) -> PendingSignal | None:
        """kernel/signal.c dequeue_signal: the first pending signal `may_take` accepts, from the thread's own
        queue, then the process's; taken out, with the signalfds' readiness following."""
        with self.lock:
            for queue in (self.of(thread).pending, self.shared_pending):
                i = next_index(queue, may_take)
                if i is not None:
                    taken = queue.pop(i)
                    self.refresh_signalfds()
                    return taken
        return None

    def refresh_signalfds(self) -> None:
        """After a queue changed (under self.lock): each signalfd readable exactly while it has a signal."""
        if self.signalfds is not None:
            self.signalfds.refresh(self)

    def inherit_across_exec(self, main: VcpuThread, ignored: int, mask: int) -> None:
        """What execve keeps (fs/exec.c flush_signal_handlers): the ignored signals stay ignored (caught ones go
        back to SIG_DFL, as they already are here), and the new program's thread has the old one's mask."""
        for signo in range(1, NSIG + 1):
            if ignored >> (signo - 1) & 1 and not UNBLOCKABLE >> (signo - 1) & 1:
                self.actions[signo].handler = SIG_IGN
        self.of(main).mask = mask & ~UNBLOCKABLE

    def flush_for_exec(self, thread: VcpuThread) -> None:
        """execve in this km (fs/exec.c flush_signal_handlers): every caught signal back to SIG_DFL with no flags or
        mask, the ignored ones stay ignored; the thread's mask and pending signals stay, its alternate stack goes."""
        with self.lock:
            for action in self.actions[1:]:
                ignored = action.handler == SIG_IGN
                action.handler, action.flags, action.restorer, action.mask = SIG_IGN if ignored else SIG_DFL, 0, 0, 0
            own = self.of(thread)
            own.altstack, own.mask_to_restore = (0, SS_DISABLE, 0), None

    def after_fork(self) -> None:
        """In a forked child, whose process state is made anew: the parent's rekicker has no thread here."""
        if self._rekicker is not None:
            os.close(self._rekicker.timer)
            self._rekicker = None

    def kick(self, thread: VcpuThread) -> None:
        """Wake a thread for a signal now, and again later if it has not taken it (see Rekicker)."""
        thread.kick()
        if self._rekicker is None:
            with self.lock:
                if self._rekicker is None:
                    self._rekicker = Rekicker(self)
        self._rekicker.watch(thread)

    def of(self, thread: VcpuThread) -> ThreadSignals:
        state = self.per_thread.get(thread.tid)
        if state is None:        # setdefault is atomic: a sender and the thread itself may get here together
            state = self.per_thread.setdefault(thread.tid, ThreadSignals())
        return state

    def has_pending(self, thread: VcpuThread) -> bool:
        """A signal this thread can take now: a blocked one stays pending and must not cut a wait short."""
        state = self.per_thread.get(thread.tid)
        if state is None:
            state = self.of(thread)
        if not state.pending and not self.shared_pending:
            return False
        return any(self.may_take(thread, state, p) for queue in (state.pending, self.shared_pending) for p in queue)

    def may_take(self, thread: VcpuThread, own: ThreadSignals, pending: PendingSignal) -> bool:
        """Unblocked, and (for a process-directed signal) this thread was chosen for it, or the chosen one can no
        longer take it: so the thread Linux wakes runs the handler, not whichever thread passes by first."""
        bit = 1 << (pending.signo - 1)
        if own.mask & bit & ~UNBLOCKABLE:
            return False
        chosen = pending.chosen_tid
        if chosen is None or chosen == thread.tid:
            return True
        other = self.proc.threads.get(chosen)
        other_state = self.per_thread.get(chosen)
        return other is None or other.exit_requested or other_state is None or bool(other_state.mask & bit)

    def is_ignored(self, signo: int) -> bool:
        """SIG_IGN, or SIG_DFL of a signal whose default does nothing here (km has no job control, so the stop
        signals count as ignored: natively a stop and continue restarts a blocked call unseen)."""
        handler = self.actions[signo].handler
        return handler == SIG_IGN or (handler == SIG_DFL and (signo in IGNORED_BY_DEFAULT or signo in STOP_BY_DEFAULT))

    def discard(self, signo: int) -> None:
        """Setting SIG_IGN drops the pending instances (POSIX 3.3.1.3, Linux do_sigaction)."""
        with self.lock:
            for queue in [self.shared_pending] + [own.pending for own in self.per_thread.values()]:
                queue[:] = [p for p in queue if p.signo != signo]
            self.refresh_signalfds()

    def choose_thread(self, signo: int) -> VcpuThread | None:
        """The thread to wake for a process-directed signal: the main thread if it does not block it, else the
        first that does not (or waits for it in sigtimedwait); None when every thread blocks it."""
        bit = 1 << (signo - 1)
        for thread in self.proc.live_threads():
            if thread.exit_requested:
                continue
            if not self.of(thread).mask & bit or thread.sigwait_set & bit:
                return thread
        return None

    # ---- sending ------------------------------------------------------------------------------------------
    def send(self, signo: int, info: bytes, target: VcpuThread | None = None) -> None:
        """Queue a signal for a thread (target) or the process, and kick a thread that can take it
        (kernel/signal.c send_signal_locked + complete_signal)."""
        with self.lock:
            if self.is_ignored(signo) and self._drops_ignored(target, signo):
                return
            queue = self.of(target).pending if target is not None else self.shared_pending
            if signo < SIGRTMIN and any(p.signo == signo for p in queue):
                return                  # a standard signal is pending at most once per queue (legacy_queue)
            if target is not None:
                queue.append(PendingSignal(signo, info))
            else:
                target = self.choose_thread(signo)
                queue.append(PendingSignal(signo, info, target.tid if target is not None else None))
            self.refresh_signalfds()
        if target is not None:
            self.kick(target)

    def _drops_ignored(self, target: VcpuThread | None, signo: int) -> bool:
        """Linux's sig_ignored: an ignored signal is not even queued (so it cuts no call short), unless the
        receiver (the thread, or the main thread for the process) blocks it, may wait for it, or a debugger
        watches it."""
        receiver = target if target is not None else self.proc.threads.get(self.proc.pid)
        if receiver is None:
            return True
        bit = 1 << (signo - 1)
        return not (self.of(receiver).mask & bit or receiver.sigwait_set & bit
                    or self.proc.debug.watches_signals)

    def raise_fault(self, thread: VcpuThread, signo: int, vector: int, error_code: int, addr: int) -> None:
        """A synchronous fault: Linux forces it (unblocks it, resets SIG_IGN to SIG_DFL)."""
        is_mapped = vector == 14 and self.proc.mem.find(addr) is not None
        self.force(thread, signo, fault_siginfo(signo, vector, error_code, addr, is_mapped))

    def force(self, thread: VcpuThread, signo: int, info: bytes) -> None:
        """force_sig_info: the signal goes first, unblocked, with SIG_IGN reset to SIG_DFL."""
        own = self.of(thread)
        own.last_info = info
        bit = 1 << (signo - 1)
        with self.lock:
            if self.actions[signo].handler == SIG_IGN or own.mask & bit:   # force_sig_info: default, unblocked
                self.actions[signo] = SigAction()
                own.mask &= ~bit
            own.pending.insert(0, PendingSignal(signo, info))
            self.refresh_signalfds()

    # ---- delivery -----------------------------------------------------------------------------------------
    def deliver(self, thread: VcpuThread) -> None:
        """arch_do_signal_or_restart, on the thread's way back to the guest: run a handler for each deliverable
        signal (each frame on top of the last, so the last one dequeued runs first), or end the process for a
        fatal one. A call cut short (interrupted_call: read from the registers at each decision, as the kernel
        does, so that what a debugger wrote at a stop counts) is settled by the first handler (handle_signal),
        or, when none runs, by restarting it (the mask a sigsuspend-like call replaced comes back then:
        restore_saved_sigmask)."""
        own = self.of(thread)
        while True:
            with self.lock:
                pending = self._pick(thread, own)
            if pending is None:
                if self._rekicker is not None:
                    self._rekicker.taken(thread)     # every kick it had is spent
                break
            signo = pending.signo
            action = self.actions[signo]
            own.last_info = pending.info
            if self.proc.debug.on_signal(thread, pending):
                continue              # the debugger took it (and may hand it back on resume)
            if self.is_ignored(signo):
                continue
            if action.handler == SIG_DFL:
                self.proc.terminate(signo, thread)
                return
            restart = interrupted_call(thread)
            if restart:
                _settle_for_handler(thread, restart, action)
            if not self._run_handler(thread, own, signo, action, pending.info):
                return
        restart = interrupted_call(thread)
        if restart:
            _restart(thread, restart)
            if own.mask_to_restore is not None:
                own.mask, own.mask_to_restore = own.mask_to_restore, None

    def _pick(self, thread: VcpuThread, own: ThreadSignals) -> PendingSignal | None:
        """The next deliverable signal: the thread's own first, then the process's."""
        return self.dequeue(thread, lambda pending: self.may_take(thread, own, pending))

    def _run_handler(self, thread: VcpuThread, own: ThreadSignals, signo: int, action: SigAction,
                     info: bytes) -> bool:
        """handle_signal: the frame, then the handler's mask (signal_delivered); False if the frame could not
        be written, which kills the process with SIGSEGV as Linux's force_sigsegv."""
        saved_mask = own.mask if own.mask_to_restore is None else own.mask_to_restore
        own.mask_to_restore = None
        try:
            build_frame(thread, own, signo, action.handler, action.restorer, bool(action.flags & SA_ONSTACK),
                        info, saved_mask)
        except GuestFault:
            log.info("cannot write the signal frame for signal %d: SIGSEGV", signo)
            self.proc.terminate(host_signal.SIGSEGV, thread)
            return False
        new_mask = own.mask | action.mask
        if not action.flags & SA_NODEFER:
            new_mask |= 1 << (signo - 1)
        own.mask = new_mask & ~UNBLOCKABLE
        if action.flags & SA_RESETHAND:
            self.actions[signo] = SigAction()
        return True

    def sigreturn(self, thread: VcpuThread) -> None:
        """rt_sigreturn: the interrupted context comes back from the frame; a pending restart_block is forgotten
        (the kernel's restart_block.fn = do_no_restart_syscall). GuestFault if the frame cannot be read."""
        own = self.of(thread)
        own.mask = restore_frame(thread, own) & ~UNBLOCKABLE
        thread.restart_block = None
        thread.orig_rax = NO_SYSCALL        # restore_sigcontext: the restored context is no call to restart


def interrupted_call(thread: VcpuThread) -> int:
    """The -ERESTART* code of a call the thread's registers show cut short, else 0: the kernel's
    syscall_get_nr(regs) != -1 and syscall_get_error(regs), read from orig_rax and rax as they are now. gdb
    writes orig_rax = -1 with the pc before an inferior call at such a stop (the call is then not restarted into
    the called function) and writes both back afterwards (it is, at the next resume)."""
    if thread.orig_rax == NO_SYSCALL:
        return 0
    result = s64(thread.regs[RAX])
    return result if result in RESTART_CODES else 0


def _settle_for_handler(thread: VcpuThread, restart: int, action: SigAction) -> None:
    """handle_signal's switch: a handler runs, so the call ends with EINTR, unless it is always restarted
    (ERESTARTNOINTR) or restarted under SA_RESTART (ERESTARTSYS)."""
    if restart == -ERESTARTNOINTR or (restart == -ERESTARTSYS and action.flags & SA_RESTART):
        _rewind(thread, thread.orig_rax)
    else:
        thread.regs[RAX] = -errno.EINTR & MASK64
        thread.mark_regs_dirty()


def _restart(thread: VcpuThread, restart: int) -> None:
    """No handler runs: the call is made again, ERESTART_RESTARTBLOCK's as restart_syscall(2)."""
    _rewind(thread, NR_RESTART_SYSCALL if restart == -ERESTART_RESTARTBLOCK else thread.orig_rax)


def _rewind(thread: VcpuThread, nr: int) -> None:
    """Back onto the 2-byte `syscall` instruction with RAX the number to call (the arguments are untouched)."""
    thread.regs[RIP] -= 2
    thread.regs[RAX] = nr
    thread.mark_regs_dirty()

