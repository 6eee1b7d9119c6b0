"""The DAP requests that look at a stopped debuggee or set breakpoints on it: stackTrace, scopes, variables,
setVariable, evaluate, exceptionInfo, disassemble, readMemory/writeMemory, loadedSources, modules, and the
set*Breakpoints family. One `Inspection` per gdb, built with the collaborators it reads; the session's state
gate (lifecycle.Needs) has already decided that the request can be served.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from . import disassembly, memory
from .arguments import integer, mapping, objects
from .breakpoints import Breakpoints
from .errors import CantHandle, DapError, GdbError, InvalidArgument, OutdatedReference
from .gdb_backend import Gdb
from .lifecycle import Needs, Stop
from .registry import request
from .variables import Variables

MAX_STACK_DEPTH = 4096


class Inspection:
    def __init__(self, gdb: Gdb, variables: Variables, breakpoints: Breakpoints, stop: Stop,
                 config: dict[str, Any]) -> None:
        self.gdb, self.vars, self.breakpoints = gdb, variables, breakpoints
        self.stop = stop
        self.config = config

    # --- frames ---------------------------------------------------------------------------------------------
    @request(Needs.STOPPED, "supportsDelayedStackTraceLoading")
    def stackTrace_request(self, args: dict[str, Any]) -> dict[str, Any]:
        gdb = self.gdb
        thread_id = integer(args, "threadId", 1)
        start, levels = integer(args, "startFrame", 0), integer(args, "levels", 0)
        depth = int(gdb.command(f"-stack-info-depth --thread {thread_id} {MAX_STACK_DEPTH}")["depth"])
        end = depth if not levels else min(depth, start + levels)
        if start >= end:
            return {"stackFrames": [], "totalFrames": depth}
        listed = gdb.command(f"-stack-list-frames --thread {thread_id} {start} {end - 1}")["stack"]
        frames = []
        for item in listed:
            frame = item.get("frame", item)
            frame_id = self.stop.add_frame(thread_id, int(frame["level"]))
            row: dict[str, Any] = {"id": frame_id, "name": frame.get("func") or frame.get("addr", "??"),
                                   "line": int(frame.get("line", 0)), "column": 1 if "line" in frame else 0,
                                   "instructionPointerReference": frame.get("addr")}
            if "fullname" in frame:
                row["source"] = {"name": Path(frame["fullname"]).name, "path": frame["fullname"]}
            else:
                row["presentationHint"] = "subtle"
            frames.append(row)
        return {"stackFrames": frames, "totalFrames": depth}

    def _frame(self, frame_id: Any) -> tuple[int | None, int | None]:
        if frame_id is None:
            return None, None
        if isinstance(frame_id, int) and 0 < frame_id <= self.stop.last_frame_id and frame_id not in self.stop.frames:
            raise OutdatedReference("frameId", f"{frame_id} belongs to an earlier stop")
        if not isinstance(frame_id, int) or frame_id not in self.stop.frames:
            raise InvalidArgument("frameId", f"{frame_id} is not a frame of this stop")
        return self.stop.frames[frame_id]

    @request(Needs.STOPPED)
    def scopes_request(self, args: dict[str, Any]) -> dict[str, Any]:
        thread_id, level = self._frame(args.get("frameId"))
        if thread_id is None or level is None:
            raise InvalidArgument("frameId", "missing")
        return {"scopes": [
            {"name": "Locals", "presentationHint": "locals", "expensive": False,
             "variablesReference": self.vars.scope_reference("locals", thread_id, level)},
            {"name": "Arguments", "presentationHint": "arguments", "expensive": False,
             "variablesReference": self.vars.scope_reference("arguments", thread_id, level)},
            {"name": "Registers", "presentationHint": "registers", "expensive": False,
             "variablesReference": self.vars.scope_reference("registers", thread_id, level)}]}

    # --- values ---------------------------------------------------------------------------------------------
    @request(Needs.STOPPED)
    def variables_request(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("filter") == "indexed":
            return {"variables": []}
        return {"variables": self.vars.variables(integer(args, "variablesReference", 0),
                                                 integer(args, "start", 0), integer(args, "count", 0))}

    @request(Needs.STOPPED, "supportsSetVariable")
    def setVariable_request(self, args: dict[str, Any]) -> dict[str, Any]:
        if "value" not in args:
            raise InvalidArgument("value", "missing")
        return self.vars.set_variable(integer(args, "variablesReference", 0), str(args.get("name", "")),
                                      str(args["value"]))

    @request(Needs.DEBUGGEE, "supportsEvaluateForHovers")
    def evaluate_request(self, args: dict[str, Any]) -> dict[str, Any]:
        """watch/hover/repl evaluate C expressions; the repl also runs gdb commands (`-exec cmd`, or any text
        that is not an expression), as cppdbg's debug console does."""
        gdb = self.gdb
        expression = str(args.get("expression", "")).strip()
        if not expression:
            raise InvalidArgument("expression", "empty")
        thread_id, level = self._frame(args.get("frameId"))
        if args.get("context") == "repl" and expression.startswith("-exec "):
            return {"result": gdb.console(expression[6:]).rstrip("\n"), "variablesReference": 0}
        try:
            entry = self.vars.create(expression, thread_id, level)
        except GdbError as not_an_expression:
            if args.get("context") != "repl":
                raise
            try:
                return {"result": gdb.console(expression).rstrip("\n"), "variablesReference": 0}
            except GdbError:
                raise not_an_expression from None
        row = entry.to_dap()
        body = {"result": row["value"], "type": row["type"], "variablesReference": row["variablesReference"]}
        if "memoryReference" in row:
            body["memoryReference"] = row["memoryReference"]
        return body

    @request(Needs.STOPPED, "supportsExceptionInfoRequest")
    def exceptionInfo_request(self, args: dict[str, Any]) -> dict[str, Any]:
        thread_id = args.get("threadId")
        stop = self.stop.records.get(thread_id, self.stop.record) if isinstance(thread_id, int) else self.stop.record
        if stop.get("reason") != "signal-received":
            raise CantHandle(f"thread {args.get('threadId')} did not stop on a signal")
        name, meaning = stop.get("signal-name", "signal"), stop.get("signal-meaning", "")
        return {"exceptionId": name, "description": meaning, "breakMode": "always",
                "details": {"message": f"{name}, {meaning}", "typeName": "signal"}}

    # --- memory and code ------------------------------------------------------------------------------------
    @request(Needs.STOPPED, "supportsDisassembleRequest")
    def disassemble_request(self, args: dict[str, Any]) -> dict[str, Any]:
        gdb = self.gdb
        address = memory.parse_reference(args.get("memoryReference"), integer(args, "offset", 0))
        count = integer(args, "instructionCount", 0)
        if count <= 0:
            raise InvalidArgument("instructionCount", "must be positive")
        listed = disassembly.disassemble(lambda addr, size: memory.read_block(gdb, addr, size), address,
                                         integer(args, "instructionOffset", 0), count,
                                         str(self.config.get("disassemblyFlavor") or "att"))
        code = [item for item in listed if isinstance(item, disassembly.Instruction)]
        lines = memory.line_table(gdb, code[0].address, code[-1].address + code[-1].size) if code else {}
        return {"instructions": disassembly.to_dap(listed, lines)}

    @request(Needs.STOPPED, "supportsReadMemoryRequest")
    def readMemory_request(self, args: dict[str, Any]) -> dict[str, Any]:
        address = memory.parse_reference(args.get("memoryReference"), integer(args, "offset", 0))
        return memory.read_memory(self.gdb, address, integer(args, "count", 0))

    @request(Needs.STOPPED, "supportsWriteMemoryRequest")
    def writeMemory_request(self, args: dict[str, Any]) -> dict[str, Any]:
        address = memory.parse_reference(args.get("memoryReference"), integer(args, "offset", 0))
        return memory.write_memory(self.gdb, address, str(args.get("data", "")))

    @request(Needs.DEBUGGEE, "supportsLoadedSourcesRequest")
    def loadedSources_request(self, args: dict[str, Any]) -> dict[str, Any]:
        files = self.gdb.command("-file-list-exec-source-files").get("files", [])
        paths = dict.fromkeys(f.get("fullname") or f.get("file") for f in files)
        return {"sources": [{"name": Path(p).name, "path": p} for p in paths if p]}

    @request(Needs.DEBUGGEE, "supportsModulesRequest")
    def modules_request(self, args: dict[str, Any]) -> dict[str, Any]:
        """The program, then each shared library gdb knows of (a dynamic payload's, as `info sharedlibrary`)."""
        program = self.config.get("program")
        if not program:
            return {"modules": [], "totalModules": 0}
        modules: list[dict[str, Any]] = [{"id": 1, "name": Path(program).name, "path": str(Path(program).resolve()),
                                          "symbolStatus": "Symbols loaded."}]
        for lib in self.gdb.command("-file-list-shared-libraries").get("shared-libraries", []):
            path = lib.get("host-name") or lib.get("id", "")
            row: dict[str, Any] = {"id": len(modules) + 1, "name": Path(path).name, "path": path,
                                   "symbolStatus": "Symbols loaded." if lib.get("symbols-loaded") == "1"
                                   else "Symbols not found."}
            ranges = lib.get("ranges") or []
            if ranges:
                row["addressRange"] = f"{ranges[0]['from']}-{ranges[-1]['to']}"
            modules.append(row)
        return {"modules": modules, "totalModules": len(modules)}

    # --- breakpoints ----------------------------------------------------------------------------------------
    @request(Needs.DEBUGGEE, "supportsConditionalBreakpoints", "supportsHitConditionalBreakpoints",
             "supportsLogPoints")
    def setBreakpoints_request(self, args: dict[str, Any]) -> dict[str, Any]:
        path = mapping(args, "source").get("path")
        if not path or not isinstance(path, str):
            raise InvalidArgument("source.path", "missing")
        wanted = objects(args, "breakpoints") if args.get("breakpoints") is not None else None
        if wanted is None:                                   # the deprecated form: lines only
            lines = args.get("lines") or []
            if not isinstance(lines, list):
                raise InvalidArgument("lines", "must be a list of integers")
            wanted = [{"line": line} for line in lines]
        return {"breakpoints": self.breakpoints.replace(f"source:{path}", wanted,
                                                        lambda bp: f"{path}:{int(bp['line'])}")}

    @request(Needs.DEBUGGEE, "supportsFunctionBreakpoints")
    def setFunctionBreakpoints_request(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"breakpoints": self.breakpoints.replace("function", objects(args, "breakpoints"),
                                                        lambda bp: str(bp["name"]))}

    @request(Needs.DEBUGGEE, "supportsInstructionBreakpoints")
    def setInstructionBreakpoints_request(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"breakpoints": self.breakpoints.replace(
            "instruction", objects(args, "breakpoints"),
            lambda bp: f"*{memory.parse_reference(bp.get('instructionReference'), int(bp.get('offset') or 0)):#x}")}

    @request(Needs.STOPPED)
    def dataBreakpointInfo_request(self, args: dict[str, Any]) -> dict[str, Any]:
        reference = integer(args, "variablesReference", 0)
        try:
            expression = self.vars.watch_expression(reference, str(args.get("name", "")))
        except DapError as exc:
            return {"dataId": None, "description": str(exc)}
        return {"dataId": expression, "description": expression, "accessTypes": ["write", "read", "readWrite"],
                "canPersist": True}

    @request(Needs.DEBUGGEE, "supportsDataBreakpoints")
    def setDataBreakpoints_request(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"breakpoints": self.breakpoints.replace("data", objects(args, "breakpoints"),
                                                        lambda bp: str(bp["dataId"]))}
