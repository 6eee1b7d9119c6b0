"""Where one stop's wall time goes (issue 10, the stepi / breakpoint stop / ignore-count rows): km, km with its stop
lane off (km-twin, KM_RSP_LANE=python) and gdbserver, the same gdb session (bench/gdb.py's driver, no proxy between
gdb and the server), sessions interleaved.

Run: python3 bench/stop_account.py [--reps N] [--steps N] [--hits N] [--only B,..] [--before DIR] [--perf]
(not part of the suite; ~2 minutes with the defaults, ~3 with --perf)

At each phase mark gdb itself reads (bench/gdb.py's phase_counters) the clock and, summed over threads, from /proc:
its own CPU and run-queue wait (schedstat), the server's CPU, user/system split (clock ticks: sampled, so only the
split is rough), run-queue wait and context switches, gdbserver's inferior's CPU (the payload's share, which
gdbserver's own CPU leaves out), and how many packets km's stop lane answered in C (a hook keeping the count in a
shared page, ~1 us per serve). One more km session times each KVM_RUN the stub makes (bench/gdb.py's FLOOR_HOOK, wall
around the ioctl: under load it includes waits, so --perf's "server:KVM", CPU sampled inside KVM, is the firmer
figure): the payload's share in km's CPU. Per operation (a stepi, a stop at the breakpoint, a crossing the ignore count
absorbs), median over repetitions, microseconds. "Neither running" = wall - gdb's CPU - gdb's wait - the server's
CPU (+ gdbserver's inferior) - the server's wait: loopback wake-ups in flight and idle; negative when gdb and the
server ran at once on the two cores.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import gdb as gdb_bench  # noqa: E402 - the driver gdb runs, its server commands, the floor session
from tests.harness.gdb import GdbError, wait_listening  # noqa: E402

PHASES = {"stepi": "steps", "breakpoint_hits": "hits", "ignore_count": "hits"}   # phase -> its op count
BACKENDS = ("gdbserver", "km", "km-twin")
PERF_PERIOD_NS = 200_000    # --perf: one sample per 200 us of CPU on each CPU (sampling inflates CPU: compare shares)
# km's Python as sitecustomize: the stop lane's count of packets answered in C kept in an 8-byte shared file page
LANE_COUNT_HOOK = """
import mmap, os, struct
from kdbg.rsp import cstop
_f = open(os.environ["KM_BENCH_LANE_OUT"], "r+b")
_page = mmap.mmap(_f.fileno(), 8)
_serve = cstop.StopLane.serve
def serve(self, *args, **kwargs):
    try:
        return _serve(self, *args, **kwargs)
    finally:
        _page[:8] = struct.pack("<Q", self._state.answered)
