"""Running and stopping: `?`, vCont/vCont?, c/C/s/S, D, k/vKill, and StopEvent -> stop reply (T/W/X).

Resume handlers return None: the reply is the stop reply the server loop sends when the target's event
arrives. All-stop mode only: every event means every thread is stopped, and gdb sends nothing but ^C while
the target runs.
"""
from __future__ import annotations

from kdbg.arch.x86_64 import BY_NAME
from kdbg.rsp.commands import command, parse_hex, parse_thread_id
from kdbg.rsp.errors import RspError
from kdbg.rsp.registers import encode_value
from kdbg.rsp.session import Session
from kdbg.rsp.signals import SIGINT, gdb_from_linux, linux_from_gdb
from kdbg.target import SIGTRAP, BreakpointKind, ResumeAction, ResumeKind, StopEvent, StopReason, TargetError

# Registers sent in every T reply so gdb needs no `g`/`p` round trip to show the frame (gdbserver's
# "expedite" set for amd64: rbp, rsp, rip).
EXPEDITED = ("rbp", "rsp", "rip")
WATCH_KEYS = {BreakpointKind.WRITE: "watch", BreakpointKind.READ: "rwatch", BreakpointKind.ACCESS: "awatch"}
_DEFAULT_SIGNAL = {StopReason.INTERRUPT: SIGINT}


def stop_signal(event: StopEvent) -> int:
    """The Linux signal a stop reports: its own, else SIGINT for an interrupt and SIGTRAP for the rest."""
    return event.signal or _DEFAULT_SIGNAL.get(event.reason, SIGTRAP)


def stop_reply(session: Session, event: StopEvent) -> bytes:
    """The RSP stop reply for an event: W (exit status), X (killing signal) or T with thread and reason."""
    process = b";process:%x" % session.target.pid() if session.multiprocess else b""
    if event.reason is StopReason.EXITED:
        return b"W%02x" % ((event.exit_status or 0) & 0xFF) + process
    if event.reason is StopReason.TERMINATED:
        return b"X%02x" % gdb_from_linux(event.signal or 9) + process
    parts = [b"T%02x" % gdb_from_linux(stop_signal(event))]
    try:
        regs = session.target.registers(event.tid)
    except TargetError:
        regs = {}
    for name in EXPEDITED:
        if name in regs:
            reg = BY_NAME[name]
            parts.append(b"%02x:%s;" % (reg.regnum, encode_value(reg, regs[name])))
    parts.append(b"thread:%s;" % session.format_tid(event.tid))
    parts.append(_reason(session, event))
    return b"".join(parts)


def _reason(session: Session, event: StopEvent) -> bytes:
    """swbreak:/hwbreak: only when gdb said it understands them (qSupported), watch kinds always."""
    if event.reason is StopReason.WATCHPOINT and event.watch_addr is not None:
        key = WATCH_KEYS.get(event.watch_kind or BreakpointKind.WRITE, "watch")
        return b"%s:%x;" % (key.encode(), event.watch_addr)
    if event.reason is StopReason.BREAKPOINT and "swbreak" in session.gdb_features:
        return b"swbreak:;"
    if event.reason is StopReason.HW_BREAKPOINT and "hwbreak" in session.gdb_features:
        return b"hwbreak:;"
    return b""


@command("?")
def last_stop(session: Session) -> bytes:
    stop = session.run.last_stop
    if stop is None:
        stop = session.target.stop_event(session.target.threads()[0])
    session.g_tid = 0
    return stop_reply(session, stop)


def supported_actions(session: Session) -> bytes:
    control = session.control
    if control is None:
        return b""
    actions = [b"c", b"C", b"t"]
    if "step" in control.supports():
        actions[2:2] = [b"s", b"S"]
    if "range-step" in control.supports():
        actions.append(b"r")
    return b";".join(actions)


@command("vCont?")
def vcont_query(session: Session) -> bytes:
    actions = supported_actions(session)
    return b"vCont;" + actions if actions else b""


def _signal_arg(text: bytes) -> int:
    """A gdb signal number in a resume packet, as the Linux signal to deliver (ValueError: E22)."""
    return linux_from_gdb(parse_hex(text))


