"""host_fds.aside: km's passing descriptors numbered in a table of the thread's own, out of the payload's way."""
from __future__ import annotations

import errno
import os

import pytest

from monitor.host_fds import aside


def test_aside_numbers_in_its_own_table_and_keeps_the_standard_streams():
    """What fn opens never takes the caller's lowest free number; stdin, stdout and stderr are still there (km's
    messages during a late import reach stderr), the caller's other descriptors are not; fn's result and its
    exception come back to the caller."""
    held = os.open(os.devnull, os.O_RDONLY)
    lowest = os.open(os.devnull, os.O_RDONLY)
    os.close(lowest)
    try:
        assert aside(os.open, os.devnull, os.O_RDONLY) == 3            # the aside table's own lowest (0-2 kept)
        assert aside(lambda: [os.fstat(fd).st_mode for fd in (0, 1, 2)]) == [os.fstat(fd).st_mode for fd in (0, 1, 2)]
        with pytest.raises(OSError) as gone:
            aside(os.fstat, held)
        assert gone.value.errno == errno.EBADF
        probe = os.open(os.devnull, os.O_RDONLY)
        os.close(probe)
        assert probe == lowest
    finally:
        os.close(held)


def test_late_import_goes_aside_only_for_a_module_not_imported_yet(monkeypatch):
    """A signalfd read asks for its siginfo layout each time: once imported, no thread is made for it."""
    import json
    import sys
    import monitor.host_fds as host_fds
    calls: list[str] = []
    monkeypatch.setattr(host_fds, "aside", lambda fn, name: calls.append(name) or fn(name))
    assert host_fds.late_import("json") is json
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    assert host_fds.late_import("colorsys").__name__ == "colorsys"
    assert calls == ["colorsys"]


def test_aside_runs_on_the_callers_thread_when_no_thread_can_be_started(monkeypatch):
    """At the payload's thread limit (RLIMIT_NPROC, threads-max) a late import must still happen: a payload's first
    poll() then failed km with 'can't start new thread'."""
    import threading

    def refuse(self) -> None:
        raise RuntimeError("can't start new thread")
    monkeypatch.setattr(threading.Thread, "start", refuse)
    assert aside(lambda a, b: (a + b, threading.current_thread()), 2, 3) == (5, threading.current_thread())
