"""Taking a snapshot: freeze the process, describe it as km notes, write it as a core, then thaw or let it end.

The file is a kmcore (kdbg.core.writer, so gdb reads it as a core with the snapshot point as the stop) plus km's
notes (layouts.py): every thread's registers and whole XSAVE image, signal state, the VMAs, brk, the payload's
arguments, environment and descriptors. Memory goes into PT_LOADs: anonymous memory whole (zero runs are
holes), private file mappings only their pages the payload changed (a resume maps the file again), shared file
mappings and the host's [vvar] not at all. One snapshot at a time; it is written to a temporary name and renamed,
so a reader never sees half a snapshot. What cannot be restored is refused before anything is written.
"""
from __future__ import annotations

import bisect
import errno
import os
import struct
import threading
import time
from typing import TYPE_CHECKING, Iterable, Sequence

from kdbg.arch.x86_64 import KVM_REGS
from kdbg.core.errors import CoreError
from kdbg.core.layouts import PAGE_SIZE, pack_owned_note
from kdbg.core.writer import Dump, write_core
from kdbg.target import MemoryRegion
from kdbg.tracelog import logger

from .. import __version__
from ..memory.guest import Vma
from ..debug.process_view import ProcessView
from ..vcpu.registers import read_registers
from . import fds
from .errors import SnapshotError
from .freeze import freeze, thaw
from .layouts import (KM_SNAPSHOT_FORMAT, KM_SNAPSHOT_LIVE, KM_SNAPSHOT_MAGIC, KM_THREAD_IN_SYSCALL, SIGACTION_COUNT,
                      KM_VMA_BACKED, KM_VMA_COPY, KM_VMA_FILE, KM_VMA_HOST, KM_VMA_SHARED, KM_VMA_SMALL_PAGES, KmNote,
                      km_pending, km_process, km_sigaction, km_snapshot, km_thread, km_vma, km_xsave)

if TYPE_CHECKING:
    from ..process.payload import Process
    from ..signals.delivery import PendingSignal
    from ..vcpu.loop import VcpuThread

log = logger("km.snapshot")
RESUMED = 1                    # what km_snapshot_take() returns in a resumed copy (KM_SNAPSHOT_RESUMED)
RAX = KVM_REGS.index("rax")
PAGEMAP_PRESENT, PAGEMAP_SWAPPED, PAGEMAP_FILE = 1 << 63, 1 << 62, 1 << 61
_busy = threading.Lock()       # one snapshot at a time (one process per km)


def take(proc: Process, path: str, *, label: str = "", description: str = "", live: bool = False,
         caller: VcpuThread | None = None) -> str:
    """Write a snapshot of `proc` at `path` (made absolute, returned). `caller` is the thread asking from inside
    (km_snapshot_take), or None (the management socket). With `live` the payload goes on; without, it is left
    frozen and the caller ends it. SnapshotError says why no snapshot was written (nothing is left behind)."""
    path = os.path.abspath(path)
    if not _busy.acquire(blocking=False):
        raise SnapshotError(path, "another snapshot is being written", errno.EBUSY)
    try:
        started = time.monotonic()
        freeze(proc, caller)
        try:
            _refuse_timers(proc)
            notes, dump = _describe(proc, caller, label, description, live)
            _write(proc, caller, path, notes, dump)
        except BaseException:
            thaw(proc)
            raise
        if live:
            thaw(proc)
        else:
            fds.close_all()
        log.info("snapshot %s written in %.2fs (%s)", path, time.monotonic() - started, "live" if live else "ends")
        return path
    finally:
        _busy.release()


def _write(proc: Process, caller: VcpuThread | None, path: str, notes: bytes, dump: Dump) -> None:
    temporary = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        write_core(_SnapshotView(proc, caller), temporary, signal=0,
                   crashing_tid=caller.tid if caller is not None else None, extra_notes=notes, dump=dump)
        os.replace(temporary, path)
    except CoreError as e:
        raise SnapshotError(path, e.problem, errno.EIO) from None
    except OSError as e:
        _remove(temporary)
        raise SnapshotError(path, e.strerror or str(e), errno.EIO) from None


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class _SnapshotView(ProcessView):
    """The frozen process as the core writer sees it; the thread that asked shows the value a resumed copy's
    km_snapshot_take() returns."""

    def __init__(self, proc: Process, caller: VcpuThread | None) -> None:
        super().__init__(proc)
        self.caller = caller

    def registers(self, tid: int) -> dict[str, int]:
        """The caller's rax is changed in a copy: the register file read_registers gives is the thread's own, kept
        on it while it stays parked (VcpuThread.stopped_regs), and the core writer reads every register anyway."""
        regs = super().registers(tid)
        if self.caller is not None and tid == self.caller.tid:
            regs = regs.copy()
            regs["rax"] = RESUMED
        return regs


