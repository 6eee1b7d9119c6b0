"""Everything the session owns per gdb: the gdb itself and the collaborators bound to it, built together when the
gdb starts (launch, attach, core, restart) and dropped with it, so no request ever meets a half-built one.
"""
from __future__ import annotations

from typing import Any, Callable

from .breakpoints import Breakpoints
from .events import StopEvents
from .execution import Execution
from .gdb_backend import Gdb
from .inspection import Inspection
from .lifecycle import Lifecycle, Stop
from .variables import Variables


class GdbBackend:
    def __init__(self, gdb: Gdb, breakpoints: Breakpoints, lifecycle: Lifecycle, stop: Stop, config: dict[str, Any],
                 send_event: Callable[[str, dict[str, Any]], None], output: Callable[[str, str], None],
                 exited: Callable[[int], None]) -> None:
        self.gdb = gdb
        self.vars = Variables(gdb)
        self.execution = Execution(gdb, lifecycle, stop, self.vars, send_event)
        self.inspection = Inspection(gdb, self.vars, breakpoints, stop, config)
        self.events = StopEvents(gdb, lifecycle, stop, self.vars, breakpoints, self.execution, send_event, output,
                                 exited)
