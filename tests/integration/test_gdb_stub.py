"""The stub against the real gdb, before any VM: a FakeControlTarget built from a real payload ELF (memory from
its PT_LOAD segments, rip at the entry point). Asserts what the gdb user sees and what reached the target."""
from __future__ import annotations

import threading

import pytest

from harness.fake_target import fake_from_elf
from harness.gdb import Gdb
from harness.markers import line_of
from kdbg.arch import x86_64
from kdbg.rsp.server import GdbServer
from harness.fake_target import StaticTarget
from kdbg.target import BreakpointKind, StopEvent, StopReason

SRC = "gdb_basic.c"
TIDS = (100, 101)


class Session:
    def __init__(self, exe, target, gdb_args: tuple[str, ...], initially_stopped: bool = True) -> None:
        self.target = target
        self.server = GdbServer(target, 0, initially_stopped=initially_stopped)
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()
        self.gdb = Gdb(*gdb_args)

    def connect(self) -> dict:
        return self.gdb.run(f"-target-select remote 127.0.0.1:{self.server.port}")

    def close(self) -> None:
        self.gdb.exit()
        self.server.close()
        self.thread.join(10)
        assert not self.thread.is_alive(), "stub thread did not stop"


@pytest.fixture
def exe(payload):
    return payload(SRC, "musl")


@pytest.fixture
def stub(exe):
    sessions: list[Session] = []

    def start(target=None, *, with_file: bool = True) -> Session:
        if target is None:
            target = fake_from_elf(exe, TIDS)
            target.post(StopEvent(TIDS[0], StopReason.ENTRY, 5))
        session = Session(exe, target, (str(exe),) if with_file else ())
        sessions.append(session)
        session.connect()
        return session

    yield start
    for session in sessions:
        session.close()


def test_registers_of_every_feature(stub) -> None:
    s = stub()
    gdb, regs = s.gdb, s.target.regs[TIDS[0]]
    out = gdb.console("info registers")
    assert f"rip            {regs['rip']:#x}" in out and "eflags" in out, gdb.transcript_text()
    every = gdb.console("info all-registers")     # like gdbserver, fs_base/gs_base/orig_rax only by name
    wide = ("zmm0", "zmm31", "k7") if x86_64.HAS_AVX512 else ("ymm0", "ymm15")    # as gdb shows them natively
    for name in ("st0", "fctrl", "mxcsr", *wide):
        assert f"\n{name} " in every, gdb.transcript_text()
    named = gdb.console("info registers fs_base gs_base orig_rax")
    assert "fs_base        0x70000000" in named and "orig_rax" in named, gdb.transcript_text()
    assert gdb.console("p/x $xmm0.uint128").strip().endswith("0x112233445566778899aabbccddeeff")
    assert gdb.console("p/x $ymm0.v2_int128").strip().endswith(
        "{0x112233445566778899aabbccddeeff, 0xffeeddccbbaa99887766554433221100}")
    assert gdb.console("p $st0").strip().endswith("= 1")
    assert gdb.console("p/x $fs_base").strip().endswith("0x70000000")
    assert gdb.console("p $eflags").strip().endswith("[ IF ]")
    assert gdb.console("p $mxcsr").strip().endswith("[ IM DM ZM OM UM PM ]")


def test_disassembly_and_memory_reads(stub) -> None:
    gdb = stub().gdb
    lines = gdb.console("x/4i $pc").strip().splitlines()
    assert len(lines) == 4 and "<_start>" in lines[0] and lines[0].startswith("=>"), gdb.transcript_text()
    assert gdb.console("p counter").strip().endswith("= 41")
    assert gdb.console("p/x big_value").strip().endswith("= 0x1122334455667788")
    assert 'label = 0x' in gdb.console("p origin") and '"origin"' in gdb.console("p origin")
    assert '"hello from km"' in gdb.console("p message")
    assert "Cannot access memory" in gdb.run("x/2x 0x10", check=False)["payload"]["msg"]


def test_set_var_and_registers_write_through_the_target(stub) -> None:
    s = stub()
    gdb = s.gdb
    gdb.console("set var counter = 77")
    assert gdb.console("p counter").strip().endswith("= 77")
    addr = int(gdb.console("p/x &counter").split("=")[1], 16)
    assert s.target.read_memory(addr, 4) == (77).to_bytes(4, "little")
    gdb.console('set var message[0] = 0x24')           # '$' goes through the binary escape of X
    assert s.target.read_memory(addr - addr + int(gdb.console("p/x &message").split("=")[1], 16), 1) == b"$"
    gdb.console("set $rax = 0xabc")
    gdb.console("set $xmm1.v4_int32[2] = 7")
    assert s.target.regs[TIDS[0]]["rax"] == 0xABC
    assert (s.target.regs[TIDS[0]]["xmm1"] >> 64) & 0xFFFFFFFF == 7


def test_two_threads(stub) -> None:
    s = stub()
    gdb = s.gdb
    out = gdb.console("info threads")
    # multiprocess extensions: gdb shows pid.tid, as with gdbserver and a Linux process
    assert "Thread 100.100" in out and "Thread 100.101" in out, gdb.transcript_text()
    gdb.console("thread 2")
    assert gdb.console("p/x $rax").strip().endswith("0x1235")
    gdb.console("thread 1")
    assert gdb.console("p/x $rax").strip().endswith("0x1234")


