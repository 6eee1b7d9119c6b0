"""Packet handlers through the dispatch table, without a socket: replies, error codes, target calls."""
from __future__ import annotations

import pytest

import kdbg.rsp.server  # noqa: F401 - registers every handler module
from harness.fake_target import FakeControlTarget
from kdbg.arch.x86_64 import REGISTERS, zero_registers
from kdbg.rsp import signals, tdesc
from kdbg.rsp.commands import TABLE, command, dispatch, find_command
from kdbg.rsp.packets import unescape
from kdbg.rsp.resume import stop_reply
from kdbg.rsp.session import RunState, Session
from harness.fake_target import StaticTarget
from kdbg.target import BreakpointKind, ResumeAction, ResumeKind, StopEvent, StopReason

TEXT = 0x400000


def make_fake(**kw) -> FakeControlTarget:
    regs = {tid: dict(zero_registers(), rip=TEXT + 0x10, rsp=0x7000, rax=tid) for tid in (7, 9)}
    return FakeControlTarget(regs=regs, memory={TEXT: bytearray(range(256)) * 16}, exe="/bin/payload", **kw)


def make_session(target=None, **kw) -> Session:
    target = target or make_fake()
    run = RunState(running=False, last_stop=StopEvent(7, StopReason.BREAKPOINT, 5))
    return Session(target, run, **kw)


def ask(session: Session, packet: bytes) -> bytes | None:
    return dispatch(session, packet)


# ---- the table ----

@pytest.mark.parametrize("packet,name,rest", [
    (b"qXfer:features:read:target.xml:0,fff", "qXfer:features:read", b"target.xml:0,fff"),
    (b"vCont?", "vCont?", b""), (b"vCont;c:7", "vCont", b"c:7"), (b"qC", "qC", b""),
    (b"qSupported:swbreak+", "qSupported", b"swbreak+"), (b"m10,4", "m", b"10,4"),
    (b"vFile:open:2f,0,0", "vFile:open", b"2f,0,0"), (b"qThreadExtraInfo,7", "qThreadExtraInfo", b"7")])
def test_packet_names_are_the_table_keys(packet: bytes, name: str, rest: bytes) -> None:
    command, found_rest = find_command(packet)
    assert (command.name, found_rest) == (name, rest)


@pytest.mark.parametrize("packet", [b"", b"qNotAThing", b"vMustReplyEmpty", b"qCRC:0,1", b"!", b"\xff\xfe",
                                    b"qXfer:libraries:read::0,10", b"vFile:unlink:2f"])
def test_unknown_packets_get_the_empty_reply(packet: bytes) -> None:
    assert ask(make_session(), packet) == b""


# ---- registers ----

def test_g_and_p_use_the_selected_thread() -> None:
    s = make_session()
    assert ask(s, b"p0") == (7).to_bytes(8, "little").hex().encode()
    assert ask(s, b"Hg9") == b"OK"
    assert ask(s, b"p0") == (9).to_bytes(8, "little").hex().encode()
    assert len(ask(s, b"g")) == 2 * sum(r.size for r in REGISTERS)


def test_g_and_p_of_a_thread_gone_fall_back_as_gdbserver_does() -> None:
    """The selected thread exited: the stopped thread's registers; that one gone too: the first thread's."""
    s = make_session()
    assert ask(s, b"Hg9") == b"OK"
    del s.target.regs[9]
    assert ask(s, b"p0") == (7).to_bytes(8, "little").hex().encode()
    s.target.regs[11] = dict(s.target.regs.pop(7), rax=11)
    assert ask(s, b"p0") == (11).to_bytes(8, "little").hex().encode()
    assert ask(s, b"g").startswith((11).to_bytes(8, "little").hex().encode())


def test_P_and_G_write_through_the_target() -> None:
    s = make_session()
    assert ask(s, b"P10=efbeadde00000000") == b"OK"
    assert s.target.regs[7]["rip"] == 0xDEADBEEF
    g = bytearray(ask(s, b"g"))
    g[0:16] = b"2a00000000000000"
    assert ask(s, b"G" + bytes(g)) == b"OK"
    assert s.target.regs[7]["rax"] == 42


