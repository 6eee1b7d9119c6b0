"""Z/z: software and hardware breakpoints and watchpoints, passed to the target's set/clear_breakpoint.

The stub keeps the set it inserted so that a gdb which vanishes without detaching leaves no stale int3 or
debug register behind. Which types exist comes from target.supports(): an unsupported type gets the empty
reply, which tells gdb to stop using that Z type (gdb then falls back, e.g. to memory writes for Z0).
"""
from __future__ import annotations


from kdbg.rsp.commands import command, hex_fields
from kdbg.rsp.errors import RspError
from kdbg.rsp.session import Inferior, Session
from kdbg.target import BreakpointKind
from kdbg.tracelog import logger

log = logger("km.gdb")

# The supports() feature that makes each Z type available.
FEATURE_OF_KIND = {BreakpointKind.SOFTWARE: "swbreak", BreakpointKind.HARDWARE: "hwbreak",
                   BreakpointKind.WRITE: "watch", BreakpointKind.READ: "watch", BreakpointKind.ACCESS: "watch"}
WATCH_LENGTHS = (1, 2, 4, 8)
_FIRST_WATCH = BreakpointKind.WRITE     # (an Enum member read through its class costs ~0.2 us a time)


def _parse(rest: bytes) -> tuple[BreakpointKind, int, int]:
    # Z0,addr,kind[;cond_list...][;cmds:...]: target-side conditions are not advertised, so ignore the tail.
    kind, addr, length = hex_fields(b",", b",")(rest.split(b";", 1)[0])
    if kind > BreakpointKind.ACCESS:
        raise ValueError(f"no Z type {kind}")
    return BreakpointKind(kind), addr, length


def _check(inf: Inferior, kind: BreakpointKind, length: int) -> bool:
    if inf.control is None or FEATURE_OF_KIND[kind] not in inf.control.supports():
        return False
    if kind >= _FIRST_WATCH and length not in WATCH_LENGTHS:
        raise RspError(f"watchpoint length {length} is not 1, 2, 4 or 8")
    return True


@command("Z", _parse)
def insert_point(session: Session, kind: BreakpointKind, addr: int, length: int) -> bytes:
    inf = session.current
    if not _check(inf, kind, length):
        return b""
    inf.live.set_breakpoint(kind, addr, length)
    session.points.add((inf.pid, kind, addr, length))
    return b"OK"


@command("z", _parse)
def remove_point(session: Session, kind: BreakpointKind, addr: int, length: int) -> bytes:
    inf = session.current
    if not _check(inf, kind, length):
        return b""
    inf.live.clear_breakpoint(kind, addr, length)
    session.points.discard((inf.pid, kind, addr, length))
    return b"OK"


def clear_points(session: Session, inferior: Inferior) -> None:
    """Remove what this connection inserted in one process (gdb vanished without D); failures are traced."""
    for pid, kind, addr, length in sorted(session.points):
        if pid != inferior.pid:
            continue
        if inferior.control is None:
            continue
        try:
            inferior.control.clear_breakpoint(kind, addr, length)
        except Exception:  # noqa: BLE001 - best effort on a dead connection
            log.exception("clearing Z%d at %#x", kind, addr)
    session.points = {p for p in session.points if p[0] != inferior.pid}
