"""The stop lane's C answers (kdbg/rsp/cstop.py) against its twin, the Python handlers, without a VM: random `m`
reads around the edges of host windows and planted int3s, every `p`, `g` with unavailable registers, repeated
queries and QPassSignals sets. Each packet goes to the lane alone: what C answers must be the frame Python's dispatch
makes; what C declines is handed back whole (and then Python answers it, as in the session loop)."""
from __future__ import annotations

import random
import select
import socket

import pytest

from harness.fake_target import FakeControlTarget
from kdbg.arch.x86_64 import REGISTERS, zero_registers
from kdbg.breakpoints import SoftwareBreakpoints
from kdbg.rsp import cstop, server  # noqa: F401 - server: every handler registered, as in km
from kdbg.rsp.commands import dispatch
from kdbg.rsp.packets import Event, encode_packet
from kdbg.rsp.session import RunState, Session
from kdbg.target import GuestMemoryError, NoSuchThreadError, StopEvent, StopReason

PAGE = 4096


class HostMemory(FakeControlTarget):
    """A FakeControlTarget whose memory is host memory the lane may read (kdbg.target.HostMemoryTarget): three blocks,
    the first two adjacent (a read across them is one read for Python, two windows for C), int3s planted."""

    def __init__(self, ffi, rng: random.Random) -> None:
        regs = zero_registers()
        for name in regs:
            regs[name] = rng.getrandbits(64)
        for name in ("fs_base", "orig_rax", "ymm3h", "k1"):     # unavailable: `xx` in g and p
            regs.pop(name, None)
        super().__init__(regs={100: regs})
        self.blocks = []
        for start, size in ((0x400000, 2 * PAGE), (0x402000, PAGE), (0x7ffff000, PAGE)):
            buf = ffi.new("unsigned char[]", bytes(rng.choice((0, 0, 0x30, rng.getrandbits(8))) for _ in range(size)))
            self.blocks.append((start, size, buf, int(ffi.cast("unsigned long long", buf))))
        self.planted = {0x400000: 0x55, 0x401fff: 0x90, 0x402000: 0x48, 0x400123: 0xc3}
        for addr in self.planted:
            self._block(addr)[0][addr - self._block(addr)[1]] = 0xcc
        self.process_id = 7

    def _block(self, addr: int):
        for start, size, buf, _ in self.blocks:
            if start <= addr < start + size:
                return buf, start, size
        raise GuestMemoryError(addr, 1)

    def read_memory(self, addr: int, size: int) -> bytes:     # ProcessView's: across adjacent VMAs, int3s hidden
        out = bytearray()
        while len(out) < size:
            buf, start, length = self._block(addr + len(out))
            take = min(size - len(out), start + length - addr - len(out))
            out += bytes(buf[addr + len(out) - start: addr + len(out) - start + take])
        for at, byte in self.planted.items():
            if addr <= at < addr + size:
                out[at - addr] = byte
        return bytes(out)

    def registers(self, tid: int) -> dict[str, int]:
        """The same mapping while the thread stays stopped, as LiveTarget gives a parked thread's (the lane primes
        only such a mapping: kdbg.target.Target.registers)."""
        if tid not in self.regs:
            raise NoSuchThreadError(tid)
        return self.regs[tid]

    def memory_key(self) -> object:
        return 1

    def host_windows(self):
        return [(start, start + size, host) for start, size, _, host in self.blocks]

    def planted_breakpoints(self):
        return sorted(self.planted.items())


class Declined(Exception):
    pass


class HandBack:
    """The Connection side of the lane: what C hands back."""

    def take(self, data: bytes) -> list[Event]:
        raise Declined(data)


@pytest.fixture(scope="module")
def lane_module():
    loaded = cstop.load()
    if loaded is None:
        pytest.fail("kdbg.rsp.cstop could not be built or loaded: is gcc or Python's headers missing?")
    return loaded


def _stopped_lane(lane_module, rng: random.Random, make=HostMemory):
    """A session stopped on a HostMemory (`make`), its lane serving one end of a socket pair: (target, session,
    lane, the other end as gdb, what closes them)."""
    ffi, lib = lane_module
    target = make(ffi, rng)
    session = Session(target, RunState(running=False, last_stop=StopEvent(100, StopReason.SIGNAL, 5)))
    ours, gdb = socket.socketpair()
    gdb.settimeout(10)
    poller = select.epoll()
    poller.register(ours.fileno(), select.EPOLLIN)
    lane = cstop.StopLane(ffi, lib, ours.fileno())
    lane.watch(poller.fileno())

    def closing() -> None:
        ours.close(), gdb.close(), poller.close()
    return target, session, lane, gdb, closing


