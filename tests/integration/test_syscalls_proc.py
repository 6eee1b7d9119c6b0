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


@pytest.mark.parametrize("toolchain", ["musl", "glibc", "glibc-pie"])
def test_proc_self_files_describe_the_payload(payload, toolchain):
    """/proc/self/{maps,cmdline,environ,auxv,comm} are the payload's (glibc's pthread_getattr_np reads maps)."""
    native, km = differential(payload("sys_procself.c", toolchain), "a", "b c",
                              env={"PROCSELF_MARKER": "marker value"})
    assert km.stdout.decode().splitlines()[:4] == [
        "pthread_getattr_np 0, stack holds a local: 1",
        "maps read 1, [stack] line holds a local 1, executable text line 1",
        f"cmdline is argv: 1 ({len(str(payload('sys_procself.c', toolchain))) + 1 + 2 + 4} bytes)",
        "environ has the marker: 1"]


@pytest.mark.parametrize("toolchain", ["musl", "glibc"])
def test_a_thread_names_another_through_proc_task_comm(payload, toolchain):
    """pthread_setname_np/getname_np of another thread write and read /proc/self/task/TID/comm (musl O_WRONLY,
    glibc O_RDWR), as natively."""
    native, km = differential(payload("thread_names.c", toolchain))
    assert km.stdout == b"named rc=0 set-by-main\n"