def parse_vcont(rest: bytes) -> tuple[list[ResumeAction]]:
    """`vCont;action[:thread-id];...` (the name and first ';' already stripped by the dispatcher)."""
    actions: list[ResumeAction] = []
    for item in rest.split(b";"):
        action, _, thread = item.partition(b":")
        tid = parse_thread_id(thread) if thread else -1
        if tid == 0:
            raise ValueError("vCont thread 0")
        letter, arg = action[:1], action[1:]
        if letter in (b"c", b"s", b"t") and not arg:
            kind = {b"c": ResumeKind.CONTINUE, b"s": ResumeKind.STEP, b"t": ResumeKind.STOP}[letter]
            actions.append(ResumeAction(kind, tid))
        elif letter in (b"C", b"S"):
            kind = ResumeKind.CONTINUE if letter == b"C" else ResumeKind.STEP
            actions.append(ResumeAction(kind, tid, _signal_arg(arg)))
        elif letter == b"r":            # range stepping: `rSTART,END` (gdb's `next`/`step` over a line)
            start, _, end = arg.partition(b",")
            actions.append(ResumeAction(ResumeKind.STEP, tid, 0, parse_hex(start), parse_hex(end)))
        else:
            raise ValueError(f"unknown vCont action {action!r}")
    if not actions:
        raise ValueError("vCont without actions")
    return (actions,)


def _start(session: Session, actions: list[ResumeAction]) -> bytes | None:
    """Resume, or for a read-only target (a core file) report the same stop again: an error reply to a
    resume packet leaves gdb believing the program runs, a repeated stop keeps it usable."""
    if session.control is None:
        return last_stop(session)
    if session.run.exited:
        raise RspError("the program has exited", 1)
    known = set(session.target.threads())
    for action in actions:
        if action.tid != -1 and action.tid not in known:
            raise RspError(f"no thread {action.tid}", 3)
    if "step" not in session.control.supports() and any(a.kind is ResumeKind.STEP for a in actions):
        raise RspError("this target cannot single-step", 1)
    session.resume(actions)
    return None


@command("vCont", parse_vcont)
def vcont(session: Session, actions: list[ResumeAction]) -> bytes | None:
    return _start(session, actions)


def _legacy(session: Session, kind: ResumeKind, signal: int, addr: int | None) -> bytes | None:
    """c/s/C/S: the Hc thread (or the current one) resumes; `c` lets every thread run."""
    tid = session.c_tid if session.c_tid > 0 else session.current_tid()
    if addr is not None and session.control is not None:
        session.control.write_registers(tid, {"rip": addr})
    if kind is ResumeKind.CONTINUE and session.c_tid <= 0:
        tid = -1
    return _start(session, [ResumeAction(kind, tid, signal)])


def _parse_addr(rest: bytes) -> tuple[int | None]:
    return (parse_hex(rest) if rest else None,)


def _parse_sig_addr(rest: bytes) -> tuple[int, int | None]:
    sig, _, addr = rest.partition(b";")
    return _signal_arg(sig), (parse_hex(addr) if addr else None)


@command("c", _parse_addr)
def continue_(session: Session, addr: int | None) -> bytes | None:
    return _legacy(session, ResumeKind.CONTINUE, 0, addr)


@command("s", _parse_addr)
def step(session: Session, addr: int | None) -> bytes | None:
    return _legacy(session, ResumeKind.STEP, 0, addr)


@command("C", _parse_sig_addr)
def continue_signal(session: Session, signal: int, addr: int | None) -> bytes | None:
    return _legacy(session, ResumeKind.CONTINUE, signal, addr)


@command("S", _parse_sig_addr)
def step_signal(session: Session, signal: int, addr: int | None) -> bytes | None:
    return _legacy(session, ResumeKind.STEP, signal, addr)


@command("D", lambda rest: ())
def detach(session: Session) -> bytes:
    """The payload runs on without breakpoints; the connection closes after OK."""
    session.ending = True
    if session.control is not None and not session.run.exited:
        session.points.clear()
        session.control.detach()
        session.run.running = True
    return b"OK"


@command("k")
def kill(session: Session) -> None:
    """No reply (gdb does not wait for one); the TERMINATED event ends the server."""
    session.ending = True
    if session.control is not None and not session.run.exited:
        session.points.clear()
        session.control.kill()
        session.run.running = True


@command("vKill", lambda rest: ())
def vkill(session: Session) -> bytes:
    kill(session)
    return b"OK"
