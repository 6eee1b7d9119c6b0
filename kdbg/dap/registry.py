"""The DAP request table: each handler, a method named `<command>_request` after the spec's command, declares
what it needs from the session and which capabilities it implements; dispatch and the `initialize` answer are
derived from those declarations (docs/HOUSE-STYLE.md: capabilities computed, never a hand-written list).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from .lifecycle import Needs

F = TypeVar("F", bound=Callable[..., Any])
_SUFFIX = "_request"


@dataclass(frozen=True, slots=True)
class Handler:
    command: str                      # the DAP command, e.g. "setBreakpoints"
    needs: Needs
    capabilities: tuple[str, ...]     # the `initialize` capabilities this handler makes true
    owner: str = ""                   # which collaborator of the session holds it (filled in by `table`)


def request(needs: Needs, *capabilities: str) -> Callable[[F], F]:
    """Mark `<command>_request` as the handler of `command`."""
    def mark(function: F) -> F:
        assert function.__name__.endswith(_SUFFIX), function.__name__
        function.dap_handler = Handler(function.__name__[:-len(_SUFFIX)], needs, capabilities)  # type: ignore[attr-defined]
        return function
    return mark


def table(**owners: type) -> dict[str, Handler]:
    """command -> Handler over the classes of the session's collaborators (keyword: the attribute holding it)."""
    found: dict[str, Handler] = {}
    for owner, cls in owners.items():
        for name in dir(cls):
            handler = getattr(getattr(cls, name), "dap_handler", None)
            if isinstance(handler, Handler):
                assert handler.command not in found, f"two handlers for {handler.command}"
                found[handler.command] = Handler(handler.command, handler.needs, handler.capabilities, owner)
    return found


def capabilities(handlers: dict[str, Handler]) -> dict[str, Any]:
    """The `initialize` response's capabilities: exactly those some handler implements."""
    return {name: True for handler in handlers.values() for name in handler.capabilities}