def test_c_answers_as_the_python_handlers_do(lane_module) -> None:
    """Each packet is followed by `?`, which C never answers: the lane answers the packet or hands it back, then
    hands `?` back. The state is invalidated after each packet (as a packet Python answers would), so each `g`,
    `p` and `m` primes the lane again."""
    rng = random.Random(10)
    target, session, lane, gdb, closing = _stopped_lane(lane_module, rng)
    sentinel = b"$?#3f"
    packets = [b"g", b"g", *(b"p%x" % n for n in range(len(REGISTERS) + 2)), b"p", b"pz", b"m400000,0",
               b"m,4", b"m400000", b"m1ffffffffffffffff,1", b"mffffffffffffffff,10", b"m400000,9000"]
    ends = [0x400000, 0x401000, 0x402000, 0x403000, 0x7ffff000, 0x80000000, 0x400123, 0x401fff]
    for end in ends:                    # reads that end at, one byte past, start at and one byte before an edge
        for n in (1, 8, 0x40):
            packets += [b"m%x,%x" % (at, n) for at in (end - n, end - n + 1, end, end - 1)]
    for _ in range(400):
        at = rng.choice(ends) + rng.randint(-70, 70)
        packets.append(b"m%x,%x" % (at, rng.choice((1, 2, 8, 0x40, 0x41, 0x100, 0x1000, 0x8000))))
    answered = declined = 0
    try:
        for packet in packets:
            expected = encode_packet(dispatch(session, packet) or b"")
            frame = b"$%s#%02x" % (packet, sum(packet) & 0xFF)
            gdb.sendall(frame + sentinel)
            with pytest.raises(Declined) as handed_back:
                lane.serve(session, HandBack())
            lane.invalidate()
            if handed_back.value.args[0] == frame + sentinel:
                declined += 1
                continue
            assert handed_back.value.args[0] == sentinel, packet
            reply = b""
            while len(reply) < len(expected):
                reply += gdb.recv(1 << 20)
            assert reply == expected, packet
            answered += 1
    finally:
        closing()
    assert answered > 300 and declined > 20, (answered, declined)


def test_repeats_and_pass_sets_are_answered_only_once_learned(lane_module) -> None:
    """Each packet is followed by `?`, which C never answers: the lane hands it back and keeps its state (no EVENT,
    which would invalidate it)."""
    target, session, lane, gdb, closing = _stopped_lane(lane_module, random.Random(3))
    sentinel = b"$?#3f"

    def ask(packet: bytes) -> bytes | None:
        """C's frame, or None when Python answered (then after() as the session loop calls it)."""
        frame = b"$%s#%02x" % (packet, sum(packet) & 0xFF)
        gdb.sendall(frame + sentinel)
        try:
            lane.serve(session, HandBack())
        except Declined as exc:
            if exc.args[0] == sentinel:
                return gdb.recv(65536)
            assert exc.args[0] == frame + sentinel
        reply = dispatch(session, packet)
        lane.after(packet, reply, lambda: encode_packet(reply or b""))
        return None

    try:
        for packet in (b"qfThreadInfo", b"QPassSignals:e;14", b"QPassSignals:"):
            assert ask(packet) is None                  # Python's, then learned
            assert ask(packet) is not None              # C's
        assert session.pass_signals == frozenset()      # C answered "QPassSignals:" last: applied by Python
        assert ask(b"QPassSignals:e;14") == b"$OK#9a"
        assert session.pass_signals == frozenset({14, 17})      # gdb's 0xe, 0x14: SIGALRM, SIGCHLD
        assert ask(b"qfThreadInfo") == encode_packet(b"m64")
        assert ask(b"m400000,4") == encode_packet(target.read_memory(0x400000, 4).hex().encode())    # int3 hidden
        lane.after(b"Z0,400000,1", b"OK", lambda: b"")  # not a pure read: the repeats are forgotten
        assert ask(b"qfThreadInfo") is None
        assert ask(b"qfThreadInfo") is not None
    finally:
        closing()


