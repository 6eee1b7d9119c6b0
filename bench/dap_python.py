"""Debugging a Python program through kdbg-dap: the time from `launch` to the first breakpoint stop, with the
interpreter (and debugpy's server inside it) run by km against run natively (issue 14; goal km <= 3 x native).

Run: python3 bench/dap_python.py [--reps N]      (~1 min at the default 5; the machine is shared, so the runs are
interleaved and medians are reported)

Each run is a fresh kdbg-dap (the test-side DAP client, tests/harness/dap.py) after `initialize`: `launch` of
tests/payloads/dap_app.py with a breakpoint in add(), then `initialized` (debugpy's adapter is attached), then
`stopped`. The native column is the same kdbg-dap with KDBG_DAP_PYTHON_RUNNER=native (kdbg/dap/python.py), so
the only difference is who runs the interpreter. For scale, the plain run of the same script (no debugger) by km
and natively.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from harness.dap import DapClient, marker_path  # noqa: E402
from harness.km import km_env  # noqa: E402
from harness.markers import line_of  # noqa: E402
from kdbg.dap.python import RUNNER_ENV  # noqa: E402

PYTHON = "/usr/bin/python3"
SRC = "dap_app.py"
KM = [sys.executable, "-m", "monitor.cli"]


def to_first_stop(runner: str) -> tuple[float, float]:
    """(launch -> initialized, launch -> stopped at the breakpoint), in seconds, for one fresh session."""
    client = DapClient(env={RUNNER_ENV: "native"} if runner == "native" else {})
    try:
        client.call("initialize", {"adapterID": "km", "linesStartAt1": True, "columnsStartAt1": True,
                                   "pathFormat": "path"})
        start = time.perf_counter()
        client.send("launch", {"type": "km", "request": "launch", "program": marker_path(SRC), "args": [],
                               "python": PYTHON, "kmPath": KM})
        client.wait_event("initialized", timeout_s=120)
        ready = time.perf_counter()
        client.call("setBreakpoints", {"source": {"path": marker_path(SRC)},
                                       "breakpoints": [{"line": line_of(SRC, "py_add")}]})
        client.call("configurationDone")
        stop = client.wait_event("stopped", timeout_s=120)
        stopped = time.perf_counter()
        if stop.get("reason") != "breakpoint":
            raise SystemExit(f"bench: {runner}: stopped for {stop.get('reason')}, not the breakpoint")
        return ready - start, stopped - start
    finally:
        client.close()


def plain_run(runner: str) -> float:
    argv = [*KM, PYTHON, marker_path(SRC)] if runner == "km" else [PYTHON, marker_path(SRC)]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=km_env(), timeout=120)
    if done.returncode != 3:
        raise SystemExit(f"bench: {runner}: dap_app.py exited {done.returncode}: {done.stderr.decode()[-300:]}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    reps = ap.parse_args().reps
    runners = ("native", "km")
    for runner in runners:                                    # warm-up: page cache, byte code, capabilities
        to_first_stop(runner)
    ready: dict[str, list[float]] = {r: [] for r in runners}
    stop: dict[str, list[float]] = {r: [] for r in runners}
    plain: dict[str, list[float]] = {r: [] for r in runners}
    for _ in range(reps):
        for runner in runners:
            a, b = to_first_stop(runner)
            ready[runner].append(a)
            stop[runner].append(b)
            plain[runner].append(plain_run(runner))
    med = {name: {r: statistics.median(v[r]) for r in runners} for name, v in
           (("launch -> first breakpoint stop", stop), ("launch -> initialized (debugpy attached)", ready),
            ("plain run of dap_app.py, no debugger", plain))}
    print(f"{'case':42} {'native s':>9} {'km s':>9} {'km/native':>10}   (medians of {reps} interleaved runs)")
    for name, row in med.items():
        print(f"{name:42} {row['native']:9.2f} {row['km']:9.2f} {row['km'] / row['native']:9.2f}x")
    ratio = med["launch -> first breakpoint stop"]["km"] / med["launch -> first breakpoint stop"]["native"]
    print(f"goal: launch -> first stop under km <= 3 x native: {'met' if ratio <= 3 else 'NOT met'} ({ratio:.2f}x)")


if __name__ == "__main__":
    main()
