"""kdbg-dap and a payload that forks: with `followForks` the adapter sends the `startDebugging` reverse request and
the client (tests/harness/dap.py, doing what VS Code does) opens a second session, attached to the forked child's
own km stub; the breakpoints the user set reach the child through that session. Without the option the child runs
on undebugged and its output still arrives. The reference for the child's stop is gdb's own: a native gdb
following the child (`set follow-fork-mode child`) on the same program.
"""
from __future__ import annotations

import os
import re
import signal
import select
import subprocess

import pytest

from harness.dap import DapFailure, marker_path
from harness.markers import line_of

SRC = "dap_fork.c"
NATIVE_LINES = ["child computes 42", "parent saw child exit 7"]


@pytest.fixture(scope="module")
def fork_program(payload) -> str:
    return str(payload(SRC, "musl"))


@pytest.fixture(scope="module")
def native(fork_program):
    run = subprocess.run([fork_program], capture_output=True, text=True, timeout=60)
    assert run.returncode == 3 and run.stdout.splitlines() == NATIVE_LINES, run
    return run


def _child_breakpoint() -> dict[str, list[dict]]:
    return {marker_path(SRC): [{"line": line_of(SRC, "child_only")}]}


def _launch(client, program: str, **config) -> None:
    client.start("launch", {"program": program, "kmPath": client.km_path, **config}, _child_breakpoint())


def test_a_forked_child_opens_a_session_that_stops_at_its_breakpoint(dap, fork_program, native):
    parent = dap()
    _launch(parent, fork_program, followForks=True)
    ask = parent.wait_reverse("startDebugging", timeout_s=60)["arguments"]
    config = ask["configuration"]
    assert ask["request"] == "attach" and config["request"] == "attach" and config["type"] == "km", parent.dump()
    assert config["program"] == fork_program and config["forkedChild"]["pid"] > 0, config

    child = parent.wait_child()
    process = child.wait_event("process")
    assert process["systemProcessId"] == config["forkedChild"]["pid"], child.dump()
    hit = child.wait_event("stopped", timeout_s=60)
    assert hit["reason"] == "breakpoint", child.dump()
    frames = child.call("stackTrace", {"threadId": hit["threadId"]})["stackFrames"]
    assert [(f["name"], f["line"]) for f in frames] == [("child_only", line_of(SRC, "child_only")),
                                                        ("main", line_of(SRC, "call_child_only"))], child.dump()
    assert child.locals_of(frames[1]["id"]).keys() >= {"p"}                  # main's locals, in the child
    args_ref = next(s for s in child.call("scopes", {"frameId": frames[0]["id"]})["scopes"]
                    if s["name"] == "Arguments")["variablesReference"]
    assert {v["name"]: v["value"] for v in child.call("variables", {"variablesReference": args_ref})["variables"]} \
        == {"x": "21"}
    assert not any(e["event"] == "stopped" for e in parent.all_events), parent.dump()   # the parent never stops

    placed = child.call("setBreakpoints", {"source": {"path": marker_path(SRC)},     # set in the child's session
                                           "breakpoints": [{"line": line_of(SRC, "child_ret")}]})["breakpoints"]
    child.call("continue", {"threadId": hit["threadId"]})
    again = child.wait_event("stopped", timeout_s=60)
    assert again.get("hitBreakpointIds") == [placed[0]["id"]], child.dump()
    assert child.locals_of(child.top_frame(again["threadId"])["id"])["doubled"]["value"] == "42", child.dump()
    child.call("continue", {"threadId": again["threadId"]})
    assert child.wait_event("exited", timeout_s=60)["exitCode"] == 7, child.dump()
    child.wait_event("terminated")
    assert parent.wait_event("exited", timeout_s=60)["exitCode"] == 3, parent.dump()
    parent.wait_event("terminated")
    assert parent.output("stdout").splitlines() == native.stdout.splitlines(), parent.dump()
    assert parent.output("stderr") == "", parent.dump()          # km's talk about the waiting child is not output


def test_without_follow_forks_the_child_runs_on_undebugged(dap, fork_program, native):
    parent = dap()
    _launch(parent, fork_program)
    assert parent.wait_event("exited", timeout_s=60)["exitCode"] == 3, parent.dump()
    parent.wait_event("terminated")
    assert parent.output("stdout").splitlines() == native.stdout.splitlines(), parent.dump()
    assert parent.reverse_requests == [] and not any(e["event"] == "stopped" for e in parent.all_events)


