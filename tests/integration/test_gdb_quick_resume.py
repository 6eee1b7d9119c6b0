"""The stub's quick lane (kdbg.target.QuickResumeTarget): km answers a plain `vCont;s` or `vCont;c` of a one-thread
payload from a run made on the stub's thread. Each reply must show the registers of after that run, and each
register or memory write between resumes must reach the next run; gdbserver, driven by the same packets, is the
reference (the payload is static: the same addresses under both). km runs twice: with the compiled run of a parked
vCPU (monitor/kvm/crun.py) and with its Python twin (KM_DEBUG_RUN=python), each with a hook that records what
LiveTarget.quick_resume answered: the replies are the same from the generic path, so without it this test would pass
with the quick lane never taken. The hook also records each run made by the Python twin
(VcpuThread._run_for_debugger_python), and the compiled case reads km's /proc/PID/maps: the compiled module must be
mapped and the twin never run, or that case would pass on the twin alone."""
from __future__ import annotations

import re

import pytest

from harness.debuggee import start_server, stop_server
from harness.km import hooked_env
from harness.rsp_client import RspClient
from harness.symbols import symbol_address
from kdbg.rsp.packets import decode_rle

SRC = "gdb_quick.c"
# a sitecustomize.py on km's PYTHONPATH (this test only): one line per quick_resume() call, what it answered
QUICK_HOOK = """
import os
from monitor.debug.live_target import LiveTarget
_quick_resume = LiveTarget.quick_resume
def quick_resume(self, step_tid):
    stop = _quick_resume(self, step_tid)
    with open(os.environ["KM_TEST_QUICK_OUT"], "a") as f:
        f.write(("stop" if isinstance(stop, tuple) else "resumed" if stop else "declined") + f" {step_tid}\\n")
    return stop
LiveTarget.quick_resume = quick_resume
from monitor.vcpu.loop import VcpuThread
_twin = VcpuThread._run_for_debugger_python
def twin(self, vector, step):
    with open(os.environ["KM_TEST_QUICK_OUT"], "a") as f:
        f.write(f"twin {vector}\\n")
    return _twin(self, vector, step)
VcpuThread._run_for_debugger_python = twin
"""


def _word(hex_text: bytes) -> int:
    return int.from_bytes(bytes.fromhex(decode_rle(hex_text).decode()), "little")


def _reply_rip(reply: bytes) -> int:
    found = re.search(rb"(?:^|;)10:([0-9a-f]+);", decode_rle(reply)[3:])
    assert found, reply
    return _word(found.group(1))


