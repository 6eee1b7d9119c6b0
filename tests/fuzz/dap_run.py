"""Runs the DAP fuzzer's episodes against kdbg-dap processes (tests/fuzz/dap_stream.py) and judges them."""
from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import json
import sys
import threading

from harness.dap import read_message
from harness.km import ROOT, km_env

from .dap_stream import Episode

ANSWER_S = 20.0         # a loaded 2-core machine
EXIT_S = 10.0


class RawClient:
    """kdbg-dap over stdio, fed raw bytes; responses kept by their request_seq as sent back (any JSON value)."""

    def __init__(self, log: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "kdbg.dap", "--log", str(log)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=km_env(), cwd=ROOT)
        self.responses: dict[str, dict] = {}
        self.cond = threading.Condition()
        self.closed = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while (message := read_message(self.proc.stdout)) is not None:
            with self.cond:
                if message.get("type") == "response":
                    self.responses[json.dumps(message.get("request_seq"))] = message
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def response(self, seq: int, timeout_s: float) -> dict | None:
        key = json.dumps(seq)
        with self.cond:
            self.cond.wait_for(lambda: key in self.responses or self.closed, timeout_s)
            return self.responses.pop(key, None)


@dataclass
class Result:
    messages: int = 0
    answered: int = 0
    failed_responses: int = 0
    adapters: int = 0
    problems: list[str] = field(default_factory=list)


def run_episode(episode: Episode, log: Path, result: Result) -> None:
    client = RawClient(log)
    result.adapters += 1
    try:
        for send in episode.sends:
            result.messages += 1
            try:
                client.proc.stdin.write(send.data)
                client.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                result.problems.append(f"{log.name}: the adapter stopped reading after {result.messages} messages")
                return
            if send.seq is not None and not send.cuts:
                reply = client.response(send.seq, ANSWER_S)
                if reply is None:
                    result.problems.append(f"{log.name}: request {send.seq} unanswered "
                                           f"({'the adapter closed' if client.closed else 'no reply in time'})")
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