@pytest.mark.parametrize("packet", [b"p", b"pzz", b"p999", b"P10=12", b"P10", b"Gabc", b"Hx1", b"Hg"])
def test_bad_register_packets_are_E22(packet: bytes) -> None:
    assert ask(make_session(), packet) == b"E22"


def test_unknown_thread_is_an_error() -> None:
    assert ask(make_session(), b"Hg55") == b"E03"
    assert ask(make_session(), b"T55") == b"E03"
    assert ask(make_session(), b"T9") == b"OK"


# ---- memory ----

def test_m_reads_and_partial_reads() -> None:
    s = make_session()
    assert ask(s, b"m400001,3") == b"010203"
    end = TEXT + 4096
    assert ask(s, b"m%x,10" % (end - 2)) == b"feff"       # the readable prefix
    assert ask(s, b"m10,4") == b"E14"
    assert len(ask(s, b"m400000,ffffffffffff")) == 2 * 4096  # huge lengths are capped, not fatal


def test_M_and_X_write() -> None:
    s = make_session()
    assert ask(s, b"M400000,2:abcd") == b"OK"
    assert ask(s, b"X400002,3:}\x03}\x04}]") == b"OK"
    assert s.target.read_memory(TEXT, 5) == b"\xab\xcd#$}"
    assert ask(s, b"X400000,0:") == b"OK"


@pytest.mark.parametrize("packet,reply", [(b"m", b"E22"), (b"m10", b"E22"), (b"m-1,2", b"E22"),
                                          (b"M400000,2:abc", b"E22"), (b"M400000,3:abcd", b"E22"),
                                          (b"X400000,1:}", b"E22"), (b"M10,1:00", b"E14"),
                                          (b"m10000000000000000,1", b"E22")])
def test_bad_memory_packets(packet: bytes, reply: bytes) -> None:
    assert ask(make_session(), packet) == reply


# ---- breakpoints and watchpoints ----

def test_Z_z_reach_the_target() -> None:
    s = make_session()
    assert ask(s, b"Z0,400010,1") == b"OK"
    assert ask(s, b"Z1,400020,1") == b"OK"
    assert ask(s, b"Z2,7000,8;X2,0") == b"OK"
    assert ask(s, b"z0,400010,1") == b"OK"
    assert s.target.points == {(BreakpointKind.HARDWARE, 0x400020, 1), (BreakpointKind.WRITE, 0x7000, 8)}
    assert s.points == {(s.current.pid, *point) for point in s.target.points}


@pytest.mark.parametrize("packet", [b"Z2,7000,3", b"Z4,7000,16", b"Z9,1,1", b"Z0,1", b"Z0,xyz,1"])
def test_bad_Z_is_E22(packet: bytes) -> None:
    assert ask(make_session(), packet) == b"E22"


def test_Z_types_the_target_lacks_get_the_empty_reply() -> None:
    s = make_session(make_fake(features=frozenset({"swbreak"})))
    assert ask(s, b"Z2,7000,4") == b""
    assert ask(s, b"Z0,400000,1") == b"OK"


# ---- resume ----

def test_vcont_maps_actions_and_signals() -> None:
    s = make_session()
    assert ask(s, b"vCont;S0b:9;c") is None
    assert s.target.calls[-1] == ("resume", (ResumeAction(ResumeKind.STEP, 9, 11), ResumeAction(ResumeKind.CONTINUE)))
    assert s.run.running


@pytest.mark.parametrize("packet", [b"vCont;", b"vCont;x", b"vCont;c:0", b"vCont;Czz", b"vCont;c:55", b"C", b"c12q"])
def test_bad_resume_packets_do_not_resume(packet: bytes) -> None:
    s = make_session()
    assert ask(s, packet)[:1] == b"E"
    assert not s.run.running and not any(c[0] == "resume" for c in s.target.calls)


