"""fork/vfork (and clone without CLONE_THREAD) and execve: a payload that forks continues in a new km process.

Fork: km forks itself. Guest memory is MAP_PRIVATE host memory, so the child gets a copy-on-write copy of the
whole guest (page tables and system area included); the child then builds a new VM over the same host
addresses (a VM fd is unusable from another process) with one vCPU holding the forking thread's registers and
rax = 0. Only the forking thread exists in the child, as in Linux. A vfork-like clone (CLONE_VFORK, as musl's
posix_spawn and Go's os/exec use) is served as a fork whose parent waits until the child execs or exits.
Exec: after checking the program as execve(2) does (loader/script.py follows #! lines, loader/elf.py checks the
program and its interpreter), the running km replaces the image (exec_in_process.py); under a debugger km
re-executes itself (same pid) on the new payload (self_exec.km_command), and the session goes on in the new km.
"""
from __future__ import annotations

import errno
import fcntl
import os
import struct
import sys
from typing import TYPE_CHECKING

from kdbg.tracelog import logger

from ..errors import PayloadError
from ..host_fds import KM_FD_BASE, made_high, pipe_high
from ..debug.hooks import NO_DEBUGGER
from ..loader.elf import check_program
from .exec_in_process import ReexecNeeded, exec_in_process
from ..loader.script import open_exec
from .self_exec import km_command
from .teardown import prepare as prepare_teardown
from ..signals.delivery import SIG_IGN
from ..syscalls.proc import RLIMIT_STACK, rlimit
from ..syscalls.procfs import exe_alias
from ..trace import flush as trace_flush

if TYPE_CHECKING:
    import socket

    from ..vcpu.loop import VcpuThread

log = logger("km.vcpu")
MAX_ARG_STRLEN = 1 << 17          # one execve string's bytes, its NUL included (fs/exec.c valid_arg_len)
_STK_LIM, ARG_MAX = 8 << 20, 32 * 4096
CLONE_VM, CLONE_VFORK, CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID = \
    0x100, 0x4000, 0x100000, 0x200000, 0x1000000


def fork(ctx: VcpuThread, flags: int, stack: int, ptid: int, ctid: int) -> int:
    proc = ctx.proc
    if proc.child_runner is None:
        return -errno.ENOSYS
    regs = ctx.child_regs(stack)
    sync = ctx.run.s.regs.sregs
    bases = (sync.fs.base, sync.gs.base)
    xsave = ctx.vcpu.get_xsave()
    vfork_pipe = None
    if flags & CLONE_VFORK:            # its write end closes when the child execs (CLOEXEC) or exits
        vfork_pipe = pipe_high()
    link = proc.debug.fork_link(ctx, bool(flags & CLONE_VFORK))   # the debugger follows the child through it
    flush_std_streams()
    prepare_teardown()
    with proc.lock, proc.mem.lock:
        pid = os.fork()
    if pid == 0:
        try:
            if proc.vfork_release_fd is not None:     # a vfork child forking before its exec: not this one's
                os.close(proc.vfork_release_fd)
                proc.vfork_release_fd = None
            if vfork_pipe:
                os.close(vfork_pipe[0])
                proc.vfork_release_fd = vfork_pipe[1]   # closed by an exec in this km (or at exit, or re-exec)
            if link:
                link[0].close()
            _become_child(ctx, regs, bases, xsave, flags, ctid, link[1] if link else None)
        finally:
            os._exit(127)
    if link:
        link[1].close()
        proc.debug.on_fork(ctx, pid, link[0], bool(flags & CLONE_VFORK))
    if vfork_pipe:
        os.close(vfork_pipe[1])
        try:
            while os.read(vfork_pipe[0], 1):
                pass
        except OSError:
            pass
        os.close(vfork_pipe[0])
        proc.debug.on_vfork_done(ctx)
    if flags & CLONE_PARENT_SETTID:
        ctx.mem.write(ptid, struct.pack("<i", pid))
    log.info("forked child km %d", pid)
    return pid


def _become_child(parent_thread, regs: list[int], bases: tuple[int, int], xsave: bytes, flags: int,
                  ctid: int, link: socket.socket | None) -> None:
    proc = parent_thread.proc
    mask, altstack = proc.signals.of(parent_thread).mask, proc.signals.of(parent_thread).altstack
    parent_debugger = proc.debug
    memslots_ready = proc.rebuild_after_fork()
    if link is None:
        parent_debugger.leave_forked_child(proc)
    thread = proc.new_thread()
    thread.set_user_regs(regs)
    thread.orig_rax = parent_thread.orig_rax    # copy_thread copies pt_regs: the fork's number until it next enters
    sregs = thread.vcpu.get_sregs()
    sregs.fs.base, sregs.gs.base = bases
    thread.vcpu.set_sregs(sregs)
    thread.vcpu.set_xsave(xsave)
    own = proc.signals.of(thread)          # the child's SignalState, made by rebuild_after_fork
    own.mask, own.altstack = mask, altstack
    if flags & CLONE_CHILD_SETTID:
        proc.mem.write(ctid, struct.pack("<i", thread.tid))
    if flags & CLONE_CHILD_CLEARTID:
        thread.clear_child_tid = ctid
    if link is not None:
        proc.debug = parent_debugger.adopt_in_child(proc, thread)
    memslots_ready()
    proc.child_runner(proc, thread, link)


