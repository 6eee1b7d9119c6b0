"""Per-packet cost of km's gdb stub against gdbserver (issue 10): the packets a stepi and a breakpoint stop are
made of, sent by a bare RSP client (tests/harness/rsp_client.py, no gdb in between), timed per packet.

Run: python3 bench/gdb_packets.py [--reps N] [--count N] [--think US | --evict KIB] [--twin]   (not part of the
suite; ~1 minute)

For each packet kind: the round trip seen by the client (wall), the server's CPU time per packet (the sum of its
threads' /proc schedstat run time: km's payload runs inside km, so a resume's guest time is in it; gdbserver's
inferior is another process, so its single step is not), and the server's context switches per packet. On a
shared machine wall times follow the load; CPU time and context switches hardly do, which is why they are here.
Back ends alternate within each repetition; the table shows medians and km's figure over gdbserver's.

--think US spins that long before each packet, as gdb thinks 40-200 us between the packets of a stop
(bench/rsp_proxy.py); --evict KIB copies a buffer of that size instead, as gdb's own work between two packets
pushes the server's code and data out of the CPU caches. Spun, km answers the plain packets about as fast as
gdbserver; evicted, km's interpreter loses more than gdbserver's C (1 MiB: m 37 -> 50 us against 34 -> 36).
The client speaks in no-ack mode, as gdb does. --twin adds a third server, km with its stop lane off
(KM_RSP_LANE=python: kdbg/rsp/cstop.py's twin, the Python session loop, answers every packet).
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from kdbg.rsp.packets import decode_rle  # noqa: E402
from bench.gdb import build_payload  # noqa: E402 - gdb_loop.c as every gdb benchmark builds it
from tests.harness.gdb import free_port, wait_listening  # noqa: E402
from tests.harness.km import KM, km_env  # noqa: E402
from tests.harness.rsp_client import RspClient  # noqa: E402 - the tests' bare client
from tests.harness.symbols import symbol_address  # noqa: E402

READY_TIMEOUT_S = 20.0


TWIN = "km, lane off"


def server(backend: str, port: int, program: Path) -> subprocess.Popen:
    """km -g (with its stop lane or without) or gdbserver --once on port, in its own session (killed whole at the
    end)."""
    env = km_env()
    env.pop("KM_VERBOSE", None)
    if backend == TWIN:
        env["KM_RSP_LANE"] = "python"
    cmd = ([*KM, f"-g{port}", str(program), "1000000"] if backend in ("km", TWIN)
           else ["gdbserver", "--once", f"127.0.0.1:{port}", str(program), "1000000"])
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env, start_new_session=True)


def task_counters(pid: int) -> tuple[int, int]:
    """(CPU ns, context switches) summed over the process's threads."""
    cpu = switches = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            cpu += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
            for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
                if "ctxt_switches" in line:
                    switches += int(line.split()[1])
        except OSError:
            pass                            # a thread that ended meanwhile
    return cpu, switches


