"""The Linux x86-64 signal frame (arch/x86/kernel/signal_64.c): building it at delivery, reading it at rt_sigreturn.

Layouts (arch/x86/include/uapi/asm/sigcontext.h, include/uapi/asm-generic/ucontext.h):
  struct rt_sigframe { char *pretcode; struct ucontext uc; struct siginfo info; }   -- 8 + 304 + 128 bytes
  struct ucontext    { u64 uc_flags; ucontext *uc_link; stack_t uc_stack (24); sigcontext (256); u64 sigmask }
  struct sigcontext  { r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags; u16 cs, gs, fs, ss;
                       err, trapno, oldmask, cr2, fpstate *, reserved[8] }
The FPU state goes below the frame, 64-byte aligned, as a full XSAVE image with the fpx_sw_bytes magic.
"""
from __future__ import annotations

import logging
import struct

from kdbg.arch.x86_64 import KVM_REGS

from .errors import GuestFault
from .signals import SS_AUTODISARM, SS_DISABLE, on_sig_stack, set_altstack

log = logging.getLogger("km.signal")
SIGCONTEXT_REGS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx", "rdx", "rax",
                   "rcx", "rsp", "rip", "eflags")
_KVM_INDEX = [KVM_REGS.index(name) for name in SIGCONTEXT_REGS]
UC_OFFSET, UC_MCONTEXT, UC_SIGMASK = 8, 8 + 40, 8 + 296
INFO_OFFSET = 8 + 304
FRAME_SIZE = INFO_OFFSET + 128
FP_XSTATE_MAGIC1, FP_XSTATE_MAGIC2 = 0x46505853, 0x46505845
UC_FP_XSTATE, UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS = 1, 2, 4
SA_NOCLDSTOP, SA_SIGINFO, SA_ONSTACK, SA_RESTART, SA_NODEFER, SA_RESETHAND = 1, 4, 0x08000000, 0x10000000, 0x40000000, 0x80000000
SI_USER, SI_KERNEL, SI_TKILL = 0, 0x80, -6
TF, DF, RF, AC = 0x100, 0x400, 0x10000, 0x40000
EINTR, ERESTART_CODES = 4, (512, 513, 514, 516)
RESTARTABLE = True
# Sleeps Linux ends with -ERESTART_RESTARTBLOCK / -ERESTARTNOHAND: EINTR whenever a handler runs, SA_RESTART or not.
NEVER_RESTARTED = ("nanosleep", "clock_nanosleep")     # by name: numbers.py is imported late (import cycle)


def _syscall_name(nr: int) -> str:
    from .syscalls.numbers import NAMES
    return NAMES.get(nr, "")


def make_siginfo(signo: int, code: int = SI_USER, addr: int | None = None, pid: int = 0, uid: int = 0,
                 errno: int = 0) -> bytes:
    head = struct.pack("<iii4x", signo, errno, code)
    body = struct.pack("<Q", addr) if addr is not None else struct.pack("<iI", pid, uid)
    return (head + body).ljust(128, b"\0")


def fault_siginfo(signo: int, vector: int, error_code: int, addr: int, is_mapped: bool = False) -> bytes:
    """siginfo of a synchronous fault, with the si_code Linux's trap handlers use.

    A page fault inside a mapping (a PROT_NONE page has no PTE in km, so the error code says "not present") is
    SEGV_ACCERR, as Linux's bad_area_access_error; only an address outside every mapping is SEGV_MAPERR."""
    import signal as s
    if signo == s.SIGSEGV and vector == 14:
        return make_siginfo(signo, 2 if error_code & 1 or is_mapped else 1, addr)   # SEGV_ACCERR / SEGV_MAPERR
    if signo == s.SIGSEGV:
        return make_siginfo(signo, SI_KERNEL, 0)                          # #GP: si_addr 0
    if signo == s.SIGILL:
        return make_siginfo(signo, 2, addr)                               # ILL_ILLOPN
    if signo == s.SIGFPE:
        return make_siginfo(signo, 1 if vector == 0 else 0, addr)         # FPE_INTDIV
    if signo == s.SIGTRAP:
        return make_siginfo(signo, SI_KERNEL if vector == 3 else 2, addr)  # int3: SI_KERNEL; #DB: TRAP_TRACE
    return make_siginfo(signo, SI_KERNEL, addr)


def _pick(state, thread):
    """The next deliverable signal: the thread's own first, then the process's (kernel/signal.c next_signal)."""
    from .signals import next_index
    own = state.of(thread)
    for queue in (own.pending, state.shared_pending):
        i = next_index(queue, lambda pending: state.may_take(thread, own, pending))
        if i is not None:
            return queue.pop(i)
    return None


def deliver_pending(state, thread) -> None:
    from .signals import IGNORED_BY_DEFAULT, SIG_DFL, SIG_IGN, STOP_BY_DEFAULT, SigAction
    while True:
        with state.lock:
            pending = _pick(state, thread)
        if pending is None:
            return
        signo = pending.signo
        action = state.actions[signo]
        state.of(thread).last_info = pending.info
        if state.proc.debug.on_signal(thread, pending):
            continue              # the debugger took it (and may hand it back on resume)
        if action.handler == SIG_IGN or (action.handler == SIG_DFL and
                                         (signo in IGNORED_BY_DEFAULT or signo in STOP_BY_DEFAULT)):
            continue
        if action.handler == SIG_DFL:
            state.proc.terminate(signo, thread)
            return
        _restart_or_interrupt(thread, action)
        try:
            _build_frame(state, thread, signo, action, pending.info)
        except GuestFault:
            log.info("cannot write the signal frame for signal %d: SIGSEGV", signo)
            state.proc.terminate(11, thread)
            return
        if action.flags & SA_RESETHAND:
            state.actions[signo] = SigAction()
        # Linux goes on while signals are deliverable under the handler's mask: each one gets a frame on top of
        # the last, so the last one dequeued runs first (arch_do_signal_or_restart in a loop)


