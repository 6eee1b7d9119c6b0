"""The syscall fuzzer in the suite: 20,000 random calls (numbers 0-460, hostile arguments) under km and natively.

km must finish the stream (no crash, no hang, the payload's final line and status intact), never fail serving a
call itself, and answer every call as Linux does, except where DIVERGENCES says why not. bench/fuzz.py runs
100,000 calls and prints the ENOSYS figure.
"""
from __future__ import annotations

import pytest

from monitor.syscalls.table import handler_names

from . import sandbox
from .syscall_stream import compare, finish, report, start

SEED = 0x6B6D2D66757A7A      # "km-fuzz"
COUNT = 20_000


@pytest.fixture(scope="module")
def streams(payload, tmp_path_factory):
    why = sandbox.unavailable()
    if why:
        pytest.skip(f"no sandbox for the fuzzer: {why}")
    program = payload("fuzz_syscalls.c", "musl")
    base = tmp_path_factory.mktemp("syscall-fuzz")
    # equal-length directory names: getcwd's ERANGE depends on the path's length
    runs = [start(program, COUNT, SEED, base / name, km=name == "km-run", env={"KM_VERBOSE": "syscall"})
            for name in ("km-run", "native", "again1")]
    km, native, again = (finish(proc, out, timeout=300) for proc, out in runs)
    return program, km, native, again


def test_km_survives_a_random_syscall_stream(streams):
    program, km, native, _ = streams
    assert native.finished, f"the native run did not finish: status {native.returncode}\n{native.stderr[-2000:]}"
    last = km.stdout.rstrip().splitlines()[-1:] if km.stdout.strip() else ["(nothing)"]
    where = f"seed {SEED:#x}, km {program} {COUNT} {SEED:#x}; last line: {last[0]}"
    assert km.returncode == 0 and km.finished, f"{where}\nstatus {km.returncode}\n{km.stderr[-3000:]}"
    assert "failed serving" not in km.stderr and "Traceback" not in km.stderr, \
        f"{where}\n" + "\n".join(line for line in km.stderr.splitlines() if "failed" in line or "Error" in line)[:4000]


def test_unknown_calls_are_enosys_with_a_trace_line(streams):
    """A number km has no handler for answers ENOSYS and says so on km's syscall trace, never a crash."""
    _, km, _, _ = streams
    served = set(handler_names())
    unknown = {c.nr for c in km.calls.values() if c.result == "ENOSYS" and c.name not in served}
    assert unknown, "the stream made no call km does not serve"
    missing = sorted(nr for nr in unknown if f"unknown syscall {nr} (" not in km.stderr)
    assert not missing, f"ENOSYS without a trace line for {missing}"


def test_each_call_answers_as_linux(streams):
    program, km, native, again = streams
    mismatches, _ = compare(native, again, km)
    assert not mismatches, report(mismatches, SEED, program)
