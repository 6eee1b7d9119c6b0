"""Every kind of DAP breakpoint as gdb breakpoints: source lines, functions, instructions, data (watchpoints),
signals as exception filters; plus what gdb lacks: DAP hit conditions and log points, decided at each hit.

DAP replaces a whole set per request (all breakpoints of one source, all function breakpoints...), so each set
is a key whose gdb breakpoints are deleted and re-inserted. DAP ids are ours and stable across gdb restarts;
gdb's numbers are mapped to them here only.
"""
from __future__ import annotations

import itertools
import re
import signal
from dataclasses import dataclass, field
from typing import Any

from .errors import GdbError, InvalidArgument
from .gdb_backend import Gdb, mi_quote
from .variables import frame_options

# Signals offered as exception filters: (name, stops by default). Synchronous faults stop by default.
# SIGTRAP and SIGINT are not offered: gdb needs them for breakpoints, stepping and pause.
SIGNAL_FILTERS = (("SIGSEGV", True), ("SIGBUS", True), ("SIGFPE", True), ("SIGILL", True), ("SIGABRT", True),
                  ("SIGPIPE", False), ("SIGUSR1", False), ("SIGUSR2", False),
                  ("SIGALRM", False), ("SIGCHLD", False))
_HIT = re.compile(r"^\s*(==|>=|>|<=|<|%)?\s*(\d+)\s*$")
_ACCESS = {"write": "", "read": "-r ", "readWrite": "-a "}


def exception_filters() -> list[dict[str, Any]]:
    """The `exceptionBreakpointFilters` capability, one per signal, described by the C library's own text."""
    return [{"filter": name, "label": f"{name}: {signal.strsignal(signal.Signals[name])}", "default": default}
            for name, default in SIGNAL_FILTERS]


@dataclass(slots=True)
class Breakpoint:
    dap_id: int
    location: str                     # gdb location (`file:line`, `func`, `*0xaddr`) or watched expression
    condition: str | None = None
    hit_condition: str | None = None
    log_message: str | None = None
    access: str | None = None         # data breakpoints only
    gdb_number: str | None = None
    hits: int = 0
    reply: dict[str, Any] = field(default_factory=dict)


def hit_condition_met(condition: str | None, hits: int) -> bool:
    """DAP leaves the syntax to the adapter: `N`/`==N`, `>=N`, `>N`, `<N`, `<=N`, `%N` (every Nth hit)."""
    if not condition:
        return True
    match = _HIT.match(condition)
    if match is None:                 # refused when the breakpoint was set (it stays unverified)
        return False
    op, number = match.group(1) or "==", int(match.group(2))
    return {"==": hits == number, ">=": hits >= number, ">": hits > number, "<": hits < number,
            "<=": hits <= number, "%": number > 0 and hits % number == 0}[op]


