"""A recording RSP proxy between gdb and a server (issue 10): the same gdb session (bench/gdb.py's driver, fewer
repetitions) against km and against gdbserver on one program, interleaved, every packet timestamped as it passes.

Run: python3 bench/rsp_proxy.py [--reps N] [--steps N] [--hits N] [--show-contents]   (not part of the suite;
~1 minute; the proxy adds the same forwarding delay to both servers, so compare them, not absolute numbers)

First the connect phase (`target remote`, `break main`, `continue` to main: everything before the first phase
mark), per request: its count, the server's summed answer time, gdb's summed think time after it, the reply's size,
then every reply that differs between km and gdbserver (qSupported, target.xml, qTStatus, qSymbol, stop replies).
Then per phase (stepi, breakpoint hits, ignore count) and per request (thread ids and vCont's pid normalized away),
side by side for km and gdbserver: how often gdb sends it per operation, the server's answer time (request's last
byte in -> reply's last byte in, both read by the proxy) and gdb's think time after it (reply in -> gdb's next
request in: gdb's own work, its ack and the proxy's forwarding), and gdb's CPU per operation (schedstat of the gdb
process between the phase marks). Then, where the two servers' replies to the same request differ, both replies
(stop replies, qXfer:threads documents, expedited registers, ...), once each.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import gdb as gdb_bench  # noqa: E402 - the driver gdb runs, its server commands and phase marks
from kdbg.rsp.packets import decode_rle, unescape  # noqa: E402
from tests.harness.gdb import free_port, wait_listening  # noqa: E402

PHASES = ("stepi", "breakpoint hits", "ignore count")
CONNECT = "connect"          # everything before the first phase mark: `target remote`, `break main`, `continue`
_THREAD_ID = re.compile(rb"p[0-9a-f]+\.(-1|[0-9a-f]+)")
_PID_ARG = re.compile(r"^(qAttached:|qXfer:exec-file:read:|vFile:setfs:)(?!0\b)[0-9a-f]+")
_PROC_PID = re.compile(r"/proc/\d+/task/\d+/")


@dataclass
class Packet:
    t_ns: int            # when its last byte reached the proxy
    from_gdb: bool
    body: bytes          # as framed (escaped, maybe run-length encoded)
    counters: tuple[int, ...] = ()  # at phase marks: gdb's CPU, the server's CPU and run-queue wait (ns)


@dataclass
class Recording:
    packets: list[Packet] = field(default_factory=list)
    gdb_pid: int = 0
    server_pid: int = 0
    accepted: Packet | None = None   # when the proxy accepted gdb (the connect phase's start), with its counters


class Splitter:
    """Cuts one direction's byte stream into packets (`$...#xx` and `%...#xx`); acks and ^C are skipped."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        bodies = []
        while True:
            start = min((i for i in (self.buf.find(b"$"), self.buf.find(b"%")) if i >= 0), default=-1)
            if start < 0:
                self.buf = b""
                return bodies
            end = self.buf.find(b"#", start)
            if end < 0 or len(self.buf) < end + 3:
                self.buf = self.buf[start:]
                return bodies
            bodies.append(self.buf[start:end])       # keeps the '$' or '%'
            self.buf = self.buf[end + 3:]


def schedstat(pid: int) -> tuple[int, int]:
    """(CPU ns, ns spent runnable but waiting for a CPU) summed over the process's threads."""
    cpu = wait = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0, 0
    for tid in tids:
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
        except OSError:
            continue                         # a thread that ended meanwhile
        cpu, wait = cpu + int(fields[0]), wait + int(fields[1])
    return cpu, wait


def counters(recording: Recording) -> tuple[int, ...]:
    return (schedstat(recording.gdb_pid)[0], *schedstat(recording.server_pid))


