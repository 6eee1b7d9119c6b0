"""Session dispatch without gdb: capabilities derived from handlers, failed responses in one shape, argument
errors named "invalid <field>: <why>"."""
from __future__ import annotations

import io
import json

from kdbg.dap.session import Session
from kdbg.dap.transport import Transport


def run(*requests: dict) -> list[dict]:
    data = b""
    for seq, request in enumerate(requests, 1):
        body = json.dumps({"seq": seq, "type": "request", **request}).encode()
        data += b"Content-Length: %d\r\n\r\n" % len(body) + body
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
    for capability, request in (("supportsDisassembleRequest", "disassemble"), ("supportsRestartRequest", "restart"),
                                ("supportsDataBreakpoints", "setDataBreakpoints")):
        assert caps[capability] and hasattr(Session, f"{request}_request")
    assert "supportsStepBack" not in caps and not hasattr(Session, "stepBack_request")
    assert caps["exceptionBreakpointFilters"][0]["filter"] == "SIGSEGV"


def test_failures_are_one_line_and_the_session_goes_on():
    replies = run({"command": "launch", "arguments": {}}, {"command": "attach", "arguments": {"program": __file__,
                                                                                          "address": "x"}},
                  {"command": "bogus"}, {"command": "variables", "arguments": {"variablesReference": 1}},
                  {"command": "readMemory", "arguments": {"memoryReference": "zz", "count": 1}},
                  {"command": "threads"})
    assert [(r["success"], r.get("message")) for r in replies] == [
        (False, "invalid program: missing"), (False, "invalid address: 'x' is not host:port"),
        (False, "unsupported request: bogus"), (False, "no debuggee: launch or attach first"),
        (False, "invalid memoryReference: 'zz' is not an address"), (True, None)]
    assert replies[0]["body"]["error"]["format"] == "invalid program: missing"
    assert [r["request_seq"] for r in replies] == [1, 2, 3, 4, 5, 6]
