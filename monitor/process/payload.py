"""A payload process: its VM, address space, threads, and how it ends (exit status or killing signal).

One Process per km. Threads are VcpuThreads; the main (Python) thread only waits for the end and serves
host signals, so a blocked vCPU never stalls anything else.
"""
from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Callable, NoReturn

from kdbg.breakpoints import SoftwareBreakpoints
from kdbg.tracelog import logger
from kdbg.vcpu_control import KICK_SIGNAL, PauseTimeout, StopTheWorld, install_kick_handler

from ..debug.hooks import NO_DEBUGGER, DebugHooks
from ..record import Record
from ..loader.elf import Program, load_program
from ..loader.stack import auxv_bytes, build_stack
from ..errors import MonitorError
from ..memory.guest import GuestMemory
from ..kvm import abi
from ..kvm.cpuid import add_host_user_isa
from ..kvm.vm import Kvm
from ..vcpu.machine import (KBASE, MAX_VCPUS, SELFTEST_GVA, SYSCALL_PORT, SYSCALL_STUB_GPA, SYSCALL_STUB_GVA, SYSTEM_SIZE,
                      build_system_area, init_vcpu_state)
from ..memory.page_tables import PTE_U, PTE_W, PageTables
from ..memory.physical import HUGE, PhysicalMemory
from ..signals.delivery import SignalState
from ..syscalls.futex import FutexTable, exit_robust_list
from ..syscalls.timer import ProcessClock
from ..vcpu.registers import cpu_xsave_layout
from ..memory.vdso import map_vdso
from ..vcpu.loop import RIP, RSP, RFLAGS, State, VcpuThread

if TYPE_CHECKING:
    import socket

    from ..debug.process_view import ProcessView

log = logger("km.vcpu")
SIGNAL_NAMES = {s.value: s.name for s in signal.Signals}
EXCEPTION_SIGNALS = {0: signal.SIGFPE, 1: signal.SIGTRAP, 3: signal.SIGTRAP, 4: signal.SIGSEGV, 5: signal.SIGSEGV,
                     6: signal.SIGILL, 7: signal.SIGFPE, 10: signal.SIGSEGV, 11: signal.SIGBUS, 12: signal.SIGBUS,
                     13: signal.SIGSEGV, 14: signal.SIGSEGV, 16: signal.SIGFPE, 17: signal.SIGBUS,
                     19: signal.SIGFPE}
CORE_PAUSE_TIMEOUT_S = 5.0      # how long the other threads may take to park before a core dump is abandoned


# The composition root's policies, given at construction: write a core (raises on failure), and the rest of a
# forked km's life (never returns).
CoreWriter = Callable[["ProcessView", "VcpuThread | None", int], None]
ChildRunner = Callable[["Process", VcpuThread, "socket.socket | None"], NoReturn]   # link: a followed child


class Ending(Record):
    def __init__(self, status: int | None = None, signal: int | None = None, core_dumped: bool = False,
                 core_error: str | None = None, error: BaseException | None = None) -> None:
        self.status = status                # exit status when the payload exited
        self.signal = signal                # the signal that killed it
        self.core_dumped = core_dumped
        self.core_error = core_error
        self.error = error                  # km's own failure


