"""RspError, the stub's one error type: a packet handler's failure (with the errno gdb sees) or a server setup
failure (a one-line message for `km: ...`)."""
from __future__ import annotations

EINVAL = 22
EFAULT = 14


class RspError(Exception):
    """Raised by handlers and turned into an `Enn` reply by the dispatcher (docs/HOUSE-STYLE.md 2.6)."""

    def __init__(self, message: str, errno: int = EINVAL) -> None:
        super().__init__(message)
        self.errno = errno


class ListenError(RspError):
    """The stub cannot listen: `subject` (gdb port N) and `problem` kept apart for km's one-line message."""

    def __init__(self, subject: str, problem: str) -> None:
        super().__init__(f"{subject}: {problem}")
        self.subject, self.problem = subject, problem
