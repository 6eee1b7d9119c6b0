"""Runs the DAP fuzzer's episodes against kdbg-dap processes (tests/fuzz/dap_stream.py) and judges them."""
from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.dap import DapClient, DapFailure

from .dap_stream import Episode

ANSWER_S = 20.0         # a loaded 2-core machine
EXIT_S = 10.0


@dataclass
class Result:
    messages: int = 0
    answered: int = 0
    failed_responses: int = 0
    adapters: int = 0
    problems: list[str] = field(default_factory=list)


def run_episode(episode: Episode, log: Path, result: Result) -> None:
    client = DapClient(log, start_children=False)
    result.adapters += 1
    try:
        for send in episode.sends:
            result.messages += 1
            try:
                client.send_raw(send.data)
            except OSError:
                result.problems.append(f"{log.name}: the adapter stopped reading after {result.messages} messages")
                return
            if send.seq is not None and not send.cuts:
                try:
                    reply = client.response(send.seq, ANSWER_S)
                except DapFailure as e:
                    result.problems.append(f"{log.name}: request {send.seq} unanswered ({str(e).splitlines()[0]})")
                    return
                result.answered += 1
                if not reply.get("success"):
                    result.failed_responses += 1
                    text = str(reply.get("message", "")) + str(reply.get("body", ""))
                    if "Traceback" in text or "internal error" in text.lower():
                        result.problems.append(f"{log.name}: request {send.seq}: {text[:300]}")
    finally:
        try:
            assert client.proc.stdin is not None
            client.proc.stdin.close()
        except OSError:
            pass
        deadline = time.monotonic() + EXIT_S
        try:
            client.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            result.problems.append(f"{log.name}: the adapter did not exit {EXIT_S:g} s after its input closed")
            client.proc.kill()
            client.proc.wait()
        assert client.proc.stderr is not None
        err = client.proc.stderr.read().decode(errors="replace")
        if "Traceback" in err or client.proc.returncode not in (0, None):
            result.problems.append(f"{log.name}: exit status {client.proc.returncode}: {err[-600:]}")


def run(episodes: list[Episode], workdir: Path) -> Result:
    result = Result()
    for i, episode in enumerate(episodes):
        run_episode(episode, workdir / f"kdbg-dap-{i}.log", result)
    return result
