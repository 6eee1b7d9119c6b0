"""The km process behind a `launch`: started as `km -g<PORT> program args`, awaited until its stub listens,
its output forwarded, its exit status collected.

km's command-line contract (kdbg/stub_banner.py): on stderr it prints a banner ending in STUB_STARTED, then waits
for gdb; its exit status is the payload's. The banner's other lines are km talking to a terminal user, so (like
cppdbg's filterStderr) they are not forwarded to the DAP client. Neither is a forked child's "waits for a debugger"
line (KM_GDB_CHILD_FORK_WAIT): it goes to `on_fork_wait`, which opens the child's session (forks.py), and the
banner that child's stub prints next is dropped like the parent's.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Callable, Sequence

from kdbg.stub_banner import STUB_STARTED, ForkWait, is_banner_line, parse_fork_wait

from .errors import CantHandle

OUTPUT_DRAIN_S = 5.0


def pick_port(port: int) -> int:
    """`port` if it is free on localhost (0: any free port); a port in use is a one-line failure."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise CantHandle(f"gdb port {port}: address already in use") from None
        return probe.getsockname()[1]


def km_command(km_path: str | Sequence[str]) -> list[str]:
    """The argv prefix that runs km: a path or name on PATH, or a list such as [python3, -m, monitor.cli]."""
    argv = [km_path] if isinstance(km_path, str) else list(km_path)
    if not argv or not isinstance(argv[0], str):
        raise CantHandle("km not found: kmPath is empty")
    found = shutil.which(argv[0])
    if found is None:
        raise CantHandle(f"km not found: {argv[0]}")
    return [found, *argv[1:]]


class Debuggee:
    """A running `km -g<port>`; `output(category, text)` receives its stdout and stderr as they come,
    `on_fork_wait(fork)` each forked child's km that waits for a debugger."""

    def __init__(self, argv: list[str], env: dict[str, str] | None, cwd: str | None,
                 output: Callable[[str, str], None],
                 on_fork_wait: Callable[[ForkWait], None] | None = None) -> None:
        self.argv = argv
        self._output = output
        self._on_fork_wait = on_fork_wait
        self._started = threading.Event()
        self._decided = threading.Event()      # set on GdbServerStubStarted or when km closes stderr
        self._stderr_tail: list[str] = []
        full_env = dict(os.environ, **(env or {}))
        if cwd is not None and not Path(cwd).is_dir():
            raise CantHandle(f"cwd {cwd}: no such directory")
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, env=full_env, cwd=cwd, bufsize=0)
        except OSError as exc:
            raise CantHandle(f"cannot start km ({argv[0]}): {exc.strerror}") from None
        self._readers = [threading.Thread(target=self._pump, args=(self.proc.stdout, "stdout"), daemon=True),
                         threading.Thread(target=self._pump, args=(self.proc.stderr, "stderr"), daemon=True)]
        for reader in self._readers:
            reader.start()

    def wait_for_stub(self, timeout_s: float) -> None:
        """Block until km prints GdbServerStubStarted; km exiting first or the deadline raise CantHandle."""
        if not self._decided.wait(timeout_s):
            raise CantHandle(f"km did not print {STUB_STARTED} within {timeout_s:g}s")
        if not self._started.is_set():
            try:
                status: int | str = self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                status = "none (closed stderr)"
            why = self._stderr_tail[-1].strip() if self._stderr_tail else f"exit status {status}"
            raise CantHandle(f"km exited before its gdb stub started: {why}")

    def _pump(self, stream: IO[bytes], category: str) -> None:
        pending = b""
        for chunk in iter(lambda: stream.read(65536), b""):  # raw FileIO: returns what is there
            if category == "stdout":
                self._output("stdout", chunk.decode("utf-8", "replace"))
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                self._stderr_line(raw.decode("utf-8", "replace") + "\n")
        if pending:
            self._stderr_line(pending.decode("utf-8", "replace"))
        if category == "stderr":
            self._decided.set()

    def _stderr_line(self, line: str) -> None:
        if not self._started.is_set():
            if line.strip() == STUB_STARTED:
                self._started.set()
                self._decided.set()
                return
            if is_banner_line(line):
                return
            self._stderr_tail.append(line)
        elif self._on_fork_wait is not None:
            if (fork := parse_fork_wait(line)) is not None:
                self._on_fork_wait(fork)
                return
            if is_banner_line(line) or line.strip() == STUB_STARTED:     # the waiting child's own banner
                return
        self._output("stderr", line)

    def is_running(self) -> bool:
        return self.proc.poll() is None

    def last_stderr_line(self) -> str:
        """km's last line on stderr before its stub started (why it could not start), or ''."""
        return self._stderr_tail[-1].strip() if self._stderr_tail else ""

    def wait(self, timeout_s: float | None) -> int | None:
        """km's exit status once it and its output are done; None if it is still running at the deadline."""
        try:
            status = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None
        drain_until = time.monotonic() + (OUTPUT_DRAIN_S if timeout_s is None else timeout_s)
        for reader in self._readers:      # a child of the payload may hold km's pipes open: wait a bounded time
            reader.join(max(0.0, drain_until - time.monotonic()))
        return status

    def kill(self) -> None:
        """End km (and with it the payload); never raises."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(2.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for reader in self._readers:
            reader.join(2.0)
