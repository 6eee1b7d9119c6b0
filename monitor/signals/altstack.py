"""The alternate signal stack of a thread (sigaltstack(2)): its flags as reported, its checks when set.

kernel/signal.c do_sigaltstack and include/linux/sched/signal.h on_sig_stack/sas_ss_flags; the stack itself is a
thread's (ThreadSignals.altstack: ss_sp, ss_flags, ss_size), used by frame.py when a frame is built.
"""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .delivery import ThreadSignals

SS_ONSTACK, SS_DISABLE, SS_AUTODISARM = 1, 2, 1 << 31
MINSIGSTKSZ = 2048
DISABLED = (0, SS_DISABLE, 0)


def on_sig_stack(own: ThreadSignals, sp: int) -> bool:
    """include/linux/sched/signal.h on_sig_stack: never with SS_AUTODISARM (the stack is disarmed while used)."""
    ss_sp, ss_flags, ss_size = own.altstack
    return not ss_flags & SS_AUTODISARM and bool(ss_size) and ss_sp < sp <= ss_sp + ss_size


def altstack_flags(own: ThreadSignals, sp: int) -> int:
    """ss_flags as sigaltstack(2) reports them (sas_ss_flags(sp) | the SS_AUTODISARM bit)."""
    ss_sp, ss_flags, ss_size = own.altstack
    state = SS_DISABLE if not ss_size else SS_ONSTACK if on_sig_stack(own, sp) else 0
    return state | (ss_flags & SS_AUTODISARM)


def set_altstack(own: ThreadSignals, sp: int, ss_sp: int, ss_flags: int, ss_size: int) -> int:
    """do_sigaltstack for a new stack_t: 0 or -errno (EPERM while on it, EINVAL, ENOMEM below MINSIGSTKSZ)."""
    if on_sig_stack(own, sp):
        return -errno.EPERM
    mode = ss_flags & ~SS_AUTODISARM & 0xFFFFFFFF
    if mode not in (0, SS_ONSTACK, SS_DISABLE):
        return -errno.EINVAL
    if mode == SS_DISABLE:
        own.altstack = (0, ss_flags & 0xFFFFFFFF, 0)
    elif ss_size < MINSIGSTKSZ:
        return -errno.ENOMEM
    else:
        own.altstack = (ss_sp, ss_flags & SS_AUTODISARM, ss_size)
    return 0


def frame_top(own: ThreadSignals, sp: int, wants_altstack: bool) -> int:
    """Where a signal frame goes below (get_sigframe): the top of the alternate stack when the handler asked for
    it (SA_ONSTACK) and the thread is not already on it, else below the red zone of the current stack."""
    ss_sp, ss_flags, ss_size = own.altstack
    if wants_altstack and ss_size and not on_sig_stack(own, sp):
        return ss_sp + ss_size
    return sp - 128


def disarm(own: ThreadSignals) -> None:
    """sas_ss_reset: with SS_AUTODISARM the stack is disabled while a handler runs on it; the handler's sigreturn
    brings it back from the frame's uc_stack."""
    if own.altstack[1] & SS_AUTODISARM:
        own.altstack = DISABLED
