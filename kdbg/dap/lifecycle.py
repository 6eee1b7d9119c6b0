"""The DAP session's lifecycle as one state machine: the states, the moves between them, and which requests
each state can serve.

DAP's order (https://microsoft.github.io/debug-adapter-protocol/overview#initialization) is initialize →
launch/attach → breakpoints → configurationDone → run/stop until the debuggee ends → disconnect. What kind of
debuggee a session has (launch, attach, core) is a field beside the state, not a state of its own:

    INITIALIZING ──configurationDone──▶ CONFIGURED ──run──▶ RUNNING ◀──stop / resume──▶ STOPPED
         │                                  │   └──core, stop on entry──────────────────▲  │
         │                                  └────────────────┬──────────────────────────┘  │
         └──────────────────────────────────────────────────▶ EXITED ◀─────────────────────┘
    restart: CONFIGURED, RUNNING, STOPPED, EXITED ──▶ CONFIGURED      any state ──disconnect──▶ DISCONNECTED

A request that the current state cannot serve fails with CantHandle naming why (debugpy's `cant_handle`),
decided here from what the handler declares it needs (`Needs`), never by the handler testing flags.

In gdb's non-stop mode (the launch option `nonStop`) threads stop and run one by one: `Threads` keeps which are
stopped, the session is STOPPED while any is, and a request about one thread is gated on that thread's state.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .errors import CantHandle, InvalidArgument, ThreadRunning


class State(enum.Enum):
    INITIALIZING = "initializing"   # before configurationDone; a debuggee may already be launched or attached
    CONFIGURED = "configured"       # configurationDone answered, the first run or stop not decided yet
    RUNNING = "running"
    STOPPED = "stopped"
    EXITED = "exited"               # the payload ended (or gdb did); the session still answers
    DISCONNECTED = "disconnected"


class Mode(enum.Enum):
    LAUNCH = "launch"               # kdbg-dap started km and owns it
    ATTACH = "attach"               # a km (or debugpy) that was already running
    CORE = "core"                   # a kmcore: stopped for good


class Needs(enum.Enum):
    """What a request needs from the session to be served."""
    NOTHING = "nothing"             # any state
    NO_DEBUGGEE = "no debuggee"     # launch, attach
    CONFIGURING = "configuring"     # a debuggee whose configuration is not done yet
    DEBUGGEE = "debuggee"           # a debuggee that has not ended, running or not
    STOPPED = "stopped"             # a debuggee that is not running (state, stack, memory)
    RUNNABLE = "runnable"           # a stopped live debuggee (continue and the steps): not a core


_MOVES: dict[State, frozenset[State]] = {
    State.INITIALIZING: frozenset({State.CONFIGURED, State.EXITED}),
    State.CONFIGURED: frozenset({State.RUNNING, State.STOPPED, State.EXITED}),
    State.RUNNING: frozenset({State.STOPPED, State.EXITED, State.CONFIGURED}),
    State.STOPPED: frozenset({State.RUNNING, State.EXITED, State.CONFIGURED}),
    State.EXITED: frozenset({State.CONFIGURED}),
    State.DISCONNECTED: frozenset(),
}
_NOT_STOPPED = {State.RUNNING: "the debuggee is running: pause it first", State.EXITED: "the debuggee has exited"}


@dataclass(slots=True)
class Stop:
    """What the client may ask about the current stop; a thread's part is valid from its stop until it resumes."""
    record: dict[str, Any] = field(default_factory=dict)           # gdb's last *stopped record (or a core's)
    records: dict[int, dict[str, Any]] = field(default_factory=dict)   # thread id -> the *stopped record of its stop
    frames: dict[int, tuple[int, int]] = field(default_factory=dict)   # DAP frame id -> (thread id, level)
    last_frame_id: int = 0                 # frame ids are never reused: a forgotten one stays invalid

    def add_frame(self, thread_id: int, level: int) -> int:
        self.last_frame_id += 1
        self.frames[self.last_frame_id] = (thread_id, level)
        return self.last_frame_id

    def forget(self, thread_ids: set[int] | None = None) -> None:
        """Drop what was known about the stop of `thread_ids` (None: every thread), which resume or stop anew."""
        if thread_ids is None:
            self.records.clear()
            self.frames.clear()
            return
        for thread_id in thread_ids:
            self.records.pop(thread_id, None)
        self.frames = {frame: where for frame, where in self.frames.items() if where[0] not in thread_ids}


