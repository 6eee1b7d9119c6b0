"""One guest thread = one vCPU driven by one host thread: the KVM_RUN loop and its exit dispatch.

State machine (drawn as in Firecracker; the names are the `State` enum's):

    RUNNING --syscall exit--> IN_SYSCALL --handler returns--> RUNNING
       |  ^                      (counts as stopped: a blocking host call never delays a stop-the-world)
     kick  release
       v  |
      PAUSED  <-- pause requested, or a debugger event (proc.debug hook returned True)
    any --exit_group/exit--> EXITED

A kick (reserved RT signal + kvm_run.immediate_exit) makes KVM_RUN return EINTR; the thread then checks its
requests. immediate_exit is cleared right after an EINTR and *before* the requests are read, so a request made
while the thread is outside KVM_RUN is never lost. While a thread is parked, its user-visible registers are the
kvm_run sync regs: km and the debugger read and write them in place, and the next KVM_RUN carries them in (kvm_dirty_regs) with no ioctl.
gdb's single step of a parked thread is run by the debugger's own thread (run_for_debugger), the vCPU thread
staying parked; an exit other than the step's #DB is left in kvm_run for the vCPU thread to serve (exit_pending).
"""
from __future__ import annotations

import _signal
import enum
import errno
import os
import signal
import struct
import threading
from typing import Callable, TYPE_CHECKING

from kdbg.arch.linux import MASK64
from kdbg.arch.x86_64 import KVM_REGS
from kdbg.tracelog import logger

from ..errors import KvmError
from ..kvm import abi
from .machine import KBASE, SYSCALL_PORT, exception_frame_gpa, user_segment_fix
from ..signals.delivery import MAIN_THREAD_ONLY, NO_SYSCALL, RESTART_CODES, RestartBlock
from ..syscalls.numbers import NUMBERS
from ..syscalls.procfs import COMM_LEN
from ..syscalls.table import dispatch

if TYPE_CHECKING:
    from ..process.payload import Process
    from ..syscalls.futex import Waiter

log = logger("km.vcpu")
RAX, RCX, RSP, RBP, R11, RIP, RFLAGS = (KVM_REGS.index(n)
                                         for n in ("rax", "rcx", "rsp", "rbp", "r11", "rip", "eflags"))
