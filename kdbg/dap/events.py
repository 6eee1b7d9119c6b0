"""gdb's async records turned into DAP events: stopped (with the DAP reason), continued, thread, output, exited.

A mixin of `Session`. gdb's `*stopped` reasons
(https://sourceware.org/gdb/current/onlinedocs/gdb.html/GDB_002fMI-Async-Records.html) map to DAP's:
breakpoint-hit -> breakpoint (or entry; or nothing for a log point or an unmet hit condition, which resume at
once), watchpoint triggers -> data breakpoint, signal-received -> exception (pause when the user asked for one),
stepping ends -> step. Exit codes arrive in octal.
"""
from __future__ import annotations

import signal
from typing import Any

from .debuggee import Debuggee
from .errors import GdbError
from .gdb_backend import Gdb

EXIT_DRAIN_S = 5.0
_WATCH_REASONS = {"watchpoint-trigger": "wpt", "read-watchpoint-trigger": "hw-rwpt",
                  "access-watchpoint-trigger": "hw-awpt"}
_STEP_REASONS = ("end-stepping-range", "function-finished", "location-reached")


class StopEvents:
    """Needs from Session: gdb, debuggee, vars, breakpoints, mode, the state flags, send_event, resume, _finish."""

    def _on_gdb_record(self, item: tuple[Gdb | Debuggee, dict[str, Any]]) -> None:
        source, record = item
        if source is not self.gdb and source is not self.debuggee:
            return                        # from the gdb or km of before a restart
        kind, message, payload = record["type"], record.get("message"), record.get("payload")
        if kind == "notify" and message == "stopped":
            self._on_stopped(payload or {})
        elif kind == "notify" and message == "running":
            self.is_running = True
            if self.is_configured and not self._expect_running:
                self.send_event("continued", {"threadId": 1, "allThreadsContinued": True})
            self._expect_running = False
        elif kind == "notify" and message in ("thread-created", "thread-exited") and self.is_configured:
            self.send_event("thread", {"reason": "started" if message == "thread-created" else "exited",
                                       "threadId": int(payload["id"])})
        elif kind == "notify" and message == "breakpoint-modified" and self.breakpoints is not None:
            if (changed := self.breakpoints.modified((payload or {}).get("bkpt", {}))) is not None:
                self.send_event("breakpoint", {"reason": "changed", "breakpoint": changed})
        elif kind == "target" and payload:
            self._output("stdout", payload)
        elif kind == "log" and payload and self.is_configured:
            self._output("console", payload)
        elif kind == "debuggee-exited" and self.mode == "launch":
            self._finish(payload)
        elif kind == "gdb-exited" and self.gdb is not None:
            self._finish(None)

    def _on_stopped(self, stop: dict[str, Any]) -> None:
        reason = stop.get("reason", "")
        if reason.startswith("exited"):
            self._on_exit(stop)
            return
        if self._connect_stop_pending and not reason:
            # gdb's report of where `target remote` found the debuggee. It is queued before the configuration
            # (or a restart) resumes the debuggee but handled after, so it must not mark it stopped.
            self._connect_stop_pending = False
            return
        self.is_running, self.last_stop, self.frames = False, stop, {}
        self.vars.reset()
        if not self.is_configured:
            return
        thread_id = int(stop["thread-id"]) if str(stop.get("thread-id", "")).isdigit() else 1
        event: dict[str, Any] = {"threadId": thread_id, "allThreadsStopped": True}
        number = stop.get("bkptno") or (stop.get(_WATCH_REASONS.get(reason, ""), {}) or {}).get("number")
        if number is not None and number == self._entry_bp:
            self._entry_bp, event["reason"] = None, "entry"
        elif number is not None:
            should_stop, ids = self.breakpoints.on_hit(number, thread_id)
            if (text := self.breakpoints.log_message(number, thread_id)) is not None:
                self._output("console", text)
            if not should_stop and not self._pause_requested:
                self.resume("-exec-continue")
                return
            event["reason"] = "data breakpoint" if reason in _WATCH_REASONS else "breakpoint"
            if ids:
                event["hitBreakpointIds"] = ids
        elif reason == "signal-received" and not (self._pause_requested and stop.get("signal-name") in
                                                  ("SIGINT", "SIGTRAP", "0")):
            event.update(reason="exception", text=stop.get("signal-name", "signal"),
                         description=stop.get("signal-meaning", "signal"))
        else:
            event["reason"] = "step" if reason in _STEP_REASONS and not self._pause_requested else "pause"
        self._pause_requested = False
        self.send_event("stopped", event)

    def _on_exit(self, stop: dict[str, Any]) -> None:
        """Exit codes come from gdb in octal; a signal death is 128+signo, as km's own exit status."""
        if "exit-code" in stop:
            code = int(stop["exit-code"], 8)
        elif stop.get("reason") == "exited-signalled":
            code = 128 + _signal_number(stop.get("signal-name", ""))
        else:
            code = 0
        if self.debuggee is not None:
            self.debuggee.wait(EXIT_DRAIN_S)           # deliver the payload's last output before `exited`
        self._finish(code)



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
