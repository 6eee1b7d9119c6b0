"""kdbg.tracelog: km's loggers reach logging until monitor/trace.py switches them, then either trace or do nothing."""
from __future__ import annotations

import logging

from kdbg import tracelog


def test_loggers_forward_until_switched_then_follow_the_switch(caplog) -> None:
    log = tracelog.logger("km.test-tracelog")
    try:
        with caplog.at_level(logging.DEBUG, logger="km.test-tracelog"):
            log.info("before the switch %d", 1)             # a test's or a library's use: logging as usual
            tracelog.switch(False)
            later = tracelog.logger("km.test-tracelog")      # made after the switch: off at once
            log.warning("off %d", 2)
            later.error("off too", exc_info=True)
            assert not log.isEnabledFor(tracelog.DEBUG) and not later.isEnabledFor(tracelog.ERROR)
            tracelog.switch(True)
            later.debug("traced %d", 3)
            assert log.isEnabledFor(tracelog.DEBUG)
    finally:
        tracelog.switch(True)           # as before any switch: every km logger goes to logging
    assert [r.getMessage() for r in caplog.records if r.name == "km.test-tracelog"] == \
        ["before the switch 1", "traced 3"]


def test_levels_are_loggings() -> None:
    assert (tracelog.DEBUG, tracelog.INFO, tracelog.WARNING, tracelog.ERROR) == \
        (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)
