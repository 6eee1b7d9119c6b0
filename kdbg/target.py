"""The contract between debugger front ends (RSP stub, core writer) and whatever holds a stopped program.

A live VM (monitor.debug.live_target.LiveTarget) and a core file (kdbg.core.reader.CoreTarget) both implement
`Target`, so the stub and the core writer have one code path for live and post-mortem debugging
(docs/HOUSE-STYLE.md 2.3). Only the stdlib and kdbg.arch may be imported here.

Thread ids (`tid`) are the guest's own thread ids (what gettid() returns inside the payload): positive ints,
the first thread's equal to the payload's pid. Registers are a dict keyed by the names of
kdbg.arch.x86_64.REGISTERS, values unsigned ints of the register's width. Signals are Linux numbers;
conversion to gdb's numbering happens only in kdbg/rsp/signals.py.
"""
from __future__ import annotations

import collections
import enum
import os
import threading
from typing import Callable, Mapping as MappingT, NamedTuple, Protocol, Sequence, runtime_checkable

# a mapping as Linux shows it: part of this contract (Target.memory_regions), at home with the Linux ABI
from kdbg.arch.linux import MemoryRegion, maps_line, maps_text  # noqa: F401


class TargetError(Exception):
    """Base of every error a target raises; the stub turns it into an `Exx` reply."""

    errno: int = 5  # EIO


class GuestMemoryError(TargetError):
    """An address range that is not mapped (or not readable/writable) in the guest."""

    errno = 14  # EFAULT

    def __init__(self, addr: int, size: int) -> None:
        super().__init__(f"guest memory {addr:#x}+{size:#x} is not accessible")
        self.addr, self.size = addr, size


class NoSuchThreadError(TargetError):
    errno = 3  # ESRCH

    def __init__(self, tid: int) -> None:
        super().__init__(f"no thread {tid}")
        self.tid = tid


class StopReason(enum.Enum):
    SIGNAL = "signal"            # a signal is about to be delivered to the thread (incl. synchronous faults)
    BREAKPOINT = "swbreak"       # a Z0 breakpoint (int3 planted by the debugger)
    HW_BREAKPOINT = "hwbreak"    # a Z1 breakpoint
    WATCHPOINT = "watch"         # a Z2/Z3/Z4 watchpoint; see watch_addr/watch_kind
    STEP = "step"                # a single step finished
    INTERRUPT = "interrupt"      # stopped on request (Ctrl-C, another thread's stop in all-stop mode)
    EXITED = "exited"            # the whole process exited; exit_status is set
    TERMINATED = "terminated"    # the whole process was killed by `signal`
    ENTRY = "entry"              # stopped before the first instruction (km -g)
    FORK = "fork"                # the thread forked; child_pid/child_tid name the (stopped) child
    VFORK = "vfork"              # the same for vfork: the parent waits for the child's exec or exit
    VFORK_DONE = "vforkdone"     # the vfork child execed or exited: the parent goes on
    EXEC = "exec"                # the process runs a new program (exec_path), stopped at its first instruction
    SYSCALL_ENTRY = "syscall_entry"     # a caught syscall (number in `syscall`) is about to run
    SYSCALL_RETURN = "syscall_return"   # a caught syscall returned (its result in rax)
    HAND_OVER = "hand-over"      # not a stop: the process is about to exec; the stub answers with hand_over()

    # Members are singletons compared by identity: the identity hash is consistent with that, and a C slot where
    # Enum's own __hash__ is a Python call (~0.2 us; each stop looks its reason up in 4-5 dicts and sets).
    __hash__ = object.__hash__


class BreakpointKind(enum.IntEnum):
    """Numbered as the Z packet's type field."""

    SOFTWARE = 0
    HARDWARE = 1
    WRITE = 2
    READ = 3
    ACCESS = 4


SIGTRAP = 5


# The value types below are NamedTuples: immutable and hashable as frozen dataclasses were, built without the
# code generation a @dataclass runs at every import (~0.7 ms a class, at every km start); a copy with changes
# is `value._replace(field=...)`.
class StopEvent(NamedTuple):
    tid: int
    reason: StopReason
    signal: int = 0                   # Linux signal number (SIGTRAP for breakpoints and steps)
    exit_status: int | None = None    # EXITED: the status; TERMINATED: None
    watch_addr: int | None = None
    watch_kind: BreakpointKind | None = None
    child_pid: int | None = None      # FORK/VFORK
    child_tid: int | None = None
    exec_path: str | None = None      # EXEC
    syscall: int | None = None        # SYSCALL_ENTRY/SYSCALL_RETURN: the syscall number


PROCESS_ENDS = frozenset({StopReason.EXITED, StopReason.TERMINATED})


