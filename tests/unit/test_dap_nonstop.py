"""Non-stop mode's bookkeeping without gdb: gdb/MI records of one thread's stop and resume become DAP events that
say so, each thread keeps its own state and frames, and a resume typed elsewhere (the debug console) is a
`continued` event of that thread only."""
from __future__ import annotations

from typing import Any

import pytest

from kdbg.dap.breakpoints import Breakpoints
from kdbg.dap.errors import CantHandle, InvalidArgument
from kdbg.dap.events import StopEvents
from kdbg.dap.execution import Execution
from kdbg.dap.lifecycle import Lifecycle, Mode, Needs, State, Stop
from kdbg.dap.variables import Variables


class FakeGdb:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def command(self, text: str, timeout_s: float = 10.0, capture: bool = False) -> dict[str, Any]:
        self.sent.append(text)
        if text.startswith("-break-insert"):
            return {"result": "done", "bkpt": {"number": "1", "addr": "0x401000", "line": "7"}}
        return {"result": "done", "value": "42"}


def notify(message: str, **payload: Any) -> dict[str, Any]:
    return {"type": "notify", "message": message, "payload": payload}


@pytest.fixture
def session():
    gdb, lifecycle, stop, events = FakeGdb(), Lifecycle(), Stop(), []
    lifecycle.mode = Mode.LAUNCH
    lifecycle.threads.reset(non_stop=True)
    variables = Variables(gdb)          # type: ignore[arg-type]
    execution = Execution(gdb, lifecycle, stop, variables,      # type: ignore[arg-type]
                          lambda name, body: events.append((name, body)))
    breakpoints = Breakpoints(gdb)      # type: ignore[arg-type]
    breakpoints.replace("source:x.c", [{"line": 7, "logMessage": "y={y}"}], lambda bp: f"x.c:{bp['line']}")
    stop_events = StopEvents(gdb, lifecycle, stop, variables, breakpoints, execution,  # type: ignore[arg-type]
                             lambda name, body: events.append((name, body)), lambda *_: None, lambda _: None)
    for record in (notify("thread-created", id="1"), notify("running", **{"thread-id": "1"}),
                   notify("stopped", reason="signal-received", **{"signal-name": "0", "thread-id": "1",
                                                                  "stopped-threads": ["1"]})):
        stop_events.on_record(record)                  # the connect: thread 1 stopped, no event
    lifecycle.move(State.CONFIGURED)
    execution.run()
    for record in (notify("running", **{"thread-id": "1"}), notify("thread-created", id="2"),
                   notify("running", **{"thread-id": "2"})):
        stop_events.on_record(record)
    return gdb, lifecycle, stop, execution, stop_events, events


def test_one_thread_stops_and_resumes_alone(session):
    gdb, lifecycle, stop, execution, stop_events, events = session
    assert gdb.sent[-1] == "-exec-continue --all" and lifecycle.state is State.RUNNING
    assert events == [("thread", {"reason": "started", "threadId": 2})]
    events.clear()
    stop_events.on_record(notify("stopped", reason="end-stepping-range", **{"thread-id": "2",
                                                                           "stopped-threads": ["2"]}))
    assert events == [("stopped", {"threadId": 2, "allThreadsStopped": False, "reason": "step"})]
    assert lifecycle.state is State.STOPPED and lifecycle.threads.stopped == {2}
    lifecycle.check("stackTrace", Needs.STOPPED, 2)
    with pytest.raises(CantHandle, match="thread 1 is running"):
        lifecycle.check("stackTrace", Needs.STOPPED, 1)
    with pytest.raises(InvalidArgument, match="invalid threadId: 9 is not a thread of the debuggee"):
        lifecycle.check("next", Needs.RUNNABLE, 9)
    frame = stop.add_frame(2, 0)

    execution.next_request({"threadId": 2, "singleThread": True})
    assert gdb.sent[-1] == "-exec-next --thread 2" and lifecycle.state is State.RUNNING
    assert frame not in stop.frames                    # the thread's frames died with its resume
    stop_events.on_record(notify("running", **{"thread-id": "2"}))
    assert events[1:] == []                            # our own resume is no news


def test_a_resume_from_elsewhere_is_a_continued_event_of_that_thread(session):
    gdb, lifecycle, stop, execution, stop_events, events = session
    for thread in ("1", "2"):
        stop_events.on_record(notify("stopped", reason="signal-received", **{"signal-name": "0",
                                                                            "thread-id": thread}))
    events.clear()
    stop_events.on_record(notify("running", **{"thread-id": "2"}))
    assert events == [("continued", {"threadId": 2, "allThreadsContinued": False})]
    assert lifecycle.state is State.STOPPED             # thread 1 still is
    assert execution.continue_request({"threadId": 1}) == {"allThreadsContinued": True}
    assert gdb.sent[-1] == "-exec-continue --all" and lifecycle.state is State.RUNNING


def test_a_log_point_continues_its_own_thread_only(session):
    gdb, lifecycle, stop, execution, stop_events, events = session
    events.clear()
    stop_events.on_record(notify("stopped", reason="breakpoint-hit", bkptno="1", **{"thread-id": "2",
                                                                                  "stopped-threads": ["2"]}))
    assert gdb.sent[-1] == "-exec-continue --thread 2", gdb.sent[-3:]
    assert events == [] and lifecycle.threads.stopped == set() and lifecycle.state is State.RUNNING
