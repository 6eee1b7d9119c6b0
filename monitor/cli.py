"""km's command line and composition root: builds the VM, the debugger pieces, runs, and exits with the
payload's status. The only module that prints user-facing errors or calls sys.exit (docs/HOUSE-STYLE.md 2.6)."""
from __future__ import annotations

import gc
import os
import re
import sys
from typing import NoReturn, TYPE_CHECKING

from kdbg.tracelog import logger

from . import __version__
from .errors import MonitorError, UsageError
from .record import Record

if TYPE_CHECKING:
    import socket
    import threading

    from kdbg.rsp.server import GdbServer
    from kdbg.target import ControlTarget, Target

    from .process.payload import Ending, Process
    from .vcpu.loop import VcpuThread

    StubThread = tuple[threading.Thread, GdbServer | None]     # the stub's (or a fork link's) thread, its server

log = logger("km.cli")
DEFAULT_GDB_PORT = 2159
USAGE = """usage: km [options] PAYLOAD.km [ARGS...]
       km [options] SNAPSHOT          (resume a snapshot)
       (or a symlink NAME to km, running NAME.km)

Runs a Linux x86-64 program alone in its own KVM virtual machine.

options:
  -g[PORT]            stop before the first instruction and wait for gdb on PORT (default 2159)
  --gdb_listen        run at once; gdb may attach and detach at any time (port from -g, default 2159)
  --gdb_host ADDR     the address the gdb stub listens on (default 127.0.0.1; 0.0.0.0 in a container whose
                      port is published)
  --putenv NAME=VAL   add or replace an environment variable of the payload (repeatable)
  --coredump=FILE     where a crashing payload's core goes (default ./kmcore)
  --core FILE         serve FILE (a kmcore) to gdb instead of running (with -g)
  --snapshot=FILE     where the payload's own snapshots go (km_snapshot_take; default ./kmsnap)
  --mgtpipe=PATH      serve km-cli on the UNIX socket PATH (snapshots from outside; also KM_MGTPIPE)
  --version           print km's version
  -h, --help          this help
environment: KM_VERBOSE=1 or KM_VERBOSE=REGEX (trace tags, e.g. 'syscall|mem') traces to stderr;
             KM_GDB_CHILD_FORK_WAIT=REGEX makes a forked child whose name matches wait for gdb.
"""


class Options(Record):
    def __init__(self, payload: str = "", args: list[str] | None = None, gdb_port: int | None = None,
                 gdb_listen: bool = False, gdb_host: str = "127.0.0.1", putenv: list[str] | None = None,
                 coredump: str = "kmcore", core: str | None = None, snapshot: str = "kmsnap",
                 mgtpipe: str | None = None, argv0: str | None = None,
                 exec_signals: tuple[int, int] | None = None, env_fd: int | None = None,
                 gdb_handover: str | None = None) -> None:
        self.payload = payload
        self.args: list[str] = [] if args is None else args
        self.gdb_port = gdb_port
        self.gdb_listen = gdb_listen
        self.gdb_host = gdb_host
        self.putenv: list[str] = [] if putenv is None else putenv
        self.coredump = coredump
        self.core = core
        self.snapshot = snapshot
        self.mgtpipe = mgtpipe if mgtpipe is not None else os.environ.get("KM_MGTPIPE") or None
        self.argv0 = argv0                  # execve: the payload's argv[0] when it differs from its path
        self.exec_signals = exec_signals    # execve: the SIG_IGN set and signal mask execve keeps
        self.env_fd = env_fd                # execve: the payload's environment, read from this descriptor (km's
        #                                     own environment stays km's: PYTHON*, LD_* must not steer km)
        self.gdb_handover = gdb_handover    # execve under gdb: the stub's state, whose connection stays open


# options taking a value (`--name value` or `--name=value`): what the value is, and its check
_VALUE_OPTIONS = {"--putenv": ("NAME=VALUE", lambda v: "=" in v), "--coredump": ("a file name", bool),
                  "--core": ("a core file", bool), "--gdb_host": ("an address", bool),
                  "--snapshot": ("a file name", bool), "--mgtpipe": ("a socket path", bool)}


