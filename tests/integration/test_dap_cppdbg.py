"""The cppdbg (Microsoft C/C++ extension) configuration of examples/launch.json works with km.

The test does what the C/C++ extension (MIEngine) does with that configuration: starts debugServerPath with
debugServerArgs, waits for the serverStarted pattern in its output, then runs gdb (miDebuggerPath) with
MIEngine's gdb/MI sequence for a remote launch: target-async, the setupCommands, -environment-cd,
-file-exec-and-symbols, -target-select remote <miDebuggerServerAddress>, `-break-insert -f main` for stopAtEntry,
-exec-continue, the stack/variable queries of a stop, -exec-continue to the exit, -gdb-exit.
With km not yet working, the gdbserver stand-in replaces debugServerPath (user property "km").
"""
from __future__ import annotations

import re
import shlex
import shutil
import socket
import subprocess
import time

import pytest
from pygdbmi.gdbcontroller import GdbController

from harness.dap import WatchedServer, km_under_test, load_jsonc, substitute
from harness.km import ROOT

CONFIG = next(c for c in load_jsonc(ROOT / "examples" / "launch.json")["configurations"] if c["type"] == "cppdbg")
BUILD_COMMAND = re.search(r"^\s*//\s*(mkdir -p build && musl-gcc .*)$",
                          (ROOT / "examples" / "launch.json").read_text(), re.M).group(1)
DEADLINE_S = 30


class MiSession:
    """gdb/MI through pygdbmi: a command waits for its own result record; async records are kept."""

    def __init__(self, gdb_path: str) -> None:
        self.gdb = GdbController([gdb_path, "--interpreter=mi", "-q", "-nx"])
        self.records: list[dict] = []
        self.transcript: list[str] = []
        self._token = 100

    def command(self, text: str, expect: tuple[str, ...] = ("done",)) -> dict:
        self._token += 1
        self.transcript.append(f"-> {self._token}{text}")
        self.gdb.write(f"{self._token}{text}", read_response=False)
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            self._read()
            for record in self.records:
                if record["type"] == "result" and record.get("token") == self._token:
                    self.records.remove(record)
                    assert record["message"] in expect, "\n".join(self.transcript)
                    return record.get("payload") or {}
        raise AssertionError(f"no result for {text}\n" + "\n".join(self.transcript))

    def wait_stopped(self) -> dict:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            for record in self.records:
                if record["type"] == "notify" and record["message"] == "stopped":
                    self.records.remove(record)
                    return record["payload"]
            self._read()
        raise AssertionError("no *stopped\n" + "\n".join(self.transcript))

    def _read(self) -> None:
        for record in self.gdb.get_gdb_response(timeout_sec=0.5, raise_error_on_timeout=False):
            self.records.append(record)
            self.transcript.append(f"<- {record}")


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "hello.c", tmp_path / "examples" / "hello.c")
    subprocess.run(BUILD_COMMAND, shell=True, cwd=tmp_path, check=True, capture_output=True, timeout=120)
    return tmp_path


@pytest.fixture
def server_and_gdb(workspace, request):
    config = substitute(CONFIG, {"workspaceFolder": str(workspace)})
    host, port = config["miDebuggerServerAddress"].split(":")
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if probe.connect_ex((host, int(port))) == 0:
            pytest.fail(f"port {port} of miDebuggerServerAddress is already in use")
    km_path, label = km_under_test()
    request.node.user_properties.append(("km", label))
    server_cmd = [shutil.which(config["debugServerPath"]) or config["debugServerPath"]]
    if label != "real km" or server_cmd[0] is None or not shutil.which(config["debugServerPath"]):
        server_cmd = km_path
    server = WatchedServer([*server_cmd, *shlex.split(config["debugServerArgs"])], config["serverStarted"])
    mi = None
    try:
        server.wait_started(DEADLINE_S)
        mi = MiSession(config["miDebuggerPath"])
        yield config, server, mi
    finally:
        if mi is not None:
            mi.gdb.exit()
        server.kill()


def test_cppdbg_example_sequence_against_km(server_and_gdb):
    config, server, mi = server_and_gdb
    mi.command("-gdb-set target-async on")
    for setup in config["setupCommands"]:
        mi.command(setup["text"], ("done", "error") if setup.get("ignoreFailures") else ("done",))
    mi.command('-interpreter-exec console "set pagination off"')
    mi.command(f'-environment-cd {config["cwd"]}')
    mi.command(f'-file-exec-and-symbols {config["program"]}')
    mi.command(f'-target-select remote {config["miDebuggerServerAddress"]}', ("connected",))
    assert config["stopAtEntry"]
    bkpt = mi.command("-break-insert -f main")["bkpt"]
    mi.command("-exec-continue", ("running",))
    stop = mi.wait_stopped()
    while stop.get("reason") is None:               # the stop `target remote` reports, if it came late
        stop = mi.wait_stopped()
    assert stop["reason"] == "breakpoint-hit" and stop["bkptno"] == bkpt["number"], "\n".join(mi.transcript)
    assert stop["frame"]["func"] == "main" and stop["frame"]["file"].endswith("hello.c")
    assert int(stop["frame"]["line"]) == int(bkpt["line"])

    mi.command("-thread-info")
    frames = mi.command("-stack-list-frames 0 1000")["stack"]
    assert frames[0]["func"] == "main"
    variables = mi.command("-stack-list-variables --thread 1 --frame 0 --simple-values")["variables"]
    assert {v["name"] for v in variables} >= {"argc", "argv"}
    assert mi.command('-var-create - * "argc"')["value"] == "1"

    mi.command("-exec-continue", ("running",))
    exit_stop = mi.wait_stopped()
    assert exit_stop["reason"] == "exited-normally", "\n".join(mi.transcript)
    assert server.finish(DEADLINE_S) == 0
    assert "Hello, world\n" in server.output
