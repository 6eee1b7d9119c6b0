"""The Linux x86-64 signal frame (arch/x86/kernel/signal_64.c): laid out at delivery, read back at rt_sigreturn.

Layouts (arch/x86/include/uapi/asm/sigcontext.h, include/uapi/asm-generic/ucontext.h):
  struct rt_sigframe { char *pretcode; struct ucontext uc; struct siginfo info; }   -- 8 + 304 + 128 bytes
  struct ucontext    { u64 uc_flags; ucontext *uc_link; stack_t uc_stack (24); sigcontext (256); u64 sigmask }
  struct sigcontext  { r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags; u16 cs, gs, fs, ss;
                       err, trapno, oldmask, cr2, fpstate *, reserved[8] }
The FPU state goes below the frame, 64-byte aligned, as an XSAVE image of the CPU's user xstate size (CPUID
0xD.0 ECX, as Linux's fpu_user_cfg.max_size: 2432 bytes with AVX-512, not KVM's 4096-byte kvm_xsave) with the
fpx_sw_bytes magic: programs size alternate stacks by AT_MINSIGSTKSZ, which Linux derives from that size.
Which signal is delivered, and what happens to the interrupted syscall, is delivery.py's business.
"""
from __future__ import annotations

import signal
import struct
from typing import TYPE_CHECKING

from kdbg.arch.linux import SI_KERNEL, make_siginfo
from kdbg.arch.x86_64 import KVM_REGS
from kdbg.tracelog import logger

from .altstack import disarm, frame_top, set_altstack

if TYPE_CHECKING:
    from ..kvm.cpuid import CpuidTable
    from .delivery import ThreadSignals
    from ..vcpu.loop import VcpuThread

log = logger("km.signal")
SIGCONTEXT_REGS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx", "rdx", "rax",
                   "rcx", "rsp", "rip", "eflags")
_KVM_INDEX = [KVM_REGS.index(name) for name in SIGCONTEXT_REGS]
RAX, RDX, RSI, RDI, RSP, RIP, RFLAGS = (KVM_REGS.index(n) for n in ("rax", "rdx", "rsi", "rdi", "rsp", "rip", "eflags"))
UC_OFFSET, UC_MCONTEXT, UC_SIGMASK = 8, 8 + 40, 8 + 296
MCONTEXT_FPSTATE = 184
INFO_OFFSET = 8 + 304
FRAME_SIZE = INFO_OFFSET + 128
FP_XSTATE_MAGIC1, FP_XSTATE_MAGIC2 = 0x46505853, 0x46505845
UC_FP_XSTATE, UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS = 1, 2, 4
TF, DF, RF, AC = 0x100, 0x400, 0x10000, 0x40000
FIX_EFLAGS = 0x254DD5          # the flags a sigreturn may change (arch/x86/kernel/signal.c)


def fault_siginfo(signo: int, vector: int, error_code: int, addr: int, is_mapped: bool = False) -> bytes:
    """siginfo of a synchronous fault, with the si_code Linux's trap handlers use.

    A page fault inside a mapping (a PROT_NONE page has no PTE in km, so the error code says "not present") is
    SEGV_ACCERR, as Linux's bad_area_access_error; only an address outside every mapping is SEGV_MAPERR."""
    if signo == signal.SIGSEGV and vector == 14:
        return make_siginfo(signo, 2 if error_code & 1 or is_mapped else 1, addr)   # SEGV_ACCERR / SEGV_MAPERR
    if signo == signal.SIGSEGV:
        return make_siginfo(signo, SI_KERNEL, 0)                          # #GP: si_addr 0
    if signo == signal.SIGILL:
        return make_siginfo(signo, 2, addr)                               # ILL_ILLOPN
    if signo == signal.SIGFPE:
        return make_siginfo(signo, 1 if vector == 0 else 0, addr)         # FPE_INTDIV
    if signo == signal.SIGTRAP:
        return make_siginfo(signo, SI_KERNEL if vector == 3 else 2, addr)  # int3: SI_KERNEL; #DB: TRAP_TRACE
    return make_siginfo(signo, SI_KERNEL, addr)


