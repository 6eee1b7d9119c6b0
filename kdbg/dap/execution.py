"""Execution control through gdb: continue, next, stepIn, stepOut, pause. The debuggee resumes here only.

gdb runs in one of two modes, chosen per launch/attach by `nonStop` (README, "Debugging in VS Code"):
- all-stop (gdb's default): a stop stops every thread and a resume resumes them all. `singleThread`
  (https://microsoft.github.io/debug-adapter-protocol/specification#Requests_Next) resumes only the named thread,
  with gdb's `scheduler-locking on` for that one command: the other threads stay stopped.
- non-stop (`set non-stop on`; the stub's QNonStop, %Stop and per-thread vCont): threads stop and run one by one.
  A step moves its own thread while the others go on as they were, whether or not `singleThread` is set: VS Code's
  Step Over never sets it (it sends `next {threadId, granularity}`), and a step that woke the other stopped threads
  would lose their stops. `continue` resumes every stopped thread unless `singleThread` names one; `pause` stops
  its thread only.

VS Code takes a step's resume to be of the stepped thread alone (after the response it marks only that thread
running unless told otherwise), so an all-stop step of every thread is followed by a `continued` event saying all
threads run, and the Threads view does not show stale stacks of threads that run during the step.

The state moves *before* gdb is told to resume (the session to RUNNING; in non-stop the thread to running), so
gdb's `*running` echo of our own command is not news to the client (a `*running` of a thread that was stopped came
from elsewhere, e.g. `-exec continue` typed in the debug console, and becomes a `continued` event: see events.py).
"""
from __future__ import annotations

from typing import Any, Callable

from .arguments import integer
from .errors import GdbError
from .gdb_backend import Gdb
from .lifecycle import Lifecycle, Needs, State, Stop
from .registry import request
from .variables import Variables

_SINGLE = "supportsSingleThreadExecutionRequests"


def _thread(args: dict[str, Any]) -> int:
    return integer(args, "threadId", 1)


class Execution:
    def __init__(self, gdb: Gdb, lifecycle: Lifecycle, stop: Stop, variables: Variables,
                 send_event: Callable[[str, dict[str, Any]], None]) -> None:
        self.gdb = gdb
        self.send_event = send_event
        self.lifecycle = lifecycle
        self.threads = lifecycle.threads
        self.stop, self.vars = stop, variables
        self.pause_requested = False       # all-stop: the next stop is the user's pause (not a step's or a signal's)
        self.pausing: set[int] = set()     # non-stop: threads whose next stop is the user's pause
        self._locked = False               # all-stop: gdb's scheduler-locking is on (a singleThread resume)

    def resume(self, command: str, thread_id: int | None = None, single_thread: bool | None = None) -> None:
        """Run `command`, which resumes `thread_id` (None: every thread). In all-stop mode `single_thread` sets
        gdb's scheduler locking for it first (None: as the last resume had it)."""
        if self.threads.non_stop:
            self._resume_non_stop(command, thread_id)
            return
        if single_thread is not None and single_thread != self._locked:
            self.gdb.command(f"-gdb-set scheduler-locking {'on' if single_thread else 'off'}")
            self._locked = single_thread
        before = self.lifecycle.state
        self.lifecycle.move(State.RUNNING)
        try:
            self.gdb.command(command)
        except GdbError:
            self.lifecycle.move(before)
            raise

    def _resume_non_stop(self, command: str, thread_id: int | None) -> None:
        resumed = set(self.threads.stopped) if thread_id is None else {thread_id}
        was_stopped = self.threads.mark_running(resumed)
        self.forget(resumed)
        before = self.lifecycle.state
        if self.lifecycle.state is not State.CONFIGURED:
            self.lifecycle.after_thread_change()
        else:
            self.lifecycle.move(State.RUNNING)
        try:
            self.gdb.command(command)
        except GdbError:
            self.threads.mark_stopped(was_stopped)
            self.lifecycle.move(before)
            raise

    def forget(self, thread_ids: set[int] | None) -> None:
        """What the client was told about these threads' stops (None: every thread's, as all-stop has it) is void:
        they resume, or stopped anew."""
        self.stop.forget(thread_ids)
        self.vars.reset(thread_ids)

    @property
    def _continue_all(self) -> str:
        return "-exec-continue --all" if self.threads.non_stop else "-exec-continue"

    def run(self) -> None:
        """The first run after the configuration, or a resume after a stop the client was not told of."""
        self.resume(self._continue_all)

    def resume_after_hit(self, thread_id: int) -> None:
        """A breakpoint hit that does not stop (a log point, an unmet hit condition): on with what ran before."""
        self.resume(f"-exec-continue --thread {thread_id}" if self.threads.non_stop else "-exec-continue", thread_id)

    def take_pause(self, thread_id: int) -> bool:
        """Whether the stop of `thread_id` answers the user's pause (consumed)."""
        if self.threads.non_stop:
            asked = thread_id in self.pausing
            self.pausing.discard(thread_id)
            return asked
        asked, self.pause_requested = self.pause_requested, False
        return asked

    def _step(self, command: str, args: dict[str, Any]) -> None:
        thread_id, single = _thread(args), bool(args.get("singleThread"))
        self.resume(f"{command} --thread {thread_id}", thread_id, single)
        if not single and not self.threads.non_stop:
            self.send_event("continued", {"threadId": thread_id, "allThreadsContinued": True})

    @request(Needs.RUNNABLE, _SINGLE)
    def continue_request(self, args: dict[str, Any]) -> dict[str, Any]:
        single = bool(args.get("singleThread"))
        thread_id = _thread(args) if single else None
        self.resume(f"-exec-continue --thread {thread_id}" if single else self._continue_all, thread_id, single)
        return {"allThreadsContinued": not single}

    @request(Needs.RUNNABLE, "supportsSteppingGranularity", _SINGLE)
    def next_request(self, args: dict[str, Any]) -> None:
        self._step("-exec-next-instruction" if args.get("granularity") == "instruction" else "-exec-next", args)

    @request(Needs.RUNNABLE, _SINGLE)
    def stepIn_request(self, args: dict[str, Any]) -> None:
        self._step("-exec-step-instruction" if args.get("granularity") == "instruction" else "-exec-step", args)

    @request(Needs.RUNNABLE, _SINGLE)
    def stepOut_request(self, args: dict[str, Any]) -> None:
        self._step("-exec-finish --frame 0", args)

    @request(Needs.DEBUGGEE)
    def pause_request(self, args: dict[str, Any]) -> None:
        """A pause of a stopped debuggee (non-stop: of a stopped thread) is answered and does nothing (VS Code may
        race a stop)."""
        if self.threads.non_stop:
            thread_id = args.get("threadId")
            if not isinstance(thread_id, int) or isinstance(thread_id, bool):
                running = self.threads.known - self.threads.stopped
                self.pausing |= running
                self.gdb.command("-exec-interrupt --all")
            elif thread_id not in self.threads.stopped:
                self.pausing.add(_thread(args))
                self.gdb.command(f"-exec-interrupt --thread {thread_id}")
        elif self.lifecycle.state is State.RUNNING:
            self.pause_requested = True
            self.gdb.command("-exec-interrupt")
