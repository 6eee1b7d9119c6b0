"""The DAP fuzzer in the suite: 1,000 hostile messages at kdbg-dap processes (tests/fuzz/dap_stream.py), then a
well-formed session debugs a payload to its exit. bench/fuzz.py sends 10,000."""
from __future__ import annotations

from harness.dap import dap_fixture, marker_path
from harness.markers import line_of

from .dap_run import run
from .dap_stream import episodes, session_requests

SEED = 0x6B6D2D646170      # "km-dap"
COUNT = 1_000
IN_SESSION = 200           # of COUNT: sent to a live session stopped at a breakpoint


def test_kdbg_dap_answers_or_closes_cleanly_and_a_session_then_works(tmp_path, request, payload):
    result = run(episodes(SEED, COUNT - IN_SESSION), tmp_path)
    assert not result.problems, "\n".join(result.problems[:10])
    assert result.messages == COUNT - IN_SESSION and result.answered > COUNT // 3, result
    # a well-formed session, given hostile requests while stopped, then debugged to its exit
    make = dap_fixture(tmp_path, request)
    client = next(make)()
    try:
        program = str(payload("dap_basic.c", "musl"))
        client.start("launch", {"program": program, "kmPath": client.km_path},
                     {marker_path("dap_basic.c"): [{"line": line_of("dap_basic.c", "add_body")}]})
        hit = client.wait_event("stopped")
        assert hit["reason"] == "breakpoint", client.dump()
        for command, arguments in session_requests(SEED, IN_SESSION):
            reply = client.request(command, arguments)
            assert "Traceback" not in str(reply) and "internal error" not in str(reply).lower(), client.dump()
        assert client.top_frame(hit["threadId"])["name"] == "add", client.dump()
        client.call("continue", {"threadId": hit["threadId"]})
        client.wait_event("exited")
    finally:
        client.close()


def test_a_content_length_of_100_gb_ends_the_adapter_cleanly(tmp_path):
    """read(99999999999) made the request reader die of OverflowError/MemoryError and kdbg-dap hung with no
    reader; breakpoint requests with wrong types answered 'internal error' (the in-session part above pins those)."""
    from .dap_run import Result, run_episode
    from .dap_stream import Episode, Send
    result = Result()
    run_episode(Episode([Send(b"Content-Length: 99999999999\r\n\r\n{}", cuts=True)]), tmp_path / "dap.log", result)
    assert not result.problems, result.problems
