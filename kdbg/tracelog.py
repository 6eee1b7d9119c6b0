"""km's loggers (`km.<tag>`), free while tracing is off: a plain run never imports `logging`.

`logging` drags in traceback, linecache, tokenize, textwrap and string: about a tenth of km's start-up, for trace
lines that KM_VERBOSE is usually off for. A `Logger` here stands in for `logging.getLogger(name)`: until
monitor/trace.py decides (`switch`), a call goes to the real logger (imported then), so a library use or a test's
caplog sees every record as before; switched off, every call is a no-op (and `isEnabledFor` is False); switched on,
the calls are the real logger's own bound methods. Only the stdlib may be imported here (kdbg and monitor use it).
"""
from __future__ import annotations

from typing import Any

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40         # logging's levels, without importing it
_METHODS = ("debug", "info", "warning", "error", "exception", "critical", "log", "isEnabledFor")
_loggers: list[Logger] = []
_traced: bool | None = None         # None until monitor/trace.py switches: forward to logging


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


def _never(level: int) -> bool:
    return False


class Logger:
    """The methods of logging.Logger that km calls, bound per the switch (see the module's docstring)."""

    def __init__(self, name: str) -> None:
        self.name = name
        _loggers.append(self)
        if _traced is not None:
            self._bind(_traced)

    def _bind(self, traced: bool) -> None:
        if traced:
            import logging
            real = logging.getLogger(self.name)
            for method in _METHODS:
                setattr(self, method, getattr(real, method))
        else:
            for method in _METHODS:
                setattr(self, method, _nothing)
            self.isEnabledFor = _never

    def __getattr__(self, attr: str) -> Any:
        """Reached only before the switch, the first time a method is used: bind to the real logger."""
        if attr not in _METHODS:
            raise AttributeError(attr)
        self._bind(True)
        return getattr(self, attr)


def logger(name: str) -> Logger:
    """The logger named `name` (km.<tag>, KM_VERBOSE's tag), as logging.getLogger would give it."""
    return Logger(name)


def switch(traced: bool) -> None:
    """Trace through logging from now on (KM_VERBOSE set), or make every call of every km logger a no-op."""
    global _traced
    _traced = traced
    for log in _loggers:
        log._bind(traced)
