"""kdbg.rsp: the GDB remote serial protocol stub over a kdbg.target.Target (live VM or core file).

Entry point: `kdbg.rsp.server.GdbServer(target, port, initially_stopped=...)`, then `.serve()`; a ControlTarget
is debugged live, any other Target (a core file) is served read-only. Packets are dispatched through the table
in commands.py; each handler module owns one family (query, xfer, resume, memory, registers, points, hostio).
Traces: loggers `km.gdb` (session events) and `km.gdb.io` (packets).
"""
from __future__ import annotations

from kdbg.rsp.errors import RspError

__all__ = ["RspError"]
