"""The session loop over a real localhost socket with a raw RSP client: acks, malformed input, ^C, exit,
kill, detach, reconnection, passed signals. Every wait has a deadline."""
from __future__ import annotations

import errno
import socket
import threading
import time

import pytest

from harness.fake_target import FakeControlTarget
from kdbg.arch.x86_64 import zero_registers
from kdbg.rsp import RspError
from kdbg.rsp.packets import EventKind, PacketParser, encode_packet
from kdbg.rsp.server import GdbServer
from kdbg.target import BreakpointKind, ResumeAction, ResumeKind, StopEvent, StopReason

DEADLINE_S = 5.0


class Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
        self.parser = PacketParser()
        self.events: list = []

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, body: bytes) -> None:
        self.send_raw(encode_packet(body, rle=False))

    def next_event(self):
        deadline = time.monotonic() + DEADLINE_S
        while not self.events:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("server closed the connection")
            self.events += self.parser.feed(data)
        return self.events.pop(0)

    def reply(self) -> bytes:
        """The next packet's body, acknowledging it; acks from the server are skipped."""
        while True:
            event = self.next_event()
            if event.kind is EventKind.PACKET:
                self.send_raw(b"+")
                return event.data

    def ask(self, body: bytes) -> bytes:
        self.send(body)
        return self.reply()

    def closed_by_server(self) -> bool:
        """True once the server has closed the connection (acks may come first)."""
        try:
            while self.next_event().kind is EventKind.ACK:
                pass
        except (EOFError, ConnectionResetError):
            return True
        return False

    def close(self) -> None:
        self.sock.close()


def make_fake(**kw) -> FakeControlTarget:
    regs = {tid: dict(zero_registers(), rip=0x400010, rsp=0x7000) for tid in (7, 9)}
    return FakeControlTarget(regs=regs, memory={0x400000: bytearray(4096)}, **kw)


class Running:
    """A GdbServer serving in a thread; joined (with a deadline) at teardown."""

    def __init__(self, target, *, initially_stopped: bool = True) -> None:
        self.target = target
        self.server = GdbServer(target, 0, initially_stopped=initially_stopped)
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()

    def connect(self) -> Client:
        return Client(self.server.port)

    def finished(self) -> bool:
        self.thread.join(DEADLINE_S)
        return not self.thread.is_alive()


@pytest.fixture
def served():
    started: list[Running] = []

    def start(target=None, **kw) -> Running:
        target = target or make_fake()
        if kw.get("initially_stopped", True):
            target.post(StopEvent(7, StopReason.ENTRY, 5))
        running = Running(target, **kw)
        started.append(running)
        return running

    yield start
    for running in started:
        running.server.close()
        assert running.finished(), "server thread did not stop"


def test_ack_mode_and_bad_checksum(served) -> None:
    client = served().connect()
    client.send(b"?")
    assert client.next_event().kind is EventKind.ACK
    assert client.reply().startswith(b"T05")
    client.send_raw(b"$g#00")
    assert client.next_event().kind is EventKind.NACK
    assert client.ask(b"qC") == b"QC7"


def test_every_packet_is_acknowledged_once_before_its_reply(served) -> None:
    """The '+' travels with the reply it precedes; a resume, whose reply comes later, is acknowledged at once."""
    running = served()
    client = running.connect()
    gate = threading.Event()
    running.target.on_resume = lambda t, a: gate.set()
    for body in (b"?", b"g", b"m400000,10", b"qC"):
        client.send(body)
        assert client.next_event().kind is EventKind.ACK
        assert client.reply()
    client.send(b"vCont;c")
    assert client.next_event().kind is EventKind.ACK       # while the target runs, with no stop to carry it
    assert gate.wait(DEADLINE_S)
    running.target.post(StopEvent(7, StopReason.BREAKPOINT, 5))
    assert client.reply().startswith(b"T05")
    client.send(b"qC")
    client.send(b"qC")                                     # two packets in flight: two acks, two replies
    kinds = [client.next_event().kind for _ in range(4)]
    assert kinds.count(EventKind.ACK) == 2 and kinds[0] is EventKind.ACK


def test_no_ack_mode(served) -> None:
    client = served().connect()
    assert client.ask(b"QStartNoAckMode") == b"OK"
    client.send(b"qC")
    event = client.next_event()
    assert event.kind is EventKind.PACKET and event.data == b"QC7"


def test_nack_resends_last_reply(served) -> None:
    client = served().connect()
    assert client.ask(b"qC") == b"QC7"
    client.send_raw(b"-")
    assert client.reply() == b"QC7"


