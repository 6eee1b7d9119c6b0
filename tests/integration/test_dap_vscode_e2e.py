"""End to end in VS Code's own UI: code-server with the km-debug .vsix installed, driven by headless Chromium
(vscode-extension/test-e2e/e2e.js, puppeteer-core): F1 "Debug: Start Debugging" on a km launch configuration stops
on entry in main, "Debug: Continue" runs the payload, whose output appears in the Debug Console.

Needs code-server (KDBG_CODE_SERVER, on PATH, or installed by vscode-extension/test-e2e/install-code-server.sh)
and chromium (Debian package, installed by the same script); skipped when either is missing. Screenshots of each
step are kept in the test's tmp folder.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading

import pytest

from harness.dap import km_under_test
from harness.km import ROOT, km_env

EXTENSION = ROOT / "vscode-extension"
# No extension marketplace: code-server would otherwise query one on the network.
NO_GALLERY = {"EXTENSIONS_GALLERY": json.dumps({"serviceUrl": "http://127.0.0.1:9/gallery",
                                                "itemUrl": "http://127.0.0.1:9/item"})}
LOCAL_CODE_SERVER = EXTENSION / "test-e2e" / ".code-server" / "node_modules" / ".bin" / "code-server"
CODE_SERVER = os.environ.get("KDBG_CODE_SERVER") or shutil.which("code-server") or (
    str(LOCAL_CODE_SERVER) if LOCAL_CODE_SERVER.exists() else None)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(not (CODE_SERVER and CHROMIUM and shutil.which("node")),
                                reason="code-server, chromium or node not installed")


@pytest.fixture
def code_server(tmp_path, payload, request):
    """code-server serving a workspace whose launch.json runs dap_basic.km in km; killed (its group) at teardown."""
    vsix = tmp_path / "km-debug.vsix"
    subprocess.run([str(EXTENSION / "node_modules" / ".bin" / "vsce"), "package", "--no-dependencies",
                    "--allow-missing-repository", "--skip-license", "-o", str(vsix)], cwd=EXTENSION, check=True,
                   capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    extensions, data, workspace = tmp_path / "ext", tmp_path / "data", tmp_path / "ws"
    subprocess.run([CODE_SERVER, "--extensions-dir", str(extensions), "--user-data-dir", str(data),
                    "--install-extension", str(vsix)], check=True, capture_output=True, timeout=120,
                   env=km_env(NO_GALLERY))
    km_path, label = km_under_test()
    request.node.user_properties.append(("km", label))
    (workspace / ".vscode").mkdir(parents=True)
    (workspace / ".vscode" / "launch.json").write_text(json.dumps({"version": "0.2.0", "configurations": [
        {"name": "km: dap_basic", "type": "km", "request": "launch", "program": str(payload("dap_basic.c", "musl")),
         "kmPath": km_path, "stopOnEntry": True}]}))
    (data / "User").mkdir(parents=True, exist_ok=True)
    (data / "User" / "settings.json").write_text(json.dumps({
        "security.workspace.trust.enabled": False, "workbench.startupEditor": "none",
        "extensions.autoCheckUpdates": False, "extensions.autoUpdate": False,
        "km.adapterCommand": [sys.executable, "-m", "kdbg.dap"]}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([CODE_SERVER, "--auth", "none", "--bind-addr", f"127.0.0.1:{port}",
                               "--user-data-dir", str(data), "--extensions-dir", str(extensions),
                               "--disable-telemetry", "--disable-update-check", str(workspace)],
                              env=km_env(NO_GALLERY), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    listening, log = threading.Event(), []

    def pump() -> None:
        for line in server.stdout:
            log.append(line)
            if "HTTP server listening" in line:
                listening.set()
        listening.set()
    threading.Thread(target=pump, daemon=True).start()
    try:
        assert listening.wait(60) and server.poll() is None, "".join(log)
        yield f"http://127.0.0.1:{port}/?folder={workspace}", log
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def test_vscode_ui_debugs_a_payload_in_km(code_server, tmp_path):
    url, log = code_server
    shots = tmp_path / "screenshots"
    shots.mkdir()
    done = subprocess.run(["node", str(EXTENSION / "test-e2e" / "e2e.js")], cwd=EXTENSION, capture_output=True,
                          text=True, timeout=240,
                          env=dict(os.environ, E2E_URL=url, E2E_CHROMIUM=CHROMIUM, E2E_SHOTS=str(shots),
                                   E2E_CONFIG="km: dap_basic", E2E_OUTPUT="answer=42 total=7"))
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\nscreenshots: {shots}\n{''.join(log)[-3000:]}"
