"""A rehearsal of gdb's connect, made by the stub before gdb connects (km -g: the payload parked at its entry).

gdb's `target remote` + `break main` + `continue` is ~90 packets, most of them answered once. A stub whose packet
path has never run answers each first one in two to four times what the same answer costs later: replayed against
km, gdb's connect requests cost ~1.4 ms more the first time than a second time, even with a whole gdb start-up in
between (CPU caches gone, the interpreter's warm state kept), where gdbserver costs the same both times. km -g has
~0.1 s before gdb's first packet arrives (gdb's own start-up), so the stub answers the same read-only requests
once, to itself, over a loopback TCP connection, through the real framing, dispatch and handlers, on a throw-away
Session. Nothing a gdb can see changes: no packet that writes memory or registers, resumes, sets what the target
reports or takes a stop event is rehearsed, and the throw-away session's host files are closed. gdb's first
continue is not rehearsed (it runs the payload), but what its run on the stub's thread would make first is made
here (QuickResumeTarget.prepare_quick_resume: a timer, the vCPU run's arguments: ~0.1 ms of the first continue).
"""
from __future__ import annotations

import socket

from kdbg.arch.linux import AT_PHDR, parse_auxv
from kdbg.rsp import hostio
from kdbg.rsp.commands import dispatch
from kdbg.rsp.connection import Connection
from kdbg.rsp.fds import own_socket
from kdbg.rsp.packets import encode_packet
from kdbg.rsp.session import Inferior, RunState, Session
from kdbg.target import QuickResumeTarget
from kdbg.tracelog import logger

log = logger("km.gdb")

_PHDR_READS = 6          # program-header reads rehearsed (0x38 bytes each, one per header from AT_PHDR on)

# What gdb 13 asks while it connects and runs to main, less what changes state (Z/z, vCont;c, Q settings that
# reach the target, `?`, which reports the pending stop): in gdb's order.
_REQUESTS = (
    b"vMustReplyEmpty", b"QStartNoAckMode", b"Hgp0.0",
    b"qXfer:features:read:target.xml:0,1000", b"qXfer:features:read:target.xml:1000,1000", b"qTStatus",
    b"qXfer:threads:read::0,1000", b"qAttached:%(pid)x", b"qXfer:exec-file:read:%(pid)x:0,1000", b"Hc-1",
    b"qOffsets", b"qXfer:libraries-svr4:read::0,1000", b"qXfer:auxv:read::0,1000",
    b"vFile:setfs:0", b"vFile:open:%(maps)s,0,1c0", b"vFile:pread:0,10000,0", b"vFile:close:0",
    b"qSymbol::", b"QPassSignals:e;10;14;17;1a;1b;1c;21;24;25;2c;4c;97;", b"vCont?",
)


def requests(inferior: Inferior) -> list[bytes]:
    """The rehearsed requests for this process (its pid; its program headers' address from the auxv)."""
    pid = inferior.pid
    maps = f"/proc/{pid}/task/{pid}/maps".encode().hex().encode()
    out = [r % {b"pid": pid, b"maps": maps} if b"%" in r else r for r in _REQUESTS]
    phdr = parse_auxv(inferior.target.auxv()).get(AT_PHDR)
    if phdr:
        out += [b"m%x,38" % (phdr + i * 0x38) for i in range(_PHDR_READS)]
    return out


def _loopback_pair() -> tuple[socket.socket, socket.socket]:
    """Two ends of a TCP connection on 127.0.0.1 (a Connection sets TCP_NODELAY, which a socketpair lacks), on
    the stub's own descriptors (fds.own_socket), as gdb's will be."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = own_socket(socket.create_connection(listener.getsockname()))
        ours, _ = listener.accept()
    return own_socket(ours), peer


def rehearse(inferior: Inferior, inferiors: dict[int, Inferior], run: RunState) -> int:
    """Answer requests(inferior) once on a throw-away session; returns how many were answered. Never raises: a
    rehearsal that fails is logged and the real session starts as it would have."""
    session = Session(inferior.target, run, initially_stopped=True, inferiors=inferiors)
    answered = 0
    ours = peer = None
    try:
        ours, peer = _loopback_pair()
        conn = Connection(ours)
        peer.setblocking(False)
        for request in requests(inferior):
            peer.sendall(encode_packet(request))
            for event in conn.receive():
                reply = dispatch(session, event.data)
                if reply is not None:
                    conn.send(reply)
                    answered += 1
            conn.flush()
            conn.no_ack = session.no_ack
            try:
                peer.recv(1 << 20)      # the reply and acks: read, so the socketpair never fills
            except BlockingIOError:
                pass
        if isinstance(inferior.target, QuickResumeTarget):
            inferior.target.prepare_quick_resume()
    except Exception:  # noqa: BLE001 - a warm-up only: the stub serves gdb all the same
        log.exception("connect rehearsal failed")
    finally:
        hostio.close_all(session)
        for end in (ours, peer):
            if end is not None:
                end.close()
    return answered