def parse_args(argv: list[str]) -> Options:
    """km's options come before the payload; everything after the payload is the payload's."""
    opts = Options()
    prog = os.path.basename(argv[0]) if argv else "km"
    if prog not in ("km", "cli.py", "__main__.py", "-c") and \
            (not prog.startswith("python") or os.path.lexists(argv[0] + ".km")):   # ./python3 -> python3.km
        # symlink form: ./tool runs ./tool.km with all arguments
        opts.payload = argv[0] + ".km"
        opts.args = [argv[0], *argv[1:]]
        return opts
    args = argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-h", "--help"):
            raise SystemExit(USAGE)
        if a == "--version":
            raise SystemExit(f"km {__version__}")
        if a.startswith("-g") and not a.startswith("--"):
            port = a[2:]
            if port and not port.isdigit() or (port and not 0 < int(port) < 65536):
                raise UsageError(a, "bad gdb port (want -gPORT with PORT in 1..65535)")
            opts.gdb_port = int(port) if port else DEFAULT_GDB_PORT
        elif a == "--gdb_listen" or a == "--gdb-listen":
            opts.gdb_listen = True
        elif a.split("=", 1)[0] in _VALUE_OPTIONS:
            name = a.split("=", 1)[0]
            if "=" in a:
                value = a.split("=", 1)[1]
            else:
                i += 1
                value = args[i] if i < len(args) else ""
            what, check = _VALUE_OPTIONS[name]
            if not value or not check(value):
                raise UsageError(name, f"needs {what}" if not value else f"{value!r} is not {what}")
            if name == "--putenv":
                opts.putenv.append(value)
            else:
                setattr(opts, name[2:], value)
        elif a.startswith("--argv0="):
            opts.argv0 = a.split("=", 1)[1]
        elif a.startswith("--exec-signals="):
            value = a.split("=", 1)[1]
            if not re.fullmatch(r"[0-9a-f]+:[0-9a-f]+", value):
                raise UsageError("--exec-signals", f"{value!r} is not IGNORED:MASK in hex")
            ignored, mask = value.split(":")
            opts.exec_signals = (int(ignored, 16), int(mask, 16))
        elif a.startswith("--gdb-handover="):
            opts.gdb_handover = a.split("=", 1)[1]
        elif a.startswith("--env-fd="):
            value = a.split("=", 1)[1]
            if not value.isdigit():
                raise UsageError("--env-fd", f"{value!r} is not a descriptor number")
            opts.env_fd = int(value)
        elif a == "--":
            i += 1
            break
        elif a.startswith("-"):
            raise UsageError(a, "unknown option (see km --help)")
        else:
            break
        i += 1
    if i >= len(args):
        raise UsageError("payload", "none given (see km --help)")
    opts.payload = args[i]
    opts.args = args[i:]
    if opts.core is not None and len(args) > i + 1:
        # `km --core kmcore payload.km -g1234`: nothing runs, so what follows the payload are km's options
        rest = parse_args(["km", *args[i + 1:], opts.payload])
        opts.gdb_port = rest.gdb_port if rest.gdb_port is not None else opts.gdb_port
    if opts.argv0 is not None:
        opts.args[0] = opts.argv0
    if opts.gdb_listen and opts.gdb_port is None:
        opts.gdb_port = DEFAULT_GDB_PORT
    return opts


def payload_env(putenv: list[str]) -> list[str]:
    env = dict(os.environ)
    for item in putenv:
        name, value = item.split("=", 1)
        env[name] = value
    return [f"{k}={v}" for k, v in env.items() if not k.startswith("KM_")]


def inherited_env(fd: int) -> list[str]:
    """The environment an execve handed over (NUL-separated in a descriptor, which is closed here)."""
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UsageError("--env-fd", f"descriptor {fd}: {e.strerror}") from None
    return [os.fsdecode(e) for e in data.split(b"\0") if e]


