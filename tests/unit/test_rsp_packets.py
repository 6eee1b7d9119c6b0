"""RSP framing: every split point of a byte stream, escapes, run-length encoding, checksums."""
from __future__ import annotations

import re

import pytest

from kdbg.rsp.packets import (MAX_BODY, PACKET_SIZE, EventKind, PacketParser, checksum, decode_rle, encode_packet,
                              encode_rle, escape, unescape)


def frame(body: bytes) -> bytes:
    return b"$" + body + b"#%02x" % checksum(body)


STREAM = (b"+" + frame(b"qSupported:multiprocess+;swbreak+") + b"\x03" + frame(b"m4000,10")
          + b"-" + frame(b"X1000,4:" + escape(b"}#$*")) + b"junk" + frame(b"g"))
EXPECTED = [(EventKind.ACK, b""), (EventKind.PACKET, b"qSupported:multiprocess+;swbreak+"),
            (EventKind.INTERRUPT, b""), (EventKind.PACKET, b"m4000,10"), (EventKind.NACK, b""),
            (EventKind.PACKET, b"X1000,4:" + escape(b"}#$*")), (EventKind.PACKET, b"g")]


def feed_all(chunks: list[bytes]) -> list[tuple[EventKind, bytes]]:
    parser = PacketParser()
    return [(e.kind, e.data) for chunk in chunks for e in parser.feed(chunk)]


def test_whole_stream() -> None:
    assert feed_all([STREAM]) == EXPECTED


@pytest.mark.parametrize("split", range(1, len(STREAM)))
def test_every_split_point(split: int) -> None:
    assert feed_all([STREAM[:split], STREAM[split:]]) == EXPECTED


def test_byte_at_a_time() -> None:
    assert feed_all([bytes((b,)) for b in STREAM]) == EXPECTED


def test_bad_checksum_is_reported_and_parsing_goes_on() -> None:
    events = feed_all([b"$g#00" + frame(b"?")])
    assert events == [(EventKind.BAD_PACKET, b"g"), (EventKind.PACKET, b"?")]


def test_non_hex_checksum_is_bad() -> None:
    assert feed_all([b"$g#zz"])[0][0] is EventKind.BAD_PACKET


def test_dollar_inside_body_restarts_packet() -> None:
    assert feed_all([b"$m10,4$" + frame(b"g")[1:]]) == [(EventKind.PACKET, b"g")]


def test_truncated_packet_waits_for_more() -> None:
    parser = PacketParser()
    assert parser.feed(b"$m10,") == []
    assert [e.data for e in parser.feed(b"4#" + b"%02x" % checksum(b"m10,4"))] == [b"m10,4"]


def test_huge_body_is_dropped_not_buffered() -> None:
    body = b"M0,1:" + b"0" * (3 << 20)
    assert feed_all([frame(body) + frame(b"?")]) == [(EventKind.BAD_PACKET, body[:MAX_BODY]), (EventKind.PACKET, b"?")]
    chunks = [body[i:i + 4096] for i in range(0, len(body), 4096)]
    assert feed_all([b"$", *chunks, b"#00", frame(b"g")])[-1] == (EventKind.PACKET, b"g")


def test_largest_legal_packet_is_kept() -> None:
    body = b"X1000,4000:" + b"}]" * PACKET_SIZE
    assert len(body) <= MAX_BODY and feed_all([frame(body)]) == [(EventKind.PACKET, body)]


@pytest.mark.parametrize("data", [b"", b"plain", b"}", b"#$*}", bytes(range(256))])
def test_escape_round_trip(data: bytes) -> None:
    escaped = escape(data)
    assert not any(c in escaped for c in b"#$*") and unescape(escaped) == data


def test_unescape_rejects_trailing_escape() -> None:
    with pytest.raises(ValueError):
        unescape(b"ab}")


@pytest.mark.parametrize("body", [b"0" * 4, b"0" * 7, b"0" * 8, b"0" * 9, b"0" * 200, b"a0000000b" * 3,
                                  b"x" + b"}]" * 10, b"ffffffff" + b"0" * 31 + b"1"])
def test_rle_round_trip_and_count_bytes(body: bytes) -> None:
    encoded = encode_rle(body)
    assert decode_rle(encoded) == body
    for i, byte in enumerate(encoded):
        if byte == ord("*"):
            assert encoded[i + 1] not in b"#$" and 32 <= encoded[i + 1] <= 126