class StopEventQueue:
    """A live target's events on their way to the stub: posted from any thread (a vCPU's, a link's reader), taken
    by the stub's thread, which waits on `read_fd` (the target's event_fd(): one byte per event posted). The one
    home of this plumbing for LiveTarget and LinkedTarget."""

    def __init__(self, place_fd: Callable[[int], int] | None = None) -> None:
        """`place_fd` may move each end of the pipe (km keeps its own descriptors out of the payload's range)."""
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        if place_fd is not None:
            read_fd, write_fd = place_fd(read_fd), place_fd(write_fd)
        self.read_fd, self._write_fd = read_fd, write_fd
        self._events: collections.deque[StopEvent] = collections.deque()
        self._held: list[StopEvent] = []      # hold_back(): taken, never reported, waiting for drain()
        self._lock = threading.Lock()

    def post(self, event: StopEvent) -> None:
        with self._lock:
            self._events.append(event)
        os.write(self._write_fd, b"!")

    def wake(self) -> None:
        """Wake the reader without an event (its take() then returns None): the stopped process changed in a way
        no event reports, and what the stub keeps of it (kdbg/rsp/cstop.py's stop lane) must be read again."""
        os.write(self._write_fd, b"!")

    def take(self) -> StopEvent | None:
        """The oldest event, or None (when the byte read was left by an event drain() already took, or by
        wake())."""
        try:
            os.read(self.read_fd, 1)
        except BlockingIOError:
            pass
        with self._lock:
            return self._events.popleft() if self._events else None

    def hold_back(self, event: StopEvent) -> None:
        """An event taken while the world was already stopped for another one, which the debugger will never be
        shown: kept for the next drain(), so that a resume or detach hands it back to its thread (a signal that
        came behind another thread's breakpoint is delivered after the resume, as Linux keeps it pending)."""
        with self._lock:
            self._held.append(event)

    def empty(self) -> bool:
        """Nothing queued and nothing held back (read without the lock: only the stub's thread asks, while every
        thread is parked, and an event posted just now is the same as one posted after the question)."""
        return not self._events and not self._held

    def drain(self) -> list[StopEvent]:
        """Every waiting stop of a thread, removed at once (a resume or detach hands them back to their threads),
        the held-back ones first. The process's end stays queued: it never happens again, and it can come while
        the world counts as stopped (a thread in exit_group is in a syscall, which a stop-the-world does not wait
        for)."""
        if not self._held and not self._events:     # each resume's case: no lock, no lists (an event posted
            return []                               # just now is the same as one posted after the lock)
        with self._lock:
            events = self._held + [e for e in self._events if e.reason not in PROCESS_ENDS]
            self._held = []
            ends = [e for e in self._events if e.reason in PROCESS_ENDS]
            self._events.clear()
            self._events.extend(ends)
        return events

    def close(self) -> None:
        for fd in (self.read_fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


class ResumeKind(enum.Enum):
    CONTINUE = "c"
    STEP = "s"
    STOP = "t"

    __hash__ = object.__hash__      # as StopReason's


class ResumeAction(NamedTuple):
    kind: ResumeKind
    tid: int = -1       # -1: every thread without an action of its own
    signal: int = 0     # Linux signal to deliver on resume (0: none)
    range_start: int = 0    # STEP with a range (vCont;r): keep stepping while range_start <= pc < range_end
    range_end: int = 0
    pid: int = 0        # the process of `tid` as gdb named it (p<pid>.<tid>); 0: not named. The stub uses it
    #                     to choose the process; each target receives only its own actions.


@runtime_checkable
class Target(Protocol):
    """A stopped program: readable, not necessarily controllable."""

    def threads(self) -> Sequence[int]: ...

    def thread_name(self, tid: int) -> str: ...

    def registers(self, tid: int) -> dict[str, int]:
        """The thread's registers by kdbg.arch name. Callers never change the mapping: a target may return the same
        one again while the thread stays stopped (LiveTarget while it is parked, CoreTarget always), and the stub's
        `g` reply is memoised on that object (kdbg/rsp/registers.py)."""
        ...

    def read_memory(self, addr: int, size: int) -> bytes: ...

    def mappings(self) -> Sequence[MemoryRegion]: ...

    def auxv(self) -> bytes: ...

    def exe_path(self) -> str: ...

    def pid(self) -> int: ...

    def stop_event(self, tid: int) -> StopEvent: ...

    def siginfo(self, tid: int) -> bytes:
        """The 128-byte Linux siginfo_t of the thread's last signal, or b"" when there is none."""
        ...


@runtime_checkable
class FrameRegistersTarget(Protocol):
    """A target that reads the registers a stop reply carries (rbp, rsp, rip) without making a thread's whole
    register file: gdb asks for nothing more at most stops (a stepi, a breakpoint hit)."""

    def frame_registers(self, tid: int) -> tuple[int, int, int]:
        """rbp, rsp and rip of a stopped thread (NoSuchThreadError for a thread that is gone)."""


@runtime_checkable
class HostMemoryTarget(Protocol):
    """A target whose memory lies in the debugger's own address space (km's guest memory): the stub's stop lane
    (kdbg/rsp/cstop.py) reads it in C while the process is stopped, as read_memory() would."""

    def memory_key(self) -> object:
        """A value that changes whenever host_windows() may (a VMA added, removed or moved, another address
        space)."""

    def host_windows(self) -> Sequence[tuple[int, int, int]]:
        """(guest start, guest end, host address of start) of every range read_memory() reads as one copy of
        host memory; valid while memory_key() stays the same and the process stays stopped."""

    def planted_breakpoints(self) -> Sequence[tuple[int, int]]:
        """(address, the byte it hides) of every int3 planted: read_memory() shows those bytes instead."""


@runtime_checkable
class PlantingTarget(Protocol):
    """A HostMemoryTarget whose software breakpoints the stop lane may plant and take out itself (writing the int3, or
    the byte it hid, through the host windows, as set_breakpoint and clear_breakpoint would)."""

    def planted_here(self, changes: Sequence[tuple[bool, int, int]]) -> None:
        """Take over what the lane did, in order: (True, address, the byte the int3 hides) for an int3 it planted
        or found planted, (False, address, 0) for one it took out or found absent; the records are then as if
        set_breakpoint / clear_breakpoint had made each change."""


@runtime_checkable
class EarlyStopTarget(Protocol):
    """A target whose resume() may end in a stop before it returns (a single step, or a short continue, run on the
    caller's own thread): such a stop can be handed to the stub at once instead of through next_event(), so that
    the stop reply leaves before the resume's bookkeeping unwinds."""

    def report_stops_to(self, listener: Callable[[StopEvent], bool] | None) -> None:
        """From now on, a stop made during a resume() call (all-stop mode) goes to `listener` first, already
        accepted as next_event() would return it; the listener returns True when it took the stop (reported it),
        False to have it queued for next_event() as before. None: every stop is queued."""


QuickStop = tuple[StopEvent, int, int, int]     # QuickResumeTarget's stop: the event, and its thread's rbp, rsp, rip


@runtime_checkable
class QuickResumeTarget(Protocol):
    """A target that makes the two resumes of nearly every stop (gdb's stepi, and a continue to a breakpoint) of a
    stopped process that has one thread and nothing pending, on the caller's own thread, and returns their stop
    at once: the stub answers with no event queued or read, no register file made, no generic resume path."""

    def quick_resume(self, step_tid: int) -> QuickStop | bool:
        """Single-step thread `step_tid`, or continue (0). False: not such a plain case, nothing was done (call
        resume()). True: resumed; the stop (if any) comes through next_event() as after resume(). A QuickStop:
        the process stopped again, already accepted as next_event() would have returned the event."""
        ...

    def prepare_quick_resume(self) -> None:
        """Called on the stub's thread while it waits for gdb (km -g): make now what the first quick_resume made
        on this thread would make first (a timer, the run's arguments), so that gdb's first continue costs no
        more than later ones."""
        ...


@runtime_checkable
class NonStopTarget(Protocol):
    """A live program whose threads stop and run one by one (gdb's non-stop mode); only after set_non_stop(True)
    do its events leave the other threads running."""

    def set_non_stop(self, on: bool) -> None: ...

    def stop_threads(self, tids: Sequence[int]) -> None:
        """Park these threads; each stop arrives later as its own INTERRUPT event with signal 0."""


@runtime_checkable
class ControlTarget(Target, Protocol):
    """A live program the debugger can change and run. All calls come from one thread (the stub's)."""

    def write_registers(self, tid: int, values: MappingT[str, int]) -> None: ...

    def write_memory(self, addr: int, data: bytes) -> None: ...

    def resume(self, actions: Sequence[ResumeAction]) -> None: ...

    def interrupt(self) -> None:
        """Ask for a stop; it arrives later as an event (reason INTERRUPT)."""

    def set_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None: ...

    def clear_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None: ...

    def event_fd(self) -> int:
        """A file descriptor that becomes readable when next_event() has something."""

    def next_event(self) -> StopEvent | None:
        """The pending stop (all threads are stopped when one is returned), or None."""

    def supports(self) -> frozenset[str]:
        """Feature names the stub may advertise: 'hwbreak', 'swbreak', 'watch', 'step', 'range-step',
        'fork-events', 'vfork-events', 'exec-events', 'catch-syscalls'."""

    def report_events(self, kinds: frozenset[str]) -> None:
        """Which process events the debugger wants as stops: 'fork', 'vfork', 'exec' (gdb's qSupported
        fork-events+...). Without 'fork', a forked child is not followed: it runs on as if never debugged."""

    def forked_child(self, pid: int) -> ControlTarget:
        """The stopped child a FORK/VFORK event named, as a target of its own (gdb's new inferior)."""

    def set_syscall_catch(self, numbers: frozenset[int] | None) -> None:
        """Stop at entry to and return from these syscalls (empty: every one; None: none, the default)."""

    def hand_over(self, state: bytes) -> None:
        """Answer to a HAND_OVER event: the process is about to run a new program, and `state` is what the next
        program's stub needs to carry the debugging session on (its descriptors stay open across the exec). The
        stub must not use its connection after this returns, unless the exec failed (then it goes on)."""

    def detach(self) -> None:
        """Remove every breakpoint and watchpoint and let the program run on."""

    def kill(self) -> None: ...
