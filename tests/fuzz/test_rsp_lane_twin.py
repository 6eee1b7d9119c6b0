"""The stop lane (kdbg/rsp/cstop.py) against its twin (KM_RSP_LANE=python), end to end: one seeded stream of packets
a stopped session may see, sent to km with the lane and to km without it, must get the same replies byte for byte
(thread ids aside). The stream mixes what C answers (g, p, m, repeated queries, known QPassSignals sets) with every
kind of change the lane must notice: memory writes (M, X, over planted int3s too), register writes (P, G), thread
switches (Hg), breakpoints planted and taken out (Z0/z0), single steps, and packets Python answers (x, qXfer
features, ?, T, QProgramSignals). A hook counts what C answered: both runs cannot pass with Python answering all."""
from __future__ import annotations

import random
import re
from pathlib import Path

from harness.debuggee import start_server, stop_server
from harness.gdb import free_port
from harness.rsp_client import RspClient
from harness.stop_lane import answered, assert_twins_agree, lane_env, numbered_exchanges, stop_in, word
from harness.symbols import symbol_address
from kdbg.rsp.packets import decode_rle, escape

SRC = "rsp_lane.c"
SEED, COUNT = 11, 700
STEPS = 4                   # single steps of main (more would reach the write() that ends the reader's read())


def stream(exe: Path, tmp_path: Path, lane: str) -> tuple[list[tuple[bytes, bytes]], int]:
    """(packet, reply) of the whole stream, thread ids numbered in order of appearance; packets C answered."""
    rng = random.Random(SEED)
    env, out = lane_env(tmp_path, lane)
    port = free_port()
    km = start_server("km", exe, port, env=env)
    client = RspClient(port)
    exchanges: list[tuple[bytes, bytes]] = []

    def ask(packet: bytes) -> bytes:
        reply = client.ask(packet)
        exchanges.append((packet, reply))
        return reply

    try:
        stop_in(client, exe)
        stop_here, main = symbol_address(exe, "stop_here"), symbol_address(exe, "main")
        other = symbol_address(exe, "other")        # the reader's text: it never runs during the stream
        region = word(ask(b"m%x,8" % symbol_address(exe, "region")))
        threads = re.findall(rb"p[0-9a-f]+\.[0-9a-f]+", ask(b"qfThreadInfo"))
        steps, planted = 0, set()
        for _ in range(COUNT):
            k = rng.randrange(20)
            if k < 3:
                ask(b"g")
            elif k < 5:
                ask(b"p%x" % rng.choice([0, 5, 7, 0x10, 0x11, 0x18, 0x39, 0x3a, 0x50, 0x93, 0x94, rng.randrange(160)]))
            elif k < 9:
                at = rng.choice([region, region + 4096 - 8, region + 2 * 4096 - 16, stop_here - 4, main, other])
                ask(b"m%x,%x" % (at + rng.randrange(-8, 16), rng.choice([1, 2, 4, 8, 16, 64, 300, 0x1000])))
            elif k == 9:
                ask(rng.choice([b"qXfer:threads:read::0,fff", b"qC", b"qfThreadInfo", b"qsThreadInfo",
                                b"qXfer:threads:read::0,20", b"qAttached", b"qOffsets"]))
            elif k == 10:
                ask(rng.choice([b"QPassSignals:e;14", b"QPassSignals:", b"QPassSignals:1e", b"QProgramSignals:",
                                b"QPassSignals:e;14;1e"]))
            elif k == 11:
                ask(b"Hg%s" % rng.choice(threads + [b"0", b"-1"]))
            elif k == 12:                       # the region's first page is the payload's scratch
                at = region + rng.randrange(0, 4096 - 16)
                data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 16)))
                ask(b"M%x,%x:%s" % (at, len(data), data.hex().encode()) if rng.random() < 0.5
                    else b"X%x,%x:" % (at, len(data)) + escape(data))
            elif k == 13:                       # r8-r15: main reloads what it needs from memory
                ask(b"P%x=%s" % (rng.randrange(8, 16), rng.getrandbits(64).to_bytes(8, "little").hex().encode()))
            elif k == 14:
                at = rng.choice([stop_here + rng.randrange(0, 12), main + rng.randrange(0, 40),
                                 other + rng.randrange(0, 8)])
                if at in planted and rng.random() < 0.6:
                    ask(b"z0,%x,1" % at)
                    planted.discard(at)
                else:
                    ask(b"Z0,%x,1" % at)
                    planted.add(at)
            elif k == 15:                       # the reader's text changed (over an int3: its new original)
                at = other + rng.randrange(0, 8)
                ask(b"M%x,2:%04x" % (at, rng.getrandbits(16)) if rng.random() < 0.5
                    else b"X%x,1:" % at + escape(bytes([rng.getrandbits(8)])))
                ask(b"m%x,10" % other)
            elif k == 16:                       # r8 changed, the rest written back
                g = decode_rle(ask(b"g"))
                if b"x" not in g:
                    ask(b"G" + g[:8 * 16] + b"%016x" % rng.getrandbits(64) + g[9 * 16:])
            elif k == 17 and steps < STEPS:
                steps += 1
                client.send(b"vCont;s:%s" % threads[0])
                exchanges.append((b"vCont;s", client.stop_reply()))
            elif k == 18:
                ask(rng.choice([b"qXfer:features:read:target.xml:0,200", b"?", b"qTStatus", b"T%s" % threads[1]]))
            else:
                ask(b"x%x,%x" % (region + rng.randrange(0, 64), rng.randrange(0, 32)))
    finally:
        client.close()
        stop_server(km)
    return numbered_exchanges(exchanges), answered(out)


def test_a_seeded_stream_gets_the_twins_replies(payload, tmp_path) -> None:
    exe = payload(SRC)
    assert_twins_agree(lambda lane: stream(exe, tmp_path, lane), COUNT // 4)
