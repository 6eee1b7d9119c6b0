"""The RSP fuzzer: hostile bytes for the gdb stub over its socket, from a seed.

Malformed framing (bad checksums, truncated and unterminated packets, binary junk, huge lengths, an escape at the
end, run-length encoding at the start), valid commands with bad arguments (m/M/X at wild addresses and lengths,
Z at unmapped addresses, G with short data, P for register 9999, vCont junk, qXfer with unknown annexes and
offsets past the end, vFile with bad descriptors), 0x03 interrupts, and disconnects in the middle of a packet.
Nothing it sends may resume the payload for good (no c/C/D/k/vKill, no vCont that parses), write its memory or
registers where they matter, or touch host files: afterwards a real gdb must debug the payload to its normal
exit. Every so many packets the fuzzer reconnects and asks `?`: the stub must answer a fresh connection.
"""
from __future__ import annotations

import random
import select
import socket
import time
from dataclasses import dataclass, field

from kdbg.rsp.packets import checksum, decode_rle, encode_packet

WILD = [0, 1, 0xFFFFFFFFFFFFFFFF, 0xFFFF800000000000, 0xDEADBEEF000, 0x7FFFFFFFF000, 0x1000, 0xFFFFFFFFFFFFF000]
WILD_WRITE = [a for a in WILD if a not in (0x1000, 0x7FFFFFFFF000)]
LENGTHS = [0, 1, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF, 0x7FFFFFFF, 0x100000, 4096, 65536]
STEPS = True
EPISODE = 500            # packets between checked reconnects
ANSWER_S = 20.0          # a fresh connection's `?` must be answered within this (a loaded 2-core machine)


def frame(body: bytes) -> bytes:
    """`$body#cs` as it is: no escapes, no run-length encoding (hostile bodies keep their `$`, `#`, `}` and `*`)."""
    return encode_packet(body, rle=False)


def _hex(r: random.Random, n: int) -> bytes:
    return bytes(r.getrandbits(8) for _ in range(n)).hex().encode()


def _num(r: random.Random, choices: list[int]) -> bytes:
    return b"%x" % (r.choice(choices) if r.random() < 0.7 else r.getrandbits(64))


