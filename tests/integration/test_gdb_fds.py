"""While gdb is attached, km's own descriptors (stub sockets, event pipe) stay out of the payload's numbers."""
from __future__ import annotations


def test_payload_under_gdb_gets_descriptor_3(debug) -> None:
    d = debug("gdb_fds.c")
    d.gdb.run("-exec-continue")
    d.gdb.wait_for_stop("exited-normally")
    status, out, _ = d.finish()
    assert "first fd 3" in out, f"{d.backend}: {out}\n{d.diagnostics()}"
