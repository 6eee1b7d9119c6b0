"""The state one gdb connection works on: the processes the stub serves (gdb's inferiors: the payload, and the
children its forks reported), each with its run state (kept across connections), and the per-connection
choices gdb made (selected process and thread, no-ack, features, open host files, inserted points).

Handlers receive a Session instead of mutating a module global (the QEMU gdbstub habit the house style avoids).
`session.target`, `.control` and `.run` are the *current* process's: the one gdb selected with Hg, else the one
that reported the last stop, so memory, register and breakpoint packets act on the process gdb means.
"""
from __future__ import annotations

import collections
from typing import Callable

from kdbg.link_map import LibraryCache
from kdbg.rsp.errors import RspError
from kdbg.target import (PROCESS_ENDS, BreakpointKind, ControlTarget, FrameRegistersTarget, QuickResumeTarget, QuickStop,
                         ResumeAction, StopEvent, Target)
from kdbg.tracelog import logger

log = logger("km.gdb")


class RunState:
    """What one process is doing; outlives connections because the payload does.

        running --event: reported()--> stopped --resume packet: resumed()--> running
        any --EXITED/TERMINATED event: reported()--> exited (final)

    (Plain classes, here and Session: `dataclasses` costs km -g's start ~6 ms.)
    """

    def __init__(self, running: bool, last_stop: StopEvent | None = None) -> None:
        self.running = running
        self.last_stop = last_stop
        self.pending_interrupts = 0      # interrupt() calls whose INTERRUPT event has not arrived yet
        self.last_actions: tuple[ResumeAction, ...] = ()
        self.held_for_other = False      # stopped by the stub because another process stopped (all-stop)
        self.deferred: StopEvent | None = None   # a stop that came after this process was held for another's
        #                                          stop: reported at the next resume instead of resuming (gdbserver)
        self.ns_stopped: set[int] = set()   # non-stop mode: the threads gdb knows (or will) as stopped

    @property
    def exited(self) -> bool:
        return self.last_stop is not None and self.last_stop.reason in PROCESS_ENDS

    def resumed(self, actions: tuple[ResumeAction, ...]) -> None:
        """stopped --resume packet--> running, whichever lane made the resume (Session.resume, the quick lane): the
        actions are kept for a passed signal's resume (QPassSignals), and the process is no longer held for
        another's stop."""
        self.last_actions = actions
        self.running = True
        self.held_for_other = False

    def reported(self, event: StopEvent) -> None:
        """running --event--> stopped (or exited): `event` is the stop gdb hears of, and `?` repeats."""
        self.running = False
        self.last_stop = event


class Inferior:
    """One process the stub serves: its target and its run state."""

    def __init__(self, target: Target, run: RunState) -> None:
        self.target, self.run = target, run
        # isinstance() against a runtime Protocol checks every method: once per process, not per packet.
        self.control: ControlTarget | None = target if isinstance(target, ControlTarget) else None
        self.frame_registers: Callable[[int], tuple[int, int, int]] | None = (
            target.frame_registers if isinstance(target, FrameRegistersTarget) else None)
        self.quick_resume: Callable[[int], QuickStop | bool] | None = (
            target.quick_resume if isinstance(target, QuickResumeTarget) else None)
        self.pid: int = target.pid()
        self.attached = True        # False once gdb detached it (the payload, running on while a child is debugged)
        self.libraries = LibraryCache()     # qXfer:libraries-svr4's last document for this process

    @property
    def live(self) -> ControlTarget:
        """The control target, in the paths only a live process reaches (a core file never runs)."""
        assert self.control is not None, "a read-only target never runs"
        return self.control


