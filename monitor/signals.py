"""Guest signals: dispositions, masks, pending sets, and delivery (frame building lives in signal_frame.py).

Linux semantics (kernel/signal.c): a synchronous fault goes to the faulting thread; SIG_DFL of a fatal signal
ends the process (with a core for the core-dumping ones); a handler runs on a Linux rt_sigframe.
"""
from __future__ import annotations

import errno
import logging
import signal as host_signal
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger("km.signal")
SIG_DFL, SIG_IGN = 0, 1
NSIG = 64
IGNORED_BY_DEFAULT = frozenset({host_signal.SIGCHLD, host_signal.SIGURG, host_signal.SIGWINCH, host_signal.SIGCONT})
UNBLOCKABLE = (1 << (host_signal.SIGKILL - 1)) | (1 << (host_signal.SIGSTOP - 1))
STOP_BY_DEFAULT = frozenset({host_signal.SIGSTOP, host_signal.SIGTSTP, host_signal.SIGTTIN, host_signal.SIGTTOU})


SYNCHRONOUS = frozenset({host_signal.SIGSEGV, host_signal.SIGBUS, host_signal.SIGILL, host_signal.SIGTRAP,
                         host_signal.SIGFPE, host_signal.SIGSYS})


def next_index(queue: list, may_take) -> int | None:
    """Which queued signal goes first (kernel/signal.c next_signal): a synchronous one, else the lowest number;
    FIFO among equals (queued real-time signals keep their order)."""
    best = None
    for i, pending in enumerate(queue):
        if may_take(pending):
            key = (pending.signo not in SYNCHRONOUS, pending.signo)
            if best is None or key < best[0]:
                best = (key, i)
    return None if best is None else best[1]


@dataclass
class SigAction:
    handler: int = SIG_DFL
    flags: int = 0
    restorer: int = 0
    mask: int = 0


@dataclass
class PendingSignal:
    signo: int
    info: bytes            # 128-byte siginfo_t
    chosen_tid: int | None = None   # process-directed: the thread woken for it (kernel/signal.c complete_signal)
    seen_by_debugger: bool = False  # reported to gdb once; not again when gdb hands it back on resume


@dataclass
class ThreadSignals:
    mask: int = 0
    pending: list[PendingSignal] = field(default_factory=list)
    altstack: tuple[int, int, int] = (0, 2, 0)     # ss_sp, ss_flags (SS_DISABLE), ss_size
    last_info: bytes = b""
    mask_to_restore: int | None = None     # rt_sigsuspend: the mask the handler's sigreturn brings back


class Rekicker:
    """Kicks a thread again while a signal it can take stays pending.

    A kick interrupts a blocking host call only if the thread is already in it: one that lands between the
    handler's check for signals and the call itself (read, nanosleep, poll...) is absorbed by Python's C-level
    handler, and the call blocks with a signal pending. Linux closes that window by testing signal_pending
    after the task is marked interruptible; km re-kicks instead, after 2 ms and then backing off to 100 ms,
    until the thread takes the signal (or exits, or the debugger parks it)."""
    DELAYS_S = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1)

    def __init__(self, state: SignalState) -> None:
        self.state = state
        self.cond = threading.Condition()
        self.watched: dict[int, tuple[object, float, int]] = {}    # tid -> (thread, next kick, kicks so far)
        threading.Thread(target=self._run, name="signal-rekick", daemon=True).start()

    def watch(self, thread) -> None:
        with self.cond:
            if thread.tid not in self.watched:
                self.watched[thread.tid] = (thread, time.monotonic() + self.DELAYS_S[0], 0)
                self.cond.notify()

    def _run(self) -> None:
        with self.cond:
            while True:
                if not self.watched:
                    self.cond.wait()
                    continue
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
                    self.cond.wait(max(0.0, min(due for _, due, _ in self.watched.values()) - time.monotonic()))


SS_ONSTACK, SS_DISABLE, SS_AUTODISARM = 1, 2, 1 << 31
MINSIGSTKSZ = 2048


def on_sig_stack(own: ThreadSignals, sp: int) -> bool:
    """include/linux/sched/signal.h on_sig_stack: never with SS_AUTODISARM (the stack is disarmed while used)."""
    ss_sp, ss_flags, ss_size = own.altstack
    return not ss_flags & SS_AUTODISARM and bool(ss_size) and ss_sp < sp <= ss_sp + ss_size


