"""End to end, the debugging session itself: kill, detach, gdb vanishing without detaching (-g and
--gdb_listen), 20 attach/detach cycles, a busy port, SIGTERM before any gdb came. km never loses the payload's
output or exit status.
"""
from __future__ import annotations

import os
import signal
import socket

import pytest

from harness.km import run_km
from harness.debuggee import Debuggee, basic_runs_to_its_end, km_only, run_to, start_server
from harness.gdb import Gdb
from harness.markers import line_of

BASIC = "gdb_basic.c"


def test_kill(debug) -> None:
    d = debug()
    run_to(d, "add")
    d.gdb.console("kill")
    d.gdb.exit()
    status, out, err = d.finish()
    assert "counter=" not in out
    if d.backend == "km":
        assert status == 128 + 9, err


def test_detach_lets_the_payload_finish(debug) -> None:
    d = debug()
    run_to(d, "add")
    d.gdb.console("detach")
    d.gdb.exit()
    status, out, err = d.finish()
    assert "counter=42 local=19" in out, out + err
    if d.backend == "km":
        assert status == 3, err


@km_only
def test_vanished_gdb_leaves_the_payload_stopped_for_the_next_one(payload, free_port) -> None:
    d = Debuggee("km", payload(BASIC, "musl"), free_port)
    try:
        d.connect()
        run_to(d, "add")
        d.reconnect()                                   # gdb killed: no detach, the connection just drops
        frame = d.gdb.run("-stack-info-frame")["payload"]["frame"]
        assert frame["func"] == "add" and int(frame["line"]) == line_of(BASIC, "add_body"), d.diagnostics()
        assert "No breakpoints" in d.gdb.console("info breakpoints")
        basic_runs_to_its_end(d)                        # the old breakpoint is gone from the target too
    finally:
        d.close()


@km_only
def test_vanished_gdb_in_listen_mode_lets_the_payload_finish(payload, free_port) -> None:
    d = Debuggee("km", payload("gdb_spin.c", "musl"), free_port, listen=True)
    try:
        d.connect()
        d.gdb.console("set breakpoint always-inserted on")      # the Z0 reaches km before gdb vanishes
        d.gdb.console("break gdb_spin.c:%d" % line_of("gdb_spin.c", "spin"))
        d.gdb.console("set var keep_going = 0")
        d.gdb.controller.gdb_process.kill()
        d.gdb.exit()
        status, out, err = d.finish()
        assert status == 7 and "stopped spinning" in out, err      # breakpoint removed, payload ran on
    finally:
        d.close()


@km_only
def test_listen_attach_detach_cycles(payload, free_port) -> None:
    exe = payload("gdb_spin.c", "musl")
    proc = start_server("km", exe, free_port, km_options=["--gdb_listen"])
    try:
        gdb = Gdb(str(exe))
        try:
            seen = [0]
            for cycle in range(20):
                gdb.run(f"-target-select remote 127.0.0.1:{free_port}", timeout_s=30)
                seen.append(int(gdb.console("p spins").split("=")[1]))
                # the payload stopped at each attach, ran on while detached: never back, always on in the end
                assert seen[-1] >= seen[-2] and proc.poll() is None, f"cycle {cycle}\n" + gdb.transcript_text()
                if cycle == 19:
                    gdb.console("set var keep_going = 0")
                gdb.console("detach")
        finally:
            gdb.exit()
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 7 and b"stopped spinning" in out, err.decode(errors="replace")
        assert seen[-1] > seen[1], seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


@km_only
def test_busy_gdb_port_is_a_one_line_error(payload) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_km(f"-g{port}", payload(BASIC, "musl"), timeout=30)
    err = result.stderr.decode()
    assert result.returncode == 1 and err == f"km: gdb port {port}: address already in use\n", err


@km_only
def test_listen_attach_to_a_payload_blocked_in_a_syscall(payload, free_port) -> None:
    d = Debuggee("km", payload("gdb_sleep.c", "musl"), free_port, listen=True)
    try:
        d.connect()
        assert d.gdb.console("p keep_going").strip().endswith("= 1"), d.diagnostics()
        d.gdb.console("set var keep_going = 0")
        d.gdb.console("detach")
        d.gdb.exit()
        status, out, err = d.finish()
        assert status == 4 and "woke up" in out, err
    finally:
        d.close()


@pytest.mark.parametrize("backend", ["km", "gdbserver"])
def test_sigterm_ends_a_server_still_waiting_for_gdb(backend, payload, free_port) -> None:
    # A service manager or a test harness stopping a `km -g` nobody connected to: it ends as gdbserver does,
    # killed by the signal, the payload never started (it held the signal pending before).
    server = start_server(backend, payload(BASIC, "musl"), free_port)
    inferiors = _children(server.pid)       # gdbserver's stopped inferior outlives it, holding the output pipe
    try:
        server.send_signal(signal.SIGTERM)
        status = server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        for pid in inferiors:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    out = server.stdout.read().decode()
    assert status == -signal.SIGTERM and "counter=" not in out, (status, out)
    assert backend != "km" or not inferiors, "km runs its payload in its own process"


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]
