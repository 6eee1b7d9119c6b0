"""Session dispatch without gdb: capabilities derived from handlers, failed responses in one shape, argument
errors named "invalid <field>: <why>", requests out of order refused by the lifecycle's state gate."""
from __future__ import annotations

import io

import pytest

from harness.dap import encode
from kdbg.dap.errors import CantHandle
from kdbg.dap.lifecycle import Lifecycle, Mode, Needs, State
from kdbg.dap.session import HANDLERS, Session
from kdbg.dap.transport import Transport

# What kdbg-dap has advertised since the first landing; derived now from the handlers' declarations.
ADVERTISED = {
    "supportsConfigurationDoneRequest", "supportsFunctionBreakpoints", "supportsSetVariable", "supportsRestartRequest",
    "supportsExceptionInfoRequest", "supportsLoadedSourcesRequest", "supportsModulesRequest",
    "supportsTerminateRequest", "supportsDataBreakpoints", "supportsReadMemoryRequest", "supportsWriteMemoryRequest",
    "supportsDisassembleRequest", "supportsInstructionBreakpoints", "supportsConditionalBreakpoints",
    "supportsHitConditionalBreakpoints", "supportsLogPoints", "supportsEvaluateForHovers",
    "supportsSteppingGranularity", "supportTerminateDebuggee", "supportsDelayedStackTraceLoading",
    "supportsSingleThreadExecutionRequests"}


def run(*requests: dict) -> list[dict]:
    data = b""
    for seq, request in enumerate(requests, 1):
        data += encode({"seq": seq, "type": "request", **request})
    out = io.BytesIO()
    Session(Transport(io.BytesIO(data), out)).run()
    reread, messages = Transport(io.BytesIO(out.getvalue()), io.BytesIO()), []
    while True:
        try:
            messages.append(reread.read_message())
        except Exception:
            return messages


def test_capabilities_are_those_of_existing_handlers():
    caps = run({"command": "initialize", "arguments": {"adapterID": "km"}})[0]["body"]
    assert all(value is not False for value in caps.values())
    assert set(caps) - {"exceptionBreakpointFilters"} == ADVERTISED
    for capability, command in (("supportsDisassembleRequest", "disassemble"), ("supportsRestartRequest", "restart"),
                                ("supportsDataBreakpoints", "setDataBreakpoints"), ("supportsLogPoints",
                                                                                   "setBreakpoints")):
        assert capability in HANDLERS[command].capabilities
    assert "supportsStepBack" not in caps and "stepBack" not in HANDLERS
    assert caps["exceptionBreakpointFilters"][0]["filter"] == "SIGSEGV"


def test_failures_are_one_line_and_the_session_goes_on():
    replies = run({"command": "launch", "arguments": {}}, {"command": "attach", "arguments": {"program": __file__,
                                                                                          "address": "x"}},
                  {"command": "bogus"}, {"command": "variables", "arguments": {"variablesReference": 1}},
                  {"command": "readMemory", "arguments": {"memoryReference": "zz", "count": 1}},
                  {"command": "attach", "arguments": {"program": "/bin/sh", "address": "localhost:1",
                                                      "nonStop": "yes"}},
                  {"command": "threads"})
    assert [(r["success"], r.get("message")) for r in replies] == [
        (False, "invalid program: missing"), (False, "invalid address: 'x' is not host:port"),
        (False, "unsupported request: bogus"), (False, "no debuggee: launch or attach first"),
        (False, "no debuggee: launch or attach first"),                  # the state gate comes first
        (False, "invalid nonStop: 'yes' is not true or false"), (True, None)]
    assert replies[0]["body"]["error"]["format"] == "invalid program: missing"
    assert [r["request_seq"] for r in replies] == [1, 2, 3, 4, 5, 6, 7]


def test_requests_out_of_order_are_refused_and_the_session_goes_on():
    replies = run({"command": "configurationDone"}, {"command": "continue", "arguments": {"threadId": 1}},
                  {"command": "stackTrace", "arguments": {"threadId": "x"}}, {"command": "next", "arguments": []},
                  {"command": "restart"}, {"command": "setExceptionBreakpoints", "arguments": {"filters": 3}},
                  {"command": "initialize", "arguments": {}}, {"command": "disconnect"},
                  {"command": "threads"})
    assert [(r["command"], r["success"], r.get("message")) for r in replies] == [
        ("configurationDone", False, "no debuggee: launch or attach first"),
        ("continue", False, "no debuggee: launch or attach first"),
        ("stackTrace", False, "no debuggee: launch or attach first"),
        ("next", False, "invalid arguments: must be an object"),
        ("restart", False, "restart needs a launched debuggee, not none"),
        ("setExceptionBreakpoints", False, "invalid filters: must be a list of strings"),
        ("initialize", True, None), ("disconnect", True, None)]        # nothing is served after disconnect


def test_lifecycle_moves_and_gate():
    life = Lifecycle()
    with pytest.raises(CantHandle, match="no debuggee"):
        life.check("stackTrace", Needs.STOPPED)
    life.mode = Mode.LAUNCH
    life.check("setBreakpoints", Needs.CONFIGURING)
    with pytest.raises(CantHandle, match="initializing, it cannot become running"):
        life.move(State.RUNNING)
    for state in (State.CONFIGURED, State.RUNNING):
        life.move(state)
    with pytest.raises(CantHandle, match="running: pause it first"):
        life.check("stackTrace", Needs.STOPPED)
    life.check("pause", Needs.DEBUGGEE)
    life.move(State.STOPPED)
    life.check("next", Needs.RUNNABLE)
    with pytest.raises(CantHandle, match="already configured"):
        life.check("configurationDone", Needs.CONFIGURING)
    with pytest.raises(CantHandle, match="already has a debuggee"):
        life.check("launch", Needs.NO_DEBUGGEE)
    life.mode = Mode.CORE
    with pytest.raises(CantHandle, match="a core file cannot run"):
        life.check("continue", Needs.RUNNABLE)
    life.move(State.EXITED)
    with pytest.raises(CantHandle, match="has exited"):
        life.check("evaluate", Needs.DEBUGGEE)
    assert not life.can_move(State.RUNNING) and life.can_move(State.CONFIGURED)     # restart only
    life.move(State.DISCONNECTED)
    with pytest.raises(CantHandle, match="disconnected"):
        life.check("threads", Needs.DEBUGGEE)
    assert not life.can_move(State.CONFIGURED)


def test_python_first_session_answers_initialize_with_debugpys_capabilities():
    """VS Code reads exception filters only from the initialize answer: for a Python configuration the extension
    starts `kdbg-dap --python`, which answers with debugpy's own (asked of the same debugpy)."""
    request = encode({"seq": 1, "type": "request", "command": "initialize", "arguments": {"adapterID": "km"}})
    out = io.BytesIO()
    Session(Transport(io.BytesIO(request), out), python_first=True).run()
    caps = Transport(io.BytesIO(out.getvalue()), io.BytesIO()).read_message()["body"]
    assert [f["filter"] for f in caps["exceptionBreakpointFilters"]][:2] == ["raised", "uncaught"]
    assert caps["supportsCompletionsRequest"] and "supportsDisassembleRequest" not in caps
