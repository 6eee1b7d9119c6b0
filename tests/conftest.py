"""Shared fixtures: payload builds, km processes, free ports."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.build import build  # noqa: E402
from harness.gdb import free_port  # noqa: E402


@pytest.fixture(scope="session")
def payload():
    """payload("hello.c", "musl") -> Path of the built .km (built once per session)."""
    return build


@pytest.fixture(name="free_port")
def free_port_fixture() -> int:
    return free_port()


_INTEGRATION = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration carries the `vm` marker, so `pytest -m 'not vm'` names the fast tier."""
    for item in items:
        if _INTEGRATION in Path(item.path).parents:
            item.add_marker(pytest.mark.vm)
