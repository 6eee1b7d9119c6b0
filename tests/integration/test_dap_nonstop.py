"""VS Code's "Step Over one thread while the others keep running", through kdbg-dap and gdb's non-stop mode
(`"nonStop": true`): a worker stops at a breakpoint (again after a restart) and is stepped alone while a counter
thread counts on (read twice with `evaluate`), a step of the worker's makes the counter hit a breakpoint of its own,
one thread is paused, then everything continues to the payload's exit status. In all-stop mode (the default)
`singleThread` keeps the other threads stopped during the step. An attach in non-stop mode to a threaded program
already running leaves its threads running and pauses one. Each scenario runs against km and against gdbserver (the
stand-in, or `gdbserver --attach`, behind the same adapter): gdbserver's behaviour is the expectation.
"""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from harness.dap import STANDIN, marker_path
from harness.gdb import wait_listening
from harness.km import spawn_km
from harness.markers import line_of

SRC = "dap_nonstop.c"
BACKENDS = ("km", "gdbserver")


def _launch(dap, payload, backend: str, non_stop: bool):
    client = dap()
    km_path = client.km_path if backend == "km" else [sys.executable, str(STANDIN)]
    client.start("launch", {"program": str(payload(SRC, "glibc")), "kmPath": km_path, "nonStop": non_stop},
                 {marker_path(SRC): [{"line": line_of(SRC, "step_from")}]})
    return client


def _ticks(client, frame_id: int) -> int:
    return int(client.call("evaluate", {"expression": "ticks", "frameId": frame_id, "context": "watch"})["result"])


def _stops(client, count: int) -> dict[str, dict]:
    """The next `count` stopped events, by reason (they may come in any order)."""
    stops = [client.wait_event("stopped") for _ in range(count)]
    return {stop["reason"]: stop for stop in stops}


@pytest.mark.parametrize("backend", BACKENDS)
def test_step_over_one_thread_while_another_counts(dap, payload, backend):
    client = _launch(dap, payload, backend, non_stop=True)
    client.call("setFunctionBreakpoints", {"breakpoints": [{"name": "counter_saw"}]})
    hit = client.wait_event("stopped")
    assert (hit["reason"], hit["allThreadsStopped"]) == ("breakpoint", False), client.dump()
    client.call("restart")                                  # VS Code's Restart: a new km and gdb, non-stop again
    hit = client.wait_event("stopped")
    assert (hit["reason"], hit["allThreadsStopped"]) == ("breakpoint", False), client.dump()
    assert not [e for e in client.all_events if e["event"] == "continued"], client.dump()   # no resume to tell of
    worker = hit["threadId"]
    threads = [t["id"] for t in client.call("threads")["threads"]]
    assert len(threads) == 3 and worker in threads, client.dump()       # running and stopped threads alike
    running = next(t for t in threads if t != worker)
    refused = client.request("stackTrace", {"threadId": running})
    assert not refused["success"] and f"thread {running} is running" in refused["message"], client.dump()
    assert refused["body"]["error"]["showUser"] is False   # VS Code's lazy stack loads race resumes: no toast

    top = client.top_frame(worker)
    assert (top["name"], top["line"]) == ("worker_steps", line_of(SRC, "step_from")), client.dump()
    before = _ticks(client, top["id"])
    client.call("next", {"threadId": worker, "singleThread": True})
    step = client.wait_event("stopped")
    assert (step["reason"], step["threadId"], step["allThreadsStopped"]) == ("step", worker, False), client.dump()
    top = client.top_frame(worker)
    assert top["line"] == line_of(SRC, "step_to"), client.dump()
    deadline = time.monotonic() + 20
    while _ticks(client, top["id"]) == before:          # the counter thread ran on through the step
        assert time.monotonic() < deadline, "ticks did not move: the other threads did not run\n" + client.dump()

    bad = client.request("next", {"threadId": 999, "singleThread": True})      # bad input: the session goes on
    assert not bad["success"] and "999" in bad["message"], client.dump()

    client.call("next", {"threadId": worker})               # VS Code's Step Over: no singleThread
    assert client.wait_event("stopped")["threadId"] == worker, client.dump()
    assert client.top_frame(worker)["line"] == line_of(SRC, "release"), client.dump()
    client.call("next", {"threadId": worker})                # `phase = 1`: the counter reaches its breakpoint
    stops = _stops(client, 2)
    assert set(stops) == {"step", "breakpoint"} and not any(s["allThreadsStopped"] for s in stops.values()), \
        client.dump()
    counter = stops["breakpoint"]["threadId"]
    assert stops["step"]["threadId"] == worker and counter != worker, client.dump()
    assert client.top_frame(counter)["name"] == "counter_saw", client.dump()
    worker_top = client.top_frame(worker)
    assert worker_top["line"] == line_of(SRC, "step_ret"), client.dump()
    assert client.locals_of(worker_top["id"])["y"]["value"] == "42", client.dump()

    resumed = client.call("continue", {"threadId": counter, "singleThread": True})
    assert resumed["allThreadsContinued"] is False, client.dump()
    main = next(t for t in threads if t not in (worker, counter))
    client.call("pause", {"threadId": main})
    paused = client.wait_event("stopped")
    assert (paused["reason"], paused["threadId"], paused["allThreadsStopped"]) == ("pause", main, False), \
        client.dump()
    assert client.call("stackTrace", {"threadId": worker})["stackFrames"], client.dump()   # still stopped

    client.call("setBreakpoints", {"source": {"path": marker_path(SRC)}, "breakpoints": []})
    client.call("setFunctionBreakpoints", {"breakpoints": []})
    assert client.call("continue", {"threadId": worker})["allThreadsContinued"] is True, client.dump()
    assert client.wait_event("exited")["exitCode"] == 42, client.dump()
    assert "ticks counted, result 42" in client.wait_output("result 42"), client.dump()


