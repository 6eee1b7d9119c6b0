"""What the stop lane's tests share (kdbg/rsp/cstop.py against its twin, KM_RSP_LANE=python): km's environment
with a hook that counts the packets C answered (so a run cannot pass with Python answering everything), that
count, a no-ack session stopped where the payload's stop_here() is called, replies made comparable across two
km runs (thread ids numbered in order of appearance), and the check that a run with the lane agrees with its twin's."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from harness.km import hooked_env
from harness.rsp_client import RspClient
from harness.symbols import symbol_address
from kdbg.rsp.packets import decode_rle

# Loaded by km's Python as sitecustomize: after every serve() the lane's count is written (replaced whole, since
# km may be killed at the end)
LANE_HOOK = """
import os
from kdbg.rsp import cstop
_serve = cstop.StopLane.serve
def serve(self, *args, **kwargs):
    try:
        return _serve(self, *args, **kwargs)
    finally:
        out = os.environ["KM_TEST_LANE_OUT"]
        with open(out + ".tmp", "w") as f:
            f.write(str(self.answered))
        os.replace(out + ".tmp", out)
cstop.StopLane.serve = serve
"""
_THREAD_ID = re.compile(rb"p[0-9a-f]+\.[0-9a-f]+|process:[0-9a-f]+")


def lane_env(tmp_path: Path, lane: str) -> tuple[dict[str, str], Path]:
    """km's environment with the lane on ("compiled") or off ("python") and the counting hook; the count's file."""
    out = tmp_path / f"answered-{lane}.txt"
    return hooked_env(tmp_path, LANE_HOOK, {"KM_RSP_LANE": lane, "KM_TEST_LANE_OUT": str(out)}), out


def answered(out: Path) -> int:
    """The packets C answered in the run that wrote `out` (0 when the lane never served)."""
    return int(out.read_text()) if out.exists() else 0


def stop_in(client: RspClient, exe: Path, function: str = "stop_here") -> bytes:
    """gdb's handshake in no-ack mode, then a continue to a breakpoint at `function`, taken out again at the stop:
    the process id (pPID) for vCont."""
    client.ask(b"qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+")
    assert client.start_no_ack() == b"OK"
    client.ask(b"Hg0")
    pid = re.search(rb"thread:(p[0-9a-f]+)\.", client.ask(b"?")).group(1)
    at = symbol_address(exe, function)
    assert client.ask(b"Z0,%x,1" % at) == b"OK"
    client.send(b"vCont;c:%s.-1" % pid)
    assert client.stop_reply().startswith(b"T05")
    assert client.ask(b"z0,%x,1" % at) == b"OK"
    return pid


def numbered_threads(replies: list[bytes]) -> list[bytes]:
    """The replies with each thread id (pPID.TID, process:PID) replaced by its order of first appearance."""
    numbers: dict[bytes, bytes] = {}

    def number(match: re.Match) -> bytes:
        return numbers.setdefault(match.group(), b"p<%d>" % len(numbers))
    return [_THREAD_ID.sub(number, reply) for reply in replies]


def numbered_exchanges(exchanges: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """(packet, reply) pairs with the replies' thread ids numbered as numbered_threads does."""
    replies = numbered_threads([reply for _, reply in exchanges])
    return [(packet, reply) for (packet, _), reply in zip(exchanges, replies)]


Exchanges = list[tuple[bytes, bytes]]


def assert_twins_agree(run: Callable[[str], tuple[Exchanges, int]], least: int) -> Exchanges:
    """`run(lane)` (its (packet, reply) pairs, thread ids numbered, and the packets C answered) with the lane on and
    off: C answered at least `least`, the twin none, and the lane's run got the twin's reply to every packet. The
    lane's pairs."""
    from kdbg.rsp import cstop
    assert cstop.load() is not None, "the stop lane cannot be built here (gcc, python3-dev?)"
    compiled, answered = run("compiled")
    twin, twin_answered = run("python")
    assert twin_answered == 0
    assert answered >= least, answered
    for index, ((packet, reply), (_, twin_reply)) in enumerate(zip(compiled, twin)):
        assert reply == twin_reply, (index, packet, reply[:200], twin_reply[:200])
    assert len(compiled) == len(twin)
    return compiled


def word(reply: bytes) -> int:
    """A little-endian value from a (possibly run-length encoded) hex reply: a register or a memory word."""
    return int.from_bytes(bytes.fromhex(decode_rle(reply).decode()), "little")
