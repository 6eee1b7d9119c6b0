"""Guest threads (each a vCPU on its own host thread), differential against native runs: a mutex counter, an
8-thread barrier, join through the child-tid futex word, exit_group from a non-main thread blocking none,
robust mutexes whose owner died (glibc leaves them to the kernel's robust list walk)."""
from __future__ import annotations


import pytest

from harness.km import run_both

TOOLCHAINS = ("musl", "glibc")
EXPECTED = {
    "counter": ("counter 400000\n", 0),
    "barrier": ("barrier phases 50 bad 0\n", 0),
    "join": ("joined 20 total 570\n", 0),
    "exit_group": ("thread calls exit\n", 7),
    "pi": ("pi: init 0\npi: counter 80000\npi: after the owner died EOWNERDEAD\npi: trylock by the owner EBUSY\n"
           "pi: lock across a signal 0, handler ran 1\n", 0),
    "main_exit": ("main_exit: worker still running after main's pthread_exit\n", 0),
    "robust": ("robust: lock after owner died: EOWNERDEAD\nrobust: waiter got the lock: 0\n", 0),
}


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("test", EXPECTED)
def test_threads(payload, tmp_path, toolchain, test):
    (km_status, km_out, km_err), native = run_both(payload("thr_sync.c", toolchain), test, cwd=tmp_path)
    out, status = EXPECTED[test]
    assert (km_status, km_out) == native[:2] == (status, out), f"km stderr: {km_err}"
    assert km_err == ""


def test_thread_churn_beyond_kvm_vcpu_limit(payload, tmp_path):
    (km_status, km_out, km_err), native = run_both(payload("thr_sync.c", "musl"), "churn", cwd=tmp_path)
    assert (km_status, km_out) == native[:2] == (0, "churn: 1100 threads total 604450\n"), km_err
