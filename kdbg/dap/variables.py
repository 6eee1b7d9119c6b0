"""Variable references for one stop: scopes, lazily expanded structs and arrays, registers, watch expressions.

DAP hands out integer `variablesReference`s that stay valid only while the debuggee is stopped
(https://microsoft.github.io/debug-adapter-protocol/overview#lifetime-of-objects-references). Each one maps to a
scope of a frame or to a gdb/MI variable object, whose children gdb lists only when asked
(`-var-list-children`), so a struct or array costs nothing until the user expands it. `reset()` on every resume
deletes the variable objects and invalidates the references; in non-stop mode `reset(threads)` does so for the
threads that resume or stop alone (and for the frameless expressions, which any thread may change).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kdbg.arch.x86_64 import REGISTERS

from .errors import CantHandle, GdbError, InvalidArgument, OutdatedReference
from .gdb_backend import Gdb, mi_quote

# The register view: gdb's general registers plus the Linux/segment-base ones, in the arch table's order.
REGISTER_VIEW = tuple(r.name for r in REGISTERS if r.group == "general" or r.name in ("orig_rax", "fs_base",
                                                                                      "gs_base"))
_HEX = re.compile(r"0x[0-9a-fA-F]+")


def frame_options(thread_id: int | None, level: int | None) -> str:
    """MI's per-command thread/frame selection, so no command depends on gdb's 'current' frame."""
    if thread_id is None:
        return ""
    return f" --thread {thread_id} --frame {level or 0}"


@dataclass(frozen=True, slots=True)
class Scope:
    kind: str           # "locals", "arguments" or "registers"
    thread_id: int
    level: int


@dataclass(slots=True)
class Entry:
    """One row of a variables response; `varobj` is None for registers."""
    name: str
    value: str
    type: str
    varobj: str | None
    evaluate_name: str
    reference: int = 0

    def to_dap(self) -> dict[str, Any]:
        row = {"name": self.name, "value": self.value, "type": self.type, "variablesReference": self.reference,
               "evaluateName": self.evaluate_name}
        if "*" in self.type and (match := _HEX.match(self.value)):
            row["memoryReference"] = match.group(0)
        return row


@dataclass(slots=True)
class _VarNode:
    varobj: str
    evaluate_name: str
    type: str
    thread_id: int | None          # the thread of the frame its root was created in (None: no frame)


class Variables:
    """All references handed out since the last resume."""

    def __init__(self, gdb: Gdb) -> None:
        self._gdb = gdb
        self._refs: dict[int, Scope | _VarNode] = {}
        self._rows: dict[int, list[Entry]] = {}
        self._by_varobj: dict[str, Entry] = {}
        self._roots: dict[str, int | None] = {}       # root varobj -> its thread (None: created without a frame)
        self._last_reference = 0                       # never reused: a forgotten reference stays invalid
        self._is_stale = False

    def reset(self, thread_ids: set[int] | None = None) -> None:
        """Forget the references (of `thread_ids` and the frameless ones; None: all) and delete gdb's variable
        objects behind them: those threads are about to run, or stopped anew."""
        doomed = [root for root, thread in self._roots.items()
                  if thread_ids is None or thread is None or thread in thread_ids]
        for varobj in doomed:
            del self._roots[varobj]
            try:
                self._gdb.command(f"-var-delete {varobj}")
            except GdbError:
                pass
        if thread_ids is None:
            self._refs.clear()
            self._rows.clear()
            self._by_varobj.clear()
        else:
            gone = tuple(f"{root}." for root in doomed)
            for reference, target in list(self._refs.items()):
                if target.thread_id is None or target.thread_id in thread_ids:
                    del self._refs[reference]
                    self._rows.pop(reference, None)
            for varobj in [v for v in self._by_varobj if v in doomed or v.startswith(gone)]:
                del self._by_varobj[varobj]
        self._is_stale = False

    def scope_reference(self, kind: str, thread_id: int, level: int) -> int:
        return self._new_reference(Scope(kind, thread_id, level))

    def _new_reference(self, target: Scope | _VarNode) -> int:
        self._last_reference += 1
        reference = self._last_reference
        self._refs[reference] = target
        return reference

    def _check(self, reference: int) -> None:
        if reference in self._refs:
            return
        if 0 < reference <= self._last_reference:
            raise OutdatedReference("variablesReference", f"{reference} belongs to an earlier stop")
        raise InvalidArgument("variablesReference", f"{reference} is not valid at this stop")

    def variables(self, reference: int, start: int = 0, count: int = 0) -> list[dict[str, Any]]:
        """The rows under a reference; a varobj's children are listed on first request only."""
        self._check(reference)
        if self._is_stale:
            self._refresh()
        target = self._refs[reference]
        if isinstance(target, Scope) and target.kind == "registers":
            rows = self._registers(target)                 # always fresh: cheap and changed by setVariable
        elif reference not in self._rows:
            rows = self._rows[reference] = (self._scope_rows(target) if isinstance(target, Scope)
                                            else self._children(target))
        else:
            rows = self._rows[reference]
        rows = rows[start:start + count] if count else rows[start:]
        return [row.to_dap() for row in rows]

    def _scope_rows(self, scope: Scope) -> list[Entry]:
        listed = self._gdb.command(f"-stack-list-variables{frame_options(scope.thread_id, scope.level)} "
                                   "--no-values")["variables"]
        want_args = scope.kind == "arguments"
        rows = []
        for var in listed:
            if bool(var.get("arg")) == want_args:
                rows.append(self.create(var["name"], scope.thread_id, scope.level, name=var["name"]))
        return rows

    def create(self, expression: str, thread_id: int | None, level: int | None, name: str | None = None) -> Entry:
        """A root variable object for an expression in a frame; raises GdbError with gdb's own message."""
        options = frame_options(thread_id, level)
        try:
            created = self._gdb.command(f"-var-create{options} - * {mi_quote(expression)}")
        except GdbError:
            # -var-create's own message is generic; -data-evaluate-expression says what is wrong.
            self._gdb.command(f"-data-evaluate-expression{options} {mi_quote(expression)}")
            raise
        self._roots[created["name"]] = thread_id
        return self._entry(name or expression, created, expression, thread_id)

    def _entry(self, name: str, info: dict[str, Any], evaluate_name: str, thread_id: int | None) -> Entry:
        entry = Entry(name, info.get("value", ""), info.get("type", ""), info["name"], evaluate_name)
        if int(info.get("numchild", "0")) > 0 or info.get("dynamic") == "1":
            entry.reference = self._new_reference(_VarNode(info["name"], evaluate_name, entry.type, thread_id))
        self._by_varobj[info["name"]] = entry
        return entry

    def _children(self, node: _VarNode) -> list[Entry]:
        listed = self._gdb.command(f"-var-list-children --all-values {node.varobj}").get("children", [])
        rows = []
        for child in listed:
            info = child.get("child", child)
            rows.append(self._entry(info["exp"], info, _child_expression(node, info["exp"]), node.thread_id))
        return rows

    def _registers(self, scope: Scope) -> list[Entry]:
        names = self._gdb.command("-data-list-register-names")["register-names"]
        numbers = [str(names.index(n)) for n in REGISTER_VIEW if n in names]
        values = self._gdb.command(f"-data-list-register-values{frame_options(scope.thread_id, scope.level)} "
                                   f"x {' '.join(numbers)}")["register-values"]
        return [Entry(names[int(v["number"])], v["value"], "register", None, f"${names[int(v['number'])]}")
                for v in values]

    def _refresh(self) -> None:
        """After an assignment, let gdb say which variable objects changed and update their rows."""
        for change in self._gdb.command("-var-update --all-values *").get("changelist", []):
            entry = self._by_varobj.get(change.get("name"))
            if entry is not None and "value" in change:
                entry.value = change["value"]
        self._is_stale = False

    def lookup(self, reference: int, name: str) -> tuple[Scope | _VarNode, Entry | None]:
        """The container of a reference and its row called `name` (listing the container if needed)."""
        self._check(reference)
        target = self._refs[reference]
        if isinstance(target, Scope) and target.kind == "registers":
            return target, None
        self.variables(reference)
        return target, next((row for row in self._rows[reference] if row.name == name), None)

    def set_variable(self, reference: int, name: str, value: str) -> dict[str, Any]:
        target, entry = self.lookup(reference, name)
        if isinstance(target, Scope) and target.kind == "registers":
            options = frame_options(target.thread_id, target.level)
            self._gdb.command(f"-data-evaluate-expression{options} {mi_quote(f'${name} = {value}')}")
            row = next((r for r in self._registers(target) if r.name == name), None)
            if row is None:
                raise InvalidArgument("name", f"no register {name!r} in the register view")
            return {"value": row.value}
        if entry is None:
            raise InvalidArgument("name", f"no variable {name!r} in this container")
        assigned = self._gdb.command(f"-var-assign {entry.varobj} {mi_quote(value)}")
        entry.value = assigned["value"]
        self._is_stale = True
        return {"value": entry.value, "type": entry.type, "variablesReference": entry.reference}

    def watch_expression(self, reference: int | None, name: str) -> str:
        """The expression a data breakpoint on `name` watches (dataBreakpointInfo's dataId)."""
        if not reference:
            return name
        target, entry = self.lookup(reference, name)
        if entry is None or entry.varobj is None:
            raise CantHandle(f"{name} cannot be watched (registers and unknown names have no address)")
        return self._gdb.command(f"-var-info-path-expression {entry.varobj}")["path_expr"]


def _child_expression(parent: _VarNode, exp: str) -> str:
    """An expression for a child row (DAP evaluateName), derived as gdb's -var-info-path-expression would."""
    if parent.type.rstrip().endswith("*"):
        return exp if exp.startswith("*") else f"({parent.evaluate_name})->{exp}"
    if exp.isdigit() and "[" in parent.type:
        return f"{parent.evaluate_name}[{exp}]"
    return f"({parent.evaluate_name}).{exp}"
