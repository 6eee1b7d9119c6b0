"""The syscall table: `@syscall("name")` registers `sys_<name>(ctx, *args)` once, with its arity; dispatch() runs it.

Handlers return the result or a negative errno; a call cut short by a signal returns one of the kernel's restart
codes instead (signals.ERESTARTSYS...), which the way back to the guest settles (signals.SignalState.deliver), so
dispatch() first records the number of the call for the thread (the kernel's orig_rax). A GuestFault (bad guest
pointer) becomes -EFAULT and an OSError its -errno, here and nowhere else; an unexpected exception in km is traced
and answered -EIO, so a bug in km never kills the payload or loses its output. An unknown number returns -ENOSYS
with one km.syscall trace line. km's own calls (km_numbers.py) are registered the same way, numbered far above.
"""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, Callable

from kdbg.arch.linux import MASK64
from kdbg.tracelog import logger
from ..errors import GuestFault
from ..host_fds import GATE, aside
from .bounce import bounces as _bounces, flush_bounces as _flush_bounces
from .km_numbers import KM_NAMES, KM_NUMBERS
from .numbers import NAMES as LINUX_NAMES, NUMBERS as LINUX_NUMBERS

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread

log = logger("km.syscall")
TABLE_SIZE = 512
Handler = Callable[..., Any]     # an int for rax, or None when nothing is written back (exit, rt_sigreturn)
_handlers: list[tuple[Handler, int] | None] = [None] * TABLE_SIZE
_km_handlers: dict[int, tuple[Handler, int]] = {}       # km's own calls, numbered far above TABLE_SIZE
NUMBERS = {**LINUX_NUMBERS, **KM_NUMBERS}
NAMES = {**LINUX_NAMES, **KM_NAMES}


def syscall(*names: str, descriptors: bool = False) -> Callable[[Handler], Handler]:
    """Register a handler under one or more syscall names from numbers.py (or km's own, km_numbers.py). A second
    handler for a number is an error at import: two families serving one call kept whichever came last.
    `descriptors`: the call makes, replaces or closes descriptors and does not block: it passes the descriptor
    gate (host_fds.GATE), kept out of the moments km holds a number of the payload's."""
    def register(fn: Handler) -> Handler:
        arity = fn.__code__.co_argcount - 1
        served = _through_gate(fn) if descriptors else fn
        for name in names:
            nr = NUMBERS[name]
            taken = _handlers[nr] if nr < TABLE_SIZE else _km_handlers.get(nr)
            if taken is not None and taken[0].__qualname__ != fn.__qualname__:     # a module reloaded is no clash
                raise RuntimeError(f"syscall {name}: served by both {taken[0].__module__}.{taken[0].__name__} "
                                   f"and {fn.__module__}.{fn.__name__}")
            if nr < TABLE_SIZE:
                _handlers[nr] = (served, arity)
            else:
                _km_handlers[nr] = (served, arity)
        return fn
    return register


def _through_gate(fn: Handler) -> Handler:
    enter, leave = GATE.enter, GATE.leave

    def gated(ctx: VcpuThread, *args: int) -> Any:
        enter()
        try:
            return fn(ctx, *args)
        finally:
            leave()
    gated.__qualname__, gated.__module__, gated.__name__ = fn.__qualname__, fn.__module__, fn.__name__
    return gated


_complete = False      # every family registered (table.py registers the rarer ones on the first miss)


def load_all() -> None:
    """Register every family: the rarer ones table.py leaves until a call needs one (imported here, not at the top:
    the families import this module)."""
    global _complete
    if not _complete:
        from .table import load_rest
        aside(load_rest)                # the payload may be opening files on another thread meanwhile
        _complete = True


def handler_names() -> list[str]:
    load_all()
    return [NAMES.get(nr, str(nr)) for nr, h in enumerate(_handlers) if h] + [NAMES[nr] for nr in _km_handlers]


_strace = logger("km.strace")
_ERRNO_NAMES = {-code: name for code, name in errno.errorcode.items()}


_trace_calls = False


