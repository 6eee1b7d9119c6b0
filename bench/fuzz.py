"""The fuzzers' slower tier (issue 12): the suite's fuzzers (tests/fuzz/) at the issue's large counts.

Run: python3 bench/fuzz.py [--sections syscalls,rsp,dap,elf] [--seed N] [--syscalls 100000] [--rsp 100000]
     [--dap 10000] [--elf 1000]
(not part of the test suite; several minutes on a loaded 2-core machine). Each section prints its count, seed,
crashes (km died, or a traceback / "failed serving" on its stderr), hangs (a run past its deadline) and what the
section measures besides: for syscalls, how many calls answered ENOSYS under km against natively (the
compatibility figure) and the kinds of difference from Linux not listed in tests/fuzz/syscall_stream.py.
A non-zero exit status means a crash or a hang.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]     # the fuzzers' modules import the tests' harness

from tests.harness.build import build  # noqa: E402


def syscalls(count: int, seed: int) -> tuple[int, int]:
    """The random syscall stream under km and twice natively; returns (crashes, hangs)."""
    from tests.fuzz import sandbox
    from tests.fuzz.syscall_stream import (compare, enosys_counts, enosys_only_under_km, finish, report,
                                           start)
    why = sandbox.unavailable()
    if why:
        print(f"syscalls: skipped, no sandbox: {why}")
        return 0, 0
    program = build("fuzz_syscalls.c", "musl")
    deadline = 60 + count / 100
    with tempfile.TemporaryDirectory(prefix="km-fuzz-") as tmp:
        began = time.monotonic()
        runs = [start(program, count, seed, Path(tmp) / name, km=name == "km-run", env={"KM_VERBOSE": "syscall"})
                for name in ("km-run", "native", "again1")]
        km, native, again = (finish(proc, out, timeout=deadline) for proc, out in runs)
        elapsed = time.monotonic() - began
    hung = "(killed after" in km.stderr
    crashed = not hung and (not km.finished or km.returncode != 0 or "failed serving" in km.stderr
                            or "Traceback" in km.stderr)
    mismatches, flaky = compare(native, again, km)
    native_enosys, km_enosys = enosys_counts(native, km)
    only_km = enosys_only_under_km(native, km)
    print(f"syscalls: {count} calls, seed {seed:#x}, {elapsed:.0f} s; crashes {int(crashed)}, hangs {int(hung)}; "
          f"last line under km: {(km.stdout.rstrip().splitlines() or ['(none)'])[-1][:80]}")
    print(f"  ENOSYS: km {km_enosys}, native {native_enosys} of {len(native.calls)} calls "
          f"({km_enosys - native_enosys} more under km, in {len(only_km)} syscalls: "
          f"{', '.join(f'{name} {n}' for name, n in only_km.most_common())})")
    print(f"  compared: {len(native.calls) - flaky} calls ({flaky} differ between two native runs); "
          f"{sum(m.count for m in mismatches)} calls in {len(mismatches)} kinds differ from Linux beyond the "
          f"listed divergences")
    if mismatches:
        print("  " + report(mismatches[:40], seed, program).replace("\n", "\n  "))
    return int(crashed), int(hung)


def rsp(count: int, seed: int) -> tuple[int, int]:
    """Hostile packets at km -g's stub, then gdb runs the payload to its exit; (crashes, hangs)."""
    import socket
    from tests.fuzz.test_rsp_fuzzer import run
    exe = build("gdb_basic.c", "musl")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="km-fuzz-") as tmp:
        began = time.monotonic()
        try:
            outcome, status, out, err, end = run(exe, port, count, seed, Path(tmp) / "km.err")
        except Exception as e:          # noqa: BLE001 - a hang (a deadline) or a refused connection: reported
            print(f"rsp: {count} packets, seed {seed:#x}: FAILED: {type(e).__name__}: {e}"[:400])
            return 0, 1
        elapsed = time.monotonic() - began
    crashed = int(end != "exited" or "Traceback" in err or status != 3)
    print(f"rsp: {count} packets, seed {seed:#x}, {elapsed:.0f} s; crashes {crashed}, hangs {len(outcome.failures)}; "
          f"{outcome.replies} replies, {outcome.interrupts} interrupts, {outcome.disconnects} disconnects; "
          f"then gdb saw '{end}', status {status}")
    for failure in outcome.failures[:5]:
        print("  " + failure)
    return crashed, len(outcome.failures)


def dap(count: int, seed: int) -> tuple[int, int]:
    """Hostile messages at kdbg-dap processes; (crashes, hangs)."""
    from tests.fuzz.dap_run import run
    from tests.fuzz.dap_stream import episodes
    with tempfile.TemporaryDirectory(prefix="km-fuzz-") as tmp:
        began = time.monotonic()
        result = run(episodes(seed, count), Path(tmp))
        elapsed = time.monotonic() - began
    hangs = sum("did not exit" in p or "unanswered" in p for p in result.problems)
    print(f"dap: {result.messages} messages, seed {seed:#x}, {elapsed:.0f} s, {result.adapters} adapters; "
          f"crashes {len(result.problems) - hangs}, hangs {hangs}; {result.answered} answered "
          f"({result.failed_responses} failed responses)")
    for problem in result.problems[:5]:
        print("  " + problem[:300])
    return len(result.problems) - hangs, hangs


def elf(count: int, seed: int) -> tuple[int, int]:
    """Mutated programs under km; (crashes, hangs)."""
    from collections import Counter

    from tests.fuzz.elf_mutate import fuzz
    programs = [build("run_hello.c", "musl"), build("run_hello.c", "dynamic")]
    with tempfile.TemporaryDirectory(prefix="km-fuzz-") as tmp:
        began = time.monotonic()
        verdicts = fuzz(programs, count, seed, Path(tmp))
        elapsed = time.monotonic() - began
    hangs = sum(v.problem.startswith("no end") for v in verdicts)
    crashes = sum(bool(v.problem) for v in verdicts) - hangs
    loops = sum(v.loops_natively for v in verdicts)
    outcomes = Counter("ran" if v.status == 0 else "refused or died" for v in verdicts)
    print(f"elf: {count} mutants, seed {seed:#x}, {elapsed:.0f} s; crashes {crashes}, hangs {hangs}; "
          f"{outcomes['ran']} ran, {outcomes['refused or died']} refused or died ({loops} loop natively too)")
    for v in [v for v in verdicts if v.problem][:5]:
        print(f"  mutant {v.index} ({v.kind}): {v.problem}: {v.stderr.strip()[-200:]}")
    return crashes, hangs


SECTIONS = {"syscalls": syscalls, "rsp": rsp, "dap": dap, "elf": elf}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--seed", type=lambda s: int(s, 0), default=0x6B6D2D66757A7A)
    parser.add_argument("--syscalls", type=int, default=100_000)
    parser.add_argument("--rsp", type=int, default=100_000)
    parser.add_argument("--dap", type=int, default=10_000)
    parser.add_argument("--elf", type=int, default=1_000)
    args = parser.parse_args()
    crashes = hangs = 0
    for name in args.sections.split(","):
        c, h = SECTIONS[name](getattr(args, name), args.seed)
        crashes, hangs = crashes + c, hangs + h
    print(f"total: crashes {crashes}, hangs {hangs}")
    return 1 if crashes or hangs else 0


if __name__ == "__main__":
    sys.exit(main())
