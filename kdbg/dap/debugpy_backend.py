"""Everything the session owns while a Python program's session is relayed to debugpy (the Python counterpart of
backend.GdbBackend): the relay to debugpy's adapter, the payload's private debugpy directory and a pending
stopOnEntry, built by a Python launch or attach and dropped together.

The session keeps the lifecycle requests (launch, attach, terminate, disconnect) and km, the debuggee; this side
forwards the client's other requests, passes debugpy's responses, events and reverse requests back, and moves the
session's lifecycle as they pass (debugpy is the judge of its requests, so a move that is impossible is not
taken rather than refused).
"""
from __future__ import annotations

import enum
import logging
import shutil
import threading
from typing import Any, Callable

from .errors import DapError
from .lifecycle import Lifecycle, State
from .python import DebugpyRelay, EntryStop, debugpy_arguments
from .transport import TransportClosed

log = logging.getLogger("km.dap")

_RESUMING = frozenset({"continue", "next", "stepIn", "stepOut", "stepBack", "reverseContinue", "goto",
                       "configurationDone"})


class Outcome(enum.Enum):
    """What a message of debugpy's means for the session beyond passing it on."""
    NOTHING = "nothing"
    CLOSED = "closed"                   # the connection to the adapter ended
    PROGRAM_ENDED = "program ended"     # debugpy saw the launched program end: km's exit follows


class DebugpyBackend:
    def __init__(self, relay: DebugpyRelay, lifecycle: Lifecycle, to_client: Callable[[dict[str, Any]], None],
                 output: Callable[[str, str], None]) -> None:
        self.relay = relay
        self.lifecycle = lifecycle
        self.to_client = to_client                   # a message to the client, numbered by the session's transport
        self.output = output
        self.debugpy_home: str | None = None         # the payload's PYTHONPATH directory, for a launch
        self.entry_stop: EntryStop | None = None     # a launch's stopOnEntry, until the first stop

    def initialize(self, client_initialize: dict[str, Any]) -> dict[str, Any]:
        """debugpy's capabilities, answered to the client's own initialize arguments."""
        return self.relay.request("initialize", {**client_initialize, "adapterID": "km"})

    def attach(self, start_request: dict[str, Any], args: dict[str, Any], host: str, port: int,
               how: str) -> tuple[threading.Event, list[dict[str, Any]]]:
        """The client's start request goes on as `attach` (`how`: connect to the debug server at host:port, or
        listen for it there); debugpy answers it after configurationDone. Returns the watch of the adapter's
        debugpyWaitingForServer event, which tells where it listens."""
        serving = self.relay.watch("debugpyWaitingForServer")
        self.relay.forward(start_request, "attach", debugpy_arguments(args, host, port, how))
        return serving

    def relay_request(self, request: dict[str, Any]) -> None:
        """A client's request, to debugpy (with the entry breakpoint of a stopOnEntry added where it belongs)."""
        if request.get("command") == "configurationDone" and self.lifecycle.can_move(State.CONFIGURED):
            self.lifecycle.move(State.CONFIGURED)
        arguments = None
        if self.entry_stop is not None:
            arguments = self.entry_stop.client_request(request)
            if request.get("command") == "configurationDone":
                try:
                    self.entry_stop.before_configuration_done(self.relay)
                except DapError as exc:
                    self.output("console", f"kdbg-dap: stopOnEntry: {exc}\n")
        try:
            self.relay.forward(request, arguments=arguments)
        except TransportClosed:
            self.to_client({"type": "response", "request_seq": request.get("seq", 0), "success": False,
                            "command": request.get("command", ""), "message": "debugpy has ended"})

    def on_message(self, message: dict[str, Any], owns_program: bool) -> Outcome:
        """A message of debugpy's adapter, passed to the client (`owns_program`: kdbg-dap started the program,
        so its output and exit are km's, not debugpy's copies)."""
        kind = message.get("type")
        if kind == "closed":
            return Outcome.CLOSED
        if kind == "response":
            reply = self.relay.client_response(message)
            if reply is None:
                return Outcome.NOTHING
            if self.entry_stop is not None and reply.get("command") == "setBreakpoints":
                self.entry_stop.client_response(reply)
            if reply.get("success") and reply["command"] in _RESUMING:
                self._settle(State.RUNNING, unless=State.STOPPED if reply["command"] == "configurationDone" else None)
            self.to_client(reply)
        elif kind == "event":
            name = message.get("event")
            if name == "terminated" and owns_program:
                return Outcome.PROGRAM_ENDED
            if self.relay.drops(message, owns_program):
                return Outcome.NOTHING
            if name == "stopped":
                self._first_stop(message.get("body") or {})
                self._settle(State.STOPPED)
            elif name == "continued":
                self._settle(State.RUNNING)
            elif name == "terminated":
                self._settle(State.EXITED)
            self.to_client({key: value for key, value in message.items() if key != "seq"})
        elif kind == "request":
            self.relay.reverse_request(message, self.to_client)
        return Outcome.NOTHING

    def _first_stop(self, body: dict[str, Any]) -> None:
        entry, self.entry_stop = self.entry_stop, None
        if entry is not None:
            try:
                entry.on_stopped(body, self.relay)
            except DapError as exc:
                self.output("console", f"kdbg-dap: stopOnEntry: {exc}\n")

    def on_client_response(self, response: dict[str, Any]) -> None:
        """The client's answer to one of debugpy's reverse requests."""
        self.relay.answer_reverse(response)

    def _settle(self, state: State, unless: State | None = None) -> None:
        if self.lifecycle.state is not unless and self.lifecycle.can_move(state):
            self.lifecycle.move(state)

    def end(self) -> None:
        """The program ended: let debugpy's adapter go (it would stay until its client leaves, holding km's output
        pipes open), then close."""
        if self.relay.is_open:
            try:
                self.relay.request("disconnect", {"terminateDebuggee": False}, timeout_s=5.0)
            except DapError as exc:
                log.debug("debugpy's disconnect: %s", exc)
        self.close()

    def close(self) -> None:
        """Drop the connection (and an adapter kdbg-dap started) and the payload's debugpy directory."""
        self.entry_stop = None
        self.relay.close()
        if self.debugpy_home is not None:
            shutil.rmtree(self.debugpy_home, ignore_errors=True)
            self.debugpy_home = None
