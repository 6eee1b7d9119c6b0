"""Running and stopping: `?`, vCont/vCont?, c/C/s/S, D, k/vKill, and StopEvent -> stop reply (T/W/X).

Resume handlers return None: the reply is the stop reply the server loop sends when the target's event
arrives. All-stop mode only: every event means every thread is stopped, and gdb sends nothing but ^C while
the target runs. With several processes (a followed fork), a vCont action names its process (p<pid>.<tid>) and
each process's target receives only its own actions.
"""
from __future__ import annotations

import functools
import struct
from typing import Literal, Sequence

from kdbg.arch.x86_64 import BY_NAME
from kdbg.rsp import nonstop
from kdbg.rsp.commands import command, parse_hex, parse_ptid
from kdbg.rsp.errors import RspError
from kdbg.rsp.registers import encode_value
from kdbg.rsp.session import Inferior, Session
from kdbg.rsp.signals import SIGINT, gdb_from_linux, linux_from_gdb
from kdbg.target import (PROCESS_ENDS, SIGTRAP, BreakpointKind, ResumeAction, ResumeKind, StopEvent, StopReason, Target,
                         TargetError)

# Registers sent in every T reply so gdb needs no `g`/`p` round trip to show the frame (gdbserver's
# "expedite" set for amd64: rbp, rsp, rip).
EXPEDITED = ("rbp", "rsp", "rip")
EXPEDITE = tuple((name, b"%02x:" % BY_NAME[name].regnum, BY_NAME[name]) for name in EXPEDITED)  # (name, key, reg)
WATCH_KEYS = {BreakpointKind.WRITE: "watch", BreakpointKind.READ: "rwatch", BreakpointKind.ACCESS: "awatch"}
_DEFAULT_SIGNAL = {StopReason.INTERRUPT: SIGINT}


def stop_signal(event: StopEvent) -> int:
    """The Linux signal a stop reports: its own, else SIGINT for an interrupt and SIGTRAP for the rest."""
    return event.signal or _DEFAULT_SIGNAL.get(event.reason, SIGTRAP)


def reply_signal(session: Session, event: StopEvent) -> int:
    """The gdb signal number a stop's T reply carries (lldb's jThreadsInfo gives the same one). Non-stop: a thread
    parked by vCont;t reports 0, as gdbserver does (gdb shows no signal for it)."""
    if session.non_stop and event.reason is StopReason.INTERRUPT and not event.signal:
        return 0
    return gdb_from_linux(stop_signal(event))


# `Tnn` of a stop with a signal of its own (a step's, a breakpoint's, a passed-on signal's), made once per signal
_T_OF_SIGNAL = {signo: b"T%02x" % gdb_from_linux(signo) for signo in range(1, 65)}


def stop_reply(session: Session, event: StopEvent, pid: int = 0, frame: tuple[int, int, int] | None = None) -> bytes:
    """The RSP stop reply for an event of process `pid` (0: the current one): W (exit status), X (killing
    signal) or T with thread and reason. `frame`: the thread's rbp, rsp, rip when the caller has them."""
    inferior = session.inferiors.get(pid) if pid else None
    if inferior is None:
        inferior = session.current
    pid = pid or inferior.pid
    reason = event.reason
    if reason is StopReason.EXITED:
        return b"W%02x" % ((event.exit_status or 0) & 0xFF) + _process_key(session, pid)
    if reason is StopReason.TERMINATED:
        return b"X%02x" % gdb_from_linux(event.signal or 9) + _process_key(session, pid)
    prefix = _T_OF_SIGNAL.get(event.signal)     # (no entry for 0 or None)
    parts = [prefix or b"T%02x" % reply_signal(session, event)]
    if reason in _EVENT_KEYS:             # gdbserver puts the event first: `T05fork:p12.12;...`
        parts.append(_event(session, event))
    parts.append(_expedited(inferior, event.tid) if frame is None else _frame_pairs(frame))
    parts.append(b"thread:%s;" % session.format_tid(event.tid, pid))
    if reason in _REASON_KEYED:
        parts.append(_reason(session, event))
    if session.lldb_stop_keys:
        parts.append(_lldb_keys(inferior.target, event))
    return b"".join(parts)


def _process_key(session: Session, pid: int) -> bytes:
    return b";process:%x" % pid if session.multiprocess else b""


_FRAME_KEYS = b"".join(key + b"%s;" for _, key, _ in EXPEDITE)     # `06:%s;07:%s;10:%s;`
_FRAME_WORDS = struct.Struct("<3Q")
assert EXPEDITED == ("rbp", "rsp", "rip") and all(reg.size == 8 for _, _, reg in EXPEDITE)


