"""The stopped session's packets in C (written by hand for km; cffi API mode): while every process the stub serves
is stopped, one C call waits on the session's epoll, reads gdb's socket and answers the packets it can by itself,
and comes back to Python with the bytes it did not answer or when another descriptor (an event, the wake-up)
is ready.

Why: at gdbserver's pace a `g`, an `m` or a repeated query costs km ~16-35 us of CPU, most of it the interpreter
between epoll_wait, recv and send (more when gdb's own work has pushed the interpreter out of the CPU caches), where
gdbserver's C takes ~12-15 us. On a loaded machine gdb and km ping-pong on one CPU, so every microsecond km spends
on an answer is a microsecond of gdb's wall time (measured with bench/gdb_packets.py and perf sched).

What C answers, all from state Python handed it for this stop (nothing here reads the monitor):
- `g` and `p<n>`: the `g` encoding Python made (registers.encode_registers of the thread g/p act on), `p` as the
  register's slice of it;
- `m<addr>,<len>`: guest memory through host windows the target gave (kdbg.target.HostMemoryTarget: a VMA's guest
  range and where its backing lies in km), with the planted int3 bytes replaced by the bytes they hide; a read that
  is not wholly inside one window goes to Python (prefix reads, errors);
- `Z0`/`z0` (a software breakpoint) when the target lets C plant int3s (kdbg.target.PlantingTarget): the int3 or
  the byte it hid written through the host window, the planted table kept, the change logged; Python hands the log
  to the target and the session's point set whenever C returns, before anything else;
- `QPassSignals:...` bodies Python has answered OK before (the set is applied by Python, from `pass_pending`, before
  anything else it does);
- any packet Python answered since the last invalidation whose reply is a pure function of the stop
  (`qXfer:threads:read`, `qfThreadInfo`...): the same frame again.
Everything else, and anything unusual (a bad checksum, a run-length mark or escape in what gdb sent, a partial
packet, ^C), goes back to Python as if read from the socket. Python invalidates the state on every packet it
handles that is not a pure read, and on every event: a resume, a register or memory write, Hg, a breakpoint change.
The twin is the Python session loop itself (kdbg/rsp/server.py), which runs when this module cannot be built, in
ack mode, non-stop mode, with several processes, with the packet trace on, or with KM_RSP_LANE=python;
tests/unit/test_rsp_stop_lane.py (the handlers, no VM), tests/integration/test_rsp_stop_lane.py and
test_rsp_lane_check.py, and tests/fuzz/test_rsp_lane_twin.py hold both to the same replies.

The compiled module is made by tools/install.sh (`python3 -m kdbg.rsp.cstop`) or on first use (kdbg/cmodule.py).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, cast

from kdbg.arch.x86_64 import REGISTERS
from kdbg.cmodule import CModule
from kdbg.rsp import cframing
from kdbg.rsp.commands import dispatch
from kdbg.rsp.connection import Connection, ConnectionClosed
from kdbg.rsp.memory import MAX_READ
from kdbg.rsp.registers import current_registers, encode_registers
from kdbg.target import BreakpointKind, HostMemoryTarget, PlantingTarget, TargetError

if TYPE_CHECKING:
    from kdbg.rsp.packets import Event
    from kdbg.rsp.session import Session

# km_lane_serve's answers (the C source's LANE_* are made from these), in the low bits of what it returns: the
# answer's code (CODE), PASS_PENDING when a QPassSignals set was answered, the handed-back length above COUNT_SHIFT
DONE, EVENT, BYTES, NEED_REGS, NEED_MEMORY, SEND_FAILED = 0, 1, 2, 3, 4, 5
CODE, PASS_PENDING, COUNT_SHIFT = 7, 8, 4
# The packets whose reply is a pure function of the stopped process (threads, registers, memory, what gdb set
# before): Python answering one of them leaves the lane's state as it is. Any other packet invalidates it.
READ_ONLY_FIRST = frozenset((b"g", b"p", b"m", b"x"))
NAMED_FIRST = frozenset((b"q", b"Q"))
READ_ONLY_NAMES = (b"qXfer:threads:read", b"qXfer:features:read", b"qXfer:auxv:read", b"qXfer:exec-file:read",
                   b"qXfer:libraries", b"qfThreadInfo", b"qsThreadInfo", b"qC", b"qAttached", b"qOffsets",
                   b"qTStatus", b"QPassSignals", b"qKmBenchPhase")
# Of those, the ones whose frame the lane may send again until the next invalidation.
REPLAYED_NAMES = (b"qXfer:threads:read", b"qfThreadInfo", b"qsThreadInfo", b"qC")
# The C tables' sizes (struct km_lane); past them Python answers (more windows or breakpoints: every m).
REPLAY_PACKET_MAX = 120         # bytes of a replayed packet or a QPassSignals set
REPLAY_ENTRIES = 16
REPLAY_POOL = 32768             # bytes of replayed frames
PASS_ENTRIES = 8
WINDOWS = 256
BREAKPOINTS = 64
ZLOG = 16                       # Z0/z0 answered in C before Python takes them over (it does at every return)
G_MAX = 2 * sum(reg.size for reg in REGISTERS)      # the g encoding's hex digits (4832 with AVX-512)

STRUCT = f"""
struct km_lane {{
    int epfd, sock;
    int regs_state;         /* 0: not primed (NEED_REGS), 1: g holds this stop's encoding */
    int mem_state;          /* 0: not primed (NEED_MEMORY), 1: primed, 2: Python reads every m */
    int nregs, nwin, nbp, nreplay, npass, pass_pending, err;
    size_t g_len, gframe_len, pool_used;
    unsigned long answered;
    unsigned int reg_off[{len(REGISTERS)}], reg_len[{len(REGISTERS)}];
    unsigned char g[{G_MAX}], gframe[{G_MAX + 4}];
    unsigned long long win[{3 * WINDOWS}];      /* (guest start, guest end, host address) */
    unsigned long long bp[{2 * BREAKPOINTS}];       /* (address, the byte its int3 hides) */
    int zsw;                /* 1: Z0/z0 may be answered here (the target plants int3s; Python set it with memory) */
    int nzlog;              /* Z0/z0 answered here that Python has not taken over yet (take_points) */
    unsigned long long zlog[{4 * ZLOG}];    /* (1 inserted / 0 removed, address, the byte hidden, gdb's kind) */
    unsigned int replay_len[{REPLAY_ENTRIES}], replay_off[{REPLAY_ENTRIES}], replay_flen[{REPLAY_ENTRIES}];
    unsigned char replay[{REPLAY_ENTRIES}][{REPLAY_PACKET_MAX}];
    unsigned char pool[{REPLAY_POOL}];
    unsigned int pass_len[{PASS_ENTRIES}];
    unsigned char pass[{PASS_ENTRIES}][{REPLAY_PACKET_MAX}];
    unsigned char inbuf[65536], raw[{MAX_READ}], hex[{2 * MAX_READ}], out[{2 * MAX_READ + 64}];
}};
"""

CDEF = STRUCT + """
int km_lane_serve(struct km_lane *l, const unsigned char *pending, size_t n);
int km_lane_set_regs(struct km_lane *l, const unsigned char *g, size_t n);
void km_lane_set_memory(struct km_lane *l, const unsigned long long *win, int nwin, const unsigned long long *bp,
                        int nbp);
