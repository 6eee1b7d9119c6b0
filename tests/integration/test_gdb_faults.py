"""Faults around the debugger (issue 12): gdb killed while stepping, a Ctrl-C storm, a 64-thread payload whose
every reported stop has every thread parked, junk on the connection. The payload's output and exit status are
never lost, and a new gdb can always take over.
"""
from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from harness.debuggee import BACKENDS, Debuggee, basic_runs_to_its_end, km_only, run_to, start_server
from harness.markers import line_of
from harness.rsp_client import RspClient
from harness.symbols import symbol_address
from kdbg.rsp.packets import decode_rle, unescape

SRC = "gdb_faults.c"
TOTAL = "total 105000000"


def _start_long_step(d: Debuggee, held: bool = False) -> None:
    """Stop at the one-line loop and start a `next` over it: a range step of millions of instructions. `held`: the
    payload (run with `hold`) spins before the loop until gdb, attached to it running, lets it go."""
    d.connect()
    d.gdb.run(f"-break-insert {SRC}:{line_of(SRC, 'long_loop')}")
    if held:
        d.gdb.console("set var hold = 2")
    d.gdb.run("-exec-continue")
    d.gdb.wait_for_stop("breakpoint-hit")
    d.gdb.console("delete")
    assert d.gdb.run("-exec-next")["class"] == "running", d.diagnostics()


@km_only
def test_gdb_killed_mid_step_leaves_the_payload_stopped_for_a_new_gdb(payload, free_port) -> None:
    d = Debuggee("km", payload(SRC), free_port, args=["4"])
    try:
        _start_long_step(d)
        d.reconnect()                       # SIGKILL: the connection drops while the step runs
        frame = d.gdb.run("-stack-info-frame")["payload"]["frame"]
        assert frame["func"] == "main" and int(frame["line"]) == line_of(SRC, "long_loop"), d.diagnostics()
        d.gdb.run(f"-break-insert {SRC}:{line_of(SRC, 'done')}")
        d.gdb.run("-exec-continue")         # no step of the old gdb's is left to stop it early
        stop = d.gdb.wait_for_stop("breakpoint-hit", timeout_s=60)
        assert int(stop["frame"]["line"]) == line_of(SRC, "done"), d.diagnostics()
        d.gdb.run("-exec-continue")
        assert d.gdb.wait_for_stop("exited")["exit-code"] == "011", d.diagnostics()
        d.gdb.exit()
        status, out, err = d.finish()
        assert status == 9 and out.splitlines() == [TOTAL], out + err
    finally:
        d.close()


@km_only
def test_gdb_killed_mid_step_in_listen_mode_lets_the_payload_finish(payload, free_port) -> None:
    d = Debuggee("km", payload(SRC), free_port, args=["4", "hold"], listen=True)
    try:
        _start_long_step(d, held=True)
        d.gdb.controller.gdb_process.kill()
        d.gdb.exit()
        status, out, err = d.finish(timeout_s=60)
        assert status == 9 and out.splitlines() == [TOTAL], out + err
    finally:
        d.close()


def _finish(proc: subprocess.Popen, backend: str) -> None:
    out, err = proc.communicate(timeout=60)
    assert TOTAL in out.decode(), out + err
    if backend == "km":
        assert proc.returncode == 9, err


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_ctrl_c_storm_stops_and_resumes_cleanly(backend, payload, free_port) -> None:
    """50 interrupts in about a second over working and sleeping threads: one stop reply each, a SIGINT stop as
    gdbserver gives (gdb shows "received signal SIGINT"). km also takes doubled ones (the second lands while the
    first's stop is on its way) without a stale stop after them; gdbserver 13 resets the connection in that storm
    now and then, so its reference run sends single ones."""
    proc = start_server(backend, payload(SRC), free_port, "6")
    client = RspClient(free_port)
    try:
        client.start()
        client.send(b"vCont;c")
        for i in range(50):
            client.sock.sendall(b"\x03\x03" if i % 5 == 0 and backend == "km" else b"\x03")
            reply = client.stop_reply()
            assert reply.startswith(b"T02"), (i, reply)
            client.send(b"vCont;c")
        reply = client.stop_reply()
        assert re.match(rb"W0?9\b", reply), reply                   # no stale stop after the storm
    finally:
        client.close()
    _finish(proc, backend)