def trace_every_call(on: bool) -> None:
    """KM_VERBOSE=strace: one line per syscall, `name(args) = result` (the errno's name for an error), so the call
    behind a payload's failure can be found (and compared with `strace -f` of the native run)."""
    global _trace_calls
    _trace_calls = on


# which argument is a path, to show it in the trace line
_PATH_ARG = {"open": 0, "stat": 0, "lstat": 0, "access": 0, "execve": 0, "readlink": 0, "unlink": 0, "mkdir": 0,
             "rmdir": 0, "chdir": 0, "rename": 0, "statfs": 0, "truncate": 0, "chmod": 0, "symlink": 0, "link": 0,
             "creat": 0, "openat": 1, "newfstatat": 1, "faccessat": 1, "faccessat2": 1, "readlinkat": 1,
             "unlinkat": 1, "mkdirat": 1, "renameat2": 1, "statx": 1, "fchmodat": 1, "utimensat": 1, "execveat": 1}


def _traced(ctx: VcpuThread, nr: int, a0: int, a1: int, a2: int, a3: int, a4: int, a5: int) -> int:
    path = ""
    if NAMES.get(nr) in _PATH_ARG:
        try:
            path = " " + repr(ctx.mem.read_cstring((a0, a1)[_PATH_ARG[NAMES[nr]]], 4096))
        except GuestFault:
            pass
    result = _dispatch(ctx, nr, a0, a1, a2, a3, a4, a5)
    if result is not None and -4096 < result < 0:
        shown = f"{result} {_ERRNO_NAMES.get(result, '')}"
    else:
        shown = f"{result:#x}" if result is not None and result > 0xFFFF else f"{result}"
    _strace.debug("[%d] %s(%#x, %#x, %#x, %#x, %#x, %#x)%s = %s", ctx.tid, NAMES.get(nr, nr), a0, a1, a2, a3, a4,
                  a5, path, shown)
    return result


def dispatch(ctx: VcpuThread, nr: int, a0: int, a1: int, a2: int, a3: int, a4: int, a5: int) -> int:
    if _trace_calls:
        return _traced(ctx, nr, a0, a1, a2, a3, a4, a5)
    return _dispatch(ctx, nr, a0, a1, a2, a3, a4, a5)


def _dispatch(ctx: VcpuThread, nr: int, a0: int, a1: int, a2: int, a3: int, a4: int, a5: int) -> int:
    ctx.orig_rax = nr
    entry = _handlers[nr] if nr < TABLE_SIZE else _km_handlers.get(nr)
    if entry is None and not _complete:
        load_all()
        entry = _handlers[nr] if nr < TABLE_SIZE else _km_handlers.get(nr)
    if entry is None:
        log.info("unknown syscall %d (%s): ENOSYS", nr, NAMES.get(nr, "?"))
        return -errno.ENOSYS
    fn, arity = entry
    try:
        if arity == 3:
            return fn(ctx, a0, a1, a2)
        return fn(ctx, *(a0, a1, a2, a3, a4, a5)[:arity])
    except GuestFault as fault:
        log.debug("%s: bad guest pointer %#x: EFAULT", NAMES.get(nr), fault.gva)
        return -errno.EFAULT
    except OSError as e:
        return -(e.errno or errno.EIO)
    except MemoryError:                 # guest-physical space or host memory exhausted: the payload's ENOMEM
        log.info("%s: out of memory: ENOMEM", NAMES.get(nr))
        return -errno.ENOMEM
    except Exception:
        log.exception("%s: km failed serving the call: EIO", NAMES.get(nr))
        return -errno.EIO
    finally:
        if _bounces.pending:            # guest buffers split across host memory were served by copies
            _flush_bounces()


def s32(value: int) -> int:
    """A syscall argument as a signed 32-bit int (fds, AT_FDCWD, flags)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def s64(value: int) -> int:
    """Any int (a register's word, a negative Python int, a wider one) as the signed 64-bit value libc's
    syscall(2) takes (host.host_syscall's arguments)."""
    value &= MASK64
    return value - (1 << 64) if value >> 63 else value