def _expedited(inferior: Inferior, tid: int) -> bytes:
    """The `nn:value;` pairs of the expedited registers: three words from a FrameRegistersTarget (a live process),
    else looked up in the thread's register file; none for a thread that is gone."""
    try:
        if inferior.frame_registers is not None:
            return _frame_pairs(inferior.frame_registers(tid))
        regs = inferior.target.registers(tid)
    except TargetError:
        return b""
    parts = []
    for name, key, reg in EXPEDITE:
        value = regs.get(name)
        if value is not None:
            parts.append(b"%s%s;" % (key, encode_value(reg, value)))
    return b"".join(parts)


def _frame_pairs(frame: tuple[int, int, int]) -> bytes:
    text = _FRAME_WORDS.pack(*frame).hex().encode()
    return _FRAME_KEYS % (text[:16], text[16:32], text[32:])


def _lldb_keys(target: Target, event: StopEvent) -> bytes:
    """lldb's keys (kdbg.rsp.lldb): the stopping thread's name, hex-encoded as any name may hold `;` or `#`, and
    every thread of the process."""
    threads = target.threads()
    name = target.thread_name(event.tid) if event.tid in threads else ""
    return ((b"hexname:%s;" % name.encode(errors="surrogateescape").hex().encode() if name else b"")
            + b"threads:%s;" % b",".join(b"%x" % t for t in threads))


_EVENT_KEYS = {StopReason.FORK: b"fork", StopReason.VFORK: b"vfork", StopReason.VFORK_DONE: b"vforkdone",
               StopReason.EXEC: b"exec", StopReason.SYSCALL_ENTRY: b"syscall_entry",
               StopReason.SYSCALL_RETURN: b"syscall_return"}


def _event(session: Session, event: StopEvent) -> bytes:
    """The `key:value;` of a process or syscall event (gdb's "Stop Reply Packets")."""
    key = _EVENT_KEYS[event.reason]
    if event.reason in (StopReason.FORK, StopReason.VFORK):
        child = event.child_pid or 0
        return b"%s:%s;" % (key, session.format_tid(event.child_tid or child, child))
    if event.reason is StopReason.EXEC:
        return b"%s:%s;" % (key, (event.exec_path or "").encode(errors="surrogateescape").hex().encode())
    if event.reason is StopReason.VFORK_DONE:
        return key + b":;"
    return b"%s:%x;" % (key, (event.syscall or 0) & 0xFFFFFFFF)      # gdbserver's %x of an int: -1 is ffffffff


_REASON_KEYED = frozenset({StopReason.WATCHPOINT, StopReason.BREAKPOINT, StopReason.HW_BREAKPOINT})


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


def _shown(stop: StopEvent) -> StopEvent:
    """A stop as `?` repeats it: a process or syscall event already reported is a plain SIGTRAP stop now."""
    if stop.reason not in PROCESS_ENDS:
        stop = stop._replace(reason=StopReason.SIGNAL if stop.reason in _EVENT_KEYS else stop.reason)
    return stop


@command("?")
def last_stop(session: Session) -> bytes:
    if session.non_stop:                # one stopped thread per process (nonstop.status says why)
        return nonstop.status(session, lambda inf, tid: stop_reply(session, _shown(inf.target.stop_event(tid)),
                                                                   inf.pid))
    stop = session.run.last_stop
    if stop is None:
        stop = session.target.stop_event(session.target.threads()[0])
    session.g_tid = 0
    return stop_reply(session, _shown(stop))


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


def parse_vcont(rest: bytes) -> tuple[tuple[ResumeAction, ...]]:
    """`vCont;action[:thread-id];...` (the name and first ';' already stripped by the dispatcher)."""
    actions: list[ResumeAction] = []
    for item in rest.split(b";"):
        action, _, thread = item.partition(b":")
        pid, tid = parse_ptid(thread) if thread else (0, -1)
        if tid == 0:
            raise ValueError("vCont thread 0")
        letter, arg = action[:1], action[1:]
        if letter in (b"c", b"s", b"t") and not arg:
            kind = {b"c": ResumeKind.CONTINUE, b"s": ResumeKind.STEP, b"t": ResumeKind.STOP}[letter]
            actions.append(ResumeAction(kind, tid, pid=pid))
        elif letter in (b"C", b"S"):
            kind = ResumeKind.CONTINUE if letter == b"C" else ResumeKind.STEP
            actions.append(ResumeAction(kind, tid, _signal_arg(arg), pid=pid))
        elif letter == b"r":            # range stepping: `rSTART,END` (gdb's `next`/`step` over a line)
            start, _, end = arg.partition(b",")
            actions.append(ResumeAction(ResumeKind.STEP, tid, 0, parse_hex(start), parse_hex(end), pid=pid))
        else:
            raise ValueError(f"unknown vCont action {action!r}")
    if not actions:
        raise ValueError("vCont without actions")
    return (tuple(actions),)