def _memory(client: RspClient, addr: int, size: int, chunk: int) -> bytes:
    """`size` bytes at `addr`, read `chunk` bytes per `m` packet."""
    data = b""
    for at in range(addr, addr + size, chunk):
        reply = decode_rle(client.ask(b"m%x,%x" % (at, chunk)))
        assert not reply.startswith(b"E"), reply
        data += bytes.fromhex(reply.decode())
    return data


def _total(counters: bytes) -> int:
    return sum(int.from_bytes(counters[i:i + 8], "little") for i in range(0, len(counters), 8))


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_thread_is_parked_at_every_stop_of_a_64_thread_payload(backend, payload, free_port) -> None:
    """A breakpoint the spinning threads hit again and again: at each stop every one of the 65 threads has
    readable registers, and nothing runs: the workers' rounds[] counters (each bumped every millisecond or so
    while its worker runs) read the same before and after those 130 round trips. They are read in other packets
    the second time (so no reply memo can answer), and they moved from 0 before the first stop. (gdbserver
    reports the hits it has pending without running anything, so they need not move from stop to stop.)"""
    exe = payload(SRC)
    # held: main spins until released below, so the payload's 1.5 s (wall time, stops included) cannot run out
    # and end the workers between stops (at load ~15, 2 runs of 30 found 62 or 56 threads at stop 2 or 4)
    proc = start_server(backend, exe, free_port, "64", "hold")
    client = RspClient(free_port)
    mark, rounds, hold = (symbol_address(exe, name) for name in ("worker_mark", "rounds", "hold"))
    try:
        client.start()
        assert client.ask(b"Z0,%x,1" % mark) == b"OK", backend
        seen = [_total(_memory(client, rounds, 64 * 8, 64 * 8))]      # 0: no worker has started yet
        for stop in range(5):
            client.send(b"vCont;c")
            reply = client.stop_reply()
            assert reply.startswith(b"T05"), reply
            threads = client.threads()
            assert len(threads) == 65, (stop, len(threads))
            before = _memory(client, rounds, 64 * 8, 64 * 8)
            for tid in threads:
                assert client.ask(b"Hg" + tid) == b"OK", (backend, stop, tid)
                assert not client.ask(b"p10").startswith(b"E"), (backend, stop, tid)     # rip
            after = _memory(client, rounds, 64 * 8, 8)
            moved = [i for i in range(64) if before[8 * i:8 * i + 8] != after[8 * i:8 * i + 8]]
            assert not moved, f"{backend} stop {stop}: workers {moved} ran while every thread was stopped"
            seen.append(_total(before))
        assert seen[0] == 0 < seen[1] <= seen[-1], seen     # the witness is live: it counted while workers ran
        assert client.ask(b"M%x,4:02000000" % hold) == b"OK", backend       # main goes on (its CAS needs 0)
        assert client.ask(b"z0,%x,1" % mark) == b"OK", backend
        client.send(b"vCont;c")
        reply = client.stop_reply()
        while reply.startswith(b"T05"):         # gdbserver: hits it kept from before the z0 (gdb skips them)
            client.send(b"vCont;c")
            reply = client.stop_reply()
        assert re.match(rb"W0?9\b", reply), reply
    finally:
        client.close()
    _finish(proc, backend)


KVM_PVM = Path("/sys/module/kvm_pvm").exists()


