"""The exec loop's fork and end, as a timeline (issue 10): from the payload's clone entering km to the forked km's
first KVM_RUN, and from its exit_group to the parent's wait4 returning, with the KVM ioctls the child makes on the way.

Run (root: it uses a tracefs instance of its own): python3 bench/fork_timeline.py [--iterations 12]
[--body /bin/true] [--km-root DIR]   (seconds; not part of the suite)
km runs `busybox sh -c 'for i in $(seq N); do BODY; done'` with one trace marker per payload syscall entering km
(a wrapper around the syscall dispatch: a write of ~2 us each), under the kernel's fork, exit, wait4 and ioctl
tracepoints; each forked child gives one row. Medians and minimums are printed: at load the scheduler's delays
move the medians, while the minimum shows the path itself.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from monitor.kvm import abi  # noqa: E402
TRACEFS = Path("/sys/kernel/tracing")
EVENTS = ("sched/sched_process_fork", "syscalls/sys_enter_ioctl", "syscalls/sys_exit_ioctl",
          "syscalls/sys_exit_wait4", "syscalls/sys_enter_exit_group")
# the child's ioctls by request number, named as in monitor/kvm/abi.py (which declares the numbers)
IOCTLS = {getattr(abi, name): name for name in (
    "KVM_CREATE_VM", "KVM_CREATE_VCPU", "KVM_RUN", "KVM_SET_USER_MEMORY_REGION", "KVM_SET_CPUID2", "KVM_SET_MSRS",
    "KVM_SET_SREGS", "KVM_GET_SREGS", "KVM_SET_XSAVE", "KVM_SET_XCRS", "KVM_SET_REGS", "KVM_GET_REGS")}
# km with a marker per payload syscall: the launcher patches monitor.syscalls.dispatch before km starts
LAUNCHER = """
import os, sys
sys.path.insert(0, sys.argv.pop(1))
import monitor.syscalls.dispatch as d
fd = os.open(sys.argv.pop(1), os.O_WRONLY | os.O_CLOEXEC)
fd = __import__("fcntl").fcntl(fd, __import__("fcntl").F_DUPFD_CLOEXEC, 1900)
plain, names = d._dispatch, d.NAMES
def marked(ctx, nr, *args):
    os.write(fd, b"KM> " + names.get(nr, str(nr)).encode())
    return plain(ctx, nr, *args)
