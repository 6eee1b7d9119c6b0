"""The DAP fuzzer: hostile messages for kdbg-dap, from a seed.

Malformed Content-Length frames (missing, negative, not a number, shorter or longer than the body, junk headers),
bodies that are not JSON or not an object, requests with the wrong type in each argument of each command, requests
out of order (stackTrace before launch, variables with stale references, setBreakpoints on files that do not
exist) and disconnects in the middle of a frame. Every well-framed request must get a response (failed or not)
before the stream is cut; after a cut the adapter must exit on its own, cleanly (no traceback).
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from harness.dap import frame

COMMANDS = ["initialize", "launch", "attach", "configurationDone", "setBreakpoints", "setFunctionBreakpoints",
            "setInstructionBreakpoints", "setExceptionBreakpoints", "dataBreakpointInfo", "setDataBreakpoints",
            "threads", "stackTrace", "scopes", "variables", "setVariable", "evaluate", "exceptionInfo",
            "disassemble", "readMemory", "writeMemory", "loadedSources", "modules", "continue", "next", "stepIn",
            "stepOut", "pause", "source", "restart", "completions", "goto", "reverseContinue", "bogusCommand", ""]
# Commands that resume or end the debuggee: only with arguments that must be refused (see hostile_request).
RESUMING = {"continue", "next", "stepIn", "stepOut", "restart", "launch", "attach"}
ARGUMENT_NAMES = ["threadId", "frameId", "variablesReference", "source", "breakpoints", "lines", "program", "args",
                  "kmPath", "expression", "context", "memoryReference", "offset", "count", "instructionCount",
                  "name", "value", "filters", "startFrame", "levels", "granularity", "data", "cwd", "env",
                  "stopOnEntry", "port", "host", "sourceReference", "format", "terminateDebuggee"]


def wrong_value(r: random.Random) -> Any:
    return r.choice([None, True, -1, 2 ** 63, 1.5, "", "x" * r.choice([1, 300, 5000]), [], [1, "a", None], {},
                     {"path": 5}, {"path": "/nonexistent/x.c"}, {"line": "ten"}, [{"line": -3}], "\x00",
                     {"a": {"b": {"c": []}}}, 0, 99999])


def hostile_request(r: random.Random, seq: int, stale: list[int]) -> dict:
    """A request whose arguments have the wrong types, or point at nothing (stale references)."""
    command = r.choice(COMMANDS)
    arguments: dict[str, Any] = {}
    for name in r.sample(ARGUMENT_NAMES, r.randrange(0, 5)):
        arguments[name] = wrong_value(r)
    if r.random() < 0.3 and stale:
        arguments[r.choice(["variablesReference", "frameId", "threadId"])] = r.choice(stale)
    if command == "setBreakpoints" and r.random() < 0.5:
        arguments["source"] = {"path": r.choice(["/nonexistent/file.c", "", "relative.c", "/etc"])}
        arguments["breakpoints"] = [{"line": r.choice([1, 0, -1, 10 ** 9])}]
    if command in RESUMING:     # a thread that does not exist, a program that is not one: refused, never run
        arguments["threadId"] = r.choice([-1, 10 ** 9, "1", None])
        arguments["program"] = r.choice([5, [], "/nonexistent/prog", ""])
        arguments["kmPath"] = "/nonexistent/km"
        arguments["port"] = r.choice(["x", -1, 0])
    message: dict[str, Any] = {"seq": seq, "type": "request", "command": command}
    if r.random() < 0.9:
        message["arguments"] = arguments if r.random() < 0.9 else wrong_value(r)
    return message


@dataclass
class Send:
    data: bytes
    seq: int | None = None        # a well-framed request that must be answered
    cuts: bool = False            # the stream cannot be followed past it (a broken header, a short body)


def message(r: random.Random, seq: int, stale: list[int]) -> Send:
    k = r.random()
    if k < 0.62:
        return Send(frame(json.dumps(hostile_request(r, seq, stale)).encode()), seq)
    if k < 0.72:                                           # not JSON, or JSON that is not an object
        body = r.choice([b"{", b"not json", b"\xff\xfe\x00", b"[1,2]", b"42", b"null", b'"str"', b"{}" * 3,
                         json.dumps({"type": "request"}).encode(), json.dumps({"seq": "x", "type": 5}).encode()])
        return Send(frame(body))
    if k < 0.80:                                           # a request whose seq or type is wrong
        body = json.dumps({"seq": r.choice(["1", None, -5, 1.5, [1]]), "type": r.choice(["request", "event", 3]),
                           "command": r.choice(COMMANDS[:5] + [7, None])}).encode()
        return Send(frame(body))
    if k < 0.85:
        return Send(b"\r\n" * r.randrange(1, 4))           # stray blank lines
    if k < 0.95:                                           # an extra header, in any case
        body = json.dumps(hostile_request(r, seq, stale)).encode()
        return Send(b"X-Junk: 1\r\ncontent-LENGTH: %d\r\n\r\n" % len(body) + body, seq)
    # the rest cuts the stream
    body = json.dumps(hostile_request(r, seq, stale)).encode()
    return Send(r.choice([
        b"Content-Length: -5\r\n\r\n" + body,
        b"Content-Length: abc\r\n\r\n" + body,
        b"Content-Length: %d\r\n\r\n" % (len(body) + 1000) + body,     # longer than the body: waits for more
        b"Content-Length: 99999999999\r\n\r\n" + body,
        b"\xff\xfe binary junk without a header\r\n\r\n",
        frame(body)[:r.randrange(1, len(body))],                         # a frame cut in the middle
        b"Content-Length: 10\r\n",                                       # a header cut before its blank line
    ]), cuts=True)


@dataclass
class Episode:
    sends: list[Send] = field(default_factory=list)


def episodes(seed: int, count: int, stale: list[int] | None = None) -> list[Episode]:
    """`count` messages in episodes, each ending at a cut or a disconnect (stdin closed)."""
    r = random.Random(seed)
    out, current, seq = [], Episode(), 1000
    for _ in range(count):
        seq += 1
        send = message(r, seq, stale or [])
        current.sends.append(send)
        if send.cuts or r.random() < 0.02:
            out.append(current)
            current = Episode()
    if current.sends:
        out.append(current)
    return out


def session_requests(seed: int, count: int) -> list[tuple[str, dict]]:
    """Hostile (command, arguments) for a live session stopped at a breakpoint: nothing that resumes or ends it."""
    r = random.Random(seed)
    out = []
    while len(out) < count:
        request = hostile_request(r, 0, [1, 2, 3, 1000, 1001])
        if request["command"] in RESUMING | {"pause"} or not isinstance(request.get("arguments"), dict):
            continue
        out.append((request["command"], request["arguments"]))
    return out
