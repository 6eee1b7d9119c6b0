"""examples/launch.json and the extension's initialConfigurations and snippets validate against the schema the
extension contributes (package.json configurationAttributes), every path and command in them is real, and the
"km: launch" example runs through kdbg-dap as written."""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.dap import load_jsonc, substitute
from harness.km import ROOT
from kdbg.stub_banner import STUB_STARTED

jsonschema = pytest.importorskip("jsonschema")

PACKAGE = json.loads((ROOT / "vscode-extension" / "package.json").read_text())
DEBUGGER = PACKAGE["contributes"]["debuggers"][0]
EXAMPLES = load_jsonc(ROOT / "examples" / "launch.json")["configurations"]
# What VS Code adds to every debugger's schema (vs/workbench/contrib/debug/common/debugSchemas.ts).
VSCODE_COMMON = {"name": {"type": "string"}, "type": {"const": "km"}, "request": {"enum": ["launch", "attach"]},
                 "preLaunchTask": {"type": ["string", "object"]}, "postDebugTask": {"type": ["string", "object"]},
                 "internalConsoleOptions": {"enum": ["neverOpen", "openOnSessionStart", "openOnFirstSessionStart"]},
                 "debugServer": {"type": "number"}, "suppressMultipleSessionWarning": {"type": "boolean"},
                 "presentation": {"type": "object"}, "serverReadyAction": {"type": "object"}}
BUILD_COMMAND = re.search(r"^\s*//\s*(mkdir -p build && musl-gcc .*)$",
                          (ROOT / "examples" / "launch.json").read_text(), re.M).group(1)


def schema_for(request: str) -> dict:
    attributes = DEBUGGER["configurationAttributes"][request]
    return {"type": "object", "required": ["name", "type", "request", *attributes.get("required", [])],
            "properties": {**VSCODE_COMMON, **attributes["properties"]}, "additionalProperties": False}


def expand_snippet(body):
    """What VS Code inserts for a snippet body: `^"..."` raw strings, `\\$` escapes, ${1:default} placeholders."""
    if isinstance(body, dict):
        return {k: expand_snippet(v) for k, v in body.items()}
    if isinstance(body, list):
        return [expand_snippet(v) for v in body]
    if isinstance(body, str):
        if body.startswith('^"'):
            body = json.loads(body[1:].replace("\\$", "\\\\$")).replace("\\$", "$")
        return re.sub(r"\$\{\d+:([^}]*)\}", r"\1", body)
    return body


def km_configurations():
    configs = [(f"example {c['name']}", c) for c in EXAMPLES if c["type"] == "km"]
    configs += [(f"initialConfigurations[{i}]", c) for i, c in enumerate(DEBUGGER["initialConfigurations"])]
    configs += [(f"snippet {s['label']}", expand_snippet(s["body"])) for s in DEBUGGER["configurationSnippets"]]
    return configs


@pytest.mark.parametrize("where,config", km_configurations(), ids=[w for w, _ in km_configurations()])
def test_configuration_validates_against_the_extension_schema(where, config):
    jsonschema.validate(config, schema_for(config["request"]))


def test_schema_rejects_what_kdbg_dap_would_reject():
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "type": "km", "request": "launch"}, schema_for("launch"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "type": "km", "request": "attach", "program": "p", "address": "2159"},
                            schema_for("attach"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "type": "km", "request": "launch", "program": "p", "stopAtEntry": True},
                            schema_for("launch"))


