"""Resuming a snapshot: a new VM with the snapshot's memory, threads (with their tids), signal state and
descriptors, each thread going on from where it was frozen.

Anonymous memory is read from the file's data extents only (its holes are zero pages, left untouched); a private
file mapping is mapped from its file again and only the pages the payload had changed come from the snapshot; a
shared one is the file's. The vDSO comes back at the same addresses if this host's is the same. A file the
snapshot maps that changed since, a vDSO that differs, or memory that cannot be had, is refused in one line.
"""
from __future__ import annotations

import bisect
import errno
import os
from typing import TYPE_CHECKING, Iterator

from kdbg.tracelog import logger
from ..kvm.abi import PROT_NONE, PROT_READ, PROT_WRITE
from ..memory.mapped_file import MappedFile
from ..signals.delivery import PendingSignal, SigAction
from ..memory.vdso import map_vdso_again
from . import fds
from .errors import SnapshotError
from .file import Load, Snapshot, Thread, read_snapshot
from .layouts import KM_VMA_BACKED, KM_VMA_COPY, KM_VMA_FILE, KM_VMA_HOST, KM_VMA_SHARED, KM_VMA_SMALL_PAGES, km_vma

if TYPE_CHECKING:
    from ..process.payload import ChildRunner, CoreWriter, Process
    from ..vcpu.loop import VcpuThread

log = logger("km.snapshot")


def resume(path: str, *, core_writer: CoreWriter | None = None, child_runner: ChildRunner | None = None,
           snapshot_path: str = "kmsnap") -> tuple[Process, list[VcpuThread]]:
    """The process of the snapshot at `path`, not started, and its threads: the one that took the snapshot (or
    the main one) first. SnapshotError when it cannot be resumed here."""
    from ..process.payload import Process
    snapshot = read_snapshot(path)
    proc = Process(snapshot.exe, snapshot.argv, snapshot.env, core_writer=core_writer, child_runner=child_runner,
                   snapshot_path=snapshot_path, load_payload=False)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _restore_memory(proc, snapshot, fd)
        finally:
            os.close(fd)
        proc.auxv = snapshot.auxv
        proc.mem.brk_start, proc.mem.brk = snapshot.process.brk_start, snapshot.process.brk
        proc.adopt_ids(snapshot.header.pid, [t.record.tid for t in snapshot.threads])
        threads = [_restore_thread(proc, t, i == 0, path) for i, t in enumerate(_caller_first(snapshot))]
        _restore_signals(proc, snapshot)
        fds.restore(snapshot.descriptors, path)
        _restore_cwd(snapshot)
    except (OSError, MemoryError) as e:
        problem = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
        raise SnapshotError(path, f"cannot be resumed ({problem})") from None
    log.info("resumed %s: %d threads, %d mappings, %d descriptors (label %r)", path, len(threads),
             len(snapshot.vmas), len(snapshot.descriptors), snapshot.label)
    return proc, threads


def _caller_first(snapshot: Snapshot) -> list[Thread]:
    first = snapshot.header.caller_tid or snapshot.header.pid
    return sorted(snapshot.threads, key=lambda t: (t.record.tid != first, t.record.tid))


# ---- memory ---------------------------------------------------------------------------------------------------
def _restore_memory(proc: Process, snapshot: Snapshot, fd: int) -> None:
    loads = sorted((load for load in snapshot.loads if load.filesz), key=lambda load: load.vaddr)
    vvar = vdso = None
    for record, name, path in snapshot.vmas:
        if name == "[vvar]" and record.flags & KM_VMA_HOST:
            vvar = record
        elif name == "[vdso]":
            vdso = record
        elif record.flags & KM_VMA_HOST:
            log.info("%s at %#x: host memory km cannot map again: left out", name or path, record.start)
        elif not record.flags & KM_VMA_BACKED:
            vma = proc.mem.map(record.start, record.end - record.start, record.prot, name=name, reserve_only=True,
                               huge=not record.flags & KM_VMA_SMALL_PAGES)
            if record.flags & KM_VMA_FILE:
                vma.file, vma.path, vma.offset = _file(path), path, record.offset
        elif record.flags & KM_VMA_FILE and not record.flags & KM_VMA_COPY:
            _map_file(proc, snapshot, record, path, loads, fd)
        else:
            _map_anonymous(proc, record, name, path, loads, fd)
    if vvar is not None and vdso is not None:
        image = _read_loads(loads, fd, vdso.start, vdso.end)
        problem = map_vdso_again(proc.mem, vvar.start, vvar.end - vvar.start, image)
        if problem:
            raise SnapshotError(snapshot.path, f"cannot be resumed here: {problem}")


def _file(path: str) -> MappedFile:
    """The file of a mapping whose pages are in the snapshot, kept open for MADV_DONTNEED's re-reads (a file
    that is gone by now still names the mapping)."""
    try:
        return MappedFile.open(path)
    except OSError:
        return MappedFile(path)


def _map_anonymous(proc: Process, record: km_vma, name: str, path: str, loads: list[Load], fd: int) -> None:
    """Backed with the rights needed to fill it, then the snapshot's data, then its own rights. A program image's
    copy (KM_VMA_COPY) names its file again. Shared anonymous memory comes back private (one process)."""
    size = record.end - record.start
    vma = proc.mem.map(record.start, size, record.prot or PROT_READ | PROT_WRITE, name=name,
                       huge=not record.flags & KM_VMA_SMALL_PAGES)
    if record.flags & KM_VMA_FILE:
        vma.file, vma.path, vma.offset = _file(path), path, record.offset
    assert vma.gpa is not None, "mapped with rights: backed"
    for load, start, end in _overlaps(loads, record.start, record.end):
        _fill(proc.phys.view(vma.gpa + start - record.start, end - start), fd, load.offset + start - load.vaddr,
              holes_are_zero=True)
    if record.prot == PROT_NONE:
        proc.mem.protect(record.start, size, PROT_NONE)


