"""One DAP session: the request loop, the lifecycle requests (launch/attach/core, configurationDone, restart,
terminate, disconnect), execution control, and gdb's async records turned into DAP events.

Handlers are methods named `<command>_request` after the spec's command names
(https://microsoft.github.io/debug-adapter-protocol/specification), found by name, so an unknown command and
the capabilities both derive from what exists. Every DapError a handler raises becomes a failed response in
`_dispatch`, the one place. One worker thread runs handlers and gdb events in arrival order, so no state is
shared between threads; gdb results reach the waiting handler through gdb_backend's reader directly.
"""
from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Any

from .breakpoints import Breakpoints, exception_filters
from .debuggee import Debuggee, km_command, pick_port
from .errors import CantHandle, DapError, GdbError, InvalidArgument
from .gdb_backend import Gdb, mi_quote
from .events import StopEvents, core_stop, current_thread
from .inspection import InspectionRequests
from .transport import MalformedMessage, Transport, TransportClosed
from .variables import Variables

log = logging.getLogger("km.dap")

STUB_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 20.0
# Capabilities that a request handler implements, true only where the handler exists.
_REQUEST_CAPABILITIES = {
    "supportsConfigurationDoneRequest": "configurationDone", "supportsFunctionBreakpoints": "setFunctionBreakpoints",
    "supportsSetVariable": "setVariable", "supportsRestartRequest": "restart",
    "supportsExceptionInfoRequest": "exceptionInfo", "supportsLoadedSourcesRequest": "loadedSources",
    "supportsModulesRequest": "modules", "supportsTerminateRequest": "terminate",
    "supportsDataBreakpoints": "setDataBreakpoints", "supportsReadMemoryRequest": "readMemory",
    "supportsWriteMemoryRequest": "writeMemory", "supportsDisassembleRequest": "disassemble",
    "supportsInstructionBreakpoints": "setInstructionBreakpoints",
}
# Capabilities that are properties of handlers above (conditions and log points in breakpoints.py, etc.).
_FEATURE_CAPABILITIES = ("supportsConditionalBreakpoints", "supportsHitConditionalBreakpoints", "supportsLogPoints",
                         "supportsEvaluateForHovers", "supportsSteppingGranularity", "supportTerminateDebuggee",
                         "supportsDelayedStackTraceLoading")


