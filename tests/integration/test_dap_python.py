"""A Python program through kdbg-dap: the launch configuration of issue 14 starts debugpy's adapter and
`km <python> -m debugpy --connect ... --wait-for-client app.py` and relays the session to the adapter; a breakpoint in
the .py file, a local and a global, an evaluated expression (watch and debug console), a step over and out, the
thread list, exception breakpoints on `raise` and on an uncaught exception, stopOnEntry, the exit code, and the
payload's output as km forwarded it. Also `attach` to a `km <python> -m debugpy --listen` already running, and the
post-mortem view of a kmcore of a Python program that crashed in C.

The interpreter runs in km (the program prints uname's kernel version, which km answers with its own name).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from harness.dap import marker_path
from harness.km import km_env, run_km
from harness.markers import line_of
from harness.python_dbg import py_bt_missing
from kdbg.dap.python import debugpy_home, launch_argv

SRC = "dap_app.py"
CRASH = "py_frames.py"                        # `crash`: ctypes reads address 8
PYTHON = "/usr/bin/python3"
pytestmark = pytest.mark.skipif(not os.path.exists(PYTHON), reason=f"{PYTHON} not installed")


IN_KM = "kernel=km "                          # os.uname().version under km: "km <version> (kdbg)"


def locals_and_globals(client, frame_id: int) -> tuple[dict[str, str], dict[str, str]]:
    scopes = {s["name"]: s["variablesReference"] for s in client.call("scopes", {"frameId": frame_id})["scopes"]}
    rows = [{v["name"]: v["value"] for v in client.call("variables", {"variablesReference": scopes[name]})["variables"]}
            for name in ("Locals", "Globals")]
    return rows[0], rows[1]


def test_launch_breakpoint_variables_evaluate_step_exception_exit(dap, tmp_path):
    client = dap()
    client.start("launch", {"name": "km: Python app.py", "type": "km", "request": "launch",
                            "program": marker_path(SRC), "args": [], "python": PYTHON, "stopOnEntry": False,
                            "kmPath": client.km_path, "cwd": str(tmp_path)},     # a workspace, not km's tree
                 {marker_path(SRC): [{"line": line_of(SRC, "py_add")}]}, exception_filters=["raised"])
    filters = [f["filter"] for f in client.wait_event("capabilities")["capabilities"]["exceptionBreakpointFilters"]]
    assert {"raised", "uncaught"} <= set(filters), client.dump()

    hit = client.wait_event("stopped")
    assert hit["reason"] == "breakpoint", client.dump()
    tid = hit["threadId"]
    frames = client.call("stackTrace", {"threadId": tid})["stackFrames"]
    assert [(f["name"], f["line"]) for f in frames[:2]] == [("add", line_of(SRC, "py_add")),
                                                            ("main", line_of(SRC, "py_call"))], client.dump()
    assert frames[0]["source"]["path"] == marker_path(SRC)
    local, global_ = locals_and_globals(client, frames[0]["id"])
    assert (local["a"], local["b"]) == ("3", "4") and global_["COUNTER"] == "5", client.dump()
    assert client.call("evaluate", {"expression": "a * b + COUNTER", "frameId": frames[0]["id"],
                                    "context": "watch"})["result"] == "17"

    client.call("next", {"threadId": tid})
    assert client.wait_event("stopped")["reason"] == "step"
    frame = client.call("stackTrace", {"threadId": tid})["stackFrames"][0]
    assert frame["line"] == line_of(SRC, "py_return") and locals_and_globals(client, frame["id"])[0]["total"] == "7"
    assert [t["name"] for t in client.call("threads")["threads"]] == ["MainThread"], client.dump()

    client.call("stepOut", {"threadId": tid})
    assert client.wait_event("stopped")["reason"] == "step"
    frame = client.call("stackTrace", {"threadId": tid})["stackFrames"][0]
    assert (frame["name"], frame["line"]) == ("main", line_of(SRC, "py_call")), client.dump()
    assert client.call("evaluate", {"expression": "[os.getpid() > 0, sys.argv[0].endswith('dap_app.py')]",
                                    "frameId": frame["id"], "context": "repl"})["result"] == "[True, True]"

    client.call("continue", {"threadId": tid})
    raised = client.wait_event("stopped")
    assert (raised["reason"], raised["text"]) == ("exception", "ValueError"), client.dump()
    assert client.call("stackTrace", {"threadId": tid})["stackFrames"][0]["line"] == line_of(SRC, "py_raise")
    assert client.call("exceptionInfo", {"threadId": tid})["description"] == "n is 2"

    client.call("setExceptionBreakpoints", {"filters": []})
    client.call("continue", {"threadId": tid})
    assert client.wait_event("exited")["exitCode"] == 3, client.dump()
    client.wait_event("terminated")
    assert f"answer=7 counter=12 {IN_KM}" in client.output("stdout"), client.dump()
    assert "caught n is 2\n" in client.output("stderr"), client.dump()
    exits = [e for e in client.all_events if e["event"] == "exited"]
    assert len(exits) == 1, client.dump()                     # km's, not also debugpy's


def test_stop_on_entry_then_the_clients_breakpoint(dap, tmp_path):
    """debugpy stops on entry only for programs its adapter launched; kdbg-dap's hidden breakpoint on the first
    statement stands in, and the client's own breakpoints of that file are what remains after it."""
    client = dap()
    client.start("launch", {"type": "km", "request": "launch", "program": marker_path(SRC), "python": PYTHON,
                            "stopOnEntry": True, "kmPath": client.km_path, "cwd": str(tmp_path)},
                 {marker_path(SRC): [{"line": line_of(SRC, "py_add")}]}, exception_filters=[])
    replies = [m for m in client.transcript if '"command": "setBreakpoints"' in m and '"type": "response"' in m]
    assert replies and replies[0].count('"verified"') == 1, client.dump()          # the client's one breakpoint
    entry = client.wait_event("stopped", timeout_s=60)
    frame = client.call("stackTrace", {"threadId": entry["threadId"]})["stackFrames"][0]
    assert (entry["reason"], frame["name"], frame["line"]) == ("entry", "<module>", 1), client.dump()
    client.call("continue", {"threadId": entry["threadId"]})
    hit = client.wait_event("stopped", timeout_s=60)
    assert (hit["reason"], client.top_frame(hit["threadId"])["line"]) == ("breakpoint", line_of(SRC, "py_add"))
    client.call("continue", {"threadId": hit["threadId"]})
    assert client.wait_event("exited", timeout_s=60)["exitCode"] == 3, client.dump()


