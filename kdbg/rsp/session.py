"""The state one gdb connection works on: the target's run state (kept across connections) and the
per-connection choices gdb made (selected threads, no-ack, features, open host files, inserted points).

Handlers receive a Session instead of mutating a module global (the QEMU gdbstub habit the house style avoids).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

from kdbg.link_map import LibraryCache
from kdbg.rsp.errors import RspError
from kdbg.target import BreakpointKind, ControlTarget, ResumeAction, StopEvent, StopReason, Target

log = logging.getLogger("km.gdb")


@dataclass
class RunState:
    """What the target is doing; outlives connections because the payload does.

        running --event--> stopped --resume packet--> running
        any --EXITED/TERMINATED event--> exited (final)
    """

    running: bool
    last_stop: StopEvent | None = None
    pending_interrupts: int = 0      # interrupt() calls whose INTERRUPT event has not arrived yet
    last_actions: tuple[ResumeAction, ...] = ()

    @property
    def exited(self) -> bool:
        return self.last_stop is not None and self.last_stop.reason in (StopReason.EXITED, StopReason.TERMINATED)


@dataclass
class Session:
    target: Target
    run: RunState
    initially_stopped: bool = True
    g_tid: int = 0                   # Hg thread: g/G/p/P; 0 = the thread that reported the last stop
    c_tid: int = -1                  # Hc thread for the legacy c/s packets; -1 = all
    no_ack: bool = False
    gdb_features: frozenset[str] = frozenset()
    pass_signals: frozenset[int] = frozenset()        # Linux numbers reported to gdb only when not passed
    program_signals: frozenset[int] | None = None     # None: gdb never restricted them
    points: set[tuple[BreakpointKind, int, int]] = field(default_factory=set)
    host_files: dict[int, int | bytes] = field(default_factory=dict)   # vFile fd -> host fd, or the
    #                                                                   content of a payload /proc file
    libraries: LibraryCache = field(default_factory=LibraryCache)     # qXfer:libraries-svr4's last document
    ending: bool = False             # D or k: close the connection after this reply

    def __post_init__(self) -> None:
        # isinstance() against a runtime Protocol checks every method: once per connection, not per packet.
        self._control = self.target if isinstance(self.target, ControlTarget) else None

    @property
    def control(self) -> ControlTarget | None:
        """The target as a ControlTarget, or None for a read-only one (a core file)."""
        return self._control

    @property
    def live(self) -> ControlTarget:
        """The target of a packet registered with needs_control=True (dispatch answered E01 for a core file)."""
        if self._control is None:
            raise RspError("the target is read-only", 1)
        return self._control

    @property
    def multiprocess(self) -> bool:
        """gdb offered the multiprocess extensions (and so was offered them back): ids are p<pid>.<tid>."""
        return "multiprocess" in self.gdb_features

    def format_tid(self, tid: int) -> bytes:
        """A thread id as gdb expects it; with multiprocess gdb learns the payload's real pid from it."""
        return b"p%x.%x" % (self.target.pid(), tid) if self.multiprocess else b"%x" % tid

    def current_tid(self) -> int:
        """The thread g/p and the stop-related queries act on."""
        threads = self.target.threads()
        if self.g_tid > 0 and self.g_tid in threads:
            return self.g_tid
        stop = self.run.last_stop
        if stop is not None and stop.tid in threads:
            return stop.tid
        return threads[0]

    def resume(self, actions: list[ResumeAction]) -> None:
        """Hand the actions to the target and mark it running; the stop reply comes from the server loop."""
        control = self.live
        if self.program_signals is not None:
            actions = [a if a.signal in self.program_signals else dataclasses.replace(a, signal=0) for a in actions]
        log.debug("resume %s", actions)
        self.run.last_actions = tuple(actions)
        self.run.running = True
        control.resume(actions)
