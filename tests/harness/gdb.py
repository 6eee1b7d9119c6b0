"""Test-side gdb: a pygdbmi session with deadlines and a transcript (Gdb), a free port for a stub (or any other
server a test starts), and waiting for a stub to listen.

Gdb.run() waits for the command's result record (never a fixed sleep); wait_for_stop() waits for `*stopped`.
Every assertion message should include `gdb.transcript_text()` (Debuggee.diagnostics() adds km's stderr).
End-to-end debuggees are in harness/debuggee.py, the VM-less target in harness/fake_target.py.
"""
from __future__ import annotations

import collections
import re
import select
import socket
import subprocess
import time
from pathlib import Path

from pygdbmi.gdbcontroller import GdbController

DEFAULT_TIMEOUT_S = 15.0
E2E_TIMEOUT_S = 30.0      # per gdb command against a VM: km is a Python VMM and the suite shares 2 cores
BATCH_TIMEOUT_S = 120.0   # a whole gdb -batch run


class GdbError(AssertionError):
    pass


class Gdb:
    """`gdb --interpreter=mi3` driven by MI commands or CLI commands (wrapped in -interpreter-exec)."""

    def __init__(self, *args: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self.controller = GdbController(["gdb", "--nx", "--quiet", "--interpreter=mi3", *args],
                                        time_to_check_for_additional_output_sec=0)
        self.transcript: list[str] = []
        self._pending: collections.deque[dict] = collections.deque()
        self._stops: list[dict] = []
        self._console: list[str] = []
        for cmd in ("-gdb-set mi-async on", "-gdb-set confirm off", "-gdb-set pagination off", "-gdb-set width 0",
                    "-gdb-set remotetimeout 10"):
            self.run(cmd)

    # ---- reading ----

    def _read(self, deadline: float) -> bool:
        """Move what gdb printed (until the deadline) into the pending queue; False on timeout."""
        stdout = self.controller.gdb_process.stdout
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ready, _, _ = select.select([stdout], [], [], remaining)
        if not ready:
            return False
        for record in self.controller.get_gdb_response(timeout_sec=0, raise_error_on_timeout=False):
            if record.get("type") == "console":
                self._console.append(record.get("payload") or "")
            self.transcript.append(f"<- {record.get('type')} {record.get('message') or ''} "
                                   f"{record.get('payload')!r}")
            self._pending.append(record)
        if self.controller.gdb_process.poll() is not None and not self._pending:
            raise GdbError("gdb exited\n" + self.transcript_text())
        return True

    def _next(self, deadline: float) -> dict:
        while not self._pending:
            if not self._read(deadline):
                raise GdbError("timed out waiting for gdb\n" + self.transcript_text())
        return self._pending.popleft()

    # ---- commands ----

    def run(self, cmd: str, *, timeout_s: float | None = None, check: bool = True) -> dict:
        """Send an MI command (or a CLI command, passed through -interpreter-exec) and wait for its result.

        Returns {"class": "done"|"running"|"error"|..., "payload": ..., "console": text printed meanwhile}."""
        if not cmd.startswith("-"):
            cmd = '-interpreter-exec console "%s"' % cmd.replace("\\", "\\\\").replace('"', '\\"')
        self.transcript.append(f"-> {cmd}")
        self.controller.write(cmd, read_response=False)
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        console: list[str] = []
        while True:
            record = self._next(deadline)
            if record["type"] in ("console", "log", "target"):
                console.append(record.get("payload") or "")
            elif record["type"] == "result":
                if record["message"] == "running":
                    self._stops.clear()         # stops seen before this resume are stale
                result = {"class": record["message"], "payload": record.get("payload"),
                          "console": "".join(console)}
                if check and record["message"] == "error":
                    raise GdbError(f"{cmd} failed: {record.get('payload')}\n" + self.transcript_text())
                return result
            elif record["type"] == "notify" and record["message"] == "stopped":
                self._stops.append(record)

    def console(self, cmd: str, **kw) -> str:
        """A CLI command's printed output."""
        return self.run(cmd, **kw)["console"]

    def wait_for_stop(self, reason: str | None = None, deadline: float | None = None, *,
                      timeout_s: float | None = None) -> dict:
        """The next `*stopped` record's payload; with `reason`, it must match (e.g. "breakpoint-hit").

        Waits until `deadline` (a time.monotonic() value), else `timeout_s`, else the session's timeout."""
        if deadline is None:
            deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while not self._stops:
            record = self._next(deadline)
            if record["type"] == "notify" and record["message"] == "stopped":
                self._stops.append(record)
        payload = self._stops.pop(0).get("payload") or {}
        if reason is not None and payload.get("reason") != reason:
            raise GdbError(f"expected stop {reason}, got {payload}\n" + self.transcript_text())
        return payload

    def console_text(self) -> str:
        """Everything gdb printed on its console so far, as the user would have seen it."""
        return "".join(self._console)

    def transcript_text(self, last: int = 80) -> str:
        return "\n".join(self.transcript[-last:])

    def exit(self) -> None:
        try:
            self.controller.exit()
        except Exception:  # noqa: BLE001 - best effort in fixture teardown
            pass


def gdb_batch(*args: str | Path, commands: list[str], timeout_s: float = BATCH_TIMEOUT_S) -> list[str]:
    """Run gdb -batch with `commands` (then `args`: files, or --args and a command line); return each command's
    output (split at echoed markers)."""
    argv = ["gdb", "-batch", "-nx", "-ex", "set pagination off", "-ex", "set width 0", "-ex", "set confirm off"]
    for index, command in enumerate(commands):
        argv += ["-ex", f"echo \\n@@{index}@@\\n", "-ex", command]
    argv += [str(a) for a in args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    transcript = result.stdout + result.stderr
    parts = re.split(r"^@@(\d+)@@$", result.stdout, flags=re.M)
    outputs = {int(parts[i]): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    assert len(outputs) == len(commands), f"gdb stopped early:\n{transcript}"
    return [outputs[i] for i in range(len(commands))]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_listening(port: int) -> bool:
    """Whether some socket listens on 127.0.0.1:port (read from /proc/net/tcp: probing with connect() would
    itself be a gdb connection to the stub)."""
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":
                return True
    return False


def wait_listening(port: int, proc, timeout_s: float = 30.0) -> None:
    """Wait until the stub (km or gdbserver) listens on port; fail early if the process exits."""
    deadline = time.monotonic() + timeout_s
    while not is_listening(port):
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise GdbError(f"the server exited with {proc.returncode} before listening on {port}:\n{err}")
        if time.monotonic() > deadline:
            raise GdbError(f"nothing listens on port {port} after {timeout_s} s")
        # A short bounded wait on the process, not a sleep: returns at once if it exits.
        try:
            proc.wait(timeout=0.02)
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: still running, look again
            pass
