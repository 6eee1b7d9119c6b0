"""Threads through kdbg-dap: thread events, the threads list, a stack per thread, a breakpoint hit by workers."""
from __future__ import annotations

from harness.dap import marker_path
from harness.markers import line_of

SRC = "dap_threads.c"


def test_workers_hit_a_breakpoint_and_every_thread_has_a_stack(dap, payload):
    client = dap()
    client.start("launch", {"program": str(payload(SRC, "glibc")), "kmPath": client.km_path},
                 {marker_path(SRC): [{"line": line_of(SRC, "worker")}]})
    stop = client.wait_event("stopped")
    assert stop["reason"] == "breakpoint" and stop["allThreadsStopped"], client.dump()
    threads = client.call("threads")["threads"]
    assert len(threads) == 3, client.dump()
    assert len([e for e in client.all_events if e["event"] == "thread" and e["body"]["reason"] == "started"]) >= 2
    top = client.top_frame(stop["threadId"])
    assert (top["name"], top["line"]) == ("worker", line_of(SRC, "worker"))
    names = {t["id"]: [f["name"] for f in client.call("stackTrace", {"threadId": t["id"]})["stackFrames"]]
             for t in threads}
    assert sum("worker" in frames for frames in names.values()) == 2, names
    assert sum("main" in frames for frames in names.values()) == 1, names
    locals_ = client.locals_of(top["id"])
    assert locals_["id"]["value"] in ("1", "2")

    client.call("continue", {"threadId": stop["threadId"]})
    second = client.wait_event("stopped")
    assert second["reason"] == "breakpoint" and second["threadId"] != stop["threadId"], client.dump()
    client.call("setBreakpoints", {"source": {"path": marker_path(SRC)}, "breakpoints": []})
    client.call("continue", {"threadId": second["threadId"]})
    assert client.wait_event("exited")["exitCode"] == 30, client.dump()
    assert len([e for e in client.all_events if e["event"] == "thread" and e["body"]["reason"] == "exited"]) >= 2