def run(opts: Options) -> int:
    from .trace import setup_trace
    setup_trace(opts.payload)
    if opts.core is not None:
        return serve_core(opts, opts.core)
    listener = gdb_listener(opts) if opts.gdb_port is not None and opts.gdb_handover is None else None
    from .snapshot import is_core
    if is_core(opts.payload):
        proc, threads = resume_snapshot(opts)
    else:
        from .loader.script import resolve_exec
        from .process.payload import Process
        env = inherited_env(opts.env_fd) if opts.env_fd is not None else payload_env(opts.putenv)
        # a #! script runs its interpreter (km's own command line need not name an executable file)
        opts.payload, opts.args = resolve_exec(opts.payload, opts.args, check_exec=False)
        proc = Process(opts.payload, opts.args, env,
                       core_writer=lambda view, thread, signo: write_kmcore(opts, view, thread, signo),
                       child_runner=lambda p, thread, link: run_forked_child(opts, p, thread, link), snapshot_path=opts.snapshot)
        threads = [proc.prepare_main_thread()]
        ignored, mask = opts.exec_signals if opts.exec_signals is not None else (host_ignored_signals(), 0)
        proc.signals.inherit_across_exec(threads[0], ignored, mask)
    server = None
    if opts.gdb_handover is not None:
        server = continue_debugging(opts, proc, threads[0])
    elif opts.gdb_port is not None:
        server = start_gdb_server(opts, proc, threads, listener)
    mgmt = start_management(opts, proc)
    forward_host_signals(proc, server[1] if server is not None else None)
    for thread in threads:
        proc.start(thread)
    gc.freeze()     # start-up's objects live on: no collection walks them, in this km or a forked one (whose
    gc.enable()     # walks would write every page it shares with its parent; main() held the collector off)
    try:
        ending = proc.wait()
    finally:
        if mgmt is not None:
            mgmt.close()
    wait_for_stub(server)                   # gdb hears W/X before km exits
    if (opts.env_fd is not None or proc.execed) and ending.signal is not None and ending.error is None:
        # a program a payload exec'ed: whoever waits (a payload's subprocess, a shell) must see the signal, and
        # the kernel prints nothing (the waiting shell may)
        report_ending(opts, ending, quiet=True)
        die_of(ending.signal)
    return report_ending(opts, ending)


def wait_for_stub(server: StubThread | None) -> None:
    """A stub that still debugs a followed child keeps km alive until that session ends (as gdbserver would
    outlive the payload); otherwise it gets a few seconds to send W/X."""
    if server is None:
        return
    thread, stub = server
    thread.join(timeout=10)
    while thread.is_alive() and stub is not None and stub.serves_others():
        thread.join(timeout=1)


def fork_wait_matches(opts: Options) -> bool:
    """KM_GDB_CHILD_FORK_WAIT names this payload: its forked children wait for a gdb of their own."""
    import re
    pattern = os.environ.get("KM_GDB_CHILD_FORK_WAIT")
    return bool(pattern and re.search(pattern, os.path.basename(opts.payload)))


def resume_snapshot(opts: Options):
    """`km FILE` of a snapshot: its process, ready to go on (the threads not started); the payload's own paths are
    the snapshot's, so km's must not depend on the working directory it restores."""
    from .snapshot.resume import resume
    if len(opts.args) > 1:
        raise UsageError(opts.payload, "a snapshot resumes with the arguments it was taken with: none may follow it")
    opts.coredump, opts.snapshot = os.path.abspath(opts.coredump), os.path.abspath(opts.snapshot)
    if opts.mgtpipe:
        opts.mgtpipe = os.path.abspath(opts.mgtpipe)
    opts.args = []
    return resume(opts.payload, core_writer=lambda view, thread, signo: write_kmcore(opts, view, thread, signo),
                  child_runner=lambda p, thread, link: run_forked_child(opts, p, thread, link), snapshot_path=opts.snapshot)


def start_management(opts: Options, proc: Process):
    """--mgtpipe / KM_MGTPIPE: km-cli's socket, served by a km thread (monitor/mgmt)."""
    if not opts.mgtpipe:
        return None
    from .mgmt.server import ManagementServer
    return ManagementServer(proc, opts.mgtpipe)


