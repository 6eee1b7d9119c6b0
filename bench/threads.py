"""Threaded syscall benchmark (issue 3): T threads each making N cheap syscalls (getppid, or 64-byte writes to
/dev/null), under km and natively, with musl and glibc; prints calls/s and km's ratio to native.

Run: python3 bench/threads.py [--calls N] [--reps N] [--threads 1,4] [--toolchains musl,glibc]
(not part of the test suite; about a minute with the defaults). The payload times its own loop (clock_gettime
around the threads' work, after every thread started), so km's start-up is not in the figure; km and native
runs alternate within each repetition (the machine is shared) and the table shows medians.
Why 1 and 4 threads: each vCPU thread serves its syscalls in Python, so the GIL may serialize them; the
4-thread/1-thread figure shows how much of the guest's parallelism survives.
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

PAYLOAD = ROOT / "bench" / "payloads" / "bench_threads.c"
ENV = km_env()
ENV.pop("KM_VERBOSE", None)


def seconds(cmd: list[str], env: dict[str, str] | None = None) -> float:
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: status {result.returncode}: {result.stderr.strip()}")
    return float(result.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="syscalls per thread under km")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--threads", default="0,1,4", help="0: the main thread alone")
    parser.add_argument("--toolchains", default="musl,glibc")
    args = parser.parse_args()
    counts = [int(n) for n in args.threads.split(",")]
    native_calls = args.calls * 50        # native is ~100x faster: more calls for a measurable time
    print(f"{'toolchain':9} {'call':7} {'threads':>7} {'km calls/s':>12} {'native calls/s':>15} {'km/native':>10}")
    for toolchain in args.toolchains.split(","):
        exe = str(build(PAYLOAD, toolchain, ("-O2",)))
        for call in ("getppid", "write"):
            km_rate_1 = None
            for n in counts:
                km_rates, native_rates = [], []
                for _ in range(args.reps):
                    km_cmd = [*KM, exe, str(n), str(args.calls), call]
                    km_rates.append(max(n, 1) * args.calls / seconds(km_cmd, ENV))
                    native_rates.append(max(n, 1) * native_calls / seconds([exe, str(n), str(native_calls), call]))
                km_rate, native_rate = statistics.median(km_rates), statistics.median(native_rates)
                km_rate_1 = km_rate_1 or km_rate
                scaling = f"  ({n}t/{counts[0]}t under km: {km_rate / km_rate_1:.2f}x)" if n != counts[0] else ""
                print(f"{toolchain:9} {call:7} {n:7d} {km_rate:12,.0f} {native_rate:15,.0f} "
                      f"{km_rate / native_rate:10.4f}{scaling}", flush=True)


if __name__ == "__main__":
    main()
