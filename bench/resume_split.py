"""Where a resume's answer goes (issue 10): for a single `vCont;s` and a `vCont;c` to a breakpoint of a stopped
single-threaded payload, the serving process's user and kernel CPU per resume (each thread's /proc stat utime
and stime, and its schedstat run time), the syscalls and ioctls it makes (strace -f -c over the same resumes),
and, for km, the Python calls its stub thread makes (a profile hook in a wrapper around km).

Run: python3 bench/resume_split.py [--count N] [--only km,gdbserver] [--no-strace] [--no-calls]
     python3 bench/resume_split.py --before DIR [--reps N]   km, km from checkout DIR and gdbserver interleaved:
                                                             CPU per resume, KVM_RUN's part, ratios
(not part of the suite; ~30 s). The payload and packets are bench/gdb_packets.py's.
"""
from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.gdb import build_payload  # noqa: E402 - gdb_loop.c as every gdb benchmark builds it
from tests.harness.gdb import free_port, wait_listening  # noqa: E402
from tests.harness.km import KM, km_env  # noqa: E402
from tests.harness.rsp_client import RspClient  # noqa: E402 - the tests' bare client
from tests.harness.symbols import symbol_address  # noqa: E402

TICK_S = 1 / os.sysconf("SC_CLK_TCK")
DUMP_PACKET = b"qKmSplitDump"

# The wrapper that counts the stub thread's Python calls: `DUMP_PACKET` (an unknown packet, so the reply is the
# empty one) writes the counts so far to KM_SPLIT_OUT.
WRAPPER = r'''
import collections, os, runpy, sys, threading
calls = collections.Counter()
def profile(frame, event, arg):
    if event == "call":
        code = frame.f_code
        calls[(code.co_filename.rsplit("/", 2)[-2:][-1], code.co_name)] += 1
    elif event == "c_call":
        calls[("<c>", getattr(arg, "__qualname__", str(arg)))] += 1
real_start = threading.Thread.start
def start(self):
    if self.name == "gdb-stub":
        real_run = self.run
        def run():
            if os.environ.get("KM_SPLIT_PROFILE"):
                sys.setprofile(profile)
            real_run()
        self.run = run
    real_start(self)
threading.Thread.start = start
import time
from monitor.kvm import vcpu as kvm_vcpu
real_run_once = kvm_vcpu.Vcpu.run_once
kvm = [0, 0, 0, 0, 0, 0]        # KVM_RUNs on the stub thread (Python's), their CPU ns, wall ns; run_for_debugger's
def run_once(self):
    if threading.current_thread().name != "gdb-stub":
        return real_run_once(self)
    c, w = time.thread_time_ns(), time.perf_counter_ns()
    err = real_run_once(self)
    kvm[0] += 1; kvm[1] += time.thread_time_ns() - c; kvm[2] += time.perf_counter_ns() - w
    return err
kvm_vcpu.Vcpu.run_once = run_once
from monitor.vcpu.loop import VcpuThread
real_for_debugger = VcpuThread.run_for_debugger
def run_for_debugger(self, *args):      # with the compiled run (monitor/kvm/crun.py) KVM_RUN is inside it
    c, w = time.thread_time_ns(), time.perf_counter_ns()
    try:
        return real_for_debugger(self, *args)
    finally:
        kvm[3] += 1; kvm[4] += time.thread_time_ns() - c; kvm[5] += time.perf_counter_ns() - w
VcpuThread.run_for_debugger = run_for_debugger
import kdbg.rsp.server as server
real_dispatch = server.dispatch
def dispatch(session, packet):
    if packet == b"qKmSplitDump":
        sys.setprofile(None)
        with open(os.environ["KM_SPLIT_OUT"], "a") as out:
            out.write("--\n")
            out.write(f"{kvm[0]} kvm:runs\n{kvm[1]} kvm:cpu_ns\n{kvm[2]} kvm:wall_ns\n{time.thread_time_ns()} thread:cpu_ns\n")
            out.write(f"{kvm[3]} run:runs\n{kvm[4]} run:cpu_ns\n{kvm[5]} run:wall_ns\n")
            for (f, n), c in calls.items():
                out.write(f"{c} {f}:{n}\n")
        if os.environ.get("KM_SPLIT_PROFILE"):
            sys.setprofile(profile)
    return real_dispatch(session, packet)
server.dispatch = dispatch
sys.argv = ["km"] + sys.argv[1:]
runpy.run_module("monitor.cli", run_name="__main__")
'''


