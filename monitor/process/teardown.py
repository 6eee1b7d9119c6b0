"""A forked km's exit with the kernel's teardown of its address space and VM off its parent's wait4.

Why: a process is a zombie, which its parent's wait4 returns, only after do_exit has torn down its memory and closed
its files. For a forked km that is its copy of CPython's heap and the guest's memory (exit_mmap, ~1.8 ms here: the
page-table entries fork copied, the copied pages, KVM's shadow MMU) and its VM (kvm_destroy_vm, ~0.45 ms), paid on
every iteration of a shell's fork+exec loop while the parent payload waits.

How (written by hand in C for km; cffi API mode through kdbg/cmodule.py): at the payload's exit_group, the forked km
closes its descriptors but the VM's, its vCPUs' and a pidfd of itself (so pipes and sockets close before it
ends, as exit would close them), then clone()s a *holder*: a process sharing its memory (CLONE_VM) whose own
descriptor table keeps only those. The forked km then exits: its memory and VM still have a user, so its exit is
short and its parent's wait4 returns at once, with the kernel's own status, rusage, SIGCHLD and reaping. The
holder, all signals blocked from its start and named km-teardown, waits on the pidfd until the km has fully exited,
then exits itself and the kernel tears the memory and the VM down there, on the other CPU or later.

One difference from a plain exit remains: the memory goes after the km is reaped, so a file the payload both locked
with flock(2) and mapped shared is unlocked then (its mapping holds the open file), not before.

The holder is an orphan once the km is gone: the pid namespace's init reaps it (this host's init does so within
~1 s). A km that is itself that init (a container's first process) would see the holder among its payload's
children, so no holder is made when /proc/1/exe is this Python, nor when a payload thread besides the exiting one
is alive (Linux kills the others before it closes descriptors). An init that never reaps orphans (an application
run as a container's pid 1 without tini) keeps every holder as a zombie, a pid each where native runs leave none:
known by the evidence, as pid 1's signal dispositions cannot tell (this host's init reaps by polling, SIGCHLD neither
caught, ignored nor blocked): one holder at a time is a probe, whose pid a page shared by every km forked from the
first one keeps; a probe still a km-teardown zombie PROBE_S after it was made stops holders for that whole tree of
kms (a leak of PROBE_S worth of forks at most), a probe gone frees the place for the next holder. The Python twin is the plain exit (os._exit): it
runs when the compiled module is missing (tools/install.sh builds it, `python3 -m monitor.process.teardown`; a fork
never runs a compiler) and under KM_TEARDOWN=inline (a hidden test override).
"""
from __future__ import annotations

import functools
import os
import struct
import sys
import time
from typing import TYPE_CHECKING, NoReturn

from kdbg.cmodule import CModule
from ..host_fds import aside, late_import

if TYPE_CHECKING:
    import mmap

    from .payload import Process

CDEF = """
long km_hand_over(int pidfd, const int *keep, int nkeep);
"""

SOURCE = r"""
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define HOLDER_STACK (64 * 1024)
static char holder_stack[HOLDER_STACK] __attribute__((aligned(64)));

/* Raw system calls: the holder shares the caller's memory and TLS, so it must not write errno or take libc locks. */
static long raw(long nr, long a, long b, long c, long d)
{
    long ret;
    register long r10 __asm__("r10") = d;
    __asm__ volatile ("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return ret;
}

static int holder(void *arg)      /* (all signals blocked already: km_hand_over) */
{
    struct pollfd km = { (int)(long)arg, POLLIN, 0 };
    raw(SYS_prctl, PR_SET_NAME, (long)"km-teardown", 0, 0);
    while (raw(SYS_poll, (long)&km, 1, -1, 0) == -EINTR)
        ;
    raw(SYS_exit, 0, 0, 0, 0);
    return 0;
}

/* Close every descriptor but `keep` (sorted, distinct), then start the holder with a copy of what is left.
   Returns the holder's pid, or -errno (the descriptors may then be partly closed). */
long km_hand_over(int pidfd, const int *keep, int nkeep)
{
    unsigned long next = 0;
    for (int i = 0; i <= nkeep; i++) {
        unsigned long last = i < nkeep ? (unsigned long)keep[i] - 1 : ~0U;
        if (i < nkeep && (unsigned long)keep[i] < next)
            continue;
        if (last + 1 > next) {
            long err = raw(SYS_close_range, next, last, 0, 0);
            if (err)
                return err;
        }
        if (i < nkeep)
            next = (unsigned long)keep[i] + 1;
    }
    /* SCHED_BATCH, which the holder inherits: a new task of that policy does not preempt the one that made it, and
       at load that preemption handed the CPU to another process for a scheduler slice before this km could exit.
       The teardown is background work; this km is about to exit. */
    struct sched_param none = { 0 };
    raw(SYS_sched_setscheduler, 0, SCHED_BATCH, (long)&none, 0);
    /* Every signal blocked before the clone, so that the holder starts with them blocked: it inherits the caller's
       handlers (CPython's), and one run on the holder's stack before its own sigprocmask (a terminal's SIGINT or
       SIGWINCH to the process group) would touch the interpreter's memory the exiting km leaves behind. */
    uint64_t all = ~(uint64_t)0;
    raw(SYS_rt_sigprocmask, SIG_SETMASK, (long)&all, 0, sizeof all);
    long pid = clone(holder, holder_stack + HOLDER_STACK, CLONE_VM, (void *)(long)pidfd);
    return pid < 0 ? -errno : pid;
}
"""