def command(r: random.Random, text_addr: int) -> bytes:
    """A well-framed command body with hostile arguments."""
    k = r.randrange(22)
    if k == 0:
        return b"m" + _num(r, WILD + [text_addr]) + b"," + _num(r, LENGTHS)
    if k == 1:                          # writes only where nothing of the payload lives
        data = _hex(r, r.randrange(0, 16))
        return b"M" + _num(r, WILD_WRITE) + b"," + _num(r, LENGTHS) + b":" + data
    if k == 2:
        return b"X" + _num(r, WILD_WRITE) + b"," + _num(r, LENGTHS) + b":" + bytes(r.getrandbits(8) for _ in range(8))
    if k == 3:                          # a breakpoint at a wild address, or in the text (cleared at disconnect)
        addr = text_addr if r.random() < 0.1 else r.choice(WILD + [r.getrandbits(64)])
        return b"%s%d,%x,%s" % (r.choice([b"Z", b"z"]), r.randrange(6), addr, _num(r, [1, 2, 4, 8, 0, 3]))
    if k == 4:                          # short and not hex: refused (a short valid G is sent per connection)
        return b"G" + _hex(r, r.randrange(0, 64))[:-1] + r.choice([b"z", b"-", b"\xff", b"g"])
    if k == 5:
        return b"P%x=%s" % (r.choice([9999, 0x10000, 0xFFFFFFFF, 200]), _hex(r, r.randrange(0, 12)))
    if k == 6:
        return b"p" + _num(r, [9999, 0xFFFFFFFF, 200, 0, 16, 57, 100])
    if k == 7:                          # an invalid action anywhere makes the whole packet an error
        items = [r.choice([b"c", b"s", b"C05", b"S0b", b"t", b"r0,0", b"c:p1.-1", b"s:zz"]) for _ in range(3)]
        items.insert(r.randrange(len(items) + 1), r.choice([b"x", b"", b"q", b"Cxyz", b"c:0", b"r", b"\xff"]))
        return b"vCont;" + b";".join(items)
    if k == 8:
        obj = r.choice([b"features", b"auxv", b"threads", b"exec-file", b"libraries-svr4", b"siginfo", b"bogus",
                        b"memory-map", b""])
        annex = r.choice([b"target.xml", b"nope.xml", b"", b"64bit-avx.xml", b"../../etc/passwd", b"\x00\xff"])
        return b"qXfer:%s:read:%s:%s,%s" % (obj, annex, _num(r, [0, 0x7FFFFFFF, 0x100000, 0xFFFFFFFFFFFFFFFF]),
                                            _num(r, LENGTHS))
    if k == 9:
        op = r.choice([b"pread:%x,%x,%x" % (r.choice([99, 0xFFFFFFFF, 3, 1000]), r.getrandbits(32), r.getrandbits(64)),
                       b"close:%x" % r.choice([99, 0, 1, 2, 0xFFFFFFFF, 1000]),
                       b"fstat:%x" % r.choice([99, 0xFFFFFFFF, 1000]),
                       b"setfs:%x" % r.getrandbits(32),
                       b"open:%s,0,0" % b"/nonexistent/km-fuzz".hex().encode(),
                       b"open:%s,0,0" % _hex(r, 3),
                       b"readlink:%s" % _hex(r, 5),
                       b"pread:zz,1,0", b"open:", b"close:"])
        return b"vFile:" + op
    if k == 10:
        return b"H" + r.choice([b"g", b"c", b"x"]) + r.choice([b"-1", b"0", b"p1.1", b"zz", b"pffffffff.ffffffff",
                                                              b"%x" % r.getrandbits(32), b""])
    if k == 11:
        return b"T" + r.choice([b"-1", b"0", b"zz", b"%x" % r.getrandbits(64), b"p0.0"])
    if k == 12:
        return r.choice([b"?", b"g", b"qC", b"qfThreadInfo", b"qsThreadInfo", b"qAttached", b"vCont?",
                         b"qSymbol::", b"qOffsets", b"qTStatus", b"QStartNoAckMode"])
    if k == 13:
        return b"qSupported:" + b";".join(r.choice([b"multiprocess+", b"xmlRegisters=i386", b"swbreak+",
                                                    b"\xff\xfe", b"=", b";;;", b"vContSupported+"])
                                          for _ in range(r.randrange(6)))
    if k == 14:
        return b"qThreadExtraInfo," + r.choice([b"zz", b"-1", b"p1.1", b"%x" % r.getrandbits(32)])
    if k == 15:
        return b"qGetTLSAddr:" + b",".join(_num(r, WILD) for _ in range(r.randrange(4)))
    if k == 16:
        return r.choice([b"QPassSignals:", b"QProgramSignals:", b"QCatchSyscalls:"]) + \
            b";".join(_num(r, [0, 1, 64, 0xFFFFFFFF, 9]) for _ in range(r.randrange(5)))
    if k == 17:
        return b"s" if STEPS else b"?"  # one step where it is (`s ADDR` would move the pc): it stays stopped
    if k == 18:
        return b"qRcmd," + b"bogus".hex().encode()
    if k == 19:
        return r.choice([b"", b"v", b"q", b"Q", b"qXfer", b"vFile", b"Z", b"m", b"m,", b"m1,", b"M1", b"X1,1"])
    if k == 20:                         # junk after a first byte no command starts with (`k...` is a kill)
        junk = bytes(r.getrandbits(8) for _ in range(r.randrange(1, 40))).replace(b"$", b"").replace(b"#", b"")
        return r.choice(b"0123456789~^|%&'") .to_bytes(1, "little") + junk
    return b"qXfer:features:read:target.xml:%x,%x" % (r.choice([0, 100, 0x100000]), r.choice([0, 1, 0xFFFF]))


