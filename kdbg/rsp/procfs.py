"""The payload's /proc/<pid>/ files, made from the Target, for vFile reads.

gdb reads /proc/PID/smaps (gcore, `info proc mappings`), maps, cmdline and the exe link of the remote process
through host I/O. km's host process is not the payload: its own /proc files would describe km's Python and
the VM's host memory. So paths under /proc/<target pid>/ and /proc/self/ are answered from the Target instead.
"""
from __future__ import annotations

import re

from kdbg.target import Target, maps_line, maps_text

# gdb's pid for a remote that did not negotiate the multiprocess extensions (gdb/remote.c MAGIC_NULL_PID).
MAGIC_NULL_PID = 42000
_PROC_PATH = re.compile(r"^/proc/(self|\d+)(?:/task/\d+)?/(maps|smaps|cmdline|exe|comm|auxv|coredump_filter)$")


def _smaps_entry(region) -> str:
    size_kb = (region.end - region.start) // 1024
    flags = " ".join(f for f, on in (("rd", "r" in region.perms), ("wr", "w" in region.perms),
                                     ("ex", "x" in region.perms), ("mr", True), ("mw", True), ("me", True),
                                     ("dd", region.path == "[vvar]"))   # as Linux: never dumped
                     if on)
    return (f"{maps_line(region)}\nSize:           {size_kb:8} kB\nRss:            {size_kb:8} kB\n"
            f"Anonymous:      {size_kb:8} kB\nVmFlags: {flags}\n")


def virtual_file(target: Target, path: str) -> bytes | None:
    """The content of a /proc file of the payload, or None when the path is not one (read the host's)."""
    match = _PROC_PATH.match(path)
    if match is None or not _is_payload(target, match.group(1)):
        return None
    kind = match.group(2)
    if kind == "maps":
        return maps_text(target.mappings()).encode(errors="surrogateescape")
    if kind == "smaps":
        return "".join(_smaps_entry(r) for r in target.mappings()).encode(errors="surrogateescape")
    if kind == "cmdline":
        return target.exe_path().encode() + b"\0"
    if kind == "comm":
        return target.exe_path().rsplit("/", 1)[-1][:15].encode() + b"\n"
    if kind == "auxv":
        return target.auxv()
    if kind == "coredump_filter":
        return b"00000033\n"
    return None


def virtual_link(target: Target, path: str) -> str | None:
    match = _PROC_PATH.match(path)
    if match is None or match.group(2) != "exe":
        return None
    return target.exe_path() if _is_payload(target, match.group(1)) else None


def _is_payload(target: Target, pid: str) -> bool:
    return pid == "self" or int(pid) in (target.pid(), MAGIC_NULL_PID)
