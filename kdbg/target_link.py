"""A ControlTarget served over a socket: how the stub in one km reaches a process that lives in another km (a
forked child has its own VM in its own km), so that one gdb session debugs both.

`serve_target` runs in the child km: it answers the calls it reads from the link with its local target and
forwards that target's events. `LinkedTarget`, in the parent km, is the ControlTarget the stub holds for the
child. Both ends are km itself (one forked from the other), so messages are length-prefixed pickles:

    parent -> child   ("call", method, args)
    child -> parent   ("reply", ok, value)   the answer to the one call in flight (calls come from one thread)
                      ("event", StopEvent)    at any time; the child's EXITED/TERMINATED is its last message

Only the stdlib and kdbg.target may be imported here.
"""
from __future__ import annotations

import json
import os
import pickle
import queue
import selectors
import socket
import struct
import threading
from typing import Any, Callable, Mapping, Sequence

from kdbg.target import (BreakpointKind, ControlTarget, GuestMemoryError, MemoryRegion, NonStopTarget,
                         NoSuchThreadError, PROCESS_ENDS, ResumeAction, StopEvent, StopEventQueue, StopReason,
                         TargetError)
from kdbg.tracelog import logger

log = logger("km.gdb")
_HEADER = struct.Struct("<I")
CALL_TIMEOUT_S = 30.0
SIGKILL = 9


def send_message(sock: socket.socket, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_HEADER.pack(len(data)) + data, socket.MSG_NOSIGNAL)    # a peer gone is EPIPE, not SIGPIPE


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        data = sock.recv(size - len(chunks))
        if not data:
            raise EOFError("link closed")
        chunks += data
    return bytes(chunks)


def receive_message(sock: socket.socket) -> Any:
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    return pickle.loads(_recv_exact(sock, size))


def _encode_error(error: TargetError) -> tuple:
    """TargetError subclasses take their own constructor arguments: send what rebuilds each."""
    if isinstance(error, GuestMemoryError):
        return ("memory", error.addr, error.size)
    if isinstance(error, NoSuchThreadError):
        return ("thread", error.tid)
    return ("target", error.errno, str(error))


def _decode_error(encoded: tuple) -> TargetError:
    kind, *args = encoded
    if kind == "memory":
        return GuestMemoryError(*args)
    if kind == "thread":
        return NoSuchThreadError(*args)
    error = TargetError(args[1])
    error.errno = args[0]
    return error


def _plain(value: Any) -> Any:
    """A dict subclass (a lazily loaded register file) becomes a plain dict: it pickles, and every value is read."""
    return dict(value.items()) if isinstance(value, dict) else value


# ---- the child's end ------------------------------------------------------------------------------------------

_SERVED = frozenset({"threads", "thread_name", "registers", "read_memory", "mappings", "auxv", "exe_path", "pid",
                     "stop_event", "siginfo", "write_registers", "write_memory", "resume", "interrupt",
                     "set_breakpoint", "clear_breakpoint", "supports", "detach", "kill", "report_events",
                     "set_syscall_catch", "set_non_stop", "stop_threads"})


def serve_target(sock: socket.socket, target: ControlTarget, settings: dict | None = None) -> None:
    """Serve `target` over the link until its process ends (its last event sent) or the parent detaches it or
    goes away. Runs on its own thread; target calls happen only here (the contract's one caller). `settings`
    are the debugger's choices before an exec (handed over with the link), applied to the new program."""
    settings = dict(settings or {})
    if settings.get("events") is not None:
        target.report_events(frozenset(settings["events"]))
    if settings.get("catch") is not None:
        target.set_syscall_catch(frozenset(settings["catch"]))
    if settings.get("non_stop") and isinstance(target, NonStopTarget):
        target.set_non_stop(True)
    sel = selectors.PollSelector()
    sel.register(sock, selectors.EVENT_READ, "link")
    sel.register(target.event_fd(), selectors.EVENT_READ, "target")
    try:
        while True:
            for key, _ in sel.select():
                if key.data == "link":
                    try:
                        _, method, args = receive_message(sock)
                    except (EOFError, OSError):
                        log.info("debugger link closed: detaching")
                        target.detach()
                        return
                    send_message(sock, ("reply", *_answer(target, method, args)))
                    if method == "report_events":
                        settings["events"] = sorted(args[0])
                    elif method == "set_syscall_catch":
                        settings["catch"] = None if args[0] is None else sorted(args[0])
                    elif method == "set_non_stop":
                        settings["non_stop"] = bool(args[0])
                    elif method == "detach":
                        return
                else:
                    event = target.next_event()
                    if event is None:
                        continue
                    if event.reason is StopReason.HAND_OVER:      # the link goes on in the exec'd km
                        os.set_inheritable(sock.fileno(), True)
                        target.hand_over(json.dumps({**settings, "link": sock.fileno()}).encode())
                        os.set_inheritable(sock.fileno(), False)  # the exec failed: serving goes on here
                        continue
                    send_message(sock, ("event", event))
                    if event.reason in PROCESS_ENDS:
                        return
    except OSError:
        log.info("debugger link broken", exc_info=True)
    finally:
        sel.close()


