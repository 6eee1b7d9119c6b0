"""LiveTarget: kdbg.target.ControlTarget over a running Process, and the Process's DebugHooks (the two directions
of the seam between the GDB stub and the VM).

Calls from the debugger come from one thread (the stub's). vCPU threads only post events through the hooks: a
vCPU that stops for the debugger (breakpoint, step, watchpoint, signal) records a StopEvent, parks itself, and
the stub thread pauses the others in next_event() before reporting (all-stop). A plain single step runs on the
stub's thread itself (_step_here): no thread hand-off, which is most of a stepi's cost on kvm-pvm.
Breakpoints are int3 bytes km plants and hides from reads (docs/KVM.md 5: debug registers never fire on kvm-pvm,
and KVM_GUESTDBG_USE_SW_BP does not intercept a CPL3 int3, so both software and hardware breakpoints are int3 here); watchpoints are page
protection (watchpoints.py). The debugger's per-thread state is a ThreadDebug record kept here, not on the thread.
"""
from __future__ import annotations

import functools
import socket
import threading
import time
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from kdbg.arch.linux import make_siginfo
from kdbg.target import (BreakpointKind, ControlTarget, GuestMemoryError, QuickStop, ResumeAction, ResumeKind,
                         StopEvent, StopEventQueue, StopReason, TargetError)
from kdbg.target_link import LinkedTarget
from kdbg.tracelog import logger
from kdbg.vcpu_control import PauseTimeout, pause

from ..errors import GuestFault
from ..host_fds import GATE, high_fd
from ..kvm import crun
from ..process.payload import Ending
from .process_view import ProcessView
from ..signals.delivery import PendingSignal
from ..vcpu.registers import write_registers
from ..vcpu.deadline import FIRST_S, RunDeadline
from ..vcpu.loop import DEBUG_VECTOR, RBP, RIP, RSP, State
from .watchpoints import HANDLED, Watchpoints

# How long a resume from km -g's entry stop waits for the vCPU's thread to start (_await_first_park): km's main
# thread starts it a few ms after the stub listens; past this the generic resume serves it as before
FIRST_PARK_WAIT_S = 0.1

if TYPE_CHECKING:
    from ..process.payload import Process
    from ..vcpu.loop import VcpuThread

log = logger("km.gdb")
SIGTRAP, SIGKILL = 5, 9
BREAKPOINT_VECTOR = 3               # #BP: an int3 km planted (or the payload's own)
PAUSE_TIMEOUT_S = 5.0
HAND_OVER_TIMEOUT_S = 5.0      # how long an exec waits for the stub to hand its connection over
# si_code of the SIGTRAP that $_siginfo shows for a debugger stop, as Linux would have sent it
_TRAP_CODES = {StopReason.BREAKPOINT: 0x80, StopReason.STEP: 2, StopReason.WATCHPOINT: 4}


_SUPPORTS = frozenset({"swbreak", "hwbreak", "watch", "step", "range-step", "fork-events", "vfork-events",
                       "exec-events", "catch-syscalls", "non-stop"})


@functools.lru_cache(maxsize=64)
def _trap_info(code: int, addr: int) -> bytes:
    """The SIGTRAP siginfo of a debugger stop (a ctypes structure built and copied: ~5 us, at every stepi)."""
    return make_siginfo(SIGTRAP, code, addr)


class ThreadDebug:
    """What the debugger asked of one thread, and what it was shown. (A plain class: `dataclasses` would cost
    km -g's start ~6 ms.)"""

    __slots__ = ("stepping", "step_range", "reported", "clean_park")

    def __init__(self) -> None:
        self.stepping = False                   # a gdb single step (or range step) is in progress
        self.step_range: tuple[int, int] | None = None   # vCont;r: keep stepping while start <= pc < end
        self.reported: PendingSignal | None = None       # the signal this thread's last stop showed gdb
        # parked by an exception stop (a breakpoint, a step's #DB), with nothing left for its loop to do before
        # its next KVM_RUN: the stub's thread may run it (_continue_here). Not so when parked inside a syscall or
        # a signal's delivery (a catchpoint, a signal stop), where the thread's own code still has work after it.
        self.clean_park = False

    def in_step_range(self, pc: int) -> bool:
        return self.step_range is not None and self.step_range[0] <= pc < self.step_range[1]