class Process:
    def __init__(self, path: str, argv: list[str], env: list[str], *, core_writer: CoreWriter | None = None,
                 child_runner: ChildRunner | None = None, snapshot_path: str = "kmsnap",
                 load_payload: bool = True) -> None:
        """`load_payload` False: an empty address space, for a snapshot to be restored into (monitor/snapshot)."""
        self.path, self.argv, self.env = path, argv, env
        self.snapshot_path = snapshot_path        # where km_snapshot_take() writes (km --snapshot=FILE)
        self.core_writer, self.child_runner = core_writer, child_runner
        self.kvm = Kvm()
        self.vm = self.kvm.create_vm()
        self.phys = PhysicalMemory(self.vm)
        if self.phys.alloc(SYSTEM_SIZE, HUGE, 0) != 0:
            raise MonitorError("guest memory", "system area not at GPA 0")
        build_system_area(self.phys.view(0, SYSTEM_SIZE))
        self.tables = PageTables(self.phys)
        self.tables.set_range(KBASE, SYSTEM_SIZE, 0, PTE_W)                      # supervisor only
        self.tables.set_range(SYSCALL_STUB_GVA, 0x1000, SYSCALL_STUB_GPA, PTE_U)  # user, read-only, executable
        self.mem = GuestMemory(self.phys, self.tables, on_remap=self._remapped)
        self.breakpoints = SoftwareBreakpoints(self.mem.read_debug, self.mem.write_debug)   # int3s a debugger planted
        self.cpuid = self.kvm.supported_cpuid()
        add_host_user_isa(self.cpuid)      # LZCNT, SSE4A, RDTSCP that kvm-pvm's list omits (kvm/cpuid.py)
        self.xsave_layout = cpu_xsave_layout(self.cpuid)     # where KVM_GET_XSAVE images keep AVX, AVX-512
        self.syscall_at_cpl0 = False
        self._fresh_process_state()
        install_kick_handler()
        self.nice = os.getpriority(os.PRIO_PROCESS, 0)  # getpriority/setpriority: the payload's, km's at start
        self.personality = 0            # personality(2): the payload's execution domain (PER_LINUX)
        self.no_vdso = os.environ.get("KM_NO_VDSO") is not None
        self.execed = False             # the payload exec'ed in this km (process/exec_in_process.py)
        self.comm_writes: dict[int, tuple[VcpuThread, int]] = {}   # fd -> (thread, inode): /proc/.../comm open for
        #                                 writing, renamed at close (syscalls/procfs.py close_comm)
        self.exec_lock_held = False     # a thread is in that exec (under self.lock): another one's execve loses
        self.vfork_release_fd: int | None = None    # a vfork child's end of the pipe its parent waits on
        self.auxv = b""
        self.initial_rsp = 0
        if load_payload:
            self.program: Program = load_program(path, self.mem)
            self.mem.brk_start = self.mem.brk = self.program.exe.end

    # ---- set-up -------------------------------------------------------------------------------------------
    def adopt_ids(self, pid: int, tids: list[int]) -> None:
        """A resumed snapshot keeps its pid and thread ids (the C library keeps tids in its mutexes); new
        threads get ids above them."""
        self.pid = pid
        self._tids = itertools.count(max([pid, *tids]) + 1)

    def rebuild_after_fork(self) -> Callable[[], None]:
        """In a forked km: a new VM over the same (now copy-on-write) host memory; no threads yet. Returns the wait
        for its memory slots (PhysicalMemory.rebind), to be called before the vCPU first runs."""
        for fd in [self.vm.fd] + [t.vcpu.fd for t in self.threads.values()] + [v.fd for v in self.free_vcpus]:
            try:
                os.close(fd)          # the parent's VM: unusable from this process
            except OSError:
                pass
        self.vm = self.kvm.create_vm()     # through the parent's /dev/kvm descriptor: not tied to a process
        memslots_ready = self.phys.rebind(self.vm)   # self.cpuid stays: the same host's KVM answers the same
        parent_signals = self.signals
        parent_signals.after_fork()
        self._fresh_process_state(parent_signals.actions)   # no timers (fork(2)), no debugger (the parent's objects
        #                                                     do not follow); the signal dispositions stay
        if parent_signals.signalfds is not None:
            self.signals.signalfds = parent_signals.signalfds.after_fork()
        return memslots_ready

    def _fresh_process_state(self, signal_actions: list | None = None) -> None:
        """What a new process starts with, in a new km or a forked one: no threads, its own pid, no debugger, no
        timers, no pending signals; the dispositions given (a forked child's: its parent's), else the defaults."""
        self.lock = threading.RLock()
        self.threads: dict[int, VcpuThread] = {}
        self.free_vcpus: list = []
        self.pid = os.getpid()
        self._tids = itertools.count(self.pid)
        self._vcpu_ids = itertools.count()
        self.ending = Ending()
        self.ended = threading.Event()
        self.world = StopTheWorld(self.live_threads)    # the one stop-the-world: debugger stops and core dumps
        self._dying = threading.Lock()                  # held by the thread dumping core for a fatal signal
        self.freezing = False                           # a snapshot is being taken: new threads start frozen
        self.debug: DebugHooks = NO_DEBUGGER      # monitor/debug/live_target.py when gdb may attach
        # A forked km that nobody debugs ends its host process on the payload's exit_group, on the thread that made
        # it (cli.run_forked_child chooses it): the main thread has nothing left to do but exit with the same status.
        self.exits_at_once = False
        self.futexes = FutexTable()
        self.clock = ProcessClock(self)         # alarm, setitimer and POSIX timers
        self.signals = SignalState(self, signal_actions)

    def new_thread(self, tid: int | None = None) -> VcpuThread:
        """A guest thread on a vCPU: an exited thread's vCPU when there is one (KVM cannot destroy vCPUs, and
        programs create far more threads over their life than they run at once), else a new one. `tid`: the
        thread's id when it has one already (a resumed snapshot's thread)."""
        with self.lock:
            vcpu = self.free_vcpus.pop() if self.free_vcpus else None
        if vcpu is None:
            vcpu_id = next(self._vcpu_ids)
            if vcpu_id >= MAX_VCPUS:
                raise MonitorError("vCPU", f"more than {MAX_VCPUS} threads at once")
            vcpu = self.vm.create_vcpu(vcpu_id)
            init_vcpu_state(vcpu, vcpu_id, self.tables.pml4, self.cpuid)
        else:
            vcpu.run.kvm_dirty_regs = 0
            vcpu.run.immediate_exit = 0
        thread = VcpuThread(self, vcpu, next(self._tids) if tid is None else tid)
        with self.lock:
            self.threads[thread.tid] = thread
        self.debug.on_thread_start(thread)
        return thread

    def prepare_main_thread(self) -> VcpuThread:
        """The first vCPU: self-test of the syscall path, then the payload's entry state."""
        thread = self.new_thread()
        self.self_test(thread)
        self.enter_program(thread, os.fsencode(os.path.abspath(self.path)))
        return thread

    def enter_program(self, thread: VcpuThread, execfn: bytes) -> None:
        """The loaded program's first instant on `thread`: vDSO, stack (argv, envp, auxv with AT_EXECFN
        `execfn`), and registers at its entry (the rest zero, as Linux's ELF_PLAT_INIT leaves them)."""
        fs = sys.getfilesystemencoding()                # os.fsencode's, without a Python call per string
        argv = [a.encode(fs, "surrogateescape") for a in self.argv]     # bytes as the host gave them
        envp = [e.encode(fs, "surrogateescape") for e in self.env]
        vdso = map_vdso(self.mem) if not self.no_vdso else 0
        self.initial_rsp = build_stack(self.mem, self.program, argv, envp, execfn, vdso)
        self.auxv = auxv_bytes(self.mem, self.initial_rsp)
        regs = [0] * 18
        regs[RIP], regs[RSP], regs[RFLAGS] = self.program.entry, self.initial_rsp, 0x202
        thread.set_user_regs(regs)

    def self_test(self, thread: VcpuThread) -> None:
        """One `syscall` into the stub, run once on the first vCPU: on kvm-pvm it arrives at CPL3, on hardware
        KVM at CPL0 (docs/KVM.md 2.1)."""
        regs = thread.vcpu.get_regs()
        regs.rip, regs.rflags, regs.rsp = SELFTEST_GVA, 0x2, 0
        thread.vcpu.set_regs(regs)
        err = thread.vcpu.run_once()
        run = thread.vcpu.run
        if err or run.exit_reason != abi.KVM_EXIT_IO or run.u.io.port != SYSCALL_PORT:
            raise MonitorError("/dev/kvm", f"self-test: syscall did not reach km (exit {run.exit_reason}, err {err})")
        self.syscall_at_cpl0 = (run.s.regs.sregs.cs.selector & 3) == 0
        log.info("self-test: syscall enters the stub at CPL%d (%s)", 0 if self.syscall_at_cpl0 else 3,
                 "hardware KVM path" if self.syscall_at_cpl0 else "kvm-pvm path")
        if self.syscall_at_cpl0:
            thread._return_to_user_segments()

    # ---- running ------------------------------------------------------------------------------------------
    def kick_thread(self, ident: int) -> None:
        signal.pthread_kill(ident, KICK_SIGNAL)

    def live_threads(self) -> list[VcpuThread]:
        with self.lock:
            return [t for t in self.threads.values() if t.state != State.EXITED]

    def exit_group(self, status: int) -> None:
        if self.exits_at_once and self.debug is NO_DEBUGGER:
            from .teardown import exit_handing_over     # (loaded already: fork.py imports it)
            exit_handing_over(self, status & 0xFF)
        self.end(Ending(status=status & 0xFF))

    def terminate(self, signo: int, thread: VcpuThread | None = None) -> None:
        """Default action of a fatal signal: stop every thread, maybe write a core, end."""
        ending = Ending(signal=signo)
        if self.core_writer is not None and signo in CORE_SIGNALS:
            if not self._dying.acquire(blocking=False):
                if thread is not None:      # another thread is dumping core: wait parked for the end with the rest
                    thread.park()
                return
            ending.core_dumped, ending.core_error = self._dump_core(thread, signo)
        self.end(ending)

    def _dump_core(self, thread: VcpuThread | None, signo: int) -> tuple[bool, str | None]:
        """(written, why not): a core is written only once every other thread has parked (no torn cores)."""
        from ..debug.process_view import ProcessView
        try:
            self.world.pause_all(CORE_PAUSE_TIMEOUT_S, exclude=thread)
        except PauseTimeout as e:
            log.warning("core dump for signal %d abandoned: %s", signo, e)
            return False, str(e)
        assert self.core_writer is not None, "only called when there is one"
        try:
            self.core_writer(ProcessView(self), thread, signo)
            return True, None
        except Exception as e:          # no space, no permission...: the status must survive
            log.debug("core not written", exc_info=True)
            return False, str(e).splitlines()[0] if str(e) else type(e).__name__

    def end(self, ending: Ending) -> None:
        with self.lock:
            if self.ended.is_set():
                return
            self.ending = ending
            for t in self.threads.values():
                t.exit_requested = True
                t.kick()
            self.ended.set()
            for t in self.threads.values():
                with t.cond:
                    t.cond.notify_all()
        self.debug.on_end(ending)

    def thread_exit(self, thread: VcpuThread, status: int) -> None:
        """exit(2) of one thread: the last one ends the process; others clear and wake their child-tid word."""
        with self.lock:
            others = [t for t in self.live_threads() if t is not thread]
        exit_robust_list(thread)
        if not others:
            self.exit_group(status)
        elif thread.clear_child_tid:
            try:
                self.mem.write(thread.clear_child_tid, bytes(4))
                self.futexes.wake(thread.clear_child_tid, 1)
            except Exception:
                log.debug("clear_child_tid %#x not writable", thread.clear_child_tid)
        thread.exit_requested = True

    def killed(self, signo: int) -> None:
        """End as killed by `signo`, no core written (an execve that failed past its point of no return)."""
        self.end(Ending(signal=signo))

    def fail(self, error: BaseException) -> None:
        self.end(Ending(error=error))

    def thread_gone(self, thread: VcpuThread) -> None:
        """Runs last on an exiting vCPU thread: its vCPU becomes free for the next clone."""
        with self.lock:
            if self.threads.get(thread.tid) is thread and not self.ended.is_set():
                del self.threads[thread.tid]
                left = self.signals.per_thread.pop(thread.tid, None)
                self.free_vcpus.append(thread.vcpu)
            else:
                left = None
        if left is not None and left.pending:       # its own signals went with it: a signalfd may be empty now
            with self.signals.lock:
                self.signals.refresh_signalfds()
        self.debug.on_thread_exit(thread)
        if not self.live_threads() and not self.ended.is_set():
            self.end(Ending(status=0))

    def unexpected_exit(self, thread: VcpuThread, reason: int) -> None:
        run = thread.vcpu.run
        detail = abi.EXIT_NAMES.get(reason, str(reason))
        if reason == abi.KVM_EXIT_IO:
            detail += f" port {run.u.io.port:#x}"
        if reason == abi.KVM_EXIT_INTERNAL_ERROR:
            detail += f" suberror {run.u.internal.suberror}"
        self.fail(MonitorError("vCPU", f"unexpected exit {detail} at rip {thread.regs[RIP]:#x}"))

    # ---- faults and signals -------------------------------------------------------------------------------
    def fault(self, thread: VcpuThread, vector: int, error_code: int) -> None:
        signo = EXCEPTION_SIGNALS.get(vector, signal.SIGSEGV)
        addr = thread.vcpu.run.s.regs.sregs.cr2 if vector == 14 else thread.regs[RIP]
        if vector == 3:
            addr = thread.regs[RIP] - 1
        log.info("exception %d (error %#x) at rip %#x addr %#x: %s", vector, error_code, thread.regs[RIP], addr,
                 SIGNAL_NAMES.get(signo))
        thread.fault_detail = (error_code, vector, thread.vcpu.run.s.regs.sregs.cr2 if vector == 14 else 0)
        self.signals.raise_fault(thread, signo, vector, error_code, addr)

    def _remapped(self, start: int, end: int) -> None:
        self.debug.on_remap(start, end)

    def pending_signals_for(self, thread: VcpuThread) -> bool:
        return self.signals.has_pending(thread)

    def deliver_signals(self, thread: VcpuThread) -> None:
        self.signals.deliver(thread)

    # ---- the end ------------------------------------------------------------------------------------------
    def start(self, main: VcpuThread) -> None:
        main.start()

    def wait(self) -> Ending:
        while not self.ended.wait(timeout=1.0):
            pass
        return self.ending


CORE_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT,
                          signal.SIGQUIT, signal.SIGSYS, signal.SIGTRAP, signal.SIGXCPU, signal.SIGXFSZ})
