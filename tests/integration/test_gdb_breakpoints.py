"""End to end, breakpoints and stepping: gdb against `km -g` and, as the reference, native gdbserver.

Frames are checked against the `@marker` lines of the payload sources.
"""
from __future__ import annotations

import re

import pytest

from harness.debuggee import run_to, stop_line
from harness.markers import line_of

BASIC = "gdb_basic.c"


def test_break_continue_bt_finish(debug) -> None:
    d = debug()
    stop = run_to(d, "add")
    assert stop["frame"]["func"] == "add" and stop_line(stop) == line_of(BASIC, "add_body"), d.diagnostics()
    bt = d.gdb.run("-stack-list-frames")["payload"]["stack"]
    assert [f["func"] for f in bt[:2]] == ["add", "main"] and int(bt[1]["line"]) == line_of(BASIC, "call_add")
    d.gdb.run("-exec-finish")
    stop = d.gdb.wait_for_stop("function-finished")
    assert stop["return-value"] == "42" and stop["frame"]["func"] == "main", d.diagnostics()


@pytest.mark.parametrize("toolchain", ["glibc", "glibc-pie"])
def test_glibc_and_static_pie(debug, toolchain: str) -> None:
    """A static-pie payload is relocated: gdb finds the load address from auxv (AT_ENTRY), not qOffsets."""
    d = debug(BASIC, toolchain)
    stop = run_to(d, "add")
    assert stop["frame"]["func"] == "add" and stop_line(stop) == line_of(BASIC, "add_body"), d.diagnostics()
    assert d.gdb.console("p counter").strip().endswith("= 41")


def test_tbreak_hbreak_and_condition(debug) -> None:
    d = debug()
    d.gdb.run(f"-break-insert -t {BASIC}:{line_of(BASIC, 'write_watched')}")
    d.gdb.run("-exec-continue")
    stop = d.gdb.wait_for_stop("breakpoint-hit")
    assert stop["disp"] == "del" and stop_line(stop) == line_of(BASIC, "write_watched"), d.diagnostics()
    d.gdb.run("-break-insert -h scale")
    d.gdb.run("-exec-continue")
    stop = d.gdb.wait_for_stop("breakpoint-hit")
    assert stop["frame"]["func"] == "scale", d.diagnostics()
    assert "hw breakpoint" in d.gdb.console("info breakpoints")


def test_conditional_breakpoint(debug) -> None:
    d = debug()
    d.gdb.run("-break-insert -c \"k == 2\" scale")
    d.gdb.run("-break-insert -c \"a == 1000\" add")      # never true: must not stop
    d.gdb.run("-exec-continue")
    stop = d.gdb.wait_for_stop("breakpoint-hit")
    assert stop["frame"]["func"] == "scale", d.diagnostics()


def test_step_next_stepi_until(debug) -> None:
    d = debug()
    stop = run_to(d, f"{BASIC}:{line_of(BASIC, 'call_add')}")
    d.gdb.run("-exec-step")
    stop = d.gdb.wait_for_stop("end-stepping-range")
    assert stop["frame"]["func"] == "add" and stop_line(stop) == line_of(BASIC, "add_body"), d.diagnostics()
    d.gdb.run("-exec-next")
    stop = d.gdb.wait_for_stop("end-stepping-range")
    assert stop_line(stop) == line_of(BASIC, "add_return"), d.diagnostics()
    listing = d.gdb.console("x/2i $pc")          # add_return's first instruction (no jump), then the next one
    pc, following = (int(a, 16) for a in re.findall(r"^(?:=>)?\s+0x([0-9a-f]+) <", listing, re.M))
    assert pc == int(stop["frame"]["addr"], 16), listing
    d.gdb.run("-exec-step-instruction")
    stop = d.gdb.wait_for_stop("end-stepping-range")
    assert int(stop["frame"]["addr"], 16) == following, (listing, d.diagnostics())     # one instruction, no more
    # `until LOCATION` also stops when the current frame returns: first back in main, then at the line.
    d.gdb.run(f"-exec-until {BASIC}:{line_of(BASIC, 'call_scale')}")
    stop = d.gdb.wait_for_stop("location-reached")
    assert stop["frame"]["func"] == "main" and stop_line(stop) == line_of(BASIC, "call_add"), d.diagnostics()
    d.gdb.run(f"-exec-until {BASIC}:{line_of(BASIC, 'call_scale')}")
    stop = d.gdb.wait_for_stop("location-reached")
    assert stop["frame"]["func"] == "main" and stop_line(stop) == line_of(BASIC, "call_scale"), d.diagnostics()


def test_watch_rwatch_awatch(debug) -> None:
    d = debug()
    d.gdb.run("-break-watch watched")
    d.gdb.run("-exec-continue")
    stop = d.gdb.wait_for_stop("watchpoint-trigger")
    assert stop["value"]["new"] == "42" and stop["frame"]["func"] == "main", d.diagnostics()
    d.gdb.run("-break-delete")
    d.gdb.run("-break-watch -r big_value")
    d.gdb.run("-break-watch -a origin.x")
    d.gdb.run("-exec-continue")
    stop = d.gdb.wait_for_stop()
    assert stop["reason"] in ("access-watchpoint-trigger", "read-watchpoint-trigger"), d.diagnostics()
    assert stop["frame"]["func"] == "scale", d.diagnostics()


def test_go_payload(debug) -> None:
    """Go: many threads and SIGURG preemption (gdb passes SIGURG silently through QPassSignals)."""
    d = debug("gdb_go.go")
    stop = run_to(d, "main.square")
    assert stop["frame"]["func"] == "main.square" and stop_line(stop) == line_of("gdb_go.go", "go_square"), \
        d.diagnostics()
    assert "main.main.func1" in d.gdb.console("bt")
    assert len(d.gdb.run("-thread-info")["payload"]["threads"]) >= 2, d.diagnostics()
    d.gdb.run("-break-delete")
    d.gdb.run("-exec-continue")
    assert d.gdb.wait_for_stop("exited")["exit-code"] == "05", d.diagnostics()
    d.gdb.exit()
    status, out, err = d.finish()
    assert "go results 4" in out, out + err
    if d.backend == "km":
        assert status == 5, err