d._dispatch = marked
sys.argv[0] = "km"
from monitor.cli import main
main()
"""
LINE = re.compile(r"^\s*.+?-(\d+)\s+\(\s*(\d+|-+)\)\s+\[\d+\]\s+\S+\s+([\d.]+): (\w+):? ?(.*)$")


def trace(km_root: str, body: str, iterations: int) -> str:
    """The trace text of one km run of the loop, in a tracefs instance removed afterwards."""
    instance = TRACEFS / "instances" / f"km-fork-timeline-{os.getpid()}"
    instance.mkdir()
    try:
        (instance / "buffer_size_kb").write_text("16384")
        (instance / "options" / "event-fork").write_text("1")
        (instance / "options" / "record-tgid").write_text("1")
        for event in EVENTS:
            (instance / "events" / event / "enable").write_text("1")
        busybox = shutil.which("busybox") or "/bin/busybox"
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(LAUNCHER)
        script = (f'echo $$ > {instance}/set_event_pid; echo 1 > {instance}/tracing_on; '
                  f'exec "$@"')
        subprocess.run(["sh", "-c", script, "sh", sys.executable, f.name, km_root, str(instance / "trace_marker"),
                        busybox, "sh", "-c", f"for i in $(seq {iterations}); do {body}; done"],
                       check=True, cwd="/", stdout=subprocess.DEVNULL, timeout=600)
        os.unlink(f.name)
        (instance / "tracing_on").write_text("0")
        return (instance / "trace").read_text()
    finally:
        for event in EVENTS:
            try:
                (instance / "events" / event / "enable").write_text("0")
            except OSError:
                pass
        instance.rmdir()


def timelines(text: str) -> tuple[list[dict[str, float]], dict[str, list[float]]]:
    """One dict per forked child (ms from the clone entering km), and the child's ioctl durations (us) by name."""
    clone_at: dict[str, float] = {}            # thread -> its last `KM> clone`
    rows: dict[str, dict[str, float]] = {}     # child tgid -> its times
    pending: dict[str, tuple[float, str]] = {}
    ioctl_us: dict[str, list[float]] = collections.defaultdict(list)
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        tid, tgid, ts, name, rest = m.group(1), m.group(2), float(m.group(3)), m.group(4), m.group(5)
        row = rows.get(tgid)
        if name == "tracing_mark_write":
            call = rest[4:]
            if call in ("clone", "fork", "vfork"):
                clone_at[tid] = ts
            elif row is not None and call in ("execve", "exit_group") and call not in row:
                row[call] = ts
        elif name == "sched_process_fork" and tid in clone_at:
            child = re.search(r"child_pid=(\d+)", rest).group(1)
            rows[child] = {"clone": clone_at.pop(tid), "parent": float(tid)}
        elif name == "sys_ioctl" and row is not None:
            if "cmd:" in rest:
                cmd = int(re.search(r"cmd: (0x[0-9a-f]+)", rest).group(1), 16)
                pending[tid] = (ts, IOCTLS.get(cmd, hex(cmd)))
            elif tid in pending:
                start, call = pending.pop(tid)
                if call == "KVM_RUN":
                    row.setdefault("first KVM_RUN", start)
                elif "first KVM_RUN" not in row:
                    ioctl_us[call].append(1e6 * (ts - start))
                    row.setdefault("KVM_CREATE_VM" if call == "KVM_CREATE_VM" else "_", start)
        elif name == "sys_wait4" and "->" in rest:
            pid = str(int(rest.split("-> ")[1], 16))
            if pid in rows and "wait4 returns" not in rows[pid]:
                rows[pid]["wait4 returns"] = ts
    done = []
    for row in rows.values():
        if "exit_group" in row and "wait4 returns" in row and "first KVM_RUN" in row:
            t0 = row["clone"]
            done.append({k: 1e3 * (v - t0) for k, v in row.items() if k not in ("clone", "parent", "_")})
    return done, ioctl_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--body", default="/bin/true")
    parser.add_argument("--km-root", default=str(ROOT), help="the checkout whose km runs")
    args = parser.parse_args()
    if not (TRACEFS / "instances").is_dir() or os.geteuid() != 0:
        raise SystemExit("fork_timeline: needs root and tracefs at /sys/kernel/tracing")
    rows, ioctl_us = timelines(trace(args.km_root, args.body, args.iterations))
    if not rows:
        raise SystemExit("fork_timeline: no forked child traced")
    print(f"{len(rows)} forked children of `for i in $(seq {args.iterations}); do {args.body}; done`; "
          "ms from the payload's clone entering km (median / min)")
    print("| step | median | min |\n| --- | --- | --- |")
    for step in ("KVM_CREATE_VM", "first KVM_RUN", "execve", "exit_group", "wait4 returns"):
        values = [r[step] for r in rows if step in r]
        if values:
            print(f"| {step} | {statistics.median(values):.2f} | {min(values):.2f} |")
    gaps = [r["wait4 returns"] - r["exit_group"] for r in rows]
    print(f"| exit_group -> the parent's wait4 returns | {statistics.median(gaps):.2f} | {min(gaps):.2f} |")
    print("the child's ioctls before its first KVM_RUN, us (median / min, count per child)")
    for call, values in sorted(ioctl_us.items(), key=lambda kv: -statistics.median(kv[1])):
        print(f"| {call} | {statistics.median(values):.0f} | {min(values):.0f} | {len(values) / len(rows):.0f} |")


if __name__ == "__main__":
    main()
