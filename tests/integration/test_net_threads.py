"""Blocking network calls block only their own thread: pthread server and client, a wait woken from another
thread, blocked calls cut by a guest signal (compared with native), and a Go net/http server."""
from __future__ import annotations

import pytest

from .test_run import differential


@pytest.mark.parametrize("toolchain", ["musl", "glibc"])
def test_threads_blocking_in_network_calls_match_native(payload, toolchain):
    native, km = differential(payload("net_threads.c", toolchain))
    text = km.stdout.decode()
    assert "client got \"reply to 'request'\"\n" in text
    assert "epoll_wait woke: 1, eventfd value 42\n" in text
    assert "poll cut by a signal: -1 errno 4\n" in text                # poll is never restarted (signal(7))
    assert "recv after the signal: 4 errno 0 data 'late'\n" in text     # SA_RESTART restarts recv
    assert "recv after the signal: -1 errno 4 data ''\n" in text        # without it: EINTR
    assert text.endswith("done\n")
