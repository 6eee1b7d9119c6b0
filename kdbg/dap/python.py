"""Python programs through debugpy: for a launch, kdbg-dap starts debugpy's adapter (on the host, over pipes) listening
for the program's debug server, then `km <python> -m debugpy --connect 127.0.0.1:PORT --wait-for-client <program>
<args>`: the interpreter and pydevd (debugpy's debug server) run in the VM and connect out to the adapter. kdbg-dap
relays the client's DAP session to the adapter and back, so every debugpy feature passes through unchanged. The
adapter only translates DAP to pydevd's protocol; `--listen` would start it inside the VM too, as a second
interpreter with debugpy's imports under km, which doubled the time to the first stop (bench/dap_python.py). An
`attach` connects to the adapter of a `km <python> -m debugpy --listen HOST:PORT` started by hand.

What kdbg-dap keeps for itself: km's `output` (the payload's real stdout/stderr, read from km's pipes) and
`exited` (km's exit status); debugpy's own copies of those are dropped for a launch. Sequence numbers differ on
the two sides, so responses are matched back to the client's request here, and debugpy's reverse requests
(runInTerminal, startDebugging) to the client's responses.

The payload's interpreter imports the debugpy that kdbg-dap itself runs with (same version, so the adapter's
capabilities are the ones kdbg-dap announces): `PYTHONPATH` gets a private directory holding only a `debugpy`
symlink, so nothing else of kdbg-dap's environment leaks into the payload's `sys.path`. debugpy 1.8 supports
CPython 3.8-3.13; its compiled speed-ups load only into the CPython minor version they were built for and
pydevd falls back to pure Python otherwise.

`KDBG_DAP_PYTHON_RUNNER=native` runs the interpreter on the host instead of in km: a test hook from before km ran
dynamic executables, kept to compare the two (bench/dap_python.py); nothing else sets it.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import debugpy

from .errors import CantHandle, InvalidArgument
from .transport import Transport, TransportClosed

log = logging.getLogger("km.dap")

RUNNER_ENV = "KDBG_DAP_PYTHON_RUNNER"
DEFAULT_PYTHON = "/usr/bin/python3"
LISTEN_TIMEOUT_S = 60.0          # interpreter start-up plus debugpy's imports, in the VM, until its server connects
ADAPTER_TIMEOUT_S = 20.0        # debugpy's adapter on the host, until it listens for the program
ATTACH_TIMEOUT_S = 20.0         # an attach may race the program's start: wait that long for it to listen
REQUEST_TIMEOUT_S = 15.0
# Launch-configuration keys that are kdbg-dap's; the rest of a configuration goes to debugpy as it is.
KM_KEYS = frozenset({"type", "request", "name", "program", "args", "python", "kmPath", "kmArgs", "env", "cwd",
                     "port", "address", "gdbPath", "setupCommands", "disassemblyFlavor", "coreFile", "__configurationTarget",
                     "__sessionId", "debugServer", "followForks", "forkedChild"})
# Events debugpy sends that km answers itself for a launch: the payload's output, its exit.
_KM_EVENTS = frozenset({"exited", "terminated"})
_KM_OUTPUT = frozenset({"stdout", "stderr"})


def is_python(args: dict[str, Any]) -> bool:
    """A Python program: `program` ends in .py, or the configuration names an interpreter."""
    program = args.get("program")
    return bool(args.get("python")) or (isinstance(program, str) and program.endswith(".py"))


def interpreter(args: dict[str, Any]) -> str:
    value = args.get("python") or DEFAULT_PYTHON
    if not isinstance(value, str):
        raise InvalidArgument("python", "must be the path of a Python interpreter")
    found = shutil.which(value)
    if found is None:
        raise CantHandle(f"python not found: {value}")
    return os.path.realpath(found)


def runs_natively() -> bool:
    return os.environ.get(RUNNER_ENV) == "native"


def debugpy_home() -> str:
    """A directory holding only kdbg-dap's own debugpy (as a symlink), for the payload's PYTHONPATH."""
    home = Path(tempfile.mkdtemp(prefix="kdbg-dap-debugpy-"))
    (home / "debugpy").symlink_to(Path(debugpy.__file__).resolve().parent)
    return str(home)


def launch_argv(runner: list[str], python: str, port: int, program: str, program_args: list[str],
                how: str = "--listen") -> list[str]:
    """`runner` (km's argv prefix; empty for the native runner) + the interpreter waiting for debugpy's client, its
    debug server listening for an adapter (`--listen`) or connecting to one (`--connect`). Frozen stdlib modules
    would hide breakpoints set in them, hence -Xfrozen_modules=off."""
    return [*runner, python, "-Xfrozen_modules=off", "-m", "debugpy", how, f"127.0.0.1:{port}", "--wait-for-client",
            program, *program_args]


def start_adapter() -> subprocess.Popen[bytes]:
    """debugpy's adapter on the host, over its stdin/stdout, with kdbg-dap's own Python and debugpy: for a launch,
    the program's debug server (in the VM) connects to it. The adapter only translates DAP to pydevd's protocol
    and back, so nothing of the program's runs outside km; starting it in the VM instead (what `--listen` does)
    costs a second interpreter start-up and debugpy's imports under km, seconds before the first stop."""
    return subprocess.Popen([sys.executable, "-m", "debugpy.adapter"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)


def debugpy_arguments(args: dict[str, Any], host: str, port: int, how: str = "connect") -> dict[str, Any]:
    """The `attach` debugpy's adapter gets: the client's configuration without km's keys, and where the adapter
    finds the program's debug server (`connect`: it listens there) or waits for it (`listen`)."""
    forwarded = {key: value for key, value in args.items() if key not in KM_KEYS}
    if how == "listen":
        forwarded.pop("connect", None)
    forwarded.setdefault(how, {"host": host, "port": port})
    forwarded["redirectOutput"] = False          # km forwards the payload's real output
    return forwarded


def connect(host: str, port: int, timeout_s: float, alive: Callable[[], bool]) -> socket.socket:
    """Connect to debugpy's adapter once it listens. Nothing announces that it does, so retry until the
    deadline, waiting a little between tries, and give up at once when the program ends (`alive`)."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while True:
        try:
            return socket.create_connection((host, port), timeout=max(0.1, deadline - time.monotonic()))
        except OSError as exc:
            if not alive():
                raise CantHandle("the program ended before debugpy listened") from None
            if time.monotonic() >= deadline:
                raise CantHandle(f"debugpy did not listen on {host}:{port} within {timeout_s:g}s: "
                                 f"{exc.strerror or exc}") from None
            pause.wait(0.05)


@lru_cache(maxsize=1)
def adapter_capabilities() -> str:
    """debugpy's adapter's `initialize` answer (JSON), asked of the same debugpy run natively once: what a client
    that must know a Python session's capabilities before `launch` (VS Code, via `--python`) is given."""
    proc = subprocess.Popen([sys.executable, "-m", "debugpy.adapter"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        transport = Transport(proc.stdout, proc.stdin)
        transport.send({"type": "request", "command": "initialize", "arguments": {"adapterID": "km"}})
        while True:
            message = transport.read_message()
            if message.get("type") == "response":
                return json.dumps(message.get("body") or {})
    finally:
        proc.kill()
        proc.wait()


class _Waiter:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.response: dict[str, Any] | None = None


class DebugpyRelay:
    """One connection to debugpy's adapter: a socket (an adapter in the VM, `--listen`) or the pipes of an adapter
    kdbg-dap runs itself. `request` waits for debugpy's answer (kdbg-dap's own requests); `forward` sends a
    client's request on, its response later reaching `post` like every other message; `watch` is set when an
    event of that name has passed."""

    def __init__(self, post: Callable[[dict[str, Any]], None], sock: socket.socket | None = None,
                 adapter: subprocess.Popen[bytes] | None = None) -> None:
        self._sock, self._adapter = sock, adapter
        if sock is not None:
            self.transport = Transport(sock.makefile("rb"), sock.makefile("wb"))
        else:
            assert adapter is not None and adapter.stdout is not None and adapter.stdin is not None
            self.transport = Transport(adapter.stdout, adapter.stdin)
        self._post = post
        self._lock = threading.Lock()
        self._waiting: dict[int, _Waiter] = {}
        self._watched: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._forwarded: dict[int, tuple[int, str]] = {}         # our seq -> (client's seq, client's command)
        self._reverse: dict[int, int] = {}                       # seq given to the client -> debugpy's seq
        self.is_open = True
        threading.Thread(target=self._read, name="debugpy-reader", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                message = self.transport.read_message()
            except TransportClosed:
                break
            except ValueError as exc:
                log.warning("dropped a debugpy message: %s", exc)
                continue
            if message.get("type") == "response":
                with self._lock:
                    waiter = self._waiting.pop(int(message.get("request_seq", -1)), None)
                if waiter is not None:
                    waiter.response = message
                    waiter.done.set()
                    continue
            elif message.get("type") == "event":
                with self._lock:
                    watched = self._watched.pop(str(message.get("event")), None)
                if watched is not None:
                    watched[1].append(message.get("body") or {})
                    watched[0].set()
            self._post(message)
        self.is_open = False
        with self._lock:
            for waiter in self._waiting.values():
                waiter.done.set()
            for done, _ in self._watched.values():
                done.set()
        self._post({"type": "closed"})

    def watch(self, event: str) -> tuple[threading.Event, list[dict[str, Any]]]:
        """A flag set when the next `event` passes (or the connection ends), and a list that then holds its body."""
        watched: tuple[threading.Event, list[dict[str, Any]]] = (threading.Event(), [])
        with self._lock:
            self._watched[event] = watched
        return watched

    def request(self, command: str, arguments: dict[str, Any], timeout_s: float = REQUEST_TIMEOUT_S) -> dict[str, Any]:
        """Send a request of kdbg-dap's own and return debugpy's response body; a failure raises CantHandle."""
        waiter = _Waiter()
        message: dict[str, Any] = {"type": "request", "command": command, "arguments": arguments}
        with self._lock:
            self.transport.send(message)
            self._waiting[message["seq"]] = waiter
        if not waiter.done.wait(timeout_s) or waiter.response is None:
            raise CantHandle(f"debugpy did not answer {command} within {timeout_s:g}s")
        if not waiter.response.get("success"):
            raise CantHandle(f"debugpy: {waiter.response.get('message') or command + ' failed'}")
        return waiter.response.get("body") or {}

    def forward(self, request: dict[str, Any], command: str | None = None,
                arguments: dict[str, Any] | None = None) -> None:
        """Send the client's request on (optionally as another command or with other arguments)."""
        message: dict[str, Any] = {"type": "request", "command": command or request.get("command"),
                   "arguments": request.get("arguments") if arguments is None else arguments}
        with self._lock:
            self.transport.send(message)
            self._forwarded[message["seq"]] = (int(request.get("seq", 0)), str(request.get("command")))

    def client_response(self, response: dict[str, Any]) -> dict[str, Any] | None:
        """debugpy's response to a forwarded request, renumbered for the client (None: not the client's)."""
        with self._lock:
            origin = self._forwarded.pop(int(response.get("request_seq", -1)), None)
        if origin is None:
            return None
        reply = {key: value for key, value in response.items() if key != "seq"}
        reply["request_seq"], reply["command"] = origin
        return reply

    def reverse_request(self, request: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> None:
        """A request of debugpy's to the client (runInTerminal, startDebugging), sent with the client's numbering."""
        message = {key: value for key, value in request.items() if key != "seq"}
        send(message)
        with self._lock:
            self._reverse[message["seq"]] = int(request.get("seq", 0))

    def answer_reverse(self, response: dict[str, Any]) -> None:
        """The client's response to a reverse request, renumbered for debugpy."""
        with self._lock:
            origin = self._reverse.pop(int(response.get("request_seq", -1)), None)
        if origin is None:
            return
        reply = {key: value for key, value in response.items() if key != "seq"}
        reply["request_seq"] = origin
        try:
            with self._lock:
                self.transport.send(reply)
        except TransportClosed:
            pass

    def drops(self, event: dict[str, Any], owns_program: bool) -> bool:
        """Whether kdbg-dap answers this event itself: km's output and exit, when kdbg-dap started km."""
        if not owns_program:
            return False
        name = event.get("event")
        return name in _KM_EVENTS or (name == "output" and (event.get("body") or {}).get("category") in _KM_OUTPUT)

    def close(self) -> None:
        self.is_open = False
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        if self._adapter is not None:
            self._adapter.kill()
            self._adapter.wait()


def first_line(program: str) -> int:
    """The line of the program's first statement (where a stop on entry belongs); 1 when it does not compile
    here (debugpy reports the error itself)."""
    try:
        code = compile(Path(program).read_bytes(), program, "exec")
    except (OSError, SyntaxError, ValueError):
        return 1
    return next((line for _, _, line in code.co_lines() if line), 1)


class EntryStop:
    """`stopOnEntry` for a Python program. debugpy honours it only when its adapter launched the program itself
    (pydevd checks for a `launch` start), and here the adapter attaches to a program waiting for it; so kdbg-dap
    plants a breakpoint of its own on the program's first statement, hidden from the client, reports the stop
    there as `entry`, and then gives the client's own breakpoints of that file back to debugpy."""

    def __init__(self, program: str) -> None:
        self.path = os.path.realpath(program)
        self.line = first_line(program)
        self.pending = True
        self.client_lines: list[dict[str, Any]] | None = None   # the client's breakpoints in the program's file
        self._hidden: set[int] = set()          # the client's setBreakpoints (seq) that carried the entry line too

    def _is_program(self, arguments: dict[str, Any]) -> bool:
        path = (arguments.get("source") or {}).get("path")
        return isinstance(path, str) and os.path.realpath(path) == self.path

    def _with_entry(self, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return lines if any(b.get("line") == self.line for b in lines) else [*lines, {"line": self.line}]

    def client_request(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """The arguments to send debugpy instead of the client's (None: send them as they are)."""
        arguments = request.get("arguments") or {}
        if not self.pending or request.get("command") != "setBreakpoints" or not self._is_program(arguments):
            return None
        self.client_lines = list(arguments.get("breakpoints") or [])
        with_entry = self._with_entry(self.client_lines)
        if len(with_entry) == len(self.client_lines):
            return None
        self._hidden.add(int(request.get("seq", 0)))
        return {**arguments, "breakpoints": with_entry}

    def client_response(self, reply: dict[str, Any]) -> None:
        """The answer to the client's setBreakpoints lists only the client's breakpoints (the entry one was last)."""
        if int(reply.get("request_seq", -1)) in self._hidden:
            self._hidden.discard(int(reply["request_seq"]))
            body = reply.get("body") or {}
            if isinstance(body.get("breakpoints"), list):
                body["breakpoints"] = body["breakpoints"][:-1]

    def before_configuration_done(self, relay: DebugpyRelay) -> None:
        """The client set no breakpoint in the program's file: the entry breakpoint goes alone."""
        if self.pending and self.client_lines is None:
            relay.request("setBreakpoints", {"source": {"path": self.path}, "breakpoints": [{"line": self.line}]})

    def on_stopped(self, body: dict[str, Any], relay: DebugpyRelay) -> None:
        """The first stop: at the entry breakpoint it is the entry (the client's breakpoint on that line, if any,
        then counts as hit too); either way the entry breakpoint goes and the client's are what debugpy keeps."""
        if not self.pending:
            return
        self.pending = False
        if body.get("reason") == "breakpoint":
            try:
                top = relay.request("stackTrace", {"threadId": body.get("threadId"), "levels": 1})["stackFrames"][0]
                at_entry = (top.get("line") == self.line
                            and os.path.realpath((top.get("source") or {}).get("path") or "") == self.path)
            except (CantHandle, KeyError, IndexError):
                at_entry = False
            if at_entry and not any(b.get("line") == self.line for b in self.client_lines or []):
                body["reason"] = "entry"
                body.pop("hitBreakpointIds", None)
        relay.request("setBreakpoints", {"source": {"path": self.path}, "breakpoints": self.client_lines or []})
