"""Identity, limits, TLS (arch_prctl), randomness and time syscalls compared with native execution; exit and
exit_group statuses; km named in uname's version."""
from __future__ import annotations

import os

import pytest

from harness.km import run_km

from .test_run import differential


@pytest.mark.parametrize("toolchain", ["musl", "glibc", "glibc-pie"])
def test_process_and_time_syscalls_match_native(payload, toolchain):
    native, km = differential(payload("sys_proc.c", toolchain), drop="~")
    text = km.stdout.decode()
    assert f"getppid {os.getpid()}\n" in text           # km's parent is the test, as the native run's is
    assert "~version km " in text
    assert "prctl get name 0 [worker-name-lon]\n" in text


@pytest.mark.parametrize("call", ["exit", "exit_group"])
@pytest.mark.parametrize("status", [0, 9, 255])
def test_exit_and_exit_group_status(payload, call, status):
    result = run_km(payload("sys_proc.c", "musl"), call, str(status))
    assert result.returncode == status, result.stderr
    said = {"exit": "exiting with", "exit_group": "exit_group with"}[call]
    assert result.stdout == f"{said} {status}\n".encode()
    assert result.stderr == b""