JUNK = {"truncated": b"$m4000", "lone-hash": b"#", "dollars": b"$$$", "binary": b"\x00\xff" * 50,
        "long-bad-checksum": b"$qSupported:" + b"x" * 70000 + b"#00", "bad-checksum": b"$m0,ffffffffffffffffffff#00",
        "escapes": b"}}}}", "unterminated-2MiB": b"$" + b"A" * (2 << 20)}


@pytest.mark.parametrize("junk", JUNK.values(), ids=JUNK.keys())
def test_malformed_input_leaves_the_session_serving(served, junk: bytes) -> None:
    client = served().connect()
    client.send_raw(junk)
    client.send(b"?")        # a '$' restarts any half-read packet
    while True:
        body = client.reply()
        if body.startswith(b"T"):
            break


@pytest.mark.parametrize("packet,reply", [(b"m0,ffffffffffffffffffff", b"E14"), (b"mzz,1", b"E22"),
                                          (b"m400000,ffffffff", None), (b"Xzz", b"E22"), (b"vCont;q", b"E22"),
                                          (b"qXfer:features:read:target.xml:0", b"E22"), (b"Z0,,", b"E22"),
                                          (b"vFile:open:zz,0,0", b"E22"), (b"qBogus", b"")])
def test_bad_parameters_get_errors_and_serving_goes_on(served, packet: bytes, reply: bytes | None) -> None:
    client = served().connect()
    got = client.ask(packet)
    if reply is not None:
        assert got == reply
    assert client.ask(b"qC") == b"QC7"


def test_ctrl_c_interrupts_a_running_target(served) -> None:
    running = served()
    client = running.connect()
    client.ask(b"?")
    client.send(b"vCont;c")
    client.send_raw(b"\x03")
    reply = client.reply()
    assert reply.startswith(b"T02") and b"thread:7;" in reply
    assert ("interrupt",) in running.target.calls


def test_breakpoint_hit_then_continue_then_exit(served) -> None:
    running = served()
    client = running.connect()
    client.ask(b"qSupported:swbreak+")
    assert client.ask(b"Z0,400020,1") == b"OK"
    reply = client.ask(b"vCont;c")
    assert reply.startswith(b"T05") and reply.endswith(b"swbreak:;")
    assert client.ask(b"z0,400020,1") == b"OK"
    running.target.on_resume = lambda t, a: t.post(StopEvent(7, StopReason.EXITED, exit_status=42))
    assert client.ask(b"vCont;c") == b"W2a"
    assert running.finished()


def test_an_interrupt_that_loses_the_race_is_swallowed(served) -> None:
    """The target stops at a breakpoint while our interrupt() is in flight: one stop reply, not two."""
    running = served()
    client = running.connect()
    client.ask(b"?")
    gate = threading.Event()
    running.target.on_resume = lambda t, a: gate.set()
    client.send(b"vCont;c")
    assert gate.wait(DEADLINE_S)
    running.target.post(StopEvent(7, StopReason.BREAKPOINT, 5))
    client.send_raw(b"\x03")          # arrives after the breakpoint; the fake posts INTERRUPT at once
    assert client.reply().startswith(b"T05")
    running.target.on_resume = lambda t, a: t.post(StopEvent(9, StopReason.SIGNAL, 11))
    reply = client.ask(b"vCont;c")              # the SIGSEGV, not a stale T02
    assert reply.startswith(b"T0b") and b"thread:9;" in reply
    assert running.target.next_event() is None


def test_passed_signals_are_delivered_without_a_stop_reply(served) -> None:
    running = served()
    client = running.connect()
    assert client.ask(b"QPassSignals:e;1e") == b"OK"     # gdb's SIGALRM and SIGUSR1
    posts = [StopEvent(9, StopReason.SIGNAL, 14), StopEvent(7, StopReason.BREAKPOINT, 5)]
    running.target.on_resume = lambda t, a: t.post(posts.pop(0))
    assert client.ask(b"vCont;c").startswith(b"T05")
    resumes = [c[1] for c in running.target.calls if c[0] == "resume"]
    assert resumes == [(ResumeAction(ResumeKind.CONTINUE),), (ResumeAction(ResumeKind.CONTINUE, 9, 14),
                                                               ResumeAction(ResumeKind.CONTINUE))]


def test_kill_ends_serving(served) -> None:
    running = served()
    client = running.connect()
    client.ask(b"?")
    client.send(b"k")
    assert running.finished()
    assert ("kill",) in running.target.calls


def test_detach_lets_the_payload_run_and_a_new_gdb_can_attach(served) -> None:
    running = served()
    client = running.connect()
    client.ask(b"Z0,400020,1")
    assert client.ask(b"D") == b"OK"
    assert client.closed_by_server()
    assert ("detach",) in running.target.calls
    second = running.connect()
    assert second.ask(b"?").startswith(b"T02")              # interrupted to answer `?`
    assert running.target.calls[-1] == ("interrupt",)


