"""The exec loop (issue 10): `busybox sh -c 'for i in $(seq N); do BODY; done'` under km, natively and under
qemu-user, with the time per iteration and km's ratio to qemu-user (goal: /bin/true's row <= 2x qemu-user).

Run: python3 bench/exec_loop.py [--iterations 50] [--reps 3] [--before DIR] [--inline-teardown]   (minutes; not
part of the suite)
--before DIR adds a "km before" column: km from another checkout (e.g. `git worktree add DIR <older commit>`),
measured in the same interleaved run.
The time per iteration is (t(N) - t(0)) / N of the same command, so each runner's own start-up drops out. Runs
alternate between the runners within each repetition (the machine is shared) and the table shows medians.
Bodies: `(:)` is a fork alone (a subshell that exits); `/bin/true` a fork and an exec of a dynamic (glibc)
program; `busybox true` a fork and an exec of a static one (busybox by its path, so the shell execs it).
Note on the anchor: qemu-user (without a binfmt_misc entry for x86-64, as on this host) passes a payload's execve
to the host kernel, so under qemu-user the exec'ed program runs natively; only the shell runs emulated.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KM = [sys.executable, "-m", "monitor.cli"]
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
ENV.pop("KM_VERBOSE", None)
BUSYBOX = shutil.which("busybox") or "/usr/bin/busybox"
BODIES = {"fork only: (:)": "(:)", "fork+exec /bin/true (dynamic)": "/bin/true",
          "fork+exec busybox true (static)": f"{BUSYBOX} true"}
GOAL = 2.0


def runners(before: str | None, inline_teardown: bool = False) -> dict[str, tuple[list[str], dict[str, str]]]:
    found = {"native": ([], ENV), "km": (KM, ENV)}
    if inline_teardown:         # a forked km's plain exit (monitor/process/teardown.py's twin)
        found["km inline teardown"] = (KM, dict(ENV, KM_TEARDOWN="inline"))
    if before:
        found["km before"] = (KM, dict(ENV, PYTHONPATH=before + os.pathsep + os.environ.get("PYTHONPATH", "")))
    qemu = shutil.which("qemu-x86_64")
    if qemu:
        found["qemu-user"] = ([qemu], ENV)
    return found


def seconds(runner: tuple[list[str], dict[str, str]], body: str, n: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one run (bench/floor/floor.py times its runs with it too)."""
    return measure(runner, body, n)[:2]


def measure(runner: tuple[list[str], dict[str, str]], body: str, n: int) -> tuple[float, float, int]:
    """(wall, CPU) seconds and host page faults of one run: CPU is user+system of the runner and every process it
    waited for, which a shared machine's load does not inflate the way it inflates the wall time; the faults
    (minor, same processes) are mostly a fork's copy-on-write of km's Python heap."""
    prefix, env = runner
    cmd = [*prefix, BUSYBOX, "sh", "-c", f"for i in $(seq {n}); do {body}; done"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # not in a checkout: `python -m` puts the working directory first on sys.path, ahead of PYTHONPATH
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd="/")
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: status {result.returncode}: {result.stderr.strip()}")
    return (elapsed, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
            after.ru_minflt - before.ru_minflt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--bodies", default=",".join(BODIES), help="comma-separated row names (default: all)")
    parser.add_argument("--before", help="another checkout whose km runs beside this one's")
    parser.add_argument("--inline-teardown", action="store_true",
                        help="one more km column: forked kms tear down before they exit (KM_TEARDOWN=inline); their CPU "
                             "then counts the teardown, which a holder's exit leaves out (init reaps the holder)")
    args = parser.parse_args()
    found = runners(args.before, args.inline_teardown)
    names = [b for b in args.bodies.split(",") if b]
    per: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    faults: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.reps):
        for name in names:
            for runner, how in found.items():
                full, full_cpu, full_faults = measure(how, BODIES[name], args.iterations)
                empty, empty_cpu, empty_faults = measure(how, BODIES[name], 0)
                per.setdefault((name, runner), []).append((full - empty) / args.iterations)
                cpu.setdefault((name, runner), []).append((full_cpu - empty_cpu) / args.iterations)
                faults.setdefault((name, runner), []).append((full_faults - empty_faults) / args.iterations / 1e3)  # shown x1e3
    table(f"loop of {args.iterations}, medians of {args.reps} interleaved runs; wall ms per iteration", per,
          names, found, args.before)
    table("the same runs, CPU ms (user+system, all processes) per iteration", cpu, names, found, args.before)
    table("the same runs, host page faults (minor, all processes) per iteration", faults, names, found,
          args.before)
    print(f"goal: /bin/true's km / qemu-user <= {GOAL} (wall)")


def table(title: str, per: dict[tuple[str, str], list[float]], names: list[str], found: dict,
          before: str | None) -> None:
    print(title)
    others = [r for r in found if r not in ("km", "native", "qemu-user")]
    extra = "".join(f" {r} | {r} / qemu-user |" for r in others)
    print(f"| body | km | native | qemu-user | km / native | km / qemu-user |{extra}")
    print("| --- " * (6 + 2 * len(others)) + "|")
    for name in names:
        km, native = (statistics.median(per[(name, r)]) for r in ("km", "native"))
        qemu = statistics.median(per[(name, "qemu-user")]) if "qemu-user" in found else float("nan")
        row = f"| {name} | {km * 1e3:.2f} | {native * 1e3:.2f} | {qemu * 1e3:.2f} | {km / native:.1f} | {km / qemu:.2f} |"
        for other in others:
            old = statistics.median(per[(name, other)])
            row += f" {old * 1e3:.2f} | {old / qemu:.2f} |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
