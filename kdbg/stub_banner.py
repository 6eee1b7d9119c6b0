"""What `km -g` prints on stderr once its gdb stub listens: a contract between processes, declared once.

km prints it (monitor/cli.py); kdbg-dap waits for it and keeps it from the user's console (kdbg/dap/debuggee.py);
Microsoft's cppdbg waits for STUB_STARTED as its `serverStarted` pattern (examples/launch.json). The first lines
talk to a terminal user; the last, STUB_STARTED alone on its line, is the machine-readable "ready".
"""
from __future__ import annotations

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


def is_banner_line(line: str) -> bool:
    """A line of the banners above other than STUB_STARTED (talk for a terminal user, not payload output)."""
    return _WAITING in line or _MAY_ATTACH in line or line.lstrip().startswith('gdb -q --ex="target remote')
