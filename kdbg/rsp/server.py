"""GdbServer: listens on the gdb port and runs the session loop, waiting with `selectors` on the gdb socket and
the target's event fd together (docs/HOUSE-STYLE.md 2.7). One thread: the one calling serve() owns every target call.

Connection life cycle (all-stop):

    accept --(payload running: interrupt(), wait for its stop)--> stopped <--> running (resume / stop reply)
      |-- D: target.detach(), payload runs on, next accept
      |-- k: target.kill(), TERMINATED ends serve()
      |-- gdb vanishes: our points are cleared; payload stays stopped (km -g) or is detached (--gdb_listen)
      `-- EXITED/TERMINATED: W/X sent, serve() returns
"""
from __future__ import annotations

import collections
import errno
import logging
import selectors
import socket
import time

# The handler modules register their packets in commands.TABLE on import.
from kdbg.rsp import hostio, memory, points, query, registers, resume, xfer  # noqa: F401
from kdbg.rsp.commands import dispatch
from kdbg.rsp.connection import Connection, ConnectionClosed
from kdbg.rsp.errors import ListenError, RspError
from kdbg.rsp.fds import new_selector, own_socket
from kdbg.rsp.packets import EventKind
from kdbg.rsp.resume import stop_reply
from kdbg.rsp.session import RunState, Session
from kdbg.target import ControlTarget, ResumeAction, ResumeKind, StopEvent, StopReason, Target

log = logging.getLogger("km.gdb")

STOP_TIMEOUT_S = 10.0     # how long an interrupt() may take to produce its stop
DRAIN_TIMEOUT_S = 2.0     # an interrupt() that lost the race with a real stop posts its event at once


