"""End to end, threads: info threads, thread N + bt, thread apply all bt, all-stop interrupts.
"""
from __future__ import annotations


from harness.debuggee import interrupt_past, run_to
from harness.markers import line_of

BASIC = "gdb_basic.c"


def test_threads(debug) -> None:
    d = debug("gdb_threads.c", "glibc")      # glibc's CFI unwinds out of the barrier main may still be in
    stop = run_to(d, "worker_work")
    gdb = d.gdb
    threads = gdb.run("-thread-info")["payload"]["threads"]
    assert len(threads) == 3, d.diagnostics()
    other = next(t["id"] for t in threads if t["id"] != stop["thread-id"])
    gdb.console(f"thread {other}")
    bt = gdb.console("bt")
    assert "#0" in bt, d.diagnostics()
    every = gdb.console("thread apply all bt")
    assert every.count("Thread ") >= 3 and "worker_work" in every and "main" in every, d.diagnostics()


def test_ctrl_c_stops_every_spinning_thread(debug) -> None:
    d = debug("gdb_spin_threads.c")
    gdb = d.gdb
    interrupt_past(d, f"gdb_spin_threads.c:{line_of('gdb_spin_threads.c', 'thread_spin')}")
    threads = gdb.run("-thread-info")["payload"]["threads"]
    assert len(threads) == 3 and all(t["state"] == "stopped" for t in threads), d.diagnostics()
    before = gdb.console("output spins")
    assert gdb.console("output spins") == before            # nothing runs while stopped
    gdb.console("set var keep_going = 0")
    gdb.run("-exec-continue")
    assert gdb.wait_for_stop()["reason"] == "exited-normally", d.diagnostics()


def test_thread_names_are_linux_comm(debug) -> None:
    """pthread_setname_np (of itself, and of another thread through /proc/self/task/TID/comm) and
    prctl(PR_SET_NAME) names, and the program's name for main, as gdbserver shows them from Linux's comm."""
    d = debug("thread_names.c")
    run_to(d, "names_set")
    names = sorted(t.get("name", "") for t in d.gdb.run("-thread-info")["payload"]["threads"])
    assert names == sorted(["km-worker-one", "prctl-named", "set-by-main", d.exe.name[:15]]), d.diagnostics()
    d.gdb.run("-break-delete")
    d.gdb.run("-exec-continue")
    assert d.gdb.wait_for_stop()["reason"] == "exited-normally", d.diagnostics()
    assert "named rc=0 set-by-main" in d.finish()[1], d.diagnostics()