def _answer(target: ControlTarget, method: str, args: tuple) -> tuple[bool, Any]:
    if method not in _SERVED:
        return False, ("target", 95, f"{method} is not served over a link")
    try:
        return True, _plain(getattr(target, method)(*args))
    except TargetError as error:
        return False, _encode_error(error)
    except Exception as error:  # noqa: BLE001 - the stub's contract: any failure is an error reply, never a crash
        log.exception("%s over the link failed", method)
        return False, ("target", 5, f"{type(error).__name__}: {error}")


# ---- the parent's end -----------------------------------------------------------------------------------------

class LinkedTarget:
    """kdbg.target.ControlTarget for a process in another km, reached through `sock`."""

    def __init__(self, sock: socket.socket, pid: int, fd_mover: Callable[[int], int] | None = None) -> None:
        self._sock = sock
        self._pid = pid
        self._replies: queue.Queue[tuple[bool, Any]] = queue.Queue()
        self._events = StopEventQueue(place_fd=fd_mover)
        self._supports: frozenset[str] | None = None
        self._gone = False
        threading.Thread(target=self._reader, name=f"gdb-link-{pid}", daemon=True).start()

    def _reader(self) -> None:
        try:
            while True:
                kind, *body = receive_message(self._sock)
                if kind == "event":
                    self._post(body[0])
                    if body[0].reason in PROCESS_ENDS:
                        break
                else:
                    self._replies.put(tuple(body))
        except (EOFError, OSError):
            if not self._gone:      # the child km died without a word: report it as killed
                log.info("link to process %d lost", self._pid)
                self._post(StopEvent(0, StopReason.TERMINATED, SIGKILL))
        finally:
            self._gone = True
            self._replies.put((False, ("target", 3, f"process {self._pid} is gone")))
            try:
                self._sock.close()
            except OSError:
                pass

    def _post(self, event: StopEvent) -> None:
        if event.reason in PROCESS_ENDS:
            self._gone = True
        self._events.post(event)

    def _call(self, method: str, *args: Any) -> Any:
        if self._gone:
            raise TargetError(f"process {self._pid} is gone")
        try:
            send_message(self._sock, ("call", method, args))
        except OSError:
            raise TargetError(f"process {self._pid} is gone") from None
        try:
            ok, value = self._replies.get(timeout=CALL_TIMEOUT_S)
        except queue.Empty:
            raise TargetError(f"process {self._pid} does not answer") from None
        if not ok:
            raise _decode_error(value)
        return value

    def close(self) -> None:
        """Drop the link (the child, if still served, detaches) and the event pipe."""
        self._gone = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._events.close()

    # ---- Target ----
    def threads(self) -> Sequence[int]:
        return self._call("threads")

    def thread_name(self, tid: int) -> str:
        return self._call("thread_name", tid)

    def registers(self, tid: int) -> dict[str, int]:
        return self._call("registers", tid)

    def read_memory(self, addr: int, size: int) -> bytes:
        return self._call("read_memory", addr, size)

    def mappings(self) -> Sequence[MemoryRegion]:
        return self._call("mappings")

    def auxv(self) -> bytes:
        return self._call("auxv")

    def exe_path(self) -> str:
        return self._call("exe_path")

    def pid(self) -> int:
        return self._pid

    def stop_event(self, tid: int) -> StopEvent:
        return self._call("stop_event", tid)

    def siginfo(self, tid: int) -> bytes:
        return self._call("siginfo", tid)

    # ---- ControlTarget ----
    def write_registers(self, tid: int, values: Mapping[str, int]) -> None:
        self._call("write_registers", tid, dict(values))

    def write_memory(self, addr: int, data: bytes) -> None:
        self._call("write_memory", addr, bytes(data))

    def resume(self, actions: Sequence[ResumeAction]) -> None:
        self._call("resume", list(actions))

    def interrupt(self) -> None:
        if self._gone:
            self._post(StopEvent(0, StopReason.INTERRUPT, 0))
            return
        self._call("interrupt")

    def set_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        self._call("set_breakpoint", kind, addr, length)

    def clear_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        self._call("clear_breakpoint", kind, addr, length)

    def event_fd(self) -> int:
        return self._events.read_fd

    def next_event(self) -> StopEvent | None:
        return self._events.take()

    def supports(self) -> frozenset[str]:
        if self._supports is None:
            self._supports = self._call("supports")
        return self._supports

    def report_events(self, kinds: frozenset[str]) -> None:
        self._call("report_events", kinds)

    def forked_child(self, pid: int) -> ControlTarget:
        """A linked process's own forks are not followed (they run on undebugged): nothing to reach."""
        raise TargetError(f"process {pid} is not reachable through process {self._pid}")

    def set_syscall_catch(self, numbers: frozenset[int] | None) -> None:
        self._call("set_syscall_catch", numbers)

    def hand_over(self, state: bytes) -> None:
        raise TargetError("a linked process hands its link over itself")

    def detach(self) -> None:
        if not self._gone:
            try:
                self._call("detach")
            except TargetError:
                pass
        self._gone = True

    def kill(self) -> None:
        self._call("kill")

    # ---- NonStopTarget (gdb's non-stop mode reaches a followed child too) ----
    def set_non_stop(self, on: bool) -> None:
        self._call("set_non_stop", on)

    def stop_threads(self, tids: Sequence[int]) -> None:
        self._call("stop_threads", list(tids))
