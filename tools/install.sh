#!/usr/bin/env bash
# Installs everything km needs on a fresh Debian machine (system packages and the Python package), then runs
# km on the bundled example payload. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PACKAGES="gcc python3-dev musl-tools gdb gdbserver strace busybox-static golang-go qemu-user elfutils lldb binutils make runc libpython3.11-testsuite python3.11-dbg"
missing=""
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in $APT_PACKAGES; do installed "$p" || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
# The VS Code end-to-end test's tools (code-server from npm, Chromium from Debian); a second run only checks.
bash vscode-extension/test-e2e/install-code-server.sh | tail -n 1
python3 -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v "Running pip as the 'root' user" || true
# What a km start would otherwise redo every time: cffi's parse of the KVM declarations (kept as a generated module,
# monitor/kvm/ffi_module.py) and the byte code of km's modules (also when PYTHONDONTWRITEBYTECODE is set).
python3 -m monitor.kvm.abi >/dev/null
# The gdb stub's compiled framing (kdbg/rsp/cframing.py, cffi API mode: gcc and Python's headers), into ~/.cache/km;
# without it the stub frames in Python.
python3 -m kdbg.rsp.cframing >/dev/null
# The stub's stop lane (kdbg/rsp/cstop.py, the same way): g, p, m and repeated queries of a stopped session answered
# in C; without it the Python session loop answers them.
python3 -m kdbg.rsp.cstop >/dev/null
# The debugger's compiled run of a parked vCPU (monitor/kvm/crun.py, the same way); without it that run is Python's.
python3 -m monitor.kvm.crun >/dev/null
# A forked km's exit with its teardown off its parent's wait (monitor/process/teardown.py, the same way); without it
# the forked km tears down before it exits.
python3 -m monitor.process.teardown >/dev/null
python3 -m compileall -q monitor kdbg >/dev/null
if [ "${1:-}" != "--quiet" ]; then
  mkdir -p build
  musl-gcc -static -O2 -o build/hello.km examples/hello.c
  command -v km >/dev/null || hash -r
  if command -v km >/dev/null; then km build/hello.km from km; else python3 -m monitor.cli build/hello.km from km; fi
fi