def test_examples_cover_every_style_with_real_paths_and_commands():
    kinds = {(c["type"], c["request"], "coreFile" in c) for c in EXAMPLES}
    assert kinds == {("km", "launch", False), ("km", "attach", False), ("km", "launch", True),
                     ("cppdbg", "launch", False)}
    for config in EXAMPLES:
        for key in ("program", "coreFile", "cwd"):
            if key in config:
                assert config[key].startswith("${workspaceFolder}/") or config[key] == "${workspaceFolder}"
    cpp = next(c for c in EXAMPLES if c["type"] == "cppdbg")
    assert Path(cpp["miDebuggerPath"]).is_file()
    assert shutil.which(cpp["debugServerPath"]) or (ROOT / "pyproject.toml").read_text().count(
        f'{cpp["debugServerPath"]} = "monitor.cli:main"'), "debugServerPath is neither on PATH nor km's script"
    assert shlex.split(cpp["debugServerArgs"])[-1] == cpp["program"]
    assert cpp["miDebuggerServerAddress"] == "localhost:2159" and shlex.split(cpp["debugServerArgs"])[0] == "-g"
    assert cpp["serverStarted"] == STUB_STARTED                 # km's banner contract (kdbg/stub_banner.py)
    assert (ROOT / "examples" / "hello.c").is_file() and "examples/hello.c" in BUILD_COMMAND


@pytest.fixture
def workspace(tmp_path) -> Path:
    """A workspace folder holding build/hello.km, built with the command the example's comment gives."""
    folder = tmp_path / "ws"
    folder.mkdir()
    (folder / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "hello.c", folder / "examples" / "hello.c")
    subprocess.run(BUILD_COMMAND, shell=True, cwd=folder, check=True, capture_output=True, timeout=120)
    return folder


def test_launch_example_runs_as_written(dap, workspace):
    config = substitute(next(c for c in EXAMPLES if c["type"] == "km" and c["request"] == "launch"
                             and "coreFile" not in c), {"workspaceFolder": str(workspace)})
    client = dap()
    if not shutil.which(config["kmPath"]) or client.km_label != "real km":
        config["kmPath"] = client.km_path          # km not installed on PATH, or not working yet
    client.start("launch", config)
    stop = client.wait_event("stopped")
    assert stop["reason"] == "entry" and client.top_frame(stop["threadId"])["name"] == "main", client.dump()
    client.call("continue", {"threadId": stop["threadId"]})
    assert client.wait_event("exited")["exitCode"] == 0
    assert "Hello, world from VS Code\n  arg 2: second\n" in client.output("stdout"), client.dump()


def test_python_example_runs_as_written(dap, tmp_path):
    config = substitute(next(c for c in EXAMPLES if c["type"] == "km" and c["request"] == "launch"
                             and c.get("python")), {"workspaceFolder": str(ROOT)})
    client = dap()
    config["kmPath"] = client.km_path                   # km may not be installed on PATH
    line = next(n for n, text in enumerate(Path(config["program"]).read_text().splitlines(), 1)
                if "a good line for a first breakpoint" in text)
    client.start("launch", config, {config["program"]: [{"line": line}]})
    stop = client.wait_event("stopped", timeout_s=60)
    frame = client.call("stackTrace", {"threadId": stop["threadId"]})["stackFrames"][0]
    assert (stop["reason"], frame["name"], frame["line"]) == ("breakpoint", "greet", line), client.dump()
    client.call("continue", {"threadId": stop["threadId"]})
    assert client.wait_event("exited")["exitCode"] == 0, client.dump()
    assert "Hello, from VS Code\n  arg 1: from VS Code\n" in client.output("stdout"), client.dump()


def test_a_forked_childs_configuration_validates_against_the_attach_schema(tmp_path):
    """What kdbg-dap's startDebugging asks VS Code to start (followForks) is a configuration the extension takes."""
    from kdbg.dap.forks import child_configuration
    from kdbg.stub_banner import ForkWait
    launch = {"name": "km: launch", "type": "km", "request": "launch", "program": str(ROOT / "pyproject.toml"),
              "followForks": True, "gdbPath": "gdb", "setupCommands": [], "debugServer": 4711, "kmPath": "km"}
    jsonschema.validate(launch, schema_for("launch"))
    jsonschema.validate(child_configuration(launch, ForkWait("fork.km", 42, 2160), str(tmp_path)), schema_for("attach"))
