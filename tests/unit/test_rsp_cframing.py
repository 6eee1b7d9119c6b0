"""The stub's compiled framing (kdbg/rsp/cframing.py) against its pure-Python twin (kdbg/rsp/packets.py): the same
bodies give the same frames byte for byte, and what either frames parses back to the body."""
from __future__ import annotations

import random

import pytest

from kdbg.rsp import cframing, packets
from kdbg.rsp.packets import (PACKET, PacketParser, encode_compiled, encode_packet, encode_python, escape,
                               sum_compiled, unescape)


@pytest.fixture(scope="module")
def compiled():
    """The compiled framing, as GdbServer loads it (built into the user's cache once per machine)."""
    if not packets.use_compiled_framing():
        pytest.fail("kdbg.rsp.cframing could not be built or loaded: is gcc or Python's headers missing?")
    yield
    packets.use_compiled_framing()      # as a GdbServer in this process left it


def bodies(seed: int, count: int):
    """Hex replies, binary bodies with escapes and NULs, bodies of long runs: around every length rule (4 bytes,
    512, runs of 7 and 8 repeats whose count would be '$' or '#', 97 repeats a mark, 16 for binary)."""
    rng = random.Random(seed)
    pieces = [b"}", b"#", b"$", b"*", b"]", b"\x00", b"A", b"0", b"f", b"}]"]
    for _ in range(count):
        n = rng.choice([1, 3, 4, 5, 16, 100, 511, 512, 513, 600, 4096, 20000])
        kind = rng.random()
        if kind < 0.3:
            yield bytes(rng.choice(b"0123456789abcdef") for _ in range(n))
        elif kind < 0.7:
            runs = (1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 97, 98, 99, 130, 200)
            yield b"".join(rng.choice(pieces) * rng.choice(runs) for _ in range(n // 8 + 1))[:n]
        else:
            yield bytes(rng.choice(b"0f") for _ in range(n))


def test_compiled_frames_are_the_python_twins(compiled) -> None:
    for body in bodies(7, 1500):
        assert encode_compiled(body) == encode_python(body), body[:64]


def test_compiled_frames_parse_back_to_the_body(compiled) -> None:
    for data in bodies(11, 200):
        body = escape(data)                  # a reply carries binary data escaped
        events = PacketParser().feed(encode_compiled(body))
        assert [(e.kind, e.data) for e in events] == [(PACKET, body)] and unescape(events[0].data) == data


def test_compiled_sum_is_the_byte_sum(compiled) -> None:
    rng = random.Random(3)
    for n in (0, 1, 255, 256, 257, 4096, 65536, 70000):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert sum_compiled(data) == sum(data) & 0xFF


def test_encode_packet_is_the_same_with_and_without_the_compiled_module(compiled) -> None:
    long_reply = bytes(range(256)).hex().encode() * 40 + b"0" * 3000
    framed = encode_packet(long_reply)
    packets.use_compiled_framing(False)
    try:
        assert encode_python(long_reply) == framed
    finally:
        packets.use_compiled_framing()
    assert len(framed) < len(long_reply)        # the zero run is encoded


def test_a_machine_that_cannot_build_it_frames_in_python(tmp_path, monkeypatch) -> None:
    """No compiler: build() fails once, leaves a marker, and load() gives None without trying again; the stub's
    framing (as GdbServer asks for it at start) then runs in Python: long replies are framed by encode_python and
    parse back to their body."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CC", "/nonexistent/cc")
    assert cframing.load() is None
    assert list((tmp_path / "km").glob("*.failed"))
    assert cframing.load() is None
    framed_in_python = []
    monkeypatch.setattr(packets, "encode_python", lambda *a: framed_in_python.append(a) or encode_python(*a))
    try:
        assert packets.use_compiled_framing() is False
        long_reply = bytes(range(256)).hex().encode() * 8 + b"0" * 600
        events = PacketParser().feed(encode_packet(long_reply))
        assert [(e.kind, e.data) for e in events] == [(PACKET, long_reply)]
        assert framed_in_python == [(long_reply, True)]
    finally:
        monkeypatch.undo()
        packets.use_compiled_framing()      # as a GdbServer in this process left it
