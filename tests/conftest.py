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
