"""The debugger benchmark (issue 10): km's gdb stub side by side with gdbserver (and qemu-user) on one payload, and
km's start-up against a bare start of the interpreter it runs on. Prints the issue's table as time ratios.

Run: python3 bench/gdb.py [--reps N] [--steps N] [--hits N] [--only km,gdbserver,qemu,km-twin]   (not part of the
suite; about 3 minutes with the defaults; GDB_BENCH_TIMEOUT_S=N bounds each gdb session, 180 s by default; km-twin is
km with its stop lane off, KM_RSP_LANE=python)
     python3 bench/gdb.py --km-packets    one km session traced with KM_VERBOSE=gdb.io: packets per operation,
                                          km's answer time and gdb's think time per packet kind

For each back end the real gdb (batch mode) connects to the server and, timed inside gdb with perf_counter:
  connect -> main         `target remote` + `break main` + `continue` until main is reached
  stepi                   --steps single steps inside tick()
  scripted bp stop        --hits `continue`s, each stopping at the breakpoint in tick()
  ignore-count stop       one `continue` through --hits stops that an ignore count absorbs (gdb resumes inside)
  register re-fetch       --regs times `maintenance flush register-cache` + `p $pc` (one register round trip)
  info registers          --regs times `maintenance flush register-cache` + `info registers`
  dump memory             `dump memory` of the 4 MiB buffer
plus "stub ready": from spawning the server until its port listens (watched in /proc/net/tcp, so no probe
connection disturbs a one-shot stub). Back ends alternate within each repetition (the machine is shared); each
ratio is km's time over gdbserver's within one repetition, and the table shows the medians (lower is faster).
Start-up: `km hello` against `python3 -I -c pass` of the same interpreter (sys.executable), alternating.
The KVM floor: one more km session times each KVM_RUN the stub makes for a stepi or a continue (FLOOR_HOOK), and
the table's last lines give the floor's share of the stepi and stop rows and km's time without it.

This file is also the driver gdb runs: `gdb -x bench/gdb.py` finds the `gdb` module and runs drive_inside_gdb(),
taking its parameters from GDB_BENCH_* environment variables and appending `key value` lines to GDB_BENCH_OUT.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
KM = [sys.executable, "-m", "monitor.cli"]
PAYLOAD_SOURCE = Path(__file__).resolve().parent / "payloads" / "gdb_loop.c"
BUFFER_SIZE = 4 << 20                 # gdb_loop.c's BUFFER_SIZE
LOOP_COUNT = 1_000_000                # tick() calls: far more than the benchmark stops in; ms when run freely
READY_TIMEOUT_S = 20.0
RUN_TIMEOUT_S = float(os.environ.get("GDB_BENCH_TIMEOUT_S", 180))
BACKENDS = ("km", "gdbserver", "qemu", "km-twin")    # km-twin: km with its stop lane off (KM_RSP_LANE=python)
MARK_PACKET = "qKmBenchPhase"         # unknown to every stub (empty reply): marks phases in km's packet trace
TRACE_LINE = re.compile(r"^\s*([\d.]+) gdb\.io .*?: (<-|->) b.(.*).$")    # monitor/trace.py, connection.py
ROWS = (  # key (seconds per operation), title
    ("ready_s", "stub ready after start"),
    ("connect_s", "connect -> main"),
    ("step_s", "stepi"),
    ("hit_s", "scripted breakpoint stop"),
    ("ignore_s", "stop absorbed by an ignore count"),
    ("reg_s", "one register re-fetched (p $pc)"),
    ("inforeg_s", "info registers re-fetched"),
    ("dump_s", "dump memory of 4 MiB"),
)
HELLO_SOURCE = ROOT / "tests" / "payloads" / "run_hello.c"

# ---- inside gdb ----

def thread_counters(pid: int, threads: dict[str, dict[str, int]] | None = None) -> dict[str, int]:
    """One process's counters summed over its threads: CPU and run-queue wait (ns, schedstat), user and system CPU
    (clock ticks: the split is sampled, the schedstat sum exact), voluntary and involuntary context switches.
    threads: also each thread's own counters, under its tid."""
    totals = dict(cpu=0, wait=0, utime=0, stime=0, vcs=0, ics=0)
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return totals
    for tid in tids:
        task = f"/proc/{pid}/task/{tid}"
        try:
            cpu, wait, _ = Path(f"{task}/schedstat").read_text().split()
            stat = Path(f"{task}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"{task}/status").read_text()
        except (OSError, ValueError):
            continue                          # a thread that ended meanwhile
        counts = dict(cpu=int(cpu), wait=int(wait), utime=int(stat[11]), stime=int(stat[12]), vcs=0, ics=0)
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches"):
                counts["vcs"] = int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches"):
                counts["ics"] = int(line.split()[1])
        for key, value in counts.items():
            totals[key] += value
        if threads is not None:
            threads[tid] = counts
    return totals


def phase_counters(env: dict[str, str]) -> dict[str, object]:
    """What bench/stop_account.py reads at each phase mark: the clock, gdb's own counters, the server's and its
    children's (gdbserver's inferior), and the packets km's stop lane answered in C (its hook's file)."""
    server = int(env["GDB_BENCH_COUNTERS"])
    children: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{server}/task"):
            children += map(int, Path(f"/proc/{server}/task/{tid}/children").read_text().split())
    except OSError:
        pass
    inferior = dict(cpu=0, wait=0)
    for child in children:
        counts = thread_counters(child)
        inferior = {k: inferior[k] + counts[k] for k in inferior}
    lane = Path(env.get("GDB_BENCH_LANE_OUT", "/nonexistent"))
    threads: dict[str, dict[str, int]] = {}
    return {"t": time.perf_counter_ns(), "gdb": thread_counters(os.getpid()),
            "server": thread_counters(server, threads), "threads": threads,
            "inferior": inferior, "lane": int.from_bytes(lane.read_bytes()[:8], "little") if lane.exists() else 0}


def drive_inside_gdb() -> None:
    """The measured session; every failure becomes a `failed <phase>: <reason>` line, never a hang."""
    import gdb  # noqa: PLC0415 - only exists inside gdb

    env = os.environ
    port, steps, hits = env["GDB_BENCH_PORT"], int(env["GDB_BENCH_STEPS"]), int(env["GDB_BENCH_HITS"])
    regs = int(env["GDB_BENCH_REGS"])
    dump_path = env["GDB_BENCH_DUMP"]
    out = open(env["GDB_BENCH_OUT"], "a", buffering=1)
    clock = time.perf_counter
    phase = "setup"

    def enter(name: str) -> None:
        nonlocal phase
        phase = name
        out.write(f"phase {name} {time.time()}\n")
        if env.get("GDB_BENCH_COUNTERS"):        # bench/stop_account.py: CPU and waits at each phase's start
            out.write(f"counters {name.replace(' ', '_')} {json.dumps(phase_counters(env))}\n")
        if env.get("GDB_BENCH_MARK") and name != "connect":   # --km-packets: a phase mark in km's trace
            run(f"maint packet {MARK_PACKET}:{name.replace(' ', '_')}")

    def run(command: str) -> str:
        return gdb.execute(command, to_string=True)

    def expect_function(name: str) -> None:
        frame = gdb.selected_frame().name()
        if frame != name:
            raise gdb.error(f"stopped in {frame}, not {name}")

    try:
        run("set pagination off")
        run("set confirm off")
        enter("connect")
        start = clock()
        run(f"target remote 127.0.0.1:{port}")
        run("break main")
        run("continue")
        expect_function("main")
        out.write(f"connect_s {clock() - start}\n")

        enter("first stop in tick")
        bp = gdb.Breakpoint("tick")
        run("continue")
        expect_function("tick")

        enter("stepi")
        bp.enabled = False                  # a stepi loop through tick() must not land on its own breakpoint
        start = clock()
        for _ in range(steps):
            run("stepi")
        out.write(f"step_s {(clock() - start) / steps}\n")

        enter("breakpoint hits")
        bp.enabled = True
        before = bp.hit_count
        start = clock()
        for _ in range(hits):
            run("continue")
        elapsed = clock() - start
        if bp.hit_count - before != hits:
            raise gdb.error(f"{bp.hit_count - before} hits of {hits}")
        expect_function("tick")
        out.write(f"hit_s {elapsed / hits}\n")

        enter("ignore count")
        before = bp.hit_count
        bp.ignore_count = hits - 1          # the last of `hits` crossings stops
        start = clock()
        run("continue")
        elapsed = clock() - start
        if bp.hit_count - before != hits:
            raise gdb.error(f"{bp.hit_count - before} crossings of {hits}")
        out.write(f"ignore_s {elapsed / hits}\n")

        enter("register re-fetch")
        start = clock()
        for _ in range(regs):
            run("maintenance flush register-cache")
            run("p $pc")
        out.write(f"reg_s {(clock() - start) / regs}\n")

        enter("info registers")
        start = clock()
        for _ in range(regs):
            run("maintenance flush register-cache")
            run("info registers")
        out.write(f"inforeg_s {(clock() - start) / regs}\n")

        enter("dump memory")
        addr = int(gdb.parse_and_eval("(unsigned long)&buffer"))
        start = clock()
        run(f"dump binary memory {dump_path} {addr} {addr + BUFFER_SIZE}")
        elapsed = clock() - start
        data = Path(dump_path).read_bytes()
        if data != bytes((i * 7) & 0xFF for i in range(256)) * (BUFFER_SIZE // 256):     # gdb_loop.c's fill
            raise gdb.error(f"dumped {len(data)} bytes that are not the buffer")
        out.write(f"dump_s {elapsed}\n")

        enter("kill")
        run("kill")
    except Exception as exc:  # noqa: BLE001 - reported in the table, the other back ends go on
        out.write(f"failed {phase}: {' '.join(str(exc).split())}\n")
    out.close()


# ---- the benchmark ----

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_listening(port: int) -> bool:
    """Whether anything listens on port (any address), read from /proc/net/tcp{,6} without connecting."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def server_command(backend: str, port: int, program: Path) -> list[str]:
    return {
        "km": [*KM, f"-g{port}", str(program), str(LOOP_COUNT)],
        "km-twin": [*KM, f"-g{port}", str(program), str(LOOP_COUNT)],
        "gdbserver": ["gdbserver", f"127.0.0.1:{port}", str(program), str(LOOP_COUNT)],
        "qemu": ["qemu-x86_64", "-g", str(port), str(program), str(LOOP_COUNT)],
    }[backend]


@contextlib.contextmanager
def driven_gdb(program: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """gdb running this file's driver on `program` (its GDB_BENCH_* settings in env), yielded once started (its pid
    for the counters); at the block's end waited for, at most RUN_TIMEOUT_S, and killed if it still runs."""
    gdb = subprocess.Popen(["gdb", "-nx", "-batch", str(program), "-x", __file__], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        yield gdb
        gdb.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if gdb.poll() is None:
            gdb.kill()
            gdb.wait()


def stop(proc: subprocess.Popen) -> None:
    """Kill the server and whatever it started (its own session, so its process group is ours alone)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def tail(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1].strip()[:120] if lines else "no output"


def last_phase(out: Path) -> str:
    phases = [line.split(" ")[1:-1] for line in out.read_text().splitlines() if line.startswith("phase ")]
    return " ".join(phases[-1]) if phases else "gdb start-up"


# The KVM floor session's hook (a sitecustomize.py on km's PYTHONPATH, that session only): every KVM_RUN the stub's
# thread makes for the debugger (VcpuThread.run_for_debugger: a stepi's single step, vector 1; a continue run to a
# breakpoint, vector 3) is timed around the ioctl alone, and the times written out as km runs.
FLOOR_HOOK = """
import os, threading, time
def _install():
    from monitor.kvm import vcpu as kvm_vcpu
    from monitor.vcpu.loop import VcpuThread
    runs, local, clock = {1: [], 3: []}, threading.local(), time.perf_counter_ns
    run_once, run_for_debugger = kvm_vcpu.Vcpu.run_once, VcpuThread.run_for_debugger
    def timed_run(self):
        vector = getattr(local, "vector", None)
        if vector not in runs:
            return run_once(self)
        start = clock()
        err = run_once(self)
        runs[vector].append(clock() - start)
        return err
    def timed_for_debugger(self, vector, *args):
        local.vector = vector
        try:
            return run_for_debugger(self, vector, *args)
        finally:
            local.vector = None
    kvm_vcpu.Vcpu.run_once, VcpuThread.run_for_debugger = timed_run, timed_for_debugger
    def write():
        while True:
            time.sleep(0.2)
            with open(os.environ["KM_BENCH_FLOOR_OUT"] + ".tmp", "w") as f:
                for vector, times in runs.items():
                    f.write(f"{vector} {' '.join(map(str, times))}\\n")
            os.replace(os.environ["KM_BENCH_FLOOR_OUT"] + ".tmp", os.environ["KM_BENCH_FLOOR_OUT"])
    threading.Thread(target=write, daemon=True).start()
_install()
"""


def measure_once(backend: str, program: Path, work: Path, sizes: dict[str, int],
                 trace: bool = False, floor: bool = False) -> dict[str, float | str]:
    """One server, one gdb session: {row key: value}, or {"failed": reason}. trace: km logs its packets
    (KM_VERBOSE=gdb.io) into work/km.server.log, and gdb marks the phases there. floor: km times the KVM_RUN of
    each debugger run (FLOOR_HOOK) into work/floor.txt."""
    port = free_port()
    out, server_log = work / f"{backend}.out", work / f"{backend}.server.log"
    out.write_text("")
    env = km_env()
    if backend == "km-twin":
        env["KM_RSP_LANE"] = "python"       # kdbg/rsp/cstop.py's twin: Python answers every packet
    if trace:
        env.update(KM_VERBOSE="gdb.io", GDB_BENCH_MARK="1")
    if floor:
        hook = work / "floor_hook"
        hook.mkdir(exist_ok=True)
        (hook / "sitecustomize.py").write_text(FLOOR_HOOK)
        env.update(PYTHONPATH=f"{hook}{os.pathsep}{env['PYTHONPATH']}", KM_BENCH_FLOOR_OUT=str(work / "floor.txt"),
                   KM_DEBUG_RUN="python")       # the run's Python twin: the ioctl alone is timed
    with open(server_log, "w") as log:
        start = time.perf_counter()
        server = subprocess.Popen(server_command(backend, port, program), stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=log, env=env, cwd=work, start_new_session=True)
    try:
        deadline = start + READY_TIMEOUT_S
        while not is_listening(port):
            if server.poll() is not None:
                return {"failed": f"exited {server.returncode}: {tail(server_log)}"}
            if time.perf_counter() > deadline:
                return {"failed": f"not listening after {READY_TIMEOUT_S:.0f} s"}
            time.sleep(0.002)
        ready_s = time.perf_counter() - start
        gdb_env = dict(env, GDB_BENCH_PORT=str(port), GDB_BENCH_OUT=str(out),
                       GDB_BENCH_DUMP=str(work / f"{backend}.dump"),
                       **{f"GDB_BENCH_{k.upper()}": str(v) for k, v in sizes.items()})
        try:
            done = subprocess.run(["gdb", "-nx", "-batch", str(program), "-x", __file__], stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, env=gdb_env, timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return {"failed": f"timeout after {RUN_TIMEOUT_S:.0f} s in {last_phase(out)}"}
        results: dict[str, float | str] = {"ready_s": ready_s}
        for line in out.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "phase":
                continue
            if key == "failed":
                return {"failed": value}
            results[key] = float(value)
        if len(results) < len(ROWS):
            return {"failed": f"gdb status {done.returncode}: {(done.stderr.strip() or 'no result')[-120:]}"}
        return results
    finally:
        stop(server)


def packet_kind(packet: str) -> str:
    """A request's name for the tables: `Z0`, `vCont;s;c`, `qXfer:threads:read`, `m (0x2000 bytes)`."""
    if packet.startswith("vCont;"):
        return "vCont;" + ";".join(action.split(":")[0] for action in packet[6:].split(";"))
    if packet.startswith("qXfer:"):
        return ":".join(packet.split(":")[:3])
    if packet[:1] in ("Z", "z"):
        return packet[:2]
    if packet[:1] == "m" and "," in packet:
        length = int(packet.split(",")[1], 16)
        return "m (<= 64 bytes)" if length <= 64 else f"m ({length:#x} bytes)"
    name = re.match(r"[A-Za-z?]+", packet)
    return name.group(0) if name else packet[:8]


def report_packets(server_log: Path, counts: dict[str, int]) -> None:
    """Per phase, from km's gdb.io trace: packets per operation and, per kind (medians), `answer` = request
    parsed -> reply built (a resume's reply is its stop reply, so the payload's run is in it) and `then` =
    reply built -> next request parsed: km's framing (RLE, checksum) and send, plus gdb's own work."""
    phase, request, last_reply = "", None, None
    stats: dict[str, dict[str, list]] = collections.defaultdict(lambda: collections.defaultdict(lambda: [[], []]))
    for line in server_log.read_text(errors="replace").splitlines():
        m = TRACE_LINE.match(line)
        if not m:
            continue
        t, direction, packet = float(m.group(1)), m.group(2), m.group(3)
        if direction == "<-":
            if packet.startswith(MARK_PACKET):
                phase, request, last_reply = packet.split(":", 1)[1].replace("_", " "), None, None
                continue
            request = (t, packet_kind(packet))
            if last_reply is not None:
                stats[phase][request[1]][1].append(t - last_reply)
        elif request is not None:
            stats[phase][request[1]][0].append(t - request[0])
            request, last_reply = None, t
    phases = (("stepi", counts["steps"]), ("breakpoint hits", counts["hits"]), ("ignore count", counts["hits"]),
              ("register re-fetch", counts["regs"]), ("info registers", counts["regs"]), ("dump memory", 4))
    for phase, ops in phases:
        kinds = stats.get(phase)
        if not kinds:
            print(f"{phase}: no packets traced")
            continue
        unit = "MiB" if phase == "dump memory" else "op"
        total = sum(len(answers) for answers, _ in kinds.values())
        print(f"{phase}: {total / ops:.1f} packets per {unit} (medians in us, slowed by the tracing itself)")
        for kind, (answers, gaps) in sorted(kinds.items(), key=lambda kv: -sum(kv[1][0])):
            then = f"{statistics.median(gaps) * 1e6:8.0f}" if gaps else f"{'-':>8}"
            print(f"  {kind:24} {len(answers) / ops:7.2f}/{unit}  answer {statistics.median(answers) * 1e6:8.0f}"
                  f"  then {then}  answers in all {sum(answers) / ops * 1e3:7.2f} ms/{unit}")


def measure_floor(program: Path, work: Path, sizes: dict[str, int]) -> dict[str, float]:
    """One more km session with FLOOR_HOOK: the median KVM_RUN of a single step and of a continue run to a
    breakpoint (seconds), and km's stepi / stop times in that session, for the floor's share of each row."""
    result = measure_once("km", program, work, sizes, floor=True)
    time.sleep(0.5)                         # the hook's last write
    floor: dict[str, float] = {k: float(v) for k, v in result.items() if not isinstance(v, str)}
    path = work / "floor.txt"
    if "failed" in result or not path.exists():
        return {}
    for line in path.read_text().splitlines():
        vector, *times = line.split()
        if times:
            floor[{"1": "kvm_step_s", "3": "kvm_continue_s"}[vector]] = statistics.median(map(int, times)) / 1e9
    return floor


def report_floor(floor: dict[str, float], samples: dict[str, dict[str, list[float]]]) -> None:
    """The KVM floor's share: per stepi one single step, per breakpoint stop and per ignore-count crossing one
    step off the breakpoint and one continue run; km's time less it over gdbserver's, repetition by repetition
    (as the main table's ratios)."""
    step, run = floor.get("kvm_step_s"), floor.get("kvm_continue_s")
    if step is None or run is None:
        print("KVM floor: not measured")
        return
    print(f"KVM floor (KVM_RUN alone, stub's thread, one more km session): single step {fmt_time(step)}, "
          f"continue to a breakpoint {fmt_time(run)}")
    for key, title, kvm in (("step_s", "stepi", step), ("hit_s", "scripted breakpoint stop", step + run),
                            ("ignore_s", "stop absorbed by an ignore count", step + run)):
        km, gs = samples.get("km", {}).get(key), samples.get("gdbserver", {}).get(key)
        if km and gs:
            km_t, gs_t = statistics.median(km), statistics.median(gs)
            # paired as the table's ratios are: the machine's speed moves between repetitions (±30 %), so a ratio
            # of the two medians can disagree with the table's own
            paired = statistics.median((k - kvm) / g for k, g in zip(km, gs) if g > 0)
            print(f"  {title}: KVM {fmt_time(kvm)} of km's {fmt_time(km_t)} ({kvm / km_t:.0%}); km without it "
                  f"{fmt_time(km_t - kvm)} against gdbserver's {fmt_time(gs_t)}: {paired:.2f} (repetition by "
                  f"repetition)")


def available(backend: str) -> str | None:
    """None when the back end can run here, else why not."""
    tool = {"km": "/dev/kvm", "km-twin": "/dev/kvm", "gdbserver": "gdbserver", "qemu": "qemu-x86_64"}[backend]
    if tool == "/dev/kvm":
        return None if os.access(tool, os.R_OK | os.W_OK) else "no access to /dev/kvm"
    return None if shutil.which(tool) else f"{tool} not installed"


def fmt_time(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds >= 0.01 else f"{seconds * 1e6:.0f} us"


def pair_ratios(samples: dict[str, dict[str, list[float]]], backend: str, base: str, key: str) -> list[float]:
    """backend's time over base's, repetition by repetition (both ran in the same repetition, back to back)."""
    return [a / b for a, b in zip(samples[backend].get(key, []), samples[base].get(key, [])) if b > 0]


def report(samples: dict[str, dict[str, list[float]]], failures: dict[str, str], backends: list[str],
           startup: dict[str, list[float]], execs: dict[str, list[float]]) -> None:
    """The issue's table: per operation the median time of each back end and km's time over gdbserver's."""
    shown = [b for b in backends if b not in failures and samples[b]]
    others = [b for b in shown if b != "gdbserver"] if "gdbserver" in shown else []
    header = ["operation (time per op, median)", *shown, *(f"{b} / gdbserver" for b in others)]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for key, title in ROWS:
        cells = [fmt_time(statistics.median(samples[b][key])) if samples[b].get(key) else "-" for b in shown]
        for b in others:
            ratios = pair_ratios(samples, b, "gdbserver", key)
            cells.append(f"{statistics.median(ratios):.2f}" if ratios else "-")
        print(f"| {title} | " + " | ".join(cells) + " |")
    if startup.get("km") and startup.get("python"):
        ratios = [k / p for k, p in zip(startup["km"], startup["python"])]
        print(f"\nstart-up: km hello {fmt_time(statistics.median(startup['km']))}, python3 -I -c pass "
              f"{fmt_time(statistics.median(startup['python']))} ({sys.executable}): km / python "
              f"{statistics.median(ratios):.2f} (median of {len(ratios)} alternating pairs)")
    if execs.get("km"):
        print("exec loop (busybox sh running /bin/true), per exec: "
              + ", ".join(f"{name} {fmt_time(statistics.median(v))}" for name, v in execs.items()))
    print("ratios: time under the back end over gdbserver's in the same repetition (1.00 = as fast, lower is faster)")
    for b, reason in failures.items():
        print(f"{b}: failed: {reason}")


def km_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("KM_VERBOSE", None)
    return env


def build_payload(work: Path) -> Path:
    """gdb_loop.c built as every gdb benchmark runs it (static musl, -g -O0) into work/gdb_loop.km."""
    program = work / "gdb_loop.km"
    subprocess.run(["musl-gcc", "-static", "-g", "-O0", "-o", program, PAYLOAD_SOURCE], check=True)
    return program


def compile_km() -> None:
    """Byte-compile km's modules as tools/install.sh does: a checkout run with PYTHONDONTWRITEBYTECODE would
    otherwise compile every edited module on every start, which no installed km does."""
    env = {k: v for k, v in km_env().items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", "monitor", "kdbg"], cwd=ROOT, env=env,
                   stdout=subprocess.DEVNULL, check=True)


def timed(cmd: list[str], work: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=km_env(), check=True, cwd=work)
    return time.perf_counter() - start


def measure_startup(work: Path, reps: int) -> dict[str, list[float]]:
    """Wall time of `km hello` and of a bare `python3 -I -c pass` of the interpreter km runs on, alternating."""
    hello = work / "hello.km"
    subprocess.run(["gcc", "-O2", "-static", "-o", hello, HELLO_SOURCE], check=True)
    commands = {"python": [sys.executable, "-I", "-c", "pass"], "km": [*KM, str(hello)]}
    times: dict[str, list[float]] = {"python": [], "km": []}
    for rep in range(reps + 1):
        for name, cmd in (commands.items() if rep % 2 else reversed(commands.items())):
            elapsed = timed(cmd, work)
            if rep:                           # the first round warms the page cache
                times[name].append(elapsed)
    return times


def measure_exec_loop(work: Path, reps: int, count: int) -> dict[str, list[float]]:
    """Seconds per exec of `busybox sh -c 'for i in $(seq N); do /bin/true; done'` under km, natively and under
    qemu-user (whose children run natively: it has no follow-exec), with the shell's start (N=0) taken off."""
    busybox = shutil.which("busybox")
    if busybox is None:
        return {}
    runners = {"native": [], "km": KM, "qemu": ["qemu-x86_64"] if shutil.which("qemu-x86_64") else None}
    per_exec: dict[str, list[float]] = {name: [] for name, prefix in runners.items() if prefix is not None}
    for _ in range(reps):
        for name in per_exec:
            loop = [*(runners[name] or []), busybox, "sh", "-c", "for i in $(seq $0); do /bin/true; done"]
            per_exec[name].append((timed([*loop, str(count)], work) - timed([*loop, "0"], work)) / count)
    return per_exec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions per back end (default 5)")
    parser.add_argument("--steps", type=int, default=1000, help="stepi count (default 1000)")
    parser.add_argument("--hits", type=int, default=500, help="breakpoint stops, and ignore-count stops (default 500)")
    parser.add_argument("--regs", type=int, default=300, help="register re-fetches of each kind (default 300)")
    parser.add_argument("--startup-reps", type=int, default=10, help="km hello / python pairs (default 10; 0: none)")
    parser.add_argument("--execs", type=int, default=20, help="execs in the exec loop (default 20; 0: none)")
    parser.add_argument("--only", default="km,gdbserver", help=f"comma-separated back ends of {','.join(BACKENDS)}")
    parser.add_argument("--no-floor", dest="floor", action="store_false",
                        help="skip the extra km session that times KVM_RUN alone (the floor's share of each row)")
    parser.add_argument("--km-packets", action="store_true",
                        help="one traced km session instead: which packets each operation costs, and how long")
    args = parser.parse_args()
    sizes = {"steps": args.steps, "hits": args.hits, "regs": args.regs}
    if args.km_packets:
        with tempfile.TemporaryDirectory(prefix="km-bench-gdb-") as tmp:
            work = Path(tmp)
            program = build_payload(work)
            result = measure_once("km", program, work, sizes, trace=True)
            print("km (traced, so slower than untraced): "
                  + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k}: {v}" for k, v in result.items()))
            report_packets(work / "km.server.log", sizes)
        return
    backends = [b for b in args.only.split(",") if b]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown back end(s): {', '.join(sorted(unknown))}")
    failures = {b: why for b in backends if (why := available(b))}
    samples: dict[str, dict[str, list[float]]] = {b: {} for b in backends}
    if "km" in backends:
        compile_km()
    with tempfile.TemporaryDirectory(prefix="km-bench-gdb-") as tmp:
        work = Path(tmp)
        program = build_payload(work)
        print(f"gdb bench: {args.reps} repetitions, {sizes}, {os.cpu_count()} cpus, "
              f"load {os.getloadavg()[0]:.2f}", file=sys.stderr)
        for rep in range(args.reps):
            for b in (backends if rep % 2 == 0 else backends[::-1]):
                if b in failures:
                    continue
                started = time.perf_counter()
                result = measure_once(b, program, work, sizes)
                if "failed" in result:
                    failures[b] = str(result["failed"])
                else:
                    for key, value in result.items():
                        samples[b].setdefault(key, []).append(float(value))
                print(f"  repetition {rep + 1}/{args.reps} {b}: {time.perf_counter() - started:.1f} s"
                      + (f" (failed: {failures[b]})" if b in failures else ""), file=sys.stderr)
        floor = measure_floor(program, work, sizes) if args.floor and "km" in backends and "km" not in failures else {}
        startup = measure_startup(work, args.startup_reps) if args.startup_reps and "km" not in failures else {}
        execs = measure_exec_loop(work, 3, args.execs) if args.execs and "km" not in failures else {}
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus", file=sys.stderr)
    report(samples, failures, backends, startup, execs)
    if floor:
        report_floor(floor, samples)


if __name__ == "__main__":
    if "gdb" in sys.modules and hasattr(sys.modules["gdb"], "execute"):
        drive_inside_gdb()
    else:
        main()
