"""gdb's non-stop mode (`set non-stop on`): QNonStop, vStopped, and vCont/`?` as they work once it is on.

In non-stop mode each thread stops and runs on its own: a stop parks only the thread it happened in and reaches
gdb as a `%Stop:` notification; gdb then drains the queue with vStopped (each answered with the next stop
reply, OK when none is left). The queue's head is the stop last sent, kept until gdb acknowledges it. vCont is
answered OK at once; `t` parks running threads, each of which then reports a stop with signal 0. Nothing here
changes all-stop mode: every path is taken only after gdb sent QNonStop:1.
"""
from __future__ import annotations

from typing import Callable

from kdbg.rsp.commands import command
from kdbg.rsp.errors import RspError
from kdbg.rsp.session import Inferior, Session
from kdbg.target import NonStopTarget, ResumeAction, ResumeKind
from kdbg.tracelog import logger

log = logger("km.gdb")


def _parse_switch(rest: bytes) -> tuple[bool]:
    if rest not in (b"0", b"1"):
        raise ValueError(f"QNonStop wants 0 or 1, not {rest[:16]!r}")
    return (rest == b"1",)


@command("QNonStop", _parse_switch, needs_control=True)
def q_non_stop(session: Session, on: bool) -> bytes:
    """Switch modes; only while every thread is stopped (gdb itself refuses to switch while the program runs)."""
    if on == session.non_stop:
        return b"OK"
    if session.any_running:
        raise RspError("QNonStop: threads are running; stop them before switching modes", 16)
    inferiors = session.attached_inferiors()
    if not all(isinstance(inf.control, NonStopTarget) for inf in inferiors):
        raise RspError("QNonStop: a process here cannot run threads one by one", 1)
    for inf in inferiors:
        _non_stop_target(inf).set_non_stop(on)
        inf.run.ns_stopped = set(inf.target.threads()) if on else set()
    session.non_stop = on
    session.stop_queue.clear()
    session.notified = False
    log.info("gdb %s non-stop mode", "entered" if on else "left")
    return b"OK"


@command("vStopped")
def v_stopped(session: Session) -> bytes:
    """gdb acknowledges the stop at the head of the queue and asks for the next."""
    if session.stop_queue:
        session.stop_queue.popleft()
    if session.stop_queue:
        return session.stop_queue[0]
    session.notified = False
    return b"OK"


def status(session: Session, reply_of: Callable[[Inferior, int], bytes]) -> bytes:
    """`?` in non-stop mode, which gdb sends when it connects: as gdbserver does, each process reports one stopped
    thread, the first, and the other threads the connection found stopped run on (gdbserver attached to a running
    program reports its main thread stopped, the others running; gdb 13 fails an internal assertion in
    remote_target::wait when it is handed several stops at connect). The first reply here, the next through
    vStopped; OK if none."""
    replies = []
    for inf in session.attached_inferiors():
        live = set(inf.target.threads())      # a followed child's asks its km over the fork link: once
        stopped = sorted(tid for tid in inf.run.ns_stopped if tid in live)
        if not stopped:
            continue
        replies.append(reply_of(inf, stopped[0]))
        if len(stopped) > 1 and inf.control is not None and not inf.run.exited:
            resume(session, [(inf, [ResumeAction(ResumeKind.CONTINUE, tid) for tid in stopped[1:]])])
    session.stop_queue.clear()
    session.stop_queue.extend(replies)
    session.notified = bool(replies)
    return replies[0] if replies else b"OK"


def queue_stop(session: Session, reply: bytes) -> bytes | None:
    """Queue a stop reply; the notification to send now (`Stop:...`), or None while gdb is still draining."""
    session.stop_queue.append(reply)
    if session.notified:
        return None
    session.notified = True
    return b"Stop:" + reply


def note_running(inf: Inferior) -> None:
    """A process counts as running while any of its threads is not known to be stopped."""
    inf.run.running = any(tid not in inf.run.ns_stopped for tid in inf.target.threads())


def resume(session: Session, plan: list[tuple[Inferior, list[ResumeAction]]]) -> bytes:
    """vCont in non-stop mode: only stopped threads resume, only running ones are told to stop; OK at once."""
    for inferior, own in plan:
        stopped = inferior.run.ns_stopped
        default = next((a for a in own if a.tid == -1), None)
        to_stop: list[int] = []
        to_run: list[ResumeAction] = []
        threads = inferior.target.threads()
        for tid in threads:
            action = next((a for a in own if a.tid == tid), default)
            if action is None:
                continue
            if action.kind is ResumeKind.STOP:
                if tid not in stopped:
                    to_stop.append(tid)
            elif tid in stopped:
                to_run.append(action._replace(tid=tid))
        if to_run:
            # each running thread keeps the action it runs under (a signal passed to it resumes it the same way)
            running = tuple(a for a in inferior.run.last_actions if a.tid in threads and a.tid not in stopped)
            session.resume(to_run, inferior)
            inferior.run.last_actions += running
            stopped.difference_update(a.tid for a in to_run)
        if to_stop:
            _non_stop_target(inferior).stop_threads(to_stop)
        note_running(inferior)
    return b"OK"


def stop_all(session: Session) -> None:
    """^C in non-stop mode: every running thread stops (gdb sends vCont;t itself, a raw ^C means the same)."""
    for inf in session.attached_inferiors():
        if inf.control is not None and not inf.run.exited:
            running = [tid for tid in inf.target.threads() if tid not in inf.run.ns_stopped]
            if running:
                _non_stop_target(inf).stop_threads(running)


def _non_stop_target(inf: Inferior) -> NonStopTarget:
    control = inf.control
    if not isinstance(control, NonStopTarget):
        raise RspError(f"process {inf.pid} cannot run threads one by one", 1)
    return control