def start_server(backend: str, program: Path, port: int, wrapper: Path | None, out: Path | None,
                 profile: bool = False, root: Path = ROOT) -> subprocess.Popen:
    """km -g (the harness's command and environment; `wrapper` runs km under the counters above, `root` puts another
    checkout's km first on the path) or gdbserver, on port, in its own session."""
    env = km_env()
    if root != ROOT:
        env["PYTHONPATH"] = f"{root}{os.pathsep}{env['PYTHONPATH']}"
    if profile:
        env["KM_SPLIT_PROFILE"] = "1"
    env.pop("KM_VERBOSE", None)
    if backend == "km":
        head = [sys.executable, str(wrapper)] if wrapper else KM
        if out:
            env["KM_SPLIT_OUT"] = str(out)
        cmd = head + [f"-g{port}", str(program), "100000000"]
    else:
        cmd = ["gdbserver", f"127.0.0.1:{port}", str(program), "100000000"]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env, start_new_session=True)


def wait_traced(pids: list[int], tracer: int, timeout_s: float = 10.0) -> None:
    """Until strace (pid `tracer`) has attached every thread of `pids`: resumes made before would go uncounted."""
    deadline = time.monotonic() + timeout_s
    while True:
        tracers = set()
        for pid in pids:
            for tid in os.listdir(f"/proc/{pid}/task"):
                try:
                    status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
                except OSError:
                    continue
                tracers.add(int(status.split("TracerPid:")[1].split()[0]))
        if tracers == {tracer}:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"strace did not attach to {pids} in {timeout_s} s")
        time.sleep(0.01)


