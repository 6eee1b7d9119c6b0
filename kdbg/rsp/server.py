"""GdbServer: listens on the gdb port and runs the session loop, waiting with `selectors` on the gdb socket and
the event fds of the processes it serves, together (docs/HOUSE-STYLE.md 2.7). One thread: the one calling serve()
owns every target call.

Connection life cycle (all-stop):

    accept --(payload running: interrupt(), wait for its stop)--> stopped <--> running (resume / stop reply)
      |-- D: target.detach(), payload runs on, next accept
      |-- k: target.kill(), TERMINATED ends serve()
      |-- gdb vanishes: our points are cleared; payload stays stopped (km -g) or is detached (--gdb_listen)
      `-- EXITED/TERMINATED: W/X sent, serve() returns

Several processes (gdb's inferiors): a fork event adds the child, served through its own target, until it exits
or gdb detaches it; a stop of one stops the others first (all-stop). An exec hands the connection (and the
listener) to the stub of the next program, which reports the exec on it: gdb's session goes on.
"""
from __future__ import annotations

import collections
import json
import os
import select
import selectors
import socket
import time
from typing import Any

# The handler modules register their packets in commands.TABLE on import.
from kdbg.rsp import hostio, lldb, memory, nonstop, points, query, registers, resume, tdesc, xfer  # noqa: F401
from kdbg.rsp import cstop, rehearsal
from kdbg.rsp.commands import dispatch
from kdbg.rsp.connection import Connection, ConnectionClosed
from kdbg.rsp.errors import RspError
from kdbg.rsp.fds import listen, making, new_epoll, new_selector, own_socket
from kdbg.rsp.packets import INTERRUPT, Event, use_compiled_framing
from kdbg.rsp.resume import stop_reply
from kdbg.rsp.session import Inferior, RunState, Session
from kdbg.target import (PROCESS_ENDS, ControlTarget, EarlyStopTarget, NonStopTarget, ResumeAction, ResumeKind, StopEvent,
                         StopReason, Target, TargetError)
from kdbg.tracelog import logger

log = logger("km.gdb")

STOP_TIMEOUT_S = 10.0     # how long an interrupt() may take to produce its stop
DRAIN_TIMEOUT_S = 2.0     # an interrupt() that lost the race with a real stop posts its event at once
_FORKS = (StopReason.FORK, StopReason.VFORK)


