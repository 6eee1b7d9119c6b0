"""The DAP bridge's error family: every failure a request can meet, turned into a failed response in one place.

Follows debugpy's split (docs/HOUSE-STYLE.md 2.6): `InvalidArgument` for arguments that are wrong ("invalid <field>:
<why>"), `CantHandle` for valid requests that cannot be served now (gdb missing, km exited, target running).
"""
from __future__ import annotations


class DapError(Exception):
    """Base of the bridge's errors; str() is the one-line message of the failed response."""

    show_user = True        # the response's error.showUser: VS Code shows the message as a notification


class InvalidArgument(DapError):
    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"invalid {field}: {why}")
        self.field = field


class OutdatedReference(InvalidArgument):
    """A frame or variables reference of an earlier stop. The client asked before it saw the new stop (VS Code's
    Variables view races a step's stopped event) and asks again for the new one: the request fails, unshown."""

    show_user = False


class CantHandle(DapError):
    """A valid request that cannot be carried out; the message names the reason."""


class ThreadRunning(CantHandle):
    """A request about a stopped thread that reached the bridge after that thread was resumed: VS Code's views load
    a stack or a frame's scopes lazily and race the resume the user just asked for, so the request fails unshown."""

    show_user = False


class GdbError(CantHandle):
    """gdb answered `^error` (its own message is kept) or did not answer before the deadline."""
