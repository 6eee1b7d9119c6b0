"""Shared fixtures: payload builds, km processes, free ports."""
from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.build import build  # noqa: E402


@pytest.fixture(scope="session")
def payload():
    """payload("hello.c", "musl") -> Path of the built .km (built once per session)."""
    return build


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_INTEGRATION = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration carries the `vm` marker, so `pytest -m 'not vm'` names the fast tier."""
    for item in items:
        if _INTEGRATION in Path(item.path).parents:
            item.add_marker(pytest.mark.vm)