class _Exec:
    """An exec waiting for the stub's hand_over(): the state for the next km, or the news that it failed."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.failed = threading.Event()
        self.state: bytes | None = None


class LiveTarget(ProcessView):
    def __init__(self, proc: Process, *, stopped_at_entry: bool, follow_forks: bool = True) -> None:
        super().__init__(proc)
        self.follow_forks = follow_forks      # False: forked children are someone else's (KM_GDB_CHILD_FORK_WAIT)
        self.events_reported: frozenset[str] = frozenset()     # report_events(): 'fork', 'vfork', 'exec'
        self.caught_syscalls: frozenset[int] | None = None      # set_syscall_catch(): what the VMM stops at
        self._children: dict[int, LinkedTarget] = {}           # reported forks gdb has not taken yet
        self._exec: _Exec | None = None
        self.world = proc.world
        self.watchpoints = Watchpoints(self)
        self._deadline = RunDeadline()
        self._compiled = crun.load()    # the debugger's runs of a parked vCPU in C, or None: in Python (its twin)
        self.events = StopEventQueue(place_fd=high_fd)
        self.stopped = stopped_at_entry
        self.attached = stopped_at_entry
        self.non_stop = False           # gdb's non-stop mode: an event parks only its own thread
        self._listener: Callable[[StopEvent], bool] | None = None    # report_stops_to()
        self._debug: dict[VcpuThread, ThreadDebug] = {}
        proc.debug = self

    def debug_of(self, thread: VcpuThread) -> ThreadDebug:
        record = self._debug.get(thread)
        if record is None:
            record = self._debug.setdefault(thread, ThreadDebug())
        return record

    def stop_at_entry(self, thread: VcpuThread) -> None:
        """km -g: the first thread parks before its first instruction; gdb finds an ENTRY stop."""
        thread.pause_requested = True
        self.stopped = self.attached = True
        self.debug_of(thread).clean_park = True      # its loop parks at its top, before its first KVM_RUN
        self.proc.signals.of(thread).last_info = make_siginfo(SIGTRAP, 0x80)   # as a PTRACE_TRACEME exec stop
        self._post(StopEvent(thread.tid, StopReason.ENTRY, SIGTRAP))

    def stop_at_exec(self, thread: VcpuThread) -> None:
        """The first thread of a program the payload exec'd under gdb parks before its first instruction; gdb
        learns of the exec from an EXEC stop (as gdbserver reports it) on the connection it kept."""
        thread.pause_requested = True
        self.stopped = self.attached = True
        self.debug_of(thread).clean_park = True      # as at stop_at_entry: a new thread, parked before it runs
        self.proc.signals.of(thread).last_info = make_siginfo(SIGTRAP, 0)
        self._post(StopEvent(thread.tid, StopReason.EXEC, SIGTRAP, exec_path=self.exe_path()))

    def _post(self, event: StopEvent) -> None:
        self.events.post(event)

    def _stop_on(self, thread: VcpuThread, event: StopEvent) -> bool:
        """Runs on the vCPU thread: post the event and park until the debugger resumes the thread."""
        self._record_trap(thread, event)
        thread.park(announce=lambda: self._post(event))
        return True

    def _record_trap(self, thread: VcpuThread, event: StopEvent) -> None:
        if event.reason is not StopReason.SIGNAL:     # what $_siginfo shows, as Linux would have sent it
            code = _TRAP_CODES.get(event.reason, 0x80)
            self.proc.signals.of(thread).last_info = _trap_info(code, event.watch_addr or 0)

    # ---- DebugHooks (called on vCPU threads) ---------------------------------------------------------------
    watches_signals = True

    def on_thread_start(self, thread: VcpuThread) -> None:
        self._debug[thread] = ThreadDebug()

    def on_thread_exit(self, thread: VcpuThread) -> None:
        self._debug.pop(thread, None)

    def on_exception(self, thread: VcpuThread, vector: int, error_code: int) -> bool:
        event = self._exception_event(thread, vector, error_code)
        if event is None:
            return False
        if event is HANDLED:
            return True
        assert isinstance(event, StopEvent)
        self.debug_of(thread).clean_park = True     # the loop goes straight back to KVM_RUN after this stop
        return self._stop_on(thread, event)

    def on_syscall_step(self, thread: VcpuThread) -> bool:
        debug = self.debug_of(thread)
        if not debug.stepping:
            return False
        if debug.in_step_range(thread.regs[RIP]):
            return True                         # TF is still set (from r11): the next step traps
        thread.set_trap_flag(False)
        debug.stepping = False
        return self._stop_on(thread, StopEvent(thread.tid, StopReason.STEP, SIGTRAP))

    def owns_trap_flag(self, thread: VcpuThread) -> bool:
        debug = self._debug.get(thread)
        return debug is not None and debug.stepping or self.watchpoints.is_stepping(thread)

    def on_syscall_entry(self, thread: VcpuThread, nr: int) -> None:
        if self.attached:
            self._stop_on(thread, StopEvent(thread.tid, StopReason.SYSCALL_ENTRY, SIGTRAP, syscall=nr))

    def on_syscall_return(self, thread: VcpuThread, nr: int) -> None:
        if self.attached:
            self._stop_on(thread, StopEvent(thread.tid, StopReason.SYSCALL_RETURN, SIGTRAP, syscall=nr))

    def on_signal(self, thread: VcpuThread, pending: PendingSignal) -> bool:
        if not self.attached or pending.seen_by_debugger:
            return False
        pending.seen_by_debugger = True
        self.debug_of(thread).reported = pending
        return self._stop_on(thread, StopEvent(thread.tid, StopReason.SIGNAL, pending.signo))

    def on_remap(self, start: int, end: int) -> None:
        self.watchpoints.reapply(start, end)

    def on_end(self, ending: Ending) -> None:
        if ending.signal is not None:
            self._post(StopEvent(0, StopReason.TERMINATED, ending.signal))
        else:
            self._post(StopEvent(0, StopReason.EXITED, 0, exit_status=ending.status or 0))

    def on_thaw(self) -> None:
        if self.attached:
            self.events.wake()          # the stub reads the threads again (its stop lane forgets what it holds)

    def fork_link(self, thread: VcpuThread, vfork: bool) -> tuple[socket.socket, socket.socket] | None:
        if not (self.attached and self.follow_forks and ("vfork" if vfork else "fork") in self.events_reported):
            return None
        with GATE.km():
            return tuple(socket.socket(fileno=high_fd(s.detach())) for s in socket.socketpair())    # type: ignore

    def on_fork(self, thread: VcpuThread, child_pid: int, link: socket.socket, vfork: bool) -> None:
        with GATE.km():                 # its event pipe is made while the payload's other threads run
            self._children[child_pid] = LinkedTarget(link, child_pid, fd_mover=high_fd)
        reason = StopReason.VFORK if vfork else StopReason.FORK
        self._stop_on(thread, StopEvent(thread.tid, reason, SIGTRAP, child_pid=child_pid, child_tid=child_pid))

    def on_vfork_done(self, thread: VcpuThread) -> None:
        if self.attached and "vfork" in self.events_reported:
            self._stop_on(thread, StopEvent(thread.tid, StopReason.VFORK_DONE, SIGTRAP))

    def adopt_in_child(self, proc: Process, thread: VcpuThread) -> LiveTarget:
        child = LiveTarget(proc, stopped_at_entry=True, follow_forks=False)
        child.events_reported = self.events_reported - {"fork", "vfork"}   # a followed child's forks run free
        child.watchpoints.points = dict(self.watchpoints.points)
        thread.pause_requested = True
        proc.signals.of(thread).last_info = make_siginfo(SIGTRAP, 0)
        return child

    def leave_forked_child(self, proc: Process) -> None:
        proc.breakpoints.remove_all()
        self.watchpoints.clear()

    def before_exec(self, thread: VcpuThread, path: str) -> list[str]:
        """Ask the stub (through a HAND_OVER event) for the state the next km needs, and wait for it."""
        request = self._exec = _Exec()
        self._post(StopEvent(thread.tid, StopReason.HAND_OVER, 0, exec_path=path))
        if not request.ready.wait(HAND_OVER_TIMEOUT_S) or request.state is None:
            log.warning("exec: the gdb stub did not hand its connection over; the new program runs undebugged")
            self._exec = None
            return []
        return [f"--gdb-handover={request.state.decode()}"]

    def exec_failed(self) -> None:
        request, self._exec = self._exec, None
        if request is not None:
            request.failed.set()

    def hand_over(self, state: bytes) -> None:
        request = self._exec
        if request is None:
            raise TargetError("no exec is waiting for the stub")
        request.state = state
        request.ready.set()
        request.failed.wait()           # the process image is replaced first, unless the exec failed

    def report_events(self, kinds: frozenset[str]) -> None:
        self.events_reported = kinds

    def forked_child(self, pid: int) -> ControlTarget:
        try:
            return self._children.pop(pid)
        except KeyError:
            raise TargetError(f"no forked child {pid}") from None

    def set_syscall_catch(self, numbers: frozenset[int] | None) -> None:
        self.caught_syscalls = numbers

    def _exception_event(self, thread: VcpuThread, vector: int, error_code: int) -> StopEvent | object | None:
        regs = thread.regs
        if vector == 3 and regs[RIP] - 1 in self.proc.breakpoints:
            regs[RIP] -= 1
            thread.mark_regs_dirty()
            return StopEvent(thread.tid, StopReason.BREAKPOINT, SIGTRAP)
        if vector == 3 and self.proc.breakpoints.late_trap(regs[RIP] - 1):
            # kvm-pvm: a kick that lands between an int3 and its delivery to the stub parks the thread at bp+1
            # with the trap still to come; it comes at the next run, maybe after gdb took the breakpoint out.
            # Not the program's SIGTRAP: run the original instruction (a thread resumed at bp+1 would crash)
            regs[RIP] -= 1
            thread.mark_regs_dirty()
            return HANDLED
        if vector == 1 and self.watchpoints.is_stepping(thread):
            return self.watchpoints.after_step(thread)
        debug = self.debug_of(thread)
        if vector == 1 and debug.stepping:
            if debug.in_step_range(regs[RIP]):
                return HANDLED                      # range stepping: no stop until the pc leaves the range
            thread.set_trap_flag(False)
            debug.stepping = False
            return StopEvent(thread.tid, StopReason.STEP, SIGTRAP)
        if vector == 14 and self.watchpoints.owns_fault(thread, error_code):
            return self.watchpoints.on_fault(thread)
        return None

    # ---- ControlTarget (called on the stub's thread) -------------------------------------------------------
    def write_registers(self, tid: int, values: Mapping[str, int]) -> None:
        write_registers(self._thread(tid), values)

    def write_memory(self, addr: int, data: bytes) -> None:
        data = self.proc.breakpoints.write_through(addr, data)
        try:
            self.proc.mem.write_debug(addr, data)
        except GuestFault:
            raise GuestMemoryError(addr, len(data)) from None

    def resume(self, actions: Sequence[ResumeAction]) -> None:
        self.attached = True
        if not self.non_stop:               # non-stop: a queued event is another thread's, still to be reported
            stale = self.events.drain()
            if stale:
                self._requeue_unreported(stale)
        default: ResumeAction | None = None
        own: dict[int, ResumeAction] = {}   # the first action naming each thread wins over the default
        for given in actions:
            if given.tid == -1:
                default = default or given
            else:
                own.setdefault(given.tid, given)
        to_release = []
        steppers = []
        for thread in self.proc.live_threads():
            action = own.get(thread.tid, default)
            if action is None or action.kind is ResumeKind.STOP:
                continue
            debug = self.debug_of(thread)
            if action.signal or debug.reported is not None:
                self._hand_back_signal(thread, debug, action.signal)
            if action.kind is ResumeKind.STEP:
                debug.stepping = True
                debug.step_range = (action.range_start, action.range_end) if action.range_end else None
                thread.set_trap_flag(True)
                steppers.append(thread)
            else:
                debug.step_range = None
                if debug.stepping:              # a step cut short (an interrupt, its gdb gone): continue means go
                    debug.stepping = False
                    thread.set_trap_flag(False)
            to_release.append(thread)
        self.stopped = False
        if len(steppers) == 1 and self._can_step_here(steppers[0]):
            here = steppers[0]
            if len(to_release) > 1:
                self._release([t for t in to_release if t is not here])
            self._step_here(here)
            return
        if (len(to_release) == 1 and not steppers and not self.non_stop and default is not None
                and not default.signal and self._can_continue_here(to_release[0])):
            self._continue_here(to_release[0])
            return
        self._release(to_release)

    def _release(self, threads: list[VcpuThread]) -> None:
        """Threads back to their own loops: where they park next is theirs to say."""
        for thread in threads:
            self.debug_of(thread).clean_park = False
        self.world.resume_all(threads)

    def _parked_plain(self, thread: VcpuThread) -> bool:
        """Parked by an exception's stop, after which its loop goes straight back to KVM_RUN (clean_park; not a stop
        inside the code that serves a syscall or delivers a signal, which goes on from where it parked once the
        thread is released: a syscall catchpoint's, a signal's restarting the call it interrupted, a step's over
        `syscall`), with nothing for its loop to do before it runs again (an exit to serve, a freeze, a blocking
        call it is parked in, a signal to deliver, a watchpoint's page to re-protect): what a run made on the
        stub's thread needs, a step's and a continue's alike. km -g's entry stop (and an exec's) is one too: the new
        thread's loop parks at its top before its first run (thread.thread set: its loop, not start(), holds it)."""
        return (self.debug_of(thread).clean_park and thread.state is State.PAUSED and thread.thread is not None
                and not thread.exit_pending and not thread.freezing and not thread.parked_in_syscall
                and not thread.at_syscall_stop and not self.watchpoints.points
                and not self.proc.signals.has_pending(thread))

    def _await_first_park(self, thread: VcpuThread) -> None:
        """km -g's entry stop is posted before km's main thread starts the vCPU's (VcpuThread.start, which counts
        it running until its loop parks at its top): a client quicker than gdb may resume it before then, when only
        the generic path could. Wait (at most FIRST_PARK_WAIT_S) for that park, where the quick lane may run it."""
        with thread.cond:
            thread.cond.wait_for(lambda: thread.thread is not None and thread.state is State.PAUSED,
                                 FIRST_PARK_WAIT_S)

    def _can_step_here(self, thread: VcpuThread) -> bool:
        """A plain single step of a parked thread (and not a range to keep stepping through)."""
        return (self._parked_plain(thread) and self.debug_of(thread).step_range is None
                and not self.watchpoints.is_stepping(thread))

    def _can_continue_here(self, thread: VcpuThread) -> bool:
        """A continue of the only thread, parked by an exception stop: run here until the period of RunDeadline
        ends (a breakpoint hit within it costs no thread hand-off either way)."""
        return (self._parked_plain(thread) and not thread.trap_flag and len(self.proc.threads) == 1
                and not self.proc.ended.is_set())

    def _continue_here(self, thread: VcpuThread) -> None:
        """gdb's continue, run by the stub's thread until the payload stops at a breakpoint, makes any other
        exit (a syscall, a fault: served by the vCPU's own thread, as after _step_here) or runs past the
        deadline's period (kicked out: the vCPU's thread runs on). The stop is posted from here, the vCPU thread
        staying parked, as for a step."""
        if not self._deadline.arm():
            self._release([thread])
            return
        try:
            error_code = self._run_to_stop_here(thread)
        finally:
            self._deadline.disarm()
        self._after_run_here(thread, BREAKPOINT_VECTOR, error_code)

    def _run_to_stop_here(self, thread: VcpuThread) -> int | None:
        """A continue's run_for_debugger, the calls it meets that may be served here served here too
        (VcpuThread.serve_syscall_here): from km -g's entry stop to a breakpoint in main, musl's start-up makes two
        calls, which would each hand the run to the vCPU's thread and the stop back (two wake-ups). Calls are
        served here only within the deadline's first period: a kick that lands while one is served is spent by its
        handler, not pending at the next KVM_RUN (run_for_debugger clears immediate_exit), and on hardware KVM a
        program that loops on a call spends nearly all its time in the serving, where the kicks would land; past
        the period the vCPU's own thread takes the call over, and ^C reaches the stub."""
        served_until = time.monotonic() + FIRST_S
        while True:
            error_code = thread.run_for_debugger(BREAKPOINT_VECTOR, False, self._compiled)
            if error_code is not None or time.monotonic() >= served_until or not thread.serve_syscall_here():
                return error_code

    def _step_here(self, thread: VcpuThread) -> None:
        """gdb's stepi on the stub's own thread (VcpuThread.run_for_debugger): the thread stays parked and its
        STEP event is posted from here. Any other end of the run (a `syscall` exit, a fault) is handed to the
        thread, which serves it as if it had run the instruction itself."""
        self._after_run_here(thread, DEBUG_VECTOR, thread.run_for_debugger(DEBUG_VECTOR, False, self._compiled))

    def _after_run_here(self, thread: VcpuThread, vector: int, error_code: int | None) -> None:
        """The end of a run made on the stub's thread (resume()): a stop for the debugger goes to the listener
        (report_stops_to) or is posted, the thread staying parked."""
        event = self._end_of_run_here(thread, vector, error_code)
        if event is None:
            return
        listener = self._listener
        if listener is not None and not self.non_stop:     # the stub reports it before resume() returns
            accepted = self._accepted(event)
            if accepted is None or listener(accepted):
                return
        self._post(event)

    def _end_of_run_here(self, thread: VcpuThread, vector: int, error_code: int | None) -> StopEvent | None:
        """The stop a run made on the stub's thread ended in (its trap recorded, the thread still parked), or None:
        anything else is the thread's own to serve, as if it had made the run itself, and it is released."""
        if error_code is None:
            self.debug_of(thread).clean_park = False
            if thread.exit_pending:
                thread.release_with_exit()
            else:
                thread.release()
            return None
        event = self._exception_event(thread, vector, error_code)
        if isinstance(event, StopEvent):
            self._record_trap(thread, event)
            return event
        if event is None:                       # not the debugger's trap: the payload's SIGTRAP, as the loop would
            self.proc.fault(thread, vector, error_code)
        self.debug_of(thread).clean_park = False
        thread.release()
        return None

    # ---- QuickResumeTarget (the stub's plain stepi and continue) ---------------------------------------------
    def prepare_quick_resume(self) -> None:
        """kdbg.target.QuickResumeTarget: on the stub's thread while gdb starts (km -g), what the first continue
        made there would make first: the run deadline's timer (one per host thread) and each thread's run
        arguments (VcpuThread.prepare_debugger_run)."""
        self._deadline.prepare()
        for thread in list(self.proc.threads.values()):
            thread.prepare_debugger_run(self._compiled)

    def quick_resume(self, step_tid: int) -> QuickStop | bool:
        """kdbg.target.QuickResumeTarget: resume()'s _step_here and _continue_here for a process of one parked
        thread with nothing pending (no queued or held event, no signal gdb was shown, no step cut short), made
        without resume()'s generic bookkeeping; the stop is returned instead of handed to the listener."""
        threads = self.proc.threads
        if self.non_stop or not self.stopped or len(threads) != 1 or not self.events.empty():
            return False
        for thread in threads.values():
            break
        debug = self._debug.get(thread)
        if debug is None or debug.reported is not None or debug.stepping or debug.step_range is not None:
            return False
        if debug.clean_park and (thread.thread is None or thread.state is not State.PAUSED):
            self._await_first_park(thread)
        if step_tid:                        # _can_step_here, its step range already known to be None
            if thread.tid != step_tid or not self._parked_plain(thread) or self.watchpoints.is_stepping(thread):
                return False
        elif not self._can_continue_here(thread) or not self._deadline.arm():
            return False
        self.attached, self.stopped = True, False
        if step_tid:
            debug.stepping = True           # (the trap flag is set and cleared by the run itself)
            vector = DEBUG_VECTOR
            error_code = thread.run_for_debugger(DEBUG_VECTOR, True, self._compiled)
        else:
            vector = BREAKPOINT_VECTOR
            try:
                error_code = self._run_to_stop_here(thread)
            finally:
                self._deadline.disarm()
        if step_tid and error_code is not None:
            # the step's #DB: _exception_event's STEP, shortened (no watchpoint's step and no range, checked above;
            # the run cleared the trap flag)
            debug.stepping = False
            step = StopEvent(thread.tid, StopReason.STEP, SIGTRAP)
            self._record_trap(thread, step)
            event: StopEvent | None = step
        else:
            event = self._end_of_run_here(thread, vector, error_code)
        if event is None:
            return True
        # accepted as _accepted() would: the one thread is parked (run_for_debugger left it so), pause requested
        self.stopped = True
        self.last_stop[event.tid] = event
        regs = thread.regs
        return event, regs[RBP], regs[RSP], regs[RIP]

    def _hand_back_signal(self, thread: VcpuThread, debug: ThreadDebug, signo: int) -> None:
        """gdb resumes with the signal it was shown (or another): it is delivered; without one, discarded."""
        shown, debug.reported = debug.reported, None
        if not signo:
            return
        info = shown.info if shown is not None and shown.signo == signo else make_siginfo(signo, 0x80)
        pending = PendingSignal(signo, info, seen_by_debugger=True)
        with self.proc.signals.lock:
            self.proc.signals.of(thread).pending.insert(0, pending)

    def _requeue_unreported(self, stale: list[StopEvent]) -> None:
        """Events gdb never saw: breakpoints and steps happen again; signals go back to their queue."""
        for event in stale:
            thread = self.proc.threads.get(event.tid)
            if event.reason is not StopReason.SIGNAL or thread is None:
                continue
            debug = self.debug_of(thread)
            shown, debug.reported = debug.reported, None
            if shown is not None:
                shown.seen_by_debugger = False
                with self.proc.signals.lock:
                    self.proc.signals.of(thread).pending.insert(0, shown)

    def _stop_the_world(self) -> None:
        """Pause every vCPU; return only once each has parked, so that no stop is reported as complete while a
        thread still runs. A thread that does not park in time is named in the trace and waited for again."""
        while True:
            try:
                self.world.pause_all(PAUSE_TIMEOUT_S)
                return
            except PauseTimeout as e:
                log.warning("stop-the-world: %s; the stop is not reported until every thread has parked", e)
                if self.proc.ended.is_set():
                    return

    def interrupt(self) -> None:
        self.attached = True
        if self.stopped or self.proc.ended.is_set():
            tid = next(iter(self.threads()), 0)
            self._post(StopEvent(tid, StopReason.INTERRUPT, 0))
            return
        self._stop_the_world()
        self.stopped = True
        threads = self.threads()
        if threads:
            self._post(StopEvent(threads[0], StopReason.INTERRUPT, 0))

    def event_fd(self) -> int:
        return self.events.read_fd

    def next_event(self) -> StopEvent | None:
        event = self.events.take()
        if event is None:
            return None
        return self._accepted(event)

    def report_stops_to(self, listener: Callable[[StopEvent], bool] | None) -> None:
        """kdbg.target.EarlyStopTarget: a stop of a run made on the stub's thread (_step_here, _continue_here)."""
        self._listener = listener

    def _accepted(self, event: StopEvent) -> StopEvent | None:
        """An event as the debugger may be shown it (all-stop: every thread parked first), or None when it is held
        back. Doing it twice to one event changes nothing (a stop the listener declined is queued after this)."""
        if event.reason not in (StopReason.EXITED, StopReason.TERMINATED, StopReason.HAND_OVER):
            if not self.non_stop:
                if self.stopped and event.reason is StopReason.SIGNAL:
                    # a signal that came behind the stop gdb is shown (all-stop): gdb never sees this one, so the
                    # next resume hands it back to its thread (_requeue_unreported) instead of discarding it
                    self.events.hold_back(event)
                    return None
                if not self._all_parked():
                    self._stop_the_world()
                self.stopped = True
            self.last_stop[event.tid] = event
        return event

    def _all_parked(self) -> bool:
        """Every thread parked and asked to stay so: what _stop_the_world would establish, without its requests,
        kicks and waits (each a lock round). A stepi made on this thread, or a breakpoint of a single-threaded
        payload, leaves the world so."""
        for t in self.proc.live_threads():      # a loop, not all() over a generator: asked at every stop
            if t.state is not State.PAUSED or not t.pause_requested:
                return False
        return True

    # ---- NonStopTarget (gdb's non-stop mode) -----------------------------------------------------------------
    def set_non_stop(self, on: bool) -> None:
        """Called while every thread is parked (the stub refuses the switch otherwise)."""
        self.non_stop = on

    def stop_threads(self, tids: Sequence[int]) -> None:
        """vCont;t: park each running thread named, then post one INTERRUPT (signal 0) per thread. A thread that
        parked itself meanwhile (a breakpoint) posts its own event too: the stub reports the first it reads."""
        threads = [t for t in (self.proc.threads.get(tid) for tid in tids) if t is not None
                   and t.state is not State.EXITED]
        late = set(pause(threads, PAUSE_TIMEOUT_S))      # (StopTheWorld.pause_all's three steps)
        for thread in threads:
            if thread in late:
                log.warning("non-stop: %s did not stop within %.0f s", thread, PAUSE_TIMEOUT_S)
                continue
            self.last_stop[thread.tid] = StopEvent(thread.tid, StopReason.INTERRUPT, 0)
            self._post(self.last_stop[thread.tid])

    def set_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        self.attached = True
        if kind in (BreakpointKind.SOFTWARE, BreakpointKind.HARDWARE):
            try:
                self.proc.breakpoints.insert(addr)
            except GuestFault:
                raise GuestMemoryError(addr, 1) from None
            return
        self.watchpoints.add(kind, addr, length)

    def planted_here(self, changes: Sequence[tuple[bool, int, int]]) -> None:
        """kdbg.target.PlantingTarget: as set_breakpoint, an int3 planted means a debugger is attached."""
        if any(inserted for inserted, _, _ in changes):
            self.attached = True
        super().planted_here(changes)

    def clear_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        if kind in (BreakpointKind.SOFTWARE, BreakpointKind.HARDWARE):
            self.proc.breakpoints.remove(addr)
            return
        self.watchpoints.remove(kind, addr, length)

    def supports(self) -> frozenset[str]:
        return _SUPPORTS

    def detach(self) -> None:
        self.caught_syscalls = None
        self.non_stop = False
        self.proc.breakpoints.remove_all()
        self.watchpoints.clear()
        self.attached = False
        for thread in self.proc.live_threads():
            self.debug_of(thread).stepping = False
            if thread.trap_flag:
                thread.set_trap_flag(False)
        self._requeue_unreported(self.events.drain())
        for record in self._debug.values():
            record.reported = None
            record.clean_park = False
        self.stopped = False
        self.world.resume_all()

    def kill(self) -> None:
        self.attached = False
        for record in self._debug.values():
            record.clean_park = False
        self.proc.end(Ending(signal=SIGKILL))
        self.world.resume_all()
