"""What a real km run imports (issue 10): every module is paid by every km start and every exec inside a payload,
so a plain run leaves out what only a debugger, a core dump, a snapshot or a trace needs. The modules are listed
by the run itself (km's main with os._exit wrapped), by name, never by time."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.km import km_env
from harness.startup import NOT_IN_A_PLAIN_RUN

# km's main as `python -m monitor.cli ARGS` runs it, but the modules it loaded are written to MODULES_OUT at its exit
RUNNER = """
import json, os, sys
import monitor.cli
_exit = os._exit
def listed_exit(status):
    with open(os.environ["MODULES_OUT"], "w") as f:
        json.dump(sorted(sys.modules), f)
    _exit(status)
os._exit = listed_exit
monitor.cli.main(["km", *sys.argv[1:]])
"""


def modules_of_run(tmp_path, *args: str) -> set[str]:
    out = tmp_path / "modules.json"
    result = subprocess.run([sys.executable, "-c", RUNNER, *args], capture_output=True, timeout=60, cwd=tmp_path,
                            env=km_env({"MODULES_OUT": str(out), "KM_VERBOSE": "0"}))
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return set(json.loads(out.read_text()))


@pytest.fixture(scope="module")
def plain_run(payload, tmp_path_factory) -> set[str]:
    return modules_of_run(tmp_path_factory.mktemp("plain"), str(payload("run_hello.c", "musl")))


@pytest.mark.parametrize("module,reason", NOT_IN_A_PLAIN_RUN, ids=[m for m, _ in NOT_IN_A_PLAIN_RUN])
def test_plain_run_leaves_out(plain_run, module, reason):
    loaded = sorted(m for m in plain_run if m == module or m.startswith(module + "."))
    assert not loaded, f"a plain run imported {loaded}: {reason}"