def test_vcont_query_is_computed_from_supports() -> None:
    assert ask(make_session(), b"vCont?") == b"vCont;c;C;s;S;t"
    assert ask(make_session(make_fake(features=frozenset())), b"vCont?") == b"vCont;c;C;t"


def test_legacy_continue_with_address_and_signal() -> None:
    s = make_session()
    assert ask(s, b"C0e;400020") is None
    assert s.target.regs[7]["rip"] == 0x400020
    assert s.target.calls[-1] == ("resume", (ResumeAction(ResumeKind.CONTINUE, -1, 14),))


def test_program_signals_filter_what_resume_delivers() -> None:
    s = make_session()
    assert ask(s, b"QProgramSignals:b") == b"OK"
    ask(s, b"vCont;C0e")
    assert s.target.calls[-1] == ("resume", (ResumeAction(ResumeKind.CONTINUE, -1, 0),))


def test_stop_replies() -> None:
    s = make_session()
    s.gdb_features = frozenset({"swbreak", "hwbreak"})
    t = stop_reply(s, StopEvent(9, StopReason.BREAKPOINT, 5))
    assert t.startswith(b"T05") and b"thread:9;" in t and t.endswith(b"swbreak:;") and b"10:1000400000000000;" in t
    assert stop_reply(s, StopEvent(9, StopReason.WATCHPOINT, 5, watch_addr=0x7008,
                                   watch_kind=BreakpointKind.READ)).endswith(b"rwatch:7008;")
    assert stop_reply(s, StopEvent(9, StopReason.SIGNAL, 11)).startswith(b"T0b")
    assert stop_reply(s, StopEvent(9, StopReason.INTERRUPT)).startswith(b"T02")
    assert stop_reply(s, StopEvent(9, StopReason.SIGNAL, 10)).startswith(b"T1e")   # SIGUSR1 is gdb's 30
    assert stop_reply(s, StopEvent(9, StopReason.EXITED, exit_status=3)) == b"W03"
    assert stop_reply(s, StopEvent(9, StopReason.TERMINATED, 9)) == b"X09"
    s.gdb_features = frozenset()
    assert not stop_reply(s, StopEvent(9, StopReason.BREAKPOINT, 5)).endswith(b"swbreak:;")


# ---- queries ----

def test_qsupported_is_computed_from_the_target() -> None:
    live = ask(make_session(), b"qSupported:multiprocess+;swbreak+;xmlRegisters=i386").split(b";")
    assert b"swbreak+" in live and b"hwbreak+" not in live        # gdb did not offer hwbreak
    assert b"qXfer:features:read+" in live and b"QPassSignals+" in live and b"QStartNoAckMode+" in live
    core = ask(make_session(StaticTarget(regs={1: zero_registers()})), b"qSupported:swbreak+").split(b";")
    assert b"swbreak+" not in core and b"QPassSignals+" not in core and b"qXfer:features:read+" in core
    assert {f.split(b"+")[0].decode() for f in live if f.startswith(b"qXfer")} <= set(TABLE)


def test_thread_queries() -> None:
    s = make_session()
    assert ask(s, b"qfThreadInfo") == b"m7,9" and ask(s, b"qsThreadInfo") == b"l"
    assert ask(s, b"qC") == b"QC7"
    s.target.names[9] = "worker"
    assert ask(s, b"qThreadExtraInfo,9") == b"worker".hex().encode()


def test_lldb_thread_names_in_jthreadsinfo_and_stop_replies() -> None:
    """lldb's packets: names survive any character (JSON then RSP escapes; hexname in T replies), the reporting
    thread carries its signal, and stop replies change only after lldb's QListThreadsInStopReply."""
    import json
    s = make_session()
    s.target.names.update({7: "main}#$*", 9: "worker"})
    plain = stop_reply(s, StopEvent(7, StopReason.BREAKPOINT, 5))
    assert b"hexname" not in plain and b"threads:" not in plain
    assert ask(s, b"QListThreadsInStopReply") == b"OK"
    t = stop_reply(s, StopEvent(7, StopReason.BREAKPOINT, 5))
    assert t.endswith(b"hexname:%s;threads:7,9;" % "main}#$*".encode().hex().encode())
    info = json.loads(unescape(ask(s, b"jThreadsInfo")))
    assert [(e["tid"], e["name"], e.get("signal")) for e in info] == [(7, "main}#$*", 5), (9, "worker", None)]
    assert info[1]["registers"]["16"] == (TEXT + 0x10).to_bytes(8, "little").hex()


