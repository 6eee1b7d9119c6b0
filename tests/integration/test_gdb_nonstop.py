"""End to end, non-stop mode (`set non-stop on`): one thread stops at a breakpoint while the others run on,
`info threads` shows which, the stopped thread continues alone, `interrupt -a` stops them all, the exit is
reported. The same scenario runs against gdbserver: its behaviour is the expectation."""
from __future__ import annotations

import time

import pytest

from harness.debuggee import Debuggee, start_server
from harness.rsp_client import RspClient

SRC = "gdb_nonstop.c"


def _states(d: Debuggee) -> dict[str, str]:
    return {t["id"]: t["state"] for t in d.gdb.run("-thread-info")["payload"]["threads"]}


def _ticks(d: Debuggee) -> int:
    return int(d.gdb.run("-data-evaluate-expression ticks")["payload"]["value"])


def _only_stopped(d: Debuggee, thread_id: str) -> None:
    """`thread_id` is the one stopped thread; every other one runs, and the spinner's ticks move meanwhile."""
    states = _states(d)
    assert states.pop(thread_id) == "stopped" and set(states.values()) == {"running"}, d.diagnostics()
    first, deadline = _ticks(d), time.monotonic() + 20
    while _ticks(d) == first:
        assert time.monotonic() < deadline, "the spinner does not run while one thread is stopped\n" \
            + d.diagnostics()


def test_non_stop_one_thread_stops_others_run(debug) -> None:
    d = debug(SRC, connect=False)
    gdb = d.gdb
    gdb.run("-gdb-set non-stop on")
    d.connect()
    gdb.run("-break-insert nonstop_hit")
    gdb.run("-exec-continue")
    hit = gdb.wait_for_stop("breakpoint-hit")
    stopped = hit["thread-id"]
    assert len(_states(d)) == 3, d.diagnostics()
    assert hit["frame"]["func"] == "nonstop_hit", d.diagnostics()
    gdb.console(f"thread {stopped}")
    assert "nonstop_hit" in gdb.console("bt"), d.diagnostics()      # the stopped thread's registers and stack
    _only_stopped(d, stopped)       # the spinner counts on (memory reads while threads run)

    assert gdb.run(f"-exec-continue --thread {stopped}")["class"] == "running", d.diagnostics()
    assert set(_states(d).values()) == {"running"}, d.diagnostics()

    gdb.run("-exec-interrupt --all")
    for _ in range(3):
        gdb.wait_for_stop()
    assert set(_states(d).values()) == {"stopped"}, d.diagnostics()
    gdb.run("-data-evaluate-expression done=1")
    gdb.run("-exec-continue --all")
    assert gdb.wait_for_stop()["reason"] == "exited-normally", d.diagnostics()
    assert "ticks counted" in d.finish()[1], d.diagnostics()


def test_non_stop_fork_detaches_the_child_and_the_exit_is_reported(debug) -> None:
    """A fork in non-stop mode (gdb's default: follow the parent, detach the child): the child runs on."""
    d = debug("gdb_fork.c", connect=False, args=["fork"])
    gdb = d.gdb
    gdb.run("-gdb-set non-stop on")
    d.connect()
    gdb.run("-break-insert in_parent")
    gdb.run("-exec-continue")
    assert gdb.wait_for_stop("breakpoint-hit")["frame"]["func"] == "in_parent", d.diagnostics()
    assert "status=1792" in gdb.console("frame"), d.diagnostics()       # the child exited 7 on its own
    gdb.run("-exec-continue")
    assert gdb.wait_for_stop()["reason"] == "exited-normally", d.diagnostics()
    assert "child exit 7" in d.finish()[1], d.diagnostics()


def _notification(client: RspClient) -> bytes:
    """The next `%Stop:` notification's body, including one that came while the client waited for a reply."""
    note = client.notification()
    assert note.startswith(b"Stop:"), note
    return note[len(b"Stop:"):]


def test_non_stop_toggled_while_running_is_refused(payload, free_port) -> None:
    """gdb never switches modes while threads run; a client that does gets an error and the session goes on:
    the threads still stop one by one and report, then the switch back to all-stop is accepted.
    km only: gdbserver accepts the switch while running and stops the threads itself."""
    proc = start_server("km", payload(SRC), free_port)
    client = RspClient(free_port)
    try:
        client.ask(b"qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+")
        assert client.ask(b"QNonStop:1") == b"OK"
        assert client.ask(b"QNonStop:2").startswith(b"E")
        assert client.ask(b"?").startswith(b"T05")          # the one thread, at its first instruction
        assert client.ask(b"vStopped") == b"OK"
        assert client.ask(b"vCont;c") == b"OK"               # non-stop: answered at once, the thread runs
        assert client.ask(b"QNonStop:0").startswith(b"E")    # refused while running
        assert len(client.threads()) >= 1                     # the session goes on, answering while running
        deadline = time.monotonic() + 20
        while True:             # a thread the payload creates while the others stop runs on: stop it too
            assert client.ask(b"vCont;t") == b"OK"
            stops = [_notification(client)]
            reply = client.ask(b"vStopped")
            while reply != b"OK":
                stops.append(reply)
                reply = client.ask(b"vStopped")
            assert all(s.startswith(b"T00") for s in stops), stops      # stopped by vCont;t: signal 0
            reply = client.ask(b"QNonStop:0")
            if reply == b"OK":          # every thread reported stopped: now it may switch
                break
            assert time.monotonic() < deadline, reply
        client.send(b"k")
    finally:
        client.close()
    proc.wait(timeout=30)


