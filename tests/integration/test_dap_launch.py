"""kdbg-dap driven by a DAP client through a launched km: entry, breakpoints, stack, variables, stepping, exit.

Which km ran is recorded per test (user property "km"): the real `km -g` once its stub works, the gdbserver
stand-in (tests/harness/km_standin.py) before that.
"""
from __future__ import annotations

import base64
import struct

from harness.dap import marker_path
from harness.markers import line_of

SRC = "dap_basic.c"


def launch(client, program: str, bps: dict[str, list[int | dict]] | None = None, **config) -> None:
    breakpoints = {marker_path(SRC): [b if isinstance(b, dict) else {"line": b} for b in lines]
                   for lines in (bps or {}).values()} if bps else None
    client.start("launch", {"program": program, "kmPath": client.km_path, **config}, breakpoints)


def test_entry_breakpoint_stack_locals_struct_evaluate_exit(dap, program):
    client = dap()
    client.call("initialize", {"adapterID": "km"})
    client.call("launch", {"program": program, "kmPath": client.km_path, "stopOnEntry": True})
    client.wait_event("initialized")
    placed = client.call("setBreakpoints", {"source": {"path": marker_path(SRC)},
                                            "breakpoints": [{"line": line_of(SRC, "add_body")}]})["breakpoints"]
    assert placed[0]["verified"] and placed[0]["line"] == line_of(SRC, "add_body"), client.dump()
    client.call("configurationDone")

    entry = client.wait_event("stopped")
    assert entry["reason"] == "entry", client.dump()
    assert client.top_frame(entry["threadId"])["name"] == "main"

    client.call("continue", {"threadId": entry["threadId"]})
    hit = client.wait_event("stopped")
    assert hit["reason"] == "breakpoint" and hit["hitBreakpointIds"] == [placed[0]["id"]], client.dump()
    threads = client.call("threads")["threads"]
    assert [t["id"] for t in threads] == [hit["threadId"]]

    trace = client.call("stackTrace", {"threadId": hit["threadId"]})
    frames = trace["stackFrames"]
    assert [(f["name"], f["line"]) for f in frames] == [("add", line_of(SRC, "add_body")),
                                                        ("main", line_of(SRC, "call_add"))], client.dump()
    assert frames[0]["source"]["path"] == marker_path(SRC) and int(frames[0]["instructionPointerReference"], 16)
    assert trace["totalFrames"] == 2
    paged = client.call("stackTrace", {"threadId": hit["threadId"], "startFrame": 1, "levels": 1})
    assert [f["name"] for f in paged["stackFrames"]] == ["main"] and paged["totalFrames"] == 2

    scopes = client.call("scopes", {"frameId": frames[0]["id"]})["scopes"]
    args_ref = next(s for s in scopes if s["name"] == "Arguments")["variablesReference"]
    arguments = {v["name"]: v["value"] for v in client.call("variables", {"variablesReference": args_ref})["variables"]}
    assert arguments == {"a": "3", "b": "4"}
    regs_ref = next(s for s in scopes if s["name"] == "Registers")["variablesReference"]
    registers = {v["name"]: v["value"] for v in client.call("variables", {"variablesReference": regs_ref})["variables"]}
    assert int(registers["rip"], 16) == int(frames[0]["instructionPointerReference"], 16)

    main_locals = client.locals_of(frames[1]["id"])
    assert main_locals["answer"]["value"] == "42"
    assert main_locals["p"]["variablesReference"] > 0 and main_locals["p"]["type"] == "struct point"
    fields = client.call("variables", {"variablesReference": main_locals["p"]["variablesReference"]})["variables"]
    assert {f["name"]: f["value"] for f in fields if f["name"] != "label"} == {"x": "3", "y": "4"}
    assert '"origin"' in next(f["value"] for f in fields if f["name"] == "label")
    array = client.call("variables", {"variablesReference": main_locals["numbers"]["variablesReference"],
                                      "start": 1, "count": 2})["variables"]
    assert [(v["name"], v["value"]) for v in array] == [("1", "20"), ("2", "30")]

    for context in ("watch", "hover", "repl"):
        result = client.call("evaluate", {"expression": "p.x + answer", "frameId": frames[1]["id"],
                                          "context": context})
        assert result["result"] == "45", context
    struct_result = client.call("evaluate", {"expression": "p", "frameId": frames[1]["id"], "context": "watch"})
    assert struct_result["variablesReference"] > 0
    bad = client.request("evaluate", {"expression": "no_such_thing", "frameId": frames[1]["id"], "context": "watch"})
    assert not bad["success"] and "no_such_thing" in bad["message"]
    console = client.call("evaluate", {"expression": "info line", "frameId": frames[0]["id"], "context": "repl"})
    assert f"Line {line_of(SRC, 'add_body')}" in console["result"]

    client.call("continue", {"threadId": hit["threadId"]})
    assert client.wait_event("exited")["exitCode"] == 7
    client.wait_event("terminated")
    assert "answer=42 total=7 counter=5 numbers[1]=20\n" in client.output("stdout"), client.dump()


