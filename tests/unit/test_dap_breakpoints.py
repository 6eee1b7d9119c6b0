"""Hit conditions and signal filters: the parts of DAP breakpoints that gdb does not do itself."""
from __future__ import annotations

import pytest

from kdbg.dap.breakpoints import SIGNAL_FILTERS, exception_filters, hit_condition_met


@pytest.mark.parametrize("condition,hits,expected", [
    (None, 1, True), ("", 5, True), ("3", 2, False), ("3", 3, True), ("3", 4, False), ("==2", 2, True),
    (">=3", 2, False), (">=3", 3, True), (">3", 3, False), (">3", 4, True), ("<2", 1, True), ("<2", 2, False),
    ("<=2", 2, True), ("%3", 3, True), ("%3", 4, False), ("%3", 6, True), (" >= 2 ", 2, True), ("%0", 1, False),
])
def test_hit_condition(condition, hits, expected):
    assert hit_condition_met(condition, hits) is expected


def test_exception_filters_are_signals_described_by_the_c_library():
    filters = exception_filters()
    assert [f["filter"] for f in filters] == [name for name, _ in SIGNAL_FILTERS]
    segv = next(f for f in filters if f["filter"] == "SIGSEGV")
    assert segv["default"] is True and segv["label"] == "SIGSEGV: Segmentation fault"
    assert not {"SIGTRAP", "SIGINT"} & {f["filter"] for f in filters}     # gdb's own: breakpoints, pause