def run_forked_child(opts: Options, proc: Process, thread: VcpuThread, link: socket.socket | None) -> NoReturn:
    """The rest of a forked km's life (never returns): debugged through `link` when the parent's gdb follows it,
    or optionally waiting for a gdb of its own; run, exit like the payload."""
    parent_port = opts.gdb_port or DEFAULT_GDB_PORT
    opts = Options(**{**opts.__dict__, "gdb_port": None, "gdb_listen": False})
    server = None
    if link is not None:
        from .debug.live_target import LiveTarget
        assert isinstance(proc.debug, LiveTarget), "a followed child's debugger is the LiveTarget fork.py adopted"
        server = serve_link(link, proc.debug)
    elif fork_wait_matches(opts):
        opts.gdb_port = free_port_above(parent_port)
        from kdbg.stub_banner import fork_wait_banner
        print(fork_wait_banner(opts.payload, os.getpid(), opts.gdb_port), file=sys.stderr, flush=True)
        server = start_gdb_server(opts, proc, [thread])
    unblock_forwarded_signals()        # the handlers it inherited forward to this same (rebuilt) Process
    proc.exits_at_once = server is None
    proc.start(thread)
    ending = proc.wait()
    wait_for_stub(server)
    status = report_ending(opts, ending, quiet=True)     # the parent payload hears of it through wait4
    if ending.signal is not None:       # the parent payload's wait4 must see WIFSIGNALED, as on Linux
        die_of(ending.signal)
    os._exit(status)


def die_of(signo: int) -> None:
    """End km killed by the payload's signal (no host core: km wrote its kmcore), so that whoever waits for this
    process sees WIFSIGNALED and WTERMSIG as for the payload run natively."""
    import resource
    import signal as host_signal
    from .process.fork import flush_std_streams
    flush_std_streams()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    host_signal.signal(signo, host_signal.SIG_DFL)
    host_signal.pthread_sigmask(host_signal.SIG_UNBLOCK, [signo])
    os.kill(os.getpid(), signo)


def free_port_above(port: int) -> int:
    import socket
    for candidate in range(port + 1, 65536):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
                return candidate
            except OSError:
                continue
    raise MonitorError("gdb port", f"no free port above {port}")


def gdb_listener(opts: Options) -> socket.socket:
    """-g/--gdb_listen: the stub's port listens before km loads the program and builds the VM (~0.1 s), so a gdb
    started beside km connects while km gets ready; its first packets are answered once the stub runs."""
    assert opts.gdb_port is not None
    from kdbg.rsp.errors import ListenError
    from kdbg.rsp.fds import listen, set_fd_mover
    from .host_fds import GATE, high_fd
    set_fd_mover(high_fd, GATE.km)          # the stub's descriptors stay out of the payload's way
    try:
        return listen(opts.gdb_host, opts.gdb_port)
    except ListenError as e:
        raise MonitorError(e.subject, e.problem) from None


def start_gdb_server(opts: Options, proc: Process, threads: list[VcpuThread],
                     listener: socket.socket | None = None) -> StubThread:
    """The stub in its own thread; with -g the payload waits at its first instruction (ENTRY stop), or, resumed
    from a snapshot, every thread where it was, the first one shown."""
    assert opts.gdb_port is not None, "called for -g and --gdb_listen only"
    from kdbg.rsp.errors import ListenError
    from kdbg.rsp.server import GdbServer
    from kdbg.stub_banner import listening_banner, waiting_banner
    wait = not opts.gdb_listen
    target = _live_target(opts, proc, stopped_at_entry=wait)
    try:
        server = GdbServer(target, opts.gdb_port, opts.gdb_host, initially_stopped=wait, listener=listener)
    except ListenError as e:
        raise MonitorError(e.subject, e.problem) from None
    if wait:
        for thread in threads[1:]:
            thread.pause_requested = True
        target.stop_at_entry(threads[0])
        print(waiting_banner(opts.payload, server.port, proc.path), file=sys.stderr, flush=True)
    else:
        print(listening_banner(proc.path, server.port), file=sys.stderr, flush=True)
    return _start_thread(_serve, server, "gdb-stub"), server


def _live_target(opts: Options, proc: Process, *, stopped_at_entry: bool):
    from kdbg.rsp.fds import set_fd_mover
    from .host_fds import GATE, high_fd
    from .debug.live_target import LiveTarget
    set_fd_mover(high_fd, GATE.km)          # the stub's descriptors stay out of the payload's way
    return LiveTarget(proc, stopped_at_entry=stopped_at_entry, follow_forks=not fork_wait_matches(opts))


