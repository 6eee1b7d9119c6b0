"""Test-side gdb: a pygdbmi session with deadlines and a transcript (Gdb); Debuggee and the `debug` fixture
for end-to-end tests against `km -g` or, as the reference, native gdbserver; and FakeControlTarget, a
kdbg.target.ControlTarget over plain memory that behaves as the contract says, for stub tests without a VM.

Gdb.run() waits for the command's result record (never a fixed sleep); wait_for_stop() waits for `*stopped`.
Every assertion message should include `gdb.transcript_text()` (Debuggee.diagnostics() adds km's stderr).
"""
from __future__ import annotations

import collections
import os
import select
import struct
import subprocess
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import pytest
from pygdbmi.gdbcontroller import GdbController

from .km import spawn_km

from kdbg.arch.x86_64 import zero_registers
from kdbg.target import (SIGTRAP, StaticTarget, BreakpointKind, GuestMemoryError, MemoryRegion, NoSuchThreadError,
                         ResumeAction, ResumeKind, StopEvent, StopReason)

DEFAULT_TIMEOUT_S = 15.0


class GdbError(AssertionError):
    pass


class Gdb:
    """`gdb --interpreter=mi3` driven by MI commands or CLI commands (wrapped in -interpreter-exec)."""

    def __init__(self, *args: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self.controller = GdbController(["gdb", "--nx", "--quiet", "--interpreter=mi3", *args],
                                        time_to_check_for_additional_output_sec=0)
        self.transcript: list[str] = []
        self._pending: collections.deque[dict] = collections.deque()
        self._stops: list[dict] = []
        self._console: list[str] = []
        for cmd in ("-gdb-set mi-async on", "-gdb-set confirm off", "-gdb-set pagination off", "-gdb-set width 0",
                    "-gdb-set remotetimeout 10"):
            self.run(cmd)

    # ---- reading ----

    def _read(self, deadline: float) -> bool:
        """Move what gdb printed (until the deadline) into the pending queue; False on timeout."""
        stdout = self.controller.gdb_process.stdout
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ready, _, _ = select.select([stdout], [], [], remaining)
        if not ready:
            return False
        for record in self.controller.get_gdb_response(timeout_sec=0, raise_error_on_timeout=False):
            if record.get("type") == "console":
                self._console.append(record.get("payload") or "")
            self.transcript.append(f"<- {record.get('type')} {record.get('message') or ''} "
                                   f"{record.get('payload')!r}")
            self._pending.append(record)
        if self.controller.gdb_process.poll() is not None and not self._pending:
            raise GdbError("gdb exited\n" + self.transcript_text())
        return True

    def _next(self, deadline: float) -> dict:
        while not self._pending:
            if not self._read(deadline):
                raise GdbError("timed out waiting for gdb\n" + self.transcript_text())
        return self._pending.popleft()

    # ---- commands ----

    def run(self, cmd: str, *, timeout_s: float | None = None, check: bool = True) -> dict:
        """Send an MI command (or a CLI command, passed through -interpreter-exec) and wait for its result.

        Returns {"class": "done"|"running"|"error"|..., "payload": ..., "console": text printed meanwhile}."""
        if not cmd.startswith("-"):
            cmd = '-interpreter-exec console "%s"' % cmd.replace("\\", "\\\\").replace('"', '\\"')
        self.transcript.append(f"-> {cmd}")
        self.controller.write(cmd, read_response=False)
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        console: list[str] = []
        while True:
            record = self._next(deadline)
            if record["type"] in ("console", "log", "target"):
                console.append(record.get("payload") or "")
            elif record["type"] == "result":
                if record["message"] == "running":
                    self._stops.clear()         # stops seen before this resume are stale
                result = {"class": record["message"], "payload": record.get("payload"),
                          "console": "".join(console)}
                if check and record["message"] == "error":
                    raise GdbError(f"{cmd} failed: {record.get('payload')}\n" + self.transcript_text())
                return result
            elif record["type"] == "notify" and record["message"] == "stopped":
                self._stops.append(record)

    def console(self, cmd: str, **kw) -> str:
        """A CLI command's printed output."""
        return self.run(cmd, **kw)["console"]

    def wait_for_stop(self, reason: str | None = None, deadline: float | None = None, *,
                      timeout_s: float | None = None) -> dict:
        """The next `*stopped` record's payload; with `reason`, it must match (e.g. "breakpoint-hit").

        Waits until `deadline` (a time.monotonic() value), else `timeout_s`, else the session's timeout."""
        if deadline is None:
            deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while not self._stops:
            record = self._next(deadline)
            if record["type"] == "notify" and record["message"] == "stopped":
                self._stops.append(record)
        payload = self._stops.pop(0).get("payload") or {}
        if reason is not None and payload.get("reason") != reason:
            raise GdbError(f"expected stop {reason}, got {payload}\n" + self.transcript_text())
        return payload

    def console_text(self) -> str:
        """Everything gdb printed on its console so far, as the user would have seen it."""
        return "".join(self._console)

    def transcript_text(self, last: int = 80) -> str:
        return "\n".join(self.transcript[-last:])

    def exit(self) -> None:
        try:
            self.controller.exit()
        except Exception:  # noqa: BLE001 - best effort in fixture teardown
            pass


def is_listening(port: int) -> bool:
    """Whether some socket listens on 127.0.0.1:port (read from /proc/net/tcp: probing with connect() would
    itself be a gdb connection to the stub)."""
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":
                return True
    return False


def wait_listening(port: int, proc, timeout_s: float = 30.0) -> None:
    """Wait until the stub (km or gdbserver) listens on port; fail early if the process exits."""
    deadline = time.monotonic() + timeout_s
    while not is_listening(port):
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise GdbError(f"the server exited with {proc.returncode} before listening on {port}:\n{err}")
        if time.monotonic() > deadline:
            raise GdbError(f"nothing listens on port {port} after {timeout_s} s")
        # A short bounded wait on the process, not a sleep: returns at once if it exits.
        try:
            proc.wait(timeout=0.02)
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: still running, look again
            pass


# ---------------------------------------------------------------------------------------------------------
# End-to-end debuggees: km -g, or gdbserver as the reference the same expectations must hold against

km_only = pytest.mark.km_only           # labels the tests that have no gdbserver reference (never skips)
BACKENDS = ["km", "gdbserver"]
E2E_TIMEOUT_S = 30.0      # per gdb command: km is a Python VMM and the suite shares 2 cores


class Debuggee:
    """A payload stopped before its first instruction behind a gdb port (km -gPORT or gdbserver), and a gdb."""

    def __init__(self, backend: str, exe: Path, port: int, *, listen: bool = False, args: Sequence[str] = (),
                 env: dict[str, str] | None = None) -> None:
        self.backend, self.exe, self.port = backend, exe, port
        if backend == "km":
            options = ["--gdb_listen", f"-g{port}"] if listen else [f"-g{port}"]
            self.proc = spawn_km(*options, exe, *args, env=env)
        else:
            self.proc = subprocess.Popen(["gdbserver", "--once", f"127.0.0.1:{port}", str(exe), *args],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         env=dict(os.environ, **(env or {})))
        wait_listening(port, self.proc)
        self.gdb = Gdb(str(exe), timeout_s=E2E_TIMEOUT_S)

    def connect(self) -> None:
        self.gdb.run(f"-target-select remote 127.0.0.1:{self.port}", timeout_s=30)

    def reconnect(self) -> None:
        """A new gdb replaces one that vanished without detaching (killed: the connection just drops)."""
        self.gdb.controller.gdb_process.kill()
        self.gdb.exit()
        self.gdb = Gdb(str(self.exe), timeout_s=E2E_TIMEOUT_S)
        self.connect()

    def finish(self, timeout_s: float = 30) -> tuple[int, str, str]:
        """Wait for the server process; its exit status, stdout and stderr."""
        out, err = self.proc.communicate(timeout=timeout_s)
        return self.proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def diagnostics(self) -> str:
        """The gdb transcript and what the server printed on stderr so far (read without blocking)."""
        err = b""
        if self.proc.stderr is not None and not self.proc.stderr.closed:
            os.set_blocking(self.proc.stderr.fileno(), False)
            err = self.proc.stderr.read() or b""
        return (f"backend {self.backend}\n{self.gdb.transcript_text()}\n--- {self.backend} stderr ---\n"
                + err.decode(errors="replace")[-4000:])

    def close(self) -> None:
        self.gdb.exit()
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.communicate(timeout=10)
        except ValueError:      # stderr was switched to non-blocking and partly read: just reap
            self.proc.wait(timeout=10)


@pytest.fixture(params=BACKENDS)
def debug(request, payload, free_port):
    """debug(source="gdb_basic.c", toolchain="musl", args=()) -> a connected Debuggee, once per backend."""
    started: list[Debuggee] = []

    def start(source: str = "gdb_basic.c", toolchain: str = "musl", *, connect: bool = True,
              args: Sequence[str] = ()) -> Debuggee:
        d = Debuggee(request.param, payload(source, toolchain), free_port, args=args)
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
    """Break at location, continue, and return the `*stopped` payload."""
    d.gdb.run(f"-break-insert {location}")
    d.gdb.run("-exec-continue")
    return d.gdb.wait_for_stop(reason)


# ---------------------------------------------------------------------------------------------------------
# FakeControlTarget


@dataclass
class FakeControlTarget(StaticTarget):
    """A ControlTarget over plain values that keeps the contract's promises: resume() returns at once and a
    StopEvent follows through event_fd(); interrupt() always yields exactly one event; -g style start posts
    ENTRY; kill() posts TERMINATED; detach() clears every point and runs.

    Behaviour on resume is scripted by `on_resume(target, actions)`, which may post an event; the default
    stops at the first inserted sw/hw breakpoint (rip moved there), reports a step as STEP, and otherwise
    keeps "running" until interrupted."""

    memory: dict[int, bytearray] = field(default_factory=dict)    # writable (M/X packets land here)
    process_id: int = 100
    names: dict[int, str] = field(default_factory=dict)
    features: frozenset[str] = frozenset({"swbreak", "hwbreak", "watch", "step"})
    on_resume: Callable[["FakeControlTarget", Sequence[ResumeAction]], None] | None = None
    children: dict[int, "FakeControlTarget"] = field(default_factory=dict)    # forked_child(pid)

    def __post_init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        weakref.finalize(self, _close_fds, self._read_fd, self._write_fd)   # fakes are made by the hundred
        self._events: collections.deque[StopEvent] = collections.deque()
        self._lock = threading.Lock()
        self.running = False
        self.points: set[tuple[BreakpointKind, int, int]] = set()
        self.calls: list[tuple] = []          # every control call, for assertions
        self.last_stop: StopEvent | None = None

    # -- event plumbing --
    def post(self, event: StopEvent) -> None:
        with self._lock:
            self.running = False
            self._events.append(event)
            os.write(self._write_fd, b"e")

    def event_fd(self) -> int:
        return self._read_fd

    def next_event(self) -> StopEvent | None:
        with self._lock:
            if not self._events:
                return None
            os.read(self._read_fd, 1)
            event = self._events.popleft()
            self.last_stop = event
            return event

    # -- Target --
    def thread_name(self, tid: int) -> str:
        return self.names.get(tid, "")

    def _find(self, addr: int, size: int) -> tuple[bytearray, int]:
        for start, data in self.memory.items():
            if start <= addr and addr + size <= start + len(data):
                return data, addr - start
        raise GuestMemoryError(addr, size)

    def read_memory(self, addr: int, size: int) -> bytes:
        data, off = self._find(addr, size)
        return bytes(data[off:off + size])

    def mappings(self) -> Sequence[MemoryRegion]:
        return [MemoryRegion(s, s + len(d), "rwx") for s, d in sorted(self.memory.items())]

    def stop_event(self, tid: int) -> StopEvent:
        return self.last_stop or StopEvent(tid, StopReason.SIGNAL, SIGTRAP)

    def siginfo(self, tid: int) -> bytes:
        stop = self.last_stop
        if stop is None or not stop.signal:
            return b""
        # siginfo_t: si_signo, si_errno, si_code, pad, then the union (si_addr for faults) - 128 bytes.
        code = 128 if stop.reason is StopReason.INTERRUPT else 1   # SI_KERNEL / SEGV_MAPERR-like
        return struct.pack("<iiiiQ", stop.signal, 0, code, 0, 0xDEAD000).ljust(128, b"\0")

    # -- ControlTarget --
    def write_registers(self, tid: int, values) -> None:
        if tid not in self.regs:
            raise NoSuchThreadError(tid)
        self.calls.append(("write_registers", tid, dict(values)))
        self.regs[tid].update(values)

    def write_memory(self, addr: int, data: bytes) -> None:
        buf, off = self._find(addr, len(data))
        self.calls.append(("write_memory", addr, bytes(data)))
        buf[off:off + len(data)] = data

    def resume(self, actions: Sequence[ResumeAction]) -> None:
        self.calls.append(("resume", tuple(actions)))
        self.running = True
        if self.on_resume is not None:
            self.on_resume(self, actions)
            return
        first = self.threads()[0]
        steps = [a for a in actions if a.kind is ResumeKind.STEP]
        if steps:
            tid = steps[0].tid if steps[0].tid > 0 else first
            self.post(StopEvent(tid, StopReason.STEP, SIGTRAP))
            return
        for kind, addr, _ in sorted(self.points):
            if kind in (BreakpointKind.SOFTWARE, BreakpointKind.HARDWARE) and self.regs[first]["rip"] != addr:
                self.regs[first]["rip"] = addr
                reason = StopReason.BREAKPOINT if kind is BreakpointKind.SOFTWARE else StopReason.HW_BREAKPOINT
                self.post(StopEvent(first, reason, SIGTRAP))
                return

    def interrupt(self) -> None:
        self.calls.append(("interrupt",))
        self.post(StopEvent(self.threads()[0], StopReason.INTERRUPT, 2))

    def set_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        self.calls.append(("set_breakpoint", kind, addr, length))
        self.points.add((kind, addr, length))

    def clear_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        self.calls.append(("clear_breakpoint", kind, addr, length))
        self.points.discard((kind, addr, length))

    def supports(self) -> frozenset[str]:
        return self.features

    def report_events(self, kinds: frozenset[str]) -> None:
        self.calls.append(("report_events", kinds))

    def forked_child(self, pid: int) -> "FakeControlTarget":
        child = self.children[pid]
        self.calls.append(("forked_child", pid))
        return child

    def set_syscall_catch(self, numbers: frozenset[int] | None) -> None:
        self.calls.append(("set_syscall_catch", numbers))

    def hand_over(self, state: bytes) -> None:
        self.calls.append(("hand_over", state))

    def detach(self) -> None:
        self.calls.append(("detach",))
        self.points.clear()
        self.running = True

    def kill(self) -> None:
        self.calls.append(("kill",))
        self.post(StopEvent(self.threads()[0], StopReason.TERMINATED, 9))



def _close_fds(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


def elf_segments(path: str | Path) -> tuple[int, dict[int, bytearray]]:
    """(entry, {p_vaddr: bytes}) of an ELF's PT_LOAD segments, zero-filled to p_memsz and page-aligned, the
    way a loader would map them (for fakes that need real code and data)."""
    data = Path(path).read_bytes()
    entry, phoff = struct.unpack_from("<QQ", data, 24)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    segments: dict[int, bytearray] = {}
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _align = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize)
        if p_type != 1:
            continue
        start = p_vaddr & ~0xFFF
        end = (p_vaddr + p_memsz + 0xFFF) & ~0xFFF
        buf = bytearray(end - start)
        buf[p_vaddr - start:p_vaddr - start + p_filesz] = data[p_offset:p_offset + p_filesz]
        segments[start] = buf
    # Merge segments that share pages (text and data may abut) so reads across them work.
    merged: dict[int, bytearray] = {}
    for start in sorted(segments):
        for mstart, mbuf in merged.items():
            if mstart + len(mbuf) >= start:
                overlap = mstart + len(mbuf) - start
                seg = segments[start]
                for j in range(min(overlap, len(seg))):
                    mbuf[start - mstart + j] |= seg[j]
                mbuf += seg[overlap:]
                break
        else:
            merged[start] = segments[start]
    return entry, merged


STACK_TOP = 0x7FFF_F000_0000
STACK_SIZE = 0x10000


def fake_from_elf(path: str | Path, tids: Sequence[int] = (100,), **kw) -> FakeControlTarget:
    """A stopped 'process' with the ELF's memory, rip at the entry point, a mapped stack, and recognisable
    values in the registers gdb tests look at (xmm0, ymm0h, st0, fs_base)."""
    entry, memory = elf_segments(path)
    memory[STACK_TOP - STACK_SIZE] = bytearray(STACK_SIZE)
    regs = {}
    for n, tid in enumerate(tids):
        r = zero_registers()
        r.update(rip=entry, rsp=STACK_TOP - 0x100 - 0x1000 * n, rbp=0, rax=0x1234 + n, cs=0x33, ss=0x2B,
                 fs_base=0x7000_0000 + n, xmm0=0x00112233445566778899AABBCCDDEEFF,
                 ymm0h=0xFFEEDDCCBBAA99887766554433221100,
                 st0=0x3FFF8000000000000000,                 # 1.0 as an 80-bit extended double
                 fstat=0x3800, ftag=0x3FFF)                  # TOP = 7: st0 is physical register 7, valid
        regs[tid] = r
    return FakeControlTarget(regs=regs, memory=memory, exe=str(path), **kw)
