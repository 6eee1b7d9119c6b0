"""gdb's async records turned into DAP events: stopped (with the DAP reason), continued, thread, output, exited.

One `StopEvents` per gdb (built with it, dropped with it). gdb's `*stopped` reasons
(https://sourceware.org/gdb/current/onlinedocs/gdb.html/GDB_002fMI-Async-Records.html) map to DAP's:
breakpoint-hit -> breakpoint (or entry; or nothing for a log point or an unmet hit condition, which resume at
once), watchpoint triggers -> data breakpoint, signal-received -> exception (pause when the user asked for one),
stepping ends -> step. Exit codes arrive in octal.

In non-stop mode gdb reports each thread's stop and resume on its own (`*stopped,thread-id=N,stopped-threads=[N]`,
`*running,thread-id=N`): the events say so (`allThreadsStopped: false`, `allThreadsContinued: false`), and what
the client was told about that thread's previous stop is void from then on (lifecycle.Stop, variables.py).
"""
from __future__ import annotations

import signal
from typing import Any, Callable

from .breakpoints import Breakpoints
from .errors import GdbError
from .execution import Execution
from .gdb_backend import Gdb
from .lifecycle import Lifecycle, State, Stop
from .variables import Variables

_WATCH_REASONS = {"watchpoint-trigger": "wpt", "read-watchpoint-trigger": "hw-rwpt",
                  "access-watchpoint-trigger": "hw-awpt"}
_STEP_REASONS = ("end-stepping-range", "function-finished", "location-reached")