class Session(InspectionRequests, StopEvents):
    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._after_response: list = []
        self.gdb: Gdb | None = None
        self.vars: Variables | None = None
        self.breakpoints: Breakpoints | None = None
        self.debuggee: Debuggee | None = None
        self.config: dict[str, Any] = {}
        self.mode: str | None = None               # "launch", "attach" or "core"
        self.is_configured = self.is_running = self.has_exited = self.is_disconnected = False
        self._pause_requested = self._expect_running = False
        self._entry_bp: str | None = None
        self._connect_stop_pending = False
        self._signal_filters = [name["filter"] for name in exception_filters() if name["default"]]
        self.last_stop: dict[str, Any] = {}
        self.frames: dict[int, tuple[int, int]] = {}

    # --- the loop -------------------------------------------------------------------------------------------
    def run(self) -> None:
        """Serve until the client disconnects or closes the stream."""
        threading.Thread(target=self._read_requests, name="dap-reader", daemon=True).start()
        try:
            while not self.is_disconnected:
                kind, item = self._inbox.get()
                if kind == "closed":
                    break
                try:
                    self._dispatch(item) if kind == "request" else self._on_gdb_record(item)
                except TransportClosed:
                    break
        finally:
            self._shutdown(terminate=self.mode == "launch")

    def _read_requests(self) -> None:
        while True:
            try:
                message = self.transport.read_message()
            except MalformedMessage as exc:
                log.warning("dropped a client message: %s", exc)
                continue
            except TransportClosed as exc:
                log.debug("client stream ended: %s", exc)
                self._inbox.put(("closed", None))
                return
            if message.get("type") == "request":
                self._inbox.put(("request", message))

    def _dispatch(self, request: dict[str, Any]) -> None:
        command = request.get("command", "")
        response = {"type": "response", "request_seq": request.get("seq", 0), "command": command, "success": True}
        try:
            handler = getattr(self, f"{command}_request", None)
            if handler is None:
                raise CantHandle(f"unsupported request: {command}")
            body = handler(request.get("arguments") or {})
            if body:
                response["body"] = body
        except DapError as exc:
            response.update(success=False, message=str(exc),
                            body={"error": {"id": 1, "format": str(exc).replace("{", "(").replace("}", ")"),
                                            "showUser": True}})
        except Exception as exc:  # a handler bug: report it, keep the session (HOUSE-STYLE 2.6, "non-fatal")
            log.exception("request %s failed", command)
            response.update(success=False, message=f"internal error in {command}: {exc}")
        self.transport.send(response)
        hooks, self._after_response = self._after_response, []
        for hook in hooks:
            hook()

    def send_event(self, event: str, body: dict[str, Any] | None = None) -> None:
        message: dict[str, Any] = {"type": "event", "event": event}
        if body is not None:
            message["body"] = body
        self.transport.send(message)

    def _output(self, category: str, text: str) -> None:
        try:
            self.send_event("output", {"category": category, "output": text})
        except TransportClosed:
            pass

    def require_gdb(self) -> Gdb:
        if self.gdb is None or not self.gdb.is_alive:
            raise CantHandle("no debuggee: launch or attach first")
        return self.gdb

    # --- lifecycle ------------------------------------------------------------------------------------------
    def initialize_request(self, args: dict[str, Any]) -> dict[str, Any]:
        capabilities: dict[str, Any] = {name: True for name, request in _REQUEST_CAPABILITIES.items()
                                        if hasattr(self, f"{request}_request")}
        capabilities.update({name: True for name in _FEATURE_CAPABILITIES})
        capabilities["exceptionBreakpointFilters"] = exception_filters()
        return capabilities

    def launch_request(self, args: dict[str, Any]) -> None:
        program = _existing_file(args, "program")
        self.config = dict(args)
        if args.get("coreFile"):
            core = _existing_file(args, "coreFile")
            self._start_gdb(args, program)
            try:                          # `-target-select core` takes no MI quoting; the CLI takes any path
                self.gdb.console(f"core-file {core}", CONNECT_TIMEOUT_S)
            except DapError:
                self._shutdown(terminate=True)
                raise
            self.mode = "core"
        else:
            self._launch_km(args, program)
            self.mode = "launch"
        self._after_response.append(lambda: self.send_event("initialized"))

    def _launch_km(self, args: dict[str, Any], program: str) -> None:
        km = km_command(args.get("kmPath") or "km")
        argv_tail = _string_list(args, "args")
        km_flags = _string_list(args, "kmArgs")
        env = args.get("env") or {}
        if not isinstance(env, dict):
            raise InvalidArgument("env", "must be an object of strings")
        port = pick_port(int(args.get("port") or 0))
        self._start_gdb(args, program)
        try:
            self.debuggee = Debuggee([*km, *km_flags, f"-g{port}", program, *argv_tail],
                                     {str(k): str(v) for k, v in env.items()}, args.get("cwd") or None,
                                     self._output)
            self.debuggee.wait_for_stub(STUB_TIMEOUT_S)
            self.gdb.command(f"-target-select remote localhost:{port}", CONNECT_TIMEOUT_S)
        except DapError:
            self._shutdown(terminate=True)
            raise
        threading.Thread(target=self._watch_debuggee, args=(self.debuggee,), daemon=True).start()

    def attach_request(self, args: dict[str, Any]) -> None:
        program = _existing_file(args, "program")
        address = str(args.get("address") or "localhost:2159")
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise InvalidArgument("address", f"{address!r} is not host:port")
        self.config = dict(args)
        self._start_gdb(args, program)
        self.gdb.command('-interpreter-exec console "set tcp connect-timeout 3"')
        self._connect(f"remote {address}")
        self.mode = "attach"
        self._after_response.append(lambda: self.send_event("initialized"))

    def _start_gdb(self, args: dict[str, Any], program: str) -> None:
        if self.gdb is not None:
            raise CantHandle("this session already has a debuggee")
        gdb = Gdb(str(args.get("gdbPath") or "gdb"), lambda source, record: self._inbox.put(("gdb", (source, record))))
        self.gdb, self.vars, self.has_exited = gdb, Variables(gdb), False
        self._connect_stop_pending = True
        try:
            gdb.command(f"-file-exec-and-symbols {mi_quote(program)}")
            for command in _string_list(args, "setupCommands"):
                gdb.console(command)
            if self.breakpoints is None:
                self.breakpoints = Breakpoints(gdb)
            else:
                self.breakpoints.reinstall(gdb)
        except DapError:
            self.gdb = None
            gdb.close()
            raise

    def _connect(self, target: str) -> None:
        """`-target-select`; a failure leaves no gdb behind, so the session can launch or attach again."""
        try:
            self.gdb.command(f"-target-select {target}", CONNECT_TIMEOUT_S)
        except DapError:
            self._shutdown(terminate=True)
            raise

    def configurationDone_request(self, args: dict[str, Any]) -> None:
        self.is_configured = True
        self._after_response.append(self._start_running)

    def _start_running(self) -> None:
        """After configuration: a core stops at its crash; a live debuggee runs or stops at entry."""
        gdb = self.require_gdb()
        self.breakpoints.set_signal_filters(self._signal_filters)
        if self.mode == "core":
            self.last_stop = core_stop(gdb)
            self.send_event("stopped", {"reason": "exception", "threadId": int(self.last_stop["thread-id"]),
                                        "allThreadsStopped": True, "text": self.last_stop["signal-name"],
                                        "description": self.last_stop["signal-meaning"]})
        elif not self.config.get("stopOnEntry"):
            self.resume("-exec-continue")
        elif self.mode == "launch" and _has_symbol(gdb, "main"):
            self._entry_bp = gdb.command("-break-insert -t main")["bkpt"]["number"]
            self.resume("-exec-continue")
        else:
            self.send_event("stopped", {"reason": "entry", "threadId": current_thread(gdb),
                                        "allThreadsStopped": True})

    def restart_request(self, args: dict[str, Any]) -> None:
        if self.mode != "launch":
            raise CantHandle(f"restart needs a launched debuggee, not {self.mode or 'none'}")
        config = args.get("arguments") or self.config
        self._shutdown(terminate=True)
        self.last_stop, self.frames = {}, {}
        self._launch_km(config, _existing_file(config, "program"))
        self.config = dict(config)
        self._after_response.append(self._start_running)

    def terminate_request(self, args: dict[str, Any]) -> None:
        self._shutdown(terminate=True)
        self._finish(None)

    def disconnect_request(self, args: dict[str, Any]) -> None:
        self._shutdown(terminate=bool(args.get("terminateDebuggee", self.mode == "launch")))
        self.is_disconnected = True

    def _shutdown(self, terminate: bool) -> None:
        """End gdb; end the debuggee (terminate) or leave it running (detach). Never raises."""
        gdb, self.gdb = self.gdb, None
        live = gdb is not None and gdb.is_alive and self.mode in ("launch", "attach") and not self.has_exited
        if live:                          # km ends at gdb's `kill` (its stub's vKill); SIGTERM would be reported
            try:                          # to gdb as a signal, and gdb is about to go
                if self.is_running:
                    gdb.command("-exec-interrupt")
                gdb.console("kill" if terminate else "detach")
            except DapError:
                pass
        if gdb is not None:
            gdb.close()
        if self.debuggee is not None and terminate:
            self.debuggee.kill()
        self.debuggee, self.is_running = None, False

    def _watch_debuggee(self, debuggee: Debuggee) -> None:
        status = debuggee.wait(None)
        self._inbox.put(("gdb", (debuggee, {"type": "debuggee-exited", "payload": status})))

    def _finish(self, exit_code: int | None) -> None:
        if self.has_exited:
            return
        self.has_exited, self.is_running = True, False
        if exit_code is not None:
            self.send_event("exited", {"exitCode": exit_code})
        self.send_event("terminated")

    # --- execution control ----------------------------------------------------------------------------------
    def resume(self, command: str) -> None:
        gdb = self.require_gdb()
        self._expect_running, self.is_running = True, True
        try:
            gdb.command(command)
        except GdbError:
            self._expect_running, self.is_running = False, False
            raise

    def continue_request(self, args: dict[str, Any]) -> dict[str, Any]:
        self.resume("-exec-continue")
        return {"allThreadsContinued": True}

    def next_request(self, args: dict[str, Any]) -> None:
        step = "-exec-next-instruction" if args.get("granularity") == "instruction" else "-exec-next"
        self.resume(f"{step} --thread {int(args.get('threadId', 1))}")

    def stepIn_request(self, args: dict[str, Any]) -> None:
        step = "-exec-step-instruction" if args.get("granularity") == "instruction" else "-exec-step"
        self.resume(f"{step} --thread {int(args.get('threadId', 1))}")

    def stepOut_request(self, args: dict[str, Any]) -> None:
        self.resume(f"-exec-finish --thread {int(args.get('threadId', 1))} --frame 0")

    def pause_request(self, args: dict[str, Any]) -> None:
        gdb = self.require_gdb()
        if self.is_running:
            self._pause_requested = True
            gdb.command("-exec-interrupt")


def _existing_file(args: dict[str, Any], field: str) -> str:
    value = args.get(field)
    if not value or not isinstance(value, str):
        raise InvalidArgument(field, "missing")
    path = Path(value).expanduser()
    if not path.is_file():
        raise InvalidArgument(field, f"{value}: no such file")
    return str(path.resolve())


def _string_list(args: dict[str, Any], field: str) -> list[str]:
    value = args.get(field) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidArgument(field, "must be a list of strings")
    return value


def _has_symbol(gdb: Gdb, name: str) -> bool:
    try:
        gdb.command(f"-data-evaluate-expression {mi_quote('&' + name)}")
        return True
    except GdbError:
        return False
