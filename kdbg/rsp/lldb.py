"""lldb's extensions to the protocol, answered as lldb-server answers them: QListThreadsInStopReply (then T replies
carry `threads:` and the stopping thread's `hexname:`) and jThreadsInfo (every thread's name and frame registers
in one packet).

Thread names come from target.thread_name, the source gdb's qXfer:threads reads: Linux's comm (PR_SET_NAME /
pthread_setname_np, else the program's file name). lldb keeps a thread's name from the last packet that
described the thread and applies the stop reply after jThreadsInfo, so the stopping thread's name must be in the
stop reply too. gdb never sends these packets.
Spec: https://lldb.llvm.org/resources/lldbgdbremote.html
"""
from __future__ import annotations

import json

from kdbg.rsp.commands import command
from kdbg.rsp.packets import escape
from kdbg.rsp.registers import encode_value
from kdbg.rsp.resume import EXPEDITE, reply_signal
from kdbg.rsp.session import Session
from kdbg.target import TargetError

@command("QListThreadsInStopReply")
def list_threads_in_stop_reply(session: Session) -> bytes:
    """lldb will read the extended keys of T replies (kdbg.rsp.resume.stop_reply adds them from now on)."""
    session.lldb_stop_keys = True
    return b"OK"


@command("jThreadsInfo")
def threads_info(session: Session) -> bytes:
    """Every thread of the current process: tid, name, the signal of the thread that reported the stop (its T
    reply's, so lldb derives the same stop reason) and the frame registers of each stopped thread."""
    inferior = session.current
    stop = inferior.run.last_stop
    entries = []
    for tid in inferior.target.threads():
        entry: dict[str, object] = {"tid": tid}
        name = inferior.target.thread_name(tid)
        if name:
            entry["name"] = name
        if stop is not None and stop.tid == tid and (signal := reply_signal(session, stop)):
            entry["signal"] = signal        # as lldb-server, none for a signal 0 (a non-stop vCont;t park)
        if not session.non_stop or tid in inferior.run.ns_stopped:
            try:
                regs = inferior.target.registers(tid)
            except TargetError:
                regs = {}
            # the T reply's expedited set: lldb shows every thread's frame with no `p` round trip
            entry["registers"] = {str(reg.regnum): encode_value(reg, regs[name]).decode()
                                  for name, _, reg in EXPEDITE if name in regs}
        entries.append(entry)
    text = json.dumps(entries, separators=(",", ":"), ensure_ascii=False)
    return escape(text.encode(errors="surrogateescape"))