int km_lane_remember(struct km_lane *l, const unsigned char *packet, size_t n, const unsigned char *frame,
                     size_t fn);
int km_lane_learn_pass(struct km_lane *l, const unsigned char *packet, size_t n);
void km_lane_invalidate(struct km_lane *l);
"""

_DEFINES = {"LANE_DONE": DONE, "LANE_EVENT": EVENT, "LANE_BYTES": BYTES, "LANE_NEED_REGS": NEED_REGS,
            "LANE_NEED_MEMORY": NEED_MEMORY, "LANE_SEND_FAILED": SEND_FAILED, "LANE_PASS_PENDING": PASS_PENDING,
            "LANE_COUNT_SHIFT": COUNT_SHIFT, "MAX_READ": MAX_READ}
_HEADERS = ("errno.h", "stdint.h", "sys/epoll.h", "sys/socket.h")

SOURCE = (cframing.SOURCE + "\n" + "".join(f"#include <{h}>\n" for h in _HEADERS) + STRUCT
          + "".join(f"#define {name} {value}\n" for name, value in _DEFINES.items()) + r"""

void km_lane_invalidate(struct km_lane *l)
{
    l->regs_state = 0;
    l->mem_state = 0;
    l->nreplay = 0;
    l->pool_used = 0;
    l->gframe_len = 0;
}