class Breakpoints:
    def __init__(self, gdb: Gdb) -> None:
        self.gdb = gdb
        self._ids = itertools.count(1)
        self._sets: dict[str, list[Breakpoint]] = {}
        self._by_number: dict[str, Breakpoint] = {}

    def replace(self, key: str, wanted: list[dict[str, Any]], location_of) -> list[dict[str, Any]]:
        """Delete the set `key` and insert `wanted` (DAP breakpoint dicts); returns DAP Breakpoint replies."""
        locations = []
        for i, request in enumerate(wanted):        # all checked before the old set goes
            try:
                locations.append(location_of(request))
            except (KeyError, TypeError, ValueError) as exc:
                raise InvalidArgument(f"breakpoints[{i}]", f"no usable location ({exc})") from None
            for name in ("condition", "hitCondition", "logMessage", "accessType"):
                if request.get(name) is not None and not isinstance(request[name], str):
                    raise InvalidArgument(f"breakpoints[{i}].{name}", "must be a string")
        for old in self._sets.pop(key, []):
            self._delete(old)
        placed = []
        for request, location in zip(wanted, locations):
            bp = Breakpoint(next(self._ids), location, request.get("condition") or None,
                            request.get("hitCondition") or None, request.get("logMessage") or None,
                            request.get("accessType", "write") if key == "data" else None)
            self._insert(bp)
            placed.append(bp)
        self._sets[key] = placed
        return [bp.reply for bp in placed]

    def _insert(self, bp: Breakpoint) -> None:
        if bp.hit_condition and not _HIT.match(bp.hit_condition):
            bp.reply = {"id": bp.dap_id, "verified": False,
                        "message": f"invalid hitCondition: {bp.hit_condition!r} (use N, >=N, >N, <N, %N)"}
            return
        try:
            if bp.access is not None:
                result = self.gdb.command(f"-break-watch {_ACCESS[bp.access]}{mi_quote(bp.location)}")
                info = result.get("wpt") or result.get("hw-rwpt") or result.get("hw-awpt") or {}
                bp.gdb_number = info.get("number")
                if bp.condition:
                    self.gdb.command(f"-break-condition {bp.gdb_number} {bp.condition}")
                bp.reply = {"id": bp.dap_id, "verified": True}
            else:
                condition = f"-c {mi_quote(bp.condition)} " if bp.condition else ""
                info = self.gdb.command(f"-break-insert -f {condition}{mi_quote(bp.location)}")["bkpt"]
                bp.gdb_number = info["number"]
                bp.reply = _reply(bp.dap_id, info)
        except GdbError as exc:
            bp.reply = {"id": bp.dap_id, "verified": False, "message": str(exc)}
        if bp.gdb_number is not None:
            self._by_number[bp.gdb_number] = bp

    def _delete(self, bp: Breakpoint) -> None:
        if bp.gdb_number is not None:
            self._by_number.pop(bp.gdb_number, None)
            try:
                self.gdb.command(f"-break-delete {bp.gdb_number}")
            except GdbError:
                pass                 # already gone: a watchpoint whose frame ended, or gdb restarted

    def reinstall(self, gdb: Gdb) -> None:
        """Insert every breakpoint again into a new gdb (restart), keeping DAP ids."""
        self.gdb = gdb
        self._by_number.clear()
        for placed in self._sets.values():
            for bp in placed:
                bp.gdb_number, bp.hits = None, 0
                self._insert(bp)

    def modified(self, info: dict[str, Any]) -> dict[str, Any] | None:
        """The new DAP reply when gdb resolved (or lost) a breakpoint's location; None if nothing a user sees."""
        bp = self._by_number.get(info.get("number", ""))
        if bp is None or bp.access is not None:
            return None
        reply = _reply(bp.dap_id, info)
        if (reply["verified"], reply.get("line")) == (bp.reply.get("verified"), bp.reply.get("line")):
            return None
        bp.reply = reply
        return reply

    def on_hit(self, gdb_number: str | None, thread_id: int) -> tuple[bool, list[int]]:
        """Count a hit; returns (whether to stop, DAP ids). Log points print here and never stop."""
        bp = self._by_number.get(gdb_number or "")
        if bp is None:
            return True, []
        bp.hits += 1
        if not hit_condition_met(bp.hit_condition, bp.hits):
            return False, []
        if bp.log_message is not None:
            return False, []
        return True, [bp.dap_id]

    def log_message(self, gdb_number: str | None, thread_id: int) -> str | None:
        """The interpolated text of a log point at this hit (`{expr}` evaluated in the stopped frame)."""
        bp = self._by_number.get(gdb_number or "")
        if bp is None or bp.log_message is None or not hit_condition_met(bp.hit_condition, bp.hits):
            return None

        def value(match: re.Match) -> str:
            try:
                return self.gdb.command(f"-data-evaluate-expression{frame_options(thread_id, 0)} "
                                        f"{mi_quote(match.group(1))}")["value"]
            except GdbError as exc:
                return f"<{exc}>"
        return re.sub(r"\{([^{}]+)\}", value, bp.log_message) + "\n"

    def set_signal_filters(self, filters: list[str]) -> None:
        """Stop on the chosen signals; let the others reach the payload silently."""
        known = {name for name, _ in SIGNAL_FILTERS}
        for name in filters:
            if name not in known:
                raise InvalidArgument("filters", f"unknown exception filter {name!r}")
        for name, _ in SIGNAL_FILTERS:
            action = "stop print" if name in filters else "nostop noprint pass"
            self.gdb.console(f"handle {name} {action}")


def _reply(dap_id: int, info: dict[str, Any]) -> dict[str, Any]:
    """A DAP Breakpoint from gdb's bkpt tuple: verified once gdb found an address (not pending)."""
    reply: dict[str, Any] = {"id": dap_id, "verified": "pending" not in info and info.get("addr") != "<PENDING>"}
    if "line" in info:
        reply["line"] = int(info["line"])
    if "fullname" in info:
        reply["source"] = {"name": info.get("file", info["fullname"]).rsplit("/", 1)[-1], "path": info["fullname"]}
    if info.get("addr", "").startswith("0x"):
        reply["instructionReference"] = info["addr"]
    if not reply["verified"]:
        reply["message"] = f"pending: {info.get('pending', 'no code at this location yet')}"
    return reply