def test_set_variable_changes_what_the_payload_prints(dap, program):
    client = dap()
    launch(client, program, {"bps": [line_of(SRC, "print")]})
    hit = client.wait_event("stopped")
    frame = client.top_frame(hit["threadId"])
    assert frame["line"] == line_of(SRC, "print")
    scopes = client.call("scopes", {"frameId": frame["id"]})["scopes"]
    locals_ref = next(s for s in scopes if s["name"] == "Locals")["variablesReference"]
    assert client.call("setVariable", {"variablesReference": locals_ref, "name": "answer",
                                       "value": "99"})["value"] == "99"
    numbers_ref = client.locals_of(frame["id"])["numbers"]["variablesReference"]
    client.call("setVariable", {"variablesReference": numbers_ref, "name": "1", "value": "21"})
    values = {v["name"]: v["value"] for v in client.call("variables", {"variablesReference": locals_ref})["variables"]}
    assert values["answer"] == "99", client.dump()
    registers_ref = next(s for s in scopes if s["name"] == "Registers")["variablesReference"]
    assert client.call("setVariable", {"variablesReference": registers_ref, "name": "rax",
                                       "value": "0x1234"})["value"] == "0x1234"     # rax is dead between lines
    rax = client.call("evaluate", {"expression": "$rax", "frameId": frame["id"], "context": "watch"})["result"]
    assert rax == str(0x1234)
    client.call("continue", {"threadId": hit["threadId"]})
    client.wait_event("exited")
    assert "answer=99 total=7 counter=5 numbers[1]=21" in client.output("stdout"), client.dump()


def test_next_step_in_step_out_and_instruction_steps(dap, program):
    client = dap()
    launch(client, program, {"bps": [line_of(SRC, "call_add")]})
    tid = client.wait_event("stopped")["threadId"]

    client.call("stepIn", {"threadId": tid})
    assert client.wait_event("stopped")["reason"] == "step"
    frame = client.top_frame(tid)
    assert (frame["name"], frame["line"]) == ("add", line_of(SRC, "add_body")), client.dump()

    locals_ref = client.call("scopes", {"frameId": frame["id"]})["scopes"][0]["variablesReference"]

    client.call("next", {"threadId": tid})
    client.wait_event("stopped")
    assert client.top_frame(tid)["line"] == line_of(SRC, "add_ret")
    # VS Code's Variables view may still ask about the frame it showed before the step's stopped event: the
    # request fails without a notification (showUser false), and an id that never was one is still shown
    for command, arguments, message in (
            ("scopes", {"frameId": frame["id"]}, f"invalid frameId: {frame['id']} belongs to an earlier stop"),
            ("variables", {"variablesReference": locals_ref},
             f"invalid variablesReference: {locals_ref} belongs to an earlier stop")):
        reply = client.request(command, arguments, timeout_s=30)
        assert (reply["success"], reply["message"], reply["body"]["error"]["showUser"]) == (False, message, False)
    reply = client.request("scopes", {"frameId": 99999}, timeout_s=30)
    assert (reply["message"], reply["body"]["error"]["showUser"]) == ("invalid frameId: 99999 is not a frame of this "
                                                                      "stop", True)

    client.call("stepOut", {"threadId": tid})
    assert client.wait_event("stopped")["reason"] == "step"
    assert client.top_frame(tid)["name"] == "main"

    client.call("next", {"threadId": tid})
    client.wait_event("stopped")
    before = client.top_frame(tid)
    assert before["line"] == line_of(SRC, "after_add"), client.dump()

    client.call("stepIn", {"threadId": tid, "granularity": "instruction"})
    client.wait_event("stopped")
    after = client.top_frame(tid)
    assert int(after["instructionPointerReference"], 16) > int(before["instructionPointerReference"], 16)
    assert after["line"] == line_of(SRC, "after_add")
    client.call("next", {"threadId": tid, "granularity": "instruction"})
    client.wait_event("stopped")
    assert client.top_frame(tid)["instructionPointerReference"] != after["instructionPointerReference"]


