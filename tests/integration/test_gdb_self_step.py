"""End to end, single steps that are not only gdb's. A program that sets RFLAGS.TF itself and makes a call gdb
catches gets both the syscall-entry and the syscall-return stop, then its own SIGTRAP after the next instruction:
compared with native gdb (linux-nat shows Linux's stops; gdbserver swallows the program's own traps). gdb's
stepi over the `syscall` of a clone or a fork: the new thread or child must not inherit the TF gdb set for the
step (Linux's copy_process clears a ptrace-forced TF), against gdbserver.
"""
from __future__ import annotations

import pytest

from harness.debuggee import Debuggee, km_only, run_to, run_to_exit
from harness.gdb import E2E_TIMEOUT_S, Gdb, free_port

SRC = "gdb_self_step.c"
CLONE, FORK = 56, 57            # musl's pthread_create and fork(3)


def _reg(gdb: Gdb, name: str) -> int:
    return int(gdb.console(f"p/x ${name}").split("=")[-1].strip(), 16)


def _stops_of_own_trap(gdb: Gdb, start: str) -> list[tuple[str, str]]:
    """The first three stops with `catch syscall getppid`: (kind, pc). gdb 13 labels the first stop of a remote
    target "returned": entry and return are both "syscall" here, their order shown by the pcs."""
    gdb.console("catch syscall getppid")
    stops = []
    for command in (start, "-exec-continue", "-exec-continue"):
        gdb.run(command)
        stop = gdb.wait_for_stop()
        kind = "syscall" if stop["reason"].startswith("syscall-") else stop.get("signal-name", stop["reason"])
        stops.append((kind, stop.get("frame", {}).get("addr", "")))
    return stops


@km_only
def test_a_program_stepping_itself_gets_the_syscall_return_stop(payload) -> None:
    """km took the program's own TF for gdb's stepi from the entry stop: the return stop was lost and the next stop
    was the program's SIGTRAP."""
    exe = payload(SRC)
    native = Gdb(str(exe), timeout_s=E2E_TIMEOUT_S)
    try:
        native.run("-exec-arguments trap")
        expected = _stops_of_own_trap(native, "-exec-run")
    finally:
        native.exit()
    d = Debuggee("km", exe, free_port(), args=("trap",))
    try:
        d.connect()
        seen = _stops_of_own_trap(d.gdb, "-exec-continue")
    finally:
        d.close()
    assert [kind for kind, _ in expected] == ["syscall", "syscall", "SIGTRAP"], expected
    assert seen == expected, d.diagnostics()


def _step_over_syscall(d, function: str, number: int) -> None:
    """Break in `function`, stepi to its `syscall` of call `number`, and over it."""
    run_to(d, function)
    for _ in range(100):
        if "syscall" in d.gdb.console("x/i $pc") and _reg(d.gdb, "rax") == number:
            break
        d.gdb.run("-exec-step-instruction")
        d.gdb.wait_for_stop()
    else:
        pytest.fail(f"no syscall {number} in {function}\n" + d.diagnostics())
    d.gdb.run("-exec-step-instruction")
    assert d.gdb.wait_for_stop()["reason"] == "end-stepping-range", d.diagnostics()
    d.gdb.console("delete")


def test_a_stepi_over_clone_leaves_the_new_thread_no_trap(debug) -> None:
    """km's new thread took the TF: it stopped with a SIGTRAP after its first instruction."""
    d = debug(SRC, args=("thread",))
    _step_over_syscall(d, "__clone", CLONE)
    status, out, err = run_to_exit(d)
    assert out == "thread returned 5\n", out + err


def test_a_stepi_over_fork_leaves_the_child_no_trap(debug) -> None:
    """With detach-on-fork off the child is gdb's too: its flags have no TF, and it runs to its exit."""
    d = debug(SRC, args=("fork",))
    d.gdb.console("set detach-on-fork off")
    _step_over_syscall(d, "_Fork", FORK)
    d.gdb.console("inferior 2")
    assert not _reg(d.gdb, "eflags") & 0x100, d.diagnostics()
    d.gdb.run("-exec-continue")
    assert d.gdb.wait_for_stop("exited")["exit-code"] == "07", d.diagnostics()
    d.gdb.console("inferior 1")
    status, out, err = run_to_exit(d)
    assert out == "child exit 7\n", out + err