def test_vanished_gdb_in_g_mode_leaves_the_payload_stopped_without_points(served) -> None:
    running = served()
    client = running.connect()
    assert client.ask(b"Z0,400020,1") == b"OK" and client.ask(b"Z2,7000,4") == b"OK"
    client.close()
    second = running.connect()
    assert second.ask(b"?").startswith(b"T05")
    assert running.target.points == set()
    assert not any(c[0] in ("detach", "interrupt", "resume") for c in running.target.calls)


def test_vanished_gdb_while_running_in_listen_mode_detaches(served) -> None:
    running = served(initially_stopped=False)
    client = running.connect()
    assert client.ask(b"?").startswith(b"T02")
    client.ask(b"Z0,400020,1")
    running.target.on_resume = lambda t, a: None
    client.send(b"vCont;c")
    client.close()
    second = running.connect()
    assert second.ask(b"qC") == b"QC7"
    calls = [c[0] for c in running.target.calls]
    assert calls[-4:] == ["interrupt", "clear_breakpoint", "detach", "interrupt"], calls
    assert second.ask(b"qAttached") == b"1"


def test_stops_with_nobody_attached_are_handed_back_to_the_payload(served) -> None:
    running = served(initially_stopped=False)
    running.target.post(StopEvent(7, StopReason.SIGNAL, 11))
    running.target.post(StopEvent(7, StopReason.EXITED, exit_status=139))
    assert running.finished()
    assert running.target.calls == [("resume", (ResumeAction(ResumeKind.CONTINUE, -1, 11),))]


def test_read_only_target_serves_and_kill_closes(served) -> None:
    from harness.fake_target import StaticTarget
    target = StaticTarget(regs={5: zero_registers()}, event=StopEvent(5, StopReason.SIGNAL, 11))
    running = Running(target)
    client = running.connect()
    assert client.ask(b"?").startswith(b"T0b")
    assert client.ask(b"vCont;c").startswith(b"T0b")      # a core cannot run: the same stop again
    client.send(b"k")
    assert client.closed_by_server()
    running.server.close()
    assert running.finished()


def test_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(RspError) as info:
            GdbServer(make_fake(), port, initially_stopped=True)
    assert str(info.value) == f"gdb port {port}: address already in use"
    assert errno.EADDRINUSE


def test_watchpoint_stop_reply_names_the_address(served) -> None:
    running = served()
    client = running.connect()
    assert client.ask(b"Z3,7000,8") == b"OK"
    running.target.on_resume = lambda t, a: t.post(
        StopEvent(9, StopReason.WATCHPOINT, 5, watch_addr=0x7004, watch_kind=BreakpointKind.READ))
    assert client.ask(b"vCont;c").endswith(b"thread:9;rwatch:7004;")


def test_a_failing_target_call_ends_only_that_connection(served) -> None:
    """A stub or target bug outside any handler: traced, that connection closes, km and serving go on."""
    running = served()
    client = running.connect()
    client.ask(b"?")
    real_next_event = running.target.next_event
    failures = []

    def broken_next_event():
        if not failures:
            failures.append(1)
            raise RuntimeError("event queue corrupted")
        return real_next_event()
    running.target.next_event = broken_next_event
    running.target.on_resume = lambda t, a: t.post(StopEvent(7, StopReason.BREAKPOINT, 5))
    client.send(b"vCont;c")
    assert client.closed_by_server()
    second = running.connect()
    assert second.ask(b"?").startswith(b"T05")
    assert running.thread.is_alive()


class EarlyStops(FakeControlTarget):
    """A target that, like LiveTarget's step or continue run on the stub's thread, stops inside resume() and hands
    the stop to the stub's listener (EarlyStopTarget), queueing it only when the listener declines."""

    def report_stops_to(self, listener) -> None:
        self.listener, self.taken = listener, []

    def resume(self, actions) -> None:
        super().resume(actions)
        event = StopEvent(7, StopReason.STEP if actions[0].kind is ResumeKind.STEP else StopReason.BREAKPOINT, 5)
        self.taken.append(self.listener(event))
        if not self.taken[-1]:
            self.post(event)