int km_lane_set_regs(struct km_lane *l, const unsigned char *g, size_t n)
{
    if (n > sizeof l->g)
        return -1;
    memcpy(l->g, g, n);
    l->g_len = n;
    l->gframe_len = 0;
    l->regs_state = 1;
    return 0;
}

void km_lane_set_memory(struct km_lane *l, const unsigned long long *win, int nwin, const unsigned long long *bp,
                        int nbp)
{
    if (nwin < 0 || nbp < 0 || (size_t)nwin * 3 > sizeof l->win / sizeof l->win[0]
            || (size_t)nbp * 2 > sizeof l->bp / sizeof l->bp[0]) {
        l->mem_state = 2;               /* Python reads */
        return;
    }
    memcpy(l->win, win, sizeof(unsigned long long) * 3 * (size_t)nwin);
    memcpy(l->bp, bp, sizeof(unsigned long long) * 2 * (size_t)nbp);
    l->nwin = nwin;
    l->nbp = nbp;
    l->mem_state = 1;
}

int km_lane_remember(struct km_lane *l, const unsigned char *packet, size_t n, const unsigned char *frame, size_t fn)
{
    if (n > sizeof l->replay[0] || (size_t)l->nreplay >= sizeof l->replay / sizeof l->replay[0]
            || fn > sizeof l->pool - l->pool_used)
        return -1;
    int i = l->nreplay++;
    memcpy(l->replay[i], packet, n);
    l->replay_len[i] = (unsigned int)n;
    memcpy(l->pool + l->pool_used, frame, fn);
    l->replay_off[i] = (unsigned int)l->pool_used;
    l->replay_flen[i] = (unsigned int)fn;
    l->pool_used += fn;
    return i;
}

