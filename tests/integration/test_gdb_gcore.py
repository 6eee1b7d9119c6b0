"""`gcore` through the stub (issue 5: gdb's gcore through the stub produces a usable core), on km and on
gdbserver as the reference: gdb reads the payload's /proc/<pid>/smaps through vFile, so the core must hold the
guest's mappings (stack included), not km's own."""
from __future__ import annotations

import subprocess

from harness.debuggee import run_to


def test_gcore_through_the_stub_reads_back(debug, tmp_path) -> None:
    d = debug("gdb_threads.c")
    run_to(d, "worker_work")
    core = tmp_path / "gcore.core"
    d.gdb.console(f"gcore {core}", timeout_s=60)
    assert core.exists(), d.diagnostics()
    out = subprocess.run(["gdb", "-batch", "-nx", "-ex", "bt", "-ex", "info threads", "-ex", "p results",
                          str(d.exe), str(core)], capture_output=True, text=True, timeout=60).stdout
    assert "worker_work (id=" in out and "at " in out, f"{d.backend}:\n{out}\n{d.diagnostics()}"
    assert "Cannot access memory" not in out, f"{d.backend}:\n{out}"
    assert out.count("LWP ") >= 3, f"{d.backend}:\n{out}"      # every thread, as gdb names them in a core