class Session:
    def __init__(self, main: Target, main_run: RunState, initially_stopped: bool = True,
                 inferiors: dict[int, Inferior] | None = None) -> None:
        self.main = main                 # the process the stub was started for (the payload)
        self.main_run = main_run
        self.initially_stopped = initially_stopped
        self.inferiors: dict[int, Inferior] = {} if inferiors is None else inferiors   # pid -> process, main's
        #                                                                                  included
        self.g_pid = 0                   # Hg process: 0 = the one that reported the last stop
        self.g_tid = 0                   # Hg thread: g/G/p/P; 0 = the thread that reported the last stop
        self.c_tid = -1                  # Hc thread for the legacy c/s packets; -1 = all
        self.no_ack = False
        self.gdb_features: frozenset[str] = frozenset()
        self.pass_signals: frozenset[int] = frozenset()        # Linux numbers reported to gdb only when not passed
        self.program_signals: frozenset[int] | None = None     # None: gdb never restricted them
        self.catch_syscalls: frozenset[int] | None = None      # QCatchSyscalls: None off, empty = every syscall
        self.points: set[tuple[int, BreakpointKind, int, int]] = set()     # (pid, kind, addr, length)
        self.host_files: dict[int, int | bytes] = {}   # vFile fd -> host fd, or the content of a payload /proc file
        self.ending = False              # D or k of the last process: close the connection after this reply
        self.non_stop = False            # QNonStop:1 (nonstop.py): threads stop and run one by one
        self.stop_queue: collections.deque[bytes] = collections.deque()   # non-stop: stop replies not yet
        #                                  acknowledged by vStopped; the head is the one last sent to gdb
        self.notified = False            # non-stop: a %Stop notification is out and gdb has not drained the queue
        self.lldb_stop_keys = False      # lldb sent QListThreadsInStopReply: T replies carry threads: and hexname:
        self.threads_document: tuple[tuple, bytes, dict[tuple[int, int], bytes]] | None = None   # qXfer:threads:
        #                                  what the document shows, the document, its windows read so far (xfer.threads)
        if not self.inferiors:
            first = Inferior(self.main, self.main_run)
            self.inferiors[first.pid] = first
        self.last_pid = next(iter(self.inferiors))     # the process whose stop was reported last

    # ---- the current process ----

    @property
    def current(self) -> Inferior:
        """The process gdb means: Hg's, else the last stop's, else the first still served."""
        for pid in (self.g_pid, self.last_pid):
            if pid > 0 and pid in self.inferiors:
                return self.inferiors[pid]
        return next(iter(self.inferiors.values()), None) or Inferior(self.main, self.main_run)

    @property
    def target(self) -> Target:
        return self.current.target

    @property
    def control(self) -> ControlTarget | None:
        """The current process as a ControlTarget, or None for a read-only one (a core file)."""
        return self.current.control

    @property
    def live(self) -> ControlTarget:
        """The current process of a packet registered with needs_control=True (dispatch answered E01 for a core
        file)."""
        control = self.current.control
        if control is None:
            raise RspError("the target is read-only", 1)
        return control

    @property
    def libraries(self) -> LibraryCache:
        return self.current.libraries

    @property
    def run(self) -> RunState:
        return self.current.run

    @property
    def any_running(self) -> bool:
        for inf in self.inferiors.values():      # asked twice per packet: a loop, not any() over a generator
            if inf.run.running and inf.attached:
                return True
        return False

    def attached_inferiors(self) -> list[Inferior]:
        return [inf for inf in self.inferiors.values() if inf.attached]

    @property
    def multiprocess(self) -> bool:
        """gdb offered the multiprocess extensions (and so was offered them back): ids are p<pid>.<tid>."""
        return "multiprocess" in self.gdb_features

    def inferior(self, pid: int) -> Inferior:
        """The process a thread id names (<= 0: the current one); KeyError for one the stub does not serve."""
        if pid <= 0:
            return self.current
        return self.inferiors[pid]

    def format_tid(self, tid: int, pid: int = 0) -> bytes:
        """A thread id as gdb expects it; with multiprocess gdb learns the payload's real pid from it."""
        return b"p%x.%x" % (pid or self.target.pid(), tid) if self.multiprocess else b"%x" % tid

    def current_tid(self) -> int:
        """The thread g/p and the stop-related queries act on."""
        inf = self.current
        threads = inf.target.threads()
        if self.g_tid > 0 and self.g_tid in threads:
            return self.g_tid
        stop = inf.run.last_stop
        if stop is not None and stop.tid in threads:
            return stop.tid
        return threads[0]

    def reported(self, inferior: Inferior) -> None:
        """An all-stop stop reply of `inferior` goes to gdb: its process is the current one, and g/p act on the
        thread that stopped (gdb's Hg choice ends with the stop, as gdbserver's does)."""
        self.last_pid, self.g_pid, self.g_tid = inferior.pid, 0, 0

    def select(self, pid: int, tid: int) -> None:
        """Hg: the process and thread the following packets act on."""
        self.g_pid = pid if pid > 0 else 0
        self.g_tid = max(tid, 0)

    def resume(self, actions: list[ResumeAction], inferior: Inferior | None = None) -> None:
        """Hand the actions to a process's target and mark it running; the stop reply comes from the server."""
        inferior = inferior or self.current
        control = inferior.control
        if control is None:
            raise RspError("the target is read-only", 1)
        if self.program_signals is not None and any(a.signal for a in actions):
            actions = [a if a.signal in self.program_signals else a._replace(signal=0) for a in actions]
        log.debug("resume %d %s", inferior.pid, actions)
        run = inferior.run
        run.resumed(tuple(actions))
        if run.deferred is None:
            control.resume(actions)
