#!/usr/bin/env bash
# Builds the relocatable km bundle (default /opt/km: km, km-runtime, their Python and every library they load)
# from this repository with the Python that runs km here. Usage: bash tools/build-bundle.sh [--dest DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${KM_BUNDLE_PYTHON:-python3}" tools/build_bundle.py "$@"
