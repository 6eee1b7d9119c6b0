"""Snapshot benchmark (issue 13): a Python program with a long warm-up (bench/payloads/heavy_imports.py imports
json, decimal, asyncio, email, http.server, sqlite3, xml.etree and more) started cold under km, against the same
program resumed by km from a snapshot it took of itself after its imports. Both are timed from km's launch to the
program's first output line; runs alternate (the machine is shared) and the table shows medians. Goal: resume at
most 1/3 of the cold start.

Run: python3 bench/snapshot.py [--runs N] [--python /usr/bin/python3]   (not part of the test suite; ~20 s)
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KM = [sys.executable, "-m", "monitor.cli"]
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
ENV.pop("KM_VERBOSE", None)
SCRIPT = ROOT / "bench" / "payloads" / "heavy_imports.py"
PAYLOAD_PATH = f"PYTHONPATH={ROOT / 'include' / 'python'}"      # the payload's `from km import snapshots`


def first_line(cmd: list[str], cwd: str) -> tuple[float, bytes]:
    """Seconds from launch to the first line on stdout, and that line (the process is then waited for)."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=cwd)
    line = proc.stdout.readline()
    elapsed = time.monotonic() - started
    _, err = proc.communicate(timeout=120)
    if proc.returncode or not line:
        raise SystemExit(f"bench/snapshot.py: {' '.join(cmd)}: status {proc.returncode}: {err.decode()[-500:]}")
    return elapsed, line


def main() -> None:
    """Take the snapshot once, then alternate cold starts and resumes (the machine is shared: medians)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--python", default="/usr/bin/python3", help="the payload: a dynamic Python interpreter")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="km-bench-snapshot-") as work:
        snapshot = os.path.join(work, "warm.kmsnap")
        cold_cmd = [*KM, "--putenv", PAYLOAD_PATH, args.python, str(SCRIPT)]
        started = time.monotonic()
        subprocess.run([*KM, f"--snapshot={snapshot}", "--putenv", PAYLOAD_PATH, args.python, str(SCRIPT),
                        "--snapshot"], check=True, env=ENV, cwd=work, capture_output=True, timeout=300)
        take_s = time.monotonic() - started
        size = os.stat(snapshot)
        cold, resumed = [], []
        for _ in range(args.runs):
            t, line = first_line(cold_cmd, work)
            assert b'"cold"' in line, line
            cold.append(t)
            t, line = first_line([*KM, snapshot], work)
            assert b'"resumed"' in line, line
            resumed.append(t)
    cold_s, resume_s = statistics.median(cold), statistics.median(resumed)
    print(f"payload: {args.python} {SCRIPT.relative_to(ROOT)}; {args.runs} runs each, alternating, medians")
    print(f"snapshot: {size.st_size / 2**20:.1f} MiB ({size.st_blocks * 512 / 2**20:.1f} MiB on disk), "
          f"cold start + imports + snapshot written in {take_s:.2f} s")
    print(f"{'':28}{'seconds':>10}")
    print(f"{'cold start to first output':28}{cold_s:>10.3f}")
    print(f"{'resume to first output':28}{resume_s:>10.3f}")
    print(f"resume / cold = {resume_s / cold_s:.2f} (goal <= 0.33)")


if __name__ == "__main__":
    main()