def tasks(pid: int) -> dict[int, tuple[str, int, int, int]]:
    """tid -> (name, utime ticks, stime ticks, schedstat ns) of every thread of pid (and, for gdbserver, its
    inferior's too: listed separately under its own pid)."""
    result = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            ns = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
            result[int(tid)] = (name, int(fields[11]), int(fields[12]), ns)
        except OSError:
            pass
    return result


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class Session:
    def __init__(self, backend: str, program: Path, wrapper: Path | None = None, out: Path | None = None,
                 profile: bool = False, root: Path = ROOT) -> None:
        self.backend, self.program = backend, program
        port = free_port()
        self.proc = start_server(backend, program, port, wrapper, out, profile, root)
        wait_listening(port, self.proc, 20.0)
        self.c = RspClient(port)
        c = self.c
        c.ask(b"qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+;no-resumed+")
        c.ask(b"Hg0")
        stop = c.ask(b"?")
        self.pid = stop.split(b"thread:p")[1].split(b".")[0]
        self.tick = symbol_address(program, "tick")
        c.ask(b"Z0,%x,1" % self.tick)
        c.send(b"vCont;c:p%s.-1" % self.pid)
        c.stop_reply()
        c.ask(b"z0,%x,1" % self.tick)

    def step(self) -> None:
        self.c.send(b"vCont;s:p%s.%s;c:p%s.-1" % (self.pid, self.pid, self.pid))
        self.c.stop_reply()

    def cont(self) -> None:
        self.c.send(b"vCont;c:p%s.-1" % self.pid)
        self.c.stop_reply()

    def pids(self) -> list[int]:
        return [self.proc.pid] + children(self.proc.pid)

    def close(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def cpu_split(session: Session, kind: str, count: int) -> list[str]:
    """Per thread: user and kernel CPU (us per resume, from ticks) and run time (schedstat)."""
    one = session.step if kind == "vCont;s" else session.cont
    if kind != "vCont;s":
        session.c.ask(b"Z0,%x,1" % session.tick)
    before = {pid: tasks(pid) for pid in session.pids()}
    wall = time.perf_counter()
    for _ in range(count):
        one()
    wall = time.perf_counter() - wall
    after = {pid: tasks(pid) for pid in session.pids()}
    if kind != "vCont;s":
        session.c.ask(b"z0,%x,1" % session.tick)
    lines = [f"{session.backend} {kind}: {count} resumes, wall {wall / count * 1e6:.0f} us each"]
    for pid, threads in after.items():
        for tid, (name, ut, st, ns) in threads.items():
            b = before.get(pid, {}).get(tid)
            if b is None:
                continue
            du, ds, dn = (ut - b[1]) * TICK_S, (st - b[2]) * TICK_S, (ns - b[3]) / 1e9
            if dn * 1e6 / count < 1:
                continue
            lines.append(f"  {'inferior ' if pid != session.proc.pid else ''}{name}[{tid}]: "
                         f"user {du / count * 1e6:.0f} us, kernel {ds / count * 1e6:.0f} us, "
                         f"run {dn / count * 1e6:.0f} us per resume")
    return lines


def strace_split(session: Session, kind: str, count: int, work: Path) -> list[str]:
    out = work / f"strace-{session.backend}-{kind.replace(';', '')}.txt"
    if kind != "vCont;s":
        session.c.ask(b"Z0,%x,1" % session.tick)
    # the serving process only: gdbserver's inferior is already gdbserver's tracee, which strace cannot attach to
    tracer = subprocess.Popen(["strace", "-f", "-c", "-o", str(out), "-p", str(session.proc.pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_traced([session.proc.pid], tracer.pid)
    one = session.step if kind == "vCont;s" else session.cont
    for _ in range(count):
        one()
    tracer.send_signal(signal.SIGINT)
    tracer.wait()
    if kind != "vCont;s":
        session.c.ask(b"z0,%x,1" % session.tick)
    lines = [f"{session.backend} {kind}: syscalls per resume (strace -f -c, the server's threads"
             f"{'; its inferior is not traced' if session.backend != 'km' else ''})"]
    for line in out.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            calls = int(parts[3])
            errors = int(parts[4]) if len(parts) == 6 else 0
            lines.append(f"  {parts[-1]}: {calls / count:.2f}" + (f" ({errors / count:.2f} errors)" if errors else ""))
    return lines


def dumps_of(session: Session, out: Path, kind: str, count: int) -> collections.Counter:
    """The stub thread's counters over `count` resumes of one kind."""
    if kind == "vCont;c":
        session.c.ask(b"Z0,%x,1" % session.tick)
    out.write_text("")
    session.c.ask(DUMP_PACKET)
    for _ in range(count):
        session.step() if kind == "vCont;s" else session.cont()
    session.c.ask(DUMP_PACKET)
    if kind == "vCont;c":
        session.c.ask(b"z0,%x,1" % session.tick)
    dumps = out.read_text().split("--\n")[1:]
    first, second = (collections.Counter({ln.split(" ", 1)[1]: int(ln.split(" ", 1)[0]) for ln in d.splitlines()})
                     for d in dumps)
    second.subtract(first)
    return second


def kvm_split(program: Path, count: int, work: Path) -> list[str]:
    """The stub thread's CPU per resume and the part of it inside KVM_RUN (thread CPU clock around the ioctl)."""
    wrapper = work / "wrapper.py"
    wrapper.write_text(WRAPPER)
    out = work / "kvm.txt"
    session = Session("km", program, wrapper, out)
    lines = []
    try:
        for kind in ("vCont;s", "vCont;c"):
            d = dumps_of(session, out, kind, count)
            cpu, kcpu, kwall = d["thread:cpu_ns"] / count / 1e3, d["kvm:cpu_ns"] / count / 1e3, d["kvm:wall_ns"] / count / 1e3
            if not d["kvm:runs"]:       # the compiled run: KVM_RUN is inside run_for_debugger (+ ~1 us of C)
                kcpu, kwall = d["run:cpu_ns"] / count / 1e3, d["run:wall_ns"] / count / 1e3
            lines.append(f"km {kind}: stub thread CPU {cpu:.0f} us per resume; KVM_RUN {d['run:runs'] / count:.2f} per "
                         f"resume, CPU {kcpu:.0f} us (wall {kwall:.0f} us); the rest {cpu - kcpu:.0f} us")
    finally:
        session.close()
    return lines


def calls_split(program: Path, count: int, work: Path) -> list[str]:
    wrapper = work / "wrapper.py"
    wrapper.write_text(WRAPPER)
    out = work / "calls.txt"
    session = Session("km", program, wrapper, out, profile=True)
    lines = []
    try:
        for kind in ("vCont;s", "vCont;c"):
            diff = dumps_of(session, out, kind, count)
            diff = collections.Counter({k: v for k, v in diff.items() if ":" in k and not k.startswith(("kvm:", "thread:", "run:"))
                                        and v > 0})
            total = sum(diff.values()) / count
            py = sum(v for k, v in diff.items() if not k.startswith("<c>")) / count
            lines.append(f"km {kind}: {total:.0f} calls per resume in the stub thread ({py:.0f} Python, "
                         f"{total - py:.0f} C), most frequent:")
            for name, n in diff.most_common(1000):
                lines.append(f"  {n / count:5.2f} {name}")
    finally:
        session.close()
    return lines


def compare(program: Path, work: Path, before: Path, reps: int, count: int) -> None:
    """km, km from another checkout (`before`) and gdbserver, interleaved in one run: CPU per resume of the serving
    process (all threads; gdbserver's inferior apart), and for km the part inside KVM_RUN (the stub thread's CPU
    clock around the run). Medians over `reps`; ratios to gdbserver's process CPU."""
    import statistics
    wrapper = work / "wrapper.py"
    wrapper.write_text(WRAPPER)
    servers = {"km": ROOT, "km before": before, "gdbserver": None}
    rows: dict[tuple[str, str], list[tuple[float, float, float]]] = collections.defaultdict(list)
    for rep in range(reps):
        names = list(servers)[rep % 3:] + list(servers)[:rep % 3]
        for name in names:
            root = servers[name]
            out = work / f"dump-{rep}.txt"
            session = (Session("km", program, wrapper, out, root=root) if root is not None
                       else Session("gdbserver", program))
            try:
                for kind in ("vCont;s", "vCont;c"):
                    if kind == "vCont;c":
                        session.c.ask(b"Z0,%x,1" % session.tick)
                    if root is not None:
                        out.write_text("")
                        session.c.ask(DUMP_PACKET)
                    server_pid = session.proc.pid
                    before_t = {pid: tasks(pid) for pid in session.pids()}
                    for _ in range(count):
                        session.step() if kind == "vCont;s" else session.cont()
                    after_t = {pid: tasks(pid) for pid in session.pids()}
                    kvm = 0.0
                    if root is not None:
                        session.c.ask(DUMP_PACKET)
                        first, second = (collections.Counter({ln.split(" ", 1)[1]: int(ln.split(" ", 1)[0])
                                                              for ln in d.splitlines()})
                                         for d in out.read_text().split("--\n")[1:])
                        second.subtract(first)
                        kvm = (second["kvm:cpu_ns"] or second["run:cpu_ns"]) / count / 1e3
                    if kind == "vCont;c":
                        session.c.ask(b"z0,%x,1" % session.tick)

                    def cpu(pids) -> float:
                        return sum(ns - before_t[pid][tid][3] for pid in pids for tid, (_, _, _, ns) in
                                   after_t[pid].items() if tid in before_t.get(pid, {})) / count / 1e3
                    own = cpu([server_pid])
                    inferior = cpu([p for p in after_t if p != server_pid])
                    rows[(kind, name)].append((own, kvm, inferior))
            finally:
                session.close()
    print(f"| resume | server | CPU us per resume | of it in KVM_RUN | without KVM_RUN | inferior's CPU | "
          f"CPU / gdbserver's | without KVM_RUN / gdbserver's |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in ("vCont;s", "vCont;c"):
        gs = statistics.median(r[0] for r in rows[(kind, "gdbserver")])
        for name in servers:
            own, kvm, inferior = (statistics.median(r[i] for r in rows[(kind, name)]) for i in range(3))
            print(f"| {kind} | {name} | {own:.0f} | {kvm:.0f} | {own - kvm:.0f} | {inferior:.0f} | {own / gs:.2f} | "
                  f"{(own - kvm) / gs:.2f} |")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--only", default="km,gdbserver")
    parser.add_argument("--no-strace", dest="strace", action="store_false")
    parser.add_argument("--no-calls", dest="calls", action="store_false")
    parser.add_argument("--before", type=Path, help="compare with km from this checkout, interleaved (only that)")
    parser.add_argument("--reps", type=int, default=3, help="--before's repetitions per server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="km-split-") as tmp:
        work = Path(tmp)
        program = build_payload(work)
        print(f"load {os.getloadavg()[0]:.2f}, clock tick {TICK_S * 1e3:.0f} ms")
        if args.before:
            compare(program, work, args.before.resolve(), args.reps, args.count)
            return
        for backend in args.only.split(","):
            session = Session(backend, program)
            try:
                for kind in ("vCont;s", "vCont;c"):
                    print("\n".join(cpu_split(session, kind, args.count)))
                if args.strace:
                    for kind in ("vCont;s", "vCont;c"):
                        print("\n".join(strace_split(session, kind, min(args.count, 300), work)))
            finally:
                session.close()
        if "km" in args.only:
            print("\n".join(kvm_split(program, args.count, work)))
        if args.calls and "km" in args.only:
            print("\n".join(calls_split(program, 200, work)))


if __name__ == "__main__":
    main()
