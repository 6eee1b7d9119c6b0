"""A test-side DAP client for kdbg-dap, and the choice of km (real, or the gdbserver stand-in) the tests use.

The client speaks the wire protocol itself (Content-Length framing) so tests exercise kdbg-dap as VS Code does:
requests with seq numbers, responses matched by request_seq, events queued in order and awaited with deadlines.
Every message is kept in a transcript that assertion messages include. Like VS Code, the client answers the
adapter's `startDebugging` reverse request by opening a second session (another kdbg-dap) with the configuration
given, sending it the breakpoints and exception filters the first session was given, then `configurationDone`.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from kdbg.stub_banner import STUB_STARTED

from .build import build
from .gdb import free_port
from .km import ROOT, km_env

STANDIN = Path(__file__).with_name("km_standin.py")
DEFAULT_TIMEOUT_S = 30.0
def frame(body: bytes) -> bytes:
    """A DAP message's wire form: its Content-Length header, a blank line, the body as it is."""
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def encode(message: dict) -> bytes:
    return frame(json.dumps(message).encode())


def read_message(stream) -> dict | None:
    """The next DAP message from a Content-Length framed stream (blank lines between frames are skipped), or None
    at its end."""
    while True:
        header = stream.readline()
        if not header:
            return None
        if header.strip():
            break
    length = int(header.split(b":")[1])
    while stream.readline().strip():
        pass
    return json.loads(stream.read(length))


class DapFailure(AssertionError):
    pass