def proxy(listener: socket.socket, server_port: int, recording: Recording) -> None:
    """Accept gdb, connect to the server, forward both ways at once and record every packet as it completes."""
    client, _ = listener.accept()
    clock = time.perf_counter_ns
    recording.accepted = Packet(clock(), True, b"", counters(recording))
    server = socket.create_connection(("127.0.0.1", server_port))
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    peer = {client: server, server: client}
    splitters = {client: Splitter(), server: Splitter()}
    try:
        while True:
            ready, _, _ = select.select([client, server], [], [])
            for s in ready:
                data = s.recv(1 << 20)
                t = clock()
                if not data:
                    return
                peer[s].sendall(data)
                for body in splitters[s].feed(data):
                    packet = Packet(t, s is client, body)
                    if packet.from_gdb and body[1:].startswith(gdb_bench.MARK_PACKET.encode()):
                        packet.counters = counters(recording)
                    recording.packets.append(packet)
    except OSError:
        return
    finally:
        client.close()
        server.close()


def record_session(backend: str, program: Path, work: Path, sizes: dict[str, int],
                   km_root: Path | None = None) -> Recording:
    """One server, the proxy in front of it, bench/gdb.py's measured session (with phase marks) through it.
    km_root: run km from that checkout instead of this one (backend "km")."""
    port = free_port()
    env = gdb_bench.km_env()
    if km_root is not None:
        env["PYTHONPATH"] = f"{km_root}{os.pathsep}{env['PYTHONPATH']}"
    server = subprocess.Popen(gdb_bench.server_command(backend, port, program), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                              cwd=work, start_new_session=True)
    recording = Recording(server_pid=server.pid)
    try:
        wait_listening(port, server, gdb_bench.READY_TIMEOUT_S)
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            out = work / f"{backend}.out"
            out.write_text("")
            env = dict(gdb_bench.km_env(), GDB_BENCH_PORT=str(listener.getsockname()[1]), GDB_BENCH_OUT=str(out),
                       GDB_BENCH_DUMP=str(work / f"{backend}.dump"), GDB_BENCH_MARK="1",
                       **{f"GDB_BENCH_{k.upper()}": str(v) for k, v in sizes.items()})
            forwarder = threading.Thread(target=proxy, args=(listener, port, recording), daemon=True)
            forwarder.start()
            with gdb_bench.driven_gdb(program, env) as gdb:
                recording.gdb_pid = gdb.pid
            failed = [line for line in out.read_text().splitlines() if line.startswith("failed")]
            if failed:
                raise SystemExit(f"rsp_proxy: {backend}: {failed[0]}")
    finally:
        gdb_bench.stop(server)
    return recording


def normalize(body: bytes) -> str:
    """A request or reply with the run's pid and thread ids replaced, so km's and gdbserver's line up."""
    return _THREAD_ID.sub(lambda m: b"p?.?" if m.group(1) != b"-1" else b"p?.-1", body).decode("latin-1")


def request_key(body: bytes) -> str:
    text = normalize(body[1:])
    if text.startswith(("X", "M")) and ":" in text:
        return text.split(":")[0]
    if text.startswith("vFile:open:"):           # the path, readable, with the pid of /proc/PID/... replaced
        path = bytes.fromhex(text.split(":")[2].split(",")[0]).decode("latin-1")
        return "vFile:open:" + _PROC_PID.sub("/proc/?/task/?/", path)[:49]
    return _PID_ARG.sub(r"\1?", text)[:60]


@dataclass
class PhaseStats:
    ops: int
    counters: tuple[int, ...] = (0, 0, 0)   # gdb's CPU, the server's CPU and run-queue wait in the phase (ns)
    answers: dict[str, list[int]] = field(default_factory=lambda: collections.defaultdict(list))
    thinks: dict[str, list[int]] = field(default_factory=lambda: collections.defaultdict(list))
    replies: dict[str, collections.Counter] = field(default_factory=lambda: collections.defaultdict(
        collections.Counter))
    order: list[str] = field(default_factory=list)
    sequence: list[list] = field(default_factory=list)  # [key, answer ns, think ns after it, reply bytes] in order
    wall_ns: int = 0     # from the phase's start to the next mark
    lead_ns: int = 0     # connect only: gdb's accept -> its first packet (TCP set-up, gdb's own start of the session)