def _start_thread(function, argument, name: str):
    import threading
    thread = threading.Thread(target=function, args=(argument,), name=name, daemon=True)
    thread.start()
    return thread


def continue_debugging(opts: Options, proc: Process, main_thread: VcpuThread) -> StubThread:
    """The payload exec'd this program under gdb: the old km's stub (or fork link) handed its descriptors over,
    and the session goes on here; gdb hears of the exec as an EXEC stop at the first instruction."""
    import json
    from kdbg.rsp.server import GdbServer, inherits_connection
    assert opts.gdb_handover is not None
    state = opts.gdb_handover.encode()
    settings = json.loads(state)
    if "link" in settings:
        import socket
        link = socket.socket(fileno=settings.pop("link"))
        os.set_inheritable(link.fileno(), False)
        target = _live_target(opts, proc, stopped_at_entry=True)
        target.stop_at_exec(main_thread)
        return serve_link(link, target, settings)
    connected = inherits_connection(state)
    target = _live_target(opts, proc, stopped_at_entry=connected)
    server = GdbServer(target, 0, initially_stopped=connected, handover=state)
    if connected:
        target.stop_at_exec(main_thread)
    return _start_thread(_serve, server, "gdb-stub"), server


def serve_link(link: socket.socket, target: ControlTarget, settings: dict | None = None) -> StubThread:
    """A followed child (or its exec): its target served to the parent km's stub over the fork link."""
    from kdbg.target_link import serve_target
    return _start_thread(lambda t: serve_target(link, t, settings), target, "gdb-link"), None


def _serve(server: GdbServer) -> None:
    try:
        server.serve()
    except Exception:                   # the stub failing must never lose the payload
        log.error("gdb stub failed", exc_info=True)


def serve_core(opts: Options, core: str) -> int:
    """km --core kmcore payload.km -g: gdb reads the crash over RSP, through the same stub."""
    gc.enable()
    from kdbg.core.reader import CoreTarget
    from kdbg.rsp.errors import ListenError
    from kdbg.rsp.server import GdbServer
    from kdbg.stub_banner import waiting_banner
    if not os.path.exists(core):
        raise MonitorError(core, "no such file")
    try:
        target = CoreTarget(core, opts.payload)
    except Exception as e:
        raise MonitorError(core, f"not a readable core file ({e})".splitlines()[0]) from None
    try:
        server = GdbServer(target, opts.gdb_port or DEFAULT_GDB_PORT, opts.gdb_host, initially_stopped=True)
    except ListenError as e:
        raise MonitorError(e.subject, e.problem) from None
    print(waiting_banner(core, server.port, opts.payload), file=sys.stderr, flush=True)
    server.serve(once=True)
    return 0


def host_ignored_signals() -> int:
    """The signals km was started with ignored (nohup, a shell's background job): the payload keeps them ignored,
    as execve does. SIGPIPE and SIGXFSZ are not known: Python ignores them at its start-up before km runs."""
    import signal as host_signal
    unknown = (host_signal.SIGPIPE, host_signal.SIGXFSZ, host_signal.SIGKILL, host_signal.SIGSTOP)
    return sum(1 << (signo - 1) for signo in host_signal.valid_signals()
               if signo not in unknown and host_signal.getsignal(signo) == host_signal.SIG_IGN)


def forward_host_signals(proc: Process, stub: GdbServer | None = None) -> None:
    """SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 sent to km go to the payload (Ctrl-C on a terminal works).
    A `km -g` still waiting for its first gdb ends on SIGTERM or SIGHUP, as gdbserver does: its payload has not
    started, and would hold the signal pending until a debugger came (a service manager's stop would hang).
    The calling (main) thread takes them: a re-executed km inherits the mask of the vCPU thread that made it,
    which blocks them (signals.MAIN_THREAD_ONLY). A forked km never comes here: it inherits these handlers, bound
    to the same (rebuilt) Process, and only unblocks them (run_forked_child: ten sigactions less per fork)."""
    import signal as host_signal
    from kdbg.arch.linux import make_siginfo
    from .signals.delivery import FORWARDED_FROM_HOST
    ends_waiting_stub = (host_signal.SIGTERM, host_signal.SIGHUP)

    def forward(signo, frame) -> None:
        if signo in ends_waiting_stub and stub is not None and stub.awaiting_first_debugger():
            die_of(signo)
        info = _child_change() if signo == host_signal.SIGCHLD else None
        proc.signals.send(signo, info or make_siginfo(signo, 0, pid=0))
    for signo in FORWARDED_FROM_HOST:
        host_signal.signal(signo, forward)
    unblock_forwarded_signals()