class DapClient:
    """kdbg-dap over stdio (`python -m kdbg.dap`), with a transcript of everything exchanged.

    `start_children`: answer `startDebugging` at once by opening the child session (`children` then holds it, or
    `child_errors` why it failed); False leaves the requests in `reverse_requests` for the test (`open_child`)."""

    def __init__(self, log_path: Path | None = None, env: dict[str, str] | None = None,
                 start_children: bool = True) -> None:
        argv = [sys.executable, "-m", "kdbg.dap"] + (["--log", str(log_path)] if log_path else [])
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=km_env(env), cwd=ROOT)
        self._log_path, self._env, self.start_children = log_path, env, start_children
        self._seq = 0
        self._write_lock = threading.Lock()
        self._cond = threading.Condition()
        self._responses: dict[int, dict] = {}
        self._events: list[dict] = []
        self.all_events: list[dict] = []
        self.reverse_requests: list[dict] = []
        self.children: list[DapClient] = []
        self.child_errors: list[str] = []
        self.given_breakpoints: dict[str, list[dict]] = {}      # what start() set: every child session gets it too
        self.given_filters: list[str] | None = None
        self.transcript: list[str] = []
        self._closed = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while (message := read_message(self.proc.stdout)) is not None:
            with self._cond:
                self.transcript.append("<- " + json.dumps(message)[:400])
                kind = message.get("type")
                if kind == "response":
                    if isinstance(message.get("request_seq"), int):     # a fuzzer's odd seq: transcript only
                        self._responses[message["request_seq"]] = message
                elif kind == "event":
                    self._events.append(message)
                    self.all_events.append(message)
                elif kind == "request":
                    self.reverse_requests.append(message)
                    if message["command"] == "startDebugging" and self.start_children:
                        threading.Thread(target=self._start_child, args=(message,), daemon=True).start()
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _write(self, message: dict) -> None:
        self.send_raw(encode(message), "-> " + json.dumps(message)[:400])

    def send_raw(self, data: bytes, shown: str | None = None) -> None:
        """Bytes as they are (a fuzzer's broken frames); OSError once the adapter stopped reading."""
        with self._write_lock:
            self.transcript.append(shown or "-> raw " + repr(data[:400]))
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def send(self, command: str, arguments: dict | None = None) -> int:
        with self._write_lock:
            self._seq += 1
            seq = self._seq
        self._write({"seq": seq, "type": "request", "command": command, "arguments": arguments or {}})
        return seq

    def answer(self, reverse: dict, success: bool, message: str | None = None) -> None:
        """The client's response to a reverse request of the adapter's."""
        with self._write_lock:
            self._seq += 1
            seq = self._seq
        reply = {"seq": seq, "type": "response", "request_seq": reverse["seq"], "command": reverse["command"],
                 "success": success}
        if message is not None:
            reply["message"] = message
        self._write(reply)

    def wait_reverse(self, command: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict:
        """The first reverse request `command` the adapter sent (not consumed)."""
        def find() -> dict | None:
            return next((r for r in self.reverse_requests if r["command"] == command), None)
        with self._cond:
            if not self._cond.wait_for(lambda: find() is not None or self._closed, timeout_s) or find() is None:
                raise DapFailure(f"no {command} request within {timeout_s}s\n{self.dump()}")
            return find()

    def open_child(self, reverse: dict) -> DapClient:
        """What VS Code does for `startDebugging`: a new session of the same type started with the configuration
        (the first session's breakpoints and filters re-sent), then the answer: success, or the failure's first
        line (and DapFailure raised)."""
        arguments = reverse["arguments"]
        log_path = self._log_path.with_name(f"{self._log_path.stem}-child{len(self.children)}.log") \
            if self._log_path else None
        child = DapClient(log_path, self._env)
        child.km_path, child.km_label = getattr(self, "km_path", None), getattr(self, "km_label", None)
        self.children.append(child)
        try:
            child.start(arguments["request"], arguments["configuration"], self.given_breakpoints or None,
                        self.given_filters)
        except DapFailure as exc:
            self.answer(reverse, False, str(exc).splitlines()[0])
            raise
        self.answer(reverse, True)
        return child

    def _start_child(self, reverse: dict) -> None:
        try:
            self.open_child(reverse)
        except (DapFailure, OSError) as exc:
            with self._cond:
                self.child_errors.append(str(exc))
        with self._cond:
            self._cond.notify_all()

    def wait_child(self, timeout_s: float = 90.0) -> DapClient:
        """The first child session, once it is started (configurationDone answered); a failed start raises."""
        def started() -> bool:
            return bool(self.children) and self.children[0].configured
        with self._cond:
            self._cond.wait_for(lambda: started() or bool(self.child_errors), timeout_s)
            if self.child_errors:
                raise DapFailure(f"the child session failed: {self.child_errors[0]}\n{self.dump()}")
            if not started():
                raise DapFailure(f"no child session within {timeout_s}s\n{self.dump()}")
            return self.children[0]

    def response(self, seq: int, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict:
        with self._cond:
            if not self._cond.wait_for(lambda: seq in self._responses or self._closed, timeout_s):
                raise DapFailure(f"no response to request {seq} within {timeout_s}s\n{self.dump()}")
            if seq not in self._responses:
                raise DapFailure(f"kdbg-dap closed before answering request {seq}\n{self.dump()}")
            return self._responses.pop(seq)

    def request(self, command: str, arguments: dict | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict:
        """The response message, successful or not."""
        return self.response(self.send(command, arguments), timeout_s)

    def call(self, command: str, arguments: dict | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict:
        """The body of a successful response; a failed one raises with the transcript."""
        reply = self.request(command, arguments, timeout_s)
        if not reply["success"]:
            raise DapFailure(f"{command} failed: {reply.get('message')}\n{self.dump()}")
        return reply.get("body") or {}

    def wait_event(self, name: str, match: Callable[[dict], bool] | None = None,
                   timeout_s: float = DEFAULT_TIMEOUT_S) -> dict:
        """The oldest unconsumed event `name` (that `match`es), consumed; raises at the deadline."""
        def find() -> dict | None:
            for event in self._events:
                if event["event"] == name and (match is None or match(event.get("body") or {})):
                    return event
            return None
        with self._cond:
            if not self._cond.wait_for(lambda: find() is not None or self._closed, timeout_s) or find() is None:
                raise DapFailure(f"no {name} event within {timeout_s}s\n{self.dump()}")
            event = find()
            self._events.remove(event)
            return event.get("body") or {}

    def output(self, category: str | None = None) -> str:
        with self._cond:
            return "".join(e["body"]["output"] for e in self.all_events if e["event"] == "output"
                           and (category is None or e["body"].get("category") == category))

    def wait_output(self, text: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
        with self._cond:
            if not self._cond.wait_for(lambda: text in self.output() or self._closed, timeout_s) \
                    or text not in self.output():
                raise DapFailure(f"no output {text!r} within {timeout_s}s\n{self.dump()}")
            return self.output()

    def dump(self) -> str:
        return "DAP transcript:\n" + "\n".join(self.transcript[-80:])

    # conveniences for the common sequences
    def start(self, request: str, arguments: dict, breakpoints: dict[str, list[dict]] | None = None,
              exception_filters: list[str] | None = None) -> dict:
        """initialize, launch/attach, wait for `initialized`, set breakpoints, configurationDone. The
        launch/attach response is awaited at the end: debugpy (a Python program) answers it only after
        configurationDone, as VS Code expects (microsoft/vscode#4902); gdb's side answers at once."""
        self.given_breakpoints, self.given_filters = dict(breakpoints or {}), exception_filters
        caps = self.call("initialize", {"adapterID": "km", "linesStartAt1": True, "columnsStartAt1": True,
                                        "pathFormat": "path", "supportsMemoryReferences": True,
                                        "supportsStartDebuggingRequest": True})
        started = self.send(request, arguments)

        def failed() -> bool:
            return started in self._responses and not self._responses[started]["success"]
        with self._cond:
            self._cond.wait_for(lambda: failed() or self._closed or any(e["event"] == "initialized"
                                                                        for e in self._events), 90)
            if failed():
                raise DapFailure(f"{request} failed: {self._responses[started].get('message')}\n{self.dump()}")
        self.wait_event("initialized")
        for path, bps in (breakpoints or {}).items():
            self.call("setBreakpoints", {"source": {"path": path}, "breakpoints": bps})
        if exception_filters is not None:
            self.call("setExceptionBreakpoints", {"filters": exception_filters})
        self.call("configurationDone")
        reply = self.response(started)
        if not reply["success"]:
            raise DapFailure(f"{request} failed: {reply.get('message')}\n{self.dump()}")
        self.configured = True
        return caps

    def top_frame(self, thread_id: int) -> dict:
        return self.call("stackTrace", {"threadId": thread_id, "startFrame": 0, "levels": 20})["stackFrames"][0]

    def locals_of(self, frame_id: int) -> dict[str, dict]:
        scopes = self.call("scopes", {"frameId": frame_id})["scopes"]
        ref = next(s for s in scopes if s["name"] == "Locals")["variablesReference"]
        return {v["name"]: v for v in self.call("variables", {"variablesReference": ref})["variables"]}

    configured = False                  # start() went through configurationDone

    def close(self) -> None:
        for child in self.children:
            child.close()
        if self.proc.poll() is None:
            try:
                self.request("disconnect", {"terminateDebuggee": True}, timeout_s=10)
            except (DapFailure, OSError, ValueError):
                pass
            try:
                self.proc.stdin.close()
                self.proc.wait(5)
            except (subprocess.TimeoutExpired, OSError):
                self.proc.kill()
                self.proc.wait()


class WatchedServer:
    """A debug server started as an editor starts one (debugServerPath, or km --gdb_listen to attach to): in its
    own process group (the gdbserver stand-in has children), its stdout and stderr collected as text, started
    once a line of either matches `started`."""

    def __init__(self, argv: list[str], started: str) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(argv, env=km_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
        self.stdout = self.stderr = ""
        self.matched = False
        self._pattern = re.compile(started)
        self._seen = threading.Event()          # a line matched, or an output ended
        self._pumps = [threading.Thread(target=self._pump, args=(name,), daemon=True) for name in ("stdout", "stderr")]
        for pump in self._pumps:
            pump.start()

    def _pump(self, name: str) -> None:
        for line in getattr(self.proc, name):
            setattr(self, name, getattr(self, name) + line)
            if self._pattern.search(line):
                self.matched = True
                self._seen.set()
        self._seen.set()

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def wait_started(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Until a line matched; a server that ended first or said nothing in time fails the test."""
        self._seen.wait(timeout_s)
        assert self.matched and self.proc.poll() is None, f"{shlex.join(self.argv)} did not start:\n{self.output}"

    def finish(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
        """Its exit status, once it ended and all it printed is collected."""
        status = self.proc.wait(timeout_s)
        for pump in self._pumps:
            pump.join(timeout_s)
        return status

    def kill(self) -> None:
        """The server and anything it started go together."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def _probe_real_km() -> str | None:
    """Why the real km can't serve these tests yet, or None when `km -g` runs a payload under gdb."""
    payload = build("dap_basic.c", "musl")
    port = free_port()
    km = subprocess.Popen([sys.executable, "-m", "monitor.cli", f"-g{port}", str(payload)], env=km_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        started, decided = threading.Event(), threading.Event()

        def watch() -> None:
            for line in km.stderr:
                if line.strip() == STUB_STARTED.encode():
                    started.set()
                    decided.set()
            decided.set()
        threading.Thread(target=watch, daemon=True).start()
        if not decided.wait(10) or not started.is_set():
            return f"km -g did not print {STUB_STARTED}"
        gdb = subprocess.run(["gdb", "-q", "-nx", "-batch", "-ex", f"target remote localhost:{port}",
                              "-ex", "continue", str(payload)], capture_output=True, timeout=30)
        status = km.wait(10)
        if status != 7:
            return f"km -g under gdb exited {status}, not 7: {gdb.stdout.decode()[-300:]}"
        return None
    except (subprocess.TimeoutExpired, OSError) as exc:
        return f"km -g under gdb: {exc}"
    finally:
        if km.poll() is None:
            km.kill()
            km.wait()


@lru_cache(maxsize=1)
def km_under_test() -> tuple[list[str], str]:
    """(kmPath for launch configurations, label): the real km. A km whose stub does not work fails the tests
    (they must not pass on a stand-in while km is broken); KDBG_DAP_KM=standin runs them on gdbserver instead,
    to tell a DAP-side failure from a km-side one."""
    if os.environ.get("KDBG_DAP_KM") == "standin":
        return [sys.executable, str(STANDIN)], "gdbserver stand-in (KDBG_DAP_KM=standin)"
    real = [sys.executable, "-m", "monitor.cli"]
    if os.environ.get("KDBG_DAP_KM") != "real":
        why_not = _probe_real_km()
        if why_not is not None:
            raise AssertionError(f"km's gdb stub does not work, so the DAP tests cannot run on it: {why_not}")
    return real, "real km"


def marker_path(name: str) -> str:
    return str(ROOT / "tests" / "payloads" / name)


def dap_fixture(tmp_path: Path, request):
    """Body of the `dap` fixture: a factory of clients, each closed (and its km killed) at teardown."""
    clients: list[DapClient] = []
    km_path, label = km_under_test()
    request.node.user_properties.append(("km", label))

    def make(env: dict[str, str] | None = None, start_children: bool = True) -> DapClient:
        client = DapClient(log_path=tmp_path / f"kdbg-dap-{len(clients)}.log", env=env, start_children=start_children)
        client.km_path, client.km_label = km_path, label
        clients.append(client)
        return client
    yield make
    for client in clients:
        client.close()


def load_jsonc(path: Path) -> Any:
    """JSON with // and /* */ comments, as VS Code reads launch.json (comments inside strings are kept)."""
    text, out, i, in_string = path.read_text(), [], 0, False
    while i < len(text):
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\":
                out.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif text.startswith("//", i):
            i = text.find("\n", i) - 1 if "\n" in text[i:] else len(text)
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 1
        else:
            out.append(ch)
        i += 1
    return json.loads(re.sub(r",(\s*[}\]])", r"\1", "".join(out)))


def substitute(value: Any, variables: dict[str, str]) -> Any:
    """VS Code's ${name} substitution in every string of a configuration."""
    if isinstance(value, str):
        return re.sub(r"\$\{(\w+)\}", lambda m: variables.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value
