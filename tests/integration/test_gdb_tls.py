"""End to end, thread-local variables (`p tls_counter`) in a static payload: gdb against `km -g` and gdbserver.

gdb asks qGetTLSAddr with no link_map for a static program's own TLS; gdbserver answers through libthread_db
(static glibc) and cannot for static musl, which has none; km finds the block from the program's PT_TLS for both.
"""
from __future__ import annotations

import pytest

from harness.debuggee import run_to_exit

SRC = "gdb_tls.c"


def _value(d, expr: str) -> str:
    return d.gdb.console(f"p {expr}").split("=", 1)[-1].strip()


@pytest.mark.parametrize("toolchain", ["glibc", "musl"])
def test_each_thread_sees_its_own_thread_local_values(debug, toolchain) -> None:
    d = debug(SRC, toolchain)
    d.gdb.run("-break-insert checkpoint")
    d.gdb.run("-exec-continue")
    d.gdb.wait_for_stop("breakpoint-hit")
    if d.backend == "gdbserver" and toolchain == "musl":    # no libthread_db for musl: gdbserver gives up
        assert "Cannot find thread-local storage" in d.gdb.run("p tls_counter", check=False)["payload"]["msg"]
        return
    assert _value(d, "tls_counter") == "42" and _value(d, "tls_name").startswith('"main"'), d.diagnostics()
    d.gdb.run("-exec-continue")
    stop = d.gdb.wait_for_stop("breakpoint-hit")
    assert stop["frame"]["args"][0]["value"] == "1", d.diagnostics()
    assert _value(d, "tls_counter") == "101" and _value(d, "tls_name").startswith('"w1'), d.diagnostics()
    worker_address = _value(d, "&tls_counter")
    d.gdb.console("thread 1")
    assert _value(d, "tls_counter") == "42" and _value(d, "&tls_counter") != worker_address, d.diagnostics()
    d.gdb.console("delete")
    status, out, err = run_to_exit(d)
    assert out.splitlines() == ["main 42 main"], out + err
