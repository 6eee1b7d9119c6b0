"""`gcore` through the stub (issue 5: gdb's gcore through the stub produces a usable core), on km and on
gdbserver as the reference: gdb reads the payload's /proc/<pid>/smaps through vFile, so the core must hold the
guest's mappings (stack included), not km's own."""
from __future__ import annotations

import re
import subprocess

from harness.debuggee import run_to
from harness.markers import line_of


def test_gcore_through_the_stub_reads_back(debug, tmp_path) -> None:
    """The core shows what gdb showed live: the stopped thread's frame (its argument, its line), every thread, and
    the program's data as it was at the gcore (here a value gdb wrote, so no file's initial content can pass)."""
    d = debug("gdb_threads.c")
    run_to(d, "worker_work")
    worker = d.gdb.console("p id").split("=")[-1].strip()
    d.gdb.console("set var results[1 - id] = 4321")
    live = d.gdb.console("p results").split("=")[-1].strip()
    assert "4321" in live, d.diagnostics()
    core = tmp_path / "gcore.core"
    d.gdb.console(f"gcore {core}", timeout_s=60)
    assert core.exists(), d.diagnostics()
    out = subprocess.run(["gdb", "-batch", "-nx", "-ex", "bt", "-ex", "info threads", "-ex", "p results",
                          str(d.exe), str(core)], capture_output=True, text=True, timeout=60).stdout
    line = line_of("gdb_threads.c", "worker_work")
    assert f"worker_work (id={worker}) at " in out and f"gdb_threads.c:{line}" in out, \
        f"{d.backend}:\n{out}\n{d.diagnostics()}"
    assert "Cannot access memory" not in out, f"{d.backend}:\n{out}"
    assert len(re.findall(r"^\*?\s+\d+\s+.*LWP \d+", out, re.M)) == 3, f"{d.backend}:\n{out}"   # every thread
    assert out.rstrip().endswith(f"= {live}"), f"{d.backend}: live {live}\n{out}"
