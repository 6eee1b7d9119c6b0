"""KM_VERBOSE: timestamped trace lines on stderr, selected by a regex of tags (logger names without 'km.').

`KM_VERBOSE=1` (or empty regex) traces everything; `KM_VERBOSE='syscall|mem'` only the km.syscall and km.mem
loggers; `KM_VERBOSE=strace` every syscall with its arguments and result, as strace prints them. Each line: time since start, tag, file:line, payload name, message.
km's loggers are kdbg.tracelog's: with tracing off they are no-ops and `logging` is never imported.
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
from typing import TYPE_CHECKING

from kdbg.tracelog import logger, switch

if TYPE_CHECKING:
    import logging

_WALL_START = time.time()
_log = logger("km")


class _TagFilter:
    """A logging filter (any object with filter() is one): the record's tag matches KM_VERBOSE's regex."""

    def __init__(self, pattern: re.Pattern[str] | None) -> None:
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        tag = record.name[3:] if record.name.startswith("km.") else record.name
        return self.pattern is None or bool(self.pattern.search(tag))


class _Formatter:
    """A logging formatter (any object with format() is one): one trace line per record."""

    def __init__(self, payload: str) -> None:
        self.payload = payload

    def format(self, record: logging.LogRecord) -> str:
        tag = record.name[3:] if record.name.startswith("km.") else record.name
        text = f"{record.created - _WALL_START:11.6f} {tag:<8} {record.filename}:{record.lineno} " \
               f"{self.payload}: {record.getMessage()}"
        if record.exc_info:
            import traceback
            text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        return text


def _excepthook(exc_type, exc, tb) -> None:
    """Last line of defence: an exception nobody caught is km's bug; the user gets one line, the trace the rest."""
    _log.error("uncaught exception", exc_info=(exc_type, exc, tb))
    if issubclass(exc_type, KeyboardInterrupt):
        print("km: interrupted", file=sys.stderr)
        return
    detail = str(exc).splitlines()[0] if str(exc) else ""
    print(f"km: internal error: {exc_type.__name__}{': ' + detail if detail else ''}", file=sys.stderr)


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    """A helper thread's failure (not a vCPU's: those report through Process.fail) goes to the trace only."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    _log.error("thread %s failed", name, exc_info=args.exc_value)


def rename_payload(payload_name: str) -> None:
    """The payload exec'ed another program in this km: trace lines name that one from now on."""
    if "logging" not in sys.modules:
        return
    import logging
    for handler in logging.getLogger("km").handlers:
        if isinstance(handler.formatter, _Formatter):
            handler.formatter.payload = os.path.basename(payload_name)


def setup_trace(payload_name: str, spec: str | None = None) -> bool:
    """Configure the `km` logger from KM_VERBOSE (or `spec`); returns whether tracing is on. Also routes uncaught
    exceptions to the trace, so that no Python traceback reaches the user's stderr (docs/HOUSE-STYLE.md 2.6)."""
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook
    spec = os.environ.get("KM_VERBOSE") if spec is None else spec
    if spec is None or spec == "0":
        if "logging" in sys.modules:        # else no km logger will ever reach logging (they are switched off)
            _configure(payload_name, None)
        switch(False)
        return False
    _configure(payload_name, spec)
    switch(True)
    from .syscalls import dispatch
    dispatch.trace_every_call(spec in ("", "1", "all") or bool(_pattern(spec).search("strace")))
    return True


def _pattern(spec: str) -> re.Pattern[str]:
    try:
        return re.compile(spec)
    except re.error:
        return re.compile(re.escape(spec))


def _configure(payload_name: str, spec: str | None) -> None:
    """The `km` logger: trace lines on stderr when `spec` is set; otherwise silent, so that a logger used without
    this module's switch (the DAP bridge's, a library's) never reaches logging's last-resort handler."""
    import logging
    root = logging.getLogger("km")
    root.handlers.clear()
    root.propagate = False
    if spec is None:
        root.setLevel(logging.CRITICAL + 1)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(os.path.basename(payload_name)))    # type: ignore[arg-type]
    handler.addFilter(_TagFilter(None if spec in ("", "1", "all") else _pattern(spec)))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)


def flush() -> None:
    """At km's exit: flush the trace's handler (nothing to do when tracing never imported logging)."""
    if "logging" in sys.modules:
        import logging
        logging.shutdown()