def unblock_forwarded_signals() -> None:
    """On the calling (main) thread: a forked km's, whose inherited handlers need no check (~35 page faults less).
    _signal's call, not signal's, which makes Signals of the old mask (~50 us and ~20 page copies per fork)."""
    import _signal
    from .signals.delivery import FORWARDED_FROM_HOST
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, FORWARDED_FROM_HOST)


def _child_change() -> bytes | None:
    """SIGCHLD's siginfo for a forked payload (a km child) that changed state, seen without reaping it: Python's
    handlers get no siginfo, and a payload reading SIGCHLD from a signalfd or sigwaitinfo wants the child."""
    from kdbg.arch.linux import make_sigchld_info
    try:
        change = os.waitid(os.P_ALL, 0, os.WEXITED | os.WSTOPPED | os.WCONTINUED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return None
    if change is None:
        return None
    return make_sigchld_info(change.si_code, change.si_pid, change.si_uid, change.si_status)


def write_kmcore(opts: Options, view: Target, thread: VcpuThread | None, signo: int) -> None:
    """Core of a payload killed by a core-dumping signal (every other thread parked); raises when it cannot be
    written (no space, no permission...), and Process keeps the reason for the one-line message."""
    from kdbg.core.writer import write_core
    write_core(view, opts.coredump, signal=signo, crashing_tid=thread.tid if thread is not None else None)


def report_ending(opts: Options, ending: Ending, quiet: bool = False) -> int:
    import signal as host_signal
    if ending.error is not None:
        err = ending.error
        raise err if isinstance(err, MonitorError) else MonitorError("internal error", str(err) or type(err).__name__)
    if ending.signal is not None:
        name = host_signal.Signals(ending.signal).name
        if ending.core_dumped:
            where = opts.coredump if os.path.dirname(opts.coredump) else f"./{opts.coredump}"
            detail = f" (core dumped to {where})"
        elif ending.core_error:
            detail = f" (core not written: {ending.core_error})"
        else:
            detail = ""
        if not quiet and name not in ("SIGPIPE", "SIGINT"):
            print(f"km: {opts.payload}: killed by {name}{detail}", file=sys.stderr)
        return 128 + ending.signal
    return ending.status or 0


def main(argv: list[str] | None = None) -> None:
    # Start-up allocates tens of thousands of objects that all live on (modules, tables, the VM): the collector
    # would scan them a dozen times for nothing (~1 ms). run() turns it back on once the payload runs.
    gc.disable()
    argv = sys.argv if argv is None else argv
    try:
        opts = parse_args(argv)
        status = run(opts)
    except SystemExit as e:
        gc.enable()                         # --help, --version: a caller (a test) goes on
        if isinstance(e.code, str):
            print(e.code, file=sys.stdout if e.code.startswith(("usage", "km ")) else sys.stderr)
            sys.exit(0)
        raise
    except MonitorError as e:
        log.debug("failure", exc_info=True)
        print(f"km: {e}", file=sys.stderr)
        sys.stderr and sys.stderr.flush()
        os._exit(e.exit_status)
    except KeyboardInterrupt:
        os._exit(130)
    except Exception as e:              # a bug in km: one line for the user, the traceback in the trace
        log.error("internal error", exc_info=True)
        print(f"km: internal error: {type(e).__name__}: {e}".splitlines()[0], file=sys.stderr)
        sys.stderr and sys.stderr.flush()
        os._exit(1)
    from .process.fork import flush_std_streams
    flush_std_streams()
    from .trace import flush
    flush()
    os._exit(status)


if __name__ == "__main__":
    main()
