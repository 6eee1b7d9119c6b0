"""The stub's stop lane (kdbg/rsp/cstop.py): while a session is stopped, C answers g, p, m, repeated queries and
known QPassSignals sets from state Python gave it for this stop. km runs the same packets twice, with the lane
and with its twin (KM_RSP_LANE=python: the Python session loop answers everything); the replies must be the same
byte for byte (thread ids aside, which follow km's pid). Between the reads the client writes a register (P), memory
(M, X), inserts a breakpoint (Z0), switches threads (Hg) and resumes: a lane answering from stale state shows the
old value, so each read after a change is checked against what it must be, and a hook counts what C answered
(without it both runs could pass with Python answering every packet)."""
from __future__ import annotations

import re

from harness.debuggee import start_server, stop_server
from harness.gdb import free_port
from harness.rsp_client import RspClient
from harness.stop_lane import answered, lane_env, numbered_threads, word
from harness.symbols import symbol_address
from kdbg.rsp.packets import decode_rle, escape

SRC = "rsp_lane.c"
SIGUSR1_GDB = 0x1e          # gdb's number for SIGUSR1


def _hex(value: int) -> bytes:
    return value.to_bytes(8, "little").hex().encode()


def run_session(exe, port: int, tmp_path, lane: str) -> tuple[list[bytes], int, int]:
    """The packets below against km with the lane on or off: (every reply with thread ids numbered in order of
    appearance, the exit status, packets answered in C)."""
    counter, stop_here = symbol_address(exe, "counter"), symbol_address(exe, "stop_here")
    env, out = lane_env(tmp_path, lane)
    proc = start_server("km", exe, port, env=env)
    client = RspClient(port)
    replies: list[bytes] = []

    def ask(packet: bytes, compared: bool = True) -> bytes:
        reply = client.ask(packet)
        replies.append(reply if compared else b"(not compared)")
        return reply

    try:
        ask(b"qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+;no-resumed+")
        client.start_no_ack()
        ask(b"Hg0")
        ptid = re.search(rb"thread:(p[0-9a-f]+\.[0-9a-f]+);", ask(b"?")).group(1)
        pid = ptid.split(b".")[0]
        original_text = ask(b"m%x,8" % stop_here)
        assert ask(b"m%x,8" % stop_here) == original_text                   # (answered in C)
        assert ask(b"Z0,%x,1" % stop_here) == b"OK"
        client.send(b"vCont;c:%s.-1" % pid)
        replies.append(client.stop_reply())
        assert replies[-1].startswith(b"T05")

        # the first stop, at stop_here(1): reads, each twice (the second from C) and against each other
        g = decode_rle(ask(b"g"))
        assert decode_rle(ask(b"g")) == g
        assert word(ask(b"p10")) == stop_here == word(g[16 * 16:17 * 16])        # rip
        assert word(ask(b"p5")) == 1 == word(g[5 * 16:6 * 16])                    # rdi: stop_here(1)
        assert word(ask(b"m%x,8" % counter)) == 0x1111
        assert ask(b"m%x,8" % stop_here) == original_text                           # the int3 hidden
        threads = ask(b"qXfer:threads:read::0,fff")
        assert ask(b"qXfer:threads:read::0,fff") == threads
        tids = re.findall(rb'id="p[0-9a-f]+\.([0-9a-f]+)"', threads)
        assert len(tids) == 2, threads
        other = next(t for t in tids if b"p%s.%s" % (pid[1:], t) != ptid)

        # a register write: g and p show it
        rax = word(ask(b"p0"))
        assert ask(b"P0=%s" % _hex(0x1234)) == b"OK"
        assert word(ask(b"p0")) == 0x1234
        assert word(decode_rle(ask(b"g"))[:16]) == 0x1234
        assert ask(b"P0=%s" % _hex(rax)) == b"OK"
        assert word(ask(b"p0")) == rax
        # memory writes, hex and binary: m shows them
        assert ask(b"M%x,8:%s" % (counter, _hex(0x2222))) == b"OK"
        assert word(ask(b"m%x,8" % counter)) == 0x2222
        assert ask(b"X%x,8:" % counter + escape((0x7d23).to_bytes(8, "little"))) == b"OK"   # '}' and '#' escaped
        assert word(ask(b"m%x,8" % counter)) == 0x7d23
        assert ask(b"M%x,8:%s" % (counter, _hex(0x100))) == b"OK"
        assert word(ask(b"m%x,8" % counter)) == 0x100
        # a write over a planted int3 changes the byte it hides (the int3 stays)
        assert ask(b"M%x,1:90" % stop_here) == b"OK"
        assert ask(b"m%x,1" % stop_here) == b"90"
        assert ask(b"M%x,1:%s" % (stop_here, original_text[:2])) == b"OK"
        assert ask(b"m%x,8" % stop_here) == original_text
        # a breakpoint inserted where the lane read before: still hidden
        assert ask(b"Z0,%x,1" % (stop_here + 1)) == b"OK"
        assert ask(b"m%x,8" % stop_here) == original_text
        assert ask(b"z0,%x,1" % (stop_here + 1)) == b"OK"
        assert ask(b"m%x,8" % stop_here) == original_text
        # another thread: its registers, then the first thread's again
        assert ask(b"Hg%s.%s" % (pid, other)) == b"OK"
        other_g = decode_rle(ask(b"g"))
        assert other_g[16 * 16:17 * 16] != g[16 * 16:17 * 16]                       # another rip
        assert decode_rle(ask(b"g")) == other_g
        assert word(ask(b"p10")) == word(other_g[16 * 16:17 * 16])
        assert ask(b"Hg%s" % ptid) == b"OK"
        assert decode_rle(ask(b"g")) == g
        # QPassSignals: gdb's two sets of every stop, learned, then answered in C (and applied all the same)
        for packet in (b"QPassSignals:%x" % SIGUSR1_GDB, b"QPassSignals:", b"QPassSignals:%x" % SIGUSR1_GDB,
                       b"QPassSignals:"):
            assert ask(packet) == b"OK"

        # resumes, as gdb steps over a breakpoint: the second stop, at stop_here(2)
        assert ask(b"z0,%x,1" % stop_here) == b"OK"
        assert word(decode_rle(ask(b"g"))[16 * 16:17 * 16]) == stop_here      # (primed again after z0)
        client.send(b"vCont;s:%s;c:%s.-1" % (ptid, pid))
        replies.append(client.stop_reply())
        assert word(ask(b"p10")) == stop_here + 1                                  # after push %rbp
        assert ask(b"Z0,%x,1" % stop_here) == b"OK"
        client.send(b"vCont;c:%s.-1" % pid)
        replies.append(client.stop_reply())
        assert replies[-1].startswith(b"T05")
        assert word(ask(b"p5")) == 2                                               # rdi: stop_here(2)
        assert word(decode_rle(ask(b"g"))[5 * 16:6 * 16]) == 2
        assert word(ask(b"m%x,8" % counter)) == 0x101                              # stop_here(1) added 1
        assert ask(b"qXfer:threads:read::0,fff") == threads
        assert ask(b"z0,%x,1" % stop_here) == b"OK"
        client.send(b"vCont;s:%s;c:%s.-1" % (ptid, pid))
        replies.append(client.stop_reply())
        assert ask(b"Z0,%x,1" % stop_here) == b"OK"
        client.send(b"vCont;c:%s.-1" % pid)
        replies.append(client.stop_reply())

        # the third stop, at stop_here(3), the other thread gone: a step made by the quick resume (no event). The
        # scratch registers hold what pthread_join left, which depends on when the other thread ended: g replies
        # are not compared with the twin's here
        assert word(ask(b"p5")) == 3
        assert word(ask(b"p10")) == stop_here
        assert ask(b"z0,%x,1" % stop_here) == b"OK"
        assert word(decode_rle(ask(b"g", False))[16 * 16:17 * 16]) == stop_here      # (primed again after z0)
        client.send(b"vCont;s:%s;c:%s.-1" % (ptid, pid))
        replies.append(client.stop_reply())
        assert word(ask(b"p10")) == stop_here + 1
        assert word(decode_rle(ask(b"g", False))[16 * 16:17 * 16]) == stop_here + 1
        # the last set gdb sent (from C) passes SIGUSR1: the handler runs, no stop
        assert ask(b"QPassSignals:%x" % SIGUSR1_GDB) == b"OK"
        client.send(b"vCont;c:%s.-1" % pid)
        replies.append(client.stop_reply())
        status = int(re.match(rb"W([0-9a-f]+)", replies[-1]).group(1), 16)
    finally:
        client.close()
        stop_server(proc)
    return numbered_threads(replies), status, answered(out)


def test_the_lane_answers_as_python_does_and_never_from_stale_state(payload, tmp_path) -> None:
    from kdbg.rsp import cstop
    assert cstop.load() is not None, "the stop lane cannot be built here (gcc, python3-dev?)"
    exe = payload(SRC)
    compiled, compiled_status, answered = run_session(exe, free_port(), tmp_path, "compiled")
    twin, twin_status, twin_answered = run_session(exe, free_port(), tmp_path, "python")
    assert compiled_status == twin_status == (0x100 + 1 + 2 + 3 + 0x40) & 0x7f
    assert compiled == twin
    assert twin_answered == 0
    # C answered at least: the second m of the text, the repeated g, p10, p5, m of counter and text, the second
    # qXfer, each p0/g/m after a write, the m after Z0/z0, the other thread's g twice and p10, the first's g, the
    # two QPassSignals repeats, p5, g, m, qXfer and QPassSignals after the resume, p5, p10, p10 and g at the third
    assert answered >= 32, answered
