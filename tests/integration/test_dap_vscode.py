"""The VS Code side: the .vsix builds with @vscode/vsce from the npm registry, and Microsoft's DAP test client
(@vscode/debugadapter-testsupport) drives `kdbg-dap --port` through launch, breakpoints and exit.

Skipped where node/npm are absent. `npm ci` runs once into vscode-extension/node_modules (gitignored).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from harness.dap import km_under_test, marker_path
from harness.km import ROOT, km_env
from harness.markers import line_of

EXTENSION = ROOT / "vscode-extension"
pytestmark = pytest.mark.skipif(not (shutil.which("node") and shutil.which("npm")), reason="node/npm not installed")


@pytest.fixture(scope="module")
def node_modules():
    if not (EXTENSION / "node_modules" / "@vscode" / "vsce").is_dir() or \
            not (EXTENSION / "node_modules" / "@vscode" / "debugadapter-testsupport").is_dir():
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=EXTENSION, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    return EXTENSION / "node_modules"


def test_vsix_builds_and_holds_the_extension(node_modules, tmp_path):
    vsix = tmp_path / "km-debug.vsix"
    done = subprocess.run([str(node_modules / ".bin" / "vsce"), "package", "--no-dependencies",
                           "--allow-missing-repository", "--skip-license", "-o", str(vsix)],
                          cwd=EXTENSION, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("extension/package.json"))
    assert {"extension/package.json", "extension/extension.js", "extension.vsixmanifest"} <= names
    assert not [n for n in names if "node_modules" in n or n.startswith("extension/test")]
    assert manifest["contributes"]["debuggers"][0]["type"] == "km"


@pytest.fixture
def dap_server():
    server = subprocess.Popen([sys.executable, "-m", "kdbg.dap", "--port", "0"], env=km_env(), cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = server.stderr.readline()
    match = re.search(r"listening on [\d.]+:(\d+)", line)
    assert match, line
    yield int(match.group(1))
    server.kill()
    server.wait()


def test_debugadapter_testsupport_drives_kdbg_dap(node_modules, dap_server, payload, request):
    km_path, label = km_under_test()
    request.node.user_properties.append(("km", label))
    source = "dap_basic.c"
    env = km_env({"KM_DAP_PORT": str(dap_server), "KM_DAP_PROGRAM": str(payload(source, "musl")),
                  "KM_DAP_SOURCE": marker_path(source), "KM_DAP_KMPATH": json.dumps(km_path),
                  "KM_DAP_BP_LINE": str(line_of(source, "add_body")),
                  "KM_DAP_ENTRY_LINE": str(line_of(source, "main_start") - 1)})
    done = subprocess.run(["node", "--test", "--test-reporter=spec", "test/"], cwd=EXTENSION, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"km: {label}\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
