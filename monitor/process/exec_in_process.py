"""execve inside the running km: the old image goes and the new program starts in the same process and VM, as
fs/exec.c begin_new_exec and load_elf_binary do it. Re-executing km instead costs a whole km start-up (Python,
imports, a new VM) per exec: a shell loop paid it for every command.

Goes, as on Linux: the other threads (de_thread; the exec'ing thread takes the pid as its tid), the address space,
close-on-exec descriptors, POSIX timers, caught signals' handlers (ignored ones and the mask stay), the alternate
stack, the robust list and clear_child_tid (exec_mm_release), the TLS bases and the FPU/SSE/AVX state.
Stays: pid, cwd, the other descriptors, rlimits, itimers and alarm, pending signals, km's own state (options, the
management socket). The new comm is the file's name, AT_EXECFN the path as execve got it.
fork.execve keeps km's re-execution where this does not apply (see there).
"""
from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from typing import TYPE_CHECKING

from kdbg.arch.x86_64 import XSAVE_SIZE, registers_to_fxsave, zero_registers
from kdbg.tracelog import logger

from ..errors import PayloadError
from ..memory.guest import USER_TOP
from ..host_fds import payload_fds
from ..kvm import abi
from ..syscalls.fs import close_fd
from ..syscalls.futex import FutexTable, exit_robust_list
from ..trace import rename_payload
from ..loader.elf import CheckedProgram, load_program

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread
    from .payload import Process

log = logger("km.vcpu")
THREADS_GONE_S = 5.0        # how long the other threads may take to end before km falls back to re-executing


def _reset_xsave() -> bytes:
    """XSAVE image of a CPU's reset state, what a new program's FPU/SSE/AVX registers hold (fpu__clear_user_states):
    the register table's reset values (x87 control word, MXCSR) in the FXSAVE area, every component in its initial
    state (XSTATE_BV 0); set_xsave zero-fills the rest of kvm_xsave."""
    image = bytearray(XSAVE_SIZE)
    registers_to_fxsave(zero_registers(), image)
    return bytes(image)


INIT_XSAVE = _reset_xsave()


def end_other_threads(ctx: VcpuThread) -> bool:
    """de_thread: every other thread of the process ends (their vCPUs go back to the free list). False when one
    does not end in time (the caller then re-executes km, which ends them with the old process image). True at
    once when the process is ending (an exit_group or a fatal signal served meanwhile asked ctx to exit too): its
    end wins, as de_thread gives up for a dying thread group, and its threads are no longer taken out of the
    table (Process.thread_gone), so waiting for the table to empty would go round until km exits."""
    proc = ctx.proc
    deadline = time.monotonic() + THREADS_GONE_S
    while True:
        with proc.lock:
            others = [t for t in proc.threads.values() if t is not ctx]
        if not others or ctx.exit_requested:
            return True
        for thread in others:
            thread.exit_requested = True
            thread.kick()
        for thread in others:
            if thread.thread is None:            # created by a clone that never started it: it leaves as one
                proc.thread_gone(thread)        # that ran leaves at the end of its vCPU thread
                continue
            thread.thread.join(max(0.0, deadline - time.monotonic()))
            if thread.thread.is_alive():
                log.info("execve: thread %d did not end within %.0f s", thread.tid, THREADS_GONE_S)
                return False
            exit_robust_list(thread)            # its robust mutexes in shared memory: FUTEX_OWNER_DIED, as Linux


def close_on_exec_descriptors(proc: Process) -> None:
    """The payload's descriptors marked close-on-exec go as close(2) closes them (a comm file's written name goes
    to a thread the exec then renames or ends); km's own descriptors are left alone."""
    for fd in payload_fds():
        try:
            if not fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC:
                continue
        except OSError:                         # listdir's own descriptor, already closed
            continue
        close_fd(proc, fd)


def exec_in_process(ctx: VcpuThread, checked: CheckedProgram, argv: list[str], env: list[bytes],
                    filename: str) -> int | None:
    """Replace the payload's image with the program execve checked (`checked`, closed here). Returns None when
    the new program runs (the thread's registers are its entry state), or -errno; raises ReexecNeeded when km
    must re-execute itself instead (nothing is changed yet then)."""
    proc = ctx.proc
    try:
        with proc.lock:
            if proc.exec_lock_held or ctx.exit_requested:
                ctx.exit_requested = True       # another thread's execve or exit_group wins: this thread ends
                return None
            proc.exec_lock_held = True
        try:
            if not end_other_threads(ctx):
                raise ReexecNeeded("a thread did not end")
            if ctx.exit_requested:              # an exit_group or a fatal signal came meanwhile: it wins
                return None
            _become(ctx, checked, argv, env, filename)
            return None
        finally:
            proc.exec_lock_held = False
    finally:
        checked.close()


class ReexecNeeded(Exception):
    """The exec cannot be made in this km (the reason is the message): km re-executes itself on the program."""


def _become(ctx: VcpuThread, checked: CheckedProgram, argv: list[str], env: list[bytes], filename: str) -> None:
    """Past the point of no return: the old image goes and the new one is entered on ctx."""
    proc, mem, program = ctx.proc, ctx.mem, checked.path
    exit_robust_list(ctx)
    ctx.robust_list = ctx.clear_child_tid = 0       # the old mm has no other user: nothing to clear or wake
    if ctx.tid != proc.pid:                         # de_thread: the exec'ing thread becomes the leader
        with proc.lock:
            del proc.threads[ctx.tid]
            state = proc.signals.per_thread.pop(ctx.tid, None)
            ctx.tid = proc.pid
            proc.threads[ctx.tid] = ctx
            if state is not None:
                proc.signals.per_thread[ctx.tid] = state
    with mem.lock:
        mem.unmap(0, USER_TOP)
        mem.brk_start = mem.brk = 0
        mem.mlock_future = False
    proc.futexes = FutexTable()
    proc.clock.forget_posix_timers()
    proc.signals.flush_for_exec(ctx)
    close_on_exec_descriptors(proc)
    if proc.vfork_release_fd is not None:           # a vfork child's exec lets its parent go on
        os.close(proc.vfork_release_fd)
        proc.vfork_release_fd = None
    ctx.name = os.path.basename(filename)           # comm: the file's name (for a script, the script's)
    ctx.restart_block, ctx.sigwait_set, ctx.stopped_regs = None, 0, None
    sregs = ctx.run.s.regs.sregs
    sregs.fs.base = sregs.gs.base = 0
    ctx.sync[1] |= abi.KVM_SYNC_X86_SREGS
    ctx.vcpu.set_xsave(INIT_XSAVE)
    proc.path, proc.argv = program, argv
    fs = sys.getfilesystemencoding()                # os.fsdecode's, without a Python call per string
    proc.env = [e.decode(fs, "surrogateescape") for e in env]
    proc.execed = True
    try:
        proc.program = load_program(program, mem, checked)
    except (PayloadError, OSError, MemoryError) as e:     # the file changed since the check, or no memory
        log.info("execve %s failed past the point of no return: %s", program, e)
        proc.killed(signal.SIGSEGV)             # Linux's force_fatal_sig(SIGSEGV)
        ctx.exit_requested = True
        return
    mem.brk_start = mem.brk = proc.program.exe.end
    proc.enter_program(ctx, os.fsencode(filename))
    rename_payload(program)
    log.info("execve %s %s in this km", program, argv)

