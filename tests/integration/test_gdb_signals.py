"""End to end, signals: Ctrl-C, SIGSEGV with $_siginfo, a signal passed to the payload's handler.
"""
from __future__ import annotations

import pytest

from harness.debuggee import interrupt_past, run_to, run_to_exit, stop_line
from harness.markers import line_of

BASIC = "gdb_basic.c"


def test_ctrl_c_of_a_spinning_payload(debug) -> None:
    d = debug("gdb_spin.c")
    stop = interrupt_past(d, f"gdb_spin.c:{line_of('gdb_spin.c', 'spin')}")    # in the loop, past the printf
    assert stop["frame"]["func"] == "main", d.diagnostics()
    d.gdb.console("set var keep_going = 0")
    d.gdb.run("-exec-continue")
    assert d.gdb.wait_for_stop("exited")["exit-code"] == "07"


def test_sigsegv_is_reported_with_siginfo(debug) -> None:
    d = debug("gdb_segv.c")
    d.gdb.run("-exec-continue")
    stop = d.gdb.wait_for_stop("signal-received")
    assert stop["signal-name"] == "SIGSEGV" and stop_line(stop) == line_of("gdb_segv.c", "fault"), d.diagnostics()
    assert "Program received signal SIGSEGV" in d.gdb.console_text(), d.diagnostics()
    assert d.gdb.console("p $_siginfo.si_signo").strip().endswith("= 11")
    assert d.gdb.console("p $_siginfo._sifields._sigfault.si_addr").strip().endswith("0x10")


def test_siginfo_at_a_breakpoint(debug) -> None:
    d = debug()
    run_to(d, "add")
    assert d.gdb.console("p $_siginfo.si_signo").strip().endswith("= 5"), d.diagnostics()
    assert d.gdb.console("p $_siginfo.si_code").strip().endswith("= 128"), d.diagnostics()   # SI_KERNEL


@pytest.mark.parametrize("stop", [True, False], ids=["stop-then-pass", "nostop"])
def test_signal_is_shown_then_delivered_to_the_handler(debug, stop: bool) -> None:
    d = debug("gdb_signals.c")
    gdb = d.gdb
    if not stop:
        gdb.console("handle SIGUSR1 nostop noprint pass")       # QPassSignals: km delivers it alone
    gdb.run("-break-insert on_usr1")
    gdb.run("-exec-continue")
    if stop:
        assert gdb.wait_for_stop("signal-received")["signal-name"] == "SIGUSR1", d.diagnostics()
        gdb.run("-exec-continue")                               # C0a: the signal goes to the payload
    frame = gdb.wait_for_stop("breakpoint-hit")["frame"]
    assert frame["func"] == "on_usr1", d.diagnostics()
    gdb.run("-exec-continue")
    assert gdb.wait_for_stop()["reason"] == "exited-normally", d.diagnostics()
    gdb.exit()
    status, out, err = d.finish()
    assert "handled=10" in out, out + err


def test_ctrl_c_of_a_payload_blocked_in_a_syscall(debug) -> None:
    d = debug("gdb_sleep.c")
    gdb = d.gdb
    interrupt_past(d, f"gdb_sleep.c:{line_of('gdb_sleep.c', 'nap')}")
    assert gdb.console("p keep_going").strip().endswith("= 1"), d.diagnostics()   # (musl's syscall stub
    gdb.console("set var keep_going = 0")                   # has no CFI: no bt to main, as with gdbserver)
    status, out, err = run_to_exit(d, 4)
    assert "woke up" in out, out + err


def test_a_passed_signal_is_not_lost_behind_another_threads_breakpoint(debug) -> None:
    """One thread stops at a breakpoint 60 times while another sends itself SIGUSR1 in a loop: a signal event
    that comes while the process is stopped for the breakpoint must still reach the handler."""
    d = debug("gdb_signal_race.c")
    gdb = d.gdb
    gdb.console("handle SIGUSR1 nostop noprint pass")
    gdb.run("-break-insert tick")
    stops = 0
    while True:
        gdb.run("-exec-continue")
        stop = gdb.wait_for_stop()
        if stop["reason"] != "breakpoint-hit":
            break
        stops += 1
    diagnostics = d.diagnostics()
    gdb.exit()
    status, out, err = d.finish()
    assert stops == 60 and out.startswith("sent="), diagnostics + out + err
    sent, handled = (int(f.split("=")[1]) for f in out.split())
    assert sent > 0 and handled == sent and status == 0, out + err


def test_stepi_after_a_discarded_signal_restarts_the_call(debug) -> None:
    """gdb's stepi at the stop of a signal that interrupted a call, the signal discarded (`handle nopass`): Linux
    restarts the call with no handler run, and the step ends once it returns (the pc is back where the stop showed
    it). km made the step on the debugger's thread while the vCPU's thread was still parked inside the signal's
    delivery, which then restarted the call from the stepped pc. rax after the step is the call's 0: a step that ran
nothing would show the same pc."""
    d = debug("gdb_signal_restart.c")
    d.gdb.console("handle SIGALRM stop print nopass")
    d.gdb.run("-exec-continue")
    stop = d.gdb.wait_for_stop("signal-received")
    assert stop["signal-name"] == "SIGALRM", d.diagnostics()
    pc = int(d.gdb.console("p/x $pc").split("=")[-1].strip(), 16)
    d.gdb.run("-exec-step-instruction")
    d.gdb.wait_for_stop()
    assert int(d.gdb.console("p/x $pc").split("=")[-1].strip(), 16) == pc, d.diagnostics()
    assert d.gdb.console("p $rax").split("=")[-1].strip() == "0", d.diagnostics()     # the call ran, returned 0
    status, out, err = run_to_exit(d, 0)
    assert out.splitlines() == ["nanosleep 0"], out + err