def _refuse_timers(proc: Process) -> None:
    """An armed alarm/setitimer timer or any POSIX timer (timer_create) has no note to come back by."""
    clock = proc.clock
    with clock.cond:
        for key, timer in clock.timers.items():
            if key in ("real", "virtual", "prof"):
                if timer.deadline:
                    raise SnapshotError("snapshot", "an armed alarm/setitimer timer cannot be restored")
            else:
                raise SnapshotError("snapshot", f"POSIX timer {key} (timer_create) cannot be restored")


# ---- the notes ------------------------------------------------------------------------------------------------
def _describe(proc: Process, caller: VcpuThread | None, label: str, description: str,
              live: bool) -> tuple[bytes, Dump]:
    """The packed km notes, and the writer's choice of memory to dump."""
    signalfds = proc.signals.signalfds
    descriptors = fds.capture(set(signalfds.by_pipe) if signalfds is not None else set())
    vmas = proc.mem.regions()
    header = km_snapshot(magic=KM_SNAPSHOT_MAGIC, format=KM_SNAPSHOT_FORMAT, flags=KM_SNAPSHOT_LIVE if live else 0,
                         km_version=__version__.encode(), time_ns=time.time_ns(), pid=proc.pid,
                         caller_tid=caller.tid if caller is not None else 0)
    notes = [(KmNote.NT_KM_SNAPSHOT, bytes(header) + _cstrings([label, description])),
             (KmNote.NT_KM_PROCESS, _process(proc))]
    for thread in proc.live_threads():
        notes.append((KmNote.NT_KM_THREAD, bytes(_thread(proc, thread, caller))))
        image = thread.vcpu.get_xsave()
        notes.append((KmNote.NT_KM_XSAVE, bytes(km_xsave(thread.tid, len(image))) + image))
    actions = proc.signals.actions
    notes.append((KmNote.NT_KM_SIGACTIONS, b"".join(
        bytes(km_sigaction(a.handler, a.flags, a.restorer, a.mask)) for a in actions[1:SIGACTION_COUNT + 1])))
    notes.append((KmNote.NT_KM_SIGPENDING, _pending(proc)))
    records = [_vma(proc, v) for v in vmas]
    notes += [(KmNote.NT_KM_VMA, bytes(r) + _cstrings([v.name, v.path])) for v, r in zip(vmas, records)]
    notes += [(KmNote.NT_KM_FD, d.pack()) for d in descriptors]
    blob = b"".join(pack_owned_note(kind.owner, int(kind), desc) for kind, desc in notes)
    return blob, _dumper(proc, vmas, records)


def _cstrings(values: Iterable[str | bytes]) -> bytes:
    return b"".join((v if isinstance(v, bytes) else os.fsencode(v)) + b"\0" for v in values)


def _process(proc: Process) -> bytes:
    mask = os.umask(0)
    os.umask(mask)
    record = km_process(brk_start=proc.mem.brk_start, brk=proc.mem.brk, argc=len(proc.argv), envc=len(proc.env),
                        umask=mask)
    return bytes(record) + _cstrings([*proc.argv, *proc.env, os.path.abspath(proc.path), os.getcwd()])


def _thread(proc: Process, thread: VcpuThread, caller: VcpuThread | None) -> km_thread:
    regs = thread.user_regs()
    if thread is caller:
        regs[RAX] = RESUMED
    bases = read_registers(thread)
    own = proc.signals.of(thread)
    ss_sp, ss_flags, ss_size = own.altstack
    record = km_thread(tid=thread.tid, flags=KM_THREAD_IN_SYSCALL if thread is caller else 0,
                       fs_base=bases["fs_base"], gs_base=bases["gs_base"],
                       sigmask=own.mask if own.mask_to_restore is None else own.mask_to_restore, ss_sp=ss_sp,
                       ss_flags=ss_flags, ss_size=ss_size, clear_child_tid=thread.clear_child_tid,
                       robust_list=thread.robust_list, name=thread.name.encode()[:15])
    record.regs[:] = regs
    return record


