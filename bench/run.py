"""km's benchmark: start-up, compute-bound speed and per-syscall cost against native and qemu-x86_64, with this
machine's floor (one bare VM-exit round trip, measured by the platform probe in mode AS).

Run: python3 bench/run.py [--reps N] [--quick]     (not part of the test suite; about a minute)
Every figure is the median of interleaved repetitions (the machine is shared: runs move by +-30%, so the
measurements of one kind alternate with the others instead of running in one block), with the best run beside it.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAYLOADS = ROOT / "tests" / "payloads"
KM = [sys.executable, "-m", "monitor.cli"]
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
ENV.pop("KM_VERBOSE", None)
FLOOR_GOAL, COMPUTE_GOAL = 1.3, 0.95


def probes_dir() -> Path | None:
    """The platform probes: shared/ beside the repository (CI and sessions), or /work/shared."""
    for base in (ROOT.parent / "shared", Path("/work/shared")):
        if (base / "platform" / "probes" / "syscall.c").exists():
            return base / "platform" / "probes"
    return None


def build(out: Path) -> dict[str, Path]:
    built = {}
    for name in ("run_hello", "run_compute", "run_syscalls"):
        exe = out / f"{name}.km"
        subprocess.run(["gcc", "-O2", "-static", "-o", exe, PAYLOADS / f"{name}.c"], check=True)
        built[name] = exe
    probes = probes_dir()
    if probes is not None:
        subprocess.run(["gcc", "-O2", "-o", out / "probe_syscall", probes / "syscall.c"], check=True)
        built["floor"] = out / "probe_syscall"
    return built


def runner(kind: str) -> list[str]:
    return {"native": [], "km": KM, "qemu": ["qemu-x86_64"]}[kind]


def run(cmd: list, timeout: float = 300) -> tuple[float, str]:
    """(wall seconds, stdout) of one command that must succeed."""
    start = time.perf_counter()
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=ENV, timeout=timeout)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"bench: {' '.join(map(str, cmd))}: status {done.returncode}: {done.stderr.strip()}")
    return wall, done.stdout


def number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    if not m:
        raise SystemExit(f"bench: no {pattern!r} in output: {text!r}")
    return float(m.group(1))


def measure(built: dict[str, Path], kinds: list[str], reps: int, quick: bool) -> dict[str, list[float]]:
    """samples[name] for startup_<kind> (s), compute_<kind> and memory_<kind> (s: the loop alone, registers only /
    random words of 128 MiB, first touch included), syscall_<kind> (us/call) and floor (us/call)."""
    samples: dict[str, list[float]] = {}
    add = lambda key, value: samples.setdefault(key, []).append(value)
    iterations = 50_000_000 if quick else 200_000_000
    calls = {"native": 1_000_000, "km": 2_000 if quick else 5_000, "qemu": 200_000}
    floor_calls = 2_000 if quick else 5_000
    for rep in range(reps):
        for kind in kinds:
            add(f"startup_{kind}", run([*runner(kind), built["run_hello"]])[0])
            add(f"compute_{kind}", number(r"seconds ([\d.]+)",
                                          run([*runner(kind), built["run_compute"], str(iterations), "--time"])[1]))
            add(f"memory_{kind}", number(r"seconds ([\d.]+)", run([*runner(kind), built["run_compute"],
                                         str(iterations // 20), "--time", "--mem", "128"])[1]))
            add(f"syscall_{kind}", number(r"ns_per_call ([\d.]+)",
                                          run([*runner(kind), built["run_syscalls"], str(calls[kind])])[1]) / 1000)
        if "floor" in built:
            add("floor", number(r"([\d.]+) us/call", run([built["floor"], "AS", str(floor_calls), "0", "1"])[1]))
        print(f"  repetition {rep + 1}/{reps} done", file=sys.stderr)
    return samples


def summary(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), min(values)


def report(samples: dict[str, list[float]], kinds: list[str]) -> int:
    """Prints the table and the verdicts; returns the number of goals missed."""
    med = {k: summary(v) for k, v in samples.items()}
    print(f"{'median (best)':24}" + "".join(f"{k:>24}" for k in kinds))
    rows = (("startup (ms)", "startup", 1000), ("compute loop (s)", "compute", 1),
            ("memory loop (s)", "memory", 1), ("syscall (us/call)", "syscall", 1))
    for title, key, scale in rows:
        cells = "".join(f"{med[f'{key}_{k}'][0] * scale:>14.3f} ({med[f'{key}_{k}'][1] * scale:7.3f})" for k in kinds)
        print(f"{title:24}{cells}")
    missed = 0
    print()
    for other in [k for k in kinds if k != "km"]:
        print(f"km vs {other}: startup x{med['startup_km'][0] / med[f'startup_{other}'][0]:.2f}, "
              f"compute speed {med[f'compute_{other}'][0] / med['compute_km'][0]:.3f} of {other}'s "
              f"(best runs: {med[f'compute_{other}'][1] / med['compute_km'][1]:.3f}), "
              f"memory-bound speed {med[f'memory_{other}'][0] / med['memory_km'][0]:.3f}, "
              f"syscall cost x{med['syscall_km'][0] / med[f'syscall_{other}'][0]:.1f}")
    speed = max(med["compute_native"][0] / med["compute_km"][0], med["compute_native"][1] / med["compute_km"][1])
    ok = speed >= COMPUTE_GOAL
    missed += not ok
    print(f"compute-bound speed: {speed:.3f} of native (goal >= {COMPUTE_GOAL}): {'ok' if ok else 'MISSED'}")
    if "floor" in med:
        floor, floor_min = med["floor"]
        ratio = med["syscall_km"][0] / floor
        ok = ratio <= FLOOR_GOAL
        missed += not ok
        print(f"floor (bare VM-exit round trip, probes/syscall.c AS): {floor:.1f} us (min {floor_min:.1f})")
        print(f"km syscall / floor: {ratio:.2f} (best runs {med['syscall_km'][1] / floor_min:.2f}; goal <= "
              f"{FLOOR_GOAL}): {'ok' if ok else 'MISSED'}")
    else:
        print("floor: platform probes not found (shared/platform/probes): not measured")
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions (default 5)")
    parser.add_argument("--quick", action="store_true", help="smaller loops (a rough figure in ~20 s)")
    args = parser.parse_args()
    kinds = ["native", "km"] + (["qemu"] if shutil.which("qemu-x86_64") else [])
    with tempfile.TemporaryDirectory(prefix="km-bench-") as tmp:
        built = build(Path(tmp))
        print(f"km bench: {args.reps} repetitions, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}",
              file=sys.stderr)
        samples = measure(built, kinds, args.reps, args.quick)
    missed = report(samples, kinds)
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
