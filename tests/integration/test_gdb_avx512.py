"""AVX-512 registers (zmm0-31, k0-7) through km's stub and in its kmcore, where the CPU has them.

The expectation is the program's own: it loads known patterns into zmm1, zmm17 and k1 before `checkpoint` and
prints zmm2 and k2 after it, so what gdb shows and writes is checked against what the CPU held. gdbserver is the
reference on Intel's XSAVE layout only: gdb 13 reads every xstate with Intel's offsets, and on AMD Zen 4 (k0-7 at
832, not 1088) it shows zeros where the program has values; km reads the CPU's own layout from CPUID.
"""
from __future__ import annotations

import pytest

from harness.debuggee import run_to_exit

from kdbg.arch import x86_64

from .test_core import crash_in_km

SRC = "gdb_avx512.c"
ZMM1 = [0x1111111111111111 * (i + 1) for i in range(8)]
ZMM17 = [0x0101010101010101 * (i + 0x10) for i in range(8)]

pytestmark = pytest.mark.skipif(not x86_64.HAS_AVX512, reason="this CPU has no AVX-512")


def _intel_layout() -> bool:
    with open("/proc/cpuinfo") as f:
        return "GenuineIntel" in f.read(4096)


def _values(text: str) -> list[int]:
    return [int(v, 16) for v in text.split("=", 1)[1].strip(" {}\n").split(", ")]


def test_zmm_and_mask_registers_show_and_change_what_the_cpu_holds(debug) -> None:
    d = debug(SRC)
    d.gdb.run("-break-insert checkpoint")
    d.gdb.run("-exec-continue")
    d.gdb.wait_for_stop("breakpoint-hit")
    if d.backend == "gdbserver" and not _intel_layout():
        pytest.skip("gdb 13 reads AVX-512 state at Intel's XSAVE offsets; this CPU puts it elsewhere")
    assert _values(d.gdb.console("p/x $zmm1.v8_int64")) == ZMM1, d.diagnostics()
    assert _values(d.gdb.console("p/x $zmm17.v8_int64")) == ZMM17, d.diagnostics()
    assert _values(d.gdb.console("p/x $ymm17.v4_int64")) == ZMM17[:4]
    assert d.gdb.console("p/x $k1").split("=")[1].strip() == "0xa5a5"
    d.gdb.console("set var $zmm2.v8_int64[7] = 0x5678")
    d.gdb.console("set var $zmm2.v8_int64[0] = 0x1234")
    d.gdb.console("set var $k2 = 0x3c")
    d.gdb.console("delete")
    status, out, err = run_to_exit(d)
    assert out.splitlines() == ["zmm2 1234 5678 k2 3c"], out + err


def test_a_kmcore_carries_the_avx512_registers(payload, tmp_path) -> None:
    crash = crash_in_km(payload(SRC), "crash", tmp_path)
    lines = crash.gdb("p/x $zmm17.v8_int64", "p/x $k1", "p/x $zmm1.v8_int64")
    text = "\n".join(lines)
    assert _values(next(line for line in lines if line.startswith("$1"))) == ZMM17, text + crash.transcript
    assert next(line for line in lines if line.startswith("$2")).endswith("0xa5a5"), text
    assert _values(next(line for line in lines if line.startswith("$3"))) == ZMM1, text


def test_without_avx512_the_description_has_no_avx512_feature() -> None:
    """A CPU without it (KM_NO_AVX512=1 makes km describe one): no avx512 feature, no zmm, k registers."""
    names = {r.name for r in x86_64._build(False)}
    assert "ymm15h" in names and not names & {"zmm0h", "k0", "xmm16"}