def malformed(r: random.Random, text_addr: int) -> bytes:
    """Bytes that are not one good packet."""
    body = command(r, text_addr)
    k = r.randrange(8)
    if k == 0:
        return b"$" + body + b"#%02x" % ((checksum(body) + 1) & 0xFF)                        # bad checksum
    if k == 1:
        return frame(body)[: r.randrange(1, len(body) + 3)]                                 # truncated
    if k == 2:
        return b"$" + body                                                                   # unterminated
    if k == 3:
        return bytes(r.getrandbits(8) for _ in range(r.randrange(1, 200))).replace(b"$", b"")  # binary junk
    if k == 4:
        big = b"m" + b"0" * r.choice([5000, 70000, 300000])                                  # huge
        return frame(big) if r.random() < 0.5 else b"$" + big
    if k == 5:
        return frame(body + b"}")                                                            # escape at the end
    if k == 6:
        return frame(b"*" + body)                                                            # RLE at the start
    return b"$" + body + b"#zz"                                                              # checksum not hex


@dataclass
class Outcome:
    sent: int = 0
    interrupts: int = 0
    disconnects: int = 0
    replies: int = 0
    failures: list[str] = field(default_factory=list)


class Client:
    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None

    def connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=ANSWER_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(data)

    def drain(self) -> int:
        """Read what is there without waiting; ack any reply. Returns the count of replies seen."""
        assert self.sock is not None
        got = 0
        while select.select([self.sock], [], [], 0)[0]:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionResetError("the stub closed the connection")
            got += data.count(b"$")
        if got:
            self.sock.sendall(b"+")
        return got

    def ask(self, body: bytes, deadline_s: float = ANSWER_S) -> bytes:
        """A packet and its reply (acks skipped), or b'' when none came in time."""
        assert self.sock is not None
        self.send(frame(body))
        buf, end = b"", time.monotonic() + deadline_s
        while time.monotonic() < end:
            if select.select([self.sock], [], [], max(0.0, end - time.monotonic()))[0]:
                data = self.sock.recv(65536)
                if not data:
                    return b""
                buf += data
                start = buf.find(b"$")
                if start >= 0 and b"#" in buf[start:] and len(buf) >= buf.index(b"#", start) + 3:
                    self.send(b"+")
                    return buf[start + 1:buf.index(b"#", start)]
        return b""


def fuzz(port: int, count: int, seed: int, text_addr: int) -> Outcome:
    """`count` hostile packets at the stub on port; checks it answers a fresh connection every EPISODE packets."""
    r = random.Random(seed)
    out = Outcome()
    client = Client(port)
    client.connect()
    try:
        for i in range(count):
            if i and i % EPISODE == 0:
                _check_fresh_connection(client, out, i)
            roll = r.random()
            try:
                if roll < 0.05:
                    client.send(b"\x03")
                    out.interrupts += 1
                elif roll < 0.07:            # a disconnect in the middle of a packet
                    client.send(frame(command(r, text_addr))[:r.randrange(1, 6)])
                    client.close()
                    client.connect()
                    out.disconnects += 1
                elif roll < 0.40:
                    client.send(malformed(r, text_addr))
                else:
                    client.send(frame(command(r, text_addr)))
                out.sent += 1
                out.replies += client.drain()
            except (ConnectionError, OSError) as e:   # the stub may drop a connection fed junk: reconnect
                client.close()
                client.connect()
                out.disconnects += 1
                if isinstance(e, socket.timeout):
                    out.failures.append(f"packet {i}: the stub stopped reading ({e})")
        _check_fresh_connection(client, out, count)
    finally:
        client.close()
    return out


def _check_fresh_connection(client: Client, out: Outcome, index: int) -> None:
    """A fresh connection answers `?`; a G shorter than the register file (the first registers, with the values
    they have) is answered too."""
    client.close()
    client.connect()
    reply = client.ask(b"?")
    if not reply or reply[:1] not in (b"T", b"S"):
        out.failures.append(f"after packet {index}: a fresh connection's '?' got {reply[:60]!r}")
        return
    try:
        registers = decode_rle(client.ask(b"g"))
    except ValueError as e:
        out.failures.append(f"after packet {index}: the g reply's run-length encoding is broken ({e})")
        return
    if registers:
        answer = client.ask(b"G" + registers[:32 + 16 * (index % 3)])
        if not answer:
            out.failures.append(f"after packet {index}: no answer to a short G")
