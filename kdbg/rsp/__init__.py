"""kdbg.rsp: the GDB remote serial protocol stub over a kdbg.target.Target (live VM or core file)."""
from __future__ import annotations

from kdbg.rsp.errors import RspError

__all__ = ["RspError"]