def _map_file(proc: Process, snapshot: Snapshot, record: km_vma, path: str, loads: list[Load], fd: int) -> None:
    """The file again, mapped by the host (refused if it changed), then the pages the payload had written in a
    private mapping."""
    shared = bool(record.flags & KM_VMA_SHARED)
    writable = shared and record.prot & PROT_WRITE
    try:
        file_fd = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)
    except OSError as e:
        raise SnapshotError(snapshot.path, f"cannot be resumed: {path} (mapped at {record.start:#x}): "
                                           f"{e.strerror}") from None
    try:
        info = os.fstat(file_fd)
        if (info.st_size, info.st_mtime_ns) != (record.file_size, record.file_mtime_ns):
            raise SnapshotError(snapshot.path, f"cannot be resumed: {path} changed since the snapshot was taken")
        proc.mem.map_file(record.start, record.end - record.start, record.prot, MappedFile.of_fd(file_fd),
                          record.offset, shared, host_fd=file_fd)
    finally:
        os.close(file_fd)
    if shared:
        return
    for load, start, end in _overlaps(loads, record.start, record.end):
        while start < end:                      # the window, then the zero pages past the file's end
            vma = proc.mem.find(start)
            assert vma is not None and vma.gpa is not None, "just mapped"
            stop = min(end, vma.end)
            _fill(proc.phys.view(vma.gpa + start - vma.start, stop - start), fd, load.offset + start - load.vaddr,
                  holes_are_zero=False)
            start = stop


def _overlaps(loads: list[Load], start: int, end: int) -> Iterator[tuple[Load, int, int]]:
    """(load, lo, hi) for each PT_LOAD with data inside [start, end); `loads` sorted and disjoint (so are their
    ends: the first candidate is found by bisection, a Python payload has hundreds of mappings)."""
    for load in loads[bisect.bisect_right(loads, start, key=lambda load: load.vaddr + load.filesz):]:
        if load.vaddr >= end:
            return
        lo, hi = max(start, load.vaddr), min(end, load.vaddr + load.filesz)
        if lo < hi:
            yield load, lo, hi


def _fill(view: memoryview, fd: int, offset: int, *, holes_are_zero: bool) -> None:
    """Read view's bytes from the file at `offset`. Over fresh zero pages the file's holes are skipped (SEEK_DATA),
    so untouched memory stays uncommitted on the host."""
    end = offset + len(view)
    position = offset
    while position < end:
        data, hole = position, end
        if holes_are_zero:
            try:
                data = os.lseek(fd, position, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    return                      # only a hole is left
                raise
            if data >= end:
                return
            hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        done = data
        while done < hole:
            n = os.preadv(fd, [view[done - offset:hole - offset]], done)
            if n <= 0:
                raise OSError(errno.EIO, "short read")
            done += n
        position = hole


def _read_loads(loads: list[Load], fd: int, start: int, end: int) -> bytes:
    out = bytearray(end - start)
    for load, lo, hi in _overlaps(loads, start, end):
        out[lo - start:hi - start] = os.pread(fd, hi - lo, load.offset + lo - load.vaddr)
    return bytes(out)


# ---- threads, signals, the rest ---------------------------------------------------------------------------------
def _restore_thread(proc: Process, saved: Thread, first: bool, path: str) -> VcpuThread:
    record = saved.record
    thread = proc.new_thread(record.tid)
    if first:
        proc.self_test(thread)
    thread.set_user_regs(list(record.regs))
    sregs = thread.vcpu.get_sregs()
    sregs.fs.base, sregs.gs.base = record.fs_base, record.gs_base
    thread.vcpu.set_sregs(sregs)
    mirror = thread.run.s.regs.sregs            # the sync copy must agree with what KVM now holds
    mirror.fs.base, mirror.gs.base = record.fs_base, record.gs_base
    if saved.xsave:
        if len(saved.xsave) != len(thread.vcpu.get_xsave()):
            raise SnapshotError(path, f"cannot be resumed here: thread {record.tid} has an XSAVE image of "
                                      f"{len(saved.xsave)} bytes, this host's are another size (another CPU)")
        thread.vcpu.set_xsave(saved.xsave)
    own = proc.signals.of(thread)
    own.mask = record.sigmask
    own.altstack = (record.ss_sp, record.ss_flags, record.ss_size)
    thread.clear_child_tid, thread.robust_list = record.clear_child_tid, record.robust_list
    thread.name = record.name.decode(errors="replace")
    return thread


def _restore_signals(proc: Process, snapshot: Snapshot) -> None:
    state = proc.signals
    for signo, action in enumerate(snapshot.actions, start=1):
        state.actions[signo] = SigAction(action.handler, action.flags, action.restorer, action.mask)
    for pending in snapshot.pending:
        info = bytes(pending.info)
        thread = proc.threads.get(pending.tid) if pending.tid else None
        if thread is not None:
            state.of(thread).pending.append(PendingSignal(pending.signo, info))
        elif not pending.tid:
            state.shared_pending.append(PendingSignal(pending.signo, info, pending.chosen_tid or None))


def _restore_cwd(snapshot: Snapshot) -> None:
    os.umask(snapshot.process.umask)
    try:
        os.chdir(snapshot.cwd)
    except OSError as e:
        log.info("working directory %s: %s: staying in %s", snapshot.cwd, e.strerror, os.getcwd())