class Threads:
    """The debuggee's threads as gdb announced them and, in non-stop mode, which of them are stopped (in all-stop
    mode every thread shares the session's state)."""

    def __init__(self) -> None:
        self.non_stop = False
        self.known: set[int] = set()
        self.stopped: set[int] = set()

    def reset(self, non_stop: bool) -> None:
        """A new gdb: no thread known yet."""
        self.non_stop = non_stop
        self.known.clear()
        self.stopped.clear()

    def exited(self, thread_id: int) -> None:
        self.known.discard(thread_id)
        self.stopped.discard(thread_id)

    def mark_stopped(self, thread_ids: set[int]) -> None:
        self.known |= thread_ids
        self.stopped |= thread_ids

    def mark_running(self, thread_ids: set[int]) -> set[int]:
        """Those of `thread_ids` that were stopped (a resume of them is news) are now running."""
        was_stopped = thread_ids & self.stopped
        self.known |= thread_ids
        self.stopped -= thread_ids
        return was_stopped


class Lifecycle:
    """The session's state and mode; `move` is the transition function, `check` the request gate."""

    def __init__(self) -> None:
        self.state = State.INITIALIZING
        self.mode: Mode | None = None          # set once a launch/attach/core succeeded
        self.threads = Threads()

    @property
    def has_debuggee(self) -> bool:
        return self.mode is not None and self.state not in (State.EXITED, State.DISCONNECTED)

    @property
    def is_configured(self) -> bool:
        return self.state is not State.INITIALIZING

    def can_move(self, to: State) -> bool:
        return to is State.DISCONNECTED or to in _MOVES[self.state]

    def move(self, to: State) -> None:
        """Take a transition; an impossible one is refused (a request or event out of order)."""
        if to is not self.state and not self.can_move(to):
            raise CantHandle(f"the session is {self.state.value}, it cannot become {to.value}")
        self.state = to

    def thread_is_stopped(self, thread_id: int | None = None) -> bool:
        """All-stop: every thread is stopped exactly when the session is. Non-stop: once running, `thread_id`
        itself (None: any thread) must be stopped."""
        if self.state not in (State.INITIALIZING, State.CONFIGURED, State.STOPPED) or self.mode is None:
            return False
        if not self.threads.non_stop or self.state is not State.STOPPED:
            return True
        return bool(self.threads.stopped) if thread_id is None else thread_id in self.threads.stopped

    def after_thread_change(self) -> None:
        """Non-stop: the session is STOPPED while any thread is, RUNNING once none is."""
        if self.state is State.STOPPED and not self.threads.stopped:
            self.move(State.RUNNING)
        elif self.state is State.RUNNING and self.threads.stopped:
            self.move(State.STOPPED)

    def check(self, command: str, needs: Needs, thread_id: int | None = None) -> None:
        """Raise CantHandle when `command` cannot be served now, naming the reason."""
        if self.state is State.DISCONNECTED and needs is not Needs.NOTHING:
            raise CantHandle(f"{command}: the session is disconnected")
        if needs is Needs.NOTHING:
            return
        if needs is Needs.NO_DEBUGGEE:
            if self.mode is not None:
                raise CantHandle("this session already has a debuggee")
            if self.state is not State.INITIALIZING:
                raise CantHandle(f"{command} comes before configurationDone")
            return
        if self.mode is None:
            raise CantHandle("no debuggee: launch or attach first")
        if needs is Needs.CONFIGURING:
            if self.state is not State.INITIALIZING:
                raise CantHandle(f"{command}: the session is already configured")
            return
        if self.state is State.EXITED:
            raise CantHandle("the debuggee has exited")
        if thread_id is not None and self.threads.known and thread_id not in self.threads.known \
                and needs in (Needs.STOPPED, Needs.RUNNABLE):
            raise InvalidArgument("threadId", f"{thread_id} is not a thread of the debuggee")
        if needs in (Needs.STOPPED, Needs.RUNNABLE) and not self.thread_is_stopped(thread_id):
            if self.state is State.STOPPED and thread_id is not None:
                raise ThreadRunning(f"thread {thread_id} is running: pause it first")
            if self.state is State.RUNNING:
                raise ThreadRunning(_NOT_STOPPED[State.RUNNING])
            raise CantHandle(_NOT_STOPPED.get(self.state, f"the debuggee is {self.state.value}"))
        if needs is Needs.RUNNABLE and self.mode is Mode.CORE:
            raise CantHandle(f"{command}: a core file cannot run")