def test_breakpoints_and_watchpoints_reach_the_target(stub) -> None:
    s = stub()
    gdb = s.gdb
    gdb.console("break add")
    gdb.run("-exec-continue")
    frame = gdb.wait_for_stop("breakpoint-hit")["frame"]
    assert frame["func"] == "add" and int(frame["line"]) == line_of(SRC, "add_body")
    kinds = {c[1] for c in s.target.calls if c[0] == "set_breakpoint"}
    assert kinds == {BreakpointKind.SOFTWARE}
    add = int(frame["addr"], 16)
    assert ("clear_breakpoint", BreakpointKind.SOFTWARE, add, 1) in s.target.calls   # z0 once stopped
    assert s.target.points == set()
    gdb.console("delete")
    gdb.console("hbreak scale")
    gdb.console("watch counter")
    gdb.console("rwatch big_value")
    gdb.console("awatch origin.y")
    gdb.run("-exec-continue")
    gdb.wait_for_stop()
    inserted = {(c[1], c[3]) for c in s.target.calls if c[0] == "set_breakpoint"}
    assert {(BreakpointKind.HARDWARE, 1), (BreakpointKind.WRITE, 4), (BreakpointKind.READ, 8),
            (BreakpointKind.ACCESS, 4)} <= inserted, gdb.transcript_text()
    assert not any(c[0] == "write_memory" for c in s.target.calls)   # no fallback to planting int3 itself


def test_watchpoint_stop_is_reported_with_the_value(stub) -> None:
    s = stub()
    gdb = s.gdb
    gdb.console("watch counter")
    addr = int(gdb.console("p/x &counter").split("=")[1], 16)

    def write_counter(target, actions):       # the "payload" stores 42 and the watchpoint fires
        target.write_memory(addr, (42).to_bytes(4, "little"))
        target.post(StopEvent(TIDS[0], StopReason.WATCHPOINT, 5, watch_addr=addr, watch_kind=BreakpointKind.WRITE))
    s.target.on_resume = write_counter
    gdb.run("-exec-continue")
    stop = gdb.wait_for_stop("watchpoint-trigger")
    assert stop["value"] == {"old": "41", "new": "42"}, gdb.transcript_text()


def test_interrupt_a_running_target(stub) -> None:
    s = stub()
    gdb = s.gdb
    gdb.run("-exec-continue")
    gdb.run("-exec-interrupt")
    stop = gdb.wait_for_stop("signal-received")
    assert stop["signal-name"] == "SIGINT", gdb.transcript_text()
    assert ("interrupt",) in s.target.calls


def test_signal_and_siginfo(stub) -> None:
    s = stub()
    gdb = s.gdb
    s.target.on_resume = lambda t, a: t.post(StopEvent(TIDS[1], StopReason.SIGNAL, 11))
    gdb.run("-exec-continue")
    stop = gdb.wait_for_stop("signal-received")
    assert stop["signal-name"] == "SIGSEGV" and stop["thread-id"] == "2", gdb.transcript_text()
    assert gdb.console("p $_siginfo.si_signo").strip().endswith("= 11")
    assert gdb.console("p $_siginfo._sifields._sigfault.si_addr").strip().endswith("0xdead000")


def test_exit_code(stub) -> None:
    s = stub()
    s.target.on_resume = lambda t, a: t.post(StopEvent(TIDS[0], StopReason.EXITED, exit_status=3))
    s.gdb.run("-exec-continue")
    stop = s.gdb.wait_for_stop("exited")
    assert stop["exit-code"] == "03"
    s.thread.join(10)
    assert not s.thread.is_alive()


def test_detach_and_kill(stub) -> None:
    s = stub()
    s.gdb.console("break add")
    s.gdb.console("detach")
    assert ("detach",) in s.target.calls
    t = stub()
    t.gdb.console("kill")
    t.thread.join(10)
    assert ("kill",) in t.target.calls and not t.thread.is_alive()


def test_gdb_reads_the_executable_from_the_target(stub, exe) -> None:
    """No local file: gdb takes the path from qXfer:exec-file and the bytes through vFile."""
    s = stub(with_file=False)
    assert s.gdb.console("p counter").strip().endswith("= 41"), s.gdb.transcript_text()
    assert str(exe) in s.gdb.console("info inferiors")


def test_read_only_target(stub, exe) -> None:
    fake = fake_from_elf(exe, (7,))
    target = StaticTarget(regs=fake.regs, memory={k: bytes(v) for k, v in fake.memory.items()},
                          event=StopEvent(7, StopReason.SIGNAL, 11), exe=str(exe))
    s = stub(target)
    assert s.gdb.console("p counter").strip().endswith("= 41")
    assert "_start" in s.gdb.console("x/i $pc")
    s.gdb.run("-exec-continue")
    assert s.gdb.wait_for_stop("signal-received")["signal-name"] == "SIGSEGV"   # a core cannot run


def test_ack_mode_session(exe) -> None:
    """gdb told not to use QStartNoAckMode: every packet acknowledged, same results."""
    target = fake_from_elf(exe, TIDS)
    target.post(StopEvent(TIDS[0], StopReason.ENTRY, 5))
    s = Session(exe, target, (str(exe),))
    try:
        s.gdb.console("set remote noack-packet off")
        s.connect()
        assert s.gdb.console("p counter").strip().endswith("= 41")
        s.gdb.console("set var counter = 5")
        assert s.gdb.console("p counter").strip().endswith("= 5")
        assert len(s.gdb.console("x/8i $pc").strip().splitlines()) == 8
    finally:
        s.close()