def analyze(recording: Recording, sizes: dict[str, int]) -> dict[str, PhaseStats]:
    """Per phase: each request's answer times, gdb's think times after its reply, its replies (decoded)."""
    ops = {"stepi": sizes["steps"], "breakpoint hits": sizes["hits"], "ignore count": sizes["hits"], CONNECT: 1}
    phases: dict[str, PhaseStats] = {CONNECT: PhaseStats(1)}
    current: PhaseStats | None = phases[CONNECT]     # until the first mark (gdb marks no connect phase)
    mark: tuple[int, ...] = recording.accepted.counters if recording.accepted else (0, 0, 0)
    first = next((p for p in recording.packets if p.from_gdb), None)
    if recording.accepted and first:
        current.lead_ns = first.t_ns - recording.accepted.t_ns
    request: Packet | None = None
    last_key, last_reply_t = None, None
    for p in recording.packets:
        if p.from_gdb and p.body[1:].startswith(gdb_bench.MARK_PACKET.encode()):
            if current is not None:
                current.counters = tuple(b - a for a, b in zip(mark, p.counters))
                if current is phases[CONNECT] and recording.accepted:
                    current.wall_ns = p.t_ns - recording.accepted.t_ns
            name = p.body.decode().split(":", 1)[1].replace("_", " ")
            current = phases.setdefault(name, PhaseStats(ops.get(name, 1))) if name in ops else None
            mark, request, last_key = p.counters, None, None
            continue
        if current is None or p.body[:1] != b"$":
            continue
        if p.from_gdb:
            if last_key is not None:
                current.thinks[last_key].append(p.t_ns - last_reply_t)
                if current.sequence:
                    current.sequence[-1][2] = p.t_ns - last_reply_t
            request, last_key = p, None
        elif request is not None:
            key = request_key(request.body)
            if key not in current.answers:
                current.order.append(key)
            current.answers[key].append(p.t_ns - request.t_ns)
            try:
                reply = normalize(unescape(decode_rle(p.body[1:])) if not key.startswith("qXfer")
                                  else decode_rle(p.body[1:]))
            except ValueError:
                reply = normalize(p.body[1:])
            current.replies[key][reply] += 1
            current.sequence.append([key, p.t_ns - request.t_ns, 0, len(reply)])
            request, last_key, last_reply_t = None, key, p.t_ns
    return phases


def med_us(values: list[int]) -> str:
    return f"{statistics.median(values) / 1e3:.0f}" if values else "-"


def _samples(stats: list[PhaseStats], key: str) -> tuple[float, list[int], list[int]]:
    """(times sent per op, answer times, think times after it) over every repetition of one server."""
    answers = [v for s in stats for v in s.answers.get(key, [])]
    thinks = [v for s in stats for v in s.thinks.get(key, [])]
    return len(answers) / stats[0].ops / len(stats), answers, thinks


def _sum_per_op(stats: list[PhaseStats], keys: list[str]) -> tuple[float, float]:
    """The answers' and thinks' medians weighted by how often each request is sent per op (us)."""
    answer = think = 0.0
    for key in keys:
        count, answers, thinks = _samples(stats, key)
        answer += count * statistics.median(answers) / 1e3 if answers else 0.0
        think += count * statistics.median(thinks) / 1e3 if thinks else 0.0
    return answer, think


