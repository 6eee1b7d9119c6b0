"""Ctrl-C latency (issue 11): the time from the interrupt byte (0x03, what gdb sends for Ctrl-C) to the stop reply,
km's stub against gdbserver on the same payloads, interleaved, over a bare RSP client (tests/harness/rsp_client.py).

Run: python3 bench/ctrl_c.py [--reps N]   (not part of the suite; ~30 s). Two payloads: three threads spinning in
user code (tests/payloads/gdb_spin_threads.c), and threads blocked in read(2), sleep(3) and a 1 ms nanosleep loop.
Prints the median and max latency per runner and km's ratio to gdbserver.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from harness.build import build  # noqa: E402
from harness.debuggee import start_server  # noqa: E402
from harness.gdb import free_port  # noqa: E402
from harness.rsp_client import RspClient  # noqa: E402

BLOCKED = r"""
#include <pthread.h>
#include <time.h>
#include <unistd.h>
static void *reader(void *a) { char c; int p[2]; pipe(p); read(p[0], &c, 1); return a; }
static void *sleeper(void *a) { for (;;) sleep(100); return a; }
int main(void) {
    pthread_t t;
    pthread_create(&t, 0, reader, 0);
    pthread_create(&t, 0, sleeper, 0);
    for (;;) { struct timespec ts = {0, 1000000}; nanosleep(&ts, 0); }
}
"""


def latencies(runner: str, exe: Path, reps: int) -> list[float]:
    port = free_port()
    server = start_server(runner, exe, port, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        client = RspClient(port)
        client.start()
        client.send(b"vCont;c")
        out = []
        for _ in range(reps):
            time.sleep(0.2)                      # let every thread get busy (or blocked) again
            start = time.perf_counter()
            client.sock.sendall(b"\x03")
            client.stop_reply()
            out.append(time.perf_counter() - start)
            client.send(b"vCont;c")
        client.close()
        return out
    finally:
        server.kill()
        server.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        blocked = Path(tmp) / "ctrl_c_blocked.c"
        blocked.write_text(BLOCKED)
        payloads = {"busy threads": build("gdb_spin_threads.c"), "blocked threads": build(blocked)}
        print("| payload | gdbserver median (max) | km median (max) | km/gdbserver |")
        print("|---|---|---|---|")
        for name, exe in payloads.items():
            got: dict[str, list[float]] = {"gdbserver": [], "km": []}
            for _ in range(2):                  # interleaved: the machine is shared
                for runner in got:
                    got[runner] += latencies(runner, exe, args.reps // 2 or 1)
            med = {r: statistics.median(v) * 1000 for r, v in got.items()}
            cells = [f"{med[r]:.1f} ms ({max(got[r]) * 1000:.1f})" for r in got]
            print(f"| {name} | {cells[0]} | {cells[1]} | {med['km'] / med['gdbserver']:.2f} |")


if __name__ == "__main__":
    main()
