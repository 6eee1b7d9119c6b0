"""The debugger's run of a parked vCPU in C (written by hand for km; cffi API mode): gdb's stepi, or a continue to a
breakpoint, made on the stub's thread (VcpuThread.run_for_debugger), from setting RFLAGS.TF to the user context
restored from the exception stub's frame, in one call.

Why: that run is one KVM_RUN wrapped in ~20 Python calls (the trap flag, the ioctl, the exit's reason and port,
the frame, CS/SS made user segments again, the dirty flags), about 10 us of a stepi's ~130 us of CPU here; in C
it is the ioctl alone. The Python twin is VcpuThread._run_for_debugger_python: it is what runs when this module
cannot be had, and tests/integration/test_gdb_quick_resume.py runs gdb's steps and continues under both
(KM_DEBUG_RUN=python) against gdbserver's.

Every offset and value the C code needs (kvm_run's layout, the user segments, the register indices) is passed in
from Python (vcpu/loop.debug_run_layout()): abi.py, vcpu/machine.py and vcpu/loop.py stay their one source. The
one exception is the order of struct kvm_segment's fields from `selector` on (user_segment below), which is KVM's
ABI and machine.py's _SEGMENT_FIELDS spells the same way. The compiled module is made by
tools/install.sh (`python3 -m monitor.kvm.crun`) or by the first debugged run that misses it, in the user's cache
(~/.cache/km; its name carries a hash of the source, cffi's and Python's version). Without a C compiler or
Python's headers the attempt is remembered (a `.failed` marker) and the debugger runs the vCPU from Python.
"""
from __future__ import annotations

import os
from typing import Any

from kdbg.cmodule import CModule

CDEF = """
int km_debug_run(int fd, unsigned char *run, const uint64_t *frame, const int64_t *layout, int vector, int step,
                 uint64_t *error_code);
"""

# the order of km_debug_run's `layout` words (vcpu/loop.debug_run_layout makes them; the C enum below names them)
LAYOUT_FIELDS = ("kvm_run_ioctl", "immediate_exit", "exit_reason", "io_port", "sync_regs", "kvm_exit_io", "sync_x86_regs",
                 "sync_x86_sregs", "rip", "rflags", "rsp", "kbase", "cs_at", "cs_selector", "cs_type", "cs_l",
                 "cs_db", "ss_at", "ss_selector", "ss_type", "ss_l", "ss_db", "dirty_regs", "tf", "debug_vector")

SOURCE = r"""
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>

enum { KVM_RUN_IOCTL, IMMEDIATE_EXIT, EXIT_REASON, IO_PORT, SYNC_REGS, KVM_EXIT_IO_, SYNC_X86_REGS, SYNC_X86_SREGS, RIP, RFLAGS,
       RSP, KBASE, CS_AT, CS_SELECTOR, CS_TYPE, CS_L, CS_DB, SS_AT, SS_SELECTOR, SS_TYPE, SS_L, SS_DB, DIRTY_REGS, TF_,
       DEBUG_VECTOR_ };

static void user_segment(unsigned char *seg, int64_t selector, int64_t type, int64_t l, int64_t db)
{
    uint16_t sel = (uint16_t)selector;          /* kvm_segment from its selector: selector, type, present, dpl,
                                                   db, s, l (present and s are kept) */
    memcpy(seg, &sel, 2);
    seg[2] = (unsigned char)type;
    seg[4] = 3;
    seg[5] = (unsigned char)db;
    seg[7] = (unsigned char)l;
}

/* One KVM_RUN of a parked thread's vCPU for the debugger (step: RFLAGS.TF set first).
   Returns 1 when the run ended in exception `vector`'s stub: rip, rflags (TF cleared for a step's #DB) and rsp
   back from the stub's frame in the sync regs, CS/SS user segments in the sync sregs, both marked dirty,
   *error_code the frame's; 0 when it ended in another exit (left in kvm_run for the thread's loop);
   -1 when it was interrupted before the guest ran an instruction (the thread's own loop runs it);
   -errno when KVM_RUN failed otherwise. */
int km_debug_run(int fd, unsigned char *run, const uint64_t *frame, const int64_t *layout, int vector, int step,
                 uint64_t *error_code)
{
    uint64_t *regs = (uint64_t *)(run + layout[SYNC_REGS]);
    uint64_t *dirty = (uint64_t *)(run + layout[DIRTY_REGS]);
    uint64_t tf = (uint64_t)layout[TF_];
    if (step) {
        regs[layout[RFLAGS]] |= tf;
        *dirty |= (uint64_t)layout[SYNC_X86_REGS];
    }
    run[layout[IMMEDIATE_EXIT]] = 0;
    while (ioctl(fd, (unsigned long)layout[KVM_RUN_IOCTL], 0) < 0) {
        int err = errno;
        if (err != EINTR && err != EAGAIN)
            return -err;
        run[layout[IMMEDIATE_EXIT]] = 0;
        if (regs[layout[RIP]] < (uint64_t)layout[KBASE])
            return -1;                          /* kicked before it ran */
    }                                           /* (kicked inside a stub: run on to the stub's exit) */
    *dirty = 0;
    uint32_t reason;
    uint16_t port;
    memcpy(&reason, run + layout[EXIT_REASON], 4);
    memcpy(&port, run + layout[IO_PORT], 2);
    if (reason != (uint32_t)layout[KVM_EXIT_IO_] || port != (uint16_t)vector)
        return 0;
    uint64_t rflags = frame[3];
    if (step && vector == layout[DEBUG_VECTOR_])
        rflags &= ~tf;
    regs[layout[RIP]] = frame[1];
    regs[layout[RFLAGS]] = rflags;
    regs[layout[RSP]] = frame[4];
    user_segment(run + layout[CS_AT], layout[CS_SELECTOR], layout[CS_TYPE], layout[CS_L], layout[CS_DB]);
    user_segment(run + layout[SS_AT], layout[SS_SELECTOR], layout[SS_TYPE], layout[SS_L], layout[SS_DB]);
    *dirty = (uint64_t)(layout[SYNC_X86_REGS] | layout[SYNC_X86_SREGS]);
    *error_code = frame[0];
    return 1;
}
"""

COMPILED = CModule("_km_debugrun_", CDEF, SOURCE, compile_args=("-O2",))


def load(*, build_missing: bool = True) -> tuple[Any, Any] | None:
    """The compiled module's (ffi, lib), or None: built first when missing (and not known to fail here);
    KM_DEBUG_RUN=python: None (the Python twin runs)."""
    if os.environ.get("KM_DEBUG_RUN") == "python":
        return None
    return COMPILED.load(build_missing=build_missing)


if __name__ == "__main__":      # tools/install.sh
    COMPILED.install("monitor.kvm.crun", "the debugger runs vCPUs from Python")
