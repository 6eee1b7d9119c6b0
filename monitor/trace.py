"""KM_VERBOSE: timestamped trace lines on stderr, selected by a regex of tags (logger names without 'km.').

`KM_VERBOSE=1` (or empty regex) traces everything; `KM_VERBOSE='syscall|mem'` only the km.syscall and km.mem
loggers; `KM_VERBOSE=strace` every syscall with its arguments and result, as strace prints them. Each line: time since start, tag, file:line, payload name, message.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time

_WALL_START = time.time()


class _TagFilter(logging.Filter):
    def __init__(self, pattern: re.Pattern[str] | None) -> None:
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        tag = record.name[3:] if record.name.startswith("km.") else record.name
        return self.pattern is None or bool(self.pattern.search(tag))


class _Formatter(logging.Formatter):
    def __init__(self, payload: str) -> None:
        super().__init__()
        self.payload = payload

    def format(self, record: logging.LogRecord) -> str:
        tag = record.name[3:] if record.name.startswith("km.") else record.name
        text = f"{record.created - _WALL_START:11.6f} {tag:<8} {record.filename}:{record.lineno} " \
               f"{self.payload}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _excepthook(exc_type, exc, tb) -> None:
    """Last line of defence: an exception nobody caught is km's bug; the user gets one line, the trace the rest."""
    logging.getLogger("km").error("uncaught exception", exc_info=(exc_type, exc, tb))
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
    logging.getLogger("km").error("thread %s failed", name, exc_info=args.exc_value)


def rename_payload(payload_name: str) -> None:
    """The payload exec'ed another program in this km: trace lines name that one from now on."""
    for handler in logging.getLogger("km").handlers:
        if isinstance(handler.formatter, _Formatter):
            handler.formatter.payload = os.path.basename(payload_name)


def setup_trace(payload_name: str, spec: str | None = None) -> bool:
    """Configure the `km` logger from KM_VERBOSE (or `spec`); returns whether tracing is on. Also routes uncaught
    exceptions to the trace, so that no Python traceback reaches the user's stderr (docs/HOUSE-STYLE.md 2.6)."""
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook
    spec = os.environ.get("KM_VERBOSE") if spec is None else spec
    root = logging.getLogger("km")
    root.handlers.clear()
    root.propagate = False
    if spec is None or spec == "0":
        root.setLevel(logging.CRITICAL + 1)
        return False
    try:
        pattern = None if spec in ("", "1", "all") else re.compile(spec)
    except re.error:
        pattern = re.compile(re.escape(spec))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(os.path.basename(payload_name)))
    handler.addFilter(_TagFilter(pattern))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    from .syscalls import dispatch
    dispatch.trace_every_call(pattern is None or bool(pattern.search("strace")))
    return True
