"""followForks' pieces without a VM: km's announcement line, the child's configuration, when the option holds."""
from __future__ import annotations

import os

import pytest

from kdbg.dap.errors import CantHandle, InvalidArgument
from kdbg.dap.forks import Forks, check_alive, child_configuration, forked_child, is_alive, wanted
from kdbg.stub_banner import ForkWait, fork_wait_banner, is_banner_line, parse_fork_wait


def test_the_announcement_round_trips_and_is_not_a_banner_line() -> None:
    line = fork_wait_banner("/tmp/a b: c.km", 4242, 2160) + "\n"
    assert parse_fork_wait(line) == ForkWait("/tmp/a b: c.km", 4242, 2160)
    assert not is_banner_line(line)
    assert parse_fork_wait("km: x.km: forked child pid 12 waits for a debugger on port\n") is None
    assert parse_fork_wait("child computes 42\n") is None


def test_the_child_configuration_attaches_to_its_port_with_the_parents_gdb_settings(tmp_path) -> None:
    program = tmp_path / "prog.km"
    program.write_bytes(b"")
    parent = {"type": "km", "request": "launch", "name": "km: launch", "program": str(program), "args": ["x"],
              "followForks": True, "gdbPath": "/usr/bin/gdb", "setupCommands": ["set print pretty on"],
              "debugServer": 4711, "env": {"A": "1"}}
    config = child_configuration(parent, ForkWait("prog.km", 99, 2161), str(tmp_path))
    assert config == {"type": "km", "request": "attach", "name": "prog.km (forked child 99)", "program": str(program),
                      "address": "localhost:2161", "forkedChild": {"pid": 99, "port": 2161},
                      "gdbPath": "/usr/bin/gdb", "setupCommands": ["set print pretty on"], "debugServer": 4711}
    elsewhere = child_configuration(parent, ForkWait("gone.km", 99, 2161), str(tmp_path))
    assert elsewhere["program"] == str(program)          # the forking payload's path is not a file here


def test_follow_forks_needs_a_client_that_starts_sessions() -> None:
    assert wanted({}, {"supportsStartDebuggingRequest": True}) is False
    assert wanted({"followForks": True}, {"supportsStartDebuggingRequest": True}) is True
    assert "does not support startDebugging" in str(wanted({"followForks": True}, {}))


def test_the_forked_child_of_an_attach() -> None:
    assert forked_child({"address": "localhost:1"}) is None
    assert forked_child({"forkedChild": {"pid": 12, "port": 3}}) == 12
    with pytest.raises(InvalidArgument, match="invalid pid"):
        forked_child({"forkedChild": {"port": 3}})
    assert is_alive(os.getpid())
    with pytest.raises(CantHandle, match=r"^forked child 999999999: it exited before its session started$"):
        check_alive(999999999)


def test_the_answer_to_a_start_debugging_request_is_matched_to_its_child() -> None:
    sent: list[dict] = []
    said: list[str] = []

    def send(message: dict) -> None:
        message["seq"] = 7
        sent.append(message)
    forks = Forks(send, lambda category, text: said.append(text), "gdb")
    forks.announce(ForkWait("p.km", 999999999, 2160), {"request": "attach", "address": "localhost:2160"})
    assert sent == [{"type": "request", "command": "startDebugging", "seq": 7,
                     "arguments": {"request": "attach", "configuration": {"request": "attach",
                                                                          "address": "localhost:2160"}}}]
    assert not forks.on_response({"request_seq": "junk", "success": False})
    assert not forks.on_response({"request_seq": 8, "success": False})
    assert forks.on_response({"request_seq": 7, "success": False, "message": "cancelled"})
    assert said[-1] == "kdbg-dap: forked child 999999999: the client did not start its session (cancelled); it has ended\n"
    assert not forks.on_response({"request_seq": 7, "success": True})          # answered once
