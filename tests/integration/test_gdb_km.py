"""End to end: gdb against `km -g` (and, as the reference the same tests must pass against, native gdbserver).

Each test starts the payload stopped at its first instruction behind a gdb port, drives the real gdb through
MI and asserts what a user sees: frames at marked lines, values, thread lists, the payload's output and
km's exit status. The gdbserver runs are the differential check that the expectations are gdb's own.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.gdb import Gdb, wait_listening
from harness.km import ROOT, spawn_km
from harness.markers import line_of

BASIC = "gdb_basic.c"
KM_READY = (ROOT / "monitor" / "live_target.py").exists() and "kdbg.rsp.server" in (
    ROOT / "monitor" / "cli.py").read_text()
BACKENDS = [pytest.param("km", marks=pytest.mark.skipif(not KM_READY, reason="km -g not wired to the stub yet")),
            "gdbserver"]


class Debuggee:
    """A payload stopped before its first instruction behind a gdb port, and the gdb connected to it."""

    def __init__(self, backend: str, exe: Path, port: int, *, listen: bool = False) -> None:
        self.backend, self.exe, self.port = backend, exe, port
        if backend == "km":
            args = ["--gdb_listen", f"-g{port}"] if listen else [f"-g{port}"]
            self.proc = spawn_km(*args, exe)
        else:
            self.proc = subprocess.Popen(["gdbserver", "--once", f"127.0.0.1:{port}", str(exe)],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_listening(port, self.proc)
        self.gdb = Gdb(str(exe))

    def connect(self) -> None:
        self.gdb.run(f"-target-select remote 127.0.0.1:{self.port}", timeout_s=30)

    def finish(self, timeout_s: float = 30) -> tuple[int, str, str]:
        """Wait for the server process; its exit status, stdout and stderr."""
        out, err = self.proc.communicate(timeout=timeout_s)
        return self.proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def diagnostics(self) -> str:
        return f"backend {self.backend}\n" + self.gdb.transcript_text()

    def close(self) -> None:
        self.gdb.exit()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=10)


@pytest.fixture(params=BACKENDS)
def debug(request, payload, free_port):
    started: list[Debuggee] = []

    def start(source: str = BASIC, toolchain: str = "musl", *, connect: bool = True) -> Debuggee:
        d = Debuggee(request.param, payload(source, toolchain), free_port)
        started.append(d)
        if connect:
            d.connect()
        return d

    yield start
    for d in started:
        d.close()


def stop_line(stop: dict) -> int:
    return int(stop["frame"]["line"])


def run_to(d: Debuggee, location: str, reason: str = "breakpoint-hit") -> dict:
    d.gdb.run(f"-break-insert {location}")
    d.gdb.run("-exec-continue")
    return d.gdb.wait_for_stop(reason)


# ---- breakpoints, stepping, finish ----

def test_break_continue_bt_finish(debug) -> None:
    d = debug()
    stop = run_to(d, "add")
    assert stop["frame"]["func"] == "add" and stop_line(stop) == line_of(BASIC, "add_body"), d.diagnostics()
    bt = d.gdb.run("-stack-list-frames")["payload"]["stack"]
    assert [f["func"] for f in bt[:2]] == ["add", "main"] and int(bt[1]["line"]) == line_of(BASIC, "call_add")
    d.gdb.run("-exec-finish")
    stop = d.gdb.wait_for_stop("function-finished")
    assert stop["return-value"] == "42" and stop["frame"]["func"] == "main", d.diagnostics()


@pytest.mark.parametrize("toolchain", ["glibc", "glibc-pie"])
def test_glibc_and_static_pie(debug, toolchain: str) -> None:
    """A static-pie payload is relocated: gdb finds the load address from auxv (AT_ENTRY), not qOffsets."""
    d = debug(BASIC, toolchain)
    stop = run_to(d, "add")
    assert stop["frame"]["func"] == "add" and stop_line(stop) == line_of(BASIC, "add_body"), d.diagnostics()
    assert d.gdb.console("p counter").strip().endswith("= 41")


def test_tbreak_hbreak_and_condition(debug) -> None:
    d = debug()
    d.gdb.run(f"-break-insert -t {BASIC}:{line_of(BASIC, 'write_watched')}")
    d.gdb.run("-exec-continue")
    stop = d.gdb.wait_for_stop("breakpoint-hit")
    assert stop["disp"] == "del" and stop_line(stop) == line_of(BASIC, "write_watched"), d.diagnostics()
    d.gdb.run("-break-insert -h scale")
    d.gdb.run("-exec-continue")
    stop = d.gdb.wait_for_stop("breakpoint-hit")
    assert stop["frame"]["func"] == "scale", d.diagnostics()
    assert "hw breakpoint" in d.gdb.console("info breakpoints")


def test_conditional_breakpoint(debug) -> None:
    d = debug()
    d.gdb.run("-break-insert -c \"k == 2\" scale")
    d.gdb.run("-break-insert -c \"a == 1000\" add")      # never true: must not stop
    d.gdb.run("-exec-continue")
    stop = d.gdb.wait_for_stop("breakpoint-hit")
    assert stop["frame"]["func"] == "scale", d.diagnostics()


def test_step_next_stepi_until(debug) -> None:
    d = debug()
    stop = run_to(d, f"{BASIC}:{line_of(BASIC, 'call_add')}")
    d.gdb.run("-exec-step")
    stop = d.gdb.wait_for_stop("end-stepping-range")
    assert stop["frame"]["func"] == "add" and stop_line(stop) == line_of(BASIC, "add_body"), d.diagnostics()
    d.gdb.run("-exec-next")
    stop = d.gdb.wait_for_stop("end-stepping-range")
    assert stop_line(stop) == line_of(BASIC, "add_return"), d.diagnostics()
    pc = int(stop["frame"]["addr"], 16)
    d.gdb.run("-exec-step-instruction")
    stop = d.gdb.wait_for_stop("end-stepping-range")
    assert int(stop["frame"]["addr"], 16) != pc
    # `until LOCATION` also stops when the current frame returns: first back in main, then at the line.
    d.gdb.run(f"-exec-until {BASIC}:{line_of(BASIC, 'call_scale')}")
    stop = d.gdb.wait_for_stop("location-reached")
    assert stop["frame"]["func"] == "main" and stop_line(stop) == line_of(BASIC, "call_add"), d.diagnostics()
    d.gdb.run(f"-exec-until {BASIC}:{line_of(BASIC, 'call_scale')}")
    stop = d.gdb.wait_for_stop("location-reached")
    assert stop["frame"]["func"] == "main" and stop_line(stop) == line_of(BASIC, "call_scale"), d.diagnostics()


def test_watch_rwatch_awatch(debug) -> None:
    d = debug()
    d.gdb.run("-break-watch watched")
    d.gdb.run("-exec-continue")
    stop = d.gdb.wait_for_stop("watchpoint-trigger")
    assert stop["value"]["new"] == "42" and stop["frame"]["func"] == "main", d.diagnostics()
    d.gdb.run("-break-delete")
    d.gdb.run("-break-watch -r big_value")
    d.gdb.run("-break-watch -a origin.x")
    d.gdb.run("-exec-continue")
    stop = d.gdb.wait_for_stop()
    assert stop["reason"] in ("access-watchpoint-trigger", "read-watchpoint-trigger"), d.diagnostics()
    assert stop["frame"]["func"] == "scale", d.diagnostics()


# ---- data ----

def test_registers_values_structs_memory(debug) -> None:
    d = debug()
    run_to(d, "scale")
    gdb = d.gdb
    regs = gdb.console("info registers")
    assert "rip" in regs and "<scale+" in regs, d.diagnostics()
    assert gdb.console("p counter").strip().endswith("= 42")
    assert gdb.console("p k").strip().endswith("= 2")
    assert gdb.console("p *p").strip().endswith('{x = 3, y = 4, label = 0x' + gdb.console(
        "p/x origin.label").split("0x")[1].strip() + ' "origin"}')
    assert gdb.console("up").count("main") >= 1 and gdb.console("p local").strip().endswith("= 5")
    assert gdb.console("x/s message").strip().endswith('"hello from km"')
    assert gdb.console("x/2xw &origin").split(":")[1].split() == ["0x00000003", "0x00000004"]
    assert "mov" in gdb.console("x/3i $pc") or "call" in gdb.console("x/3i $pc")
    assert gdb.console("p $fs_base").strip() != "= 0"


def test_set_var_changes_output_and_exit_code(debug) -> None:
    d = debug()
    run_to(d, f"{BASIC}:{line_of(BASIC, 'write_watched')}")
    d.gdb.console("set var counter = 100")
    d.gdb.console('set var message[0] = 0x48')
    d.gdb.run("-exec-continue")
    stop = d.gdb.wait_for_stop("exited")
    assert stop["exit-code"] == f"0{100 - 42 + 3:o}", d.diagnostics()   # gdb prints the code in octal
    d.gdb.exit()
    status, out, err = d.finish()
    assert "counter=100" in out and "message=Hello from km" in out, out + err
    if d.backend == "km":
        assert status == 100 - 42 + 3, err


def test_kill(debug) -> None:
    d = debug()
    run_to(d, "add")
    d.gdb.console("kill")
    d.gdb.exit()
    status, out, err = d.finish()
    assert "counter=" not in out
    if d.backend == "km":
        assert status == 128 + 9, err


# ---- threads ----

def test_threads(debug) -> None:
    d = debug("gdb_threads.c")
    stop = run_to(d, "worker_work")
    gdb = d.gdb
    threads = gdb.run("-thread-info")["payload"]["threads"]
    assert len(threads) == 3, d.diagnostics()
    other = next(t["id"] for t in threads if t["id"] != stop["thread-id"])
    gdb.console(f"thread {other}")
    bt = gdb.console("bt")
    assert "#0" in bt, d.diagnostics()
    every = gdb.console("thread apply all bt")
    assert every.count("Thread ") >= 3 and "worker_work" in every and "main" in every, d.diagnostics()


# ---- interrupt, signals ----

def test_ctrl_c_of_a_spinning_payload(debug) -> None:
    d = debug("gdb_spin.c")
    run_to(d, f"gdb_spin.c:{line_of('gdb_spin.c', 'spin')}")    # in the loop, past the printf
    d.gdb.run("-break-delete")
    d.gdb.run("-exec-continue")
    d.gdb.run("-exec-interrupt")
    stop = d.gdb.wait_for_stop("signal-received")
    assert stop["signal-name"] == "SIGINT" and stop["frame"]["func"] == "main", d.diagnostics()
    d.gdb.console("set var keep_going = 0")
    d.gdb.run("-exec-continue")
    assert d.gdb.wait_for_stop("exited")["exit-code"] == "07"


def test_sigsegv_is_reported_with_siginfo(debug) -> None:
    d = debug("gdb_segv.c")
    d.gdb.run("-exec-continue")
    stop = d.gdb.wait_for_stop("signal-received")
    assert stop["signal-name"] == "SIGSEGV" and stop_line(stop) == line_of("gdb_segv.c", "fault"), d.diagnostics()
    assert "Program received signal SIGSEGV" in d.gdb.console_text(), d.diagnostics()
    assert d.gdb.console("p $_siginfo.si_signo").strip().endswith("= 11")
    assert d.gdb.console("p $_siginfo._sifields._sigfault.si_addr").strip().endswith("0x10")


# ---- --gdb_listen ----

@pytest.mark.skipif(not KM_READY, reason="km --gdb_listen not wired to the stub yet")
def test_listen_attach_detach_cycles(payload, free_port) -> None:
    exe = payload("gdb_spin.c", "musl")
    proc = spawn_km("--gdb_listen", f"-g{free_port}", exe)
    try:
        wait_listening(free_port, proc)
        gdb = Gdb(str(exe))
        try:
            for cycle in range(20):
                gdb.run(f"-target-select remote 127.0.0.1:{free_port}", timeout_s=30)
                spins = int(gdb.console("p spins").split("=")[1])
                assert spins >= 0 and proc.poll() is None, f"cycle {cycle}\n" + gdb.transcript_text()
                if cycle == 19:
                    gdb.console("set var keep_going = 0")
                gdb.console("detach")
        finally:
            gdb.exit()
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 7 and b"stopped spinning" in out, err.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)



# ---- gdb going away, port conflicts (km only: they are about km's own behaviour) ----

km_only = pytest.mark.skipif(not KM_READY, reason="km -g not wired to the stub yet")


@km_only
def test_vanished_gdb_leaves_the_payload_stopped_for_the_next_one(payload, free_port) -> None:
    d = Debuggee("km", payload(BASIC, "musl"), free_port)
    try:
        d.connect()
        run_to(d, "add")
        d.gdb.controller.gdb_process.kill()            # no detach, no kill: the connection just drops
        d.gdb.exit()
        d.gdb = Gdb(str(d.exe))
        d.connect()
        frame = d.gdb.run("-stack-info-frame")["payload"]["frame"]
        assert frame["func"] == "add" and int(frame["line"]) == line_of(BASIC, "add_body"), d.diagnostics()
        assert "No breakpoints" in d.gdb.console("info breakpoints")
        d.gdb.run("-exec-continue")                    # the old breakpoint is gone from the target too
        assert d.gdb.wait_for_stop("exited")["exit-code"] == "03", d.diagnostics()
        d.gdb.exit()
        status, out, err = d.finish()
        assert status == 3 and "counter=42" in out, err
    finally:
        d.close()


@km_only
def test_vanished_gdb_in_listen_mode_lets_the_payload_finish(payload, free_port) -> None:
    d = Debuggee("km", payload("gdb_spin.c", "musl"), free_port, listen=True)
    try:
        d.connect()
        d.gdb.console("set breakpoint always-inserted on")      # the Z0 reaches km before gdb vanishes
        d.gdb.console("break gdb_spin.c:%d" % line_of("gdb_spin.c", "spin"))
        d.gdb.console("set var keep_going = 0")
        d.gdb.controller.gdb_process.kill()
        d.gdb.exit()
        status, out, err = d.finish()
        assert status == 7 and "stopped spinning" in out, err      # breakpoint removed, payload ran on
    finally:
        d.close()


@km_only
def test_busy_gdb_port_is_a_one_line_error(payload) -> None:
    import socket
    from harness.km import run_km
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_km(f"-g{port}", payload(BASIC, "musl"), timeout=30)
    err = result.stderr.decode()
    assert result.returncode == 1 and err == f"km: gdb port {port}: address already in use\n", err


@km_only
def test_differential_against_gdbserver(payload, free_port) -> None:
    """The same stop under km and under gdbserver: same backtrace, code bytes and argument registers."""
    commands = ("bt", "x/16xb $pc", "info registers rip rdi rsi eflags cs ss", "p origin", "info frame")
    seen = {}
    for backend in ("gdbserver", "km"):
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        d = Debuggee(backend, payload(BASIC, "musl"), port)
        try:
            d.connect()
            run_to(d, "scale")
            seen[backend] = [d.gdb.console(c) for c in commands]
        finally:
            d.close()
    # `info frame` names the caller's stack addresses, which depend on the environment size: compare lines
    # that do not mention the stack.
    keep = [lambda t: t] * 4 + [lambda t: [ln for ln in t.splitlines() if "0x7ff" not in ln]]
    for command, pick, ref, km in zip(commands, keep, seen["gdbserver"], seen["km"]):
        assert pick(km) == pick(ref), f"{command}\nkm:\n{km}\ngdbserver:\n{ref}"


def test_siginfo_at_a_breakpoint(debug) -> None:
    d = debug()
    run_to(d, "add")
    assert d.gdb.console("p $_siginfo.si_signo").strip().endswith("= 5"), d.diagnostics()
    assert d.gdb.console("p $_siginfo.si_code").strip().endswith("= 128"), d.diagnostics()   # SI_KERNEL


def test_register_writes_of_every_class_stick(debug) -> None:
    """P/G through the target for GPR, x87, SSE, AVX and segment-base registers: written, stepped over,
    read back."""
    d = debug()
    run_to(d, "scale")
    gdb = d.gdb
    writes = {"$r12": ("0x1122334455667788", "p/x $r12", "0x1122334455667788"),
              "$xmm5.v4_int32[1]": ("123", "p $xmm5.v4_int32[1]", "123"),
              "$ymm5.v8_int32[7]": ("77", "p $ymm5.v8_int32[7]", "77"),
              "$st7": ("2.5", "p $st7", "2.5"),
              "$mxcsr": ("0x1fa0", "p/x $mxcsr", "0x1fa0"),
              "$fs_base": ("$fs_base", "p $fs_base == $saved_fs", "1")}
    gdb.console("set $saved_fs = $fs_base")
    for target, (value, _, _) in writes.items():
        gdb.console(f"set var {target} = {value}")
    gdb.run("-exec-step-instruction")
    gdb.wait_for_stop("end-stepping-range")
    for target, (_, check, expected) in writes.items():
        assert gdb.console(check).strip().endswith(f"= {expected}"), f"{target}\n" + d.diagnostics()
    gdb.run("-exec-continue")
    assert gdb.wait_for_stop("exited")["exit-code"] == "03", d.diagnostics()


def test_ctrl_c_stops_every_spinning_thread(debug) -> None:
    d = debug("gdb_spin_threads.c")
    gdb = d.gdb
    run_to(d, f"gdb_spin_threads.c:{line_of('gdb_spin_threads.c', 'thread_spin')}")
    gdb.run("-break-delete")
    gdb.run("-exec-continue")
    gdb.run("-exec-interrupt")
    assert gdb.wait_for_stop("signal-received")["signal-name"] == "SIGINT", d.diagnostics()
    threads = gdb.run("-thread-info")["payload"]["threads"]
    assert len(threads) == 3 and all(t["state"] == "stopped" for t in threads), d.diagnostics()
    before = gdb.console("output spins")
    assert gdb.console("output spins") == before            # nothing runs while stopped
    gdb.console("set var keep_going = 0")
    gdb.run("-exec-continue")
    assert gdb.wait_for_stop()["reason"] == "exited-normally", d.diagnostics()


@pytest.mark.parametrize("stop", [True, False], ids=["stop-then-pass", "nostop"])
def test_signal_is_shown_then_delivered_to_the_handler(debug, stop: bool) -> None:
    d = debug("gdb_signals.c")
    gdb = d.gdb
    if not stop:
        gdb.console("handle SIGUSR1 nostop noprint pass")       # QPassSignals: km delivers it alone
    gdb.run("-break-insert on_usr1")
    gdb.run("-exec-continue")
    if stop:
        assert gdb.wait_for_stop("signal-received")["signal-name"] == "SIGUSR1", d.diagnostics()
        gdb.run("-exec-continue")                               # C0a: the signal goes to the payload
    frame = gdb.wait_for_stop("breakpoint-hit")["frame"]
    assert frame["func"] == "on_usr1", d.diagnostics()
    gdb.run("-exec-continue")
    assert gdb.wait_for_stop()["reason"] == "exited-normally", d.diagnostics()
    gdb.exit()
    status, out, err = d.finish()
    assert "handled=10" in out, out + err


def test_detach_lets_the_payload_finish(debug) -> None:
    d = debug()
    run_to(d, "add")
    d.gdb.console("detach")
    d.gdb.exit()
    status, out, err = d.finish()
    assert "counter=42 local=19" in out, out + err
    if d.backend == "km":
        assert status == 3, err


def test_go_payload(debug) -> None:
    """Go: many threads and SIGURG preemption (gdb passes SIGURG silently through QPassSignals)."""
    d = debug("gdb_go.go")
    stop = run_to(d, "main.square")
    assert stop["frame"]["func"] == "main.square" and stop_line(stop) == line_of("gdb_go.go", "go_square"), \
        d.diagnostics()
    assert "main.main.func1" in d.gdb.console("bt")
    assert len(d.gdb.run("-thread-info")["payload"]["threads"]) >= 2, d.diagnostics()
    d.gdb.run("-break-delete")
    d.gdb.run("-exec-continue")
    assert d.gdb.wait_for_stop("exited")["exit-code"] == "05", d.diagnostics()
    d.gdb.exit()
    status, out, err = d.finish()
    assert "go results 4" in out, out + err
    if d.backend == "km":
        assert status == 5, err
