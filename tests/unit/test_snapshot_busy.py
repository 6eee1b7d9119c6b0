"""One snapshot at a time: a second one asked for while one is written is refused at once, in one line, with the
errno km_snapshot_take() returns (EBUSY), and nothing is written for it."""
from __future__ import annotations

import errno

import pytest

from monitor.snapshot import take as taking
from monitor.snapshot.errors import SnapshotError


def test_a_second_snapshot_while_one_is_written_is_refused(tmp_path):
    assert taking._busy.acquire(blocking=False)
    try:
        with pytest.raises(SnapshotError) as refused:
            taking.take(None, str(tmp_path / "second"))     # type: ignore[arg-type]  (never reached)
    finally:
        taking._busy.release()
    assert refused.value.errno == errno.EBUSY
    assert str(refused.value) == f"{tmp_path / 'second'}: another snapshot is being written"
    assert list(tmp_path.iterdir()) == []