@pytest.mark.parametrize("backend,run", [("km", "compiled"), ("km", "python"), ("gdbserver", "")])
def test_quick_steps_and_continues_see_every_write(backend, run, payload, free_port, tmp_path) -> None:
    exe = payload(SRC)
    tick, syscall_at = symbol_address(exe, "tick"), symbol_address(exe, "quick_syscall")
    counter = symbol_address(exe, "counter")
    if run:
        from monitor.kvm import crun
        assert crun.load() is not None, "the compiled run cannot be built here (gcc, python3-dev?)"
        module = crun.COMPILED.path(crun.COMPILED.place(), crun.COMPILED.stem())
    env = None
    if backend == "km":
        lanes = tmp_path / "lanes.txt"
        env = hooked_env(tmp_path, QUICK_HOOK, {"KM_DEBUG_RUN": run, "KM_TEST_QUICK_OUT": str(lanes)})
    proc = start_server(backend, exe, free_port, env=env)
    client = RspClient(free_port)
    seen = []
    try:
        stop = client.start()
        ptid = re.search(rb"thread:(p[0-9a-f]+\.[0-9a-f]+);", decode_rle(stop)).group(1)     # (gdbserver: RLE)
        pid = ptid.split(b".")[0]
        step = b"vCont;s:%s;c:%s.-1" % (ptid, pid)
        cont = b"vCont;c:%s.-1" % pid

        def resume(packet: bytes) -> int:
            client.send(packet)
            reply = client.stop_reply()
            assert reply.startswith(b"T05"), reply
            rip = _reply_rip(reply)
            assert _word(decode_rle(client.ask(b"g"))[16 * 16:17 * 16]) == rip, reply    # a register read agrees
            seen.append(rip)
            return rip

        assert client.ask(b"Z0,%x,1" % tick) == b"OK"
        assert resume(cont) == tick                                 # tick(1)
        regs = decode_rle(client.ask(b"g"))           # rdi (the 6th word) = 100: tick(100) instead (G: gdbserver has no P)
        assert client.ask(b"G" + regs[:5 * 16] + (100).to_bytes(8, "little").hex().encode() + regs[6 * 16:]) == b"OK"
        assert client.ask(b"z0,%x,1" % tick) == b"OK"              # stepped over as gdb does: taken out first
        assert [resume(step) for _ in range(3)] == [tick + 1, tick + 4, tick + 8]   # push, mov, mov (rdi stored)
        assert client.ask(b"Z0,%x,1" % tick) == b"OK"
        assert resume(cont) == tick                                 # tick(2)
        assert _word(client.ask(b"m%x,8" % counter)) == 100         # the written argument was the one added
        assert client.ask(b"M%x,8:%s" % (counter, (1000).to_bytes(8, "little").hex().encode())) == b"OK"
        assert client.ask(b"z0,%x,1" % tick) == b"OK"
        assert client.ask(b"Z0,%x,1" % syscall_at) == b"OK"
        assert resume(cont) == syscall_at                           # tick(2..4) ran: counter 1009
        assert client.ask(b"z0,%x,1" % syscall_at) == b"OK"
        assert resume(step) == syscall_at + 5                       # mov $39, %eax
        assert resume(step) == syscall_at + 7                       # the syscall, served, then the step's stop
        assert 0 < _word(decode_rle(client.ask(b"g"))[:16]) < 1 << 22     # rax: getpid's result, not -ENOSYS
        if run:
            with open(f"/proc/{proc.pid}/maps") as maps:                # km's own process (python -m monitor.cli)
                mapped = module in maps.read()
            assert mapped == (run == "compiled"), f"{module} mapped in km: {mapped}"
        client.send(cont)
        assert re.match(rb"W0?([0-9a-f]+)", client.stop_reply()).group(1) == b"%x" % (1009 & 0x7f)
    finally:
        client.close()
        stop_server(proc)
    assert len(seen) == 8
    if backend == "km":      # the quick lane answered the steps and the continues from a breakpoint's stop, and
        #                      the continue from the entry stop (the thread never ran; musl's arch_prctl and
        #                      set_tid_address on the way served on the stub's thread: VcpuThread.serve_syscall_here);
        #                      the continue from the stop of a step over `syscall` (posted by the vCPU's thread, which
        #                      served the call) goes the generic way
        answers = [line.split()[0] for line in lanes.read_text().splitlines() if not line.startswith("twin")]
        assert answers[:8] == ["stop"] * 7 + ["resumed"], answers
        twins = lanes.read_text().count("twin")
        assert (twins > 0) == (run == "python"), lanes.read_text()


def test_a_continue_through_calls_served_on_the_stubs_thread_still_hears_ctrl_c(payload, free_port) -> None:
    """From the entry stop, the quick lane's continue serves musl's start-up calls and then getpid, forever, on the
    stub's thread (VcpuThread.serve_syscall_here): the run deadline's kick ends that, the vCPU's thread takes the
    run over, and the stub reads gdb's ^C and reports the SIGINT stop, twice (the second from a generic resume).
    However early the ^C comes, the stub reads it only once the continue's run on its thread has ended."""
    exe = payload("gdb_getpid_loop.c")
    proc = start_server("km", exe, free_port)
    client = RspClient(free_port, timeout_s=20)
    try:
        pid = re.search(rb"thread:(p[0-9a-f]+)\.", decode_rle(client.start())).group(1)
        for _ in range(2):
            client.send(b"vCont;c:%s.-1" % pid)
            client.sock.sendall(b"\x03")
            assert client.stop_reply().startswith(b"T02"), "no SIGINT stop after ^C"
    finally:
        client.close()
        stop_server(proc)
