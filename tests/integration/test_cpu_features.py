"""The CPU a payload sees: the same usable vector extensions as natively (CPUID.1:ECX.OSXSAVE, XCR0 through
XGETBV, and so glibc's choice of AVX2/AVX-512 routines), not SSE alone; and the same user-mode ISA extensions
(LZCNT/ABM, SSE4A, RDTSCP: monitor/kvm/cpuid.py), so glibc computes the same ISA level and picks the same
glibc-hwcaps subdirectories and string routines as natively."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.km import run_both, run_km

LDSO = Path("/lib64/ld-linux-x86-64.so.2")


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_payload_sees_the_native_cpu_features(payload, libc: str) -> None:
    (km_status, km_out, km_err), native = run_both(payload("cpu_features.c", libc))
    assert (km_status, km_out, km_err) == native
    assert "osxsave 1" in km_out or "osxsave 0" in native[1]
    assert "lzcnt(0x10) 27" in km_out or "cpuid abm 0" in native[1]      # the instruction ran, when CPUID says so


def glibc_view(diagnostics: str) -> dict[str, str]:
    """What ld.so --list-diagnostics says glibc made of the CPU: its ISA level (isa_1), the glibc-hwcaps
    subdirectories it searches, and the usable ("active") feature words of the leaves km's allow-list touches
    (cpu_features index 1 = leaf 7.0, 2 = leaf 0x80000001)."""
    keys = ("x86.cpu_features.isa_1", "dl_hwcaps_subdirs_active", "x86.cpu_features.features[0x2].active[0x2]",
            "x86.cpu_features.features[0x2].active[0x3]")
    lines = dict(line.split("=", 1) for line in diagnostics.splitlines() if "=" in line)
    return {key: lines.get(key, "") for key in keys}


def test_glibc_picks_the_native_isa_level() -> None:
    native = subprocess.run([str(LDSO), "--list-diagnostics"], capture_output=True, text=True, timeout=30)
    if native.returncode != 0 or "isa_1" not in native.stdout:
        pytest.skip(f"{LDSO} has no --list-diagnostics with isa_1 (glibc before 2.33)")
    km = run_km(LDSO, "--list-diagnostics", timeout=60)
    assert km.returncode == 0, km.stderr.decode()
    assert glibc_view(km.stdout.decode()) == glibc_view(native.stdout)