def test_conditional_hit_count_and_log_point(dap, program):
    client = dap()
    loop = line_of(SRC, "bump_loop")
    launch(client, program, {"bps": [{"line": loop, "hitCondition": "3"}]})
    tid = client.wait_event("stopped")["threadId"]
    frame = client.top_frame(tid)
    assert frame["line"] == loop and client.locals_of(frame["id"])["i"]["value"] == "2", client.dump()
    client.call("setBreakpoints", {"source": {"path": marker_path(SRC)},
                                   "breakpoints": [{"line": loop, "condition": "i == 4"}]})
    client.call("continue", {"threadId": tid})
    client.wait_event("stopped")
    assert client.locals_of(client.top_frame(tid)["id"])["i"]["value"] == "4", client.dump()
    client.call("setBreakpoints", {"source": {"path": marker_path(SRC)}, "breakpoints": []})
    client.call("continue", {"threadId": tid})
    assert client.wait_event("exited")["exitCode"] == 7

    logger = dap()
    launch(logger, program, {"bps": [{"line": loop, "logMessage": "i is {i}, counter {counter}"}]})
    assert logger.wait_event("exited")["exitCode"] == 7
    logged = logger.output("console")
    assert all(f"i is {i}, counter {i}\n" in logged for i in range(5)), logger.dump()
    assert not [e for e in logger.all_events if e["event"] == "stopped"]


def test_function_and_instruction_breakpoints(dap, program):
    client = dap()
    launch(client, program, stopOnEntry=True)
    tid = client.wait_event("stopped")["threadId"]
    placed = client.call("setFunctionBreakpoints", {"breakpoints": [{"name": "bump"},
                                                                    {"name": "no_such_function"}]})["breakpoints"]
    assert placed[0]["verified"] and placed[0]["line"] == line_of(SRC, "bump_loop") - 1
    assert not placed[1]["verified"] and placed[1]["message"].startswith("pending"), client.dump()
    add_address = client.call("evaluate", {"expression": "(long) &add", "context": "watch"})["result"]
    client.call("setInstructionBreakpoints", {"breakpoints": [{"instructionReference": hex(int(add_address))}]})
    client.call("continue", {"threadId": tid})
    assert client.wait_event("stopped")["reason"] == "breakpoint"
    assert client.top_frame(tid)["name"] == "add"
    client.call("continue", {"threadId": tid})
    stop = client.wait_event("stopped")
    assert stop["hitBreakpointIds"] == [placed[0]["id"]] and client.top_frame(tid)["name"] == "bump"


def test_watchpoint_stops_where_the_global_changes(dap, program):
    client = dap()
    launch(client, program, stopOnEntry=True)
    tid = client.wait_event("stopped")["threadId"]
    frame = client.top_frame(tid)
    locals_ref = client.call("scopes", {"frameId": frame["id"]})["scopes"][0]["variablesReference"]
    point = client.locals_of(frame["id"])["p"]["variablesReference"]
    client.call("variables", {"variablesReference": point})
    assert client.call("dataBreakpointInfo", {"variablesReference": point, "name": "y"})["dataId"] == "(p).y"
    assert client.call("dataBreakpointInfo", {"variablesReference": locals_ref, "name": "answer"})["dataId"] \
        == "answer"
    info = client.call("dataBreakpointInfo", {"name": "counter"})
    assert info["dataId"] == "counter" and "write" in info["accessTypes"]
    placed = client.call("setDataBreakpoints", {"breakpoints": [{"dataId": info["dataId"],
                                                                  "accessType": "write"}]})["breakpoints"]
    assert placed[0]["verified"], client.dump()
    client.call("continue", {"threadId": tid})
    stop = client.wait_event("stopped")
    assert stop["reason"] == "data breakpoint" and stop["hitBreakpointIds"] == [placed[0]["id"]], client.dump()
    frame = client.top_frame(tid)
    assert frame["name"] == "bump"
    assert client.call("evaluate", {"expression": "counter", "frameId": frame["id"]})["result"] == "1"