def _pending(proc: Process) -> bytes:
    state = proc.signals
    out = []
    with state.lock:
        for tid, own in state.per_thread.items():
            out += [_pending_record(p, tid) for p in own.pending]
        out += [_pending_record(p, 0) for p in state.shared_pending]
    return b"".join(bytes(p) for p in out)


def _pending_record(pending: PendingSignal, tid: int) -> km_pending:
    """A queued signal: `tid` 0 for the process's queue, where chosen_tid says which thread it was meant for."""
    record = km_pending(signo=pending.signo, tid=tid, chosen_tid=0 if tid else pending.chosen_tid or 0)
    info = pending.info[:len(record.info)]
    record.info[:len(info)] = info
    return record


def _vma(proc: Process, vma: Vma) -> km_vma:
    flags = 0
    if vma.gpa is not None:
        flags |= KM_VMA_BACKED
        if vma.file is not None and not proc.phys.is_file(vma.gpa):
            flags |= KM_VMA_COPY                 # a program image km copied: the snapshot holds all of it
    elif vma.foreign is not None:
        flags |= KM_VMA_HOST                     # the host's [vvar]: km owns no memory there
    if vma.file is not None:
        flags |= KM_VMA_FILE
    if vma.shared:
        flags |= KM_VMA_SHARED
    if not vma.huge:
        flags |= KM_VMA_SMALL_PAGES
    record = km_vma(start=vma.start, end=vma.end, offset=vma.offset, prot=vma.prot, flags=flags)
    if flags & KM_VMA_FILE and vma.path.startswith("/"):
        try:
            info = os.stat(vma.path)
            record.file_size, record.file_mtime_ns = info.st_size, info.st_mtime_ns
        except OSError:
            pass                                 # a deleted file: a resume refuses it if it needs its pages
    return record


# ---- the memory -----------------------------------------------------------------------------------------------
def _dumper(proc: Process, vmas: list[Vma], records: list[km_vma]) -> Dump:
    """The core writer's `dump`: what of each mapping (a region merges neighbouring VMAs) the snapshot holds:
    anonymous memory and program-image copies whole, private file windows their pages the payload wrote, shared
    file mappings and reservations nothing."""
    starts = [v.start for v in vmas]

    def dump(region: MemoryRegion) -> Sequence[tuple[int, int]]:
        runs: list[tuple[int, int]] = []
        for i in range(max(0, bisect.bisect_right(starts, region.start) - 1), len(vmas)):
            vma, record = vmas[i], records[i]
            if vma.start >= region.end:
                break
            if vma.end <= region.start or not record.flags & KM_VMA_BACKED:
                continue
            if record.flags & KM_VMA_FILE and not record.flags & KM_VMA_COPY:
                if not record.flags & KM_VMA_SHARED:
                    runs += _changed_pages(proc, vma)
            else:
                runs.append((vma.start, vma.end))
        return _merge(runs)
    return dump


def _merge(runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in runs:
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def _changed_pages(proc: Process, vma: Vma) -> list[tuple[int, int]]:
    """The runs of pages of a private file mapping the payload wrote: they are private (anonymous) copies now,
    which /proc/self/pagemap tells from page-cache pages (bit 61: file page or shared)."""
    assert vma.gpa is not None, "a backed VMA"
    host = proc.phys.host_addr(vma.gpa)
    pages = (vma.end - vma.start) // PAGE_SIZE
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(host // PAGE_SIZE * 8)
        entries = struct.unpack(f"<{pages}Q", f.read(8 * pages))
    runs: list[tuple[int, int]] = []
    for i, entry in enumerate(entries):
        if entry & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED) and not entry & PAGEMAP_FILE:
            start = vma.start + i * PAGE_SIZE
            if runs and runs[-1][1] == start:
                runs[-1] = (runs[-1][0], start + PAGE_SIZE)
            else:
                runs.append((start, start + PAGE_SIZE))
    return runs