def spin(seconds: float) -> None:
    """gdb's think time between two packets, spent on a CPU as gdb spends it (a sleep would leave it idle)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def evictor(kib: int) -> Callable[[], None]:
    """A copy of kib KiB between two packets: what gdb's own work does to the server's caches."""
    target, source = bytearray(kib << 10), bytes(range(256)) * (kib << 2)

    def evict() -> None:
        target[:] = source
    return evict


def session(backend: str, program: Path, count: int,
            between: Callable[[], None] | None = None) -> dict[str, tuple[float, float, float]]:
    """One server: {packet kind: (wall us, server CPU us, server context switches) per packet}; `between` runs
    before each packet (--think, --evict), outside the packet's wall time."""
    port = free_port()
    proc = server(backend, port, program)
    try:
        wait_listening(port, proc, READY_TIMEOUT_S)
        c = RspClient(port)
        c.ask(b"qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+;no-resumed+")
        c.start_no_ack()
        c.ask(b"Hg0")
        stop = c.ask(b"?")
        pid = stop.split(b"thread:p")[1].split(b".")[0]
        tick = symbol_address(program, "tick")
        c.ask(b"Z0,%x,1" % tick)
        c.send(b"vCont;c:p%s.-1" % pid)
        c.stop_reply()
        rsp = decode_rle(c.ask(b"p7"))                  # replies may be run-length encoded
        stack = b"%x" % int.from_bytes(bytes.fromhex(rsp.decode()), "little")
        results: dict[str, tuple[float, float, float]] = {}

        def measure(name: str, one: Callable[[], object]) -> None:
            cpu, switches = task_counters(proc.pid)
            wall = 0.0
            for _ in range(count):
                if between is not None:
                    between()
                start = time.perf_counter()
                one()
                wall += time.perf_counter() - start
            wall = wall / count * 1e6
            cpu2, switches2 = task_counters(proc.pid)
            results[name] = (wall, (cpu2 - cpu) / count / 1e3, (switches2 - switches) / count)

        measure("g", lambda: c.ask(b"g"))
        measure("m (64 bytes)", lambda: c.ask(b"m%s,40" % stack))
        measure("qXfer:threads", lambda: c.ask(b"qXfer:threads:read::0,1000"))
        measure("Z0 + z0", lambda: (c.ask(b"Z0,%x,1" % (tick + 8)), c.ask(b"z0,%x,1" % (tick + 8))))
        c.ask(b"z0,%x,1" % tick)
        measure("vCont;s", lambda: (c.send(b"vCont;s:p%s.%s;c:p%s.-1" % (pid, pid, pid)), c.stop_reply()))
        c.ask(b"Z0,%x,1" % tick)
        measure("vCont;c to a breakpoint", lambda: (c.send(b"vCont;c:p%s.-1" % pid), c.stop_reply()))
        return results
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per back end (default 3)")
    parser.add_argument("--count", type=int, default=500, help="packets of each kind per repetition (default 500)")
    pacing = parser.add_mutually_exclusive_group()
    pacing.add_argument("--think", type=float, default=0.0,
                        help="us spun before each packet, as gdb thinks between packets (default 0: back to back)")
    pacing.add_argument("--evict", type=int, default=0, metavar="KIB",
                        help="a copy of KIB KiB before each packet, as gdb's work evicts the caches (e.g. 1024)")
    parser.add_argument("--twin", action="store_true",
                        help="also km with its stop lane off (KM_RSP_LANE=python), in the same repetitions")
    args = parser.parse_args()
    between = (evictor(args.evict) if args.evict else
               (lambda: spin(args.think / 1e6)) if args.think else None)
    with tempfile.TemporaryDirectory(prefix="km-bench-packets-") as tmp:
        program = build_payload(Path(tmp))
        backends = ["km", TWIN, "gdbserver"] if args.twin else ["km", "gdbserver"]
        runs: dict[str, list[dict[str, tuple[float, float, float]]]] = {b: [] for b in backends}
        print(f"packets: {args.reps} repetitions of {args.count}, think {args.think:.0f} us, evict {args.evict} KiB, "
              f"load {os.getloadavg()[0]:.2f}", file=sys.stderr)
        for rep in range(args.reps):
            for backend in (backends if rep % 2 == 0 else backends[::-1]):
                runs[backend].append(session(backend, program, args.count, between))
    others = [b for b in backends if b != "gdbserver"]
    for other in others:
        if len(others) > 1:
            print(f"\n{other} / gdbserver:")
        print("| packet | wall km / gdbserver (us) | CPU km / gdbserver (us) | context switches km / gdbserver |")
        print("|---|---|---|---|")
        for name in runs[other][0]:
            cells = []
            for i in range(3):
                km = statistics.median(r[name][i] for r in runs[other])
                gs = statistics.median(r[name][i] for r in runs["gdbserver"])
                cells.append(f"{km:.1f} / {gs:.1f}" + (f" ({km / gs:.2f})" if gs and i < 2 else ""))
            print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")


if __name__ == "__main__":
    main()