def _start(session: Session, actions: Sequence[ResumeAction]) -> bytes | None:
    """Resume, or for a read-only target (a core file) report the same stop again: an error reply to a
    resume packet leaves gdb believing the program runs, a repeated stop keeps it usable."""
    if session.control is None:
        return last_stop(session)
    plan = _by_process(session, actions)
    for inferior, own in plan:
        if inferior.run.exited:
            raise RspError("the program has exited", 1)
        if inferior.control is None:
            raise RspError(f"process {inferior.pid} is read-only", 1)
        if "step" not in inferior.control.supports() and any(a.kind is ResumeKind.STEP for a in own):
            raise RspError("this target cannot single-step", 1)
    for inferior, own in plan:
        session.resume(own, inferior)
    return None


def _by_process(session: Session, actions: Sequence[ResumeAction]) -> list[tuple[Inferior, list[ResumeAction]]]:
    """Each process's own actions (the first that applies to a thread wins, as vCont says): an action naming a
    process or thread nobody serves is an error (E03), and the session goes on."""
    if len(session.inferiors) == 1:
        single = _one_process(session, actions)
        if single is not None:
            return single
    debugged = session.attached_inferiors()
    plan: dict[int, tuple[Inferior, list[ResumeAction]]] = {}
    threads: dict[int, Sequence[int]] = {}          # each process's thread list, asked once per packet
    for action in actions:
        if action.pid > 0:
            owners = [inf for inf in debugged if inf.pid == action.pid]
            if not owners:
                raise RspError(f"no process {action.pid}", 3)
        elif action.tid > 0:
            owner = next((inf for inf in [session.current, *debugged]
                          if action.tid in _threads_of(inf, threads)), None)
            if owner is None:
                raise RspError(f"no thread {action.tid}", 3)
            owners = [owner]
        else:
            owners = debugged                   # `c` or `c:-1`: every thread of every process
        own = action if not action.pid else ResumeAction(*action[:5])      # pid 0: each target gets its own
        for inferior in owners:
            if action.tid > 0 and action.tid not in _threads_of(inferior, threads):
                raise RspError(f"no thread {action.tid} in process {inferior.pid}", 3)
            plan.setdefault(inferior.pid, (inferior, []))[1].append(own)
    return list(plan.values())


def _one_process(session: Session, actions: Sequence[ResumeAction]) -> list[tuple[Inferior, list[ResumeAction]]] | None:
    """_by_process when the stub serves one process (no followed fork: each stepi's case), or None to take the
    general path (an action naming another process, an unknown thread: its errors are made there)."""
    inferior = next(iter(session.inferiors.values()))
    if not inferior.attached:
        return None
    threads: Sequence[int] | None = None
    for action in actions:
        if action.pid > 0 and action.pid != inferior.pid:
            return None
        if action.tid > 0:
            if threads is None:
                threads = inferior.target.threads()
            if action.tid not in threads:
                return None
    return [(inferior, list(_without_pids(tuple(actions))))]


@functools.lru_cache(maxsize=64)
def _without_pids(actions: tuple[ResumeAction, ...]) -> tuple[ResumeAction, ...]:
    """The actions as a target receives them, with the pid gdb named each thread with taken out (a vCont's
    actions are one memoised tuple per packet text: commands._PARSED)."""
    return tuple(a._replace(pid=0) if a.pid else a for a in actions)


def _threads_of(inferior: Inferior, known: dict[int, Sequence[int]]) -> Sequence[int]:
    threads = known.get(inferior.pid)
    if threads is None:
        threads = known[inferior.pid] = inferior.target.threads()
    return threads


@command("vCont", parse_vcont)
def vcont(session: Session, actions: tuple[ResumeAction, ...]) -> bytes | None:
    if session.non_stop:
        if session.control is not None:
            plan = _by_process(session, actions)
            if any(inf.run.exited for inf, _ in plan):
                raise RspError("the program has exited", 1)
            return nonstop.resume(session, plan)
    elif len(session.inferiors) == 1 and not session.lldb_stop_keys:
        inferior = session.current
        if inferior.quick_resume is not None:
            step_tid = _plain(actions, inferior.pid)
            if step_tid is not None:
                answer = _quick(session, inferior, actions, step_tid)
                if answer is not False:
                    return answer
    return _start(session, actions)


