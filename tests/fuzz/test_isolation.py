"""Isolation (issue 12): the payload cannot reach km's descriptors (1000 and up: dup2 onto them, fcntl, close,
/proc/self/fd and fdinfo, fd passing, close_range over them), km's memory through km's own /proc view, or write
into the vDSO/vvar pages."""
from __future__ import annotations

from harness.km import run_km
from tests.integration.test_run import differential


def test_kms_descriptors_and_the_vdso_are_out_of_reach(payload):
    native, km = differential(payload("fuzz_isolation.c", "musl"), "fds")
    lines = [line.split() for line in km.stdout.decode().splitlines()]
    assert "/proc/self/fd entries >= 1000 0".split() in lines and lines[-1] == "alive after close_range".split()


def test_proc_self_mem_is_not_kms_memory(payload):
    """It was: open("/proc/self/mem", O_RDWR) opened km's own memory (the host answers the payload's /proc paths
    for km's process), which the payload could read and write."""
    km = run_km(payload("fuzz_isolation.c", "musl"), "mem")
    lines = km.stdout.decode().splitlines()
    assert km.returncode == 0, km.stderr
    opened = [text for text in km.stdout.decode().splitlines() if text.startswith(("open", "openat"))]
    assert opened and all(text.endswith("Permission denied") for text in opened), km.stdout.decode()
    assert lines[-1].split()[-2:] == ["not", "read"], lines
