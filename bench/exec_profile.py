"""Where one exec's time goes in km (issue 10, the exec half): km runs the exec loop's shell in-process
(`busybox sh -c 'for i in $(seq N); do PROGRAM; done'`), and in each forked child, from the execve to the
exit_group, times each KVM_RUN (guest + shadow faults + emulated cpuid + the exit), each syscall's handler (entry to
return, by name) and the execve itself, and counts the host's page faults (copy-on-write of km's heap among them).

Run: python3 bench/exec_profile.py [--program /bin/true] [--loops 5] [--calls] [--wrap MODULE:FUNC] [--cprofile N]
(not part of the suite; seconds). Programs by default: dynamic /bin/true (glibc), static busybox `true` (glibc),
a static musl hello. --calls lists the last exec's syscalls in order with the KVM_RUN before each; --wrap also
times a function of km (e.g. monitor.memory.guest:GuestMemory.map_file, or os:readlink); --cprofile N prints the N
functions with the most own time in the last exec. Figures are medians over the loop's execs, the first dropped
(a warm-up); each wrapper adds ~0.3 us. With --out FILE (and --child PROGRAM) the raw records stay in FILE, one JSON
line per exec: with the child's pid, the exec's CLOCK_MONOTONIC window, the guest memory's host ranges and the
child's /proc/self/maps, to sort `perf record -k CLOCK_MONOTONIC -e exceptions:page_fault_user` faults into km's
copy-on-write (Py_INCREF on pages shared with the parent km) and guest memory.
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BUSYBOX = shutil.which("busybox") or "/usr/bin/busybox"
HELLO = b'#include <unistd.h>\nint main(void){write(1,"hi\\n",3);return 0;}\n'


class Recorder:
    """Wraps km's run/dispatch/execve; counts only from the execve on, and writes one JSON line per exec'ed
    process to `out` when it calls exit_group (forked children included: they inherit the wrappers)."""

    def __init__(self, out: str, profile: int) -> None:
        self.out, self.profile = out, profile
        self.reset()

    def reset(self) -> None:
        self.on = False
        self.calls: dict[str, list[float]] = {}
        self.runs: list[float] = []
        self.order: list[tuple[str, str, float, float]] = []     # (name, arguments, run before it, handler)
        self.wrapped: dict[str, list[float]] = {}                 # --wrap's functions: [calls, seconds]
        self.execve = self.start = 0.0
        self.run_cpu = self.cpu_start = 0.0     # the vCPU thread's CPU time (guest time included): load-proof
        self.profiler = cProfile.Profile() if self.profile else None
        self.gc_time, self.gc_count, self.gc_started = 0.0, 0, 0.0
        self.faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def report(self) -> None:
        end, cpu_end = time.perf_counter(), time.thread_time()
        if self.profiler:
            self.profiler.disable()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - self.faults
        text = ""
        if self.profiler:
            rows = sorted(pstats.Stats(self.profiler).stats.items(), key=lambda kv: -kv[1][2])[:self.profile]
            text = "\n".join(f"  {tt * 1e6:8.0f} us own {ct * 1e6:8.0f} us cumulative {nc:5d} calls  "
                             f"{Path(f).name}:{line}({fn})" for (f, line, fn), (_, nc, tt, ct, _) in rows)
        line = json.dumps({"total": end - self.start, "execve": self.execve, "kvm": sum(self.runs),
                           "nruns": len(self.runs), "handlers": sum(s for _, s in self.calls.values()),
                           "calls": self.calls, "profile": text, "order": self.order, "wrapped": self.wrapped,
                           "gc": self.gc_time, "gcs": self.gc_count, "faults": faults,
                           "cpu": cpu_end - self.cpu_start, "run_cpu": self.run_cpu,
                           "pid": os.getpid(), "window": [self.mono_start, time.clock_gettime(time.CLOCK_MONOTONIC)],
                           "chunks": self.chunks, "maps": open("/proc/self/maps").read()})
        with open(self.out, "a") as f:
            f.write(line + "\n")
        self.reset()

    def wrap(self, spec: str) -> None:
        """Time `module:name` or `module:Class.name` (a function looked up by its module's callers at call time)."""
        import importlib
        module_name, attr = spec.split(":")
        owner = importlib.import_module(module_name)
        *path, name = attr.split(".")
        for part in path:
            owner = getattr(owner, part)
        fn, rec, clock = getattr(owner, name), self, time.perf_counter

        def timed(*args, **kwargs):
            t = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                if rec.on:
                    slot = rec.wrapped.setdefault(spec, [0, 0.0])
                    slot[0] += 1
                    slot[1] += clock() - t
        setattr(owner, name, timed)

    def install(self) -> None:
        from monitor.kvm import vcpu as vcpu_module
        from monitor.vcpu import loop as vcpu_loop
        from monitor.syscalls.dispatch import NAMES
        from monitor.syscalls.numbers import NUMBERS
        from monitor.process import fork
        exit_group, execve_nr = NUMBERS["exit_group"], NUMBERS["execve"]
        clock, cpu_clock, rec = time.perf_counter, time.thread_time, self
        run_once, dispatch, execve = vcpu_module.Vcpu.run_once, vcpu_loop.dispatch, fork.execve

        def timed_run(vcpu):
            t, cpu = clock(), cpu_clock()
            try:
                return run_once(vcpu)
            finally:
                if rec.on:
                    rec.runs.append(clock() - t)
                    rec.run_cpu += cpu_clock() - cpu

        def timed_dispatch(ctx, nr, *args):
            if rec.on and nr == exit_group:     # exit_group: the exec half ends (the teardown is the fork half's)
                rec.report()
            t = clock()
            try:
                return dispatch(ctx, nr, *args)
            finally:
                if rec.on and nr != execve_nr:
                    slot_name = NAMES.get(nr, str(nr))
                    slot = rec.calls.setdefault(slot_name, [0, 0.0])
                    slot[0] += 1
                    slot[1] += clock() - t
                    rec.order.append((slot_name, " ".join(f"{a:#x}" for a in args[:3]), rec.runs[-1] if rec.runs
                                      else 0.0, clock() - t))

        def timed_execve(ctx, *args):
            if rec.on:      # a process that exec'ed before (its record was not written: no exit_group): start anew
                rec.reset()
            rec.on = True
            if rec.profiler:
                rec.profiler.enable()
            rec.faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            rec.mono_start = time.clock_gettime(time.CLOCK_MONOTONIC)
            rec.chunks = [(c.host_addr, c.size) for c in ctx.proc.phys.chunks]
            rec.cpu_start = cpu_clock()
            rec.start = t = clock()
            try:
                return execve(ctx, *args)
            finally:
                rec.execve = clock() - t

        def gc_phase(phase, info):
            if rec.on:
                if phase == "start":
                    rec.gc_started = clock()
                else:
                    rec.gc_time += clock() - rec.gc_started
                    rec.gc_count += 1

        gc.callbacks.append(gc_phase)
        vcpu_module.Vcpu.run_once = timed_run
        vcpu_loop.dispatch = timed_dispatch
        sys.modules["monitor.syscalls.thread"].execve = timed_execve


def measure(program: str, loops: int, cprofile: int, calls: bool, wraps: list[str]) -> None:
    """km runs `busybox sh -c 'for ...; do PROGRAM; done'` as a shell loop forks and execs it; the first exec is
    dropped (a warm-up: the parent's lazily loaded modules), the table shows medians over the others."""
    with tempfile.NamedTemporaryFile(prefix="km-execprof-", suffix=".jsonl") as out:
        subprocess.run([sys.executable, __file__, "--child", program, "--loops", str(loops + 1), "--cprofile",
                        str(cprofile), "--out", out.name, *(f"--wrap={w}" for w in wraps)], check=True, cwd="/")
        results = [json.loads(line) for line in Path(out.name).read_text().splitlines()][1:]
    med = lambda key: statistics.median(r[key] for r in results)      # noqa: E731
    total, execve, kvm, handlers = med("total"), med("execve"), med("kvm"), med("handlers")
    print(f"\n{program} ({len(results)} execs): execve -> exit_group {total * 1e3:.2f} ms; execve itself "
          f"{execve * 1e3:.2f} ms; {int(med('nruns'))} KVM_RUNs {kvm * 1e3:.2f} ms; handlers "
          f"{handlers * 1e3:.2f} ms; rest (exit loop, wrappers) {(total - execve - kvm - handlers) * 1e3:.2f} ms; "
          f"{med('gcs')} collections {med('gc') * 1e3:.2f} ms; {med('faults')} host page faults")
    print(f"  CPU of the vCPU thread: {med('cpu') * 1e3:.2f} ms, of which in KVM_RUN {med('run_cpu') * 1e3:.2f} ms "
          f"(guest, shadow faults, cpuid, exits) and km {(med('cpu') - med('run_cpu')) * 1e3:.2f} ms")
    names = {name for r in results for name in r["calls"]}
    rows = []
    for name in names:
        count = statistics.median(r["calls"].get(name, [0, 0])[0] for r in results)
        sec = statistics.median(r["calls"].get(name, [0, 0])[1] for r in results)
        rows.append((sec, name, count))
    print(f"  {'syscall':<18}{'count':>6}{'us each':>9}{'us total':>10}")
    for sec, name, count in sorted(rows, reverse=True):
        print(f"  {name:<18}{int(count):>6}{sec / max(count, 1) * 1e6:>9.1f}{sec * 1e6:>10.0f}")
    for spec in wraps:
        count = statistics.median(r["wrapped"].get(spec, [0, 0])[0] for r in results)
        sec = statistics.median(r["wrapped"].get(spec, [0, 0])[1] for r in results)
        print(f"  {spec:<58}{count:>4} calls {sec * 1e6:8.0f} us")
    if calls:
        print(f"  the last exec's calls in order: {'KVM_RUN before':>14} {'handler':>8} (us)")
        for name, args, run, handler in results[-1]["order"]:
            print(f"    {name:<16}{args:<40}{run * 1e6:8.0f} {handler * 1e6:8.0f}")
    if cprofile:
        print(results[-1]["profile"])


def child(program: str, loops: int, cprofile: int, out: str, wraps: list[str]) -> None:
    from monitor import cli
    rec = Recorder(out, cprofile)
    rec.install()
    for spec in wraps:
        rec.wrap(spec)
    argv = [BUSYBOX, "sh", "-c", f"for i in $(seq {loops}); do {program}; done"]
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    cli.main(["km", *argv])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--program", action="append")
    parser.add_argument("--loops", type=int, default=5)
    parser.add_argument("--out")
    parser.add_argument("--wrap", action="append", help="also time MODULE:FUNCTION (repeatable)")
    parser.add_argument("--calls", action="store_true", help="list the last exec's syscalls in order, timed")
    parser.add_argument("--cprofile", type=int, default=0)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.loops, args.cprofile, args.out, args.wrap or [])
        return
    programs = args.program
    with tempfile.TemporaryDirectory(prefix="km-execprof-") as tmp:
        if not programs:
            programs = ["/bin/true", f"{BUSYBOX} true"]
            if shutil.which("musl-gcc"):
                src = Path(tmp) / "hello.c"
                src.write_bytes(HELLO)
                subprocess.run(["musl-gcc", "-static", "-O2", "-o", f"{tmp}/hello", str(src)], check=True)
                programs.append(f"{tmp}/hello")
        for program in programs:
            measure(program, args.loops, args.cprofile, args.calls, args.wrap or [])


if __name__ == "__main__":
    main()
