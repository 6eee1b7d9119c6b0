"""CPython as km's payload against the same /usr/bin/python3 run natively, as ratios from one run (issue 9 goals).

Run: python3 bench/python_bench.py [--reps N]      (not part of the test suite; about a minute)
  start      `python3 -c pass`: km's start-up plus the interpreter's (loader, ~60 libraries' mmaps, imports)
             km time / native time, goal <= 3
  unittest   `python3 -m unittest test.test_bisect` (libpython3.11-testsuite)         km / native, goal <= 3
  loop       a pure-Python loop timed inside the interpreter (no start-up, no syscalls)
             native time / km time (speed relative to native), goal >= 0.95
Each figure is the median of interleaved repetitions (km and native alternate, so the shared machine's load
shifts both), with the best run beside it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from monitor.process.self_exec import km_command  # noqa: E402  (km as it re-executes itself: no PYTHONPATH to leak)

PYTHON = "/usr/bin/python3"
LOOP = ("import time\nt = time.perf_counter()\ns = 0\nfor i in range(3_000_000):\n    s += i * i % 7\n"
        "print(time.perf_counter() - t)\n")
CASES = {"start": ([PYTHON, "-c", "pass"], 3.0), "unittest": ([PYTHON, "-m", "unittest", "test.test_bisect"], 3.0),
         "loop": ([PYTHON, "-c", LOOP], 0.95)}


def timed(command: list[str], inner: bool) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KM_", "PYTHON"))}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"python_bench: {' '.join(command[-4:])}: status {done.returncode}\n"
                         f"{done.stderr.decode(errors='replace')[-2000:]}")
    return float(done.stdout.split()[-1]) if inner else elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    km = os.environ.get("KM", "").split() or km_command()
    print(f"{'case':<10} {'native s':>9} {'km s':>9} {'ratio':>7} {'best':>7}  goal")
    failed = 0
    for name, (command, goal) in CASES.items():
        inner = name == "loop"
        native, under_km = [], []
        for _ in range(args.reps):
            native.append(timed(command, inner))
            under_km.append(timed([*km, *command], inner))
        n, k = statistics.median(native), statistics.median(under_km)
        ratio, best = (n / k, min(native) / min(under_km)) if inner else (k / n, min(under_km) / min(native))
        ok = ratio >= goal if inner else ratio <= goal
        failed += not ok
        print(f"{name:<10} {n:9.3f} {k:9.3f} {ratio:7.2f} {best:7.2f}  {'>=' if inner else '<='} {goal}"
              f"{'' if ok else '  (missed)'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
