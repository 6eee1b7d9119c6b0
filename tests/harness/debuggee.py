"""End-to-end debuggees: a payload behind `km -g` or, as the reference the same expectations must hold against,
native gdbserver, with a gdb attached (Debuggee), the `debug` fixture over both, and the helpers tests share."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Sequence

import pytest

from .gdb import E2E_TIMEOUT_S, Gdb, wait_listening
from .km import KM, km_env

km_only = pytest.mark.km_only           # labels the tests that have no gdbserver reference (never skips)
BACKENDS = ["km", "gdbserver"]


SERVERS = {"gdbserver": ["gdbserver", "--once"], "lldb-server": ["lldb-server", "gdbserver"]}   # besides km


def start_server(backend: str, exe: str | Path, port: int, *args: str, km_options: Sequence[str] = (),
                 env: dict[str, str] | None = None, timeout_s: float = 30.0, **popen: Any) -> subprocess.Popen:
    """`exe ARGS` behind a gdb port on 127.0.0.1:port (stopped before its first instruction, unless a km option
    such as --gdb_listen says otherwise), returned once the port listens: km (`km_options`, then -gPORT) or a
    SERVERS reference. stdout and stderr are pipes unless `popen` says otherwise. A server that exits first or
    does not listen in time fails the test, killed."""
    if backend == "km":
        argv, full_env = [*KM, *map(str, km_options), f"-g{port}", str(exe), *args], km_env(env)
    else:
        assert not km_options, f"{backend} takes no km options"
        argv, full_env = [*SERVERS[backend], f"127.0.0.1:{port}", str(exe), *args], dict(os.environ, **(env or {}))
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    proc = subprocess.Popen(argv, env=full_env, **popen)
    try:
        wait_listening(port, proc, timeout_s)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        raise
    return proc


def stop_server(proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """The end of a start_server process in a test's `finally`: killed if it still runs, reaped, its pipes read."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=timeout_s)


class Debuggee:
    """A payload stopped before its first instruction behind a gdb port (km -gPORT or gdbserver), and a gdb."""

    def __init__(self, backend: str, exe: Path, port: int, *, listen: bool = False, args: Sequence[str] = (),
                 env: dict[str, str] | None = None) -> None:
        self.backend, self.exe, self.port = backend, exe, port
        self.proc = start_server(backend, exe, port, *args, km_options=["--gdb_listen"] if listen else [], env=env)
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


def interrupt_past(d: Debuggee, location: str) -> dict:
    """Run to `location` (in a loop or a blocking call), drop the breakpoint, continue, then interrupt as gdb's
    Ctrl-C does: the SIGINT stop's `*stopped` payload."""
    run_to(d, location)
    d.gdb.run("-break-delete")
    d.gdb.run("-exec-continue")
    d.gdb.run("-exec-interrupt")
    stop = d.gdb.wait_for_stop("signal-received")
    assert stop["signal-name"] == "SIGINT", d.diagnostics()
    return stop


def run_to_exit(d: Debuggee, exit_code: int = 0) -> tuple[int, str, str]:
    """Continue to the payload's exit as gdb reports it (exited-normally, or `exit_code`, which gdb prints in
    octal), then gdb goes: the server's status (km's is the payload's), stdout and stderr."""
    d.gdb.run("-exec-continue")
    stop = d.gdb.wait_for_stop("exited" if exit_code else "exited-normally")
    assert not exit_code or stop["exit-code"] == f"0{exit_code:o}", d.diagnostics()
    d.gdb.exit()
    return d.finish()


def basic_runs_to_its_end(d: Debuggee) -> None:
    """gdb_basic.c, stopped with no breakpoint left, continued to its exit as a user would see it: gdb reports
    exit code 3, and the payload printed counter=42 (the session still drives the payload correctly)."""
    status, out, err = run_to_exit(d, 3)
    assert status == 3 and "counter=42" in out, err
