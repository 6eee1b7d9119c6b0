"""End to end, orig_rax as Linux keeps it (gdb against `km -g` and, as the reference, gdbserver): the last call's
number after a step over `syscall` and at a signal's stop inside a blocking call, -1 at a breakpoint. gdb relies
on it: before an inferior call at a stop inside an interrupted call it writes orig_rax = -1 with the pc (so that
no restart lands in the called function) and writes both back afterwards, and the next `continue` settles the
interrupted call as natively (EINTR for a handler without SA_RESTART, a restart when the signal is discarded).
`set $orig_rax = -1` at such a stop leaves the call's -ERESTART* code to the payload, as on Linux.
Threads gdb did not stop itself: one blocked in a call shows the call's number and the code it ends with; a forked
child that has not run yet shows the number of the call that made it (Linux copies pt_regs).
"""
from __future__ import annotations

import pytest

from harness.debuggee import run_to, run_to_exit

SRC = "gdb_orig_rax.c"
THREADS = "gdb_orig_rax_threads.c"
NO_CALL = (1 << 64) - 1
NANOSLEEP, CLOCK_NANOSLEEP, READ, FORK = 35, 230, 0, 57         # musl's fork(3) is SYS_fork
PAUSE, RT_SIGTIMEDWAIT = 34, 128
EINTR, ERESTARTSYS, ERESTARTNOHAND, ERESTART_RESTARTBLOCK = 4, 512, 514, 516


def _reg(d, name: str) -> int:
    return int(d.gdb.console(f"p/x ${name}").split("=")[-1].strip(), 16)


def _signal_stop(d, passed: bool) -> None:
    d.gdb.console(f"handle SIGALRM stop print {'pass' if passed else 'nopass'}")
    d.gdb.run("-exec-continue")
    stop = d.gdb.wait_for_stop("signal-received")
    assert stop["signal-name"] == "SIGALRM", d.diagnostics()


def _last_line(d) -> str:
    status, out, err = run_to_exit(d, 0)
    return out.splitlines()[-1] if out else err


def test_orig_rax_after_a_step_over_syscall_and_at_a_breakpoint(debug) -> None:
    d = debug(SRC)
    run_to(d, "raw_getppid")
    assert _reg(d, "orig_rax") == NO_CALL, d.diagnostics()          # a breakpoint is an exception's stop
    for _ in range(20):
        if "syscall" in d.gdb.console("x/i $pc"):
            break
        d.gdb.run("-exec-step-instruction")
        d.gdb.wait_for_stop()
    else:
        pytest.fail("no syscall instruction in raw_getppid\n" + d.diagnostics())
    d.gdb.run("-exec-step-instruction")
    d.gdb.wait_for_stop()
    assert _reg(d, "orig_rax") == 110, d.diagnostics()
    d.gdb.run("-exec-step-instruction")                              # an ordinary instruction: -1 again
    d.gdb.wait_for_stop()
    assert _reg(d, "orig_rax") == NO_CALL, d.diagnostics()
    assert _last_line(d) == "nanosleep -1 errno 4 pokes 0 alarms 1 ppid ok"


@pytest.mark.parametrize("mode", ["nanosleep", "read"])
def test_orig_rax_at_a_signal_stop_inside_a_blocking_call(debug, mode: str) -> None:
    d = debug(SRC, args=(mode,))
    _signal_stop(d, passed=True)
    assert _reg(d, "orig_rax") in ((NANOSLEEP, CLOCK_NANOSLEEP) if mode == "nanosleep" else (READ,)), d.diagnostics()
    code = ERESTART_RESTARTBLOCK if mode == "nanosleep" else ERESTARTSYS
    assert _reg(d, "rax") == (1 << 64) - code, d.diagnostics()
    assert _last_line(d) == f"{mode} -1 errno {EINTR} pokes 0 alarms 1 ppid ok"