@pytest.mark.parametrize("body", [b"g", b"p10", b"m0,8"])
def test_the_lane_leaves_odd_packets_to_python(lane_module, body) -> None:
    """A packet C must not answer itself (a bad checksum, a run-length mark, a frame cut short) is handed back
    whole."""
    ffi, lib = lane_module
    state = ffi.new("struct km_lane *")
    state.epfd = state.sock = state.pass_pending = -1
    frame = encode_packet(body, rle=False)
    for bad in (frame[:-2] + b"00" if frame[-2:] != b"00" else frame[:-2] + b"01", b"$" + body + b"*!#00",
                frame[:-1]):
        assert lib.km_lane_serve(state, bad, len(bad)) == cstop.BYTES | len(bad) << 4
        assert ffi.buffer(state.inbuf, len(bad))[:] == bad


class Planting(HostMemory):
    """HostMemory whose int3s are planted as LiveTarget plants them (kdbg.breakpoints.SoftwareBreakpoints over the
    blocks), so that the lane may answer Z0/z0 itself (kdbg.target.PlantingTarget)."""

    def __init__(self, ffi, rng: random.Random) -> None:
        super().__init__(ffi, rng)
        self.records = SoftwareBreakpoints(self._read, self._write, {a: bytes((b,)) for a, b in self._initial.items()})

    def _read(self, addr: int, size: int) -> bytes:
        buf, start, _ = self._block(addr)
        return bytes(buf[addr - start: addr - start + size])

    def _write(self, addr: int, data: bytes) -> None:
        buf, start, _ = self._block(addr)
        buf[addr - start: addr - start + len(data)] = data

    @property
    def planted(self) -> dict[int, int]:
        if "records" not in self.__dict__:          # (HostMemory's constructor, before the records exist)
            return self._initial
        return {addr: original[0] for addr, original in self.records.planted().items()}

    @planted.setter
    def planted(self, value: dict[int, int]) -> None:
        self._initial = value

    def set_breakpoint(self, kind, addr: int, length: int) -> None:
        try:
            self.records.insert(addr)
        except GuestMemoryError:
            raise GuestMemoryError(addr, 1) from None

    def clear_breakpoint(self, kind, addr: int, length: int) -> None:
        self.records.remove(addr)

    def planted_here(self, changes) -> None:
        for inserted, addr, hidden in changes:
            if inserted:
                self.records.adopt(addr, bytes((hidden,)))
            else:
                self.records.adopt_removal(addr)


def test_breakpoints_are_planted_as_python_plants_them(lane_module) -> None:
    """Z0/z0 at planted and free addresses, window edges, outside every window, with a condition list: the lane's
    session and a twin session where Python answers every packet (same memory to begin with) end each packet with
    the same reply, the same guest bytes, the same int3 records (SoftwareBreakpoints, late traps included) and the
    same point set; and C answered most of them (each is followed by `?`, which C hands back)."""
    ffi, _ = lane_module
    rng = random.Random(5)
    twin = Planting(ffi, random.Random(1))
    twin_session = Session(twin, RunState(running=False, last_stop=StopEvent(100, StopReason.SIGNAL, 5)))
    target, session, lane, gdb, closing = _stopped_lane(lane_module, random.Random(1), Planting)
    places = [0x400000, 0x400001, 0x400123, 0x401fff, 0x402000, 0x402fff, 0x403000, 0x7ffff000, 0x7fffffff,
              0x80000000, 0x10, 0xffffffffffffffff]
    sentinel, answered = b"$?#3f", 0
    try:
        for _ in range(300):
            packet = b"%c0,%x,%s" % (rng.choice(b"Zz"), rng.choice(places) + rng.choice((0, 0, 0, 1, -1)) * 2,
                                     rng.choice((b"1", b"1", b"1", b"2", b"1;X1,0")))
            expected = encode_packet(dispatch(twin_session, packet) or b"")
            frame = b"$%s#%02x" % (packet, sum(packet) & 0xFF)
            gdb.sendall(frame + sentinel)
            with pytest.raises(Declined) as handed_back:
                lane.serve(session, HandBack())
            if handed_back.value.args[0] == frame + sentinel:
                reply = dispatch(session, packet)        # Python answers, as in the session loop
                lane.after(packet, reply, lambda: encode_packet(reply or b""))
                assert encode_packet(reply or b"") == expected, packet
            else:
                assert handed_back.value.args[0] == sentinel, packet
                assert gdb.recv(65536) == expected, packet
                answered += 1
            assert target.planted == twin.planted, packet
            assert target.records._removed == twin.records._removed, packet
            assert session.points == twin_session.points, packet
            for (_, size, buf, _), (_, _, twin_buf, _) in zip(target.blocks, twin.blocks):
                assert ffi.buffer(buf, size)[:] == ffi.buffer(twin_buf, size)[:], packet
    finally:
        closing()
    assert answered > 150, answered