def _non_stop(d: Debuggee) -> None:
    d.gdb.run("-gdb-set non-stop on")
    d.connect()


def test_non_stop_passed_and_stopping_signals(debug) -> None:
    """`handle SIGUSR1 nostop noprint pass`: five SIGUSR1s reach the handler with no stop; SIGUSR2 stops its thread
    alone (the spinner counts on), and continuing that thread delivers it."""
    d = debug("gdb_nonstop_signals.c", connect=False)
    gdb = d.gdb
    _non_stop(d)
    gdb.console("handle SIGUSR1 nostop noprint pass")
    gdb.run("-break-insert after_usr2")
    gdb.run("-exec-continue")
    stop = gdb.wait_for_stop("signal-received")
    assert stop["signal-name"] == "SIGUSR2", d.diagnostics()
    assert gdb.run("-data-evaluate-expression usr1")["payload"]["value"] == "5", d.diagnostics()
    _only_stopped(d, stop["thread-id"])
    gdb.run(f"-exec-continue --thread {stop['thread-id']}")
    hit = gdb.wait_for_stop("breakpoint-hit")
    assert hit["frame"]["func"] == "after_usr2", d.diagnostics()
    assert gdb.run("-data-evaluate-expression usr2")["payload"]["value"] == "1", d.diagnostics()
    gdb.run("-data-evaluate-expression done=1")
    gdb.run("-exec-continue --all")
    assert gdb.wait_for_stop()["reason"] == "exited-normally", d.diagnostics()
    assert "usr1 5 usr2 1 ticks counted" in d.finish()[1], d.diagnostics()


@pytest.mark.parametrize("non_stop", [True, False], ids=["non-stop", "all-stop"])
def test_a_stepi_that_meets_a_passed_signal_steps_over_its_handler(debug, non_stop: bool) -> None:
    """A thread steps over a `syscall` that sends it SIGUSR1, which gdb passes without stopping. As on Linux, that
    stepi ends after the syscall (the step's trap comes first, the signal stays pending). The next stepi meets the
    signal: a stepping thread's passed signal is reported to gdb all the same (gdbserver's rule: gdb steps over
    the handler with a breakpoint where it returns), so the stepi ends at the next instruction, the handler run.
    km used to pass it itself: with a continue in non-stop mode (on to after_raise's breakpoint), with a step into
    the handler in all-stop mode (the stepi ended at its first instruction)."""
    d = debug("gdb_step_signal.c", connect=False)
    gdb = d.gdb
    if non_stop:
        _non_stop(d)
    else:
        d.connect()
    gdb.console("handle SIGUSR1 nostop noprint pass")
    gdb.run("-break-insert *raise_syscall")
    gdb.run("-exec-continue")
    worker = gdb.wait_for_stop("breakpoint-hit")["thread-id"]
    gdb.console(f"thread {worker}")
    gdb.run("-break-delete")
    gdb.run("-break-insert after_raise")

    def stepi() -> int:
        gdb.run(f"-exec-step-instruction --thread {worker}")
        stop = gdb.wait_for_stop()
        assert stop["reason"] == "end-stepping-range" and stop["thread-id"] == worker, d.diagnostics()
        assert stop["frame"]["func"] == "worker", d.diagnostics()
        return int(stop["frame"]["addr"], 16)

    after_syscall = stepi()
    assert gdb.console("p $pc == (char *)&raise_syscall + 2").strip().endswith("= 1"), d.diagnostics()
    assert gdb.run("-data-evaluate-expression usr1")["payload"]["value"] == "0", d.diagnostics()
    following = int(gdb.console("x/2i $pc").splitlines()[1].split()[0], 16)
    assert stepi() == following > after_syscall, d.diagnostics()
    assert gdb.run("-data-evaluate-expression usr1")["payload"]["value"] == "1", d.diagnostics()
    gdb.run(f"-exec-continue --thread {worker}")
    assert gdb.wait_for_stop("breakpoint-hit")["frame"]["func"] == "after_raise", d.diagnostics()
    gdb.run("-exec-continue --all" if non_stop else "-exec-continue")
    assert gdb.wait_for_stop("exited")["exit-code"] == "01", d.diagnostics()


