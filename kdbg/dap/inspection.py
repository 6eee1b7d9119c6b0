"""The DAP requests that look at a stopped debuggee or set breakpoints on it: threads, stackTrace, scopes,
variables, setVariable, evaluate, exceptionInfo, disassemble, readMemory/writeMemory, loadedSources, modules,
and the set*Breakpoints family. A mixin of `Session`, which provides `require_gdb`, `vars`, `breakpoints`,
`frames` and `last_stop`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from . import disassembly, memory
from .errors import CantHandle, DapError, GdbError, InvalidArgument

MAX_STACK_DEPTH = 4096


class InspectionRequests:
    # --- threads and frames ---------------------------------------------------------------------------------
    def threads_request(self, args: dict[str, Any]) -> dict[str, Any]:
        """VS Code asks for threads right after a resume too; gdb (all-stop) refuses to list them while the
        payload runs, so the last list is the answer then."""
        if self.gdb is None or self.has_exited:
            return {"threads": []}
        known = getattr(self, "_known_threads", None) or [{"id": 1, "name": "main"}]   # gdb's first thread
        if self.is_running:
            return {"threads": known}
        try:
            listed = self.require_gdb().command("-thread-info").get("threads", [])
        except Exception:
            if self.is_running or known:
                return {"threads": known}
            raise
        self._known_threads = [{"id": int(t["id"]), "name": t.get("name") or t.get("target-id") or
                                f"thread {t['id']}"} for t in listed]
        return {"threads": self._known_threads}

    def stackTrace_request(self, args: dict[str, Any]) -> dict[str, Any]:
        gdb = self.require_gdb()
        thread_id = int(args.get("threadId", 1))
        start, levels = int(args.get("startFrame") or 0), int(args.get("levels") or 0)
        depth = int(gdb.command(f"-stack-info-depth --thread {thread_id} {MAX_STACK_DEPTH}")["depth"])
        end = depth if not levels else min(depth, start + levels)
        if start >= end:
            return {"stackFrames": [], "totalFrames": depth}
        listed = gdb.command(f"-stack-list-frames --thread {thread_id} {start} {end - 1}")["stack"]
        frames = []
        for item in listed:
            frame = item.get("frame", item)
            frame_id = len(self.frames) + 1
            self.frames[frame_id] = (thread_id, int(frame["level"]))
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
        if frame_id not in self.frames:
            raise InvalidArgument("frameId", f"{frame_id} is not a frame of this stop")
        return self.frames[frame_id]

    def scopes_request(self, args: dict[str, Any]) -> dict[str, Any]:
        thread_id, level = self._frame(args.get("frameId"))
        if thread_id is None:
            raise InvalidArgument("frameId", "missing")
        return {"scopes": [
            {"name": "Locals", "presentationHint": "locals", "expensive": False,
             "variablesReference": self.vars.scope_reference("locals", thread_id, level)},
            {"name": "Arguments", "presentationHint": "arguments", "expensive": False,
             "variablesReference": self.vars.scope_reference("arguments", thread_id, level)},
            {"name": "Registers", "presentationHint": "registers", "expensive": False,
             "variablesReference": self.vars.scope_reference("registers", thread_id, level)}]}

    # --- values ---------------------------------------------------------------------------------------------
    def variables_request(self, args: dict[str, Any]) -> dict[str, Any]:
        self.require_gdb()
        if args.get("filter") == "indexed":
            return {"variables": []}
        return {"variables": self.vars.variables(int(args.get("variablesReference", 0)),
                                                 int(args.get("start") or 0), int(args.get("count") or 0))}

    def setVariable_request(self, args: dict[str, Any]) -> dict[str, Any]:
        self.require_gdb()
        if "value" not in args:
            raise InvalidArgument("value", "missing")
        return self.vars.set_variable(int(args.get("variablesReference", 0)), str(args.get("name", "")),
                                      str(args["value"]))

    def evaluate_request(self, args: dict[str, Any]) -> dict[str, Any]:
        """watch/hover/repl evaluate C expressions; the repl also runs gdb commands (`-exec cmd`, or any text
        that is not an expression), as cppdbg's debug console does."""
        gdb = self.require_gdb()
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

    def exceptionInfo_request(self, args: dict[str, Any]) -> dict[str, Any]:
        stop = self.last_stop
        if stop.get("reason") != "signal-received":
            raise CantHandle(f"thread {args.get('threadId')} did not stop on a signal")
        name, meaning = stop.get("signal-name", "signal"), stop.get("signal-meaning", "")
        return {"exceptionId": name, "description": meaning, "breakMode": "always",
                "details": {"message": f"{name}, {meaning}", "typeName": "signal"}}

    # --- memory and code ------------------------------------------------------------------------------------
    def disassemble_request(self, args: dict[str, Any]) -> dict[str, Any]:
        gdb = self.require_gdb()
        address = memory.parse_reference(args.get("memoryReference"), int(args.get("offset") or 0))
        count = int(args.get("instructionCount") or 0)
        if count <= 0:
            raise InvalidArgument("instructionCount", "must be positive")
        listed = disassembly.disassemble(lambda addr, size: memory.read_block(gdb, addr, size), address,
                                         int(args.get("instructionOffset") or 0), count,
                                         str(self.config.get("disassemblyFlavor") or "att"))
        code = [item for item in listed if isinstance(item, disassembly.Instruction)]
        lines = memory.line_table(gdb, code[0].address, code[-1].address + code[-1].size) if code else {}
        return {"instructions": disassembly.to_dap(listed, lines)}

    def readMemory_request(self, args: dict[str, Any]) -> dict[str, Any]:
        address = memory.parse_reference(args.get("memoryReference"), int(args.get("offset") or 0))
        return memory.read_memory(self.require_gdb(), address, int(args.get("count") or 0))

    def writeMemory_request(self, args: dict[str, Any]) -> dict[str, Any]:
        address = memory.parse_reference(args.get("memoryReference"), int(args.get("offset") or 0))
        return memory.write_memory(self.require_gdb(), address, str(args.get("data", "")))

    def loadedSources_request(self, args: dict[str, Any]) -> dict[str, Any]:
        files = self.require_gdb().command("-file-list-exec-source-files").get("files", [])
        paths = dict.fromkeys(f.get("fullname") or f.get("file") for f in files)
        return {"sources": [{"name": Path(p).name, "path": p} for p in paths if p]}

    def modules_request(self, args: dict[str, Any]) -> dict[str, Any]:
        """A static payload is one module: the program (km loads no shared libraries)."""
        program = self.config.get("program")
        if not program:
            return {"modules": [], "totalModules": 0}
        return {"modules": [{"id": 1, "name": Path(program).name, "path": str(Path(program).resolve()),
                             "symbolStatus": "Symbols loaded."}], "totalModules": 1}

    # --- breakpoints ----------------------------------------------------------------------------------------
    def setBreakpoints_request(self, args: dict[str, Any]) -> dict[str, Any]:
        self.require_gdb()
        path = (args.get("source") or {}).get("path")
        if not path:
            raise InvalidArgument("source.path", "missing")
        wanted = args.get("breakpoints")
        if wanted is None:                                   # the deprecated form: lines only
            wanted = [{"line": line} for line in args.get("lines", [])]
        return {"breakpoints": self.breakpoints.replace(f"source:{path}", wanted,
                                                        lambda bp: f"{path}:{int(bp['line'])}")}

    def setFunctionBreakpoints_request(self, args: dict[str, Any]) -> dict[str, Any]:
        self.require_gdb()
        return {"breakpoints": self.breakpoints.replace("function", args.get("breakpoints", []),
                                                        lambda bp: str(bp["name"]))}

    def setInstructionBreakpoints_request(self, args: dict[str, Any]) -> dict[str, Any]:
        self.require_gdb()
        return {"breakpoints": self.breakpoints.replace(
            "instruction", args.get("breakpoints", []),
            lambda bp: f"*{memory.parse_reference(bp.get('instructionReference'), int(bp.get('offset') or 0)):#x}")}

    def setExceptionBreakpoints_request(self, args: dict[str, Any]) -> dict[str, Any]:
        filters = list(args.get("filters") or [])
        if self.gdb is not None:
            self.breakpoints.set_signal_filters(filters)
        self._signal_filters = filters
        return {"breakpoints": [{"verified": True} for _ in filters]}

    def dataBreakpointInfo_request(self, args: dict[str, Any]) -> dict[str, Any]:
        self.require_gdb()
        try:
            expression = self.vars.watch_expression(args.get("variablesReference"), str(args.get("name", "")))
        except DapError as exc:
            return {"dataId": None, "description": str(exc)}
        return {"dataId": expression, "description": expression, "accessTypes": ["write", "read", "readWrite"],
                "canPersist": True}

    def setDataBreakpoints_request(self, args: dict[str, Any]) -> dict[str, Any]:
        self.require_gdb()
        return {"breakpoints": self.breakpoints.replace("data", args.get("breakpoints", []),
                                                        lambda bp: str(bp["dataId"]))}
