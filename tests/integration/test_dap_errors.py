"""kdbg-dap's failures are one-line failed responses naming the problem, and the session keeps answering."""
from __future__ import annotations

import socket
import time


def failure(client, command: str, arguments: dict) -> str:
    reply = client.request(command, arguments, timeout_s=30)
    assert not reply["success"], client.dump()
    assert "\n" not in reply["message"] and reply["body"]["error"]["showUser"]
    return reply["message"]


def test_launch_failures_name_the_problem(dap, program, tmp_path):
    client = dap()
    client.call("initialize", {"adapterID": "km"})
    assert failure(client, "launch", {"kmPath": client.km_path}) == "invalid program: missing"
    assert failure(client, "launch", {"program": str(tmp_path / "nope.km"), "kmPath": client.km_path}) == \
        f"invalid program: {tmp_path / 'nope.km'}: no such file"
    assert failure(client, "launch", {"program": program, "kmPath": "/nonexistent/km"}) == \
        "km not found: /nonexistent/km"
    assert failure(client, "launch", {"program": program, "kmPath": client.km_path, "gdbPath": "no-such-gdb"}) == \
        "gdb not found: no-such-gdb"
    assert failure(client, "launch", {"program": program, "kmPath": client.km_path, "args": "x"}) == \
        "invalid args: must be a list of strings"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert failure(client, "launch", {"program": program, "kmPath": client.km_path, "port": port}) == \
            f"gdb port {port}: address already in use"
    assert failure(client, "frobnicate", {}) == "unsupported request: frobnicate"
    assert client.call("threads") == {"threads": []}
    assert failure(client, "stackTrace", {"threadId": 1}) == "no debuggee: launch or attach first"
    # after all that, a good launch still works in the same session
    client.call("launch", {"program": program, "kmPath": client.km_path})
    client.wait_event("initialized")
    client.call("configurationDone")
    assert client.wait_event("exited")["exitCode"] == 7


def test_km_that_exits_before_its_stub_starts(dap, program, tmp_path):
    fake_km = tmp_path / "fake-km"
    fake_km.write_text("#!/bin/sh\necho 'km: gdb port 1: permission denied' >&2\nexit 1\n")
    fake_km.chmod(0o755)
    client = dap()
    client.call("initialize", {"adapterID": "km"})
    assert failure(client, "launch", {"program": program, "kmPath": str(fake_km)}) == \
        "km exited before its gdb stub started: km: gdb port 1: permission denied"


def test_attach_to_nothing_fails_quickly(dap, program, free_port):
    port = free_port
    client = dap()
    client.call("initialize", {"adapterID": "km"})
    started = time.monotonic()
    message = failure(client, "attach", {"program": program, "address": f"localhost:{port}"})
    assert message.startswith(f"localhost:{port}: Connection") and time.monotonic() - started < 15, message
    assert failure(client, "attach", {"program": program, "address": "nonsense"}) == \
        "invalid address: 'nonsense' is not host:port"