@functools.lru_cache(maxsize=64)
def _plain(actions: tuple[ResumeAction, ...], pid: int) -> int | None:
    """The thread a plain stepi steps (`s:T` with `c` or nothing for the others), 0 for a plain continue (`c`), or
    None (signals, range steps, several threads named, another process named): what QuickResumeTarget takes. An
    action naming no process, or this one, applies to this process (one is served)."""
    if any(a.signal or a.range_end or a.pid not in (0, -1, pid) for a in actions):
        return None
    kinds = [(a.kind, a.tid) for a in actions]
    if kinds == [(ResumeKind.CONTINUE, -1)]:
        return 0
    if len(kinds) in (1, 2) and kinds[0][0] is ResumeKind.STEP and kinds[0][1] > 0 and kinds[1:] in (
            [], [(ResumeKind.CONTINUE, -1)]):
        return kinds[0][1]
    return None


def _quick(session: Session, inferior: Inferior, actions: tuple[ResumeAction, ...],
           step_tid: int) -> bytes | None | Literal[False]:
    """A plain stepi or continue of the one process, made by its target without the generic resume path
    (QuickResumeTarget): the stop reply at once, None when the stop comes later as an event, False when the
    target declined (nothing was done: the generic path follows)."""
    run = inferior.run
    if run.exited or run.deferred is not None or run.pending_interrupts or not inferior.attached:
        return False
    assert inferior.quick_resume is not None
    stop = inferior.quick_resume(step_tid)
    if stop is False:
        return False
    run.resumed(_without_pids(actions))
    if stop is True:
        return None                     # the event loop reports the stop
    event = stop[0]
    run.reported(event)
    session.reported(inferior)
    return stop_reply(session, event, inferior.pid, stop[1:])


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


def _parse_pid(rest: bytes) -> tuple[int]:
    """`;pid` (hex) after D and vKill; none: every process."""
    rest = rest.lstrip(b";")
    return (parse_hex(rest) if rest else 0,)


@command("D", _parse_pid)
def detach(session: Session, pid: int) -> bytes:
    """The process (all without a pid) runs on without breakpoints; when gdb debugs nothing else, the connection
    closes after OK."""
    chosen = [inf for inf in session.attached_inferiors() if pid in (0, inf.pid)]
    if pid and not chosen:
        raise RspError(f"no process {pid}", 3)
    for inferior in chosen:
        _forget_points(session, inferior)
        if inferior.control is not None and not inferior.run.exited:
            inferior.control.detach()
            inferior.run.running = True
        _let_go(session, inferior)
    if not session.attached_inferiors():
        session.ending = True
    return b"OK"


def _forget_points(session: Session, inferior: Inferior) -> None:
    session.points = {p for p in session.points if p[0] != inferior.pid}


def _let_go(session: Session, inferior: Inferior) -> None:
    """gdb no longer debugs this process: a child is forgotten, the payload keeps its place (a later gdb may
    attach to it again) but its events are no longer gdb's."""
    if inferior.target is session.main:
        inferior.attached = False
    else:
        session.inferiors.pop(inferior.pid, None)


@command("k")
def kill(session: Session) -> bytes | None:
    """No reply for gdb (it does not wait for one, and gdbserver sends none); lldb waits for the exit reply, and
    lldb-server sends X09. The TERMINATED event ends the server."""
    session.ending = True
    pid = session.target.pid()
    for inferior in session.attached_inferiors():
        _kill(session, inferior)
    if not session.lldb_stop_keys:
        return None
    return b"X%02x" % gdb_from_linux(9) + (b";process:%x" % pid if session.multiprocess else b"")


def _kill(session: Session, inferior: Inferior) -> None:
    _forget_points(session, inferior)
    if inferior.control is not None and not inferior.run.exited:
        inferior.control.kill()
        inferior.run.running = True


@command("vKill", _parse_pid)
def vkill(session: Session, pid: int) -> bytes:
    chosen = [inf for inf in session.attached_inferiors() if pid in (0, inf.pid)]
    if not chosen:
        raise RspError(f"no process {pid}", 3)
    for inferior in chosen:
        _kill(session, inferior)
    if all(inf in chosen for inf in session.attached_inferiors()):
        session.ending = True
    return b"OK"
