"""Where the stub's own file descriptors go. km's payload shares the host process's descriptor table, so
everything km opens must stay out of the payload's low numbers: the composition root installs a mover
(monitor's high_fd) and the stub passes each descriptor it creates through it. Selectors are poll-based
(PollSelector) because an epoll selector would hold a descriptor of its own."""
from __future__ import annotations

import selectors
import socket
from typing import Callable

_move: Callable[[int], int] = lambda fd: fd      # noqa: E731 - identity until the composition root says


def set_fd_mover(move: Callable[[int], int]) -> None:
    global _move
    _move = move


def own_fd(fd: int) -> int:
    return _move(fd)


def own_socket(sock: socket.socket) -> socket.socket:
    """The same socket, on a descriptor chosen by the mover."""
    moved = _move(sock.fileno())
    if moved == sock.fileno():
        return sock
    sock.detach()
    return socket.socket(fileno=moved)


def new_selector() -> selectors.BaseSelector:
    return selectors.PollSelector()