def report(runs: dict[str, list[dict[str, PhaseStats]]], show_contents: bool) -> None:
    """Side by side per phase and server (gdbserver last): count per op, answer, think (medians over all the
    repetitions' samples); then the replies km's and gdbserver's differ in."""
    names = list(runs)
    heads = " / ".join(names)
    for phase in PHASES:
        per = {b: [r[phase] for r in runs[b] if phase in r] for b in names}
        if not all(per.values()):
            print(f"{phase}: not recorded")
            continue
        ops = per[names[0]][0].ops
        cpu = {b: [statistics.median(s.counters[i] for s in per[b]) / ops / 1e3 for i in range(3)] for b in names}
        cells = [" / ".join(f"{cpu[b][i]:.0f}" for b in names) for i in range(3)]
        print(f"\n{phase}, per op (us), {heads}: gdb's CPU {cells[0]}, the server's CPU {cells[1]} (km's includes "
              f"the payload's run, gdbserver's not), its wait for a CPU {cells[2]}")
        print(f"| request | per op {heads} | answer us | gdb think after it us |")
        print("|---|---|---|---|")
        keys = list(dict.fromkeys(k for b in names for s in per[b] for k in s.order))
        for key in keys:
            samples = [_samples(per[b], key) for b in names]
            if max(c for c, _, _ in samples) >= 0.05:    # (not a packet of the phase's first or last op only)
                print(f"| {key} | " + " | ".join(" / ".join(column) for column in (
                    [f"{c:.2f}" for c, _, _ in samples], [med_us(a) for _, a, _ in samples],
                    [med_us(t) for _, _, t in samples])) + " |")
        for title, chosen in (("resumes", [k for k in keys if k.startswith("vCont")]),
                              ("the other packets", [k for k in keys if not k.startswith("vCont")]),
                              ("all", keys)):
            sums = [_sum_per_op(per[b], chosen) for b in names]
            print(f"| (sum per op: {title}) | | " + " / ".join(f"{a:.0f}" for a, _ in sums) + " | "
                  + " / ".join(f"{t:.0f}" for _, t in sums) + " |")
        for key in keys:
            if key.startswith("m"):
                continue                   # memory: the two stacks differ by their environment, not their server
            common = {b: collections.Counter() for b in ("km", "gdbserver")}
            for b in common:
                for s in per[b]:
                    common[b].update(s.replies.get(key, {}))
            top = {b: common[b].most_common(1)[0][0] if common[b] else "(not sent)" for b in common}
            if top["km"] != top["gdbserver"] and (show_contents or len(top["km"] + top["gdbserver"]) < 4000):
                print(f"  {key}:\n    km: {top['km'][:600]!r}\n    gs: {top['gdbserver'][:600]!r}")


def _median_of_sums(stats: list[PhaseStats], key: str, index: int) -> float:
    """The median over repetitions of one request's summed answer (index 1) or think (2) times in one phase (us)."""
    return statistics.median(sum(e[index] for e in s.sequence if e[0] == key) for s in stats) / 1e3


