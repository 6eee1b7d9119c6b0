"""General queries and settings: qSupported (computed from the target), QStartNoAckMode, threads (H, T, qC,
qfThreadInfo/qsThreadInfo, qThreadExtraInfo), qAttached, QPassSignals/QProgramSignals, qGetTLSAddr.

Spec: https://sourceware.org/gdb/current/onlinedocs/gdb.html/General-Query-Packets.html
"""
from __future__ import annotations

from kdbg import tls
from kdbg.link_map import NoDynamicSection
from kdbg.rsp.commands import TABLE, command, parse_hex, parse_ptid, raw
from kdbg.rsp.errors import RspError
from kdbg.rsp.packets import PACKET_SIZE
from kdbg.rsp.session import Inferior, Session
from kdbg.rsp.signals import linux_from_gdb_hex
from kdbg.target import NoSuchThreadError

# Stop-reason features gdb must offer before we may send them, and the target feature that makes them true.
_STOP_REASON_FEATURES = {"swbreak": "swbreak", "hwbreak": "hwbreak"}
# Process events gdb must offer (with multiprocess), the target feature that makes them true, and the event kind
# the target is then asked to report (ControlTarget.report_events).
_EVENT_FEATURES = {"fork-events": "fork", "vfork-events": "vfork", "exec-events": "exec"}
# Q packets the dispatch table serves only for targets that support the feature.
_PACKET_FEATURES = {"QCatchSyscalls": "catch-syscalls", "QNonStop": "non-stop"}


def supported_features(session: Session) -> list[str]:
    """What this stub can do with this target, derived from the dispatch table (every qXfer object and Q
    setting it serves; the live-only ones only for a ControlTarget) and from target.supports()."""
    control = session.control
    features = [f"PacketSize={PACKET_SIZE:x}"]
    if session.multiprocess:
        features.append("multiprocess+")
    supports = control.supports() if control is not None else frozenset()
    features += [f"{name}+" for name, entry in TABLE.items()
                 if name.startswith(("qXfer:", "Q")) and (control is not None or not entry.needs_control)
                 and _PACKET_FEATURES.get(name, "") in supports | {""}]
    if control is None:
        return features
    if "vCont?" in TABLE:
        features.append("vContSupported+")
    for gdb_name, target_name in _STOP_REASON_FEATURES.items():
        if target_name in supports and gdb_name in session.gdb_features:
            features.append(f"{gdb_name}+")
    features += [f"{name}+" for name in reported_events(session)]
    return features


def reported_events(session: Session) -> list[str]:
    """The process-event features both gdb and the target support (gdb uses them only with multiprocess)."""
    control = session.control
    if control is None or not session.multiprocess:
        return []
    supports = control.supports()
    return [name for name in _EVENT_FEATURES if name in session.gdb_features and name in supports]


def apply_event_reporting(session: Session) -> None:
    """Tell the target which process events become stops (a fork nobody follows leaves a child undebugged)."""
    if session.control is not None:
        session.control.report_events(frozenset(_EVENT_FEATURES[name] for name in reported_events(session)))


@command("qSupported", raw)
def q_supported(session: Session, offered: bytes) -> bytes:
    names = set()
    for item in offered.decode("ascii", "replace").split(";"):
        if item.endswith("+"):
            names.add(item[:-1])
    session.gdb_features = frozenset(names)
    apply_event_reporting(session)
    return ";".join(supported_features(session)).encode()


@command("QStartNoAckMode")
def start_no_ack(session: Session) -> bytes:
    """The server switches the connection after this OK has gone out (it is still acknowledged)."""
    session.no_ack = True
    return b"OK"


def _thread_of(session: Session, ptid: tuple[int, int]) -> tuple[Inferior, int]:
    """The process and thread a thread id names (tid <= 0: any of it); NoSuchThreadError for anything the stub
    does not serve, including a thread of another process."""
    pid, tid = ptid
    try:
        inferior = session.inferior(pid)
    except KeyError:
        raise NoSuchThreadError(tid) from None
    if tid > 0 and tid not in inferior.target.threads():
        raise NoSuchThreadError(tid)
    return inferior, tid


def _parse_h(rest: bytes) -> tuple[bytes, tuple[int, int]]:
    op, tid = rest[:1], rest[1:]
    if op not in (b"g", b"c"):
        raise ValueError(f"H{op!r}")
    return op, parse_ptid(tid)


@command("H", _parse_h)
def set_thread(session: Session, op: bytes, ptid: tuple[int, int]) -> bytes:
    inferior, tid = _thread_of(session, ptid)
    if op == b"g":
        session.select(inferior.pid if ptid[0] > 0 else 0, tid)
    else:
        session.c_tid = tid if tid > 0 else -1
    return b"OK"


@command("T", lambda rest: (parse_ptid(rest),))
def thread_alive(session: Session, ptid: tuple[int, int]) -> bytes:
    _, tid = _thread_of(session, ptid)
    if tid <= 0:
        raise NoSuchThreadError(tid)
    return b"OK"