def test_a_stop_made_inside_resume_is_reported_once_and_the_session_goes_on(served) -> None:
    """The early stop reply: one T reply per resume (none queued behind it for the event descriptor to report a
    second time), the process counted as stopped (the next packets are answered at once, `?` repeats the stop)."""
    running = served(EarlyStops(regs=make_fake().regs, memory={0x400000: bytearray(4096)}))
    client = running.connect()
    client.ask(b"qSupported:swbreak+")
    client.ask(b"QStartNoAckMode")
    for _ in range(3):
        reply = client.ask(b"vCont;s:7")
        assert reply.startswith(b"T05") and b"thread:7;" in reply and b"swbreak" not in reply
        assert client.ask(b"?").startswith(b"T05")
    assert client.ask(b"vCont;c").endswith(b"swbreak:;")
    assert client.ask(b"m400000,2") == b"0000"         # answered: no stop reply left behind
    assert running.target.next_event() is None
    assert client.ask(b"vCont;c").endswith(b"swbreak:;")
    client.ask(b"?")        # the reply went out inside resume(): once this one is answered, resume() has returned
    assert running.target.taken == [True] * 5


class QuickStops(FakeControlTarget):
    """A target with LiveTarget's quick lane (QuickResumeTarget): a plain stepi or continue of its one process comes
    back from quick_resume() with its stop; `answer` says what it does (a stop, True: resumed with the stop
    posted as an event, False: declined)."""

    answer: object = "stop"

    def prepare_quick_resume(self) -> None:
        pass

    def quick_resume(self, step_tid: int):
        self.quick = getattr(self, "quick", []) + [step_tid]
        if self.answer is False:
            return False
        reason = StopReason.STEP if step_tid else StopReason.BREAKPOINT
        regs = self.regs[step_tid or 7]
        regs["rip"] += 1                       # the thread moved: the reply must show where it is now
        event = StopEvent(step_tid or 7, reason, 5)
        if self.answer is True:
            self.post(event)
            return True
        return event, regs["rbp"], regs["rsp"], regs["rip"]

    def resumes(self) -> int:
        return sum(1 for call in self.calls if call[0] == "resume")


def test_plain_resumes_take_the_quick_lane_and_reply_as_the_generic_path(served) -> None:
    """vCont;s:T (with or without `c` for the others) and vCont;c go to quick_resume(); the reply is the one the
    generic path makes for the same stop, and shows the registers of after the run (no stale frame)."""
    running = served(QuickStops(regs=make_fake().regs, memory={0x400000: bytearray(4096)}))
    target = running.target
    client = running.connect()
    client.ask(b"qSupported:swbreak+;multiprocess+")
    client.ask(b"QStartNoAckMode")
    pid = target.pid()
    for packet in (b"vCont;s:p%x.7;c:p%x.-1" % (pid, pid), b"vCont;s:7", b"vCont;c", b"vCont;c:p%x.-1" % pid):
        rip = target.regs[7]["rip"]
        reply = client.ask(packet)
        assert b"10:%s;" % (rip + 1).to_bytes(8, "little").hex().encode() in reply
        assert client.ask(b"?") == reply                # `?` repeats it: the same stop, from the generic path
        assert client.ask(b"p10") == (rip + 1).to_bytes(8, "little").hex().encode()
    assert target.quick == [7, 7, 0, 0]
    assert target.resumes() == 0
    assert client.ask(b"vCont;c").endswith(b"swbreak:;")


def test_resumes_that_are_not_plain_take_the_generic_path(served) -> None:
    """A signal, a range step, another thread's action, a thread named alone for continue, the legacy packets:
    resume(); and a target that declines (False) gets resume() for the same packet, once."""
    running = served(QuickStops(regs=make_fake().regs, memory={0x400000: bytearray(4096)}))
    target = running.target
    target.on_resume = lambda t, actions: t.post(StopEvent(7, StopReason.SIGNAL, 11))
    client = running.connect()
    client.ask(b"QStartNoAckMode")
    for packet in (b"vCont;S0b:7", b"vCont;C0b", b"vCont;r400010,400020:7", b"vCont;s:7;s:9", b"vCont;c:7",
                   b"s", b"c"):
        resumes = target.resumes()
        assert client.ask(packet).startswith(b"T"), packet
        assert target.resumes() == resumes + 1, packet
    assert getattr(target, "quick", []) == []
    target.answer = False
    assert client.ask(b"vCont;s:7").startswith(b"T0b")     # on_resume's stop: resume() answered it
    assert target.quick == [7] and target.resumes() == 8


def test_a_quick_resume_that_runs_on_reports_its_stop_through_the_event_loop(served) -> None:
    """quick_resume() True: resumed (the run ended in something the thread serves itself): the process counts as
    running and the stop that comes later is reported once."""
    running = served(QuickStops(regs=make_fake().regs, memory={0x400000: bytearray(4096)}))
    target = running.target
    target.answer = True
    client = running.connect()
    client.ask(b"QStartNoAckMode")
    reply = client.ask(b"vCont;s:7")
    assert reply.startswith(b"T05") and b"thread:7;" in reply
    assert client.ask(b"m400000,2") == b"0000"         # no second stop reply behind it
    assert target.next_event() is None and target.resumes() == 0
