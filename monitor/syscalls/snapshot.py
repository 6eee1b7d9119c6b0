"""km's own call km_snapshot(label, description, live) (include/km/snapshot.h): the payload snapshots itself.

Returns 0 (KM_SNAPSHOT_TAKEN) to a payload that goes on (live); without `live` the payload ends once the file is
written. A resumed copy finds 1 (KM_SNAPSHOT_RESUMED) here instead, written into the snapshot's registers.
A snapshot that cannot be taken is -errno (EBUSY, EINVAL naming what cannot be restored in the km.snapshot
trace, EIO) and the payload goes on.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from kdbg.tracelog import logger
from ..host_fds import late_import
from .dispatch import syscall

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread

log = logger("km.snapshot")
LABEL_MAX = 4096


@syscall("km_snapshot")
def sys_km_snapshot(ctx: VcpuThread, label: int, description: int, live: int) -> int:
    # imported on first use (aside: the payload's other threads run): km's start-up does not pay for the core
    # writer and the descriptor survey
    SnapshotError = late_import("monitor.snapshot.errors").SnapshotError
    take = late_import("monitor.snapshot.take").take
    text = [ctx.mem.read_cstring(p, LABEL_MAX, truncate=True).decode(errors="replace") if p else ""
            for p in (label, description)]
    try:
        take(ctx.proc, ctx.proc.snapshot_path, label=text[0], description=text[1], live=bool(live), caller=ctx)
    except SnapshotError as e:
        log.info("snapshot not taken: %s", e)
        return -e.errno
    if not live:
        ctx.proc.exit_group(0)
    return 0
