"""vCont;r (range stepping): parsed into a STEP with its range, offered only when the target can."""
from __future__ import annotations

from kdbg.rsp.resume import parse_vcont
from kdbg.target import ResumeAction, ResumeKind


def test_range_step_action_is_parsed() -> None:
    (actions,) = parse_vcont(b"r401000,401020:p64.65;c")
    assert actions == (ResumeAction(ResumeKind.STEP, 0x65, 0, 0x401000, 0x401020, pid=0x64),
                       ResumeAction(ResumeKind.CONTINUE))


def test_plain_step_has_no_range() -> None:
    (actions,) = parse_vcont(b"s:1")
    assert actions[0].range_end == 0
