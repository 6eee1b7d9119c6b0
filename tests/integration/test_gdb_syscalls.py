"""End to end, gdb's syscall catchpoints (`catch syscall`): gdb against `km -g` and, as the reference, gdbserver.

Linux shows a syscall-enter-stop with the number in orig_rax and -ENOSYS in rax, and the result in rax at the
syscall-exit-stop; km's VMM sees every syscall, so a catchpoint only costs when one is set.
"""
from __future__ import annotations

from harness.debuggee import run_to_exit

SRC = "gdb_syscalls.c"
GETPPID = 110
ENOSYS = (1 << 64) - 38


def _reg(d, name: str) -> int:
    return int(d.gdb.console(f"p/x ${name}").split("=")[-1].strip(), 16)


def _finish(d) -> None:
    status, out, err = run_to_exit(d, 3)
    assert out.splitlines() == ["same parent 1"], out + err


def test_catch_syscall_by_name_stops_at_each_entry_and_return(debug) -> None:
    d = debug(SRC)
    assert "Catchpoint 1 (syscall 'getppid' [110])" in d.gdb.console("catch syscall getppid")
    reasons = []
    for call in range(4):                    # two getppid() calls: entry and return each
        d.gdb.run("-exec-continue")
        stop = d.gdb.wait_for_stop()
        assert stop["reason"] in ("syscall-entry", "syscall-return") and stop["syscall-name"] == "getppid", stop
        assert stop["frame"]["func"] == "getppid", d.diagnostics()
        reasons.append(stop["reason"])
        if call % 2 == 0:                    # entered: the number is in orig_rax, rax says ENOSYS (as on Linux)
            assert (_reg(d, "orig_rax"), _reg(d, "rax")) == (GETPPID, ENOSYS), d.diagnostics()
        else:                                # returned: rax holds the parent's pid
            assert 0 < _reg(d, "rax") < 1 << 22 and _reg(d, "orig_rax") == GETPPID, d.diagnostics()
    assert reasons[0] != reasons[1] and reasons[0::2] == reasons[:1] * 2, reasons
    if d.backend == "km":                    # gdbserver 13 labels the first stop "returned" (its own miscount)
        assert reasons == ["syscall-entry", "syscall-return"] * 2, reasons
    _finish(d)


def test_catch_syscall_by_number_and_group_and_all(debug) -> None:
    """`catch syscall 110` and `catch syscall group:process` and a bare `catch syscall` stop in what they name."""
    d = debug(SRC)
    d.gdb.console("catch syscall 110")
    d.gdb.run("-exec-continue")
    assert d.gdb.wait_for_stop()["syscall-number"] == str(GETPPID), d.diagnostics()
    d.gdb.console("delete")
    d.gdb.console("catch syscall group:process")     # exit_group is in it; getppid is not
    d.gdb.console("catch syscall write writev")       # musl's stdout flushes with writev
    d.gdb.run("-exec-continue")
    stop = d.gdb.wait_for_stop()
    while stop["syscall-name"] == "getppid":          # the return of the call stopped at above
        d.gdb.run("-exec-continue")
        stop = d.gdb.wait_for_stop()
    assert stop["syscall-name"] in ("write", "writev") and stop["frame"]["func"] != "getppid", d.diagnostics()
    d.gdb.console("delete")
    d.gdb.console("catch syscall")
    names = set()
    while True:
        d.gdb.run("-exec-continue")
        stop = d.gdb.wait_for_stop()
        if stop["reason"] == "exited":
            break
        names.add(stop["syscall-name"])
    assert "exit_group" in names, names
    d.gdb.exit()
    status, out, err = d.finish()
    assert out.splitlines() == ["same parent 1"], out + err


def test_a_junk_catch_list_is_an_error_and_the_session_goes_on(debug) -> None:
    d = debug(SRC)
    assert "received: \"E" in d.gdb.console("maint packet QCatchSyscalls:1;zz")
    if d.backend == "gdbserver":            # gdbserver 13 closes the connection at the next packet
        return
    assert "received: \"E" in d.gdb.console("maint packet QCatchSyscalls:1;123456789")
    assert "received: \"OK\"" in d.gdb.console("maint packet QCatchSyscalls:0")
    _finish(d)



def test_stepi_at_a_syscall_entry_makes_the_call_first(debug) -> None:
    """gdb's stepi at a syscall catchpoint's entry stop: Linux makes the call and the step ends right after it
    (the pc does not move, rax holds the result, no return stop); the next stepi runs the next instruction. km ran
    that next instruction on the debugger's thread before the call (the thread was parked inside it), and the
    call's result then overwrote rax: the program printed "same parent 0"."""
    d = debug(SRC)
    d.gdb.console("catch syscall getppid")
    d.gdb.run("-exec-continue")
    d.gdb.wait_for_stop()
    pc = _reg(d, "pc")
    d.gdb.run("-exec-step-instruction")
    stop = d.gdb.wait_for_stop()
    assert stop["reason"] == "end-stepping-range" and stop["frame"]["func"] == "getppid", d.diagnostics()
    assert _reg(d, "pc") == pc and 0 < _reg(d, "rax") < 1 << 22, d.diagnostics()
    d.gdb.run("-exec-step-instruction")
    stop = d.gdb.wait_for_stop()
    assert stop["reason"] == "end-stepping-range" and stop["frame"]["func"] == "main", d.diagnostics()
    d.gdb.console("delete")
    _finish(d)
