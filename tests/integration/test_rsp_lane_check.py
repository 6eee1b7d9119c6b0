"""The stop lane's edges (kdbg/rsp/cstop.py), against its twin (KM_RSP_LANE=python) byte for byte: reads that start,
end or cross where the lane's host windows do (two VMAs of one mapping, a hole after them, the top of the address
space, a length past the reply's size), numbers written oddly (upper case, leading zeros, more than 16 digits, none),
registers past the last, replayed queries, QPassSignals sets, several packets in one segment, a ^C or junk between
packets, a bad checksum, and a stray `-` in no-ack mode (gdbserver drops it; it must not resend a reply C never
saw). A hook counts what C answered, so both runs cannot pass with Python answering everything. Then the lane's
state against what the monitor changes by itself while gdb is stopped: a snapshot (km --mgtpipe) takes a thread
parked inside read() out of the call and rewinds it onto its `syscall`."""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from harness.debuggee import start_server, stop_server
from harness.gdb import free_port
from harness.rsp_client import RspClient
from harness.stop_lane import answered, assert_twins_agree, lane_env, numbered_exchanges, stop_in, word
from harness.symbols import symbol_address
from kdbg.rsp.packets import decode_rle, encode_packet

SRC = "rsp_lane.c"
PAGE = 4096


def _start(exe: Path, tmp_path: Path, lane: str, km_options: tuple[str, ...] = ()):
    """km -g with the lane on ("compiled") or off ("python"), a client in no-ack mode stopped in stop_here() with
    the second thread parked in read(): (km, client, pid, answered-count file)."""
    env, out = lane_env(tmp_path, lane)
    port = free_port()
    km = start_server("km", exe, port, km_options=km_options, env=env)
    client = RspClient(port)
    return km, client, stop_in(client, exe), out


def _finish(km, client: RspClient) -> None:
    client.close()
    stop_server(km)


def odd_packets(exe: Path, tmp_path: Path, lane: str) -> tuple[list[tuple[bytes, bytes]], int]:
    """(packet, reply) of every exchange below, thread ids numbered in order of appearance; packets C answered."""
    km, client, pid, out = _start(exe, tmp_path, lane)
    exchanges: list[tuple[bytes, bytes]] = []

    def ask(packet: bytes) -> bytes:
        reply = client.ask(packet)
        exchanges.append((packet, reply))
        return reply

    def raw(data: bytes, replies: int) -> None:
        """`data` in one segment (each packet's reply read after it)."""
        client.sock.sendall(data)
        exchanges.append((data, b" | ".join(client.receive() for _ in range(replies))))

    try:
        region = word(ask(b"m%x,8" % symbol_address(exe, "region")))
        stop_here = symbol_address(exe, "stop_here")
        top = 1 << 64
        for addr, length in [(region, 8), (region, 8), (region - 8, 16), (region + PAGE - 4, 8),   # across VMAs
                             (region + 2 * PAGE - 4, 8), (region + 2 * PAGE, 4),           # a prefix; none
                             (region, 0x9000), (region + PAGE, 0x8000), (region, 0), (0, 8),  # past MAX_READ
                             (top - 8, 8), (top - 1, 1), (top - 16, 0x20), (stop_here - 1, 3)]:
            ask(b"m%x,%x" % (addr, length))
        for packet in [b"m%X,8" % region, b"m%032x,8" % region, b"m%x,%016x" % (region, 8),
                       b"m%x,00000000000000008" % region, b"m%x," % region, b"m,8", b"m%x" % region,
                       b"m%x,8,1" % region, b"m%x,ffffffffffffffff" % region, b"m-1,8", b"m%x,8 " % region,
                       b"p10", b"pA", b"pa", b"p0000000000000010", b"p00000000000000010", b"p", b"p-1",
                       b"pffffffffffffffff", b"p93", b"p94", b"pc8", b"g", b"gg",
                       b"qC", b"qC", b"qfThreadInfo", b"qfThreadInfo", b"qsThreadInfo", b"qsThreadInfo",
                       b"qXfer:threads:read::0,fff", b"qXfer:threads:read::0,fff", b"qXfer:threads:read::0,10",
                       b"qXfer:threads:read::0,10", b"QPassSignals:e;14", b"QPassSignals:e;14", b"QPassSignals:",
                       b"QPassSignals:"]:
            ask(packet)
        g, p10 = encode_packet(b"g", rle=False), encode_packet(b"p10", rle=False)
        m = encode_packet(b"m%x,4" % region, rle=False)
        raw(g + p10 + m, 3)
        raw(g + b"\x03" + p10, 2)
        raw(b"$p10#00" + m, 1)                      # a bad checksum: dropped in no-ack mode
        raw(b"junk" + m, 1)
        # a stray '-' after a reply C sent (and after one Python sent): no-ack mode resends nothing
        ask(b"qC")
        ask(b"p10")
        raw(b"-" + encode_packet(b"qsThreadInfo", rle=False), 1)
        ask(b"qC")
        raw(b"-" + encode_packet(b"qsThreadInfo", rle=False), 1)
    finally:
        _finish(km, client)
    return numbered_exchanges(exchanges), answered(out)


