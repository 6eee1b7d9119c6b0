"""monitor/snapshot/take.py's view of the frozen process: the thread that asked for the snapshot shows the value a
resumed copy's km_snapshot_take() returns, without changing the register file the thread keeps for gdb."""
from __future__ import annotations

from types import SimpleNamespace

from monitor.debug.process_view import ProcessView
from monitor.snapshot import take


def test_the_callers_rax_is_changed_in_a_copy(monkeypatch) -> None:
    kept = {7: {"rax": 0x3c, "rip": 0x401000}, 8: {"rax": 2, "rip": 0x401010}}    # as read_registers keeps them
    monkeypatch.setattr(ProcessView, "registers", lambda self, tid: kept[tid])
    view = take._SnapshotView(SimpleNamespace(), SimpleNamespace(tid=7))
    assert view.registers(7) == {"rax": take.RESUMED, "rip": 0x401000}
    assert view.registers(8) == {"rax": 2, "rip": 0x401010}
    assert kept == {7: {"rax": 0x3c, "rip": 0x401000}, 8: {"rax": 2, "rip": 0x401010}}
