"""bench/floor (issue 10's exec-loop floor): the probe compiles, runs one iteration in a real VM and the driver
prints its tables. No timing is asserted: the figures are the benchmark's, read by people."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_floor_probe_prints_its_table() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench/floor/floor.py"), "--iterations", "1", "--reps", "1",
                             "--runners", "native", "--no-perf"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "| body | runner | wall ms | CPU ms | / qemu-user (wall) | / floor (wall) |" in lines
    cells = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines if line.startswith("| ")]
    runners = {(row[0], row[1]) for row in cells}
    for body in ("fork only: (:)", "fork+exec /bin/true (dynamic)"):
        assert {(body, "native"), (body, "floor (probe)")} <= runners
    assert {row[0] for row in cells} >= {"exits (child)", "cpuid", "page touches (shadow faults)", "sum of the parts"}
    exits = next(line for line in lines if line.startswith("| exits (child) |"))
    assert re.search(r"\| [\d.]+ us x \d+ \|$", exits), exits     # cost per exit and how many