def test_odd_packets_get_the_twins_replies(payload, tmp_path) -> None:
    exe = payload(SRC)
    compiled = assert_twins_agree(lambda lane: odd_packets(exe, tmp_path, lane), 20)
    assert compiled[-1][1] == compiled[-3][1] == b"l"       # the '-' resent nothing


@pytest.mark.parametrize("lane", ["compiled", "python"])
def test_a_snapshot_while_stopped_is_seen_by_g(payload, tmp_path, lane) -> None:
    """A live snapshot taken while gdb holds the process takes the thread parked in read() out of the call and
    rewinds it (rip onto `syscall`, rax the call's number): g of that thread must show it, as after a thread
    switch (which makes the lane prime again)."""
    from monitor.mgmt.client import ask as management
    exe = payload(SRC)
    sock = tmp_path / "mgt.sock"
    km, client, pid, _ = _start(exe, tmp_path, lane, km_options=(f"--mgtpipe={sock}",))
    try:
        main, reader = re.findall(rb"p[0-9a-f]+\.[0-9a-f]+", client.ask(b"qfThreadInfo"))
        assert client.ask(b"Hg%s" % reader) == b"OK"
        before = decode_rle(client.ask(b"g"))
        assert decode_rle(client.ask(b"g")) == before
        reply = management(str(sock), {"request": "snapshot", "output": str(tmp_path / "snap"), "live": True,
                                       "label": "", "description": ""})
        assert reply.get("ok"), reply
        seen = decode_rle(client.ask(b"g"))
        assert client.ask(b"Hg%s" % main) == b"OK" and client.ask(b"Hg%s" % reader) == b"OK"
        fresh = decode_rle(client.ask(b"g"))
        assert fresh != before                      # (the snapshot did rewind the call)
        assert word(fresh[16 * 16:17 * 16]) == word(before[16 * 16:17 * 16]) - 2      # rip onto `syscall`
        assert seen == fresh
    finally:
        _finish(km, client)


@pytest.mark.parametrize("lane", ["compiled", "python"])
def test_a_thread_still_inside_a_call_is_read_afresh(payload, free_port, lane) -> None:
    """A thread inside vfork (km waits for the child without parking the thread) counts as stopped, but its call
    may still return while gdb holds the process: its registers are not the stopped mapping the target hands out
    again (kdbg.target.Target.registers), so every read must be fresh. The child ends on a byte from stdin, the vfork
    returns the child's pid in rax, and `p0` must show it without an Hg in between (which would prime the lane
    again). Before, the lane kept rax as it was when it first read the thread (polled until the deadline)."""
    exe = payload("rsp_lane_vfork.c")
    km = start_server("km", exe, free_port, env={"KM_RSP_LANE": lane}, stdin=subprocess.PIPE)
    client = RspClient(free_port)
    try:
        pid = stop_in(client, exe)
        forker = re.findall(rb"p[0-9a-f]+\.[0-9a-f]+", client.ask(b"qfThreadInfo"))[1]
        assert client.ask(b"Hg%s" % forker) == b"OK"
        decode_rle(client.ask(b"g"))
        assert word(client.ask(b"p39")) == 58             # orig_rax: inside vfork
        inside = word(client.ask(b"p0"))
        km.stdin.write(b"x")
        km.stdin.flush()
        deadline = time.monotonic() + 10
        rax = inside
        while rax == inside and time.monotonic() < deadline:
            rax = word(client.ask(b"p0"))
        assert rax != inside, "the thread's vfork never returned as seen by p0"
        assert client.ask(b"Hg%s" % pid) == b"OK" and client.ask(b"Hg%s" % forker) == b"OK"
        assert word(client.ask(b"p0")) == rax              # the child's pid, read afresh
        assert decode_rle(client.ask(b"g"))[:16] == b"%016x" % int.from_bytes(rax.to_bytes(8, "little"), "big")
    finally:
        _finish(km, client)
