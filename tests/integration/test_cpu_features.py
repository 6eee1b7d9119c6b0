"""The CPU a payload sees: the same usable vector extensions as natively (CPUID.1:ECX.OSXSAVE, XCR0 through
XGETBV, and so glibc's choice of AVX2/AVX-512 routines), not SSE alone."""
from __future__ import annotations

from harness.km import run_both


def test_payload_sees_the_native_vector_extensions(payload) -> None:
    (km_status, km_out, km_err), native = run_both(payload("cpu_features.c", "glibc"))
    assert (km_status, km_out, km_err) == native
    assert "osxsave 1" in km_out or "osxsave 0" in native[1]