int km_lane_learn_pass(struct km_lane *l, const unsigned char *packet, size_t n)
{
    if (n > sizeof l->pass[0] || (size_t)l->npass >= sizeof l->pass / sizeof l->pass[0])
        return -1;
    int i = l->npass++;
    memcpy(l->pass[i], packet, n);
    l->pass_len[i] = (unsigned int)n;
    return i;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A hex number filling [p, end) exactly (1 to 16 digits, as commands.parse_hex takes them below 2^64). */
static int parse_hex(const unsigned char *p, const unsigned char *end, unsigned long long *out)
{
    unsigned long long v = 0;
    if (p >= end || end - p > 16)
        return -1;
    for (; p < end; p++) {
        int d = hexval(*p);
        if (d < 0)
            return -1;
        v = v << 4 | (unsigned long long)d;
    }
    *out = v;
    return 0;
}

static int send_all(struct km_lane *l, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(l->sock, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            l->err = errno;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int send_body(struct km_lane *l, const unsigned char *body, size_t n)
{
    return send_all(l, l->out, km_rsp_frame(body, n, l->out));
}

static int answer_memory(struct km_lane *l, const unsigned char *b, const unsigned char *end)
{
    const unsigned char *comma = memchr(b, ',', (size_t)(end - b));
    unsigned long long addr, len;
    if (comma == NULL || parse_hex(b, comma, &addr) || parse_hex(comma + 1, end, &len))
        return LANE_BYTES;
    if (l->mem_state == 0)
        return LANE_NEED_MEMORY;
    if (l->mem_state != 1 || len == 0)
        return LANE_BYTES;
    if (len > MAX_READ)
        len = MAX_READ;
    if (addr + len < addr)
        return LANE_BYTES;
    const unsigned long long *w = l->win;
    int i;
    for (i = 0; i < l->nwin; i++, w += 3)
        if (w[0] <= addr && addr + len <= w[1])
            break;
    if (i == l->nwin)
        return LANE_BYTES;          /* across windows, unmapped, or not backed: Python's read_prefix */
    memcpy(l->raw, (const void *)(uintptr_t)(w[2] + (addr - w[0])), (size_t)len);
    for (int k = 0; k < l->nbp; k++) {
        unsigned long long at = l->bp[2 * k];
        if (at >= addr && at < addr + len)
            l->raw[at - addr] = (unsigned char)l->bp[2 * k + 1];
    }
    static const char digits[] = "0123456789abcdef";
    for (size_t k = 0; k < len; k++) {
        l->hex[2 * k] = (unsigned char)digits[l->raw[k] >> 4];
        l->hex[2 * k + 1] = (unsigned char)digits[l->raw[k] & 15];
    }
    return send_body(l, l->hex, 2 * (size_t)len) ? LANE_SEND_FAILED : LANE_DONE;
}

/* Z0/z0 (insert / remove a software breakpoint) as LiveTarget.set_breakpoint / clear_breakpoint do it: the int3
   written over (or the hidden byte written back to) guest memory through its host window, the planted table kept
   as Python's SoftwareBreakpoints keeps it, and the change logged for Python (take_points) before anything else it
   does. Anything else (no window, a full table or log, a condition list, a target without int3s) goes to Python. */
static int answer_point(struct km_lane *l, int insert, const unsigned char *b, const unsigned char *end)
{
    const unsigned char *comma = memchr(b, ',', (size_t)(end - b));
    unsigned long long addr, kind;
    if (comma == NULL || parse_hex(b, comma, &addr) || parse_hex(comma + 1, end, &kind))
        return LANE_BYTES;
    if (l->mem_state == 0)
        return LANE_NEED_MEMORY;        /* (which also says whether zsw) */
    if (l->mem_state != 1 || !l->zsw || (size_t)l->nzlog >= sizeof l->zlog / sizeof l->zlog[0] / 4)
        return LANE_BYTES;
    int k;
    for (k = 0; k < l->nbp; k++)
        if (l->bp[2 * k] == addr)
            break;
    unsigned char *host = NULL;
    const unsigned long long *w = l->win;
    for (int i = 0; i < l->nwin; i++, w += 3)
        if (w[0] <= addr && addr < w[1]) {
            host = (unsigned char *)(uintptr_t)(w[2] + (addr - w[0]));
            break;
        }
    unsigned long long hidden = 0;
    if (insert && k == l->nbp) {                /* a new int3 */
        if (host == NULL || (size_t)l->nbp * 2 >= sizeof l->bp / sizeof l->bp[0])
            return LANE_BYTES;
        hidden = *host;
        *host = 0xcc;
        l->bp[2 * k] = addr;
        l->bp[2 * k + 1] = hidden;
        l->nbp++;
    } else if (insert) {                        /* planted already: nothing to write */
        hidden = l->bp[2 * k + 1];
    } else if (k < l->nbp) {                    /* the hidden byte back */
        if (host == NULL)
            return LANE_BYTES;
        *host = (unsigned char)l->bp[2 * k + 1];
        l->nbp--;
        l->bp[2 * k] = l->bp[2 * l->nbp];
        l->bp[2 * k + 1] = l->bp[2 * l->nbp + 1];
    }                                           /* (removing what is not planted: OK, nothing written) */
    unsigned long long *e = l->zlog + 4 * l->nzlog++;
    e[0] = (unsigned long long)insert;
    e[1] = addr;
    e[2] = hidden;
    e[3] = kind;
    return send_all(l, (const unsigned char *)"$OK#9a", 6) ? LANE_SEND_FAILED : LANE_DONE;
}

/* One packet at p (n bytes available): answered (LANE_DONE, *used set), or why not. */
static int answer_one(struct km_lane *l, const unsigned char *p, size_t n, size_t *used)
{
    if (n < 4 || p[0] != '$')
        return LANE_BYTES;
    const unsigned char *hash = memchr(p, '#', n);
    if (hash == NULL || (size_t)(hash - p) + 3 > n)
        return LANE_BYTES;
    const unsigned char *b = p + 1, *end = hash;
    size_t blen = (size_t)(end - b);
    if (blen == 0 || memchr(b, '$', blen) || memchr(b, '*', blen) || memchr(b, '}', blen))
        return LANE_BYTES;
    int h1 = hexval(hash[1]), h2 = hexval(hash[2]);
    if (h1 < 0 || h2 < 0 || (unsigned int)(h1 << 4 | h2) != km_rsp_sum(b, blen))
        return LANE_BYTES;
    *used = (size_t)(hash - p) + 3;
    if (b[0] == 'g' && blen == 1) {
        if (!l->regs_state)
            return LANE_NEED_REGS;
        if (l->gframe_len == 0)
            l->gframe_len = km_rsp_frame(l->g, l->g_len, l->gframe);
        return send_all(l, l->gframe, l->gframe_len) ? LANE_SEND_FAILED : LANE_DONE;
    }
    if (b[0] == 'p') {
        unsigned long long regnum;
        if (parse_hex(b + 1, end, &regnum))
            return LANE_BYTES;
        if (!l->regs_state)
            return LANE_NEED_REGS;
        if (regnum >= (unsigned long long)l->nregs || l->reg_off[regnum] + l->reg_len[regnum] > l->g_len)
            return LANE_BYTES;
        return send_body(l, l->g + l->reg_off[regnum], l->reg_len[regnum]) ? LANE_SEND_FAILED : LANE_DONE;
    }
    if (b[0] == 'm')
        return answer_memory(l, b + 1, end);
    if ((b[0] == 'Z' || b[0] == 'z') && blen > 3 && b[1] == '0' && b[2] == ',')
        return answer_point(l, b[0] == 'Z', b + 3, end);
    if (b[0] == 'Q') {
        for (int i = 0; i < l->npass; i++)
            if (l->pass_len[i] == blen && memcmp(l->pass[i], b, blen) == 0) {
                l->pass_pending = i;
                return send_all(l, (const unsigned char *)"$OK#9a", 6) ? LANE_SEND_FAILED : LANE_DONE;
            }
        return LANE_BYTES;
    }
    for (int i = 0; i < l->nreplay; i++)
        if (l->replay_len[i] == blen && memcmp(l->replay[i], b, blen) == 0)
            return send_all(l, l->pool + l->replay_off[i], l->replay_flen[i]) ? LANE_SEND_FAILED : LANE_DONE;
    return LANE_BYTES;
}

/* An answer with LANE_PASS_PENDING when a QPassSignals set was answered since Python last applied one. */
static int flagged(const struct km_lane *l, int rc)
{
    return rc | (l->pass_pending >= 0 ? LANE_PASS_PENDING : 0);
}

/* Serve until something needs Python: `pending` (bytes already read, handed back before) first, then the socket.
   Returns LANE_EVENT (another descriptor is ready, or a wait or read to leave to Python), or one of LANE_BYTES,
   LANE_NEED_REGS, LANE_NEED_MEMORY, LANE_SEND_FAILED, with the bytes not answered moved to the start of inbuf
   (from the packet that stopped the lane on; for LANE_SEND_FAILED, after the packet whose reply failed): their
   count << LANE_COUNT_SHIFT is or'ed in, and LANE_PASS_PENDING when a QPassSignals set was answered
   (pass_pending), so that one call says all. */
int km_lane_serve(struct km_lane *l, const unsigned char *pending, size_t n)
{
    size_t len = 0;
    if (n > sizeof l->inbuf)
        return LANE_EVENT;
    if (n) {
        memmove(l->inbuf, pending, n);
        len = n;
    }
    for (;;) {
        if (len == 0) {
            struct epoll_event ev[8];
            int k = epoll_wait(l->epfd, ev, 8, -1);
            if (k <= 0)
                return flagged(l, LANE_EVENT);     /* EINTR: Python's wait runs handlers */
            int sock = 0;
            for (int i = 0; i < k; i++) {
                if (ev[i].data.fd != l->sock)
                    return flagged(l, LANE_EVENT);
                sock = 1;
            }
            if (!sock)
                continue;
            ssize_t r = recv(l->sock, l->inbuf, sizeof l->inbuf, MSG_DONTWAIT);
            if (r <= 0)     /* end of file, an error, nothing after all: Python's recv says which */
                return flagged(l, LANE_EVENT);
            len = (size_t)r;
        }
        size_t pos = 0;
        while (pos < len) {
            size_t used = 0;
            int rc = answer_one(l, l->inbuf + pos, len - pos, &used);
            if (rc == LANE_DONE) {
                l->answered++;
                pos += used;
                continue;
            }
            if (rc == LANE_SEND_FAILED)
                pos += used;
            memmove(l->inbuf, l->inbuf + pos, len - pos);
            return flagged(l, rc) | (int)((len - pos) << LANE_COUNT_SHIFT);
        }
        len = 0;
    }
}
""")

COMPILED = CModule("_km_rspstop_", CDEF, SOURCE, compile_args=("-O2",))


def load(*, build_missing: bool = True) -> tuple[Any, Any] | None:
    """The compiled module's (ffi, lib), or None: built first when missing (and not known to fail here)."""
    return COMPILED.load(build_missing=build_missing)


def _named(packet: bytes, names: tuple[bytes, ...]) -> bool:
    """The packet is one of these (commands.find_command's rule: the name, then the end or a separator)."""
    return any(packet.startswith(n) and (len(packet) == len(n) or packet[len(n)] in b":,;") for n in names)


# after()'s decision per packet (gdb repeats the same few): what Python answering it means for the lane's state
INVALIDATES, KEEPS, PASS_SET, REPLAYED = 0, 1, 2, 3
_KINDS: dict[bytes, int] = {}
_KINDS_LIMIT = 512          # entries; the memo starts afresh when full


def packet_kind(packet: bytes) -> int:
    """INVALIDATES, KEEPS, PASS_SET or REPLAYED, decided once per packet text (gdb repeats the same few): the name
    comparisons made after every reply cost ~4 us from a qXfer:threads reply to the lane's next wait."""
    kind = _KINDS.get(packet)
    if kind is None:
        first = packet[:1]
        if first in READ_ONLY_FIRST:
            kind = KEEPS
        elif first not in NAMED_FIRST or not _named(packet, READ_ONLY_NAMES):
            kind = INVALIDATES
        elif packet.startswith(b"QPassSignals"):
            kind = PASS_SET if len(packet) <= REPLAY_PACKET_MAX else KEEPS
        elif _named(packet, REPLAYED_NAMES) and len(packet) <= REPLAY_PACKET_MAX:
            kind = REPLAYED
        else:
            kind = KEEPS
        if len(packet) <= REPLAY_PACKET_MAX:
            if len(_KINDS) >= _KINDS_LIMIT:
                _KINDS.clear()
            _KINDS[packet] = kind
    return kind


class StopLane:
    """One connection's C lane: the C state, and the Python that primes it, takes its leftovers and invalidates it.

    serve() is called by the session loop instead of its epoll wait whenever the session may use the lane (one
    process, stopped, all-stop, no-ack mode, nothing half read); after() with every packet Python answered on this
    connection."""

    def __init__(self, ffi: Any, lib: Any, sock_fd: int) -> None:
        self._ffi, self._lib = ffi, lib
        self._state = ffi.new("struct km_lane *")
        state = self._state
        state.sock, state.pass_pending, state.nregs = sock_fd, -1, len(REGISTERS)
        offset = 0
        for i, reg in enumerate(REGISTERS):
            state.reg_off[i], state.reg_len[i] = offset, 2 * reg.size
            offset += 2 * reg.size
        self._passes: list[bytes] = []      # the QPassSignals packets C may answer, in its table's order
        self._memory_key: object = None     # HostMemoryTarget.memory_key() of the windows C holds
        self._windows: Any = None
        self._serve, self._buffer, self._inbuf = lib.km_lane_serve, ffi.buffer, state.inbuf
        self._primed = False        # something was handed to C since the last invalidation
        self._memory_target: tuple[object, bool, bool] = (None, False, False)  # the last target asked, whether it
        #                       is a HostMemoryTarget and a PlantingTarget (a runtime Protocol check is slow)

    @property
    def answered(self) -> int:
        """Packets answered in C on this connection (the tests' proof that the lane ran)."""
        return int(self._state.answered)

    def invalidate(self) -> None:
        """C forgets what it was handed for this stop (registers, windows, replayed frames), if anything."""
        if self._primed:
            self._primed = False
            self._lib.km_lane_invalidate(self._state)

    def watch(self, epoll_fd: int) -> None:
        """The session loop's epoll (the connection and every event descriptor), which serve() waits on."""
        self._state.epfd = epoll_fd

    def serve(self, session: Session, conn: Connection) -> list[Event] | None:
        """Answer what C can; the events of the bytes it handed back (as Connection.receive() makes them), or None
        when another descriptor is ready (the session loop waits as before; the state is invalidated)."""
        state = self._state
        pending = b""
        while True:
            answer = self._serve(state, pending, len(pending))
            if state.nzlog:
                self._take_points(session)              # before anything else Python does
            if answer & PASS_PENDING:
                dispatch(session, self._passes[state.pass_pending])    # gdb's latest set (C said OK)
                state.pass_pending = -1
            code = answer & CODE
            if code == EVENT:
                self.invalidate()
                return None
            back = self._buffer(self._inbuf, answer >> COUNT_SHIFT)[:]
            if code == BYTES:
                return conn.take(back)
            if code == NEED_REGS:
                if not self._prime_registers(session):
                    return conn.take(back)
            elif code == NEED_MEMORY:
                self._prime_memory(session)
            else:                   # SEND_FAILED
                raise ConnectionClosed(os.strerror(state.err))
            pending = back

    def _prime_registers(self, session: Session) -> bool:
        """Only a mapping the target hands out again is primed (kdbg.target.Target.registers: the same one while the
        thread stays stopped): a thread still inside a call (LiveTarget: not parked, e.g. waiting in vfork) may yet
        change its rax, and Python reads it afresh at every g and p."""
        try:
            values = current_registers(session)
            if current_registers(session) is not values:
                return False
            body = encode_registers(values)
        except TargetError:
            return False            # Python answers the packet (its error reply)
        self._primed = True
        return self._lib.km_lane_set_regs(self._state, body, len(body)) == 0

    def _take_points(self, session: Session) -> None:
        """The Z0/z0 C answered: the target takes over the int3s C planted or took out (as set_breakpoint and
        clear_breakpoint would have recorded them), the session the points gdb inserted."""
        state, inf = self._state, session.current
        log = state.zlog
        changes = [(bool(log[4 * i]), int(log[4 * i + 1]), int(log[4 * i + 2]), int(log[4 * i + 3]))
                   for i in range(state.nzlog)]
        state.nzlog = 0
        cast(PlantingTarget, session.target).planted_here([(inserted, addr, hidden)
                                                            for inserted, addr, hidden, _ in changes])
        for inserted, addr, _, kind in changes:
            point = (inf.pid, BreakpointKind.SOFTWARE, addr, kind)
            if inserted:
                session.points.add(point)
            else:
                session.points.discard(point)

    def _prime_memory(self, session: Session) -> None:
        """The target's host windows (asked again when its memory_key() changed) and planted int3s; a target that
        has none, or more windows or breakpoints than the C tables hold, leaves every `m` to Python."""
        target = session.target
        self._primed = True
        if self._memory_target[0] is not target:
            self._memory_target = (target, isinstance(target, HostMemoryTarget), isinstance(target, PlantingTarget))
        control = session.current.control       # Z0/z0 in C: the target plants int3s and takes over C's
        self._state.zsw = int(control is target and self._memory_target[2] and "swbreak" in control.supports())
        if not self._memory_target[1]:
            self._lib.km_lane_set_memory(self._state, self._ffi.NULL, -1, self._ffi.NULL, -1)
            return
        memory = cast(HostMemoryTarget, target)     # (checked once per target above: isinstance costs ~10 us)
        key = memory.memory_key()
        if key != self._memory_key or self._windows is None:
            flat = [n for window in memory.host_windows()[:WINDOWS + 1] for n in window]
            self._windows = (self._ffi.new("unsigned long long[]", flat or [0]), len(flat) // 3)
            self._memory_key = key
        planted = memory.planted_breakpoints()
        flat_bp = [n for point in planted for n in point]
        self._lib.km_lane_set_memory(self._state, self._windows[0], self._windows[1],
                                     self._ffi.new("unsigned long long[]", flat_bp or [0]), len(planted))

    def after(self, packet: bytes, reply: bytes | None, frame: Callable[[], bytes]) -> None:
        """Python answered `packet` with `reply` (its frame: frame()): keep the lane's state when that was a pure
        read (remember its frame when it is a replayed kind), learn a QPassSignals set, else invalidate."""
        kind = packet_kind(packet)
        if kind == INVALIDATES:
            self.invalidate()
        elif kind == PASS_SET:
            if reply == b"OK" and packet not in self._passes:
                self._learn_pass(packet)
        elif kind == REPLAYED and reply:
            framed = frame()
            self._lib.km_lane_remember(self._state, packet, len(packet), framed, len(framed))
            self._primed = True

    def _learn_pass(self, packet: bytes) -> None:
        if len(self._passes) >= PASS_ENTRIES:
            self._passes.clear()
            self._state.npass = 0
        self._passes.append(packet)
        self._lib.km_lane_learn_pass(self._state, packet, len(packet))


def load_lane() -> tuple[Any, Any] | None:
    """The module for StopLane, or None: KM_RSP_LANE=python, or it cannot be had (then the Python session loop
    answers every packet, as the lane's twin). Built here when missing: GdbServer asks before gdb connects."""
    if os.environ.get("KM_RSP_LANE") == "python":
        return None
    return load()


if __name__ == "__main__":      # tools/install.sh
    COMPILED.install("kdbg.rsp.cstop", "the stub answers every packet in Python")
