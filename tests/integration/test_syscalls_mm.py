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


@pytest.mark.parametrize("toolchain", ["musl", "glibc"])
def test_file_mappings_match_native(payload, toolchain, tmp_path):
    """Private copies, MAP_SHARED writes reaching the file (seen by read and on the host), access-mode errors."""
    from .test_run import run_pair
    native_dir, km_dir = tmp_path / "native", tmp_path / "km"
    native_dir.mkdir()
    km_dir.mkdir()
    native, km = run_pair(payload("sys_mmfile.c", toolchain), cwds=(native_dir, km_dir))
    assert (km.stdout, km.stderr, km.returncode) == (native.stdout, native.stderr, native.returncode)
    assert b"read sees the shared write: [THROUGH-THE-MAP]" in km.stdout
    on_host = (km_dir / "shared.dat").read_bytes()
    assert on_host == (native_dir / "shared.dat").read_bytes()
    assert on_host[4096 + 10:4096 + 25] == b"THROUGH-THE-MAP" and on_host[0:1] == b"a"