def test_a_child_that_exited_before_its_session_is_a_one_line_error(dap, fork_program):
    """The child dies (killed here) between the fork and its session's attach: the attach fails in one line naming
    it, the client's refusal reaches the parent adapter, and the parent session goes on to its own exit."""
    parent = dap(start_children=False)
    _launch(parent, fork_program, followForks=True)
    reverse = parent.wait_reverse("startDebugging", timeout_s=60)
    pid = reverse["arguments"]["configuration"]["forkedChild"]["pid"]
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(DapFailure) as failed:
        parent.open_child(reverse)
    first = str(failed.value).splitlines()[0]
    assert first == f"attach failed: forked child {pid}: it exited before its session started", first
    assert parent.wait_event("exited", timeout_s=60)["exitCode"] == 3, parent.dump()
    assert parent.output("stdout").splitlines() == ["parent saw child killed by signal 9"], parent.dump()
    parent.wait_output(f"kdbg-dap: forked child {pid}: the client did not start its session ({first}); it has ended")


def test_native_gdb_following_the_child_stops_there_too(fork_program):
    """The expectation is gdb's own: gdb following the child natively stops at the same line, same stack."""
    line = line_of(SRC, "child_only")
    gdb = subprocess.run(["gdb", "-q", "-nx", "-batch", "-ex", "set follow-fork-mode child",
                          "-ex", f"break {SRC}:{line}", "-ex", "run", "-ex", "bt", "-ex", "continue", fork_program],
                         capture_output=True, text=True, timeout=120)
    frames = re.findall(r"^#\d+\s+(?:0x\w+ in )?(\w+) \(.*?\) at .*?:(\d+)$", gdb.stdout, re.M)
    assert frames == [("child_only", str(line)), ("main", str(line_of(SRC, "call_child_only")))], gdb.stdout
    assert "exited with code 07" in gdb.stdout, gdb.stdout


def test_a_child_session_the_client_refuses_runs_on_undebugged(dap, fork_program, native):
    """A client that answers startDebugging with a failure: the adapter releases the waiting child (a gdb attaches
    and detaches), so it runs on, and nothing of its output or of the parent's is lost."""
    parent = dap(start_children=False)
    _launch(parent, fork_program, followForks=True)
    reverse = parent.wait_reverse("startDebugging", timeout_s=60)
    pid = reverse["arguments"]["configuration"]["forkedChild"]["pid"]
    parent.answer(reverse, False, "the user cancelled")
    assert parent.wait_event("exited", timeout_s=60)["exitCode"] == 3, parent.dump()
    assert parent.output("stdout").splitlines() == native.stdout.splitlines(), parent.dump()
    assert (f"kdbg-dap: forked child {pid}: the client did not start its session (the user cancelled); it runs on "
            "undebugged") in parent.output("console"), parent.dump()


def test_stopping_the_launch_ends_a_child_still_waiting_for_its_session(dap, fork_program):
    """The user stops the launch before the client answered startDebugging: the child, which has not run an
    instruction of its own, ends with the parent instead of waiting for a debugger for ever."""
    parent = dap(start_children=False)
    _launch(parent, fork_program, followForks=True)
    pid = parent.wait_reverse("startDebugging", timeout_s=60)["arguments"]["configuration"]["forkedChild"]["pid"]
    child = os.pidfd_open(pid)                  # readable once the process has ended
    try:
        parent.call("disconnect", {"terminateDebuggee": True})
        assert select.select([child], [], [], 30)[0], parent.dump()
    finally:
        os.close(child)


def test_every_kind_of_child_gets_a_session_that_ends_with_its_status(dap, payload, tmp_path):
    """fork_proc.c forks a child that exits 5, one that dies of SIGSEGV, one that execs, and posix_spawns (a vfork
    that execs): four child sessions, each ending with the child's status (139: killed by signal 11; an exec'd
    child's session follows it into the new program), the parent's output as native and its status 0."""
    program = str(payload("fork_proc.c", "musl"))
    native = subprocess.run([program], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    parent = dap()
    parent.start("launch", {"program": program, "kmPath": parent.km_path, "followForks": True, "cwd": str(tmp_path)},
                 exception_filters=[])                  # the SIGSEGV of the second child is not a stop
    assert parent.wait_event("exited", timeout_s=120)["exitCode"] == native.returncode == 0, parent.dump()
    assert parent.output("stdout").splitlines() == native.stdout.splitlines(), parent.dump()
    assert parent.child_errors == [] and len(parent.children) == 4, parent.dump()
    assert [child.wait_event("exited")["exitCode"] for child in parent.children] == [5, 139, 7, 7]
