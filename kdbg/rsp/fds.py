"""Where the stub's own file descriptors go. km's payload shares the host process's descriptor table, so
everything km opens must stay out of the payload's low numbers: the composition root installs a mover
(monitor's high_fd) and the stub passes each descriptor it creates through it, made inside the root's `making`
context (monitor's descriptor gate: the payload's calls that make descriptors wait meanwhile, or one would get
the next number while the stub holds the lowest). The accept and wait selectors are poll-based (PollSelector)
because an epoll selector would hold a descriptor of its own; the session loop's epoll object (new_epoll) holds
one, made and moved like the others."""
from __future__ import annotations

import contextlib
import errno
import os
import select
import selectors
import socket
from typing import Callable, ContextManager

from kdbg.rsp.errors import ListenError

_move: Callable[[int], int] = lambda fd: fd      # noqa: E731 - identity until the composition root says
_making: Callable[[], ContextManager[object]] = contextlib.nullcontext


def set_fd_mover(move: Callable[[int], int], making: Callable[[], ContextManager[object]] | None = None) -> None:
    global _move, _making
    _move = move
    _making = making or contextlib.nullcontext


def making() -> ContextManager[object]:
    """The context to make a descriptor in and pass it through the mover (own_socket; own_new does both)."""
    return _making()


def own_new(make: Callable[[], int]) -> int:
    """make() (a call that makes one descriptor) and the mover's move of it, inside `making`."""
    with _making():
        return _move(make())


def own_socket(sock: socket.socket) -> socket.socket:
    """The same socket, on a descriptor chosen by the mover."""
    moved = _move(sock.fileno())
    if moved == sock.fileno():
        return sock
    sock.detach()
    return socket.socket(fileno=moved)


def listen(host: str, port: int) -> socket.socket:
    """The stub's listening socket, on an owned descriptor; ListenError("gdb port N", "address already in use").

    Cheap to import on purpose: km listens before it builds the VM, so gdb's own start-up overlaps km's."""
    try:
        return own_socket(socket.create_server((host, port)))
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise ListenError(f"gdb port {port}", reason) from None


def new_selector() -> selectors.BaseSelector:
    return selectors.PollSelector()


def new_epoll() -> select.epoll:
    """An epoll object on a descriptor chosen by the mover (the payload's next open() must not find its number
    taken: a payload run under gdb got descriptor 4 for its first file)."""
    with _making():
        first = select.epoll()
        try:
            moved = _move(os.dup(first.fileno()))
        finally:
            first.close()
    return select.epoll.fromfd(moved)
