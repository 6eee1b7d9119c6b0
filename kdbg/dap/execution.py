"""Execution control through gdb: continue, next, stepIn, stepOut, pause. The debuggee resumes here only.

The session moves to RUNNING *before* gdb is told to resume, so gdb's `*running` echo of our own command is not
news to the client (a `*running` that arrives while STOPPED came from elsewhere, e.g. `-exec continue` typed in
the debug console, and becomes a `continued` event: see events.py).
"""
from __future__ import annotations

from typing import Any

from .arguments import integer
from .errors import GdbError
from .gdb_backend import Gdb
from .lifecycle import Lifecycle, Needs, State
from .registry import request


def _thread(args: dict[str, Any]) -> int:
    return integer(args, "threadId", 1)


class Execution:
    def __init__(self, gdb: Gdb, lifecycle: Lifecycle) -> None:
        self.gdb = gdb
        self.lifecycle = lifecycle
        self.pause_requested = False       # the next stop is the user's pause (not a step's or a signal's end)

    def resume(self, command: str) -> None:
        before = self.lifecycle.state
        self.lifecycle.move(State.RUNNING)
        try:
            self.gdb.command(command)
        except GdbError:
            self.lifecycle.move(before)
            raise

    @request(Needs.RUNNABLE)
    def continue_request(self, args: dict[str, Any]) -> dict[str, Any]:
        self.resume("-exec-continue")
        return {"allThreadsContinued": True}

    @request(Needs.RUNNABLE, "supportsSteppingGranularity")
    def next_request(self, args: dict[str, Any]) -> None:
        step = "-exec-next-instruction" if args.get("granularity") == "instruction" else "-exec-next"
        self.resume(f"{step} --thread {_thread(args)}")

    @request(Needs.RUNNABLE)
    def stepIn_request(self, args: dict[str, Any]) -> None:
        step = "-exec-step-instruction" if args.get("granularity") == "instruction" else "-exec-step"
        self.resume(f"{step} --thread {_thread(args)}")

    @request(Needs.RUNNABLE)
    def stepOut_request(self, args: dict[str, Any]) -> None:
        self.resume(f"-exec-finish --thread {_thread(args)} --frame 0")

    @request(Needs.DEBUGGEE)
    def pause_request(self, args: dict[str, Any]) -> None:
        """A pause of a stopped debuggee is answered and does nothing (VS Code may race a stop)."""
        if self.lifecycle.state is State.RUNNING:
            self.pause_requested = True
            self.gdb.command("-exec-interrupt")