@command("qC")
def current_thread(session: Session) -> bytes:
    return b"QC" + session.format_tid(session.current_tid())


def all_threads(session: Session) -> list[tuple[Inferior, int]]:
    """Every thread of every process gdb debugs, the payload's first."""
    return [(inf, tid) for inf in session.attached_inferiors() for tid in inf.target.threads()]


@command("qfThreadInfo")
def first_thread_info(session: Session) -> bytes:
    """All threads in one reply: a few hundred ids fit a packet, so qsThreadInfo only ends the list."""
    return b"m" + b",".join(session.format_tid(tid, inf.pid) for inf, tid in all_threads(session))


@command("qsThreadInfo")
def next_thread_info(session: Session) -> bytes:
    return b"l"


@command("qThreadExtraInfo", lambda rest: (parse_ptid(rest),))
def thread_extra_info(session: Session, ptid: tuple[int, int]) -> bytes:
    inferior, tid = _thread_of(session, ptid)
    return inferior.target.thread_name(tid).encode().hex().encode()


@command("qAttached", raw)
def attached(session: Session, pid: bytes) -> bytes:
    """1: gdb detaches on quit (we attached to a running payload); 0: gdb kills what it started (km -g)."""
    return b"0" if session.initially_stopped and session.control is not None else b"1"


def _parse_signal_list(rest: bytes) -> tuple[frozenset[int]]:
    """gdb's hex numbers, `;`-separated; one that is not hex, or that Linux cannot raise, passes nothing."""
    signals = set()
    for item in rest.split(b";"):
        try:
            linux = linux_from_gdb_hex(item)
        except ValueError:
            continue
        if linux is not None:
            signals.add(linux)
    return (frozenset(signals),)


@command("QPassSignals", _parse_signal_list, needs_control=True)
def pass_signals(session: Session, signals: frozenset[int]) -> bytes:
    session.pass_signals = signals
    return b"OK"


@command("QProgramSignals", _parse_signal_list, needs_control=True)
def program_signals(session: Session, signals: frozenset[int]) -> bytes:
    session.program_signals = signals | {0}
    return b"OK"


_MAX_SYSCALL = 0xFFFF       # a number past any syscall table (x32's bit included) is junk, not a catchpoint


def _parse_catch(rest: bytes) -> tuple[frozenset[int] | None]:
    """`0` (none), `1` (every syscall) or `1;NR;NR...` (hex numbers)."""
    head, _, tail = rest.partition(b";")
    if head == b"0" and not tail:
        return (None,)
    if head != b"1":
        raise ValueError(f"QCatchSyscalls:{rest[:20]!r}")
    numbers = frozenset(parse_hex(item) for item in tail.split(b";")) if tail else frozenset()
    if any(nr > _MAX_SYSCALL for nr in numbers):
        raise ValueError("a syscall number out of range")
    return (numbers,)


@command("QCatchSyscalls", _parse_catch, needs_control=True)
def catch_syscalls(session: Session, numbers: frozenset[int] | None) -> bytes:
    """`catch syscall`: the target stops the calling thread at the entry and the return of these calls."""
    session.live.set_syscall_catch(numbers)
    session.catch_syscalls = numbers
    return b"OK"


@command("qSymbol", raw)
def symbol_lookup(session: Session, rest: bytes) -> bytes:
    """No symbols wanted (no thread_db: threads come from the target)."""
    return b"OK"


def _parse_tls(rest: bytes) -> tuple[tuple[int, int], int, int]:
    tid, offset, lm = rest.split(b",")
    return parse_ptid(tid), parse_hex(offset), parse_hex(lm)


@command("qGetTLSAddr", _parse_tls)
def get_tls_addr(session: Session, ptid: tuple[int, int], offset: int, lm: int) -> bytes:
    """The address of `offset` in the TLS block of the module whose link_map is `lm`, for thread `tid`, computed
    as glibc's libthread_db does (kdbg.tls), which is what gdbserver answers with. lm 0 is a static program's
    own TLS (no link_map): found from its PT_TLS header, for musl as for glibc."""
    inferior, tid = _thread_of(session, ptid)
    if inferior is not session.current:
        raise RspError("qGetTLSAddr for a thread of another process", 3)
    tid = tid if tid > 0 else session.current_tid()
    pointer = session.target.registers(tid)["fs_base"]
    if not lm:                                  # a static program's own TLS: no link_map to read
        return b"%x" % ((tls.program_tls_block(session.target, pointer) + offset) % (1 << 64))
    libraries = session.libraries
    if libraries.thread_db is None:
        try:
            found = libraries.libraries(session.target, live=session.control is not None)
        except NoDynamicSection:
            raise RspError("the program has no DT_DEBUG entry", 1) from None
        if found is None:
            raise RspError("the loader has not listed any library yet", 1)
        libraries.thread_db = tls.thread_db_fields(session.target, found)
    return b"%x" % ((tls.tls_block(session.target, libraries.thread_db, pointer, lm) + offset) % (1 << 64))
