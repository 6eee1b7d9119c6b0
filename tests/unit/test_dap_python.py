"""kdbg-dap's stopOnEntry for Python programs (kdbg/dap/python.py EntryStop), without debugpy: where the entry
breakpoint goes, how it rides along the client's setBreakpoints and leaves the answer, and how the first stop is
told apart from the client's own breakpoint."""
from __future__ import annotations

from typing import Any

from kdbg.dap.python import EntryStop, first_line


class FakeRelay:
    """Records kdbg-dap's own requests to debugpy; answers stackTrace with one frame."""

    def __init__(self, top: dict[str, Any]) -> None:
        self.top, self.sent = top, []

    def request(self, command: str, arguments: dict[str, Any], timeout_s: float = 1.0) -> dict[str, Any]:
        self.sent.append((command, arguments))
        return {"stackFrames": [self.top]} if command == "stackTrace" else {}


def program(tmp_path, text: str) -> str:
    path = tmp_path / "app.py"
    path.write_text(text)
    return str(path)


def test_first_line_is_the_first_statement(tmp_path):
    assert first_line(program(tmp_path, "# a comment\n\nimport os\nx = 1\n")) == 3
    assert first_line(program(tmp_path, '"""doc"""\nimport os\n')) == 1
    assert first_line(program(tmp_path, "def broken(:\n")) == 1


def test_entry_line_rides_along_and_leaves_the_answer(tmp_path):
    path = program(tmp_path, "import os\nx = 1\n")
    entry = EntryStop(path)
    request = {"seq": 7, "command": "setBreakpoints",
               "arguments": {"source": {"path": path}, "breakpoints": [{"line": 2}]}}
    assert entry.client_request(request)["breakpoints"] == [{"line": 2}, {"line": 1}]
    reply = {"request_seq": 7, "command": "setBreakpoints", "body": {"breakpoints": [{"id": 1}, {"id": 2}]}}
    entry.client_response(reply)
    assert reply["body"]["breakpoints"] == [{"id": 1}]
    other = {"seq": 8, "command": "setBreakpoints", "arguments": {"source": {"path": "/elsewhere.py"}}}
    assert entry.client_request(other) is None


def test_first_stop_at_the_entry_line_is_the_entry_and_gives_back_the_clients_breakpoints(tmp_path):
    path = program(tmp_path, "import os\nx = 1\n")
    entry = EntryStop(path)
    entry.client_request({"seq": 1, "command": "setBreakpoints",
                          "arguments": {"source": {"path": path}, "breakpoints": [{"line": 2}]}})
    relay = FakeRelay({"line": 1, "source": {"path": path}})
    body = {"reason": "breakpoint", "threadId": 1, "hitBreakpointIds": [2]}
    entry.on_stopped(body, relay)  # type: ignore[arg-type]
    assert body == {"reason": "entry", "threadId": 1}
    assert relay.sent[-1] == ("setBreakpoints", {"source": {"path": path}, "breakpoints": [{"line": 2}]})
    assert not entry.pending


def test_no_client_breakpoint_in_the_file_sends_the_entry_alone(tmp_path):
    path = program(tmp_path, "x = 1\n")
    entry = EntryStop(path)
    relay = FakeRelay({"line": 5, "source": {"path": "/other.py"}})
    entry.before_configuration_done(relay)  # type: ignore[arg-type]
    assert relay.sent == [("setBreakpoints", {"source": {"path": path}, "breakpoints": [{"line": 1}]})]
    body = {"reason": "breakpoint", "threadId": 1}
    entry.on_stopped(body, relay)  # type: ignore[arg-type]
    assert body["reason"] == "breakpoint"                     # not at the entry line: someone else's stop