def xstate_size(cpuid: CpuidTable) -> int:
    """The XSAVE image's size in a frame: CPUID.(EAX=0xD,ECX=0).ECX of KVM's supported CPUID (every user
    component's area fits below it in the standard layout); 4096 (kvm_xsave's) when the leaf is missing."""
    for i in range(cpuid.nent):
        entry = cpuid.entries[i]
        if entry.function == 0xD and entry.index == 0 and 576 <= entry.ecx <= 4096:
            return int(entry.ecx)
    return 4096


def build_frame(thread: VcpuThread, own: ThreadSignals, signo: int, handler: int, restorer: int,
                wants_altstack: bool, info: bytes, saved_mask: int) -> None:
    """setup_rt_frame + the register changes of handle_signal: the thread's user context (registers, XSAVE
    image, `saved_mask`, its alternate stack) goes into a frame, and the thread continues in `handler`.
    GuestFault if the frame cannot be written."""
    regs = thread.user_regs()
    ss_sp, ss_flags, ss_size = own.altstack
    sp = frame_top(own, regs[RSP], wants_altstack)
    size = xstate_size(thread.proc.cpuid)
    xsave = bytearray(thread.vcpu.get_xsave()[:size])
    struct.pack_into("<IIQI", xsave, 464, FP_XSTATE_MAGIC1, size + 4,
                     struct.unpack_from("<Q", xsave, 512)[0] or 3, size)
    fp_addr = (sp - size - 4) & ~63
    frame = ((fp_addr - FRAME_SIZE + 8) & ~15) - 8
    mem = thread.mem
    mem.write(fp_addr, bytes(xsave) + struct.pack("<I", FP_XSTATE_MAGIC2))
    mcontext = struct.pack("<18Q", *(regs[i] for i in _KVM_INDEX))
    mcontext += struct.pack("<HHHH", 0x33, 0, 0, 0x2B)
    error_code, trapno, cr2 = thread.fault_detail
    mcontext += struct.pack("<QQQQQ", trapno, error_code, saved_mask, cr2, fp_addr)
    mcontext = mcontext.ljust(256, b"\0")
    uc = struct.pack("<QQQI4xQ", UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS, 0, ss_sp,
                     ss_flags, ss_size) + mcontext + struct.pack("<Q", saved_mask)   # __save_altstack: raw
    mem.write(frame, struct.pack("<Q", restorer) + uc + info)
    disarm(own)
    new = list(regs)
    new[RIP], new[RSP], new[RDI] = handler, frame, signo
    new[RSI], new[RDX], new[RAX] = frame + INFO_OFFSET, frame + UC_OFFSET, 0
    new[RFLAGS] &= ~(TF | DF | RF | AC)
    thread.set_user_regs(new)
    log.debug("signal %d delivered to %d: handler %#x frame %#x", signo, thread.tid, handler, frame)


def restore_frame(thread: VcpuThread, own: ThreadSignals) -> int:
    """rt_sigreturn: registers, alternate stack and XSAVE image come back from the frame, which starts 8 bytes
    below RSP (the handler's `ret` popped pretcode); returns the frame's signal mask. GuestFault if it cannot be
    read."""
    regs = thread.user_regs()
    frame = regs[RSP] - 8
    data = thread.mem.read(frame, FRAME_SIZE)
    values = struct.unpack_from("<18Q", data, UC_MCONTEXT)
    new = list(regs)
    for i, value in zip(_KVM_INDEX, values):
        new[i] = value
    new[RFLAGS] = (regs[RFLAGS] & ~FIX_EFLAGS) | (new[RFLAGS] & FIX_EFLAGS) | 0x2
    fp_addr = struct.unpack_from("<Q", data, UC_MCONTEXT + MCONTEXT_FPSTATE)[0]
    # restore_altstack: the frame's uc_stack comes back unless the thread still runs on the alternate stack
    # (do_sigaltstack's EPERM, squashed as in Linux); this is how SS_AUTODISARM re-arms it
    set_altstack(own, regs[RSP], *struct.unpack_from("<QI4xQ", data, UC_OFFSET + 16))
    if fp_addr:
        full = len(thread.vcpu.get_xsave())
        magic, _, _, size = struct.unpack("<IIQI", thread.mem.read(fp_addr + 464, 20))
        size = size if magic == FP_XSTATE_MAGIC1 and 576 <= size <= full else full     # the frame's own size
        thread.vcpu.set_xsave(thread.mem.read(fp_addr, size) + bytes(full - size))
    thread.set_user_regs(new)
    return struct.unpack_from("<Q", data, UC_SIGMASK)[0]
