"""Memory syscalls compared with native execution: brk, mmap (hint, MAP_FIXED, NOREPLACE, a Go-like 64 GiB
PROT_NONE reservation), munmap, mprotect, madvise, mremap; and a write to a read-only page dies of SIGSEGV."""
from __future__ import annotations

import pytest

from harness.km import run_km

from .test_run import differential


@pytest.mark.parametrize("toolchain", ["musl", "glibc", "glibc-pie"])
def test_memory_syscalls_match_native(payload, toolchain):
    native, km = differential(payload("sys_mm.c", toolchain))
    assert km.stdout.endswith(b"done\n")
    assert b"64 GiB PROT_NONE reservation at the hint: 1\n" in km.stdout


def test_write_to_read_only_page_is_sigsegv(payload, tmp_path):
    result = run_km(f"--coredump={tmp_path / 'core'}", payload("sys_mm.c", "musl"), "segv", cwd=tmp_path)
    assert result.stdout == b"writing to a read-only page\n"
    assert result.returncode == 128 + 11, result.stderr
    line = result.stderr.decode().splitlines()[0]
    assert line.startswith("km: ") and "killed by SIGSEGV" in line, result.stderr
    assert b"Traceback" not in result.stderr