def altstack_flags(own: ThreadSignals, sp: int) -> int:
    """ss_flags as sigaltstack(2) reports them (sas_ss_flags(sp) | the SS_AUTODISARM bit)."""
    ss_sp, ss_flags, ss_size = own.altstack
    state = SS_DISABLE if not ss_size else SS_ONSTACK if on_sig_stack(own, sp) else 0
    return state | (ss_flags & SS_AUTODISARM)


def set_altstack(own: ThreadSignals, sp: int, ss_sp: int, ss_flags: int, ss_size: int) -> int:
    """do_sigaltstack for a new stack_t: 0 or -errno (EPERM while on it, EINVAL, ENOMEM below MINSIGSTKSZ)."""
    if on_sig_stack(own, sp):
        return -errno.EPERM
    mode = ss_flags & ~SS_AUTODISARM & 0xFFFFFFFF
    if mode not in (0, SS_ONSTACK, SS_DISABLE):
        return -errno.EINVAL
    if mode == SS_DISABLE:
        own.altstack = (0, ss_flags & 0xFFFFFFFF, 0)
    elif ss_size < MINSIGSTKSZ:
        return -errno.ENOMEM
    else:
        own.altstack = (ss_sp, ss_flags & SS_AUTODISARM, ss_size)
    return 0


class SignalState:
    def __init__(self, proc) -> None:
        self.proc = proc
        self.actions = [SigAction() for _ in range(NSIG + 1)]
        self.per_thread: dict[int, ThreadSignals] = {}
        self.shared_pending: list[PendingSignal] = []
        self.lock = threading.RLock()
        self._rekicker: Rekicker | None = None

    def kick(self, thread) -> None:
        """Wake a thread for a signal now, and again later if it has not taken it (see Rekicker)."""
        thread.kick()
        if self._rekicker is None:
            with self.lock:
                if self._rekicker is None:
                    self._rekicker = Rekicker(self)
        self._rekicker.watch(thread)

    def of(self, thread) -> ThreadSignals:
        state = self.per_thread.get(thread.tid)
        if state is None:        # setdefault is atomic: a sender and the thread itself may get here together
            state = self.per_thread.setdefault(thread.tid, ThreadSignals())
        return state

    def has_pending(self, thread) -> bool:
        """A signal this thread can take now: a blocked one stays pending and must not cut a wait short."""
        state = self.per_thread.get(thread.tid)
        if state is None:
            state = self.of(thread)
        if not state.pending and not self.shared_pending:
            return False
        return any(self.may_take(thread, state, p) for queue in (state.pending, self.shared_pending) for p in queue)

    def may_take(self, thread, own: ThreadSignals, pending: PendingSignal) -> bool:
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

    def choose_thread(self, signo: int):
        """The thread to wake for a process-directed signal: the main thread if it does not block it, else the
        first that does not (or waits for it in sigtimedwait); None when every thread blocks it."""
        bit = 1 << (signo - 1)
        for thread in self.proc.live_threads():
            if thread.exit_requested:
                continue
            if not self.of(thread).mask & bit or getattr(thread, "sigwait_set", 0) & bit:
                return thread
        return None

    def raise_fault(self, thread, signo: int, vector: int, error_code: int, addr: int) -> None:
        """A synchronous fault: Linux forces it (unblocks it, resets SIG_IGN to SIG_DFL)."""
        from .signal_frame import fault_siginfo
        is_mapped = vector == 14 and self.proc.mem.find(addr) is not None
        self.force(thread, signo, fault_siginfo(signo, vector, error_code, addr, is_mapped))

    def force(self, thread, signo: int, info: bytes) -> None:
        """force_sig_info: the signal goes first, unblocked, with SIG_IGN reset to SIG_DFL."""
        self.of(thread).last_info = info
        own = self.of(thread)
        bit = 1 << (signo - 1)
        with self.lock:
            if self.actions[signo].handler == SIG_IGN or own.mask & bit:   # force_sig_info: default, unblocked
                self.actions[signo] = SigAction()
                own.mask &= ~bit
            own.pending.insert(0, PendingSignal(signo, info))

    def deliver(self, thread) -> None:
        from .signal_frame import deliver_pending
        deliver_pending(self, thread)