@km_only
def test_a_breakpoint_removed_while_its_trap_is_on_its_way_is_not_a_sigtrap(payload, free_port) -> None:
    """Threads run through a breakpoint as fast as they can while the client stops and resumes them, until a stop
    lands between a thread's int3 and the trap's delivery to km (kvm-pvm: the thread parks at the breakpoint + 1,
    its trap still to come). The breakpoint is deleted at that stop: the trap that comes later is the
    breakpoint's, so no SIGTRAP is reported (resumed from bp+1, the payload used to die of SIGSEGV) and the payload
    runs to its exit. A run that never saw the race fails on kvm-pvm (the test proved nothing) and is skipped on
    hardware KVM, which delivers an int3's trap in the same exit."""
    exe = payload("gdb_bp_storm.c")
    proc = start_server("km", exe, free_port, "8")
    client = RspClient(free_port)
    hit, keep_going = symbol_address(exe, "hit"), symbol_address(exe, "keep_going")
    try:
        client.start()
        assert client.ask(b"Z0,%x,1" % hit) == b"OK"
        stops, raced, deadline = 0, False, time.monotonic() + 30
        while not raced and time.monotonic() < deadline:
            client.send(b"vCont;c")
            reply = client.stop_reply()
            assert reply.startswith(b"T05") and b"swbreak" in reply, reply
            stops += 1
            threads = json.loads(unescape(decode_rle(client.ask(b"jThreadsInfo"))))     # every thread's rip
            raced = any(int.from_bytes(bytes.fromhex(t["registers"]["16"]), "little") == hit + 1 for t in threads)
        if not raced:
            client.send(b"k")
            proc.wait(timeout=30)
            assert not KVM_PVM, f"no stop in {stops} caught a thread between its int3 and the trap"
            pytest.skip(f"no int3 trap on its way in {stops} stops: this KVM delivers it at once")
        assert client.ask(b"z0,%x,1" % hit) == b"OK"
        assert client.ask(b"M%x,4:00000000" % keep_going) == b"OK"
        client.send(b"vCont;c")
        reply = client.stop_reply()
        assert re.match(rb"W0?7\b", reply), (stops, reply)
    finally:
        client.close()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 7 and out == b"hit\n", out + err


@km_only
def test_junk_on_the_connection_then_a_real_gdb_debugs_to_the_end(payload, free_port) -> None:
    """A bad checksum is refused ('-'), binary junk and a packet cut off by a disconnect change nothing: the
    next gdb finds the payload at its first instruction and debugs it to its exit."""
    d = Debuggee("km", payload("gdb_basic.c"), free_port)
    try:
        junk = RspClient(free_port)
        junk.sock.sendall(b"$g#00")
        assert junk.sock.recv(1) == b"-"
        junk.sock.sendall(bytes(range(256)) * 8 + b"}#$\x03\x7d\x00")
        junk.sock.sendall(b"$m401000,")              # unterminated, then gone
        junk.close()
        d.connect()
        assert d.gdb.run("-stack-info-frame")["payload"]["frame"]["func"] == "_start", d.diagnostics()
        assert run_to(d, "add")["frame"]["func"] == "add", d.diagnostics()
        d.gdb.console("delete")
        basic_runs_to_its_end(d)
    finally:
        d.close()


@km_only
def test_a_second_client_waits_while_gdb_debugs_then_takes_over(payload, free_port) -> None:
    """One gdb at a time: a second connection is neither answered nor dropped (and cannot disturb the session)
    while the first lasts; once the first gdb has gone, the second is served where the first left the payload
    and debugs it to its end, its output and status intact."""
    d = Debuggee("km", payload("gdb_basic.c"), free_port)
    try:
        d.connect()
        second = RspClient(free_port, timeout_s=1.0)
        second.send(b"?")
        with pytest.raises(TimeoutError):
            second.receive()
        frame = run_to(d, "add")["frame"]
        assert frame["func"] == "add", d.diagnostics()
        d.gdb.console("delete")
        second.timeout_s = 30.0
        second.sock.settimeout(30.0)
        d.gdb.controller.gdb_process.kill()        # the first session ends: its connection drops
        reply = second.receive()                    # the `?` sent long ago: stopped at add's breakpoint
        assert reply.startswith(b"T05"), reply
        rip = int.from_bytes(bytes.fromhex(decode_rle(second.ask(b"p10")).decode()), "little")
        assert rip == int(frame["addr"], 16), (hex(rip), frame)
        second.send(b"vCont;c")
        assert re.match(rb"W0?3\b", second.stop_reply()), d.diagnostics()
        second.close()
        status, out, err = d.finish()
        assert status == 3 and "counter=42" in out, err
    finally:
        d.close()
