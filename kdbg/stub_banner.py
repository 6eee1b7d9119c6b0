"""What `km -g` prints on stderr once its gdb stub listens: a contract between processes, declared once.

km prints it (monitor/cli.py); kdbg-dap waits for it and keeps it from the user's console (kdbg/dap/debuggee.py);
Microsoft's cppdbg waits for STUB_STARTED as its `serverStarted` pattern (examples/launch.json). The first lines
talk to a terminal user; the last, STUB_STARTED alone on its line, is the machine-readable "ready".

A forked child that waits for a debugger of its own (KM_GDB_CHILD_FORK_WAIT) says so in one line on the stderr it
shares with its parent km: a user reads the port there, and kdbg-dap's `followForks` turns it into a child session.
"""
from __future__ import annotations

import re
from typing import NamedTuple

STUB_STARTED = "GdbServerStubStarted"
_WAITING = ": Waiting for a debugger. Connect to it like this:"
_MAY_ATTACH = ": gdb may attach at any time: "


def _gdb_command(port: int, payload: str) -> str:
    return f'gdb -q --ex="target remote localhost:{port}" {payload}'


def waiting_banner(subject: str, port: int, payload: str) -> str:
    """km -g (and km --core): the payload (or core) waits for gdb; ends with STUB_STARTED."""
    return f"{subject}{_WAITING}\n        {_gdb_command(port, payload)}\n{STUB_STARTED}"


def listening_banner(payload: str, port: int) -> str:
    """km --gdb_listen: the payload runs, and gdb may attach later."""
    return f"{payload}{_MAY_ATTACH}{_gdb_command(port, payload)}"


class ForkWait(NamedTuple):
    """A forked child's km waiting for gdb: the payload it runs, its pid (the child's getpid()), its stub's port."""
    payload: str
    pid: int
    port: int


_FORK_WAIT = re.compile(r"^km: (?P<payload>.*): forked child pid (?P<pid>\d+) waits for a debugger on port "
                        r"(?P<port>\d+)$")


def fork_wait_banner(payload: str, pid: int, port: int) -> str:
    """The forked child's line: its stub waits for a gdb on `port`."""
    return f"km: {payload}: forked child pid {pid} waits for a debugger on port {port}"


def parse_fork_wait(line: str) -> ForkWait | None:
    """The ForkWait a line of km's stderr announces, or None for any other line."""
    found = _FORK_WAIT.match(line.rstrip("\r\n"))
    if found is None:
        return None
    return ForkWait(found["payload"], int(found["pid"]), int(found["port"]))


def is_banner_line(line: str) -> bool:
    """A line of the banners above other than STUB_STARTED (talk for a terminal user, not payload output)."""
    return _WAITING in line or _MAY_ATTACH in line or line.lstrip().startswith('gdb -q --ex="target remote')
