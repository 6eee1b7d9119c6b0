"""The platform floor of one exec-loop iteration (issue 10) beside the loop's anchors, measured in one run.

Run: python3 bench/floor/floor.py [--iterations 30] [--reps 3] [--runners native,qemu-user,km] [--no-perf]
(not part of the suite; ~20 s at rest). probe.c (compiled here with gcc) does, per iteration, only the kernel/KVM
work a monitor of km's design cannot avoid: fork, a fresh VM and vCPU in the child with km's memslots, a guest
making km's exits, cpuid instructions and shadow page faults, teardown, the parent's wait and its own guest's exits.
With perf and the kvm tracepoints readable, the counts are taken from km's real iteration (perf stat of the loop of
N against the loop of 0) and checked on the probe the same way; else (--no-perf) this session's counts are used.
The anchors are bench/exec_loop.py's runners and timing (imported), for its `(:)` and dynamic `/bin/true` bodies.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import exec_loop  # noqa: E402  (bench/ is a folder of scripts, not a package)

FORK, EXEC = "fork only: (:)", "fork+exec /bin/true (dynamic)"
BODIES = {FORK: exec_loop.BODIES[FORK], EXEC: exec_loop.BODIES[EXEC]}
# km's real iteration, counted by perf on 2026-12-07 (main 42642b5, kvm-pvm): exits to km, emulated cpuid, shadow
# faults (kvmmmu:kvm_mmu_spte_requested). The shell's side is 5 exits (clone, wait4, the SIGCHLD kick,
# rt_sigreturn, wait4) and the pages it writes again after the fork; the rest is the child's.
KM_COUNTS = {FORK: {"exits": 8.7, "cpuid": 0.0, "faults": 99.3}, EXEC: {"exits": 37.4, "cpuid": 43.0, "faults": 147.7}}
PARENT_EXITS, PARENT_PAGES, OWN_FAULTS = 5, 8, 2     # OWN_FAULTS: the probe's code and stack pages
EVENTS = {"exits": "kvm:kvm_userspace_exit", "cpuid": "kvm:kvm_cpuid", "faults": "kvmmmu:kvm_mmu_spte_requested",
          "shadow tables": "kvmmmu:kvm_mmu_get_page", "host invalidations": "kvm:kvm_unmap_hva_range"}
INVALIDATIONS = "host invalidations"
Series = dict[tuple[str, str], list[float]]      # (body, runner or part) -> one figure per repetition
PART_LABELS = {"fork": "fork (parent's fork() to the child running)", "vm": "VM + vCPU created (km's child's ioctls)",
               "memslots": "memslots (km's 3) + libc mapped", "exits": "exits (child)", "cpuid": "cpuid",
               "pages": "page touches (shadow faults)", "teardown": "teardown: child's exit to the parent's wait",
               "parent": "parent: its guest's exits, re-written pages"}


def fail(subject: str, problem: str) -> NoReturn:
    raise SystemExit(f"floor: {subject}: {problem}")


def build(out: Path) -> Path:
    gcc = shutil.which("gcc") or fail("gcc", "not found (apt-get install gcc)")
    binary = out / "probe"
    result = subprocess.run([gcc, "-O2", "-Wall", "-o", str(binary), str(HERE / "probe.c")], capture_output=True,
                            text=True)
    if result.returncode:
        fail("probe.c", f"does not compile: {result.stderr.strip()}")
    return binary


def probe_command(binary: Path, settings: dict[str, int]) -> list[str]:
    return [str(binary), *(f"{k}={v}" for k, v in settings.items())]


def probe(binary: Path, settings: dict[str, int]) -> dict:
    result = subprocess.run(probe_command(binary, settings), capture_output=True, text=True, timeout=300)
    if result.returncode:
        fail("probe", result.stderr.strip() or f"status {result.returncode}")
    return json.loads(result.stdout)


def loop_command(runner: tuple[list[str], dict[str, str]], body: str, n: int) -> list[str]:
    """exec_loop's command for `body` (exec_loop.seconds builds the same one)."""
    return [*runner[0], exec_loop.BUSYBOX, "sh", "-c", f"for i in $(seq {n}); do {body}; done"]


def perf_counts(command: list[str], env: dict[str, str] | None = None) -> dict[str, float] | None:
    """Totals of EVENTS over one run of `command` and its children (perf stat), or None when perf cannot count."""
    perf = shutil.which("perf")
    if not perf:
        return None
    result = subprocess.run([perf, "stat", "-x,", "-e", ",".join(EVENTS.values()), "--", *command],
                            capture_output=True, text=True, env=env, cwd="/", timeout=300)
    found = {}
    for line in result.stderr.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2] in EVENTS.values() and fields[0].isdigit():
            found[fields[2]] = float(fields[0])
    if result.returncode or len(found) < len(EVENTS):
        return None
    return {name: found[event] for name, event in EVENTS.items()}