def test_a_non_stop_park_has_signal_0_in_its_stop_reply_and_in_jthreadsinfo() -> None:
    """A thread vCont;t parked in non-stop mode: T00, and jThreadsInfo gives it no signal (lldb-server leaves out a
    signal 0), so lldb sees no SIGINT where the stop reply says none; a Ctrl-C stop still says SIGINT in both."""
    import json
    s = make_session()
    s.non_stop, s.run.ns_stopped = True, {7, 9}
    s.run.last_stop = parked = StopEvent(7, StopReason.INTERRUPT)
    assert stop_reply(s, parked).startswith(b"T00")
    info = json.loads(unescape(ask(s, b"jThreadsInfo")))
    assert [e.get("signal") for e in info] == [None, None] and info[0]["registers"], info
    s.non_stop = False
    assert stop_reply(s, parked).startswith(b"T02")
    assert [e.get("signal") for e in json.loads(unescape(ask(s, b"jThreadsInfo")))] == [2, None]


def test_k_answers_lldb_but_not_gdb() -> None:
    assert ask(make_session(), b"k") is None
    s = make_session()
    ask(s, b"QListThreadsInStopReply")
    assert ask(s, b"k") == b"X09"


def test_qxfer_windows() -> None:
    s = make_session()
    first = ask(s, b"qXfer:features:read:target.xml:0,40")
    assert first[:1] == b"m" and b"<?xml" in first
    document, offset = b"", 0
    while True:
        reply = ask(s, b"qXfer:features:read:target.xml:%x,ffff" % offset)
        document += unescape(reply[1:])
        offset = len(document)
        if reply[:1] == b"l":
            break
    assert document == tdesc.target_xml()
    assert ask(s, b"qXfer:exec-file:read::0,100") == b"l/bin/payload"
    assert ask(s, b"qXfer:features:read:nope.xml:0,10") == b"E02"
    assert ask(s, b"qXfer:features:read:target.xml:ffffff,10") == b"E22"
    assert ask(s, b"qXfer:features:read:target.xml") == b"E22"
    assert b'<thread id="9"' in ask(s, b"qXfer:threads:read::0,1000")


def test_qxfer_siginfo_is_the_targets_bytes() -> None:
    s = make_session()
    s.target.last_stop = StopEvent(7, StopReason.SIGNAL, 11)
    reply = ask(s, b"qXfer:siginfo:read::0,200")
    assert reply[:1] == b"l" and unescape(reply[1:])[:4] == (11).to_bytes(4, "little")


def test_read_only_target_refuses_changes() -> None:
    s = make_session(StaticTarget(regs={1: zero_registers()}, memory={0x1000: b"\0" * 16}))
    assert ask(s, b"M1000,1:00") == b"E01" and ask(s, b"P0=0000000000000000") == b"E01"
    assert ask(s, b"vCont;c").startswith(b"T05") and ask(s, b"s").startswith(b"T05")   # the same stop again
    assert ask(s, b"Z0,1000,1") == b"" and ask(s, b"m1000,2") == b"0000" and ask(s, b"vCont?") == b""


def test_handler_exception_is_E01_and_error_message_when_offered() -> None:
    class Broken(FakeControlTarget):
        def registers(self, tid):
            raise RuntimeError("boom")
    s = make_session(Broken(regs={1: {}}))
    assert ask(s, b"g") == b"E01"
    s.gdb_features = frozenset({"error-message"})
    assert ask(s, b"g") == b"E.RuntimeError: boom"


# ---- signals ----