class GdbServer:
    def __init__(self, target: Target, port: int, host: str = "127.0.0.1", *, initially_stopped: bool,
                 handover: bytes | None = None, listener: socket.socket | None = None) -> None:
        """Listens on `listener` (fds.listen) or binds at once; raises ListenError("gdb port N", "address already
        in use") when it cannot. `handover`: the state an exec'ing km's stub left (hand_over), whose listener and
        connection go on here."""
        use_compiled_framing()      # (built first on a machine that never had it: here, not in a session)
        self._target = target
        self._control: ControlTarget | None = target if isinstance(target, ControlTarget) else None
        self._inherited = json.loads(handover) if handover else None
        self._initially_stopped = self._inherited["initially_stopped"] if self._inherited else initially_stopped
        if self._inherited:
            self._listener = socket.socket(fileno=self._inherited["listener"])
            for fd in self._listening_fds():
                os.set_inheritable(fd, False)
        else:
            self._listener = listener if listener is not None else listen(host, port)
        self.port: int = self._listener.getsockname()[1]
        with making():
            self._wake_r, self._wake_w = (own_socket(s) for s in socket.socketpair())
        self._closed = False
        if self._control is not None:
            run = RunState(running=True)      # -g: the ENTRY event is pending; --gdb_listen: it runs
        else:
            run = RunState(running=False, last_stop=target.stop_event(target.threads()[0]))
        self._main = Inferior(target, run)
        self._inferiors: dict[int, Inferior] = {self._main.pid: self._main}
        # km -g posts an ENTRY event before anyone connects: that first stop is kept for gdb.
        self._first_event_seen = self._control is None or not self._initially_stopped
        self._had_client = bool(self._inherited)
        # km -g: the stub rehearses gdb's connect once the payload is parked at its entry (kdbg.rsp.rehearsal)
        self._rehearse = self._control is not None and self._initially_stopped and not self._inherited
        self._serving: tuple[Session, Connection] | None = None     # the connection _session_loop serves now
        self._lane: cstop.StopLane | None = None       # its stop lane (None: Python answers every packet)
        self._lane_module: tuple[Any, Any] | None = None    # cstop's compiled (ffi, lib), loaded by serve()
        if isinstance(target, EarlyStopTarget):
            target.report_stops_to(self._stop_now)
        log.info("gdb stub listening on %s:%d", host, self.port)

    @property
    def _run(self) -> RunState:
        return self._main.run

    def _listening_fds(self) -> list[int]:
        state = self._inherited or {}
        return [fd for fd in (state.get("listener"), state.get("conn")) if fd is not None]

    # ---- public ----

    def serve(self, *, once: bool = False) -> None:
        """Accept connections one after another until the target has exited (after sending W/X) or close()."""
        tdesc.target_xml()      # built (~0.9 ms) while gdb starts, not inside its connect (cached)
        # (also built there on a machine that never had it). Loading opens the module's file (and a build, its
        # compiler's pipes) on this thread, where with --gdb_listen the payload already runs: inside the
        # descriptor gate, or a payload open() at that moment would not get the lowest free number
        with making():
            self._lane_module = cstop.load_lane()
        try:
            if self._inherited and self._inherited.get("conn") is not None:
                self._serve_connection(socket.socket(fileno=self._inherited["conn"]), self._inherited)
            while not self._closed and self._inferiors:
                sock = self._accept()
                if sock is None:
                    break
                self._serve_connection(sock)
                if once:
                    break
        finally:
            self._listener.close()

    def awaiting_first_debugger(self) -> bool:
        """km -g before any gdb connected: the payload has not run one instruction (what a SIGTERM to km ends)."""
        return self._initially_stopped and not self._had_client

    def serves_others(self) -> bool:
        """A process besides the payload (a followed child) is still debugged through this stub."""
        return any(inf is not self._main for inf in self._inferiors.values())

    def close(self) -> None:
        """Stop serving (callable from another thread); the payload is left as it is."""
        self._closed = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    # ---- waiting ----

    def _selector(self, *fileobjs: socket.socket | Connection) -> selectors.BaseSelector:
        sel = new_selector()
        sel.register(self._wake_r, selectors.EVENT_READ)
        for inf in self._inferiors.values():
            if inf.control is not None:
                sel.register(inf.live.event_fd(), selectors.EVENT_READ, inf)
        for obj in fileobjs:
            sel.register(obj, selectors.EVENT_READ)
        return sel

    def _accept(self) -> socket.socket | None:
        """Wait for gdb; meanwhile the payload may stop or end, and nobody is there to tell."""
        with self._selector(self._listener) as sel:
            while not self._closed and self._inferiors:
                if self._rehearse and self._first_event_seen and not self._run.running:
                    self._rehearse = False
                    if not select.select([self._listener], [], [], 0)[0]:    # (gdb not already waiting)
                        log.debug("connect rehearsed: %d answers", rehearsal.rehearse(
                            self._main, self._inferiors, self._run))
                for key, _ in sel.select():
                    if key.fileobj is self._listener:
                        with making():      # (readable: accept does not block)
                            sock, peer = self._listener.accept()
                            sock = own_socket(sock)
                        self._had_client = True
                        log.info("gdb connected from %s:%d", *peer[:2])
                        return sock
                    if isinstance(key.data, Inferior):
                        self._unattached_event(key.data)
        return None

    def _unattached_event(self, inf: Inferior, conn: Connection | None = None) -> None:
        is_first = not self._first_event_seen and inf is self._main
        interrupted = inf.run.pending_interrupts > 0
        event = self._take_event(None, inf)
        if event is not None and event.reason is StopReason.HAND_OVER:
            self._hand_over(None, None, inf)
            return
        if event is None or inf.run.exited:
            if inf.run.exited:
                self._inferiors.pop(inf.pid, None)
            return
        if is_first or (interrupted and self._initially_stopped):
            return                              # km -g: stay stopped until gdb comes
        # A stop with no debugger attached (after a detach): let the payload handle its own signal.
        signal = event.signal if event.reason is StopReason.SIGNAL else 0
        log.info("no gdb attached: resuming after %s (signal %d)", event.reason.value, signal)
        inf.run.running = True
        inf.live.resume([ResumeAction(ResumeKind.CONTINUE, -1, signal)])

    def _wait_stop(self, session: Session | None, inf: Inferior) -> None:
        """Block (up to STOP_TIMEOUT_S) until a running process reports a stop."""
        deadline = time.monotonic() + STOP_TIMEOUT_S
        with new_selector() as sel:
            sel.register(inf.live.event_fd(), selectors.EVENT_READ)
            while inf.run.running and not inf.run.exited:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sel.select(remaining):
                    log.warning("process %d did not stop within %.0f s", inf.pid, STOP_TIMEOUT_S)
                    return
                event = self._take_event(session, inf)
                if event is not None and event.reason is StopReason.HAND_OVER:
                    inf.run.running = True      # an exec while attaching: its stub reports it

    def _interrupt(self, inf: Inferior) -> None:
        inf.run.pending_interrupts += 1
        inf.live.interrupt()

    # ---- events ----

    def _take_event(self, session: Session | None, inf: Inferior) -> StopEvent | None:
        """Read one event of a process and update its run state; None when it is swallowed (a passed signal,
        the late event of an interrupt() that lost the race with a real stop)."""
        event = inf.live.next_event()
        if event is None:
            return None
        return self._accept_event(session, inf, event)

    def _accept_event(self, session: Session | None, inf: Inferior, event: StopEvent) -> StopEvent | None:
        """_take_event's run-state update for an event the target gave."""
        run = inf.run
        log.debug("process %d event %s", inf.pid, event)
        if event.reason in PROCESS_ENDS:
            run.reported(event)
            run.pending_interrupts = 0
            return event
        if event.reason is StopReason.HAND_OVER:
            return event
        if event.reason is StopReason.INTERRUPT and run.pending_interrupts:
            run.pending_interrupts -= 1
            if not run.running:
                return None
        elif not run.running:
            # Only a process the stub held for another's stop keeps its late stop: within one process, a
            # second thread's stop behind the reported one is dropped (its breakpoint or step happens again on
            # resume), since gdb may resume only the thread it steps over a breakpoint.
            if run.held_for_other and event.reason is not StopReason.INTERRUPT and run.deferred is None:
                log.debug("process %d: %s kept for its next resume", inf.pid, event.reason.value)
                run.deferred = event
            else:
                log.warning("stop event while stopped, ignored: %s", event)
            return None
        if session is not None and self._passed(session, inf, event):
            return None
        run.reported(event)
        self._first_event_seen = True
        if run.pending_interrupts:
            self._drain_interrupts(inf)
        return event

    def _passed(self, session: Session, inf: Inferior, event: StopEvent) -> bool:
        """QPassSignals, in both modes: deliver a signal gdb asked not to hear of and resume the thread as gdb last
        asked (all-stop: the others too), True; False when gdb must hear of it. As gdbserver does, a stepping
        thread's signal is reported all the same: gdb steps over the handler itself (a breakpoint where it returns),
        so a stepi ends at the next instruction, not in the handler."""
        if event.reason is not StopReason.SIGNAL or event.signal not in session.pass_signals:
            return False
        own = next((a for a in inf.run.last_actions if a.tid in (event.tid, -1)), None)
        if own is not None and own.kind is ResumeKind.STEP:
            return False
        others = [] if session.non_stop else [a for a in inf.run.last_actions if a.tid != event.tid]
        log.debug("passing signal %d to thread %d", event.signal, event.tid)
        inf.live.resume([ResumeAction(ResumeKind.CONTINUE, event.tid, event.signal), *others])
        return True

    def _drain_interrupts(self, inf: Inferior) -> None:
        """The target stopped for a real reason while our interrupt() was in flight; interrupt() on a
        stopped target posts one INTERRUPT event at once. Swallow it now, before gdb can resume."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        with new_selector() as sel:
            sel.register(inf.live.event_fd(), selectors.EVENT_READ)
            while inf.run.pending_interrupts:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sel.select(remaining):
                    log.warning("%d interrupt event(s) never arrived", inf.run.pending_interrupts)
                    inf.run.pending_interrupts = 0
                    return
                self._take_event(None, inf)

    def _stop_the_others(self, inf: Inferior) -> None:
        """All-stop across processes: before one process's stop is reported, every other one is stopped too
        (interrupt() returns once the process has stopped; its INTERRUPT event is swallowed when it comes)."""
        for other in list(self._inferiors.values()):
            if other is not inf and other.attached and other.run.running and other.control is not None:
                try:
                    self._interrupt(other)
                except TargetError:
                    log.info("process %d could not be stopped", other.pid, exc_info=True)
                    continue
                other.run.running, other.run.held_for_other = False, True

    # ---- one connection ----

    def _serve_connection(self, sock: socket.socket, inherited: dict | None = None) -> None:
        conn = Connection(sock)
        self._main.attached = True
        session = Session(self._target, self._main.run, initially_stopped=self._initially_stopped,
                          inferiors=self._inferiors)
        if inherited is not None:
            _restore(session, conn, inherited)
        try:
            if inherited is None and self._control is not None and self._run.running:
                self._interrupt(self._main)         # --gdb_listen: gdb attaches to a running payload
                self._wait_stop(session, self._main)
            self._serving = (session, conn)
            self._session_loop(session, conn)
        except ConnectionClosed as exc:
            log.info("gdb connection closed: %s", exc)
        except Exception:  # noqa: BLE001 - a stub bug ends this connection, never km or the payload
            log.exception("gdb session failed")
        finally:
            self._serving, self._lane = None, None
            if not session.ending:
                self._abandon(session)
            hostio.close_all(session)
            conn.close()

    def _session_loop(self, session: Session, conn: Connection) -> None:
        """Packets and events, until the session ends. A bare epoll object with a table from descriptor to what it
        belongs to (not a selectors.PollSelector, whose key objects cost ~10 us a wake-up): the loop wakes twice
        per stepi, and gdbserver's whole answer to a packet takes about that long. epoll, not poll: its
        descriptors are registered once, where poll(2) hooks and unhooks each of three at every wait (~0.7 us a
        packet). The epoll object closes when dropped (the next turn's replaces it, or the return).

        While the session is stopped (one process, all-stop, no-ack mode, nothing queued or half read), the stop
        lane (kdbg.rsp.cstop) waits on the same epoll in C and answers the packets it can; what it hands back is
        handled here as if read from the socket."""
        queued: collections.deque[bytes] = collections.deque()
        conn_fd, wake_fd = conn.fileno(), self._wake_r.fileno()
        module = self._lane_module
        lane = self._lane = cstop.StopLane(module[0], module[1], conn_fd) if module is not None else None
        while not self._closed and not session.ending and (self._inferiors or session.stop_queue):
            watched = set(self._inferiors)
            poller = new_epoll()
            owners: dict[int, Inferior | None] = {wake_fd: None, conn_fd: None}
            for inf in self._inferiors.values():
                if inf.control is not None:
                    owners[inf.live.event_fd()] = inf
            for fd in owners:
                poller.register(fd, select.EPOLLIN)
            # the stop lane serves one process, while it is stopped (_lane_run), in all-stop mode
            lane_run = next(iter(self._inferiors.values())).run if lane is not None and len(watched) == 1 else None
            if lane is not None:
                lane.invalidate()
                lane.watch(poller.fileno())
            while not self._closed and not session.ending and self._inferiors.keys() == watched:
                events = None
                if (lane_run is not None and not lane_run.running and lane_run.deferred is None and not queued
                        and not session.non_stop and conn.lane_may_read()):
                    assert lane is not None
                    events = lane.serve(session, conn)
                if events is not None:
                    self._on_packets(session, conn, queued, events)
                else:
                    for fd, _ in poller.poll():
                        if fd == conn_fd:
                            self._on_packets(session, conn, queued, conn.receive())
                        else:
                            owner = owners.get(fd)
                            if owner is not None:
                                if lane is not None:
                                    lane.invalidate()
                                self._on_event(session, conn, owner)
                if not self._inferiors and not session.stop_queue:
                    return      # (non-stop: once gdb has drained the exit's notification)
                while queued and not session.any_running and not session.ending:
                    self._answer(session, conn, queued.popleft())
                self._report_deferred(session, conn)

    def _on_packets(self, session: Session, conn: Connection, queued: collections.deque[bytes],
                    events: list[Event]) -> None:
        """What one read of the socket (or the stop lane's leftovers) holds: packets and ^Cs, in order."""
        for packet in events:
            if packet.kind is INTERRUPT:
                self._on_ctrl_c(session)
            elif session.any_running and not session.non_stop:
                queued.append(packet.data)   # all-stop: answered once the target stops
            else:
                self._answer(session, conn, packet.data)
                if session.any_running and not session.non_stop:
                    self._take_ready_stop(session, conn)
        conn.flush()     # the '+' of a packet not answered yet (its reply carried it if it was)

    def _take_ready_stop(self, session: Session, conn: Connection) -> None:
        """A resume whose stop is already there (a single step, or a continue to a breakpoint, of a parked thread
        runs on this thread: LiveTarget._step_here and _continue_here) is answered at once, without waiting for
        the event loop to report the event descriptor. When the stop comes later, this costs one empty read."""
        inf = session.current
        if inf.run.running and inf.attached and inf.control is not None and inf.pid in self._inferiors:
            self._on_event(session, conn, inf)

    def _on_event(self, session: Session, conn: Connection, inf: Inferior) -> None:
        if inf.pid not in self._inferiors:
            return
        if not inf.attached:
            self._unattached_event(inf)
            return
        if session.non_stop:
            self._on_event_non_stop(session, conn, inf)
            return
        event = self._take_event(session, inf)
        if event is not None:
            self._report(session, conn, inf, event)

    def _report(self, session: Session, conn: Connection, inf: Inferior, event: StopEvent) -> None:
        """All-stop: the stop reply of a process's event (the others stopped first), or its exec's hand-over."""
        if event.reason is StopReason.HAND_OVER:
            self._hand_over(session, conn, inf)
            return
        if event.reason in PROCESS_ENDS:
            del self._inferiors[inf.pid]
        self._stop_the_others(inf)
        if event.reason in _FORKS and event.child_pid is not None:
            self._adopt_child(inf, event, event.child_pid)
        session.reported(inf)
        conn.send(stop_reply(session, event, inf.pid))

    def _stop_now(self, event: StopEvent) -> bool:
        """The main process stopped inside a resume this thread is making (EarlyStopTarget: a stepi, or a continue
        to a breakpoint, run on this thread): report it at once, so that the stop reply leaves before the resume's
        bookkeeping unwinds; the reply is all gdb waits for. Declined (queued for next_event) unless one process
        is served in all-stop mode and the resume is the session's own (a vCont, c or s: then the process counts as
        running): with several processes, the others may not have been resumed yet."""
        serving, inf = self._serving, self._main
        if (serving is None or serving[0].non_stop or len(self._inferiors) != 1 or inf.pid not in self._inferiors
                or not inf.attached or not inf.run.running):
            return False
        session, conn = serving
        accepted = self._accept_event(session, inf, event)
        if accepted is not None:
            try:
                self._report(session, conn, inf, accepted)
            except ConnectionClosed as exc:     # the session loop's next read ends the connection
                log.info("gdb connection closed: %s", exc)
        return True

    def _on_event_non_stop(self, session: Session, conn: Connection, inf: Inferior) -> None:
        """Non-stop: one thread stopped (the others run on) or the process ended; gdb hears it as a %Stop
        notification, or through vStopped while it drains earlier ones."""
        event = inf.live.next_event()
        if event is None:
            return
        run = inf.run
        log.debug("process %d event %s (non-stop)", inf.pid, event)
        if event.reason is StopReason.HAND_OVER:
            self._hand_over(session, conn, inf)
            return
        if event.reason in PROCESS_ENDS:
            run.reported(event)
            run.ns_stopped = set()
            del self._inferiors[inf.pid]
        elif event.tid in run.ns_stopped:
            # vCont;t parked a thread that parked itself too (a breakpoint): one stop is reported; a breakpoint
            # dropped here happens again when the thread resumes
            log.debug("thread %d: second stop %s dropped", event.tid, event.reason.value)
            return
        elif self._passed(session, inf, event):
            return
        else:
            run.ns_stopped.add(event.tid)
            run.last_stop = event
            nonstop.note_running(inf)
            if event.reason in _FORKS and event.child_pid is not None:
                self._adopt_child(inf, event, event.child_pid)
                child = self._inferiors.get(event.child_pid)
                if child is not None:           # stopped whole: gdb detaches it or resumes it (vCont)
                    child.run.ns_stopped = set(child.target.threads())
                    if isinstance(child.control, NonStopTarget):    # its threads, too, stop one by one
                        child.control.set_non_stop(True)
        session.last_pid = inf.pid
        notification = nonstop.queue_stop(session, stop_reply(session, event, inf.pid))
        if notification is not None:
            conn.send_notification(notification)

    def _report_deferred(self, session: Session, conn: Connection) -> None:
        """A process resumed while it held a deferred stop: that stop is its answer (it never ran). Asked after
        every packet: the cheap test first, no list made."""
        for inf in session.inferiors.values():
            if inf.run.deferred is not None and inf.run.running and inf.attached:
                event, inf.run.deferred = inf.run.deferred, None
                inf.run.reported(event)
                self._stop_the_others(inf)
                session.reported(inf)
                conn.send(stop_reply(session, event, inf.pid))
                return

    def _adopt_child(self, parent: Inferior, event: StopEvent, pid: int) -> None:
        """A fork event: the stopped child `pid` becomes a process this stub serves (gdb detaches or follows it)."""
        try:
            child = parent.live.forked_child(pid)
        except TargetError:
            log.warning("forked child %d is not reachable", pid, exc_info=True)
            return
        tid = event.child_tid or pid
        self._inferiors[pid] = Inferior(child, RunState(
            running=False, last_stop=StopEvent(tid, StopReason.SIGNAL, 5)))

    def _hand_over(self, session: Session | None, conn: Connection | None, inf: Inferior) -> None:
        """The payload is about to exec: the next program's stub takes the listener and the connection (the
        descriptors stay open across the exec). hand_over() returns only when the exec failed."""
        if conn is not None:
            conn.flush()                    # the next program's stub owes gdb nothing
        state = {"listener": self._listener.fileno(), "conn": conn.fileno() if conn is not None else None,
                 "initially_stopped": self._initially_stopped}
        if session is not None and conn is not None:
            state.update(no_ack=conn.no_ack, features=sorted(session.gdb_features),
                         pass_signals=sorted(session.pass_signals),
                         program_signals=None if session.program_signals is None else sorted(session.program_signals),
                         catch_syscalls=None if session.catch_syscalls is None else sorted(session.catch_syscalls),
                         non_stop=session.non_stop, lldb_stop_keys=session.lldb_stop_keys)
        for fd in (state["listener"], state["conn"]):
            if fd is not None:
                os.set_inheritable(fd, True)
        try:
            inf.live.hand_over(json.dumps(state).encode())
        finally:
            for fd in (state["listener"], state["conn"]):
                if fd is not None:
                    os.set_inheritable(fd, False)
        inf.run.running = True              # the exec failed: the payload goes on, so does this stub

    def _on_ctrl_c(self, session: Session) -> None:
        if session.non_stop:
            nonstop.stop_all(session)
            return
        running = [inf for inf in session.attached_inferiors() if inf.run.running and inf.control is not None]
        if not running:
            log.debug("^C while stopped: ignored")
            return
        log.info("gdb interrupt (^C)")
        self._interrupt(running[0])            # the others stop with its stop (all-stop)

    def _answer(self, session: Session, conn: Connection, packet: bytes) -> None:
        reply = dispatch(session, packet)
        if reply is not None:
            conn.send(reply)
        if session.no_ack and not conn.no_ack:
            conn.no_ack = True
        if self._lane is not None:
            self._lane.after(packet, reply, conn.last_frame)

    def _abandon(self, session: Session) -> None:
        """gdb left without D or k: never lose the payload; stopped for the next gdb (-g), else running.
        Followed children are detached: they run on as if never debugged."""
        if session.non_stop:                # the next gdb starts in all-stop mode
            for inf in self._inferiors.values():
                if isinstance(inf.control, NonStopTarget):
                    inf.control.set_non_stop(False)
                inf.run.ns_stopped = set()
            session.non_stop = False
        for inf in list(self._inferiors.values()):
            if inf.control is None or inf.run.exited or not inf.attached:
                continue
            try:
                if inf.run.running:
                    self._interrupt(inf)
                    self._wait_stop(None, inf)
                points.clear_points(session, inf)
                if session.catch_syscalls is not None:
                    inf.live.set_syscall_catch(None)
                if inf is not self._main:
                    inf.live.detach()
                    self._inferiors.pop(inf.pid, None)
                elif not self._initially_stopped and not inf.run.exited:
                    log.info("gdb gone: detaching, the payload runs on")
                    inf.live.detach()
                    inf.run.running = True
            except Exception:  # noqa: BLE001 - the stub must not take the payload down with it
                log.exception("cleaning up after gdb left")


def _restore(session: Session, conn: Connection, state: dict) -> None:
    """The choices gdb made on this connection before the exec (it will not repeat qSupported and friends)."""
    conn.no_ack = session.no_ack = bool(state.get("no_ack"))
    session.gdb_features = frozenset(state.get("features", ()))
    session.pass_signals = frozenset(state.get("pass_signals", ()))
    program = state.get("program_signals")
    session.program_signals = None if program is None else frozenset(program)
    session.lldb_stop_keys = bool(state.get("lldb_stop_keys"))
    catch = state.get("catch_syscalls")
    session.catch_syscalls = None if catch is None else frozenset(catch)
    control = session.control
    if control is not None:
        query.apply_event_reporting(session)
        if session.catch_syscalls is not None:
            control.set_syscall_catch(session.catch_syscalls)
        if state.get("non_stop") and isinstance(control, NonStopTarget):
            # gdb stays in non-stop mode across the exec: the new program's one thread runs until it reports
            # the exec, which reaches gdb as a %Stop notification (a plain reply is "Invalid remote reply")
            control.set_non_stop(True)
            session.non_stop = True
            session.run.ns_stopped = set()


def inherits_connection(handover: bytes) -> bool:
    """Whether an exec'ing km's stub left a gdb connection (then the new program stops for gdb at once)."""
    return json.loads(handover).get("conn") is not None