def test_disassemble_read_and_write_memory(dap, program):
    client = dap()
    launch(client, program, {"bps": [line_of(SRC, "print")]})
    tid = client.wait_event("stopped")["threadId"]
    frame = client.top_frame(tid)
    pc = int(frame["instructionPointerReference"], 16)
    listed = client.call("disassemble", {"memoryReference": hex(pc), "instructionOffset": -4,
                                         "instructionCount": 10, "resolveSymbols": True})["instructions"]
    assert len(listed) == 10 and int(listed[4]["address"], 16) == pc, client.dump()
    assert listed[4]["line"] == line_of(SRC, "print") and listed[4]["symbol"].startswith("main+")
    assert all(row["instruction"] and row.get("presentationHint") != "invalid" for row in listed)
    assert all(int(a["address"], 16) < int(b["address"], 16) for a, b in zip(listed, listed[1:]))

    numbers = client.call("evaluate", {"expression": "&numbers[0]", "frameId": frame["id"], "context": "watch"})
    memory = client.call("readMemory", {"memoryReference": numbers["memoryReference"], "count": 16})
    assert struct.unpack("<4i", base64.b64decode(memory["data"])) == (10, 20, 30, 40)
    assert memory["unreadableBytes"] == 0
    client.call("writeMemory", {"memoryReference": numbers["memoryReference"], "offset": 4,
                                "data": base64.b64encode(struct.pack("<i", 77)).decode()})
    unmapped = client.call("readMemory", {"memoryReference": "0x8", "count": 8})
    assert unmapped["unreadableBytes"] == 8 and "data" not in unmapped
    client.call("continue", {"threadId": tid})
    client.wait_event("exited")
    assert "numbers[1]=77" in client.output("stdout"), client.dump()


def test_pause_a_spinning_payload_and_raw_gdb_commands(dap, program):
    client = dap()
    launch(client, program, args=["spin"])
    client.wait_output("answer=42")
    for _ in range(5):          # the output can arrive while printf is still returning: pause until in the loop
        client.call("pause", {"threadId": 1})
        stop = client.wait_event("stopped")
        assert stop["reason"] == "pause", client.dump()
        frame = client.top_frame(stop["threadId"])
        if frame["name"] == "main":
            break
        client.call("continue", {"threadId": stop["threadId"]})
    assert frame["name"] == "main" and frame["line"] in (line_of(SRC, "spin"), line_of(SRC, "spin") + 1)
    regs = client.call("evaluate", {"expression": "info registers rip", "context": "repl"})["result"]
    assert regs.startswith("rip"), client.dump()
    client.call("evaluate", {"expression": "spin_done = 1", "frameId": frame["id"], "context": "repl"})
    client.call("evaluate", {"expression": "-exec continue", "context": "repl"})
    client.wait_event("continued")
    assert client.wait_event("exited")["exitCode"] == 7
    assert "spin done\n" in client.output("stdout")


def test_restart_runs_the_payload_again_with_its_breakpoints(dap, program):
    client = dap()
    launch(client, program, {"bps": [line_of(SRC, "add_body")]})
    assert client.wait_event("stopped")["reason"] == "breakpoint"
    client.call("restart", {})
    stop = client.wait_event("stopped")
    assert stop["reason"] == "breakpoint" and client.top_frame(stop["threadId"])["name"] == "add", client.dump()
    client.call("restart", {"arguments": {"program": program, "kmPath": client.km_path, "args": ["spin"]}})
    client.wait_event("stopped")
    client.call("setBreakpoints", {"source": {"path": marker_path(SRC)}, "breakpoints": []})
    client.call("continue", {"threadId": stop["threadId"]})
    client.wait_output("answer=42")
    client.call("pause", {"threadId": stop["threadId"]})        # the restarted debuggee is known to be running
    stop = client.wait_event("stopped")
    assert stop["reason"] == "pause", client.dump()
    client.call("setBreakpoints", {"source": {"path": marker_path(SRC)},
                                   "breakpoints": [{"line": line_of(SRC, "add_body")}]})
    client.call("restart", {})
    stop = client.wait_event("stopped")
    assert stop["reason"] == "breakpoint" and client.top_frame(stop["threadId"])["name"] == "add", client.dump()
    modules = client.call("modules", {})["modules"]
    assert modules[0]["path"] == program
    sources = [s["path"] for s in client.call("loadedSources", {})["sources"]]
    assert marker_path(SRC) in sources
    client.call("terminate", {})
    client.wait_event("terminated")
