"""Fixtures shared by the integration tests: `debug` (harness/debuggee.py: a payload behind km -g or gdbserver
with a gdb, once per backend); for the DAP tests `dap`, a factory of kdbg-dap clients (each closed, its km killed,
at teardown), and `program`, the dap_basic.c payload most of them debug (a module needing another one overrides
it)."""
from __future__ import annotations

import pytest

from harness.dap import dap_fixture
from harness.debuggee import debug  # noqa: F401 - a fixture, registered here for every module


@pytest.fixture
def dap(tmp_path, request):
    yield from dap_fixture(tmp_path, request)


@pytest.fixture
def program(payload) -> str:
    return str(payload("dap_basic.c", "musl"))
