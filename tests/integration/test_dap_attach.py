"""kdbg-dap `attach` to a `km --gdb_listen -g<PORT>` already running: breakpoints, evaluate, detach or run to exit.

Against the gdbserver stand-in (see the user property "km"), --gdb_listen waits at the entry point instead of
running at once, and a detached payload's exit status is not known to it, so that check is real-km only.
"""
from __future__ import annotations

import pytest

from harness.dap import WatchedServer, km_under_test, marker_path
from harness.markers import line_of

SRC = "dap_basic.c"


@pytest.fixture
def listening(payload, free_port):
    """`km --gdb_listen -g<port> dap_basic.km spin`, running; killed at teardown."""
    km_path, label = km_under_test()
    program = str(payload(SRC, "musl"))
    km = WatchedServer([*km_path, "--gdb_listen", f"-g{free_port}", program, "spin"], "GdbServerStubStarted|answer=")
    km.label, km.port, km.program = label, free_port, program
    try:
        km.wait_started(30)
        yield km
    finally:
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
    status = listening.finish(30)
    assert "spin done\n" in listening.stdout, listening.stderr
    if listening.label == "real km":
        assert status == 7, listening.stderr


def test_attach_and_run_to_exit(dap, listening):
    client = dap()
    tid = attach_and_stop_in_spin(client, listening)
    client.call("continue", {"threadId": tid})
    assert client.wait_event("exited")["exitCode"] == 7, client.dump()
    client.wait_event("terminated")
    assert listening.finish(30) == 7


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
    assert listening.finish(30) == 7