def execve(ctx: VcpuThread, path_gva: int, argv_gva: int, envp_gva: int) -> int | None:
    """Check the program as execve(2) would (the errno is the payload's answer), then run it: in this km
    (exec_in_process.py) when nobody debugs the payload, else by re-executing km on it, which carries the
    debugger's session over (the stub's connection, a followed child's link). None: the new program runs."""
    if ctx.proc.debug is NO_DEBUGGER:       # an exec in this km: a file window's slot registers meanwhile
        ctx.proc.phys.prepare_window()
    raw_path = ctx.mem.read_cstring(path_gva).decode(errors="surrogateescape")
    path = exe_alias(ctx, raw_path)
    strings = _arguments(ctx, raw_path, argv_gva, envp_gva)
    if strings is None:
        return -errno.E2BIG
    # no argument at all: Linux (>= 5.18, fs/exec.c do_execveat_common) passes one, "", as argv[0]
    argv, env = [a.decode(errors="surrogateescape") for a in strings[0]] or [""], strings[1]
    try:
        program, argv, stream = open_exec(path, argv)
        checked = check_program(program, stream)
    except PayloadError as e:
        log.info("execve %s refused: %s", path, e.problem)
        return -e.errno
    if ctx.proc.debug is NO_DEBUGGER:
        try:
            return exec_in_process(ctx, checked, argv, env, raw_path)
        except ReexecNeeded as e:
            log.info("execve %s: km re-executes itself (%s)", program, e)
    checked.close()
    log.info("execve %s %s", program, argv)
    env_fd = _env_descriptor(env)
    signals = ctx.proc.signals
    with signals.lock:
        ignored = sum(1 << (signo - 1) for signo, action in enumerate(signals.actions)
                      if signo and action.handler == SIG_IGN)
        mask = signals.of(ctx).mask
    carried = ctx.proc.debug.before_exec(ctx, program)     # the gdb session goes on in the new km
    km_argv = [*km_command(), *carried, f"--argv0={argv[0]}", f"--env-fd={env_fd}",
               f"--exec-signals={ignored:x}:{mask:x}", "--", program, *argv[1:]]
    trace_flush()
    flush_std_streams()
    try:
        os.execv(km_argv[0], km_argv)      # km's own environment; the payload's goes through env_fd
    except OSError as e:
        os.close(env_fd)
        ctx.proc.debug.exec_failed()
        log.info("execve: km could not start again: %s", e)
        return -(e.errno or errno.ENOEXEC)
    return -errno.ENOEXEC


def _arguments(ctx: VcpuThread, path: str, argv_gva: int, envp_gva: int) -> tuple[list[bytes], list[bytes]] | None:
    """execve's argv and envp as Linux copies them (fs/exec.c count, bprm_stack_limits, copy_strings): any number
    within the byte limit (a quarter of the stack's rlimit, at most 3/4 of _STK_LIM, at least ARG_MAX), which the
    strings with their NULs, the path's and the pointers share; None for E2BIG (a string past MAX_ARG_STRLEN too).
    GuestFault for a bad pointer."""
    limit = max(min(_STK_LIM // 4 * 3, rlimit(RLIMIT_STACK)[0] // 4), ARG_MAX)
    try:                            # (read no more than the limit: a payload may repeat one 128 KiB string)
        argv = ctx.mem.read_string_array(argv_gva, limit // 8, MAX_ARG_STRLEN, limit)
        used = sum(len(s) + 1 for s in argv)
        env = ctx.mem.read_string_array(envp_gva, limit // 8 - len(argv), MAX_ARG_STRLEN, limit - used)
    except OSError:                 # E2BIG, or read_cstring's ENAMETOOLONG: a string past its buffer
        return None
    size = 8 * (max(len(argv), 1) + len(env)) + len(os.fsencode(path)) + 1 + used + sum(len(s) + 1 for s in env)
    return (argv, env) if size <= limit else None


def flush_std_streams() -> None:
    """km's own stdout/stderr before a fork or exec (None when km was started with the descriptor closed)."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()


def _env_descriptor(env: list[bytes]) -> int:
    """A descriptor the next km reads the payload's environment from: kept across exec, in km's range."""
    fd = made_high(lambda: os.memfd_create("km-execve-env", 0))
    try:
        os.write(fd, b"".join(e + b"\0" for e in env))
        os.lseek(fd, 0, os.SEEK_SET)
        return fcntl.fcntl(fd, fcntl.F_DUPFD, KM_FD_BASE)
    finally:
        os.close(fd)
