"""One DAP session: the request loop, the lifecycle requests (initialize, launch/attach/core, configurationDone,
restart, terminate, disconnect), threads and exception filters; the rest is served by collaborators it owns.

Handlers are methods named `<command>_request` after the spec's command names
(https://microsoft.github.io/debug-adapter-protocol/specification), each declaring what it needs (`lifecycle.Needs`)
and which capabilities it implements (`registry.request`); the table over the session and its collaborators
(execution.py, inspection.py) gives dispatch, the state gate and the `initialize` answer. Every DapError becomes a
failed response in `_dispatch`, the one place. A Python program is debugged by debugpy in the VM instead of gdb:
then every request but the lifecycle's is relayed to debugpy's adapter (debugpy_backend.py, python.py). One worker thread runs handlers and gdb events in arrival order, so
no state is shared between threads; gdb results reach the waiting handler through gdb_backend's reader directly.
A launch with `followForks` asks the client to start a session for each forked child (forks.py).
"""
from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from typing import Any, Callable

from kdbg.stub_banner import ForkWait

from .arguments import existing_file, string_list
from .backend import GdbBackend
from .breakpoints import Breakpoints, exception_filters
from .debuggee import Debuggee, km_command, pick_port
from .errors import CantHandle, DapError, GdbError, InvalidArgument
from .events import core_stop, current_thread
from .forks import EVERY_PAYLOAD, FORK_WAIT_ENV, Forks, check_alive, child_configuration, forked_child, wanted
from .execution import Execution
from .gdb_backend import Gdb, mi_quote
from .inspection import Inspection
from .lifecycle import Lifecycle, Mode, Needs, State, Stop
from .debugpy_backend import DebugpyBackend, Outcome
from .python import (ADAPTER_TIMEOUT_S, ATTACH_TIMEOUT_S, LISTEN_TIMEOUT_S, DebugpyRelay, EntryStop,
                     adapter_capabilities, connect, debugpy_home, interpreter, is_python, launch_argv, runs_natively,
                     start_adapter)
from .registry import Handler, capabilities, request, table
from .transport import MalformedMessage, Transport, TransportClosed

log = logging.getLogger("km.dap")

STUB_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 20.0
EXIT_DRAIN_S = 5.0
# Requests the session serves itself while it relays to debugpy; the others go to debugpy's adapter.
_NOT_RELAYED = frozenset({"initialize", "launch", "attach", "restart", "terminate", "disconnect"})


