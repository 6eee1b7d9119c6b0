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
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KM = [sys.executable, "-m", "monitor.cli"]
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
ENV.pop("KM_VERBOSE", None)
COMPILERS = {"musl": ["musl-gcc", "-static", "-O2", "-pthread"], "glibc": ["gcc", "-static", "-O2", "-pthread"]}

SOURCE = r"""
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long calls;
static int use_write, devnull;
static pthread_barrier_t go;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *work(void *arg) {
    char buf[64] = {0};
    (void)arg;
    pthread_barrier_wait(&go);
    for (long i = 0; i < calls; i++) {
        if (use_write)
            syscall(SYS_write, devnull, buf, sizeof buf);
        else
            syscall(SYS_getppid);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int nthreads = atoi(argv[1]);
    calls = atol(argv[2]);
    use_write = !strcmp(argv[3], "write");
    devnull = open("/dev/null", O_WRONLY);
    pthread_t t[64];
    if (nthreads == 0) {                   /* the main thread alone, no other thread ever created */
        double t0 = now();
        pthread_barrier_init(&go, NULL, 1);
        work(NULL);
        printf("%.6f\n", now() - t0);
        return 0;
    }
    pthread_barrier_init(&go, NULL, nthreads + 1);
    for (int i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, work, NULL);
    pthread_barrier_wait(&go);
    double t0 = now();
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    printf("%.6f\n", now() - t0);
    return 0;
}
"""


def build(out: Path, toolchain: str) -> Path:
    src = out / "bench_threads.c"
    src.write_text(SOURCE)
    exe = out / f"bench_threads.{toolchain}.km"
    subprocess.run([*COMPILERS[toolchain], "-o", str(exe), str(src)], check=True)
    return exe


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
    with tempfile.TemporaryDirectory() as tmp:
        for toolchain in args.toolchains.split(","):
            exe = str(build(Path(tmp), toolchain))
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