RDI, RSI, RDX, R10, R8, R9 = (KVM_REGS.index(n) for n in ("rdi", "rsi", "rdx", "r10", "r8", "r9"))
TF = 0x100
DEBUG_VECTOR = 1                    # #DB: the trap a single step (RFLAGS.TF) ends in
# Calls whose handlers never block, never need the host thread that serves them, and change neither the threads,
# the signals nor what a debugger watches: the debugger's thread may serve them between its runs of a parked vCPU
# (serve_syscall_here). They are what a program makes before main: musl's arch_prctl and set_tid_address, glibc's
# brk, set_robust_list, rseq, prlimit64 and mprotect besides.
SERVED_HERE = frozenset(NUMBERS[name] for name in (
    "arch_prctl", "set_tid_address", "set_robust_list", "rseq", "prlimit64", "brk", "mprotect",
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid"))


class State(enum.Enum):
    RUNNING = "running"
    PAUSED = "paused"
    IN_SYSCALL = "in-syscall"     # blocked in a host call: counts as stopped for stop-the-world
    EXITED = "exited"


class VcpuThread:
    """A guest thread. `ctx` for syscall handlers: .proc, .mem, .tid."""

    def __init__(self, proc: Process, vcpu, tid: int) -> None:
        self.proc, self.vcpu, self.tid = proc, vcpu, tid
        self.mem = proc.mem
        self.run = vcpu.run
        self.sync = vcpu.run_buf[abi.RUN_SYNC_REGS - 16:abi.RUN_SYNC_REGS + 8 * 18].cast("Q")  # valid, dirty, 18 regs
        self.regs = vcpu.run_buf[abi.RUN_SYNC_REGS:abi.RUN_SYNC_REGS + 8 * 18].cast("Q")
        self.state = State.PAUSED
        self.cond = threading.Condition(proc.lock)
        self.pause_requested = False
        self.exit_requested = False
        # A snapshot is stopping the world: blocking calls end with a restart code, and the thread parks outside
        # any syscall (monitor/snapshot/freeze.py); a debugger's pause and release leave it alone.
        self.freezing: bool = proc.freezing
        self.parked_in_syscall = False      # parked inside a handler (a debugger's pause of a blocking call)
        self.thread: threading.Thread | None = None
        self.clear_child_tid = 0
        self.name = ""                 # PR_SET_NAME's, or a write to its comm file; `comm` is what Linux shows
        self.blocked_on: Waiter | None = None                 # while blocked in futex(2)
        self.signal_wakeup: threading.Event | None = None     # while blocked in pause/sigsuspend/sigtimedwait
        self.sigwait_set = 0           # the signals an rt_sigtimedwait waits for (they go to this thread)
        self.orig_rax = -1             # pt_regs orig_ax: the call being (or last) served, -1 after an exception
        #                                or interrupt; what a restart calls again, and what gdb reads and writes
        self.at_syscall_stop = False   # parked at a syscall catchpoint: the debugger sees orig_rax as Linux shows it
        self.restart_block: RestartBlock | None = None    # restart_syscall(2)'s continuation (signals/delivery.py)
        self.fault_detail = (0, 0, 0)  # (error code, vector, cr2) of the last exception, for a signal frame
        self.robust_list = 0
        self.has_run = False           # kvm_run's sync regs/sregs hold this vCPU's state once it has exited
        # the debugger's register file, read once per stop (registers.py); dropped when the thread runs
        # again or a register is written
        self.stopped_regs: dict[str, int] | None = None
        # counts the stops that ended (end_stop, under `cond`): a register file read during one stop is stored
        # only if the count has not moved, so it can never be served at a later stop
        self.stop_serial = 0
        self._frame: memoryview | None = None     # frame(), once made
        self.exit_pending = False      # kvm_run holds an exit of a run the debugger's thread made (run_for_debugger)
        #                                that this thread's loop has not dispatched yet
        self._compiled_run: tuple | None = None    # km_debug_run's arguments for this vCPU (_compiled_run_args)
        # a run of this parked thread's vCPU made on the debugger's thread is under way (run_for_debugger): the
        # thread counts as parked for the debugger, but not as frozen (is_frozen) until the run has ended
        self.run_by_debugger = False

    @property
    def comm(self) -> bytes:
        """The thread's name as Linux keeps it: the one it was given, else the program's file name; COMM_LEN bytes."""
        return (self.name or os.path.basename(self.proc.path)).encode(errors="surrogateescape")[:COMM_LEN]

    def __str__(self) -> str:
        return f"vCPU {self.vcpu.id} (thread {self.tid}, {self.state.value})"

    # ---- control (called from other threads) -------------------------------------------------------------
    def start(self) -> None:
        with self.cond:                 # a new thread counts as parked (gdb may read it) until it starts
            self.end_stop()
            self.state = State.RUNNING
        self.thread = threading.Thread(target=self._main, name=f"vcpu-{self.vcpu.id}", daemon=True)
        self.thread.start()

    def kick(self) -> None:
        """Make KVM_RUN return now (or at once if entered later), and cut short a blocking host call or wait."""
        if self.state == State.PAUSED and self.pause_requested:
            return                      # parked and staying parked: a kick would only cost an empty KVM_RUN later
        self.run.immediate_exit = 1
        if self.thread is not None and self.thread.ident is not None and self.state != State.EXITED:
            try:
                self.proc.kick_thread(self.thread.ident)
            except (ProcessLookupError, OSError):
                pass
        if self.blocked_on is not None:
            self.blocked_on.event.set()
        if self.signal_wakeup is not None:
            self.signal_wakeup.set()

    # ---- the loop -----------------------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            # the main thread forwards them; _signal's call returns the old mask as ints, where signal's makes
            # Signals of it (~50 us and ~20 copied pages of CPython's heap in a forked km)
            _signal.pthread_sigmask(signal.SIG_BLOCK, MAIN_THREAD_ONLY)
            self._loop()
        except Exception as e:          # a km bug: report it as km's failure, keep the process consistent
            log.exception("vCPU %d failed", self.vcpu.id)
            self.proc.fail(e)
        finally:
            with self.cond:
                self.state = State.EXITED
                self.cond.notify_all()
            self.proc.thread_gone(self)

    def _loop(self) -> None:
        run, buf, regs, sync = self.run, self.vcpu.run_buf, self.regs, self.sync
        unpack = struct.unpack_from
        in_stub = False
        while True:
            if (self.pause_requested or self.exit_requested or self.freezing) and not in_stub and not self.exit_pending:
                if not self._service_requests():
                    return
                if not self.exit_pending and self.proc.pending_signals_for(self):   # e.g. handed back by gdb
                    self.proc.deliver_signals(self)
            if self.exit_pending:            # the debugger's thread ran this vCPU into an exit that is ours to serve
                self.exit_pending = False
                err = 0
            else:
                err = self.vcpu.run_once()
            if err:
                if err != errno.EINTR and err != errno.EAGAIN:
                    raise KvmError("KVM_RUN", err)
                run.immediate_exit = 0
                # Kicked inside a stub (before its `out`): let it reach its exit first, so that a parked
                # thread always holds a user context.
                in_stub = regs[RIP] >= KBASE
                if not in_stub:
                    self.orig_rax = NO_SYSCALL     # an interrupt's entry, as Linux's
                    if self.proc.pending_signals_for(self):
                        self.proc.deliver_signals(self)
                continue
            in_stub = False
            self.has_run = True
            sync[1] = 0
            reason = unpack("I", buf, abi.RUN_EXIT_REASON)[0]
            if reason == abi.KVM_EXIT_IO:
                port = unpack("H", buf, abi.RUN_IO_PORT)[0]
                if port == SYSCALL_PORT:
                    self._syscall(regs, sync)
                    continue
                if port < 32:
                    self._exception(port)
                    continue
            self.proc.unexpected_exit(self, reason)
            return

    def _syscall(self, regs: memoryview, sync: memoryview) -> None:
        nr = self._enter_call(regs, sync)
        caught = self.proc.debug.caught_syscalls      # None unless gdb set `catch syscall`
        stepped = False
        if caught is not None and (not caught or nr in caught):
            # as Linux shows a syscall-enter-stop: the number in orig_rax, -ENOSYS in rax
            self.orig_rax, self.at_syscall_stop, regs[RAX] = nr, True, -errno.ENOSYS & MASK64
            self.proc.debug.on_syscall_entry(self, nr)    # gdb may change the call's arguments here
            self.at_syscall_stop = False
            nr = self.orig_rax      # and its number, as ptrace's tracer: -1 skips it (rax as the debugger left it)
            # gdb's stepi from that stop: as Linux's PTRACE_SINGLESTEP, the call is made and the step ends right
            # after it, with no syscall-exit-stop (a TF the program set itself is no step: the stop comes)
            stepped = self.proc.debug.owns_trap_flag(self)
            if stepped:
                caught = None
        else:
            caught = None
        self.state = State.IN_SYSCALL
        if self.pause_requested:             # a stop-the-world waiter may be waiting for this change
            with self.cond:
                self.cond.notify_all()
        result = (dispatch(self, nr, regs[RDI], regs[RSI], regs[RDX], regs[R10], regs[R8], regs[R9])
                  if nr != NO_SYSCALL else None)
        self.state = State.RUNNING
        if result is not None:
            regs[RAX] = result & MASK64
        if caught is not None:
            self.at_syscall_stop = True
            self.proc.debug.on_syscall_return(self, nr)
            self.at_syscall_stop = False
        if regs[R11] & TF or stepped:
            self.proc.debug.on_syscall_step(self)       # stepping over `syscall`: SFMASK cleared TF
        # A kick that came during the call (a signal's, a pause's) is spent here, as after an EINTR: cleared before
        # the signals below and the requests at the loop's top are read, so one made later sets it again. Left
        # set, the next KVM_RUN would return at once without entering the guest (one exit's cost, per SIGCHLD
        # of a shell's wait4).
        self.run.immediate_exit = 0
        if result is not None and result in RESTART_CODES or self.proc.pending_signals_for(self):
            self.proc.signals.deliver(self)      # cut short: EINTR or a restart (signals.interrupted_call)

    def _enter_call(self, regs: memoryview, sync: memoryview) -> int:
        """A `syscall` exit's first steps, wherever the call is served (_syscall on this thread, serve_syscall_here
        on the debugger's): user segments again when the call entered at CPL0 (syscall_at_cpl0), and the return
        to the instruction after it set up before the handler runs, as a handler may change any register
        (rt_sigreturn, signal delivery). Returns the call's number."""
        nr = regs[RAX]
        if self.proc.syscall_at_cpl0:
            self._return_to_user_segments()
        regs[RIP], regs[RFLAGS] = regs[RCX], regs[R11]
        sync[1] = abi.KVM_SYNC_X86_REGS | (sync[1] & abi.KVM_SYNC_X86_SREGS)
        return nr

    def _return_to_user_segments(self) -> None:
        user_segment_fix(self.vcpu.run_buf)
        self.sync[1] |= abi.KVM_SYNC_X86_SREGS

    def _exception(self, vector: int) -> None:
        """An exception at CPL3 reached its stub, which pushed (err, rip, cs, rflags, rsp, ss) and exited."""
        error_code = self._leave_exception_stub()
        self.orig_rax = NO_SYSCALL         # an exception's entry, as Linux's: no call to restart
        if self.proc.debug.on_exception(self, vector, error_code):
            # the stop was a signal-delivery-stop (SIGTRAP): on the way out the kernel restarts a call whose
            # orig_rax and rax the debugger wrote back (gdb, after an inferior call at an interrupted call's stop)
            if self.orig_rax != NO_SYSCALL or self.proc.pending_signals_for(self):
                self.proc.signals.deliver(self)
            return
        self.proc.fault(self, vector, error_code)
        if self.proc.pending_signals_for(self):
            self.proc.deliver_signals(self)

    def _leave_exception_stub(self) -> int:
        """The user context back from the exception frame; returns the error code.

        km returns to CPL3 itself (user rip/rsp/rflags through sync regs, user CS/SS through sync sregs)
        instead of letting the stub run `add; iretq`: then no CPL0 instruction ever runs after an exit, and a
        kick can never land where a parked thread would not hold a plain user context."""
        frame = self.frame()
        regs = self.regs
        regs[RIP], regs[RFLAGS], regs[RSP] = frame[1], frame[3], frame[4]
        self._return_to_user_segments()
        self.sync[1] |= abi.KVM_SYNC_X86_REGS
        return frame[0]

    def run_for_debugger(self, vector: int, step: bool = False, compiled: tuple | None = None) -> int | None:
        """One KVM_RUN of this parked thread's vCPU made on the caller's thread (the debugger's), the thread
        itself staying parked: a single step costs no thread hand-off either way (each a wake-up of ~20-40 us
        here, twice per step). `step`: RFLAGS.TF is set first, and cleared again when the run ends in the step's
        #DB. Returns the error code when the run ended in exception `vector`, the user context restored from its
        frame; otherwise None, and the exit (if any) waits in kvm_run for this thread's own loop
        (`release_with_exit`). Only for a run that ends on its own at once (one instruction under TF) or that a
        RunDeadline cuts short. `compiled`: monitor/kvm/crun.py's (ffi, lib), which makes the run in C; without it
        _run_for_debugger_python, its twin, does."""
        # Set before `freezing` is read, as freeze() sets that before it reads this (is_frozen): either the
        # freeze waits for the run's end, or the run is left to the thread's loop, which parks for the freeze.
        self.run_by_debugger = True
        if self.freezing:
            self._end_run_by_debugger()
            if step:
                self.set_trap_flag(True)
            return None
        if compiled is None:
            try:
                return self._run_for_debugger_python(vector, step)
            finally:
                self._end_run_by_debugger()
        args = self._compiled_run
        if args is None:
            args = self._compiled_run = _compiled_run_args(self, compiled)
        run, fd, run_ptr, frame_ptr, layout, error_code = args
        status = run(fd, run_ptr, frame_ptr, layout, vector, step, error_code)
        if status < 0:
            self._end_run_by_debugger()
            if status == -1:
                return None                 # interrupted before it ran: the thread's loop runs it
            raise KvmError("KVM_RUN", -status)
        self.has_run = True
        with self.proc.lock:                # (`cond`'s lock: its Python __enter__/__exit__ spared)
            self.end_stop()
            if status == 0:
                self.exit_pending = True    # before the run counts as over: a freeze waits for the exit (is_frozen)
            self.run_by_debugger = False
            if self.freezing:
                self.cond.notify_all()
        if status == 0:
            return None
        self.orig_rax = NO_SYSCALL          # the run ended in an exception (the step's #DB)
        return error_code[0]

    def prepare_debugger_run(self, compiled: tuple | None) -> None:
        """What the first run_for_debugger and serve_syscall_here of this vCPU would make first, made now (the stub
        calls it while it waits for gdb): km_debug_run's arguments, and cffi's types for the sync sregs, which
        arch_prctl writes."""
        if compiled is not None and self._compiled_run is None:
            self._compiled_run = _compiled_run_args(self, compiled)
        self.run.s.regs.sregs.fs.base     # noqa: B018 - cffi makes a struct's type at its first use

    def serve_syscall_here(self) -> bool:
        """After a run_for_debugger that ended in a `syscall` (exit_pending): serve the call on the caller's thread
        (the debugger's), as _syscall would, when it is one of SERVED_HERE and nothing else is to happen at it (no
        catchpoint, no step over it, no freeze under way), so that a `continue` through the calls a program makes
        before main costs no thread hand-off. True when it was served and the thread may be run on from the call's
        return (no signal to deliver); False when the exit (or the signal) is left for the thread's own loop."""
        buf, regs = self.vcpu.run_buf, self.regs
        nr = regs[RAX]
        if (not self.exit_pending or nr not in SERVED_HERE or regs[R11] & TF
                or not _exited_at_port(buf, SYSCALL_PORT) or self.proc.debug.caught_syscalls is not None):
            return False
        self.run_by_debugger = True         # as run_for_debugger's: a freeze waits for the call's end
        if self.freezing:
            self._end_run_by_debugger()
            return False
        self.exit_pending = False
        try:
            self._enter_call(regs, self.sync)
            result = dispatch(self, nr, regs[RDI], regs[RSI], regs[RDX], regs[R10], regs[R8], regs[R9])
            if result is not None:
                regs[RAX] = result & MASK64
        except Exception as e:          # a km bug: the process fails, as on the vCPU's own thread (_main)
            log.exception("vCPU %d failed serving syscall %d", self.vcpu.id, nr)
            self.proc.fail(e)
            return False
        finally:
            with self.cond:
                self.end_stop()
                self.run_by_debugger = False
                if self.freezing:
                    self.cond.notify_all()
        return not self.proc.pending_signals_for(self)

    def _end_run_by_debugger(self) -> None:
        """The debugger's run is over (or never began): a freeze waiting for it may go on."""
        with self.cond:
            self.run_by_debugger = False
            if self.freezing:
                self.cond.notify_all()

    def _run_for_debugger_python(self, vector: int, step: bool) -> int | None:
        """run_for_debugger's twin in Python (monitor/kvm/crun.py's km_debug_run: the same steps, the same
        results)."""
        run, regs = self.run, self.regs
        if step:
            self.set_trap_flag(True)
        run.immediate_exit = 0
        while True:
            err = self.vcpu.run_once()
            if not err:
                break
            if err != errno.EINTR and err != errno.EAGAIN:
                raise KvmError("KVM_RUN", err)
            run.immediate_exit = 0
            if regs[RIP] < KBASE:
                return None                 # interrupted before it ran: the thread's loop runs it
        self.has_run = True
        self.sync[1] = 0
        with self.cond:
            self.end_stop()
        if _exited_at_port(self.vcpu.run_buf, vector):
            error_code = self._leave_exception_stub()
            self.orig_rax = NO_SYSCALL
            if step and vector == DEBUG_VECTOR:
                regs[RFLAGS] &= ~TF
            return error_code
        self.exit_pending = True
        return None

    def release_with_exit(self) -> None:
        """Release a thread after run_for_debugger: it counts as running at once (a stop-the-world waits for it
        to serve its pending exit and park again, never takes it for parked meanwhile)."""
        with self.cond:
            self.end_stop()
            self.state = State.RUNNING
            self.pause_requested = False
            self.cond.notify_all()

    def _service_requests(self) -> bool:
        """Park while a pause or a freeze is requested; False when the thread must end."""
        with self.cond:
            if self.exit_requested:
                return False
            self.state = State.PAUSED
            self.cond.notify_all()
            while (self.pause_requested or self.freezing) and not self.exit_requested and not self.exit_pending:
                self.cond.wait()
            if self.exit_requested:
                return False
            self.state = State.RUNNING
            self.end_stop()
            self.run.immediate_exit = 0     # a kick that found it parked is spent
            return True

    # ---- StopTheWorld member (kdbg.vcpu_control.Member) -----------------------------------------------------
    def request_pause(self) -> None:
        with self.cond:
            self.pause_requested = True

    def wait_parked(self, timeout_s: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.state != State.RUNNING, timeout_s)

    def release(self) -> None:
        with self.cond:
            self.pause_requested = False
            self.cond.notify_all()

    def park(self, announce: Callable[[], None] | None = None) -> None:
        """Called on the vCPU thread itself (at a breakpoint, or paused inside a blocking call): wait until
        released. Inside a syscall it also returns when a snapshot freezes the thread: the call then ends with a
        restart code (syscalls/host.py interruption) and the thread parks again outside it.

        The thread counts as parked from the start, before `announce` (the debugger's event) runs: the stub
        thread that the event wakes then finds it parked, with no kick to send and no acknowledgement to wait
        for (each a thread wake-up, ~10-40 us here)."""
        with self.cond:
            self.pause_requested = True
            in_syscall = self.state == State.IN_SYSCALL
            self.state, self.parked_in_syscall = State.PAUSED, in_syscall
            self.cond.notify_all()
        if announce is not None:
            announce()
        with self.cond:
            # exit_pending: released by release_with_exit (state RUNNING at once); a pause requested again before
            # this thread woke must not keep it here, counted as running: the stop-the-world would wait forever
            while (self.pause_requested and not self.exit_requested and not (in_syscall and self.freezing)
                   and not self.exit_pending):
                self.cond.wait()
            self.state = State.IN_SYSCALL if in_syscall else State.RUNNING
            self.parked_in_syscall = False
            self.end_stop()
            self.run.immediate_exit = 0

    def end_stop(self) -> None:
        """Under `cond`, whenever the thread leaves PAUSED or runs while parked (run_for_debugger): its registers
        may change from here on, so the cached file goes and no read begun before can store one
        (registers.read_registers)."""
        self.stop_serial += 1
        self.stopped_regs = None

    def is_frozen(self) -> bool:
        """Parked outside any syscall (or gone), its vCPU not run by the debugger meanwhile, and no exit of such a
        run left to serve (exit_pending: the registers are those of the `syscall` stub, and the thread's loop
        serves the call before it parks): its registers are a user context a snapshot can restart from."""
        return self.state == State.EXITED or (self.state == State.PAUSED and not self.parked_in_syscall
                                              and not self.run_by_debugger and not self.exit_pending)

    # ---- registers as the user sees them ------------------------------------------------------------------
    def frame(self) -> memoryview:
        """The exception stub's frame (err, rip, cs, rflags, rsp, ss) in guest memory; made once (the system
        area's physical memory never moves)."""
        if self._frame is None:
            self._frame = self.proc.phys.view(exception_frame_gpa(self.vcpu.id), 48).cast("Q")
        return self._frame

    def user_regs(self) -> list[int]:
        """The 18 kvm_regs words of the parked thread (always a user context, see _exception)."""
        return list(self.regs)

    def child_regs(self, stack: int) -> list[int]:
        """copy_thread's registers for a new thread or forked child made by this thread's call: its own, rax 0,
        rsp `stack` when one is given, and no TF the debugger set to step over the call (copy_process's
        user_disable_single_step; a TF the program set itself is inherited)."""
        regs = list(self.regs)
        regs[RAX] = 0
        if stack:
            regs[RSP] = stack
        if self.proc.debug.owns_trap_flag(self):
            regs[RFLAGS] &= ~TF
        return regs

    def set_user_regs(self, values: list[int]) -> None:
        for i, value in enumerate(values):
            self.regs[i] = value & MASK64
        self.mark_regs_dirty()

    def mark_regs_dirty(self) -> None:
        """The sync regs were changed in place: the next KVM_RUN loads them (kvm_dirty_regs)."""
        self.sync[1] |= abi.KVM_SYNC_X86_REGS
        self.stopped_regs = None

    def set_trap_flag(self, on: bool) -> None:
        """RFLAGS.TF of the parked thread: set, the next instruction ends in a #DB (single step)."""
        self.regs[RFLAGS] = self.regs[RFLAGS] | TF if on else self.regs[RFLAGS] & ~TF
        self.mark_regs_dirty()

    def waits_interruptibly(self, code: int) -> None:
        """Entering a wait a stop can cut short: rax shows what Linux's shows at a stop inside it, the call ended
        with -`code` (its -ERESTART* code, to be made again; EINTR for one that is not); the call's own result
        replaces it."""
        self.regs[RAX] = -code & MASK64

    @property
    def trap_flag(self) -> bool:
        return bool(self.regs[RFLAGS] & TF)


def _exited_at_port(buf: memoryview, port: int) -> bool:
    """kvm_run holds a stub's `out` to `port` (SYSCALL_PORT, or an exception's vector): the test the loop makes
    inline, for the debugger's runs (run_for_debugger's Python twin, serve_syscall_here)."""
    return (struct.unpack_from("I", buf, abi.RUN_EXIT_REASON)[0] == abi.KVM_EXIT_IO
            and struct.unpack_from("H", buf, abi.RUN_IO_PORT)[0] == port)


def debug_run_layout() -> list[int]:
    """monitor/kvm/crun.py's `layout` words (crun.LAYOUT_FIELDS' order), from abi.py's and machine.py's numbers."""
    from .machine import USER_SEGMENTS
    (cs_at, cs_selector, cs_type, cs_l, cs_db), (ss_at, ss_selector, ss_type, ss_l, ss_db) = USER_SEGMENTS
    return [abi.KVM_RUN, abi.ffi.offsetof("struct kvm_run", "immediate_exit"), abi.RUN_EXIT_REASON, abi.RUN_IO_PORT,
            abi.RUN_SYNC_REGS, abi.KVM_EXIT_IO, abi.KVM_SYNC_X86_REGS, abi.KVM_SYNC_X86_SREGS, RIP, RFLAGS, RSP,
            KBASE - (1 << 64), cs_at, cs_selector, cs_type, cs_l, cs_db, ss_at, ss_selector, ss_type, ss_l, ss_db,
            abi.ffi.offsetof("struct kvm_run", "kvm_dirty_regs"), TF, DEBUG_VECTOR]


def _compiled_run_args(thread: VcpuThread, compiled: tuple) -> tuple:
    """km_debug_run and its arguments for one vCPU, made once: pointers into its kvm_run and its exception frame,
    the layout, the error code's word."""
    ffi, lib = compiled
    layout = ffi.new("int64_t[]", debug_run_layout())
    run_ptr = ffi.cast("unsigned char *", int(abi.ffi.cast("uintptr_t", thread.vcpu.run)))    # (mapped for good)
    frame_ptr = ffi.from_buffer("uint64_t[]", thread.frame())       # keeps the frame's view alive
    return lib.km_debug_run, thread.vcpu.fd, run_ptr, frame_ptr, layout, ffi.new("uint64_t *")