@pytest.mark.parametrize("mode,passed,expected", [
    ("nanosleep", True, "nanosleep -1 errno 4 pokes 1 alarms 1 ppid ok"),
    ("nanosleep", False, "nanosleep 0 errno 0 pokes 1 alarms 0 ppid ok"),
    ("read", True, "read -1 errno 4 pokes 1 alarms 1 ppid ok"),
], ids=["nanosleep-pass", "nanosleep-nopass", "read-pass"])
def test_an_inferior_call_at_an_interrupted_call_then_continue(debug, mode: str, passed: bool,
                                                               expected: str) -> None:
    d = debug(SRC, args=(mode,))
    _signal_stop(d, passed)
    before = (_reg(d, "pc"), _reg(d, "orig_rax"), _reg(d, "rax"))
    assert d.gdb.console("p poke()").strip().endswith("= 1"), d.diagnostics()
    assert (_reg(d, "pc"), _reg(d, "orig_rax"), _reg(d, "rax")) == before, d.diagnostics()
    assert _last_line(d) == expected


@pytest.mark.parametrize("mode,code", [("nanosleep", ERESTART_RESTARTBLOCK), ("read", ERESTARTSYS)])
def test_orig_rax_minus_one_at_an_interrupted_call_stops_its_restart(debug, mode: str, code: int) -> None:
    d = debug(SRC, args=(mode,))
    _signal_stop(d, passed=False)
    d.gdb.console("set $orig_rax = -1")
    assert _last_line(d) == f"{mode} -1 errno {code} pokes 0 alarms 0 ppid ok"


def test_orig_rax_minus_one_at_a_syscall_entry_skips_the_call(debug) -> None:
    """ptrace's way to skip a call: at its syscall-enter-stop the tracer sets orig_rax = -1 and the result in
    rax; the payload sees that result (and gdb, its catch list not naming -1, no syscall-exit-stop)."""
    d = debug(SRC)
    d.gdb.console("catch syscall getppid")
    d.gdb.run("-exec-continue")
    d.gdb.wait_for_stop()               # gdb 13 labels this first stop "returned" with either server
    assert (_reg(d, "orig_rax"), _reg(d, "rax")) == (110, (1 << 64) - 38), d.diagnostics()   # entered: -ENOSYS
    d.gdb.console("set $orig_rax = -1")
    d.gdb.console("set $rax = -1234")
    d.gdb.console("delete")
    assert _last_line(d) == "nanosleep -1 errno 4 pokes 0 alarms 1 ppid -1234"


@pytest.mark.parametrize("mode,number,code,last", [
    ("blocked", READ, ERESTARTSYS, "reader got 1"),
    ("pause", PAUSE, ERESTARTNOHAND, "pause returned"),
    ("sigwait", RT_SIGTIMEDWAIT, EINTR, "sigwait got 10"),
])
def test_a_thread_blocked_in_a_call_shows_it_interrupted(debug, mode: str, number: int, code: int, last: str) -> None:
    """gdb stops the world at a breakpoint in main while the other thread waits in read(), pause() or
    sigwaitinfo(): Linux shows the call cut short by the stop, its number in orig_rax and in rax the code it ends
    with (-ERESTARTSYS, -ERESTARTNOHAND: made again when the thread goes on; -EINTR for rt_sigtimedwait)."""
    d = debug(THREADS, args=(mode,))
    d.gdb.console("handle SIGUSR1 nostop noprint pass")
    run_to(d, "stopped_all")
    d.gdb.console("thread 2")
    assert (_reg(d, "orig_rax"), _reg(d, "rax")) == (number, (1 << 64) - code), d.diagnostics()
    d.gdb.console("thread 1")
    assert _last_line(d) == last


def test_a_forked_child_not_yet_run_shows_its_forks_number(debug) -> None:
    """With detach-on-fork off the child waits at fork's return until gdb resumes it: its registers are its
    parent's, orig_rax with them, and rax 0."""
    d = debug(THREADS, args=("fork",))
    d.gdb.console("set detach-on-fork off")
    run_to(d, "forked")
    d.gdb.console("inferior 2")
    assert (_reg(d, "orig_rax"), _reg(d, "rax")) == (FORK, 0), d.diagnostics()
    d.gdb.run("-exec-continue")
    assert d.gdb.wait_for_stop("exited")["exit-code"] == "07", d.diagnostics()
    d.gdb.console("inferior 1")
    assert _last_line(d) == "child exit 7"

