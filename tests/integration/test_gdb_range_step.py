"""`next` over a line that loops runs the loop inside km (vCont;r range stepping): one stop, the right line, the
loop's result, on km and on gdbserver."""
from __future__ import annotations

from harness.debuggee import run_to, stop_line
from harness.markers import line_of


def test_next_over_a_looping_line(debug) -> None:
    d = debug("gdb_loop.c")
    run_to(d, f"gdb_loop.c:{line_of('gdb_loop.c', 'loop')}")
    d.gdb.run("-exec-next")
    stop = d.gdb.wait_for_stop("end-stepping-range")
    assert stop_line(stop) == line_of("gdb_loop.c", "after_loop"), d.diagnostics()
    assert d.gdb.console("p total").strip().endswith("= 8955050"), d.diagnostics()