class StopEvents:
    """Translates the records of one gdb (and the exit of its km) into DAP events; built with that gdb."""

    def __init__(self, gdb: Gdb, lifecycle: Lifecycle, stop: Stop, variables: Variables, breakpoints: Breakpoints,
                 execution: Execution, send_event: Callable[[str, dict[str, Any]], None],
                 output: Callable[[str, str], None], exited: Callable[[int], None]) -> None:
        self.gdb = gdb
        self.lifecycle, self.stop, self.vars = lifecycle, stop, variables
        self.breakpoints, self.execution = breakpoints, execution
        self.send_event, self.output, self.exited = send_event, output, exited
        self.entry_breakpoint: str | None = None     # gdb's number of the temporary breakpoint of stopOnEntry
        # gdb reports where `target remote` found the debuggee as a reasonless *stopped. It is queued before
        # the configuration (or a restart) resumes the debuggee but handled after, so it must not count as a stop.
        self.connect_stop_pending = True
        self.has_py_bt: bool | None = None           # gdb has CPython's extension for this program (asked once)

    def on_record(self, record: dict[str, Any]) -> None:
        """One async record of this gdb (results go to the waiting command, not here)."""
        kind, message, payload = record["type"], record.get("message"), record.get("payload")
        configured = self.lifecycle.is_configured
        if kind == "notify" and message == "stopped":
            self._on_stopped(payload or {})
        elif kind == "notify" and message == "running":
            if self.lifecycle.threads.non_stop:
                self._on_thread_running(str((payload or {}).get("thread-id", "all")))
            else:
                self._on_running()
        elif kind == "notify" and message in ("thread-created", "thread-exited"):
            thread_id = int((payload or {}).get("id", 0))
            if message == "thread-created":
                self.lifecycle.threads.known.add(thread_id)
            else:
                self.lifecycle.threads.exited(thread_id)
            if configured:
                self.send_event("thread", {"reason": "started" if message == "thread-created" else "exited",
                                           "threadId": thread_id})
        elif kind == "notify" and message == "breakpoint-modified":
            if (changed := self.breakpoints.modified((payload or {}).get("bkpt", {}))) is not None:
                self.send_event("breakpoint", {"reason": "changed", "breakpoint": changed})
        elif kind == "target" and payload:
            self.output("stdout", payload)
        elif kind == "log" and payload and configured:
            self.output("console", payload)

    def _on_running(self) -> None:
        """Our own resumes moved the session to RUNNING already; one from elsewhere is news to the client."""
        state = self.lifecycle.state
        if state is State.STOPPED:
            self.lifecycle.move(State.RUNNING)
            self.send_event("continued", {"threadId": 1, "allThreadsContinued": True})
        elif state is State.CONFIGURED:
            self.lifecycle.move(State.RUNNING)

    def _on_thread_running(self, which: str) -> None:
        """Non-stop: threads resumed. Our own resumes marked them running already; a stopped one is news, to the
        client too if it was told of that stop (not of the connect's, which a restart's run may overtake)."""
        threads = self.lifecycle.threads
        resumed = set(threads.stopped) if which == "all" else {int(which)} if which.isdigit() else set()
        news = threads.mark_running(resumed)
        if not news:
            return
        told = sorted(news & set(self.stop.records))
        self.execution.forget(news)
        if self.lifecycle.state in (State.STOPPED, State.RUNNING):
            self.lifecycle.after_thread_change()
            if told:
                self.send_event("continued", {"threadId": told[0], "allThreadsContinued": which == "all"})

    def _on_stopped(self, stop: dict[str, Any]) -> None:
        reason = stop.get("reason", "")
        if reason.startswith("exited"):
            self._on_exit(stop)
            return
        non_stop = self.lifecycle.threads.non_stop
        thread_id = int(stop["thread-id"]) if str(stop.get("thread-id", "")).isdigit() else 1
        if non_stop:
            listed = stop.get("stopped-threads")
            stopped = {int(t) for t in listed if str(t).isdigit()} if isinstance(listed, list) else set()
            self.lifecycle.threads.mark_stopped(stopped | {thread_id})
        if self.connect_stop_pending and (not reason or (non_stop and stop.get("signal-name") == "0")):
            self.connect_stop_pending = False          # non-stop reports it as a stop by signal 0
            return
        if not self.lifecycle.has_debuggee:
            return
        self.execution.forget({thread_id} if non_stop else None)
        self.stop.record = self.stop.records[thread_id] = stop
        if not self.lifecycle.is_configured:
            return
        self.lifecycle.move(State.STOPPED)
        pause_requested = self.execution.take_pause(thread_id)
        if non_stop and reason == "signal-received" and stop.get("signal-name") == "0":
            pause_requested = True                     # a thread stopped by `vCont;t`: only a pause does that
        event: dict[str, Any] = {"threadId": thread_id, "allThreadsStopped": not non_stop}
        number = stop.get("bkptno") or (stop.get(_WATCH_REASONS.get(reason, ""), {}) or {}).get("number")
        if number is not None and number == self.entry_breakpoint:
            self.entry_breakpoint, event["reason"] = None, "entry"
        elif number is not None:
            should_stop, ids = self.breakpoints.on_hit(number, thread_id)
            if (text := self.breakpoints.log_message(number, thread_id)) is not None:
                self.output("console", text)
            if not should_stop and not pause_requested:
                self.execution.resume_after_hit(thread_id)
                return
            event["reason"] = "data breakpoint" if reason in _WATCH_REASONS else "breakpoint"
            if ids:
                event["hitBreakpointIds"] = ids
        elif reason == "signal-received" and not (pause_requested and stop.get("signal-name") in
                                                  ("SIGINT", "SIGTRAP", "0")):
            event.update(reason="exception", text=stop.get("signal-name", "signal"),
                         description=stop.get("signal-meaning", "signal"))
        else:
            event["reason"] = "step" if reason in _STEP_REASONS and not pause_requested else "pause"
        self.send_event("stopped", event)
        if event["reason"] == "exception":
            self.report_python_frames()

    def report_python_frames(self) -> None:
        """A Python interpreter that crashed (a C extension's segfault, os.abort()): the stack shows its C frames;
        where gdb has CPython's extension (Debian's python3.X-dbg), its `py-bt` names the Python frames behind
        them, written to the console beside the exception."""
        if self.has_py_bt is False:
            return
        try:
            text = self.gdb.console("py-bt", 30.0)
        except GdbError:                              # "Undefined command": not an interpreter with its extension
            self.has_py_bt = False
            return
        self.has_py_bt = True
        if "Traceback" in text:
            self.output("console", f"Python frames (gdb's py-bt):\n{text}")

    def _on_exit(self, stop: dict[str, Any]) -> None:
        """Exit codes come from gdb in octal; a signal death is 128+signo, as km's own exit status."""
        if "exit-code" in stop:
            code = int(stop["exit-code"], 8)
        elif stop.get("reason") == "exited-signalled":
            code = 128 + _signal_number(stop.get("signal-name", ""))
        else:
            code = 0
        self.exited(code)


def _signal_number(name: str) -> int:
    try:
        return int(signal.Signals[name])
    except KeyError:
        return 0


def core_stop(gdb: Gdb) -> dict[str, Any]:
    """A core's stop as a `*stopped` record would give it: the thread and the signal that killed the payload."""
    try:
        number = int(gdb.command('-data-evaluate-expression "$_siginfo.si_signo"')["value"])
        name = signal.Signals(number).name
    except (GdbError, ValueError):
        number, name = 0, "signal"
    meaning = signal.strsignal(number) if number else "killed by a signal"
    return {"reason": "signal-received", "signal-name": name, "signal-meaning": meaning,
            "thread-id": str(current_thread(gdb))}


def current_thread(gdb: Gdb) -> int:
    try:
        return int(gdb.command("-thread-info").get("current-thread-id", 1))
    except (GdbError, ValueError):
        return 1
