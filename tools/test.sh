#!/usr/bin/env bash
# The whole test suite: installs what is missing, then runs pytest (unit tests, then VM and gdb tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh --quiet
exec python3 -m pytest -q "$@" tests
