"""execve's de_thread (exec_in_process.end_other_threads) against an exit_group that another thread serves while
the exec ends the others: once the process has ended, Process.thread_gone no longer removes a thread that ends, so
a loop that waits for the thread table to empty would go round until km exits. The process's end wins, as Linux's
de_thread gives up when the thread group is exiting."""
from __future__ import annotations

import threading
from types import SimpleNamespace

from monitor.process import exec_in_process


class _Thread(SimpleNamespace):
    """The part of a VcpuThread that end_other_threads uses."""


def test_an_exit_group_served_while_the_exec_ends_the_others_ends_the_wait(monkeypatch) -> None:
    monkeypatch.setattr(exec_in_process, "exit_robust_list", lambda thread: None)
    proc = SimpleNamespace(lock=threading.RLock(), threads={}, ended=threading.Event())
    execing = _Thread(proc=proc, tid=1, exit_requested=False, thread=None)

    def exit_group_at_the_kick() -> None:
        """The other thread was in exit_group when kicked: Process.end asks every thread to exit (the exec'ing one
        too) and sets `ended`; its vCPU thread then ends, left in the table as thread_gone leaves it."""
        with proc.lock:
            for thread in proc.threads.values():
                thread.exit_requested = True
            proc.ended.set()
        if vcpu.ident is None:
            vcpu.start()

    vcpu = threading.Thread(target=lambda: None)
    other = _Thread(proc=proc, tid=2, exit_requested=False, thread=vcpu, kick=exit_group_at_the_kick)
    proc.threads = {1: execing, 2: other}
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(exec_in_process.end_other_threads(execing)), daemon=True)
    waiter.start()
    try:
        waiter.join(5.0)
        assert not waiter.is_alive(), "end_other_threads still waits for a thread of a process that has ended"
        assert result == [True] and execing.exit_requested     # exec_in_process then returns: the thread ends
    finally:
        with proc.lock:
            proc.threads.pop(2, None)       # a waiter that went round forever stops here
