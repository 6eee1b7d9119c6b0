"""km's own calls, served like syscalls but outside Linux's numbers (asm/unistd_64.h ends below 512; x32's start
at 0x40000000): "KM" << 8 plus an index. include/km/snapshot.h publishes them to payloads (checked by
tests/unit/test_snapshot_layouts.py); on Linux itself they fail with ENOSYS."""
from __future__ import annotations

KM_SYSCALL_BASE = 0x4B4D00
KM_NUMBERS = {
    "km_snapshot": KM_SYSCALL_BASE,
}
KM_NAMES = {nr: name for name, nr in KM_NUMBERS.items()}
