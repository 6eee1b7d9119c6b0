"""host_fds.DescriptorGate: km's making of a descriptor holds the payload's descriptor calls off, waits for those
inside, but no longer than GATE_WAIT_S for one blocked in its call (a FIFO's open), and km's makers never wait for
each other. Each case runs on threads joined with a deadline, so a gate that deadlocks fails instead of hanging."""
from __future__ import annotations

import errno
import fcntl
import os
import threading
import time

from monitor.host_fds import GATE_WAIT_S, DescriptorGate, lowest_number


def _run(target, timeout_s: float = 5.0) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return thread


def test_km_holds_new_payload_calls_off_until_done() -> None:
    """A payload call arriving once km waits to make a descriptor passes only after km is done (km's section is
    kept open a while, so that a gate letting it through would interleave)."""
    gate, order = DescriptorGate(), []
    gate.enter()                            # a payload call inside: km waits for it

    def km() -> None:
        with gate.km():
            order.append("km")
            time.sleep(0.02)
            order.append("km done")

    maker = threading.Thread(target=km, daemon=True)
    maker.start()
    deadline = time.monotonic() + 5
    while gate._km == 0 and time.monotonic() < deadline:     # (registered: it waits, or is inside)
        time.sleep(0.001)

    def payload() -> None:
        gate.enter()
        order.append("payload")
        gate.leave()
    arriving = threading.Thread(target=payload, daemon=True)
    arriving.start()
    gate.leave()
    maker.join(5)
    arriving.join(5)
    assert order == ["km", "km done", "payload"]


def test_a_payload_call_blocked_inside_holds_km_up_no_longer_than_the_wait() -> None:
    gate = DescriptorGate()
    gate.enter()                            # never leaves: blocked in its call
    took: list[float] = []

    def km() -> None:
        start = time.monotonic()
        with gate.km():
            took.append(time.monotonic() - start)
    assert not _run(km).is_alive()
    assert took and GATE_WAIT_S * 0.9 <= took[0] < 2.0


def test_kms_makers_do_not_wait_for_each_other() -> None:
    gate, second = DescriptorGate(), []
    with gate.km():
        def km() -> None:
            start = time.monotonic()
            with gate.km():
                second.append(time.monotonic() - start)
        assert not _run(km).is_alive()
    assert second and second[0] < GATE_WAIT_S


def test_lowest_number_moves_a_descriptor_down_to_a_free_lower_number_keeping_its_flags() -> None:
    """What accept(2) made while km held the lowest number for a moment goes down to it once free."""
    low, high = os.pipe()
    os.close(low)                           # `low` is free now, below `high`
    try:
        for cloexec in (False, True):
            if cloexec:
                os.set_inheritable(high, False)
            moved = lowest_number(high, cloexec)
            assert moved == low and os.get_inheritable(moved) is not cloexec
            assert lowest_number(moved, cloexec) == moved       # nothing lower free: kept
            high = fcntl.fcntl(moved, fcntl.F_DUPFD, moved + 1)
            os.close(moved)
    finally:
        os.close(high)


def test_a_descriptor_call_passes_the_gate_once(monkeypatch) -> None:
    """dup (gated by its table entry) and fcntl's F_DUPFD (gated inside) each enter the gate once: a second enter by
    the same call would wait behind a km maker that came between the two, which waits for the first (both stalled
    GATE_WAIT_S)."""
    from monitor import host_fds
    from monitor.syscalls import dispatch, fs
    from monitor.syscalls.numbers import NUMBERS

    GATE = host_fds.GATE                    # the gate itself (the table's wrappers hold its methods)
    inside_at_enter: list[int] = []

    class Watched:
        def enter(self) -> None:
            inside_at_enter.append(GATE._payload)
            GATE.enter()

        def leave(self) -> None:
            GATE.leave()
    monkeypatch.setattr(host_fds, "GATE", Watched())       # what a command passing it by itself looks up
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        for name, args in (("dup", (fd,)), ("fcntl", (fd, fs.F_DUPFD, 0))):
            handler, _ = dispatch._handlers[NUMBERS[name]]
            copy = handler(None, *args)
            assert copy >= 0, name
            os.close(copy)
    finally:
        os.close(fd)
    assert GATE._payload == 0
    assert inside_at_enter and all(n == 0 for n in inside_at_enter), inside_at_enter


def test_the_commands_that_make_a_descriptor_make_it_inside_the_gate(monkeypatch) -> None:
    """ioctl's TIOCGPTPEER (glibc's openpty) and getsockopt's SO_PEERPIDFD make a descriptor, numbered the lowest
    free one like any other: the host call is made with the gate passed (the payload's calls counted inside)."""
    from types import SimpleNamespace

    from monitor.errors import GuestFault
    from monitor.host_fds import GATE
    from monitor.syscalls import dispatch, fs, net
    from monitor.syscalls.numbers import NUMBERS

    inside: dict[str, int] = {}

    def spy(module, name: str, nr: int, making: int) -> None:
        real = module.host_syscall

        def host_syscall(called: int, *args: int) -> int:
            if called == nr and making in args:
                inside[name] = GATE._payload
                return -errno.EBADF         # (no host call: the fd is no real one)
            return real(called, *args)
        monkeypatch.setattr(module, "host_syscall", host_syscall)

    def unreadable(gva: int, size: int) -> bytes:
        raise GuestFault(gva, size)

    ctx = SimpleNamespace(mem=SimpleNamespace(read=unreadable))
    spy(fs, "ioctl", NUMBERS["ioctl"], fs.TIOCGPTPEER)
    spy(net, "getsockopt", NUMBERS["getsockopt"], net.SO_PEERPIDFD)
    ioctl, _ = dispatch._handlers[NUMBERS["ioctl"]]
    getsockopt, _ = dispatch._handlers[NUMBERS["getsockopt"]]
    ioctl(ctx, 5, fs.TIOCGPTPEER, os.O_RDWR)
    getsockopt(ctx, 5, net.SOL_SOCKET, net.SO_PEERPIDFD, 0, 0x1000)
    assert inside == {"ioctl": 1, "getsockopt": 1}
    assert GATE._payload == 0


def test_a_followed_fork_childs_link_makes_its_pipe_inside_the_gate(monkeypatch) -> None:
    """LiveTarget.on_fork (gdb follows the child): the LinkedTarget's event pipe is made on the forking vCPU
    thread while the payload's other threads run, so km makes it as km's (GATE.km), as fork_link's socketpair."""
    import socket
    from types import SimpleNamespace

    from monitor.debug.live_target import LiveTarget
    from monitor.host_fds import GATE

    real, km_inside = os.pipe2, []

    def pipe2(flags: int) -> tuple[int, int]:
        km_inside.append(GATE._km)
        return real(flags)
    ours, theirs = socket.socketpair()
    host = SimpleNamespace(_children={}, _stop_on=lambda *args: None)
    monkeypatch.setattr(os, "pipe2", pipe2)
    try:
        LiveTarget.on_fork(host, SimpleNamespace(tid=1), 4242, ours, False)    # type: ignore[arg-type]
    finally:
        monkeypatch.setattr(os, "pipe2", real)
        theirs.close()                      # the link's reader ends
    for reader in [t for t in threading.enumerate() if t.name == "gdb-link-4242"]:
        reader.join(5)                      # (it posts the link's end on the pipe)
    host._children[4242]._events.close()
    assert km_inside == [1]
