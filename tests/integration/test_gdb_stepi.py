"""stepi where one instruction is more than a #DB: a `syscall` (served by the vCPU thread, then the step ends)
and a faulting store (SIGSEGV reported at the instruction). km steps a parked thread on the stub's own thread
and hands any other exit back to the vCPU thread; gdbserver is the reference."""
from __future__ import annotations

from harness.debuggee import run_to, stop_line
from harness.markers import line_of

SOURCE = "gdb_stepi.c"


def _stepi_until(d, predicate, limit: int = 40) -> dict:
    for _ in range(limit):
        d.gdb.run("-exec-step-instruction")
        stop = d.gdb.wait_for_stop()
        if predicate(stop):
            return stop
    raise AssertionError(f"no such stop in {limit} steps\n{d.diagnostics()}")


def test_stepi_over_syscall_and_onto_a_fault(debug) -> None:
    d = debug(SOURCE)
    run_to(d, f"{SOURCE}:{line_of(SOURCE, 'getpid')}")
    stop = _stepi_until(d, lambda s: d.gdb.console("x/i $pc").split(":", 1)[1].split()[0] == "nop")
    assert stop["reason"] == "end-stepping-range", d.diagnostics()
    pid = int(d.gdb.console("p $rax").split("=")[1])
    assert pid == int(d.gdb.run("-list-thread-groups")["payload"]["groups"][0]["pid"]), d.diagnostics()   # getpid's
    stop = _stepi_until(d, lambda s: s["reason"] != "end-stepping-range")
    assert stop["reason"] == "signal-received" and stop["signal-name"] == "SIGSEGV", d.diagnostics()
    assert stop_line(stop) == line_of(SOURCE, "fault"), d.diagnostics()
    assert d.gdb.console("p $_siginfo.si_signo").strip().endswith("= 11"), d.diagnostics()
    d.gdb.run("-exec-continue")
    assert d.gdb.wait_for_stop()["reason"] == "exited-signalled", d.diagnostics()