COMPILED = CModule("_km_teardown_", CDEF, SOURCE)

PROBE_S = float(os.environ.get("KM_TEARDOWN_PROBE_S", "5"))    # (a hidden test override: tests/integration/test_fork.py)
# The probe page, shared (MAP_SHARED) by a km and every km forked from it: the probe holder's pid, the CLOCK_MONOTONIC
# ms it was made at, and 1 once a probe was found unreaped (then no more holders)
_PROBE = struct.Struct("=QQQ")
_probe: mmap.mmap | None = None


@functools.cache
def _lib():
    """(ffi, lib) of the compiled module, or None (the twin: a plain exit)."""
    if os.environ.get("KM_TEARDOWN") == "inline":
        return None
    return COMPILED.load(build_missing=False)   # never a compiler run inside a payload's fork: tools/install.sh builds it


def prepare() -> None:
    """Load the module in a km before it forks, so that its children inherit it loaded (none opens it again); the
    first time aside (host_fds), as the payload's other threads may be opening files meanwhile; and make the probe
    page they share (an anonymous mapping: no descriptor; the mmap module, an extension whose load opens its file,
    comes aside too) and the init check's answer."""
    global _probe
    if not _lib.cache_info().currsize:
        aside(_lib)
    if _probe is None and _lib() is not None:
        _probe = late_import("mmap").mmap(-1, _PROBE.size)      # (a fork's, not km's start)
        _init_is_python()       # asked once here, not by every child at its exit (a readlink, two realpaths: ~80 us)


def _holders_reaped(probe: mmap.mmap) -> bool:
    """False once the probe holder is still unreaped PROBE_S after it was made (see the module's docstring)."""
    pid, made_ms, unreaped = _PROBE.unpack_from(probe)
    if unreaped:
        return False
    if not pid or time.monotonic() * 1000 - made_ms < PROBE_S * 1000:
        return True
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        try:
            stat = os.read(fd, 64)
        finally:
            os.close(fd)
    except OSError:
        stat = b""
    if b"(km-teardown) Z" in stat:
        _PROBE.pack_into(probe, 0, pid, made_ms, 1)
        return False
    if b"(km-teardown) " not in stat:           # reaped (its pid maybe another's now): the next holder is the probe
        _PROBE.pack_into(probe, 0, 0, 0, 0)
    return True                                 # (a probe still tearing down stays the probe)


@functools.cache
def _init_is_python() -> bool:
    """Whether the pid namespace's init runs this Python (maybe a km: see the module's docstring). An init that
    km may not read belongs to another user, so it is not this km."""
    try:
        return os.path.realpath(os.readlink("/proc/1/exe")) == os.path.realpath(sys.executable)
    except OSError:
        return False


def exit_handing_over(proc: Process, status: int) -> NoReturn:
    """End this forked km with `status` at its payload's exit_group, on the vCPU thread that served it (waking the
    main thread to report it cost ~0.3 ms and a hand-off per fork), its teardown in a holder when one can be made."""
    from .fork import flush_std_streams
    flush_std_streams()
    loaded, probe = _lib(), _probe
    if (loaded is not None and probe is not None and len(proc.live_threads()) <= 1 and not _init_is_python()
            and _holders_reaped(probe)):
        try:
            pidfd = os.pidfd_open(os.getpid())
        except (OSError, AttributeError):
            pidfd = -1
        if pidfd >= 0:
            ffi, lib = loaded
            keep = sorted({pidfd, proc.vm.fd, *(t.vcpu.fd for t in proc.threads.values()),
                           *(v.fd for v in proc.free_vcpus)})
            holder = lib.km_hand_over(pidfd, ffi.new("int[]", keep), len(keep))
            # (the holder touches none of this process's memory but its own stack: Python may run on meanwhile)
            if holder > 0 and not _PROBE.unpack_from(probe)[0]:
                _PROBE.pack_into(probe, 0, holder, int(time.monotonic() * 1000), 0)
    os._exit(status)


if __name__ == "__main__":      # tools/install.sh
    COMPILED.install("monitor.process.teardown", "a forked km tears down before its parent's wait4 returns")