class Session:
    def __init__(self, transport: Transport, python_first: bool = False) -> None:
        """`python_first`: the client will launch a Python program (VS Code knows before `initialize`), so the
        `initialize` answer is debugpy's capabilities rather than gdb's."""
        self.transport = transport
        self.python_first = python_first
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._after_response: list[Callable[[], None]] = []
        self.lifecycle = Lifecycle()
        self.stop = Stop()
        self.config: dict[str, Any] = {}
        self.backend: GdbBackend | None = None           # the gdb side of a launch/attach/core
        self.debuggee: Debuggee | None = None            # the km a launch started
        self.breakpoints: Breakpoints | None = None      # outlive a gdb: a restart reinstalls them
        self.signal_filters = [name["filter"] for name in exception_filters() if name["default"]]
        self.known_threads: list[dict[str, Any]] = [{"id": 1, "name": "main"}]      # gdb's first thread
        self.client_initialize: dict[str, Any] = {}      # the client's initialize arguments, for debugpy too
        self.python: DebugpyBackend | None = None        # the debugpy side of a Python program's launch/attach
        self._request: dict[str, Any] = {}               # the request being served
        self._respond_later = False                      # its response comes from debugpy
        self.forks: Forks | None = None                  # followForks: the launched km's forked children

    # --- the loop -------------------------------------------------------------------------------------------
    def run(self) -> None:
        """Serve until the client disconnects or closes the stream."""
        threading.Thread(target=self._read_requests, name="dap-reader", daemon=True).start()
        try:
            while self.lifecycle.state is not State.DISCONNECTED:
                kind, item = self._inbox.get()
                if kind == "closed":
                    break
                try:
                    if kind == "request":
                        self._dispatch(item)
                    elif kind == "response":
                        self._on_client_response(item)
                    elif kind == "debugpy":
                        self._on_debugpy(item)
                    elif kind == "fork":
                        self._on_fork(item)
                    else:
                        self._on_record(*item)
                except TransportClosed:
                    break
        finally:
            self._shutdown(terminate=self.lifecycle.mode is Mode.LAUNCH)

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
            if message.get("type") in ("request", "response"):      # responses: to debugpy's reverse requests
                self._inbox.put((str(message["type"]), message))

    def _dispatch(self, request: dict[str, Any]) -> None:
        command = request.get("command", "")
        if self.python is not None and command not in _NOT_RELAYED:
            self.python.relay_request(request)
            return
        response = {"type": "response", "request_seq": request.get("seq", 0), "command": command, "success": True}
        self._request, self._respond_later = request, False
        try:
            arguments = request.get("arguments")
            body = self._serve(str(command), {} if arguments is None else arguments)
            if body:
                response["body"] = body
        except DapError as exc:
            response.update(success=False, message=str(exc),
                            body={"error": {"id": 1, "format": str(exc).replace("{", "(").replace("}", ")"),
                                            "showUser": exc.show_user}})
        except Exception as exc:  # a handler bug: report it, keep the session (docs/HOUSE-STYLE.md 2.6, "non-fatal")
            log.exception("request %s failed", command)
            response.update(success=False, message=f"internal error in {command}: {exc}")
        if self._respond_later and response["success"]:
            return
        self.transport.send(response)
        hooks, self._after_response = self._after_response, []
        for hook in hooks:
            self._run_hook(hook)

    def _serve(self, command: str, args: Any) -> dict[str, Any] | None:
        """The state gate, then the handler: the session's own or a collaborator of the current gdb."""
        handler = HANDLERS.get(command)
        if handler is None:
            raise CantHandle(f"unsupported request: {command}")
        if not isinstance(args, dict):
            raise InvalidArgument("arguments", "must be an object")
        thread_id = args.get("threadId")
        self.lifecycle.check(command, handler.needs,
                             thread_id if isinstance(thread_id, int) and not isinstance(thread_id, bool) else None)
        owner: object = self if handler.owner == "session" else getattr(self.backend, handler.owner, None)
        if owner is None:
            raise CantHandle("no debuggee: launch or attach first")
        return getattr(owner, f"{command}_request")(args)

    def _run_hook(self, hook: Callable[[], None]) -> None:
        """After a response: a failure there has no response to fail, so the client reads it as output."""
        try:
            hook()
        except DapError as exc:
            self._output("console", f"kdbg-dap: {exc}\n")
        except TransportClosed:
            raise
        except Exception as exc:
            log.exception("after-response step failed")
            self._output("console", f"kdbg-dap: internal error: {exc}\n")

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

    def _on_record(self, source: Gdb | Debuggee, record: dict[str, Any]) -> None:
        """A record of the current gdb goes to its StopEvents; records of a gdb or km before a restart are stale."""
        backend = self.backend
        if source is self.debuggee and self.debuggee is not None:
            if record["type"] == "debuggee-exited" and self.lifecycle.mode is Mode.LAUNCH:
                self._finish(record["payload"])
        elif backend is not None and source is backend.gdb:
            if record["type"] == "gdb-exited":
                self._finish(None)
            else:
                backend.events.on_record(record)

    # --- lifecycle ------------------------------------------------------------------------------------------
    @request(Needs.NOTHING)
    def initialize_request(self, args: dict[str, Any]) -> dict[str, Any]:
        self.client_initialize = dict(args)
        if self.python_first:
            return dict(json.loads(adapter_capabilities()))
        answer = capabilities(HANDLERS)
        answer["exceptionBreakpointFilters"] = exception_filters()
        return answer

    @request(Needs.NO_DEBUGGEE)
    def launch_request(self, args: dict[str, Any]) -> None:
        program = existing_file(args, "program")
        if is_python(args):
            self._launch_python(args, program)
            self.lifecycle.mode = Mode.LAUNCH
            return
        if args.get("coreFile"):
            core = existing_file(args, "coreFile")
            backend = self._start_gdb(args, program)
            try:                          # `-target-select core` takes no MI quoting; the CLI takes any path
                backend.gdb.console(f"core-file {core}", CONNECT_TIMEOUT_S)
            except DapError:
                self._shutdown(terminate=True)
                raise
            self.lifecycle.mode = Mode.CORE
        else:
            self._launch_km(args, program)
            self.lifecycle.mode = Mode.LAUNCH
        self._after_response.append(lambda: self.send_event("initialized"))

    def _launch_km(self, args: dict[str, Any], program: str) -> None:
        km = km_command(args.get("kmPath") or "km")
        argv_tail = string_list(args, "args")
        km_flags = string_list(args, "kmArgs")
        env = _environment(args)
        port = pick_port(int(args.get("port") or 0))
        follow = wanted(args, self.client_initialize)
        if isinstance(follow, str):
            self._output("console", f"kdbg-dap: {follow}\n")
        self.forks = Forks(self.transport.send, self._output, str(args.get("gdbPath") or "gdb")) \
            if follow is True else None
        if self.forks is not None:
            env[FORK_WAIT_ENV] = EVERY_PAYLOAD
        backend = self._start_gdb(args, program)
        try:
            self.debuggee = Debuggee([*km, *km_flags, f"-g{port}", program, *argv_tail], env,
                                     args.get("cwd") or None, self._output,
                                     on_fork_wait=lambda fork: self._inbox.put(("fork", fork)))
            self.debuggee.wait_for_stub(STUB_TIMEOUT_S)
            backend.gdb.command(f"-target-select remote localhost:{port}", CONNECT_TIMEOUT_S)
        except DapError:
            self._shutdown(terminate=True)
            raise
        threading.Thread(target=self._watch_debuggee, args=(self.debuggee,), daemon=True).start()

    def _launch_python(self, args: dict[str, Any], program: str) -> None:
        """debugpy's adapter on the host, listening for the program's debug server; then `km <python> -m debugpy
        --connect ADAPTER <program> <args>`, whose debug server (in the VM) connects to it; from then on the
        client's session is relayed to debugpy."""
        python = interpreter(args)
        env = _environment(args)
        try:
            backend = self._relay_to(args, DebugpyRelay(self._post_debugpy, adapter=start_adapter()))
            backend.debugpy_home = debugpy_home()
            # The payload's PYTHONPATH goes through km's --putenv: km itself may be a Python program needing its own.
            payload_path = os.pathsep.join(filter(None, (backend.debugpy_home, env.pop("PYTHONPATH", None))))
            if runs_natively():
                km, env["PYTHONPATH"] = [], payload_path
            else:
                km = [*km_command(args.get("kmPath") or "km"), *string_list(args, "kmArgs"),
                      "--putenv", f"PYTHONPATH={payload_path}"]
            serving, where = backend.attach(self._request, args, "127.0.0.1", 0, "listen")
            if not serving.wait(ADAPTER_TIMEOUT_S) or not where:
                raise CantHandle("debugpy's adapter did not start")
            connected, _ = backend.relay.watch("initialized")    # the adapter's, once the debug server connected
            self.debuggee = Debuggee(launch_argv(km, python, int(where[0]["port"]), program, string_list(args, "args"),
                                                 "--connect"), env, args.get("cwd") or None, self._output)
            debuggee = self.debuggee
            deadline = time.monotonic() + LISTEN_TIMEOUT_S
            while not connected.wait(0.05):
                if not debuggee.is_running():
                    debuggee.wait(EXIT_DRAIN_S)
                    why = debuggee.last_stderr_line()
                    raise CantHandle(f"the program ended before debugpy connected{': ' + why if why else ''}")
                if time.monotonic() >= deadline:
                    raise CantHandle(f"debugpy in the program did not connect within {LISTEN_TIMEOUT_S:g}s")
            backend.entry_stop = EntryStop(program) if args.get("stopOnEntry") else None
        except DapError:
            self._shutdown(terminate=True)
            raise
        threading.Thread(target=self._watch_debuggee, args=(debuggee,), daemon=True).start()

    def _relay_to(self, args: dict[str, Any], relay: DebugpyRelay) -> DebugpyBackend:
        """From now on the client talks to debugpy: the backend over `relay`, and the client told of debugpy's
        capabilities when it was answered gdb's. The start request is answered by debugpy, after
        configurationDone."""
        self.config = dict(args)
        self.python = DebugpyBackend(relay, self.lifecycle, self.transport.send, self._output)
        theirs = self.python.initialize(self.client_initialize)
        if not self.python_first:                       # the client got gdb's capabilities: say what changed
            changed = {name: False for name in capabilities(HANDLERS) if name not in theirs}
            self.send_event("capabilities", {"capabilities": {**changed, **theirs}})
        self._respond_later = True
        return self.python

    def _post_debugpy(self, message: dict[str, Any]) -> None:
        self._inbox.put(("debugpy", message))

    def _attach_python(self, args: dict[str, Any]) -> None:
        """Attach to a `km <python> -m debugpy --listen HOST:PORT` already running (`address`, or `connect`)."""
        connect_to: dict[str, Any] = args["connect"] if isinstance(args.get("connect"), dict) else {}
        address = str(args.get("address") or f"{connect_to.get('host', '127.0.0.1')}:{connect_to.get('port', 5678)}")
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise InvalidArgument("address", f"{address!r} is not host:port")
        try:
            sock = connect(host, int(port), ATTACH_TIMEOUT_S, lambda: True)
        except CantHandle:
            raise CantHandle(f"{address}: nothing listens there (start km <python> -m debugpy --listen "
                             f"{address} ...)") from None
        try:
            self._relay_to(args, DebugpyRelay(self._post_debugpy, sock=sock)).attach(self._request, args, host,
                                                                                     int(port), "connect")
        except DapError:
            self._shutdown(terminate=False)
            raise

    @request(Needs.NO_DEBUGGEE)
    def attach_request(self, args: dict[str, Any]) -> None:
        if is_python(args):
            self._attach_python(args)
            self.lifecycle.mode = Mode.ATTACH
            return
        program = existing_file(args, "program")
        address = str(args.get("address") or "localhost:2159")
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise InvalidArgument("address", f"{address!r} is not host:port")
        child = forked_child(args)                # a session startDebugging opened for a forked child
        if args.get("followForks"):
            self._output("console", "kdbg-dap: followForks applies to a launch; to follow the forks of a km you "
                                    "started, run it with KM_GDB_CHILD_FORK_WAIT and attach to each child's port\n")
        if child is not None:
            check_alive(child)
        backend = self._start_gdb(args, program)
        try:
            backend.gdb.command('-interpreter-exec console "set tcp connect-timeout 3"')
            backend.gdb.command(f"-target-select remote {address}", CONNECT_TIMEOUT_S)
        except DapError:                  # no gdb left behind: the session can launch or attach again
            self._shutdown(terminate=True)
            if child is not None:
                check_alive(child)        # it died while we connected: say so rather than gdb's socket error
            raise
        self.lifecycle.mode = Mode.ATTACH
        if child is not None:
            self._after_response.append(lambda: self.send_event("process", {
                "name": program, "systemProcessId": child, "isLocalProcess": True, "startMethod": "attach"}))
        self._after_response.append(lambda: self.send_event("initialized"))

    def _start_gdb(self, args: dict[str, Any], program: str) -> GdbBackend:
        """A gdb with the program's symbols, the setup commands and the session's breakpoints, and its backend."""
        if self.backend is not None:
            raise CantHandle("this session already has a debuggee")
        non_stop = args.get("nonStop", False)
        if not isinstance(non_stop, bool):
            raise InvalidArgument("nonStop", f"{non_stop!r} is not true or false")
        non_stop = non_stop and not args.get("coreFile")        # a core's threads never run
        gdb = Gdb(str(args.get("gdbPath") or "gdb"), lambda source, record: self._inbox.put(("gdb", (source, record))))
        try:
            if non_stop:                  # before the target: gdb asks the stub for QNonStop:1 when it connects
                gdb.command("-gdb-set non-stop on")
            gdb.command(f"-file-exec-and-symbols {mi_quote(program)}")
            for command in string_list(args, "setupCommands"):
                gdb.console(command)
            if self.breakpoints is None:
                self.breakpoints = Breakpoints(gdb)
            else:
                self.breakpoints.reinstall(gdb)
        except DapError:
            gdb.close()
            raise
        self.config = dict(args)
        self.lifecycle.threads.reset(non_stop)
        self.backend = GdbBackend(gdb, self.breakpoints, self.lifecycle, self.stop, self.config, self.send_event,
                                  self._output, self._payload_exited)
        return self.backend

    @request(Needs.CONFIGURING, "supportsConfigurationDoneRequest")
    def configurationDone_request(self, args: dict[str, Any]) -> None:
        self.lifecycle.move(State.CONFIGURED)
        self._after_response.append(self._start_running)

    def _start_running(self) -> None:
        """After configuration: a core stops at its crash; a live debuggee runs or stops at entry."""
        backend, breakpoints = self.backend, self.breakpoints
        if backend is None or breakpoints is None or self.lifecycle.state is not State.CONFIGURED:
            return                                      # ended (or restarted) before it could start
        gdb = backend.gdb
        breakpoints.set_signal_filters(self.signal_filters)
        if self.lifecycle.mode is Mode.CORE:
            self.stop.record = core_stop(gdb)
            self.lifecycle.move(State.STOPPED)
            self.send_event("stopped", {"reason": "exception", "threadId": int(self.stop.record["thread-id"]),
                                        "allThreadsStopped": True, "text": self.stop.record["signal-name"],
                                        "description": self.stop.record["signal-meaning"]})
            backend.events.report_python_frames()
        elif not self.config.get("stopOnEntry"):
            backend.execution.run()
        elif self.lifecycle.mode is Mode.LAUNCH and _has_symbol(gdb, "main"):
            backend.events.entry_breakpoint = gdb.command("-break-insert -t main")["bkpt"]["number"]
            backend.execution.run()
        else:
            self.lifecycle.move(State.STOPPED)
            self.send_event("stopped", {"reason": "entry", "threadId": current_thread(gdb),
                                        "allThreadsStopped": not self.lifecycle.threads.non_stop})

    @request(Needs.NOTHING, "supportsRestartRequest")
    def restart_request(self, args: dict[str, Any]) -> None:
        if self.python is not None:
            raise CantHandle("restart: a Python program is restarted by stopping and starting it again")
        if self.lifecycle.mode is not Mode.LAUNCH or not self.lifecycle.is_configured:
            raise CantHandle(f"restart needs a launched debuggee, not {self._describe()}")
        config = args.get("arguments") or self.config
        if not isinstance(config, dict):
            raise InvalidArgument("arguments", "must be a launch configuration")
        program = existing_file(config, "program")
        self._shutdown(terminate=True)
        self.lifecycle.move(State.EXITED)               # the old km is gone, whether the new one starts or not
        self.stop.record = {}
        self.stop.forget()
        self._launch_km(config, program)
        self.lifecycle.move(State.CONFIGURED)
        self._after_response.append(self._start_running)

    def _describe(self) -> str:
        return self.lifecycle.mode.value if self.lifecycle.mode is not None else "none"

    @request(Needs.NOTHING, "supportsTerminateRequest")
    def terminate_request(self, args: dict[str, Any]) -> None:
        if self.python is not None and self.debuggee is not None and self.python.relay.is_open:
            try:                              # debugpy ends the program; km's exit then gives `exited`
                self.python.relay.request("terminate", args)
                return
            except DapError:
                pass
        self._shutdown(terminate=True)
        self._finish(None)

    @request(Needs.NOTHING, "supportTerminateDebuggee")
    def disconnect_request(self, args: dict[str, Any]) -> None:
        terminate = bool(args.get("terminateDebuggee", self.lifecycle.mode is Mode.LAUNCH))
        if self.python is not None and self.python.relay.is_open:
            try:
                self.python.relay.request("disconnect", {**args, "terminateDebuggee": terminate})
            except DapError as exc:
                log.debug("debugpy's disconnect: %s", exc)
        self._shutdown(terminate)
        self.lifecycle.move(State.DISCONNECTED)

    def _shutdown(self, terminate: bool) -> None:
        """End gdb (or the relay); end the debuggee (terminate) or leave it running (detach). Never raises."""
        python, self.python = self.python, None
        if python is not None:
            python.close()
        backend, self.backend = self.backend, None
        if backend is not None:
            gdb = backend.gdb
            if gdb.is_alive and self.lifecycle.mode in (Mode.LAUNCH, Mode.ATTACH) and self.lifecycle.has_debuggee:
                try:                      # km ends at gdb's `kill` (its stub's vKill); SIGTERM would be reported
                    if self.lifecycle.state is State.RUNNING:       # to gdb as a signal, and gdb is about to go
                        gdb.command("-exec-interrupt")
                    gdb.console("kill" if terminate else "detach")
                except DapError:
                    pass
            gdb.close()
        if self.debuggee is not None and terminate:
            self.debuggee.kill()
        self.debuggee = None
        if self.forks is not None and terminate:
            self.forks.end()

    def _watch_debuggee(self, debuggee: Debuggee) -> None:
        status = debuggee.wait(None)
        self._inbox.put(("gdb", (debuggee, {"type": "debuggee-exited", "payload": status})))

    def _payload_exited(self, exit_code: int) -> None:
        """gdb saw the payload end: deliver km's last output before `exited`."""
        if self.debuggee is not None:
            self.debuggee.wait(EXIT_DRAIN_S)
        self._finish(exit_code)

    def _finish(self, exit_code: int | None) -> None:
        if not self.lifecycle.can_move(State.EXITED):
            return
        self.lifecycle.move(State.EXITED)
        if exit_code is not None:
            self.send_event("exited", {"exitCode": exit_code})
        self.send_event("terminated")

    def _on_fork(self, fork: ForkWait) -> None:
        """A forked child of the launched km waits for a debugger: ask the client for a session of its own."""
        if self.forks is not None:
            self.forks.announce(fork, child_configuration(self.config, fork, self.config.get("cwd") or None))

    # --- relaying to debugpy -------------------------------------------------------------------------------
    def _on_debugpy(self, message: dict[str, Any]) -> None:
        """A message of debugpy's adapter: to the client through the Python backend; its end is the session's."""
        python = self.python
        if python is None:
            return                                      # from a relay already closed
        outcome = python.on_message(message, owns_program=self.debuggee is not None)
        if outcome is Outcome.CLOSED:
            if self.lifecycle.mode is Mode.ATTACH or self.debuggee is None or not self.debuggee.is_running():
                self._finish(None)
        elif outcome is Outcome.PROGRAM_ENDED:
            self.python = None                          # km's exit follows, with `exited`
            python.end()

    def _on_client_response(self, response: dict[str, Any]) -> None:
        if self.forks is not None and self.forks.on_response(response):
            return
        if self.python is not None:
            self.python.on_client_response(response)

    # --- requests that need no particular state --------------------------------------------------------------
    @request(Needs.NOTHING)
    def threads_request(self, args: dict[str, Any]) -> dict[str, Any]:
        """VS Code asks for threads right after a resume too; gdb (all-stop) refuses to list them while the
        payload runs, so the last list is the answer then. In non-stop mode gdb lists running and stopped
        threads alike, at any time."""
        backend = self.backend
        if backend is None or not self.lifecycle.has_debuggee:
            return {"threads": []}
        if self.lifecycle.state is State.RUNNING and not self.lifecycle.threads.non_stop:
            return {"threads": self.known_threads}
        try:
            listed = backend.gdb.command("-thread-info").get("threads", [])
        except GdbError:
            return {"threads": self.known_threads}
        self.known_threads = [{"id": int(t["id"]), "name": t.get("name") or t.get("target-id") or
                               f"thread {t['id']}"} for t in listed]
        self.lifecycle.threads.known = {thread["id"] for thread in self.known_threads}
        return {"threads": self.known_threads}

    @request(Needs.NOTHING)
    def setExceptionBreakpoints_request(self, args: dict[str, Any]) -> dict[str, Any]:
        filters = string_list(args, "filters")
        if self.backend is not None and self.breakpoints is not None and self.lifecycle.has_debuggee:
            self.breakpoints.set_signal_filters(filters)
        self.signal_filters = filters
        return {"breakpoints": [{"verified": True} for _ in filters]}


def _environment(args: dict[str, Any]) -> dict[str, str]:
    env = args.get("env") or {}
    if not isinstance(env, dict):
        raise InvalidArgument("env", "must be an object of strings")
    return {str(k): str(v) for k, v in env.items()}


def _has_symbol(gdb: Gdb, name: str) -> bool:
    try:
        gdb.command(f"-data-evaluate-expression {mi_quote('&' + name)}")
        return True
    except GdbError:
        return False


HANDLERS: dict[str, Handler] = table(session=Session, execution=Execution, inspection=Inspection)
