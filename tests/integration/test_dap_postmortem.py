"""kdbg-dap on crashes: a live SIGSEGV stops as an exception (signals are exception filters), and a kmcore
opens post-mortem at the crash frame. The core comes from `km --coredump=FILE` with the real km, or from
`gdb -batch -ex run -ex gcore` of the same payload run natively before km works (user property "core")."""
from __future__ import annotations

import base64
import subprocess

import pytest

from harness.dap import km_under_test, marker_path
from harness.km import run_km
from harness.markers import line_of

SRC = "dap_crash.c"


@pytest.fixture
def program(payload) -> str:
    return str(payload(SRC, "musl"))


@pytest.fixture
def kmcore(program, tmp_path, request) -> str:
    core = tmp_path / "kmcore"
    if km_under_test()[1] == "real km":
        done = run_km(f"--coredump={core}", program, timeout=60)
        assert done.returncode == 139, done.stderr.decode()
        request.node.user_properties.append(("core", "km --coredump"))
    else:
        subprocess.run(["gdb", "-q", "-nx", "-batch", "-ex", "run", "-ex", f"gcore {core}", program],
                       capture_output=True, timeout=60, check=True)
        request.node.user_properties.append(("core", "gdb gcore"))
    assert core.is_file()
    return str(core)


def test_live_crash_stops_as_an_exception(dap, program, tmp_path):
    client = dap()
    client.start("launch", {"program": program, "kmPath": client.km_path, "cwd": str(tmp_path)})
    stop = client.wait_event("stopped")
    assert (stop["reason"], stop["text"]) == ("exception", "SIGSEGV"), client.dump()
    frame = client.top_frame(stop["threadId"])
    assert (frame["name"], frame["line"]) == ("deref", line_of(SRC, "crash"))
    info = client.call("exceptionInfo", {"threadId": stop["threadId"]})
    assert info["exceptionId"] == "SIGSEGV" and info["breakMode"] == "always"
    client.call("continue", {"threadId": stop["threadId"]})
    assert client.wait_event("exited")["exitCode"] == 128 + 11, client.dump()


def test_unselected_signal_filter_lets_the_payload_die(dap, program, tmp_path):
    client = dap()
    client.call("initialize", {"adapterID": "km"})
    client.call("launch", {"program": program, "kmPath": client.km_path, "cwd": str(tmp_path)})  # kmcore there
    client.wait_event("initialized")
    client.call("setExceptionBreakpoints", {"filters": []})
    client.call("configurationDone")
    assert client.wait_event("exited")["exitCode"] == 128 + 11, client.dump()
    assert not [e for e in client.all_events if e["event"] == "stopped"]
    assert "about to crash\n" in client.output("stdout")


def test_kmcore_post_mortem_shows_the_crash_frame(dap, program, kmcore):
    client = dap()
    client.start("launch", {"program": program, "coreFile": kmcore})
    stop = client.wait_event("stopped")
    assert (stop["reason"], stop["text"]) == ("exception", "SIGSEGV"), client.dump()
    frames = client.call("stackTrace", {"threadId": stop["threadId"]})["stackFrames"]
    assert [(f["name"], f["line"]) for f in frames] == [
        ("deref", line_of(SRC, "crash")), ("walk", line_of(SRC, "walk")), ("main", frames[2]["line"])], client.dump()
    assert frames[0]["source"]["path"] == marker_path(SRC)
    args = client.call("scopes", {"frameId": frames[0]["id"]})["scopes"][1]["variablesReference"]
    assert [(v["name"], v["value"]) for v in client.call("variables", {"variablesReference": args})["variables"]] \
        == [("n", "0x0")]
    head = client.call("evaluate", {"expression": "head", "frameId": frames[1]["id"], "context": "watch"})
    rows = client.call("variables", {"variablesReference": head["variablesReference"]})["variables"]
    fields = {v["name"]: v["value"] for v in rows}
    assert fields == {"value": "2", "next": "0x0"}, client.dump()
    assert client.call("exceptionInfo", {"threadId": stop["threadId"]})["exceptionId"] == "SIGSEGV"
    memory = client.call("readMemory", {"memoryReference": head["memoryReference"], "count": 4})
    assert base64.b64decode(memory["data"]) == (2).to_bytes(4, "little")
    listed = client.call("disassemble", {"memoryReference": frames[0]["instructionPointerReference"],
                                         "instructionCount": 1})["instructions"]
    assert listed[0]["line"] == line_of(SRC, "crash")
    refused = client.request("continue", {"threadId": stop["threadId"]})
    assert not refused["success"] and "\n" not in refused["message"], client.dump()
    client.call("disconnect", {})
