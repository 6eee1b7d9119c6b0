"""gdb as a subprocess speaking gdb/MI: commands with tokens, results matched to callers, async records as events.

The only importer of pygdbmi (docs/HOUSE-STYLE.md 2.2). pygdbmi's `GdbController` polls its pipes with timeouts, and a
stopped record must reach the session while no command is pending, so this module owns the process and one
reader thread, and uses pygdbmi's record parser (`gdbmiparser.parse_response`) for every line. gdb runs in
all-stop mode with `mi-async on`, so `-exec-interrupt` can stop km's all-stop stub while it runs.
"""
from __future__ import annotations

import itertools
import logging
import shutil
import subprocess
import threading
import time
from typing import Any, Callable

from pygdbmi import gdbmiparser

from .errors import CantHandle, GdbError

log = logging.getLogger("km.dap")

# Settings sent before any target: no pager, no questions, local files for a local static payload.
_SETUP = ("-gdb-set mi-async on", "-gdb-set pagination off", "-gdb-set confirm off", "-gdb-set width 0",
          "-gdb-set height 0", "-gdb-set sysroot /", "-gdb-set print pretty off",
          '-interpreter-exec console "set debuginfod enabled off"')


def mi_quote(text: str) -> str:
    """An MI c-string: gdb/MI's own quoting for arguments holding spaces, quotes or backslashes."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class _Pending:
    def __init__(self, capture: bool) -> None:
        self.done = threading.Event()
        self.record: dict[str, Any] | None = None
        self.console: list[str] | None = [] if capture else None


class Gdb:
    """One gdb process. `command` may be called from any thread; async records go to `on_event(gdb, record)`
    on the reader thread."""

    def __init__(self, gdb_path: str, on_event: Callable[[Gdb, dict[str, Any]], None]) -> None:
        path = shutil.which(gdb_path)
        if path is None:
            raise CantHandle(f"gdb not found: {gdb_path}")
        self._on_event = on_event
        self._tokens = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._capturing: _Pending | None = None
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self.is_alive = True
        self._proc = subprocess.Popen([path, "-q", "-nx", "--interpreter=mi3"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._stdin, self._stdout = self._proc.stdin, self._proc.stdout
        self._reader = threading.Thread(target=self._read_loop, name="gdb-mi-reader", daemon=True)
        self._reader.start()
        for setting in _SETUP:
            self.command(setting)

    def command(self, text: str, timeout_s: float = 10.0, capture: bool = False) -> dict[str, Any]:
        """Send one MI command and wait for its result record; `^error` raises GdbError with gdb's message.

        With `capture`, console stream output produced while the command runs is returned under "console"."""
        if not self.is_alive:
            raise GdbError("gdb has exited")
        token = next(self._tokens)
        pending = _Pending(capture)
        with self._lock:
            self._pending[token] = pending
            if capture:
                self._capturing = pending
        line = f"{token}{text}\n".encode()
        log.debug("gdb <- %s", line.rstrip())
        try:
            with self._write_lock:
                self._stdin.write(line)
                self._stdin.flush()
            if not pending.done.wait(timeout_s):
                raise GdbError(f"gdb did not answer {text.split()[0]} within {timeout_s:g}s")
        except (BrokenPipeError, OSError) as exc:
            raise GdbError("gdb has exited") from exc
        finally:
            with self._lock:
                self._pending.pop(token, None)
                if self._capturing is pending:
                    self._capturing = None
        record = pending.record
        if record is None:
            raise GdbError("gdb has exited")
        payload = dict(record.get("payload") or {})
        if record["message"] == "error":
            raise GdbError(payload.get("msg", "gdb error").strip())
        payload["result"] = record["message"]
        if pending.console is not None:
            payload["console"] = "".join(pending.console)
        return payload

    def console(self, text: str, timeout_s: float = 10.0) -> str:
        """Run a gdb CLI command and return what it printed."""
        return self.command(f"-interpreter-exec console {mi_quote(text)}", timeout_s, capture=True)["console"]

    def _read_loop(self) -> None:
        for raw in iter(self._stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line or line.startswith("(gdb)"):
                continue
            log.debug("gdb -> %s", line)
            try:
                record = gdbmiparser.parse_response(line)
            except Exception:  # pygdbmi raises plain errors on lines it cannot parse
                record = {"type": "output", "message": None, "payload": line}
            try:
                self._dispatch(record)
            except Exception:  # a bad record must not end the reader: later results would never arrive
                log.exception("gdb record %r", line)
        self.is_alive = False
        with self._lock:
            for pending in self._pending.values():
                pending.done.set()
        self._on_event(self, {"type": "gdb-exited", "message": None, "payload": None})

    def _dispatch(self, record: dict[str, Any]) -> None:
        kind = record["type"]
        if kind == "result" and record.get("token") is not None:
            with self._lock:
                pending = self._pending.get(record["token"])
            if pending is not None:
                pending.record = record
                pending.done.set()
                return
        capturing = self._capturing
        if kind in ("console", "log") and capturing is not None and capturing.console is not None:
            capturing.console.append(record["payload"] or "")
            return
        self._on_event(self, record)

    def close(self, timeout_s: float = 3.0) -> None:
        """Ask gdb to exit, then kill it if it does not; never raises."""
        if self._proc.poll() is None and self.is_alive:
            try:
                with self._write_lock:
                    self._stdin.write(b"-gdb-exit\n")
                    self._stdin.flush()
            except OSError:
                pass
        deadline = time.monotonic() + timeout_s
        try:
            self._proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._reader.join(timeout_s)