@pytest.mark.parametrize("linux,gdb", [(2, 2), (5, 5), (7, 10), (10, 30), (11, 11), (12, 31), (17, 20), (19, 17),
                                       (31, 12), (32, 77), (33, 45), (63, 75), (64, 78), (16, 143)])
def test_signal_map(linux: int, gdb: int) -> None:
    assert signals.gdb_from_linux(linux) == gdb
    if gdb != 143:
        assert signals.linux_from_gdb(gdb) == linux


def test_every_linux_signal_round_trips() -> None:
    for signo in [s for s in range(1, 65) if s != 16]:
        assert signals.linux_from_gdb(signals.gdb_from_linux(signo)) == signo


def test_signal_list_items_as_gdb_writes_them_and_otherwise() -> None:
    """QPassSignals/QProgramSignals items: gdb's lower-case hex (a table lookup), upper case or leading zeros (the
    same numbers), junk and signals Linux cannot raise (EMT, REALTIME_65) pass nothing; every gdb number agrees
    with linux_from_gdb."""
    for gdb in range(256):
        try:
            expected = signals.linux_from_gdb(gdb)
        except ValueError:
            expected = None
        for text in (b"%x" % gdb, b"%X" % gdb, b"0%x" % gdb):
            assert signals.linux_from_gdb_hex(text) == expected
    for junk in (b"", b"zz", b"-1", b"0x1e", b" 1e"):
        with pytest.raises(ValueError):
            signals.linux_from_gdb_hex(junk)
    s = make_session()
    assert ask(s, b"QPassSignals:e;zz;;7;1E;4f;") == b"OK"
    assert s.pass_signals == frozenset({14, 10})     # SIGALRM, SIGUSR1; EMT (7) and REALTIME_65 (4f) have none


def test_multiprocess_thread_ids_when_gdb_offers_them() -> None:
    s = make_session()
    assert b"multiprocess+" in ask(s, b"qSupported:multiprocess+;swbreak+").split(b";")
    assert ask(s, b"qC") == b"QCp64.7"                       # the fake's pid is 100
    assert ask(s, b"qfThreadInfo") == b"mp64.7,p64.9"
    assert ask(s, b"Hgp64.9") == b"OK" and ask(s, b"p0") == (9).to_bytes(8, "little").hex().encode()
    assert b"thread:p64.9;" in stop_reply(s, StopEvent(9, StopReason.SIGNAL, 11))
    assert stop_reply(s, StopEvent(9, StopReason.EXITED, exit_status=1)) == b"W01;process:64"
    assert ask(s, b"vCont;c:p64.-1") is None


def test_random_arguments_never_reach_the_unexpected_error_path(caplog) -> None:
    """Fuzz every table entry with random argument bytes: each gets a normal reply or a typed error, never
    the E01 of an unexpected handler exception (which is traced as a stub bug)."""
    import logging
    import random
    rng = random.Random(2159)
    alphabet = b"0123456789abcdefABCDEFxp.-,:;=}#$*+ \x00\xffvTqQ"
    for name in sorted(TABLE):
        for _ in range(60):
            s = make_session()
            args = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
            packet = name.encode() + rng.choice([b"", b":", b",", b";"]) + args
            with caplog.at_level(logging.ERROR, logger="km.gdb"):
                reply = ask(s, packet)
            assert reply is None or isinstance(reply, bytes)
            assert not caplog.records, f"{packet!r}: {caplog.text}"


@pytest.mark.parametrize("packet", [b"vCont;c:p999.7", b"vCont;s:p64.999;c", b"Hgp999.7", b"Tp64.999"])
def test_a_thread_of_another_process_is_an_error_and_serving_goes_on(packet) -> None:
    s = make_session()
    s.gdb_features = frozenset({"multiprocess"})
    assert ask(s, packet) == b"E03"
    assert not s.run.running
    assert ask(s, b"qC") == b"QCp64.7"


# ---- repeated packets (the dispatcher remembers short packets' parsed arguments) ----

