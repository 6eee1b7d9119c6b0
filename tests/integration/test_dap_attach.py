"""kdbg-dap `attach` to a `km --gdb_listen -g<PORT>` already running: breakpoints, evaluate, detach or run to exit.

Against the gdbserver stand-in (see the user property "km"), --gdb_listen waits at the entry point instead of
running at once, and a detached payload's exit status is not known to it, so that check is real-km only.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading

import pytest

from harness.dap import km_under_test, marker_path
from harness.km import km_env
from harness.markers import line_of

SRC = "dap_basic.c"


class ListeningKm:
    """`km --gdb_listen -g<port> dap_basic.km spin`, its stdout collected, killed at teardown."""

    def __init__(self, program: str, port: int) -> None:
        km_path, self.label = km_under_test()
        self.proc = subprocess.Popen([*km_path, "--gdb_listen", f"-g{port}", program, "spin"], env=km_env(),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)    # its own group: the stand-in has children
        self.stdout = b""
        self.stderr = b""
        self.ready = threading.Event()
        threading.Thread(target=self._pump, args=("stdout",), daemon=True).start()
        threading.Thread(target=self._pump, args=("stderr",), daemon=True).start()

    def _pump(self, name: str) -> None:
        for line in getattr(self.proc, name):
            setattr(self, name, getattr(self, name) + line)
            if b"GdbServerStubStarted" in line or b"answer=" in line:
                self.ready.set()
        self.ready.set()

    def wait_ready(self) -> None:
        assert self.ready.wait(30) and self.proc.poll() is None, f"km --gdb_listen: {self.stderr.decode()}"

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


@pytest.fixture
def listening(payload):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    km = ListeningKm(str(payload(SRC, "musl")), port)
    km.port, km.program = port, str(payload(SRC, "musl"))
    km.wait_ready()
    yield km
    km.kill()


def attach_and_stop_in_spin(client, km) -> int:
    client.start("attach", {"program": km.program, "address": f"localhost:{km.port}"},
                 {marker_path(SRC): [{"line": line_of(SRC, "spin_body")}]})
    stop = client.wait_event("stopped")
    assert stop["reason"] == "breakpoint", client.dump()
    frame = client.top_frame(stop["threadId"])
    assert (frame["name"], frame["line"]) == ("main", line_of(SRC, "spin_body"))
    client.call("evaluate", {"expression": "spin_done = 1", "frameId": frame["id"], "context": "repl"})
    client.call("setBreakpoints", {"source": {"path": marker_path(SRC)}, "breakpoints": []})
    return stop["threadId"]


def test_attach_then_detach_leaves_the_payload_running(dap, listening):
    client = dap()
    attach_and_stop_in_spin(client, listening)
    client.call("disconnect", {"terminateDebuggee": False})
    status = listening.proc.wait(30)
    assert b"spin done\n" in listening.stdout, listening.stderr
    if listening.label == "real km":
        assert status == 7, listening.stderr


def test_attach_and_run_to_exit(dap, listening):
    client = dap()
    tid = attach_and_stop_in_spin(client, listening)
    client.call("continue", {"threadId": tid})
    assert client.wait_event("exited")["exitCode"] == 7, client.dump()
    client.wait_event("terminated")
    assert listening.proc.wait(30) == 7


def test_detach_while_running_then_attach_again(dap, listening):
    if listening.label != "real km":
        pytest.skip("gdbserver --once (the stand-in) serves a single gdb")
    first = dap()
    first.start("attach", {"program": listening.program, "address": f"localhost:{listening.port}"})
    first.call("disconnect", {"terminateDebuggee": False})     # the payload is running: interrupt, then detach
    assert listening.proc.poll() is None, listening.stderr
    second = dap()
    second.start("attach", {"program": listening.program, "address": f"localhost:{listening.port}",
                            "stopOnEntry": True})
    stop = second.wait_event("stopped")
    assert stop["reason"] == "entry", second.dump()
    second.call("evaluate", {"expression": "spin_done = 1", "context": "repl"})
    second.call("continue", {"threadId": stop["threadId"]})
    assert second.wait_event("exited")["exitCode"] == 7, second.dump()
    assert listening.proc.wait(30) == 7