def test_non_stop_follows_the_forked_child(debug) -> None:
    """follow-fork-mode child in non-stop mode: the child stops at its breakpoint, the parent (detached) runs on
    and reports the child's exit status after gdb let the child finish."""
    d = debug("gdb_fork.c", connect=False, args=["fork"])
    gdb = d.gdb
    _non_stop(d)
    gdb.console("set follow-fork-mode child")
    gdb.run("-break-insert in_child")
    gdb.run("-exec-continue")
    stop = gdb.wait_for_stop("breakpoint-hit")
    assert stop["frame"]["func"] == "in_child", d.diagnostics()
    processes = [line for line in gdb.console("info inferiors").splitlines() if "process" in line]
    assert len(processes) == 1, d.diagnostics()        # the child; the parent was detached (<null>)
    gdb.run(f"-exec-continue --thread {stop['thread-id']}")
    assert gdb.wait_for_stop("exited")["exit-code"] == "07", d.diagnostics()
    assert "child exit 7" in d.finish()[1], d.diagnostics()


def test_non_stop_keeps_both_processes_with_detach_on_fork_off(debug) -> None:
    """detach-on-fork off in non-stop mode: gdb debugs parent and child, both run on after the fork; the child
    stops at its breakpoint while the parent waits for it, then the parent stops at its own."""
    d = debug("gdb_fork.c", connect=False, args=["fork"])
    gdb = d.gdb
    _non_stop(d)
    gdb.console("set detach-on-fork off")
    gdb.run("-break-insert in_child")
    gdb.run("-break-insert in_parent")
    gdb.run("-exec-continue")
    child = gdb.wait_for_stop("breakpoint-hit")
    assert child["frame"]["func"] == "in_child", d.diagnostics()
    assert len([line for line in gdb.console("info inferiors").splitlines() if "process" in line]) == 2, \
        d.diagnostics()
    gdb.run(f"-exec-continue --thread {child['thread-id']}")
    assert gdb.wait_for_stop("exited")["exit-code"] == "07", d.diagnostics()
    parent = gdb.wait_for_stop("breakpoint-hit")        # the parent ran on, and its waitpid returned
    assert parent["frame"]["func"] == "in_parent", d.diagnostics()
    gdb.console(f"thread {parent['thread-id']}")
    assert gdb.console("p status").strip().endswith("= 1792"), d.diagnostics()
    gdb.run(f"-exec-continue --thread {parent['thread-id']}")
    gdb.wait_for_stop("exited-normally")
    assert "child exit 7" in d.finish()[1], d.diagnostics()


def test_non_stop_exec_debugs_the_new_program(debug) -> None:
    """catch exec in non-stop mode: gdb hears of the exec, then breaks in the new program and sees it exit."""
    d = debug("gdb_fork.c", connect=False, args=["exec"])
    gdb = d.gdb
    _non_stop(d)
    gdb.console("catch exec")
    gdb.run("-break-insert after_exec")
    gdb.run("-exec-continue")
    stop = gdb.wait_for_stop("exec")
    assert stop["new-exec"] == str(d.exe.resolve()), d.diagnostics()
    gdb.run("-exec-continue")
    assert gdb.wait_for_stop("breakpoint-hit")["frame"]["func"] == "after_exec", d.diagnostics()
    gdb.run("-exec-continue")
    assert gdb.wait_for_stop("exited")["exit-code"] == "05", d.diagnostics()
    assert "execd" in d.finish()[1], d.diagnostics()


def test_non_stop_in_a_followed_child_with_threads(debug) -> None:
    """follow-fork-mode child in non-stop mode, the child with two threads: one stops at child_hit while the
    child's spinner counts on (the child's km, reached through the fork link, runs its threads one by one too)."""
    d = debug("gdb_nonstop_fork.c", connect=False)
    gdb = d.gdb
    _non_stop(d)
    gdb.console("set follow-fork-mode child")
    gdb.run("-break-insert child_hit")
    gdb.run("-exec-continue")
    hit = gdb.wait_for_stop("breakpoint-hit")
    assert hit["frame"]["func"] == "child_hit", d.diagnostics()
    gdb.run(f"-thread-select {hit['thread-id']}")       # a global id (`thread N` means inferior 1's)
    _only_stopped(d, hit["thread-id"])
    gdb.run("-data-evaluate-expression done=1")
    gdb.run("-exec-continue --all")
    assert gdb.wait_for_stop("exited")["exit-code"] == "07", d.diagnostics()
    out = d.finish()[1]
    assert "child ticks counted" in out and "child exit 7" in out, d.diagnostics()
