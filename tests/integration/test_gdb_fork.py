"""End to end, gdb and processes that fork, vfork and exec: gdb against `km -g` and, as the reference, gdbserver.

A forked child is another km process: it must never carry the parent's int3s unless a debugger follows it.
"""
from __future__ import annotations

from harness.gdb import debug  # noqa: F401 - a fixture

FORK = "gdb_fork.c"


def test_a_breakpoint_in_code_the_child_runs_does_not_kill_the_child(debug) -> None:
    """gdb follows the parent: the child runs through in_child() (its int3 taken back) and exits 7."""
    d = debug(FORK, args=["fork"])
    d.gdb.run("-break-insert in_child")
    d.gdb.run("-exec-continue")
    assert d.gdb.wait_for_stop("exited-normally"), d.diagnostics()
    d.gdb.exit()
    status, out, err = d.finish()
    assert out.splitlines() == ["child exit 7"], out + err
    assert status == 0


def test_a_watchpoint_does_not_follow_the_child(debug) -> None:
    """The child writes the watched variable freely (no protected page, no SIGSEGV); the parent's write stops."""
    d = debug(FORK, args=["fork"])
    d.gdb.console("watch marker")
    d.gdb.run("-exec-continue")
    stop = d.gdb.wait_for_stop("watchpoint-trigger")
    assert stop["frame"]["func"] == "in_parent" and stop["value"]["new"] == "1792", d.diagnostics()
    d.gdb.console("delete")
    d.gdb.run("-exec-continue")
    d.gdb.wait_for_stop("exited-normally")
    d.gdb.exit()
    status, out, err = d.finish()
    assert out.splitlines() == ["child exit 7"], out + err