def test_uncaught_exception_stops_then_ends_the_program_as_python_does(dap, tmp_path):
    client = dap()
    client.start("launch", {"type": "km", "request": "launch", "program": marker_path(SRC), "args": ["uncaught"],
                            "python": PYTHON, "kmPath": client.km_path, "cwd": str(tmp_path)},
                 exception_filters=["uncaught"])
    stop = client.wait_event("stopped", timeout_s=60)
    assert (stop["reason"], stop["text"]) == ("exception", "ValueError"), client.dump()
    frames = client.call("stackTrace", {"threadId": stop["threadId"]})["stackFrames"]
    assert [(f["name"], f["line"]) for f in frames[:2]] == [("fail", line_of(SRC, "py_raise")),
                                                            ("<module>", line_of(SRC, "py_uncaught"))], client.dump()
    assert client.call("exceptionInfo", {"threadId": stop["threadId"]})["breakMode"] == "unhandled"
    client.call("continue", {"threadId": stop["threadId"]})
    assert client.wait_event("exited", timeout_s=60)["exitCode"] == 1, client.dump()
    assert "ValueError: n is 5" in client.output("stderr"), client.dump()


def test_attach_to_a_program_waiting_for_debugpy(dap, free_port, tmp_path):
    program = marker_path(SRC)
    home = debugpy_home()
    argv = launch_argv([sys.executable, "-m", "monitor.cli", "--putenv", f"PYTHONPATH={home}"], PYTHON, free_port,
                       program, [])
    waiting = subprocess.Popen(argv, env=km_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL)
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.extend(waiting.stdout), daemon=True)
    reader.start()
    try:
        client = dap()
        client.start("attach", {"name": "km: attach Python", "type": "km", "request": "attach", "python": PYTHON,
                                "address": f"127.0.0.1:{free_port}"},
                     {program: [{"line": line_of(SRC, "py_add")}]})
        hit = client.wait_event("stopped", timeout_s=60)
        assert hit["reason"] == "breakpoint", client.dump()
        frame = client.call("stackTrace", {"threadId": hit["threadId"]})["stackFrames"][0]
        assert (frame["name"], frame["line"]) == ("add", line_of(SRC, "py_add"))
        client.call("continue", {"threadId": hit["threadId"]})
        client.wait_event("terminated", timeout_s=60)
        assert waiting.wait(30) == 3
        reader.join(10)
        assert f"answer=7 counter=12 {IN_KM}".encode() in b"".join(output)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
        subprocess.run(["rm", "-rf", home], check=False)


def test_kmcore_of_a_python_crash_in_c_post_mortem(dap, tmp_path):
    """A segfault in C code under Python frames (ctypes): km's kmcore opens post-mortem with the interpreter's
    native frames; where gdb has CPython's extension, the console names the Python frames (py-bt)."""
    kmcore = tmp_path / "kmcore"
    done = run_km(f"--coredump={kmcore}", PYTHON, marker_path(CRASH), "crash", timeout=120)
    assert done.returncode == 128 + 11, done.stderr.decode()
    client = dap()
    client.start("launch", {"program": PYTHON, "coreFile": str(kmcore)})
    stop = client.wait_event("stopped", timeout_s=60)
    assert (stop["reason"], stop["text"]) == ("exception", "SIGSEGV"), client.dump()
    names = [f["name"] for f in client.call("stackTrace", {"threadId": stop["threadId"]}, timeout_s=60)["stackFrames"]]
    assert "_ctypes_callproc" in names and "_PyEval_EvalFrameDefault" in names and "Py_RunMain" in names, names
    if py_bt_missing() is None:
        client.wait_output(f'line {line_of(CRASH, "py_crash")}, in inner', timeout_s=60)
        console = client.output("console")
        assert "Python frames (gdb's py-bt)" in console and f'line {line_of(CRASH, "py_outer")}, in outer' in console
    client.call("disconnect", {})
