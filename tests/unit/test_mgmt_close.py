"""ManagementServer.close() ends its accepting thread at once (the thread waits in poll with no timeout; close's
shutdown wakes it), instead of the thread waking every second to look. Real socket, real thread."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from monitor.mgmt.server import ManagementServer
from monitor.syscalls.numbers import NUMBERS


def _accepting_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mgmt"]


def _wait_in_poll(thread: threading.Thread, timeout_s: float = 5.0) -> None:
    """Until the thread blocks in poll(2) (its /proc syscall line), so that close() has to wake it."""
    deadline = time.monotonic() + timeout_s
    path = f"/proc/self/task/{thread.native_id}/syscall"
    while time.monotonic() < deadline:
        with open(path) as f:
            if f.read().split()[0] == str(NUMBERS["poll"]):
                return
        time.sleep(0.001)
    raise AssertionError("the accepting thread never waited in poll")


def test_close_ends_the_accepting_thread_at_once(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    before = set(_accepting_threads())
    server = ManagementServer(SimpleNamespace(path="/bin/true"), str(tmp_path / "m.sock"))   # type: ignore[arg-type]
    mine = [t for t in _accepting_threads() if t not in before]
    assert len(mine) == 1
    _wait_in_poll(mine[0])
    server.close()
    mine[0].join(0.5)
    assert not mine[0].is_alive(), "the accepting thread outlived close() by 0.5 s"
    assert not (tmp_path / "m.sock").exists()
