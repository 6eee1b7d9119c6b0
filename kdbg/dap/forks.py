"""Forked children as debug sessions of their own (`"followForks": true`): the DAP `startDebugging` reverse request,
as debugpy sends it for a Python subprocess.

Design: each forked child gets its own km stub and its own gdb, in a session the client opens for it. The launch
runs km with KM_GDB_CHILD_FORK_WAIT (kdbg/stub_banner.py): a forked child's km takes the parent's breakpoints out
of its copy of the guest, stops before its first instruction and waits for a gdb on the next free port, which it
announces on the stderr it shares with the parent km. The parent session reads that line from km's stderr (it owns
those pipes already) and asks the client to `startDebugging` an `attach` to that port (`child_configuration`); the
client starts a new session of the same type (VS Code: through the extension's descriptor factory), which is a
plain attach plus `forkedChild`. The other design, one gdb with two inferiors (`detach-on-fork off`) and the child
session routed through the parent adapter, would share one all-stop gdb between two DAP sessions: a stop in one
would stop the other, and every request would need an inferior switch. Here the two sessions share nothing, so
the parent session behaves exactly as without the option, and each side ends with its own exit code.

Breakpoints: the parent's gdb never plants them in the child (km takes its int3s back at the fork); the client
sends its breakpoints to every new session before `configurationDone` (VS Code does), so the child session plants
them in the child, which has not run an instruction of its own yet. The child's output shares the parent km's
pipes, so it appears in the parent session, as a forked child's output shares its parent's terminal.

A client that refuses the request (or does not support it: no `supportsStartDebuggingRequest` in `initialize`, then
the option is off) must not leave a child waiting for ever: a refused child is released by a gdb that attaches and
detaches at once, and runs on undebugged, as without the option. A launch terminated before the client answered
ends the children still waiting with it.
"""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable

from kdbg.stub_banner import ForkWait

from .arguments import integer, mapping
from .errors import CantHandle, DapError
from .gdb_backend import Gdb

FORK_WAIT_ENV = "KM_GDB_CHILD_FORK_WAIT"      # km: a forked child whose payload matches this regex waits for gdb
EVERY_PAYLOAD = ".*"
RELEASE_TIMEOUT_S = 20.0
# Settings of the parent's configuration that the child session uses as they are.
_INHERITED = ("type", "gdbPath", "setupCommands", "disassemblyFlavor", "debugServer")


def wanted(args: dict[str, Any], client: dict[str, Any]) -> bool | str:
    """Whether a launch follows forks: True; False when not asked; a reason (str) when asked but impossible."""
    if not args.get("followForks"):
        return False
    if not client.get("supportsStartDebuggingRequest"):
        return "followForks: the client does not support startDebugging; forked children run undebugged"
    return True


def child_configuration(parent: dict[str, Any], fork: ForkWait, cwd: str | None) -> dict[str, Any]:
    """The `attach` configuration of a forked child's session: the child's stub, its program (the forking payload's
    path as km ran it; the parent's program when that is not a file here) and the parent's gdb settings."""
    program = Path(cwd or os.getcwd(), fork.payload)
    name = str(program.resolve()) if program.is_file() else str(parent.get("program", ""))
    config = {key: parent[key] for key in _INHERITED if key in parent}
    config.update(request="attach", name=f"{Path(name).name} (forked child {fork.pid})", program=name,
                  address=f"localhost:{fork.port}", forkedChild={"pid": fork.pid, "port": fork.port})
    config.setdefault("type", "km")
    return config


class Forks:
    """The forks of one launched km: each announced child becomes a `startDebugging` request; a child whose request
    the client refuses is released. `send` stamps the request's seq (the session's transport)."""

    def __init__(self, send: Callable[[dict[str, Any]], None], output: Callable[[str, str], None],
                 gdb_path: str) -> None:
        self._send, self._output, self._gdb_path = send, output, gdb_path
        self._asked: dict[int, ForkWait] = {}             # seq of our startDebugging -> the child it is for

    def announce(self, fork: ForkWait, configuration: dict[str, Any]) -> None:
        message: dict[str, Any] = {"type": "request", "command": "startDebugging",
                                   "arguments": {"request": "attach", "configuration": configuration}}
        self._send(message)
        self._asked[int(message["seq"])] = fork
        self._output("console", f"kdbg-dap: forked child {fork.pid} waits on port {fork.port}: "
                                f"starting its session\n")

    def on_response(self, response: dict[str, Any]) -> bool:
        """The client's answer to one of our requests (True), or not ours (False)."""
        seq = response.get("request_seq")
        fork = self._asked.pop(seq, None) if isinstance(seq, int) else None
        if fork is None:
            return False
        if not response.get("success"):
            why = response.get("message") or "refused"
            if not is_alive(fork.pid):
                self._output("console", f"kdbg-dap: forked child {fork.pid}: the client did not start its session "
                                        f"({why}); it has ended\n")
                return True
            self._output("console", f"kdbg-dap: forked child {fork.pid}: the client did not start its session "
                                    f"({why}); it runs on undebugged\n")
            threading.Thread(target=self._release, args=(fork,), name="fork-release", daemon=True).start()
        return True

    def end(self) -> None:
        """The launch is terminated: a child still waiting for the session the client has not started yet ends
        with it (it has not run an instruction of its own); a child with a session belongs to that session."""
        asked, self._asked = self._asked, {}
        for fork in asked.values():
            if is_alive(fork.pid):
                try:
                    os.kill(fork.pid, signal.SIGKILL)
                except OSError:
                    pass

    def _release(self, fork: ForkWait) -> None:
        try:
            release(fork.port, self._gdb_path)
        except DapError as exc:
            self._output("console", f"kdbg-dap: forked child {fork.pid}: could not release it: {exc}\n")


def release(port: int, gdb_path: str = "gdb") -> None:
    """Let a waiting child run on undebugged: a gdb connects to its stub and detaches."""
    gdb = Gdb(gdb_path, lambda source, record: None)
    try:
        gdb.console("set tcp connect-timeout 3")
        gdb.command(f"-target-select remote localhost:{port}", RELEASE_TIMEOUT_S)
        gdb.console("detach")
    finally:
        gdb.close()


def forked_child(args: dict[str, Any]) -> int | None:
    """The pid of the child an `attach` with `forkedChild` is for (None: an ordinary attach)."""
    child = mapping(args, "forkedChild")
    return integer(child, "pid") if child else None


def is_alive(pid: int) -> bool:
    """The process exists and has not ended (a zombie waiting for its parent's wait has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def check_alive(pid: int) -> None:
    if not is_alive(pid):
        raise CantHandle(f"forked child {pid}: it exited before its session started")
