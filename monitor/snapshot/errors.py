"""SnapshotError: why a snapshot cannot be taken or resumed, as one line naming what is at fault."""
from __future__ import annotations

from ..errors import MonitorError


class SnapshotError(MonitorError):
    """`subject` is the snapshot file (or "snapshot" before one is named); `problem` says what cannot be done.
    `errno` is what the payload's km_snapshot_take() sees when it asked for it."""

    def __init__(self, subject: str, problem: str, errno: int = 22) -> None:
        super().__init__(subject, problem)
        self.errno = errno