def report_connect(runs: dict[str, list[dict[str, PhaseStats]]], show_sequence: bool) -> None:
    """The connect phase (`target remote`, `break main`, `continue` to main; one op): per request its count, the
    server's summed answer time and gdb's summed think time after it (medians over repetitions), then every reply
    that differs between km and gdbserver, with its size."""
    names = list(runs)
    heads = " / ".join(names)
    per = {b: [r[CONNECT] for r in runs[b] if CONNECT in r and r[CONNECT].wall_ns] for b in names}
    if not all(per.values()):
        print(f"{CONNECT}: not recorded")
        return

    def med(b: str, f) -> float:
        return statistics.median(f(s) for s in per[b])

    def cell(f, fmt="{:.0f}") -> str:
        return " / ".join(fmt.format(med(b, f)) for b in names)

    print(f"\nconnect -> main (one op; ms, medians over repetitions), {heads}: "
          f"wall {cell(lambda s: s.wall_ns / 1e6, '{:.2f}')}"
          f" = gdb's lead before its first packet {cell(lambda s: s.lead_ns / 1e6, '{:.2f}')}"
          f" + the servers' answers {cell(lambda s: sum(e[1] for e in s.sequence) / 1e6, '{:.2f}')}"
          f" + gdb's thinks {cell(lambda s: sum(e[2] for e in s.sequence) / 1e6, '{:.2f}')}; packets "
          f"{cell(lambda s: len(s.sequence))}; gdb's CPU {cell(lambda s: s.counters[0] / 1e6, '{:.2f}')}, "
          f"the server's CPU {cell(lambda s: s.counters[1] / 1e6, '{:.2f}')}, its wait for a CPU "
          f"{cell(lambda s: s.counters[2] / 1e6, '{:.2f}')}")
    print(f"| request | count {heads} | answer us (sum) | gdb think after it us (sum) | reply bytes |")
    print("|---|---|---|---|---|")
    keys = list(dict.fromkeys(e[0] for b in names for s in per[b] for e in s.sequence))
    for key in keys:
        counts = [med(b, lambda s: sum(1 for e in s.sequence if e[0] == key)) for b in names]
        sizes = [max((e[3] for s in per[b] for e in s.sequence if e[0] == key), default=0) for b in names]
        print(f"| {key} | " + " / ".join(f"{c:g}" for c in counts) + " | "
              + " / ".join(f"{_median_of_sums(per[b], key, 1):.0f}" for b in names) + " | "
              + " / ".join(f"{_median_of_sums(per[b], key, 2):.0f}" for b in names) + " | "
              + " / ".join(str(n) for n in sizes) + " |")
    for key in keys:
        top = {}
        for b in ("km", "gdbserver"):
            common = collections.Counter()
            for s in per.get(b, []):
                common.update(s.replies.get(key, {}))
            top[b] = common.most_common(1)[0][0] if common else "(not sent)"
        if top["km"] != top["gdbserver"] and not key.startswith("m"):
            print(f"  {key}:\n    km ({len(top['km'])}): {top['km'][:300]!r}\n"
                  f"    gs ({len(top['gdbserver'])}): {top['gdbserver'][:300]!r}")
    if show_sequence:
        for b in names:
            print(f"\n{b}'s connect, first repetition, in order (answer us, think us after it, reply bytes):")
            for key, answer, think, size in per[b][0].sequence:
                print(f"  {answer / 1e3:7.0f} {think / 1e3:7.0f} {size:6d}  {key}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2, help="sessions per server, interleaved (default 2)")
    parser.add_argument("--steps", type=int, default=300, help="stepi count (default 300)")
    parser.add_argument("--hits", type=int, default=150, help="breakpoint / ignore-count stops (default 150)")
    parser.add_argument("--show-contents", action="store_true", help="also long replies that differ")
    parser.add_argument("--connect-sequence", action="store_true",
                        help="also the connect phase's packets in order, one repetition per server")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="also km from another checkout (e.g. a worktree of an earlier main), as km-before")
    args = parser.parse_args()
    sizes = {"steps": args.steps, "hits": args.hits, "regs": 1}
    gdb_bench.compile_km()
    with tempfile.TemporaryDirectory(prefix="km-bench-proxy-") as tmp:
        work = Path(tmp)
        program = gdb_bench.build_payload(work)
        servers = {"km": None, **({"km-before": args.before.resolve()} if args.before else {}), "gdbserver": None}
        runs: dict[str, list[dict[str, PhaseStats]]] = {name: [] for name in servers}
        print(f"rsp_proxy: {args.reps} repetitions, {sizes}, load {os.getloadavg()[0]:.2f}", file=sys.stderr)
        for rep in range(args.reps):
            for name in (list(servers) if rep % 2 == 0 else list(servers)[::-1]):
                backend = "gdbserver" if name == "gdbserver" else "km"
                runs[name].append(analyze(record_session(backend, program, work, sizes, servers[name]), sizes))
    report_connect(runs, args.connect_sequence)
    report(runs, args.show_contents)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")


if __name__ == "__main__":
    main()