cstop.StopLane.serve = serve
"""


def session(backend: str, program: Path, work: Path, sizes: dict[str, int], before: Path | None = None,
            perf_data: Path | None = None) -> dict[str, dict]:
    """One server and one gdb session: {phase: counters at its start} (bench/gdb.py's phase_counters), and under
    "pids" the server's and gdb's pids. before: km-before's checkout. perf_data: the whole machine sampled (perf
    record) while gdb runs."""
    port = gdb_bench.free_port()
    out, lane = work / f"{backend}.out", work / f"{backend}.lane"
    out.write_text("")
    lane.write_bytes(bytes(8))
    env = gdb_bench.km_env()
    if backend.startswith("km"):
        hook = work / "lane_hook"
        hook.mkdir(exist_ok=True)
        (hook / "sitecustomize.py").write_text(LANE_COUNT_HOOK)
        checkout = f"{before}{os.pathsep}" if backend == "km-before" and before else ""
        env.update(PYTHONPATH=f"{hook}{os.pathsep}{checkout}{env['PYTHONPATH']}", KM_BENCH_LANE_OUT=str(lane))
        if backend == "km-twin":
            env["KM_RSP_LANE"] = "python"
    command = gdb_bench.server_command("km" if backend == "km-before" else backend, port, program)
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=work,
                              start_new_session=True)
    try:
        try:
            wait_listening(port, server, gdb_bench.READY_TIMEOUT_S)
        except GdbError as error:
            raise SystemExit(f"stop_account: {backend}: {error}") from None
        gdb_env = dict(gdb_bench.km_env(), GDB_BENCH_PORT=str(port), GDB_BENCH_OUT=str(out),
                       GDB_BENCH_DUMP=str(work / f"{backend}.dump"), GDB_BENCH_COUNTERS=str(server.pid),
                       GDB_BENCH_LANE_OUT=str(lane), **{f"GDB_BENCH_{k.upper()}": str(v) for k, v in sizes.items()})
        perf = None
        if perf_data is not None:
            perf = subprocess.Popen(["perf", "record", "-q", "-a", "-g", "-k", "CLOCK_MONOTONIC", "-e", "cpu-clock",
                                     "-c", str(PERF_PERIOD_NS), "-o", str(perf_data)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)                 # perf's set-up, before the session's first phase
        try:
            with gdb_bench.driven_gdb(program, gdb_env) as gdb:
                pass
        finally:
            if perf is not None:
                perf.send_signal(signal.SIGINT)
                perf.wait(timeout=60)
    finally:
        gdb_bench.stop(server)
    marks: dict[str, dict] = {}
    for line in out.read_text().splitlines():
        if line.startswith("failed"):
            raise SystemExit(f"stop_account: {backend}: {line}")
        if line.startswith("counters "):
            _, name, data = line.split(" ", 2)
            marks[name] = json.loads(data)
    marks["pids"] = {"server": server.pid, "gdb": gdb.pid}
    return marks


def _category(frames: list[tuple[str, str]]) -> str:
    """One sample's place: KVM (anything under the KVM ioctl), the system call it is in (kernel), or the user code's
    library (leaf first in `frames`: (symbol, dso))."""
    if any("kvm" in sym or "pvm" in sym or "kvm" in dso for sym, dso in frames):
        return "KVM"
    sym, dso = frames[0]
    if "kernel" in dso:
        for sym, _ in frames:
            if sym.startswith(("__x64_sys_", "__do_sys_")):
                return "sys " + sym.split("sys_", 1)[1]
        return "kernel other"
    name = os.path.basename(dso)
    for key, title in (("libpython", "Python"), ("cstop", "lane C"), ("crun", "run C"), ("cframing", "framing C"),
                       ("libc.so", "libc"), ("gdbserver", "gdbserver"), ("[unknown]", "unknown")):
        if key in name:
            return title
    return name if name else "unknown"


def perf_split(perf_data: Path, marks: dict[str, dict], sizes: dict[str, int]) -> dict[str, dict[str, float]]:
    """From one perf-sampled session: per phase, {"gdb:"/"server:"/"inferior:" + category: us per op}."""
    script = subprocess.run(["perf", "script", "-i", str(perf_data), "-F", "comm,pid,tid,time,ip,sym,dso"],
                            capture_output=True, text=True).stdout
    names = [n for n in marks if n != "pids"]
    bounds = [(phase, marks[phase]["t"], marks[names[names.index(phase) + 1]]["t"]) for phase in PHASES]
    server, gdb = marks["pids"]["server"], marks["pids"]["gdb"]
    split: dict[str, dict[str, float]] = {phase: {} for phase in PHASES}
    for block in script.split("\n\n"):
        lines = block.strip().splitlines()
        if not lines:
            continue
        head = lines[0].rsplit(None, 2)
        try:
            pid = int(head[1].split("/")[0])
            t_ns = int(float(head[2].rstrip(":")) * 1e9)
        except (IndexError, ValueError):
            continue
        comm = head[0]
        who = ("server" if pid == server else "gdb" if pid == gdb
               else "inferior" if comm.startswith("gdb_loop") else None)
        if who is None:
            continue
        frames = []
        for line in lines[1:]:
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                sym, _, dso = parts[1].rpartition(" (")
                frames.append((sym, dso.rstrip(")")))
        if not frames:
            continue
        for phase, start, end in bounds:
            if start <= t_ns < end:
                key = f"{who}:{_category(frames)}"
                split[phase][key] = split[phase].get(key, 0.0) + PERF_PERIOD_NS / 1e3 / sizes[PHASES[phase]]
    return split


def per_op(marks: dict[str, dict], sizes: dict[str, int], tick_us: float) -> dict[str, dict[str, float]]:
    """Per phase, the deltas from its mark to the next one, per operation (us)."""
    names = list(marks)
    rows: dict[str, dict[str, float]] = {}
    for phase, size in PHASES.items():
        a, b = marks[phase], marks[names[names.index(phase) + 1]]
        n = sizes[size]

        def d(who: str, key: str) -> float:
            return (b[who][key] - a[who][key]) / n

        rows[phase] = {
            "wall": (b["t"] - a["t"]) / n / 1e3,
            "gdb_cpu": d("gdb", "cpu") / 1e3, "gdb_wait": d("gdb", "wait") / 1e3,
            "srv_cpu": d("server", "cpu") / 1e3, "srv_wait": d("server", "wait") / 1e3,
            "srv_user": d("server", "utime") * tick_us, "srv_sys": d("server", "stime") * tick_us,
            "inferior": d("inferior", "cpu") / 1e3,
            "srv_vcs": d("server", "vcs"), "srv_ics": d("server", "ics"),
            "gdb_vcs": d("gdb", "vcs"), "gdb_ics": d("gdb", "ics"),
            "lane": (b["lane"] - a["lane"]) / n,
        }
        order = sorted(b["threads"], key=int)    # each server thread's CPU, wait, switches; t0 the main thread
        for name in b["threads"]:
            if name in a["threads"]:
                t = f"t{order.index(name)}"
                for key, unit in (("cpu", 1e3), ("wait", 1e3), ("ics", 1), ("vcs", 1)):
                    value = (b["threads"][name][key] - a["threads"][name][key]) / n / unit
                    rows[phase][f"thr:{t}:{key}"] = rows[phase].get(f"thr:{t}:{key}", 0.0) + value
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="sessions per back end, interleaved (default 3)")
    parser.add_argument("--steps", type=int, default=500, help="stepi count (default 500)")
    parser.add_argument("--hits", type=int, default=300, help="breakpoint / ignore-count stops (default 300)")
    parser.add_argument("--only", default=",".join(BACKENDS), help=f"comma-separated of {','.join(BACKENDS)}")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="also km from another checkout (e.g. a worktree of an earlier main), as km-before")
    parser.add_argument("--no-floor", dest="floor", action="store_false", help="skip the KVM_RUN timing session")
    parser.add_argument("--perf", action="store_true",
                        help="one more session per back end sampled by perf: where each process's CPU goes")
    args = parser.parse_args()
    backends = args.only.split(",") + (["km-before"] if args.before else [])
    sizes = {"steps": args.steps, "hits": args.hits, "regs": 1}
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    gdb_bench.compile_km()
    load = os.getloadavg()[0]
    runs: dict[str, list[dict[str, dict[str, float]]]] = {b: [] for b in backends}
    with tempfile.TemporaryDirectory(prefix="km-stop-account-") as tmp:
        work = Path(tmp)
        program = gdb_bench.build_payload(work)
        for rep in range(args.reps):
            for backend in (backends if rep % 2 == 0 else backends[::-1]):
                runs[backend].append(per_op(session(backend, program, work, sizes, args.before), sizes, tick_us))
        floor = gdb_bench.measure_floor(program, work, sizes) if args.floor and "km" in backends else {}
        splits = {}
        if args.perf:
            for backend in backends:
                data = work / f"{backend}.perf"
                splits[backend] = perf_split(data, session(backend, program, work, sizes, args.before, data), sizes)
    kvm = {"stepi": floor.get("kvm_step_s", 0) * 1e6,
           "breakpoint_hits": (floor.get("kvm_step_s", 0) + floor.get("kvm_continue_s", 0)) * 1e6}
    kvm["ignore_count"] = kvm["breakpoint_hits"]
    print(f"stop_account: {args.reps} sessions each, {sizes}, load {load:.2f} -> {os.getloadavg()[0]:.2f}; "
          f"us per op, medians over sessions; {' / '.join(backends)}")
    rows = (("wall", "wall per op"), ("gdb_cpu", "gdb's CPU"), ("gdb_wait", "gdb's wait for a CPU (woken, not run)"),
            ("srv_cpu", "server's CPU (all threads)"), ("srv_user", "  of it user (ticks, rough)"),
            ("srv_sys", "  of it system (ticks, rough)"), ("kvm", "  of it KVM_RUN (km: floor session)"),
            ("inferior", "gdbserver's inferior's CPU (ptrace stops)"),
            ("srv_wait", "server's wait for a CPU (wake-up latency)"), ("rest", "neither running (wall - the above)"),
            ("srv_vcs", "server's voluntary / involuntary switches"), ("gdb_vcs", "gdb's voluntary / involuntary"),
            ("lane", "packets the stop lane answered in C"))
    for phase in PHASES:
        med = {b: {k: statistics.median(r[phase].get(k, 0.0) for r in runs[b]) for k in runs[b][0][phase]}
               for b in backends}
        for b in backends:
            med[b]["kvm"] = kvm[phase] if b.startswith("km") and floor else 0.0
            m = med[b]
            m["rest"] = m["wall"] - m["gdb_cpu"] - m["gdb_wait"] - m["srv_cpu"] - m["inferior"] - m["srv_wait"]
        print(f"\n{phase.replace('_', ' ')} | " + " | ".join(backends))
        print("|---|" + "---|" * len(backends))
        for key, title in rows:
            if key in ("srv_vcs", "gdb_vcs"):
                other = key.replace("vcs", "ics")
                cells = [f"{med[b][key]:.2f} / {med[b][other]:.2f}" for b in backends]
            elif key == "lane":
                cells = [f"{med[b][key]:.2f}" for b in backends]
            else:
                cells = [f"{med[b][key]:.0f}" for b in backends]
            print(f"| {title} | " + " | ".join(cells) + " |")
        for b in backends:
            names = sorted({k.split(":")[1] for k in med[b] if k.startswith("thr:")})
            print(f"  {b}'s threads (CPU / wait for a CPU us, voluntary / involuntary switches per op): " + "; ".join(
                f"{t} {med[b][f'thr:{t}:cpu']:.0f} / {med[b][f'thr:{t}:wait']:.0f}, "
                f"{med[b][f'thr:{t}:vcs']:.2f} / {med[b][f'thr:{t}:ics']:.2f}" for t in names
                if med[b][f"thr:{t}:cpu"] >= 1 or med[b][f"thr:{t}:wait"] >= 1))
        if splits:
            keys = sorted({k for b in backends for k in splits[b][phase]},
                          key=lambda k: -max(splits[b][phase].get(k, 0.0) for b in backends))
            print(f"  perf, one more session each (us of CPU per op, {' / '.join(backends)}): " + "; ".join(
                f"{k} " + " / ".join(f"{splits[b][phase].get(k, 0.0):.0f}" for b in backends)
                for k in keys if max(splits[b][phase].get(k, 0.0) for b in backends) >= 3))
        if "km" in med and "gdbserver" in med:
            km, gs = med["km"], med["gdbserver"]
            print(f"km / gdbserver: wall {km['wall'] / gs['wall']:.2f}; without the KVM floor "
                  f"{(km['wall'] - km['kvm']) / gs['wall']:.2f}")


if __name__ == "__main__":
    main()
