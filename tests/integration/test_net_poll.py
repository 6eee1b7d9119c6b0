"""Readiness syscalls under km compared with native runs: poll/epoll ping-pong over a socketpair, select and
pselect on a pipe, every wait call's timeout, eventfd, timerfd, km's descriptors reported as closed, the sigmask
of ppoll/pselect/epoll_pwait, a nonblocking connect completed through poll."""
from __future__ import annotations

import pytest

from .test_run import differential


@pytest.mark.parametrize("toolchain", ["musl", "glibc"])
def test_readiness_matches_native(payload, toolchain):
    native, km = differential(payload("net_poll.c", toolchain))
    text = km.stdout.decode()
    assert text.count("epoll 1 events 0x1 data 0x1122334455667788 got pong\n") == 3
    assert "sizeof(struct epoll_event) 12\n" in text
    assert "value 7\n" in text and "expirations 1\n" in text
    assert "poll fd 1000: 1\nrevents 0x20 0\n" in text and "epoll_ctl add fd 1000: -1 errno 9\n" in text
    assert text.count("waited >= ") == text.count("waited >= 25ms: 1\n") + text.count("waited >= 15ms: 1\n") == 5
    assert text.count("with an empty mask: -1 errno 4\n") == 3 and "handled 3, blocked again 1\n" in text
    assert "unblocked: handled 4\n" in text
    assert "SO_ERROR 0\n" in text and "blocking connect to a closed port: -1 errno 111\n" in text
    assert text.endswith("done\n")
