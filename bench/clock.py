"""clock_gettime benchmark (issue 3): a loop of clock_gettime(CLOCK_MONOTONIC) and gettimeofday under km with its
vDSO, under km with KM_NO_VDSO=1 (every call exits to km), and natively, with musl and glibc; prints ns per call
and the ratios.

Run: python3 bench/clock.py [--calls N] [--reps N] [--toolchains musl,glibc]   (not part of the test suite;
about 20 s). The payload times its own loop, so km's start-up is not in the figures; the three runs alternate
within each repetition (the machine is shared) and the table shows medians. Without the vDSO a call costs one
VM exit plus km's Python (hundreds of µs on a nested host); with it the read stays in the guest and should be
within a small factor of native.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from harness.build import build  # noqa: E402  (one build, cached by source hash, for tests and benches)
from harness.km import KM, km_env  # noqa: E402

PAYLOAD = ROOT / "bench" / "payloads" / "bench_clock.c"
ENV = km_env()
ENV.pop("KM_VERBOSE", None)
ENV.pop("KM_NO_VDSO", None)


def ns_per_call(cmd: list[str], env: dict[str, str] | None = None) -> float:
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: status {result.returncode}: {result.stderr.strip()}")
    return float(result.stdout.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2_000_000, help="calls per run with a vDSO (native, km)")
    parser.add_argument("--slow-calls", type=int, default=3000, help="calls per run under KM_NO_VDSO=1")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--toolchains", default="musl,glibc")
    args = parser.parse_args()
    no_vdso = dict(ENV, KM_NO_VDSO="1")
    print(f"{'toolchain':9} {'call':13} {'native ns':>10} {'km vDSO ns':>11} {'KM_NO_VDSO ns':>14} "
          f"{'vDSO/native':>12} {'no-vDSO/vDSO':>13}")
    for toolchain in args.toolchains.split(","):
        exe = str(build(PAYLOAD, toolchain, ("-O2",)))
        for call in ("clock_gettime", "gettimeofday"):
            native, km, km_slow = [], [], []
            for _ in range(args.reps):
                native.append(ns_per_call([exe, str(args.calls), call]))
                km.append(ns_per_call([*KM, exe, str(args.calls), call], ENV))
                km_slow.append(ns_per_call([*KM, exe, str(args.slow_calls), call], no_vdso))
            n, k, s = (statistics.median(v) for v in (native, km, km_slow))
            print(f"{toolchain:9} {call:13} {n:10.1f} {k:11.1f} {s:14.1f} {k / n:12.2f} {s / k:13.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