def _restart_or_interrupt(thread, action) -> None:
    """A syscall cut short by this signal: restart it (SA_RESTART) or let it return EINTR (signal(7))."""
    last = getattr(thread, "last_syscall", None)
    if not last:
        return
    nr, result, always = (*last, False)[:3]          # (nr, result[, restarted even without SA_RESTART])
    thread.last_syscall = None
    regs = thread.regs
    if result == -EINTR and (always or action.flags & SA_RESTART and getattr(thread, "restartable", True)
                             and _syscall_name(nr) not in NEVER_RESTARTED):
        regs[KVM_REGS.index("rip")] -= 2
        regs[KVM_REGS.index("rax")] = nr


def _build_frame(state, thread, signo: int, action, info: bytes) -> None:
    regs = thread.user_regs()
    own = state.of(thread)
    sp = regs[KVM_REGS.index("rsp")]
    ss_sp, ss_flags, ss_size = own.altstack
    if action.flags & SA_ONSTACK and ss_size and not on_sig_stack(own, sp):
        sp = ss_sp + ss_size
    else:
        sp -= 128                                                # the red zone
    xsave = bytearray(thread.vcpu.get_xsave())
    xstate_size = len(xsave)
    struct.pack_into("<IIQI", xsave, 464, FP_XSTATE_MAGIC1, xstate_size + 4,
                     struct.unpack_from("<Q", xsave, 512)[0] or 3, xstate_size)
    fp_addr = (sp - xstate_size - 4) & ~63
    frame = ((fp_addr - FRAME_SIZE + 8) & ~15) - 8
    mem = thread.mem
    mem.write(fp_addr, bytes(xsave) + struct.pack("<I", FP_XSTATE_MAGIC2))
    saved_mask = own.mask if own.mask_to_restore is None else own.mask_to_restore
    own.mask_to_restore = None
    mcontext = struct.pack("<18Q", *(regs[i] for i in _KVM_INDEX))
    mcontext += struct.pack("<HHHH", 0x33, 0, 0, 0x2B)
    trapno_err_cr2 = getattr(thread, "fault_detail", (0, 0, 0))
    mcontext += struct.pack("<QQQQQ", trapno_err_cr2[1], trapno_err_cr2[0], saved_mask, trapno_err_cr2[2],
                            fp_addr)
    mcontext = mcontext.ljust(256, b"\0")
    uc = struct.pack("<QQQI4xQ", UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS, 0, ss_sp,
                     ss_flags, ss_size) + mcontext + struct.pack("<Q", saved_mask)   # __save_altstack: raw
    mem.write(frame, struct.pack("<Q", action.restorer) + uc + info)
    new_mask = own.mask | action.mask
    if not action.flags & SA_NODEFER:
        new_mask |= 1 << (signo - 1)
    own.mask = new_mask & ~((1 << 8) | (1 << 18))               # SIGKILL, SIGSTOP can't be blocked
    new = list(regs)
    new[KVM_REGS.index("rip")] = action.handler
    new[KVM_REGS.index("rsp")] = frame
    new[KVM_REGS.index("rdi")] = signo
    new[KVM_REGS.index("rsi")] = frame + INFO_OFFSET
    new[KVM_REGS.index("rdx")] = frame + UC_OFFSET
    new[KVM_REGS.index("rax")] = 0
    new[KVM_REGS.index("eflags")] &= ~(TF | DF | RF | AC)
    if ss_flags & SS_AUTODISARM:
        own.altstack = (0, SS_DISABLE, 0)                       # sas_ss_reset: back at sigreturn
    thread.set_user_regs(new)
    log.debug("signal %d delivered to %d: handler %#x frame %#x", signo, thread.tid, action.handler, frame)


def sigreturn(state, thread) -> None:
    """rt_sigreturn: the frame starts 8 bytes below RSP (the handler's `ret` popped pretcode)."""
    regs = thread.user_regs()
    frame = regs[KVM_REGS.index("rsp")] - 8
    data = thread.mem.read(frame, FRAME_SIZE)
    values = struct.unpack_from("<18Q", data, UC_MCONTEXT)
    new = list(regs)
    for i, value in zip(_KVM_INDEX, values):
        new[i] = value
    flags_index = KVM_REGS.index("eflags")
    new[flags_index] = (regs[flags_index] & ~0x254DD5) | (new[flags_index] & 0x254DD5) | 0x2  # FIX_EFLAGS
    fp_addr = struct.unpack_from("<Q", data, UC_MCONTEXT + 184)[0]
    state.of(thread).mask = struct.unpack_from("<Q", data, UC_SIGMASK)[0] & ~((1 << 8) | (1 << 18))
    # restore_altstack: the frame's uc_stack comes back unless the thread still runs on the alternate stack
    # (do_sigaltstack's EPERM, squashed as in Linux); this is how SS_AUTODISARM re-arms it
    set_altstack(state.of(thread), regs[KVM_REGS.index("rsp")], *struct.unpack_from("<QI4xQ", data, UC_OFFSET + 16))
    if fp_addr:
        image = thread.mem.read(fp_addr, len(thread.vcpu.get_xsave()))
        thread.vcpu.set_xsave(image)
    thread.set_user_regs(new)
    thread.last_syscall = None