def test_rle_of_escaped_binary_expands_back_to_the_data() -> None:
    """gdb expands runs first, then unescapes (remote.c read_frame): runs of escaped values, runs right after a
    '}', runs of the four special bytes and long runs all come back as the data."""
    import random
    rng = random.Random(9)
    pieces = [b"}", b"#", b"$", b"*", b"]", b"\x03", b"\x04", b"\n", b"\x00", b"A"]
    for size in (5, 64, 600, 40000):
        for _ in range(20):
            data = b"".join(rng.choice(pieces) * rng.choice((1, 1, 2, 4, 5, 7, 40, 130)) for _ in range(size // 8 + 1))
            body = escape(data)
            encoded = encode_rle(body)
            assert decode_rle(encoded) == body and unescape(decode_rle(encoded)) == data
            counts = re.findall(rb"\*(.)", encoded, re.DOTALL)          # each mark and the count after it
            assert all(c not in b"#$" and 32 <= c[0] <= 126 for c in counts)
    assert len(encode_rle(escape(b"\0" * 4000))) < 200                   # long escaped bodies are shrunk too


def test_short_bodies_are_encoded_exactly_where_a_byte_repeats_three_more_times() -> None:
    import random
    rng = random.Random(5)
    for _ in range(2000):
        body = bytes(rng.choice(b"0f1") for _ in range(rng.randint(0, 200)))
        encoded = encode_rle(body)
        assert decode_rle(encoded) == body
        assert (encoded != body) == bool(re.search(rb"(.)\1\1\1", body, re.DOTALL))


def test_rle_decodes_gdb_example() -> None:
    # The manual's example: "0* " means "0000" (a space is 32: 3 more repeats).
    assert decode_rle(b"0* ") == b"0000"


def test_rle_shrinks_runs() -> None:
    assert len(encode_rle(b"0" * 64)) < 10


def test_broken_rle_is_a_bad_packet() -> None:
    assert feed_all([frame(b"*")])[0][0] is EventKind.BAD_PACKET


def test_encode_packet_checksum() -> None:
    assert encode_packet(b"OK") == b"$OK#9a"
    assert encode_packet(b"") == b"$#00"


@pytest.mark.parametrize("size", [0, 1, 16, 17, 128, 255, 256, 257, 512, 513, 4096, 0x4000, 0x4000 + 77])
def test_checksum_of_long_bodies_is_the_byte_sum(size: int) -> None:
    body = bytes((i * 131 + 7) & 0xFF for i in range(size)) if size % 2 else b"\xff" * size
    assert checksum(body) == sum(body) & 0xFF


def test_whole_packet_fast_path_agrees_with_the_byte_loop() -> None:
    for data in (frame(b"g"), frame(b"m4000,10"), b"$g#0g", b"$g#+6", b"$g# 7", b"$g#00", frame(b"0*\"")):
        whole = [(e.kind, e.data) for e in PacketParser().feed(data)]
        assert whole == feed_all([bytes((b,)) for b in data]), data


def test_framing_a_reply_twice_gives_the_same_frame() -> None:
    reply = b"00" * 800
    assert encode_packet(reply) == encode_packet(bytearray(reply)) == b"$0" + encode_rle(reply)[1:] \
        + b"#%02x" % checksum(encode_rle(reply))


def test_ack_then_packet_in_one_read_takes_the_fast_path_with_the_same_events() -> None:
    for data in (b"+" + frame(b"vCont;s:p1.1;c:p1.-1"), b"+" + frame(b"g"), b"+$g#00", b"+$a$g#67"):
        whole = [(e.kind, e.data) for e in PacketParser().feed(data)]
        assert whole == feed_all([bytes((b,)) for b in data]), data


def test_a_large_reply_framed_again_is_the_same_and_never_stale() -> None:
    """A `g` reply above the small-reply cache (~4.8 KB with AVX-512) framed again gives the same frame; an equal
    copy or a changed reply (a bytearray changed in place too) is framed from its own bytes."""
    regs = b"0011223344556677" * 400
    first = encode_packet(regs)
    assert encode_packet(regs) == first
    assert first == b"$" + encode_rle(regs) + b"#%02x" % checksum(encode_rle(regs))
    changed = b"ff" + regs[2:]
    assert encode_packet(changed) == b"$" + encode_rle(changed) + b"#%02x" % checksum(encode_rle(changed))
    mutable = bytearray(regs)
    assert encode_packet(mutable) == first
    mutable[:2] = b"ee"
    assert encode_packet(mutable) != first and encode_packet(mutable)[1:3] == b"ee"


def test_a_read_seen_before_gives_the_same_events_only_between_packets() -> None:
    """Short reads are remembered (gdb repeats `g`, `m...`): the memo answers only from the idle state."""
    read = b"+" + frame(b"m4000,10")
    first = feed_all([read])
    assert feed_all([read]) == first == [(EventKind.ACK, b""), (EventKind.PACKET, b"m4000,10")]
    assert feed_all([b"$qC", read]) == [(EventKind.PACKET, b"m4000,10")]     # the '+' was body, not an ack
    assert feed_all([b"+$g#00"]) == feed_all([b"+$g#00"]) == [(EventKind.ACK, b""), (EventKind.BAD_PACKET, b"g")]
