"""Where one payload syscall's time goes in km: KVM_RUN (guest + exit + re-entry), the exit loop's own Python, the
syscall path around the handler (VcpuThread._syscall), and the handler (dispatch). Runs tests/payloads/run_syscalls.c
in-process with timers wrapped around those three layers, next to the probe's bare exit (the floor).

Run: python3 bench/profile_syscall.py [CALLS=5000]      (not part of the test suite)
The wrappers add ~0.2-0.4 us each; the figures below include them (measured and printed as "timer overhead").
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import probes_dir  # noqa: E402


def timed(totals: dict[str, list[int]], key: str, fn):
    clock = time.perf_counter_ns

    def wrapper(*args):
        start = clock()
        try:
            return fn(*args)
        finally:
            slot = totals[key]
            slot[0] += clock() - start
            slot[1] += 1
    return wrapper


def profile(program: Path, calls: int) -> tuple[dict[str, list[int]], float, str]:
    from monitor import cli
    from monitor.vcpu import loop as vcpu_loop
    from monitor.kvm import vcpu as vcpu_module
    totals = {k: [0, 0] for k in ("KVM_RUN", "_syscall", "dispatch")}
    vcpu_module.Vcpu.run_once = timed(totals, "KVM_RUN", vcpu_module.Vcpu.run_once)
    vcpu_loop.VcpuThread._syscall = timed(totals, "_syscall", vcpu_loop.VcpuThread._syscall)
    vcpu_loop.dispatch = timed(totals, "dispatch", vcpu_loop.dispatch)
    from monitor.process.payload import Process
    read_end, write_end = os.pipe()
    saved = os.dup(1)
    os.dup2(write_end, 1)            # the payload's stdout, to read its own per-call figure
    try:
        start = time.perf_counter()
        proc = Process(str(program), [str(program), str(calls)], ["PATH=/usr/bin"])
        proc.start(proc.prepare_main_thread())
        ending = proc.wait()
        wall = time.perf_counter() - start
    finally:
        os.dup2(saved, 1)
        os.close(write_end)
    out = os.read(read_end, 4096).decode()
    if ending.status != 0:
        raise SystemExit(f"profile: payload ended with {ending}")
    return totals, wall, out


def timer_overhead() -> float:
    """us added by one timed() wrapper around a no-op."""
    totals = {"x": [0, 0]}
    f = timed(totals, "x", lambda: None)
    n = 200_000
    start = time.perf_counter_ns()
    for _ in range(n):
        f()
    bare_start = time.perf_counter_ns()
    g = lambda: None  # noqa: E731
    for _ in range(n):
        g()
    end = time.perf_counter_ns()
    return ((bare_start - start) - (end - bare_start)) / n / 1000


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    with tempfile.TemporaryDirectory(prefix="km-prof-") as tmp:
        program = Path(tmp) / "run_syscalls.km"
        subprocess.run(["gcc", "-O2", "-static", "-o", program, ROOT / "tests/payloads/run_syscalls.c"], check=True)
        floor = None
        probes = probes_dir()
        if probes is not None:
            subprocess.run(["gcc", "-O2", "-o", Path(tmp) / "probe", probes / "syscall.c"], check=True)
            text = subprocess.run([Path(tmp) / "probe", "AS", str(calls), "0", "3"], capture_output=True,
                                  text=True).stdout
            floor = float(re.search(r"([\d.]+) us/call", text).group(1))
        totals, wall, out = profile(program, calls)
    per_call = float(re.search(r"ns_per_call ([\d.]+)", out).group(1)) / 1000
    n = totals["KVM_RUN"][1]
    kvm = totals["KVM_RUN"][0] / n / 1000
    sys_path = totals["_syscall"][0] / totals["_syscall"][1] / 1000
    handler = totals["dispatch"][0] / totals["dispatch"][1] / 1000
    print(f"payload: {per_call:.2f} us per getppid as the payload measures it ({calls} calls, {n} KVM_RUNs, "
          f"km ran {wall:.2f} s in all)")
    if floor:
        print(f"floor (probes/syscall.c AS, same machine, just before): {floor:.2f} us  -> ratio {per_call / floor:.2f}")
    print(f"  KVM_RUN ioctl (guest + exit + re-entry)      {kvm:8.2f} us")
    print(f"  exit loop in Python (rest of VcpuThread._loop) {per_call - kvm - sys_path:8.2f} us")
    print(f"  _syscall around the handler                  {sys_path - handler:8.2f} us")
    print(f"  dispatch + handler (sys_getppid)             {handler:8.2f} us")
    print(f"  timer overhead per wrapper (included above)  {timer_overhead():8.2f} us")


if __name__ == "__main__":
    main()
