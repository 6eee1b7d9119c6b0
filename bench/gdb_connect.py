"""bench/gdb.py's "connect -> main" row alone, with enough sessions for a stable ratio (issue 10).

Run: python3 bench/gdb_connect.py [--reps N] [--before DIR]   (not part of the suite; ~1 s per session)

Each repetition starts each server (km -g, gdbserver; with --before also km from another checkout, e.g. a
`git worktree add --detach` of an earlier main) on bench/gdb.py's program, and, as soon as its port listens (as
bench/gdb.py does), one gdb that times `target remote` + `break main` + `continue` until main inside itself. The
servers alternate, their order reversed every other repetition; the table gives each one's median and the median
of its per-repetition ratio to gdbserver. bench/gdb.py measures the row from 3 sessions, where one slow session
moves the ratio by ~0.2; bench/rsp_proxy.py splits a connect per packet.
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
sys.path.insert(0, str(ROOT))
from tests.harness.gdb import free_port, wait_listening  # noqa: E402

_DRIVER = """
import gdb, os, time
gdb.execute("set pagination off")
gdb.execute("set confirm off")
start = time.perf_counter()
gdb.execute("target remote 127.0.0.1:" + os.environ["GDB_CONNECT_PORT"], to_string=True)
gdb.execute("break main", to_string=True)
gdb.execute("continue", to_string=True)
elapsed = time.perf_counter() - start
if gdb.selected_frame().name() == "main":
    open(os.environ["GDB_CONNECT_OUT"], "w").write(repr(elapsed))
gdb.execute("kill")
"""


from rsp_proxy import gdb_bench  # noqa: E402  (bench/gdb.py, loaded under a name that is not `gdb`)


def session(backend: str, program: Path, work: Path, km_root: Path | None) -> float:
    """One server and one gdb: connect -> main in seconds."""
    port = free_port()
    env = gdb_bench.km_env()
    if km_root is not None:
        env["PYTHONPATH"] = f"{km_root}{os.pathsep}{env['PYTHONPATH']}"
    server = subprocess.Popen(gdb_bench.server_command(backend, port, program), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=work,
                              start_new_session=True)
    out = work / "connect.out"
    out.unlink(missing_ok=True)
    try:
        wait_listening(port, server, gdb_bench.READY_TIMEOUT_S)
        subprocess.run(["gdb", "-nx", "-batch", str(program), "-x", str(work / "driver.py")],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=dict(os.environ, GDB_CONNECT_PORT=str(port), GDB_CONNECT_OUT=str(out)),
                       timeout=gdb_bench.RUN_TIMEOUT_S)
    finally:
        gdb_bench.stop(server)
    if not out.exists():
        raise SystemExit(f"gdb_connect: {backend}: gdb did not reach main")
    return float(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15, help="sessions per server, interleaved (default 15)")
    parser.add_argument("--before", type=Path, metavar="DIR", help="also km from another checkout, as km-before")
    args = parser.parse_args()
    gdb_bench.compile_km()
    servers = {"km": None, **({"km-before": args.before.resolve()} if args.before else {}), "gdbserver": None}
    times: dict[str, list[float]] = {name: [] for name in servers}
    with tempfile.TemporaryDirectory(prefix="km-bench-connect-") as tmp:
        work = Path(tmp)
        program = gdb_bench.build_payload(work)
        (work / "driver.py").write_text(_DRIVER)
        print(f"gdb_connect: {args.reps} repetitions, load {os.getloadavg()[0]:.2f}", file=sys.stderr)
        for rep in range(args.reps):
            for name in (list(servers) if rep % 2 == 0 else list(servers)[::-1]):
                backend = "gdbserver" if name == "gdbserver" else "km"
                times[name].append(session(backend, program, work, servers[name]))
    print("| connect -> main | median | / gdbserver (median of per-repetition ratios) |\n|---|---|---|")
    for name, values in times.items():
        ratio = statistics.median(a / b for a, b in zip(values, times["gdbserver"]))
        print(f"| {name} | {statistics.median(values) * 1e3:.2f} ms | {ratio:.2f} |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")


if __name__ == "__main__":
    main()