def test_a_repeated_packet_acts_on_the_state_of_its_own_time() -> None:
    """The memo keeps a packet's entry and arguments, never its answer: the same `m`, `g` or `p` after a memory
    or register write, or after Hg names another thread, reads the new state."""
    session = make_session()
    addr = b"%x" % (TEXT + 0x20)
    assert ask(session, b"m" + addr + b",4") == b"20212223"
    assert ask(session, b"M" + addr + b",4:deadbeef") == b"OK"
    assert ask(session, b"m" + addr + b",4") == b"deadbeef"
    rax = b"%02x" % REGISTERS.index(next(r for r in REGISTERS if r.name == "rax"))
    assert ask(session, b"p" + rax) == (7).to_bytes(8, "little").hex().encode()
    assert ask(session, b"P" + rax + b"=" + (0x55).to_bytes(8, "little").hex().encode()) == b"OK"
    assert ask(session, b"p" + rax) == (0x55).to_bytes(8, "little").hex().encode()
    assert ask(session, b"Hg9") == b"OK"
    assert ask(session, b"p" + rax) == (9).to_bytes(8, "little").hex().encode()


def test_a_bad_packet_stays_an_error_when_repeated() -> None:
    session = make_session()
    assert ask(session, b"mzz,4").startswith(b"E") and ask(session, b"mzz,4").startswith(b"E")
    assert ask(session, b"m%x,2" % TEXT) == b"0001"


def test_a_handler_that_changes_its_arguments_does_not_change_what_the_same_packet_gets_next() -> None:
    """gdb repeats short packets and the dispatcher spares their parse; a handler may change the arguments it is
    handed (here a list) without the next identical packet seeing that change."""
    letter = next(c for c in "abdefhilnorwy" if c not in TABLE)     # a packet letter the stub leaves unused
    handed: list[list[bytes]] = []

    def take(session: Session, items: list[bytes]) -> bytes:
        handed.append(list(items))
        items.append(b"changed")
        return b"OK"

    command(letter, lambda rest: ([rest],))(take)
    try:
        for _ in range(3):
            assert ask(make_session(), letter.encode() + b"1,2") == b"OK"
    finally:
        del TABLE[letter]
    assert handed == [[b"1,2"]] * 3


def test_thread_list_follows_new_threads_names_and_exits() -> None:
    """qXfer:threads' document is remembered between stops: a new thread, a new name or a thread gone must each
    show in the next read (a stale one hides a thread from gdb's `info threads`)."""
    target = make_fake()
    s = make_session(target)
    first = ask(s, b"qXfer:threads:read::0,1000")
    assert b'id="7"' in first and b'id="9"' in first and ask(s, b"qXfer:threads:read::0,1000") == first
    target.names[9] = "worker"
    assert b'name="worker"' in ask(s, b"qXfer:threads:read::0,1000")
    target.regs[11] = dict(target.regs[9])
    assert b'id="b"' in ask(s, b"qXfer:threads:read::0,1000")
    del target.regs[7]
    assert b'id="7"' not in ask(s, b"qXfer:threads:read::0,1000")
    s.gdb_features = frozenset({"multiprocess"})
    assert b'id="p' in ask(s, b"qXfer:threads:read::0,1000")


def test_stop_reply_expedites_the_same_registers_either_way() -> None:
    """A FrameRegistersTarget's three words (a live process) make the same T reply as the register file does."""
    class Framed(FakeControlTarget):
        def frame_registers(self, tid):
            regs = self.regs[tid]
            return regs["rbp"], regs["rsp"], regs["rip"]
    regs = {7: dict(zero_registers(), rip=0x401136, rsp=0x7ffe0010, rbp=0x7ffe0040)}
    event = StopEvent(7, StopReason.BREAKPOINT, 5)
    plain, framed = make_session(FakeControlTarget(regs=dict(regs))), make_session(Framed(regs=dict(regs)))
    assert framed.current.frame_registers is not None and plain.current.frame_registers is None
    reply = stop_reply(framed, event)
    assert reply == stop_reply(plain, event)
    assert b"06:4000fe7f00000000;07:1000fe7f00000000;10:3611400000000000;thread:7;" in reply
