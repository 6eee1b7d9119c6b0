"""Static Go payloads (CGO_ENABLED=0): hello, 100 goroutines over a channel, async preemption by SIGURG with
GOMAXPROCS=1, GC/netpoller/timers under load, CPU profiling (SIGPROF from CPU-time timers), the runtime's own
signals (nil dereference → recovered panic, signal.Notify), SIGINT sent to km.
Outputs are compared with native runs of the same binary."""
from __future__ import annotations

import os
import selectors
import signal

import pytest

from harness.km import run_both, spawn_km


@pytest.mark.parametrize("args, expected", [((), "hello from go 1\n"),
                                            (("goroutines",), "goroutines 100 total 492942\n")])
def test_go_hello_and_goroutines(payload, args, expected):
    (status, out, err), native = run_both(payload("go_hello.go"), *args)
    assert (status, out) == native[:2] == (0, expected), err


def test_go_async_preemption_by_sigurg(payload):
    """Two goroutines spin without calls on one P: main's Sleep returns only if sysmon's SIGURG preempts them."""
    (status, out, err), native = run_both(payload("go_preempt.go"), env={"KM_VERBOSE": "signal", "GODEBUG": ""})
    assert (status, out) == native[:2] == (0, "main not starved, spinner ran: true\n"), err
    assert "signal 23 delivered" in err, err[-2000:]


def test_go_gc_netpoller_timers_under_load(payload):
    (status, out, err), native = run_both(payload("go_stress.go"))
    assert (status, out) == native[:2] == (0, 'counter 16000, pipe "through the pipe", GC ran true\n'), err


def test_go_cpu_profile_gets_sigprof(payload):
    """pprof's per-thread CPU-time timers: ~100 SIGPROF per CPU second (not per wall second of every thread)."""
    (status, out, err), native = run_both(payload("go_profile.go"), env={"KM_VERBOSE": "signal"})
    assert (status, out) == native[:2] == (0, "profile written: true\n"), err
    sigprofs = err.count("signal 27 delivered")
    assert 3 <= sigprofs <= 60, f"{sigprofs} SIGPROF for 0.3 s of CPU (at most; less on a loaded machine)"


def test_go_runtime_signals(payload):
    (status, out, err), native = run_both(payload("go_signals.go"))
    assert (status, out) == native[:2], err
    assert out == ("recovered: runtime error: invalid memory address or nil pointer dereference\n"
                   "notified: user defined signal 1\n"), err


def test_go_sigint_to_km_reaches_signal_notify(payload):
    proc = spawn_km(payload("go_signals.go"), "wait")
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(30), "no 'ready' line"
        assert proc.stdout.readline() == b"ready\n"
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert (proc.returncode, out) == (0, b"got interrupt\n"), err
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