class GdbServer:
    def __init__(self, target: Target, port: int, host: str = "127.0.0.1", *, initially_stopped: bool) -> None:
        """Binds and listens at once; raises ListenError("gdb port N", "address already in use") when it cannot."""
        self._target = target
        self._control: ControlTarget | None = target if isinstance(target, ControlTarget) else None
        self._initially_stopped = initially_stopped
        try:
            self._listener = own_socket(socket.create_server((host, port)))
        except OSError as exc:
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise ListenError(f"gdb port {port}", reason) from None
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = (own_socket(s) for s in socket.socketpair())
        self._closed = False
        if self._control is not None:
            self._run = RunState(running=True)      # -g: the ENTRY event is pending; --gdb_listen: it runs
        else:
            self._run = RunState(running=False, last_stop=target.stop_event(target.threads()[0]))
        # km -g posts an ENTRY event before anyone connects: that first stop is kept for gdb.
        self._first_event_seen = self._control is None or not initially_stopped
        log.info("gdb stub listening on %s:%d", host, self.port)

    # ---- public ----

    def serve(self, *, once: bool = False) -> None:
        """Accept connections one after another until the target has exited (after sending W/X) or close()."""
        try:
            while not self._closed and not self._run.exited:
                sock = self._accept()
                if sock is None:
                    break
                self._serve_connection(sock)
                if once:
                    break
        finally:
            self._listener.close()

    def close(self) -> None:
        """Stop serving (callable from another thread); the payload is left as it is."""
        self._closed = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    @property
    def _live(self) -> ControlTarget:
        """The control target, in the paths that only a live payload reaches (a core never runs)."""
        assert self._control is not None, "a read-only target never runs"
        return self._control

    # ---- waiting ----

    def _selector(self, *fileobjs: socket.socket | Connection) -> selectors.BaseSelector:
        sel = new_selector()
        sel.register(self._wake_r, selectors.EVENT_READ)
        if self._control is not None:
            sel.register(self._control.event_fd(), selectors.EVENT_READ)
        for obj in fileobjs:
            sel.register(obj, selectors.EVENT_READ)
        return sel

    def _accept(self) -> socket.socket | None:
        """Wait for gdb; meanwhile the payload may stop or end, and nobody is there to tell."""
        with self._selector(self._listener) as sel:
            while not self._closed and not self._run.exited:
                for key, _ in sel.select():
                    if key.fileobj is self._listener:
                        sock, peer = self._listener.accept()
                        sock = own_socket(sock)
                        log.info("gdb connected from %s:%d", *peer[:2])
                        return sock
                    if key.fileobj is not self._wake_r:
                        self._unattached_event()
        return None

    def _unattached_event(self) -> None:
        is_first = not self._first_event_seen
        interrupted = self._run.pending_interrupts > 0
        event = self._take_event(None)
        if event is None or self._run.exited or is_first or (interrupted and self._initially_stopped):
            return                              # km -g: stay stopped until gdb comes
        # A stop with no debugger attached (after a detach): let the payload handle its own signal.
        signal = event.signal if event.reason is StopReason.SIGNAL else 0
        log.info("no gdb attached: resuming after %s (signal %d)", event.reason.value, signal)
        self._run.running = True
        self._live.resume([ResumeAction(ResumeKind.CONTINUE, -1, signal)])

    def _wait_stop(self, session: Session | None) -> None:
        """Block (up to STOP_TIMEOUT_S) until a running target reports a stop."""
        deadline = time.monotonic() + STOP_TIMEOUT_S
        with new_selector() as sel:
            sel.register(self._live.event_fd(), selectors.EVENT_READ)
            while self._run.running and not self._run.exited:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sel.select(remaining):
                    log.warning("the target did not stop within %.0f s", STOP_TIMEOUT_S)
                    return
                self._take_event(session)

    def _interrupt(self) -> None:
        self._run.pending_interrupts += 1
        self._live.interrupt()

    # ---- events ----

    def _take_event(self, session: Session | None) -> StopEvent | None:
        """Read one target event and update the run state; None when it is swallowed (a passed signal,
        the late event of an interrupt() that lost the race with a real stop)."""
        event = self._live.next_event()
        if event is None:
            return None
        run = self._run
        log.debug("target event %s", event)
        if event.reason in (StopReason.EXITED, StopReason.TERMINATED):
            run.running, run.last_stop, run.pending_interrupts = False, event, 0
            return event
        if event.reason is StopReason.INTERRUPT and run.pending_interrupts:
            run.pending_interrupts -= 1
            if not run.running:
                return None
        elif not run.running:
            log.warning("stop event while stopped, ignored: %s", event)
            return None
        if session is not None and event.reason is StopReason.SIGNAL and event.signal in session.pass_signals:
            self._pass_signal(event)
            return None
        run.running, run.last_stop = False, event
        self._first_event_seen = True
        if run.pending_interrupts:
            self._drain_interrupts()
        return event

    def _pass_signal(self, event: StopEvent) -> None:
        """QPassSignals: deliver without telling gdb, resuming the way gdb last asked."""
        actions = [a for a in self._run.last_actions if a.tid != event.tid]
        own = [a for a in self._run.last_actions if a.tid in (event.tid, -1)]
        kind = own[0].kind if own else ResumeKind.CONTINUE
        log.debug("passing signal %d to thread %d", event.signal, event.tid)
        self._live.resume([ResumeAction(kind, event.tid, event.signal), *actions])

    def _drain_interrupts(self) -> None:
        """The target stopped for a real reason while our interrupt() was in flight; interrupt() on a
        stopped target posts one INTERRUPT event at once. Swallow it now, before gdb can resume."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        with new_selector() as sel:
            sel.register(self._live.event_fd(), selectors.EVENT_READ)
            while self._run.pending_interrupts:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sel.select(remaining):
                    log.warning("%d interrupt event(s) never arrived", self._run.pending_interrupts)
                    self._run.pending_interrupts = 0
                    return
                self._take_event(None)

    # ---- one connection ----

    def _serve_connection(self, sock: socket.socket) -> None:
        conn = Connection(sock)
        session = Session(self._target, self._run, initially_stopped=self._initially_stopped)
        try:
            if self._control is not None and self._run.running:
                self._interrupt()               # --gdb_listen: gdb attaches to a running payload
                self._wait_stop(session)
            self._session_loop(session, conn)
        except ConnectionClosed as exc:
            log.info("gdb connection closed: %s", exc)
        except Exception:  # noqa: BLE001 - a stub bug ends this connection, never km or the payload
            log.exception("gdb session failed")
        finally:
            if not session.ending:
                self._abandon(session)
            hostio.close_all(session)
            conn.close()

    def _session_loop(self, session: Session, conn: Connection) -> None:
        queued: collections.deque[bytes] = collections.deque()
        with self._selector(conn) as sel:
            while not self._closed and not session.ending:
                for key, _ in sel.select():
                    if key.fileobj is conn:
                        for received in conn.receive():
                            if received.kind is EventKind.INTERRUPT:
                                self._on_ctrl_c()
                            elif self._run.running:
                                queued.append(received.data)   # all-stop: answered once the target stops
                            else:
                                self._answer(session, conn, received.data)
                    elif key.fileobj is not self._wake_r:
                        stop = self._take_event(session)
                        if stop is not None:
                            session.g_tid = 0
                            conn.send(stop_reply(session, stop))
                if self._run.exited:
                    return
                while queued and not self._run.running and not session.ending:
                    self._answer(session, conn, queued.popleft())

    def _on_ctrl_c(self) -> None:
        if self._control is None or not self._run.running:
            log.debug("^C while stopped: ignored")
            return
        log.info("gdb interrupt (^C)")
        self._interrupt()

    def _answer(self, session: Session, conn: Connection, packet: bytes) -> None:
        reply = dispatch(session, packet)
        if reply is not None:
            conn.send(reply)
        if session.no_ack and not conn.no_ack:
            conn.no_ack = True

    def _abandon(self, session: Session) -> None:
        """gdb left without D or k: never lose the payload; stopped for the next gdb (-g), else running."""
        if self._control is None or self._run.exited:
            return
        try:
            if self._run.running:
                self._interrupt()
                self._wait_stop(None)
            points.clear_points(session)
            if not self._initially_stopped and not self._run.exited:
                log.info("gdb gone: detaching, the payload runs on")
                self._control.detach()
                self._run.running = True
        except Exception:  # noqa: BLE001 - the stub must not take the payload down with it
            log.exception("cleaning up after gdb left")
