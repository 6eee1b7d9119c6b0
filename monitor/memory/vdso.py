"""The guest's vDSO: the host's own [vvar] pages mapped read-only into the guest, and a copy of the host's [vdso]
code placed right after them, so clock_gettime/gettimeofday/time run in the guest without an exit (as the
original product did). The vDSO code finds its data at a fixed negative offset, so the guest keeps the host's
layout: [vvar][vvar_vclock][vdso]. The guest TSC equals the host's (docs/KVM.md 7), so the results agree.

Only used when the host clocksource is one the copy can read without a hypercall (tsc); otherwise no vDSO is
offered (AT_SYSINFO_EHDR absent) and libc falls back to the syscall.
"""
from __future__ import annotations

import functools

from kdbg.tracelog import logger
from .guest import PROT_EXEC, PROT_READ, GuestMemory
from ..kvm.abi import ffi

log = logger("km.mem")


@functools.cache
def _host_layout() -> tuple[int, int, int, int] | None:
    """(vvar start, vvar end (incl. vvar_vclock), vdso start, vdso end) in km's own address space: read once, at
    km's start (forked and exec'ing kms keep the same address space layout). The three lines are found in the
    text whole, not by splitting every line of km's maps (over a hundred: ~0.3 ms of every start)."""
    with open("/proc/self/maps", "rb") as f:
        maps = f.read()
    vvar, vclock, vdso = (_span(maps, name) for name in (b"[vvar]", b"[vvar_vclock]", b"[vdso]"))
    if vvar is None or vdso is None:
        return None
    vvar_end = max(vvar[1], vclock[1]) if vclock is not None else vvar[1]
    if vdso[0] != vvar_end:
        return None
    return vvar[0], vvar_end, vdso[0], vdso[1]


def _span(maps: bytes, name: bytes) -> tuple[int, int] | None:
    """The [start, end) of the /proc/PID/maps line whose path is `name`."""
    at = maps.find(b" " + name + b"\n")
    if at < 0:
        return None
    line = maps[maps.rfind(b"\n", 0, at) + 1:at]
    start, end = line.split(b" ", 1)[0].split(b"-")
    return int(start, 16), int(end, 16)


@functools.cache
def _clocksource() -> str:
    try:
        with open("/sys/devices/system/clocksource/clocksource0/current_clocksource") as f:
            return f.read().strip()
    except OSError:
        return ""


def map_vdso(mem: GuestMemory) -> int:
    """Map vvar + vdso into the guest; returns the guest address of the vDSO ELF image, or 0."""
    layout = _host_layout()
    if layout is None or _clocksource() != "tsc":
        log.info("no vDSO for the guest (clocksource %s)", _clocksource() or "?")
        return 0
    vvar, vvar_end, vdso, vdso_end = layout
    vvar_size, vdso_size = vvar_end - vvar, vdso_end - vdso
    base = mem.find_free(vvar_size + vdso_size)     # where Linux puts it: the next mmap after the interpreter
    if base is None:
        return 0
    try:
        return _map(mem, base, layout)
    except Exception as e:
        log.info("no vDSO for the guest: the host [vvar] cannot back a memslot (%s)", e)
        return 0


def map_vdso_again(mem: GuestMemory, vvar_gva: int, vvar_size: int, image: bytes) -> str | None:
    """A resumed snapshot's vDSO: this host's [vvar] and [vdso] at the guest addresses the snapshot used, which
    the payload's C library holds pointers into. None, or why it cannot be (another kernel's vDSO: its code
    would read this kernel's [vvar] with the old layout)."""
    layout = _host_layout()
    if layout is None or _clocksource() != "tsc":
        return f"this host offers no vDSO to copy (clocksource {_clocksource() or '?'})"
    vvar, vvar_end, vdso, vdso_end = layout
    if vvar_end - vvar != vvar_size or _host_image(vdso, vdso_end) != image:
        return "it was taken on a host with another vDSO (another kernel)"
    _map(mem, vvar_gva, layout)
    return None


def _host_image(vdso: int, vdso_end: int) -> bytes:
    return bytes(ffi.buffer(ffi.cast("char *", vdso), vdso_end - vdso))


def _map(mem: GuestMemory, base: int, layout: tuple[int, int, int, int]) -> int:
    vvar, vvar_end, vdso, vdso_end = layout
    vvar_size, vdso_size = vvar_end - vvar, vdso_end - vdso
    # an exec in the same km maps the same host [vvar] again: its memory slot is reused (KVM has few)
    gpa = next((g for g, size, host in mem.phys.foreign if host == vvar and size == vvar_size), None)
    if gpa is None:
        gpa = mem.phys.add_foreign(vvar, vvar_size)
    mem.map_foreign(base, vvar_size, PROT_READ, gpa, name="[vvar]")
    mem.map(base + vvar_size, vdso_size, PROT_READ | PROT_EXEC, name="[vdso]")
    mem.write_debug(base + vvar_size, _host_image(vdso, vdso_end))
    log.info("vDSO at %#x (vvar %#x, %d pages)", base + vvar_size, base, vvar_size // 4096)
    return base + vvar_size
