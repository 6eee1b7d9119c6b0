"""kdbg.target.StopEventQueue: what a resume or a detach takes back, and what it must leave for the stub."""
from __future__ import annotations

from kdbg.target import StopEvent, StopEventQueue, StopReason


def test_drain_takes_the_threads_stops_and_leaves_the_process_end() -> None:
    """A thread's exit_group runs on while the world counts as stopped (it is in a syscall): the EXITED it posts
    before gdb's resume drains the queue must still reach the stub, or gdb never hears the exit status."""
    queue = StopEventQueue()
    try:
        stop = StopEvent(7, StopReason.BREAKPOINT, 5)
        signal = StopEvent(8, StopReason.SIGNAL, 23)
        end = StopEvent(0, StopReason.EXITED, 0, exit_status=5)
        for event in (stop, end, signal):
            queue.post(event)
        assert queue.drain() == [stop, signal]
        assert queue.take() == end
        assert queue.take() is None and queue.take() is None      # the drained events' bytes
        assert queue.drain() == []
    finally:
        queue.close()


def test_a_held_back_event_comes_back_at_the_next_drain_first() -> None:
    """A signal taken while the world was already stopped for another thread's stop is never shown to gdb: the
    next resume's drain() must return it (to be handed back to its thread), before the events still queued."""
    queue = StopEventQueue()
    try:
        held = StopEvent(8, StopReason.SIGNAL, 10)
        later = StopEvent(9, StopReason.SIGNAL, 12)
        queue.post(held)
        assert queue.take() == held
        queue.hold_back(held)
        queue.post(later)
        assert queue.drain() == [held, later]
        assert queue.drain() == []
    finally:
        queue.close()
