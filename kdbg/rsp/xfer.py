"""qXfer:<object>:read: the target description, auxv, the executable's path, the thread list, siginfo and the
loaded shared libraries (libraries-svr4).

Each object is a byte string produced on demand; gdb reads it in (offset, length) windows and the reply is
`m` (more follows) or `l` (last) plus binary-escaped data.
Spec: https://sourceware.org/gdb/current/onlinedocs/gdb.html/General-Query-Packets.html#qXfer-read
"""
from __future__ import annotations

from kdbg.link_map import NoDynamicSection
from kdbg.rsp import tdesc
from kdbg.rsp.tdesc import quoteattr
from kdbg.rsp.commands import command, hex_fields
from kdbg.rsp.errors import RspError
from kdbg.rsp.packets import escape
from kdbg.rsp.session import Session

MAX_CHUNK = 0x1000       # bytes per reply, before escaping (gdb asks for about PacketSize anyway)
ENOENT = 2


def _parse(rest: bytes) -> tuple[str, int, int]:
    annex, sep, window = rest.rpartition(b":")
    if not sep:
        raise ValueError("expected annex:offset,length")
    offset, length = hex_fields(b",")(window)
    return annex.decode("utf-8", "replace"), offset, length


def window(document: bytes, offset: int, length: int) -> bytes:
    """One reply for a read of `document` at offset: `l` once the end is reached."""
    if offset > len(document):
        raise RspError("offset beyond the end of the object")
    chunk = document[offset:offset + min(length, MAX_CHUNK)]
    last = offset + len(chunk) >= len(document)
    return (b"l" if last else b"m") + escape(chunk)


@command("qXfer:features:read", _parse)
def features(session: Session, annex: str, offset: int, length: int) -> bytes:
    try:
        return window(tdesc.read_annex(annex), offset, length)
    except KeyError:
        raise RspError(f"no target description {annex!r}", ENOENT) from None


@command("qXfer:auxv:read", _parse)
def auxv(session: Session, annex: str, offset: int, length: int) -> bytes:
    return window(session.target.auxv(), offset, length)


@command("qXfer:libraries-svr4:read", _parse)
def libraries_svr4(session: Session, annex: str, offset: int, length: int) -> bytes:
    """The loader's link_map list as gdbserver serves it, built when gdb asks (never at a stop) and cached per
    library change (kdbg.link_map.LibraryCache). A program without DT_DEBUG is E01, as gdbserver answers: gdb then
    looks for libraries itself. The annex (start=/prev=, augmented-libraries-svr4-read) is never sent: not offered."""
    try:
        document = session.libraries.document(session.target, live=session.control is not None)
    except NoDynamicSection:
        raise RspError("the program has no DT_DEBUG entry", 1) from None
    return window(document, offset, length)


@command("qXfer:exec-file:read", _parse)
def exec_file(session: Session, annex: str, offset: int, length: int) -> bytes:
    """The annex is a pid (hex) or empty (the current process)."""
    try:
        target = session.inferior(int(annex, 16) if annex else 0).target
    except (KeyError, ValueError):
        raise RspError(f"no process {annex}", ENOENT) from None
    path = target.exe_path()
    if not path:
        raise RspError("the executable's path is unknown", ENOENT)
    return window(path.encode(), offset, length)


def _threads_key(session: Session) -> tuple:
    """What the thread list document shows: the id format and each attached process's (tid, name) pairs."""
    return (session.multiprocess, tuple((inferior.pid, tuple([(tid, inferior.target.thread_name(tid))
                                                              for tid in inferior.target.threads()]))
                                        for inferior in session.attached_inferiors()))


def threads_xml(key: tuple, session: Session) -> bytes:
    """The thread list document of _threads_key's key."""
    items = []
    for pid, threads in key[1]:
        for tid, name in threads:
            attrs = (f'id="{session.format_tid(tid, pid).decode()}"'
                     + (f" name={quoteattr(name)}" if name else ""))
            items.append(f"<thread {attrs}/>")
    return ('<?xml version="1.0"?>\n<threads>\n' + "\n".join(items) + "\n</threads>\n").encode()


@command("qXfer:threads:read", _parse)
def threads(session: Session, annex: str, offset: int, length: int) -> bytes:
    """gdb reads the document after every stop, and the threads rarely change between two stepi: one cache, the
    session's, keeps the key, the document and the replies of the windows read; the document is made again only
    when a thread, a name or the id format changed."""
    key = _threads_key(session)
    cached = session.threads_document
    if cached is not None and cached[0] == key:
        document, replies = cached[1], cached[2]
    else:
        document, replies = threads_xml(key, session), {}
        session.threads_document = (key, document, replies)
    reply = replies.get((offset, length))
    if reply is None:
        reply = replies[offset, length] = window(document, offset, length)
    return reply


@command("qXfer:siginfo:read", _parse)
def siginfo(session: Session, annex: str, offset: int, length: int) -> bytes:
    """The stopped thread's siginfo_t (128 bytes); gdb decodes it with its linux siginfo type for $_siginfo."""
    data = session.target.siginfo(session.current_tid())
    if not data:
        raise RspError("no signal information for this thread", 1)
    return window(data, offset, length)