@pytest.mark.parametrize("backend", BACKENDS)
def test_all_stop_single_thread_step_keeps_the_others_stopped(dap, payload, backend):
    client = _launch(dap, payload, backend, non_stop=False)
    hit = client.wait_event("stopped")
    assert (hit["reason"], hit["allThreadsStopped"]) == ("breakpoint", True), client.dump()
    top = client.top_frame(hit["threadId"])
    before = _ticks(client, top["id"])
    client.call("next", {"threadId": hit["threadId"], "singleThread": True})
    step = client.wait_event("stopped")
    assert (step["reason"], step["allThreadsStopped"]) == ("step", True), client.dump()
    top = client.top_frame(hit["threadId"])
    assert top["line"] == line_of(SRC, "step_to") and _ticks(client, top["id"]) == before, client.dump()
    assert not [e for e in client.all_events if e["event"] == "continued"], client.dump()  # one thread ran
    client.call("next", {"threadId": hit["threadId"]})      # VS Code's Step Over: every thread runs during it,
    assert client.wait_event("continued")["allThreadsContinued"] is True, client.dump()    # and VS Code is told
    assert client.wait_event("stopped")["reason"] == "step", client.dump()
    client.call("setBreakpoints", {"source": {"path": marker_path(SRC)}, "breakpoints": []})
    assert client.call("continue", {"threadId": hit["threadId"]})["allThreadsContinued"] is True
    assert client.wait_event("exited")["exitCode"] == 42, client.dump()


@pytest.mark.parametrize("backend", BACKENDS)
def test_attach_in_non_stop_mode_leaves_the_threads_running(dap, payload, free_port, backend):
    """`km --gdb_listen` (or `gdbserver --attach` to the program run natively) with three threads counting: the
    attach reports one thread stopped and the others running, as gdbserver does (several stops at connect make
    gdb 13 fail an internal assertion), the configuration runs them all, one is paused alone, and the program
    ends when told to."""
    program = str(payload("gdb_nonstop.c", "glibc"))
    if backend == "km":
        runs = server = spawn_km("--gdb_listen", f"-g{free_port}", program, stdin=subprocess.DEVNULL)
    else:
        runs = subprocess.Popen([program], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        server = subprocess.Popen(["gdbserver", "--attach", f"127.0.0.1:{free_port}", str(runs.pid)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_listening(free_port, server)
        client = dap()
        client.start("attach", {"program": program, "address": f"127.0.0.1:{free_port}", "nonStop": True})
        deadline = time.monotonic() + 20
        while len(threads := [t["id"] for t in client.call("threads")["threads"]]) < 3:    # the program may
            assert time.monotonic() < deadline, client.dump()                                  # still start them
        client.call("pause", {"threadId": threads[-1]})
        paused = client.wait_event("stopped")
        assert (paused["reason"], paused["threadId"], paused["allThreadsStopped"]) == ("pause", threads[-1], False), \
            client.dump()
        refused = client.request("stackTrace", {"threadId": threads[0]})
        assert not refused["success"] and "is running" in refused["message"], client.dump()
        top = client.top_frame(threads[-1])
        client.call("evaluate", {"expression": "done = 1", "frameId": top["id"], "context": "repl"})
        assert client.call("continue", {"threadId": threads[-1]})["allThreadsContinued"] is True
        assert client.wait_event("exited")["exitCode"] == 0, client.dump()
        assert runs.wait(30) == 0 and b"ticks counted" in runs.stdout.read()
    finally:
        for proc in {runs, server}:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
