"""General queries and settings: qSupported (computed from the target), QStartNoAckMode, threads (H, T, qC,
qfThreadInfo/qsThreadInfo, qThreadExtraInfo), qAttached, QPassSignals/QProgramSignals, qGetTLSAddr.

Spec: https://sourceware.org/gdb/current/onlinedocs/gdb.html/General-Query-Packets.html
"""
from __future__ import annotations

from kdbg import tls
from kdbg.link_map import NoDynamicSection
from kdbg.rsp.commands import TABLE, command, parse_hex, parse_thread_id, raw
from kdbg.rsp.errors import RspError
from kdbg.rsp.packets import PACKET_SIZE
from kdbg.rsp.session import Session
from kdbg.rsp.signals import linux_from_gdb
from kdbg.target import NoSuchThreadError

# Stop-reason features gdb must offer before we may send them, and the target feature that makes them true.
_STOP_REASON_FEATURES = {"swbreak": "swbreak", "hwbreak": "hwbreak"}


def supported_features(session: Session) -> list[str]:
    """What this stub can do with this target, derived from the dispatch table (every qXfer object and Q
    setting it serves; the live-only ones only for a ControlTarget) and from target.supports()."""
    control = session.control
    features = [f"PacketSize={PACKET_SIZE:x}"]
    if session.multiprocess:
        features.append("multiprocess+")
    features += [f"{name}+" for name, entry in TABLE.items()
                 if name.startswith(("qXfer:", "Q")) and (control is not None or not entry.needs_control)]
    if control is None:
        return features
    if "vCont?" in TABLE:
        features.append("vContSupported+")
    supports = control.supports()
    for gdb_name, target_name in _STOP_REASON_FEATURES.items():
        if target_name in supports and gdb_name in session.gdb_features:
            features.append(f"{gdb_name}+")
    return features


@command("qSupported", raw)
def q_supported(session: Session, offered: bytes) -> bytes:
    names = set()
    for item in offered.decode("ascii", "replace").split(";"):
        if item.endswith("+"):
            names.add(item[:-1])
    session.gdb_features = frozenset(names)
    return ";".join(supported_features(session)).encode()


@command("QStartNoAckMode")
def start_no_ack(session: Session) -> bytes:
    """The server switches the connection after this OK has gone out (it is still acknowledged)."""
    session.no_ack = True
    return b"OK"


def _require_thread(session: Session, tid: int) -> None:
    if tid > 0 and tid not in session.target.threads():
        raise NoSuchThreadError(tid)


def _parse_h(rest: bytes) -> tuple[bytes, int]:
    op, tid = rest[:1], rest[1:]
    if op not in (b"g", b"c"):
        raise ValueError(f"H{op!r}")
    return op, parse_thread_id(tid)


@command("H", _parse_h)
def set_thread(session: Session, op: bytes, tid: int) -> bytes:
    _require_thread(session, tid)
    if op == b"g":
        session.g_tid = max(tid, 0)
    else:
        session.c_tid = tid if tid > 0 else -1
    return b"OK"


@command("T", lambda rest: (parse_thread_id(rest),))
def thread_alive(session: Session, tid: int) -> bytes:
    if tid not in session.target.threads():
        raise NoSuchThreadError(tid)
    return b"OK"


@command("qC")
def current_thread(session: Session) -> bytes:
    return b"QC" + session.format_tid(session.current_tid())


@command("qfThreadInfo")
def first_thread_info(session: Session) -> bytes:
    """All threads in one reply: a few hundred ids fit a packet, so qsThreadInfo only ends the list."""
    return b"m" + b",".join(session.format_tid(tid) for tid in session.target.threads())


@command("qsThreadInfo")
def next_thread_info(session: Session) -> bytes:
    return b"l"


@command("qThreadExtraInfo", lambda rest: (parse_thread_id(rest),))
def thread_extra_info(session: Session, tid: int) -> bytes:
    _require_thread(session, tid)
    return session.target.thread_name(tid).encode().hex().encode()


@command("qAttached", raw)
def attached(session: Session, pid: bytes) -> bytes:
    """1: gdb detaches on quit (we attached to a running payload); 0: gdb kills what it started (km -g)."""
    return b"0" if session.initially_stopped and session.control is not None else b"1"


def _parse_signal_list(rest: bytes) -> tuple[frozenset[int]]:
    signals = set()
    for item in filter(None, rest.split(b";")):
        try:
            signals.add(linux_from_gdb(parse_hex(item)))
        except ValueError:
            continue        # a gdb signal Linux cannot raise: nothing to pass
    return (frozenset(signals),)


@command("QPassSignals", _parse_signal_list, needs_control=True)
def pass_signals(session: Session, signals: frozenset[int]) -> bytes:
    session.pass_signals = signals
    return b"OK"


@command("QProgramSignals", _parse_signal_list, needs_control=True)
def program_signals(session: Session, signals: frozenset[int]) -> bytes:
    session.program_signals = signals | {0}
    return b"OK"


@command("qSymbol", raw)
def symbol_lookup(session: Session, rest: bytes) -> bytes:
    """No symbols wanted (no thread_db: threads come from the target)."""
    return b"OK"



def _parse_tls(rest: bytes) -> tuple[int, int, int]:
    tid, offset, lm = rest.split(b",")
    return parse_thread_id(tid), parse_hex(offset), parse_hex(lm)


@command("qGetTLSAddr", _parse_tls)
def get_tls_addr(session: Session, tid: int, offset: int, lm: int) -> bytes:
    """The address of `offset` in the TLS block of the module whose link_map is `lm`, for thread `tid`, computed
    as glibc's libthread_db does (kdbg.tls), which is what gdbserver answers with. lm 0 (a static program's
    own TLS, no link_map) is not served here."""
    _require_thread(session, tid)
    if not lm:
        raise RspError("no link_map for this module (a static program)", 1)
    libraries = session.libraries
    if libraries.thread_db is None:
        try:
            found = libraries.libraries(session.target, live=session.control is not None)
        except NoDynamicSection:
            raise RspError("the program has no DT_DEBUG entry", 1) from None
        if found is None:
            raise RspError("the loader has not listed any library yet", 1)
        libraries.thread_db = tls.thread_db_fields(session.target, found)
    pointer = session.target.registers(tid)["fs_base"]
    return b"%x" % ((tls.tls_block(session.target, libraries.thread_db, pointer, lm) + offset) % (1 << 64))