def per_iteration(more: dict[str, float] | None, less: dict[str, float] | None, n: int) -> dict[str, float] | None:
    return None if more is None or less is None else {k: (more[k] - less[k]) / n for k in more}


def settings_for(body: str, counts: dict[str, float], iterations: int) -> dict[str, int]:
    """The probe's arguments for km's counts: the shell's share goes to the parent's guest, the rest to the child.
    A `(:)` child touches the inherited image (reads: the cheaper kind); an exec's child fresh pages, a third of
    them libc's file pages (km maps libc's code and rodata from the file)."""
    pages = max(0, round(counts["faults"]) - PARENT_PAGES - OWN_FAULTS)
    touches = {"image": pages, "anon": 0, "file": 0} if body == FORK else \
        {"image": 0, "anon": pages - pages // 3, "file": pages // 3}
    return {"iterations": iterations, "exits": max(3, round(counts["exits"]) - PARENT_EXITS),
            "cpuid": round(counts["cpuid"]), **touches, "parent_exits": PARENT_EXITS, "parent_pages": PARENT_PAGES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--runners", default="native,qemu-user,km", help="anchors beside the floor (comma-separated)")
    parser.add_argument("--no-perf", action="store_true", help="use this session's counts of km's iteration")
    args = parser.parse_args()
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        fail("/dev/kvm", "not usable (the probe runs real VMs)")
    available = exec_loop.runners(None)
    chosen = {name: available[name] for name in args.runners.split(",") if name in available}
    with tempfile.TemporaryDirectory(prefix="km-floor-") as tmp:
        binary = build(Path(tmp))
        counts: dict[str, dict[str, float]] = {}
        source: dict[str, str] = {}
        checked: dict[str, dict[str, float] | None] = {}
        for body, loop in BODIES.items():
            counts[body], source[body] = dict(KM_COUNTS[body]), "this session's perf count of km (--no-perf)"
            if not args.no_perf and "km" in available:
                n, km = max(args.iterations, 5), available["km"]
                counted = per_iteration(perf_counts(loop_command(km, loop, n), km[1]),
                                        perf_counts(loop_command(km, loop, 0), km[1]), n)
                if counted:
                    counts[body], source[body] = counted, f"perf stat of km's loop of {n} minus its loop of 0"
        settings = {body: settings_for(body, counts[body], args.iterations) for body in BODIES}
        if not args.no_perf and all("km" in text for text in source.values()):
            for body in BODIES:
                twice = dict(settings[body], iterations=2 * args.iterations)
                checked[body] = per_iteration(perf_counts(probe_command(binary, twice)),
                                              perf_counts(probe_command(binary, settings[body])), args.iterations)
        # km's host copy-on-write faults beyond the probe's (CPython's heap): not the design's, timed apart
        cow = round(counts[EXEC][INVALIDATIONS] - checked[EXEC][INVALIDATIONS]) if checked.get(EXEC) else 0
        cows: list[float] = []
        alone = {"iterations": args.iterations, "vm": 0, "parent_exits": 0}
        walls: Series = {}
        cpus: Series = {}
        parts: Series = {}
        for _ in range(args.reps):
            for body, loop in BODIES.items():
                for name, runner in chosen.items():
                    wall_n, cpu_n = exec_loop.seconds(runner, loop, args.iterations)
                    wall_0, cpu_0 = exec_loop.seconds(runner, loop, 0)
                    walls.setdefault((body, name), []).append((wall_n - wall_0) / args.iterations * 1e3)
                    cpus.setdefault((body, name), []).append((cpu_n - cpu_0) / args.iterations * 1e3)
                found = probe(binary, settings[body])
                walls.setdefault((body, "floor (probe)"), []).append(found["median_ms"])
                cpus.setdefault((body, "floor (probe)"), []).append(found["cpu_ms"])
                for part, ms in found["parts_ms"].items():
                    parts.setdefault((body, part), []).append(ms)
                if body == EXEC and cow > 0:
                    cows.append(probe(binary, dict(settings[EXEC], cow=cow))["parts_ms"]["cow"])
            found = probe(binary, alone)
            walls.setdefault(("", "fork + wait alone (probe, no VM)"), []).append(found["median_ms"])
            cpus.setdefault(("", "fork + wait alone (probe, no VM)"), []).append(found["cpu_ms"])
        report(args, walls, cpus, parts, settings, counts, source, checked)
        if cows:
            ms = statistics.median(cows)
            print(f"not the design's: km's {cow} host copy-on-write faults per iteration beyond the probe's "
                  f"({INVALIDATIONS}, mostly CPython's heap after the fork) cost {ms:.2f} ms when the probe's child "
                  f"makes them ({ms * 1e3 / cow:.1f} us each; probe argument cow={cow})")


def report(args: argparse.Namespace, walls: Series, cpus: Series, parts: Series, settings: dict[str, dict[str, int]],
           counts: dict[str, dict[str, float]], source: dict[str, str],
           checked: dict[str, dict[str, float] | None]) -> None:
    """The tables: runners per body, the floor's parts, the counts check, km above the floor, the verdict."""
    med = {key: statistics.median(v) for key, v in walls.items()}
    cpu = {key: statistics.median(v) for key, v in cpus.items()}
    print(f"exec loop, {args.iterations} iterations, medians of {args.reps} interleaved runs; ms per iteration (the "
          "anchors' wall: (t(N) - t(0)) / N; the probe's: the median iteration, which a stall on the shared machine "
          "does not move; CPU: all processes, per iteration)")
    print("| body | runner | wall ms | CPU ms | / qemu-user (wall) | / floor (wall) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (body, name), ms in med.items():
        qemu, floor = med.get((body, "qemu-user")), med.get((body, "floor (probe)"))
        print(f"| {body} | {name} | {ms:.2f} | {cpu[(body, name)]:.2f} | {f'{ms / qemu:.2f}' if qemu else '-'} | "
              f"{f'{ms / floor:.2f}' if floor else '-'} |")
    print()
    print("the floor's parts, ms (medians of the per-iteration parts; per event: the exec body's)")
    print(f"| part | {FORK} | {EXEC} | share ({EXEC}) | per event |")
    print("| --- | --- | --- | --- | --- |")
    events = {"exits": settings[EXEC]["exits"], "cpuid": settings[EXEC]["cpuid"],
              "pages": settings[EXEC]["anon"] + settings[EXEC]["file"], "parent": PARENT_EXITS}
    sums = {body: sum(statistics.median(parts[(body, part)]) for part in PART_LABELS) for body in BODIES}
    for part, label in PART_LABELS.items():
        fork, ms = (statistics.median(parts[(body, part)]) for body in BODIES)
        each = f"{ms * 1e3 / events[part]:.1f} us x {events[part]}" if events.get(part) else ""
        print(f"| {label} | {fork:.3f} | {ms:.3f} | {ms / sums[EXEC]:.0%} | {each} |")
    print(f"| sum of the parts | {sums[FORK]:.3f} | {sums[EXEC]:.3f} | | |")
    print()
    for body in BODIES:
        print(f"{body}: counts from {source[body]}; probe settings: "
              + " ".join(f"{k}={v}" for k, v in settings[body].items() if k != "iterations"))
    if checked:
        print()
        print("counts per iteration (perf stat, kvm tracepoints): km's real iteration against the probe's")
        print(f"| event | km {FORK} | probe | km {EXEC} | probe |")
        print("| --- | --- | --- | --- | --- |")
        for name, event in EVENTS.items():
            print(f"| {name} ({event}) | {counts[FORK][name]:.1f} | {checked[FORK][name]:.1f} | "
                  f"{counts[EXEC][name]:.1f} | {checked[EXEC][name]:.1f} |")
    km, floor = (EXEC, "km"), (EXEC, "floor (probe)")
    if km in med:
        print()
        for what, figures in (("wall", med), ("CPU", cpu)):
            exec_km = figures[km] - figures[(FORK, "km")]
            exec_floor = figures[floor] - figures[(FORK, "floor (probe)")]
            print(f"km above the floor ({what}): fork half ({FORK}) "
                  f"{figures[(FORK, 'km')] - figures[(FORK, 'floor (probe)')]:.2f} ms; exec half (the difference of "
                  f"the two bodies) {exec_km - exec_floor:.2f} ms (km {exec_km:.2f} against the floor's {exec_floor:.2f})")
    qemu = med.get((EXEC, "qemu-user"))
    if qemu is not None and qemu <= 0:
        print("qemu-user's time per iteration came out at or below zero (noise): run more iterations")
    elif qemu:
        ratios = [f / q for f, q in zip(walls[floor], walls[(EXEC, "qemu-user")])]
        budget = exec_loop.GOAL * qemu
        verdict = "below the floor: unreachable here" if budget < med[floor] else \
            "above the floor: reachable only if km adds less than the difference"
        print(f"floor / qemu-user ({EXEC}) = {med[floor] / qemu:.2f} (per run {min(ratios):.2f}-{max(ratios):.2f}; "
              f"CPU {cpu[floor] / cpu[(EXEC, 'qemu-user')]:.2f}); "
              f"the goal's budget (km <= {exec_loop.GOAL:g} x qemu-user) is {budget:.2f} ms against the floor's "
              f"{med[floor]:.2f} ms: the goal is {verdict}")


if __name__ == "__main__":
    main()
